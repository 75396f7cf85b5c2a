//! The in-process backend: real mediasoup workers running as threads of this process. The
//! seam's traits are implemented by mediasoup's own types (a handle of the seam *is* the
//! mediasoup object); [`LocalWorkers`] starts workers and [`LocalWorker`] adds what mediasoup
//! does not offer: the worker thread's CPU time.

use super::*;
use crate::options::DataConsumerOptions;
use mediasoup::active_speaker_observer::ActiveSpeakerObserver;
use mediasoup::audio_level_observer::AudioLevelObserver;
use mediasoup::consumer::Consumer;
use mediasoup::data_consumer::DataConsumer;
use mediasoup::data_producer::DataProducer;
use mediasoup::direct_transport::DirectTransport;
use mediasoup::pipe_transport::PipeTransport;
use mediasoup::plain_transport::PlainTransport;
use mediasoup::producer::Producer;
use mediasoup::router::Router;
use mediasoup::rtp_observer::RtpObserver;
use mediasoup::transport::{Transport, TransportGeneric};
use mediasoup::webrtc_server::WebRtcServer;
use mediasoup::webrtc_transport::WebRtcTransport;
use mediasoup::worker::{Worker, WorkerDtlsFiles, WorkerLogLevel, WorkerLogTag, WorkerSettings};
use mediasoup::worker_manager::WorkerManager;
use std::fs;
use std::path::Path;
use std::sync::OnceLock;
use tracing::{error, info};

/// How real workers are started: mediasoup's `WorkerSettings` without the app data, plus the
/// core a worker is pinned to.
#[derive(Clone)]
pub struct WorkerTemplate {
    /// Log level of the C++ workers (their logs are forwarded to `tracing`).
    pub log_level: WorkerLogLevel,
    /// Log tags of the C++ workers.
    pub log_tags: Vec<WorkerLogTag>,
    /// UDP/TCP port range the workers allocate from when a listen info names no port (the
    /// pool's `rtc_min_port..=rtc_max_port`; a virtual worker's own range reaches its
    /// transports through their listen infos instead).
    pub rtc_ports: std::ops::RangeInclusive<u16>,
    /// DTLS certificate and key (generated per worker when `None`).
    pub dtls_files: Option<WorkerDtlsFiles>,
    /// The application's initializer, called on each worker thread before it starts.
    pub thread_initializer: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The core the worker thread is pinned to (`[pool] pin_workers`), after the initializer.
    pub core: Option<usize>,
}

impl std::fmt::Debug for WorkerTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTemplate")
            .field("log_level", &self.log_level)
            .field("log_tags", &self.log_tags)
            .field("rtc_ports", &self.rtc_ports)
            .field("dtls_files", &self.dtls_files.as_ref().map(|f| &f.certificate))
            .field("core", &self.core)
            .finish()
    }
}

impl Default for WorkerTemplate {
    fn default() -> Self {
        Self::from_settings(&WorkerSettings::default())
    }
}

impl WorkerTemplate {
    /// The template an application asked for with mediasoup's `WorkerSettings`.
    pub fn from_settings(settings: &WorkerSettings) -> Self {
        Self {
            log_level: settings.log_level,
            log_tags: settings.log_tags.clone(),
            rtc_ports: settings.rtc_port_range.clone(),
            dtls_files: settings.dtls_files.clone(),
            thread_initializer: settings.thread_initializer.clone(),
            core: None,
        }
    }

    /// Whether workers made from `self` and `other` are interchangeable: same log settings,
    /// DTLS files and thread initializer (the port range is not part of it: a virtual worker's
    /// range is applied to each of its transports, so workers are shared across ranges).
    pub fn same_as(&self, other: &Self) -> bool {
        let initializer = match (&self.thread_initializer, &other.thread_initializer) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        self.log_level == other.log_level
            && self.log_tags == other.log_tags
            && self.dtls_files.as_ref().map(|f| (&f.certificate, &f.private_key))
                == other.dtls_files.as_ref().map(|f| (&f.certificate, &f.private_key))
            && initializer
    }

    /// Applies new log settings (as `Worker::update_settings` does to running workers).
    pub fn update(&mut self, data: &WorkerUpdateSettings) {
        if let Some(level) = data.log_level {
            self.log_level = level;
        }
        if let Some(tags) = &data.log_tags {
            self.log_tags.clone_from(tags);
        }
    }
}

