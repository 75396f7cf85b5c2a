//! The host: the cells (workers) shared by every virtual worker and router, the placement
//! engine, the background sampler (CPU per worker, idle release) and host-wide events.
//!
//! The host sits below the API layer and never names its types: virtual routers register as
//! [`RouterReport`]s (for stats and for the cells they lose), virtual workers subscribe to
//! [`Host::on_cell_closed`].

use crate::backend::local::WorkerTemplate;
use crate::backend::{RouterBackend, WorkerBackend};
use crate::config::HostOptions;
use crate::internals::cell::{Cell, DrainCause, Location, Origin, SettingsSet};
use crate::internals::load_model::{Coefficients, Learner, RateBook, Reservation, PRIOR_HALF_LIFE};
use crate::internals::node_scope::{NodeScope, Scope};
use crate::internals::object::{lock, within, EventBag};
use crate::internals::port_plan::PortClaims;
use crate::isolation::restarts::{self, Restart, Restarts};
use crate::placement::{
    pack_rows, Candidates, CellId, CellLoad, EngineCounters, LabelMatch, Placement, PlacementEngine, PlacementPolicy,
    PlacementRequest, PlacementRow, RowReading,
};
use crate::plugin::monotonic_ms;
use crate::plugin::AuthGate;
use crate::stats::{CellStats, HostStats, RouterStats};
use async_trait::async_trait;
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::{AuthRequest, Denial, Grant, Node, Operation, Snapshot};
use mediasoup::prelude::{RouterOptions, RtpCapabilitiesFinalized, RtpCodecCapability, TransportId};
use mediasoup::router::{RouterId, UpdateMediaCodecsError};
use mediasoup::worker::{
    CreateRouterError, ExitError, RequestError, RtpCapabilitiesError, WorkerId, WorkerUpdateSettings,
};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

/// Why a cell was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// It hosted nothing for the idle grace period.
    Idle,
    /// It was retired on request (operator, autoscaler, host stop).
    Retired,
    /// Its worker died.
    Died,
}

/// A cell was closed; what it took with it.
#[derive(Debug, Clone)]
pub struct CellClosed {
    /// The cell.
    pub cell: CellId,
    /// Its settings-set.
    pub settings_set: SettingsSet,
    /// Its worker.
    pub worker: WorkerId,
    /// Why.
    pub reason: CloseReason,
    /// How the worker died, when it did.
    pub exit: Option<ExitError>,
    /// Transports that were closed with it, with their virtual router.
    pub lost_transports: Vec<(RouterId, TransportId)>,
    /// The node of a cell of another host (`None` for this process's own workers).
    pub node: Option<String>,
}

/// A cell started or stopped taking new transports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellDraining {
    /// The cell.
    pub cell: CellId,
    /// Its worker.
    pub worker: WorkerId,
    /// The node running it (this host's own node for its workers).
    pub node: String,
    /// True when it now takes no new transports; false when it takes them again.
    pub draining: bool,
}

/// Worker deaths and replacements so far (the metrics' counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounters {
    /// Workers of this host that died (crash, kill, lost process).
    pub crashes: u64,
    /// Workers started in place of dead ones.
    pub restarts: u64,
    /// Worker slots left down after a crash loop.
    pub slots_down: usize,
}

/// Every operation an auth plugin decides, in the contract's order (auth counters' index).
pub const AUTH_OPERATIONS: [Operation; 8] = [
    Operation::Connect,
    Operation::CreateRouter,
    Operation::CreateTransport,
    Operation::Produce,
    Operation::Consume,
    Operation::ProduceData,
    Operation::ConsumeData,
    Operation::Admin,
];

/// Samples in a row a worker must stay above the CPU watermark before rebalance advice.
pub const REBALANCE_AFTER: u32 = 3;

/// Advice to a cooperating application: a worker stayed above the CPU watermark while another
/// has room; re-creating the named transports (placement puts them where there is room) would
/// bring it under. mafalda never moves a live transport itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RebalanceAdvice {
    /// The overloaded cell.
    pub from: CellId,
    /// Its measured CPU share.
    pub cpu: f64,
    /// The cell with the most room (lowest predicted share) in the same settings set.
    pub to: CellId,
    /// Transports to re-create, most recently placed first (those moving cost their peers
    /// least), with their virtual routers: enough to bring `from` under the watermark at its
    /// average cost per transport.
    pub transports: Vec<(RouterId, TransportId)>,
}

