//! Node selection by a placement plugin (contract 0.1.3): a plugin of the
//! `fleet-placement-plugin` world (`tests/plugins/node-select`), loaded through the real wasmtime
//! runtime, answers `PlacementPolicy::select_nodes` for 3 and for 500 hosts, sees every field of
//! a host (name, region, routers, draining, linked) and still places; plugins without the export
//! (0.1.0, pack) answer `None`; a wrong index, a trap or a timeout is an error (the built-in
//! selector then decides); a reload may bring a version that selects nodes or one that does not.

mod common;

use common::{built_plugin, placement_plugin, plugin_runtime};
use mafalda_host::placement::{CellLoad, Decision, FleetNode, NodeRequest, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{PluginConfig, PluginKind, PluginSet, WasmPlacement};
use mafalda_plugin_sdk::testing::varied_fleet;
use std::path::PathBuf;

const PLUGIN: &str = "mafalda_test_plugin_node_select";

fn view(node: &str, region: &str, routers: u32) -> FleetNode {
    FleetNode::new(node, region).with_load(0.1).with_workers(2, 4).with_routers(routers)
}

fn request(region: Option<&str>, limit: u32) -> NodeRequest {
    NodeRequest { region: region.map(String::from), limit, ..NodeRequest::default() }
}

fn select(plugin: &WasmPlacement, request: &NodeRequest, nodes: &[FleetNode]) -> Vec<u32> {
    plugin
        .select_nodes(request, nodes)
        .expect("the plugin selects nodes")
        .unwrap_or_else(|e| panic!("node selection failed: {e}"))
}

/// The test plugin's rule, natively: never draining; `first` by name; the region; linked; the
/// fewest routers; the lowest index.
fn expected(nodes: &[FleetNode], first: Option<&str>, region: Option<&str>, limit: usize) -> Vec<u32> {
    let mut open: Vec<usize> = (0..nodes.len()).filter(|i| !nodes[*i].draining).collect();
    open.sort_by_key(|i| {
        let n = &nodes[*i];
        (first != Some(n.name()), region.is_some_and(|r| r != &*n.region), !n.linked, n.routers, *i)
    });
    open.into_iter().take(limit.max(1)).map(|i| i as u32).collect()
}

#[test]
fn a_fleet_plugin_loads_as_a_placement_plugin_that_selects_nodes_and_still_places() {
    let compiled = plugin_runtime().load_file(&built_plugin(PLUGIN)).expect("loads");
    assert_eq!(compiled.kind, PluginKind::Placement);
    assert!(compiled.selects_nodes());
    assert!(compiled.exports.iter().any(|e| e == "mafalda:plugin/node-selection@0.1.3"), "{:?}", compiled.exports);
    let plugin = placement_plugin(PLUGIN, &[]);
    assert!(plugin.selects_nodes());
    // It places as pack does (room affinity, busiest under the watermark).
    let cells = [CellLoad::new(0).with_cpu(0.5), CellLoad::new(1).with_cpu(0.2), CellLoad::new(2).with_cpu(0.9)];
    let decision = plugin.place_cells(&PlacementRequest::new("r").with_max_cells(3), &cells).expect("placed");
    assert_eq!(decision, Decision::Cell(0));
    assert_eq!(plugin.counters().failures, 0);
}

#[test]
fn its_answer_is_returned_for_3_and_for_500_hosts() {
    let plugin = placement_plugin(PLUGIN, &[("prefer-region", "eu")]);
    let three = [view("a", "us", 0), view("b", "eu", 5), view("c", "eu", 1)];
    assert_eq!(select(&plugin, &request(None, 2), &three), [2, 1], "eu first, then the fewest routers");
    assert_eq!(select(&plugin, &request(Some("us"), 3), &three), [2, 1, 0], "the configured region wins");

    let many = varied_fleet(500);
    for limit in [1, 4, 16] {
        let answer = select(&plugin, &request(None, limit), &many);
        assert_eq!(answer, expected(&many, None, Some("eu"), limit as usize), "limit {limit}");
    }
    let before = plugin.counters().calls;
    select(&plugin, &request(None, 4), &many);
    assert_eq!(plugin.counters().calls, before + 1, "counted as a plugin call");
}

#[test]
fn every_field_of_a_host_reaches_the_plugin() {
    let plugin = placement_plugin(PLUGIN, &[]);
    // `linked` orders hosts of one region before routers do; a draining host is never answered.
    let mut nodes = [view("a", "eu", 0), view("b", "eu", 5), view("c", "eu", 1)];
    nodes[1].linked = true;
    assert_eq!(select(&plugin, &request(Some("eu"), 3), &nodes), [1, 0, 2], "the linked host first");
    nodes[0].draining = true;
    assert_eq!(select(&plugin, &request(Some("eu"), 3), &nodes), [1, 2], "the draining host left out");
    // Names (not ASCII, of any length) and regions cross intact among 500 hosts.
    let many = varied_fleet(500);
    let named = many[420].name().to_string();
    let plugin = placement_plugin(PLUGIN, &[("prefer-node", &named)]);
    let answer = select(&plugin, &request(Some("ap"), 16), &many);
    assert_eq!(answer[0], 420, "the host named in the config");
    assert_eq!(answer, expected(&many, Some(&named), Some("ap"), 16));
    let regions: Vec<&str> = answer.iter().skip(1).map(|i| &*many[*i as usize].region).collect();
    assert!(regions.iter().all(|r| *r == "ap"), "{regions:?}");
}

#[test]
fn plugins_without_node_selection_answer_none_and_keep_placing() {
    let nodes = [view("a", "eu", 0), view("b", "eu", 5)];
    for name in ["mafalda_test_plugin_contract_v010", "mafalda_plugin_pack"] {
        let plugin = placement_plugin(name, &[]);
        assert!(!plugin.selects_nodes(), "{name}");
        assert_eq!(plugin.select_nodes(&request(None, 2), &nodes), None, "{name}");
        let cells = [CellLoad::new(0).with_cpu(0.5), CellLoad::new(1).with_cpu(0.2)];
        plugin.place_cells(&PlacementRequest::new("r").with_max_cells(2), &cells).expect("still places");
        assert_eq!(plugin.counters().calls, 1, "{name}: the place call only");
    }
}

#[test]
fn a_wrong_index_a_trap_or_a_timeout_is_an_error() {
    let nodes = [view("a", "eu", 0), view("b", "eu", 5), view("c", "eu", 1)];
    let liar = placement_plugin(PLUGIN, &[("misbehave", "out-of-range")]);
    let error = liar.select_nodes(&request(None, 2), &nodes).expect("selects").expect_err("index 3 of 3");
    assert!(error.reason.contains("out of range"), "{error}");

    let trap = placement_plugin(PLUGIN, &[("misbehave", "trap")]);
    assert!(trap.select_nodes(&request(None, 2), &nodes).expect("selects").is_err());
    assert_eq!(trap.counters().failures, 1);

    let spin = placement_plugin(PLUGIN, &[("misbehave", "spin")]);
    assert!(spin.select_nodes(&request(None, 2), &nodes).expect("selects").is_err());
    assert_eq!((spin.counters().failures, spin.counters().timeouts), (1, 1));
    // Backing off after the failure: placement too waits, like after a failed `place`.
    let cells = [CellLoad::new(0)];
    assert!(spin.place_cells(&PlacementRequest::new("r").with_max_cells(1), &cells).is_err());
}

#[test]
fn a_reload_switches_between_a_plugin_that_selects_nodes_and_one_that_does_not() {
    let dir = std::env::temp_dir().join(format!("mafalda-node-select-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path: PathBuf = dir.join("policy.wasm");
    let install = |plugin: &str| {
        let tmp = path.with_extension("tmp");
        std::fs::copy(built_plugin(plugin), &tmp).expect("copy");
        std::fs::rename(&tmp, &path).expect("rename");
    };
    install("mafalda_plugin_pack");
    let runtime = plugin_runtime();
    let config = PluginConfig::shared(&[("prefer-region", "us")]);
    let set = PluginSet::load(&runtime, std::slice::from_ref(&path), &config).expect("loads");
    let plugin = set.placement.clone().expect("placement");
    let nodes = [view("a", "eu", 0), view("b", "us", 5)];
    assert_eq!(plugin.select_nodes(&request(None, 2), &nodes), None);

    install(PLUGIN);
    assert!(set.reload().iter().all(|(_, r)| r.is_ok()));
    assert_eq!(select(&plugin, &request(None, 2), &nodes), [1, 0], "the new version selects, configured");

    install("mafalda_test_plugin_contract_v010");
    assert!(set.reload().iter().all(|(_, r)| r.is_ok()));
    assert_eq!(plugin.select_nodes(&request(None, 2), &nodes), None);
    let cells = [CellLoad::new(0).with_cpu(0.5), CellLoad::new(1).with_cpu(0.2)];
    let decision = plugin.place_cells(&PlacementRequest::new("r").with_max_cells(2), &cells).expect("placed");
    assert_eq!(decision, Decision::Cell(1), "the old plugin's rule");
    assert_eq!(plugin.swaps(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