/// The OS thread a worker runs on, learnt from inside the thread when it starts.
#[derive(Debug, Default)]
pub struct WorkerThread {
    tid: OnceLock<libc::pid_t>,
}

impl WorkerThread {
    /// Records the id of the calling thread (call it from the worker thread).
    pub fn record_current(&self) {
        // SAFETY: gettid has no preconditions; it returns the calling thread's id.
        let _ = self.tid.set(unsafe { libc::gettid() });
    }

    /// A mediasoup `thread_initializer` that records the worker thread's id here, runs `then`
    /// (the application's own initializer, if any), then pins the thread to `core` (if any).
    pub fn initializer(
        self: &Arc<Self>,
        then: Option<Arc<dyn Fn() + Send + Sync>>,
        core: Option<usize>,
    ) -> Arc<dyn Fn() + Send + Sync> {
        let thread = Arc::clone(self);
        Arc::new(move || {
            thread.record_current();
            if let Some(init) = &then {
                init();
            }
            if let Some(core) = core {
                if let Err(error) = pin_current_thread(core) {
                    error!(core, %error, "cannot pin the worker thread");
                }
            }
        })
    }

    /// Linux thread id, once the worker thread has started.
    pub fn tid(&self) -> Option<libc::pid_t> {
        self.tid.get().copied()
    }

    /// CPU time the worker thread has used so far (the scheduler's own accounting,
    /// `/proc/self/task/TID/schedstat`); `None` when that cannot be read.
    pub fn cpu_time(&self) -> Option<Duration> {
        let tid = self.tid()?;
        schedstat_cpu(Path::new(&format!("/proc/self/task/{tid}/schedstat")))
    }
}

/// The CPU time a thread has run, from its `/proc/…/task/TID/schedstat` (the scheduler's own
/// accounting: its first field, nanoseconds on a CPU); `None` when that cannot be read.
pub(crate) fn schedstat_cpu(path: &Path) -> Option<Duration> {
    let text = fs::read_to_string(path).ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Pins the calling thread to `core`.
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; an all-zero set is valid and CPU_ZERO/CPU_SET only write
    // into it (CPU_SET ignores cores beyond the set's size).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
    }
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
    let result = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The cores the calling thread may run on.
pub fn current_thread_cores() -> std::io::Result<Vec<usize>> {
    // SAFETY: as in pin_current_thread; sched_getaffinity writes into `set`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if result != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `set` was filled by sched_getaffinity.
    Ok((0..libc::CPU_SETSIZE as usize).filter(|core| unsafe { libc::CPU_ISSET(*core, &set) }).collect())
}

/// Starts in-process workers.
#[derive(Clone)]
pub struct LocalWorkers {
    manager: WorkerManager,
}

impl std::fmt::Debug for LocalWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalWorkers").finish()
    }
}

impl Default for LocalWorkers {
    fn default() -> Self {
        Self { manager: WorkerManager::new() }
    }
}

impl LocalWorkers {
    /// Workers whose async events run on `executor` (mediasoup's `with_executor`).
    pub fn with_executor(executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self { manager: WorkerManager::with_executor(executor) }
    }

    /// Starts one worker made from `template`.
    pub(crate) async fn start(&self, template: &WorkerTemplate) -> std::io::Result<LocalWorker> {
        let thread = Arc::new(WorkerThread::default());
        let mut settings = WorkerSettings::default();
        settings.log_level = template.log_level;
        settings.log_tags = template.log_tags.clone();
        settings.rtc_port_range = template.rtc_ports.clone();
        settings.dtls_files = template.dtls_files.clone();
        settings.thread_initializer = Some(thread.initializer(template.thread_initializer.clone(), template.core));
        let worker = self.manager.create_worker(settings).await?;
        let id = worker.id();
        worker.on_close(move || info!(%id, "worker closed")).detach();
        worker
            .on_dead(move |status| match status {
                Ok(()) => error!(%id, "worker thread exited unexpectedly"),
                Err(reason) => error!(%id, %reason, "worker died"),
            })
            .detach();
        info!(%id, tid = ?thread.tid(), "worker started");
        Ok(LocalWorker { worker, thread })
    }
}

/// One in-process worker and its thread.
#[derive(Debug, Clone)]
pub(crate) struct LocalWorker {
    worker: Worker,
    thread: Arc<WorkerThread>,
}

