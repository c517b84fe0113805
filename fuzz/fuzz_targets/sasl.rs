//! SASL responses (AUTH, RFC 4954) from arbitrary bytes: decoding never panics, a decoded
//! response is canonical (encoding it again gives the line back), base64 round-trips any bytes,
//! and a PLAIN or LOGIN message that parses keeps to the RFC 4616 limits and rebuilds to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::sasl::{
    MAX_FIELD, MAX_RESPONSE_LINE, Response, decode_base64, decode_response, encode_base64,
    parse_login_field, parse_plain,
};

fuzz_target!(|data: &[u8]| {
    // The line as a client sent it.
    match decode_response(data) {
        Ok(Response::Cancel) => assert_eq!(data.trim_ascii(), b"*"),
        Ok(Response::Data(decoded)) => {
            let text = data.trim_ascii();
            if text != b"=" {
                assert_eq!(encode_base64(&decoded).as_bytes(), text);
            }
            assert!(decoded.len() <= text.len());
            check_message(&decoded);
        }
        Err(_) => {
            assert!(data.len() > MAX_RESPONSE_LINE || decode_base64(data.trim_ascii()).is_err())
        }
    }
    // The bytes as a decoded message.
    let encoded = encode_base64(data);
    assert_eq!(decode_base64(encoded.as_bytes()).as_deref(), Ok(data));
    check_message(data);
});

fn check_message(message: &[u8]) {
    if let Ok(c) = parse_plain(message) {
        assert!(!c.authcid.is_empty() && !c.password.is_empty());
        for f in [&c.authzid, &c.authcid, &c.password] {
            assert!(f.len() <= MAX_FIELD && !f.contains('\0'));
        }
        let rebuilt = format!("{}\0{}\0{}", c.authzid, c.authcid, c.password);
        assert_eq!(rebuilt.as_bytes(), message);
    }
    if let Ok(f) = parse_login_field(message) {
        assert_eq!(f.as_bytes(), message);
        assert!(f.len() <= MAX_FIELD && !f.contains('\0'));
    }
}
