//! Routers on another host.

use super::worker::RemoteWebRtcServer;
use super::*;

/// A router's state.
pub(crate) struct RouterState {
    pub(super) id: RouterId,
    pub(super) rtp_capabilities: RtpCapabilitiesFinalized,
    /// The host's handle of the router's worker.
    pub(super) worker: Handle,
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

    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Remote::on_close(self, callback)
    }

    fn can_consume(&self, producer_id: &ProducerId, capabilities: &RtpCapabilities) -> bool {
        self.link.consumable(producer_id).is_some_and(|p| crate::cluster::consumable::can_consume(&p, capabilities))
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
        let (server, listen_infos) = match listen {
            WebRtcListen::Individual(infos) => (ServerWire::None, infos.iter().cloned().collect()),
            WebRtcListen::Server(server) => {
                let worker = self.read(|r| r.worker);
                let any = server.as_any();
                let wire = if let Some(host) = any.downcast_ref::<RemoteWebRtcServer>() {
                    host.serves(&self.link, worker).then_some(ServerWire::Host)
                } else if let Some(own) = any.downcast_ref::<OwnWebRtcServer>() {
                    own.serves(&self.link, worker).then_some(ServerWire::Object(own.handle))
                } else {
                    None
                };
                let Some(wire) = wire else {
                    return Err(RequestError::Response {
                        reason: format!("WebRtcServer {} does not belong to this worker", server.id()),
                    });
                };
                (wire, Vec::new())
            }
        };
        let options = WebRtcWire {
            server,
            listen_infos,
            bitrate: bitrate_wire_of!(settings),
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
            bitrate: bitrate_wire_of!(o),
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
