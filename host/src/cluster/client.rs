//! The calling side of a link to one host (an application's, or a host's to its peers): it
//! connects, says hello, keeps the link up (reconnecting with backoff and resuming its session
//! so objects survive a dropped link), matches responses to requests and routes events to the
//! remote objects they name.

use super::limits::QuicLimits;
use super::link::{self, MessageStream, Outbox};
use super::proto::{
    encode, CellAdvert, Event, Handle, Hello, Message, Op, Reply, Role, Welcome, WireError, PROTOCOL_VERSION,
};
use super::session::{LinkSession, Routes, Welcomed};
use super::tls;
use crate::internals::object::lock;
use mediasoup::prelude::RtpParameters;
use mediasoup::producer::ProducerId;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch, Notify};
use tracing::{debug, info, warn};

/// How long a request may wait for its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// Bytes of requests a link queues for a host that does not read (beyond, the link drops).
pub const OUTBOX_BYTES: usize = 8 << 20;
/// The same for a worker process of this host, each way (its own worker: a burst of `send`
/// of direct producers, or of events towards a slow handler, must not cost the worker;
/// beyond, the child is counted dead).
pub const SOCKET_OUTBOX_BYTES: usize = 64 << 20;
/// How long a link that shuts down waits for the host to close after its goodbye.
pub const BYE_WAIT: Duration = Duration::from_millis(500);
/// How long an unreachable host has before it counts as lost until its first welcome gives its
/// own grace (a host keeps a detached session this long by default).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How often a host advertises its workers: a link that hears nothing for
/// [`QuicLimits::stale_after`] takes the host's workers out of placement.
pub const ADVERT_EVERY: Duration = Duration::from_secs(1);

/// Where a link goes and who it says it is.
#[derive(Clone)]
pub struct LinkTarget {
    /// `host:port` as configured.
    pub address: String,
    /// Client or peer.
    pub role: Role,
    /// This side's name.
    pub node: String,
    /// The client's token.
    pub token: Option<String>,
    /// How the host is reached.
    pub transport: LinkTransport,
    /// The node the host must prove with its certificate (a registry record's node), if any.
    pub expect_node: Option<String>,
}

/// How a link reaches its host.
#[derive(Clone)]
pub enum LinkTransport {
    /// Over QUIC, reconnecting and resuming after a drop.
    Quic {
        /// TLS (verifying the host, and for peers presenting this node's certificate).
        config: quinn::ClientConfig,
        /// Keep-alive, idle timeout and silence before leaving placement.
        quic: QuicLimits,
        /// The endpoint connections leave from.
        endpoint: quinn::Endpoint,
    },
    /// A worker process's end of a socketpair: one connection, never redialed. When it ends
    /// the process is gone (or no longer answers) and its objects are lost at once.
    Socket {
        /// The socket, taken by the first (only) connection.
        socket: Arc<Mutex<Option<tokio::net::UnixStream>>>,
        /// Silence after which the process's worker leaves placement.
        silence: Duration,
    },
}

impl LinkTransport {
    fn stale_after(&self) -> Duration {
        match self {
            LinkTransport::Quic { quic, .. } => quic.stale_after(),
            LinkTransport::Socket { silence, .. } => *silence,
        }
    }
}

/// How long a QUIC handshake may take (a host under load, a paused VM: it is tried again).
pub const HANDSHAKE_WITHIN: Duration = Duration::from_secs(5);

/// How long a worker process has to answer its parent's hello (it starts its worker first).
const SOCKET_WELCOME_WITHIN: Duration = Duration::from_secs(10);

/// A link's connection: how to close it, and the QUIC connection when it is one.
struct Connected {
    closer: Arc<dyn link::Closer>,
    quic: Option<quinn::Connection>,
}

impl std::fmt::Debug for LinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTarget").field("address", &self.address).field("role", &self.role).finish()
    }
}

