//! SMTP commands (RFC 5321 §4.1.1) with the ESMTP extensions Postrider offers.
//!
//! Verbs are case-insensitive. Arguments are parsed strictly enough to be unambiguous and
//! leniently where real clients differ (a space after `MAIL FROM:` is tolerated, as Postfix does).

use crate::address::{ForwardPath, ReversePath};
use crate::params::{MailParams, RcptParams};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// EHLO with the client's domain or address literal, as sent.
    Ehlo { domain: String },
    Helo { domain: String },
    Mail { from: ReversePath, params: MailParams },
    Rcpt { to: ForwardPath, params: RcptParams },
    Data,
    /// BDAT chunk-size [LAST] (RFC 3030 §2).
    Bdat { size: u64, last: bool },
    Rset,
    /// NOOP; its optional argument is ignored.
    Noop,
    Quit,
    /// VRFY with its argument (answered 252 by policy).
    Vrfy { arg: String },
    /// EXPN with its argument (refused by policy).
    Expn { arg: String },
    /// HELP with an optional topic.
    Help { topic: Option<String> },
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954 §4). The mechanism is upper-cased; the
    /// initial response is kept as sent (base64 or `=`).
    Auth { mechanism: String, initial_response: Option<String> },
}

/// Why a command line was refused. Each variant maps to one reply-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The verb is not a command we know (500 5.5.1).
    Unrecognized,
    /// The verb is known, its arguments are malformed; the text says what was expected,
    /// e.g. "Syntax: MAIL FROM:<address>" (501 5.5.4).
    Syntax(&'static str),
    /// The path did not parse as an address (501 5.1.3 for MAIL, 501 5.1.3 for RCPT).
    BadAddress(crate::address::AddressError),
    /// An ESMTP parameter we do not support (555 5.5.4).
    UnknownParameter(String),
    /// A supported parameter with a malformed or repeated value (501 5.5.4); the text names it.
    BadParameter(&'static str),
    /// Bytes that are not valid UTF-8, or a NUL, in the command line (500 5.5.2).
    InvalidBytes,
}

/// Parses one command line (without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let _ = line;
    todo!("smtp-codec helper")
}
