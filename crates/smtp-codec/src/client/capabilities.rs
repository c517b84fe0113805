//! What a remote server offers in its EHLO reply (RFC 5321 §4.1.1.1).
//!
//! ```text
//! ehlo-ok-rsp = ( "250" SP Domain [ SP ehlo-greet ] CRLF )
//!             / ( "250-" Domain [ SP ehlo-greet ] CRLF
//!                 *( "250-" ehlo-line CRLF )
//!                 "250" SP ehlo-line CRLF )
//! ehlo-line   = ehlo-keyword *( SP ehlo-param )
//! ```

use super::reply::ServerReply;

/// The most SASL mechanisms kept from AUTH lines; further ones are ignored, which bounds the
/// work a hostile server can cause.
const MAX_AUTH_MECHANISMS: usize = 32;

/// What a server offers in its EHLO reply. Keywords follow their RFCs: SIZE (1870),
/// PIPELINING (2920), 8BITMIME (6152), SMTPUTF8 (6531), STARTTLS (3207), CHUNKING and
/// BINARYMIME (3030), DSN (3461), ENHANCEDSTATUSCODES (2034), AUTH (4954).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCapabilities {
    /// `None` when SIZE is not advertised; `Some(0)` when it is advertised without a limit
    /// (`SIZE`, `SIZE 0`, or a value that is not a number of at most 20 digits fitting in 64
    /// bits, RFC 1870 §4); otherwise the fixed maximum message size in octets.
    pub size: Option<u64>,
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub starttls: bool,
    pub chunking: bool,
    pub dsn: bool,
    pub enhanced_status_codes: bool,
    pub binary_mime: bool,
    /// SASL mechanisms, upper-cased, each once, in the order offered; from `AUTH PLAIN LOGIN`
    /// and from the obsolete `AUTH=PLAIN LOGIN` form some servers send as well. Names that are
    /// not valid SASL mechanism names (RFC 4422 §3.1) are left out.
    pub auth: Vec<String>,
}

/// Reads the capabilities from an EHLO reply. Keywords are case-insensitive (RFC 5321 §2.4);
/// the first line is the greeting/domain and is skipped; unknown keywords are ignored. A reply
/// other than 250 offers nothing (RFC 5321 §4.1.1.1: `ehlo-ok-rsp` is 250), and neither does a
/// HELO reply (one line).
///
/// When a keyword is repeated, the first SIZE counts; AUTH lines add up.
pub fn parse_ehlo(reply: &ServerReply) -> ServerCapabilities {
    let mut caps = ServerCapabilities::default();
    if reply.code != 250 {
        return caps;
    }
    for line in reply.lines.iter().skip(1) {
        // RFC 5321 §4.1.1.1 separates with SP; TABs are tolerated as well.
        let mut words = line.split_ascii_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        let is = |name: &str| keyword.eq_ignore_ascii_case(name);
        if is("SIZE") {
            // RFC 1870 §4: `"SIZE" [SP number]`; 0 or no number means no fixed maximum.
            if caps.size.is_none() {
                caps.size = Some(
                    words
                        .next()
                        .and_then(crate::params::parse_size)
                        .unwrap_or(0),
                );
            }
        } else if is("PIPELINING") {
            caps.pipelining = true;
        } else if is("8BITMIME") {
            caps.eight_bit_mime = true;
        } else if is("SMTPUTF8") {
            caps.smtputf8 = true;
        } else if is("STARTTLS") {
            caps.starttls = true;
        } else if is("CHUNKING") {
            caps.chunking = true;
        } else if is("DSN") {
            caps.dsn = true;
        } else if is("ENHANCEDSTATUSCODES") {
            caps.enhanced_status_codes = true;
        } else if is("BINARYMIME") {
            caps.binary_mime = true;
        } else if is("AUTH") {
            // RFC 4954 §3: `"AUTH" 1*(SP sasl-mech)`.
            add_mechanisms(&mut caps.auth, words);
        } else if let Some(first) = strip_prefix_ignore_case(keyword, "AUTH=") {
            // The obsolete form of pre-standard clients, e.g. `AUTH=PLAIN LOGIN` (still sent by
            // servers configured for them, usually next to the standard line).
            add_mechanisms(&mut caps.auth, std::iter::once(first).chain(words));
        }
    }
    caps
}

