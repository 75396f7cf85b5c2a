//! Node selection, the first of placement's two levels in a fleet: from the registry's host
//! records, which hosts a room may use (the placement policy then picks the worker among the
//! chosen hosts' cells). Pure data in, indices out. The built-in [`LeastLoaded`] keeps a room
//! on the hosts it already uses while one of them has room, and otherwise prefers the region
//! asked for, then the least loaded host. A placement policy may select instead
//! ([`super::PlacementPolicy::select_nodes`]; a plugin through `node-selection`, contract
//! 0.1.3).

use thiserror::Error;

/// Most nodes a selection returns (and most hosts linked beside those rooms use).
pub const MAX_SELECTED: usize = 64;

/// One host as node selection sees it (digested from its record, once per change), and what a
/// selection is for: the plugin contract's types, one declaration for host and plugins.
pub use mafalda_plugin_sdk::fleet::{FleetNode, NodeRequest};

/// A selector could not answer (the built-in one decides instead).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("node selection failed: {0}")]
pub struct SelectError(pub String);

/// Picks, in order of preference, the hosts a room may use.
pub trait NodeSelector: Send + Sync {
    /// Its name (logs, metrics).
    fn name(&self) -> String;
    /// Indices into `nodes`, best first, at most `request.limit`. Draining hosts and unknown
    /// indices in the answer are ignored.
    fn select(&self, request: &NodeRequest, nodes: &[FleetNode]) -> Result<Vec<u32>, SelectError>;
}

/// Default share of a host's predicted CPU above which a room takes one more host.
pub const DEFAULT_SPILL: f64 = 0.8;

/// The built-in selector.
#[derive(Debug, Clone, Copy)]
pub struct LeastLoaded {
    /// Mean predicted share at which a room's hosts count as full.
    pub spill: f64,
    /// Breaks near-ties between hosts differently in each process (0: by node order), so
    /// applications that see the same records do not all pick the same host.
    pub salt: u64,
}

impl Default for LeastLoaded {
    fn default() -> Self {
        Self { spill: DEFAULT_SPILL, salt: 0 }
    }
}

impl LeastLoaded {
    /// The built-in selector with a random tie-breaker of its own.
    pub fn salted() -> Self {
        let mut bytes = [0u8; 8];
        let salt = getrandom::fill(&mut bytes).map_or(0, |()| u64::from_le_bytes(bytes));
        Self { salt, ..Self::default() }
    }
}

/// A number in [0, 1) from `salt` and `node`, the same for both in one process (FNV-1a).
fn jitter(salt: u64, node: &str) -> f64 {
    if salt == 0 {
        return 0.0;
    }
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ salt;
    for byte in node.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash >> 11) as f64 / (1u64 << 53) as f64
}

/// How good a new host is for `request` (lower is better): another region costs more than any
/// load; then the predicted load, and rooms per worker as a tie-breaker between idle hosts.
fn cost(view: &FleetNode, region: Option<&str>, salt: u64) -> f64 {
    let elsewhere = region.is_some_and(|r| r != &*view.region);
    let rooms = f64::from(view.routers) / f64::from(view.workers.max(1));
    // The tie-breaker weighs less than one room per worker.
    f64::from(u8::from(elsewhere)) * 1e6 + view.load + 0.001 * rooms + 0.0009 * jitter(salt, view.name())
}

impl NodeSelector for LeastLoaded {
    fn name(&self) -> String {
        "least-loaded".into()
    }

    fn select(&self, request: &NodeRequest, nodes: &[FleetNode]) -> Result<Vec<u32>, SelectError> {
        let limit = (request.limit as usize).clamp(1, MAX_SELECTED);
        let open = |i: &u32| nodes.get(*i as usize).is_some_and(|n| !n.draining);
        let mut chosen: Vec<u32> = request.used.iter().copied().filter(open).collect();
        chosen.sort_by(|a, b| nodes[*a as usize].load.total_cmp(&nodes[*b as usize].load).then(a.cmp(b)));
        chosen.dedup();
        chosen.truncate(limit);
        let roomy = chosen.iter().any(|i| nodes[*i as usize].load < self.spill);
        if roomy || chosen.len() >= limit {
            return Ok(chosen);
        }
        // The best hosts outside the room, kept sorted in a short list (one pass).
        let want = limit - chosen.len();
        let region = request.region.as_deref();
        let mut best: Vec<(f64, u32)> = Vec::with_capacity(want + 1);
        for (i, view) in nodes.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            if view.draining || request.used.contains(&i) {
                continue;
            }
            let c = cost(view, region, self.salt);
            if best.len() == want && best.last().is_some_and(|(worst, _)| c >= *worst) {
                continue;
            }
            let at = best.partition_point(|(other, _)| *other <= c);
            best.insert(at, (c, i));
            best.truncate(want);
        }
        chosen.extend(best.into_iter().map(|(_, i)| i));
        Ok(chosen)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn view(node: &str, region: &str, load: f64) -> FleetNode {
        FleetNode::new(node, region).with_load(load).with_workers(2, 2)
    }

