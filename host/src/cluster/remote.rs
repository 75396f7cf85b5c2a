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
    ConsumerTraceEventData, ConsumerTraceEventType, ConsumerType,
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
    ProducerDump, ProducerId, ProducerScore, ProducerStat, ProducerTraceEventData, ProducerTraceEventType,
    ProducerType, ProducerVideoOrientation,
};
use mediasoup::router::{RouterDump, RouterId, RouterOptions, UpdateMediaCodecsError};
use mediasoup::rtp_observer::{RtpObserverAddProducerOptions, RtpObserverId};
use mediasoup::transport::{TransportTraceEventData, TransportTraceEventType};
use mediasoup::types::data_structures::{DtlsParameters, DtlsState, IceRole, IceState, SctpState, TransportTuple};
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::types::srtp_parameters::SrtpParameters;
use mediasoup::webrtc_server::WebRtcServerOptions;
use mediasoup::webrtc_transport::{WebRtcTransportDump, WebRtcTransportRemoteParameters, WebRtcTransportStat};
use mediasoup::worker::{CreateWebRtcServerError, ExitError, RequestError, WorkerDump, WorkerId, WorkerUpdateSettings};
use serde::de::DeserializeOwned;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn unsupported(what: &str) -> RequestError {
    RequestError::Response { reason: format!("{what} is not supported on a worker of another host") }
}

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

    /// The object's dump or stats (`op` is `Dump` or `GetStats`), as mediasoup's type `T`.
    async fn fetch<T: DeserializeOwned>(&self, stats: bool) -> Result<T, RequestError> {
        let op = if stats { Op::GetStats { handle: self.handle } } else { Op::Dump { handle: self.handle } };
        value(self.call(op).await?)
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

// ---------------------------------------------------------------------------------------------
// Workers

/// A worker's state: its id and the CPU time its host last advertised.
pub(crate) struct WorkerState {
    id: WorkerId,
    cpu_time_us: Option<u64>,
}

impl State for WorkerState {}

/// A worker of another host.
pub(crate) type RemoteWorker = Remote<WorkerState>;

impl RemoteWorker {
    /// The worker an advert names.
    pub(crate) fn advertised(link: &Arc<HostLink>, advert: &CellAdvert, id: WorkerId) -> Arc<Self> {
        Remote::new(link, advert.worker, WorkerState { id, cpu_time_us: advert.cpu_time_us }, false)
    }

    /// A newer advert of the same worker.
    pub(crate) fn update(&self, advert: &CellAdvert) {
        lock(&self.state).cpu_time_us = advert.cpu_time_us;
    }

    /// Marks the worker dead (its host stopped advertising it, or the host is lost).
    pub(crate) fn lost(&self, reason: &str) {
        self.event(&Event::WorkerDead(reason.into()));
    }
}

#[async_trait]
impl WorkerBackend for RemoteWorker {
    fn id(&self) -> WorkerId {
        self.read(|s| s.id)
    }

    fn closed(&self) -> bool {
        self.is_closed()
    }

    fn cpu_time(&self) -> Option<Duration> {
        self.read(|s| s.cpu_time_us.map(Duration::from_micros))
    }

    async fn create_router(&self, options: RouterOptions) -> Result<Arc<dyn RouterBackend>, RequestError> {
        // The router's room and its own token (`app_data` `room` and `token`), if given.
        let labels = crate::labels::hints_of(&options.app_data).labels;
        let label = |key: &str| labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let (room, token) = (label("room"), label("token"));
        let media_codecs = Payload::new(&options.media_codecs);
        let op = Op::CreateRouter { worker: self.handle, media_codecs, room, token };
        let (handle, info) = created(self.call(op).await?)?;
        match info {
            ObjectInfo::Router { id, rtp_capabilities } => Ok(self.child(handle, RouterState { id, rtp_capabilities })),
            other => Err(wrong(&other)),
        }
    }

    async fn create_webrtc_server(
        &self,
        _options: WebRtcServerOptions,
    ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError> {
        Err(CreateWebRtcServerError::Request(unsupported("a WebRTC server")))
    }

    async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        let log_level = data.log_level.map(|l| format!("{l:?}"));
        let log_tags = data.log_tags.map(|tags| tags.iter().map(|t| format!("{t:?}")).collect());
        done(self.call(Op::UpdateSettings { worker: self.handle, log_level, log_tags }).await?)
    }

    async fn dump(&self) -> Result<WorkerDump, RequestError> {
        value(self.call(Op::WorkerDump { worker: self.handle }).await?)
    }

    fn on_dead(&self, callback: Box<dyn FnOnce(ExitError) + Send>) -> HandlerId {
        self.dead.add(callback)
    }

    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

// ---------------------------------------------------------------------------------------------
// Routers

/// A router's state.
pub(crate) struct RouterState {
    id: RouterId,
    rtp_capabilities: RtpCapabilitiesFinalized,
}

impl State for RouterState {}

type RemoteRouter = Remote<RouterState>;

#[async_trait]
impl RouterBackend for RemoteRouter {
    fn id(&self) -> RouterId {
        self.read(|s| s.id)
    }

    fn rtp_capabilities(&self) -> RtpCapabilitiesFinalized {
        self.read(|s| s.rtp_capabilities.clone())
    }

    fn can_consume(&self, producer_id: &ProducerId, capabilities: &RtpCapabilities) -> bool {
        self.link.consumable(producer_id).is_some_and(|p| super::consumable::can_consume(&p, capabilities))
    }

    fn update_media_codecs(&self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError> {
        // The host recomputes its router's capabilities; the virtual router keeps its own.
        let link = Arc::clone(&self.link);
        let op = Op::CapabilitiesFor { router: self.handle, media_codecs: Payload::new(&media_codecs) };
        link.runtime().clone().spawn(async move {
            let _ = link.call(op).await;
        });
        Ok(())
    }

    async fn capabilities_for(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, UpdateMediaCodecsError> {
        let op = Op::CapabilitiesFor { router: self.handle, media_codecs: Payload::new(&media_codecs) };
        let failed = |_| {
            UpdateMediaCodecsError::FailedRtpCapabilitiesGeneration(
                mediasoup::worker::RtpCapabilitiesError::CannotAllocate,
            )
        };
        match self.call(op).await {
            Ok(Reply::Capabilities(caps)) => {
                let caps = caps.get().map_err(|_| failed(()))?;
                lock(&self.state).rtp_capabilities = caps.clone();
                Ok(caps)
            }
            _ => Err(failed(())),
        }
    }

    async fn create_webrtc_transport(
        &self,
        listen: WebRtcListen,
        settings: WebRtcTransportSettings,
    ) -> Result<Arc<dyn WebRtcTransportBackend>, RequestError> {
        let WebRtcListen::Individual(infos) = listen else {
            return Err(unsupported("a WebRTC transport on a WebRTC server"));
        };
        let listen_infos: Vec<mediasoup::prelude::ListenInfo> = infos.iter().cloned().collect();
        let options = WebRtcWire {
            listen_infos,
            bitrate: BitrateWire {
                enable_bwe: settings.enable_bwe,
                initial_available_outgoing_bitrate: settings.initial_available_outgoing_bitrate,
                max_incoming_bitrate: settings.max_incoming_bitrate,
                max_outgoing_bitrate: settings.max_outgoing_bitrate,
                min_outgoing_bitrate: settings.min_outgoing_bitrate,
            },
            enable_udp: settings.enable_udp,
            enable_tcp: settings.enable_tcp,
            prefer_udp: settings.prefer_udp,
            prefer_tcp: settings.prefer_tcp,
            ice_consent_timeout: settings.ice_consent_timeout,
            sctp: sctp_wire_of!(settings),
        };
        let op = Op::CreateWebRtcTransport { router: self.handle, options: Payload::new(&options) };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::WebRtcTransport(info)) => Ok(self.child(handle, info)),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn create_plain_transport(
        &self,
        o: PlainTransportOptions,
    ) -> Result<Arc<dyn PlainTransportBackend>, RequestError> {
        let options = PlainWire {
            listen_info: o.listen_info,
            rtcp_listen_info: o.rtcp_listen_info,
            rtcp_mux: o.rtcp_mux,
            comedia: o.comedia,
            bitrate: BitrateWire {
                enable_bwe: o.enable_bwe,
                initial_available_outgoing_bitrate: o.initial_available_outgoing_bitrate,
                max_incoming_bitrate: o.max_incoming_bitrate,
                max_outgoing_bitrate: o.max_outgoing_bitrate,
                min_outgoing_bitrate: o.min_outgoing_bitrate,
            },
            sctp: sctp_wire_of!(o),
            enable_srtp: o.enable_srtp,
            srtp_crypto_suite: o.srtp_crypto_suite,
        };
        let op = Op::CreatePlainTransport { router: self.handle, options: Payload::new(&options) };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::PlainTransport(info)) => Ok(self.child(handle, PlainState(info))),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn create_pipe_transport(
        &self,
        o: PipeTransportOptions,
    ) -> Result<Arc<dyn PipeTransportBackend>, RequestError> {
        let options = PipeWire {
            listen_info: o.listen_info,
            sctp: sctp_wire_of!(o),
            enable_rtx: o.enable_rtx,
            enable_srtp: o.enable_srtp,
        };
        let op = Op::CreatePipeTransport { router: self.handle, options: Payload::new(&options) };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::PipeTransport(info)) => Ok(self.child(handle, PipeState(info))),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn create_direct_transport(
        &self,
        options: DirectTransportOptions,
    ) -> Result<Arc<dyn DirectTransportBackend>, RequestError> {
        let op = Op::CreateDirectTransport {
            router: self.handle,
            max_send_message_size: options.max_send_message_size,
            max_receive_message_size: options.max_receive_message_size,
        };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::DirectTransport { id }) => Ok(self.child(handle, DirectState { id })),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn create_audio_level_observer(
        &self,
        options: AudioLevelObserverOptions,
    ) -> Result<Arc<dyn AudioLevelObserverBackend>, RequestError> {
        let op = Op::CreateAudioLevelObserver {
            router: self.handle,
            max_entries: options.max_entries.get(),
            threshold: options.threshold,
            interval: options.interval,
        };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::Observer { id, paused }) => Ok(self.child(handle, ObserverState { id, paused })),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn create_active_speaker_observer(
        &self,
        options: ActiveSpeakerObserverOptions,
    ) -> Result<Arc<dyn ActiveSpeakerObserverBackend>, RequestError> {
        let op = Op::CreateActiveSpeakerObserver { router: self.handle, interval: options.interval };
        match created(self.call(op).await?)? {
            (handle, ObjectInfo::Observer { id, paused }) => Ok(self.child(handle, ObserverState { id, paused })),
            (_, other) => Err(wrong(&other)),
        }
    }

    async fn dump(&self) -> Result<RouterDump, RequestError> {
        self.fetch(false).await
    }
}

// ---------------------------------------------------------------------------------------------
// Transports

async fn produce<S: State>(
    remote: &Remote<S>,
    options: ProducerOptions,
) -> Result<Arc<dyn ProducerBackend>, ProduceError> {
    let wire = ProduceWire {
        id: options.pipe_id(),
        kind: options.kind,
        rtp_parameters: options.rtp_parameters.clone(),
        paused: options.paused,
        key_frame_request_delay: options.key_frame_request_delay,
        enable_mediasoup_packet_id_header_extension: options.enable_mediasoup_packet_id_header_extension,
    };
    let op = Op::Produce { transport: remote.handle, options: Payload::new(&wire) };
    let reply = remote.call_wire(op).await.map_err(refusals::produce_error)?;
    match created(reply).map_err(ProduceError::Request)? {
        (handle, ObjectInfo::Producer(info)) => {
            remote.link.remember_producer(info.id, info.consumable_rtp_parameters.clone());
            Ok(remote.child(handle, info))
        }
        (_, other) => Err(ProduceError::Request(wrong(&other))),
    }
}

async fn consume<S: State>(remote: &Remote<S>, o: ConsumerOptions) -> Result<Arc<dyn ConsumerBackend>, ConsumeError> {
    let wire = ConsumeWire {
        producer_id: o.producer_id,
        rtp_capabilities: o.rtp_capabilities,
        paused: o.paused,
        mid: o.mid,
        preferred_layers: o.preferred_layers,
        enable_rtx: o.enable_rtx,
        ignore_dtx: o.ignore_dtx,
        pipe: o.pipe,
    };
    let op = Op::Consume { transport: remote.handle, options: Payload::new(&wire) };
    let reply = remote.call_wire(op).await.map_err(refusals::consume_error)?;
    match created(reply).map_err(ConsumeError::Request)? {
        (handle, ObjectInfo::Consumer(info)) => Ok(remote.child(handle, info)),
        (_, other) => Err(ConsumeError::Request(wrong(&other))),
    }
}

async fn produce_data<S: State>(
    remote: &Remote<S>,
    options: DataProducerOptions,
) -> Result<Arc<dyn DataProducerBackend>, ProduceDataError> {
    let (id, sctp) = (options.pipe_id(), options.sctp_stream_parameters().map(|p| SctpStreamWire::of(&p)));
    let wire = ProduceDataWire { id, sctp, label: options.label, protocol: options.protocol, paused: options.paused };
    let op = Op::ProduceData { transport: remote.handle, options: Payload::new(&wire) };
    let reply = remote.call_wire(op).await.map_err(refusals::produce_data_error)?;
    match created(reply).map_err(ProduceDataError::Request)? {
        (handle, ObjectInfo::DataProducer(info)) => Ok(remote.child(handle, info)),
        (_, other) => Err(ProduceDataError::Request(wrong(&other))),
    }
}

async fn consume_data<S: State>(
    remote: &Remote<S>,
    options: DataConsumerOptions,
) -> Result<Arc<dyn DataConsumerBackend>, ConsumeDataError> {
    let (ordered, max_packet_life_time, max_retransmits) = options.reliability();
    let wire = ConsumeDataWire {
        data_producer_id: options.data_producer_id(),
        ordered,
        max_packet_life_time,
        max_retransmits,
        paused: options.paused,
        subchannels: options.subchannels.clone(),
    };
    let op = Op::ConsumeData { transport: remote.handle, options: Payload::new(&wire) };
    let reply = remote.call_wire(op).await.map_err(refusals::consume_data_error)?;
    match created(reply).map_err(ConsumeDataError::Request)? {
        (handle, ObjectInfo::DataConsumer(info)) => Ok(remote.child(handle, info)),
        (_, other) => Err(ConsumeDataError::Request(wrong(&other))),
    }
}

async fn connect<S: State>(remote: &Remote<S>, params: ConnectParams) -> Result<(), RequestError> {
    done(remote.call(Op::Connect { transport: remote.handle, params: Payload::new(&params) }).await?)
}

/// Connects a plain or pipe transport and takes the state the host answers with.
async fn connect_tuple<S: State>(
    remote: &Remote<S>,
    params: ConnectParams,
    info: impl FnOnce(&mut S) -> &mut TupleTransportInfo,
) -> Result<(), RequestError> {
    let reply = remote.call(Op::Connect { transport: remote.handle, params: Payload::new(&params) }).await?;
    let connected: Connected = value(reply)?;
    let mut state = lock(&remote.state);
    let state = info(&mut state);
    state.tuple = connected.tuple;
    state.rtcp_tuple = connected.rtcp_tuple;
    state.srtp_parameters = connected.srtp_parameters;
    Ok(())
}

async fn bitrate<S: State>(remote: &Remote<S>, op: Op) -> Result<(), RequestError> {
    done(remote.call(op).await?)
}

macro_rules! transport_backend {
    ($state:ty, $id:expr) => {
        #[async_trait]
        impl TransportBackend for Remote<$state> {
            fn id(&self) -> TransportId {
                self.read($id)
            }

            fn closed(&self) -> bool {
                self.is_closed()
            }

            async fn produce(&self, options: ProducerOptions) -> Result<Arc<dyn ProducerBackend>, ProduceError> {
                produce(self, options).await
            }

            async fn consume(&self, options: ConsumerOptions) -> Result<Arc<dyn ConsumerBackend>, ConsumeError> {
                consume(self, options).await
            }

            async fn produce_data(
                &self,
                options: DataProducerOptions,
            ) -> Result<Arc<dyn DataProducerBackend>, ProduceDataError> {
                produce_data(self, options).await
            }

            async fn consume_data(
                &self,
                options: DataConsumerOptions,
            ) -> Result<Arc<dyn DataConsumerBackend>, ConsumeDataError> {
                consume_data(self, options).await
            }

            async fn enable_trace_event(&self, _types: Vec<TransportTraceEventType>) -> Result<(), RequestError> {
                Err(unsupported("transport trace events"))
            }

            fn on_trace(&self, _callback: Handler<TransportTraceEventData>) -> HandlerId {
                self.on(|_| {})
            }

            fn on_close(&self, callback: OnceCallback) -> HandlerId {
                Remote::on_close(self, callback)
            }
        }
    };
}

impl State for WebRtcInfo {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::IceState(state) => self.ice_state = state.get().unwrap_or(self.ice_state),
            Event::IceSelectedTuple(tuple) => self.ice_selected_tuple = tuple.get().ok(),
            Event::DtlsState(state) => self.dtls_state = state.get().unwrap_or(self.dtls_state),
            Event::SctpState(state) => self.sctp.state = state.get().ok(),
            _ => {}
        }
    }
}

transport_backend!(WebRtcInfo, |s| s.id);

#[async_trait]
impl WebRtcTransportBackend for Remote<WebRtcInfo> {
    async fn connect(&self, remote: WebRtcTransportRemoteParameters) -> Result<(), RequestError> {
        connect(self, ConnectParams::WebRtc { dtls_parameters: remote.dtls_parameters }).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self::bitrate(self, Op::SetMaxIncomingBitrate { transport: self.handle, bitrate }).await
    }
    async fn set_max_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self::bitrate(self, Op::SetMaxOutgoingBitrate { transport: self.handle, bitrate }).await
    }
    async fn set_min_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self::bitrate(self, Op::SetMinOutgoingBitrate { transport: self.handle, bitrate }).await
    }
    async fn restart_ice(&self) -> Result<IceParameters, RequestError> {
        match self.call(Op::RestartIce { transport: self.handle }).await? {
            Reply::Ice(ice) => {
                let ice = ice.get().map_err(|e| RequestError::FailedToParse { error: e.to_string() })?;
                lock(&self.state).ice_parameters = ice.clone();
                Ok(ice)
            }
            other => Err(bad_reply(&other)),
        }
    }
    async fn dump(&self) -> Result<WebRtcTransportDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<WebRtcTransportStat>, RequestError> {
        self.fetch(true).await
    }
    fn ice_role(&self) -> IceRole {
        self.read(|s| s.ice_role)
    }
    fn ice_parameters(&self) -> IceParameters {
        self.read(|s| s.ice_parameters.clone())
    }
    fn ice_candidates(&self) -> Vec<IceCandidate> {
        self.read(|s| s.ice_candidates.clone())
    }
    fn ice_state(&self) -> IceState {
        self.read(|s| s.ice_state)
    }
    fn ice_selected_tuple(&self) -> Option<TransportTuple> {
        self.read(|s| s.ice_selected_tuple.clone())
    }
    fn dtls_parameters(&self) -> DtlsParameters {
        self.read(|s| s.dtls_parameters.clone())
    }
    fn dtls_state(&self) -> DtlsState {
        self.read(|s| s.dtls_state)
    }
    fn dtls_remote_cert(&self) -> Option<String> {
        self.read(|s| s.dtls_remote_cert.clone())
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        self.read(|s| s.sctp.parameters)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        self.read(|s| s.sctp.state)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        self.read(|s| s.sctp.negotiated)
    }
    fn on_ice_state_change(&self, callback: Arc<dyn Fn(IceState) + Send + Sync>) -> HandlerId {
        self.on(move |e| {
            if let Event::IceState(state) = e {
                if let Ok(state) = state.get() {
                    callback(state);
                }
            }
        })
    }
    fn on_ice_selected_tuple_change(&self, callback: Handler<TransportTuple>) -> HandlerId {
        self.on(move |e| {
            if let Event::IceSelectedTuple(tuple) = e {
                if let Ok(tuple) = tuple.get() {
                    callback(&tuple);
                }
            }
        })
    }
    fn on_dtls_state_change(&self, callback: Arc<dyn Fn(DtlsState) + Send + Sync>) -> HandlerId {
        self.on(move |e| {
            if let Event::DtlsState(state) = e {
                if let Ok(state) = state.get() {
                    callback(state);
                }
            }
        })
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        on_sctp_state(self, callback)
    }
}

