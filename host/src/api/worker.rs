//! The virtual [`Worker`]: it stands for the host's real workers of its settings (several
//! virtual workers with the same settings share them). Routers created on it spread over those
//! workers.

pub use mediasoup::worker::*;

use super::router::{Router, RouterId, WeakRouter};
use super::webrtc_server::{WeakWebRtcServer, WebRtcServer, WebRtcServerId, WebRtcServerOptions};
use super::worker_manager::WorkerManager;
use crate::internals::cell::SettingsSet;
use crate::internals::dump::rebuild;
use crate::internals::host::{CellClosed, Host};
use crate::internals::object::{fresh_id, lock, on_close_handler, EventBag};
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::prelude::{AppData, RouterOptions};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use thiserror::Error;
use uuid::Uuid;

/// `WorkerDump`'s fields, in its order.
#[derive(serde::Serialize)]
struct WorkerDumpMirror {
    router_ids: Vec<RouterId>,
    webrtc_server_ids: Vec<WebRtcServerId>,
    channel_message_handlers: ChannelMessageHandlers,
}

/// A notification to a worker could not be sent (the object is closed).
#[derive(Debug, Error, Eq, PartialEq)]
pub enum NotificationError {
    /// Channel already closed.
    #[error("Channel already closed")]
    ChannelClosed,
}

#[allow(clippy::type_complexity)]
#[derive(Default)]
struct Handlers {
    new_router: Bag<Arc<dyn Fn(&Router) + Send + Sync>, Router>,
    new_webrtc_server: Bag<Arc<dyn Fn(&WebRtcServer) + Send + Sync>, WebRtcServer>,
    dead: BagOnce<Box<dyn FnOnce(Result<(), ExitError>) + Send>>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
    cell_closed: EventBag<CellClosed>,
}

struct Inner {
    id: WorkerId,
    manager: WorkerManager,
    host: Arc<Host>,
    set: SettingsSet,
    /// The worker's own RTC port range, when it is not mediasoup's default.
    port_range: Option<std::ops::RangeInclusive<u16>>,
    app_data: AppData,
    routers: Mutex<Vec<WeakRouter>>,
    servers: Mutex<Vec<WeakWebRtcServer>>,
    handlers: Handlers,
    closed: AtomicBool,
    _cell_events: Mutex<Vec<HandlerId>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
    }
}

impl Inner {
    /// A real worker of this virtual worker's settings went away. A partial loss is reported as
    /// mediasoup reports a closed router to what lived on it (transports' `on_router_close`,
    /// consumers' `on_producer_close`) and through `Router::on_cell_lost`; the worker keeps
    /// serving from the others.
    fn cell_closed(&self, event: &CellClosed) {
        if (event.settings_set != self.set && event.node.is_none()) || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.handlers.cell_closed.call_simple(event);
    }
}

/// A virtual worker: mediasoup's Worker API over the host's real workers.
#[derive(Clone)]
#[must_use = "Worker will be destroyed on drop, make sure to keep it around for as long as needed"]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("id", &self.inner.id).field("closed", &self.closed()).finish()
    }
}

