//! Client commands (RFC 5321 §4.1.1), encoded with CRLF, with the ESMTP parameters of
//! MAIL (RFC 1870, 6152, 3030, 6531, 3461, 4954) and RCPT (RFC 3461).
//!
//! Arguments are written as given, except that ASCII control characters (CR and LF among them)
//! are replaced by `?`: an argument can never end the command line and start another
//! (command injection). Checking addresses and parameter values is the caller's business (they
//! come from our own queue, checked on the way in).

use std::fmt::Write as _;

use crate::params::{Body, Notify, Ret};

/// MAIL FROM with its parameters (RFC 5321 §4.1.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailFrom<'a> {
    /// The reverse path without angle brackets, in SMTP form (e.g. `user@example.com`, a quoted
    /// local part quoted); `""` for the null path `<>` of bounces.
    pub address: &'a str,
    /// `SIZE=` (RFC 1870 §3): the message size in octets.
    pub size: Option<u64>,
    /// `BODY=` (RFC 6152 §2, RFC 3030 §3).
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531 §3.4).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4), given decoded and xtext-encoded on output.
    pub envid: Option<&'a str>,
    /// `AUTH=` (RFC 4954 §5): the authenticated submitter, given decoded and xtext-encoded on
    /// output; `"<>"` when unknown.
    pub auth: Option<&'a str>,
}

/// RCPT TO with its parameters (RFC 5321 §4.1.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RcptTo<'a> {
    /// The forward path without angle brackets, in SMTP form.
    pub address: &'a str,
    /// `NOTIFY=` (RFC 3461 §4.1). `never` wins over the other flags; with no flag set the
    /// parameter is left out.
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461 §4.2): address type and original recipient, given decoded. The
    /// address is xtext-encoded on output, or for the `utf-8` type written as
    /// `utf-8-addr-xtext` (RFC 6533 §3), which is 7-bit and safe without SMTPUTF8.
    pub orcpt: Option<(&'a str, &'a str)>,
}

/// Finishes a command line: control characters replaced (see the module documentation), CRLF
/// appended (RFC 5321 §2.3.8).
fn line(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 2);
    // Control octets never occur inside a multi-octet UTF-8 sequence, so this keeps UTF-8 intact.
    out.extend(
        text.bytes()
            .map(|b| if b < 0x20 || b == 0x7f { b'?' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
    out
}

/// `EHLO domain` (RFC 5321 §4.1.1.1).
pub fn ehlo(domain: &str) -> Vec<u8> {
    line(&format!("EHLO {domain}"))
}

/// `HELO domain` (RFC 5321 §4.1.1.1), for servers that refuse EHLO.
pub fn helo(domain: &str) -> Vec<u8> {
    line(&format!("HELO {domain}"))
}

/// `MAIL FROM:<address>` with the parameters that are set, in a fixed order.
pub fn mail_from(m: &MailFrom) -> Vec<u8> {
    let mut s = format!("MAIL FROM:<{}>", m.address);
    if let Some(size) = m.size {
        let _ = write!(s, " SIZE={size}");
    }
    if let Some(body) = m.body {
        s.push_str(match body {
            Body::SevenBit => " BODY=7BIT",
            Body::EightBitMime => " BODY=8BITMIME",
            Body::BinaryMime => " BODY=BINARYMIME",
        });
    }
    if m.smtputf8 {
        s.push_str(" SMTPUTF8");
    }
    if let Some(ret) = m.ret {
        s.push_str(match ret {
            Ret::Full => " RET=FULL",
            Ret::Hdrs => " RET=HDRS",
        });
    }
    if let Some(envid) = m.envid {
        let _ = write!(s, " ENVID={}", crate::xtext::encode(envid));
    }
    if let Some(auth) = m.auth {
        // `<>` is itself valid xtext and encodes to itself.
        let _ = write!(s, " AUTH={}", crate::xtext::encode(auth));
    }
    line(&s)
}

/// `RCPT TO:<address>` with the parameters that are set.
pub fn rcpt_to(r: &RcptTo) -> Vec<u8> {
    let mut s = format!("RCPT TO:<{}>", r.address);
    if let Some(notify) = r.notify {
        // RFC 3461 §4.1: `NEVER` or a comma-separated list of SUCCESS, FAILURE, DELAY.
        let flags: Vec<&str> = if notify.never {
            vec!["NEVER"]
        } else {
            [
                (notify.success, "SUCCESS"),
                (notify.failure, "FAILURE"),
                (notify.delay, "DELAY"),
            ]
            .into_iter()
            .filter_map(|(set, name)| set.then_some(name))
            .collect()
        };
        if !flags.is_empty() {
            let _ = write!(s, " NOTIFY={}", flags.join(","));
        }
    }
    if let Some((addr_type, address)) = r.orcpt {
        // RFC 3461 §4.2: `ORCPT=addr-type ";" xtext`; RFC 6533 §3 for `utf-8`.
        let encoded = if addr_type.eq_ignore_ascii_case("utf-8") {
            utf8_addr_xtext(address)
        } else {
            crate::xtext::encode(address)
        };
        let _ = write!(s, " ORCPT={addr_type};{encoded}");
    }
    line(&s)
}

/// `utf-8-addr-xtext` (RFC 6533 §3): `QCHAR` (printable ASCII except `\`, `+`, `=`) as is,
/// every other character as `EmbeddedUnicodeChar`, `\x{HEX}` with upper-case hex digits and no
/// leading zeros beyond two digits (e.g. `\x{20}`, `\x{E9}`, `\x{10348}`).
fn utf8_addr_xtext(address: &str) -> String {
    let mut out = String::with_capacity(address.len());
    for c in address.chars() {
        if matches!(c, '!'..='~') && !matches!(c, '\\' | '+' | '=') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:02X}}}", u32::from(c));
        }
    }
    out
}

