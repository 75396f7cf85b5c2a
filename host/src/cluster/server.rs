//! The serving side of the cluster: a QUIC endpoint that admits applications (token through the
//! auth hook) and peer hosts (mutual TLS), gives each a session whose objects it creates on this
//! host's workers, forwards their events, and advertises the workers and their load every
//! second. A session outlives a dropped connection for a grace period: the caller reconnects,
//! resumes it and receives the events it missed.

use super::dispatch::{self, Held};
use super::grant::{self, Caller, RouterGrant, Scope, TokenGrant};
use super::limits::ServeLimits;
use super::link::{self, MessageStream, Outbox};
use super::proto::*;
use super::session::{
    Admitted, Arrival, Claim, ConnectionId, EventBudget, Refusal, Replies, ResumeAsk, Secret, SessionBook, SessionId,
};
use super::tls::{self, NodeTls, TlsError};
use crate::cell::Origin;
use crate::host::Host;
use crate::internals::object::lock;
use futures_util::stream::{FuturesUnordered, StreamExt};
use mafalda_plugin_sdk::types::Operation;
use mediasoup::worker::WorkerId;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::{debug, info, warn};

/// How a host serves the cluster.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The QUIC control endpoint.
    pub listen: SocketAddr,
    /// The address endpoints and other hosts use for media (transports created for remote
    /// callers listen on `listen`'s IP and announce this one).
    pub announced_ip: IpAddr,
    /// This node's certificate, key and the cluster CA.
    pub tls: NodeTls,
    /// Accept clients from any address without an auth plugin.
    pub insecure_allow_any_client: bool,
    /// Sessions, connections, queues and quotas.
    pub limits: ServeLimits,
}

/// The server could not start.
#[derive(Debug, Error)]
pub enum ServeError {
    /// TLS files or settings.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The sessions of this host, as the sans-IO book keeps them (sent through outboxes).
type Book = SessionBook<Outbox>;

/// One caller's objects on this host; who it is and where its messages go are in the [`Book`].
pub(crate) struct Session {
    id: SessionId,
    role: Role,
    identity: String,
    book: Arc<Mutex<Book>>,
    pub(crate) objects: Mutex<HashMap<Handle, dispatch::Entry>>,
    workers: Mutex<HashMap<WorkerId, Handle>>,
    next: AtomicU64,
    /// How many objects the session may hold.
    pub(crate) max_objects: usize,
    /// Request ids seen and recent replies: a request sent again after a resume is answered
    /// once.
    replies: Mutex<Replies>,
    /// Trace events this session may still send (`[serve] trace_events_per_second`).
    traces: Mutex<EventBudget>,
    pub(crate) runtime: tokio::runtime::Handle,
}

impl Session {
    /// A fresh handle.
    pub(crate) fn next_handle(&self) -> Handle {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a message if the caller is connected (responses and adverts are not kept: a
    /// caller fails its pending requests when its link drops, and adverts repeat).
    pub(crate) fn send(&self, message: &Message) {
        let Some((_, outbox)) = lock(&self.book).outbox(self.id) else { return };
        if let Err(error) = outbox.send(message) {
            debug!(session = self.id, %error, kind = message.kind(), "not sent");
        }
    }

    /// Whether request `id` is to be carried out: a copy sent again after a resume is answered
    /// with the first reply (or by the run in progress), never carried out twice.
    pub(crate) fn arrive(&self, id: u32) -> bool {
        if id == 0 {
            return true;
        }
        let arrival = lock(&self.replies).arrive(id);
        match arrival {
            Arrival::New => true,
            Arrival::Running => false,
            Arrival::Answered(frame) => {
                if let Some((_, outbox)) = lock(&self.book).outbox(self.id) {
                    let _ = outbox.send_frame(frame);
                }
                false
            }
            Arrival::Forgotten => {
                let forgotten = "this request was carried out before and its reply is no longer kept";
                self.send(&Message::Response { id, result: Err(WireError::Failed(forgotten.into())) });
                false
            }
        }
    }

    /// Answers request `id` on the connection the session is attached to now (kept for a
    /// caller that asks again); a reply too large for a frame becomes an error the caller sees.
    pub(crate) fn respond(&self, id: u32, result: Result<Reply, WireError>) {
        if id == 0 {
            return;
        }
        let frame = encode(&Message::Response { id, result }).or_else(|error| {
            let result = Err(WireError::Failed(format!("the reply cannot be sent: {error}")));
            encode(&Message::Response { id, result })
        });
        let Ok(frame) = frame else { return };
        lock(&self.replies).answered(id, &frame);
        if let Some((_, outbox)) = lock(&self.book).outbox(self.id) {
            if let Err(error) = outbox.send_frame(frame) {
                debug!(session = self.id, %error, "reply not sent (kept for a resume)");
            }
        }
    }

    /// An event of an object: numbered, kept for replay, sent if connected (under the book's
    /// lock, so events leave in their numbers' order).
    pub(crate) fn emit(&self, handle: Handle, event: Event) {
        let mut book = lock(&self.book);
        match book.emit(self.id, |seq| encode(&Message::Event { seq, handle, event })) {
            Ok(Some((_, outbox, frame))) => {
                if let Err(error) = outbox.send_frame(frame) {
                    debug!(session = self.id, %error, "event not sent");
                }
            }
            Ok(None) => {}
            Err(error) => warn!(session = self.id, %error, "event dropped: it cannot be a frame"),
        }
    }

    /// A trace event: sent as [`Session::emit`] within the session's trace budget, else
    /// dropped here (before it costs an encoding) and counted; the first drop is logged.
    pub(crate) fn emit_trace(&self, handle: Handle, event: Event) {
        let dropped = {
            let mut budget = lock(&self.traces);
            if budget.allow(Instant::now()) {
                None
            } else {
                Some(budget.dropped())
            }
        };
        match dropped {
            None => self.emit(handle, event),
            Some(1) => {
                warn!(session = self.id, identity = %self.identity, "trace events beyond [serve] trace_events_per_second are dropped")
            }
            Some(_) => {}
        }
    }

    /// Who is asking, for [`grant::check`]: with the grant in force for a target (its router's
    /// own, else the session's). Peers and clients trusted without an auth plugin are not
    /// checked.
    pub(crate) fn caller<'a>(&self, host: &'a Host, router: Option<&RouterGrant>) -> Caller<'a> {
        let checked = self.role == Role::Client && host.has_auth();
        // A session the book no longer holds acts with nothing: an expired, empty grant.
        let ended = || TokenGrant { token: None, scope: Scope { rooms: Vec::new(), expires_unix: Some(0) } };
        let grant = grant::in_force(router, || lock(&self.book).grant(self.id).unwrap_or_else(ended));
        Caller { checked, grant, host }
    }

