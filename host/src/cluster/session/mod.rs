//! Sessions, sans-IO. A session is one caller's objects on this host and the events they
//! raise; it outlives a dropped connection for a grace period, so the caller can come back and
//! resume it. Everything that decides *who* gets a session and *what* it keeps lives here as
//! pure state driven by `(input, now)`: [`SessionBook`] admits new sessions under limits,
//! resumes one only for the caller that holds its 128-bit secret (same role, same identity, a
//! fresh token), numbers events and keeps them for replay, attaches and detaches connections by
//! their own id (an old connection ending late cannot deafen a newer one), and ends sessions
//! whose grace ran out. The server (`cluster::server`) owns sockets and objects and carries out
//! what the book answers, and answers each request id once ([`Replies`]: a request sent again
//! after a resume gets its first reply). [`LinkSession`] is the calling side's half: what the
//! next hello resumes, requests waiting (sent again after a resume) and their deadlines,
//! events seen once each, when a silent host leaves placement and when it counts as lost;
//! [`Routes`] holds an object's first events until its sink registers; [`EventBudget`] bounds
//! the trace events a session may send per second.

mod book;
mod budget;
mod events;
mod limits;
mod link;
mod replies;
mod routes;

pub use book::{Admitted, Claim, ConnectionId, Refusal, ResumeAsk, Secret, SessionBook, SessionId};
pub use budget::EventBudget;
pub use limits::SessionLimits;
pub use link::{LinkSession, Welcomed};
pub use replies::{Arrival, Replies};
pub use routes::Routes;

#[cfg(test)]
mod tests;