fn on_sctp_state<S: State>(remote: &Remote<S>, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
    remote.on(move |e| {
        if let Event::SctpState(state) = e {
            if let Ok(state) = state.get() {
                callback(state);
            }
        }
    })
}

fn on_tuple<S: State>(remote: &Remote<S>, callback: Handler<TransportTuple>, rtcp: bool) -> HandlerId {
    remote.on(move |e| match e {
        Event::Tuple(tuple) if !rtcp => {
            if let Ok(tuple) = tuple.get() {
                callback(&tuple);
            }
        }
        Event::RtcpTuple(tuple) if rtcp => {
            if let Ok(tuple) = tuple.get() {
                callback(&tuple);
            }
        }
        _ => {}
    })
}

impl TupleTransportInfo {
    fn apply(&mut self, event: &Event) {
        match event {
            Event::Tuple(tuple) => self.tuple = tuple.get().unwrap_or_else(|_| self.tuple.clone()),
            Event::RtcpTuple(tuple) => self.rtcp_tuple = tuple.get().ok(),
            Event::SctpState(state) => self.sctp.state = state.get().ok(),
            _ => {}
        }
    }
}

/// A plain transport's state.
pub(crate) struct PlainState(TupleTransportInfo);

impl State for PlainState {
    fn apply(&mut self, event: &Event) {
        self.0.apply(event);
    }
}

