//! Node selection (contract 0.1.3), the first of placement's two levels in a fleet: which hosts
//! a room may use (placement then picks the worker among their cells). A host as a node
//! selection sees it is a [`FleetNode`]. Hosts cross into a plugin [`PackedNodes`]: a row of
//! numbers each, the regions named once, and all node names in one string, because every
//! string crossing into a guest costs an allocation call into it (500 hosts would be 500 calls).

use crate::candidate::Name;
use std::sync::Arc;

/// Numbers per host in [`PackedNodes::rows`].
pub const NODE_WIDTH: usize = 6;
/// Flag bit of a draining host in a packed row.
const DRAINING: u32 = 1;
/// Flag bit of a host the asking host is linked to.
const LINKED: u32 = 2;

/// What a node selection is for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeRequest {
    /// Id of the (virtual) router the room is; empty when the host chooses which hosts to link
    /// to rather than where one room goes.
    pub router: String,
    /// The region wanted (the transport's `region` label, else the asking host's region).
    pub region: Option<String>,
    /// Indices ([`FleetNode::index`]) of the hosts the room already uses.
    pub used: Vec<u32>,
    /// Most hosts to answer (the host ignores the rest).
    pub limit: u32,
}

impl NodeRequest {
    /// A request for at most `limit` hosts, anywhere, for a new room.
    pub fn new(limit: u32) -> Self {
        Self { limit, ..Self::default() }
    }

    /// The room is router `router`.
    pub fn with_router(mut self, router: impl Into<String>) -> Self {
        self.router = router.into();
        self
    }

    /// Hosts of `region` are wanted.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = Some(region.into());
        self
    }

    /// The room already uses the hosts at `used`.
    pub fn with_used(mut self, used: impl IntoIterator<Item = u32>) -> Self {
        self.used = used.into_iter().collect();
        self
    }
}

/// One host of the fleet, as a node selection sees it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FleetNode {
    /// Its index among the hosts of the selection: what an answer names.
    pub index: u32,
    /// Its region.
    pub region: Name,
    /// Mean predicted CPU share of its open workers (0..1, briefly above).
    pub load: f64,
    /// Workers it runs.
    pub workers: u32,
    /// Most workers it may run.
    pub max_workers: u32,
    /// Routers over its workers.
    pub routers: u32,
    /// It takes no new room (answering it is ignored).
    pub draining: bool,
    /// The asking host's link to it is up.
    pub linked: bool,
    /// Every host's name, one after the other (shared by all the hosts of a selection).
    names: Name,
    /// Where this host's name is in `names`.
    name: (usize, usize),
}

impl FleetNode {
    /// A host named `name` in `region`, idle, with no worker (chain `with_*` to fill it).
    pub fn new(name: &str, region: &str) -> Self {
        Self { region: region.into(), names: name.into(), name: (0, name.len()), ..Self::default() }
    }

    /// A host whose name and region are already shared strings (neither is copied), at
    /// `index`, idle, with no worker.
    pub fn shared(index: u32, name: &Name, region: &Name) -> Self {
        Self { index, region: Arc::clone(region), names: Arc::clone(name), name: (0, name.len()), ..Self::default() }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        self.names.get(self.name.0..self.name.1).unwrap_or_default()
    }

    /// With this predicted load.
    pub fn with_load(mut self, load: f64) -> Self {
        self.load = load;
        self
    }

    /// Running `workers` of at most `max_workers`.
    pub fn with_workers(mut self, workers: u32, max_workers: u32) -> Self {
        self.workers = workers;
        self.max_workers = max_workers;
        self
    }

    /// With `routers` routers over its workers.
    pub fn with_routers(mut self, routers: u32) -> Self {
        self.routers = routers;
        self
    }

    /// Draining.
    pub fn draining(mut self) -> Self {
        self.draining = true;
        self
    }

    /// Linked to the asking host.
    pub fn linked(mut self) -> Self {
        self.linked = true;
        self
    }

    /// Whether it may start another worker.
    pub fn has_room(&self) -> bool {
        self.workers < self.max_workers
    }
}

/// The hosts of one selection as they cross into a plugin (the WIT `fleet-nodes` record: see
/// `wit/plugin.wit` for the layout).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PackedNodes {
    /// Every host's name, host after host, without separators.
    pub names: String,
    /// The distinct regions.
    pub regions: Vec<Name>,
    /// [`NODE_WIDTH`] numbers per host: end of its name in `names` (bytes), region (index into
    /// `regions`), workers, max workers, routers, flags (bit 0 draining, bit 1 linked).
    pub rows: Vec<u32>,
    /// Mean predicted CPU share per host.
    pub load: Vec<f64>,
}

impl PackedNodes {
    /// Room for `hosts` hosts whose names take `name_bytes` bytes in all (an estimate is fine).
    pub fn with_capacity(hosts: usize, name_bytes: usize) -> Self {
        Self {
            names: String::with_capacity(name_bytes),
            regions: Vec::new(),
            rows: Vec::with_capacity(hosts * NODE_WIDTH),
            load: Vec::with_capacity(hosts),
        }
    }

