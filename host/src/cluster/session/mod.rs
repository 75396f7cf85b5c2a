//! Sessions, sans-IO. A session is one caller's objects on this host and the events they
//! raise; it outlives a dropped connection for a grace period, so the caller can come back and
//! resume it. Everything that decides *who* gets a session and *what* it keeps lives here as
//! pure state driven by `(input, now)`: [`SessionBook`] admits new sessions under limits,
//! resumes one only for the caller that holds its 128-bit secret (same role, same identity, a
//! fresh token), numbers events and keeps them for replay, attaches and detaches connections by
//! their own id (an old connection ending late cannot deafen a newer one), and ends sessions
//! whose grace ran out. The server (`cluster::server`) owns sockets and objects and carries out
//! what the book answers. [`LinkSession`] is the calling side's half: what the next hello
//! resumes, request ids and deadlines, events seen once each, and when a host counts as lost.

mod book;
mod events;
mod limits;
mod link;

pub use book::{Admitted, Claim, ConnectionId, Refusal, ResumeAsk, Secret, SessionBook, SessionId};
pub use limits::SessionLimits;
pub use link::{LinkSession, Welcomed};

#[cfg(test)]
mod tests;
