//! The virtual [`Worker`]: it stands for the host's real workers of its settings (several
//! virtual workers with the same settings share them). Routers created on it spread over those
//! workers.

pub use mediasoup::worker::*;

use super::router::{Router, RouterId, WeakRouter};
use super::webrtc_server::{WeakWebRtcServer, WebRtcServer, WebRtcServerId, WebRtcServerOptions};
use super::worker_manager::WorkerManager;
use crate::internals::cell::SettingsSet;
use crate::internals::dump::rebuild;
use crate::internals::host::{CellClosed, CloseReason, Host};
use crate::internals::object::{fresh_id, lock, on_close_handler, EventBag};
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::prelude::{AppData, RouterOptions};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use thiserror::Error;

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
    app_data: AppData,
    routers: Mutex<Vec<WeakRouter>>,
    servers: Mutex<Vec<WeakWebRtcServer>>,
    handlers: Handlers,
    closed: AtomicBool,
    _cell_events: Mutex<Option<HandlerId>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
    }
}

impl Inner {
    /// A real worker of this virtual worker's settings went away.
    fn cell_closed(&self, event: &CellClosed) {
        if (event.settings_set != self.set && event.node.is_none()) || self.closed.load(Ordering::Acquire) {
            return;
        }
        self.handlers.cell_closed.call_simple(event);
        // A lost host is not a dead worker of this process: routers report it (on_cell_lost).
        if event.reason == CloseReason::Died && event.node.is_none() {
            let exit = event.exit.unwrap_or(ExitError::Unexpected);
            self.handlers.dead.call(|cb| cb(Err(exit)));
        }
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
    pub(crate) fn new(manager: WorkerManager, host: Arc<Host>, set: SettingsSet, app_data: AppData) -> Self {
        let inner = Arc::new(Inner {
            id: fresh_id(),
            manager,
            host: Arc::clone(&host),
            set,
            app_data,
            routers: Mutex::default(),
            servers: Mutex::default(),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
            _cell_events: Mutex::default(),
        });
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let handler = host.on_cell_closed(move |event| {
            if let Some(inner) = weak.upgrade() {
                inner.cell_closed(event);
            }
        });
        *lock(&inner._cell_events) = Some(handler);
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
    /// handlers of the real workers serving it.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<WorkerDump, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        let router_ids: Vec<RouterId> =
            lock(&self.inner.routers).iter().filter_map(WeakRouter::upgrade).map(|r| r.id()).collect();
        let webrtc_server_ids: Vec<WebRtcServerId> =
            lock(&self.inner.servers).iter().filter_map(WeakWebRtcServer::upgrade).map(|s| s.id()).collect();
        let (mut requests, mut notifications) = (BTreeSet::new(), BTreeSet::new());
        for cell in self.inner.host.cells().into_iter().filter(|c| c.serves(self.inner.set)) {
            let Some(worker) = cell.worker() else { continue };
            let handlers = worker.dump().await?.channel_message_handlers;
            requests.extend(handlers.channel_request_handlers);
            notifications.extend(handlers.channel_notification_handlers);
        }
        let channel_message_handlers = ChannelMessageHandlers {
            channel_request_handlers: requests.into_iter().collect(),
            channel_notification_handlers: notifications.into_iter().collect(),
        };
        rebuild(&WorkerDumpMirror { router_ids, webrtc_server_ids, channel_message_handlers })
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
        let rtp_capabilities = host.rtp_capabilities(self.inner.set, media_codecs.clone()).await?;
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

    /// Callback is called when a real worker serving this worker dies unexpectedly, with its
    /// error (as mediasoup's `on_dead`: never when the worker is closed). The host closes the
    /// dead worker's cell and keeps serving with the others; routers report what they lost
    /// through `Router::on_cell_lost`.
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
    //! `on_dead` against a real worker whose death is reported through the backend seam (an
    //! in-process worker cannot be killed without killing the test process): fired with the
    //! worker's error on death, never on `close()`.

    use super::*;
    use crate::backend::local::{LocalWorkers, WorkerTemplate};
    use crate::backend::{OnceCallback, RouterBackend, WebRtcServerBackend, WorkerBackend};
    use crate::config::{HostOptions, PolicyChoice};
    use crate::host::CloseReason;
    use crate::internals::host::WorkerLauncher;
    use async_trait::async_trait;
    use event_listener_primitives::BagOnce;
    use mediasoup::prelude::{RouterOptions, WebRtcServerOptions};
    use mediasoup::worker::{CreateWebRtcServerError, RequestError, WorkerDump, WorkerSettings, WorkerUpdateSettings};
    use std::time::Duration;

    /// A real worker whose death the test announces.
    #[derive(Debug)]
    struct Mortal {
        real: Arc<dyn WorkerBackend>,
        dead: BagOnce<Box<dyn FnOnce(ExitError) + Send>>,
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

    /// Starts real local workers and keeps them so the test can report one dead.
    #[derive(Default)]
    struct MortalLauncher {
        local: LocalWorkers,
        started: Mutex<Vec<Arc<Mortal>>>,
    }

    #[async_trait]
    impl WorkerLauncher for MortalLauncher {
        async fn start(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
            let real: Arc<dyn WorkerBackend> = Arc::new(self.local.start(template).await?);
            let mortal = Arc::new(Mortal { real, dead: BagOnce::default() });
            lock(&self.started).push(Arc::clone(&mortal));
            Ok(mortal)
        }
    }

    fn manager(launcher: &Arc<MortalLauncher>) -> WorkerManager {
        let options = HostOptions { policy: PolicyChoice::Spread, ..HostOptions::default() };
        WorkerManager::with_launcher(options, Arc::clone(launcher) as Arc<dyn WorkerLauncher>)
    }

    fn quiet() -> WorkerSettings {
        let mut settings = WorkerSettings::default();
        settings.log_level = mediasoup::worker::WorkerLogLevel::Error;
        settings.log_tags = Vec::new();
        settings
    }

    /// A worker of a manager whose real workers can be declared dead, with its `on_dead` events.
    async fn watched_worker(
    ) -> (Arc<MortalLauncher>, WorkerManager, Worker, tokio::sync::mpsc::UnboundedReceiver<Result<(), ExitError>>) {
        let launcher = Arc::new(MortalLauncher::default());
        let manager = manager(&launcher);
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let (dead_tx, dead_rx) = tokio::sync::mpsc::unbounded_channel();
        worker
            .on_dead(move |result| {
                let _ = dead_tx.send(result);
            })
            .detach();
        (launcher, manager, worker, dead_rx)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_dead_fires_with_the_error_when_a_real_worker_dies() {
        let (launcher, manager, worker, mut dead_rx) = watched_worker().await;
        let (cell_tx, mut cell_rx) = tokio::sync::mpsc::unbounded_channel();
        worker
            .on_cell_closed(move |event| {
                let _ = cell_tx.send((event.reason, event.exit));
            })
            .detach();
        let victim = lock(&launcher.started).first().cloned().expect("a real worker started");
        victim.dead.call(|callback| callback(ExitError::Unknown { status_code: 42 }));
        let died = tokio::time::timeout(Duration::from_secs(5), dead_rx.recv()).await.expect("on_dead fired");
        assert!(
            matches!(died, Some(Err(ExitError::Unknown { status_code: 42 }))),
            "on_dead carries the worker's own error: {died:?}"
        );
        let (reason, exit) = cell_rx.try_recv().expect("on_cell_closed fired too");
        assert_eq!(reason, CloseReason::Died);
        assert!(matches!(exit, Some(ExitError::Unknown { status_code: 42 })), "{exit:?}");
        assert!(!worker.closed(), "the virtual worker keeps serving from other real workers");
        let _again = manager.create_worker(quiet()).await.expect("the host starts a replacement");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closing_a_worker_fires_on_close_and_never_on_dead() {
        let (_launcher, _manager, worker, mut dead_rx) = watched_worker().await;
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
