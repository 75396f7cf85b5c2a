//! The plain Rust vocabulary of plugins: what a hook is asked and what it answers. The host
//! uses the same types, so a policy tested natively behaves the same inside the host.

#[cfg(feature = "serde")]
use serde::{Deserialize, Serialize};

/// Which way media flows on a transport being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "lowercase"))]
pub enum Direction {
    /// The endpoint sends media.
    Send,
    /// The endpoint receives media.
    Recv,
    /// Both, or unknown.
    #[default]
    Both,
}

/// A request to place one transport.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Request {
    /// The router the transport belongs to.
    pub router: String,
    /// Media direction.
    pub direction: Direction,
    /// Application labels (room, peer, role, region …).
    pub labels: Vec<(String, String)>,
    /// Consumers the application expects for this transport's media (0: unknown).
    pub expected_consumers: u32,
    /// How many cells the pool may have in all (existing + new).
    pub max_cells: u32,
}

impl Request {
    /// A request for a transport of `router` (direction both, no labels, room for 1 cell).
    pub fn new(router: impl Into<String>) -> Self {
        Self { router: router.into(), max_cells: 1, ..Self::default() }
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The position of label `key` among the request's labels (see
    /// [`Candidate::label_at`](crate::candidate::Candidate::label_at)).
    pub fn label_index(&self, key: &str) -> Option<usize> {
        self.labels.iter().position(|(k, _)| k == key)
    }

    /// Adds a label.
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// Sets the direction.
    pub fn with_direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }

    /// Sets how many cells the pool may have.
    pub fn with_max_cells(mut self, max_cells: u32) -> Self {
        self.max_cells = max_cells;
        self
    }
}

/// One cell: a place transports can go (a worker).
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Cell {
    /// Cell id.
    pub id: u32,
    /// The node it runs on.
    pub node: String,
    /// The node's region.
    pub region: String,
    /// CPU share of one core (0..1, briefly above), last sample.
    pub cpu: f64,
    /// The host's predicted CPU share (0 when unknown): the measured share, or what the load
    /// model expects of what is placed and reserved there, whichever is more.
    #[cfg_attr(feature = "serde", serde(default))]
    pub predicted: f64,
    /// Transports placed here.
    pub transports: u32,
    /// Producers living here.
    pub producers: u32,
    /// Consumers living here.
    pub consumers: u32,
    /// Producers piped in from other cells.
    pub pipes: u32,
    /// Routers present here.
    pub routers: Vec<String>,
    /// Takes no new transports.
    pub draining: bool,
    /// How many transports here carry each `key=value` label.
    pub labels: Vec<(String, u32)>,
}

impl Cell {
    /// An empty cell with this id.
    pub fn new(id: u32) -> Self {
        Self { id, ..Self::default() }
    }

    /// True when `router` is present here.
    pub fn hosts_router(&self, router: &str) -> bool {
        self.routers.iter().any(|r| r == router)
    }

    /// How many transports here carry `key_value` (`"key=value"`).
    pub fn label_count(&self, key_value: &str) -> u32 {
        self.labels.iter().find(|(kv, _)| kv == key_value).map_or(0, |(_, n)| *n)
    }

    /// Transports + producers + consumers + pipes: what the cell carries right now (CPU is only
    /// known at the next sample).
    pub fn objects(&self) -> u32 {
        self.transports + self.producers + self.consumers + self.pipes
    }

    /// Sets the CPU share.
    pub fn with_cpu(mut self, cpu: f64) -> Self {
        self.cpu = cpu;
        self
    }

    /// Sets the predicted CPU share.
    pub fn with_predicted(mut self, predicted: f64) -> Self {
        self.predicted = predicted;
        self
    }

    /// Sets the transport count.
    pub fn with_transports(mut self, transports: u32) -> Self {
        self.transports = transports;
        self
    }

    /// Sets the consumer count.
    pub fn with_consumers(mut self, consumers: u32) -> Self {
        self.consumers = consumers;
        self
    }

    /// Adds a router present here.
    pub fn with_router(mut self, router: impl Into<String>) -> Self {
        self.routers.push(router.into());
        self
    }

    /// Adds a label count (`"key=value"`, count).
    pub fn with_label(mut self, key_value: impl Into<String>, count: u32) -> Self {
        self.labels.push((key_value.into(), count));
        self
    }

