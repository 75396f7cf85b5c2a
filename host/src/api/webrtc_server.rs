//! The virtual WebRtcServer: one real mediasoup WebRtcServer per worker of its virtual worker.
//!
//! A real server binds its ports in one worker, so a server spread over N workers needs N sets
//! of ports: each worker has a stable *slot* (`0..max_workers`), and the server's port plan
//! ([`crate::internals::port_plan`]) says where it listens in each slot — the configured ports
//! in slot 0, `port + slot × stride` in slot `slot`. Creating a server claims its plan (a plan
//! sharing a port with another live server's is refused) and binds every slot the pool can
//! reach: a real server in each running worker of its virtual worker, placeholder sockets
//! holding the ports of the other slots (released right before a worker of that slot binds
//! them). A port clash is therefore an error of `create_webrtc_server`, as in mediasoup.
pub use mediasoup::webrtc_server::*;

use super::webrtc_transport::WebRtcTransport;
use super::worker::Worker;
use crate::backend::WebRtcServerBackend;
use crate::internals::cell::{Cell, SettingsSet};
use crate::internals::dump::rebuild;
use crate::internals::host::Host;
use crate::internals::object::{fresh_id, lock, on_close_handler, run_later, Lost, Member};
use crate::internals::port_plan::{hold, Held, PortPlan};
use crate::placement::CellId;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::prelude::{AppData, TransportId};
use mediasoup::worker::{CreateWebRtcServerError, RequestError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tracing::debug;

/// Options of a WebRtcServer (mediasoup's).
pub use mediasoup::webrtc_server::WebRtcServerOptions;

/// Binds a real server tries before its error is the caller's.
const BIND_ATTEMPTS: u32 = 5;
/// Pause between them (times the attempt number).
const BIND_RETRY: std::time::Duration = std::time::Duration::from_millis(40);
/// How long a slot's ports are tried again after its worker went: a worker process that died
/// or is stopping may hold them until it has exited (it is killed at most 5 s after its link
/// ended).
const REHOLD_FOR: std::time::Duration = std::time::Duration::from_secs(8);
/// Pause between those tries.
const REHOLD_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// `WebRtcServerDump`'s fields, in its order.
#[derive(serde::Serialize)]
struct WebRtcServerDumpMirror {
    id: WebRtcServerId,
    udp_sockets: Vec<WebRtcServerIpPort>,
    tcp_servers: Vec<WebRtcServerIpPort>,
    webrtc_transport_ids: Vec<TransportId>,
    local_ice_username_fragments: Vec<WebRtcServerIceUsernameFragment>,
}

/// Forgets the real server of a cell when the cell closes (and holds its slot's ports again,
/// once the real server is gone).
struct CellServer {
    server: Weak<Inner>,
    cell: CellId,
    slot: usize,
    local: bool,
}

impl Member for CellServer {
    fn detach(&self, _lost: &mut Lost) {
        if let Some(server) = self.server.upgrade() {
            let real = lock(&server.reals).remove(&self.cell);
            lock(&server.members).retain(|m| m.cell != self.cell);
            if self.local {
                let (server, slot) = (WebRtcServer { inner: server }, self.slot);
                run_later(move || {
                    drop(real);
                    server.hold_slot(slot);
                });
            }
        }
    }
}

#[allow(clippy::type_complexity)]
#[derive(Default)]
struct Handlers {
    new_webrtc_transport: BagOnce<Box<dyn Fn(&WebRtcTransport) + Send>>,
    worker_close: BagOnce<Box<dyn FnOnce() + Send>>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
}

struct Inner {
    id: WebRtcServerId,
    worker: Worker,
    host: Arc<Host>,
    plan: PortPlan,
    app_data: AppData,
    reals: Mutex<HashMap<CellId, Arc<dyn WebRtcServerBackend>>>,
    members: Mutex<Vec<Arc<CellServer>>>,
    /// Placeholder sockets holding the ports of slots without a real server, by slot.
    held: Mutex<HashMap<usize, Vec<Held>>>,
    creating: tokio::sync::Mutex<()>,
    handlers: Handlers,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.host.server_ports().release(&self.id);
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
    }
}

/// A WebRTC server: WebRtcTransports created with it share its ports (per worker).
#[derive(Clone)]
#[must_use = "WebRtcServer will be closed on drop, make sure to keep it around for as long as needed"]
pub struct WebRtcServer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WebRtcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcServer").field("id", &self.inner.id).field("closed", &self.closed()).finish()
    }
}

