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
//! mafalda's own modules:
//! - [`host`], [`cell`], [`pool`]: the shared real workers ("cells"), CPU sampling, idle release;
//! - [`placement`]: the pure placement engine and built-in policies; [`labels`]: hints from
//!   `app_data`; [`config`]: options from code, TOML and environment; [`stats`]: snapshots;

#![warn(missing_docs)]

pub mod autoscale;
pub mod cell;
pub mod config;
pub mod host;
pub mod labels;
mod lifecycle;
mod object;
pub mod placement;
pub mod plugin;
mod plugin_policy;
pub mod pool;
pub mod prelude;
pub mod router;
pub mod stats;
pub mod webrtc_server;
pub mod worker;
pub mod worker_manager;

pub use mediasoup::supported_rtp_capabilities;
pub use mediasoup::types;

#[doc(hidden)]
pub use mediasoup::ortc;

pub mod audio_level_observer {
    //! An audio level observer monitors the volume of the selected audio producers.
    pub use crate::router::audio_level_observer::*;
}

pub mod active_speaker_observer {
    //! An active speaker observer monitors the speaking activity of the selected audio producers.
    pub use crate::router::active_speaker_observer::*;
}

pub mod consumer {
    //! A consumer forwards a producer's media to an endpoint through a transport.
    pub use crate::router::consumer::*;
}

pub mod data_consumer {
    //! A data consumer forwards a data producer's messages to an endpoint.
    pub use crate::router::data_consumer::*;
}

pub mod producer {
    //! A producer injects an audio or video source into a router.
    pub use crate::router::producer::*;
}

pub mod data_producer {
    //! A data producer injects data messages into a router.
    pub use crate::router::data_producer::*;
}

pub mod transport {
    //! A transport connects an endpoint with a router.
    pub use crate::router::transport::*;
}

pub mod direct_transport {
    //! A direct transport connects the Rust application itself with a router.
    pub use crate::router::direct_transport::*;
}

pub mod pipe_transport {
    //! A pipe transport connects two routers.
    pub use crate::router::pipe_transport::*;
}

pub mod plain_transport {
    //! A plain transport carries RTP, RTCP and SCTP over plain UDP/TCP.
    pub use crate::router::plain_transport::*;
}

pub mod rtp_observer {
    //! An RTP observer inspects the media received by a set of selected producers.
    pub use crate::router::rtp_observer::*;
}

pub mod webrtc_transport {
    //! A WebRTC transport: ICE + DTLS with a WebRTC endpoint.
    pub use crate::router::webrtc_transport::*;
}
