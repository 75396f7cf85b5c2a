//! A cell: one place mediasoup objects can live (a worker, reached through its backend), with
//! the counts and labels placement reads, its CPU meter, and the virtual objects living in it so
//! that closing the cell closes them.

use crate::backend::WorkerBackend;
use crate::internals::load_model::{Coefficients, Ledger, Load};
use crate::internals::object::{lock, push_live, Lost, Member};
use crate::internals::source::PipeSource;
use crate::placement::{CellId, CellLoad, LabelMatch, RowReading};
use mediasoup::router::RouterId;
use mediasoup::worker::WorkerId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use thiserror::Error;

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
    /// A data producer living here.
    DataProducer,
    /// A data consumer living here.
    DataConsumer,
}

/// Live object counts (of a cell, or of a virtual router).
#[derive(Debug, Default)]
pub(crate) struct Counts([AtomicU32; 6]);

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

    /// Every count, summed ([`crate::host::Host::footprint`]).
    pub(crate) fn total(&self) -> u64 {
        self.0.iter().map(|c| u64::from(c.load(Ordering::Relaxed))).sum()
    }

    fn all_zero(&self) -> bool {
        self.0.iter().all(|c| c.load(Ordering::Relaxed) == 0)
    }
}

/// Which settings-set (worker settings of a virtual worker) a cell's worker was made with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettingsSet(pub usize);

/// Consumers one worker is counted to carry at full CPU when its CPU cannot be measured (the
/// rule of thumb of mediasoup's documentation: ~500 consumers per worker).
pub const FALLBACK_CONSUMERS_PER_CORE: f64 = 500.0;

/// Measures a worker's CPU share between samples.
#[derive(Debug, Clone, Copy, Default)]
struct CpuMeter {
    last: Option<(Instant, Duration)>,
    share: f64,
    /// The last sample could not be read; the share is estimated from the counts.
    estimated: bool,
}

/// Why a cell takes no new transports; a cell drains while any cause holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainCause {
    /// Drained by the operator or the autoscaler ([`crate::host::Host::drain_cell`]).
    Operator,
    /// Retiring: it closes once idle.
    Retiring,
    /// Its host drains as a whole (this host's `Host::drain`, or another host's adverts).
    HostDraining,
    /// Its worker process stopped answering (until heard again).
    Silent,
    /// The link to its host is down (until it is up again).
    LinkDown,
    /// It is closed.
    Closed,
}

impl DrainCause {
    fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// Called when a cell starts or stops draining (set by the host on every cell it admits).
pub(crate) type DrainWatch = Box<dyn Fn(&Cell, bool) + Send + Sync>;

/// The cell is closed: nothing may join it any more.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("{0} is closed")]
pub struct CellClosedError(pub CellId);

/// How a cell came to be (it decides whether idle release may close it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A worker of the pool (started for `min_workers` or because placement asked for one):
    /// released when idle while the pool is above `min_workers`.
    Pool,
    /// Started by the autoscaler or the operator: kept until retired.
    Kept,
    /// A worker of another host of the cluster: it serves every settings-set, is never
    /// released for idleness and does not count against this host's `max_workers`.
    Remote,
}

/// What placement reads of a cell, under one lock: the routers present, the label counts and
/// the CPU meter (kept up to date as objects join and leave, so a decision reads it in
/// constant time).
#[derive(Debug, Default)]
struct Row {
    /// Virtual routers with a real router here.
    routers: HashSet<RouterId>,
    /// Transports per label value, by key (only the keys placement counts, see `labels`).
    labels: HashMap<String, HashMap<String, u32>>,
    cpu: CpuMeter,
    /// The model's cost of what the cell carried at the last sample (flows, transports, data
    /// objects; not what it expected).
    at_sample: f64,
    /// What it carried then.
    load_at_sample: Load,
}

