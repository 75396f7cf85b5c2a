//! The host: the cells (workers) shared by every virtual worker and router, the placement
//! engine, the background sampler (CPU per worker, idle release) and host-wide events.

use crate::autoscale::ScaleAdvice;
use crate::cell::Cell;
use crate::config::HostOptions;
use crate::object::{lock, EventBag};
use crate::placement::{
    BinPack, CellId, CellLoad, EngineCounters, Placement, PlacementEngine, PlacementPolicy, PlacementRequest,
};
use crate::plugin::monotonic_ms;
use crate::plugin::AuthGate;
use crate::pool::{WorkerPool, WorkerTemplate};
use crate::router::RouterInner;
use crate::stats::{CellStats, HostStats};
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::{AuthRequest, Denial, Grant, Node, Snapshot};
use mediasoup::prelude::TransportId;
use mediasoup::prelude::{RouterOptions, RtpCapabilitiesFinalized, RtpCodecCapability};
use mediasoup::router::RouterId;
use mediasoup::router::UpdateMediaCodecsError;
use mediasoup::worker::{CreateRouterError, RequestError, RtpCapabilitiesError, WorkerId};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

/// Why a cell was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// It hosted nothing for the idle grace period.
    Idle,
    /// It was retired on request (operator, autoscaler).
    Retired,
    /// Its worker died.
    Died,
}

/// A cell was closed; what it took with it.
#[derive(Debug, Clone)]
pub struct CellClosed {
    /// The cell.
    pub cell: CellId,
    /// Its worker.
    pub worker: WorkerId,
    /// Why.
    pub reason: CloseReason,
    /// Transports that were closed with it, with their virtual router.
    pub lost_transports: Vec<(RouterId, TransportId)>,
}

/// Placement could not give a cell.
#[derive(Debug, Error)]
pub enum PlaceError {
    /// The policy refused the transport.
    #[error("placement rejected the transport: {0}")]
    Rejected(String),
    /// A new worker could not be started.
    #[error("could not start a worker: {0}")]
    Spawn(#[from] crate::pool::PoolError),
}

#[derive(Default)]
struct Events {
    new_cell: EventBag<CellId>,
    cell_closed: EventBag<CellClosed>,
    scale_advice: EventBag<ScaleAdvice>,
}

/// The shared state behind every virtual worker and router of one `WorkerManager`.
pub struct Host {
    options: HostOptions,
    pool: WorkerPool,
    cells: RwLock<Vec<Arc<Cell>>>,
    next_cell: AtomicU32,
    engine: PlacementEngine,
    spawn_lock: tokio::sync::Mutex<()>,
    routers: Mutex<Vec<Weak<RouterInner>>>,
    calculator: Mutex<Option<(CellId, mediasoup::router::Router)>>,
    auth: RwLock<Option<Arc<AuthGate>>>,
    events: Events,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host").field("cells", &self.cells().len()).field("policy", &self.engine.policy_name()).finish()
    }
}

impl Host {
    /// A host with no worker yet; `policy` decides placements. Starts the sampler thread.
    pub(crate) fn new(options: HostOptions, policy: Arc<dyn PlacementPolicy>) -> Arc<Self> {
        let template = WorkerTemplate {
            rtc_ports: options.pool.rtc_min_port..=options.pool.rtc_max_port,
            ..WorkerTemplate::default()
        };
        let fallback = BinPack { watermark: options.pool.cpu_watermark };
        let host = Arc::new(Self {
            pool: WorkerPool::empty(template),
            cells: RwLock::default(),
            next_cell: AtomicU32::new(0),
            engine: PlacementEngine::new(policy, fallback),
            spawn_lock: tokio::sync::Mutex::new(()),
            routers: Mutex::default(),
            calculator: Mutex::default(),
            auth: RwLock::default(),
            events: Events::default(),
            options,
        });
        spawn_sampler(Arc::downgrade(&host));
        host
    }

    /// Changes how workers started from now on are made (from an application's
    /// `WorkerSettings`).
    pub(crate) fn set_worker_template(&self, template: WorkerTemplate) {
        self.pool.set_template(template);
    }

    /// The options the host runs with.
    pub fn options(&self) -> &HostOptions {
        &self.options
    }

    /// The placement engine.
    pub fn placement(&self) -> &PlacementEngine {
        &self.engine
    }