/// The state of a link as its users see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet.
    Connecting,
    /// Connected: the host's node name.
    Up(String),
    /// The host refused the hello (bad token, version…): why.
    Refused(String),
    /// The host could not be reached (or the link dropped): why.
    Down(String),
}

/// What a link tells the side using it (the host's cluster membership).
pub trait LinkObserver: Send + Sync {
    /// The host's workers and their load.
    fn cells(&self, link: &Arc<HostLink>, adverts: &[CellAdvert]);
    /// The link dropped (the host's cells should leave placement until it returns).
    fn down(&self, link: &Arc<HostLink>);
    /// The link is back with its session (nothing was lost).
    fn up(&self, link: &Arc<HostLink>);
    /// The host is lost (down too long, or it restarted): its objects are gone.
    fn lost(&self, link: &Arc<HostLink>);
}

/// Something that receives the events of one handle.
pub trait EventSink: Send + Sync {
    /// An event for this object.
    fn event(&self, event: &Event);
}

/// What waits for a reply (none for a message that must arrive but whose reply nobody reads,
/// such as closing a handle).
type Waiter = Option<oneshot::Sender<Result<Reply, WireError>>>;

/// A link to one host.
pub struct HostLink {
    target: LinkTarget,
    runtime: tokio::runtime::Handle,
    writer: Mutex<Option<Outbox>>,
    /// The session, sans-IO: what to resume, requests waiting, events seen, loss.
    session: Mutex<LinkSession<Waiter>>,
    /// The token of the next hello (the target's, until refreshed).
    token: Mutex<Option<String>>,
    node: Mutex<Option<(String, String)>>,
    objects: Mutex<Routes<Weak<dyn EventSink>, Event>>,
    /// Consumable RTP parameters of the producers made through this link, until they close
    /// (`can_consume` is answered here, synchronously, as mediasoup does).
    producers: Mutex<HashMap<ProducerId, RtpParameters>>,
    observer: Mutex<Option<Weak<dyn LinkObserver>>>,
    state: watch::Sender<LinkState>,
    stop: Notify,
    stopped: AtomicBool,
    /// The QUIC connection while up (its path stats give the RTT).
    quic: Mutex<Option<quinn::Connection>>,
    /// Times the link came up resuming its session, and times it went down.
    resumes: AtomicU64,
    drops: AtomicU64,
}

/// One link as the metrics and the status page show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LinkStats {
    /// The address dialled.
    pub address: String,
    /// The host's node name, once known.
    pub node: Option<String>,
    /// `connecting`, `up`, `refused` or `down`.
    pub state: &'static str,
    /// The QUIC path's smoothed round-trip time while up, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Bytes waiting in the link's send queue.
    pub queued_bytes: usize,
    /// Times the link came back up with its session resumed.
    pub resumes: u64,
    /// Times the link dropped.
    pub drops: u64,
}

impl std::fmt::Debug for HostLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLink").field("target", &self.target.address).field("state", &*self.state.borrow()).finish()
    }
}

impl HostLink {
    /// Starts a link on `runtime` (it connects in the background; see [`HostLink::state`]).
    pub fn start(target: LinkTarget, runtime: tokio::runtime::Handle, observer: Weak<dyn LinkObserver>) -> Arc<Self> {
        let token = Mutex::new(target.token.clone());
        let session = LinkSession::new(REQUEST_TIMEOUT, DEFAULT_GRACE, target.transport.stale_after());
        let link = Arc::new(Self {
            target,
            runtime: runtime.clone(),
            writer: Mutex::default(),
            session: Mutex::new(session),
            token,
            node: Mutex::default(),
            objects: Mutex::new(Routes::new()),
            producers: Mutex::default(),
            observer: Mutex::new(Some(observer)),
            state: watch::channel(LinkState::Connecting).0,
            stop: Notify::new(),
            stopped: AtomicBool::new(false),
            quic: Mutex::default(),
            resumes: AtomicU64::new(0),
            drops: AtomicU64::new(0),
        });
        runtime.spawn(Arc::clone(&link).run());
        runtime.spawn(Self::expire_late(Arc::downgrade(&link)));
        link
    }

