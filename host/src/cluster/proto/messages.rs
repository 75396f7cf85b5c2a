//! The messages of the cluster protocol: hello and welcome, requests (one [`Op`] per backend
//! operation) and their replies, events, and cell adverts.

use super::Payload;
use mediasoup::consumer::{ConsumerLayers, ConsumerScore, ConsumerType};
use mediasoup::prelude::{
    DtlsParameters, IceCandidate, IceParameters, ListenInfo, MediaKind, RtpCapabilities, RtpCapabilitiesFinalized,
    RtpCodecCapability, RtpParameters,
};
use mediasoup::producer::{ProducerId, ProducerScore, ProducerType};
use mediasoup::types::data_structures::{DtlsState, IceRole, IceState, SctpState, TransportTuple};
use mediasoup::types::sctp_parameters::{SctpNegotiatedCapabilities, SctpParameters};
use mediasoup::types::srtp_parameters::{SrtpCryptoSuite, SrtpParameters};
use serde::{Deserialize, Serialize};

/// An object of a session, named by the host that holds it.
pub type Handle = u64;

/// Who opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// An application (server TLS and a token).
    Client,
    /// Another host of the cluster (mutual TLS with the cluster CA).
    Peer,
}

/// The first message of a connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Client or peer.
    pub role: Role,
    /// The sender's node name (peers) or program name (clients).
    pub node: String,
    /// The client's token.
    pub token: Option<String>,
    /// A session to resume after a dropped link (objects and missed events are kept).
    pub resume: Option<ResumeTicket>,
    /// The last event (sequence number) received in that session: later ones are replayed.
    pub last_event: u64,
}

impl std::fmt::Debug for Hello {
    /// Without the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hello")
            .field("role", &self.role)
            .field("node", &self.node)
            .field("resume", &self.resume)
            .field("last_event", &self.last_event)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Welcome {
    /// Without the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welcome")
            .field("node", &self.node)
            .field("region", &self.region)
            .field("boot", &self.boot)
            .field("session", &self.session)
            .field("resumed", &self.resumed)
            .field("grace_ms", &self.grace_ms)
            .field("cells", &self.cells)
            .finish_non_exhaustive()
    }
}

/// What resumes a session: its number and secret, as the [`Welcome`] that opened it gave them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumeTicket {
    /// The session.
    pub session: u64,
    /// Its secret.
    pub secret: [u8; 16],
}

impl std::fmt::Debug for ResumeTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResumeTicket").field("session", &self.session).finish_non_exhaustive()
    }
}

/// The host's answer to an accepted hello.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// Its node name.
    pub node: String,
    /// Its region.
    pub region: String,
    /// The host process's incarnation (random at start): a different one than before means the
    /// host restarted, and every object of the earlier session is gone.
    pub boot: u64,
    /// The session (give it back in [`Hello::resume`] after a dropped link).
    pub session: u64,
    /// The session's secret: with the same identity, it resumes the session.
    pub secret: [u8; 16],
    /// Whether the asked session was resumed (false: a new, empty one).
    pub resumed: bool,
    /// How long the host keeps the session's objects after its connection drops: the caller
    /// counts the host lost when it stays unreachable that long.
    pub grace_ms: u64,
    /// The host's workers and their load (the first advert; later ones come as
    /// [`Message::Cells`]).
    pub cells: Vec<CellAdvert>,
}

/// One worker a host offers, with its load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellAdvert {
    /// The worker's handle in this session.
    pub worker: Handle,
    /// The real worker's id.
    pub worker_id: String,
    /// The node running it.
    pub node: String,
    /// That node's region.
    pub region: String,
    /// Its CPU time so far, in microseconds (when measurable).
    pub cpu_time_us: Option<u64>,
    /// It takes no new transports (its host drains, or the operator drained it): placement
    /// skips it; what lives there keeps working.
    pub draining: bool,
}

