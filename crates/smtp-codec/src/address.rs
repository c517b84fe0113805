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
    pub fn parse(input: &str) -> Result<Address, AddressError> {
        let _ = input;
        todo!("smtp-codec helper")
    }

    /// True when both parts are ASCII (no SMTPUTF8 needed).
    pub fn is_ascii(&self) -> bool {
        self.local_part.is_ascii() && self.domain.is_ascii()
    }

    /// The form used for lookups: the domain lower-cased and without a trailing dot, the local
    /// part lower-cased (Postrider treats local parts case-insensitively, like Postfix).
    pub fn normalized(&self) -> String {
        format!("{}@{}", self.local_part.to_lowercase(), self.domain.to_lowercase())
    }

    /// The domain lower-cased, for lookups.
    pub fn domain_lower(&self) -> String {
        self.domain.to_lowercase()
    }
}

impl std::fmt::Display for Address {
    /// Writes the address in SMTP form, quoting the local part when it is not a dot-atom.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let _ = f;
        todo!("smtp-codec helper")
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