    /// Whether this is the link to a worker process of this host (over its socket).
    pub fn is_worker_process(&self) -> bool {
        matches!(self.target.transport, LinkTransport::Socket { .. })
    }

    /// The configured address.
    pub fn address(&self) -> &str {
        &self.target.address
    }

    /// The node the host at the address must prove (a registry record's node), if any.
    pub fn expected_node(&self) -> Option<&str> {
        self.target.expect_node.as_deref()
    }

    /// The host's node name and region (once connected).
    pub fn node(&self) -> Option<(String, String)> {
        lock(&self.node).clone()
    }

    /// Watches the link's state.
    pub fn state(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// The link's numbers now.
    pub fn stats(&self) -> LinkStats {
        let state = match &*self.state.borrow() {
            LinkState::Connecting => "connecting",
            LinkState::Up(_) => "up",
            LinkState::Refused(_) => "refused",
            LinkState::Down(_) => "down",
        };
        LinkStats {
            address: self.target.address.clone(),
            node: self.node().map(|(node, _)| node),
            state,
            rtt_ms: lock(&self.quic).as_ref().map(|c| c.rtt().as_secs_f64() * 1e3),
            queued_bytes: lock(&self.writer).as_ref().map_or(0, Outbox::queued),
            resumes: self.resumes.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
        }
    }

    /// Stops the link (its connection is closed; objects of the session are released by the
    /// host after its grace period).
    pub fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stop.notify_waiters();
        self.stop.notify_one();
    }

    /// Presents a new token: to the host now (the session acts with it at once), and in every
    /// later hello.
    pub async fn refresh_token(self: &Arc<Self>, token: String) -> Result<(), WireError> {
        self.call(Op::Refresh { router: None, token: token.clone() }).await?;
        *lock(&self.token) = Some(token);
        Ok(())
    }

    /// Sends an operation and waits for its reply. While the link is down (and the host not
    /// yet counted lost) the request waits, and is sent after the session is resumed; the host
    /// carries it out once, however often it was sent.
    pub async fn call(self: &Arc<Self>, op: Op) -> Result<Reply, WireError> {
        let (tx, rx) = oneshot::channel();
        self.submit(op, Some(tx))?;
        rx.await.unwrap_or(Err(WireError::LinkDown))
    }

    /// Sends an operation whose reply nobody reads but which must arrive (closing a handle):
    /// across a dropped link it is sent again after the resume, and carried out once.
    pub fn send_reliably(&self, op: Op) {
        if let Err(error) = self.submit(op, None) {
            debug!(host = %self.target.address, %error, "not sent: the session is gone");
        }
    }

    /// Numbers `op`, keeps it until answered and sends it if the link is up.
    fn submit(&self, op: Op, waiter: Waiter) -> Result<(), WireError> {
        // The session's lock is held while the writer is read: a resume sends the waiting
        // requests and installs the new writer under the same lock, so a request is either
        // among those sent again or sent on the new writer, never neither.
        let mut session = lock(&self.session);
        let id = session.next_id();
        let frame = encode(&Message::Request { id, op }).map_err(|e| WireError::BadRequest(e.to_string()))?;
        let outbox = lock(&self.writer).clone();
        match outbox {
            Some(outbox) => {
                session.track(id, waiter, frame.clone(), Instant::now());
                // A failed send means the connection is going: the request waits for the resume.
                let _ = outbox.send_frame(frame);
                Ok(())
            }
            None if session.may_wait() => {
                session.track(id, waiter, frame, Instant::now());
                Ok(())
            }
            None => Err(WireError::LinkDown),
        }
    }

    /// Sends an operation whose loss does not matter (media injected by the application): only
    /// while the link is up, never kept.
    pub fn notify(&self, op: Op) {
        if let Some(outbox) = lock(&self.writer).clone() {
            let _ = outbox.send(&Message::Request { id: 0, op });
        }
    }

