//! A cell: one place mediasoup objects can live (here: a local worker), with the counts and
//! labels placement reads, its CPU meter, and the virtual objects living in it so that closing
//! the cell closes them.

use crate::object::{lock, Lost, Member};
use crate::placement::{CellId, CellLoad};
use crate::pool::{PooledWorker, WorkerWatch};
use mediasoup::router::RouterId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What a [`Ticket`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// A transport placed here.
    Transport,
    /// A producer living here.
    Producer,
    /// A consumer living here.
    Consumer,
    /// A pipe producer piped into this cell.
    Pipe,
}

/// Live object counts (of a cell, or of a virtual router).
#[derive(Debug, Default)]
pub(crate) struct Counts([AtomicU32; 4]);

impl Counts {
    /// Current value of one count.
    pub(crate) fn get(&self, count: Count) -> u32 {
        self.0[count as usize].load(Ordering::Relaxed)
    }

    fn add(&self, count: Count) {
        self.0[count as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn sub(&self, count: Count) {
        self.0[count as usize].fetch_sub(1, Ordering::Relaxed);
    }

    fn all_zero(&self) -> bool {
        self.0.iter().all(|c| c.load(Ordering::Relaxed) == 0)
    }
}

/// Measures a worker thread's CPU share between samples.
#[derive(Debug, Clone, Copy, Default)]
struct CpuMeter {
    last: Option<(Instant, Duration)>,
    share: f64,
}

/// One cell.
pub struct Cell {
    id: CellId,
    node: String,
    region: String,
    worker: Mutex<Option<PooledWorker>>,
    watch: WorkerWatch,
    counts: Counts,
    routers: Mutex<HashSet<RouterId>>,
    labels: Mutex<HashMap<String, u32>>,
    members: Mutex<Vec<Weak<dyn Member>>>,
    draining: AtomicBool,
    retiring: AtomicBool,
    closed: AtomicBool,
    cpu: Mutex<CpuMeter>,
    idle_since: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell").field("id", &self.id).field("worker", &self.watch.id).finish()
    }
}

/// Counts one object in a cell (and in its virtual router) while alive; dropping it uncounts.
#[derive(Debug)]
pub(crate) struct Ticket {
    cell: Arc<Cell>,
    router: Arc<Counts>,
    count: Count,
    labels: Vec<String>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cell.counts.sub(self.count);
        self.router.sub(self.count);
        let mut labels = lock(&self.cell.labels);
        for label in &self.labels {
            if let Some(n) = labels.get_mut(label) {
                *n -= 1;
                if *n == 0 {
                    labels.remove(label);
                }
            }
        }
        drop(labels);
        self.cell.touch();
    }
}

impl Cell {
    /// A cell around a freshly started worker.
    pub(crate) fn new(id: CellId, node: &str, region: &str, worker: PooledWorker) -> Self {
        let watch = worker.watch.clone();
        Self {
            id,
            node: node.to_string(),
            region: region.to_string(),
            worker: Mutex::new(Some(worker)),
            watch,
            counts: Counts::default(),
            routers: Mutex::default(),
            labels: Mutex::default(),
            members: Mutex::default(),
            draining: AtomicBool::new(false),
            retiring: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            cpu: Mutex::default(),
            idle_since: Mutex::new(Some(Instant::now())),
        }
    }

    /// The cell's id.
    pub fn id(&self) -> CellId {
        self.id
    }

    /// The worker's watch (id, thread, close event).
    pub fn watch(&self) -> &WorkerWatch {
        &self.watch
    }

    /// The real worker, unless the cell is closed.
    pub(crate) fn worker(&self) -> Option<mediasoup::worker::Worker> {
        lock(&self.worker).as_ref().map(|w| w.worker.clone())
    }

    /// True once the cell was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// True when the cell takes no new transports.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Stops (or resumes) placing transports here.
    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Drains the cell and marks it to be closed as soon as it is idle.
    pub fn set_retiring(&self) {
        self.set_draining(true);
        self.retiring.store(true, Ordering::Relaxed);
    }

