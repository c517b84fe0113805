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
    Ehlo {
        domain: String,
    },
    Helo {
        domain: String,
    },
    Mail {
        from: ReversePath,
        params: MailParams,
    },
    Rcpt {
        to: ForwardPath,
        params: RcptParams,
    },
    Data,
    /// `BDAT chunk-size [LAST]` (RFC 3030 §2).
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    /// NOOP; its optional argument is ignored.
    Noop,
    Quit,
    /// VRFY with its argument (answered 252 by policy).
    Vrfy {
        arg: String,
    },
    /// EXPN with its argument (refused by policy).
    Expn {
        arg: String,
    },
    /// HELP with an optional topic.
    Help {
        topic: Option<String>,
    },
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954 §4). The mechanism is upper-cased; the
    /// initial response is kept as sent (base64 or `=`).
    Auth {
        mechanism: String,
        initial_response: Option<String>,
    },
}

/// Why a command line was refused. Each variant maps to one reply-table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// The verb is not a command we know (500 5.5.1).
    Unrecognized,
    /// The verb is known, its arguments are malformed; the text says what was expected,
    /// e.g. `"Syntax: MAIL FROM:<address>"` (501 5.5.4).
    Syntax(&'static str),
    /// The path did not parse as an address (501 5.1.7 for MAIL, 501 5.1.3 for RCPT).
    BadAddress(crate::address::AddressError),
    /// An ESMTP parameter we do not support (555 5.5.4).
    UnknownParameter(String),
    /// A supported parameter with a malformed or repeated value (501 5.5.4); the text names it.
    BadParameter(&'static str),
    /// Bytes that are not valid UTF-8, or a control character such as NUL, in the verb or in
    /// a line whose verb is unknown (500 5.5.2).
    InvalidBytes,
    /// The same in the arguments of a known command, e.g. a NUL or a Latin-1 octet in an
    /// address (501 5.5.4: RFC 5321 §4.2.2 "syntax error in parameters or arguments").
    InvalidArgumentBytes,
}

/// The verbs [`parse_command`] knows, for telling a bad argument from a bad command.
const VERBS: [&str; 14] = [
    "EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP",
    "STARTTLS", "AUTH",
];

/// Parses one command line (without its CRLF).
///
/// The line must be UTF-8 (RFC 6531 §3.3 allows UTF-8 in addresses and parameters) without
/// control characters other than TAB. Trailing spaces and TABs are ignored, and so are extra
/// spaces between the verb and its argument.
pub fn parse_command(line: &[u8]) -> Result<Command, CommandError> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(invalid_bytes(line));
    };
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(invalid_bytes(line));
    }
    let line = text;
    let line = line.trim_end_matches([' ', '\t']);
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, arg.trim_start_matches(' ')),
        None => (line, ""),
    };
    let is = |name: &str| verb.eq_ignore_ascii_case(name);
    if is("EHLO") || is("HELO") {
        // RFC 5321 §4.1.1.1: EHLO SP ( Domain / address-literal ). Checked by policy, not here.
        let ehlo = is("EHLO");
        if arg.is_empty() {
            return Err(CommandError::Syntax(if ehlo {
                "Syntax: EHLO hostname"
            } else {
                "Syntax: HELO hostname"
            }));
        }
        let domain = arg.to_string();
        Ok(if ehlo {
            Command::Ehlo { domain }
        } else {
            Command::Helo { domain }
        })
    } else if is("MAIL") {
        parse_mail(arg)
    } else if is("RCPT") {
        parse_rcpt(arg)
    } else if is("DATA") {
        no_arg(arg, Command::Data, "Syntax: DATA")
    } else if is("BDAT") {
        parse_bdat(arg)
    } else if is("RSET") {
        no_arg(arg, Command::Rset, "Syntax: RSET")
    } else if is("NOOP") {
        // RFC 5321 §4.1.1.9: the argument, if any, has no meaning.
        Ok(Command::Noop)
    } else if is("QUIT") {
        no_arg(arg, Command::Quit, "Syntax: QUIT")
    } else if is("VRFY") {
        required_arg(arg, "Syntax: VRFY address").map(|arg| Command::Vrfy { arg })
    } else if is("EXPN") {
        required_arg(arg, "Syntax: EXPN mailing-list").map(|arg| Command::Expn { arg })
    } else if is("HELP") {
        Ok(Command::Help {
            topic: (!arg.is_empty()).then(|| arg.to_string()),
        })
    } else if is("STARTTLS") {
        // RFC 3207 §4: STARTTLS takes no parameters.
        no_arg(arg, Command::StartTls, "Syntax: STARTTLS")
    } else if is("AUTH") {
        parse_auth(arg)
    } else {
        Err(CommandError::Unrecognized)
    }
}