impl Worker {
    pub(crate) fn new(
        manager: WorkerManager,
        host: Arc<Host>,
        set: SettingsSet,
        port_range: Option<std::ops::RangeInclusive<u16>>,
        app_data: AppData,
    ) -> Self {
        let inner = Arc::new(Inner {
            id: fresh_id(),
            manager,
            host: Arc::clone(&host),
            set,
            port_range,
            app_data,
            routers: Mutex::default(),
            servers: Mutex::default(),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
            _cell_events: Mutex::default(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let closed = host.on_cell_closed(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.cell_closed(event);
            }
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let lost = host.on_set_lost(move |(lost, exit)| {
            if let Some(inner) = weak.upgrade().filter(|inner| inner.set == *lost) {
                // No real worker can serve it any more: mediasoup's worker death. The worker
                // is closed when its `on_dead` handlers run, as mediasoup's is.
                if inner.closed.swap(true, Ordering::AcqRel) {
                    return;
                }
                inner.handlers.dead.call(|cb| cb(Err(*exit)));
                Worker { inner }.close_objects();
            }
        });
        *lock(&inner._cell_events) = vec![closed, lost];
        Self { inner }
    }

    /// Worker id.
    #[must_use]
    pub fn id(&self) -> WorkerId {
        self.inner.id
    }

    /// Worker manager to which worker belongs.
    pub fn worker_manager(&self) -> &WorkerManager {
        &self.inner.manager
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner.app_data
    }

    /// Whether the worker is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Dump the worker: its (virtual) routers and WebRTC servers, and the channel message
    /// handlers a mediasoup worker would hold for them and what they contain (routers, servers,
    /// transports, producers, consumers, data producers and consumers, observers; notification
    /// handlers for transports, producers and data producers), by the ids the application
    /// knows. Other virtual workers' objects and the host's internal pipes are not listed.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<WorkerDump, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        let routers: Vec<Router> = lock(&self.inner.routers).iter().filter_map(WeakRouter::upgrade).collect();
        let webrtc_server_ids: Vec<WebRtcServerId> =
            lock(&self.inner.servers).iter().filter_map(WeakWebRtcServer::upgrade).map(|s| s.id()).collect();
        let (mut requests, mut notifications) = (BTreeSet::<Uuid>::new(), BTreeSet::<Uuid>::new());
        requests.extend(webrtc_server_ids.iter().map(|id| Uuid::from(*id)));
        for router in &routers {
            let dump = router.dump().await?;
            requests.insert(router.id().into());
            let transports = dump.transport_ids.iter().map(|id| Uuid::from(*id));
            let producers = dump.map_producer_id_consumer_ids.keys().map(|id| Uuid::from(*id));
            let data_producers = dump.map_data_producer_id_data_consumer_ids.keys().map(|id| Uuid::from(*id));
            let sending: Vec<Uuid> = transports.chain(producers).chain(data_producers).collect();
            notifications.extend(sending.iter().copied());
            requests.extend(sending);
            requests.extend(dump.map_consumer_id_producer_id.keys().map(|id| Uuid::from(*id)));
            requests.extend(dump.map_data_consumer_id_data_producer_id.keys().map(|id| Uuid::from(*id)));
            requests.extend(dump.rtp_observer_ids.iter().map(|id| Uuid::from(*id)));
        }
        let channel_message_handlers = ChannelMessageHandlers {
            channel_request_handlers: requests.into_iter().collect(),
            channel_notification_handlers: notifications.into_iter().collect(),
        };
        let router_ids = routers.iter().map(Router::id).collect();
        rebuild(&WorkerDumpMirror { router_ids, webrtc_server_ids, channel_message_handlers })
    }

    /// Gives `info` this worker's own port range when it names neither a port nor a range (as
    /// a mediasoup worker created with that `rtc_port_range` would allocate).
    pub(crate) fn apply_port_range(&self, info: &mut mediasoup::prelude::ListenInfo) {
        if info.port.is_none() && info.port_range.is_none() {
            info.port_range.clone_from(&self.inner.port_range);
        }
    }

    /// The host whose workers this worker stands for (a mafalda extension: stats, cells,
    /// plugins).
    pub fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    /// Updates the log settings of the real workers serving this worker, and of those started
    /// for it later.
    pub async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        self.inner.host.update_settings(self.inner.set, data).await
    }

    /// Create a WebRtcServer: one real server per real worker, bound now in every running one
    /// (see [`WebRtcServer`] for how ports are assigned).
    pub async fn create_webrtc_server(
        &self,
        webrtc_server_options: WebRtcServerOptions,
    ) -> Result<WebRtcServer, CreateWebRtcServerError> {
        if self.closed() {
            return Err(CreateWebRtcServerError::Request(RequestError::ChannelClosed));
        }
        let server = WebRtcServer::create(self.clone(), &self.inner.host, self.inner.set, webrtc_server_options)
            .await
            .map_err(CreateWebRtcServerError::Request)?;
        {
            let mut servers = lock(&self.inner.servers);
            servers.retain(|s| s.upgrade().is_some());
            servers.push(server.downgrade());
        }
        self.inner.handlers.new_webrtc_server.call_simple(&server);
        Ok(server)
    }

    /// Create a (virtual) router.
    pub async fn create_router(&self, router_options: RouterOptions) -> Result<Router, CreateRouterError> {
        if self.closed() {
            return Err(CreateRouterError::Request(RequestError::ChannelClosed));
        }
        let RouterOptions { media_codecs, app_data, .. } = router_options;
        let host = &self.inner.host;
        let rtp_capabilities = host.rtp_capabilities(media_codecs.clone()).await?;
        let router =
            Router::new(self.clone(), Arc::clone(host), self.inner.set, media_codecs, rtp_capabilities, app_data);
        {
            let mut routers = lock(&self.inner.routers);
            routers.retain(|r| r.upgrade().is_some());
            routers.push(router.downgrade());
        }
        self.inner.handlers.new_router.call_simple(&router);
        Ok(router)
    }

    /// Callback is called when a new WebRTC server is created.
    pub fn on_new_webrtc_server<F: Fn(&WebRtcServer) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_webrtc_server.add(Arc::new(callback))
    }