    /// This session's identity.
    pub(crate) fn identity(&self) -> &str {
        &self.identity
    }

    /// The session acts with a new token (already checked) from now on.
    pub(crate) fn refresh(&self, grant: TokenGrant) {
        lock(&self.book).refresh(self.id, grant);
    }

    /// Drops an object (its real object closes unless something else holds it).
    pub(crate) fn remove_later(self: &Arc<Self>, handle: Handle) {
        let weak = Arc::downgrade(self);
        self.runtime.spawn(async move {
            if let Some(session) = weak.upgrade() {
                let entry = lock(&session.objects).remove(&handle);
                drop(entry);
            }
        });
    }

    /// The workers this caller may use, with their load; new ones get handles.
    fn adverts(&self, host: &Host) -> Vec<CellAdvert> {
        let options = host.options();
        let cells = host.cells();
        // A closed cell's worker is no longer held for the session (its objects went with it).
        let open: std::collections::HashSet<WorkerId> =
            cells.iter().filter(|c| !c.is_closed()).map(|c| c.worker_id()).collect();
        lock(&self.workers).retain(|id, handle| {
            let keep = open.contains(id);
            if !keep {
                lock(&self.objects).remove(handle);
            }
            keep
        });
        let mut adverts = Vec::new();
        for cell in cells {
            if cell.is_closed() || (self.role == Role::Peer && cell.origin() == Origin::Remote) {
                continue;
            }
            let Some(worker) = cell.worker() else { continue };
            let handle = *lock(&self.workers).entry(worker.id()).or_insert_with(|| {
                let handle = self.next_handle();
                lock(&self.objects).insert(handle, dispatch::Entry::worker(Held::Worker(Arc::clone(&worker))));
                handle
            });
            let (node, region) = match cell.origin() {
                Origin::Remote => (cell.node().to_string(), cell.region().to_string()),
                _ => (options.node.clone(), options.region.clone()),
            };
            adverts.push(CellAdvert {
                worker: handle,
                worker_id: worker.id().to_string(),
                node,
                region,
                cpu_time_us: worker.cpu_time().map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
                draining: cell.is_draining(),
            });
        }
        adverts
    }
}

/// Where the media of transports made for callers listens.
#[derive(Debug, Clone)]
pub(crate) enum MediaAddresses {
    /// The host's own: on `listen`, announcing `announced` (a caller chooses only the
    /// protocol), for applications and peers over the network.
    Host {
        /// The IP sockets bind.
        listen: IpAddr,
        /// The IP announced to endpoints.
        announced: IpAddr,
    },
    /// As the caller asked: a worker process serving its parent host, which passes on the
    /// application's own listen infos (the parent is this process's creator, not a stranger).
    AsAsked,
}

/// What every connection handler shares.
pub(crate) struct Shared {
    pub(crate) host: Arc<Host>,
    /// Sessions, connections, queues and quotas.
    pub(crate) limits: ServeLimits,
    /// Where callers' media listens.
    pub(crate) media: MediaAddresses,
    /// Accept clients from any address without an auth plugin.
    insecure_allow_any_client: bool,
    book: Arc<Mutex<Book>>,
    sessions: Mutex<HashMap<SessionId, Arc<Session>>>,
    next_connection: AtomicU64,
    /// Connections between their first packet and their hello.
    handshakes: AtomicUsize,
    /// This host process's incarnation, in every Welcome.
    boot: u64,
    /// The WebRTC servers callers' transports may share.
    pub(crate) webrtc_servers: dispatch::WebRtcServers,
    /// Sessions resumed on a new connection, and events replayed to them.
    resumes: AtomicU64,
    replayed: AtomicU64,
}

/// The endpoint's numbers (metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    /// Sessions held (attached or in their grace period).
    pub sessions: usize,
    /// Objects held for them (workers aside).
    pub held_objects: usize,
    /// Connections in their handshake.
    pub handshakes: usize,
    /// Sessions resumed on a new connection so far.
    pub resumes: u64,
    /// Events replayed to resumed sessions so far.
    pub events_replayed: u64,
    /// Bytes waiting in the sessions' send queues.
    pub queued_bytes: usize,
}

