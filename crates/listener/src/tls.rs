//! TLS server configuration (TLS 1.2 and 1.3 only, ring as the crypto provider), loading a
//! certificate chain and its key from PEM files, and the self-signed pair made on first start.

use crate::certinfo::CertInfo;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Each message says what is wrong and what to do about it: operators read these in the log
/// after a reload and in `postrider tls check`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(
        "cannot read {path}: {source}; check the path in the config and that the user running postrider may read it"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no PEM certificate; it should contain \"-----BEGIN CERTIFICATE-----\" blocks, the server's certificate first, then its intermediates (e.g. Let's Encrypt's fullchain.pem)"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "{path}: the first certificate cannot be read ({reason}); replace the file with the PEM certificate chain you were issued"
    )]
    BadCertificate { path: PathBuf, reason: String },
    #[error(
        "{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1 expected); was the certificate given as the key, or is the key encrypted? Give the unencrypted key file (e.g. Let's Encrypt's privkey.pem)"
    )]
    NoKey { path: PathBuf },
    #[error(
        "{path}: this private key cannot be used ({reason}); RSA (2048 bits or more), ECDSA P-256/P-384 and Ed25519 keys work"
    )]
    UnsupportedKey { path: PathBuf, reason: String },
    #[error(
        "the private key in {key} does not belong to the certificate in {certificate}; give the key the certificate was issued for, and put the server's own certificate first in the file"
    )]
    Mismatch { certificate: PathBuf, key: PathBuf },
    #[error(
        "{path} names no host (no DNS subject alternative names); list the names it should serve in hostnames"
    )]
    NoNames { path: PathBuf },
    #[error("cannot set up TLS: {0}")]
    Setup(rustls::Error),
    #[error("cannot make the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A certificate chain file and the file of its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

/// A certificate chain with its key, ready to serve, and what the certificate says.
#[derive(Debug, Clone)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
    /// Certificates in the file: the server's own and its intermediates.
    pub chain_len: usize,
}

/// Reads and checks a certificate chain and its key: the certificate parses, the key is
/// usable, and the key is the one the certificate was issued for.
pub fn load_certificate(files: &CertificateFiles) -> Result<LoadedCertificate, TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let (cert_path, key_path) = (&files.certificate, &files.private_key);
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    let Some(leaf) = chain.first() else {
        return Err(TlsError::NoCertificate {
            path: cert_path.clone(),
        });
    };
    let info = CertInfo::from_der(leaf).map_err(|reason| TlsError::BadCertificate {
        path: cert_path.clone(),
        reason,
    })?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: key_path.clone(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::UnsupportedKey {
            path: key_path.clone(),
            reason: e.to_string(),
        })?;
    let chain_len = chain.len();
    let key = CertifiedKey::new(chain, signing);
    match key.keys_match() {
        // A key type whose public half rustls cannot derive is not known to be wrong.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => {
            return Err(TlsError::Mismatch {
                certificate: cert_path.clone(),
                key: key_path.clone(),
            });
        }
    }
    Ok(LoadedCertificate {
        key: Arc::new(key),
        info,
        chain_len,
    })
}

/// The server configuration: TLS 1.3 and 1.2 only (no 1.1, 1.0 or SSL), no client
/// certificates, the certificate picked by `resolver` for each handshake.
pub fn server_config(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let config = ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    Ok(Arc::new(config))
}

pub fn tls_acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

/// Where the self-signed pair lives in a data directory (whether or not it was made yet).
pub fn self_signed_files(data_dir: &Path) -> CertificateFiles {
    let dir = data_dir.join("tls");
    CertificateFiles {
        certificate: dir.join("self-signed.crt"),
        private_key: dir.join("self-signed.key"),
    }
}

fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The self-signed pair in `<data_dir>/tls`, made on first use for `hostname` and `localhost`
/// (the key with mode 0600), and reused as it is after that.
pub fn make_self_signed(data_dir: &Path, hostname: &str) -> Result<CertificateFiles, TlsError> {
    let files = self_signed_files(data_dir);
    let (cert, key) = (&files.certificate, &files.private_key);
    let dir = data_dir.join("tls");
    if cert.is_file() && key.is_file() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".into());
    }
    // Named after the host (not rcgen's placeholder), valid from yesterday for ten years, so
    // `postrider tls check` and clients show something meaningful.
    let generate = || -> Result<(rcgen::Certificate, rcgen::KeyPair), rcgen::Error> {
        let mut params = rcgen::CertificateParams::new(names)?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, hostname);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Postrider (self-signed)");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(3650);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok((cert, key))
    };
    let (generated, signing_key) = generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(key, signing_key.serialize_pem().as_bytes())?;
    std::fs::write(cert, generated.pem()).map_err(|source| TlsError::Write {
        path: cert.clone(),
        source,
    })?;
    tracing::info!(certificate = %cert.display(), "made a self-signed certificate for {hostname}");
    Ok(files)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(data).map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, hosts: &[&str]) -> CertificateFiles {
        let c = rcgen::generate_simple_self_signed(
            hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let files = CertificateFiles {
            certificate: dir.join(format!("{name}.crt")),
            private_key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.certificate, c.cert.pem()).unwrap();
        std::fs::write(&files.private_key, c.signing_key.serialize_pem()).unwrap();
        files
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = make_self_signed(dir.path(), "mx.test").unwrap();
        let pem = std::fs::read(&first.certificate).unwrap();
        let second = make_self_signed(dir.path(), "mx.test").unwrap();
        assert_eq!(first, second);
        assert_eq!(pem, std::fs::read(&second.certificate).unwrap());
        let loaded = load_certificate(&second).unwrap();
        assert_eq!(loaded.info.dns_names, vec!["mx.test", "localhost"]);
    }

    #[test]
    fn a_missing_certificate_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_certificate(&CertificateFiles {
            certificate: dir.path().join("nope.pem"),
            private_key: dir.path().join("k.pem"),
        })
        .unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_with_both_files_named() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", &["a.test"]);
        let b = write_pair(dir.path(), "b", &["b.test"]);
        let err = load_certificate(&CertificateFiles {
            certificate: a.certificate.clone(),
            private_key: b.private_key.clone(),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Mismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("a.crt") && text.contains("b.key"), "{text}");
    }

    #[test]
    fn swapped_certificate_and_key_files_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let a = write_pair(dir.path(), "a", &["a.test"]);
        let err = load_certificate(&CertificateFiles {
            certificate: a.private_key.clone(),
            private_key: a.certificate.clone(),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        std::fs::write(
            &a.certificate,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_certificate(&a).unwrap_err();
        assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");
    }
}
