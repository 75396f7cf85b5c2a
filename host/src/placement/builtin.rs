//! The built-in policies: bin-packing under a CPU watermark (the default) and least-loaded
//! spreading.

use super::model::{CellLoad, Decision, PlacementRequest};
use super::policy::{PlacementPolicy, PolicyError};
use std::cmp::Ordering;

/// Default CPU watermark of [`BinPack`].
pub const DEFAULT_CPU_WATERMARK: f64 = 0.6;

/// Bin-packing: fill the busiest worker that is still under the CPU watermark, preferring
/// workers that already host the transport's router; start a worker only when every worker is
/// above the watermark and the pool is below its maximum; never exceed the maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinPack {
    /// CPU share above which a worker counts as full.
    pub watermark: f64,
}

impl Default for BinPack {
    fn default() -> Self {
        Self { watermark: DEFAULT_CPU_WATERMARK }
    }
}

fn by_cpu(a: &CellLoad, b: &CellLoad) -> Ordering {
    a.cpu.total_cmp(&b.cpu)
}

/// How many objects a cell carries (counts change at once; CPU only at the next sample).
fn objects(cell: &CellLoad) -> u32 {
    cell.transports + cell.producers + cell.consumers + cell.pipes
}

/// The accepting cell with the lowest CPU, or a reject when none accepts.
fn least_loaded(cells: &[CellLoad]) -> Decision {
    cells
        .iter()
        .filter(|c| !c.draining)
        .min_by(|a, b| by_cpu(a, b).then(a.transports.cmp(&b.transports)).then(a.id.cmp(&b.id)))
        .map_or_else(
            || Decision::Reject("no worker accepts transports and the pool is at its maximum".into()),
            |c| Decision::Cell(c.id),
        )
}

fn has_room(request: &PlacementRequest, cells: &[CellLoad]) -> bool {
    (cells.len() as u64) < u64::from(request.max_cells)
}

impl BinPack {
    /// The bin-packing decision (infallible; used as the fallback of every other policy).
    pub fn decide(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Decision {
        let best = cells.iter().filter(|c| !c.draining && c.cpu < self.watermark).max_by(|a, b| {
            a.hosts_router(&request.router)
                .cmp(&b.hosts_router(&request.router))
                .then(by_cpu(a, b))
                .then(a.transports.cmp(&b.transports))
                .then(b.id.cmp(&a.id))
        });
        match best {
            Some(cell) => Decision::Cell(cell.id),
            None if has_room(request, cells) => Decision::NewCell,
            None => least_loaded(cells),
        }
    }
}

impl PlacementPolicy for BinPack {
    fn name(&self) -> &str {
        "pack"
    }

    fn place(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Result<Decision, PolicyError> {
        Ok(self.decide(request, cells))
    }
}

/// Least-loaded spreading: use every worker the pool may have (start a new one while every
/// existing worker hosts something), then the one carrying the fewest objects (CPU breaks
/// ties: counts change at once, CPU only at the next sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread;

impl PlacementPolicy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn place(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Result<Decision, PolicyError> {
        let has_empty = cells.iter().any(|c| !c.draining && c.transports == 0);
        if !has_empty && has_room(request, cells) {
            return Ok(Decision::NewCell);
        }
        let fewest = cells
            .iter()
            .filter(|c| !c.draining)
            .min_by(|a, b| objects(a).cmp(&objects(b)).then(by_cpu(a, b)).then(a.id.cmp(&b.id)));
        Ok(fewest.map_or_else(|| least_loaded(cells), |c| Decision::Cell(c.id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::model::CellId;

    fn cell(id: u32, cpu: f64, routers: &[&str]) -> CellLoad {
        CellLoad {
            id: CellId(id),
            cpu,
            transports: 1,
            routers: routers.iter().map(|r| r.to_string()).collect(),
            ..CellLoad::default()
        }
    }

    fn request(router: &str, max_cells: u32) -> PlacementRequest {
        PlacementRequest { router: router.into(), max_cells, ..PlacementRequest::default() }
    }

    #[test]
    fn pack_fills_the_busiest_cell_under_the_watermark() {
        let cells = [cell(0, 0.2, &[]), cell(1, 0.5, &[]), cell(2, 0.7, &[])];
        assert_eq!(BinPack::default().decide(&request("r", 4), &cells), Decision::Cell(CellId(1)));
    }

    #[test]
    fn pack_prefers_a_cell_already_hosting_the_router() {
        let cells = [cell(0, 0.1, &["r"]), cell(1, 0.5, &["other"])];
        assert_eq!(BinPack::default().decide(&request("r", 4), &cells), Decision::Cell(CellId(0)));
    }

    #[test]
    fn pack_spawns_only_when_all_are_full_and_there_is_room() {
        let cells = [cell(0, 0.9, &[]), cell(1, 0.65, &[])];
        assert_eq!(BinPack::default().decide(&request("r", 3), &cells), Decision::NewCell);
        // At the maximum: the least-loaded cell, never a new one.
        assert_eq!(BinPack::default().decide(&request("r", 2), &cells), Decision::Cell(CellId(1)));
    }

    #[test]
    fn pack_starts_the_first_cell_and_skips_draining_ones() {
        assert_eq!(BinPack::default().decide(&request("r", 1), &[]), Decision::NewCell);
        let mut draining = cell(0, 0.1, &["r"]);
        draining.draining = true;
        assert_eq!(BinPack::default().decide(&request("r", 2), &[draining.clone()]), Decision::NewCell);
        assert!(matches!(BinPack::default().decide(&request("r", 1), &[draining]), Decision::Reject(_)));
    }

    #[test]
    fn watermark_is_configurable() {
        let cells = [cell(0, 0.3, &[])];
        let strict = BinPack { watermark: 0.25 };
        assert_eq!(strict.decide(&request("r", 2), &cells), Decision::NewCell);
    }

    #[test]
    fn spread_uses_every_core_then_the_least_loaded() {
        let cells = [cell(0, 0.1, &[])];
        assert_eq!(Spread.place(&request("r", 2), &cells), Ok(Decision::NewCell));
        let cells = [cell(0, 0.4, &[]), cell(1, 0.2, &[])];
        assert_eq!(Spread.place(&request("r", 2), &cells), Ok(Decision::Cell(CellId(1))));
        let mut crowded = cell(1, 0.1, &[]);
        crowded.consumers = 100;
        let cells = [cell(0, 0.4, &[]), crowded];
        assert_eq!(Spread.place(&request("r", 2), &cells), Ok(Decision::Cell(CellId(0))), "counts first");
    }
}
