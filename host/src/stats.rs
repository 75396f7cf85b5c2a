//! The stats snapshot (a mafalda extension): the whole host, each virtual router and each cell
//! (worker): CPU, transports, producers, consumers, pipes, placement counters.

use crate::cell::Cell;
use crate::internals::cell::Count;
use crate::internals::load_model::{Coefficients, Load};
use crate::placement::{CellId, EngineCounters};
use mediasoup::router::RouterId;
use mediasoup::worker::WorkerId;
use serde::Serialize;
use std::time::Duration;

/// One cell (worker).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CellStats {
    /// The cell.
    pub id: CellId,
    /// Its real worker.
    pub worker: WorkerId,
    /// The node (host) running it.
    pub node: String,
    /// That node's region.
    pub region: String,
    /// CPU share of one core, last sample.
    pub cpu: f64,
    /// CPU share the load model predicts (what placement reads).
    pub predicted: f64,
    /// Transports placed here.
    pub transports: u32,
    /// Producers living here.
    pub producers: u32,
    /// Consumers living here.
    pub consumers: u32,
    /// Pipe producers piped into this cell.
    pub pipes: u32,
    /// Data producers living here.
    pub data_producers: u32,
    /// Data consumers living here.
    pub data_consumers: u32,
    /// Virtual routers with a real router here.
    pub routers: usize,
    /// Whether placement skips this cell.
    pub draining: bool,
    /// How long it has hosted nothing.
    pub idle_for: Option<Duration>,
    /// What the load model counts it carries (packets per second by kind).
    pub load: Load,
    /// The worker's own process (pid, resident memory) under process isolation.
    pub process: Option<crate::backend::ProcessStats>,
}

impl CellStats {
    /// The stats of `cell` now, priced at `coefficients`.
    pub fn of(cell: &Cell, coefficients: &Coefficients) -> Self {
        let load = cell.load(coefficients);
        Self {
            id: cell.id(),
            worker: cell.worker_id(),
            node: cell.node().to_string(),
            region: cell.region().to_string(),
            cpu: load.cpu,
            predicted: load.predicted,
            transports: load.transports,
            producers: load.producers,
            consumers: load.consumers,
            pipes: load.pipes,
            data_producers: cell.count(Count::DataProducer),
            data_consumers: cell.count(Count::DataConsumer),
            routers: load.routers.len(),
            draining: load.draining,
            idle_for: cell.idle_for(),
            load: cell.ledger().load(),
            process: cell.worker().and_then(|w| w.process()),
        }
    }
}

/// One virtual router.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouterStats {
    /// The virtual router.
    pub id: RouterId,
    /// Cells it has a real router in.
    pub cells: Vec<CellId>,
    /// Its transports.
    pub transports: u32,
    /// Its producers.
    pub producers: u32,
    /// Its consumers.
    pub consumers: u32,
    /// Its open pipes.
    pub pipes: u32,
}

/// Sums over the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Open cells (workers).
    pub cells: usize,
    /// Transports.
    pub transports: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers.
    pub consumers: u32,
    /// Pipes.
    pub pipes: u32,
    /// Sum of the cells' CPU shares.
    pub cpu: f64,
}

/// A snapshot of the whole host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostStats {
    /// Sums.
    pub totals: Totals,
    /// Per cell.
    pub cells: Vec<CellStats>,
    /// Per virtual router.
    pub routers: Vec<RouterStats>,
    /// Placement decisions, fallbacks and rejections.
    #[serde(skip)]
    pub placement: EngineCounters,
    /// The load model's coefficients (learned from the workers' CPU samples).
    pub model: Coefficients,
}

impl HostStats {
    pub(crate) fn new(
        cells: Vec<CellStats>,
        routers: Vec<RouterStats>,
        placement: EngineCounters,
        model: Coefficients,
    ) -> Self {
        let totals = cells.iter().fold(Totals { cells: cells.len(), ..Totals::default() }, |mut t, c| {
            t.transports += c.transports;
            t.producers += c.producers;
            t.consumers += c.consumers;
            t.pipes += c.pipes;
            t.cpu += c.cpu;
            t
        });
        Self { totals, cells, routers, placement, model }
    }

    /// The stats of one cell.
    pub fn cell(&self, id: CellId) -> Option<&CellStats> {
        self.cells.iter().find(|c| c.id == id)
    }

    /// The stats of one virtual router.
    pub fn router(&self, id: RouterId) -> Option<&RouterStats> {
        self.routers.iter().find(|r| r.id == id)
    }
}
