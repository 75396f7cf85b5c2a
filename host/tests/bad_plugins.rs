//! Bad plugins get a clear load error, or the built-in packer decides instead; the host keeps
//! serving and no session is lost; the counters show what happened. Each misbehaviour is a real
//! wasm plugin (`tests/plugins/misbehave`, configured by `mode`).

mod common;

use common::{
    built_plugin, options_with, placement_plugin, plain_producer, plugin_runtime, quiet_settings, sink_consumer,
    EVENT_LIMIT,
};
use mafalda_host::placement::{CellLoad, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{worlds::PlacementPlugin, PluginError, PluginKind};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};

#[test]
fn not_wasm_wrong_world_and_bad_modules_are_load_errors() {
    let runtime = plugin_runtime();
    assert!(matches!(runtime.load("garbage", b"hello, world"), Err(PluginError::NotWasm { .. })));
    let foreign = std::fs::read(built_plugin("mafalda_test_plugin_foreign")).expect("built");
    match runtime.load("foreign", &foreign) {
        Err(error @ PluginError::WrongWorld { .. }) => {
            let text = error.to_string();
            assert!(text.contains("none of placement, auth, autoscale") && text.contains("greet"), "{text}");
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    // A valid component of another hook, given as a placement plugin.
    let auth = std::fs::read(built_plugin("mafalda_plugin_token_auth")).expect("built");
    let wrong = mafalda_host::plugin::swap::Swappable::<PlacementPlugin>::from_bytes(
        runtime.clone(),
        PluginKind::Placement,
        "auth",
        &auth,
        &[],
    );
    match wrong {
        Err(error @ PluginError::WrongWorld { .. }) => {
            assert!(error.to_string().contains("expected a placement-plugin"), "{error}")
        }
        other => panic!("expected WrongWorld, got {other:?}"),
    }
    // Truncated wasm: a component does not compile; a core module cannot be componentised.
    let pack = std::fs::read(built_plugin("mafalda_plugin_pack")).expect("built");
    assert!(matches!(runtime.load("truncated", &pack[..pack.len() / 2]), Err(PluginError::Compile { .. })));
    mafalda_host::plugin::set_componentizer(mafalda_plugin_componentize::componentize);
    let module = std::path::Path::new(env!("MAFALDA_PLUGIN_MODULE_DIR")).join("mafalda_plugin_pack.wasm");
    let module = std::fs::read(module).expect("built core module");
    assert!(runtime.load("whole core module", &module).is_ok());
    assert!(matches!(runtime.load("truncated", &module[..module.len() / 2]), Err(PluginError::Componentize { .. })));
}

/// A host placing with the misbehaving plugin in `mode`: the session works (fallback placed
/// it), keeps working while the plugin keeps failing, and the counters show the failures.
async fn serves_despite(mode: &str, reason: &str) {
    let plugin = placement_plugin("mafalda_test_plugin_misbehave", &[("mode", mode)]);
    let cells = [CellLoad::new(0)];
    match plugin.place(&PlacementRequest::new("r").with_max_cells(2), &cells) {
        Ok(decision) => assert_eq!(mode, "liar", "only the liar answers: {decision:?}"),
        Err(error) => assert!(error.reason.contains(reason), "{mode}: {error}"),
    }

    let manager = WorkerManager::with_options(options_with(2, plugin.clone()));
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(3)).await;
    let (_t, _c, sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await;
    let generator =
        RtpGenerator::start(&input, GeneratorConfig::opus(3).with_rate(200).with_count(80)).await.expect("generator");
    // More placements while media flows: each falls back, nothing already placed is disturbed.
    let mut more = Vec::new();
    for _ in 0..3 {
        more.push(sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await);
    }
    generator.finished().await.expect("sent");
    let report = sink.wait_for(80, EVENT_LIMIT).await;
    assert!(report.has_all(80), "{mode}: the session lost packets ({} of 80)", report.indices.len());

    let counters = manager.host().placement_counters();
    assert!(counters.fallbacks >= 5, "{mode}: every placement fell back: {counters:?}");
    assert_eq!(counters.rejections, 0);
    let plugin_counters = plugin.counters();
    if mode == "liar" {
        assert!(plugin_counters.calls >= 5, "{plugin_counters:?}");
    } else {
        assert!(plugin_counters.failures >= 1, "{mode}: {plugin_counters:?}");
        assert!(plugin_counters.failures + plugin_counters.skipped >= 5, "{mode}: {plugin_counters:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin() {
    serves_despite("trap", "trapped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_loops_forever() {
    serves_despite("spin", "ran out of time").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_allocates_without_bound() {
    serves_despite("hog", "trapped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_answers_an_unknown_cell() {
    serves_despite("liar", "").await;
}
