//! The remote backend: the cell backend seam's traits implemented over a [`HostLink`], for
//! workers of another host. Every operation is a request; synchronous getters answer from the
//! state the host returned at creation, kept current by the host's events; handlers registered
//! here are called when those events arrive. Dropping the last handle of an object closes it on
//! the host (workers excepted: a host's workers are its own).

use super::client::{EventSink, HostLink};
use super::proto::*;
use super::refusals::{self, request_error};
use crate::backend::*;
use crate::internals::object::{lock, EventBag};
use crate::options::{DataConsumerOptions, DataProducerOptions, ProducerOptions};
use async_trait::async_trait;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::active_speaker_observer::ActiveSpeakerObserverOptions;
use mediasoup::audio_level_observer::AudioLevelObserverOptions;
use mediasoup::consumer::{
    ConsumerDump, ConsumerId, ConsumerLayers, ConsumerOptions, ConsumerRtpStreamStat, ConsumerScore,
    ConsumerTraceEventType, ConsumerType,
};
use mediasoup::data_consumer::{DataConsumerDump, DataConsumerId, DataConsumerStat, DataConsumerType};
use mediasoup::data_producer::{DataProducerDump, DataProducerId, DataProducerStat, DataProducerType};
use mediasoup::direct_transport::{DirectTransportDump, DirectTransportOptions, DirectTransportStat};
use mediasoup::pipe_transport::{
    PipeTransportDump, PipeTransportOptions, PipeTransportRemoteParameters, PipeTransportStat,
};
use mediasoup::plain_transport::{
    PlainTransportDump, PlainTransportOptions, PlainTransportRemoteParameters, PlainTransportStat,
};
use mediasoup::prelude::{
    ConsumeDataError, ConsumeError, MediaKind, ProduceDataError, ProduceError, RtpCapabilities,
    RtpCapabilitiesFinalized, RtpCodecCapability, RtpParameters, TransportId,
};
use mediasoup::prelude::{IceCandidate, IceParameters};
use mediasoup::prelude::{SctpStreamParameters, WebRtcMessage};
use mediasoup::producer::{
    ProducerDump, ProducerId, ProducerScore, ProducerStat, ProducerTraceEventType, ProducerType,
};
use mediasoup::router::{RouterDump, RouterId, RouterOptions, UpdateMediaCodecsError};
use mediasoup::rtp_observer::{RtpObserverAddProducerOptions, RtpObserverId};
use mediasoup::transport::TransportTraceEventType;
use mediasoup::types::data_structures::{
    DtlsParameters, DtlsRole, DtlsState, IceRole, IceState, SctpState, TransportTuple,
};
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::types::srtp_parameters::SrtpParameters;
use mediasoup::webrtc_server::{WebRtcServerDump, WebRtcServerId, WebRtcServerOptions};
use mediasoup::webrtc_transport::{WebRtcTransportDump, WebRtcTransportRemoteParameters, WebRtcTransportStat};
use mediasoup::worker::{CreateWebRtcServerError, ExitError, RequestError, WorkerDump, WorkerId, WorkerUpdateSettings};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod data;
mod media;
mod observers;
mod router;
mod transports;
mod worker;

use observers::ObserverState;
use router::RouterState;
use transports::{DirectState, PipeState, PlainState};
use worker::OwnWebRtcServer;
pub(crate) use worker::RemoteWorker;

fn bad_reply(reply: &Reply) -> RequestError {
    RequestError::FailedToParse { error: format!("unexpected reply {reply:?}") }
}

fn value<T: DeserializeOwned>(reply: Reply) -> Result<T, RequestError> {
    match reply {
        Reply::Value(bytes) => unpack::<T>(&bytes).map_err(|e| RequestError::FailedToParse { error: e.to_string() }),
        other => Err(bad_reply(&other)),
    }
}

fn done(reply: Reply) -> Result<(), RequestError> {
    match reply {
        Reply::Done => Ok(()),
        other => Err(bad_reply(&other)),
    }
}

/// The per-kind state of a remote object and how events change it.
pub(crate) trait State: Send + 'static {
    /// Applies an event.
    fn apply(&mut self, _event: &Event) {}
    /// Records a pause or resume this side asked for (objects that can be paused).
    fn set_paused(&mut self, _paused: bool) {}
    /// The object is closed or dropped: forget what the link keeps about it.
    fn released(&self, _link: &HostLink) {}
}

