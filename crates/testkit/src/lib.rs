//! Test helpers (dev only): run the real `postrider` binary on free loopback ports with its own
//! data directory, run admin commands against it, and talk SMTP to it over real sockets, plain
//! or TLS (the client trusts exactly the server's self-signed certificate).
//!
//! Everything here talks to 127.0.0.1 only.

mod client;
mod server;

pub use client::{Conn, Reply};
pub use server::{Ports, TestServer};