/// The real router of a router handle created here.
fn local_server(server: &Arc<dyn WebRtcServerBackend>) -> Result<WebRtcServer, RequestError> {
    server.as_any().downcast_ref::<WebRtcServer>().cloned().ok_or_else(|| RequestError::Response {
        reason: format!("WebRtcServer {} does not belong to this worker", server.id()),
    })
}

#[async_trait]
impl WorkerBackend for LocalWorker {
    fn id(&self) -> WorkerId {
        self.worker.id()
    }

    fn closed(&self) -> bool {
        self.worker.closed()
    }

    fn cpu_time(&self) -> Option<Duration> {
        self.thread.cpu_time()
    }

    async fn create_router(&self, options: RouterOptions) -> Result<Arc<dyn RouterBackend>, RequestError> {
        let router = self.worker.create_router(options).await.map_err(|e| match e {
            mediasoup::worker::CreateRouterError::Request(request) => request,
            other => RequestError::Response { reason: other.to_string() },
        })?;
        Ok(Arc::new(router))
    }

    async fn create_webrtc_server(
        &self,
        options: WebRtcServerOptions,
    ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError> {
        Ok(Arc::new(self.worker.create_webrtc_server(options).await?))
    }

    async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        self.worker.update_settings(data).await
    }

    async fn dump(&self) -> Result<WorkerDump, RequestError> {
        self.worker.dump().await
    }

    fn on_dead(&self, callback: Box<dyn FnOnce(ExitError) + Send>) -> HandlerId {
        // mediasoup wants a Sync handler; the once-callback is moved out under a lock.
        let callback = std::sync::Mutex::new(Some(callback));
        self.worker.on_dead(move |status| {
            let callback = callback.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(callback) = callback {
                callback(status.err().unwrap_or(ExitError::Unexpected));
            }
        })
    }

    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        self.worker.on_close(callback)
    }
}

#[async_trait]
impl RouterBackend for Router {
    fn id(&self) -> RouterId {
        Router::id(self)
    }

    fn rtp_capabilities(&self) -> RtpCapabilitiesFinalized {
        Router::rtp_capabilities(self).clone()
    }

    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Router::on_close(self, callback)
    }

    fn can_consume(&self, producer_id: &ProducerId, capabilities: &RtpCapabilities) -> bool {
        Router::can_consume(self, producer_id, capabilities)
    }

    fn update_media_codecs(&self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError> {
        let mut router = self.clone();
        Router::update_media_codecs(&mut router, media_codecs)
    }

    async fn create_webrtc_transport(
        &self,
        listen: WebRtcListen,
        settings: WebRtcTransportSettings,
    ) -> Result<Arc<dyn WebRtcTransportBackend>, RequestError> {
        let mut options = match listen {
            WebRtcListen::Individual(infos) => WebRtcTransportOptions::new(infos),
            WebRtcListen::Server(server) => WebRtcTransportOptions::new_with_server(local_server(&server)?),
        };
        settings.apply(&mut options);
        Ok(Arc::new(Router::create_webrtc_transport(self, options).await?))
    }

    async fn create_plain_transport(
        &self,
        options: PlainTransportOptions,
    ) -> Result<Arc<dyn PlainTransportBackend>, RequestError> {
        Ok(Arc::new(Router::create_plain_transport(self, options).await?))
    }

    async fn create_pipe_transport(
        &self,
        options: PipeTransportOptions,
    ) -> Result<Arc<dyn PipeTransportBackend>, RequestError> {
        Ok(Arc::new(Router::create_pipe_transport(self, options).await?))
    }

    async fn create_direct_transport(
        &self,
        options: DirectTransportOptions,
    ) -> Result<Arc<dyn DirectTransportBackend>, RequestError> {
        Ok(Arc::new(Router::create_direct_transport(self, options).await?))
    }

    async fn create_audio_level_observer(
        &self,
        options: AudioLevelObserverOptions,
    ) -> Result<Arc<dyn AudioLevelObserverBackend>, RequestError> {
        Ok(Arc::new(Router::create_audio_level_observer(self, options).await?))
    }

    async fn create_active_speaker_observer(
        &self,
        options: ActiveSpeakerObserverOptions,
    ) -> Result<Arc<dyn ActiveSpeakerObserverBackend>, RequestError> {
        Ok(Arc::new(Router::create_active_speaker_observer(self, options).await?))
    }

    async fn dump(&self) -> Result<RouterDump, RequestError> {
        Router::dump(self).await
    }
}