/// Every message, in both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Client → host, first.
    Hello(Hello),
    /// Host → client, the hello was accepted.
    Welcome(Welcome),
    /// Host → client, the hello was refused (the connection then closes).
    Refused {
        /// Why.
        reason: String,
    },
    /// An operation.
    Request {
        /// Chosen by the caller; the response carries it back.
        id: u32,
        /// What to do.
        op: Op,
    },
    /// The outcome of a request.
    Response {
        /// The request's id.
        id: u32,
        /// Its result.
        result: Result<Reply, WireError>,
    },
    /// Something happened to an object of the session.
    Event {
        /// The session's event sequence number (from 1).
        seq: u64,
        /// The object.
        handle: Handle,
        /// What.
        event: Event,
    },
    /// The host's workers and their load (sent every second, and when they change).
    Cells(Vec<CellAdvert>),
    /// The sender is closing the connection.
    Bye {
        /// Why.
        reason: String,
    },
}

impl Message {
    /// The message's kind, for logs (never its contents: they may be large or secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello(_) => "hello",
            Message::Welcome(_) => "welcome",
            Message::Refused { .. } => "refused",
            Message::Request { .. } => "request",
            Message::Response { .. } => "response",
            Message::Event { .. } => "event",
            Message::Cells(_) => "cells",
            Message::Bye { .. } => "bye",
        }
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireError {
    /// The auth hook denied it.
    Denied(String),
    /// The handle names no object of the session (closed, or never existed).
    NotFound(Handle),
    /// The operation does not apply to that object.
    WrongObject(String),
    /// mediasoup refused it.
    Failed(String),
    /// The request or its payload could not be read.
    BadRequest(String),
    /// The link went down before the response arrived.
    LinkDown,
    /// mediasoup refused a produce or consume with one of its own error variants
    /// (`cluster::refusals::MediasoupError`, self-describing: it holds MIME types).
    Mediasoup(super::Payload<crate::cluster::refusals::MediasoupError>),
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Denied(reason) => write!(f, "denied: {reason}"),
            Self::NotFound(handle) => write!(f, "no object {handle} in this session"),
            Self::WrongObject(what) => write!(f, "wrong object: {what}"),
            Self::Failed(reason) => f.write_str(reason),
            Self::BadRequest(reason) => write!(f, "bad request: {reason}"),
            Self::LinkDown => f.write_str("the link to the host is down"),
            Self::Mediasoup(refusal) => match refusal.get() {
                Ok(refusal) => write!(f, "mediasoup refused it: {refusal:?}"),
                Err(error) => write!(f, "mediasoup refused it ({error})"),
            },
        }
    }
}

impl std::error::Error for WireError {}

/// Remote parameters for `connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ConnectParams {
    WebRtc {
        dtls_parameters: DtlsParameters,
    },
    Plain {
        ip: Option<std::net::IpAddr>,
        port: Option<u16>,
        rtcp_port: Option<u16>,
        srtp_parameters: Option<SrtpParameters>,
    },
    Pipe {
        ip: std::net::IpAddr,
        port: u16,
        srtp_parameters: Option<SrtpParameters>,
    },
}

/// A plain or pipe transport's state after `connect` (the reply's value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connected {
    /// The tuple, now with its remote half.
    pub tuple: TransportTuple,
    /// The RTCP tuple of a plain transport without RTCP multiplexing.
    pub rtcp_tuple: Option<TransportTuple>,
    /// The SRTP parameters the transport uses.
    pub srtp_parameters: Option<SrtpParameters>,
}

/// The SCTP settings shared by transport options.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SctpWire {
    pub enable_sctp: bool,
    pub max_send_message_size: u32,
    pub max_receive_message_size: u32,
    pub sctp_send_buffer_size: u32,
    pub sctp_per_stream_send_queue_limit: u32,
    pub sctp_max_receiver_window_buffer_size: u32,
    pub sctp_default_stream_buffered_amount_low_threshold: u32,
    pub sctp_zero_checksum: mediasoup::prelude::SctpZeroChecksum,
}

/// Bitrate settings shared by WebRTC and plain transports.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct BitrateWire {
    pub enable_bwe: bool,
    pub initial_available_outgoing_bitrate: u64,
    pub max_incoming_bitrate: Option<u64>,
    pub max_outgoing_bitrate: Option<u64>,
    pub min_outgoing_bitrate: Option<u64>,
}

