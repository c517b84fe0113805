//! Sans-IO SMTP codec for Postrider.
//!
//! What it does: frames command lines, parses SMTP commands and their ESMTP parameters
//! (RFC 5321, 1870, 6152, 6531, 3461, 3030, 4954), holds the one reply table with enhanced status
//! codes (RFC 3463, 2034), builds the EHLO capability list, and decodes message bodies strictly:
//! DATA with dot-unstuffing and BDAT chunks, both refusing bare CR, bare LF and NUL (SMTP
//! smuggling defence). [`sasl`] decodes AUTH client responses (RFC 4954 base64, PLAIN per
//! RFC 4616, LOGIN).
//!
//! For the outbound relay, [`client`] is the other side: it parses the replies of remote servers
//! and their EHLO capabilities, encodes commands, and dot-stuffs message bodies.
//!
//! What it must not do: any I/O, any allocation proportional to untrusted input beyond what the
//! caller hands it, any panic. It knows nothing of tokio, sockets or policy.
//!
//! # Security
//! Every byte here comes from the network, before authentication. Parsers bound their work by the
//! input length, never index without a check, and are fuzzed (`fuzz/`).
#![forbid(unsafe_code)]

pub mod address;
pub mod bdat;
pub mod client;
pub mod command;
pub mod data;
pub mod ehlo;
pub mod line;
pub mod params;
pub mod reply;
pub mod sasl;
pub mod xtext;

pub use address::{Address, AddressError, ForwardPath, ReversePath};
pub use bdat::BdatDecoder;
pub use client::{
    DotStuffer, ReplyError, ServerCapabilities, ServerReply, parse_ehlo, parse_reply,
};
pub use command::{Command, CommandError, parse_command};
pub use data::{BodyFlaws, DataDecoder, DataStatus};
pub use ehlo::Capabilities;
pub use line::{LineFrame, frame_line, skip_line};
pub use params::{Body, MailParams, Notify, Orcpt, RcptParams, Ret};
pub use reply::{Enhanced, Reply};
pub use sasl::{PlainCredentials, Response as SaslResponse, SaslError};