/// A pipe transport's state.
pub(crate) struct PipeState(TupleTransportInfo);

impl State for PipeState {
    fn apply(&mut self, event: &Event) {
        self.0.apply(event);
    }
}

transport_backend!(PlainState, |s| s.0.id);
transport_backend!(PipeState, |s| s.0.id);

#[async_trait]
impl PlainTransportBackend for Remote<PlainState> {
    async fn connect(&self, remote: PlainTransportRemoteParameters) -> Result<(), RequestError> {
        let params = ConnectParams::Plain {
            ip: remote.ip,
            port: remote.port,
            rtcp_port: remote.rtcp_port,
            srtp_parameters: remote.srtp_parameters,
        };
        connect_tuple(self, params, |s| &mut s.0).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self::bitrate(self, Op::SetMaxIncomingBitrate { transport: self.handle, bitrate }).await
    }
    async fn dump(&self) -> Result<PlainTransportDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<PlainTransportStat>, RequestError> {
        self.fetch(true).await
    }
    fn tuple(&self) -> TransportTuple {
        self.read(|s| s.0.tuple.clone())
    }
    fn rtcp_tuple(&self) -> Option<TransportTuple> {
        self.read(|s| s.0.rtcp_tuple.clone())
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        self.read(|s| s.0.sctp.parameters)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        self.read(|s| s.0.sctp.state)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        self.read(|s| s.0.sctp.negotiated)
    }
    fn srtp_parameters(&self) -> Option<SrtpParameters> {
        self.read(|s| s.0.srtp_parameters.clone())
    }
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        on_tuple(self, callback, false)
    }
    fn on_rtcp_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        on_tuple(self, callback, true)
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        on_sctp_state(self, callback)
    }
}

