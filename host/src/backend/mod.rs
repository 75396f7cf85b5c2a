//! The cell backend seam: every operation the API layer performs on a real mediasoup object —
//! creating routers, transports, producers, consumers, observers and pipe ends, connecting,
//! pausing, dumping, reading stats, closing — and every event coming back from one goes through
//! the traits of this module. The API layer holds `Arc<dyn …Backend>` handles and never a
//! mediasoup object.
//!
//! One implementation exists today: [`local`], the in-process mediasoup worker (a thread of
//! this process; the traits are implemented by mediasoup's own types). A worker on a peer host,
//! or in a child process, driven over the wire, is a second implementation of the same traits;
//! pipes between any two cells are built from these primitives (`create_pipe_transport`,
//! `connect`, `consume`/`produce` with pipe options), so they work across backends.
//!
//! Conventions: ids are the real objects' ids; a handle closes its real object when its last
//! clone is dropped (as mediasoup's objects do); event registrations return a
//! [`HandlerId`] that unregisters on drop unless detached; events that name producers name them
//! by real id (the API layer maps them to its virtual objects).

pub mod local;

use crate::options::{DataProducerOptions, ProducerOptions};
use async_trait::async_trait;
use event_listener_primitives::HandlerId;
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
    RtpCapabilitiesFinalized, RtpCodecCapability, RtpParameters, SctpStreamParameters, TransportId, WebRtcMessage,
};
use mediasoup::prelude::{IceCandidate, IceParameters};
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
use mediasoup::webrtc_server::{WebRtcServerDump, WebRtcServerId, WebRtcServerOptions};
use mediasoup::webrtc_transport::{
    WebRtcTransportDump, WebRtcTransportListenInfos, WebRtcTransportOptions, WebRtcTransportRemoteParameters,
    WebRtcTransportStat,
};
use mediasoup::worker::{CreateWebRtcServerError, ExitError, RequestError, WorkerDump, WorkerId, WorkerUpdateSettings};
use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

/// A handler of an event without arguments.
pub(crate) type Callback = Arc<dyn Fn() + Send + Sync>;
/// A handler of a once-only event (close, death).
pub(crate) type OnceCallback = Box<dyn FnOnce() + Send>;
/// A handler of an event with one argument.
pub(crate) type Handler<A> = Arc<dyn Fn(&A) + Send + Sync>;
/// A handler of an event carrying a slice (packets, scores, volumes).
pub(crate) type SliceHandler<A> = Arc<dyn Fn(&[A]) + Send + Sync>;

/// A notification (fire-and-forget message) could not be sent: the object is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// One real worker, wherever it runs.
#[async_trait]
pub(crate) trait WorkerBackend: Send + Sync + Debug {
    /// The worker's id.
    fn id(&self) -> WorkerId;
    /// Whether the worker is closed (or dead).
    fn closed(&self) -> bool;
    /// CPU time the worker has used so far; `None` when it cannot be measured.
    fn cpu_time(&self) -> Option<Duration>;
    /// Creates a router.
    async fn create_router(&self, options: RouterOptions) -> Result<Arc<dyn RouterBackend>, RequestError>;
    /// Creates a WebRTC server (binds its ports now).
    async fn create_webrtc_server(
        &self,
        options: WebRtcServerOptions,
    ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError>;
    /// Updates the worker's log settings.
    async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError>;
    /// The worker's own dump (its routers, servers, channel handlers).
    async fn dump(&self) -> Result<WorkerDump, RequestError>;
    /// Called once if the worker dies unexpectedly (never when it is closed).
    fn on_dead(&self, callback: Box<dyn FnOnce(ExitError) + Send>) -> HandlerId;
    /// Called once when the worker is closed or dead.
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
    /// The worker's own process, when it runs in one (process isolation).
    fn process(&self) -> Option<ProcessStats> {
        None
    }
    /// Called with `true` when the worker goes silent (a worker process that stopped
    /// answering: it should leave placement until heard again) and `false` when it is heard
    /// again; in-process workers never do.
    fn on_silence(&self, _callback: Box<dyn Fn(bool) + Send + Sync>) {}
}

/// A worker process: its pid and resident memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ProcessStats {
    /// The process id.
    pub pid: u32,
    /// Resident memory (from `/proc/PID/statm`), when readable.
    pub rss_bytes: Option<u64>,
}