impl Shared {
    /// Where media of transports created for remote callers listens, and what it announces.
    /// Only the protocol is the caller's: the address, the port (from the host's range), socket
    /// flags and buffer sizes are the host's, so a caller cannot squat ports or tune sockets of
    /// a shared machine.
    pub(crate) fn media_listen(&self, info: mediasoup::prelude::ListenInfo) -> mediasoup::prelude::ListenInfo {
        match &self.media {
            MediaAddresses::Host { listen, announced } => {
                crate::config::listen_info(info.protocol, *listen, Some(announced.to_string()))
            }
            MediaAddresses::AsAsked => info,
        }
    }

    /// The IP the host's own sockets (its WebRTC servers) bind.
    pub(crate) fn listen_ip(&self) -> IpAddr {
        match &self.media {
            MediaAddresses::Host { listen, .. } => *listen,
            MediaAddresses::AsAsked => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        }
    }

    fn new(host: Arc<Host>, limits: ServeLimits, media: MediaAddresses, insecure_allow_any_client: bool) -> Self {
        let book = Arc::new(Mutex::new(Book::new(limits.sessions.clone())));
        let webrtc_servers = dispatch::WebRtcServers::new(limits.webrtc_server_port);
        Self {
            host,
            limits,
            media,
            insecure_allow_any_client,
            book,
            sessions: Mutex::default(),
            next_connection: AtomicU64::new(1),
            handshakes: AtomicUsize::new(0),
            boot: boot_id(),
            webrtc_servers,
            resumes: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        }
    }

    /// Forgets every session and server (the endpoint stops): their objects close, outside
    /// the sessions' lock.
    fn forget_everything(&self) {
        lock(&self.book).clear();
        let sessions = std::mem::take(&mut *lock(&self.sessions));
        drop(sessions);
        self.webrtc_servers.clear();
    }

    /// Forgets sessions the book ended (their objects close).
    fn drop_sessions(&self, ended: &[SessionId]) {
        let dropped: Vec<_> = {
            let mut sessions = lock(&self.sessions);
            ended.iter().filter_map(|id| sessions.remove(id)).collect()
        };
        for session in &dropped {
            info!(session = session.id, identity = %session.identity, "cluster session ended: its objects are closed");
        }
    }
}