/// `DATA` (RFC 5321 §4.1.1.4).
pub fn data() -> Vec<u8> {
    b"DATA\r\n".to_vec()
}

/// `BDAT size [LAST]` (RFC 3030 §2).
pub fn bdat(size: u64, last: bool) -> Vec<u8> {
    if last {
        line(&format!("BDAT {size} LAST"))
    } else {
        line(&format!("BDAT {size}"))
    }
}

/// `RSET` (RFC 5321 §4.1.1.5).
pub fn rset() -> Vec<u8> {
    b"RSET\r\n".to_vec()
}

/// `QUIT` (RFC 5321 §4.1.1.10).
pub fn quit() -> Vec<u8> {
    b"QUIT\r\n".to_vec()
}

/// `STARTTLS` (RFC 3207 §4).
pub fn starttls() -> Vec<u8> {
    b"STARTTLS\r\n".to_vec()
}

/// `NOOP` (RFC 5321 §4.1.1.9).
pub fn noop() -> Vec<u8> {
    b"NOOP\r\n".to_vec()
}

/// `AUTH mechanism [initial-response]` (RFC 4954 §4). The initial response is already base64;
/// an empty one is sent as `=`, as RFC 4954 §4 requires.
pub fn auth(mechanism: &str, initial_response: Option<&str>) -> Vec<u8> {
    match initial_response {
        None => line(&format!("AUTH {mechanism}")),
        Some("") => line(&format!("AUTH {mechanism} =")),
        Some(response) => line(&format!("AUTH {mechanism} {response}")),
    }
}

/// The AUTH PLAIN initial response (RFC 4616 §2): base64 of `NUL user NUL password`, without
/// an authorization identity.
pub fn auth_plain_response(user: &str, password: &str) -> String {
    let mut message = Vec::with_capacity(user.len() + password.len() + 2);
    message.push(0);
    message.extend_from_slice(user.as_bytes());
    message.push(0);
    message.extend_from_slice(password.as_bytes());
    base64_encode(&message)
}

