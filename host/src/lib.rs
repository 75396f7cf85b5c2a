//! mafalda-host: mediasoup's Rust API over many workers.
//!
//! The crate root mirrors the `mediasoup` crate 0.33 (same module paths, type names, option
//! structs, method signatures and events), so an application switches by renaming the
//! dependency: `mediasoup = { package = "mafalda-host", … }`. Its `WorkerManager` creates
//! *virtual* workers standing for a pool of real mediasoup workers (one per core by default);
//! a *virtual* router spreads over them: transports are placed by a placement policy, producers
//! are piped on demand to the workers of their consumers, idle workers are released. Data
//! types (ids, RTP/SCTP/SRTP parameters, options, dumps, stats) are mediasoup's own.
//!
//! Layers, top to bottom (a layer uses only the ones below it):
//! - the API, [`api`] (re-exported at mediasoup's paths): the objects an application holds;
//! - the machinery, [`internals`]: the [`host`] and its [`cell`]s (shared real workers, CPU
//!   sampling, idle release, placement), real routers per cell, the producer registry, pipes
//!   between cells, merged dumps;
//! - the cell backend seam, [`backend`]: every operation on a real mediasoup object and every
//!   event from one goes through its traits; [`backend::local`] implements them with the
//!   in-process mediasoup worker (a worker on a peer host or in a child process is another
//!   implementation of the same traits);
//! - beside them: [`placement`] (the pure placement engine and built-in policies), [`plugin`]
//!   (the wasm runtime), [`policy`] (choosing a policy), [`autoscale`], [`config`], [`labels`]
//!   (hints from `app_data`), [`stats`].

#![warn(missing_docs)]

pub mod api;
pub mod autoscale;
pub mod backend;
pub mod cluster;
pub mod config;
pub mod fleet;
pub mod internals;
pub mod isolation;
pub mod labels;
pub mod ops;
pub mod options;
pub mod placement;
pub mod plugin;
pub mod policy;
pub mod prelude;
pub mod stats;
pub mod worker_log;

pub use internals::{cell, host};

pub use mediasoup::supported_rtp_capabilities;
pub use mediasoup::types;

#[doc(hidden)]
pub use mediasoup::ortc;

pub use api::{router, webrtc_server, worker, worker_manager};

pub mod audio_level_observer {
    //! An audio level observer monitors the volume of the selected audio producers.
    pub use crate::api::audio_level_observer::*;
}

pub mod active_speaker_observer {
    //! An active speaker observer monitors the speaking activity of the selected audio producers.
    pub use crate::api::active_speaker_observer::*;
}

pub mod consumer {
    //! A consumer forwards a producer's media to an endpoint through a transport.
    pub use crate::api::consumer::*;
}

pub mod data_consumer {
    //! A data consumer forwards a data producer's messages to an endpoint.
    pub use crate::api::data_consumer::*;
}

pub mod producer {
    //! A producer injects an audio or video source into a router.
    pub use crate::api::producer::*;
}

pub mod data_producer {
    //! A data producer injects data messages into a router.
    pub use crate::api::data_producer::*;
}

pub mod transport {
    //! A transport connects an endpoint with a router.
    pub use crate::api::transport::*;
}

pub mod direct_transport {
    //! A direct transport connects the Rust application itself with a router.
    pub use crate::api::direct_transport::*;
}

pub mod pipe_transport {
    //! A pipe transport connects two routers.
    pub use crate::api::pipe_transport::*;
}

pub mod plain_transport {
    //! A plain transport carries RTP, RTCP and SCTP over plain UDP/TCP.
    pub use crate::api::plain_transport::*;
}

pub mod rtp_observer {
    //! An RTP observer inspects the media received by a set of selected producers.
    pub use crate::api::rtp_observer::*;
}

pub mod webrtc_transport {
    //! A WebRTC transport: ICE + DTLS with a WebRTC endpoint.
    pub use crate::api::webrtc_transport::*;
}
