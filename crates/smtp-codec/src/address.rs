//! Mailbox addresses as they appear in MAIL FROM and RCPT TO (RFC 5321 §4.1.2), with the
//! SMTPUTF8 extension (RFC 6531 §3.3): UTF-8 in local parts and domains is accepted here and
//! reported by [`Address::is_ascii`]; whether it is allowed is the session's policy.

/// An address `local@domain`.
///
/// `local_part` is stored decoded (a quoted string has its quotes and backslash escapes
/// removed); `domain` is stored as written (a dot-domain without a trailing dot, or an address
/// literal such as `[192.0.2.1]` / `[IPv6:2001:db8::1]` including the brackets).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    pub local_part: String,
    pub domain: String,
}

/// MAIL FROM's path: `<>` (null reverse path, used by bounces) or an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    Null,
    Address(Address),
}

/// RCPT TO's path: an address, or `<Postmaster>` without a domain (RFC 5321 §4.1.1.3), which
/// must be accepted and means the postmaster of the receiving domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Postmaster,
    Address(Address),
}

/// Why an address did not parse. Each maps to a reply in the session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// Missing `<` `>` or other malformed path syntax.
    #[error("malformed address syntax")]
    Syntax,
    /// Source routes (`<@a,@b:user@c>`) are obsolete; RFC 5321 §4.1.2 says to accept and
    /// ignore them, but Postrider refuses them (never relay through them).
    #[error("source routes are not accepted")]
    SourceRoute,
    /// The local part is empty, too long (> 64 octets, §4.5.3.1.1) or malformed.
    #[error("invalid local part")]
    LocalPart,
    /// The domain is empty, too long (> 255 octets, §4.5.3.1.2) or malformed.
    #[error("invalid domain")]
    Domain,
}

impl Address {
    /// Parses `local@domain` (no angle brackets).
    ///
    /// RFC 5321 §4.1.2: `Mailbox = Local-part "@" ( Domain / address-literal )`, with the
    /// SMTPUTF8 additions of RFC 6531 §3.3 (UTF-8 in `atext`, `qtextSMTP` and domain labels).
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let (local_part, rest) = parse_local_part(input)?;
        let domain = match rest.strip_prefix('@') {
            Some(domain) => domain,
            // `user` alone: the domain is missing.
            None if rest.is_empty() => return Err(AddressError::Domain),
            // `"quoted"junk@domain`
            None => return Err(AddressError::LocalPart),
        };
        check_domain(domain)?;
        Ok(Address {
            local_part,
            domain: domain.to_string(),
        })
    }

    /// True when both parts are ASCII (no SMTPUTF8 needed).
    pub fn is_ascii(&self) -> bool {
        self.local_part.is_ascii() && self.domain.is_ascii()
    }

    /// The form used for lookups: the domain lower-cased and without a trailing dot, the local
    /// part lower-cased (Postrider treats local parts case-insensitively, like Postfix).
    pub fn normalized(&self) -> String {
        format!(
            "{}@{}",
            self.local_part.to_lowercase(),
            self.domain.to_lowercase()
        )
    }

    /// The domain lower-cased, for lookups.
    pub fn domain_lower(&self) -> String {
        self.domain.to_lowercase()
    }
}

impl ReversePath {
    /// Parses MAIL FROM's argument after `FROM:`: `<>` or `<mailbox>`, leading spaces
    /// tolerated; returns the path and the text after the `>` (empty, or the parameters after a
    /// space).
    pub fn parse(input: &str) -> Result<(ReversePath, &str), AddressError> {
        parse_reverse_path(input)
    }
}

impl ForwardPath {
    /// Parses RCPT TO's argument after `TO:`: `<Postmaster>` or `<mailbox>`, leading spaces
    /// tolerated; returns the path and the text after the `>`.
    pub fn parse(input: &str) -> Result<(ForwardPath, &str), AddressError> {
        parse_forward_path(input)
    }
}

