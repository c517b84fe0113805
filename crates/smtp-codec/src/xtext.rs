//! xtext (RFC 3461 §4): `+XX` hex escapes for octets outside `!`..`~` and for `+` and `=`.

/// Decodes xtext. `None` when it is malformed (a `+` not followed by two upper-case hex digits,
/// or a character outside the xtext alphabet).
///
/// Grammar (RFC 3461 §4): `xtext = *( xchar / hexchar )`, `xchar` any ASCII from `!` (33) to
/// `~` (126) except `+` and `=`, `hexchar = "+" 2(%x30-39 / %x41-46)`. Characters at or above
/// U+0080 are accepted literally as well, as RFC 6533 §3 (`utf-8-addr-xtext`) allows for UTF-8
/// values. The RFC 6533 `\x{HEX}` form is not decoded: a backslash is an ordinary `xchar` in
/// RFC 3461 xtext and this function does not know the address type. The decoded octets must form
/// UTF-8, else `None`.
pub fn decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => {
                let hi = hex_upper(*bytes.get(i + 1)?)?;
                let lo = hex_upper(*bytes.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'=' => return None,
            b'!'..=b'~' => {
                out.push(b);
                i += 1;
            }
            // Part of a UTF-8 sequence: `input` is a `str`, so these bytes form whole characters
            // at or above U+0080.
            0x80.. => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

/// One upper-case hex digit (RFC 3461 §4: `hexchar` uses `0`-`9` and `A`-`F` only).
fn hex_upper(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Encodes a string as xtext.
pub fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_follows_the_xtext_grammar() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", Some("")),
            ("abc", Some("abc")),
            ("user@example.com", Some("user@example.com")),
            ("!~", Some("!~")),
            ("a+2Bb", Some("a+b")),
            ("+3D", Some("=")),
            ("+20x+20", Some(" x ")),
            ("+C3+A9", Some("é")),
            ("é", Some("é")),
            ("rfc822;a", Some("rfc822;a")),
            ("\\x{41}", Some("\\x{41}")),
            ("+2b", None),
            ("+2", None),
            ("+", None),
            ("+GG", None),
            ("a=b", None),
            ("a b", None),
            ("a\tb", None),
            ("\u{7f}", None),
            ("+C3", None),
            ("+FF", None),
        ];
        for (input, want) in cases {
            assert_eq!(decode(input).as_deref(), *want, "decode({input:?})");
        }
    }

    #[test]
    fn encode_escapes_plus_equals_space_and_non_ascii() {
        assert_eq!(encode("a+b=c d"), "a+2Bb+3Dc+20d");
        assert_eq!(encode("é"), "+C3+A9");
        assert_eq!(encode("\r\n"), "+0D+0A");
    }

    #[test]
    fn decode_inverts_encode_for_every_character_class() {
        let mut samples: Vec<String> = (0u8..=0x7f).map(|b| char::from(b).to_string()).collect();
        samples.extend(
            [
                "",
                "user+tag=x@example.com",
                "ünïcödé ✉ 𝄞",
                "+2B",
                "a\u{0}b",
            ]
            .map(String::from),
        );
        let all_ascii: String = (0u8..=0x7f).map(char::from).collect();
        samples.push(all_ascii);
        for s in samples {
            assert_eq!(decode(&encode(&s)).as_deref(), Some(s.as_str()), "{s:?}");
        }
    }
}