/// A running cluster endpoint.
pub struct ClusterServer {
    endpoint: quinn::Endpoint,
    listen: SocketAddr,
    shared: Arc<Shared>,
    /// Forgets a closed cell's WebRTC server.
    _cell_closed: event_listener_primitives::HandlerId,
}

impl std::fmt::Debug for ClusterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterServer").field("listen", &self.listen).finish()
    }
}

/// Counts a connection in its handshake until dropped.
struct Handshaking(Arc<Shared>);

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.handshakes.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ClusterServer {
    /// Binds the endpoint and starts accepting (on the current tokio runtime).
    pub fn start(host: Arc<Host>, options: ServeOptions) -> Result<Self, ServeError> {
        let config = options.tls.server_config(&options.limits)?;
        let endpoint = quinn::Endpoint::server(config, options.listen)
            .map_err(|source| ServeError::Bind { addr: options.listen, source })?;
        let media = MediaAddresses::Host { listen: options.listen.ip(), announced: options.announced_ip };
        let shared = Arc::new(Shared::new(host, options.limits, media, options.insecure_allow_any_client));
        tokio::spawn(accept(endpoint.clone(), Arc::downgrade(&shared)));
        tokio::spawn(expire(Arc::downgrade(&shared)));
        let cell_closed = forget_closed_cells_servers(&shared);
        info!(listen = %options.listen, announced = %options.announced_ip, "cluster endpoint up");
        Ok(Self { endpoint, listen: options.listen, shared, _cell_closed: cell_closed })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Sessions currently held (attached or in their grace period).
    pub fn sessions(&self) -> usize {
        lock(&self.shared.book).len()
    }

    /// Objects (routers, transports, producers…) held for every session, workers aside: what
    /// a leak check after the applications left expects at zero.
    pub fn held_objects(&self) -> usize {
        let sessions: Vec<Arc<Session>> = lock(&self.shared.sessions).values().cloned().collect();
        sessions.iter().map(|s| lock(&s.objects).values().filter(|e| !e.is_worker()).count()).sum()
    }

    /// The producers and consumers its sessions hold, with their cells (the cells' RTP
    /// counters: on a serving host, its applications' media).
    pub(crate) fn media_probes(&self) -> Vec<(crate::placement::CellId, crate::internals::media_counters::MediaProbe)> {
        let sessions: Vec<Arc<Session>> = lock(&self.shared.sessions).values().cloned().collect();
        sessions
            .iter()
            .flat_map(|s| lock(&s.objects).values().filter_map(dispatch::Entry::media).collect::<Vec<_>>())
            .collect()
    }

    /// The endpoint's numbers now.
    pub fn stats(&self) -> ServerStats {
        let ids: Vec<SessionId> = lock(&self.shared.sessions).keys().copied().collect();
        let queued_bytes = {
            let book = lock(&self.shared.book);
            ids.iter().filter_map(|id| book.outbox(*id)).map(|(_, outbox)| outbox.queued()).sum()
        };
        ServerStats {
            sessions: self.sessions(),
            held_objects: self.held_objects(),
            handshakes: self.shared.handshakes.load(Ordering::Relaxed),
            resumes: self.shared.resumes.load(Ordering::Relaxed),
            events_replayed: self.shared.replayed.load(Ordering::Relaxed),
            queued_bytes,
        }
    }

    /// Closes every connection and forgets every session.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"host stopping");
        self.shared.forget_everything();
    }
}

/// Forgets a closed cell's WebRTC server when the host closes the cell.
fn forget_closed_cells_servers(shared: &Arc<Shared>) -> event_listener_primitives::HandlerId {
    let weak = Arc::downgrade(shared);
    shared.host.on_cell_closed(move |closed| {
        if let Some(shared) = weak.upgrade() {
            shared.webrtc_servers.cell_closed(closed.worker);
        }
    })
}