#[async_trait]
impl WebRtcServerBackend for WebRtcServer {
    fn id(&self) -> WebRtcServerId {
        WebRtcServer::id(self)
    }

    async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        WebRtcServer::dump(self).await
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Implements [`TransportBackend`] for a mediasoup transport type.
macro_rules! local_transport {
    ($transport:ty) => {
        #[async_trait]
        impl TransportBackend for $transport {
            fn id(&self) -> TransportId {
                Transport::id(self)
            }

            fn closed(&self) -> bool {
                Transport::closed(self)
            }

            async fn produce(&self, options: ProducerOptions) -> Result<Arc<dyn ProducerBackend>, ProduceError> {
                Ok(Arc::new(Transport::produce(self, options.into_real()).await?))
            }

            async fn consume(&self, options: ConsumerOptions) -> Result<Arc<dyn ConsumerBackend>, ConsumeError> {
                Ok(Arc::new(Transport::consume(self, options).await?))
            }

            async fn produce_data(
                &self,
                options: DataProducerOptions,
            ) -> Result<Arc<dyn DataProducerBackend>, ProduceDataError> {
                Ok(Arc::new(Transport::produce_data(self, options.into_real()).await?))
            }

            async fn consume_data(
                &self,
                options: DataConsumerOptions,
            ) -> Result<Arc<dyn DataConsumerBackend>, ConsumeDataError> {
                Ok(Arc::new(Transport::consume_data(self, options.into_real()).await?))
            }

            async fn enable_trace_event(&self, types: Vec<TransportTraceEventType>) -> Result<(), RequestError> {
                Transport::enable_trace_event(self, types).await
            }

            fn on_trace(&self, callback: Handler<TransportTraceEventData>) -> HandlerId {
                Transport::on_trace(self, Arc::new(move |data: &TransportTraceEventData| callback(data)))
            }

            fn on_close(&self, callback: OnceCallback) -> HandlerId {
                Transport::on_close(self, callback)
            }
        }
    };
}

local_transport!(WebRtcTransport);
local_transport!(PlainTransport);
local_transport!(PipeTransport);
local_transport!(DirectTransport);

#[async_trait]
impl WebRtcTransportBackend for WebRtcTransport {
    async fn connect(&self, remote: WebRtcTransportRemoteParameters) -> Result<(), RequestError> {
        WebRtcTransport::connect(self, remote).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        WebRtcTransport::set_max_incoming_bitrate(self, bitrate).await
    }
    async fn set_max_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        WebRtcTransport::set_max_outgoing_bitrate(self, bitrate).await
    }
    async fn set_min_outgoing_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        WebRtcTransport::set_min_outgoing_bitrate(self, bitrate).await
    }
    async fn restart_ice(&self) -> Result<IceParameters, RequestError> {
        WebRtcTransport::restart_ice(self).await
    }
    async fn dump(&self) -> Result<WebRtcTransportDump, RequestError> {
        TransportGeneric::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<WebRtcTransportStat>, RequestError> {
        TransportGeneric::get_stats(self).await
    }
    fn ice_role(&self) -> IceRole {
        WebRtcTransport::ice_role(self)
    }
    fn ice_parameters(&self) -> IceParameters {
        WebRtcTransport::ice_parameters(self).clone()
    }
    fn ice_candidates(&self) -> Vec<IceCandidate> {
        WebRtcTransport::ice_candidates(self).clone()
    }
    fn ice_state(&self) -> IceState {
        WebRtcTransport::ice_state(self)
    }
    fn ice_selected_tuple(&self) -> Option<TransportTuple> {
        WebRtcTransport::ice_selected_tuple(self)
    }
    fn dtls_parameters(&self) -> DtlsParameters {
        WebRtcTransport::dtls_parameters(self)
    }
    fn dtls_state(&self) -> DtlsState {
        WebRtcTransport::dtls_state(self)
    }
    fn dtls_remote_cert(&self) -> Option<String> {
        WebRtcTransport::dtls_remote_cert(self)
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        WebRtcTransport::sctp_parameters(self)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        WebRtcTransport::sctp_state(self)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        WebRtcTransport::sctp_negotiated_capabilities(self)
    }
    fn on_ice_state_change(&self, callback: Arc<dyn Fn(IceState) + Send + Sync>) -> HandlerId {
        WebRtcTransport::on_ice_state_change(self, move |state| callback(state))
    }
    fn on_ice_selected_tuple_change(&self, callback: Handler<TransportTuple>) -> HandlerId {
        WebRtcTransport::on_ice_selected_tuple_change(self, move |tuple| callback(tuple))
    }
    fn on_dtls_state_change(&self, callback: Arc<dyn Fn(DtlsState) + Send + Sync>) -> HandlerId {
        WebRtcTransport::on_dtls_state_change(self, move |state| callback(state))
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        WebRtcTransport::on_sctp_state_change(self, move |state| callback(state))
    }
}