/// One cell.
pub struct Cell {
    id: CellId,
    slot: usize,
    set: SettingsSet,
    origin: Origin,
    node: Arc<str>,
    region: Arc<str>,
    worker: Mutex<Option<Arc<dyn WorkerBackend>>>,
    worker_id: WorkerId,
    counts: Counts,
    ledger: Arc<Ledger>,
    row: Mutex<Row>,
    members: Mutex<Vec<Weak<dyn Member>>>,
    /// The [`DrainCause`]s that hold, one bit each.
    draining: AtomicU32,
    drain_watch: std::sync::OnceLock<DrainWatch>,
    retiring: AtomicBool,
    closed: AtomicBool,
    idle_since: Mutex<Option<Instant>>,
    /// Consecutive CPU samples above the watermark.
    hot_samples: AtomicU32,
    /// Ids of the producers and data producers living (or about to live) here, with how many
    /// holds each has (a worker refuses a second object with an id it holds).
    ids: Mutex<HashMap<PipeSource, u32>>,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell").field("id", &self.id).field("worker", &self.worker_id).finish()
    }
}

/// Marks a router as living in a cell while alive (a cluster session's router, which no
/// virtual router of this host tracks): the cell is not idle meanwhile.
#[derive(Debug)]
pub(crate) struct RouterHere {
    cell: Arc<Cell>,
    router: RouterId,
}

impl Drop for RouterHere {
    fn drop(&mut self) {
        self.cell.set_router_present(self.router, false);
    }
}

/// Counts one object in a cell (and in its virtual router) while alive; dropping it uncounts.
#[derive(Debug)]
pub(crate) struct Ticket {
    cell: Arc<Cell>,
    router: Arc<Counts>,
    count: Count,
    labels: Vec<(String, String)>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.cell.counts.sub(self.count);
        self.router.sub(self.count);
        if !self.labels.is_empty() {
            let mut row = lock(&self.cell.row);
            for (key, value) in &self.labels {
                let Some(values) = row.labels.get_mut(key) else { continue };
                if let Some(n) = values.get_mut(value) {
                    *n -= 1;
                    if *n == 0 {
                        values.remove(value);
                    }
                }
                if values.is_empty() {
                    row.labels.remove(key);
                }
            }
        }
        self.cell.touch();
    }
}

/// An id living in a cell (see [`Cell::hold_id`]); dropping it forgets the id.
#[derive(Debug)]
pub(crate) struct IdHold {
    cell: Arc<Cell>,
    id: PipeSource,
}

impl Drop for IdHold {
    fn drop(&mut self) {
        let mut ids = lock(&self.cell.ids);
        if let Some(holds) = ids.get_mut(&self.id) {
            *holds -= 1;
            if *holds == 0 {
                ids.remove(&self.id);
            }
        }
    }
}

/// Where a cell is, as the placement candidates name it.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    /// The node (host) name.
    pub(crate) node: Arc<str>,
    /// The region.
    pub(crate) region: Arc<str>,
}

impl Cell {
    /// A cell around a freshly started worker.
    pub(crate) fn new(
        id: CellId,
        slot: usize,
        set: SettingsSet,
        origin: Origin,
        location: Location,
        worker: Arc<dyn WorkerBackend>,
    ) -> Self {
        let worker_id = worker.id();
        Self {
            id,
            slot,
            set,
            origin,
            node: location.node,
            region: location.region,
            worker: Mutex::new(Some(worker)),
            worker_id,
            counts: Counts::default(),
            ledger: Arc::default(),
            row: Mutex::default(),
            members: Mutex::default(),
            draining: AtomicU32::new(0),
            drain_watch: std::sync::OnceLock::new(),
            retiring: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            idle_since: Mutex::new(Some(Instant::now())),
            hot_samples: AtomicU32::new(0),
            ids: Mutex::default(),
        }
    }

    /// The cell's id.
    pub fn id(&self) -> CellId {
        self.id
    }

