//! What a certificate says about itself: names, issuer, validity. Used to pick certificates by
//! SNI when no host names are configured, to log what was loaded, and by `postrider tls check`.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The facts of one X.509 certificate that an operator needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// The subject's distinguished name, e.g. "CN=mail.example.com".
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The DNS names of the subject alternative name extension, lower-case, as written
    /// (`*.example.com` included). Empty when the certificate has none.
    pub dns_names: Vec<String>,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
}

impl CertInfo {
    /// Reads a DER certificate.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
        let dns_names = match cert.subject_alternative_name() {
            Ok(Some(san)) => san
                .value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some(d.trim_end_matches('.').to_ascii_lowercase()),
                    _ => None,
                })
                .collect(),
            Ok(None) => Vec::new(),
            Err(e) => return Err(format!("bad subject alternative name extension: {e}")),
        };
        let validity = cert.validity();
        Ok(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            dns_names,
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Whole days from `now` (unix seconds) to the end of validity; negative once expired.
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    /// Whether the certificate is valid at `now`.
    pub fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    /// Whether the subject issued the certificate to itself (issuer equals subject).
    pub fn self_signed(&self) -> bool {
        self.subject == self.issuer
    }

    /// Whether `host` is one of the certificate's DNS names, a `*.` name covering one label
    /// (RFC 6125 §6.4.3: `*.example.com` covers `a.example.com`, not `a.b.example.com`).
    pub fn covers(&self, host: &str) -> bool {
        let host = normalize_name(host);
        self.dns_names.iter().any(|n| name_matches(n, &host))
    }
}

/// Lower-cases a host name and drops a trailing dot.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the pattern (a host name, or `*.` and a host name) matches the normalized host.
pub(crate) fn name_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// Formats unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(secs: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{secs} (unix time)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_issuer_and_validity_are_read_from_a_certificate() {
        let mut params =
            rcgen::CertificateParams::new(vec!["Mail.Example.com".into(), "*.example.net".into()])
                .unwrap();
        params.not_before = rcgen::date_time_ymd(2025, 1, 1);
        params.not_after = rcgen::date_time_ymd(2026, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_der(cert.der()).unwrap();
        assert_eq!(info.dns_names, vec!["mail.example.com", "*.example.net"]);
        assert!(info.self_signed());
        assert_eq!(format_time(info.not_before), "2025-01-01 00:00:00 UTC");
        assert_eq!(info.days_left(info.not_after - 86_400 * 3 - 5), 3);
        assert!(info.days_left(info.not_after + 1) < 0);
        assert!(info.covers("MAIL.example.com."));
        assert!(info.covers("a.example.net"));
        assert!(!info.covers("example.net"));
        assert!(!info.covers("a.b.example.net"));
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert!(CertInfo::from_der(b"not der").is_err());
    }
}
