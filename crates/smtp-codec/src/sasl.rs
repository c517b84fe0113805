//! SASL messages of SMTP AUTH (RFC 4954) for the PLAIN (RFC 4616) and LOGIN mechanisms: the
//! base64 client responses and what they carry.
//!
//! Every function here reads bytes a client sent before it authenticated. Decoding is strict:
//! base64 must be canonical (RFC 4648 §3.5: padded, no white space inside, no stray bits), so a
//! response has exactly one meaning. Passwords are handed back to the caller and never appear in
//! `Debug` output or errors.

/// RFC 4954 §4: a server must accept client response lines of at least 12288 octets; the
/// session refuses longer lines before they get here.
pub const MAX_RESPONSE_LINE: usize = 12_288;

/// RFC 4616 §2: authzid, authcid and passwd must each be accepted up to 255 octets. Longer
/// fields are allowed by the RFC; we accept up to this many octets (room for any address, at
/// most 320 octets, and long passphrases) and refuse the rest as malformed.
pub const MAX_FIELD: usize = 1024;

/// One client response in an AUTH exchange (RFC 4954 §4).
#[derive(Clone, PartialEq, Eq)]
pub enum Response {
    /// A line with a single `*`: the client cancels the exchange (answered 501 5.0.0).
    Cancel,
    /// The decoded octets. `=` (an empty initial response) and an empty line decode to none.
    Data(Vec<u8>),
}

impl std::fmt::Debug for Response {
    /// The decoded octets may be a password: only their length is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Response::Cancel => f.write_str("Cancel"),
            Response::Data(d) => write!(f, "Data({} octets)", d.len()),
        }
    }
}

/// Why a response was refused. All of them are answered 501 5.5.2 (RFC 4954 §4: "cannot decode
/// the base64"; a malformed mechanism message gets the same answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("response is not canonical base64")]
    Base64,
    #[error("response line is too long")]
    TooLong,
    #[error("PLAIN message is not `authzid NUL authcid NUL passwd`")]
    PlainSyntax,
    #[error("empty authentication identity or password")]
    Empty,
    #[error("a field is longer than the limit")]
    FieldTooLong,
    #[error("a field is not UTF-8 or contains NUL")]
    NotUtf8,
}

/// The three fields of a PLAIN message (RFC 4616 §2).
#[derive(Clone, PartialEq, Eq)]
pub struct PlainCredentials {
    /// The authorization identity; empty when the client sent none (act as `authcid`).
    pub authzid: String,
    /// The authentication identity (the user name).
    pub authcid: String,
    pub password: String,
}

impl std::fmt::Debug for PlainCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainCredentials")
            .field("authzid", &self.authzid)
            .field("authcid", &self.authcid)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Decodes one client response line (without its CRLF): `*` cancels, `=` is an empty
/// (initial) response (RFC 4954 §4), anything else must be canonical base64. White space
/// around the response is ignored, inside it is not.
pub fn decode_response(line: &[u8]) -> Result<Response, SaslError> {
    if line.len() > MAX_RESPONSE_LINE {
        return Err(SaslError::TooLong);
    }
    let text = line.trim_ascii();
    match text {
        b"*" => Ok(Response::Cancel),
        b"=" => Ok(Response::Data(Vec::new())),
        _ => decode_base64(text).map(Response::Data),
    }
}

/// Decodes a PLAIN message: `[authzid] NUL authcid NUL passwd` (RFC 4616 §2). Each field is
/// UTF-8 without NUL (`SAFE`), at most [`MAX_FIELD`] octets; authcid and passwd are not empty
/// (`1*SAFE`). Whether the authzid may be used is the caller's policy.
pub fn parse_plain(message: &[u8]) -> Result<PlainCredentials, SaslError> {
    let mut fields = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(SaslError::PlainSyntax);
    };
    if authcid.is_empty() || password.is_empty() {
        return Err(SaslError::Empty);
    }
    Ok(PlainCredentials {
        authzid: field(authzid)?,
        authcid: field(authcid)?,
        password: field(password)?,
    })
}

/// Decodes one LOGIN response (the user name or the password, already base64-decoded): UTF-8
/// without NUL, at most [`MAX_FIELD`] octets. LOGIN has no RFC (draft-murchison-sasl-login);
/// the same rules as a PLAIN field apply, except that it may be empty (it then fails the login).
pub fn parse_login_field(decoded: &[u8]) -> Result<String, SaslError> {
    if decoded.contains(&0) {
        return Err(SaslError::NotUtf8);
    }
    field(decoded)
}