#[async_trait]
impl PlainTransportBackend for PlainTransport {
    async fn connect(&self, remote: PlainTransportRemoteParameters) -> Result<(), RequestError> {
        PlainTransport::connect(self, remote).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        PlainTransport::set_max_incoming_bitrate(self, bitrate).await
    }
    async fn dump(&self) -> Result<PlainTransportDump, RequestError> {
        TransportGeneric::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<PlainTransportStat>, RequestError> {
        TransportGeneric::get_stats(self).await
    }
    fn tuple(&self) -> TransportTuple {
        PlainTransport::tuple(self)
    }
    fn rtcp_tuple(&self) -> Option<TransportTuple> {
        PlainTransport::rtcp_tuple(self)
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        PlainTransport::sctp_parameters(self)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        PlainTransport::sctp_state(self)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        PlainTransport::sctp_negotiated_capabilities(self)
    }
    fn srtp_parameters(&self) -> Option<SrtpParameters> {
        PlainTransport::srtp_parameters(self)
    }
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        PlainTransport::on_tuple(self, move |tuple| callback(tuple))
    }
    fn on_rtcp_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        PlainTransport::on_rtcp_tuple(self, move |tuple| callback(tuple))
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        PlainTransport::on_sctp_state_change(self, move |state| callback(state))
    }
}

