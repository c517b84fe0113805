//! Listening sockets for every protocol front end: the accept loop with connection caps (in
//! total and per client IP), TLS configuration (a real certificate from files, or a self-signed
//! one made on first start and reused), and a stream type that can switch to TLS mid-session
//! (STARTTLS).
//!
//! What it must not do: speak any mail protocol. A front end gets the accepted stream, or, when
//! a cap is hit, the stream and the reason so it can refuse in its own protocol.
//!
//! # Security
//! Holds the TLS private key (read from disk, or generated and written with mode 0600). Caps
//! bound what one client, or all of them, can take; per-IP counts are released on drop.
#![forbid(unsafe_code)]

mod accept;
mod limits;
mod stream;
mod tls;

pub use accept::serve;
pub use limits::{ConnectionGuard, ConnectionLimits, Refusal};
pub use stream::MaybeTls;
pub use tls::{TlsError, load_tls, tls_acceptor};
