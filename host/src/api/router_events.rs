//! The virtual router's events: mediasoup's (`on_new_transport`, `on_new_rtp_observer`,
//! `on_worker_close`, `on_close`) and mafalda's (`on_new_cell`, `on_pipe`, `on_cell_lost`).

use super::active_speaker_observer::ActiveSpeakerObserver;
use super::audio_level_observer::AudioLevelObserver;
use super::direct_transport::DirectTransport;
use super::pipe_transport::PipeTransport;
use super::plain_transport::PlainTransport;
use super::rtp_observer::RtpObserver;
use super::transport::Transport;
use super::webrtc_transport::WebRtcTransport;
use crate::internals::host::CloseReason;
use crate::internals::pipes::PipeSource;
use crate::placement::CellId;
use event_listener_primitives::{Bag, BagOnce};
use mediasoup::prelude::TransportId;
use mediasoup::worker::WorkerId;
use std::ops::Deref;
use std::sync::Arc;

/// New transport that was just created.
#[derive(Debug)]
pub enum NewTransport<'a> {
    /// Direct transport
    Direct(&'a DirectTransport),
    /// Pipe transport
    Pipe(&'a PipeTransport),
    /// Plain transport
    Plain(&'a PlainTransport),
    /// WebRtc transport
    WebRtc(&'a WebRtcTransport),
}

impl Deref for NewTransport<'_> {
    type Target = dyn Transport;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::Direct(transport) => *transport as &Self::Target,
            Self::Pipe(transport) => *transport as &Self::Target,
            Self::Plain(transport) => *transport as &Self::Target,
            Self::WebRtc(transport) => *transport as &Self::Target,
        }
    }
}

/// New RTP observer that was just created.
#[derive(Debug)]
pub enum NewRtpObserver<'a> {
    /// Audio level observer
    AudioLevel(&'a AudioLevelObserver),
    /// Active speaker observer
    ActiveSpeaker(&'a ActiveSpeakerObserver),
}

impl Deref for NewRtpObserver<'_> {
    type Target = dyn RtpObserver;

    fn deref(&self) -> &Self::Target {
        match self {
            Self::AudioLevel(observer) => *observer as &Self::Target,
            Self::ActiveSpeaker(observer) => *observer as &Self::Target,
        }
    }
}

/// Whether a pipe opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipeChange {
    /// The pipe was created.
    Opened,
}

/// A producer was piped between two cells of the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeEvent {
    /// What was piped.
    pub source: PipeSource,
    /// The cell it lives in.
    pub from: CellId,
    /// The cell it was piped into.
    pub to: CellId,
    /// What happened.
    pub change: PipeChange,
}

/// A cell used by the router was closed (idle, retired, or its worker died); its transports
/// there are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellLost {
    /// The cell.
    pub cell: CellId,
    /// Its worker.
    pub worker: WorkerId,
    /// Why it closed.
    pub reason: CloseReason,
    /// This router's transports that were closed with it; the application re-creates them
    /// (a new transport is placed on a live cell) and the endpoints reconnect.
    pub lost_transports: Vec<TransportId>,
    /// The node of a lost cell of another host (`None` for this process's own workers).
    pub node: Option<String>,
}

#[allow(clippy::type_complexity)]
#[derive(Default)]
pub(crate) struct Handlers {
    pub(crate) new_transport: Bag<Arc<dyn Fn(NewTransport<'_>) + Send + Sync>>,
    pub(crate) new_rtp_observer: Bag<Arc<dyn Fn(NewRtpObserver<'_>) + Send + Sync>>,
    pub(crate) worker_close: BagOnce<Box<dyn FnOnce() + Send>>,
    pub(crate) close: BagOnce<Box<dyn FnOnce() + Send>>,
    pub(crate) new_cell: Bag<Arc<dyn Fn(&CellId) + Send + Sync>, CellId>,
    pub(crate) pipe: Bag<Arc<dyn Fn(&PipeEvent) + Send + Sync>, PipeEvent>,
    pub(crate) cell_lost: Bag<Arc<dyn Fn(&CellLost) + Send + Sync>, CellLost>,
}