/// `WebRtcTransportOptions` without app data (always on its own ports: a host's WebRTC
/// servers are its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WebRtcWire {
    /// Listen on a WebRTC server (the listen infos are then empty) or not.
    pub server: ServerWire,
    pub listen_infos: Vec<ListenInfo>,
    pub bitrate: BitrateWire,
    pub enable_udp: bool,
    pub enable_tcp: bool,
    pub prefer_udp: bool,
    pub prefer_tcp: bool,
    pub ice_consent_timeout: u8,
    pub sctp: SctpWire,
}

/// Which WebRTC server a WebRTC transport listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerWire {
    /// None: on its own listen infos.
    None,
    /// The host's WebRTC server of the router's worker ([`Op::WebRtcServer`]).
    Host,
    /// A server this session created ([`Op::CreateWebRtcServer`]) on the router's worker.
    Object(Handle),
}

/// The trace event types asked of a transport, producer or consumer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum TraceTypes {
    Transport(Vec<mediasoup::transport::TransportTraceEventType>),
    Producer(Vec<mediasoup::producer::ProducerTraceEventType>),
    Consumer(Vec<mediasoup::consumer::ConsumerTraceEventType>),
}

/// `PlainTransportOptions` without app data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PlainWire {
    pub listen_info: ListenInfo,
    pub rtcp_listen_info: Option<ListenInfo>,
    pub rtcp_mux: bool,
    pub comedia: bool,
    pub bitrate: BitrateWire,
    pub sctp: SctpWire,
    pub enable_srtp: bool,
    pub srtp_crypto_suite: SrtpCryptoSuite,
}

/// `PipeTransportOptions` without app data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct PipeWire {
    pub listen_info: ListenInfo,
    pub sctp: SctpWire,
    pub enable_rtx: bool,
    pub enable_srtp: bool,
}

/// `ProducerOptions` without app data; `id` is set for pipe producers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProduceWire {
    pub id: Option<ProducerId>,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub paused: bool,
    pub key_frame_request_delay: u32,
    pub enable_mediasoup_packet_id_header_extension: bool,
}

/// `ConsumerOptions` without app data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ConsumeWire {
    pub producer_id: ProducerId,
    pub rtp_capabilities: RtpCapabilities,
    pub paused: bool,
    pub mid: Option<String>,
    pub preferred_layers: Option<ConsumerLayers>,
    pub enable_rtx: Option<bool>,
    pub ignore_dtx: bool,
    pub pipe: bool,
}

/// An SCTP stream's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct SctpStreamWire {
    pub stream_id: u16,
    pub ordered: bool,
    pub max_packet_life_time: Option<u16>,
    pub max_retransmits: Option<u16>,
}

impl SctpStreamWire {
    /// The wire form of mediasoup's parameters.
    pub fn of(parameters: &mediasoup::prelude::SctpStreamParameters) -> Self {
        Self {
            stream_id: parameters.stream_id(),
            ordered: parameters.ordered(),
            max_packet_life_time: parameters.max_packet_life_time(),
            max_retransmits: parameters.max_retransmits(),
        }
    }

    /// mediasoup's parameters (through its constructors: the fields are private).
    pub fn parameters(&self) -> mediasoup::prelude::SctpStreamParameters {
        use mediasoup::prelude::SctpStreamParameters as P;
        match (self.ordered, self.max_packet_life_time, self.max_retransmits) {
            (false, Some(life), _) => P::new_unordered_with_life_time(self.stream_id, life),
            (false, None, Some(n)) => P::new_unordered_with_retransmits(self.stream_id, n),
            _ => P::new_ordered(self.stream_id),
        }
    }
}

/// `DataProducerOptions` without app data; `id` is set for pipe data producers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProduceDataWire {
    pub id: Option<mediasoup::data_producer::DataProducerId>,
    pub sctp: Option<SctpStreamWire>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
}

/// `DataConsumerOptions` without app data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ConsumeDataWire {
    pub data_producer_id: mediasoup::data_producer::DataProducerId,
    pub ordered: Option<bool>,
    pub max_packet_life_time: Option<u16>,
    pub max_retransmits: Option<u16>,
    pub paused: bool,
    pub subchannels: Option<Vec<u16>>,
}