impl WebRtcServer {
    /// A server over the workers of `set`: claims its port plan and binds every slot now (a
    /// real server in each running worker of the set, placeholders for the other slots).
    pub(crate) async fn create(
        worker: Worker,
        host: &Arc<Host>,
        set: SettingsSet,
        options: WebRtcServerOptions,
    ) -> Result<Self, RequestError> {
        let WebRtcServerOptions { listen_infos, app_data, .. } = options;
        let pool = &host.options().pool;
        let refused = |e: crate::internals::port_plan::PortPlanError| RequestError::Response { reason: e.to_string() };
        let plan = PortPlan::new(listen_infos.to_vec(), pool.webrtc_server_port_stride, pool.max_workers.max(1))
            .map_err(refused)?;
        let id = fresh_id();
        host.server_ports().claim(id, &plan).map_err(refused)?;
        let server = Self {
            inner: Arc::new(Inner {
                id,
                worker,
                host: Arc::clone(host),
                plan,
                app_data,
                reals: Mutex::default(),
                members: Mutex::default(),
                held: Mutex::default(),
                creating: tokio::sync::Mutex::new(()),
                handlers: Handlers::default(),
                closed: AtomicBool::new(false),
            }),
        };
        let running: Vec<Arc<Cell>> = host
            .cells()
            .into_iter()
            .filter(|c| c.settings_set() == set && c.origin() != crate::cell::Origin::Remote)
            .collect();
        // Without local workers (every worker on other hosts) no slot of this process binds.
        let local_slots = if pool.max_workers == 0 { 0 } else { server.inner.plan.slots() };
        for slot in (0..local_slots).filter(|slot| running.iter().all(|c| c.slot() != *slot)) {
            let held = hold(&server.inner.plan.listen_infos(slot), slot).map_err(refused)?;
            lock(&server.inner.held).insert(slot, held);
        }
        for cell in &running {
            server.real_in(cell).await?;
        }
        Ok(server)
    }