/// Serves the one session of this process's parent host over `socket` (a worker process's
/// inherited Unix socket: no TLS or token, the parent made the socket) until it ends; returns
/// why it ended. Media listens where the parent asks (the application's listen infos).
pub async fn serve_parent(host: Arc<Host>, socket: tokio::net::UnixStream, limits: ServeLimits) -> String {
    let shared = Arc::new(Shared::new(host, limits, MediaAddresses::AsAsked, false));
    let _cell_closed = forget_closed_cells_servers(&shared);
    let closer: Arc<dyn link::Closer> = match link::SocketCloser::of(&socket) {
        Ok(closer) => Arc::new(closer),
        Err(error) => return format!("the parent's socket: {error}"),
    };
    let (recv, send) = socket.into_split();
    let outbox = link::spawn_socket_writer(send, closer, shared.limits.outbox_bytes, PROTOCOL_VERSION);
    let mut stream = MessageStream::new(recv);
    stream.limit(MAX_HELLO_FRAME);
    let deadline = tokio::time::Instant::now() + shared.limits.hello_within;
    let hello = match tokio::time::timeout_at(deadline, stream.next()).await {
        Ok(Ok(Some(Message::Hello(hello)))) => hello,
        Ok(Ok(Some(other))) => return format!("expected a hello, got a {}", other.kind()),
        Ok(Ok(None)) => return "the parent closed the socket before its hello".into(),
        Ok(Err(error)) => return error.to_string(),
        Err(_) => return "no hello from the parent in time".into(),
    };
    let claim = Claim {
        role: Role::Peer,
        identity: "parent".into(),
        grant: TokenGrant { token: None, scope: Scope::default() },
        address: IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    };
    let (session, _) = match admit(&shared, claim, &hello, 0, &outbox) {
        Ok(admitted) => admitted,
        Err(reason) => return reason,
    };
    let ended = run_session(&shared, &session, stream, 0, "parent", &outbox).await;
    shared.forget_everything();
    ended.to_string()
}

/// Accepts connections: beyond `retry_above` handshakes at once a new one must prove its
/// address first; each has `hello_within` from its first packet to a complete hello.
async fn accept(endpoint: quinn::Endpoint, shared: Weak<Shared>) {
    while let Some(incoming) = endpoint.accept().await {
        let Some(shared) = shared.upgrade() else { return };
        let limits = &shared.limits;
        let handshakes = shared.handshakes.load(Ordering::Acquire);
        if handshakes >= limits.max_incoming {
            debug!(remote = %incoming.remote_address(), handshakes, "too many handshakes at once: refused");
            incoming.refuse();
            continue;
        }
        if handshakes >= limits.retry_above && !incoming.remote_address_validated() {
            debug!(remote = %incoming.remote_address(), "many handshakes at once: the caller must prove its address (retry)");
            if let Err(error) = incoming.retry() {
                error.into_incoming().ignore();
            }
            continue;
        }
        shared.handshakes.fetch_add(1, Ordering::AcqRel);
        let deadline = tokio::time::Instant::now() + limits.hello_within;
        tokio::spawn(async move {
            let handshaking = Handshaking(Arc::clone(&shared));
            let remote = incoming.remote_address();
            let connection = match incoming.accept() {
                Ok(connecting) => tokio::time::timeout_at(deadline, connecting).await,
                Err(error) => Ok(Err(error)),
            };
            match connection {
                Ok(Ok(connection)) => serve_connection(shared, connection, deadline, handshaking).await,
                Ok(Err(error)) => debug!(%remote, %error, "cluster connection refused during TLS"),
                Err(_) => debug!(%remote, "cluster connection: no handshake in time"),
            }
        });
    }
}

/// Ends detached sessions whose grace ran out (checked 4 times per grace, at least every second).
async fn expire(shared: Weak<Shared>) {
    let period = {
        let Some(shared) = shared.upgrade() else { return };
        (shared.limits.sessions.grace / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
    };
    let mut tick = tokio::time::interval(period);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let ended = lock(&shared.book).expire(Instant::now());
        shared.drop_sessions(&ended);
    }
}

/// Replies a session keeps for requests sent again after a resume (those waiting when a
/// connection dropped: at most the requests in flight plus what was queued), and their bytes.
const REPLIES_KEPT: usize = 256;
const REPLY_BYTES_KEPT: usize = 1 << 20;

/// The longest name a hello may carry, and the longest token.
const MAX_NAME: usize = 255;
const MAX_TOKEN: usize = 16 << 10;
/// The largest frame accepted before a hello is accepted.
const MAX_HELLO_FRAME: usize = 32 << 10;
/// How much of a refusal's reason is logged and sent (it may quote what the caller sent).
const MAX_REASON: usize = 256;