    /// Callback is called when a new router is created.
    pub fn on_new_router<F: Fn(&Router) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_router.add(Arc::new(callback))
    }

    /// Callback is called when this worker can no longer serve because its real workers died
    /// (the last one died and none could be started in its place), with the death's error — as
    /// mediasoup's `on_dead`, never when the worker is closed; the worker is then closed. One
    /// real worker dying among others is a partial loss, not this event: see `on_cell_closed`
    /// and `Router::on_cell_lost`.
    pub fn on_dead<F: FnOnce(Result<(), ExitError>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.dead.add(Box::new(callback))
    }

    /// mafalda extension: called when a real worker serving this worker went away — released
    /// when idle, retired, or dead (see [`CellClosed::reason`]).
    pub fn on_cell_closed<F: Fn(&CellClosed) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.cell_closed.add(Arc::new(callback))
    }

    /// Callback is called when the worker is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        on_close_handler(&self.inner.handlers.close, self.closed(), Box::new(callback))
    }

    /// mafalda extension: closes this virtual worker and everything created under it, firing
    /// the events mediasoup fires when a worker is closed (routers' `on_worker_close`,
    /// transports' `on_router_close`, …; not `on_dead`). The host's real workers keep serving
    /// other virtual workers.
    pub fn close(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.close_objects();
    }

    /// Closes what the worker created and tells its `on_close` handlers.
    fn close_objects(&self) {
        let routers: Vec<Router> = lock(&self.inner.routers).drain(..).filter_map(|r| r.upgrade()).collect();
        for router in routers {
            router.inner.close_from_worker();
        }
        let servers: Vec<WebRtcServer> = lock(&self.inner.servers).drain(..).filter_map(|s| s.upgrade()).collect();
        for server in servers {
            server.close_from_worker();
        }
        self.inner.handlers.close.call_simple();
    }
}

#[cfg(test)]
mod tests {
    //! Worker death through the backend seam (an in-process worker cannot be killed without
    //! killing the test process): a real worker is declared dead as mediasoup declares it, with
    //! its exit error, and the host reacts as it does to a real death.

    use super::*;
    use crate::backend::local::{LocalWorkers, WorkerTemplate};
    use crate::backend::{OnceCallback, RouterBackend, WebRtcServerBackend, WorkerBackend};
    use crate::config::{HostOptions, PolicyChoice};
    use crate::host::CloseReason;
    use crate::internals::host::WorkerLauncher;
    use crate::prelude::*;
    use async_trait::async_trait;
    use event_listener_primitives::BagOnce;
    use mafalda_media_tools::media::{
        loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs,
    };
    use mediasoup::worker::{CreateWebRtcServerError, RequestError, WorkerDump, WorkerUpdateSettings};
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    const LIMIT: Duration = Duration::from_secs(10);

    /// A real worker whose death the test announces.
    #[derive(Debug)]
    struct Mortal {
        real: Arc<dyn WorkerBackend>,
        dead: BagOnce<Box<dyn FnOnce(ExitError) + Send>>,
    }

    impl Mortal {
        /// Declares the worker dead as mediasoup does (its `on_dead`), then closes it.
        fn kill(&self, status_code: i32) {
            self.dead.call(|callback| callback(ExitError::Unknown { status_code }));
        }
    }

    #[async_trait]
    impl WorkerBackend for Mortal {
        fn id(&self) -> WorkerId {
            self.real.id()
        }
        fn closed(&self) -> bool {
            self.real.closed()
        }
        fn cpu_time(&self) -> Option<Duration> {
            self.real.cpu_time()
        }
        async fn create_router(&self, options: RouterOptions) -> Result<Arc<dyn RouterBackend>, RequestError> {
            self.real.create_router(options).await
        }
        async fn create_webrtc_server(
            &self,
            options: WebRtcServerOptions,
        ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError> {
            self.real.create_webrtc_server(options).await
        }
        async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
            self.real.update_settings(data).await
        }
        async fn dump(&self) -> Result<WorkerDump, RequestError> {
            self.real.dump().await
        }
        fn on_dead(&self, callback: Box<dyn FnOnce(ExitError) + Send>) -> HandlerId {
            self.dead.add(callback)
        }
        fn on_close(&self, callback: OnceCallback) -> HandlerId {
            self.real.on_close(callback)
        }
    }

    /// Starts real local workers and keeps them so the test can declare one dead; refuses to
    /// start more once `refuse` is set.
    #[derive(Default)]
    struct MortalLauncher {
        local: LocalWorkers,
        started: Mutex<Vec<Arc<Mortal>>>,
        templates: Mutex<Vec<WorkerTemplate>>,
        refuse: AtomicBool,
    }