    /// The real server of `cell`, created (bound) on first use: a local worker first releases
    /// its slot's placeholders.
    pub(crate) async fn real_in(&self, cell: &Arc<Cell>) -> Result<Arc<dyn WebRtcServerBackend>, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        let existing = |server: &Self| lock(&server.inner.reals).get(&cell.id()).cloned();
        if let Some(real) = existing(self) {
            return Ok(real);
        }
        let _serial = self.inner.creating.lock().await;
        if let Some(real) = existing(self) {
            return Ok(real);
        }
        let worker = cell.worker().ok_or(RequestError::ChannelClosed)?;
        let slot = cell.slot();
        let infos = self.inner.plan.listen_infos(slot);
        let local = cell.origin() != crate::cell::Origin::Remote;
        if local {
            drop(lock(&self.inner.held).remove(&slot));
        }
        let infos = WebRtcServerListenInfos::try_from(infos)
            .map_err(|_| RequestError::Response { reason: "a WebRtcServer needs at least one listen info".into() })?;
        let options = || {
            let mut options = WebRtcServerOptions::new(infos.clone());
            options.app_data = self.inner.app_data.clone();
            options
        };
        // A worker that just took the slot of one released a moment ago may find its ports
        // still closing: a few short retries (bounded) before the bind is an error.
        let mut created = Err(RequestError::ChannelClosed);
        for attempt in 0..BIND_ATTEMPTS {
            created = worker.create_webrtc_server(options()).await.map_err(|e| match e {
                CreateWebRtcServerError::Request(request) => request,
            });
            if created.is_ok() || !local {
                break;
            }
            futures_timer::Delay::new(BIND_RETRY * (attempt + 1)).await;
        }
        let real = match created {
            Ok(real) => real,
            Err(error) => {
                if local {
                    self.hold_slot(slot);
                }
                return Err(error);
            }
        };
        let member = Arc::new(CellServer { server: Arc::downgrade(&self.inner), cell: cell.id(), slot, local });
        cell.join(Arc::downgrade(&member) as Weak<dyn Member>).map_err(|_| RequestError::ChannelClosed)?;
        lock(&self.inner.reals).insert(cell.id(), Arc::clone(&real));
        lock(&self.inner.members).push(member);
        Ok(real)
    }

    /// Holds the ports of `slot` again (its worker went, or failed to bind); best effort: a
    /// port still held by a closing worker stays free until a worker takes the slot again.
    fn hold_slot(&self, slot: usize) {
        if self.try_hold_slot(slot).is_ok() {
            return;
        }
        // The worker that had the slot may still hold its ports (a worker process closing):
        // tried again for a while, off the deferred thread.
        let server = self.clone();
        let retried = std::thread::Builder::new().name("mafalda-rehold".into()).spawn(move || {
            let until = std::time::Instant::now() + REHOLD_FOR;
            while std::time::Instant::now() < until {
                std::thread::sleep(REHOLD_EVERY);
                match server.try_hold_slot(slot) {
                    Ok(()) => return,
                    Err(error) => debug!(server = %server.id(), slot, %error, "slot ports not held again yet"),
                }
            }
            debug!(server = %server.id(), slot, "slot ports not held again: the next worker of the slot binds them");
        });
        if let Err(error) = retried {
            debug!(%error, "slot ports not held again");
        }
    }

    /// Holds a slot's ports unless the server closed or a worker took the slot again (its real
    /// server holds them then).
    fn try_hold_slot(&self, slot: usize) -> Result<(), crate::internals::port_plan::PortPlanError> {
        if self.closed() || lock(&self.inner.members).iter().any(|m| m.local && m.slot == slot) {
            return Ok(());
        }
        let held = hold(&self.inner.plan.listen_infos(slot), slot)?;
        lock(&self.inner.held).insert(slot, held);
        Ok(())
    }

    pub(crate) fn transport_created(&self, transport: &WebRtcTransport) {
        self.inner.handlers.new_webrtc_transport.call(|cb| cb(transport));
    }

    pub(crate) fn close_from_worker(&self) {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.inner.handlers.worker_close.call_simple();
        self.inner.handlers.close.call_simple();
        lock(&self.inner.reals).clear();
        lock(&self.inner.members).clear();
        lock(&self.inner.held).clear();
        self.inner.host.server_ports().release(&self.inner.id);
    }

    /// mafalda extension: the cells (workers) it has bound ports in.
    #[must_use]
    pub fn cells(&self) -> Vec<CellId> {
        let mut cells: Vec<CellId> = lock(&self.inner.reals).keys().copied().collect();
        cells.sort();
        cells
    }

    /// WebRtcServer id.
    #[must_use]
    pub fn id(&self) -> WebRtcServerId {
        self.inner.id
    }

    /// Worker to which the WebRTC server belongs.
    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner.app_data
    }

    /// Whether the WebRTC server is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// Dump the server: the real servers' sockets and transports, merged.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<WebRtcServerDump, RequestError> {
        let mut reals: Vec<(CellId, Arc<dyn WebRtcServerBackend>)> =
            lock(&self.inner.reals).iter().map(|(cell, real)| (*cell, Arc::clone(real))).collect();
        reals.sort_by_key(|(cell, _)| *cell);
        let mut merged = WebRtcServerDumpMirror {
            id: self.id(),
            udp_sockets: Vec::new(),
            tcp_servers: Vec::new(),
            webrtc_transport_ids: Vec::new(),
            local_ice_username_fragments: Vec::new(),
        };
        for (_, real) in reals {
            let dump = real.dump().await?;
            merged.udp_sockets.extend(dump.udp_sockets);
            merged.tcp_servers.extend(dump.tcp_servers);
            merged.webrtc_transport_ids.extend(dump.webrtc_transport_ids);
            merged.local_ice_username_fragments.extend(dump.local_ice_username_fragments);
        }
        rebuild(&merged)
    }

    /// Callback is called when the worker this WebRTC server belongs to is closed.
    pub fn on_worker_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.worker_close.add(Box::new(callback))
    }

    /// Callback is called when a WebRTC transport is created with this server.
    pub fn on_new_webrtc_transport<F>(&self, callback: F) -> HandlerId
    where
        F: Fn(&WebRtcTransport) + Send + 'static,
    {
        self.inner.handlers.new_webrtc_transport.add(Box::new(callback))
    }

    /// Callback is called when the WebRTC server is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        on_close_handler(&self.inner.handlers.close, self.closed(), Box::new(callback))
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakWebRtcServer {
        WeakWebRtcServer { inner: Arc::downgrade(&self.inner) }
    }
}

/// A WebRTC server that does not keep it alive.
#[derive(Clone)]
pub struct WeakWebRtcServer {
    inner: Weak<Inner>,
}

impl std::fmt::Debug for WeakWebRtcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakWebRtcServer").finish()
    }
}

impl WeakWebRtcServer {
    /// Upgrade to a strong handle, unless the server is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<WebRtcServer> {
        self.inner.upgrade().map(|inner| WebRtcServer { inner })
    }
}
