//! Delivery status notifications for failed recipients (RFC 3464 `multipart/report`, RFC 3461
//! DSN parameters, RFC 6533 for SMTPUTF8 messages). The report goes back through intake with a
//! null reverse path, so it can never cause another report (RFC 5321 §4.5.5, §6.1).

use crate::date::rfc5322_date;
use std::time::{SystemTime, UNIX_EPOCH};
use store::{QueuedMessage, QueuedRecipient};

/// Largest original returned whole when the sender did not ask (no RET): above it, only the
/// headers are returned, as Postfix's `bounce_size_limit` does.
const FULL_RETURN_LIMIT: usize = 100 * 1024;

/// What a report tells the sender (RFC 3464 §2.3.3 Action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Given up on: the report is a bounce.
    Failed,
    /// Stored in a local mailbox, as NOTIFY=SUCCESS asked.
    Delivered,
    /// Handed to a server that does not offer DSN, which will not report (RFC 3461 §5.2.1).
    Relayed,
    /// Still being retried after `delivery.delay_warning`.
    Delayed,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::Failed => "failed",
            Kind::Delivered => "delivered",
            Kind::Relayed => "relayed",
            Kind::Delayed => "delayed",
        }
    }
}

/// Whether a success report is wanted: only when NOTIFY names SUCCESS (RFC 3461 §4.1).
pub(crate) fn wants_success_report(r: &QueuedRecipient) -> bool {
    r.dsn.notify.iter().any(|n| n == "SUCCESS")
}

/// Whether a delay report is wanted: NOTIFY names DELAY, or no NOTIFY was given (then this
/// server's default is FAILURE and DELAY, as RFC 3461 §4.1 permits).
pub(crate) fn wants_delay_report(r: &QueuedRecipient) -> bool {
    r.dsn.notify.is_empty() || r.dsn.notify.iter().any(|n| n == "DELAY")
}

/// Whether a failure report is wanted for this recipient (RFC 3461 §4.1: without NOTIFY the
/// default is FAILURE; NEVER or a list without FAILURE asks for none).
pub(crate) fn wants_failure_report(r: &QueuedRecipient) -> bool {
    r.dsn.notify.is_empty() || r.dsn.notify.iter().any(|n| n == "FAILURE")
}