fn refuse(outbox: &Outbox, connection: &quinn::Connection, reason: &str) {
    let cut = reason.char_indices().nth(MAX_REASON).map_or(reason.len(), |(at, _)| at);
    let reason = &reason[..cut];
    warn!(remote = %connection.remote_address(), %reason, "cluster hello refused");
    let _ = outbox.send(&Message::Refused { reason: reason.into() });
    let connection = connection.clone();
    let reason = reason.to_string();
    tokio::spawn(async move {
        // Give the refusal a moment to leave before closing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        connection.close(1u32.into(), reason.as_bytes());
    });
}

/// Who the hello's sender is: a peer by its certificate, a client by its token (or, without an
/// auth plugin, by the name it gives, from loopback or with `--insecure-allow-any-client`).
fn identify(shared: &Shared, connection: &quinn::Connection, hello: &Hello) -> Result<Claim, String> {
    if hello.node.len() > MAX_NAME || hello.token.as_ref().is_some_and(|t| t.len() > MAX_TOKEN) {
        return Err(format!("a hello's name is at most {MAX_NAME} bytes and its token {MAX_TOKEN}"));
    }
    let address = connection.remote_address().ip();
    let identity = match hello.role {
        Role::Peer => {
            tls::peer_name(connection).ok_or("a peer must present a certificate of the cluster CA (mutual TLS)")?
        }
        Role::Client => {
            let host = &shared.host;
            if host.has_auth() {
                let granted = grant::ask(host, hello.token.clone(), Operation::Connect, grant::Target::default())
                    .map_err(|reason| format!("token refused: {reason}"))?;
                let scope = Scope::of(&granted);
                return Ok(Claim {
                    role: hello.role,
                    identity: granted.identity,
                    grant: TokenGrant { token: hello.token.clone(), scope },
                    address,
                });
            } else if trusted_without_plugin(address, shared.insecure_allow_any_client) {
                hello.node.clone()
            } else {
                return Err("no auth plugin is loaded: only loopback clients are accepted \
                            (start the host with --insecure-allow-any-client to accept any)"
                    .into());
            }
        }
    };
    let grant = TokenGrant { token: hello.token.clone(), scope: Scope::default() };
    Ok(Claim { role: hello.role, identity, grant, address })
}

/// Whether a client at `address` is let in without an auth plugin: from loopback only (an
/// IPv4-mapped `::ffff:127.x` source, as a dual-stack `[::]` socket sees local IPv4 callers,
/// is loopback: Linux drops 127/8 packets arriving on other interfaces), or from anywhere with
/// `--insecure-allow-any-client`.
fn trusted_without_plugin(address: std::net::IpAddr, insecure_allow_any_client: bool) -> bool {
    insecure_allow_any_client || address.to_canonical().is_loopback()
}

/// A random incarnation number for this host process (0 only if the OS has no randomness,
/// then the start time: still different from the previous run's).
fn boot_id() -> u64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
    }
}

/// A random session number and secret.
fn fresh() -> Result<(SessionId, Secret), String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for a session: {e}"))?;
    let (id, secret) = bytes.split_at(8);
    let id = u64::from_le_bytes(id.try_into().map_err(|_| "session number")?);
    Ok((id, Secret(secret.try_into().map_err(|_| "session secret")?)))
}