#[async_trait]
impl PipeTransportBackend for Remote<PipeState> {
    async fn connect(&self, remote: PipeTransportRemoteParameters) -> Result<(), RequestError> {
        let params = ConnectParams::Pipe { ip: remote.ip, port: remote.port, srtp_parameters: remote.srtp_parameters };
        connect_tuple(self, params, |s| &mut s.0).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        self::bitrate(self, Op::SetMaxIncomingBitrate { transport: self.handle, bitrate }).await
    }
    async fn dump(&self) -> Result<PipeTransportDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<PipeTransportStat>, RequestError> {
        self.fetch(true).await
    }
    fn tuple(&self) -> TransportTuple {
        self.read(|s| s.0.tuple.clone())
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        self.read(|s| s.0.sctp.parameters)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        self.read(|s| s.0.sctp.state)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        self.read(|s| s.0.sctp.negotiated)
    }
    fn srtp_parameters(&self) -> Option<SrtpParameters> {
        self.read(|s| s.0.srtp_parameters.clone())
    }
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        on_tuple(self, callback, false)
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        on_sctp_state(self, callback)
    }
}

/// A direct transport's state.
pub(crate) struct DirectState {
    id: TransportId,
}

impl State for DirectState {}

transport_backend!(DirectState, |s| s.id);

