//! Cluster membership: the workers other hosts advertise become cells of this host (placement
//! sees them with their node and region), leave placement while their link is down, and close
//! as lost when their host is lost or stops advertising them.

use super::client::{HostLink, LinkObserver};
use super::proto::CellAdvert;
use super::remote::RemoteWorker;
use crate::backend::WorkerBackend;
use crate::cell::Cell;
use crate::host::Host;
use crate::internals::cell::DrainCause;
use crate::internals::object::lock;
use mediasoup::worker::WorkerId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::watch;
use tracing::info;

struct Known {
    worker: Arc<RemoteWorker>,
    cell: Weak<Cell>,
}

/// Adds and removes the cells of every linked host.
pub(crate) struct Membership {
    host: Weak<Host>,
    /// Per link (by address): the workers it advertised.
    known: Mutex<HashMap<String, HashMap<WorkerId, Known>>>,
    /// Bumped on every advert (readiness waits on it).
    adverts: watch::Sender<u64>,
    /// Links already warned about odd adverts (at most one entry per link).
    warned: Mutex<std::collections::HashSet<String>>,
}

impl Membership {
    pub(crate) fn new(host: &Arc<Host>) -> Arc<Self> {
        Arc::new(Self {
            host: Arc::downgrade(host),
            known: Mutex::default(),
            adverts: watch::channel(0).0,
            warned: Mutex::default(),
        })
    }

    /// Whether `link` has advertised its workers since it came up.
    pub(crate) fn advertised(&self, link: &HostLink) -> bool {
        lock(&self.known).contains_key(link.address())
    }

    /// Watches adverts.
    pub(crate) fn adverts(&self) -> watch::Receiver<u64> {
        self.adverts.subscribe()
    }

    /// The link was closed by this side: its host's workers leave.
    pub(crate) fn forget(&self, link: &HostLink) {
        self.remove(link, "its link was closed");
    }

    fn remove(&self, link: &HostLink, why: &str) {
        let known = lock(&self.known).remove(link.address());
        for (_, k) in known.unwrap_or_default() {
            k.worker.lost(why);
        }
        self.adverts.send_modify(|n| *n += 1);
    }

    fn cells_of(&self, link: &HostLink) -> Vec<Arc<Cell>> {
        lock(&self.known)
            .get(link.address())
            .map_or_else(Vec::new, |known| known.values().filter_map(|k| k.cell.upgrade()).collect())
    }
}

/// Workers taken from one host's advert (more are ignored): its cells become this host's, and
/// each is a series in the metrics and a line in the status.
pub const MAX_ADVERTISED: usize = 256;
/// Longest node or region name taken from an advert (bytes, printable ASCII).
pub const MAX_ADVERTISED_NAME: usize = 64;

/// Whether an advertised node or region name is usable (a label, a log field).
fn sane(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_ADVERTISED_NAME && name.bytes().all(|b| b.is_ascii_graphic())
}

fn worker_id(text: &str) -> Option<WorkerId> {
    text.parse().ok()
}

impl LinkObserver for Membership {
    fn cells(&self, link: &Arc<HostLink>, adverts: &[CellAdvert]) {
        let Some(host) = self.host.upgrade() else { return };
        let odd = adverts.len() > MAX_ADVERTISED || adverts.iter().any(|a| !sane(&a.node) || !sane(&a.region));
        // Once per link (adverts come every second).
        if odd && lock(&self.warned).insert(link.address().to_string()) {
            tracing::warn!(
                host = %link.address(),
                workers = adverts.len(),
                "a host advertised too many workers or unusable names: only the first {MAX_ADVERTISED} with sane names are used"
            );
        }
        let adverts: Vec<CellAdvert> =
            adverts.iter().filter(|a| sane(&a.node) && sane(&a.region)).take(MAX_ADVERTISED).cloned().collect();
        let adverts = adverts.as_slice();
        let mut added = Vec::new();
        let mut gone = Vec::new();
        {
            let mut known = lock(&self.known);
            // A worker reachable through two links (a host aggregating a peer the application
            // also links to) is used through the first.
            let elsewhere: Vec<WorkerId> = known
                .iter()
                .filter(|(address, _)| address.as_str() != link.address())
                .flat_map(|(_, workers)| workers.keys().copied())
                .collect();
            let mine = known.entry(link.address().to_string()).or_default();
            let local: Vec<WorkerId> = host
                .cells()
                .iter()
                .filter(|c| c.origin() != crate::cell::Origin::Remote)
                .map(|c| c.worker_id())
                .collect();
            for advert in adverts {
                let Some(id) = worker_id(&advert.worker_id) else { continue };
                if elsewhere.contains(&id) || local.contains(&id) {
                    continue;
                }
                match mine.get(&id) {
                    Some(k) => {
                        k.worker.update(advert);
                        if let Some(cell) = k.cell.upgrade() {
                            cell.set_draining(DrainCause::HostDraining, advert.draining);
                        }
                    }
                    None => added.push((id, advert.clone())),
                }
            }
            mine.retain(|id, k| {
                let offered = adverts.iter().any(|a| worker_id(&a.worker_id) == Some(*id));
                if !offered {
                    gone.push(Arc::clone(&k.worker));
                }
                offered
            });
        }
        // Cells are added outside `known`: the host's new-cell handlers are the application's
        // and may call back into the cluster. Adverts of one link arrive one at a time.
        for (id, advert) in added {
            let worker = RemoteWorker::advertised(link, &advert, id);
            let backend: Arc<dyn WorkerBackend> = worker.clone();
            let cell = host.add_remote_cell(backend, advert.node.clone(), advert.region.clone());
            cell.set_draining(DrainCause::HostDraining, advert.draining);
            let mut known = lock(&self.known);
            known
                .entry(link.address().to_string())
                .or_default()
                .insert(id, Known { worker, cell: Arc::downgrade(&cell) });
        }
        for worker in gone {
            worker.lost("its host no longer offers it");
        }
        self.adverts.send_modify(|n| *n += 1);
    }

    fn down(&self, link: &Arc<HostLink>) {
        for cell in self.cells_of(link) {
            cell.set_draining(DrainCause::LinkDown, true);
        }
        info!(host = %link.address(), "cluster host unreachable: its workers leave placement");
    }

    fn up(&self, link: &Arc<HostLink>) {
        for cell in self.cells_of(link) {
            cell.set_draining(DrainCause::LinkDown, false);
        }
    }

    fn lost(&self, link: &Arc<HostLink>) {
        self.remove(link, "its host was lost");
    }
}