#[async_trait]
impl PipeTransportBackend for PipeTransport {
    async fn connect(&self, remote: PipeTransportRemoteParameters) -> Result<(), RequestError> {
        PipeTransport::connect(self, remote).await
    }
    async fn set_max_incoming_bitrate(&self, bitrate: u64) -> Result<(), RequestError> {
        PipeTransport::set_max_incoming_bitrate(self, bitrate).await
    }
    async fn dump(&self) -> Result<PipeTransportDump, RequestError> {
        TransportGeneric::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<PipeTransportStat>, RequestError> {
        TransportGeneric::get_stats(self).await
    }
    fn tuple(&self) -> TransportTuple {
        PipeTransport::tuple(self)
    }
    fn sctp_parameters(&self) -> Option<SctpParameters> {
        PipeTransport::sctp_parameters(self)
    }
    fn sctp_state(&self) -> Option<SctpState> {
        PipeTransport::sctp_state(self)
    }
    fn sctp_negotiated_capabilities(&self) -> Option<SctpNegotiatedCapabilities> {
        PipeTransport::sctp_negotiated_capabilities(self)
    }
    fn srtp_parameters(&self) -> Option<SrtpParameters> {
        PipeTransport::srtp_parameters(self)
    }
    fn on_tuple(&self, callback: Handler<TransportTuple>) -> HandlerId {
        PipeTransport::on_tuple(self, move |tuple| callback(tuple))
    }
    fn on_sctp_state_change(&self, callback: Arc<dyn Fn(SctpState) + Send + Sync>) -> HandlerId {
        PipeTransport::on_sctp_state_change(self, move |state| callback(state))
    }
}

#[async_trait]
impl DirectTransportBackend for DirectTransport {
    async fn dump(&self) -> Result<DirectTransportDump, RequestError> {
        TransportGeneric::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<DirectTransportStat>, RequestError> {
        TransportGeneric::get_stats(self).await
    }
    fn send_rtcp(&self, packet: Vec<u8>) -> Result<(), Closed> {
        DirectTransport::send_rtcp(self, packet).map_err(|_| Closed)
    }
    fn on_rtcp(&self, callback: SliceHandler<u8>) -> HandlerId {
        DirectTransport::on_rtcp(self, move |packet| callback(packet))
    }
}

#[async_trait]
impl ProducerBackend for Producer {
    fn id(&self) -> ProducerId {
        Producer::id(self)
    }
    fn kind(&self) -> MediaKind {
        Producer::kind(self)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        Producer::rtp_parameters(self).clone()
    }
    fn consumable_rtp_parameters(&self) -> RtpParameters {
        Producer::consumable_rtp_parameters(self).clone()
    }
    fn r#type(&self) -> ProducerType {
        Producer::r#type(self)
    }
    fn is_direct(&self) -> bool {
        matches!(self, Producer::Direct(_))
    }
    fn paused(&self) -> bool {
        Producer::paused(self)
    }
    fn score(&self) -> Vec<ProducerScore> {
        Producer::score(self)
    }
    async fn dump(&self) -> Result<ProducerDump, RequestError> {
        Producer::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<ProducerStat>, RequestError> {
        Producer::get_stats(self).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        Producer::pause(self).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        Producer::resume(self).await
    }
    async fn enable_trace_event(&self, types: Vec<ProducerTraceEventType>) -> Result<(), RequestError> {
        Producer::enable_trace_event(self, types).await
    }
    fn send(&self, packet: Vec<u8>) -> Result<(), Closed> {
        match self {
            Producer::Direct(direct) => direct.send(packet).map_err(|_| Closed),
            _ => Err(Closed),
        }
    }
    fn on_score(&self, callback: SliceHandler<ProducerScore>) -> HandlerId {
        Producer::on_score(self, move |score| callback(score))
    }
    fn on_video_orientation_change(&self, callback: Arc<dyn Fn(ProducerVideoOrientation) + Send + Sync>) -> HandlerId {
        Producer::on_video_orientation_change(self, move |orientation| callback(orientation))
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        Producer::on_pause(self, move || callback())
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        Producer::on_resume(self, move || callback())
    }
    fn on_trace(&self, callback: Handler<ProducerTraceEventData>) -> HandlerId {
        Producer::on_trace(self, move |data| callback(data))
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Producer::on_close(self, callback)
    }
}

#[async_trait]
impl ConsumerBackend for Consumer {
    fn id(&self) -> ConsumerId {
        Consumer::id(self)
    }
    fn kind(&self) -> MediaKind {
        Consumer::kind(self)
    }
    fn rtp_parameters(&self) -> RtpParameters {
        Consumer::rtp_parameters(self).clone()
    }
    fn r#type(&self) -> ConsumerType {
        Consumer::r#type(self)
    }
    fn paused(&self) -> bool {
        Consumer::paused(self)
    }
    fn producer_paused(&self) -> bool {
        Consumer::producer_paused(self)
    }
    fn priority(&self) -> u8 {
        Consumer::priority(self)
    }
    fn score(&self) -> ConsumerScore {
        Consumer::score(self)
    }
    fn preferred_layers(&self) -> Option<ConsumerLayers> {
        Consumer::preferred_layers(self)
    }
    fn current_layers(&self) -> Option<ConsumerLayers> {
        Consumer::current_layers(self)
    }
    async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        Consumer::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, RequestError> {
        Consumer::get_stats(self).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        Consumer::pause(self).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        Consumer::resume(self).await
    }
    async fn set_preferred_layers(&self, layers: ConsumerLayers) -> Result<(), RequestError> {
        Consumer::set_preferred_layers(self, layers).await
    }
    async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        Consumer::set_priority(self, priority).await
    }
    async fn unset_priority(&self) -> Result<(), RequestError> {
        Consumer::unset_priority(self).await
    }
    async fn request_key_frame(&self) -> Result<(), RequestError> {
        Consumer::request_key_frame(self).await
    }
    async fn enable_trace_event(&self, types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError> {
        Consumer::enable_trace_event(self, types).await
    }
    fn on_rtp(&self, callback: SliceHandler<u8>) -> HandlerId {
        Consumer::on_rtp(self, move |packet| callback(packet))
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        Consumer::on_pause(self, move || callback())
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        Consumer::on_resume(self, move || callback())
    }
    fn on_producer_pause(&self, callback: Callback) -> HandlerId {
        Consumer::on_producer_pause(self, move || callback())
    }
    fn on_producer_resume(&self, callback: Callback) -> HandlerId {
        Consumer::on_producer_resume(self, move || callback())
    }
    fn on_score(&self, callback: Handler<ConsumerScore>) -> HandlerId {
        Consumer::on_score(self, move |score| callback(score))
    }
    fn on_layers_change(&self, callback: Handler<Option<ConsumerLayers>>) -> HandlerId {
        Consumer::on_layers_change(self, move |layers| callback(layers))
    }
    fn on_trace(&self, callback: Handler<ConsumerTraceEventData>) -> HandlerId {
        Consumer::on_trace(self, move |data| callback(data))
    }
    fn on_producer_close(&self, callback: OnceCallback) -> HandlerId {
        Consumer::on_producer_close(self, callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        Consumer::on_close(self, callback)
    }
}

#[async_trait]
impl DataProducerBackend for DataProducer {
    fn id(&self) -> DataProducerId {
        DataProducer::id(self)
    }
    fn r#type(&self) -> DataProducerType {
        DataProducer::r#type(self)
    }
    fn is_direct(&self) -> bool {
        matches!(self, DataProducer::Direct(_))
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        DataProducer::sctp_stream_parameters(self)
    }
    fn label(&self) -> String {
        DataProducer::label(self).clone()
    }
    fn protocol(&self) -> String {
        DataProducer::protocol(self).clone()
    }
    fn paused(&self) -> bool {
        DataProducer::paused(self)
    }
    async fn dump(&self) -> Result<DataProducerDump, RequestError> {
        DataProducer::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<DataProducerStat>, RequestError> {
        DataProducer::get_stats(self).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        DataProducer::pause(self).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        DataProducer::resume(self).await
    }
    fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), Closed> {
        match self {
            DataProducer::Direct(direct) => {
                direct.send(message, subchannels, required_subchannel, ignored_subchannel).map_err(|_| Closed)
            }
            _ => Err(Closed),
        }
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        DataProducer::on_pause(self, move || callback())
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        DataProducer::on_resume(self, move || callback())
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        DataProducer::on_close(self, callback)
    }
}

#[async_trait]
impl DataConsumerBackend for DataConsumer {
    fn id(&self) -> DataConsumerId {
        DataConsumer::id(self)
    }
    fn r#type(&self) -> DataConsumerType {
        DataConsumer::r#type(self)
    }
    fn is_direct(&self) -> bool {
        matches!(self, DataConsumer::Direct(_))
    }
    fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        DataConsumer::sctp_stream_parameters(self)
    }
    fn label(&self) -> String {
        DataConsumer::label(self).clone()
    }
    fn protocol(&self) -> String {
        DataConsumer::protocol(self).clone()
    }
    fn paused(&self) -> bool {
        DataConsumer::paused(self)
    }
    fn producer_paused(&self) -> bool {
        DataConsumer::producer_paused(self)
    }
    fn subchannels(&self) -> Vec<u16> {
        DataConsumer::subchannels(self)
    }
    async fn dump(&self) -> Result<DataConsumerDump, RequestError> {
        DataConsumer::dump(self).await
    }
    async fn get_stats(&self) -> Result<Vec<DataConsumerStat>, RequestError> {
        DataConsumer::get_stats(self).await
    }
    async fn pause(&self) -> Result<(), RequestError> {
        DataConsumer::pause(self).await
    }
    async fn resume(&self) -> Result<(), RequestError> {
        DataConsumer::resume(self).await
    }
    async fn get_buffered_amount(&self) -> Result<u32, RequestError> {
        DataConsumer::get_buffered_amount(self).await
    }
    async fn set_buffered_amount_low_threshold(&self, threshold: u32) -> Result<(), RequestError> {
        DataConsumer::set_buffered_amount_low_threshold(self, threshold).await
    }
    async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<(), RequestError> {
        DataConsumer::set_subchannels(self, subchannels).await
    }
    async fn add_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        DataConsumer::add_subchannel(self, subchannel).await
    }
    async fn remove_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        DataConsumer::remove_subchannel(self, subchannel).await
    }
    async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError> {
        match self {
            DataConsumer::Regular(regular) => regular.send(message).await,
            _ => Err(RequestError::Response { reason: "only data consumers of SCTP transports send".into() }),
        }
    }
    fn on_message(&self, callback: MessageHandler) -> HandlerId {
        DataConsumer::on_message(self, move |message| callback(message))
    }
    fn on_sctp_send_buffer_full(&self, callback: Callback) -> HandlerId {
        DataConsumer::on_sctp_send_buffer_full(self, move || callback())
    }
    fn on_buffered_amount_low(&self, callback: Arc<dyn Fn(u32) + Send + Sync>) -> HandlerId {
        DataConsumer::on_buffered_amount_low(self, move |amount| callback(amount))
    }
    fn on_pause(&self, callback: Callback) -> HandlerId {
        DataConsumer::on_pause(self, move || callback())
    }
    fn on_resume(&self, callback: Callback) -> HandlerId {
        DataConsumer::on_resume(self, move || callback())
    }
    fn on_data_producer_pause(&self, callback: Callback) -> HandlerId {
        DataConsumer::on_data_producer_pause(self, move || callback())
    }
    fn on_data_producer_resume(&self, callback: Callback) -> HandlerId {
        DataConsumer::on_data_producer_resume(self, move || callback())
    }
    fn on_data_producer_close(&self, callback: OnceCallback) -> HandlerId {
        DataConsumer::on_data_producer_close(self, callback)
    }
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        DataConsumer::on_close(self, callback)
    }
}