#[async_trait]
impl DirectTransportBackend for Remote<DirectState> {
    async fn dump(&self) -> Result<DirectTransportDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<DirectTransportStat>, RequestError> {
        self.fetch(true).await
    }
    fn send_rtcp(&self, packet: Vec<u8>) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        self.link.notify(Op::SendRtcp { transport: self.handle, packet });
        Ok(())
    }
    fn on_rtcp(&self, callback: SliceHandler<u8>) -> HandlerId {
        self.on(move |e| {
            if let Event::Rtcp(packet) = e {
                callback(packet);
            }
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Producers and consumers

impl State for ProducerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn released(&self, link: &HostLink) {
        link.forget_producer(&self.id);
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            Event::ProducerScore(score) => self.score = score.get().unwrap_or_default(),
            _ => {}
        }
    }
}

fn on_simple<S: State>(remote: &Remote<S>, wanted: fn(&Event) -> bool, callback: Callback) -> HandlerId {
    remote.on(move |e| {
        if wanted(e) {
            callback();
        }
    })
}

#[async_trait]
impl ProducerBackend for Remote<ProducerInfo> {
    fn id(&self) -> ProducerId {
        self.read(|s| s.id)
    }
    fn kind(&self) -> MediaKind {
        self.read(|s| s.kind)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.rtp_parameters.clone())
    }
    fn consumable_rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.consumable_rtp_parameters.clone())
    }
    fn r#type(&self) -> ProducerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.is_direct)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn score(&self) -> Vec<ProducerScore> {
        self.read(|s| s.score.clone())
    }
    async fn dump(&self) -> Result<ProducerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<ProducerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn enable_trace_event(&self, _types: Vec<ProducerTraceEventType>) -> Result<(), RequestError> {
        Err(unsupported("producer trace events"))
    }
    fn send(&self, packet: Vec<u8>) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        self.link.notify(Op::SendRtp { producer: self.handle, packet });
        Ok(())
    }
    fn on_score(&self, callback: SliceHandler<ProducerScore>) -> HandlerId {
        self.on(move |e| {
            if let Event::ProducerScore(score) = e {
                callback(&score.get().unwrap_or_default());
            }
        })
    }
    fn on_video_orientation_change(&self, _callback: Arc<dyn Fn(ProducerVideoOrientation) + Send + Sync>) -> HandlerId {
        self.on(|_| {})
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Paused), callback)
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Resumed), callback)
    }
    fn on_trace(&self, _callback: Handler<ProducerTraceEventData>) -> HandlerId {
        self.on(|_| {})
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl State for ConsumerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            Event::ProducerPaused => self.producer_paused = true,
            Event::ProducerResumed => self.producer_paused = false,
            Event::ConsumerScore(score) => self.score = score.get().unwrap_or_else(|_| self.score.clone()),
            Event::Layers(layers) => self.current_layers = layers.get().unwrap_or(self.current_layers),
            _ => {}
        }
    }
}

