//! Sender authentication: DKIM keys now (RFC 6376, Ed25519 per RFC 8463); signing, and SPF,
//! DKIM and DMARC checks of inbound mail, come next. The crypto and record parsing are
//! mail-auth's; callers only see the types here.
//!
//! What it must not do: store keys (the `store` crate does) or do DNS lookups of its own.
#![forbid(unsafe_code)]

pub mod dkim;
