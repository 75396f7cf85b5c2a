//! Workers of another host.

use super::*;

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
            ObjectInfo::Router { id, rtp_capabilities } => {
                Ok(self.child(handle, RouterState { id, rtp_capabilities, worker: self.handle }))
            }
            other => Err(wrong(&other)),
        }
    }

    /// The host's WebRTC server of this worker: it listens on the host's configured ports, not
    /// on `options`' listen infos (the host's addresses are its own; see docs/drop-in.md). A
    /// worker process of this host binds a server of this side's own on `options`' listen infos.
    async fn create_webrtc_server(
        &self,
        options: WebRtcServerOptions,
    ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError> {
        if self.link.is_worker_process() {
            let listen_infos: Vec<_> = options.listen_infos.iter().cloned().collect();
            let op = Op::CreateWebRtcServer { worker: self.handle, listen_infos: Payload::new(&listen_infos) };
            let reply = self.call(op).await.map_err(CreateWebRtcServerError::Request)?;
            return match created(reply).map_err(CreateWebRtcServerError::Request)? {
                (handle, ObjectInfo::WebRtcServer { id }) => {
                    Ok(self.child(handle, ServerState { id, worker: self.handle }))
                }
                (_, other) => Err(CreateWebRtcServerError::Request(wrong(&other))),
            };
        }
        let dump: WebRtcServerDump =
            value(self.call(Op::WebRtcServer { worker: self.handle }).await.map_err(CreateWebRtcServerError::Request)?)
                .map_err(CreateWebRtcServerError::Request)?;
        Ok(Arc::new(RemoteWebRtcServer { link: Arc::clone(&self.link), worker: self.handle, id: dump.id }))
    }

    async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        let log_level = data.log_level.map(crate::worker_log::level_name);
        let log_tags = data.log_tags.map(|tags| tags.into_iter().map(crate::worker_log::tag_name).collect());
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

/// A WebRTC server of this side's own in a worker process (closed when dropped).
pub(crate) struct ServerState {
    id: WebRtcServerId,
    worker: Handle,
}

impl State for ServerState {}

/// A WebRTC server this side created in a worker process.
pub(crate) type OwnWebRtcServer = Remote<ServerState>;

impl OwnWebRtcServer {
    /// Whether transports of a router of `worker` on `link` may use this server.
    pub(super) fn serves(&self, link: &Arc<HostLink>, worker: Handle) -> bool {
        Arc::ptr_eq(&self.link, link) && self.read(|s| s.worker) == worker
    }
}

#[async_trait]
impl WebRtcServerBackend for OwnWebRtcServer {
    fn id(&self) -> WebRtcServerId {
        self.read(|s| s.id)
    }

    async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        self.fetch(false).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A host's WebRTC server of one of its workers, shared with the host's other callers: this
/// side only names it (its transports are made with [`WebRtcWire::server`]).
#[derive(Debug)]
pub(crate) struct RemoteWebRtcServer {
    link: Arc<HostLink>,
    worker: Handle,
    id: WebRtcServerId,
}

impl RemoteWebRtcServer {
    /// Whether transports of a router of `worker` on `link` may use this server (its own
    /// worker's only, as mediasoup's).
    pub(super) fn serves(&self, link: &Arc<HostLink>, worker: Handle) -> bool {
        Arc::ptr_eq(&self.link, link) && self.worker == worker
    }
}

#[async_trait]
impl WebRtcServerBackend for RemoteWebRtcServer {
    fn id(&self) -> WebRtcServerId {
        self.id
    }

    /// The server's sockets and this caller's transports on it.
    async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        value(self.link.call(Op::WebRtcServer { worker: self.worker }).await.map_err(request_error)?)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
