//! One connected page: its socket's outgoing queue, the requests the server is waiting on, and
//! the mediasoup objects it owns (closing the peer drops them, which closes them).

use crate::signal::{method_and_data, Envelope, Notification, ServerRequest};
use mediasoup::prelude::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How long the page may take to answer a server request (e.g. to create a consumer).
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

/// A track the peer sends, with the tag its page gave it.
pub struct OwnProducer {
    /// The producer.
    pub producer: Producer,
    /// The page's tag (e.g. `{source: "camera"}`).
    pub app_data: Value,
}

/// A transport of the peer and which way media goes on it.
pub struct OwnTransport {
    /// The transport.
    pub transport: WebRtcTransport,
    /// True for the receive transport.
    pub consuming: bool,
}

/// What the peer owns.
#[derive(Default)]
pub struct PeerState {
    /// Set by `join`.
    pub display_name: Option<String>,
    /// What its page can receive, set by `join`.
    pub rtp_capabilities: Option<RtpCapabilities>,
    /// Its transports.
    pub transports: HashMap<TransportId, OwnTransport>,
    /// Its tracks.
    pub producers: HashMap<ProducerId, OwnProducer>,
    /// Its data channels.
    pub data_producers: HashMap<DataProducerId, DataProducer>,
    /// What it receives.
    pub consumers: HashMap<ConsumerId, Consumer>,
    /// The data channels it receives.
    pub data_consumers: HashMap<DataConsumerId, DataConsumer>,
    /// Producers and data producers it consumes or is being given (each once, even when its
    /// join and another peer's produce race).
    pub consumed: HashSet<String>,
    /// Set when the peer left: nothing may be added any more.
    pub left: bool,
}

impl PeerState {
    /// Whether the peer joined (and so consumes what others produce).
    pub fn joined(&self) -> bool {
        self.rtp_capabilities.is_some() && !self.left
    }

    /// The transport it receives on, if created.
    pub fn receive_transport(&self) -> Option<WebRtcTransport> {
        self.transports.values().find(|t| t.consuming).map(|t| t.transport.clone())
    }
}

/// A connected page.
pub struct Peer {
    /// Its id in the room.
    pub id: String,
    out: mpsc::UnboundedSender<Envelope>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>,
    next_request: AtomicU64,
    state: Mutex<PeerState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Peer {
    /// A peer whose outgoing messages go to `out`.
    pub fn new(id: String, out: mpsc::UnboundedSender<Envelope>) -> Self {
        Self { id, out, pending: Mutex::default(), next_request: AtomicU64::new(1), state: Mutex::default() }
    }

    /// Its state, locked (never held across an `await`).
    pub fn state(&self) -> MutexGuard<'_, PeerState> {
        lock(&self.state)
    }

    /// Sends a message to the page (dropped silently once the page is gone).
    pub fn send(&self, envelope: Envelope) {
        let _ = self.out.send(envelope);
    }

    /// Tells the page something.
    pub fn notify(&self, notification: Notification) {
        match serde_json::to_value(notification) {
            Ok(value) => {
                let (method, data) = method_and_data(value);
                self.send(Envelope::Notification { method, data });
            }
            Err(error) => tracing::error!(%error, "unserializable notification"),
        }
    }

    /// Asks the page something and waits (bounded) for its answer.
    pub async fn request(&self, request: ServerRequest) -> Result<Value, String> {
        let (method, data) = method_and_data(serde_json::to_value(request).map_err(|e| e.to_string())?);
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        self.send(Envelope::Request { id, method: method.clone(), data });
        let answer = tokio::time::timeout(ANSWER_WITHIN, rx).await;
        lock(&self.pending).remove(&id);
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(format!("peer {} left before answering {method}", self.id)),
            Err(_) => Err(format!("peer {} did not answer {method} within {ANSWER_WITHIN:?}", self.id)),
        }
    }

    /// Delivers the page's answer to a pending server request.
    pub fn answered(&self, id: u64, result: Result<Value, String>) {
        match lock(&self.pending).remove(&id) {
            Some(waiting) => {
                let _ = waiting.send(result);
            }
            None => tracing::warn!(peer = %self.id, id, "answer to no pending request"),
        }
    }

    /// Marks the peer gone and takes everything it owned (the caller drops it, closing it).
    pub fn leave(&self) -> PeerState {
        lock(&self.pending).clear();
        let mut state = lock(&self.state);
        let owned = std::mem::take(&mut *state);
        state.left = true;
        owned
    }
}
