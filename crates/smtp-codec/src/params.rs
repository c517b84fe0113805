//! ESMTP parameters of MAIL and RCPT: SIZE (RFC 1870), BODY (RFC 6152, 3030), SMTPUTF8
//! (RFC 6531), RET/ENVID (RFC 3461 §4.3, §4.4), NOTIFY/ORCPT (RFC 3461 §4.1, §4.2), AUTH
//! (RFC 4954 §5).

/// BODY= of MAIL FROM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// BINARYMIME (RFC 3030): only valid with BDAT; Postrider does not advertise BINARYMIME, so
    /// the session refuses it.
    BinaryMime,
}

/// RET= of MAIL FROM (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    Full,
    Hdrs,
}

/// NOTIFY= of RCPT TO (RFC 3461 §4.1). `never` excludes the others (checked by the parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notify {
    pub never: bool,
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// ORCPT= of RCPT TO (RFC 3461 §4.2): `addr-type;xtext`, stored decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The address type, e.g. `rfc822` or `utf-8` (RFC 6533), as sent.
    pub addr_type: String,
    /// The original recipient with xtext (or utf-8-addr-xtext) decoding applied.
    pub address: String,
}

/// Parameters of MAIL FROM. Each may appear at most once (a repeat is a syntax error).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub ret: Option<Ret>,
    /// ENVID, xtext-decoded (RFC 3461 §4.4: at most 100 characters).
    pub envid: Option<String>,
    /// AUTH=, xtext-decoded; `<>` is kept as `"<>"`.
    pub auth: Option<String>,
}

/// Parameters of RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    pub notify: Option<Notify>,
    pub orcpt: Option<Orcpt>,
}

use crate::command::CommandError;

