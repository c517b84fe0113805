//! The EHLO reply (RFC 5321 §4.1.1.1) with the capabilities a session offers. What is offered
//! depends on the listener role and the session state (STARTTLS only before TLS, AUTH only where
//! allowed), so the session fills this in and the codec only formats it.

use crate::reply::Reply;

/// Capabilities to advertise. Keywords follow their RFCs: SIZE (1870), 8BITMIME (6152),
/// PIPELINING (2920), SMTPUTF8 (6531), ENHANCEDSTATUSCODES (2034), STARTTLS (3207),
/// AUTH (4954), CHUNKING (3030), DSN (3461).
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    /// SIZE with the maximum message size in octets (0 means no fixed limit).
    pub size: Option<u64>,
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub enhanced_status_codes: bool,
    pub starttls: bool,
    /// SASL mechanisms to list after AUTH; empty means AUTH is not offered.
    pub auth: Vec<&'static str>,
    pub chunking: bool,
    pub dsn: bool,
}

impl Capabilities {
    /// The 250 multi-line reply: `<hostname> Hello <client>` then one keyword per line.
    pub fn reply(&self, hostname: &str, client_domain: &str) -> Reply {
        let mut lines = vec![format!("{hostname} Hello {client_domain}")];
        if self.pipelining {
            lines.push("PIPELINING".into());
        }
        if let Some(size) = self.size {
            lines.push(format!("SIZE {size}"));
        }
        if self.eight_bit_mime {
            lines.push("8BITMIME".into());
        }
        if self.smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if self.enhanced_status_codes {
            lines.push("ENHANCEDSTATUSCODES".into());
        }
        if self.starttls {
            lines.push("STARTTLS".into());
        }
        if !self.auth.is_empty() {
            lines.push(format!("AUTH {}", self.auth.join(" ")));
        }
        if self.chunking {
            lines.push("CHUNKING".into());
        }
        if self.dsn {
            lines.push("DSN".into());
        }
        Reply {
            code: 250,
            enhanced: None,
            text: lines.join("\n").into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehlo_lists_each_offered_keyword_once_in_a_multiline_reply() {
        let caps = Capabilities {
            size: Some(1000),
            pipelining: true,
            starttls: true,
            auth: vec!["PLAIN", "LOGIN"],
            ..Default::default()
        };
        assert_eq!(
            caps.reply("mx.test", "client.test").to_wire(),
            "250-mx.test Hello client.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n\
             250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
        );
    }
}
