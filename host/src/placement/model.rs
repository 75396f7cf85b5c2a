//! The placement vocabulary: what is asked (a request), what is known (cell loads) and what is
//! answered (a decision). Plain data, no mediasoup types, so the simulator and plugins share it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a cell: one place mediasoup objects can live (a worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellId(pub u32);

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cell-{}", self.0)
    }
}

/// Which way media flows on the transport being placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The endpoint sends media (producers).
    Send,
    /// The endpoint receives media (consumers).
    Recv,
    /// Both, or unknown.
    #[default]
    Both,
}

/// A request to place one transport.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlacementRequest {
    /// The virtual router the transport belongs to.
    pub router: String,
    /// Media direction.
    pub direction: Direction,
    /// Application labels (from the transport's `app_data`: room, peer, role, region …).
    pub labels: Vec<(String, String)>,
    /// How many consumers the application expects on this transport's media (0: unknown).
    pub expected_consumers: u32,
    /// How many cells the pool may have in all (existing + new).
    pub max_cells: u32,
}

impl PlacementRequest {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// What placement knows about one cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellLoad {
    /// The cell.
    pub id: CellId,
    /// The host the cell runs on.
    pub node: String,
    /// The host's region.
    pub region: String,
    /// CPU use of the worker, as a share of one core (0..1, may exceed 1 briefly).
    pub cpu: f64,
    /// Transports placed here.
    pub transports: u32,
    /// Producers living here (pipe producers excluded).
    pub producers: u32,
    /// Consumers living here (pipe consumers excluded).
    pub consumers: u32,
    /// Pipe producers piped into this cell.
    pub pipes: u32,
    /// Virtual routers with a real router here.
    pub routers: Vec<String>,
    /// The cell accepts no new transports.
    pub draining: bool,
    /// How many transports here carry each `key=value` label.
    pub labels: Vec<(String, u32)>,
}

impl CellLoad {
    /// True when `router` already has a real router in this cell.
    pub fn hosts_router(&self, router: &str) -> bool {
        self.routers.iter().any(|r| r == router)
    }

    /// How many transports here carry label `key=value` (given as `"key=value"`).
    pub fn label_count(&self, key_value: &str) -> u32 {
        self.labels.iter().find(|(kv, _)| kv == key_value).map_or(0, |(_, n)| *n)
    }
}

/// A policy's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Put the transport in this existing cell.
    Cell(CellId),
    /// Start a new cell (worker) and put it there.
    NewCell,
    /// Refuse the transport, with a reason for the application.
    Reject(String),
}