/// Adds mechanism names, upper-cased, skipping repeats and invalid names, up to
/// [`MAX_AUTH_MECHANISMS`].
fn add_mechanisms<'a>(auth: &mut Vec<String>, names: impl Iterator<Item = &'a str>) {
    for name in names {
        if auth.len() >= MAX_AUTH_MECHANISMS {
            return;
        }
        let name = name.to_ascii_uppercase();
        if is_sasl_mech(&name) && !auth.contains(&name) {
            auth.push(name);
        }
    }
}

/// RFC 4422 §3.1: `sasl-mech = 1*20mech-char`, `mech-char = UPPER-ALPHA / DIGIT / HYPHEN /
/// UNDERSCORE` (checked after upper-casing).
fn is_sasl_mech(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Strips a case-insensitive ASCII prefix.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::parse_reply;

    fn caps_of(wire: &str) -> ServerCapabilities {
        let (reply, consumed) = parse_reply(wire.as_bytes()).unwrap().unwrap();
        assert_eq!(consumed, wire.len());
        parse_ehlo(&reply)
    }

    fn ehlo_reply(keywords: &[&str]) -> String {
        let mut wire = String::from("250");
        wire.push(if keywords.is_empty() { ' ' } else { '-' });
        wire.push_str("mx.example Hello client.example\r\n");
        for (i, k) in keywords.iter().enumerate() {
            let sep = if i + 1 == keywords.len() { ' ' } else { '-' };
            wire.push_str(&format!("250{sep}{k}\r\n"));
        }
        wire
    }

    #[test]
    fn ehlo_capabilities_follow_the_table() {
        let none = ServerCapabilities::default();
        let with = |f: fn(&mut ServerCapabilities)| {
            let mut caps = ServerCapabilities::default();
            f(&mut caps);
            caps
        };
        let auth = |names: &[&str]| ServerCapabilities {
            auth: names.iter().map(|n| n.to_string()).collect(),
            ..Default::default()
        };
        let cases: Vec<(Vec<&str>, ServerCapabilities)> = vec![
            (vec![], none.clone()),
            (vec!["PIPELINING"], with(|c| c.pipelining = true)),
            (vec!["pipelining"], with(|c| c.pipelining = true)),
            (vec!["8BITMIME"], with(|c| c.eight_bit_mime = true)),
            (vec!["SMTPUTF8"], with(|c| c.smtputf8 = true)),
            (vec!["StartTLS"], with(|c| c.starttls = true)),
            (vec!["CHUNKING"], with(|c| c.chunking = true)),
            (vec!["DSN"], with(|c| c.dsn = true)),
            (
                vec!["ENHANCEDSTATUSCODES"],
                with(|c| c.enhanced_status_codes = true),
            ),
            (vec!["BINARYMIME"], with(|c| c.binary_mime = true)),
            // SIZE variants (RFC 1870 §4).
            (vec!["SIZE 35882577"], with(|c| c.size = Some(35_882_577))),
            (vec!["size 10"], with(|c| c.size = Some(10))),
            (vec!["SIZE"], with(|c| c.size = Some(0))),
            (vec!["SIZE 0"], with(|c| c.size = Some(0))),
            (vec!["SIZE  \t 20"], with(|c| c.size = Some(20))),
            (vec!["SIZE 10k"], with(|c| c.size = Some(0))),
            (vec!["SIZE -1"], with(|c| c.size = Some(0))),
            (
                vec!["SIZE 18446744073709551616"],
                with(|c| c.size = Some(0)),
            ),
            (vec!["SIZE 5", "SIZE 6"], with(|c| c.size = Some(5))),
            (vec!["SIZE=10"], none.clone()),
            // AUTH, standard and obsolete forms.
            (vec!["AUTH PLAIN LOGIN"], auth(&["PLAIN", "LOGIN"])),
            (vec!["auth plain cram-md5"], auth(&["PLAIN", "CRAM-MD5"])),
            (vec!["AUTH=PLAIN LOGIN"], auth(&["PLAIN", "LOGIN"])),
            (vec!["auth=login"], auth(&["LOGIN"])),
            (
                vec!["AUTH PLAIN LOGIN", "AUTH=PLAIN LOGIN XOAUTH2"],
                auth(&["PLAIN", "LOGIN", "XOAUTH2"]),
            ),
            (vec!["AUTH"], none.clone()),
            (vec!["AUTH="], none.clone()),
            (
                vec!["AUTH PLAIN ÜBER a.b SCRAM-SHA-256-PLUS"],
                auth(&["PLAIN", "SCRAM-SHA-256-PLUS"]),
            ),
            (vec!["AUTH A23456789012345678901 GSSAPI"], auth(&["GSSAPI"])),
            // Unknown keywords and odd lines are ignored.
            (vec!["X-EXPS GSSAPI NTLM", "VRFY", "ETRN", ""], none.clone()),
            (vec!["PIPELINING-X", "XPIPELINING"], none.clone()),
            (vec!["  DSN"], with(|c| c.dsn = true)),
            (
                vec![
                    "PIPELINING",
                    "SIZE 52428800",
                    "ETRN",
                    "STARTTLS",
                    "AUTH PLAIN LOGIN",
                    "AUTH=PLAIN LOGIN",
                    "ENHANCEDSTATUSCODES",
                    "8BITMIME",
                    "DSN",
                    "SMTPUTF8",
                    "CHUNKING",
                ],
                ServerCapabilities {
                    size: Some(52_428_800),
                    pipelining: true,
                    eight_bit_mime: true,
                    smtputf8: true,
                    starttls: true,
                    chunking: true,
                    dsn: true,
                    enhanced_status_codes: true,
                    binary_mime: false,
                    auth: vec!["PLAIN".into(), "LOGIN".into()],
                },
            ),
        ];
        for (keywords, want) in cases {
            assert_eq!(caps_of(&ehlo_reply(&keywords)), want, "{keywords:?}");
        }
    }

    #[test]
    fn the_greeting_line_is_not_a_keyword() {
        assert_eq!(
            caps_of("250-PIPELINING\r\n250 DSN\r\n"),
            ServerCapabilities {
                dsn: true,
                ..Default::default()
            }
        );
        assert_eq!(caps_of("250 STARTTLS\r\n"), ServerCapabilities::default());
    }

    #[test]
    fn a_refused_ehlo_offers_nothing() {
        assert_eq!(
            caps_of("502-5.5.1 no\r\n502 PIPELINING\r\n"),
            ServerCapabilities::default()
        );
        assert_eq!(
            caps_of("421-x\r\n421 STARTTLS\r\n"),
            ServerCapabilities::default()
        );
    }

    #[test]
    fn our_own_ehlo_reply_reads_back() {
        let offered = crate::ehlo::Capabilities {
            size: Some(1000),
            pipelining: true,
            eight_bit_mime: true,
            smtputf8: true,
            enhanced_status_codes: true,
            starttls: true,
            auth: vec!["PLAIN", "LOGIN"],
            chunking: true,
            dsn: true,
        };
        let wire = offered.reply("mx.test", "client.test").to_wire();
        let caps = caps_of(&wire);
        assert_eq!(
            caps,
            ServerCapabilities {
                size: Some(1000),
                pipelining: true,
                eight_bit_mime: true,
                smtputf8: true,
                starttls: true,
                chunking: true,
                dsn: true,
                enhanced_status_codes: true,
                binary_mime: false,
                auth: vec!["PLAIN".into(), "LOGIN".into()],
            }
        );
    }

    #[test]
    fn auth_mechanisms_are_bounded() {
        let names: Vec<String> = (0..100).map(|i| format!("M{i}")).collect();
        let line = format!("AUTH {}", names.join(" "));
        let caps = caps_of(&ehlo_reply(&[&line, &line]));
        assert_eq!(caps.auth.len(), MAX_AUTH_MECHANISMS);
        assert_eq!(caps.auth, names[..MAX_AUTH_MECHANISMS]);
    }
}
