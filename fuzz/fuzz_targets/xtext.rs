//! xtext: decoding never panics, and decode(encode(s)) == s for any UTF-8 string.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::xtext::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(decode(&encode(s)).as_deref(), Some(s));
    if let Some(decoded) = decode(s) {
        assert!(decoded.len() <= s.len());
        assert_eq!(decode(&encode(&decoded)), Some(decoded));
    }
});