    /// Routes the events of `handle` to `sink` (until the sink is dropped); events that arrived
    /// before it (the host raised them before its `Created` reply) are delivered first, in order.
    pub fn register(&self, handle: Handle, sink: Weak<dyn EventSink>) {
        loop {
            let held = lock(&self.objects).register(handle, Weak::clone(&sink));
            match held {
                Ok(()) => return,
                Err(events) => {
                    if let Some(sink) = sink.upgrade() {
                        for event in &events {
                            sink.event(event);
                        }
                    }
                }
            }
        }
    }

    /// Keeps a producer's consumable parameters (made through this link) until it closes.
    pub(crate) fn remember_producer(&self, id: ProducerId, parameters: RtpParameters) {
        lock(&self.producers).insert(id, parameters);
    }

    /// Forgets a closed producer.
    pub(crate) fn forget_producer(&self, id: &ProducerId) {
        lock(&self.producers).remove(id);
    }

    /// The consumable parameters of a live producer made through this link.
    pub(crate) fn consumable(&self, id: &ProducerId) -> Option<RtpParameters> {
        lock(&self.producers).get(id).cloned()
    }

    /// Stops routing events of `handle`.
    pub fn forget(&self, handle: Handle) {
        lock(&self.objects).forget(handle);
    }

    fn observer(&self) -> Option<Arc<dyn LinkObserver>> {
        lock(&self.observer).as_ref().and_then(Weak::upgrade)
    }

    async fn connect_once(&self) -> Result<(Connected, Outbox, MessageStream, Welcome), LinkState> {
        match &self.target.transport {
            LinkTransport::Quic { config, quic, endpoint } => self.connect_quic(config, quic, endpoint).await,
            LinkTransport::Socket { socket, .. } => self.connect_socket(socket).await,
        }
    }

    async fn connect_quic(
        &self,
        config: &quinn::ClientConfig,
        quic: &QuicLimits,
        endpoint: &quinn::Endpoint,
    ) -> Result<(Connected, Outbox, MessageStream, Welcome), LinkState> {
        let down = |e: String| LinkState::Down(e);
        let address = &self.target.address;
        let addr: SocketAddr = tokio::net::lookup_host(address)
            .await
            .map_err(|e| down(format!("{address}: {e}")))?
            .next()
            .ok_or_else(|| down(format!("{address}: no address")))?;
        let server_name = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
        let server_name = server_name.trim_start_matches('[').trim_end_matches(']');
        let mut config = config.clone();
        config.transport_config(tls::transport(quic, 0));
        let connecting =
            endpoint.connect_with(config, addr, server_name).map_err(|e| down(format!("{address}: {e}")))?;
        // A first contact has `HANDSHAKE_WITHIN` (a host that does not answer is not waited
        // for as long as a live link's idle timeout).
        let connection = tokio::time::timeout(HANDSHAKE_WITHIN, connecting)
            .await
            .map_err(|_| down(format!("{address}: no QUIC handshake within {HANDSHAKE_WITHIN:?}")))?
            .map_err(|e| down(format!("{address}: {e}")))?;
        // A host is the node its certificate names, whatever it calls itself; a link opened for
        // a registry record's node goes no further (no hello, no token) with another node.
        let certified = tls::peer_name(&connection);
        if let Some(expected) = self.target.expect_node.as_deref().filter(|n| Some(*n) != certified.as_deref()) {
            connection.close(0u32.into(), b"not the node listed");
            return Err(LinkState::Refused(format!(
                "{address} is listed as node '{expected}' but its certificate names {certified:?}: not used"
            )));
        }
        let (send, recv) = connection.open_bi().await.map_err(|e| down(format!("{address}: {e}")))?;
        let outbox = link::spawn_writer(send, &connection, OUTBOX_BYTES);
        self.say_hello(&outbox);
        let mut stream = MessageStream::new(recv);
        let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .map_err(|_| down(format!("{address}: no answer to hello")))?;
        if let Err(error) = &first {
            let reason = connection.close_reason().map_or_else(|| error.to_string(), |r| r.to_string());
            return Err(LinkState::Refused(format!("{address} refused: {reason}")));
        }
        let welcome = self.welcome_of(first)?;
        if certified.as_deref() != Some(welcome.node.as_str()) {
            return Err(LinkState::Refused(format!(
                "{address} calls itself '{}' but its certificate names {:?}",
                welcome.node, certified
            )));
        }
        *lock(&self.node) = Some((welcome.node.clone(), welcome.region.clone()));
        let connected = Connected { closer: Arc::new(connection.clone()), quic: Some(connection) };
        Ok((connected, outbox, stream, welcome))
    }

