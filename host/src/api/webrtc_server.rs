//! The virtual WebRtcServer: one real mediasoup WebRtcServer per worker of its virtual worker.
//!
//! A real server binds its ports in one worker, so a server spread over N workers needs N sets
//! of ports. Each worker has a stable *slot* (0 to `max_workers - 1`, the lowest free one when it
//! starts, reused after a worker closes): in slot `k` every listen info with an explicit `port`
//! listens on `port + k`, so the configured ports serve the first worker and the range
//! `port ..= port + max_workers - 1` is all the server ever uses. Listen infos without a port
//! (or with a port range) are used as given. The server binds in every running worker when it
//! is created (a port clash is an error of `create_webrtc_server`, as in mediasoup); workers
//! started later bind theirs on first use.

pub use mediasoup::webrtc_server::*;

use super::webrtc_transport::WebRtcTransport;
use super::worker::Worker;
use crate::backend::WebRtcServerBackend;
use crate::internals::cell::{Cell, SettingsSet};
use crate::internals::dump::rebuild;
use crate::internals::host::Host;
use crate::internals::object::{fresh_id, lock, on_close_handler, Lost, Member};
use crate::placement::CellId;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::prelude::{AppData, ListenInfo, TransportId};
use mediasoup::worker::{CreateWebRtcServerError, RequestError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Options of a WebRtcServer (mediasoup's).
pub use mediasoup::webrtc_server::WebRtcServerOptions;

/// `WebRtcServerDump`'s fields, in its order.
#[derive(serde::Serialize)]
struct WebRtcServerDumpMirror {
    id: WebRtcServerId,
    udp_sockets: Vec<WebRtcServerIpPort>,
    tcp_servers: Vec<WebRtcServerIpPort>,
    webrtc_transport_ids: Vec<TransportId>,
    local_ice_username_fragments: Vec<WebRtcServerIceUsernameFragment>,
}

/// Forgets the real server of a cell when the cell closes.
struct CellServer {
    server: Weak<Inner>,
    cell: CellId,
}

impl Member for CellServer {
    fn detach(&self, _lost: &mut Lost) {
        if let Some(server) = self.server.upgrade() {
            lock(&server.reals).remove(&self.cell);
            lock(&server.members).retain(|m| m.cell != self.cell);
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
    listen_infos: Vec<ListenInfo>,
    app_data: AppData,
    reals: Mutex<HashMap<CellId, Arc<dyn WebRtcServerBackend>>>,
    members: Mutex<Vec<Arc<CellServer>>>,
    creating: tokio::sync::Mutex<()>,
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

/// The listen infos of the worker in `slot`: explicit ports shifted by the slot.
fn listen_infos_for(base: &[ListenInfo], slot: usize) -> Vec<ListenInfo> {
    base.iter()
        .map(|info| {
            let mut info = info.clone();
            if let Some(port) = info.port {
                info.port = Some(port.saturating_add(u16::try_from(slot).unwrap_or(u16::MAX)));
            }
            info
        })
        .collect()
}

/// Checks that every worker slot has its own ports.
fn check_port_room(base: &[ListenInfo], max_workers: usize) -> Result<(), RequestError> {
    let last_slot = u32::try_from(max_workers.saturating_sub(1)).unwrap_or(u32::MAX);
    for info in base {
        if let Some(port) = info.port {
            if u32::from(port) + last_slot > u32::from(u16::MAX) {
                return Err(RequestError::Response {
                    reason: format!(
                        "port {port} leaves no room for {max_workers} workers (each uses port + its slot, up to {})",
                        u32::from(port) + last_slot
                    ),
                });
            }
        }
    }
    Ok(())
}

impl WebRtcServer {
    /// A server over the workers of `set`: binds in each of them now.
    pub(crate) async fn create(
        worker: Worker,
        host: &Arc<Host>,
        set: SettingsSet,
        options: WebRtcServerOptions,
    ) -> Result<Self, RequestError> {
        let WebRtcServerOptions { listen_infos, app_data, .. } = options;
        let listen_infos = listen_infos.to_vec();
        check_port_room(&listen_infos, host.options().pool.max_workers)?;
        let server = Self {
            inner: Arc::new(Inner {
                id: fresh_id(),
                worker,
                listen_infos,
                app_data,
                reals: Mutex::default(),
                members: Mutex::default(),
                creating: tokio::sync::Mutex::new(()),
                handlers: Handlers::default(),
                closed: AtomicBool::new(false),
            }),
        };
        for cell in
            host.cells().into_iter().filter(|c| c.settings_set() == set && c.origin() != crate::cell::Origin::Remote)
        {
            server.real_in(&cell).await?;
        }
        Ok(server)
    }

    /// The real server of `cell`, created (bound) on first use.
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
        let infos = WebRtcServerListenInfos::try_from(listen_infos_for(&self.inner.listen_infos, cell.slot()))
            .map_err(|_| RequestError::Response { reason: "a WebRtcServer needs at least one listen info".into() })?;
        let mut options = WebRtcServerOptions::new(infos);
        options.app_data = self.inner.app_data.clone();
        let real = worker.create_webrtc_server(options).await.map_err(|e| match e {
            CreateWebRtcServerError::Request(request) => request,
        })?;
        let member = Arc::new(CellServer { server: Arc::downgrade(&self.inner), cell: cell.id() });
        cell.join(Arc::downgrade(&member) as Weak<dyn Member>).map_err(|_| RequestError::ChannelClosed)?;
        lock(&self.inner.reals).insert(cell.id(), Arc::clone(&real));
        lock(&self.inner.members).push(member);
        Ok(real)
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
        let reals: Vec<_> = lock(&self.inner.reals).values().cloned().collect();
        let mut merged = WebRtcServerDumpMirror {
            id: self.id(),
            udp_sockets: Vec::new(),
            tcp_servers: Vec::new(),
            webrtc_transport_ids: Vec::new(),
            local_ice_username_fragments: Vec::new(),
        };
        for real in reals {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback(port: Option<u16>) -> ListenInfo {
        let mut info = crate::config::PipeOptions::default().listen_info();
        info.port = port;
        info
    }

    #[test]
    fn explicit_ports_shift_with_the_slot() {
        let base = [loopback(Some(44_000)), loopback(None)];
        let slot2 = listen_infos_for(&base, 2);
        assert_eq!(slot2[0].port, Some(44_002));
        assert_eq!(slot2[1].port, None);
        assert_eq!(listen_infos_for(&base, 0)[0].port, Some(44_000));
    }

    #[test]
    fn every_slot_needs_room_below_65536() {
        assert!(check_port_room(&[loopback(Some(65_534))], 2).is_ok());
        let error = check_port_room(&[loopback(Some(65_534))], 3).expect_err("no room for slot 2");
        assert!(error.to_string().contains("65536"), "{error}");
        assert!(check_port_room(&[loopback(None)], 64).is_ok());
    }
}
