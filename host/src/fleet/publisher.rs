//! A host in the registry: its record written every second (expiring after the TTL unless
//! written again), a join announced when it is first written (and again after Redis was
//! unreachable), a drain announced at once, and its record deleted with a leave announced when
//! it stops. Redis being unreachable costs one WARN: the host keeps serving.

use super::record::{Announcement, CellRecord, Change, HostRecord, MAX_RECORD_CELLS};
use super::registry::Registry;
use crate::host::Host;
use crate::internals::cell::{Count, Origin};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn};

/// How often a host writes its record.
pub const WRITE_EVERY: Duration = Duration::from_secs(1);
/// How long a record lives unless written again (a host that died leaves the registry then).
pub const RECORD_TTL: Duration = Duration::from_secs(5);
/// How long a stopping host tries to delete its record.
pub const LEAVE_WITHIN: Duration = Duration::from_secs(1);

/// Who a host is in the registry.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Its node name (its certificate's).
    pub node: String,
    /// Its region.
    pub region: String,
    /// Its QUIC address, as others dial it.
    pub address: SocketAddr,
    /// The IP its media is announced on.
    pub announced_ip: IpAddr,
    /// Random per start.
    pub boot_id: String,
}

/// What the publisher did (metrics, the traffic bench).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublisherStats {
    /// Records written.
    pub writes: u64,
    /// Writes that failed.
    pub failures: u64,
    /// Bytes of records written.
    pub bytes: u64,
}

/// Writes one host's record until stopped.
pub struct Publisher {
    registry: Arc<Registry>,
    node: String,
    stop: Notify,
    stopped: tokio::sync::watch::Sender<bool>,
    writes: AtomicU64,
    failures: AtomicU64,
    bytes: AtomicU64,
}

/// `host`'s record now.
pub fn record_of(host: &Host, identity: &Identity) -> HostRecord {
    let coefficients = host.coefficients();
    let cells = host
        .cells()
        .iter()
        .filter(|c| c.origin() != Origin::Remote && !c.is_closed())
        .take(MAX_RECORD_CELLS)
        .map(|c| CellRecord {
            worker: c.worker_id().to_string(),
            predicted: c.predicted(&coefficients).max(0.0),
            transports: c.count(Count::Transport),
            routers: u32::try_from(c.router_count()).unwrap_or(u32::MAX),
            draining: c.is_draining(),
        })
        .collect();
    HostRecord {
        node: identity.node.clone(),
        region: identity.region.clone(),
        address: identity.address.to_string(),
        announced_ip: identity.announced_ip.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        protocol: crate::cluster::proto::PROTOCOL_VERSION,
        boot_id: identity.boot_id.clone(),
        max_workers: u32::try_from(host.options().pool.max_workers).unwrap_or(u32::MAX),
        draining: host.is_draining(),
        cells,
    }
}

impl Publisher {
    /// Starts writing `host`'s record on the current runtime.
    pub fn start(registry: Arc<Registry>, host: &Arc<Host>, identity: Identity) -> Arc<Self> {
        let unusable = record_of(host, &identity).check().err();
        if let Some(error) = unusable {
            // Every reader would refuse it: say so here, where it can be fixed.
            warn!(%error, "this host's registry record is unusable: no application or peer will use it");
        }
        let publisher = Arc::new(Self {
            registry,
            node: identity.node.clone(),
            stop: Notify::new(),
            stopped: tokio::sync::watch::channel(false).0,
            writes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        });
        tokio::spawn(Arc::clone(&publisher).run(Arc::downgrade(host), identity));
        publisher
    }

    /// Its numbers.
    pub fn stats(&self) -> PublisherStats {
        PublisherStats {
            writes: self.writes.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    async fn run(self: Arc<Self>, host: Weak<Host>, identity: Identity) {
        let mut connection = None;
        let mut registered = false;
        let mut draining = None;
        let mut drains = match host.upgrade() {
            Some(host) => host.drain_changes(),
            None => return,
        };
        loop {
            let Some(strong) = host.upgrade() else { return };
            let record = record_of(&strong, &identity);
            drop(strong);
            let written = async {
                if connection.is_none() {
                    connection = Some(self.registry.connect().await?);
                }
                let conn = connection.as_mut().ok_or_else(|| self.registry_gone())?;
                let bytes = self.registry.write(conn, &record, RECORD_TTL).await?;
                self.writes.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                let change = if !registered {
                    Some(Change::Join)
                } else {
                    (draining != Some(record.draining)).then_some(Change::Drain)
                };
                if let Some(change) = change {
                    self.registry.announce(conn, &Announcement { change, node: record.node.clone() }).await?;
                }
                Ok::<_, super::registry::RegistryError>(())
            }
            .await;
            match written {
                Ok(()) => {
                    if !registered {
                        info!(registry = %self.registry.shown(), node = %record.node, "registered in the fleet registry");
                    }
                    self.registry.succeeded();
                    registered = true;
                    draining = Some(record.draining);
                }
                Err(error) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    connection = None;
                    registered = false;
                    self.registry.failed(&error);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(WRITE_EVERY) => {}
                _ = drains.changed() => {}
                () = self.stop.notified() => break,
            }
        }
        if let Some(mut conn) = connection {
            let leave = async {
                self.registry.delete(&mut conn, &self.node).await?;
                self.registry
                    .announce(&mut conn, &Announcement { change: Change::Leave, node: self.node.clone() })
                    .await
            };
            match tokio::time::timeout(LEAVE_WITHIN, leave).await {
                Ok(Ok(())) => info!(node = %self.node, "left the fleet registry"),
                _ => warn!(node = %self.node, "could not delete this host's registry record: it expires by itself"),
            }
        }
        self.stopped.send_replace(true);
    }

    fn registry_gone(&self) -> super::registry::RegistryError {
        super::registry::RegistryError::Redis { url: self.registry.shown().into(), reason: "no connection".into() }
    }

    /// Stops writing; deletes the record and announces the leave (at most [`LEAVE_WITHIN`]).
    pub async fn leave(&self) {
        let mut stopped = self.stopped.subscribe();
        self.stop.notify_one();
        let _ = tokio::time::timeout(LEAVE_WITHIN * 3, stopped.wait_for(|s| *s)).await;
    }
}
