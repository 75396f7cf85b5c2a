//! The serving side of the cluster: a QUIC endpoint that admits applications (token through the
//! auth hook) and peer hosts (mutual TLS), gives each a session whose objects it creates on this
//! host's workers, forwards their events, and advertises the workers and their load every
//! second. A session outlives a dropped connection for a grace period: the caller reconnects,
//! resumes it and receives the events it missed.

use super::dispatch::{self, Held};
use super::link::{self, MessageStream, Outbox};
use super::proto::*;
use super::tls::{self, NodeTls, TlsError};
use crate::cell::Origin;
use crate::host::Host;
use crate::internals::object::lock;
use mafalda_plugin_sdk::types::{AuthRequest, Operation};
use mediasoup::worker::WorkerId;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
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
    /// How long a session's objects survive a dropped connection.
    pub session_grace: Duration,
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

/// Bytes of recent event frames a session keeps for replay after a dropped link.
const REPLAY_BYTES: usize = 8 << 20;

struct Out {
    outbox: Option<Outbox>,
    /// Recent event frames by sequence number, oldest first (bounded by [`REPLAY_BYTES`]):
    /// replayed from the caller's last seen event when it resumes, so events sent into a
    /// connection that was already dead are not lost either.
    recent: VecDeque<(u64, Vec<u8>)>,
    recent_bytes: usize,
    next_seq: u64,
    /// Increments on every attach: an expiry timer only ends the detachment it was set for.
    generation: u64,
}

impl Out {
    /// Whether every event after `last_seen` is still kept.
    fn can_replay_from(&self, last_seen: u64) -> bool {
        self.recent.front().is_none_or(|(first, _)| *first <= last_seen + 1)
    }
}

/// One caller's objects, events and identity.
pub(crate) struct Session {
    id: u64,
    role: Role,
    identity: String,
    token: Option<String>,
    pub(crate) objects: Mutex<HashMap<Handle, dispatch::Entry>>,
    workers: Mutex<HashMap<WorkerId, Handle>>,
    next: AtomicU64,
    out: Mutex<Out>,
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
        let Ok(frame) = encode(message) else { return };
        let mut out = lock(&self.out);
        if out.outbox.as_ref().is_some_and(|outbox| outbox.send(frame).is_err()) {
            out.outbox = None;
        }
    }

    /// An event of an object: numbered, kept for replay, sent if connected.
    pub(crate) fn emit(&self, handle: Handle, event: Event) {
        let mut out = lock(&self.out);
        out.next_seq += 1;
        let seq = out.next_seq;
        let Ok(frame) = encode(&Message::Event { seq, handle, event }) else { return };
        out.recent_bytes += frame.len();
        out.recent.push_back((seq, frame.clone()));
        while out.recent_bytes > REPLAY_BYTES {
            match out.recent.pop_front() {
                Some((_, old)) => out.recent_bytes -= old.len(),
                None => break,
            }
        }
        if out.outbox.as_ref().is_some_and(|outbox| outbox.send(frame).is_err()) {
            out.outbox = None;
        }
    }

    /// Connects the caller, replaying the events after `last_seen`.
    fn attach(&self, outbox: Outbox, last_seen: u64) -> u64 {
        let mut out = lock(&self.out);
        for (_, frame) in out.recent.iter().filter(|(seq, _)| *seq > last_seen) {
            let _ = outbox.send(frame.clone());
        }
        out.outbox = Some(outbox);
        out.generation += 1;
        out.generation
    }

    fn detach(&self) -> u64 {
        let mut out = lock(&self.out);
        out.outbox = None;
        out.generation
    }

    /// Checks an operation with the auth hook (clients only: peers are the cluster's own).
    pub(crate) fn authorize(
        &self,
        host: &Host,
        operation: Operation,
        router: Option<String>,
        room: Option<String>,
    ) -> Result<(), WireError> {
        if self.role == Role::Peer || !host.has_auth() {
            return Ok(());
        }
        let request = AuthRequest {
            token: self.token.clone(),
            peer: None,
            operation,
            router,
            room,
            now_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        host.authorize(&request).map(|_| ()).map_err(|denial| WireError::Denied(denial.reason))
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
        let mut adverts = Vec::new();
        for cell in host.cells() {
            if cell.is_closed() || (self.role == Role::Peer && cell.origin() == Origin::Remote) {
                continue;
            }
            let Some(worker) = cell.worker() else { continue };
            let handle = *lock(&self.workers).entry(worker.id()).or_insert_with(|| {
                let handle = self.next_handle();
                lock(&self.objects).insert(handle, dispatch::Entry::new(Held::Worker(Arc::clone(&worker)), None));
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
            });
        }
        adverts
    }
}

