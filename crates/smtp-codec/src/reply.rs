//! The one reply table: every reply Postrider's SMTP server sends is named here, with its code
//! (RFC 5321 §4.2), its enhanced status code (RFC 3463, RFC 2034; RFC 5248 registry) and its
//! text. Replies never reveal configuration, hosts or internal errors; causes go to the log.
//!
//! Per RFC 2034 §3 the greeting and the HELO/EHLO replies carry no enhanced code.

use std::borrow::Cow;

/// An enhanced status code `class.subject.detail` (RFC 3463 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enhanced(pub u8, pub u16, pub u16);

impl std::fmt::Display for Enhanced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// One SMTP reply. Text with `\n` is sent as a multi-line reply, each line with the code (and
/// the enhanced code, if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<Enhanced>,
    pub text: Cow<'static, str>,
}

const fn r(code: u16, e: (u8, u16, u16), text: &'static str) -> Reply {
    Reply {
        code,
        enhanced: Some(Enhanced(e.0, e.1, e.2)),
        text: Cow::Borrowed(text),
    }
}

impl Reply {
    /// The same entry with a different text (details such as a queue id or a size).
    pub fn with_text(mut self, text: impl Into<Cow<'static, str>>) -> Reply {
        self.text = text.into();
        self
    }

    /// 2xx and 3xx.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx: try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx: do not try again.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Encodes the reply with CRLF line ends, continuation lines as `code-`. Control characters
    /// in the text are replaced so a detail can never inject a line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        let last = lines.len() - 1; // split always yields at least one item
        for (i, line) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            let head = match self.enhanced {
                Some(e) => format!("{}{}{} ", self.code, sep, e),
                None => format!("{}{}", self.code, sep),
            };
            out.extend_from_slice(head.as_bytes());
            out.extend(
                line.bytes()
                    .map(|b| if b < 0x20 || b == 0x7f { b'?' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The encoded reply as a string (for logs and tests).
    pub fn to_wire(&self) -> String {
        let mut out = Vec::new();
        self.encode(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

// ---- 2xx / 3xx -------------------------------------------------------------------------------
pub const OK: Reply = r(250, (2, 0, 0), "Ok");
pub const SENDER_OK: Reply = r(250, (2, 1, 0), "Sender ok");
pub const RECIPIENT_OK: Reply = r(250, (2, 1, 5), "Recipient ok");
pub const RESET_OK: Reply = r(250, (2, 0, 0), "Reset state");
pub const CLOSING: Reply = r(221, (2, 0, 0), "Bye");
pub const START_DATA: Reply = Reply {
    code: 354,
    enhanced: None,
    text: Cow::Borrowed("End data with <CR><LF>.<CR><LF>"),
};
pub const READY_TLS: Reply = r(220, (2, 0, 0), "Ready to start TLS");
/// RFC 5321 §3.5.3: 252 when the server will not verify but will try delivery.
pub const VRFY_CANNOT: Reply = r(
    252,
    (2, 5, 0),
    "Cannot VRFY user, but will accept message and attempt delivery",
);
pub const HELP: Reply = r(
    214,
    (2, 0, 0),
    "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
);
pub const AUTH_OK: Reply = r(235, (2, 7, 0), "Authentication successful");

// ---- 4xx ---------------------------------------------------------------------------------------
pub const SHUTTING_DOWN: Reply = r(421, (4, 3, 2), "Service shutting down, try again later");
pub const TOO_MANY_CONNECTIONS: Reply = r(421, (4, 7, 0), "Too many connections, try again later");
pub const TOO_MANY_CONNECTIONS_FROM_IP: Reply = r(
    421,
    (4, 7, 0),
    "Too many connections from your address, try again later",
);
pub const TIMEOUT: Reply = r(421, (4, 4, 2), "Timeout exceeded, closing connection");
pub const TOO_MANY_ERRORS: Reply = r(421, (4, 7, 0), "Too many errors, closing connection");
/// RFC 3463 X.7.1 (delivery not authorized) as a temporary answer: over a sending rate limit.
pub const RATE_LIMITED_MESSAGE: Reply = r(
    451,
    (4, 7, 1),
    "Sending rate limit reached, try again later",
);
pub const RATE_LIMITED_RECIPIENT: Reply = r(
    452,
    (4, 7, 1),
    "Recipient rate limit reached, try again later",
);
pub const TOO_MANY_CONNECTIONS_PER_MINUTE: Reply = r(
    421,
    (4, 7, 0),
    "Too many connections from your address, try again later",
);
pub const TOO_MANY_AUTH_FAILURES: Reply =
    r(421, (4, 7, 0), "Too many failed logins, closing connection");
pub const CLIENT_BANNED: Reply = r(
    421,
    (4, 7, 0),
    "Too many failed logins from your address, try again later",
);
/// An over-long command line that goes on far past the limit without a line end: not an SMTP
/// client (RFC 5321 §4.5.3.1.4 allows 512 octets), so the session ends.
pub const LINE_TOO_LONG_CLOSING: Reply = r(421, (4, 7, 0), "Line too long, closing connection");
/// An HTTP request line on an SMTP port: closed at once, so nothing in the request (a browser
/// can be made to POST SMTP commands: cross-protocol attacks) is read as commands.
pub const HTTP_REQUEST: Reply = r(
    421,
    (4, 7, 0),
    "This is an SMTP server, not an HTTP server; closing connection",
);
pub const LOCAL_ERROR: Reply = r(451, (4, 3, 0), "Local error in processing, try again later");
pub const STORAGE_FULL: Reply = r(452, (4, 3, 1), "Insufficient system storage");
/// RFC 5321 §4.5.3.1.10: 452 for too many recipients; the client sends the rest later.
pub const TOO_MANY_RECIPIENTS: Reply = r(452, (4, 5, 3), "Too many recipients");
pub const TLS_NOT_AVAILABLE: Reply = r(454, (4, 7, 0), "TLS not available");
pub const AUTH_TEMP_FAILURE: Reply = r(454, (4, 7, 0), "Temporary authentication failure");

// ---- 5xx ---------------------------------------------------------------------------------------
pub const UNRECOGNIZED: Reply = r(500, (5, 5, 1), "Command unrecognized");
pub const LINE_TOO_LONG: Reply = r(500, (5, 5, 2), "Line too long");
pub const INVALID_CHARACTERS: Reply = r(500, (5, 5, 2), "Invalid characters in command");
/// RFC 5321 §4.2.2: 501 for a syntax error in arguments; RFC 3463 X.5.4 "invalid command
/// arguments" (a NUL, a control character or octets that are not UTF-8).
pub const INVALID_ARGUMENT_CHARACTERS: Reply =
    r(501, (5, 5, 4), "Invalid characters in command arguments");
/// RFC 4954 §4: an AUTH exchange line that is too long.
pub const AUTH_LINE_TOO_LONG: Reply = r(500, (5, 5, 6), "Authentication exchange line is too long");
pub const SYNTAX: Reply = r(501, (5, 5, 4), "Syntax error");
pub const BAD_SENDER_SYNTAX: Reply = r(501, (5, 1, 7), "Bad sender address syntax");
pub const BAD_RECIPIENT_SYNTAX: Reply = r(501, (5, 1, 3), "Bad recipient address syntax");
pub const BAD_PARAMETER: Reply = r(501, (5, 5, 4), "Invalid parameter value");
/// RFC 4954 §4: the client cancelled the exchange with `*`.
pub const AUTH_CANCELLED: Reply = r(501, (5, 0, 0), "Authentication cancelled");
pub const AUTH_MALFORMED: Reply = r(501, (5, 5, 2), "Cannot decode authentication response");
pub const NOT_IMPLEMENTED: Reply = r(502, (5, 5, 1), "Command not implemented");
pub const EXPN_DISABLED: Reply = r(502, (5, 5, 1), "EXPN not available");
pub const BAD_SEQUENCE: Reply = r(503, (5, 5, 1), "Bad sequence of commands");
pub const AUTH_MECHANISM_UNSUPPORTED: Reply =
    r(504, (5, 5, 4), "Unrecognized authentication mechanism");
pub const AUTH_REQUIRED: Reply = r(530, (5, 7, 0), "Authentication required");
pub const STARTTLS_REQUIRED: Reply = r(530, (5, 7, 0), "Must issue a STARTTLS command first");
pub const AUTH_INVALID: Reply = r(535, (5, 7, 8), "Authentication credentials invalid");
/// RFC 4954 §6: encryption required for the requested mechanism.
pub const AUTH_NEEDS_TLS: Reply = r(
    538,
    (5, 7, 11),
    "Encryption required for requested authentication mechanism",
);
pub const USER_UNKNOWN: Reply = r(550, (5, 1, 1), "Recipient address rejected: user unknown");
pub const RELAY_DENIED: Reply = r(550, (5, 7, 1), "Relaying denied");
/// An authenticated account may send only as the addresses it is allowed.
pub const SENDER_NOT_ALLOWED: Reply = r(
    550,
    (5, 7, 1),
    "Sender address not allowed for this account",
);
pub const FROM_NOT_ALLOWED: Reply = r(550, (5, 7, 1), "From: address not allowed for this account");
/// RFC 1870 §6: the declared or actual size exceeds the fixed maximum.
pub const MESSAGE_TOO_BIG: Reply = r(
    552,
    (5, 3, 4),
    "Message size exceeds fixed maximum message size",
);
/// RFC 6531 §3.7.4.1: a non-ASCII address without SMTPUTF8 on MAIL.
pub const UTF8_ADDRESS_NEEDS_SMTPUTF8: Reply = r(
    553,
    (5, 6, 7),
    "Non-ASCII address requires the SMTPUTF8 parameter",
);
/// RFC 5321 §6.3 and §4.4: too many Received headers means a loop.
pub const MAIL_LOOP: Reply = r(
    554,
    (5, 4, 6),
    "Too many Received headers: mail loop detected",
);
/// RFC 2920 §3.1: DATA after no accepted recipient.
pub const NO_VALID_RECIPIENTS: Reply = r(554, (5, 5, 1), "No valid recipients");
/// Bare CR or LF, NUL or an over-long line in the body (SMTP smuggling defence).
pub const BODY_MALFORMED: Reply = r(554, (5, 6, 0), "Message rejected: malformed content");
pub const PARAMETER_UNSUPPORTED: Reply = r(555, (5, 5, 4), "Unsupported parameter");

/// `220 <host> ESMTP Postrider` (no enhanced code: RFC 2034 §3).
pub fn greeting(hostname: &str) -> Reply {
    Reply {
        code: 220,
        enhanced: None,
        text: format!("{hostname} ESMTP Postrider").into(),
    }
}

/// Reply to HELO.
pub fn helo(hostname: &str) -> Reply {
    Reply {
        code: 250,
        enhanced: None,
        text: hostname.to_string().into(),
    }
}

/// `250 2.0.0 Ok: queued as <id>` after a message is durable.
pub fn queued(queue_id: &str) -> Reply {
    OK.with_text(format!("Ok: queued as {queue_id}"))
}

/// `250 2.0.0 <n> octets received` for a non-final BDAT chunk (RFC 3030 §2).
pub fn chunk_received(octets: u64) -> Reply {
    OK.with_text(format!("{octets} octets received"))
}

/// `334 <challenge>` during an AUTH exchange (RFC 4954 §4).
pub fn auth_challenge(base64: &str) -> Reply {
    Reply {
        code: 334,
        enhanced: None,
        text: base64.to_string().into(),
    }
}

/// Bad sequence with the step that is missing, e.g. "Send MAIL first".
pub fn bad_sequence(detail: &'static str) -> Reply {
    BAD_SEQUENCE.with_text(detail)
}

/// Syntax error naming what was expected, e.g. `"Syntax: MAIL FROM:<address>"`.
pub fn syntax(detail: &'static str) -> Reply {
    SYNTAX.with_text(detail)
}

/// Maps a command parse error to its reply. `is_rcpt` picks the address reply for RCPT.
pub fn for_command_error(err: &crate::command::CommandError, is_rcpt: bool) -> Reply {
    use crate::command::CommandError as E;
    match err {
        E::Unrecognized => UNRECOGNIZED,
        E::Syntax(detail) => syntax(detail),
        E::BadAddress(_) if is_rcpt => BAD_RECIPIENT_SYNTAX,
        E::BadAddress(_) => BAD_SENDER_SYNTAX,
        E::UnknownParameter(_) => PARAMETER_UNSUPPORTED,
        E::BadParameter(detail) => BAD_PARAMETER.with_text(format!("Invalid parameter: {detail}")),
        E::InvalidBytes => INVALID_CHARACTERS,
        E::InvalidArgumentBytes => INVALID_ARGUMENT_CHARACTERS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line_reply_carries_code_and_enhanced_code() {
        assert_eq!(queued("ABC").to_wire(), "250 2.0.0 Ok: queued as ABC\r\n");
        assert_eq!(
            greeting("mx.test").to_wire(),
            "220 mx.test ESMTP Postrider\r\n"
        );
    }

    #[test]
    fn multi_line_reply_uses_dash_on_all_but_last_line() {
        let reply = OK.with_text("one\ntwo");
        assert_eq!(reply.to_wire(), "250-2.0.0 one\r\n250 2.0.0 two\r\n");
    }

    #[test]
    fn control_characters_in_text_cannot_inject_lines() {
        let reply = OK.with_text("a\rb\x00c");
        assert_eq!(reply.to_wire(), "250 2.0.0 a?b?c\r\n");
    }

    #[test]
    fn classes_follow_the_first_digit() {
        assert!(OK.is_positive() && START_DATA.is_positive());
        assert!(TOO_MANY_RECIPIENTS.is_transient());
        assert!(USER_UNKNOWN.is_permanent());
    }
}