/// One real router.
#[async_trait]
pub(crate) trait RouterBackend: Send + Sync + Debug {
    /// The router's id.
    fn id(&self) -> RouterId;
    /// Its RTP capabilities.
    fn rtp_capabilities(&self) -> RtpCapabilitiesFinalized;
    /// Whether a receiver with `capabilities` can consume `producer_id` (a producer of this
    /// router).
    fn can_consume(&self, producer_id: &ProducerId, capabilities: &RtpCapabilities) -> bool;
    /// Called when the router closes (its worker closed, or its host dropped it).
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
    /// Replaces the router's codecs.
    fn update_media_codecs(&self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError>;
    /// Replaces the router's codecs and returns its new capabilities (one round trip for a
    /// router on another host).
    async fn capabilities_for(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, UpdateMediaCodecsError> {
        self.update_media_codecs(media_codecs)?;
        Ok(self.rtp_capabilities())
    }
    /// Creates a WebRTC transport listening on its own ports or on `server`.
    async fn create_webrtc_transport(
        &self,
        listen: WebRtcListen,
        settings: WebRtcTransportSettings,
    ) -> Result<Arc<dyn WebRtcTransportBackend>, RequestError>;
    /// Creates a plain transport.
    async fn create_plain_transport(
        &self,
        options: PlainTransportOptions,
    ) -> Result<Arc<dyn PlainTransportBackend>, RequestError>;
    /// Creates a pipe transport.
    async fn create_pipe_transport(
        &self,
        options: PipeTransportOptions,
    ) -> Result<Arc<dyn PipeTransportBackend>, RequestError>;
    /// Creates a direct transport.
    async fn create_direct_transport(
        &self,
        options: DirectTransportOptions,
    ) -> Result<Arc<dyn DirectTransportBackend>, RequestError>;
    /// Creates an audio level observer.
    async fn create_audio_level_observer(
        &self,
        options: AudioLevelObserverOptions,
    ) -> Result<Arc<dyn AudioLevelObserverBackend>, RequestError>;
    /// Creates an active speaker observer.
    async fn create_active_speaker_observer(
        &self,
        options: ActiveSpeakerObserverOptions,
    ) -> Result<Arc<dyn ActiveSpeakerObserverBackend>, RequestError>;
    /// The router's dump.
    async fn dump(&self) -> Result<RouterDump, RequestError>;
}

/// How a WebRTC transport listens.
#[derive(Debug, Clone)]
pub(crate) enum WebRtcListen {
    /// On its own ports.
    Individual(WebRtcTransportListenInfos),
    /// On a WebRTC server of the same worker.
    Server(Arc<dyn WebRtcServerBackend>),
}

/// Everything of mediasoup's `WebRtcTransportOptions` but where it listens.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub(crate) struct WebRtcTransportSettings {
    pub enable_bwe: bool,
    pub initial_available_outgoing_bitrate: u64,
    pub max_incoming_bitrate: Option<u64>,
    pub max_outgoing_bitrate: Option<u64>,
    pub min_outgoing_bitrate: Option<u64>,
    pub enable_udp: bool,
    pub enable_tcp: bool,
    pub prefer_udp: bool,
    pub prefer_tcp: bool,
    pub ice_consent_timeout: u8,
    pub enable_sctp: bool,
    pub max_send_message_size: u32,
    pub max_receive_message_size: u32,
    pub sctp_send_buffer_size: u32,
    pub sctp_per_stream_send_queue_limit: u32,
    pub sctp_max_receiver_window_buffer_size: u32,
    pub sctp_default_stream_buffered_amount_low_threshold: u32,
    pub sctp_zero_checksum: mediasoup::prelude::SctpZeroChecksum,
}

impl WebRtcTransportSettings {
    /// The settings of mediasoup's options (their listening part is dropped).
    pub(crate) fn of(options: &WebRtcTransportOptions) -> Self {
        Self {
            enable_bwe: options.enable_bwe,
            initial_available_outgoing_bitrate: options.initial_available_outgoing_bitrate,
            max_incoming_bitrate: options.max_incoming_bitrate,
            max_outgoing_bitrate: options.max_outgoing_bitrate,
            min_outgoing_bitrate: options.min_outgoing_bitrate,
            enable_udp: options.enable_udp,
            enable_tcp: options.enable_tcp,
            prefer_udp: options.prefer_udp,
            prefer_tcp: options.prefer_tcp,
            ice_consent_timeout: options.ice_consent_timeout,
            enable_sctp: options.enable_sctp,
            max_send_message_size: options.max_send_message_size,
            max_receive_message_size: options.max_receive_message_size,
            sctp_send_buffer_size: options.sctp_send_buffer_size,
            sctp_per_stream_send_queue_limit: options.sctp_per_stream_send_queue_limit,
            sctp_max_receiver_window_buffer_size: options.sctp_max_receiver_window_buffer_size,
            sctp_default_stream_buffered_amount_low_threshold: options
                .sctp_default_stream_buffered_amount_low_threshold,
            sctp_zero_checksum: options.sctp_zero_checksum,
        }
    }

