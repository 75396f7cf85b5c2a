//! Placement algorithms shared by the host's built-in policies and the shipped plugins (the
//! `pack` plugin is the built-in packer plus room affinity, by construction). They decide on
//! [`Candidate`]s, the view of the cells a placement plugin receives.

use crate::candidate::Candidate;
use crate::types::{Decision, Request};
use std::cmp::Ordering;

/// Default CPU watermark of bin-packing.
pub const DEFAULT_CPU_WATERMARK: f64 = 0.6;

/// Orders by load: the predicted CPU share (or the measured one when higher).
fn by_cpu(a: &Candidate, b: &Candidate) -> Ordering {
    a.load().total_cmp(&b.load())
}

/// True while the pool may still grow.
pub fn has_room(request: &Request, cells: &[Candidate]) -> bool {
    (cells.len() as u64) < u64::from(request.max_cells)
}

/// The accepting cell with the lowest CPU, or a reject when none accepts.
pub fn least_cpu(cells: &[Candidate]) -> Decision {
    cells
        .iter()
        .filter(|c| !c.draining)
        .min_by(|a, b| by_cpu(a, b).then(a.transports.cmp(&b.transports)).then(a.id.cmp(&b.id)))
        .map_or_else(
            || Decision::Reject("no worker accepts transports and the pool is at its maximum".into()),
            |c| Decision::Cell(c.id),
        )
}

/// When bin-packing counts a cell as full, and whether it keeps rooms together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackRules {
    /// CPU share (of one core) at which a cell is full.
    pub cpu_watermark: f64,
    /// Transports at which a cell is full (`None`: no cap; CPU alone decides).
    pub max_transports: Option<u32>,
    /// Prefer the cell already holding most transports of the request's `room`.
    pub room_affinity: bool,
}

impl Default for PackRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl PackRules {
    /// The default watermark, no transport cap, no room affinity (usable in `const`s).
    pub const DEFAULT: Self = Self { cpu_watermark: DEFAULT_CPU_WATERMARK, max_transports: None, room_affinity: false };

    /// Rules with this CPU watermark, no transport cap, no room affinity.
    pub fn watermark(cpu_watermark: f64) -> Self {
        Self { cpu_watermark, ..Self::default() }
    }

    /// Whether `cell` can take one more transport under these rules.
    pub fn accepts(&self, cell: &Candidate) -> bool {
        !cell.draining
            && cell.load() < self.cpu_watermark
            && self.max_transports.is_none_or(|cap| cell.transports < cap)
    }
}

/// Bin-packing: the busiest cell that is not full under `rules`, preferring one that already
/// hosts the router (and, with room affinity, the most transports of the same room); a new
/// cell only when every cell is full and the pool may grow; else the least loaded.
pub fn bin_pack(request: &Request, cells: &[Candidate], rules: &PackRules) -> Decision {
    let room = if rules.room_affinity { request.label_index("room") } else { None };
    let best = cells.iter().filter(|c| rules.accepts(c)).max_by(|a, b| {
        a.label_at(room)
            .same
            .cmp(&b.label_at(room).same)
            .then(a.hosts_router.cmp(&b.hosts_router))
            .then(by_cpu(a, b))
            .then(a.transports.cmp(&b.transports))
            .then(b.id.cmp(&a.id))
    });
    match best {
        Some(cell) => Decision::Cell(cell.id),
        None if has_room(request, cells) => Decision::NewCell,
        None => least_cpu(cells),
    }
}