/// Base64 with padding (RFC 4648 §4), as SASL in SMTP uses it (RFC 4954 §4).
pub fn base64_encode(input: &[u8]) -> String {
    // The alphabet of RFC 4648 §4, Table 1, computed rather than indexed.
    let sextet = |n: u32, shift: u32| {
        // Six bits: always below 64.
        let v = ((n >> shift) & 0x3f) as u8;
        char::from(match v {
            0..=25 => b'A' + v,
            26..=51 => b'a' + (v - 26),
            52..=61 => b'0' + (v - 52),
            62 => b'+',
            _ => b'/',
        })
    };
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    let mut chunks = input.chunks_exact(3);
    for chunk in &mut chunks {
        let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b));
        for shift in [18, 12, 6, 0] {
            out.push(sextet(n, shift));
        }
    }
    match *chunks.remainder() {
        [a] => {
            let n = u32::from(a) << 16;
            out.push(sextet(n, 18));
            out.push(sextet(n, 12));
            out.push_str("==");
        }
        [a, b] => {
            let n = (u32::from(a) << 16) | (u32::from(b) << 8);
            out.push(sextet(n, 18));
            out.push(sextet(n, 12));
            out.push(sextet(n, 6));
            out.push('=');
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{ForwardPath, ReversePath};
    use crate::command::{Command, parse_command};
    use crate::params::{MailParams, Orcpt, RcptParams};

    fn s(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn commands_encode_according_to_the_table() {
        let notify = |never, success, failure, delay| {
            Some(Notify {
                never,
                success,
                failure,
                delay,
            })
        };
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (ehlo("relay.example"), "EHLO relay.example\r\n"),
            (ehlo("[192.0.2.1]"), "EHLO [192.0.2.1]\r\n"),
            (helo("relay.example"), "HELO relay.example\r\n"),
            (data(), "DATA\r\n"),
            (bdat(0, true), "BDAT 0 LAST\r\n"),
            (bdat(65536, false), "BDAT 65536\r\n"),
            (bdat(u64::MAX, true), "BDAT 18446744073709551615 LAST\r\n"),
            (rset(), "RSET\r\n"),
            (quit(), "QUIT\r\n"),
            (starttls(), "STARTTLS\r\n"),
            (noop(), "NOOP\r\n"),
            (auth("PLAIN", None), "AUTH PLAIN\r\n"),
            (auth("PLAIN", Some("")), "AUTH PLAIN =\r\n"),
            (
                auth("PLAIN", Some("AHVzZXIAcGFzcw==")),
                "AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
            ),
            (mail_from(&MailFrom::default()), "MAIL FROM:<>\r\n"),
            (
                mail_from(&MailFrom {
                    address: "a@b.example",
                    ..Default::default()
                }),
                "MAIL FROM:<a@b.example>\r\n",
            ),
            (
                mail_from(&MailFrom {
                    address: "a@b",
                    size: Some(1234),
                    body: Some(Body::EightBitMime),
                    smtputf8: true,
                    ret: Some(Ret::Hdrs),
                    envid: Some("QQ+1=2 x"),
                    auth: Some("<>"),
                }),
                "MAIL FROM:<a@b> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS \
                 ENVID=QQ+2B1+3D2+20x AUTH=<>\r\n",
            ),
            (
                mail_from(&MailFrom {
                    address: "\"a b\"@b",
                    body: Some(Body::SevenBit),
                    ret: Some(Ret::Full),
                    auth: Some("user+tag@b"),
                    ..Default::default()
                }),
                "MAIL FROM:<\"a b\"@b> BODY=7BIT RET=FULL AUTH=user+2Btag@b\r\n",
            ),
            (
                mail_from(&MailFrom {
                    address: "ü@bücher.de",
                    body: Some(Body::BinaryMime),
                    smtputf8: true,
                    ..Default::default()
                }),
                "MAIL FROM:<ü@bücher.de> BODY=BINARYMIME SMTPUTF8\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    ..Default::default()
                }),
                "RCPT TO:<c@d>\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    notify: notify(true, false, false, false),
                    orcpt: Some(("rfc822", "c+x=y@d")),
                }),
                "RCPT TO:<c@d> NOTIFY=NEVER ORCPT=rfc822;c+2Bx+3Dy@d\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    notify: notify(false, true, true, true),
                    orcpt: None,
                }),
                "RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE,DELAY\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    notify: notify(false, false, true, true),
                    orcpt: None,
                }),
                "RCPT TO:<c@d> NOTIFY=FAILURE,DELAY\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    notify: notify(true, true, false, false),
                    orcpt: None,
                }),
                "RCPT TO:<c@d> NOTIFY=NEVER\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "c@d",
                    notify: notify(false, false, false, false),
                    orcpt: None,
                }),
                "RCPT TO:<c@d>\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "ü@bücher.de",
                    notify: None,
                    orcpt: Some(("utf-8", "ü+x=\\ y@bücher.de")),
                }),
                "RCPT TO:<ü@bücher.de> ORCPT=utf-8;\\x{FC}\\x{2B}x\\x{3D}\\x{5C}\\x{20}y@\
                 b\\x{FC}cher.de\r\n",
            ),
            (
                rcpt_to(&RcptTo {
                    address: "x@y",
                    notify: None,
                    orcpt: Some(("UTF-8", "𝄞@y")),
                }),
                "RCPT TO:<x@y> ORCPT=UTF-8;\\x{1D11E}@y\r\n",
            ),
        ];
        for (got, want) in cases {
            assert_eq!(s(got), want);
        }
    }

    #[test]
    fn control_characters_in_arguments_cannot_inject_commands() {
        assert_eq!(s(ehlo("a\r\nRSET")), "EHLO a??RSET\r\n");
        assert_eq!(
            s(mail_from(&MailFrom {
                address: "a@b>\r\nRCPT TO:<evil@x",
                ..Default::default()
            })),
            "MAIL FROM:<a@b>??RCPT TO:<evil@x>\r\n"
        );
        assert_eq!(
            s(rcpt_to(&RcptTo {
                address: "c@d\n",
                notify: None,
                orcpt: Some(("rfc822\r", "x")),
            })),
            "RCPT TO:<c@d?> ORCPT=rfc822?;x\r\n"
        );
        assert_eq!(s(auth("PLAIN\n", Some("\0x\x7f"))), "AUTH PLAIN? ?x?\r\n");
        // ENVID and ORCPT values are xtext-encoded, so their controls are escapes, not '?'.
        assert_eq!(
            s(mail_from(&MailFrom {
                envid: Some("a\r\nb"),
                ..Default::default()
            })),
            "MAIL FROM:<> ENVID=a+0D+0Ab\r\n"
        );
        for command in [
            ehlo("\r\n\r\n"),
            helo("\n"),
            auth("\r", Some("\n")),
            rcpt_to(&RcptTo {
                address: "\r",
                notify: None,
                orcpt: Some(("\n", "\r")),
            }),
        ] {
            assert_eq!(
                command
                    .iter()
                    .filter(|&&b| b == b'\r' || b == b'\n')
                    .count(),
                2
            );
            assert!(command.ends_with(b"\r\n"));
        }
    }

    #[test]
    fn encoded_mail_and_rcpt_parse_back_with_our_server_parser() {
        let line = mail_from(&MailFrom {
            address: "user@example.com",
            size: Some(99),
            body: Some(Body::EightBitMime),
            smtputf8: true,
            ret: Some(Ret::Full),
            envid: Some("id+1=2"),
            auth: Some("sub mitter@x"),
        });
        let line = line.strip_suffix(b"\r\n").unwrap();
        match parse_command(line) {
            Ok(Command::Mail {
                from: ReversePath::Address(a),
                params,
            }) => {
                assert_eq!(a.to_string(), "user@example.com");
                assert_eq!(
                    params,
                    MailParams {
                        size: Some(99),
                        body: Some(Body::EightBitMime),
                        smtputf8: true,
                        ret: Some(Ret::Full),
                        envid: Some("id+1=2".into()),
                        auth: Some("sub mitter@x".into()),
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let line = rcpt_to(&RcptTo {
            address: "Postmaster",
            notify: Some(Notify {
                success: true,
                delay: true,
                ..Default::default()
            }),
            orcpt: Some(("rfc822", "a+b@c")),
        });
        let line = line.strip_suffix(b"\r\n").unwrap();
        assert_eq!(
            parse_command(line),
            Ok(Command::Rcpt {
                to: ForwardPath::Postmaster,
                params: RcptParams {
                    notify: Some(Notify {
                        success: true,
                        delay: true,
                        ..Default::default()
                    }),
                    orcpt: Some(Orcpt {
                        addr_type: "rfc822".into(),
                        address: "a+b@c".into(),
                    }),
                },
            })
        );
    }

    #[test]
    fn base64_follows_the_rfc_4648_test_vectors() {
        // RFC 4648 §10.
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, want) in cases {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }

    #[test]
    fn auth_plain_response_is_base64_of_nul_user_nul_password() {
        assert_eq!(auth_plain_response("user", "pass"), "AHVzZXIAcGFzcw==");
        assert_eq!(
            auth_plain_response("tim", "tanstaaftanstaaf"),
            "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
        );
        assert_eq!(auth_plain_response("", ""), "AAA=");
        assert_eq!(auth_plain_response("ü", "p"), "AMO8AHA=");
    }
}