    /// Writes these settings into mediasoup's options.
    pub(crate) fn apply(&self, options: &mut WebRtcTransportOptions) {
        options.enable_bwe = self.enable_bwe;
        options.initial_available_outgoing_bitrate = self.initial_available_outgoing_bitrate;
        options.max_incoming_bitrate = self.max_incoming_bitrate;
        options.max_outgoing_bitrate = self.max_outgoing_bitrate;
        options.min_outgoing_bitrate = self.min_outgoing_bitrate;
        options.enable_udp = self.enable_udp;
        options.enable_tcp = self.enable_tcp;
        options.prefer_udp = self.prefer_udp;
        options.prefer_tcp = self.prefer_tcp;
        options.ice_consent_timeout = self.ice_consent_timeout;
        options.enable_sctp = self.enable_sctp;
        options.max_send_message_size = self.max_send_message_size;
        options.max_receive_message_size = self.max_receive_message_size;
        options.sctp_send_buffer_size = self.sctp_send_buffer_size;
        options.sctp_per_stream_send_queue_limit = self.sctp_per_stream_send_queue_limit;
        options.sctp_max_receiver_window_buffer_size = self.sctp_max_receiver_window_buffer_size;
        options.sctp_default_stream_buffered_amount_low_threshold =
            self.sctp_default_stream_buffered_amount_low_threshold;
        options.sctp_zero_checksum = self.sctp_zero_checksum;
    }
}

/// One real WebRTC server.
#[async_trait]
pub(crate) trait WebRtcServerBackend: Send + Sync + Debug {
    /// The server's id.
    fn id(&self) -> WebRtcServerId;
    /// Its dump (UDP sockets, TCP servers, transports).
    async fn dump(&self) -> Result<WebRtcServerDump, RequestError>;
    /// The implementation behind the handle (a backend finds its own servers with it).
    fn as_any(&self) -> &dyn Any;
}

/// What every real transport offers.
#[async_trait]
pub(crate) trait TransportBackend: Send + Sync + Debug {
    /// The transport's id.
    fn id(&self) -> TransportId;
    /// Whether it is closed.
    fn closed(&self) -> bool;
    /// Receives media from the endpoint.
    async fn produce(&self, options: ProducerOptions) -> Result<Arc<dyn ProducerBackend>, ProduceError>;
    /// Sends a producer's media to the endpoint.
    async fn consume(&self, options: ConsumerOptions) -> Result<Arc<dyn ConsumerBackend>, ConsumeError>;
    /// Receives data messages from the endpoint.
    async fn produce_data(
        &self,
        options: DataProducerOptions,
    ) -> Result<Arc<dyn DataProducerBackend>, ProduceDataError>;
    /// Sends a data producer's messages to the endpoint.
    async fn consume_data(
        &self,
        options: crate::options::DataConsumerOptions,
    ) -> Result<Arc<dyn DataConsumerBackend>, ConsumeDataError>;
    /// Enables "trace" events.
    async fn enable_trace_event(&self, types: Vec<TransportTraceEventType>) -> Result<(), RequestError>;
    /// "trace" events.
    fn on_trace(&self, callback: Handler<TransportTraceEventData>) -> HandlerId;
    /// Called once when the real transport closes, for whatever reason.
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// A real WebRTC transport.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait WebRtcTransportBackend: TransportBackend {
    async fn connect(&self, remote: WebRtcTransportRemoteParameters) -> Result<(), RequestError>;
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError>;
    async fn set_max_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError>;
    async fn set_min_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError>;
    async fn restart_ice(&self) -> Result<IceParameters, RequestError>;
    async fn dump(&self) -> Result<WebRtcTransportDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<WebRtcTransportStat>, RequestError>;
    fn ice_role(&self) -> IceRole;
    fn ice_parameters(&self) -> IceParameters;
    fn ice_candidates(&self) -> Vec<IceCandidate>;
    fn ice_state(&self) -> IceState;
    fn ice_selected_tuple(&self) -> Option<TransportTuple>;
    fn dtls_parameters(&self) -> DtlsParameters;
    fn dtls_state(&self) -> DtlsState;
    fn dtls_remote_cert(&self) -> Option<String>;
    fn sctp_parameters(&self) -> Option<SctpParameters>;
    fn sctp_state(&self) -> Option<SctpState>;
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities>;
    fn on_ice_state_change(&self, callback: Arc<dyn Fn(IceState) + Send + Sync>) -> HandlerId;
    fn on_ice_selected_tuple_change(&self, callback: Handler<TransportTuple>) -> HandlerId;
    fn on_dtls_state_change(&self, callback: Arc<dyn Fn(DtlsState) + Send + Sync>) -> HandlerId;
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId;
}

/// A real plain transport.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait PlainTransportBackend: TransportBackend {
    async fn connect(&self, remote: PlainTransportRemoteParameters) -> Result<(), RequestError>;
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError>;
    async fn dump(&self) -> Result<PlainTransportDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<PlainTransportStat>, RequestError>;
    fn tuple(&self) -> TransportTuple;
    fn rtcp_tuple(&self) -> Option<TransportTuple>;
    fn sctp_parameters(&self) -> Option<SctpParameters>;
    fn sctp_state(&self) -> Option<SctpState>;
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities>;
    fn srtp_parameters(&self) -> Option<SrtpParameters>;
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId;
    fn on_rtcp_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId;
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId;
}

