//! A host's record in the registry: what it writes every second under its key (JSON, so an
//! operator can read it with `redis-cli`), and the checks every record read passes before it is
//! used (anyone able to write to Redis can write a record: nothing in it is trusted until the
//! link to the host it names proves the node with its certificate).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use thiserror::Error;

/// Longest record accepted, in bytes of JSON.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Most cells a record may list.
pub const MAX_RECORD_CELLS: usize = 256;
/// Longest node, region, cluster or boot id name, in bytes (printable ASCII).
pub const MAX_NAME: usize = 64;

/// One worker of a host, as its record shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// The real worker's id.
    pub worker: String,
    /// Its predicted CPU share (the load model's: measured, or what its objects will cost).
    pub predicted: f64,
    /// Transports placed there.
    pub transports: u32,
    /// Routers present there.
    pub routers: u32,
    /// It takes no new transports.
    pub draining: bool,
}

/// A host of the fleet, as it describes itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    /// Node name (its certificate's common name: a link to `address` must prove it).
    pub node: String,
    /// Its region.
    pub region: String,
    /// The QUIC address applications and peers dial (`IP:port`).
    pub address: String,
    /// The address its media is announced on.
    pub announced_ip: String,
    /// The mafalda-host version it runs.
    pub version: String,
    /// The cluster protocol version it speaks (hosts of another version are not linked).
    pub protocol: u16,
    /// Random per process start: a restarted host has a new one.
    pub boot_id: String,
    /// Most local workers it may run.
    pub max_workers: u32,
    /// It takes no new work (the operator drained it, or it is stopping).
    pub draining: bool,
    /// Its workers.
    pub cells: Vec<CellRecord>,
}

/// Why a record read from the registry is not used.
#[derive(Debug, Error, PartialEq)]
pub enum RecordError {
    /// Longer than [`MAX_RECORD_BYTES`].
    #[error("record of {0} bytes (most {MAX_RECORD_BYTES})")]
    TooLong(usize),
    /// Not a record.
    #[error("not a host record: {0}")]
    Malformed(String),
    /// A field holds something unusable.
    #[error("record field {field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// Whether `name` is usable as a node, region, cluster or id name (a label, a log field, part
/// of a Redis key): 1 to [`MAX_NAME`] printable ASCII bytes.
pub fn sane_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_graphic())
}

fn field(field: &'static str, reason: impl Into<String>) -> RecordError {
    RecordError::Field { field, reason: reason.into() }
}

impl HostRecord {
    /// The record as stored.
    pub fn to_json(&self) -> String {
        // A record is plain data: serializing it cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A record read from the registry, checked (see [`HostRecord::check`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLong(bytes.len()));
        }
        let record: Self = serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        record.check()?;
        Ok(record)
    }

    /// Checks every field: sane names, a dialable `IP:port`, an IP, at most
    /// [`MAX_RECORD_CELLS`] cells with finite, non-negative loads.
    pub fn check(&self) -> Result<(), RecordError> {
        for (name, value) in
            [("node", &self.node), ("region", &self.region), ("boot_id", &self.boot_id), ("version", &self.version)]
        {
            if !sane_name(value) {
                return Err(field(name, "1 to 64 printable ASCII characters"));
            }
        }
        let address: SocketAddr = self.address.parse().map_err(|_| field("address", "not an IP:port"))?;
        if address.port() == 0 || address.ip().is_unspecified() || address.ip().is_multicast() {
            return Err(field("address", "not a dialable address"));
        }
        if self.announced_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(field("announced_ip", "not an IP address"));
        }
        if self.cells.len() > MAX_RECORD_CELLS {
            return Err(field("cells", format!("{} cells (most {MAX_RECORD_CELLS})", self.cells.len())));
        }
        for cell in &self.cells {
            if !sane_name(&cell.worker) {
                return Err(field("cells.worker", "1 to 64 printable ASCII characters"));
            }
            if !cell.predicted.is_finite() || cell.predicted < 0.0 {
                return Err(field("cells.predicted", "a finite share, 0 or more"));
            }
        }
        Ok(())
    }

    /// The host takes no new room: drained, or every worker drains (or it has none and may
    /// start none).
    pub fn is_draining(&self) -> bool {
        self.draining || (!self.cells.is_empty() && self.cells.iter().all(|c| c.draining))
    }

    /// Mean predicted CPU share of its open workers (0 for a host with none yet).
    pub fn load(&self) -> f64 {
        let open: Vec<f64> = self.cells.iter().filter(|c| !c.draining).map(|c| c.predicted).collect();
        if open.is_empty() {
            0.0
        } else {
            open.iter().sum::<f64>() / open.len() as f64
        }
    }

    /// Routers over all its workers.
    pub fn routers(&self) -> u32 {
        self.cells.iter().map(|c| c.routers).fold(0, u32::saturating_add)
    }
}