impl std::fmt::Display for Address {
    /// Writes the address in SMTP form, quoting the local part when it is not a dot-atom.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        if is_dot_string(&self.local_part) {
            f.write_str(&self.local_part)?;
        } else {
            // RFC 5321 §4.1.2 Quoted-string: `"` and `\` need a quoted-pair, the rest is qtext.
            f.write_char('"')?;
            for c in self.local_part.chars() {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_char('"')?;
        }
        write!(f, "@{}", self.domain)
    }
}

impl std::fmt::Display for ReversePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Address(a) => a.fmt(f),
        }
    }
}

/// RFC 5321 §4.5.3.1.1: at most 64 octets in a local part.
const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: at most 255 octets in a domain.
const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4 (referenced by RFC 5321 §4.5.3.1.2): at most 63 octets in a label.
const MAX_LABEL: usize = 63;

/// A UTF-8 character outside ASCII that may appear in an atom or a domain label (RFC 6531 §3.3
/// `UTF8-non-ascii`). Control characters and white space (C1 controls, NBSP, line separators) are
/// refused: they have no business in an address and only serve to confuse.
fn is_utf8_non_ascii(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

/// RFC 5322 §3.2.3 `atext`, extended by RFC 6531 §3.3.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_non_ascii(c)
}

/// RFC 5321 §4.1.2 `qtextSMTP` (%d32-33 / %d35-91 / %d93-126), extended by RFC 6531 §3.3.
fn is_qtext(c: char) -> bool {
    matches!(c, ' ' | '!' | '#'..='[' | ']'..='~') || (!c.is_ascii() && !c.is_control())
}

/// RFC 5321 §4.1.2 `Dot-string = Atom *("."  Atom)`: no empty atom, so no leading, trailing or
/// doubled dot.
pub(crate) fn is_dot_string(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Parses the local part at the start of `input`; returns it decoded and the rest (which starts
/// with `@` for a well-formed mailbox).
fn parse_local_part(input: &str) -> Result<(String, &str), AddressError> {
    if let Some(quoted) = input.strip_prefix('"') {
        // RFC 5321 §4.1.2: Quoted-string = DQUOTE *QcontentSMTP DQUOTE,
        // quoted-pairSMTP = %d92 %d32-126.
        let mut decoded = String::new();
        let mut chars = quoted.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) if matches!(e, ' '..='~') => decoded.push(e),
                    _ => return Err(AddressError::LocalPart),
                },
                '"' => {
                    // `i + 2` octets as written: both quotes and what lies between.
                    if decoded.is_empty() || i + 2 > MAX_LOCAL_PART {
                        return Err(AddressError::LocalPart);
                    }
                    let rest = quoted.get(i + 1..).ok_or(AddressError::LocalPart)?;
                    return Ok((decoded, rest));
                }
                c if is_qtext(c) => decoded.push(c),
                _ => return Err(AddressError::LocalPart),
            }
        }
        // No closing quote.
        return Err(AddressError::LocalPart);
    }
    let end = input.find('@').unwrap_or(input.len());
    let (local, rest) = input.split_at_checked(end).ok_or(AddressError::LocalPart)?;
    if local.len() > MAX_LOCAL_PART || !is_dot_string(local) {
        return Err(AddressError::LocalPart);
    }
    Ok((local.to_string(), rest))
}

/// Checks a domain (RFC 5321 §4.1.2 `Domain / address-literal`, RFC 6531 §3.3 U-labels).
fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err(AddressError::Domain);
    }
    if let Some(literal) = domain.strip_prefix('[') {
        let inner = literal.strip_suffix(']').ok_or(AddressError::Domain)?;
        return if check_address_literal(inner) {
            Ok(())
        } else {
            Err(AddressError::Domain)
        };
    }
    // A trailing dot leaves an empty last label: refused (RFC 5321 §2.3.5 forbids it in SMTP).
    if domain.split('.').all(is_label) {
        Ok(())
    } else {
        Err(AddressError::Domain)
    }
}