/// Placement could not give a cell.
#[derive(Debug, Error)]
pub enum PlaceError {
    /// The policy refused the transport.
    #[error("placement rejected the transport: {0}")]
    Rejected(String),
    /// A new worker could not be started.
    #[error("could not start a worker: {0}")]
    Spawn(#[from] std::io::Error),
}

/// Starts real workers for the host (the in-process launcher; tests may give another).
#[async_trait]
pub(crate) trait WorkerLauncher: Send + Sync {
    /// Starts a worker made from `template`.
    async fn start(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>>;
    /// Starts a worker in this process whatever the isolation (the RTP capabilities
    /// calculator: no media, and it computes synchronously).
    async fn start_in_process(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
        self.start(template).await
    }
}

#[async_trait]
impl WorkerLauncher for crate::backend::local::LocalWorkers {
    async fn start(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
        Ok(Arc::new(crate::backend::local::LocalWorkers::start(self, template).await?))
    }
}

/// What the host asks of a virtual router (implemented by the API layer).
pub(crate) trait RouterReport: Send + Sync {
    /// The virtual router's id.
    fn id(&self) -> RouterId;
    /// The router's numbers.
    fn stats(&self) -> RouterStats;
    /// A cell closed; `was_present` when the router had a real router there.
    fn cell_closed(&self, event: &CellClosed, was_present: bool);
    /// Adds the sizes of the router's own tables to `footprint` ([`Host::footprint`]).
    fn footprint(&self, footprint: &mut crate::internals::footprint::Footprint);
}

#[derive(Default)]
struct Events {
    new_cell: EventBag<CellId>,
    cell_closed: EventBag<CellClosed>,
    rebalance: EventBag<RebalanceAdvice>,
    set_lost: EventBag<(SettingsSet, ExitError)>,
    cell_draining: EventBag<CellDraining>,
}

impl Events {
    /// Handlers registered on every event ([`Host::footprint`]).
    fn handlers(&self) -> usize {
        let count = std::cell::Cell::new(0);
        self.new_cell.call(|_| count.set(count.get() + 1));
        self.cell_closed.call(|_| count.set(count.get() + 1));
        self.rebalance.call(|_| count.set(count.get() + 1));
        self.set_lost.call(|_| count.set(count.get() + 1));
        self.cell_draining.call(|_| count.set(count.get() + 1));
        count.get()
    }
}

/// Computes RTP capabilities for virtual routers. mediasoup computes a router's capabilities
/// in Rust (`Router::update_media_codecs` needs no worker round trip) but does not export the
/// function, so the host keeps one empty real router for it, on a worker of its own started on
/// the first `create_router` (not a cell: no media, never placed on, never released). Both
/// paths (`create_router`, `update_media_codecs`) update and read it under one lock.
#[derive(Default)]
struct Calculator {
    router: Mutex<Option<Arc<dyn RouterBackend>>>,
    /// Serialises starting the calculator's worker; holds it for the host's lifetime.
    worker: tokio::sync::Mutex<Option<Arc<dyn WorkerBackend>>>,
}

impl Calculator {
    /// The capabilities of a router with `media_codecs` (an error when the calculator was never
    /// started, which `Host::rtp_capabilities` does first).
    fn compute(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, UpdateMediaCodecsError> {
        let router = lock(&self.router);
        let Some(router) = router.as_ref() else {
            return Err(UpdateMediaCodecsError::FailedRtpCapabilitiesGeneration(RtpCapabilitiesError::CannotAllocate));
        };
        router.update_media_codecs(media_codecs)?;
        Ok(router.rtp_capabilities())
    }
}

/// The shared state behind every virtual worker and router of one `WorkerManager`.
pub struct Host {
    /// The host itself, for work handed to other threads.
    me: Weak<Host>,
    options: HostOptions,
    launcher: Arc<dyn WorkerLauncher>,
    templates: Mutex<Vec<WorkerTemplate>>,
    /// The open cells, in creation order: replaced as a whole when a cell comes or goes, so
    /// readers take a snapshot and hold no lock while they use it.
    cells: RwLock<Arc<Vec<Arc<Cell>>>>,
    next_cell: AtomicU32,
    engine: PlacementEngine,
    /// The load model's costs, as of the last sample.
    coefficients: RwLock<Coefficients>,
    /// Learns them (the sampler's).
    learner: Mutex<Learner>,
    /// The producers' packet rates.
    rates: RateBook,
    /// Held from reading the cells to reserving room in the chosen one (and by the sampler while
    /// it moves the baseline): parallel decisions see each other. An async lock: waiting for it
    /// (while a plugin decides, at most its wall-time bound) parks no runtime thread.
    placing: tokio::sync::Mutex<()>,
    /// Bumped whenever a cell is added or removed (a decision to spawn made on an older view is
    /// taken again).
    generation: AtomicU64,
    spawn_lock: tokio::sync::Mutex<()>,
    /// Crashes per worker slot: the back-off of their replacements and the crash-loop limit.
    restarts: Mutex<Restarts>,
    /// Set by [`Host::close_all`]: dead workers are no longer replaced.
    stopping: AtomicBool,
    /// Set by [`Host::drain`]: this host's cells take no new transports and no worker is
    /// started for placement.
    draining: AtomicBool,
    /// Held while the drain flag changes and its cells follow, and while a cell joins.
    drain_lock: Mutex<()>,
    /// Bumped whenever one of this host's cells starts or stops draining (the cluster's
    /// adverts go out at once).
    drain_changes: tokio::sync::watch::Sender<u64>,
    crashes: AtomicU64,
    restarts_done: AtomicU64,
    /// A fleet's node selection (none: every node's cells are candidates).
    node_scope: RwLock<Option<Weak<dyn NodeScope>>>,
    /// Auth decisions per operation: `[granted, denied]`.
    auth_decisions: [[AtomicU64; 2]; AUTH_OPERATIONS.len()],
    reporters: Mutex<Vec<Weak<dyn RouterReport>>>,
    calculator: Calculator,
    server_ports: PortClaims,
    auth: RwLock<Option<Arc<AuthGate>>>,
    events: Events,
    cpu_warned: AtomicBool,
    /// The cores this process may run on (workers are pinned to them with `pin_workers`).
    cores: Vec<usize>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("cells", &self.cells().len()).field("policy", &self.engine.policy_name()).finish()
    }
}

/// A cell priced at the model's current costs, as placement reads it.
struct Priced<'a> {
    cell: &'a Arc<Cell>,
    coefficients: &'a Coefficients,
}

impl PlacementRow<RouterId> for Priced<'_> {
    fn id(&self) -> u32 {
        self.cell.id().0
    }

    fn location(&self) -> (&Arc<str>, &Arc<str>) {
        self.cell.location()
    }

    fn read(&self, router: &RouterId, labels: &[(String, String)], matches: &mut Vec<LabelMatch>) -> RowReading {
        self.cell.placement_row(router, labels, self.coefficients, matches)
    }
}

/// The lowest slot not used by the cells of the same machine: this process's own cells, or the
/// cells of one remote node (slots choose WebRTC server ports, which are per machine).
/// Slots left down after a crash loop (`down`) are not handed out again.
fn free_slot(cells: &[Arc<Cell>], origin: Origin, node: &str, down: &[usize]) -> usize {
    let same_machine = |c: &&Arc<Cell>| match origin {
        Origin::Remote => c.origin() == Origin::Remote && c.node() == node,
        _ => c.origin() != Origin::Remote,
    };
    let mut taken: Vec<usize> = cells.iter().filter(same_machine).map(|c| c.slot()).collect();
    if origin != Origin::Remote {
        taken.extend_from_slice(down);
    }
    (0..).find(|slot| !taken.contains(slot)).unwrap_or(taken.len())
}