/// Which error a line with invalid bytes gets: [`CommandError::InvalidArgumentBytes`] when it
/// starts with a known verb and a space (the bad bytes are then in the arguments), else
/// [`CommandError::InvalidBytes`].
fn invalid_bytes(line: &[u8]) -> CommandError {
    let verb_end = line.iter().position(|&b| b == b' ');
    let known = verb_end
        .and_then(|end| line.get(..end))
        .is_some_and(|verb| {
            VERBS
                .iter()
                .any(|v| verb.eq_ignore_ascii_case(v.as_bytes()))
        });
    if known {
        CommandError::InvalidArgumentBytes
    } else {
        CommandError::InvalidBytes
    }
}

fn no_arg(arg: &str, command: Command, syntax: &'static str) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(command)
    } else {
        Err(CommandError::Syntax(syntax))
    }
}

fn required_arg(arg: &str, syntax: &'static str) -> Result<String, CommandError> {
    if arg.is_empty() {
        Err(CommandError::Syntax(syntax))
    } else {
        Ok(arg.to_string())
    }
}

/// Strips a case-insensitive prefix such as `FROM:`.
fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// RFC 5321 §4.1.1.2: `MAIL FROM:<reverse-path> [SP Mail-parameters]`.
fn parse_mail(arg: &str) -> Result<Command, CommandError> {
    const SYNTAX: CommandError = CommandError::Syntax("Syntax: MAIL FROM:<address>");
    let path = strip_prefix_ignore_case(arg, "FROM:").ok_or(SYNTAX)?;
    if path.trim_start_matches(' ').is_empty() {
        return Err(SYNTAX);
    }
    let (from, rest) =
        crate::address::parse_reverse_path(path).map_err(CommandError::BadAddress)?;
    let params = crate::params::parse_mail_params(rest)?;
    Ok(Command::Mail { from, params })
}

/// RFC 5321 §4.1.1.3: `RCPT TO:<forward-path> [SP Rcpt-parameters]`.
fn parse_rcpt(arg: &str) -> Result<Command, CommandError> {
    const SYNTAX: CommandError = CommandError::Syntax("Syntax: RCPT TO:<address>");
    let path = strip_prefix_ignore_case(arg, "TO:").ok_or(SYNTAX)?;
    if path.trim_start_matches(' ').is_empty() {
        return Err(SYNTAX);
    }
    let (to, rest) = crate::address::parse_forward_path(path).map_err(CommandError::BadAddress)?;
    let params = crate::params::parse_rcpt_params(rest)?;
    Ok(Command::Rcpt { to, params })
}

/// RFC 3030 §2: `BDAT SP chunk-size [SP end-marker]`, `end-marker = "LAST"`.
fn parse_bdat(arg: &str) -> Result<Command, CommandError> {
    const SYNTAX: CommandError = CommandError::Syntax("Syntax: BDAT size [LAST]");
    let mut tokens = arg.split(' ').filter(|t| !t.is_empty());
    let size = tokens
        .next()
        .and_then(crate::params::parse_size)
        .ok_or(SYNTAX)?;
    let last = match tokens.next() {
        None => false,
        Some(t) if t.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(SYNTAX),
    };
    if tokens.next().is_some() {
        return Err(SYNTAX);
    }
    Ok(Command::Bdat { size, last })
}