/// An operation on an object of the session (every backend operation has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Op {
    CreateRouter {
        worker: Handle,
        media_codecs: Payload<Vec<RtpCodecCapability>>,
        room: Option<String>,
        /// A token for this router and everything under it (else the session's).
        token: Option<String>,
    },
    /// A new token for the session (`router: None`) or for a router created with its own.
    Refresh {
        router: Option<Handle>,
        token: String,
    },
    WorkerDump {
        worker: Handle,
    },
    UpdateSettings {
        worker: Handle,
        log_level: Option<String>,
        log_tags: Option<Vec<String>>,
    },
    CapabilitiesFor {
        router: Handle,
        media_codecs: Payload<Vec<RtpCodecCapability>>,
    },
    CreateWebRtcTransport {
        router: Handle,
        options: Payload<WebRtcWire>,
    },
    CreatePlainTransport {
        router: Handle,
        options: Payload<PlainWire>,
    },
    CreatePipeTransport {
        router: Handle,
        options: Payload<PipeWire>,
    },
    CreateDirectTransport {
        router: Handle,
        max_send_message_size: u32,
        max_receive_message_size: u32,
    },
    CreateAudioLevelObserver {
        router: Handle,
        max_entries: u16,
        threshold: i8,
        interval: u16,
    },
    CreateActiveSpeakerObserver {
        router: Handle,
        interval: u16,
    },
    Connect {
        transport: Handle,
        params: Payload<ConnectParams>,
    },
    SetMaxIncomingBitrate {
        transport: Handle,
        bitrate: u64,
    },
    SetMaxOutgoingBitrate {
        transport: Handle,
        bitrate: u64,
    },
    SetMinOutgoingBitrate {
        transport: Handle,
        bitrate: u64,
    },
    RestartIce {
        transport: Handle,
    },
    Produce {
        transport: Handle,
        options: Payload<ProduceWire>,
    },
    Consume {
        transport: Handle,
        options: Payload<ConsumeWire>,
    },
    ProduceData {
        transport: Handle,
        options: Payload<ProduceDataWire>,
    },
    ConsumeData {
        transport: Handle,
        options: Payload<ConsumeDataWire>,
    },
    SendData {
        data_producer: Handle,
        ppid: u32,
        payload: Vec<u8>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    },
    SendToDataConsumer {
        data_consumer: Handle,
        ppid: u32,
        payload: Vec<u8>,
    },
    GetBufferedAmount {
        data_consumer: Handle,
    },
    SetBufferedAmountLowThreshold {
        data_consumer: Handle,
        threshold: u32,
    },
    SetSubchannels {
        data_consumer: Handle,
        subchannels: Vec<u16>,
    },
    AddSubchannel {
        data_consumer: Handle,
        subchannel: u16,
    },
    RemoveSubchannel {
        data_consumer: Handle,
        subchannel: u16,
    },
    SendRtp {
        producer: Handle,
        packet: Vec<u8>,
    },
    SendRtcp {
        transport: Handle,
        packet: Vec<u8>,
    },
    SetPreferredLayers {
        consumer: Handle,
        layers: Payload<ConsumerLayers>,
    },
    SetPriority {
        consumer: Handle,
        priority: Option<u8>,
    },
    RequestKeyFrame {
        consumer: Handle,
    },
    AddProducer {
        observer: Handle,
        producer_id: Payload<ProducerId>,
    },
    RemoveProducer {
        observer: Handle,
        producer_id: Payload<ProducerId>,
    },
    Pause {
        handle: Handle,
    },
    Resume {
        handle: Handle,
    },
    Dump {
        handle: Handle,
    },
    /// Trace events of a transport, producer or consumer (these types replace earlier ones).
    EnableTraceEvent {
        handle: Handle,
        types: Payload<TraceTypes>,
    },
    /// The host's WebRTC server of this worker (its dump, with only the caller's transports):
    /// WebRTC transports made with `server` share its ports.
    WebRtcServer {
        worker: Handle,
    },
    /// A WebRTC server of the caller's own on this worker, listening where it asks (a worker
    /// process serving its parent only; a host's own servers are [`Op::WebRtcServer`]).
    CreateWebRtcServer {
        worker: Handle,
        listen_infos: Payload<Vec<ListenInfo>>,
    },
    GetStats {
        handle: Handle,
    },
    Close {
        handle: Handle,
    },
}