    #[async_trait]
    impl WorkerLauncher for MortalLauncher {
        async fn start(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
            if self.refuse.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("no more workers"));
            }
            lock(&self.templates).push(template.clone());
            let real: Arc<dyn WorkerBackend> = Arc::new(self.local.start(template).await?);
            let mortal = Arc::new(Mortal { real, dead: BagOnce::default() });
            lock(&self.started).push(Arc::clone(&mortal));
            Ok(mortal)
        }
    }

    impl MortalLauncher {
        /// The started worker whose real id is `id`.
        fn worker(&self, id: WorkerId) -> Arc<Mortal> {
            lock(&self.started).iter().find(|m| m.id() == id).cloned().expect("a started worker")
        }
    }

    fn manager(launcher: &Arc<MortalLauncher>, max_workers: usize) -> WorkerManager {
        let mut options = HostOptions { policy: PolicyChoice::Spread, ..HostOptions::default() };
        options.pool.max_workers = max_workers;
        WorkerManager::with_launcher(options, Arc::clone(launcher) as Arc<dyn WorkerLauncher>)
    }

    fn quiet() -> WorkerSettings {
        let mut settings = WorkerSettings::default();
        settings.log_level = mediasoup::worker::WorkerLogLevel::Error;
        settings.log_tags = Vec::new();
        settings
    }

    /// A channel receiving `on_dead` results of `worker`.
    fn dead_events(worker: &Worker) -> tokio::sync::mpsc::UnboundedReceiver<Result<(), ExitError>> {
        let (dead_tx, dead_rx) = tokio::sync::mpsc::unbounded_channel();
        worker
            .on_dead(move |result| {
                let _ = dead_tx.send(result);
            })
            .detach();
        dead_rx
    }

    /// Waits until everything handed to the deferred thread so far has run (events the host
    /// delivers after a death).
    async fn deferred_done() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        crate::internals::object::run_later(move || {
            let _ = tx.send(());
        });
        tokio::time::timeout(LIMIT, rx).await.expect("deferred work ran").expect("sent");
    }

    /// A oneshot fired by a once-event registration.
    fn once() -> (impl FnOnce() + Send + 'static, tokio::sync::oneshot::Receiver<()>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            move || {
                let _ = tx.send(());
            },
            rx,
        )
    }

    /// A mediasoup-demo-style room over two real workers: one peer producing on each worker,
    /// one peer consuming both on each worker. One real worker dies (as mediasoup reports a
    /// SIGKILL): only its transports see `on_router_close`, consumers of its producer see
    /// `on_producer_close`, `on_dead` never fires, the rest keeps working and new transports are
    /// placed on a live worker.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_dead_real_worker_is_a_partial_loss_not_on_dead() {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher, 2);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let mut dead = dead_events(&worker);
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let mut transports = Vec::new();
        for _ in 0..4 {
            let mut options = PlainTransportOptions::new(loopback_listen_info());
            options.comedia = true;
            transports.push(router.create_plain_transport(options).await.expect("transport"));
        }
        let cells: Vec<_> = transports.iter().map(|t| t.cell()).collect();
        assert_ne!(cells[0], cells[1], "spread puts the first two transports on both workers: {cells:?}");
        let (victim_cell, alive_cell) = (cells[1], cells[0]);
        let on = |cell| transports.iter().filter(move |t| t.cell() == cell).cloned().collect::<Vec<_>>();
        let (alive, doomed) = (on(alive_cell), on(victim_cell));
        let mut producers = Vec::new();
        for (i, transport) in [&alive[0], &doomed[0]].into_iter().enumerate() {
            let options = ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x100 + i as u32));
            producers.push(transport.produce(options).await.expect("producer"));
        }
        let consume = |t: &PlainTransport, p: &Producer| {
            let (t, id) = (t.clone(), p.id());
            async move { t.consume(ConsumerOptions::new(id, receiver_capabilities())).await.expect("consume") }
        };
        let survivor_of_alive = consume(&alive[1], &producers[0]).await;
        let orphan = consume(&alive[1], &producers[1]).await;
        let _doomed_consumer = consume(&doomed[1], &producers[0]).await;

        let (closed_router, mut doomed_router_close) = once();
        doomed[1].on_router_close(Box::new(closed_router)).detach();
        let (alive_router_close, mut alive_router_closed) = once();
        alive[1].on_router_close(Box::new(alive_router_close)).detach();
        let (producer_gone, orphan_told) = once();
        orphan.on_producer_close(producer_gone).detach();
        let victim = manager.host().cell(victim_cell).expect("victim cell").worker_id();
        launcher.worker(victim).kill(9);

        tokio::time::timeout(LIMIT, &mut doomed_router_close)
            .await
            .expect("in time")
            .expect("the dead worker's transports see on_router_close");
        tokio::time::timeout(LIMIT, orphan_told)
            .await
            .expect("in time")
            .expect("consumers of its producer see on_producer_close");
        deferred_done().await;
        assert!(dead.try_recv().is_err(), "one real worker among others dying is not on_dead");
        assert!(alive_router_closed.try_recv().is_err(), "transports on the live worker stay");
        assert!(!worker.closed() && !router.closed());
        assert!(!survivor_of_alive.closed(), "a consumer of a live producer on a live worker stays open");
        assert!(survivor_of_alive.get_stats().await.is_ok(), "and answers");
        let fresh = router
            .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
            .await
            .expect("new transport");
        assert_ne!(fresh.cell(), victim_cell, "new transports go to a live worker");
        let _consumer = fresh
            .consume(ConsumerOptions::new(producers[0].id(), receiver_capabilities()))
            .await
            .expect("consuming a live producer still works");
    }

    /// The last real worker dies and another starts in its place: still not on_dead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_last_real_worker_dying_is_replaced() {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher, 2);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let mut dead = dead_events(&worker);
        let (new_cell, mut replaced) = tokio::sync::mpsc::unbounded_channel();
        manager
            .host()
            .on_new_cell(move |cell| {
                let _ = new_cell.send(*cell);
            })
            .detach();
        let first = manager.host().cells()[0].worker_id();
        launcher.worker(first).kill(6);
        tokio::time::timeout(LIMIT, replaced.recv()).await.expect("replaced in time").expect("a new cell");
        assert!(dead.try_recv().is_err(), "replaced, so the worker still serves");
        let cells = manager.host().cells();
        assert_eq!(cells.len(), 1, "a replacement started");
        assert_ne!(cells[0].worker_id(), first);
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let _transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    }

    /// When no real worker can serve any more (the last died and none can start), `on_dead`
    /// fires with the death's error and the worker closes, as mediasoup's does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_dead_fires_when_no_worker_can_replace_the_dead_one() {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher, 1);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let mut dead = dead_events(&worker);
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let (worker_closed, router_told) = once();
        router.on_worker_close(worker_closed).detach();
        launcher.refuse.store(true, Ordering::SeqCst);
        let only = manager.host().cells()[0].worker_id();
        launcher.worker(only).kill(42);
        let died = tokio::time::timeout(LIMIT, dead.recv()).await.expect("on_dead fired");
        assert!(
            matches!(died, Some(Err(ExitError::Unknown { status_code: 42 }))),
            "on_dead carries the worker's own error: {died:?}"
        );
        assert!(worker.closed(), "a dead worker is closed");
        tokio::time::timeout(LIMIT, router_told).await.expect("in time").expect("its routers see on_worker_close");
        let events = manager.host().cells();
        assert!(events.is_empty());
        let _ = CloseReason::Died;
    }

    /// `update_settings` reaches the running real workers and those started later.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn settings_updated_later_reach_workers_started_later() {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher, 2);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let mut update = WorkerUpdateSettings::default();
        update.log_level = Some(mediasoup::worker::WorkerLogLevel::Warn);
        update.log_tags = Some(vec![mediasoup::worker::WorkerLogTag::Ice]);
        worker.update_settings(update).await.expect("update");
        // Spread starts the second worker for the second transport.
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let mut kept = Vec::new();
        for _ in 0..2 {
            kept.push(
                router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t"),
            );
        }
        let templates = lock(&launcher.templates).clone();
        let last = templates.last().expect("a worker started after the update");
        assert!(templates.len() >= 2, "a second worker started");
        assert_eq!(last.log_level, mediasoup::worker::WorkerLogLevel::Warn);
        assert_eq!(last.log_tags, vec![mediasoup::worker::WorkerLogTag::Ice]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_worker_fires_on_close_and_never_on_dead() {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher, 2);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let mut dead_rx = dead_events(&worker);
        let (close_tx, mut close_rx) = tokio::sync::mpsc::unbounded_channel();
        worker
            .on_close(move || {
                let _ = close_tx.send(());
            })
            .detach();
        worker.close();
        assert!(close_rx.try_recv().is_ok(), "on_close fired by close()");
        assert!(worker.closed());
        // Everything close() fires, it fires before returning: nothing came, nothing will.
        assert!(dead_rx.try_recv().is_err(), "on_dead must not fire on close()");
        drop(worker);
        assert!(dead_rx.try_recv().is_err(), "nor on drop");
    }
}