/// Implements [`RtpObserverBackend`] for a mediasoup observer type.
macro_rules! local_observer {
    ($observer:ty) => {
        #[async_trait]
        impl RtpObserverBackend for $observer {
            fn id(&self) -> RtpObserverId {
                RtpObserver::id(self)
            }
            fn paused(&self) -> bool {
                RtpObserver::paused(self)
            }
            async fn pause(&self) -> Result<(), RequestError> {
                RtpObserver::pause(self).await
            }
            async fn resume(&self) -> Result<(), RequestError> {
                RtpObserver::resume(self).await
            }
            async fn add_producer(&self, options: RtpObserverAddProducerOptions) -> Result<(), RequestError> {
                RtpObserver::add_producer(self, options).await
            }
            async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError> {
                RtpObserver::remove_producer(self, producer_id).await
            }
            fn on_pause(&self, callback: Callback) -> HandlerId {
                RtpObserver::on_pause(self, Box::new(move || callback()))
            }
            fn on_resume(&self, callback: Callback) -> HandlerId {
                RtpObserver::on_resume(self, Box::new(move || callback()))
            }
            fn on_add_producer(&self, callback: Handler<ProducerId>) -> HandlerId {
                RtpObserver::on_add_producer(self, Box::new(move |producer: &Producer| callback(&producer.id())))
            }
            fn on_remove_producer(&self, callback: Handler<ProducerId>) -> HandlerId {
                RtpObserver::on_remove_producer(self, Box::new(move |producer: &Producer| callback(&producer.id())))
            }
            fn on_close(&self, callback: OnceCallback) -> HandlerId {
                RtpObserver::on_close(self, callback)
            }
        }
    };
}