    /// Marks the cell draining.
    pub fn draining(mut self) -> Self {
        self.draining = true;
        self
    }
}

/// A placement answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub enum Decision {
    /// This existing cell.
    Cell(u32),
    /// A new cell.
    NewCell,
    /// Refused, with a reason.
    Reject(String),
}

/// What an authorization request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(rename_all = "kebab-case"))]
pub enum Operation {
    /// Opening a connection.
    Connect,
    /// Creating a router.
    CreateRouter,
    /// Creating a transport.
    CreateTransport,
    /// Producing media.
    Produce,
    /// Consuming media.
    Consume,
    /// Producing data.
    ProduceData,
    /// Consuming data.
    ConsumeData,
    /// Operator actions.
    Admin,
}

/// A request to authorize one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct AuthRequest {
    /// Token from the client's hello.
    pub token: Option<String>,
    /// Peer identity from its certificate.
    pub peer: Option<String>,
    /// The operation.
    pub operation: Operation,
    /// Router targeted.
    pub router: Option<String>,
    /// Room targeted.
    pub room: Option<String>,
    /// Seconds since the Unix epoch.
    pub now_unix: u64,
    /// Where a plain or pipe transport's `connect` points it (asked as
    /// [`Operation::CreateTransport`]); for a new `comedia` plain transport the unspecified
    /// address (it sends to whoever sends to it first); `None` for every other request
    /// (contract 0.1.2).
    pub destination: Option<Destination>,
}

/// The remote address a `connect` gives a plain or pipe transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Destination {
    /// IP address media would be sent to.
    pub ip: std::net::IpAddr,
    /// RTP port (`None` only if the application gave none).
    pub port: Option<u16>,
    /// RTCP port of a plain transport without RTCP multiplexing.
    pub rtcp_port: Option<u16>,
}

/// Permission granted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Grant {
    /// Who the caller is.
    pub identity: String,
    /// Rooms covered (empty: any).
    pub rooms: Vec<String>,
    /// End of validity (Unix seconds).
    pub expires_unix: Option<u64>,
}

/// Permission refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Denial {
    /// Why.
    pub reason: String,
}

impl Denial {
    /// A denial for `reason`.
    pub fn new(reason: impl Into<String>) -> Self {
        Self { reason: reason.into() }
    }
}

/// A node of the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Node {
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Workers running.
    pub workers: u32,
    /// Most workers allowed.
    pub max_workers: u32,
    /// Mean CPU share of its workers.
    pub cpu: f64,
    /// Takes no new work.
    pub draining: bool,
}

/// What the autoscaler sees.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct Snapshot {
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every cell.
    pub cells: Vec<Cell>,
    /// Monotonic milliseconds.
    pub now_ms: u64,
}

/// Advice to add a node.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize))]
pub struct NodeAdvice {
    /// Where.
    pub region: String,
    /// Why.
    pub reason: String,
}

/// What the autoscaler asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(Serialize, Deserialize), serde(tag = "action", rename_all = "kebab-case"))]
pub enum Action {
    /// One more worker on this node.
    AddWorker,
    /// Retire a worker (drain, close once empty).
    RetireWorker {
        /// The cell.
        cell: u32,
    },
    /// Stop placing on a worker.
    DrainWorker {
        /// The cell.
        cell: u32,
    },
    /// Add a node.
    AddNode(NodeAdvice),
    /// Remove a node, by name.
    RemoveNode {
        /// The node.
        node: String,
    },
    /// Drain a node, by name.
    DrainNode {
        /// The node.
        node: String,
    },
}

/// A plugin's configuration (`--plugin-config KEY=VALUE`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Key/value pairs, in the order given.
    pub entries: Vec<(String, String)>,
}

impl Config {
    /// A configuration from pairs.
    pub fn new<K: Into<String>, V: Into<String>>(entries: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { entries: entries.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `key` parsed as `T`; `default` when absent; an error naming the key when malformed.
    pub fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, String> {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text.parse().map_err(|_| format!("config {key}={text:?} is not valid")),
        }
    }
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Very detailed.
    Trace,
    /// Debugging.
    Debug,
    /// Normal events.
    Info,
    /// Something looks wrong.
    Warn,
    /// Something failed.
    Error,
}
