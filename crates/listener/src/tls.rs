//! TLS server configuration: TLS 1.2 and 1.3 only, ring as the crypto provider.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate; it should contain \"-----BEGIN CERTIFICATE-----\"")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoKey { path: PathBuf },
    #[error("the certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
    #[error("cannot make the self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Loads the configured certificate and key, or (with `files` = None) the self-signed pair in
/// `<data_dir>/tls`, making it on first use for `hostname` and `localhost`.
/// Returns the config and the certificate file actually used.
pub fn load_tls(
    files: Option<(PathBuf, PathBuf)>,
    data_dir: &Path,
    hostname: &str,
) -> Result<(Arc<ServerConfig>, PathBuf), TlsError> {
    let (cert, key) = match files {
        Some(pair) => pair,
        None => self_signed(data_dir, hostname)?,
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&cert)?;
    let key_pem = read(&key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| TlsError::NoKey { path: key.clone() })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Mismatch)?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(TlsError::Mismatch)?;
    Ok((Arc::new(config), cert))
}

pub fn tls_acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

fn self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.clone(),
        source,
    })?;
    let mut names = vec![hostname.to_string()];
    if hostname != "localhost" {
        names.push("localhost".into());
    }
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: cert.clone(),
        source,
    })?;
    tracing::info!(certificate = %cert.display(), "made a self-signed certificate for {hostname}");
    Ok((cert, key))
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

    #[test]
    fn a_self_signed_certificate_is_made_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (_, first) = load_tls(None, dir.path(), "mx.test").unwrap();
        let pem = std::fs::read(&first).unwrap();
        let (_, second) = load_tls(None, dir.path(), "mx.test").unwrap();
        assert_eq!(first, second);
        assert_eq!(pem, std::fs::read(&second).unwrap());
    }

    #[test]
    fn a_missing_certificate_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_tls(
            Some((dir.path().join("nope.pem"), dir.path().join("k.pem"))),
            dir.path(),
            "x",
        )
        .unwrap_err();
        assert!(err.to_string().contains("nope.pem"), "{err}");
    }
}