    /// Open cells, in creation order.
    pub fn cells(&self) -> Vec<Arc<Cell>> {
        self.cells.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The open cell with this id.
    pub fn cell(&self, id: CellId) -> Option<Arc<Cell>> {
        self.cells().into_iter().find(|c| c.id() == id)
    }

    /// What placement sees.
    pub fn loads(&self) -> Vec<CellLoad> {
        self.cells().iter().map(|c| c.load()).collect()
    }

    /// Starts one more worker (a new cell), unless the pool is at its maximum.
    pub async fn spawn_cell(self: &Arc<Self>) -> Result<Option<Arc<Cell>>, PlaceError> {
        let _serial = self.spawn_lock.lock().await;
        if self.cells().len() >= self.options.pool.max_workers {
            return Ok(None);
        }
        let pooled = self.pool.start_worker().await?;
        let id = CellId(self.next_cell.fetch_add(1, Ordering::Relaxed));
        let cell = Arc::new(Cell::new(id, &self.options.node, &self.options.region, pooled.clone()));
        cell.sample_cpu();
        let weak = Arc::downgrade(self);
        pooled
            .worker
            .on_dead(move |_| {
                if let Some(host) = weak.upgrade() {
                    host.close_cell(id, CloseReason::Died);
                }
            })
            .detach();
        self.cells.write().unwrap_or_else(std::sync::PoisonError::into_inner).push(Arc::clone(&cell));
        info!(cell = %id, worker = %pooled.id(), "new cell");
        self.events.new_cell.call_simple(&id);
        Ok(Some(cell))
    }

    /// RTP capabilities of a router with `media_codecs`, as mediasoup computes them. The
    /// computation is mediasoup's (private to its crate), so it runs on a real router kept for
    /// that purpose (no media ever flows through it), created in the first cell.
    pub(crate) async fn rtp_capabilities(
        self: &Arc<Self>,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, CreateRouterError> {
        if lock(&self.calculator).is_none() {
            let cell = match self.cells().into_iter().next() {
                Some(cell) => cell,
                None => self
                    .spawn_cell()
                    .await
                    .map_err(|e| CreateRouterError::Request(RequestError::Response { reason: e.to_string() }))?
                    .ok_or(CreateRouterError::Request(RequestError::ChannelClosed))?,
            };
            let worker = cell.worker().ok_or(CreateRouterError::Request(RequestError::ChannelClosed))?;
            let real = worker.create_router(RouterOptions::new(Vec::new())).await?;
            lock(&self.calculator).get_or_insert((cell.id(), real));
        }
        self.rtp_capabilities_for(media_codecs).map_err(|e| match e {
            UpdateMediaCodecsError::FailedRtpCapabilitiesGeneration(e) => {
                CreateRouterError::FailedRtpCapabilitiesGeneration(e)
            }
        })
    }

    /// As [`Host::rtp_capabilities`], synchronously (the calculator must exist: it does once a
    /// router was created).
    pub(crate) fn rtp_capabilities_for(
        &self,
        media_codecs: Vec<RtpCodecCapability>,
    ) -> Result<RtpCapabilitiesFinalized, UpdateMediaCodecsError> {
        let calculator = lock(&self.calculator).as_ref().map(|(_, real)| real.clone());
        match calculator {
            Some(mut real) => {
                real.update_media_codecs(media_codecs)?;
                Ok(real.rtp_capabilities())
            }
            None => Err(UpdateMediaCodecsError::FailedRtpCapabilitiesGeneration(RtpCapabilitiesError::CannotAllocate)),
        }
    }

    /// Finds a cell for `request`, starting a worker when placement says so.
    pub(crate) async fn place(self: &Arc<Self>, mut request: PlacementRequest) -> Result<Arc<Cell>, PlaceError> {
        request.max_cells = u32::try_from(self.options.pool.max_workers).unwrap_or(u32::MAX);
        // A cell may vanish or the pool may fill between deciding and acting: decide again.
        for _ in 0..4 {
            let outcome = self.engine.decide(&request, &self.loads());
            match outcome.placement {
                Placement::Existing(id) => {
                    if let Some(cell) = self.cell(id) {
                        return Ok(cell);
                    }
                }
                Placement::Spawn => {
                    if let Some(cell) = self.spawn_cell().await? {
                        return Ok(cell);
                    }
                }
                Placement::Rejected(reason) => return Err(PlaceError::Rejected(reason)),
            }
        }
        Err(PlaceError::Rejected("the pool changed under every placement attempt".into()))
    }

    /// Closes a cell: every object in it is closed (their close events fire) and its worker is
    /// released. Returns what was lost, or `None` for an unknown or already closed cell.
    pub fn close_cell(&self, id: CellId, reason: CloseReason) -> Option<CellClosed> {
        let cell = {
            let mut cells = self.cells.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            let at = cells.iter().position(|c| c.id() == id)?;
            cells.remove(at)
        };
        let present = cell.routers_present();
        {
            let mut calculator = lock(&self.calculator);
            if calculator.as_ref().is_some_and(|(cell, _)| *cell == id) {
                calculator.take();
            }
        }
        let lost = cell.close()?;
        let event = CellClosed { cell: id, worker: cell.watch().id, reason, lost_transports: lost.transports };
        match reason {
            CloseReason::Died => {
                warn!(cell = %id, lost = event.lost_transports.len(), "worker died; cell closed")
            }
            _ => info!(cell = %id, ?reason, lost = event.lost_transports.len(), "cell closed"),
        }
        for router in self.routers() {
            router.cell_closed(&event, present.contains(&router.id));
        }
        self.events.cell_closed.call_simple(&event);
        Some(event)
    }

    /// Stops placing transports in a cell (it keeps serving what it has).
    pub fn drain_cell(&self, id: CellId) -> bool {
        self.cell(id).map(|cell| cell.set_draining(true)).is_some()
    }

    /// Retires a cell: drains it and closes it once idle (at once when idle now).
    pub fn retire_cell(&self, id: CellId) -> bool {
        let Some(cell) = self.cell(id) else { return false };
        cell.set_retiring();
        info!(cell = %id, "cell retiring");
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
            draining: false,
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
        match gate {
            Some(gate) => gate.authorize(request),
            None => {
                Ok(Grant { identity: request.peer.clone().unwrap_or_default(), rooms: Vec::new(), expires_unix: None })
            }
        }
    }

    /// Emits a node action of the autoscaler.
    pub(crate) fn advise(&self, advice: &ScaleAdvice) {
        self.events.scale_advice.call_simple(advice);
    }

    /// Called with each node action the autoscaler asks for (add, remove or drain a node).
    pub fn on_scale_advice<F: Fn(&ScaleAdvice) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.scale_advice.add(Arc::new(callback))
    }

    /// Registers a virtual router for stats and cell events.
    pub(crate) fn add_router(&self, router: Weak<RouterInner>) {
        let mut routers = lock(&self.routers);
        routers.retain(|r| r.strong_count() > 0);
        routers.push(router);
    }

    fn routers(&self) -> Vec<Arc<RouterInner>> {
        lock(&self.routers).iter().filter_map(Weak::upgrade).collect()
    }

    /// A snapshot of the whole host.
    pub fn stats(&self) -> HostStats {
        let cells: Vec<CellStats> = self.cells().iter().map(|c| CellStats::of(c)).collect();
        let routers = self.routers().iter().map(|r| r.stats()).collect();
        HostStats::new(cells, routers, self.engine.counters())
    }

    /// Placement counters (decisions, fallbacks, rejections).
    pub fn placement_counters(&self) -> EngineCounters {
        self.engine.counters()
    }

    /// Called when a worker is started (a new cell).
    pub fn on_new_cell<F: Fn(&CellId) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.new_cell.add(Arc::new(callback))
    }

    /// Called when a cell is closed (idle, retired or its worker died), with what was lost.
    pub fn on_cell_closed<F: Fn(&CellClosed) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.events.cell_closed.add(Arc::new(callback))
    }

    /// One sampler round: CPU of every cell, then release of idle cells above the minimum.
    fn sample(&self) {
        let cells = self.cells();
        for cell in &cells {
            cell.sample_cpu();
        }
        for cell in cells.iter().filter(|c| c.is_retiring() && c.is_idle()) {
            self.close_cell(cell.id(), CloseReason::Retired);
        }
        let cells = self.cells();
        let grace = self.options.pool.idle_grace;
        let mut open = cells.len();
        for cell in cells {
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