    async fn connect_socket(
        &self,
        socket: &Mutex<Option<tokio::net::UnixStream>>,
    ) -> Result<(Connected, Outbox, MessageStream, Welcome), LinkState> {
        let address = &self.target.address;
        let socket = lock(socket).take().ok_or_else(|| LinkState::Down(format!("{address}: the socket is closed")))?;
        let closer: Arc<dyn link::Closer> =
            Arc::new(link::SocketCloser::of(&socket).map_err(|e| LinkState::Down(format!("{address}: {e}")))?);
        let (recv, send) = socket.into_split();
        let outbox = link::spawn_socket_writer(send, Arc::clone(&closer), SOCKET_OUTBOX_BYTES, PROTOCOL_VERSION);
        self.say_hello(&outbox);
        let mut stream = MessageStream::new(recv);
        let first = tokio::time::timeout(SOCKET_WELCOME_WITHIN, stream.next())
            .await
            .map_err(|_| LinkState::Down(format!("{address}: no answer to hello in {SOCKET_WELCOME_WITHIN:?}")))?;
        let welcome = self.welcome_of(first)?;
        *lock(&self.node) = Some((welcome.node.clone(), welcome.region.clone()));
        Ok((Connected { closer, quic: None }, outbox, stream, welcome))
    }

    /// The workers of a host's advert this link offers placement. A link opened for a registry
    /// record (`expect_node`) offers only the workers of the node it proved: a host also
    /// advertises its peers' workers, and in a fleet every host a room uses is linked directly,
    /// so a worker is reached through its own host's link (a host that dies takes only its own
    /// rooms), and no host offers workers under another node's name.
    fn own_adverts<'a>(&self, adverts: &'a [CellAdvert]) -> std::borrow::Cow<'a, [CellAdvert]> {
        match self.target.expect_node.as_deref() {
            Some(node) => adverts.iter().filter(|a| a.node == node).cloned().collect(),
            None => std::borrow::Cow::Borrowed(adverts),
        }
    }

    /// Sends this side's hello (resuming the session if there is one).
    fn say_hello(&self, outbox: &Outbox) {
        let (resume, last_event) = lock(&self.session).resume();
        let hello = Hello {
            role: self.target.role,
            node: self.target.node.clone(),
            token: lock(&self.token).clone(),
            resume,
            last_event,
        };
        let _ = outbox.send(&Message::Hello(hello));
    }

    /// The welcome in the host's first message, or why there is none.
    fn welcome_of(&self, first: Result<Option<Message>, link::LinkError>) -> Result<Welcome, LinkState> {
        let address = &self.target.address;
        match first {
            Ok(Some(Message::Welcome(welcome))) => Ok(welcome),
            Ok(Some(Message::Refused { reason })) => Err(LinkState::Refused(format!("{address} refused: {reason}"))),
            Ok(Some(other)) => Err(LinkState::Refused(format!("{address}: unexpected answer ({})", other.kind()))),
            Ok(None) => Err(LinkState::Refused(format!("{address}: the host closed the stream"))),
            Err(error) => Err(LinkState::Refused(format!("{address} refused: {error}"))),
        }
    }

    /// Takes a welcome: what it means for the session's objects and waiting requests, then the
    /// new connection's writer (under the session's lock, see [`HostLink::submit`]).
    fn welcomed(self: &Arc<Self>, welcome: &Welcome, outbox: Outbox) {
        let mut session = lock(&self.session);
        let lost = match session.welcomed(welcome, Instant::now()) {
            Welcomed::Resumed { resend } => {
                if !resend.is_empty() {
                    debug!(host = %self.target.address, requests = resend.len(), "requests sent again after the resume");
                }
                for frame in resend {
                    let _ = outbox.send_frame(frame);
                }
                None
            }
            Welcomed::Fresh { lost, restarted, failed } => {
                for waiter in failed.into_iter().flatten() {
                    let _ = waiter.send(Err(WireError::LinkDown));
                }
                let why = if restarted { "the host restarted" } else { "the host no longer has the session" };
                lost.then_some(why)
            }
        };
        *lock(&self.writer) = Some(outbox);
        drop(session);
        if let Some(why) = lost {
            self.lose_everything(why);
        }
    }

    async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopped.load(Ordering::Acquire) {
            match self.connect_once().await {
                Ok((connection, outbox, stream, welcome)) => {
                    let once = connection.quic.is_none();
                    backoff = Duration::from_millis(100);
                    // What the welcome means for the old session's objects first (a restarted
                    // host's loss), then the workers it offers now.
                    self.welcomed(&welcome, outbox);
                    if let Some(observer) = self.observer() {
                        observer.cells(&self, &self.own_adverts(&welcome.cells));
                    }
                    let node = welcome.node.clone();
                    info!(host = %self.target.address, %node, resumed = welcome.resumed, "cluster link up");
                    if welcome.resumed {
                        self.resumes.fetch_add(1, Ordering::Relaxed);
                    }
                    lock(&self.quic).clone_from(&connection.quic);
                    self.state.send_replace(LinkState::Up(node));
                    if let Some(observer) = self.observer() {
                        observer.up(&self);
                    }
                    let reason = tokio::select! {
                        reason = self.read(stream) => reason,
                        _ = self.stop.notified() => "shut down".to_string(),
                    };
                    let writer = lock(&self.writer).take();
                    if let (Some(outbox), Some(quic)) = (writer, &connection.quic) {
                        if self.stopped.load(Ordering::Acquire) {
                            // A clean goodbye: the host releases the session at once.
                            let _ = outbox.send(&Message::Bye { reason: reason.clone() });
                            let _ = tokio::time::timeout(BYE_WAIT, quic.closed()).await;
                        }
                    }
                    connection.closer.close(reason.as_bytes());
                    lock(&self.quic).take();
                    self.drops.fetch_add(1, Ordering::Relaxed);
                    lock(&self.session).down(Instant::now());
                    if self.stopped.load(Ordering::Acquire) {
                        debug!(host = %self.target.address, %reason, "cluster link closed");
                    } else {
                        warn!(host = %self.target.address, %reason, "cluster link down");
                    }
                    self.state.send_replace(LinkState::Down(reason.clone()));
                    if let Some(observer) = self.observer() {
                        observer.down(&self);
                    }
                    if once {
                        // A worker process's socket is not dialed again: its objects are gone
                        // (unless this side closed it: its worker was released).
                        if !self.stopped.load(Ordering::Acquire) {
                            self.lose_everything(&format!("its link ended: {reason}"));
                        }
                        break;
                    }
                }
                Err(state) if matches!(self.target.transport, LinkTransport::Socket { .. }) => {
                    warn!(host = %self.target.address, ?state, "worker process link failed");
                    self.state.send_replace(state);
                    self.lose_everything("its link could not be opened");
                    break;
                }
                Err(state) => {
                    if matches!(state, LinkState::Refused(_)) {
                        warn!(host = %self.target.address, ?state, "cluster link refused");
                        backoff = Duration::from_secs(2);
                    }
                    self.state.send_replace(state);
                }
            }
            self.check_lost();
            let recovering = lock(&self.session).recovering();
            let wait = if recovering { backoff.min(Duration::from_millis(250)) } else { backoff };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.stop.notified() => break,
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
        // Requests still waiting will not be answered by this link.
        let failed = lock(&self.session).stop();
        for waiter in failed.into_iter().flatten() {
            let _ = waiter.send(Err(WireError::LinkDown));
        }
    }

    /// Counts the host lost if it stayed unreachable for its grace.
    fn check_lost(self: &Arc<Self>) {
        let failed = lock(&self.session).lost(Instant::now());
        if let Some(failed) = failed {
            for waiter in failed.into_iter().flatten() {
                let _ = waiter.send(Err(WireError::LinkDown));
            }
            self.lose_everything("it stayed unreachable for its grace");
        }
    }

    /// Reads until the stream ends; returns why.
    async fn read(self: &Arc<Self>, mut stream: MessageStream) -> String {
        loop {
            let message = stream.next().await;
            if matches!(message, Ok(Some(_))) && lock(&self.session).heard(Instant::now()) {
                info!(host = %self.target.address, "cluster host heard again: its workers return to placement");
                if let Some(observer) = self.observer() {
                    observer.up(self);
                }
            }
            match message {
                Ok(Some(Message::Response { id, result })) => {
                    let waiter = lock(&self.session).response(id);
                    match waiter {
                        Some(Some(waiter)) => {
                            let _ = waiter.send(result);
                        }
                        Some(None) => {}
                        // Nobody waits any more (the request timed out): an object made for
                        // it would be an orphan, so it is closed.
                        None => {
                            if let Ok(Reply::Created { handle, .. }) = result {
                                self.send_reliably(Op::Close { handle });
                            }
                        }
                    }
                }
                Ok(Some(Message::Event { seq, handle, event })) => {
                    // Replayed events this side already has are skipped.
                    if !lock(&self.session).event(seq) {
                        continue;
                    }
                    let routed = lock(&self.objects).route(handle, event);
                    if let Some((sink, event)) = routed {
                        match sink.upgrade() {
                            Some(sink) => sink.event(&event),
                            None => lock(&self.objects).forget(handle),
                        }
                    }
                }
                Ok(Some(Message::Cells(adverts))) => {
                    if let Some(observer) = self.observer() {
                        observer.cells(self, &self.own_adverts(&adverts));
                    }
                }
                Ok(Some(Message::Bye { reason })) => return format!("host said bye: {reason}"),
                Ok(Some(other)) => return format!("unexpected {} message", other.kind()),
                Ok(None) => return "host closed the link".into(),
                Err(error) => return error.to_string(),
            }
        }
    }

    /// The host is lost: every object of the session is closed (workers die).
    fn lose_everything(self: &Arc<Self>, why: &str) {
        warn!(host = %self.target.address, %why, "cluster host lost: its objects are gone");
        let sinks: Vec<_> = lock(&self.objects).drain().into_iter().filter_map(|s| s.upgrade()).collect();
        lock(&self.producers).clear();
        for sink in sinks {
            sink.event(&Event::WorkerDead(format!("the host was lost: {why}")));
        }
        if let Some(observer) = self.observer() {
            observer.lost(self);
        }
    }

    /// The runtime the link runs on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Once a second: fails the requests that waited longer than [`REQUEST_TIMEOUT`] (one
    /// sweeper per link instead of a timer per request), takes a silent host's workers out of
    /// placement, and counts an unreachable host lost when its grace ran out.
    async fn expire_late(link: Weak<Self>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let Some(link) = link.upgrade() else { return };
            let now = Instant::now();
            let late = lock(&link.session).expired(now);
            for tx in late.into_iter().flatten() {
                let _ = tx.send(Err(WireError::Failed("the host did not answer in time".into())));
            }
            if lock(&link.session).silent(now) {
                warn!(host = %link.target.address, "cluster host silent: its workers leave placement until it is heard");
                if let Some(observer) = link.observer() {
                    observer.down(&link);
                }
            }
            if lock(&link.session).recovering() {
                link.check_lost();
            }
        }
    }
}
