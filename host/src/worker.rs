//! The virtual [`Worker`]: it stands for the host's whole worker pool (several virtual workers
//! share it). Routers created on it spread over the pool's workers.

pub use mediasoup::worker::*;

use crate::host::Host;
use crate::object::{fresh_id, lock, on_close_handler};
use crate::router::{Router, WeakRouter};
use crate::webrtc_server::{WeakWebRtcServer, WebRtcServer, WebRtcServerOptions};
use crate::worker_manager::WorkerManager;
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::prelude::{AppData, RouterOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use thiserror::Error;

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
}

struct Inner {
    id: WorkerId,
    manager: WorkerManager,
    host: Arc<Host>,
    app_data: AppData,
    routers: Mutex<Vec<WeakRouter>>,
    servers: Mutex<Vec<WeakWebRtcServer>>,
    handlers: Handlers,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
    }
}

/// A virtual worker: mediasoup's Worker API over the host's pool of real workers.
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
    pub(crate) fn new(manager: WorkerManager, host: Arc<Host>, app_data: AppData) -> Self {
        Self {
            inner: Arc::new(Inner {
                id: fresh_id(),
                manager,
                host,
                app_data,
                routers: Mutex::default(),
                servers: Mutex::default(),
                handlers: Handlers::default(),
                closed: AtomicBool::new(false),
            }),
        }
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

    /// Dump the worker: its (virtual) routers and WebRTC servers.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<WorkerDump, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        let routers: Vec<String> =
            lock(&self.inner.routers).iter().filter_map(WeakRouter::upgrade).map(|r| r.id().to_string()).collect();
        let servers: Vec<String> = lock(&self.inner.servers)
            .iter()
            .filter_map(WeakWebRtcServer::upgrade)
            .map(|s| s.id().to_string())
            .collect();
        let dump = serde_json::json!({
            "routerIds": routers,
            "webRtcServerIds": servers,
            "channelMessageHandlers": {"channelRequestHandlers": [], "channelNotificationHandlers": []},
        });
        serde_json::from_value(dump).map_err(|e| RequestError::ResponseConversion(Box::new(e)))
    }

    /// The host whose pool this worker stands for (a mafalda extension: stats, cells, plugins).
    pub fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    /// Updates the log settings of every real worker of the pool.
    pub async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        for cell in self.inner.host.cells() {
            if let Some(worker) = cell.worker() {
                worker.update_settings(data.clone()).await?;
            }
        }
        Ok(())
    }

    /// Create a WebRtcServer: one real server per worker it is used on (see
    /// [`WebRtcServer`] for how ports are assigned).
    pub async fn create_webrtc_server(
        &self,
        webrtc_server_options: WebRtcServerOptions,
    ) -> Result<WebRtcServer, CreateWebRtcServerError> {
        if self.closed() {
            return Err(CreateWebRtcServerError::Request(RequestError::ChannelClosed));
        }
        let server = WebRtcServer::new(self.clone(), webrtc_server_options);
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
        let rtp_capabilities = self.inner.host.rtp_capabilities(media_codecs.clone()).await?;
        let router = Router::new(self.clone(), Arc::clone(&self.inner.host), media_codecs, rtp_capabilities, app_data);
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

    /// Callback is called when the worker dies (with [`Worker::close`], the closest thing a
    /// virtual worker has to a death; single real workers dying are reported per router with
    /// `Router::on_worker_died`).
    pub fn on_dead<F: FnOnce(Result<(), ExitError>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.dead.add(Box::new(callback))
    }

    /// Callback is called when the worker is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        on_close_handler(&self.inner.handlers.close, self.closed(), Box::new(callback))
    }

    /// mafalda extension: closes this virtual worker and everything created under it, firing
    /// the events mediasoup fires when a worker goes away (routers' `on_worker_close`,
    /// transports' `on_router_close`, …). The host's real workers keep serving other virtual
    /// workers.
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
        self.inner.handlers.dead.call(|cb| cb(Ok(())));
        self.inner.handlers.close.call_simple();
    }
}