#[async_trait]
impl ConsumerBackend for Remote<ConsumerInfo> {
    fn id(&self) -> ConsumerId {
        self.read(|s| s.id)
    }
    fn kind(&self) -> MediaKind {
        self.read(|s| s.kind)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        self.read(|s| s.rtp_parameters.clone())
    }
    fn r#type(&self) -> ConsumerType {
        self.read(|s| s.r#type)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn producer_paused(&self) -> bool {
        self.read(|s| s.producer_paused)
    }
    fn priority(&self) -> u8 {
        self.read(|s| s.priority)
    }
    fn score(&self) -> ConsumerScore {
        self.read(|s| s.score.clone())
    }
    fn preferred_layers(&self) -> Option<ConsumerLayers> {
        self.read(|s| s.preferred_layers)
    }
    fn current_layers(&self) -> Option<ConsumerLayers> {
        self.read(|s| s.current_layers)
    }
    async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn set_preferred_layers(&self, layers: ConsumerLayers) -> Result<(), RequestError> {
        done(self.call(Op::SetPreferredLayers { consumer: self.handle, layers: Payload::new(&layers) }).await?)?;
        lock(&self.state).preferred_layers = Some(layers);
        Ok(())
    }
    async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        done(self.call(Op::SetPriority { consumer: self.handle, priority: Some(priority) }).await?)?;
        lock(&self.state).priority = priority;
        Ok(())
    }
    async fn unset_priority(&self) -> Result<(), RequestError> {
        done(self.call(Op::SetPriority { consumer: self.handle, priority: None }).await?)?;
        lock(&self.state).priority = 1;
        Ok(())
    }
    async fn request_key_frame(&self) -> Result<(), RequestError> {
        done(self.call(Op::RequestKeyFrame { consumer: self.handle }).await?)
    }
    async fn enable_trace_event(&self, _types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError> {
        Err(unsupported("consumer trace events"))
    }
    fn on_rtp(&self, callback: SliceHandler<u8>) -> HandlerId {
        self.on(move |e| {
            if let Event::Rtp(packet) = e {
                callback(packet);
            }
        })
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Paused), callback)
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Resumed), callback)
    }
    fn on_producer_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::ProducerPaused), callback)
    }
    fn on_producer_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::ProducerResumed), callback)
    }
    fn on_score(&self, callback: Handler<ConsumerScore>) -> HandlerId {
        self.on(move |e| {
            if let Event::ConsumerScore(score) = e {
                if let Ok(score) = score.get() {
                    callback(&score);
                }
            }
        })
    }
    fn on_layers_change(&self, callback: Handler<Option<ConsumerLayers>>) -> HandlerId {
        self.on(move |e| {
            if let Event::Layers(layers) = e {
                if let Ok(layers) = layers.get() {
                    callback(&layers);
                }
            }
        })
    }
    fn on_trace(&self, _callback: Handler<ConsumerTraceEventData>) -> HandlerId {
        self.on(|_| {})
    }
    fn on_producer_close(&self, callback: OnceCallback) -> HandlerId {
        self.producer_close.add(callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

// ---------------------------------------------------------------------------------------------
// Data producers and consumers

impl State for DataProducerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            _ => {}
        }
    }
}

