//! A cell as one placement request sees it: its load, where it runs, and how it relates to the
//! request (is the request's router there, how many of its transports share each of the
//! request's labels). This is what a placement plugin decides on. It crosses into the plugin
//! [`Packed`] (rows of numbers, names once), because the full [`Cell`] — every router id and
//! label as a string, every field a separate store — costs a host-to-guest allocation call per
//! string, which was most of a call's time.

use crate::types::{Cell, Request};
use std::sync::Arc;

/// A shared, immutable name (node, region): cloning it does not copy the string.
pub type Name = Arc<str>;

/// How a cell relates to one label (`key=value`) of the request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LabelMatch {
    /// Transports in the cell carrying the same `key=value`.
    pub same: u32,
    /// Distinct values of `key` among the cell's transports.
    pub distinct: u32,
}

impl LabelMatch {
    /// How `cell` relates to the label `key=value`.
    pub fn of(cell: &Cell, key: &str, value: &str) -> Self {
        let mut found = Self::default();
        for (key_value, count) in &cell.labels {
            if let Some(v) = key_value.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')) {
                found.distinct += 1;
                if v == value {
                    found.same += count;
                }
            }
        }
        found
    }
}

/// One open cell, as a candidate for the transport being placed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    /// Cell id (answer it in [`Decision::Cell`](crate::types::Decision::Cell)).
    pub id: u32,
    /// The node it runs on.
    pub node: Name,
    /// The node's region.
    pub region: Name,
    /// CPU share of one core (0..1, briefly above), last sample.
    pub cpu: f64,
    /// The host's predicted CPU share (the `load` import; 0 when the host gives none).
    pub predicted: f64,
    /// Transports placed here.
    pub transports: u32,
    /// Producers living here.
    pub producers: u32,
    /// Consumers living here.
    pub consumers: u32,
    /// Producers piped in from other cells.
    pub pipes: u32,
    /// Routers with a presence here.
    pub routers: u32,
    /// The request's router is present here.
    pub hosts_router: bool,
    /// Takes no new transports.
    pub draining: bool,
    /// The label matches of every candidate of the request, row after row (shared).
    label_table: Arc<[LabelMatch]>,
    /// Where this cell's row starts, and its width (the request's label count).
    label_row: (usize, usize),
}

impl Candidate {
    /// `cell` as `request` sees it.
    pub fn of(request: &Request, cell: &Cell) -> Self {
        candidates(request, std::slice::from_ref(cell)).pop().unwrap_or_default()
    }

    /// One entry per label of the request, in the request's order.
    pub fn labels(&self) -> &[LabelMatch] {
        let (start, width) = self.label_row;
        self.label_table.get(start..start + width).unwrap_or_default()
    }

    /// How this cell relates to the request's label `key` (all zero when the request has none).
    pub fn label(&self, request: &Request, key: &str) -> LabelMatch {
        self.label_at(request.label_index(key))
    }

    /// The match of the request's label at `index` (see [`Request::label_index`]); all zero
    /// for `None`.
    pub fn label_at(&self, index: Option<usize>) -> LabelMatch {
        index.and_then(|i| self.labels().get(i)).copied().unwrap_or_default()
    }

    /// Transports + producers + consumers + pipes: what the cell carries right now (CPU is only
    /// known at the next sample).
    pub fn objects(&self) -> u32 {
        self.transports + self.producers + self.consumers + self.pipes
    }

    /// The load to decide on: the predicted CPU share, or the measured one when higher (or
    /// when the host predicts nothing).
    pub fn load(&self) -> f64 {
        self.cpu.max(self.predicted)
    }
}

/// The distinct (node, region) pairs of a set of cells, each named once.
#[derive(Debug, Default)]
struct Locations<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Locations<'a> {
    /// The index of `cell`'s location, added when new (cells of one node are usually adjacent).
    fn index(&mut self, cell: &'a Cell) -> u32 {
        let pair = (cell.node.as_str(), cell.region.as_str());
        let found = match self.pairs.last() {
            Some(last) if *last == pair => Some(self.pairs.len() - 1),
            _ => self.pairs.iter().position(|p| *p == pair),
        };
        let index = found.unwrap_or_else(|| {
            self.pairs.push(pair);
            self.pairs.len() - 1
        });
        u32::try_from(index).unwrap_or(u32::MAX)
    }
}

/// Numbers per cell in [`Packed::loads`].
pub const LOAD_WIDTH: usize = 8;
const HOSTS_ROUTER: u32 = 1;
const DRAINING: u32 = 2;

/// The candidates of one request as they cross into a plugin (the WIT `candidates` record:
/// see `wit/plugin.wit` for the layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Packed {
    /// Distinct (node, region) pairs.
    pub locations: Vec<(Name, Name)>,
    /// [`LOAD_WIDTH`] numbers per cell.
    pub loads: Vec<u32>,
    /// CPU share per cell.
    pub cpu: Vec<f64>,
    /// Predicted CPU share per cell (given to plugins by the `load` import, not in the record).
    pub predicted: Vec<f64>,
    /// Two numbers (same, distinct) per cell and request label.
    pub labels: Vec<u32>,
}

