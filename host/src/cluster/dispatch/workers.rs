//! Workers and their routers: routers, worker dumps and settings, and the host's WebRTC
//! servers (one per worker, shared by every session).

use super::*;
use crate::cluster::server::MediaAddresses;
use mediasoup::prelude::{Protocol, RouterOptions};
use mediasoup::webrtc_server::{WebRtcServerDump, WebRtcServerListenInfos, WebRtcServerOptions};
use mediasoup::worker::{WorkerId, WorkerLogLevel, WorkerUpdateSettings};
use std::collections::{HashMap, HashSet};

pub(super) async fn handle(call: Call<'_>, op: Op) -> Result<Reply, WireError> {
    let (host, session, held) = (call.host(), call.session, &call.held);
    match op {
        Op::CreateRouter { media_codecs, room, token, .. } => {
            let Held::Worker(worker) = held else { return Err(wrong("create_router", held)) };
            let grant = match token {
                Some(token) => router_grant(session, host, token, room.clone())?,
                None => None,
            };
            let real = worker.create_router(RouterOptions::new(unpack(&media_codecs)?)).await.map_err(failed)?;
            let info = ObjectInfo::Router { id: real.id(), rtp_capabilities: real.rtp_capabilities() };
            let router = Some(real.id().to_string());
            let cell = open_cell_of(host, worker.id());
            let counted = cell.as_ref().map(|c| CellUse::Router(c.router_here(real.id())));
            let cell = cell.map(|c| (c, Arc::new(Counts::default())));
            let place = Place { room, router, grant, cell };
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let handlers = vec![real.on_close(Box::new(move || events.closed()))];
            let entry = Entry { held: Held::Router(real), place, _handlers: handlers, _counted: counted };
            lock(&session.objects).insert(handle, entry);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::WorkerDump { .. } => {
            let Held::Worker(worker) = held else { return Err(wrong("dump", held)) };
            let mut dump = worker.dump().await.map_err(failed)?;
            own_objects_only(session, &mut dump);
            packed(&dump)
        }
        Op::UpdateSettings { log_level, log_tags, .. } => {
            let Held::Worker(worker) = held else { return Err(wrong("update_settings", held)) };
            let mut settings = WorkerUpdateSettings::default();
            settings.log_level =
                log_level.as_deref().map(|l| crate::worker_log::level_of(l).unwrap_or(WorkerLogLevel::None));
            settings.log_tags = log_tags.map(|tags| tags.iter().filter_map(|t| crate::worker_log::tag_of(t)).collect());
            worker.update_settings(settings).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::WebRtcServer { .. } => {
            let Held::Worker(worker) = held else { return Err(wrong("a WebRTC server", held)) };
            let cell =
                open_cell_of(host, worker.id()).ok_or_else(|| WireError::Failed("the worker is closed".into()))?;
            let server = call.shared.webrtc_servers.of(call.shared, &cell).await?;
            let mut dump = server.dump().await.map_err(failed)?;
            own_transports_only(session, &mut dump);
            packed(&dump)
        }
        Op::CreateWebRtcServer { listen_infos, .. } => {
            let Held::Worker(worker) = held else { return Err(wrong("create_webrtc_server", held)) };
            if !matches!(call.shared.media, MediaAddresses::AsAsked) {
                return Err(WireError::Denied(
                    "this host offers its own WebRTC servers only (they listen on its addresses)".into(),
                ));
            }
            let infos: Vec<mediasoup::prelude::ListenInfo> = unpack(&listen_infos)?;
            let infos = WebRtcServerListenInfos::try_from(infos)
                .map_err(|_| WireError::BadRequest("a WebRTC server needs a listen info".into()))?;
            let server =
                tokio::time::timeout(BIND_WITHIN, worker.create_webrtc_server(WebRtcServerOptions::new(infos)))
                    .await
                    .map_err(|_| WireError::Failed(format!("the WebRTC server was not bound within {BIND_WITHIN:?}")))?
                    .map_err(failed)?;
            let info = ObjectInfo::WebRtcServer { id: server.id() };
            let cell = open_cell_of(host, worker.id()).map(|c| (c, Arc::new(Counts::default())));
            let place = Place { cell, ..Place::default() };
            let handle = session.next_handle();
            let entry = Entry { held: Held::WebRtcServer(server), place, _handlers: Vec::new(), _counted: None };
            lock(&session.objects).insert(handle, entry);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CapabilitiesFor { media_codecs, .. } => {
            let Held::Router(real) = held else { return Err(wrong("update_media_codecs", held)) };
            let caps = real.capabilities_for(unpack(&media_codecs)?).await.map_err(failed)?;
            Ok(Reply::Capabilities(Payload::new(&caps)))
        }
        other => Err(misrouted(&other)),
    }
}

/// A worker's server, bound once.
type ServerSlot = tokio::sync::OnceCell<Arc<dyn WebRtcServerBackend>>;

/// How long binding a WebRTC server may take (a worker of a peer behind a stalled link).
const BIND_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The host's WebRTC servers, one per worker, bound on first use at `[serve]
/// webrtc_server_port` + the worker's slot × `[pool] webrtc_server_port_stride` (UDP and TCP on
/// the cluster endpoint's address, announcing the host's), and shared by every session: the
/// transports a caller makes on them listen on those ports, whatever listen infos the caller
/// gave its own server. At most one per open cell: a closed cell's server is forgotten when
/// the cell closes (its worker and ports go with it).
pub(crate) struct WebRtcServers {
    port: Option<u16>,
    servers: Mutex<HashMap<WorkerId, Arc<ServerSlot>>>,
}

impl WebRtcServers {
    /// Servers from `port` on (`None`: this host runs none).
    pub(crate) fn new(port: Option<u16>) -> Self {
        Self { port, servers: Mutex::default() }
    }

    /// Forgets the server of a closed cell's worker.
    pub(crate) fn cell_closed(&self, worker: WorkerId) {
        lock(&self.servers).remove(&worker);
    }

    /// Forgets every server (the endpoint stops).
    pub(crate) fn clear(&self) {
        lock(&self.servers).clear();
    }

    /// The server of `cell`'s worker, bound now if it is not yet (one bind per worker at a
    /// time; others wait for it, a failed bind is tried again by the next caller).
    pub(super) async fn of(
        &self,
        shared: &Shared,
        cell: &Arc<Cell>,
    ) -> Result<Arc<dyn WebRtcServerBackend>, WireError> {
        // Closed cells' servers are forgotten by `cell_closed` (the host's cell-closed event).
        let once = Arc::clone(lock(&self.servers).entry(cell.worker_id()).or_default());
        let server = once
            .get_or_try_init(|| async {
                let worker = cell.worker().ok_or_else(|| WireError::Failed("the worker is closed".into()))?;
                let options = if cell.origin() == crate::cell::Origin::Remote {
                    // A peer's worker (this host aggregates it): the peer binds its own server
                    // on its own ports (these options are not sent).
                    server_options(shared, 0)
                } else {
                    let base = self.port.ok_or_else(|| {
                        WireError::Failed("this host runs no WebRTC servers ([serve] webrtc_server_port)".into())
                    })?;
                    let port = slot_port(base, shared.host.options().pool.webrtc_server_port_stride, cell.slot())
                        .ok_or_else(|| {
                            WireError::Failed(format!("no port for worker slot {} above {base}", cell.slot()))
                        })?;
                    tracing::info!(worker = %cell.worker_id(), port, "binding a WebRTC server for remote sessions");
                    server_options(shared, port)
                };
                tokio::time::timeout(BIND_WITHIN, worker.create_webrtc_server(options))
                    .await
                    .map_err(|_| WireError::Failed(format!("the WebRTC server was not bound within {BIND_WITHIN:?}")))?
                    .map_err(failed)
            })
            .await?;
        Ok(Arc::clone(server))
    }
}

/// The port of worker slot `slot`: `base + slot × stride`, if it is a port.
fn slot_port(base: u16, stride: u16, slot: usize) -> Option<u16> {
    let offset = u32::try_from(slot).ok()?.checked_mul(u32::from(stride))?;
    u16::try_from(u32::from(base).checked_add(offset)?).ok()
}

/// A server on `port`, UDP and TCP, on the cluster endpoint's address announcing the host's.
fn server_options(shared: &Shared, port: u16) -> WebRtcServerOptions {
    let at = |protocol| {
        let mut info = shared.media_listen(crate::config::listen_info(protocol, shared.listen_ip(), None));
        info.port = Some(port);
        info
    };
    WebRtcServerOptions::new(WebRtcServerListenInfos::new(at(Protocol::Udp)).insert(at(Protocol::Tcp)))
}

/// The open cell of this host's worker `worker`.
fn open_cell_of(host: &Host, worker: WorkerId) -> Option<Arc<Cell>> {
    host.cells().into_iter().find(|c| c.worker_id() == worker && !c.is_closed())
}

/// The ids of the real objects `session` holds (what its views of shared workers may show).
fn own_ids(session: &Session) -> HashSet<String> {
    lock(&session.objects).values().filter_map(|entry| entry.held.id()).collect()
}

/// Leaves in a server's dump only the transports of `session`.
fn own_transports_only(session: &Session, dump: &mut WebRtcServerDump) {
    let own = own_ids(session);
    dump.webrtc_transport_ids.retain(|id| own.contains(&id.to_string()));
    dump.local_ice_username_fragments.retain(|f| own.contains(&f.webrtc_transport_id.to_string()));
}

/// Leaves in a worker's dump only what belongs to `session` (the worker is shared with other
/// sessions, whose object ids are not this caller's business).
pub(super) fn own_objects_only(session: &Session, dump: &mut mediasoup::worker::WorkerDump) {
    let own = own_ids(session);
    dump.router_ids.retain(|id| own.contains(&id.to_string()));
    dump.webrtc_server_ids.retain(|id| own.contains(&id.to_string()));
    let handlers = &mut dump.channel_message_handlers;
    handlers.channel_request_handlers.retain(|id| own.contains(&id.to_string()));
    handlers.channel_notification_handlers.retain(|id| own.contains(&id.to_string()));
}

#[cfg(test)]
mod tests {
    use super::slot_port;

    #[test]
    fn slot_ports_stop_at_the_last_port() {
        assert_eq!(slot_port(40000, 100, 0), Some(40000));
        assert_eq!(slot_port(40000, 100, 3), Some(40300));
        assert_eq!(slot_port(65500, 100, 1), None);
        assert_eq!(slot_port(1000, u16::MAX, usize::MAX), None);
    }
}
