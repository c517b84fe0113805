//! Test helpers (dev only): run the real `postrider` binary on free loopback ports with its own
//! data directory, run admin commands against it, and talk SMTP to it over real sockets, plain
//! or TLS (the client trusts exactly the server's self-signed certificate).
//!
//! Everything here talks to 127.0.0.0/8 only ([`TestDns`] listens on a 127.0.0.x address).

mod client;
mod dns;
mod server;
pub mod tls;

pub use client::{Conn, Reply};
pub use dns::TestDns;

/// Base64 (standard alphabet, padded) for SASL test credentials.
pub fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let byte = |i: usize| u32::from(*chunk.get(i).unwrap_or(&0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
pub use server::{Ports, TestServer};
