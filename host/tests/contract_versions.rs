//! The plugin contract grows compatibly: plugins built against `mafalda:plugin@0.1.0` (before
//! the `load` and `connect-target` imports) still load, place and authorize, and plugins built
//! against 0.1.1 see the host's predicted load through that import; plugins built against 0.1.3
//! may also export `node-selection` (a new world) and are asked to select nodes.

mod common;

use common::{built_plugin, placement_plugin, plugin_runtime};
use mafalda_host::placement::{CellLoad, Decision, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{PluginConfig, PluginKind, PluginSet};
use mafalda_plugin_sdk::types::{AuthRequest, Destination, Operation};

#[test]
fn a_plugin_built_against_contract_0_1_0_still_loads_and_places() {
    let runtime = plugin_runtime();
    let compiled = runtime.load_file(&built_plugin("mafalda_test_plugin_contract_v010")).expect("loads");
    assert_eq!(compiled.kind, PluginKind::Placement);
    assert!(
        compiled.exports.iter().any(|e| e == "mafalda:plugin/placement@0.1.0"),
        "it really is a 0.1.0 plugin: {:?}",
        compiled.exports
    );
    assert!(!compiled.imports.iter().any(|i| i.starts_with("mafalda:plugin/load")), "{:?}", compiled.imports);
    let plugin = placement_plugin("mafalda_test_plugin_contract_v010", &[]);
    let cells = [CellLoad::new(0).with_cpu(0.5), CellLoad::new(1).with_cpu(0.2), CellLoad::new(2).with_cpu(0.9)];
    let decision = plugin.place_cells(&PlacementRequest::new("r").with_max_cells(3), &cells).expect("placed");
    assert_eq!(decision, Decision::Cell(1), "the least loaded cell, by the old plugin's own rule");
    assert_eq!(plugin.counters().failures, 0);
}

#[test]
fn plugins_built_against_contract_0_1_1_see_the_predicted_load() {
    let plugin = placement_plugin("mafalda_plugin_pack", &[]);
    // Both measure 0 (silent producers); the first is predicted past pack's 0.6 watermark.
    let cells = [CellLoad::new(0).with_predicted(0.7), CellLoad::new(1).with_predicted(0.1)];
    let request = PlacementRequest::new("r").with_max_cells(2);
    assert_eq!(plugin.place_cells(&request, &cells).expect("placed"), Decision::Cell(1), "full by prediction: skipped");
    // Without predictions the same cells tie and pack keeps to the first.
    let measured_only = [CellLoad::new(0), CellLoad::new(1)];
    assert_eq!(plugin.place_cells(&request, &measured_only).expect("placed"), Decision::Cell(0));
}

#[tokio::test]
async fn an_auth_plugin_built_against_contract_0_1_0_still_loads_and_authorizes() {
    let runtime = plugin_runtime();
    let compiled = runtime.load_file(&built_plugin("mafalda_test_plugin_contract_v010_auth")).expect("loads");
    assert_eq!(compiled.kind, PluginKind::Auth);
    assert!(compiled.exports.iter().any(|e| e == "mafalda:plugin/auth@0.1.0"), "{:?}", compiled.exports);
    assert!(!compiled.imports.iter().any(|i| i.starts_with("mafalda:plugin/connect-target")), "{:?}", compiled.imports);
    let files = [built_plugin("mafalda_test_plugin_contract_v010_auth")];
    let set = PluginSet::load(&runtime, &files, &PluginConfig::default()).expect("loads");
    let manager = common::slotted_manager(1);
    manager.host().set_auth(set.auth);
    let connect = AuthRequest {
        token: Some("alice".into()),
        peer: None,
        operation: Operation::CreateTransport,
        router: None,
        room: None,
        now_unix: 1,
        destination: Some(Destination { ip: [192, 0, 2, 7].into(), port: Some(5004), rtcp_port: None }),
    };
    assert_eq!(manager.host().authorize(&connect).expect("the old rule: a token is enough").identity, "alice");
    let anonymous = AuthRequest { token: None, ..connect };
    assert!(manager.host().authorize(&anonymous).is_err());
}

#[test]
fn plugins_built_against_contract_0_1_3_may_also_select_nodes() {
    use mafalda_host::placement::{FleetNode, NodeRequest};
    let runtime = plugin_runtime();
    // The 0.1.0 plugin and pack export no `node-selection`: loaded in the placement world.
    for name in ["mafalda_test_plugin_contract_v010", "mafalda_plugin_pack"] {
        let compiled = runtime.load_file(&built_plugin(name)).expect("loads");
        assert!(!compiled.selects_nodes(), "{name}: {:?}", compiled.exports);
    }
    let compiled = runtime.load_file(&built_plugin("mafalda_test_plugin_node_select")).expect("loads");
    assert_eq!(compiled.kind, PluginKind::Placement, "a fleet placement plugin is a placement plugin");
    assert!(compiled.selects_nodes(), "{:?}", compiled.exports);
    let plugin = placement_plugin("mafalda_test_plugin_node_select", &[]);
    let view = |node: &str, routers| FleetNode::new(node, "eu").with_workers(1, 1).with_routers(routers);
    let request = NodeRequest { limit: 1, ..NodeRequest::default() };
    let answer = plugin.select_nodes(&request, &[view("a", 3), view("b", 1)]).expect("it selects nodes");
    assert_eq!(answer.expect("answered"), [1], "the fewest routers, by the plugin's rule");
}
