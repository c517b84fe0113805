//! xtext (RFC 3461 §4): `+XX` hex escapes for octets outside `!`..`~` and for `+` and `=`.

/// Decodes xtext. `None` when it is malformed (a `+` not followed by two upper-case hex digits,
/// or a character outside the xtext alphabet).
pub fn decode(input: &str) -> Option<String> {
    let _ = input;
    todo!("smtp-codec helper")
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