impl Host {
    /// A host with no worker yet; `policy` decides placements, `launcher` starts workers (the
    /// first settings-set is `template`). Starts the sampler thread.
    pub(crate) fn new(
        options: HostOptions,
        policy: Arc<dyn PlacementPolicy>,
        launcher: Arc<dyn WorkerLauncher>,
        template: WorkerTemplate,
    ) -> Arc<Self> {
        let fallback = options.pack();
        let host = Arc::new_cyclic(|me| Self {
            me: Weak::clone(me),
            launcher,
            templates: Mutex::new(vec![template]),
            cells: RwLock::default(),
            next_cell: AtomicU32::new(0),
            engine: PlacementEngine::new(policy, fallback),
            coefficients: RwLock::new(Coefficients::DEFAULT),
            learner: Mutex::default(),
            rates: RateBook::default(),
            placing: tokio::sync::Mutex::new(()),
            generation: AtomicU64::new(0),
            spawn_lock: tokio::sync::Mutex::new(()),
            restarts: Mutex::default(),
            stopping: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            drain_lock: Mutex::new(()),
            drain_changes: tokio::sync::watch::channel(0).0,
            crashes: AtomicU64::new(0),
            restarts_done: AtomicU64::new(0),
            node_scope: RwLock::new(None),
            auth_decisions: Default::default(),
            reporters: Mutex::default(),
            calculator: Calculator::default(),
            server_ports: PortClaims::default(),
            auth: RwLock::default(),
            events: Events::default(),
            cpu_warned: AtomicBool::new(false),
            cores: crate::backend::local::current_thread_cores().unwrap_or_default(),
            options,
        });
        spawn_sampler(Arc::downgrade(&host));
        host
    }

    /// The options the host runs with.
    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// The port plans of the live WebRTC servers.
    pub(crate) fn server_ports(&self) -> &PortClaims {
        &self.server_ports
    }

    /// The placement engine.
    pub fn placement(&self) -> &PlacementEngine {
        &self.engine
    }

