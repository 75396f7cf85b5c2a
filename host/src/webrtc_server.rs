//! The virtual WebRtcServer: one real mediasoup WebRtcServer per worker it is used on.
//!
//! A real server binds its ports in one worker, so a server spread over N workers needs N sets
//! of ports: in cell `k` every listen info with an explicit `port` listens on `port + k` (cell
//! ids start at 0, so the first worker uses the configured ports); listen infos without a port
//! (or with a port range) are used as given.

pub use mediasoup::webrtc_server::*;

use crate::cell::Cell;
use crate::object::{fresh_id, lock, on_close_handler, Lost, Member};
use crate::placement::CellId;
use crate::router::webrtc_transport::WebRtcTransport;
use crate::worker::Worker;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::prelude::{AppData, ListenInfo};
use mediasoup::worker::{CreateWebRtcServerError, RequestError};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Options of a WebRtcServer (mediasoup's).
pub use mediasoup::webrtc_server::WebRtcServerOptions;

/// The real server in one cell; a member of that cell.
struct RealServer {
    real: Mutex<Option<mediasoup::webrtc_server::WebRtcServer>>,
}

impl Member for RealServer {
    fn detach(&self, _lost: &mut Lost) {
        lock(&self.real).take();
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
    reals: Mutex<HashMap<CellId, Arc<RealServer>>>,
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

/// The listen infos of cell `cell`: explicit ports shifted by the cell number.
fn listen_infos_for(base: &[ListenInfo], cell: CellId) -> Vec<ListenInfo> {
    base.iter()
        .map(|info| {
            let mut info = info.clone();
            if let Some(port) = info.port {
                info.port = Some(port.saturating_add(u16::try_from(cell.0).unwrap_or(u16::MAX)));
            }
            info
        })
        .collect()
}

impl WebRtcServer {
    pub(crate) fn new(worker: Worker, options: WebRtcServerOptions) -> Self {
        let WebRtcServerOptions { listen_infos, app_data, .. } = options;
        Self {
            inner: Arc::new(Inner {
                id: fresh_id(),
                worker,
                listen_infos: listen_infos.to_vec(),
                app_data,
                reals: Mutex::default(),
                creating: tokio::sync::Mutex::new(()),
                handlers: Handlers::default(),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The real server of `cell`, created on first use.
    pub(crate) async fn real_in(
        &self,
        cell: &Arc<Cell>,
    ) -> Result<mediasoup::webrtc_server::WebRtcServer, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        let existing = |server: &Self| lock(&server.inner.reals).get(&cell.id()).and_then(|r| lock(&r.real).clone());
        if let Some(real) = existing(self) {
            return Ok(real);
        }
        let _serial = self.inner.creating.lock().await;
        if let Some(real) = existing(self) {
            return Ok(real);
        }
        let worker = cell.worker().ok_or(RequestError::ChannelClosed)?;
        let infos = WebRtcServerListenInfos::try_from(listen_infos_for(&self.inner.listen_infos, cell.id()))
            .map_err(|_| RequestError::Response { reason: "a WebRtcServer needs at least one listen info".into() })?;
        let mut options = WebRtcServerOptions::new(infos);
        options.app_data = self.inner.app_data.clone();
        let real = worker.create_webrtc_server(options).await.map_err(|e| match e {
            CreateWebRtcServerError::Request(request) => request,
        })?;
        let entry = Arc::new(RealServer { real: Mutex::new(Some(real.clone())) });
        cell.join(Arc::downgrade(&entry) as Weak<RealServer>);
        lock(&self.inner.reals).insert(cell.id(), entry);
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
        let reals: Vec<_> = lock(&self.inner.reals).values().filter_map(|r| lock(&r.real).clone()).collect();
        let (mut udp, mut tcp, mut transports, mut fragments) = (vec![], vec![], vec![], vec![]);
        for real in reals {
            let dump =
                serde_json::to_value(real.dump().await?).map_err(|e| RequestError::ResponseConversion(Box::new(e)))?;
            let take = |key: &str| dump.get(key).and_then(|v| v.as_array()).cloned().unwrap_or_default();
            udp.extend(take("udpSockets"));
            tcp.extend(take("tcpServers"));
            transports.extend(take("webRtcTransportIds"));
            fragments.extend(take("localIceUsernameFragments"));
        }
        let merged = serde_json::json!({
            "id": self.id().to_string(),
            "udpSockets": udp,
            "tcpServers": tcp,
            "webRtcTransportIds": transports,
            "localIceUsernameFragments": fragments,
        });
        serde_json::from_value(merged).map_err(|e| RequestError::ResponseConversion(Box::new(e)))
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
    fn loopback_listen_info() -> ListenInfo {
        crate::config::PipeOptions::default().listen_info()
    }

    #[test]
    fn explicit_ports_shift_with_the_cell() {
        let mut fixed = loopback_listen_info();
        fixed.port = Some(44_000);
        let base = [fixed, loopback_listen_info()];
        let cell2 = listen_infos_for(&base, CellId(2));
        assert_eq!(cell2[0].port, Some(44_002));
        assert_eq!(cell2[1].port, None);
        assert_eq!(listen_infos_for(&base, CellId(0))[0].port, Some(44_000));
    }
}