#[async_trait]
impl DataProducerBackend for Remote<DataProducerInfo> {
    fn id(&self) -> DataProducerId {
        self.read(|s| s.id)
    }
    fn r#type(&self) -> DataProducerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.r#type == DataProducerType::Direct)
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.read(|s| s.sctp_stream_parameters.map(|p| p.parameters()))
    }
    fn label(&self) -> String {
        self.read(|s| s.label.clone())
    }
    fn protocol(&self) -> String {
        self.read(|s| s.protocol.clone())
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    async fn dump(&self) -> Result<DataProducerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<DataProducerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), Closed> {
        if self.is_closed() {
            return Err(Closed);
        }
        let (ppid, payload) = message.into_ppid_and_payload();
        self.link.notify(Op::SendData {
            data_producer: self.handle,
            ppid,
            payload: payload.into_owned(),
            subchannels,
            required_subchannel,
            ignored_subchannel,
        });
        Ok(())
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Paused), callback)
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Resumed), callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl State for DataConsumerInfo {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            Event::ProducerPaused => self.producer_paused = true,
            Event::ProducerResumed => self.producer_paused = false,
            _ => {}
        }
    }
}

#[async_trait]
impl DataConsumerBackend for Remote<DataConsumerInfo> {
    fn id(&self) -> DataConsumerId {
        self.read(|s| s.id)
    }
    fn r#type(&self) -> DataConsumerType {
        self.read(|s| s.r#type)
    }
    fn is_direct(&self) -> bool {
        self.read(|s| s.r#type == DataConsumerType::Direct)
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.read(|s| s.sctp_stream_parameters.map(|p| p.parameters()))
    }
    fn label(&self) -> String {
        self.read(|s| s.label.clone())
    }
    fn protocol(&self) -> String {
        self.read(|s| s.protocol.clone())
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    fn producer_paused(&self) -> bool {
        self.read(|s| s.producer_paused)
    }
    fn subchannels(&self) -> Vec<u16> {
        self.read(|s| s.subchannels.clone())
    }
    async fn dump(&self) -> Result<DataConsumerDump, RequestError> {
        self.fetch(false).await
    }
    async fn get_stats(&self) -> Result<Vec<DataConsumerStat>, RequestError> {
        self.fetch(true).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn get_buffered_amount(&self) -> Result<u32, RequestError> {
        match self.call(Op::GetBufferedAmount { data_consumer: self.handle }).await? {
            Reply::Number(n) => Ok(n),
            other => Err(bad_reply(&other)),
        }
    }
    async fn set_buffered_amount_low_threshold(&self, threshold: u32) -> Result<(), RequestError> {
        done(self.call(Op::SetBufferedAmountLowThreshold { data_consumer: self.handle, threshold }).await?)
    }
    async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<(), RequestError> {
        done(self.call(Op::SetSubchannels { data_consumer: self.handle, subchannels: subchannels.clone() }).await?)?;
        lock(&self.state).subchannels = subchannels;
        Ok(())
    }
    async fn add_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        done(self.call(Op::AddSubchannel { data_consumer: self.handle, subchannel }).await?)?;
        let mut state = lock(&self.state);
        if !state.subchannels.contains(&subchannel) {
            state.subchannels.push(subchannel);
        }
        Ok(())
    }
    async fn remove_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        done(self.call(Op::RemoveSubchannel { data_consumer: self.handle, subchannel }).await?)?;
        lock(&self.state).subchannels.retain(|s| *s != subchannel);
        Ok(())
    }
    async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError> {
        let (ppid, payload) = message.into_ppid_and_payload();
        let op = Op::SendToDataConsumer { data_consumer: self.handle, ppid, payload: payload.into_owned() };
        match self.call(op).await? {
            Reply::Number(n) => Ok(n),
            other => Err(bad_reply(&other)),
        }
    }
    fn on_message(&self, callback: MessageHandler) -> HandlerId {
        self.on(move |e| {
            if let Event::DataMessage { ppid, payload } = e {
                if let Ok(message) = WebRtcMessage::new(*ppid, std::borrow::Cow::Borrowed(payload)) {
                    callback(&message);
                }
            }
        })
    }
    fn on_sctp_send_buffer_full(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::SctpSendBufferFull), callback)
    }
    fn on_buffered_amount_low(&self, callback: Arc<dyn Fn(u32) + Send + Sync>) -> HandlerId {
        self.on(move |e| {
            if let Event::BufferedAmountLow(n) = e {
                callback(*n);
            }
        })
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Paused), callback)
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Resumed), callback)
    }
    fn on_data_producer_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::ProducerPaused), callback)
    }
    fn on_data_producer_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::ProducerResumed), callback)
    }
    fn on_data_producer_close(&self, callback: OnceCallback) -> HandlerId {
        self.producer_close.add(callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

// ---------------------------------------------------------------------------------------------
// Observers

/// An RTP observer's state.
pub(crate) struct ObserverState {
    id: RtpObserverId,
    paused: bool,
}

impl State for ObserverState {
    fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
    }

    fn apply(&mut self, event: &Event) {
        match event {
            Event::Paused => self.paused = true,
            Event::Resumed => self.paused = false,
            _ => {}
        }
    }
}

fn on_producer_event(remote: &Remote<ObserverState>, added: bool, callback: Handler<ProducerId>) -> HandlerId {
    remote.on(move |e| match e {
        Event::ObserverAdded(id) if added => {
            if let Ok(id) = id.get() {
                callback(&id);
            }
        }
        Event::ObserverRemoved(id) if !added => {
            if let Ok(id) = id.get() {
                callback(&id);
            }
        }
        _ => {}
    })
}

#[async_trait]
impl RtpObserverBackend for Remote<ObserverState> {
    fn id(&self) -> RtpObserverId {
        self.read(|s| s.id)
    }
    fn paused(&self) -> bool {
        self.read(|s| s.paused)
    }
    async fn pause(&self) -> Result<(), RequestError> {
        self.set_paused(true).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        self.set_paused(false).await
    }
    async fn add_producer(&self, options: RtpObserverAddProducerOptions) -> Result<(), RequestError> {
        let op = Op::AddProducer { observer: self.handle, producer_id: Payload::new(&options.producer_id) };
        done(self.call(op).await?)
    }
    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError> {
        let op = Op::RemoveProducer { observer: self.handle, producer_id: Payload::new(&producer_id) };
        done(self.call(op).await?)
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Paused), callback)
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Resumed), callback)
    }
    fn on_add_producer(&self, callback: Handler<ProducerId>) -> HandlerId {
        on_producer_event(self, true, callback)
    }
    fn on_remove_producer(&self, callback: Handler<ProducerId>) -> HandlerId {
        on_producer_event(self, false, callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }
}

impl AudioLevelObserverBackend for Remote<ObserverState> {
    fn on_volumes(&self, callback: SliceHandler<Volume>) -> HandlerId {
        self.on(move |e| {
            if let Event::Volumes(volumes) = e {
                let volumes: Vec<Volume> = volumes
                    .iter()
                    .filter_map(|(id, volume)| id.get().ok().map(|producer_id| Volume { producer_id, volume: *volume }))
                    .collect();
                callback(&volumes);
            }
        })
    }
    fn on_silence(&self, callback: Callback) -> HandlerId {
        on_simple(self, |e| matches!(e, Event::Silence), callback)
    }
}

impl ActiveSpeakerObserverBackend for Remote<ObserverState> {
    fn on_dominant_speaker(&self, callback: Handler<ProducerId>) -> HandlerId {
        self.on(move |e| {
            if let Event::DominantSpeaker(id) = e {
                if let Ok(id) = id.get() {
                    callback(&id);
                }
            }
        })
    }
}
