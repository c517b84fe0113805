//! DKIM keys: generation and the DNS TXT record that publishes the public half
//! (RFC 6376 §3.6.1).

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// rsa-sha256 with a 2048-bit key (RFC 8301 §3.2: at least 1024, 2048 recommended).
    Rsa,
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" | "rsa-sha256" => Some(Algorithm::Rsa),
            "ed25519" | "ed25519-sha256" => Some(Algorithm::Ed25519),
            _ => None,
        }
    }
}

/// A generated key pair: the private key as DER (PKCS#1 for RSA, PKCS#8 for Ed25519, the forms
/// mail-auth signs with) and the public key as published in DNS.
pub struct KeyPair {
    pub algorithm: Algorithm,
    pub private_der: Vec<u8>,
    pub public: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
#[error("generating the DKIM key failed: {0}")]
pub struct KeyError(String);

/// Bits of a generated RSA key.
pub const RSA_BITS: usize = 2048;

/// Generates a new key pair.
pub fn generate(algorithm: Algorithm) -> Result<KeyPair, KeyError> {
    let pair = match algorithm {
        Algorithm::Rsa => mail_auth::dkim::generate::DkimKeyPair::generate_rsa(RSA_BITS),
        Algorithm::Ed25519 => mail_auth::dkim::generate::DkimKeyPair::generate_ed25519(),
    }
    .map_err(|e| KeyError(e.to_string()))?;
    let (private_der, public) = pair.into_inner();
    Ok(KeyPair {
        algorithm,
        private_der,
        public,
    })
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The TXT record value for a public key: `v=DKIM1; k=rsa; p=...` (RFC 6376 §3.6.1; `k=ed25519`
/// per RFC 8463 §4.2).
pub fn txt_record(algorithm: Algorithm, public: &[u8]) -> String {
    format!("v=DKIM1; k={}; p={}", algorithm.as_str(), base64(public))
}

/// The record as zone-file text: `NAME IN TXT ( "..." "..." )`, the value cut into strings of at
/// most 255 octets (RFC 1035 §3.3.14; an RSA-2048 record does not fit one).
pub fn zone_line(selector: &str, domain: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        parts.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;

    #[test]
    fn generated_keys_publish_records_a_verifier_parses() {
        for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
            let pair = generate(algorithm).unwrap();
            let record = txt_record(algorithm, &pair.public);
            assert!(record.starts_with("v=DKIM1; k="), "{record}");
            // mail-auth's own record parser accepts what we publish.
            DomainKey::parse(record.as_bytes()).unwrap();
            let line = zone_line("s1", "example.com", &record);
            assert!(line.starts_with("s1._domainkey.example.com. IN TXT ( \""));
            // Joined back, the strings are the record.
            let joined: String = line
                .split('"')
                .skip(1)
                .step_by(2)
                .collect::<Vec<_>>()
                .concat();
            assert_eq!(joined, record);
        }
    }

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