/// RFC 5321 §4.1.2 `sub-domain = Let-dig [Ldh-str]`, or a U-label (RFC 6531 §3.3). U-labels are
/// not checked against IDNA2008 here; a label with non-ASCII characters only has to keep to
/// letters, digits, hyphens and non-ASCII, non-space characters.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_utf8_non_ascii(c))
}

/// RFC 5321 §4.1.3: `IPv4-address-literal` or `"IPv6:" IPv6-addr` (the tag case-insensitive,
/// §2.4). A General-address-literal with another tag is not accepted.
fn check_address_literal(inner: &str) -> bool {
    match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
            .get(5..)
            .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok()),
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Splits `<path>[ rest]` at the start of a MAIL or RCPT argument: returns what is between the
/// angle brackets and what follows the `>` (empty, or starting with a space: the parameters).
///
/// Leading spaces are skipped (Postfix accepts `MAIL FROM: <a@b>`); a missing `<` or `>` is a
/// syntax error. A `>` inside a quoted local part does not close the path. A path starting with
/// `@` is a source route (RFC 5321 §4.1.2 `A-d-l`, obsolete: Appendix C), refused.
pub(crate) fn split_path(input: &str) -> Result<(&str, &str), AddressError> {
    let path = input
        .trim_start_matches(' ')
        .strip_prefix('<')
        .ok_or(AddressError::Syntax)?;
    let mut in_quotes = false;
    let mut chars = path.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if in_quotes => {
                chars.next();
            }
            '"' => in_quotes = !in_quotes,
            '>' if !in_quotes => {
                let inner = path.get(..i).ok_or(AddressError::Syntax)?;
                let rest = path.get(i + 1..).ok_or(AddressError::Syntax)?;
                if !rest.is_empty() && !rest.starts_with(' ') {
                    return Err(AddressError::Syntax);
                }
                if inner.starts_with('@') {
                    return Err(AddressError::SourceRoute);
                }
                return Ok((inner, rest));
            }
            _ => {}
        }
    }
    Err(AddressError::Syntax)
}

/// Parses MAIL FROM's argument: `<>` or `<mailbox>`, then the parameter text.
pub(crate) fn parse_reverse_path(input: &str) -> Result<(ReversePath, &str), AddressError> {
    let (inner, rest) = split_path(input)?;
    if inner.is_empty() {
        return Ok((ReversePath::Null, rest));
    }
    Ok((ReversePath::Address(Address::parse(inner)?), rest))
}