/// Standard base64 with padding (RFC 4648 §4), as challenges are sent.
pub fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET.get(sextet).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes canonical base64 (RFC 4648 §4 alphabet): the length a multiple of four, `=` only as
/// one or two final padding characters, and the unused bits of the last group zero (§3.5), so
/// that `encode_base64(decode_base64(s)) == s`. The empty string decodes to nothing.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, SaslError> {
    if !text.len().is_multiple_of(4) {
        return Err(SaslError::Base64);
    }
    let groups = text.len() / 4;
    let mut out = Vec::with_capacity(groups * 3);
    for (i, group) in text.chunks_exact(4).enumerate() {
        let Ok([a, b, c, d]) = <[u8; 4]>::try_from(group) else {
            return Err(SaslError::Base64);
        };
        let last = i + 1 == groups;
        let (a, b) = (sextet(a)?, sextet(b)?);
        match (c, d) {
            (b'=', b'=') if last => {
                // One octet: the low four bits of `b` are unused and must be zero.
                if b & 0x0f != 0 {
                    return Err(SaslError::Base64);
                }
                out.push((a << 2) | (b >> 4));
            }
            (c, b'=') if last => {
                let c = sextet(c)?;
                // Two octets: the low two bits of `c` are unused and must be zero.
                if c & 0x03 != 0 {
                    return Err(SaslError::Base64);
                }
                out.extend_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2)]);
            }
            (c, d) => {
                let (c, d) = (sextet(c)?, sextet(d)?);
                out.extend_from_slice(&[(a << 2) | (b >> 4), (b << 4) | (c >> 2), (c << 6) | d]);
            }
        }
    }
    Ok(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of one base64 character; `=` and everything outside the alphabet are errors.
fn sextet(c: u8) -> Result<u8, SaslError> {
    match c {
        b'A'..=b'Z' => Ok(c - b'A'),
        b'a'..=b'z' => Ok(c - b'a' + 26),
        b'0'..=b'9' => Ok(c - b'0' + 52),
        b'+' => Ok(62),
        b'/' => Ok(63),
        _ => Err(SaslError::Base64),
    }
}

/// A PLAIN or LOGIN field: UTF-8 (RFC 4616 §2 `SAFE`), within [`MAX_FIELD`].
fn field(bytes: &[u8]) -> Result<String, SaslError> {
    if bytes.len() > MAX_FIELD {
        return Err(SaslError::FieldTooLong);
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(authzid: &str, authcid: &str, password: &str) -> PlainCredentials {
        PlainCredentials {
            authzid: authzid.into(),
            authcid: authcid.into(),
            password: password.into(),
        }
    }

    #[test]
    fn responses_decode_per_rfc_4954() {
        use Response::*;
        let cases: &[(&[u8], Result<Response, SaslError>)] = &[
            (b"*", Ok(Cancel)),
            (b" * ", Ok(Cancel)),
            (b"=", Ok(Data(vec![]))),
            (b"", Ok(Data(vec![]))),
            (b"AHVzZXIAcGFzcw==", Ok(Data(b"\0user\0pass".to_vec()))),
            (b"AHVzZXIAcGFzcw==  ", Ok(Data(b"\0user\0pass".to_vec()))),
            (b"YWI=", Ok(Data(b"ab".to_vec()))),
            (b"YWJj", Ok(Data(b"abc".to_vec()))),
            (b"+/+/", Ok(Data(vec![0xfb, 0xff, 0xbf]))),
            (b"**", Err(SaslError::Base64)),
            (b"==", Err(SaslError::Base64)),
            (b"!!!notbase64", Err(SaslError::Base64)),
            (b"YWI", Err(SaslError::Base64)),
            (b"YWI=YWJj", Err(SaslError::Base64)),
            (b"YW=j", Err(SaslError::Base64)),
            (b"Y===", Err(SaslError::Base64)),
            (b"====", Err(SaslError::Base64)),
            (b"YWJ=", Err(SaslError::Base64)), // stray bits: not canonical
            (b"YR==", Err(SaslError::Base64)),
            (b"YW Jj", Err(SaslError::Base64)),
            (b"YWJj\r", Ok(Data(b"abc".to_vec()))),
            (b"YW\0j", Err(SaslError::Base64)),
            (b"YW-_", Err(SaslError::Base64)), // the URL-safe alphabet is not SASL's
            (b"\xc3\xa4bcd", Err(SaslError::Base64)),
        ];
        for (line, want) in cases {
            assert_eq!(&decode_response(line), want, "{:?}", line.escape_ascii());
        }
    }

    #[test]
    fn a_response_line_over_the_limit_is_too_long() {
        let ok = "A".repeat(MAX_RESPONSE_LINE);
        assert!(decode_response(ok.as_bytes()).is_ok());
        let long = "A".repeat(MAX_RESPONSE_LINE + 4);
        assert_eq!(decode_response(long.as_bytes()), Err(SaslError::TooLong));
    }

    #[test]
    fn base64_round_trips_at_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..data.len() {
            let encoded = encode_base64(&data[..len]);
            assert_eq!(encoded.len(), len.div_ceil(3) * 4);
            assert_eq!(
                decode_base64(encoded.as_bytes()).as_deref(),
                Ok(&data[..len])
            );
        }
        assert_eq!(encode_base64(b"Username:"), "VXNlcm5hbWU6");
        assert_eq!(encode_base64(b"Password:"), "UGFzc3dvcmQ6");
    }

    #[test]
    fn plain_messages_split_into_three_fields_per_rfc_4616() {
        use SaslError::*;
        let long = "x".repeat(MAX_FIELD + 1);
        let max = "x".repeat(MAX_FIELD);
        let cases: Vec<(Vec<u8>, Result<PlainCredentials, SaslError>)> = vec![
            (b"\0user\0pass".to_vec(), Ok(plain("", "user", "pass"))),
            (
                b"admin\0user\0pass".to_vec(),
                Ok(plain("admin", "user", "pass")),
            ),
            (
                "\0jörg@bücher.de\0päss wörd".as_bytes().to_vec(),
                Ok(plain("", "jörg@bücher.de", "päss wörd")),
            ),
            (
                format!("\0{max}\0{max}").into_bytes(),
                Ok(plain("", &max, &max)),
            ),
            (b"user\0pass".to_vec(), Err(PlainSyntax)),
            (b"userpass".to_vec(), Err(PlainSyntax)),
            (b"".to_vec(), Err(PlainSyntax)),
            (b"\0user\0pass\0".to_vec(), Err(PlainSyntax)),
            (b"a\0user\0pa\0ss".to_vec(), Err(PlainSyntax)),
            (b"\0\0pass".to_vec(), Err(Empty)),
            (b"\0user\0".to_vec(), Err(Empty)),
            (b"\0\0".to_vec(), Err(Empty)),
            (b"\0us\xffer\0pass".to_vec(), Err(NotUtf8)),
            (b"\0user\0pa\xc3ss".to_vec(), Err(NotUtf8)),
            (b"\xc0\x80\0user\0pass".to_vec(), Err(NotUtf8)),
            (format!("\0{long}\0pass").into_bytes(), Err(FieldTooLong)),
            (format!("\0user\0{long}").into_bytes(), Err(FieldTooLong)),
            (
                format!("{long}\0user\0pass").into_bytes(),
                Err(FieldTooLong),
            ),
        ];
        for (message, want) in cases {
            assert_eq!(parse_plain(&message), want, "{:?}", message.escape_ascii());
        }
    }

    #[test]
    fn login_fields_are_utf8_without_nul() {
        assert_eq!(
            parse_login_field(b"alice@example.test").as_deref(),
            Ok("alice@example.test")
        );
        assert_eq!(parse_login_field(b"").as_deref(), Ok(""));
        assert_eq!(
            parse_login_field("pässwörd".as_bytes()).as_deref(),
            Ok("pässwörd")
        );
        assert_eq!(parse_login_field(b"al\0ice"), Err(SaslError::NotUtf8));
        assert_eq!(parse_login_field(b"al\xffice"), Err(SaslError::NotUtf8));
        let long = "x".repeat(MAX_FIELD + 1);
        assert_eq!(
            parse_login_field(long.as_bytes()),
            Err(SaslError::FieldTooLong)
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let creds = parse_plain(b"\0user\0hunter2").unwrap();
        assert!(!format!("{creds:?}").contains("hunter2"));
        let response = decode_response(encode_base64(b"\0user\0hunter2").as_bytes()).unwrap();
        assert!(!format!("{response:?}").contains("hunter2"));
    }
}