    /// How many hosts are packed.
    pub fn len(&self) -> usize {
        self.rows.len() / NODE_WIDTH
    }

    /// Whether no host is packed.
    pub fn is_empty(&self) -> bool {
        self.rows.len() < NODE_WIDTH
    }

    /// Appends one host (its own [`FleetNode::index`] is not packed: its index is the number
    /// of hosts before it). Regions are named once, found by pointer first (hosts of one region
    /// usually share its name).
    pub fn push(&mut self, node: &FleetNode) {
        let region = &node.region;
        let same = |r: &Name| Arc::ptr_eq(r, region) || r == region;
        let at = match self.regions.last() {
            Some(last) if same(last) => self.regions.len() - 1,
            _ => self.regions.iter().position(same).unwrap_or_else(|| {
                self.regions.push(Arc::clone(region));
                self.regions.len() - 1
            }),
        };
        self.names.push_str(node.name());
        let flags = if node.draining { DRAINING } else { 0 } | if node.linked { LINKED } else { 0 };
        self.rows.extend([
            u32::try_from(self.names.len()).unwrap_or(u32::MAX),
            u32::try_from(at).unwrap_or(u32::MAX),
            node.workers,
            node.max_workers,
            node.routers,
            flags,
        ]);
        self.load.push(node.load);
    }
}

/// Packs `nodes` (their own [`FleetNode::index`] is not packed: a host's index is its position).
pub fn pack_nodes(nodes: &[FleetNode]) -> PackedNodes {
    let bytes = nodes.iter().map(|n| n.name().len()).sum();
    let mut packed = PackedNodes::with_capacity(nodes.len(), bytes);
    for node in nodes {
        packed.push(node);
    }
    packed
}

/// Unpacks the hosts (entries missing from a malformed `packed` read as zero or empty, a name
/// whose bounds are not in `names` as empty; an incomplete last row is ignored). No allocation
/// per host: the names stay in one shared string.
pub fn unpack_nodes(packed: &PackedNodes) -> Vec<FleetNode> {
    let names: Name = Name::from(packed.names.as_str());
    let mut start = 0usize;
    packed
        .rows
        .chunks_exact(NODE_WIDTH)
        .enumerate()
        .map(|(i, row)| {
            let end = row[0] as usize;
            let name = if start <= end && names.get(start..end).is_some() {
                let name = (start, end);
                start = end;
                name
            } else {
                (0, 0)
            };
            FleetNode {
                index: u32::try_from(i).unwrap_or(u32::MAX),
                region: packed.regions.get(row[1] as usize).cloned().unwrap_or_default(),
                load: packed.load.get(i).copied().unwrap_or_default(),
                workers: row[2],
                max_workers: row[3],
                routers: row[4],
                draining: row[5] & DRAINING != 0,
                linked: row[5] & LINKED != 0,
                names: Arc::clone(&names),
                name,
            }
        })
        .collect()
}

/// Every host as a node selection receives it: `nodes` packed and unpacked (indices are their
/// positions), computed natively.
pub fn fleet(nodes: &[FleetNode]) -> Vec<FleetNode> {
    unpack_nodes(&pack_nodes(nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_names_each_region_once() {
        let nodes = [
            FleetNode::new("media-1", "eu").with_load(0.25).with_workers(2, 4).with_routers(7),
            FleetNode::new("média-2", "eu").draining(),
            FleetNode::new("m3", "us").linked(),
        ];
        let packed = pack_nodes(&nodes);
        assert_eq!(packed.len(), 3);
        assert_eq!(packed.regions.len(), 2);
        assert_eq!(packed.names, "media-1média-2m3");
        let all = unpack_nodes(&packed);
        assert_eq!(all.iter().map(FleetNode::name).collect::<Vec<_>>(), ["media-1", "média-2", "m3"]);
        assert_eq!(all.iter().map(|n| n.index).collect::<Vec<_>>(), [0, 1, 2]);
        assert!(Arc::ptr_eq(&all[0].region, &all[1].region));
        assert_eq!(
            (&*all[0].region, all[0].load, all[0].workers, all[0].max_workers, all[0].routers),
            ("eu", 0.25, 2, 4, 7)
        );
        assert!(all[1].draining && !all[1].linked);
        assert!(all[2].linked && !all[2].draining && &*all[2].region == "us");
        assert!(all[0].has_room() && !all[2].has_room());
    }

    #[test]
    fn a_malformed_pack_reads_as_zero_or_empty() {
        let packed = PackedNodes {
            names: "abé".into(),
            regions: vec![],
            // Ends: 1, then inside `é` (not a boundary), then past the end, then 4; a short row.
            rows: vec![1, 0, 1, 1, 0, 0, 3, 9, 0, 0, 0, 0, 99, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 3, 7],
            load: vec![0.5],
        };
        let all = unpack_nodes(&packed);
        assert_eq!(all.len(), 4, "an incomplete row is ignored");
        assert_eq!(all.iter().map(FleetNode::name).collect::<Vec<_>>(), ["a", "", "", "bé"]);
        assert_eq!((all[0].load, all[1].load, &*all[1].region), (0.5, 0.0, ""));
        assert!(all[3].draining && all[3].linked);
    }
}
