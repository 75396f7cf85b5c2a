//! Bad plugins get a clear load error, or the built-in packer decides instead; the host keeps
//! serving and no session is lost; the counters show what happened. Each misbehaviour is a real
//! wasm plugin (`tests/plugins/misbehave`, configured by `mode`).

mod common;

use common::{
    built_plugin, options_with, placement_plugin, plain_producer, plugin_runtime, quiet_settings, sink_consumer,
    EVENT_LIMIT,
};
use mafalda_host::placement::{CellLoad, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{worlds::PlacementPlugin, PluginError, PluginKind, PluginLimits, PluginRuntime};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::time::Duration;

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
    match plugin.place_cells(&PlacementRequest::new("r").with_max_cells(2), &cells) {
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

#[test]
fn swapped_cache_artifacts_are_not_run() {
    let dir = std::env::temp_dir().join(format!("mafalda-swap-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = || PluginRuntime::new(PluginLimits::default(), Some(dir.clone())).expect("runtime");
    let artifacts = || -> Vec<std::path::PathBuf> {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("cache dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect();
        files.sort();
        files
    };
    let (pack, spread) = (built_plugin("mafalda_plugin_pack"), built_plugin("mafalda_plugin_spread"));
    let first = runtime();
    assert!(!first.load_file(&pack).expect("pack").from_cache);
    let pack_artifact = artifacts().pop().expect("pack's artifact");
    assert!(!first.load_file(&spread).expect("spread").from_cache);
    let spread_artifact = artifacts().into_iter().find(|p| *p != pack_artifact).expect("spread's artifact");
    // Both were written by the host and carry its MAC; put pack's where spread's belongs.
    std::fs::copy(&pack_artifact, &spread_artifact).expect("swap");
    let second = runtime();
    assert!(second.load_file(&pack).expect("pack").from_cache, "an untouched artifact is reused");
    let reloaded = second.load_file(&spread).expect("spread recompiles");
    assert!(!reloaded.from_cache, "an artifact made for other wasm must not run as spread");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_chatty_plugin_is_rate_limited() {
    let plugin = placement_plugin("mafalda_test_plugin_misbehave", &[("mode", "chatty")]);
    let cells = [CellLoad::new(0)];
    for _ in 0..3 {
        plugin.place_cells(&PlacementRequest::new("r").with_max_cells(2), &cells).expect("it still answers");
    }
    let dropped = plugin.counters().logs_dropped;
    let allowed = u64::from(PluginLimits::default().logs_per_second);
    // 3,000 lines asked for within a second or two: at most two windows' worth went out.
    assert!(dropped >= 3_000 - 2 * allowed, "dropped {dropped} of 3000 log lines");
}

#[test]
fn warm_instances_shrink_after_a_burst() {
    let plugin = placement_plugin("mafalda_test_plugin_misbehave", &[("mode", "ok")]);
    let keep = PluginLimits::default().warm_instances;
    let barrier = std::sync::Barrier::new(16);
    std::thread::scope(|scope| {
        for _ in 0..16 {
            scope.spawn(|| {
                barrier.wait();
                for _ in 0..50 {
                    plugin
                        .place_cells(&PlacementRequest::new("r").with_max_cells(2), &[CellLoad::new(0)])
                        .expect("placed");
                }
            });
        }
    });
    let counters = plugin.counters();
    assert!(counters.warm <= keep, "{} idle instances kept after the burst (cap {keep})", counters.warm);
    assert!(counters.warm >= 1, "one stays warm");
    assert_eq!(counters.calls, 16 * 50);
}

#[test]
fn a_call_is_bounded_in_wall_time_not_only_cpu_time() {
    // A CPU budget far beyond the test's patience; the wall bound stops the spinning call.
    let limits =
        PluginLimits { deadline: Duration::from_secs(30), wall: Duration::from_millis(100), ..PluginLimits::default() };
    let runtime = PluginRuntime::new(limits, None).expect("runtime");
    let compiled = runtime.load_file(&built_plugin("mafalda_test_plugin_misbehave")).expect("loads");
    let config =
        mafalda_host::plugin::PluginConfig::shared(&[("mode", "spin")]).for_plugin("misbehave").expect("config");
    let plugin =
        mafalda_host::plugin::WasmPlacement::from_compiled(runtime, PluginKind::Placement, compiled, None, &config)
            .expect("instantiates");
    let started = std::time::Instant::now();
    let error = plugin
        .place_cells(&PlacementRequest::new("r").with_max_cells(2), &[CellLoad::new(0)])
        .expect_err("interrupted");
    let took = started.elapsed();
    assert!(error.reason.contains("wall bound"), "{error}");
    assert!(took < Duration::from_secs(5), "stopped by the 100 ms wall bound, took {took:?}");
}
