//! A placement plugin of the `fleet-placement-plugin` world (contract 0.1.3), for the host's
//! node-selection tests. It places as `pack` does and selects hosts by a rule a test can
//! predict: draining hosts never; the host named by config `prefer-node` first; then hosts of the
//! preferred region (config `prefer-region`, else the request's region); then hosts the asking
//! host is linked to; then the fewest routers; then the lowest index. At most `request.limit`
//! (at least one).
//!
//! Config `misbehave` makes node selection fail: `out-of-range` answers an index past the last
//! host, `trap` panics, `spin` never returns.

use mafalda_plugin_sdk::policies::{bin_pack, PackRules};
use mafalda_plugin_sdk::prelude::*;
use std::sync::Mutex;

/// What `configure` set.
#[derive(Debug, Clone, Default)]
struct Settings {
    /// Host that comes first.
    prefer_node: Option<String>,
    /// Region whose hosts come next (else the request's).
    prefer_region: Option<String>,
    /// How node selection misbehaves (empty: it does not).
    misbehave: String,
}

static SETTINGS: Mutex<Settings> =
    Mutex::new(Settings { prefer_node: None, prefer_region: None, misbehave: String::new() });

fn settings() -> Settings {
    SETTINGS.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Pack's placement, the rule above for hosts.
pub struct NodeSelect;

impl Placement for NodeSelect {
    fn place(request: &Request, cells: &[Candidate]) -> Decision {
        bin_pack(request, cells, &PackRules { room_affinity: true, ..PackRules::DEFAULT })
    }

    fn configure(config: &Config) -> Result<(), String> {
        let misbehave = config.get("misbehave").unwrap_or_default().to_string();
        if !["", "out-of-range", "trap", "spin"].contains(&misbehave.as_str()) {
            return Err(format!("misbehave must be out-of-range, trap or spin, got {misbehave}"));
        }
        let prefer_node = config.get("prefer-node").map(String::from);
        let prefer_region = config.get("prefer-region").map(String::from);
        *SETTINGS.lock().map_err(|_| "state poisoned".to_string())? =
            Settings { prefer_node, prefer_region, misbehave };
        Ok(())
    }
}

impl NodeSelection for NodeSelect {
    fn select_nodes(request: &NodeRequest, nodes: &[FleetNode]) -> Vec<u32> {
        let settings = settings();
        match settings.misbehave.as_str() {
            "out-of-range" => return vec![u32::try_from(nodes.len()).unwrap_or(u32::MAX)],
            "trap" => panic!("node-select: trapping as configured"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => {}
        }
        let region = settings.prefer_region.as_deref().or(request.region.as_deref());
        let first = settings.prefer_node.as_deref();
        let key = |n: &FleetNode| {
            (first != Some(n.name()), region.is_some_and(|r| r != &*n.region), !n.linked, n.routers, n.index)
        };
        // One pass, keeping the best `limit` sorted in a short list (most hosts are compared
        // with its worst entry only).
        let limit = request.limit.max(1) as usize;
        let mut best = Vec::with_capacity(limit.min(nodes.len()) + 1);
        for node in nodes.iter().filter(|n| !n.draining) {
            let key = key(node);
            if best.len() == limit && best.last().is_some_and(|worst| key >= *worst) {
                continue;
            }
            let at = best.partition_point(|other| *other < key);
            best.insert(at, key);
            best.truncate(limit);
        }
        best.into_iter().map(|(.., index)| index).collect()
    }
}

mafalda_plugin_sdk::export_fleet_placement!(NodeSelect);

#[cfg(test)]
mod tests {
    use super::*;
    use mafalda_plugin_sdk::cells;
    use mafalda_plugin_sdk::testing::{cell, node, place, select_nodes};

    #[test]
    fn hosts_by_region_then_link_then_routers_never_a_draining_one() {
        let nodes = [
            node("a", "us").with_routers(0),
            node("b", "eu").with_routers(5),
            node("c", "eu").with_routers(1).draining(),
            node("d", "eu").with_routers(9).linked(),
            node("e", "ap").with_routers(2),
        ];
        let request = NodeRequest::new(3).with_region("eu");
        assert_eq!(select_nodes::<NodeSelect>(&request, &nodes), [3, 1, 0]);
        assert_eq!(select_nodes::<NodeSelect>(&NodeRequest::new(2), &nodes), [3, 0]);
        assert_eq!(select_nodes::<NodeSelect>(&NodeRequest::new(0), &nodes), [3], "at least one");
        NodeSelect::configure(&Config::new([("prefer-node", "e")])).expect("valid");
        assert_eq!(select_nodes::<NodeSelect>(&request, &nodes), [4, 3, 1], "the preferred host, then the rule");
        assert!(NodeSelect::configure(&Config::new([("misbehave", "sometimes")])).is_err());
    }

    #[test]
    fn places_as_pack_does() {
        let request = Request::new("r").with_label("room", "blue").with_max_cells(3);
        let cells = cells![cell(0).with_cpu(0.4), cell(1).with_cpu(0.1).with_label("room=blue", 2)];
        assert_eq!(place::<NodeSelect>(&request, &cells), Decision::Cell(1));
    }
}