/// Spreading: a new cell while every cell carries something and the pool may grow, then the
/// cell carrying the fewest objects (CPU breaks ties).
pub fn spread(request: &Request, cells: &[Candidate]) -> Decision {
    let has_empty = cells.iter().any(|c| !c.draining && c.transports == 0);
    if !has_empty && has_room(request, cells) {
        return Decision::NewCell;
    }
    cells
        .iter()
        .filter(|c| !c.draining)
        .min_by(|a, b| a.objects().cmp(&b.objects()).then(by_cpu(a, b)).then(a.id.cmp(&b.id)))
        .map_or_else(|| least_cpu(cells), |c| Decision::Cell(c.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candidate::candidates;
    use crate::types::Cell;

    fn bin_pack(request: &Request, cells: &[Cell], watermark: f64, room_affinity: bool) -> Decision {
        let rules = PackRules { room_affinity, ..PackRules::watermark(watermark) };
        super::bin_pack(request, &candidates(request, cells), &rules)
    }

    fn spread(request: &Request, cells: &[Cell]) -> Decision {
        super::spread(request, &candidates(request, cells))
    }

    fn cell(id: u32, cpu: f64, routers: &[&str]) -> Cell {
        let mut cell = Cell::new(id).with_cpu(cpu).with_transports(1);
        for r in routers {
            cell = cell.with_router(*r);
        }
        cell
    }

    fn request(max_cells: u32) -> Request {
        Request::new("r").with_max_cells(max_cells)
    }

    #[test]
    fn pack_fills_the_busiest_cell_under_the_watermark() {
        let cells = [cell(0, 0.2, &[]), cell(1, 0.5, &[]), cell(2, 0.7, &[])];
        assert_eq!(bin_pack(&request(4), &cells, 0.6, false), Decision::Cell(1));
    }

    #[test]
    fn pack_prefers_a_cell_already_hosting_the_router() {
        let cells = [cell(0, 0.1, &["r"]), cell(1, 0.5, &["other"])];
        assert_eq!(bin_pack(&request(4), &cells, 0.6, false), Decision::Cell(0));
    }

    #[test]
    fn pack_spawns_only_when_all_are_full_and_there_is_room() {
        let cells = [cell(0, 0.9, &[]), cell(1, 0.65, &[])];
        assert_eq!(bin_pack(&request(3), &cells, 0.6, false), Decision::NewCell);
        assert_eq!(bin_pack(&request(2), &cells, 0.6, false), Decision::Cell(1));
    }

    #[test]
    fn pack_starts_the_first_cell_and_skips_draining_ones() {
        assert_eq!(bin_pack(&request(1), &[], 0.6, false), Decision::NewCell);
        let draining = cell(0, 0.1, &["r"]).draining();
        assert_eq!(bin_pack(&request(2), std::slice::from_ref(&draining), 0.6, false), Decision::NewCell);
        assert!(matches!(bin_pack(&request(1), &[draining], 0.6, false), Decision::Reject(_)));
    }

    #[test]
    fn a_transport_cap_fills_cells_in_turn() {
        let rules = PackRules { max_transports: Some(2), ..PackRules::default() };
        let pack = |cells: &[Cell], max| super::bin_pack(&request(max), &candidates(&request(max), cells), &rules);
        let one = [cell(0, 0.0, &["r"])];
        assert_eq!(pack(&one, 2), Decision::Cell(0), "under the cap");
        let full = [cell(0, 0.0, &["r"]).with_transports(2), cell(1, 0.0, &[]).with_transports(1)];
        assert_eq!(pack(&full, 2), Decision::Cell(1), "the next cell with room");
        let both = [cell(0, 0.0, &[]).with_transports(2), cell(1, 0.3, &[]).with_transports(2)];
        assert_eq!(pack(&both, 3), Decision::NewCell, "a new cell while the pool may grow");
        assert_eq!(pack(&both, 2), Decision::Cell(0), "then the least loaded");
    }

    #[test]
    fn room_affinity_keeps_a_room_together() {
        let request = request(4).with_label("room", "blue");
        let cells = [cell(0, 0.5, &["r"]), cell(1, 0.1, &["r"]).with_label("room=blue", 3)];
        assert_eq!(bin_pack(&request, &cells, 0.6, false), Decision::Cell(0), "busiest without affinity");
        assert_eq!(bin_pack(&request, &cells, 0.6, true), Decision::Cell(1), "the room's cell with affinity");
    }

    #[test]
    fn spread_uses_every_core_then_the_fewest_objects() {
        assert_eq!(spread(&request(2), &[cell(0, 0.1, &[])]), Decision::NewCell);
        let cells = [cell(0, 0.4, &[]), cell(1, 0.2, &[])];
        assert_eq!(spread(&request(2), &cells), Decision::Cell(1));
        let cells = [cell(0, 0.4, &[]), cell(1, 0.1, &[]).with_consumers(100)];
        assert_eq!(spread(&request(2), &cells), Decision::Cell(0), "counts first");
    }
}
