//! The client side of SMTP, for the outbound relay: reading the replies of remote servers
//! (RFC 5321 §4.2) and their EHLO capabilities (§4.1.1.1), encoding commands (§4.1.1 with the
//! ESMTP parameters of RFC 1870, 6152, 3030, 6531, 3461 and 4954), and dot-stuffing message
//! bodies for DATA (§4.5.2).
//!
//! Like the server side it does no I/O: the relay reads bytes into a buffer and hands them to
//! [`parse_reply`], and writes out what the encoders return.
//!
//! # Security
//! Remote servers are untrusted. [`parse_reply`] bounds a reply to
//! [`MAX_REPLY_LINES`] lines of at most [`MAX_REPLY_LINE_LEN`] octets, and the text it returns
//! carries no control characters (so it is safe in logs and DSN fields). The encoders replace
//! control characters in their arguments, so an argument can never end a command line early.

mod capabilities;
mod commands;
mod reply;
mod stuffing;

pub use capabilities::{ServerCapabilities, parse_ehlo};
pub use commands::{
    MailFrom, RcptTo, auth, auth_plain_response, base64_encode, bdat, data, ehlo, helo, mail_from,
    noop, quit, rcpt_to, rset, starttls,
};
pub use reply::{MAX_REPLY_LINE_LEN, MAX_REPLY_LINES, ReplyError, ServerReply, parse_reply};
pub use stuffing::{DotStuffer, has_8bit};
