//! mafalda-host: a mediasoup-shaped SFU host that spreads one logical Router over many real
//! mediasoup workers (and, later, hosts), with placement decided by plugins.
//!
//! Module map:
//! - [`pool`]: the local mediasoup workers (spawn, close, CPU time per worker thread);
//! - [`media`]: codec and RTP parameter presets used by the demo, tests and benchmarks;
//! - [`rtp`]: RTP codec, the built-in generator and receiving sinks;
//! - [`demo`]: the `mafalda-host demo` job;
//! - [`shutdown`]: Ctrl-C / SIGTERM handling shared by the binary's commands.

#![warn(missing_docs)]

pub mod demo;
pub mod media;
pub mod pool;
pub mod rtp;
pub mod shutdown;
