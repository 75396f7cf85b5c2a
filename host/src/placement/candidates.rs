//! The candidates of one placement request: the cells as the request sees them, packed in rows
//! of numbers — what crosses into a placement plugin — and, on first use, unpacked into the
//! SDK's [`Candidate`]s that native policies decide on. The host builds the rows straight from
//! each cell's placement row (no strings compared or copied per cell); the simulator and tests
//! build them from plain [`CellLoad`]s.

use super::model::{CellLoad, PlacementRequest};
use mafalda_plugin_sdk::candidate::{pack, unpack_rows, Candidate, LabelMatch, Name, Packed, LOAD_WIDTH};
use std::sync::{Arc, OnceLock};

/// The flag bit of a draining cell in a packed load row (see `wit/plugin.wit`).
const DRAINING: u32 = 2;

/// What one cell tells a request for router `R` (read under the cell's own lock, in constant
/// time: the cell keeps its counts, routers and label counts up to date as objects come and go).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowReading {
    /// Measured CPU share.
    pub cpu: f64,
    /// Predicted CPU share.
    pub predicted: f64,
    /// Whether the request's router is present.
    pub hosts_router: bool,
    /// Routers present.
    pub routers: u32,
    /// Transports, producers, consumers, pipes.
    pub counts: [u32; 4],
    /// Whether it takes no new transports.
    pub draining: bool,
}

/// A cell as placement reads it (the host's cells; synthetic ones in benches).
pub trait PlacementRow<R> {
    /// The cell id.
    fn id(&self) -> u32;
    /// Its node and region.
    fn location(&self) -> (&Name, &Name);
    /// Reads it for a request of `router` with `labels`, pushing one match per label.
    fn read(&self, router: &R, labels: &[(String, String)], matches: &mut Vec<LabelMatch>) -> RowReading;
}

/// Packs `rows` for a request of `router` with `labels`: the rows a plugin receives, built
/// without comparing or copying strings per cell (locations are shared names, found by pointer
/// first).
pub fn pack_rows<'a, R, T: PlacementRow<R> + 'a>(
    rows: impl ExactSizeIterator<Item = &'a T>,
    router: &R,
    labels: &[(String, String)],
) -> Candidates {
    let (n, width) = (rows.len(), labels.len());
    let mut packed = Packed {
        locations: Vec::new(),
        loads: Vec::with_capacity(n * LOAD_WIDTH),
        cpu: Vec::with_capacity(n),
        predicted: Vec::with_capacity(n),
        labels: Vec::with_capacity(n * width * 2),
    };
    let mut matches: Vec<LabelMatch> = Vec::with_capacity(width);
    for row in rows {
        matches.clear();
        let reading = row.read(router, labels, &mut matches);
        let (node, region) = row.location();
        let same =
            |(n, r): &(Name, Name)| (Arc::ptr_eq(n, node) || n == node) && (Arc::ptr_eq(r, region) || r == region);
        let location = match packed.locations.last() {
            Some(last) if same(last) => packed.locations.len() - 1,
            _ => packed.locations.iter().position(same).unwrap_or_else(|| {
                packed.locations.push((Arc::clone(node), Arc::clone(region)));
                packed.locations.len() - 1
            }),
        };
        let flags = u32::from(reading.hosts_router) | if reading.draining { DRAINING } else { 0 };
        let [transports, producers, consumers, pipes] = reading.counts;
        packed.loads.extend([
            row.id(),
            u32::try_from(location).unwrap_or(u32::MAX),
            transports,
            producers,
            consumers,
            pipes,
            reading.routers,
            flags,
        ]);
        packed.cpu.push(reading.cpu);
        packed.predicted.push(reading.predicted);
        for m in &matches {
            packed.labels.extend([m.same, m.distinct]);
        }
    }
    Candidates::from_packed(packed, width)
}

/// The cells one request may go to.
#[derive(Debug, Default)]
pub struct Candidates {
    packed: Packed,
    width: usize,
    unpacked: OnceLock<Vec<Candidate>>,
}

impl Candidates {
    /// Candidates from rows packed for a request with `labels` labels.
    pub fn from_packed(packed: Packed, labels: usize) -> Self {
        Self { packed, width: labels, unpacked: OnceLock::new() }
    }

    /// `cells` as `request` sees them.
    pub fn from_cells(request: &PlacementRequest, cells: &[CellLoad]) -> Self {
        Self::from_packed(pack(request, cells), request.labels.len())
    }

    /// The packed rows (what a plugin receives).
    pub fn packed(&self) -> &Packed {
        &self.packed
    }

    /// The candidates, unpacked.
    pub fn list(&self) -> &[Candidate] {
        self.unpacked.get_or_init(|| unpack_rows(self.width, &self.packed))
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.packed.loads.len() / LOAD_WIDTH
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether cell `id` is a candidate, and whether it is draining.
    pub fn draining(&self, id: u32) -> Option<bool> {
        self.packed.loads.chunks_exact(LOAD_WIDTH).find(|row| row[0] == id).map(|row| row[7] & DRAINING != 0)
    }
}
