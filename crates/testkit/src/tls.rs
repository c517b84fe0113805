//! TLS helpers for tests: certificates made on the spot (with chosen names and validity), a
//! handshake that reports which certificate and protocol version the server chose (with or
//! without SNI, implicit TLS or STARTTLS), and a hand-made TLS 1.0/1.1 ClientHello, since no
//! modern client library can still send one.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A certificate with its private key, both PEM, and the certificate's DER.
pub struct TestCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: Vec<u8>,
}

impl TestCert {
    /// A self-signed certificate (ECDSA P-256) for `names`, valid from a day ago until
    /// `days` days (and an hour) from now; a negative `days` makes an expired one.
    pub fn new(names: &[&str], days: i64) -> TestCert {
        let now = time::OffsetDateTime::now_utc();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("certificate names");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("test"),
        );
        params.not_after = now + time::Duration::days(days) + time::Duration::hours(1);
        params.not_before =
            (now - time::Duration::days(1)).min(params.not_after - time::Duration::days(2));
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed certificate");
        TestCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// Writes the certificate and the key, each to a temporary file renamed into place (as
    /// certificate tools do, so a reader never sees half a file).
    pub fn write(&self, cert: &Path, key: &Path) {
        write_atomically(cert, self.cert_pem.as_bytes());
        write_atomically(key, self.key_pem.as_bytes());
    }
}

fn write_atomically(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, data).expect("write certificate file");
    std::fs::rename(&tmp, path).expect("rename certificate file");
}

/// What a handshake found.
#[derive(Debug)]
pub struct Handshake {
    /// The server's certificate (DER).
    pub leaf: Vec<u8>,
    /// "TLSv1_2" or "TLSv1_3".
    pub version: String,
}

/// Which protocol versions the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Versions {
    Both,
    Tls12Only,
    Tls13Only,
}

/// Implicit TLS to `127.0.0.1:port`, sending `sni` (or no SNI), accepting any certificate.
pub fn handshake(port: u16, sni: Option<&str>, versions: Versions) -> anyhow::Result<Handshake> {
    let tcp = connect(port)?;
    finish_handshake(tcp, sni, versions)
}

/// Plain SMTP to `127.0.0.1:port`, EHLO, STARTTLS, then the handshake as [`handshake`] does.
pub fn starttls_handshake(
    port: u16,
    sni: Option<&str>,
    versions: Versions,
) -> anyhow::Result<Handshake> {
    let mut tcp = connect(port)?;
    read_reply(&mut tcp)?;
    tcp.write_all(b"EHLO client.test\r\n")?;
    read_reply(&mut tcp)?;
    tcp.write_all(b"STARTTLS\r\n")?;
    let r = read_reply(&mut tcp)?;
    anyhow::ensure!(r.starts_with("220"), "STARTTLS refused: {r}");
    finish_handshake(tcp, sni, versions)
}

fn connect(port: u16) -> anyhow::Result<TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(tcp)
}

/// Reads one SMTP reply byte by byte (so nothing after it is consumed) and returns its text.
fn read_reply(tcp: &mut TcpStream) -> anyhow::Result<String> {
    let mut all = String::new();
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        anyhow::ensure!(tcp.read(&mut byte)? == 1, "connection closed");
        line.push(byte[0]);
        if line.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&line).into_owned();
            all.push_str(&text);
            if text.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
            line.clear();
        }
    }
}

fn finish_handshake(
    mut tcp: TcpStream,
    sni: Option<&str>,
    versions: Versions,
) -> anyhow::Result<Handshake> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone());
    let builder = match versions {
        Versions::Both => builder.with_safe_default_protocol_versions(),
        Versions::Tls12Only => builder.with_protocol_versions(&[&rustls::version::TLS12]),
        Versions::Tls13Only => builder.with_protocol_versions(&[&rustls::version::TLS13]),
    }?;
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    // An IP address as the server name means no SNI at all (RFC 6066 §3: names only).
    let name = match sni {
        Some(n) => ServerName::try_from(n.to_string())?,
        None => ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    let mut conn = ClientConnection::new(Arc::new(config), name)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)?;
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec())
        .ok_or_else(|| anyhow::anyhow!("no server certificate"))?;
    let version = conn
        .protocol_version()
        .and_then(|v| v.as_str())
        .unwrap_or("?")
        .to_string();
    Ok(Handshake { leaf, version })
}

/// Trusts any certificate (the tests look at which one was sent), but still checks that the
/// server holds its key.
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How a server answered a hand-made ClientHello.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloAnswer {
    /// A ServerHello with this legacy version (the handshake would go on).
    ServerHello([u8; 2]),
    /// A TLS alert with this description (70: protocol_version).
    Alert(u8),
    /// The connection closed without an answer.
    Closed,
    /// Something else (the first bytes).
    Other(Vec<u8>),
}

/// Sends a ClientHello that offers only `version` ([3, 1] TLS 1.0, [3, 2] TLS 1.1, [3, 3]
/// TLS 1.2; no supported_versions extension, so no TLS 1.3) with ECDHE-ECDSA/RSA suites, CBC and
/// GCM, over implicit TLS to `127.0.0.1:port`, and says how the server answered.
pub fn legacy_hello(port: u16, version: [u8; 2]) -> anyhow::Result<HelloAnswer> {
    let mut tcp = connect(port)?;
    tcp.write_all(&client_hello(version, "localhost"))?;
    let mut head = [0u8; 11];
    let mut got = 0;
    while got < head.len() {
        match tcp.read(&mut head[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    Ok(match (got, head[0]) {
        (0, _) => HelloAnswer::Closed,
        // Record: type, version(2), length(2); alert: level, description.
        (7.., 0x15) => HelloAnswer::Alert(head[6]),
        // Record header, then handshake type 2 (ServerHello), length(3), version(2).
        (11, 0x16) if head[5] == 2 => HelloAnswer::ServerHello([head[9], head[10]]),
        _ => HelloAnswer::Other(head[..got].to_vec()),
    })
}

/// A TLS ClientHello record (RFC 5246 §7.4.1.2) offering only `version`.
fn client_hello(version: [u8; 2], sni: &str) -> Vec<u8> {
    fn u16be(n: usize) -> [u8; 2] {
        (n as u16).to_be_bytes()
    }
    let mut body = Vec::new();
    body.extend_from_slice(&version);
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    // ECDHE-ECDSA/RSA with AES-GCM, ChaCha20 and AES-CBC.
    let suites: [u16; 8] = [
        0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc009, 0xc013,
    ];
    body.extend_from_slice(&u16be(suites.len() * 2));
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut ext = Vec::new();
    let name = sni.as_bytes();
    ext.extend_from_slice(&[0x00, 0x00]); // server_name
    ext.extend_from_slice(&u16be(name.len() + 5));
    ext.extend_from_slice(&u16be(name.len() + 3));
    ext.push(0); // host_name
    ext.extend_from_slice(&u16be(name.len()));
    ext.extend_from_slice(name);
    // supported_groups: x25519, secp256r1, secp384r1.
    ext.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
    ]);
    // ec_point_formats: uncompressed.
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ]);
    body.extend_from_slice(&u16be(ext.len()));
    body.extend(ext);
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16be(handshake.len()));
    record.extend(handshake);
    record
}