/// What every connection handler shares.
pub(crate) struct Shared {
    pub(crate) host: Arc<Host>,
    pub(crate) options: ServeOptions,
    sessions: Mutex<HashMap<u64, Arc<Session>>>,
    next_session: AtomicU64,
}

impl Shared {
    /// Where media of transports created for remote callers listens, and what it announces.
    pub(crate) fn media_listen(&self, mut info: mediasoup::prelude::ListenInfo) -> mediasoup::prelude::ListenInfo {
        info.ip = self.options.listen.ip();
        info.announced_address = Some(self.options.announced_ip.to_string());
        info
    }
}

/// A running cluster endpoint.
pub struct ClusterServer {
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ClusterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterServer").field("listen", &self.shared.options.listen).finish()
    }
}

impl ClusterServer {
    /// Binds the endpoint and starts accepting (on the current tokio runtime).
    pub fn start(host: Arc<Host>, options: ServeOptions) -> Result<Self, ServeError> {
        let config = options.tls.server_config()?;
        let endpoint = quinn::Endpoint::server(config, options.listen)
            .map_err(|source| ServeError::Bind { addr: options.listen, source })?;
        let shared = Arc::new(Shared { host, options, sessions: Mutex::default(), next_session: AtomicU64::new(1) });
        let accepting = endpoint.clone();
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while let Some(incoming) = accepting.accept().await {
                let Some(shared) = weak.upgrade() else { return };
                tokio::spawn(async move {
                    let remote = incoming.remote_address();
                    match incoming.await {
                        Ok(connection) => serve_connection(shared, connection).await,
                        Err(error) => info!(%remote, %error, "cluster connection refused during TLS"),
                    }
                });
            }
        });
        info!(listen = %shared.options.listen, announced = %shared.options.announced_ip, "cluster endpoint up");
        Ok(Self { endpoint, shared })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Sessions currently held (attached or in their grace period).
    pub fn sessions(&self) -> usize {
        lock(&self.shared.sessions).len()
    }

    /// Closes every connection and forgets every session.
    pub fn close(&self) {
        self.endpoint.close(0u32.into(), b"host stopping");
        lock(&self.shared.sessions).clear();
    }
}

fn refuse(outbox: &Outbox, connection: &quinn::Connection, reason: &str) {
    warn!(remote = %connection.remote_address(), %reason, "cluster hello refused");
    link::send(outbox, &Message::Refused { reason: reason.into() });
    let connection = connection.clone();
    let reason = reason.to_string();
    tokio::spawn(async move {
        // Give the refusal a moment to leave before closing.
        tokio::time::sleep(Duration::from_millis(200)).await;
        connection.close(1u32.into(), reason.as_bytes());
    });
}

/// Checks a hello; the session it opens or resumes.
fn admit(shared: &Arc<Shared>, connection: &quinn::Connection, hello: Hello) -> Result<(Arc<Session>, bool), String> {
    check_version(hello.version).map_err(|e| e.to_string())?;
    let identity = match hello.role {
        Role::Peer => {
            tls::peer_name(connection).ok_or("a peer must present a certificate of the cluster CA (mutual TLS)")?
        }
        Role::Client => {
            let host = &shared.host;
            if host.has_auth() {
                let request = AuthRequest {
                    token: hello.token.clone(),
                    peer: None,
                    operation: Operation::Connect,
                    router: None,
                    room: None,
                    now_unix: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                };
                let grant = host.authorize(&request).map_err(|d| format!("token refused: {}", d.reason))?;
                grant.identity
            } else if connection.remote_address().ip().is_loopback() || shared.options.insecure_allow_any_client {
                hello.node.clone()
            } else {
                return Err("no auth plugin is loaded: only loopback clients are accepted \
                            (start the host with --insecure-allow-any-client to accept any)"
                    .into());
            }
        }
    };
    if let Some(id) = hello.resume {
        let existing = lock(&shared.sessions).get(&id).cloned();
        let resumable = |s: &Arc<Session>| {
            s.role == hello.role && s.identity == identity && lock(&s.out).can_replay_from(hello.last_event)
        };
        if let Some(session) = existing.filter(resumable) {
            return Ok((session, true));
        }
    }
    let id = shared.next_session.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(Session {
        id,
        role: hello.role,
        identity,
        token: hello.token,
        objects: Mutex::default(),
        workers: Mutex::default(),
        next: AtomicU64::new(1),
        out: Mutex::new(Out { outbox: None, recent: VecDeque::new(), recent_bytes: 0, next_seq: 0, generation: 0 }),
        runtime: tokio::runtime::Handle::current(),
    });
    lock(&shared.sessions).insert(id, Arc::clone(&session));
    Ok((session, false))
}