/// RFC 1870 §3, RFC 3030 §2: a size is at most 20 digits (and must fit in 64 bits here).
pub(crate) fn parse_size(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Splits the parameter text after the path (RFC 5321 §4.1.2 `Mail-parameters`,
/// `esmtp-param = esmtp-keyword ["=" esmtp-value]`, separated by SP; extra spaces are tolerated)
/// into `(keyword, value)` pairs.
fn esmtp_params(input: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    input
        .split(' ')
        .filter(|t| !t.is_empty())
        .map(|token| match token.split_once('=') {
            Some((keyword, value)) => (keyword, Some(value)),
            None => (token, None),
        })
}

/// Parses the parameters of MAIL FROM. Keywords are case-insensitive (RFC 5321 §2.4); each may
/// appear once.
pub(crate) fn parse_mail_params(input: &str) -> Result<MailParams, CommandError> {
    let mut params = MailParams::default();
    let mut seen_smtputf8 = false;
    for (keyword, value) in esmtp_params(input) {
        if keyword.eq_ignore_ascii_case("SIZE") {
            // RFC 1870 §3: SIZE=size-value, 1*20DIGIT.
            const E: CommandError = CommandError::BadParameter("SIZE");
            if params.size.is_some() {
                return Err(E);
            }
            params.size = Some(value.and_then(parse_size).ok_or(E)?);
        } else if keyword.eq_ignore_ascii_case("BODY") {
            // RFC 6152 §2 (7BIT, 8BITMIME), RFC 3030 §3 (BINARYMIME).
            const E: CommandError = CommandError::BadParameter("BODY");
            if params.body.is_some() {
                return Err(E);
            }
            let value = value.ok_or(E)?;
            params.body = Some(if value.eq_ignore_ascii_case("7BIT") {
                Body::SevenBit
            } else if value.eq_ignore_ascii_case("8BITMIME") {
                Body::EightBitMime
            } else if value.eq_ignore_ascii_case("BINARYMIME") {
                Body::BinaryMime
            } else {
                return Err(E);
            });
        } else if keyword.eq_ignore_ascii_case("SMTPUTF8") {
            // RFC 6531 §3.4: SMTPUTF8 takes no value.
            if seen_smtputf8 || value.is_some() {
                return Err(CommandError::BadParameter("SMTPUTF8"));
            }
            seen_smtputf8 = true;
            params.smtputf8 = true;
        } else if keyword.eq_ignore_ascii_case("RET") {
            // RFC 3461 §4.3: RET=FULL / RET=HDRS.
            const E: CommandError = CommandError::BadParameter("RET");
            if params.ret.is_some() {
                return Err(E);
            }
            let value = value.ok_or(E)?;
            params.ret = Some(if value.eq_ignore_ascii_case("FULL") {
                Ret::Full
            } else if value.eq_ignore_ascii_case("HDRS") {
                Ret::Hdrs
            } else {
                return Err(E);
            });
        } else if keyword.eq_ignore_ascii_case("ENVID") {
            // RFC 3461 §4.4: ENVID=xtext, at most 100 characters.
            const E: CommandError = CommandError::BadParameter("ENVID");
            if params.envid.is_some() {
                return Err(E);
            }
            let envid = value.and_then(crate::xtext::decode).ok_or(E)?;
            if envid.is_empty() || envid.chars().count() > 100 || has_control(&envid) {
                return Err(E);
            }
            params.envid = Some(envid);
        } else if keyword.eq_ignore_ascii_case("AUTH") {
            // RFC 4954 §5: AUTH=xtext, or AUTH=<> when the submitter is unknown.
            const E: CommandError = CommandError::BadParameter("AUTH");
            if params.auth.is_some() {
                return Err(E);
            }
            let auth = value.and_then(crate::xtext::decode).ok_or(E)?;
            if auth.is_empty() || has_control(&auth) {
                return Err(E);
            }
            params.auth = Some(auth);
        } else {
            return Err(CommandError::UnknownParameter(keyword.to_string()));
        }
    }
    Ok(params)
}

/// Parses the parameters of RCPT TO.
pub(crate) fn parse_rcpt_params(input: &str) -> Result<RcptParams, CommandError> {
    let mut params = RcptParams::default();
    for (keyword, value) in esmtp_params(input) {
        if keyword.eq_ignore_ascii_case("NOTIFY") {
            const E: CommandError = CommandError::BadParameter("NOTIFY");
            if params.notify.is_some() {
                return Err(E);
            }
            params.notify = Some(parse_notify(value.ok_or(E)?).ok_or(E)?);
        } else if keyword.eq_ignore_ascii_case("ORCPT") {
            // RFC 3461 §4.2: ORCPT=addr-type ";" xtext.
            const E: CommandError = CommandError::BadParameter("ORCPT");
            if params.orcpt.is_some() {
                return Err(E);
            }
            let (addr_type, xtext) = value.and_then(|v| v.split_once(';')).ok_or(E)?;
            if !is_atom(addr_type) {
                return Err(E);
            }
            let address = crate::xtext::decode(xtext).ok_or(E)?;
            if address.is_empty() || has_control(&address) {
                return Err(E);
            }
            params.orcpt = Some(Orcpt {
                addr_type: addr_type.to_string(),
                address,
            });
        } else {
            return Err(CommandError::UnknownParameter(keyword.to_string()));
        }
    }
    Ok(params)
}

/// RFC 3461 §4.1: `NOTIFY=NEVER` or a comma-separated list of SUCCESS, FAILURE and DELAY.
/// NEVER with anything else, a repeated or unknown keyword, or an empty item is refused.
fn parse_notify(value: &str) -> Option<Notify> {
    let mut notify = Notify::default();
    for item in value.split(',') {
        let flag = if item.eq_ignore_ascii_case("NEVER") {
            &mut notify.never
        } else if item.eq_ignore_ascii_case("SUCCESS") {
            &mut notify.success
        } else if item.eq_ignore_ascii_case("FAILURE") {
            &mut notify.failure
        } else if item.eq_ignore_ascii_case("DELAY") {
            &mut notify.delay
        } else {
            return None;
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    if notify.never && (notify.success || notify.failure || notify.delay) {
        return None;
    }
    Some(notify)
}

/// Decoded xtext must not smuggle control characters (a CR LF in an ENVID or ORCPT would end a
/// header line of the DSN): RFC 3461 §4.2 and §4.4 allow printable characters only.
fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// RFC 3461 §4.2 `addr-type = atom` (RFC 5322 §3.2.3: 1*atext).
fn is_atom(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_one_to_twenty_digits_that_fit_in_64_bits() {
        let cases = [
            ("0", Some(0)),
            ("1000000", Some(1_000_000)),
            ("00000000000000000001", Some(1)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("000000000000000000001", None),
            ("", None),
            ("1e6", None),
            ("+1", None),
            (" 1", None),
            ("١", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_size(input), want, "{input:?}");
        }
    }

    #[test]
    fn notify_never_excludes_the_other_keywords() {
        let n = |never, success, failure, delay| {
            Some(Notify {
                never,
                success,
                failure,
                delay,
            })
        };
        let cases = [
            ("NEVER", n(true, false, false, false)),
            ("never", n(true, false, false, false)),
            ("SUCCESS,FAILURE,DELAY", n(false, true, true, true)),
            ("DELAY", n(false, false, false, true)),
            ("NEVER,DELAY", None),
            ("FAILURE,FAILURE", None),
            ("", None),
            (",", None),
            ("SUCCESS,", None),
            ("SUCCESS FAILURE", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_notify(input), want, "{input:?}");
        }
    }

    #[test]
    fn parameter_text_may_be_empty_or_padded_with_spaces() {
        assert_eq!(parse_mail_params(""), Ok(MailParams::default()));
        assert_eq!(parse_mail_params("   "), Ok(MailParams::default()));
        assert_eq!(parse_rcpt_params(""), Ok(RcptParams::default()));
        assert_eq!(
            parse_mail_params("  SIZE=5   SMTPUTF8 ").map(|p| (p.size, p.smtputf8)),
            Ok((Some(5), true))
        );
    }

    #[test]
    fn addr_types_are_atoms() {
        assert!(is_atom("rfc822"));
        assert!(is_atom("utf-8"));
        assert!(!is_atom(""));
        assert!(!is_atom("rfc 822"));
        assert!(!is_atom("a;b"));
        assert!(!is_atom("ü"));
    }
}