impl Op {
    /// The object the operation targets.
    pub fn target(&self) -> Handle {
        match self {
            Self::CreateRouter { worker, .. }
            | Self::WorkerDump { worker }
            | Self::WebRtcServer { worker }
            | Self::CreateWebRtcServer { worker, .. }
            | Self::UpdateSettings { worker, .. } => *worker,
            Self::Refresh { router, .. } => router.unwrap_or(0),
            Self::CapabilitiesFor { router, .. }
            | Self::CreateWebRtcTransport { router, .. }
            | Self::CreatePlainTransport { router, .. }
            | Self::CreatePipeTransport { router, .. }
            | Self::CreateDirectTransport { router, .. }
            | Self::CreateAudioLevelObserver { router, .. }
            | Self::CreateActiveSpeakerObserver { router, .. } => *router,
            Self::Connect { transport, .. }
            | Self::SetMaxIncomingBitrate { transport, .. }
            | Self::SetMaxOutgoingBitrate { transport, .. }
            | Self::SetMinOutgoingBitrate { transport, .. }
            | Self::RestartIce { transport }
            | Self::Produce { transport, .. }
            | Self::Consume { transport, .. }
            | Self::ProduceData { transport, .. }
            | Self::ConsumeData { transport, .. }
            | Self::SendRtcp { transport, .. } => *transport,
            Self::SendRtp { producer, .. } => *producer,
            Self::SendData { data_producer, .. } => *data_producer,
            Self::SendToDataConsumer { data_consumer, .. }
            | Self::GetBufferedAmount { data_consumer }
            | Self::SetBufferedAmountLowThreshold { data_consumer, .. }
            | Self::SetSubchannels { data_consumer, .. }
            | Self::AddSubchannel { data_consumer, .. }
            | Self::RemoveSubchannel { data_consumer, .. } => *data_consumer,
            Self::SetPreferredLayers { consumer, .. }
            | Self::SetPriority { consumer, .. }
            | Self::RequestKeyFrame { consumer } => *consumer,
            Self::AddProducer { observer, .. } | Self::RemoveProducer { observer, .. } => *observer,
            Self::Pause { handle }
            | Self::Resume { handle }
            | Self::Dump { handle }
            | Self::EnableTraceEvent { handle, .. }
            | Self::GetStats { handle }
            | Self::Close { handle } => *handle,
        }
    }
}

/// What a successful operation returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// Done, nothing to return.
    Done,
    /// An object was created: its handle and what its getters answer.
    Created {
        /// Its handle.
        handle: Handle,
        /// Its state (an [`ObjectInfo`]).
        info: Payload<ObjectInfo>,
    },
    /// A dump or stats (the mediasoup type the operation implies).
    Value(Vec<u8>),
    /// RTP capabilities.
    Capabilities(Payload<RtpCapabilitiesFinalized>),
    /// New ICE parameters.
    Ice(Payload<IceParameters>),
    /// A number (buffered amount).
    Number(u32),
}

/// The state of a new object, as its synchronous getters answer (events keep it current).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum ObjectInfo {
    Router { id: mediasoup::router::RouterId, rtp_capabilities: RtpCapabilitiesFinalized },
    WebRtcTransport(WebRtcInfo),
    PlainTransport(TupleTransportInfo),
    PipeTransport(TupleTransportInfo),
    DirectTransport { id: mediasoup::prelude::TransportId },
    Producer(ProducerInfo),
    Consumer(ConsumerInfo),
    DataProducer(DataProducerInfo),
    DataConsumer(DataConsumerInfo),
    Observer { id: mediasoup::rtp_observer::RtpObserverId, paused: bool },
    WebRtcServer { id: mediasoup::webrtc_server::WebRtcServerId },
}