local_observer!(AudioLevelObserver);
local_observer!(ActiveSpeakerObserver);

impl AudioLevelObserverBackend for AudioLevelObserver {
    fn on_volumes(&self, callback: SliceHandler<Volume>) -> HandlerId {
        AudioLevelObserver::on_volumes(self, move |volumes| {
            let volumes: Vec<Volume> =
                volumes.iter().map(|v| Volume { producer_id: v.producer.id(), volume: v.volume }).collect();
            callback(&volumes);
        })
    }

    fn on_silence(&self, callback: Callback) -> HandlerId {
        AudioLevelObserver::on_silence(self, move || callback())
    }
}

impl ActiveSpeakerObserverBackend for ActiveSpeakerObserver {
    fn on_dominant_speaker(&self, callback: Handler<ProducerId>) -> HandlerId {
        ActiveSpeakerObserver::on_dominant_speaker(self, move |speaker| callback(&speaker.producer.id()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cores a thread of this process may run on, from `/proc` (`Cpus_allowed_list`).
    fn allowed(tid: libc::pid_t) -> String {
        let status = fs::read_to_string(format!("/proc/self/task/{tid}/status")).expect("thread status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
            .map(|cores| cores.trim().to_string())
            .expect("Cpus_allowed_list")
    }

    #[test]
    fn a_pinned_worker_thread_runs_on_its_core_only() {
        futures::executor::block_on(async {
            let cores = current_thread_cores().expect("affinity");
            let core = *cores.last().expect("a core");
            let template = WorkerTemplate {
                log_level: WorkerLogLevel::Error,
                log_tags: Vec::new(),
                core: Some(core),
                ..WorkerTemplate::default()
            };
            let worker = LocalWorkers::default().start(&template).await.expect("worker");
            let tid = worker.thread.tid().expect("the worker thread started");
            assert_eq!(allowed(tid), core.to_string(), "pinned to core {core}");
            let unpinned = WorkerTemplate { core: None, ..template };
            let other = LocalWorkers::default().start(&unpinned).await.expect("worker");
            let tid = other.thread.tid().expect("started");
            assert_eq!(allowed(tid), allowed(unsafe { libc::gettid() }), "not pinned: the process's cores");
        });
    }
}