/// Packs `cells` as `request` sees them.
pub fn pack(request: &Request, cells: &[Cell]) -> Packed {
    let mut locations = Locations::default();
    let mut packed = Packed {
        locations: Vec::new(),
        loads: Vec::with_capacity(cells.len() * LOAD_WIDTH),
        cpu: Vec::with_capacity(cells.len()),
        labels: Vec::with_capacity(cells.len() * request.labels.len() * 2),
        predicted: Vec::with_capacity(cells.len()),
    };
    for cell in cells {
        let flags = if cell.hosts_router(&request.router) { HOSTS_ROUTER } else { 0 }
            | if cell.draining { DRAINING } else { 0 };
        let routers = u32::try_from(cell.routers.len()).unwrap_or(u32::MAX);
        let location = locations.index(cell);
        packed.loads.extend([
            cell.id,
            location,
            cell.transports,
            cell.producers,
            cell.consumers,
            cell.pipes,
            routers,
            flags,
        ]);
        packed.cpu.push(cell.cpu);
        packed.predicted.push(cell.predicted);
        for (key, value) in &request.labels {
            let found = LabelMatch::of(cell, key, value);
            packed.labels.extend([found.same, found.distinct]);
        }
    }
    packed.locations = locations.pairs.iter().map(|(n, r)| (Name::from(*n), Name::from(*r))).collect();
    packed
}

/// Unpacks the candidates of `request` (entries missing from a malformed `packed` read as zero
/// or empty; extra ones are ignored).
pub fn unpack(request: &Request, packed: &Packed) -> Vec<Candidate> {
    unpack_rows(request.labels.len(), packed)
}

/// Unpacks candidates whose label rows are `width` wide (the request's label count).
pub fn unpack_rows(width: usize, packed: &Packed) -> Vec<Candidate> {
    let names = &packed.locations;
    let label_table: Arc<[LabelMatch]> =
        packed.labels.chunks_exact(2).map(|m| LabelMatch { same: m[0], distinct: m[1] }).collect();
    packed
        .loads
        .chunks_exact(LOAD_WIDTH)
        .enumerate()
        .map(|(i, load)| {
            let (node, region) = names.get(load[1] as usize).cloned().unwrap_or_default();
            Candidate {
                id: load[0],
                node,
                region,
                cpu: packed.cpu.get(i).copied().unwrap_or_default(),
                predicted: packed.predicted.get(i).copied().unwrap_or_default(),
                transports: load[2],
                producers: load[3],
                consumers: load[4],
                pipes: load[5],
                routers: load[6],
                hosts_router: load[7] & HOSTS_ROUTER != 0,
                draining: load[7] & DRAINING != 0,
                label_table: Arc::clone(&label_table),
                label_row: (i * width, width),
            }
        })
        .collect()
}

/// Every cell as `request` sees it: what a placement plugin receives, computed natively.
pub fn candidates(request: &Request, cells: &[Cell]) -> Vec<Candidate> {
    unpack(request, &pack(request, cells))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::cell;

    #[test]
    fn a_candidate_relates_a_cell_to_the_request() {
        let request = Request::new("r").with_label("room", "blue").with_label("role", "presenter");
        let c = cell(3)
            .with_router("r")
            .with_router("s")
            .with_label("room=blue", 2)
            .with_label("room=red", 1)
            .with_label("roomy=blue", 5);
        let candidate = Candidate::of(&request, &c);
        assert_eq!(candidate.id, 3);
        assert!(candidate.hosts_router);
        assert!(!candidate.draining);
        assert_eq!(candidate.routers, 2);
        assert_eq!(candidate.label(&request, "room"), LabelMatch { same: 2, distinct: 2 });
        assert_eq!(candidate.label(&request, "role"), LabelMatch::default());
        assert_eq!(candidate.label(&request, "absent"), LabelMatch::default());
        assert!(!Candidate::of(&Request::new("t"), &c).hosts_router);
    }

    #[test]
    fn packing_round_trips_and_shares_names() {
        let request = Request::new("r").with_label("room", "blue");
        let mut a = cell(0).with_cpu(0.25).with_transports(4).with_label("room=blue", 3);
        a.node = "n1".into();
        a.region = "eu".into();
        let b = Cell { id: 1, draining: true, ..a.clone() }.with_router("r");
        let mut c = cell(7).with_consumers(9);
        c.node = "n2".into();
        let all = candidates(&request, &[a, b, c]);
        assert_eq!(all.len(), 3);
        assert!(Arc::ptr_eq(&all[0].node, &all[1].node));
        assert_eq!((&*all[0].node, &*all[0].region, all[0].cpu, all[0].transports), ("n1", "eu", 0.25, 4));
        assert_eq!(all[0].labels(), &[LabelMatch { same: 3, distinct: 1 }]);
        assert!(all[1].draining && all[1].hosts_router && !all[0].hosts_router);
        assert_eq!((all[2].id, &*all[2].node, all[2].consumers), (7, "n2", 9));
        assert_eq!(all[2].labels(), &[LabelMatch::default()]);
    }

    #[test]
    fn a_malformed_pack_reads_as_zero() {
        let request = Request::new("r").with_label("room", "blue");
        let packed = Packed {
            locations: vec![],
            loads: vec![5, 9, 1, 0, 0, 0, 0, 0, 42],
            cpu: vec![],
            labels: vec![1],
            predicted: vec![],
        };
        let all = unpack(&request, &packed);
        assert_eq!(all.len(), 1, "an incomplete row is ignored");
        assert_eq!((all[0].id, &*all[0].node, all[0].cpu), (5, "", 0.0));
        assert_eq!(all[0].label(&request, "room"), LabelMatch::default());
    }
}