async fn serve_connection(shared: Arc<Shared>, connection: quinn::Connection) {
    let remote = connection.remote_address();
    let Ok(Ok((send, recv))) = tokio::time::timeout(Duration::from_secs(5), connection.accept_bi()).await else {
        connection.close(1u32.into(), b"no stream opened");
        return;
    };
    let outbox = link::spawn_writer(send);
    let mut stream = MessageStream::new(recv);
    let hello = match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Ok(Some(Message::Hello(hello)))) => hello,
        Ok(Err(error)) => return refuse(&outbox, &connection, &error.to_string()),
        Ok(Ok(other)) => return refuse(&outbox, &connection, &format!("expected a hello, got {other:?}")),
        Err(_) => return refuse(&outbox, &connection, "no hello within 5 s"),
    };
    let last_event = if hello.resume.is_some() { hello.last_event } else { 0 };
    let (session, resumed) = match admit(&shared, &connection, hello) {
        Ok(admitted) => admitted,
        Err(reason) => return refuse(&outbox, &connection, &reason),
    };
    let options = shared.host.options();
    let welcome = Welcome {
        version: PROTOCOL_VERSION,
        node: options.node.clone(),
        region: options.region.clone(),
        session: session.id,
        resumed,
    };
    link::send(&outbox, &Message::Welcome(welcome));
    info!(%remote, session = session.id, role = ?session.role, identity = %session.identity, resumed, "cluster session");
    session.send(&Message::Cells(session.adverts(&shared.host)));
    session.attach(outbox, if resumed { last_event } else { 0 });
    let adverts = {
        let (session, host) = (Arc::downgrade(&session), Arc::downgrade(&shared.host));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                let (Some(session), Some(host)) = (session.upgrade(), host.upgrade()) else { return };
                session.send(&Message::Cells(session.adverts(&host)));
            }
        })
    };
    let reason = loop {
        match stream.next().await {
            Ok(Some(Message::Request { id, op })) if dispatch::is_immediate(&op) => {
                tracing::trace!(id, ?op, "request");
                let result = dispatch::handle_immediate(&session, op);
                if id != 0 {
                    session.send(&Message::Response { id, result });
                }
            }
            Ok(Some(Message::Request { id, op })) => {
                tracing::trace!(id, op = op_name(&op), "request");
                let (shared, session) = (Arc::clone(&shared), Arc::clone(&session));
                tokio::spawn(async move {
                    let result = dispatch::handle(&shared, &session, op).await;
                    if id != 0 {
                        session.send(&Message::Response { id, result });
                    }
                });
            }
            Ok(Some(Message::Bye { reason })) => break format!("bye: {reason}"),
            Ok(Some(other)) => break format!("unexpected message {other:?}"),
            Ok(None) => break "closed by the caller".into(),
            Err(error) => break error.to_string(),
        }
    };
    adverts.abort();
    let generation = session.detach();
    debug!(%remote, session = session.id, %reason, "cluster connection ended");
    connection.close(2u32.into(), reason.as_bytes());
    let grace = shared.options.session_grace;
    let (weak_shared, weak_session): (Weak<Shared>, Weak<Session>) =
        (Arc::downgrade(&shared), Arc::downgrade(&session));
    drop(session);
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        let (Some(shared), Some(session)) = (weak_shared.upgrade(), weak_session.upgrade()) else { return };
        let still_detached = {
            let out = lock(&session.out);
            out.outbox.is_none() && out.generation == generation
        };
        if still_detached {
            info!(session = session.id, "cluster session expired: its objects are closed");
            lock(&shared.sessions).remove(&session.id);
        }
    });
}

/// The operation's name, for traces.
fn op_name(op: &Op) -> String {
    let text = format!("{op:?}");
    text.split([' ', '{', '(']).next().unwrap_or_default().to_string()
}
