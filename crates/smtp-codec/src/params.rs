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