/// RFC 4954 §4: `AUTH SP sasl-mech [SP initial-response]`.
fn parse_auth(arg: &str) -> Result<Command, CommandError> {
    const SYNTAX: CommandError = CommandError::Syntax("Syntax: AUTH mechanism [initial-response]");
    let mut tokens = arg.split(' ').filter(|t| !t.is_empty());
    let mechanism = tokens.next().ok_or(SYNTAX)?.to_ascii_uppercase();
    let initial_response = tokens.next().map(str::to_string);
    if tokens.next().is_some() {
        return Err(SYNTAX);
    }
    Ok(Command::Auth {
        mechanism,
        initial_response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::{Address, AddressError};
    use crate::params::{Body, Notify, Orcpt, Ret};

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local_part: local.to_string(),
            domain: domain.to_string(),
        }
    }

    fn mail(local: &str, domain: &str, params: MailParams) -> Command {
        Command::Mail {
            from: ReversePath::Address(addr(local, domain)),
            params,
        }
    }

    fn rcpt(local: &str, domain: &str, params: RcptParams) -> Command {
        Command::Rcpt {
            to: ForwardPath::Address(addr(local, domain)),
            params,
        }
    }

    fn check(cases: &[(&str, Result<Command, CommandError>)]) {
        for (line, want) in cases {
            assert_eq!(&parse_command(line.as_bytes()), want, "{line:?}");
        }
    }

    #[test]
    fn every_command_without_parameters_parses() {
        use Command::*;
        let s = |s: &str| s.to_string();
        check(&[
            (
                "EHLO client.example",
                Ok(Ehlo {
                    domain: s("client.example"),
                }),
            ),
            (
                "ehlo [192.0.2.1]",
                Ok(Ehlo {
                    domain: s("[192.0.2.1]"),
                }),
            ),
            (
                "HELO client",
                Ok(Helo {
                    domain: s("client"),
                }),
            ),
            (
                "HeLo   client  ",
                Ok(Helo {
                    domain: s("client"),
                }),
            ),
            (
                "EHLO two words",
                Ok(Ehlo {
                    domain: s("two words"),
                }),
            ),
            ("DATA", Ok(Data)),
            ("data", Ok(Data)),
            ("DATA  ", Ok(Data)),
            ("RSET", Ok(Rset)),
            ("NOOP", Ok(Noop)),
            ("NOOP anything at all", Ok(Noop)),
            ("QUIT", Ok(Quit)),
            ("STARTTLS", Ok(StartTls)),
            ("starttls", Ok(StartTls)),
            ("VRFY user", Ok(Vrfy { arg: s("user") })),
            (
                "EXPN staff list",
                Ok(Expn {
                    arg: s("staff list"),
                }),
            ),
            ("HELP", Ok(Help { topic: None })),
            (
                "HELP MAIL",
                Ok(Help {
                    topic: Some(s("MAIL")),
                }),
            ),
            (
                "BDAT 100",
                Ok(Bdat {
                    size: 100,
                    last: false,
                }),
            ),
            (
                "BDAT 0 LAST",
                Ok(Bdat {
                    size: 0,
                    last: true,
                }),
            ),
            (
                "bdat  42  last",
                Ok(Bdat {
                    size: 42,
                    last: true,
                }),
            ),
            (
                "BDAT 18446744073709551615",
                Ok(Bdat {
                    size: u64::MAX,
                    last: false,
                }),
            ),
            (
                "AUTH PLAIN",
                Ok(Auth {
                    mechanism: s("PLAIN"),
                    initial_response: None,
                }),
            ),
            (
                "auth plain AHVzZXIAcGFzcw==",
                Ok(Auth {
                    mechanism: s("PLAIN"),
                    initial_response: Some(s("AHVzZXIAcGFzcw==")),
                }),
            ),
            (
                "AUTH LOGIN =",
                Ok(Auth {
                    mechanism: s("LOGIN"),
                    initial_response: Some(s("=")),
                }),
            ),
            (
                "MAIL FROM:<>",
                Ok(Command::Mail {
                    from: ReversePath::Null,
                    params: Default::default(),
                }),
            ),
            ("mail from:<a@b>", Ok(mail("a", "b", Default::default()))),
            ("MAIL FROM: <a@b>", Ok(mail("a", "b", Default::default()))),
            ("MAIL  FROM:<a@b>", Ok(mail("a", "b", Default::default()))),
            ("RCPT TO:<c@d>", Ok(rcpt("c", "d", Default::default()))),
            ("rcpt to: <c@d>", Ok(rcpt("c", "d", Default::default()))),
            (
                "RCPT TO:<Postmaster>",
                Ok(Command::Rcpt {
                    to: ForwardPath::Postmaster,
                    params: Default::default(),
                }),
            ),
            (
                "RCPT TO:<POSTMASTER>",
                Ok(Command::Rcpt {
                    to: ForwardPath::Postmaster,
                    params: Default::default(),
                }),
            ),
            (
                "RCPT TO:<\"a b\"@d>",
                Ok(rcpt("a b", "d", Default::default())),
            ),
            (
                "RCPT TO:<user%host@relay>",
                Ok(rcpt("user%host", "relay", Default::default())),
            ),
            (
                "RCPT TO:<ü@bücher.de>",
                Ok(rcpt("ü", "bücher.de", Default::default())),
            ),
        ]);
    }

    #[test]
    fn malformed_commands_name_the_expected_syntax() {
        use CommandError::*;
        check(&[
            ("", Err(Unrecognized)),
            ("FOO", Err(Unrecognized)),
            ("MAILFROM:<a@b>", Err(Unrecognized)),
            (" DATA", Err(Unrecognized)),
            ("EHLO", Err(Syntax("Syntax: EHLO hostname"))),
            ("EHLO   ", Err(Syntax("Syntax: EHLO hostname"))),
            ("HELO", Err(Syntax("Syntax: HELO hostname"))),
            ("DATA x", Err(Syntax("Syntax: DATA"))),
            ("RSET x", Err(Syntax("Syntax: RSET"))),
            ("QUIT now", Err(Syntax("Syntax: QUIT"))),
            ("STARTTLS x", Err(Syntax("Syntax: STARTTLS"))),
            ("VRFY", Err(Syntax("Syntax: VRFY address"))),
            ("EXPN", Err(Syntax("Syntax: EXPN mailing-list"))),
            ("BDAT", Err(Syntax("Syntax: BDAT size [LAST]"))),
            ("BDAT x", Err(Syntax("Syntax: BDAT size [LAST]"))),
            ("BDAT -1", Err(Syntax("Syntax: BDAT size [LAST]"))),
            ("BDAT 1 FIRST", Err(Syntax("Syntax: BDAT size [LAST]"))),
            ("BDAT 1 LAST x", Err(Syntax("Syntax: BDAT size [LAST]"))),
            (
                "BDAT 18446744073709551616",
                Err(Syntax("Syntax: BDAT size [LAST]")),
            ),
            (
                "BDAT 000000000000000000001",
                Err(Syntax("Syntax: BDAT size [LAST]")),
            ),
            (
                "AUTH",
                Err(Syntax("Syntax: AUTH mechanism [initial-response]")),
            ),
            (
                "AUTH PLAIN a b",
                Err(Syntax("Syntax: AUTH mechanism [initial-response]")),
            ),
            ("MAIL", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            ("MAIL TO:<a@b>", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            ("MAIL FROM:", Err(Syntax("Syntax: MAIL FROM:<address>"))),
            (
                "MAIL FROM <a@b>",
                Err(Syntax("Syntax: MAIL FROM:<address>")),
            ),
            ("RCPT", Err(Syntax("Syntax: RCPT TO:<address>"))),
            ("RCPT FROM:<a@b>", Err(Syntax("Syntax: RCPT TO:<address>"))),
            ("RCPT TO:  ", Err(Syntax("Syntax: RCPT TO:<address>"))),
        ]);
    }

    #[test]
    fn malformed_paths_are_bad_addresses() {
        use AddressError::*;
        use CommandError::BadAddress;
        check(&[
            ("MAIL FROM:a@b", Err(BadAddress(Syntax))),
            ("MAIL FROM:<a@b", Err(BadAddress(Syntax))),
            ("MAIL FROM:<a@b>SIZE=1", Err(BadAddress(Syntax))),
            ("RCPT TO:c@d", Err(BadAddress(Syntax))),
            ("RCPT TO:<>", Err(BadAddress(Syntax))),
            ("RCPT TO:<@a,@b:c@d>", Err(BadAddress(SourceRoute))),
            ("MAIL FROM:<@a:c@d>", Err(BadAddress(SourceRoute))),
            ("MAIL FROM:<a..b@d>", Err(BadAddress(LocalPart))),
            ("RCPT TO:<postmaster@>", Err(BadAddress(Domain))),
            ("RCPT TO:<c@d.>", Err(BadAddress(Domain))),
            ("RCPT TO:<c>", Err(BadAddress(Domain))),
        ]);
    }

    #[test]
    fn non_utf8_and_control_characters_are_invalid_bytes() {
        for line in [
            &b"EHLO \xff"[..],
            b"MAIL FROM:<a\x00@b>",
            b"mail FROM:<j\xf6rg@b> SMTPUTF8",
            b"RCPT TO:<a@b>\x00",
            b"NOOP \x1b[0m",
            b"HELO a\x7f",
        ] {
            assert_eq!(
                parse_command(line),
                Err(CommandError::InvalidArgumentBytes),
                "{line:?}"
            );
        }
        for line in [
            &b"DATA\r"[..],
            b"NO\x00OP",
            b"\x00",
            b"\xff\xfe",
            b"GET\x00 /",
            b"MAIL\x00FROM:<a@b>",
            b"RCPT\tTO:<a\x00@b>",
        ] {
            assert_eq!(
                parse_command(line),
                Err(CommandError::InvalidBytes),
                "{line:?}"
            );
        }
        // TAB is allowed inside arguments (it only ever separates nothing here).
        assert_eq!(
            parse_command(b"HELP a\tb"),
            Ok(Command::Help {
                topic: Some("a\tb".to_string())
            })
        );
        assert_eq!(
            parse_command("NOOP \u{85}".as_bytes()),
            Err(CommandError::InvalidArgumentBytes)
        );
    }

    #[test]
    fn every_mail_parameter_parses() {
        let p = |f: fn(&mut MailParams)| {
            let mut params = MailParams::default();
            f(&mut params);
            params
        };
        check(&[
            (
                "MAIL FROM:<a@b> SIZE=0",
                Ok(mail("a", "b", p(|m| m.size = Some(0)))),
            ),
            (
                "MAIL FROM:<a@b> size=12345",
                Ok(mail("a", "b", p(|m| m.size = Some(12345)))),
            ),
            (
                "MAIL FROM:<a@b> SIZE=18446744073709551615",
                Ok(mail("a", "b", p(|m| m.size = Some(u64::MAX)))),
            ),
            (
                "MAIL FROM:<a@b> BODY=7BIT",
                Ok(mail("a", "b", p(|m| m.body = Some(Body::SevenBit)))),
            ),
            (
                "MAIL FROM:<a@b> BODY=8bitmime",
                Ok(mail("a", "b", p(|m| m.body = Some(Body::EightBitMime)))),
            ),
            (
                "MAIL FROM:<a@b> BODY=BINARYMIME",
                Ok(mail("a", "b", p(|m| m.body = Some(Body::BinaryMime)))),
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8",
                Ok(mail("a", "b", p(|m| m.smtputf8 = true))),
            ),
            (
                "MAIL FROM:<a@b> RET=FULL",
                Ok(mail("a", "b", p(|m| m.ret = Some(Ret::Full)))),
            ),
            (
                "MAIL FROM:<a@b> ret=hdrs",
                Ok(mail("a", "b", p(|m| m.ret = Some(Ret::Hdrs)))),
            ),
            (
                "MAIL FROM:<a@b> ENVID=QQ+2B123",
                Ok(mail("a", "b", p(|m| m.envid = Some("QQ+123".into())))),
            ),
            (
                "MAIL FROM:<a@b> AUTH=user+2Btag@b",
                Ok(mail("a", "b", p(|m| m.auth = Some("user+tag@b".into())))),
            ),
            (
                "MAIL FROM:<a@b> AUTH=<>",
                Ok(mail("a", "b", p(|m| m.auth = Some("<>".into())))),
            ),
            (
                "MAIL FROM:<> SIZE=10  BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x AUTH=<>",
                Ok(Command::Mail {
                    from: ReversePath::Null,
                    params: MailParams {
                        size: Some(10),
                        body: Some(Body::EightBitMime),
                        smtputf8: true,
                        ret: Some(Ret::Hdrs),
                        envid: Some("x".into()),
                        auth: Some("<>".into()),
                    },
                }),
            ),
            (
                "MAIL FROM: <ü@bücher.de> SMTPUTF8",
                Ok(mail("ü", "bücher.de", p(|m| m.smtputf8 = true))),
            ),
        ]);
    }

    #[test]
    fn malformed_or_repeated_mail_parameters_are_bad_parameters() {
        use CommandError::BadParameter;
        let envid_100 = format!("MAIL FROM:<a@b> ENVID={}", "e".repeat(100));
        assert!(parse_command(envid_100.as_bytes()).is_ok());
        let envid_101 = format!("MAIL FROM:<a@b> ENVID={}", "e".repeat(101));
        assert_eq!(
            parse_command(envid_101.as_bytes()),
            Err(BadParameter("ENVID"))
        );
        check(&[
            ("MAIL FROM:<a@b> SIZE", Err(BadParameter("SIZE"))),
            ("MAIL FROM:<a@b> SIZE=", Err(BadParameter("SIZE"))),
            ("MAIL FROM:<a@b> SIZE=12k", Err(BadParameter("SIZE"))),
            ("MAIL FROM:<a@b> SIZE=-1", Err(BadParameter("SIZE"))),
            ("MAIL FROM:<a@b> SIZE=+1", Err(BadParameter("SIZE"))),
            (
                "MAIL FROM:<a@b> SIZE=18446744073709551616",
                Err(BadParameter("SIZE")),
            ),
            (
                "MAIL FROM:<a@b> SIZE=000000000000000000001",
                Err(BadParameter("SIZE")),
            ),
            ("MAIL FROM:<a@b> SIZE=1 SIZE=1", Err(BadParameter("SIZE"))),
            ("MAIL FROM:<a@b> BODY=9BIT", Err(BadParameter("BODY"))),
            ("MAIL FROM:<a@b> BODY", Err(BadParameter("BODY"))),
            (
                "MAIL FROM:<a@b> BODY=7BIT body=7BIT",
                Err(BadParameter("BODY")),
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8=yes",
                Err(BadParameter("SMTPUTF8")),
            ),
            (
                "MAIL FROM:<a@b> SMTPUTF8 SMTPUTF8",
                Err(BadParameter("SMTPUTF8")),
            ),
            ("MAIL FROM:<a@b> RET=ALL", Err(BadParameter("RET"))),
            ("MAIL FROM:<a@b> RET", Err(BadParameter("RET"))),
            (
                "MAIL FROM:<a@b> RET=FULL RET=FULL",
                Err(BadParameter("RET")),
            ),
            ("MAIL FROM:<a@b> ENVID=", Err(BadParameter("ENVID"))),
            ("MAIL FROM:<a@b> ENVID=a+2b", Err(BadParameter("ENVID"))),
            (
                "MAIL FROM:<a@b> ENVID=a+0D+0AX-Injected:+20y",
                Err(BadParameter("ENVID")),
            ),
            (
                "MAIL FROM:<a@b> ENVID=a ENVID=b",
                Err(BadParameter("ENVID")),
            ),
            ("MAIL FROM:<a@b> AUTH", Err(BadParameter("AUTH"))),
            ("MAIL FROM:<a@b> AUTH=a+", Err(BadParameter("AUTH"))),
            ("MAIL FROM:<a@b> AUTH=<> AUTH=<>", Err(BadParameter("AUTH"))),
        ]);
    }

    #[test]
    fn unknown_parameters_are_reported_as_sent() {
        use CommandError::UnknownParameter;
        let u = |s: &str| Err(UnknownParameter(s.to_string()));
        check(&[
            ("MAIL FROM:<a@b> FOO=1", u("FOO")),
            ("MAIL FROM:<a@b> SIZE=1 x-Thing", u("x-Thing")),
            ("MAIL FROM:<a@b> NOTIFY=NEVER", u("NOTIFY")),
            ("MAIL FROM:<a@b> ORCPT=rfc822;a@b", u("ORCPT")),
            ("RCPT TO:<a@b> SIZE=1", u("SIZE")),
            ("RCPT TO:<a@b> BODY=8BITMIME", u("BODY")),
            ("RCPT TO:<a@b> SMTPUTF8", u("SMTPUTF8")),
            ("RCPT TO:<a@b> RET=FULL", u("RET")),
            ("RCPT TO:<a@b> ENVID=x", u("ENVID")),
            ("RCPT TO:<a@b> AUTH=<>", u("AUTH")),
            ("RCPT TO:<a@b> Bar", u("Bar")),
        ]);
    }

    #[test]
    fn every_rcpt_parameter_parses() {
        let notify = |never, success, failure, delay| RcptParams {
            notify: Some(Notify {
                never,
                success,
                failure,
                delay,
            }),
            orcpt: None,
        };
        let orcpt = |t: &str, a: &str| RcptParams {
            notify: None,
            orcpt: Some(Orcpt {
                addr_type: t.into(),
                address: a.into(),
            }),
        };
        check(&[
            (
                "RCPT TO:<c@d> NOTIFY=NEVER",
                Ok(rcpt("c", "d", notify(true, false, false, false))),
            ),
            (
                "RCPT TO:<c@d> NOTIFY=SUCCESS",
                Ok(rcpt("c", "d", notify(false, true, false, false))),
            ),
            (
                "RCPT TO:<c@d> notify=failure,Delay",
                Ok(rcpt("c", "d", notify(false, false, true, true))),
            ),
            (
                "RCPT TO:<c@d> NOTIFY=DELAY,SUCCESS,FAILURE",
                Ok(rcpt("c", "d", notify(false, true, true, true))),
            ),
            (
                "RCPT TO:<c@d> ORCPT=rfc822;c@d",
                Ok(rcpt("c", "d", orcpt("rfc822", "c@d"))),
            ),
            (
                "RCPT TO:<c@d> ORCPT=rfc822;c+2Btag@d",
                Ok(rcpt("c", "d", orcpt("rfc822", "c+tag@d"))),
            ),
            (
                "RCPT TO:<c@d> ORCPT=utf-8;ü@d",
                Ok(rcpt("c", "d", orcpt("utf-8", "ü@d"))),
            ),
            (
                "RCPT TO:<Postmaster> NOTIFY=NEVER ORCPT=rfc822;postmaster",
                Ok(Command::Rcpt {
                    to: ForwardPath::Postmaster,
                    params: RcptParams {
                        notify: Some(Notify {
                            never: true,
                            ..Default::default()
                        }),
                        orcpt: Some(Orcpt {
                            addr_type: "rfc822".into(),
                            address: "postmaster".into(),
                        }),
                    },
                }),
            ),
        ]);
    }

    #[test]
    fn malformed_or_repeated_rcpt_parameters_are_bad_parameters() {
        use CommandError::BadParameter;
        check(&[
            ("RCPT TO:<c@d> NOTIFY", Err(BadParameter("NOTIFY"))),
            ("RCPT TO:<c@d> NOTIFY=", Err(BadParameter("NOTIFY"))),
            (
                "RCPT TO:<c@d> NOTIFY=NEVER,SUCCESS",
                Err(BadParameter("NOTIFY")),
            ),
            (
                "RCPT TO:<c@d> NOTIFY=DELAY,NEVER",
                Err(BadParameter("NOTIFY")),
            ),
            (
                "RCPT TO:<c@d> NOTIFY=SUCCESS,SUCCESS",
                Err(BadParameter("NOTIFY")),
            ),
            (
                "RCPT TO:<c@d> NOTIFY=NEVER,NEVER",
                Err(BadParameter("NOTIFY")),
            ),
            ("RCPT TO:<c@d> NOTIFY=SUCCESS,", Err(BadParameter("NOTIFY"))),
            ("RCPT TO:<c@d> NOTIFY=ALWAYS", Err(BadParameter("NOTIFY"))),
            (
                "RCPT TO:<c@d> NOTIFY=NEVER NOTIFY=NEVER",
                Err(BadParameter("NOTIFY")),
            ),
            ("RCPT TO:<c@d> ORCPT", Err(BadParameter("ORCPT"))),
            ("RCPT TO:<c@d> ORCPT=c@d", Err(BadParameter("ORCPT"))),
            ("RCPT TO:<c@d> ORCPT=;c@d", Err(BadParameter("ORCPT"))),
            (
                "RCPT TO:<c@d> ORCPT=rfc 822;c@d",
                Err(BadParameter("ORCPT")),
            ),
            ("RCPT TO:<c@d> ORCPT=rf(c;c@d", Err(BadParameter("ORCPT"))),
            ("RCPT TO:<c@d> ORCPT=rfc822;", Err(BadParameter("ORCPT"))),
            ("RCPT TO:<c@d> ORCPT=rfc822;c=d", Err(BadParameter("ORCPT"))),
            (
                "RCPT TO:<c@d> ORCPT=rfc822;c+0Ad",
                Err(BadParameter("ORCPT")),
            ),
            (
                "RCPT TO:<c@d> ORCPT=rfc822;a ORCPT=rfc822;b",
                Err(BadParameter("ORCPT")),
            ),
        ]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        // A small deterministic generator over an alphabet that reaches every branch.
        let alphabet: &[u8] =
            b"MAILFROM:TOHELODATBSRCPUQVYXNG<>@\"\\.=+,; 0123456789ab\t\xc3\xbc\xff\x00";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let mut line: Vec<u8> = b"MAIL FROM:<".to_vec();
            if next() % 3 == 0 {
                line.clear();
            }
            for _ in 0..len {
                line.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            if let Ok(Command::Mail {
                from: ReversePath::Address(a),
                ..
            }) = parse_command(&line)
            {
                assert_eq!(Address::parse(&a.to_string()), Ok(a));
            }
        }
    }
}