    /// The cell's slot: a small number unique among open cells, reused after a cell closes
    /// (per-worker ports of WebRTC servers are derived from it).
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The settings-set its worker was made with.
    pub fn settings_set(&self) -> SettingsSet {
        self.set
    }

    /// How the cell came to be.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether the cell serves virtual workers of `set` (remote cells serve every set).
    pub fn serves(&self, set: SettingsSet) -> bool {
        self.origin == Origin::Remote || self.set == set
    }

    /// The node (host) running the worker.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// That node's region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The node and region, shared.
    pub(crate) fn location(&self) -> (&Arc<str>, &Arc<str>) {
        (&self.node, &self.region)
    }

    /// What the cell carries, as the load model counts it.
    pub(crate) fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// The real worker's id.
    pub fn worker_id(&self) -> WorkerId {
        self.worker_id
    }

    /// The real worker, unless the cell is closed.
    pub(crate) fn worker(&self) -> Option<Arc<dyn WorkerBackend>> {
        lock(&self.worker).clone()
    }

    /// True once the cell was closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// True when the cell takes no new transports.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire) != 0
    }

    /// Whether `cause` holds for this cell.
    pub fn drains_for(&self, cause: DrainCause) -> bool {
        self.draining.load(Ordering::Acquire) & cause.bit() != 0
    }

    /// Sets or clears one reason to take no new transports here; the cell drains while any
    /// holds. The drain watch hears when the cell starts or stops draining.
    pub fn set_draining(&self, cause: DrainCause, on: bool) {
        let before = if on {
            self.draining.fetch_or(cause.bit(), Ordering::AcqRel)
        } else {
            self.draining.fetch_and(!cause.bit(), Ordering::AcqRel)
        };
        let after = if on { before | cause.bit() } else { before & !cause.bit() };
        if (before == 0) != (after == 0) && cause != DrainCause::Closed && !self.is_closed() {
            if let Some(watch) = self.drain_watch.get() {
                watch(self, after != 0);
            }
        }
    }

    /// Installs what hears this cell's drain changes (once).
    pub(crate) fn watch_draining(&self, watch: DrainWatch) {
        let _ = self.drain_watch.set(watch);
    }

    /// Drains the cell and marks it to be closed as soon as it is idle.
    pub fn set_retiring(&self) {
        self.set_draining(DrainCause::Retiring, true);
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

    /// Counts an object (and its labels: `key`, `value` pairs) here and in `router` until the
    /// ticket is dropped.
    pub(crate) fn ticket(
        self: &Arc<Self>,
        router: &Arc<Counts>,
        count: Count,
        labels: Vec<(String, String)>,
    ) -> Ticket {
        self.counts.add(count);
        router.add(count);
        if !labels.is_empty() {
            let mut row = lock(&self.row);
            for (key, value) in &labels {
                *row.labels.entry(key.clone()).or_default().entry(value.clone()).or_insert(0) += 1;
            }
        }
        self.touch();
        Ticket { cell: Arc::clone(self), router: Arc::clone(router), count, labels }
    }

    /// Records that a producer or data producer with id `id` lives here until the returned hold
    /// is dropped.
    pub(crate) fn hold_id(self: &Arc<Self>, id: PipeSource) -> IdHold {
        *lock(&self.ids).entry(id).or_insert(0) += 1;
        IdHold { cell: Arc::clone(self), id }
    }

    /// Whether a producer or data producer with id `id` lives here.
    pub(crate) fn holds(&self, id: &PipeSource) -> bool {
        lock(&self.ids).contains_key(id)
    }

    /// Producer and data-producer ids held here ([`crate::host::Host::footprint`]).
    pub(crate) fn held_ids(&self) -> usize {
        lock(&self.ids).len()
    }

    /// Live members (virtual objects detached when the cell closes).
    pub(crate) fn live_members(&self) -> usize {
        lock(&self.members).iter().filter(|m| m.strong_count() > 0).count()
    }

    /// Entries of the placement row: routers present, label values counted.
    pub(crate) fn row_entries(&self) -> (usize, usize) {
        let row = lock(&self.row);
        (row.routers.len(), row.labels.values().map(HashMap::len).sum())
    }

    /// Objects counted here, every kind.
    pub(crate) fn counted(&self) -> u64 {
        self.counts.total()
    }

    /// Records that `router` lives here until the returned mark is dropped.
    pub(crate) fn router_here(self: &Arc<Self>, router: RouterId) -> RouterHere {
        self.set_router_present(router, true);
        RouterHere { cell: Arc::clone(self), router }
    }

    /// Records that a virtual router has (or no longer has) a real router here.
    pub(crate) fn set_router_present(&self, router: RouterId, present: bool) {
        let mut row = lock(&self.row);
        if present {
            row.routers.insert(router);
        } else {
            row.routers.remove(&router);
        }
        drop(row);
        self.touch();
    }

    /// Whether `router` has a real router here.
    pub(crate) fn has_router(&self, router: &RouterId) -> bool {
        lock(&self.row).routers.contains(router)
    }

    /// How many virtual routers have a real router here.
    pub(crate) fn router_count(&self) -> usize {
        lock(&self.row).routers.len()
    }

    /// The virtual routers with a real router here.
    pub(crate) fn routers_present(&self) -> HashSet<RouterId> {
        lock(&self.row).routers.clone()
    }

    /// Registers a virtual object to be detached when the cell closes; refused once the cell is
    /// closed (the caller drops what it made there and places again).
    pub(crate) fn join(&self, member: Weak<dyn Member>) -> Result<(), CellClosedError> {
        let mut members = lock(&self.members);
        // Checked under the members' lock: `close` takes them under the same lock after
        // setting the flag, so a member either joins before and is detached, or is refused.
        if self.is_closed() {
            return Err(CellClosedError(self.id));
        }
        push_live(&mut members, member);
        Ok(())
    }

    /// True when nothing lives here.
    pub fn is_idle(&self) -> bool {
        self.counts.all_zero() && lock(&self.row).routers.is_empty()
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

    /// CPU time the cell's worker has used so far (`None` when closed or unreadable).
    pub fn cpu_time(&self) -> Option<Duration> {
        self.worker().and_then(|w| w.cpu_time())
    }

    /// Samples the worker's CPU time and updates the CPU share. Returns false when the CPU
    /// time could not be read: the share is then estimated from the consumers it carries
    /// ([`FALLBACK_CONSUMERS_PER_CORE`] per core).
    pub(crate) fn sample_cpu(&self) -> bool {
        let used = self.cpu_time();
        let now = Instant::now();
        let consumers = self.count(Count::Consumer);
        let mut row = lock(&self.row);
        let meter = &mut row.cpu;
        let Some(used) = used else {
            meter.last = None;
            meter.estimated = true;
            meter.share = (f64::from(consumers) / FALLBACK_CONSUMERS_PER_CORE).min(1.0);
            return false;
        };
        if let Some((at, before)) = meter.last {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                meter.share = used.saturating_sub(before).as_secs_f64() / wall;
            }
        }
        meter.estimated = false;
        meter.last = Some((now, used));
        true
    }

    /// The last measured (or estimated) CPU share.
    pub fn cpu(&self) -> f64 {
        lock(&self.row).cpu.share
    }

    /// Whether the CPU share is estimated (the worker's CPU time could not be read).
    pub fn cpu_estimated(&self) -> bool {
        lock(&self.row).cpu.estimated
    }

    /// Records the model's view at a sample: what the cell carries now, and the cost of what it
    /// carries (not of what it expects).
    pub(crate) fn mark_sample(&self, load: Load, cost: f64) {
        let mut row = lock(&self.row);
        row.at_sample = cost;
        row.load_at_sample = load;
    }

    /// What the cell carried at the last sample.
    pub(crate) fn load_at_sample(&self) -> Load {
        lock(&self.row).load_at_sample
    }

    /// The predicted CPU share at `coefficients` (see [`crate::internals::load_model::predicted`]); reading it
    /// changes nothing.
    pub fn predicted(&self, coefficients: &Coefficients) -> f64 {
        let now = self.ledger.load();
        let row = lock(&self.row);
        now.predicted(coefficients, row.cpu.share, row.at_sample)
    }

    /// What placement sees of this cell for a request of `router` with `labels` (pushing one
    /// match per label onto `matches`), priced at `coefficients`.
    pub(crate) fn placement_row(
        &self,
        router: &RouterId,
        labels: &[(String, String)],
        coefficients: &Coefficients,
        matches: &mut Vec<LabelMatch>,
    ) -> RowReading {
        let now = self.ledger.load();
        let row = lock(&self.row);
        for (key, value) in labels {
            let found = row.labels.get(key).map_or(LabelMatch::default(), |values| LabelMatch {
                same: values.get(value).copied().unwrap_or(0),
                distinct: u32::try_from(values.len()).unwrap_or(u32::MAX),
            });
            matches.push(found);
        }
        RowReading {
            cpu: row.cpu.share,
            predicted: now.predicted(coefficients, row.cpu.share, row.at_sample),
            hosts_router: row.routers.contains(router),
            routers: u32::try_from(row.routers.len()).unwrap_or(u32::MAX),
            counts: [Count::Transport, Count::Producer, Count::Consumer, Count::Pipe].map(|c| self.count(c)),
            draining: self.is_draining(),
        }
    }

    /// Counts a CPU sample above (`hot`) or below the watermark; returns the run length.
    pub(crate) fn count_hot(&self, hot: bool) -> u32 {
        if hot {
            self.hot_samples.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.hot_samples.store(0, Ordering::Relaxed);
            0
        }
    }

    /// The real producers and consumers living here (their stats are the cell's media).
    pub(crate) fn media_probes(&self) -> Vec<crate::internals::media_counters::MediaProbe> {
        let members: Vec<Weak<dyn Member>> = lock(&self.members).clone();
        let mut probes = Vec::new();
        for member in members.iter().filter_map(Weak::upgrade) {
            member.media(&mut probes);
        }
        probes
    }

    /// The open transports living here, oldest first, with their virtual routers.
    pub fn transports(&self) -> Vec<(RouterId, mediasoup::prelude::TransportId)> {
        let members: Vec<Weak<dyn Member>> = lock(&self.members).clone();
        members.iter().filter_map(Weak::upgrade).filter_map(|m| m.transport()).collect()
    }

    /// What placement sees of this cell, as the plugin contract's `Cell` (stats, the autoscale
    /// snapshot, the simulator): routers and labels spelt out.
    pub fn load(&self, coefficients: &Coefficients) -> CellLoad {
        let predicted = self.predicted(coefficients);
        let row = lock(&self.row);
        let mut routers: Vec<String> = row.routers.iter().map(ToString::to_string).collect();
        routers.sort();
        let mut labels: Vec<(String, u32)> = row
            .labels
            .iter()
            .flat_map(|(key, values)| values.iter().map(move |(value, n)| (format!("{key}={value}"), *n)))
            .collect();
        labels.sort();
        CellLoad {
            id: self.id.0,
            node: self.node.to_string(),
            region: self.region.to_string(),
            cpu: row.cpu.share,
            predicted,
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
        let members = {
            let mut members = lock(&self.members);
            if self.closed.swap(true, Ordering::AcqRel) {
                return None;
            }
            std::mem::take(&mut *members)
        };
        self.set_draining(DrainCause::Closed, true);
        let mut lost = Lost::default();
        for member in members.iter().filter_map(Weak::upgrade) {
            member.detach(&mut lost);
        }
        lock(&self.worker).take();
        Some(lost)
    }
}