/// A WebRTC transport's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct WebRtcInfo {
    pub id: mediasoup::prelude::TransportId,
    pub ice_role: IceRole,
    pub ice_parameters: IceParameters,
    pub ice_candidates: Vec<IceCandidate>,
    pub ice_state: IceState,
    pub ice_selected_tuple: Option<TransportTuple>,
    pub dtls_parameters: DtlsParameters,
    pub dtls_state: DtlsState,
    pub dtls_remote_cert: Option<String>,
    pub sctp: SctpInfo,
}

/// SCTP state of a transport.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[allow(missing_docs)]
pub struct SctpInfo {
    pub parameters: Option<SctpParameters>,
    pub state: Option<SctpState>,
    pub negotiated: Option<SctpNegotiatedCapabilities>,
}

/// A plain or pipe transport's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct TupleTransportInfo {
    pub id: mediasoup::prelude::TransportId,
    pub tuple: TransportTuple,
    pub rtcp_tuple: Option<TransportTuple>,
    pub sctp: SctpInfo,
    pub srtp_parameters: Option<SrtpParameters>,
}

/// A producer's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ProducerInfo {
    pub id: ProducerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub consumable_rtp_parameters: RtpParameters,
    pub r#type: ProducerType,
    pub is_direct: bool,
    pub paused: bool,
    pub score: Vec<ProducerScore>,
}

/// A consumer's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct ConsumerInfo {
    pub id: mediasoup::consumer::ConsumerId,
    pub kind: MediaKind,
    pub rtp_parameters: RtpParameters,
    pub r#type: ConsumerType,
    pub paused: bool,
    pub producer_paused: bool,
    pub priority: u8,
    pub score: ConsumerScore,
    pub preferred_layers: Option<ConsumerLayers>,
    pub current_layers: Option<ConsumerLayers>,
}

/// A data producer's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DataProducerInfo {
    pub id: mediasoup::data_producer::DataProducerId,
    pub r#type: mediasoup::data_producer::DataProducerType,
    pub sctp_stream_parameters: Option<SctpStreamWire>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
}

/// A data consumer's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct DataConsumerInfo {
    pub id: mediasoup::data_consumer::DataConsumerId,
    pub r#type: mediasoup::data_consumer::DataConsumerType,
    pub sctp_stream_parameters: Option<SctpStreamWire>,
    pub label: String,
    pub protocol: String,
    pub paused: bool,
    pub producer_paused: bool,
    pub subchannels: Vec<u16>,
}

/// Something that happened to an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum Event {
    /// The object closed on the host (its parent closed, its producer went away…).
    Closed,
    /// The worker died.
    WorkerDead(String),
    Paused,
    Resumed,
    ProducerPaused,
    ProducerResumed,
    /// A consumer's producer closed (the consumer closes too).
    ProducerClosed,
    ProducerScore(Payload<Vec<ProducerScore>>),
    ConsumerScore(Payload<ConsumerScore>),
    Layers(Payload<Option<ConsumerLayers>>),
    IceState(Payload<IceState>),
    IceSelectedTuple(Payload<TransportTuple>),
    /// A WebRTC transport's DTLS state, with the remote certificate mediasoup then knows.
    DtlsState {
        state: Payload<DtlsState>,
        remote_cert: Option<String>,
    },
    SctpState(Payload<SctpState>),
    Tuple(Payload<TransportTuple>),
    RtcpTuple(Payload<TransportTuple>),
    Volumes(Vec<(Payload<ProducerId>, i8)>),
    Silence,
    DominantSpeaker(Payload<ProducerId>),
    ObserverAdded(Payload<ProducerId>),
    ObserverRemoved(Payload<ProducerId>),
    VideoOrientation(Payload<mediasoup::producer::ProducerVideoOrientation>),
    TransportTrace(Payload<mediasoup::transport::TransportTraceEventData>),
    ProducerTrace(Payload<mediasoup::producer::ProducerTraceEventData>),
    ConsumerTrace(Payload<mediasoup::consumer::ConsumerTraceEventData>),
    Rtp(Vec<u8>),
    Rtcp(Vec<u8>),
    DataMessage {
        ppid: u32,
        payload: Vec<u8>,
    },
    SctpSendBufferFull,
    BufferedAmountLow(u32),
}