/// Admits a connection: the book decides; this side keeps the objects of new sessions, closes
/// the connections the book hands back and drops sessions that ended.
fn admit(
    shared: &Arc<Shared>,
    claim: Claim,
    hello: &Hello,
    connection: ConnectionId,
    outbox: &Outbox,
) -> Result<(Arc<Session>, Admitted<Outbox>), String> {
    let resume = hello.resume.as_ref().map(|ticket| ResumeAsk {
        session: ticket.session,
        secret: ticket.secret,
        last_event: hello.last_event,
    });
    let (role, identity) = (claim.role, claim.identity.clone());
    let options = shared.host.options();
    let mut book = lock(&shared.book);
    let admitted = loop {
        let fresh = fresh()?;
        match book.admit(claim.clone(), resume.clone(), (connection, outbox.clone()), fresh, Instant::now()) {
            Err(Refusal::Collision) => continue,
            other => break other.map_err(|refusal| refusal.to_string())?,
        }
    };
    // The session's objects are found (or made) before the book lets go: nothing can end it in
    // between.
    let session = {
        let mut sessions = lock(&shared.sessions);
        let session = sessions.entry(admitted.session).or_insert_with(|| {
            Arc::new(Session {
                id: admitted.session,
                role,
                identity,
                book: Arc::clone(&shared.book),
                objects: Mutex::default(),
                workers: Mutex::default(),
                next: AtomicU64::new(1),
                max_objects: shared.limits.objects_per_session,
                replies: Mutex::new(Replies::new(REPLIES_KEPT, REPLY_BYTES_KEPT)),
                traces: Mutex::new(EventBudget::new(shared.limits.trace_events_per_second)),
                runtime: tokio::runtime::Handle::current(),
            })
        });
        Arc::clone(session)
    };
    // The welcome (with the first advert), then the missed events, before any other event
    // (they are sent under the book's lock, which this holds): the caller's numbering stays in
    // order.
    let welcome = Welcome {
        node: options.node.clone(),
        region: options.region.clone(),
        boot: shared.boot,
        session: admitted.session,
        secret: admitted.secret.0,
        resumed: admitted.resumed,
        grace_ms: u64::try_from(shared.limits.sessions.grace.as_millis()).unwrap_or(u64::MAX),
        cells: session.adverts(&shared.host),
    };
    if let Err(error) = outbox.send(&Message::Welcome(welcome)) {
        warn!(session = admitted.session, %error, "welcome not sent");
    }
    if admitted.resumed {
        shared.resumes.fetch_add(1, Ordering::Relaxed);
    }
    shared.replayed.fetch_add(admitted.replay.len() as u64, Ordering::Relaxed);
    for frame in &admitted.replay {
        let _ = outbox.send_frame(frame.clone());
    }
    drop(book);
    shared.drop_sessions(&admitted.ended);
    for (_, connection) in &admitted.close {
        connection.close(b"the session was resumed on another connection, or ended");
    }
    Ok((session, admitted))
}

async fn serve_connection(
    shared: Arc<Shared>,
    connection: quinn::Connection,
    deadline: tokio::time::Instant,
    handshaking: Handshaking,
) {
    let remote = connection.remote_address();
    let Ok(Ok((send, recv))) = tokio::time::timeout_at(deadline, connection.accept_bi()).await else {
        connection.close(1u32.into(), b"no stream opened");
        return;
    };
    let limits = shared.limits.clone();
    let outbox = link::spawn_writer(send, &connection, limits.outbox_bytes);
    let mut stream = MessageStream::new(recv);
    // Until the hello is accepted a frame is at most a hello's size.
    stream.limit(MAX_HELLO_FRAME);
    let hello = match tokio::time::timeout_at(deadline, stream.next()).await {
        Ok(Ok(Some(Message::Hello(hello)))) => hello,
        Ok(Err(error)) => return refuse(&outbox, &connection, &error.to_string()),
        Ok(Ok(Some(other))) => {
            return refuse(&outbox, &connection, &format!("expected a hello, got a {}", other.kind()))
        }
        Ok(Ok(None)) => return refuse(&outbox, &connection, "the stream ended before a hello"),
        Err(_) => return refuse(&outbox, &connection, &format!("no hello within {:?}", limits.hello_within)),
    };
    drop(handshaking);
    let claim = match identify(&shared, &connection, &hello) {
        Ok(claim) => claim,
        Err(reason) => return refuse(&outbox, &connection, &reason),
    };
    let connection_id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
    let (session, admitted) = match admit(&shared, claim, &hello, connection_id, &outbox) {
        Ok(admitted) => admitted,
        Err(reason) => return refuse(&outbox, &connection, &reason),
    };
    info!(%remote, session = session.id, role = ?session.role, identity = %session.identity, resumed = admitted.resumed, "cluster session");
    run_session(&shared, &session, stream, connection_id, &remote.to_string(), &outbox).await;
}