    /// True when the cell closes as soon as it is idle.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Relaxed)
    }

    /// Current value of one count.
    pub(crate) fn count(&self, count: Count) -> u32 {
        self.counts.get(count)
    }

    /// Counts an object (and its labels) here and in `router` until the ticket is dropped.
    pub(crate) fn ticket(self: &Arc<Self>, router: &Arc<Counts>, count: Count, labels: Vec<String>) -> Ticket {
        self.counts.add(count);
        router.add(count);
        let mut map = lock(&self.labels);
        for label in &labels {
            *map.entry(label.clone()).or_insert(0) += 1;
        }
        drop(map);
        self.touch();
        Ticket { cell: Arc::clone(self), router: Arc::clone(router), count, labels }
    }

    /// Records that a virtual router has (or no longer has) a real router here.
    pub(crate) fn set_router_present(&self, router: RouterId, present: bool) {
        let mut routers = lock(&self.routers);
        if present {
            routers.insert(router);
        } else {
            routers.remove(&router);
        }
        drop(routers);
        self.touch();
    }

    /// The virtual routers with a real router here.
    pub(crate) fn routers_present(&self) -> HashSet<RouterId> {
        lock(&self.routers).clone()
    }

    /// Registers a virtual object to be detached when the cell closes.
    pub(crate) fn join(&self, member: Weak<dyn Member>) {
        let mut members = lock(&self.members);
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }

    /// True when nothing lives here.
    pub fn is_idle(&self) -> bool {
        self.counts.all_zero() && lock(&self.routers).is_empty()
    }

    /// Restarts or stops the idle clock after a change.
    fn touch(&self) {
        let idle = self.is_idle();
        let mut since = lock(&self.idle_since);
        match (idle, since.is_some()) {
            (true, false) => *since = Some(Instant::now()),
            (false, true) => *since = None,
            _ => {}
        }
    }

    /// How long the cell has hosted nothing.
    pub fn idle_for(&self) -> Option<Duration> {
        lock(&self.idle_since).map(|since| since.elapsed())
    }

    /// Samples the worker thread's CPU time and updates the CPU share.
    pub(crate) fn sample_cpu(&self) {
        let Some(used) = self.watch.thread.cpu_time() else {
            return;
        };
        let now = Instant::now();
        let mut meter = lock(&self.cpu);
        if let Some((at, before)) = meter.last {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                meter.share = used.saturating_sub(before).as_secs_f64() / wall;
            }
        }
        meter.last = Some((now, used));
    }

    /// The last measured CPU share.
    pub fn cpu(&self) -> f64 {
        lock(&self.cpu).share
    }

    /// What placement sees of this cell.
    pub fn load(&self) -> CellLoad {
        let mut routers: Vec<String> = lock(&self.routers).iter().map(ToString::to_string).collect();
        routers.sort();
        let mut labels: Vec<(String, u32)> = lock(&self.labels).iter().map(|(k, v)| (k.clone(), *v)).collect();
        labels.sort();
        CellLoad {
            id: self.id.0,
            node: self.node.clone(),
            region: self.region.clone(),
            cpu: self.cpu(),
            transports: self.count(Count::Transport),
            producers: self.count(Count::Producer),
            consumers: self.count(Count::Consumer),
            pipes: self.count(Count::Pipe),
            routers,
            draining: self.is_draining(),
            labels,
        }
    }

    /// Closes the cell: detaches every virtual object living here (firing their close events)
    /// and drops the real worker handle. Returns what was lost; `None` if already closed.
    pub(crate) fn close(&self) -> Option<Lost> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return None;
        }
        self.set_draining(true);
        let members = std::mem::take(&mut *lock(&self.members));
        let mut lost = Lost::default();
        for member in members.iter().filter_map(Weak::upgrade) {
            member.detach(&mut lost);
        }
        lock(&self.worker).take();
        Some(lost)
    }
}
