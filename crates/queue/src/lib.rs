//! The queue: intake, the one function every message passes to enter it, and the delivery
//! scheduler that moves queued messages into mailboxes or hands them to `outbound`.
//!
//! What it must not do: talk to clients or decide who may send (the SMTP server did that before
//! calling intake), or touch storage except through the `store` trait.
//!
//! # Security
//! Message headers are untrusted: intake only scans them (bounded by the header section it is
//! given) to count Received lines and look for Message-ID and Date; it never rewrites them.
#![forbid(unsafe_code)]

mod bounce;
mod date;
mod delivery;
mod handoff;
mod headers;
mod intake;

pub use date::{iso_datetime, rfc5322_date};
pub use delivery::{DeliverySettings, Scheduler};
pub use intake::{AcceptedRecipient, Intake, IntakeError, LanePolicy, Origin, Submission};