/// Serves an admitted session on one connection until it ends (the caller's bye, the stream's
/// end, a protocol error, or the session moving to another connection), then closes the
/// connection and ends or detaches the session.
async fn run_session(
    shared: &Arc<Shared>,
    session: &Arc<Session>,
    mut stream: MessageStream,
    connection_id: ConnectionId,
    remote: &str,
    outbox: &Outbox,
) -> Ended {
    let limits = shared.limits.clone();
    let adverts = {
        let (session, host) = (Arc::downgrade(session), Arc::downgrade(&shared.host));
        let mut drains = shared.host.drain_changes();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                // Every second, and at once when one of this host's cells starts or stops
                // draining (peers and applications stop placing on it without waiting).
                tokio::select! {
                    _ = tick.tick() => {}
                    changed = drains.changed() => if changed.is_err() { return },
                }
                let (Some(session), Some(host)) = (session.upgrade(), host.upgrade()) else { return };
                session.send(&Message::Cells(session.adverts(&host)));
            }
        })
    };
    // Requests being carried out, polled by this task (no task per request: a short
    // operation's reply leaves without a handoff). At most `requests_in_flight`: beyond, the
    // next request waits unread and the caller's QUIC window slows it down.
    let mut running = FuturesUnordered::new();
    let mut saturated = false;
    stream.limit(MAX_FRAME);
    let reason = loop {
        let full = running.len() >= limits.requests_in_flight;
        if full && !saturated {
            debug!(%remote, session = session.id, limit = limits.requests_in_flight, "requests in flight at the limit: reading paused");
        }
        saturated = full;
        let message = tokio::select! {
            Some(()) = running.next(), if !running.is_empty() => continue,
            message = stream.next(), if !full => message,
            else => break "closing".into(),
        };
        if matches!(message, Ok(Some(Message::Request { .. })))
            && !lock(&shared.book).is_attached(session.id, connection_id)
        {
            break "the session moved to another connection or ended".into();
        }
        match message {
            Ok(Some(Message::Request { id, .. })) if !session.arrive(id) => {}
            Ok(Some(Message::Request { id, op })) if dispatch::is_immediate(&op) => {
                let result = dispatch::handle_immediate(&shared.host, session, op);
                session.respond(id, result);
            }
            Ok(Some(Message::Request { id, op })) => {
                tracing::trace!(id, access = ?op.access(), "request");
                let (shared, session) = (Arc::clone(shared), Arc::clone(session));
                running.push(async move {
                    let result = dispatch::handle(&shared, &session, op).await;
                    session.respond(id, result);
                });
            }
            Ok(Some(Message::Bye { reason })) => break Ended::Bye(reason),
            Ok(Some(other)) => break format!("unexpected {} message", other.kind()).into(),
            Ok(None) => break "closed by the caller".into(),
            Err(error) => break error.to_string().into(),
        }
    };
    adverts.abort();
    // Requests under way finish (their replies are kept for a resume): an operation is never
    // cut in half by its connection's end.
    if !running.is_empty() {
        tokio::spawn(async move { while running.next().await.is_some() {} });
    }
    outbox.close(reason.to_string().as_bytes());
    match &reason {
        Ended::Bye(reason) => {
            debug!(%remote, session = session.id, %reason, "cluster caller said bye: its session ends");
            // Only from the connection the session is attached to (a displaced one ends nothing).
            let ended = lock(&shared.book).end_from(session.id, connection_id);
            if ended {
                shared.drop_sessions(&[session.id]);
            }
        }
        Ended::Dropped(reason) => {
            let detached = lock(&shared.book).detach(session.id, connection_id, Instant::now());
            debug!(%remote, session = session.id, %reason, detached, "cluster connection ended");
        }
    }
    reason
}

/// How a connection ended.
enum Ended {
    /// The caller said goodbye: its session ends at once.
    Bye(String),
    /// The connection dropped: the session waits for a resume.
    Dropped(String),
}

impl From<String> for Ended {
    fn from(reason: String) -> Self {
        Ended::Dropped(reason)
    }
}

impl From<&str> for Ended {
    fn from(reason: &str) -> Self {
        Ended::Dropped(reason.to_string())
    }
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Bye(reason) => write!(f, "bye: {reason}"),
            Ended::Dropped(reason) => f.write_str(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::trusted_without_plugin;

    #[test]
    fn without_an_auth_plugin_only_loopback_clients_are_trusted() {
        let ip = |s: &str| s.parse().expect("ip");
        for local in ["127.0.0.1", "127.0.0.42", "::1", "::ffff:127.0.0.1"] {
            assert!(trusted_without_plugin(ip(local), false), "{local}");
        }
        for remote in ["10.0.0.1", "192.0.2.7", "2001:db8::1", "::ffff:10.0.0.1", "0.0.0.0"] {
            assert!(!trusted_without_plugin(ip(remote), false), "{remote}");
            assert!(trusted_without_plugin(ip(remote), true), "{remote} with --insecure-allow-any-client");
        }
    }
}
