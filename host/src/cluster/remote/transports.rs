//! Transports on another host: what every kind offers, then each kind.

use super::*;

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

            async fn enable_trace_event(&self, types: Vec<TransportTraceEventType>) -> Result<(), RequestError> {
                self.enable_trace(TraceTypes::Transport(types)).await
            }

            events_of!(transport => client_events!());

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
            Event::DtlsState { state, remote_cert } => {
                self.dtls_state = state.get().unwrap_or(self.dtls_state);
                if remote_cert.is_some() {
                    self.dtls_remote_cert = remote_cert.clone();
                }
            }
            Event::SctpState(state) => self.sctp.state = state.get().ok(),
            _ => {}
        }
    }
}

transport_backend!(WebRtcInfo, |s| s.id);

#[async_trait]
impl WebRtcTransportBackend for Remote<WebRtcInfo> {
    async fn connect(&self, remote: WebRtcTransportRemoteParameters) -> Result<(), RequestError> {
        // The reply is the DTLS role the transport took (mediasoup keeps it in its parameters).
        let params = ConnectParams::WebRtc { dtls_parameters: remote.dtls_parameters };
        let reply = self.call(Op::Connect { transport: self.handle, params: Payload::new(&params) }).await?;
        let role: DtlsRole = value(reply)?;
        lock(&self.state).dtls_parameters.role = role;
        Ok(())
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
    events_of!(webrtc_transport => client_events!());
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
pub(crate) struct PlainState(pub(super) TupleTransportInfo);

impl State for PlainState {
    fn apply(&mut self, event: &Event) {
        self.0.apply(event);
    }
}

/// A pipe transport's state.
pub(crate) struct PipeState(pub(super) TupleTransportInfo);

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
    events_of!(plain_transport => client_events!());
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
    events_of!(pipe_transport => client_events!());
}

/// A direct transport's state.
pub(crate) struct DirectState {
    pub(super) id: TransportId,
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
    events_of!(direct_transport => client_events!());
}
