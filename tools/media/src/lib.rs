//! RTP tooling for mafalda-host's demo, tests and benchmarks — not part of the host's API.
//!
//! - [`media`]: an Opus + VP8 router, the RTP parameters of plain senders, the capabilities of a
//!   plain receiver, loopback listen infos;
//! - [`rtp`]: a sans-IO RTP packet codec, self-verifying payloads, a paced generator feeding a
//!   PlainTransport (mediasoup's or mafalda's) and a sink receiving what consumers send.

#![warn(missing_docs)]

pub mod media;
pub mod rtp;