/// Parses RCPT TO's argument: `<Postmaster>` (any case, RFC 5321 §4.1.1.3) or `<mailbox>`, then
/// the parameter text. `<>` is not a forward path.
pub(crate) fn parse_forward_path(input: &str) -> Result<(ForwardPath, &str), AddressError> {
    let (inner, rest) = split_path(input)?;
    if inner.is_empty() {
        return Err(AddressError::Syntax);
    }
    if inner.eq_ignore_ascii_case("postmaster") {
        return Ok((ForwardPath::Postmaster, rest));
    }
    Ok((ForwardPath::Address(Address::parse(inner)?), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(local: &str, domain: &str) -> Address {
        Address {
            local_part: local.to_string(),
            domain: domain.to_string(),
        }
    }

    #[test]
    fn valid_addresses_parse_into_their_parts() {
        let local64 = "a".repeat(64);
        let label63 = "d".repeat(63);
        let domain255 = format!("{0}.{0}.{0}.{1}", label63, "e".repeat(63));
        let cases: Vec<(String, Address)> = vec![
            ("user@example.com".into(), addr("user", "example.com")),
            (
                "First.Last@Example.COM".into(),
                addr("First.Last", "Example.COM"),
            ),
            (
                "a!#$%&'*+-/=?^_`{|}~@x".into(),
                addr("a!#$%&'*+-/=?^_`{|}~", "x"),
            ),
            (
                "user%other.host@relay.test".into(),
                addr("user%other.host", "relay.test"),
            ),
            (
                "user+tag@sub-domain.example".into(),
                addr("user+tag", "sub-domain.example"),
            ),
            ("1@123.45".into(), addr("1", "123.45")),
            ("\"a@b\"@example.com".into(), addr("a@b", "example.com")),
            ("\"a b\"@example.com".into(), addr("a b", "example.com")),
            ("\"a\\\"b\\\\c\"@x.test".into(), addr("a\"b\\c", "x.test")),
            ("\"\\a\"@x.test".into(), addr("a", "x.test")),
            ("\"a>b\"@x.test".into(), addr("a>b", "x.test")),
            ("\"a..b\"@x.test".into(), addr("a..b", "x.test")),
            ("user@[192.0.2.1]".into(), addr("user", "[192.0.2.1]")),
            (
                "user@[IPv6:2001:db8::1]".into(),
                addr("user", "[IPv6:2001:db8::1]"),
            ),
            ("user@[ipv6:::1]".into(), addr("user", "[ipv6:::1]")),
            (
                "user@[IPv6:::ffff:192.0.2.1]".into(),
                addr("user", "[IPv6:::ffff:192.0.2.1]"),
            ),
            (
                "δοκιμή@παράδειγμα.δοκιμή".into(),
                addr("δοκιμή", "παράδειγμα.δοκιμή"),
            ),
            ("用户@例子.广告".into(), addr("用户", "例子.广告")),
            ("\"ü x\"@bücher.de".into(), addr("ü x", "bücher.de")),
            (format!("{local64}@x"), addr(&local64, "x")),
            (format!("u@{domain255}"), addr("u", &domain255)),
        ];
        for (input, want) in cases {
            assert_eq!(Address::parse(&input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn invalid_addresses_are_refused_with_the_failing_part() {
        use AddressError::*;
        let local65 = "a".repeat(65);
        let label64 = "d".repeat(64);
        // Labels of 63, 63, 63, 62 and 1 octets: 256 octets with the dots.
        let domain256 = format!("{0}.{0}.{0}.{1}.f", "d".repeat(63), "e".repeat(62));
        assert_eq!(domain256.len(), 256);
        let quoted65 = format!("\"{}\"@x", "a".repeat(63));
        let cases: Vec<(String, AddressError)> = vec![
            ("".into(), LocalPart),
            ("@example.com".into(), LocalPart),
            ("user".into(), Domain),
            ("user@".into(), Domain),
            (".user@x".into(), LocalPart),
            ("user.@x".into(), LocalPart),
            ("us..er@x".into(), LocalPart),
            ("us er@x".into(), LocalPart),
            ("us\"er@x".into(), LocalPart),
            ("a(b)@x".into(), LocalPart),
            ("a,b@x".into(), LocalPart),
            ("\"\"@x".into(), LocalPart),
            ("\"abc@x".into(), LocalPart),
            ("\"a\"b@x".into(), LocalPart),
            ("\"a\tb\"@x".into(), LocalPart),
            ("\"a\\é\"@x".into(), LocalPart),
            ("a\u{a0}b@x".into(), LocalPart),
            (local65.clone() + "@x", LocalPart),
            (quoted65, LocalPart),
            ("user@example.com.".into(), Domain),
            ("user@.example.com".into(), Domain),
            ("user@example..com".into(), Domain),
            ("user@-example.com".into(), Domain),
            ("user@example-.com".into(), Domain),
            ("user@exa_mple.com".into(), Domain),
            ("user@exa mple.com".into(), Domain),
            ("user@a@b".into(), Domain),
            (format!("user@{label64}.com"), Domain),
            (format!("u@{domain256}"), Domain),
            ("user@[192.0.2.256]".into(), Domain),
            ("user@[192.0.2]".into(), Domain),
            ("user@[IPv6:192.0.2.1]".into(), Domain),
            ("user@[2001:db8::1]".into(), Domain),
            ("user@[IPv6:2001:db8::g]".into(), Domain),
            ("user@[x-tag:content]".into(), Domain),
            ("user@[192.0.2.1".into(), Domain),
            ("user@192.0.2.1]".into(), Domain),
            ("user@[]".into(), Domain),
        ];
        for (input, want) in cases {
            assert_eq!(Address::parse(&input), Err(want), "{input:?}");
        }
    }

    #[test]
    fn display_quotes_only_local_parts_that_are_not_dot_atoms() {
        let cases = [
            (addr("user", "example.com"), "user@example.com"),
            (addr("a.b", "x"), "a.b@x"),
            (addr("a b", "x"), "\"a b\"@x"),
            (addr("a@b", "x"), "\"a@b\"@x"),
            (addr("a\"b\\c", "x"), "\"a\\\"b\\\\c\"@x"),
            (addr(".a", "x"), "\".a\"@x"),
            (addr("ü", "bücher.de"), "ü@bücher.de"),
            (addr("u", "[IPv6:::1]"), "u@[IPv6:::1]"),
        ];
        for (a, want) in cases {
            assert_eq!(a.to_string(), want);
        }
        assert_eq!(ReversePath::Null.to_string(), "");
    }

    #[test]
    fn display_of_a_parsed_address_parses_back_to_the_same_address() {
        let inputs = [
            "user@example.com",
            "\"user\"@example.com",
            "\"a b\"@x",
            "\"a\\\"b\"@x",
            "\"\\a\\b\"@x",
            "\"a@b\"@x",
            "user@[IPv6:::1]",
            "\"ü x\"@bücher.de",
        ];
        for input in inputs {
            let a = Address::parse(input).unwrap();
            assert_eq!(Address::parse(&a.to_string()), Ok(a), "{input:?}");
        }
    }

    #[test]
    fn normalized_forms_lower_case_both_parts() {
        let a = addr("User", "Example.COM");
        assert_eq!(a.normalized(), "user@example.com");
        assert_eq!(a.domain_lower(), "example.com");
        assert!(a.is_ascii());
        assert!(!addr("ü", "x").is_ascii());
    }

    #[test]
    fn paths_need_angle_brackets_and_refuse_source_routes() {
        let ok = split_path;
        assert_eq!(ok("<a@b>"), Ok(("a@b", "")));
        assert_eq!(ok(" <a@b> SIZE=1"), Ok(("a@b", " SIZE=1")));
        assert_eq!(ok("<>"), Ok(("", "")));
        assert_eq!(ok("<\"a>b\"@c>"), Ok(("\"a>b\"@c", "")));
        assert_eq!(ok("<\"a\\\">\"@c> X"), Ok(("\"a\\\">\"@c", " X")));
        assert_eq!(ok("a@b"), Err(AddressError::Syntax));
        assert_eq!(ok("a@b>"), Err(AddressError::Syntax));
        assert_eq!(ok("<a@b"), Err(AddressError::Syntax));
        assert_eq!(ok("<a@b>x"), Err(AddressError::Syntax));
        assert_eq!(ok(""), Err(AddressError::Syntax));
        assert_eq!(ok("<@a,@b:user@c>"), Err(AddressError::SourceRoute));
        assert_eq!(ok("<@a:user@c>"), Err(AddressError::SourceRoute));
    }

    #[test]
    fn forward_and_reverse_paths_know_their_special_forms() {
        assert_eq!(parse_reverse_path("<>"), Ok((ReversePath::Null, "")));
        assert_eq!(
            parse_forward_path("<Postmaster>"),
            Ok((ForwardPath::Postmaster, ""))
        );
        assert_eq!(
            parse_forward_path("<pOsTmAsTeR>"),
            Ok((ForwardPath::Postmaster, ""))
        );
        assert_eq!(
            parse_forward_path("<postmaster@x>"),
            Ok((ForwardPath::Address(addr("postmaster", "x")), ""))
        );
        assert_eq!(parse_forward_path("<>"), Err(AddressError::Syntax));
        assert_eq!(parse_reverse_path("<a@b.>"), Err(AddressError::Domain));
    }
}