/// The RFC 3463 status in an error text (its first `x.y.z` token), else 5.0.0.
fn status_of(error: &str) -> String {
    error
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .find(|t| {
            let parts: Vec<&str> = t.split('.').collect();
            parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_string)
        .unwrap_or_else(|| "5.0.0".into())
}

/// The remote server's reply inside an error text ("remote server refused RCPT TO: 550 ..."),
/// for Diagnostic-Code.
fn remote_reply(error: &str) -> Option<&str> {
    let rest = error.split_once("remote server refused ")?.1;
    let reply = rest.split_once(": ")?.1.trim();
    reply
        .get(..3)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .map(|_| reply)
}

/// One line for a header field: no CR, LF or other controls.
fn field(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The header section of a message (up to and including the empty line).
fn header_section(original: &[u8]) -> &[u8] {
    match original.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(p) => &original[..p + 4],
        None => original,
    }
}

/// Builds the report of `kind` for `failed` (the reported) recipients of `msg`, whose stored
/// content is `original`. For success reports a recipient's `last_error` holds the remote reply.
/// `copy_to`: instead of to the sender, the report goes to this address (the postmaster copy of
/// a failed message that had no sender to return it to, itself usually a bounce).
pub(crate) fn build(
    hostname: &str,
    kind: Kind,
    msg: &QueuedMessage,
    failed: &[&QueuedRecipient],
    original: &[u8],
    copy_to: Option<&str>,
) -> Vec<u8> {
    let now = SystemTime::now();
    let e = &msg.envelope;
    let utf8 = e.smtputf8;
    let nonce = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let boundary = format!("{}.{nonce:08x}/{hostname}", msg.id);
    let arrival =
        rfc5322_date(UNIX_EPOCH + std::time::Duration::from_millis(e.received_at.max(0) as u64));
    let mut out = String::new();
    out.push_str(&format!(
        "From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
    ));
    out.push_str(&format!(
        "To: <{}>\r\n",
        field(copy_to.unwrap_or(&e.sender))
    ));
    out.push_str(match kind {
        Kind::Failed if copy_to.is_some() => {
            "Subject: Undeliverable Mail Without a Return Address (postmaster copy)\r\n"
        }
        Kind::Failed => "Subject: Undelivered Mail Returned to Sender\r\n",
        Kind::Delivered | Kind::Relayed => "Subject: Successful Mail Delivery Report\r\n",
        Kind::Delayed => "Subject: Delayed Mail (still being retried)\r\n",
    });
    out.push_str(&format!("Date: {}\r\n", rfc5322_date(now)));
    out.push_str(&format!(
        "Message-ID: <{}.{nonce:08x}.bounce@{hostname}>\r\n",
        msg.id
    ));
    // RFC 3834 §5: automatic replies say so, so that responders do not answer them.
    out.push_str("Auto-Submitted: auto-replied\r\n");
    out.push_str("MIME-Version: 1.0\r\n");
    out.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    out.push_str("This is a MIME-encapsulated message.\r\n\r\n");

    // 1. What happened, for people.
    out.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"));
    out.push_str(&format!("This is the mail system at {hostname}.\r\n\r\n"));
    match kind {
        Kind::Failed if copy_to.is_some() => {
            out.push_str(
                "A message with no return address (a null sender, usually itself a delivery\r\n",
            );
            out.push_str(
                "report) could not be delivered to the recipients below. It cannot be returned,\r\n",
            );
            out.push_str(
                "so this copy goes to the postmaster. The reason for each is given.\r\n\r\n",
            );
        }
        Kind::Failed => {
            out.push_str(
                "Your message could not be delivered to the recipients below, and the mail\r\n",
            );
            out.push_str(
                "system has given up on them. The reason for each is given, with the reply of\r\n",
            );
            out.push_str("the receiving server where there was one.\r\n\r\n");
        }
        Kind::Delivered => {
            out.push_str(
                "Your message was delivered to the mailboxes of the recipients below,\r\n",
            );
            out.push_str("as you asked to be told.\r\n\r\n");
        }
        Kind::Delayed => {
            out.push_str(
                "Your message could not be delivered yet to the recipients below. The mail\r\n",
            );
            out.push_str(
                "system keeps trying; you will hear again only if it gives up. No action is\r\n",
            );
            out.push_str("needed from you.\r\n\r\n");
        }
        Kind::Relayed => {
            out.push_str(
                "Your message was handed to the receiving mail server for the recipients\r\n",
            );
            out.push_str(
                "below. That server does not send delivery reports, so this is the last\r\n",
            );
            out.push_str("report you will get about them.\r\n\r\n");
        }
    }
    for r in failed {
        let why = match (kind, r.last_error.as_deref()) {
            (Kind::Failed, w) => w.unwrap_or("unknown error").to_string(),
            (Kind::Delayed, w) => format!("still trying; last error: {}", w.unwrap_or("none")),
            (Kind::Delivered, _) => "delivered to the mailbox".to_string(),
            (Kind::Relayed, Some(reply)) => format!("relayed; the remote server said: {reply}"),
            (Kind::Relayed, None) => "relayed".to_string(),
        };
        out.push_str(&format!("<{}>: {}\r\n", field(&r.address), field(&why)));
    }
    out.push_str("\r\n");

    // 2. The machine-readable status (RFC 3464 §2).
    let status_type = if utf8 {
        "message/global-delivery-status"
    } else {
        "message/delivery-status"
    };
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: {status_type}\r\n\r\n"
    ));
    out.push_str(&format!("Reporting-MTA: dns; {hostname}\r\n"));
    if let Some(envid) = &e.envid {
        out.push_str(&format!("Original-Envelope-Id: {}\r\n", field(envid)));
    }
    out.push_str(&format!("Arrival-Date: {arrival}\r\n"));
    let addr_type = if utf8 { "utf-8" } else { "rfc822" };
    for r in failed {
        let why = r.last_error.as_deref().unwrap_or("unknown error");
        out.push_str("\r\n");
        if let Some(orcpt) = &r.dsn.orcpt {
            out.push_str(&format!("Original-Recipient: {}\r\n", field(orcpt)));
        }
        out.push_str(&format!(
            "Final-Recipient: {addr_type}; {}\r\n",
            field(&r.address)
        ));
        out.push_str(&format!("Action: {}\r\n", kind.action()));
        match kind {
            Kind::Failed => {
                out.push_str(&format!("Status: {}\r\n", status_of(why)));
                match remote_reply(why) {
                    Some(reply) => {
                        out.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", field(reply)))
                    }
                    None => {
                        out.push_str(&format!("Diagnostic-Code: X-Postrider; {}\r\n", field(why)))
                    }
                }
            }
            Kind::Delivered => out.push_str("Status: 2.0.0\r\n"),
            Kind::Delayed => {
                let status = status_of(why);
                let status = if status.starts_with('4') {
                    status
                } else {
                    "4.0.0".into()
                };
                out.push_str(&format!("Status: {status}\r\n"));
                out.push_str(&format!("Diagnostic-Code: X-Postrider; {}\r\n", field(why)));
            }
            Kind::Relayed => {
                out.push_str("Status: 2.0.0\r\n");
                if let Some(reply) = r.last_error.as_deref() {
                    out.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", field(reply)));
                }
            }
        }
        out.push_str(&format!("Last-Attempt-Date: {}\r\n", rfc5322_date(now)));
    }
    out.push_str("\r\n");

    // 3. The original: whole or headers, as RET asked (RFC 3461 §4.3).
    let full = match e.ret.as_deref() {
        Some("HDRS") => false,
        Some("FULL") => true,
        // Without RET a success report carries the headers only, a bounce the whole message
        // unless it is large.
        _ => kind == Kind::Failed && original.len() <= FULL_RETURN_LIMIT,
    };
    let (ctype, content) = match (full, utf8) {
        (true, false) => ("message/rfc822", original),
        (true, true) => ("message/global", original),
        (false, false) => ("text/rfc822-headers", header_section(original)),
        (false, true) => ("message/global-headers", header_section(original)),
    };
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(format!("--{boundary}\r\nContent-Type: {ctype}\r\n\r\n").as_bytes());
    bytes.extend_from_slice(content);
    if !content.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_and_the_remote_reply_are_found_in_error_texts() {
        assert_eq!(
            status_of("remote server refused RCPT TO: 550 5.1.1 no such user"),
            "5.1.1"
        );
        assert_eq!(
            status_of("5.1.10 example.test does not accept mail"),
            "5.1.10"
        );
        assert_eq!(status_of("4.4.7 gave up after 5 days"), "4.4.7");
        assert_eq!(status_of("something odd"), "5.0.0");
        assert_eq!(
            remote_reply("remote server refused RCPT TO: 550 5.1.1 no such user"),
            Some("550 5.1.1 no such user")
        );
        assert_eq!(remote_reply("5.1.2 domain x does not exist"), None);
    }

    #[test]
    fn header_fields_cannot_be_split_by_error_texts() {
        assert_eq!(field("a\r\nBcc: x"), "a  Bcc: x");
    }
}