/// A real pipe transport.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait PipeTransportBackend: TransportBackend {
    async fn connect(&self, remote: PipeTransportRemoteParameters) -> Result<(), RequestError>;
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError>;
    async fn dump(&self) -> Result<PipeTransportDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<PipeTransportStat>, RequestError>;
    fn tuple(&self) -> TransportTuple;
    fn sctp_parameters(&self) -> Option<SctpParameters>;
    fn sctp_state(&self) -> Option<SctpState>;
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities>;
    fn srtp_parameters(&self) -> Option<SrtpParameters>;
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId;
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId;
}

/// A real direct transport.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait DirectTransportBackend: TransportBackend {
    async fn dump(&self) -> Result<DirectTransportDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<DirectTransportStat>, RequestError>;
    fn send_rtcp(&self, packet: Vec<u8>) -> Result<(), Closed>;
    fn on_rtcp(&self, callback: SliceHandler<u8>) -> HandlerId;
}

/// A real producer.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait ProducerBackend: Send + Sync + Debug {
    fn id(&self) -> ProducerId;
    fn kind(&self) -> MediaKind;
    fn rtp_parameters(&self) -> RtpParameters;
    fn consumable_rtp_parameters(&self) -> RtpParameters;
    fn r#type(&self) -> ProducerType;
    fn is_direct(&self) -> bool;
    fn paused(&self) -> bool;
    fn score(&self) -> Vec<ProducerScore>;
    async fn dump(&self) -> Result<ProducerDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<ProducerStat>, RequestError>;
    async fn pause(&self) -> Result<(), RequestError>;
    async fn resume(&self) -> Result<(), RequestError>;
    async fn enable_trace_event(&self, types: Vec<ProducerTraceEventType>) -> Result<(), RequestError>;
    /// Sends an RTP packet (direct producers only).
    fn send(&self, packet: Vec<u8>) -> Result<(), Closed>;
    fn on_score(&self, callback: SliceHandler<ProducerScore>) -> HandlerId;
    fn on_video_orientation_change(&self, callback: Arc<dyn Fn(ProducerVideoOrientation) + Send + Sync>) -> HandlerId;
    fn on_pause(&self, callback: Callback) -> HandlerId;
    fn on_resume(&self, callback: Callback) -> HandlerId;
    fn on_trace(&self, callback: Handler<ProducerTraceEventData>) -> HandlerId;
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// A real consumer.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait ConsumerBackend: Send + Sync + Debug {
    fn id(&self) -> ConsumerId;
    fn kind(&self) -> MediaKind;
    fn rtp_parameters(&self) -> RtpParameters;
    fn r#type(&self) -> ConsumerType;
    fn paused(&self) -> bool;
    fn producer_paused(&self) -> bool;
    fn priority(&self) -> u8;
    fn score(&self) -> ConsumerScore;
    fn preferred_layers(&self) -> Option<ConsumerLayers>;
    fn current_layers(&self) -> Option<ConsumerLayers>;
    async fn dump(&self) -> Result<ConsumerDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, RequestError>;
    async fn pause(&self) -> Result<(), RequestError>;
    async fn resume(&self) -> Result<(), RequestError>;
    async fn set_preferred_layers(&self, layers: ConsumerLayers) -> Result<(), RequestError>;
    async fn set_priority(&self, priority: u8) -> Result<(), RequestError>;
    async fn unset_priority(&self) -> Result<(), RequestError>;
    async fn request_key_frame(&self) -> Result<(), RequestError>;
    async fn enable_trace_event(&self, types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError>;
    fn on_rtp(&self, callback: SliceHandler<u8>) -> HandlerId;
    fn on_pause(&self, callback: Callback) -> HandlerId;
    fn on_resume(&self, callback: Callback) -> HandlerId;
    fn on_producer_pause(&self, callback: Callback) -> HandlerId;
    fn on_producer_resume(&self, callback: Callback) -> HandlerId;
    fn on_score(&self, callback: Handler<ConsumerScore>) -> HandlerId;
    fn on_layers_change(&self, callback: Handler<Option<ConsumerLayers>>) -> HandlerId;
    fn on_trace(&self, callback: Handler<ConsumerTraceEventData>) -> HandlerId;
    fn on_producer_close(&self, callback: OnceCallback) -> HandlerId;
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// A real data producer.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait DataProducerBackend: Send + Sync + Debug {
    fn id(&self) -> DataProducerId;
    fn r#type(&self) -> DataProducerType;
    fn is_direct(&self) -> bool;
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters>;
    fn label(&self) -> String;
    fn protocol(&self) -> String;
    fn paused(&self) -> bool;
    async fn dump(&self) -> Result<DataProducerDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<DataProducerStat>, RequestError>;
    async fn pause(&self) -> Result<(), RequestError>;
    async fn resume(&self) -> Result<(), RequestError>;
    /// Sends a message (direct data producers only).
    fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), Closed>;
    fn on_pause(&self, callback: Callback) -> HandlerId;
    fn on_resume(&self, callback: Callback) -> HandlerId;
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// A handler of data messages.
pub(crate) type MessageHandler = Arc<dyn Fn(&WebRtcMessage<'_>) + Send + Sync>;

/// A real data consumer.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait DataConsumerBackend: Send + Sync + Debug {
    fn id(&self) -> DataConsumerId;
    fn r#type(&self) -> DataConsumerType;
    fn is_direct(&self) -> bool;
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters>;
    fn label(&self) -> String;
    fn protocol(&self) -> String;
    fn paused(&self) -> bool;
    fn producer_paused(&self) -> bool;
    fn subchannels(&self) -> Vec<u16>;
    async fn dump(&self) -> Result<DataConsumerDump, RequestError>;
    async fn get_stats(&self) -> Result<Vec<DataConsumerStat>, RequestError>;
    async fn pause(&self) -> Result<(), RequestError>;
    async fn resume(&self) -> Result<(), RequestError>;
    async fn get_buffered_amount(&self) -> Result<u32, RequestError>;
    async fn set_buffered_amount_low_threshold(&self, threshold: u32) -> Result<(), RequestError>;
    async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<(), RequestError>;
    async fn add_subchannel(&self, subchannel: u16) -> Result<(), RequestError>;
    async fn remove_subchannel(&self, subchannel: u16) -> Result<(), RequestError>;
    /// Sends a message to the endpoint (regular data consumers only).
    async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError>;
    fn on_message(&self, callback: MessageHandler) -> HandlerId;
    fn on_sctp_send_buffer_full(&self, callback: Callback) -> HandlerId;
    fn on_buffered_amount_low(&self, callback: Arc<dyn Fn(u32) + Send + Sync>) -> HandlerId;
    fn on_pause(&self, callback: Callback) -> HandlerId;
    fn on_resume(&self, callback: Callback) -> HandlerId;
    fn on_data_producer_pause(&self, callback: Callback) -> HandlerId;
    fn on_data_producer_resume(&self, callback: Callback) -> HandlerId;
    fn on_data_producer_close(&self, callback: OnceCallback) -> HandlerId;
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// What both kinds of real RTP observers offer; producers are named by real id.
#[async_trait]
#[allow(missing_docs)]
pub(crate) trait RtpObserverBackend: Send + Sync + Debug {
    fn id(&self) -> RtpObserverId;
    fn paused(&self) -> bool;
    async fn pause(&self) -> Result<(), RequestError>;
    async fn resume(&self) -> Result<(), RequestError>;
    async fn add_producer(&self, options: RtpObserverAddProducerOptions) -> Result<(), RequestError>;
    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError>;
    fn on_pause(&self, callback: Callback) -> HandlerId;
    fn on_resume(&self, callback: Callback) -> HandlerId;
    fn on_add_producer(&self, callback: Handler<ProducerId>) -> HandlerId;
    fn on_remove_producer(&self, callback: Handler<ProducerId>) -> HandlerId;
    fn on_close(&self, callback: OnceCallback) -> HandlerId;
}

/// The volume of one producer, by real id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Volume {
    /// The producer.
    pub(crate) producer_id: ProducerId,
    /// Its volume in dBvo.
    pub(crate) volume: i8,
}

/// A real audio level observer.
#[allow(missing_docs)]
pub(crate) trait AudioLevelObserverBackend: RtpObserverBackend {
    fn on_volumes(&self, callback: SliceHandler<Volume>) -> HandlerId;
    fn on_silence(&self, callback: Callback) -> HandlerId;
}

/// A real active speaker observer.
#[allow(missing_docs)]
pub(crate) trait ActiveSpeakerObserverBackend: RtpObserverBackend {
    fn on_dominant_speaker(&self, callback: Handler<ProducerId>) -> HandlerId;
}
