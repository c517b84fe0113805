//! Listening sockets for every protocol front end: the accept loop with connection caps (in
//! total and per client IP), TLS (1.2 and 1.3 only; a default certificate from files, or a
//! self-signed one made on first start and reused; more certificates chosen by SNI; all of them
//! reloaded for new handshakes when their files change or on request, without touching open
//! connections), and a stream type that can switch to TLS mid-session (STARTTLS).
//!
//! What it must not do: speak any mail protocol. A front end gets the accepted stream, or, when
//! a cap is hit, the stream and the reason so it can refuse in its own protocol.
//!
//! # Security
//! Holds the TLS private keys (read from disk, or generated and written with mode 0600). The
//! SNI name a client sends is untrusted: it only selects among configured certificates, and an
//! unknown name gets the default one. Caps bound what one client, or all of them, can take;
//! per-IP counts are released on drop.
#![forbid(unsafe_code)]

mod accept;
mod certinfo;
mod certs;
mod limits;
mod stream;
mod tls;

pub use accept::serve;
pub use certinfo::{CertInfo, format_time};
pub use certs::{
    Certificates, ReloadReport, Served, SniCertificate, TlsSources, watch_certificates,
};
pub use limits::{ConnectionGuard, ConnectionLimits, Refusal};
pub use stream::MaybeTls;
pub use tls::{
    CertificateFiles, LoadedCertificate, TlsError, load_certificate, make_self_signed,
    self_signed_files, server_config, tls_acceptor,
};