    /// Open cells, in creation order.
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        self.snapshot_cells().to_vec()
    }

    /// The open cells now (a shared snapshot).
    fn snapshot_cells(&self) -> Arc<Vec<Arc<Cell>>> {
        Arc::clone(&self.cells.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The dump of every worker of this process (cells of other hosts aside), unfiltered:
    /// what an operator or a leak check reads.
    pub async fn worker_dumps(
        &self,
    ) -> Vec<(CellId, Result<mediasoup::worker::WorkerDump, mediasoup::worker::RequestError>)> {
        let mut dumps = Vec::new();
        for cell in self.cells().into_iter().filter(|c| c.origin() != Origin::Remote) {
            if let Some(worker) = cell.worker() {
                dumps.push((cell.id(), worker.dump().await));
            }
        }
        dumps
    }

    /// The open cell with this id.
    pub fn cell(&self, id: CellId) -> Option<Arc<Cell>> {
        self.cells().into_iter().find(|c| c.id() == id)
    }

    /// Every cell as the plugin contract's `Cell` (stats, the autoscale snapshot).
    pub fn loads(&self) -> Vec<CellLoad> {
        let coefficients = self.coefficients();
        self.cells().iter().map(|c| c.load(&coefficients)).collect()
    }

    /// The load model's current costs.
    pub fn coefficients(&self) -> Coefficients {
        *self.coefficients.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The producers' packet rates the model prices consumers at.
    pub(crate) fn rates(&self) -> &RateBook {
        &self.rates
    }

    /// The settings-set of workers made from `template` (a new one if no set has the same
    /// settings). Sets keep their workers apart: a virtual worker's routers use only its set.
    pub(crate) fn settings_set(&self, template: WorkerTemplate) -> SettingsSet {
        let mut templates = lock(&self.templates);
        if let Some(at) = templates.iter().position(|t| t.same_as(&template)) {
            return SettingsSet(at);
        }
        templates.push(template);
        SettingsSet(templates.len() - 1)
    }

    /// Applies new log settings to the set's running workers and to those it starts later.
    pub(crate) async fn update_settings(
        &self,
        set: SettingsSet,
        data: WorkerUpdateSettings,
    ) -> Result<(), RequestError> {
        if let Some(template) = lock(&self.templates).get_mut(set.0) {
            template.update(&data);
        }
        for cell in self.cells().into_iter().filter(|c| c.settings_set() == set && c.origin() != Origin::Remote) {
            if let Some(worker) = cell.worker() {
                worker.update_settings(data.clone()).await?;
            }
        }
        Ok(())
    }

    /// Starts one more worker in the first settings-set (kept until retired, as an operator or
    /// the autoscaler asks), unless the pool is at its maximum.
    pub async fn spawn_cell(self: &Arc<Self>) -> Result<Option<Arc<Cell>>, PlaceError> {
        self.spawn_in(SettingsSet::default(), Origin::Kept).await
    }

    /// Starts one more worker in `set`, unless the pool is at its maximum.
    pub(crate) async fn spawn_in(
        self: &Arc<Self>,
        set: SettingsSet,
        origin: Origin,
    ) -> Result<Option<Arc<Cell>>, PlaceError> {
        self.spawn_unless_changed(set, origin, None).await
    }

    /// As [`Host::spawn_in`], unless the cells changed since `seen` (a [`Host::generation`]):
    /// a decision to spawn made on an older view is taken again instead.
    async fn spawn_unless_changed(
        self: &Arc<Self>,
        set: SettingsSet,
        origin: Origin,
        seen: Option<u64>,
    ) -> Result<Option<Arc<Cell>>, PlaceError> {
        let _serial = self.spawn_lock.lock().await;
        if seen.is_some_and(|seen| seen != self.generation.load(Ordering::Acquire)) {
            return Ok(None);
        }
        if self.local_cells() >= self.options.pool.max_workers {
            return Ok(None);
        }
        let location =
            Location { node: self.options.node.as_str().into(), region: self.options.region.as_str().into() };
        let down = lock(&self.restarts).given_up().to_vec();
        let slot = free_slot(&self.cells(), origin, &location.node, &down);
        let mut template = lock(&self.templates).get(set.0).cloned().unwrap_or_default();
        template.rtc_ports = self.options.pool.rtc_min_port..=self.options.pool.rtc_max_port;
        if self.options.pool.pin_workers {
            template.core = self.cores.get(slot % self.cores.len().max(1)).copied();
        }
        let worker = self.launcher.start(&template).await?;
        // A worker process reports its own id: one that claims a live worker's is refused.
        if self.cells().iter().any(|c| !c.is_closed() && c.worker_id() == worker.id()) {
            return Err(PlaceError::Spawn(std::io::Error::other(format!(
                "a started worker claims the id {} of a live one",
                worker.id()
            ))));
        }
        Ok(Some(self.admit(worker, set, origin, location, slot)))
    }

    /// This process's own open cells.
    fn local_cells(&self) -> usize {
        self.cells().iter().filter(|c| c.origin() != Origin::Remote).count()
    }

    /// Adds a worker of another host (a cluster link found it); it serves every settings-set.
    pub(crate) fn add_remote_cell(
        self: &Arc<Self>,
        worker: Arc<dyn WorkerBackend>,
        node: String,
        region: String,
    ) -> Arc<Cell> {
        let slot = free_slot(&self.cells(), Origin::Remote, &node, &[]);
        let location = Location { node: node.as_str().into(), region: region.as_str().into() };
        self.admit(worker, SettingsSet::default(), Origin::Remote, location, slot)
    }

    /// Whether an auth plugin is installed.
    pub fn has_auth(&self) -> bool {
        self.auth.read().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
    }

    /// Makes a cell of a started worker.
    fn admit(
        self: &Arc<Self>,
        worker: Arc<dyn WorkerBackend>,
        set: SettingsSet,
        origin: Origin,
        location: Location,
        slot: usize,
    ) -> Arc<Cell> {
        let id = CellId(self.next_cell.fetch_add(1, Ordering::Relaxed));
        let cell = Arc::new(Cell::new(id, slot, set, origin, location, Arc::clone(&worker)));
        cell.sample_cpu();
        let weak = Arc::downgrade(self);
        cell.watch_draining(Box::new(move |cell, draining| {
            if let Some(host) = weak.upgrade() {
                host.cell_draining(cell, draining);
            }
        }));
        let silent_cell = Arc::downgrade(&cell);
        worker.on_silence(Box::new(move |silent| {
            if let Some(cell) = silent_cell.upgrade() {
                cell.set_draining(DrainCause::Silent, silent);
            }
        }));
        let weak = Arc::downgrade(self);
        worker
            .on_dead(Box::new(move |exit| {
                if let Some(host) = weak.upgrade() {
                    host.close_cell_with(id, CloseReason::Died, Some(exit));
                }
            }))
            .detach();
        {
            // Under the drain lock: a drain or undrain either sees this cell in the list or
            // this sees its flag (a cell started meanwhile is never left behind).
            let _drain = lock(&self.drain_lock);
            let mut cells = self.cells.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut next = cells.to_vec();
            next.push(Arc::clone(&cell));
            *cells = Arc::new(next);
            drop(cells);
            if origin != Origin::Remote && self.is_draining() {
                cell.set_draining(DrainCause::HostDraining, true);
            }
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        info!(cell = %id, worker = %worker.id(), slot, set = set.0, ?origin, node = %cell.node(), "new cell");
        self.events.new_cell.call_simple(&id);
        cell
    }

    /// Starts workers in `set` until the pool has `min_workers` (or is full).
    pub(crate) async fn ensure_min_workers(self: &Arc<Self>, set: SettingsSet) -> Result<(), PlaceError> {
        while self.local_cells() < self.options.pool.min_workers {
            if self.spawn_in(set, Origin::Pool).await?.is_none() {
                break;
            }
        }
        Ok(())
    }

    /// RTP capabilities of a router with `media_codecs`, as mediasoup computes them (on the
    /// calculator's router, started here the first time).
    pub(crate) async fn rtp_capabilities(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, CreateRouterError> {
        let request = |e: RequestError| CreateRouterError::Request(e);
        if lock(&self.calculator.router).is_none() {
            let mut worker = self.calculator.worker.lock().await;
            if lock(&self.calculator.router).is_none() {
                let started = match worker.as_ref() {
                    Some(started) => Arc::clone(started),
                    None => {
                        let template = WorkerTemplate {
                            log_level: mediasoup::worker::WorkerLogLevel::Error,
                            log_tags: Vec::new(),
                            ..WorkerTemplate::default()
                        };
                        let started = self
                            .launcher
                            .start_in_process(&template)
                            .await
                            .map_err(|e| request(RequestError::Response { reason: e.to_string() }))?;
                        worker.insert(started).clone()
                    }
                };
                let router = started.create_router(RouterOptions::new(Vec::new())).await.map_err(request)?;
                lock(&self.calculator.router).get_or_insert(router);
            }
        }
        self.calculator.compute(media_codecs).map_err(|e| match e {
            UpdateMediaCodecsError::FailedRtpCapabilitiesGeneration(e) => {
                CreateRouterError::FailedRtpCapabilitiesGeneration(e)
            }
        })
    }

    /// As [`Host::rtp_capabilities`], synchronously (the calculator exists once a router was
    /// created, which every caller's router was).
    pub(crate) fn rtp_capabilities_for(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, UpdateMediaCodecsError> {
        self.calculator.compute(media_codecs)
    }

    /// Finds a cell of `set` for `request` (a transport of `router` expected to forward `prior`
    /// packets per second by kind) and reserves that room in it, starting a worker when
    /// placement says so; never `avoid` unless it is the only possible cell. Reading the cells,
    /// deciding and reserving happen under one lock, so parallel decisions see each other.
    pub(crate) async fn place(
        self: &Arc<Self>,
        mut request: PlacementRequest,
        router: RouterId,
        prior: [f64; 2],
        set: SettingsSet,
        avoid: &[CellId],
    ) -> Result<(Arc<Cell>, Reservation), PlaceError> {
        let scope = self.scope_for(router, &request).await;
        // A cell may vanish or the pool may fill between deciding and acting: decide again.
        for _ in 0..8 {
            let seen = {
                let _placing = self.placing.lock().await;
                let seen = self.generation.load(Ordering::Acquire);
                let cells = self.snapshot_cells();
                let (open, max_cells) = self.open_cells(&cells, set, avoid, scope.as_deref());
                request.max_cells = max_cells;
                if open.is_empty() && max_cells == 0 {
                    if let Some(cell) = avoid.iter().find_map(|id| cells.iter().find(|c| c.id() == *id)) {
                        return Ok((Arc::clone(cell), cell.ledger().reserve(prior)));
                    }
                }
                let view = self.candidates(&request, &router, &open);
                match self.engine.decide(&request, &view).placement {
                    Placement::Existing(id) => {
                        if let Some(cell) = open.iter().find(|c| c.id() == id) {
                            return Ok((Arc::clone(cell), cell.ledger().reserve(prior)));
                        }
                        continue;
                    }
                    Placement::Spawn => seen,
                    Placement::Rejected(reason) => return Err(PlaceError::Rejected(reason)),
                }
            };
            if let Some(cell) = self.spawn_unless_changed(set, Origin::Pool, Some(seen)).await? {
                let reservation = cell.ledger().reserve(prior);
                return Ok((cell, reservation));
            }
        }
        Err(PlaceError::Rejected("the pool changed under every placement attempt".into()))
    }

    /// The candidates of a request of `set` among `cells` (never `avoid` ones), and how many
    /// cells its view may have (the candidates plus the local workers the pool may still
    /// start: remote cells do not count against `max_workers`).
    fn open_cells<'a>(
        &self,
        cells: &'a [Arc<Cell>],
        set: SettingsSet,
        avoid: &[CellId],
        scope: Option<&[String]>,
    ) -> (Vec<&'a Arc<Cell>>, u32) {
        let local = |c: &&Arc<Cell>| c.origin() != Origin::Remote;
        let usable = |c: &&Arc<Cell>| !c.is_closed() && !avoid.contains(&c.id());
        let mut open: Vec<&Arc<Cell>> = cells.iter().filter(|c| c.serves(set)).filter(usable).collect();
        if let Some(nodes) = scope {
            // Node selection's hosts (and this host's own cells); when none of their cells is
            // open, every cell stays a candidate rather than refusing the transport.
            let scoped: Vec<&Arc<Cell>> =
                open.iter().copied().filter(|c| local(c) || nodes.iter().any(|n| n == c.node())).collect();
            if scoped.iter().any(|c| !c.is_draining()) {
                open = scoped;
            }
        }
        let local_cells = cells.iter().filter(local).count();
        // A draining host starts no worker for a new transport.
        let room = if self.is_draining() { 0 } else { self.options.pool.max_workers.saturating_sub(local_cells) };
        if open.is_empty() && room == 0 {
            // Other settings hold the whole pool: their workers serve this set too (its port
            // range reaches its transports through their listen infos; only log settings
            // differ) rather than refuse a transport while there is room.
            open = cells.iter().filter(local).filter(usable).collect();
        }
        let max_cells = u32::try_from(open.len() + room).unwrap_or(u32::MAX);
        (open, max_cells)
    }

    /// The placement policy deciding now.
    pub(crate) fn placement_policy(&self) -> Arc<dyn crate::placement::PlacementPolicy> {
        self.engine.policy()
    }

    /// Lets a fleet's node selection scope placements (held weakly: the fleet owns itself).
    pub fn set_node_scope(&self, scope: Weak<dyn NodeScope>) {
        *self.node_scope.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(scope);
    }

    /// The nodes node selection allows for a transport of `router` (`None`: any).
    async fn scope_for(&self, router: RouterId, request: &PlacementRequest) -> Scope {
        let scope = self.node_scope.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let scope = scope?.upgrade()?;
        let mut used: Vec<String> = self
            .cells()
            .iter()
            .filter(|c| c.origin() == Origin::Remote && !c.is_closed() && c.has_router(&router))
            .map(|c| c.node().to_string())
            .collect();
        used.sort_unstable();
        used.dedup();
        let region = request.labels.iter().find(|(key, _)| key == "region").map(|(_, value)| value.clone());
        scope.nodes_for(router, region, used).await
    }

    /// `cells` as `request` (for `router`) sees them, packed from each cell's placement row.
    fn candidates(&self, request: &PlacementRequest, router: &RouterId, cells: &[&Arc<Cell>]) -> Candidates {
        let coefficients = self.coefficients();
        let rows: Vec<Priced<'_>> = cells.iter().map(|cell| Priced { cell, coefficients: &coefficients }).collect();
        pack_rows(rows.iter(), router, &request.labels)
    }

    /// Where placement would put a transport of `router` with `app_data` now (nothing is
    /// reserved, no worker started): the cell, `None` for a worker it would start, or the
    /// refusal. It runs the decision `place` runs (same lock, rows and policy).
    pub(crate) async fn preview(
        &self,
        router: RouterId,
        set: SettingsSet,
        app_data: &mediasoup::prelude::AppData,
    ) -> Result<Option<CellId>, PlaceError> {
        let mut request = crate::labels::request_for(&router.to_string(), app_data);
        let _placing = self.placing.lock().await;
        let cells = self.snapshot_cells();
        let (open, max_cells) = self.open_cells(&cells, set, &[], None);
        request.max_cells = max_cells;
        let view = self.candidates(&request, &router, &open);
        match self.engine.decide(&request, &view).placement {
            Placement::Existing(id) => Ok(Some(id)),
            Placement::Spawn => Ok(None),
            Placement::Rejected(reason) => Err(PlaceError::Rejected(reason)),
        }
    }

    /// Closes a cell: every object in it is closed (their close events fire) and its worker is
    /// released. Returns what was lost, or `None` for an unknown or already closed cell.
    pub fn close_cell(&self, id: CellId, reason: CloseReason) -> Option<CellClosed> {
        self.close_cell_with(id, reason, None)
    }

    fn close_cell_with(&self, id: CellId, reason: CloseReason, exit: Option<ExitError>) -> Option<CellClosed> {
        let cell = {
            let mut cells = self.cells.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = cells.iter().position(|c| c.id() == id)?;
            let mut next = cells.to_vec();
            let cell = next.remove(at);
            *cells = Arc::new(next);
            cell
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        let present = cell.routers_present();
        let lost = cell.close()?;
        let event = CellClosed {
            cell: id,
            settings_set: cell.settings_set(),
            worker: cell.worker_id(),
            reason,
            exit,
            lost_transports: lost.transports,
            node: (cell.origin() == Origin::Remote).then(|| cell.node().to_string()),
        };
        match reason {
            CloseReason::Died => {
                warn!(cell = %id, worker = %event.worker, node = %cell.node(), ?exit, lost = event.lost_transports.len(), "worker died; cell closed")
            }
            _ => {
                info!(cell = %id, worker = %event.worker, node = %cell.node(), ?reason, lost = event.lost_transports.len(), "cell closed")
            }
        }
        for router in self.reporters() {
            router.cell_closed(&event, present.contains(&router.id()));
        }
        self.events.cell_closed.call_simple(&event);
        if reason == CloseReason::Died && cell.origin() != Origin::Remote {
            self.crashes.fetch_add(1, Ordering::Relaxed);
            self.replace_dead(cell.settings_set(), cell.origin(), cell.slot(), exit.unwrap_or(ExitError::Unexpected));
        }
        Some(event)
    }

    /// After a worker of `set` in `slot` died: a replacement of the same origin is started (on
    /// a thread of its own: the dying worker's thread must not wait, nor the deferred thread),
    /// so the pool keeps its capacity. The slot's crashes set the back-off; past the crash-loop
    /// limit ([`restarts::CRASH_LIMIT`] in [`restarts::CRASH_WINDOW`], a failed start counting
    /// as a crash) the slot stays down, the host reports itself not ready ([`Host::readiness`])
    /// and, when no worker can serve the set any more, its virtual workers are told
    /// (`Worker::on_dead`).
    fn replace_dead(&self, set: SettingsSet, origin: Origin, slot: usize, exit: ExitError) {
        let Some(host) = self.me.upgrade() else { return };
        let spawned = std::thread::Builder::new().name("mafalda-replace".into()).spawn(move || loop {
            if host.stopping.load(Ordering::Acquire) {
                return;
            }
            let decision = lock(&host.restarts).crashed(slot, std::time::Instant::now());
            match decision {
                Restart::GiveUp { crashes } => {
                    tracing::error!(
                        slot,
                        crashes,
                        window = ?restarts::CRASH_WINDOW,
                        "worker slot in a crash loop: not restarted any more (the host reports not ready)"
                    );
                    if host.cells().iter().all(|c| !c.serves(set) || c.is_closed()) {
                        warn!(set = set.0, "no worker can serve this settings set any more");
                        host.events.set_lost.call_simple(&(set, exit));
                    }
                    return;
                }
                Restart::After(wait) => std::thread::sleep(wait),
            }
            match futures_lite::future::block_on(host.spawn_in(set, origin)) {
                // Started, or the pool is full (of other settings' workers, which serve).
                Ok(started) => {
                    lock(&host.restarts).started(slot);
                    if started.is_some() {
                        host.restarts_done.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
                Err(error) => warn!(set = set.0, slot, %error, "could not start a worker in place of the dead one"),
            }
        });
        if let Err(error) = spawned {
            warn!(%error, "could not start the thread replacing a dead worker");
        }
    }

    /// Whether the host serves as configured: `Err` with why not (worker slots left down after
    /// a crash loop).
    pub fn readiness(&self) -> Result<(), String> {
        let restarts = lock(&self.restarts);
        match restarts.given_up() {
            [] => Ok(()),
            slots => Err(format!("worker slots {slots:?} are in a crash loop and stay down")),
        }
    }

    /// Closes every cell (and the RTP-capabilities calculator's worker) and waits (at most
    /// `deadline`) for their workers to be closed; returns how many cells were closed and how
    /// many workers had still not closed at the deadline.
    pub async fn close_all(&self, deadline: Duration) -> (usize, usize) {
        self.stopping.store(true, Ordering::Release);
        let cells = self.cells();
        let mut closing = Vec::new();
        // The calculator's worker closes too (its router first); routers created later start it
        // again.
        lock(&self.calculator.router).take();
        // Each worker still open reports its close on a channel the deadline waits for.
        let watch = |worker: Arc<dyn WorkerBackend>, closing: &mut Vec<tokio::sync::oneshot::Receiver<()>>| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            worker
                .on_close(Box::new(move || {
                    let _ = tx.send(());
                }))
                .detach();
            if !worker.closed() {
                closing.push(rx);
            }
        };
        if let Some(worker) = self.calculator.worker.lock().await.take() {
            watch(worker, &mut closing);
        }
        for cell in &cells {
            if let Some(worker) = cell.worker() {
                watch(worker, &mut closing);
            }
            self.close_cell(cell.id(), CloseReason::Retired);
        }
        let end = std::time::Instant::now() + deadline;
        let mut late = 0;
        for closed in closing {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if within(left, closed).await.is_none() {
                late += 1;
            }
        }
        (cells.len(), late)
    }

    /// Stops placing transports in a cell (it keeps serving what it has).
    pub fn drain_cell(&self, id: CellId) -> bool {
        self.cell(id).map(|cell| cell.set_draining(DrainCause::Operator, true)).is_some()
    }

    /// Drains the whole host: none of its own cells takes a new transport (peers and
    /// applications linked to it learn it from its adverts at once), no worker is started for
    /// placement, and what lives here keeps flowing. Returns false if it was draining already.
    pub fn drain(&self) -> bool {
        let _drain = lock(&self.drain_lock);
        if self.draining.swap(true, Ordering::AcqRel) {
            return false;
        }
        info!("host draining: its workers take no new transports");
        self.set_local_draining(true);
        true
    }

    /// Ends a drain: the host's cells take transports again. Returns false if it was not
    /// draining.
    pub fn undrain(&self) -> bool {
        let _drain = lock(&self.drain_lock);
        if !self.draining.swap(false, Ordering::AcqRel) {
            return false;
        }
        info!("host no longer draining");
        self.set_local_draining(false);
        true
    }

    fn set_local_draining(&self, on: bool) {
        for cell in self.cells().iter().filter(|c| c.origin() != Origin::Remote) {
            cell.set_draining(DrainCause::HostDraining, on);
        }
        self.drain_changes.send_modify(|n| *n += 1);
    }

    /// Whether the host drains ([`Host::drain`]).
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Watches changes of this host's cells' draining (for pushing adverts at once).
    pub(crate) fn drain_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.drain_changes.subscribe()
    }

    /// A cell's draining changed: tell the application (and the adverts of a local cell).
    fn cell_draining(&self, cell: &Cell, draining: bool) {
        let event = CellDraining { cell: cell.id(), worker: cell.worker_id(), node: cell.node().to_string(), draining };
        info!(cell = %event.cell, worker = %event.worker, node = %event.node, draining, "cell draining changed");
        if cell.origin() != Origin::Remote {
            self.drain_changes.send_modify(|n| *n += 1);
        }
        // Delivered on the deferred thread, in order: the caller may hold the drain lock (or
        // a link's), and an application's handler may drain the host itself.
        let Some(host) = self.me.upgrade() else { return };
        crate::internals::object::run_later(move || host.events.cell_draining.call_simple(&event));
    }

    /// Called when a cell starts or stops taking new transports: its host drains (this one, or
    /// another host of the cluster as its adverts say), the operator or autoscaler drained or
    /// retired it, its worker process went silent, or the link to its host went down. An
    /// application may move its rooms off a draining cell (mafalda never moves them).
    pub fn on_cell_draining<F: Fn(&CellDraining) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.cell_draining.add(Arc::new(callback))
    }

    /// Worker deaths and replacements so far.
    pub fn worker_counters(&self) -> WorkerCounters {
        WorkerCounters {
            crashes: self.crashes.load(Ordering::Relaxed),
            restarts: self.restarts_done.load(Ordering::Relaxed),
            slots_down: lock(&self.restarts).given_up().len(),
        }
    }

    /// Retires a cell: drains it and closes it once idle (at once when idle now).
    pub fn retire_cell(&self, id: CellId) -> bool {
        let Some(cell) = self.cell(id) else { return false };
        cell.set_retiring();
        info!(cell = %id, worker = %cell.worker_id(), node = %cell.node(), "cell retiring");
        if cell.is_idle() {
            self.close_cell(id, CloseReason::Retired);
        }
        true
    }

    /// What the autoscaler sees: this node and its cells.
    pub fn snapshot(&self) -> Snapshot {
        let cells = self.loads();
        let cpu = if cells.is_empty() { 0.0 } else { cells.iter().map(|c| c.cpu).sum::<f64>() / cells.len() as f64 };
        let node = Node {
            name: self.options.node.clone(),
            region: self.options.region.clone(),
            workers: cells.len() as u32,
            max_workers: u32::try_from(self.options.pool.max_workers).unwrap_or(u32::MAX),
            cpu,
            draining: self.is_draining(),
        };
        Snapshot { nodes: vec![node], cells, now_ms: monotonic_ms() }
    }

    /// Installs the auth plugin every [`Host::authorize`] call goes through.
    pub fn set_auth(&self, gate: Option<Arc<AuthGate>>) {
        *self.auth.write().unwrap_or_else(std::sync::PoisonError::into_inner) = gate;
    }

    /// Grants or denies an operation: through the auth plugin when one is installed (which fails
    /// closed); without one, everything is granted (in-process use needs no auth).
    pub fn authorize(&self, request: &AuthRequest) -> Result<Grant, Denial> {
        let gate = self.auth.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let decision = match gate {
            Some(gate) => gate.authorize(request),
            None => {
                Ok(Grant { identity: request.peer.clone().unwrap_or_default(), rooms: Vec::new(), expires_unix: None })
            }
        };
        if let Some(counts) = self.auth_decisions.get(request.operation as usize) {
            counts[usize::from(decision.is_err())].fetch_add(1, Ordering::Relaxed);
        }
        decision
    }

    /// Auth decisions so far: per operation, how many were granted and denied.
    pub fn auth_counters(&self) -> Vec<(Operation, u64, u64)> {
        AUTH_OPERATIONS
            .iter()
            .zip(&self.auth_decisions)
            .map(|(op, [granted, denied])| (*op, granted.load(Ordering::Relaxed), denied.load(Ordering::Relaxed)))
            .collect()
    }

    /// Registers a virtual router for stats and cell events.
    pub(crate) fn add_router(&self, router: Weak<dyn RouterReport>) {
        let mut routers = lock(&self.reporters);
        routers.retain(|r| r.strong_count() > 0);
        routers.push(router);
    }

    fn reporters(&self) -> Vec<Arc<dyn RouterReport>> {
        lock(&self.reporters).iter().filter_map(Weak::upgrade).collect()
    }

    /// The live virtual routers ([`Host::footprint`]).
    pub(crate) fn live_reporters(&self) -> Vec<Arc<dyn RouterReport>> {
        self.reporters()
    }

    /// Settings-sets (worker templates) kept ([`Host::footprint`]).
    pub(crate) fn settings_sets(&self) -> usize {
        lock(&self.templates).len()
    }

    /// Handlers on the host's events ([`Host::footprint`]).
    pub(crate) fn event_handlers(&self) -> usize {
        self.events.handlers()
    }

    /// A snapshot of the whole host (reading it changes nothing).
    pub fn stats(&self) -> HostStats {
        let coefficients = self.coefficients();
        let cells: Vec<CellStats> = self.cells().iter().map(|c| CellStats::of(c, &coefficients)).collect();
        let routers = self.reporters().iter().map(|r| r.stats()).collect();
        HostStats::new(cells, routers, self.engine.counters(), coefficients)
    }

    /// Placement counters (decisions, fallbacks, rejections).
    pub fn placement_counters(&self) -> EngineCounters {
        self.engine.counters()
    }

    /// Called when a worker is started (a new cell).
    pub fn on_new_cell<F: Fn(&CellId) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.new_cell.add(Arc::new(callback))
    }

    /// Called when a worker stays above the CPU watermark for [`REBALANCE_AFTER`] samples (and
    /// every as many samples while it stays there) while another worker has room.
    pub fn on_rebalance<F: Fn(&RebalanceAdvice) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.rebalance.add(Arc::new(callback))
    }

    /// Advises moving transports off cells that stay above the watermark.
    fn advise_rebalance(&self, cells: &[Arc<Cell>]) {
        let watermark = self.options.pool.cpu_watermark;
        // Every sample counts each cell's run above the watermark; the model is consulted only
        // when a run is due for advice.
        let due: Vec<(&Arc<Cell>, f64)> = cells
            .iter()
            .map(|c| (c, c.cpu()))
            .filter(|(cell, cpu)| {
                let run = cell.count_hot(*cpu > watermark && !cell.is_closed());
                run > 0 && run % REBALANCE_AFTER == 0
            })
            .collect();
        if due.is_empty() {
            return;
        }
        let coefficients = self.coefficients();
        let predicted: Vec<f64> = cells.iter().map(|c| c.predicted(&coefficients)).collect();
        for (cell, cpu) in due {
            let roomiest = cells
                .iter()
                .zip(&predicted)
                .filter(|(c, p)| {
                    c.id() != cell.id()
                        && (c.serves(cell.settings_set()) || cell.serves(c.settings_set()))
                        && !c.is_closed()
                        && !c.is_draining()
                        && **p < watermark
                })
                .min_by(|a, b| a.1.total_cmp(b.1));
            let Some((to, _)) = roomiest else { continue };
            let mut transports = cell.transports();
            if transports.is_empty() {
                continue;
            }
            let per_transport = cpu / transports.len() as f64;
            let excess = ((cpu - watermark) / per_transport).ceil().max(1.0) as usize;
            transports.reverse();
            transports.truncate(excess);
            let advice = RebalanceAdvice { from: cell.id(), cpu, to: to.id(), transports };
            info!(from = %advice.from, to = %advice.to, cpu, transports = advice.transports.len(), "rebalance advice");
            self.events.rebalance.call_simple(&advice);
        }
    }

    /// Called when the workers of a settings set died and none could be started again: the
    /// virtual workers of that set can no longer serve.
    pub(crate) fn on_set_lost<F: Fn(&(SettingsSet, ExitError)) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        self.events.set_lost.add(Arc::new(callback))
    }

    /// Called when a cell is closed (idle, retired or its worker died), with what was lost.
    pub fn on_cell_closed<F: Fn(&CellClosed) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.cell_closed.add(Arc::new(callback))
    }

    /// One sampler round: producers' rates, CPU of every cell and what it carries (the model
    /// learns from both), rebalance advice, then release of retired and idle cells.
    fn sample(&self) {
        let cells = self.cells();
        self.rates.poll();
        let fade = 0.5f64.powf(self.options.pool.sample_interval.as_secs_f64() / PRIOR_HALF_LIFE.as_secs_f64());
        {
            // The measured share, the re-priced ledgers, the costs and the baseline change
            // together: no decision sees one without the others.
            let _placing = self.placing.blocking_lock();
            let mut learner = lock(&self.learner);
            for cell in &cells {
                let measured = cell.sample_cpu();
                cell.ledger().refresh(fade);
                // Another host's worker serves other tenants too: its CPU does not price ours.
                if measured && cell.origin() != Origin::Remote {
                    learner.observe(&cell.ledger().load(), &cell.load_at_sample(), cell.cpu());
                }
                if !measured && !self.cpu_warned.swap(true, Ordering::Relaxed) {
                    warn!(
                        cell = %cell.id(),
                        worker = %cell.worker_id(),
                        node = %cell.node(),
                        "worker CPU time is unreadable (/proc/self/task/*/schedstat); CPU is estimated from \
                         consumers ({} per core) until it can be read",
                        crate::internals::cell::FALLBACK_CONSUMERS_PER_CORE
                    );
                }
            }
            learner.end_round();
            let coefficients = learner.coefficients();
            drop(learner);
            *self.coefficients.write().unwrap_or_else(std::sync::PoisonError::into_inner) = coefficients;
            for cell in &cells {
                let load = cell.ledger().load();
                cell.mark_sample(load, load.carried_cost(&coefficients));
            }
        }
        self.advise_rebalance(&cells);
        for cell in cells.iter().filter(|c| c.is_retiring() && c.is_idle()) {
            self.close_cell(cell.id(), CloseReason::Retired);
        }
        let cells = self.cells();
        let grace = self.options.pool.idle_grace;
        let mut open = cells.iter().filter(|c| c.origin() != Origin::Remote).count();
        for cell in cells.iter().filter(|c| c.origin() == Origin::Pool) {
            if open <= self.options.pool.min_workers {
                break;
            }
            if cell.idle_for().is_some_and(|idle| idle >= grace) && cell.is_idle() {
                self.close_cell(cell.id(), CloseReason::Idle);
                open -= 1;
            }
        }
    }
}

/// Samples every `sample_interval` until the host is dropped.
fn spawn_sampler(host: Weak<Host>) {
    let interval = host.upgrade().map_or(Duration::from_secs(1), |h| h.options.pool.sample_interval);
    let spawned = std::thread::Builder::new().name("mafalda-sampler".into()).spawn(move || loop {
        std::thread::sleep(interval);
        match host.upgrade() {
            Some(host) => host.sample(),
            None => return,
        }
    });
    if let Err(error) = spawned {
        warn!(%error, "could not start the sampler thread: CPU is not measured, idle workers are kept");
    }
}

#[cfg(test)]
mod auth_order {
    use super::AUTH_OPERATIONS;

    #[test]
    fn auth_counters_are_indexed_by_the_operation() {
        for (at, op) in AUTH_OPERATIONS.iter().enumerate() {
            assert_eq!(*op as usize, at, "{op:?}");
        }
    }
}
