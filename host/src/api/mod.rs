//! The mediasoup mirror: the objects an application holds — `WorkerManager`, `Worker`,
//! `WebRtcServer`, `Router`, the four transports, producers, consumers, data producers and
//! consumers, RTP observers — with mediasoup 0.33's names, options, methods and events. They
//! reach real objects only through the cell backend seam ([`crate::backend`]) and are placed,
//! piped and counted by the machinery in [`crate::internals`]. The crate root re-exports them
//! at mediasoup's module paths.

pub mod active_speaker_observer;
pub mod audio_level_observer;
pub mod consumer;
pub mod data_consumer;
pub mod data_producer;
pub mod direct_transport;
pub(crate) mod endpoint;
pub mod pipe_transport;
pub mod plain_transport;
pub mod producer;
pub mod router;
mod router_events;
mod router_pipes;
pub mod rtp_observer;
pub mod transport;
pub(crate) mod transport_core;
mod transport_macro;
pub mod webrtc_server;
pub mod webrtc_transport;
pub mod worker;
pub mod worker_manager;