/// Where a cluster's records and events live in Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of cluster `name` (checked like a node name).
    pub fn new(cluster: &str) -> Result<Self, RecordError> {
        if !sane_name(cluster) || cluster.contains(['*', '?', '[', ']', ':', '\\']) {
            return Err(field("cluster name", "1 to 64 printable ASCII characters, none of * ? [ ] : \\"));
        }
        Ok(Self { prefix: format!("mafalda:{cluster}:") })
    }

    /// The key of `node`'s record.
    pub fn host(&self, node: &str) -> String {
        format!("{}host:{node}", self.prefix)
    }

    /// The pattern matching every record's key.
    pub fn hosts_pattern(&self) -> String {
        format!("{}host:*", self.prefix)
    }

    /// The node a record key names.
    pub fn node_of<'a>(&self, key: &'a str) -> Option<&'a str> {
        key.strip_prefix(&self.prefix)?.strip_prefix("host:")
    }

    /// The channel join, leave and drain changes are published on.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }
}

/// A change a host publishes so that watchers react at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// The host wrote its first record (a start, or its record came back after Redis did).
    Join,
    /// The host is stopping: its record is deleted.
    Leave,
    /// The host started or stopped draining.
    Drain,
}

/// One message on the events channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// What changed.
    pub change: Change,
    /// The node it concerns.
    pub node: String,
}

impl Announcement {
    /// The message as published.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A message read from the channel (anything else is ignored).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() > 1024 {
            return None;
        }
        let announcement: Self = serde_json::from_slice(bytes).ok()?;
        sane_name(&announcement.node).then_some(announcement)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A valid record of `node` at `address` with one worker at `load`.
    pub(crate) fn record(node: &str, address: &str, load: f64) -> HostRecord {
        HostRecord {
            node: node.into(),
            region: "eu".into(),
            address: address.into(),
            announced_ip: "127.0.0.1".into(),
            version: "0.1.0".into(),
            protocol: 6,
            boot_id: format!("boot-{node}"),
            max_workers: 2,
            draining: false,
            cells: vec![CellRecord {
                worker: "w1".into(),
                predicted: load,
                transports: 0,
                routers: 0,
                draining: false,
            }],
        }
    }

    #[test]
    fn a_record_round_trips_and_hostile_ones_are_refused() {
        let good = record("h1", "127.0.0.2:4443", 0.25);
        assert_eq!(HostRecord::parse(good.to_json().as_bytes()), Ok(good.clone()));
        let refused = |mutate: &dyn Fn(&mut HostRecord)| {
            let mut r = good.clone();
            mutate(&mut r);
            HostRecord::parse(r.to_json().as_bytes()).is_err()
        };
        assert!(refused(&|r| r.node = String::new()));
        assert!(refused(&|r| r.node = "h\n1".into()));
        assert!(refused(&|r| r.region = "x".repeat(65)));
        assert!(refused(&|r| r.address = "media1:4443".into()), "no DNS name: nothing is resolved for a record");
        assert!(refused(&|r| r.address = "0.0.0.0:4443".into()));
        assert!(refused(&|r| r.address = "127.0.0.2:0".into()));
        assert!(refused(&|r| r.announced_ip = "here".into()));
        assert!(refused(&|r| r.cells[0].predicted = f64::NAN));
        assert!(refused(&|r| r.cells[0].predicted = -1.0));
        assert!(refused(&|r| r.cells = vec![r.cells[0].clone(); MAX_RECORD_CELLS + 1]));
        assert!(HostRecord::parse(b"{").is_err());
        assert!(matches!(HostRecord::parse(&vec![b' '; MAX_RECORD_BYTES + 1]), Err(RecordError::TooLong(_))));
    }

    #[test]
    fn load_and_draining_come_from_the_open_cells() {
        let mut r = record("h1", "127.0.0.2:4443", 0.5);
        r.cells.push(CellRecord { worker: "w2".into(), predicted: 0.9, transports: 0, routers: 3, draining: true });
        assert!((r.load() - 0.5).abs() < 1e-9);
        assert_eq!(r.routers(), 3);
        assert!(!r.is_draining());
        r.cells[0].draining = true;
        assert!(r.is_draining(), "no open worker");
        r.cells.clear();
        assert!(!r.is_draining(), "a host without workers yet takes rooms");
        assert_eq!(r.load(), 0.0);
    }

    #[test]
    fn keys_belong_to_one_cluster() {
        let keys = Keys::new("prod").expect("name");
        assert_eq!(keys.host("h1"), "mafalda:prod:host:h1");
        assert_eq!(keys.node_of("mafalda:prod:host:h1"), Some("h1"));
        assert_eq!(keys.node_of("mafalda:other:host:h1"), None);
        assert_eq!(keys.events(), "mafalda:prod:events");
        assert!(Keys::new("a*").is_err() && Keys::new("").is_err() && Keys::new("a:b").is_err());
        let a = Announcement { change: Change::Drain, node: "h1".into() };
        assert_eq!(Announcement::parse(a.to_json().as_bytes()), Some(a));
        assert_eq!(Announcement::parse(br#"{"change":"join","node":""}"#), None);
    }
}