    fn names(nodes: &[FleetNode], chosen: &[u32]) -> Vec<String> {
        chosen.iter().map(|i| nodes[*i as usize].name().to_string()).collect()
    }

    #[test]
    fn a_new_room_goes_to_the_least_loaded_host_of_its_region() {
        let nodes = vec![view("a", "eu", 0.5), view("b", "us", 0.0), view("c", "eu", 0.2), view("d", "eu", 0.9)];
        let s = LeastLoaded::default();
        let request = NodeRequest { region: Some("eu".into()), limit: 2, ..NodeRequest::default() };
        assert_eq!(names(&nodes, &s.select(&request, &nodes).expect("select")), ["c", "a"]);
        let anywhere = NodeRequest { limit: 1, ..NodeRequest::default() };
        assert_eq!(names(&nodes, &s.select(&anywhere, &nodes).expect("select")), ["b"]);
    }

    #[test]
    fn a_room_stays_on_its_hosts_until_they_are_full_and_never_grows_onto_a_draining_one() {
        let mut nodes = vec![view("a", "eu", 0.5), view("b", "eu", 0.1), view("c", "eu", 0.3)];
        let s = LeastLoaded::default();
        let room = NodeRequest { used: vec![0], limit: 4, ..NodeRequest::default() };
        assert_eq!(names(&nodes, &s.select(&room, &nodes).expect("select")), ["a"]);
        nodes[0].load = 0.95;
        assert_eq!(names(&nodes, &s.select(&room, &nodes).expect("select")), ["a", "b", "c"], "full: spills");
        nodes[1].draining = true;
        assert_eq!(names(&nodes, &s.select(&room, &nodes).expect("select")), ["a", "c"]);
        nodes[0].draining = true;
        assert_eq!(names(&nodes, &s.select(&room, &nodes).expect("select")), ["c"], "its host drains: moves on");
    }

    #[test]
    fn idle_hosts_are_told_apart_by_their_rooms() {
        let mut nodes = vec![view("a", "eu", 0.0), view("b", "eu", 0.0)];
        nodes[0].routers = 4;
        let s = LeastLoaded::default();
        let request = NodeRequest { limit: 1, ..NodeRequest::default() };
        assert_eq!(names(&nodes, &s.select(&request, &nodes).expect("select")), ["b"]);
    }

    proptest! {
        #[test]
        fn never_a_draining_host_never_more_than_asked_never_twice(
            loads in proptest::collection::vec((0.0f64..1.5, any::<bool>(), 0u8..3), 0..60),
            used in proptest::collection::vec(0u32..70, 0..5),
            limit in 0u32..20,
        ) {
            let nodes: Vec<FleetNode> = loads.iter().enumerate().map(|(i, (load, draining, region))| {
                let mut v = view(&format!("n{i}"), ["eu", "us", "ap"][*region as usize], *load);
                v.draining = *draining;
                v
            }).collect();
            let request = NodeRequest { used, limit, region: Some("eu".into()), ..NodeRequest::default() };
            let chosen = LeastLoaded::default().select(&request, &nodes).expect("select");
            prop_assert!(chosen.len() <= (limit as usize).clamp(1, MAX_SELECTED));
            let mut seen = std::collections::HashSet::new();
            for i in &chosen {
                prop_assert!(!nodes[*i as usize].draining);
                prop_assert!(seen.insert(*i));
            }
            let open = nodes.iter().filter(|n| !n.draining).count();
            prop_assert!(!chosen.is_empty() || open == 0, "an open host exists but none was chosen");
        }
    }
}