/// One object on another host.
pub(crate) struct Remote<S: State> {
    link: Arc<HostLink>,
    handle: Handle,
    state: Mutex<S>,
    events: EventBag<Event>,
    close: BagOnce<OnceCallback>,
    producer_close: BagOnce<OnceCallback>,
    dead: BagOnce<Box<dyn FnOnce(ExitError) + Send>>,
    closed: AtomicBool,
    /// Whether dropping the handle closes the object (all but workers).
    owned: bool,
}

impl<S: State> std::fmt::Debug for Remote<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("host", &self.link.address()).field("handle", &self.handle).finish()
    }
}

impl<S: State> Remote<S> {
    fn new(link: &Arc<HostLink>, handle: Handle, state: S, owned: bool) -> Arc<Self> {
        let remote = Arc::new(Self {
            link: Arc::clone(link),
            handle,
            state: Mutex::new(state),
            events: EventBag::default(),
            close: BagOnce::default(),
            producer_close: BagOnce::default(),
            dead: BagOnce::default(),
            closed: AtomicBool::new(false),
            owned,
        });
        let sink: Arc<dyn EventSink> = remote.clone();
        link.register(handle, Arc::downgrade(&sink));
        remote
    }

    async fn call(&self, op: Op) -> Result<Reply, RequestError> {
        self.call_wire(op).await.map_err(request_error)
    }

    /// [`Remote::call`] with the host's answer as sent (mediasoup's refusals keep their variant).
    async fn call_wire(&self, op: Op) -> Result<Reply, WireError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(WireError::LinkDown);
        }
        self.link.call(op).await
    }

    /// Pauses or resumes the object.
    async fn set_paused(&self, paused: bool) -> Result<(), RequestError> {
        let op = if paused { Op::Pause { handle: self.handle } } else { Op::Resume { handle: self.handle } };
        done(self.call(op).await?)?;
        lock(&self.state).set_paused(paused);
        Ok(())
    }

    /// Asks the host for trace events of these types (the types replace earlier ones).
    async fn enable_trace(&self, types: TraceTypes) -> Result<(), RequestError> {
        done(self.call(Op::EnableTraceEvent { handle: self.handle, types: Payload::new(&types) }).await?)
    }

    /// The object's dump or stats (`op` is `Dump` or `GetStats`), as mediasoup's type `T`.
    async fn fetch<T: DeserializeOwned>(&self, stats: bool) -> Result<T, RequestError> {
        let op = if stats { Op::GetStats { handle: self.handle } } else { Op::Dump { handle: self.handle } };
        value(self.call(op).await?)
    }

    /// The object's handle on its host.
    pub(crate) fn handle(&self) -> Handle {
        self.handle
    }

    fn read<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&lock(&self.state))
    }

    fn on<F: Fn(&Event) + Send + Sync + 'static>(&self, f: F) -> HandlerId {
        self.events.add(Arc::new(f))
    }

    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        self.close.add(callback)
    }

    /// A consumer's (or data consumer's) producer closed.
    fn add_producer_close(&self, callback: OnceCallback) -> HandlerId {
        self.producer_close.add(callback)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Objects this one created, on the same link.
    fn child<C: State>(&self, handle: Handle, state: C) -> Arc<Remote<C>> {
        Remote::new(&self.link, handle, state, true)
    }
}

impl<S: State> EventSink for Remote<S> {
    fn event(&self, event: &Event) {
        lock(&self.state).apply(event);
        match event {
            Event::ProducerClosed => self.producer_close.call_simple(),
            Event::WorkerDead(reason) if !self.closed.swap(true, Ordering::AcqRel) => {
                lock(&self.state).released(&self.link);
                tracing::warn!(host = %self.link.address(), %reason, "remote object lost");
                self.dead.call(|cb| cb(ExitError::Unexpected));
                self.close.call_simple();
            }
            Event::Closed if !self.closed.swap(true, Ordering::AcqRel) => {
                lock(&self.state).released(&self.link);
                self.close.call_simple()
            }
            _ => {}
        }
        self.events.call_simple(event);
    }
}

impl<S: State> Drop for Remote<S> {
    fn drop(&mut self) {
        lock(&self.state).released(&self.link);
        self.link.forget(self.handle);
        if self.owned && !self.closed.swap(true, Ordering::AcqRel) {
            self.link.send_reliably(Op::Close { handle: self.handle });
        }
    }
}

fn created(reply: Reply) -> Result<(Handle, ObjectInfo), RequestError> {
    match reply {
        Reply::Created { handle, info } => {
            Ok((handle, info.get().map_err(|e| RequestError::FailedToParse { error: e.to_string() })?))
        }
        other => Err(bad_reply(&other)),
    }
}

fn wrong(info: &ObjectInfo) -> RequestError {
    RequestError::FailedToParse { error: format!("the host created another kind of object: {info:?}") }
}
