//! Plugin benchmark P3: the placement decision on the path `Host::place` takes, with the default
//! `pack` in wasm (the embedded plugin) and natively (the same SDK function):
//! - 16 cells: a host with 16 real workers, a room spread over them; `Router::preview_placement`
//!   runs exactly the decision `create_*_transport` makes (placement lock, each cell's row read
//!   under its lock, the rows packed, the policy, validation) without reserving;
//! - 1,024 cells (64 nodes x 16 workers, the cluster-scale goal): the same packing function and
//!   engine over synthetic rows kept as the host keeps its cells' (routers, label counts and
//!   counters behind one lock per cell);
//!
//! median and p99 µs per decision (goals: wasm median <= 3 µs at 16 cells, <= 20 µs at 1,024);
//! node selection (contract 0.1.3) over 500 and 5,000 host views: the built-in `LeastLoaded` vs
//! a plugin's `select_nodes` (`tests/plugins/node-select`: the hosts packed, the call, the
//! answer checked), median and p99 µs, their ratio, and the packing's share;
//! then the wasm decision as a share of one `consume()` on a real worker, and transport creation
//! (where placement runs) with the plugin vs the native packer, end to end.
//!
//! Run: `cargo bench -p mafalda-host --bench plugins`.

use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_host::labels::PlacementHints;
use mafalda_host::placement::{
    pack_rows, BinPack, Candidate, LabelMatch, LeastLoaded, NodeRequest, NodeSelector, PlacementEngine,
    PlacementPolicy, PlacementRequest, PlacementRow, RowReading,
};
use mafalda_host::plugin::{
    PluginKind, PluginLimits, PluginRuntime, WasmPlacement, BUILT_PLUGIN_DIR, DEFAULT_PLACEMENT_WASM,
};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_plugin_sdk::candidate::Name;
use mafalda_plugin_sdk::fleet::pack_nodes;
use mafalda_plugin_sdk::testing::varied_fleet;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WATERMARK: f64 = 0.6;
const CALLS: usize = 20_000;
const CONSUMES: usize = 300;
const ROUNDS: usize = 3;

/// Median and 99th percentile, in µs.
fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

fn time_calls(mut call: impl FnMut(usize)) -> Vec<Duration> {
    for i in 0..1_000 {
        call(i);
    }
    (0..CALLS)
        .map(|i| {
            let started = Instant::now();
            call(i);
            started.elapsed()
        })
        .collect()
}

/// What a synthetic cell keeps behind its lock: routers, label counts, counters, CPU.
type SyntheticState = (HashSet<u64>, HashMap<String, HashMap<String, u32>>, [u32; 4], f64);

/// A synthetic cell kept as the host keeps one: counters, and routers and label counts behind
/// one lock.
struct Synthetic {
    id: u32,
    node: Name,
    region: Name,
    state: Mutex<SyntheticState>,
}

impl PlacementRow<u64> for Synthetic {
    fn id(&self) -> u32 {
        self.id
    }

    fn location(&self) -> (&Name, &Name) {
        (&self.node, &self.region)
    }

    fn read(&self, router: &u64, labels: &[(String, String)], matches: &mut Vec<LabelMatch>) -> RowReading {
        let state = self.state.lock().expect("row");
        for (key, value) in labels {
            matches.push(state.1.get(key).map_or(LabelMatch::default(), |values| LabelMatch {
                same: values.get(value).copied().unwrap_or(0),
                distinct: values.len() as u32,
            }));
        }
        RowReading {
            cpu: state.3,
            predicted: state.3 + 0.05,
            hosts_router: state.0.contains(router),
            routers: state.0.len() as u32,
            counts: state.2,
            draining: false,
        }
    }
}

/// `n` cells of busy nodes (16 workers per node): mixed CPU, three routers, five rooms.
fn synthetic(n: u32) -> Vec<Synthetic> {
    (0..n)
        .map(|i| {
            let mut labels: HashMap<String, HashMap<String, u32>> = HashMap::new();
            labels.entry("room".into()).or_default().insert(format!("room-{}", i % 5), i % 4 + 1);
            Synthetic {
                id: i,
                node: format!("media{}", i / 16).into(),
                region: if i / 16 % 2 == 0 { "eu".into() } else { "us".into() },
                state: Mutex::new((
                    HashSet::from([u64::from(i % 3)]),
                    labels,
                    [i % 7 * 10, i % 3, i % 7 * 40, i % 2],
                    f64::from((i * 37) % 90) / 100.0,
                )),
            }
        })
        .collect()
}

/// Requests over rooms that exist and one that does not.
fn requests(max_cells: u32) -> Vec<(u64, PlacementRequest)> {
    (0..6u64)
        .map(|i| {
            let request = PlacementRequest::new(format!("router-{}", i % 3))
                .with_label("room", format!("room-{i}"))
                .with_max_cells(max_cells + 4);
            (i % 3, request)
        })
        .collect()
}

/// At 1,024 synthetic cells: the host's packing and engine with each policy.
fn cluster_scale(plugin: &Arc<WasmPlacement>) -> (f64, f64, f64, f64) {
    let cells = synthetic(1024);
    let requests = requests(1024);
    let native =
        PlacementEngine::new(Arc::new(BinPack { watermark: WATERMARK, max_transports: None }), BinPack::default());
    let wasm = PlacementEngine::new(Arc::clone(plugin) as Arc<dyn PlacementPolicy>, BinPack::default());
    for (router, request) in &requests {
        let view = pack_rows(cells.iter(), router, &request.labels);
        assert_eq!(native.decide(request, &view), wasm.decide(request, &view), "the plugin and native pack agree");
    }
    let time = |engine: &PlacementEngine| {
        summary(time_calls(|i| {
            let (router, request) = &requests[i % requests.len()];
            let view = pack_rows(cells.iter(), router, &request.labels);
            std::hint::black_box(engine.decide(request, &view));
        }))
    };
    let (n, w) = (time(&native), time(&wasm));
    (n.0, n.1, w.0, w.1)
}

/// At 16 real workers: `Router::preview_placement` (the decision `Host::place` makes).
async fn host_path(policy: PolicyChoice) -> (f64, f64) {
    let pool = PoolOptions { max_workers: 16, ..PoolOptions::default() };
    let manager = WorkerManager::with_options(HostOptions { pool, policy, ..HostOptions::default() });
    let worker = manager.create_worker(quiet()).await.expect("worker");
    while manager.host().cells().len() < 16 {
        manager.host().spawn_cell().await.expect("worker").expect("room in the pool");
    }
    let routers = [
        worker.create_router(RouterOptions::new(router_codecs())).await.expect("router"),
        worker.create_router(RouterOptions::new(router_codecs())).await.expect("router"),
    ];
    // A room's transports on every worker: rows with routers and label counts.
    let mut kept = Vec::new();
    for (i, router) in routers.iter().enumerate() {
        for k in 0..32 {
            let mut options = PlainTransportOptions::new(loopback_listen_info());
            options.app_data = AppData::new(PlacementHints::labels([("room", format!("room-{}", k % 5 + i))]));
            kept.push(router.create_plain_transport(options).await.expect("transport"));
        }
    }
    let hints: Vec<AppData> =
        (0..6).map(|i| AppData::new(PlacementHints::labels([("room", format!("room-{i}"))]))).collect();
    // The placement lock is uncontended here: polling the decision in place times it alone
    // (unconstrained: inside the runtime, tokio's cooperative budget would otherwise make its lock
    // answer "not yet" forever to a poll loop that never yields to the scheduler).
    let samples = time_calls(|i| {
        let preview = routers[i % 2].preview_placement(&hints[i % hints.len()]);
        let decision = futures_lite::future::block_on(tokio::task::unconstrained(preview));
        std::hint::black_box(decision.expect("a decision"));
    });
    summary(samples)
}

/// Both sizes, alternating native and wasm rounds.
async fn placement(plugin: &Arc<WasmPlacement>) -> Vec<(u32, f64)> {
    println!("P3 placement on the host's path: native pack vs pack plugin (wasm), {CALLS} decisions each");
    println!("  cells   native median/p99 µs    wasm median/p99 µs    goal (wasm median)");
    let (mut native16, mut wasm16) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        native16.push(host_path(PolicyChoice::Pack).await);
        wasm16.push(host_path(PolicyChoice::Custom(Arc::clone(plugin) as _)).await);
    }
    let middle = |mut v: Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (n16, w16) = (middle(native16), middle(wasm16));
    println!("  {:>5}   {:>8.3} / {:<8.3}       {:>8.3} / {:<8.3}      <= 3 µs", 16, n16.0, n16.1, w16.0, w16.1);
    let (n_med, n_p99, w_med, w_p99) = cluster_scale(plugin);
    println!("  {:>5}   {:>8.3} / {:<8.3}       {:>8.3} / {:<8.3}      <= 20 µs", 1024, n_med, n_p99, w_med, w_p99);
    vec![(16, w16.0), (1024, w_med)]
}

/// Node selection over 500 and 5,000 host views: the built-in vs the plugin (median, p99 µs).
fn node_selection(runtime: &Arc<PluginRuntime>) {
    let file = std::path::Path::new(BUILT_PLUGIN_DIR).join("mafalda_test_plugin_node_select.wasm");
    let bytes = std::fs::read(&file).expect("the node-select test plugin is built");
    let config = [("prefer-region".to_string(), "eu".to_string())];
    let plugin = WasmPlacement::from_bytes(Arc::clone(runtime), PluginKind::Placement, "node-select", &bytes, &config)
        .expect("the node-select plugin loads");
    let builtin = LeastLoaded::default();
    let request = NodeRequest { region: Some("eu".into()), limit: 4, ..NodeRequest::default() };
    println!(
        "Node selection (contract 0.1.3): built-in LeastLoaded vs node-select plugin (wasm), {CALLS} selections each"
    );
    println!(
        "  hosts   built-in median/p99 µs   plugin median/p99 µs   ratio (medians)   of which packing (median µs)"
    );
    for n in [500, 5_000] {
        let views = varied_fleet(n);
        assert!(matches!(plugin.select_nodes(&request, &views), Some(Ok(chosen)) if chosen.len() == 4));
        let native = summary(time_calls(|_| {
            std::hint::black_box(builtin.select(&request, &views).expect("selects"));
        }));
        let wasm = summary(time_calls(|_| {
            std::hint::black_box(plugin.select_nodes(&request, &views).expect("selects").expect("answers"));
        }));
        let packing = summary(time_calls(|_| {
            std::hint::black_box(pack_nodes(&views));
        }));
        println!(
            "  {n:>5}   {:>8.2} / {:<8.2}       {:>8.2} / {:<8.2}     {:>8.1}          {:>8.2}",
            native.0,
            native.1,
            wasm.0,
            wasm.1,
            wasm.0 / native.0,
            packing.0
        );
    }
    println!("  plugin counters: {:?}", plugin.counters());
}

fn quiet() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    settings
}

fn manager(policy: PolicyChoice) -> WorkerManager {
    let pool = PoolOptions { max_workers: 1, ..PoolOptions::default() };
    WorkerManager::with_options(HostOptions { pool, policy, ..HostOptions::default() })
}

/// Samples of `create_plain_transport` and of `consume()` on one worker under `policy`.
async fn operations(policy: PolicyChoice) -> (Vec<Duration>, Vec<Duration>) {
    let manager = manager(policy);
    let worker = manager.create_worker(quiet()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("transport");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x93))).await.expect("producer");
    let mut creates = Vec::new();
    let mut consumes = Vec::new();
    let mut kept = Vec::new();
    for _ in 0..CONSUMES {
        let started = Instant::now();
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
        creates.push(started.elapsed());
        let started = Instant::now();
        let consumer =
            transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
        consumes.push(started.elapsed());
        kept.push((transport, consumer));
    }
    (creates, consumes)
}

/// Median µs of creates and consumes over alternating rounds of both policies (after a
/// discarded warm-up round): the machine's drift hits both alike.
async fn end_to_end(plugin: Arc<WasmPlacement>) -> ((f64, f64), (f64, f64)) {
    operations(PolicyChoice::Pack).await;
    let (mut native, mut wasm) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for _ in 0..ROUNDS {
        let (creates, consumes) = operations(PolicyChoice::Pack).await;
        native.0.extend(creates);
        native.1.extend(consumes);
        let (creates, consumes) = operations(PolicyChoice::Custom(plugin.clone())).await;
        wasm.0.extend(creates);
        wasm.1.extend(consumes);
    }
    ((summary(native.0).0, summary(native.1).0), (summary(wasm.0).0, summary(wasm.1).0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runtime = PluginRuntime::new(PluginLimits::default(), None).expect("plugin runtime");
    let config = BinPack { watermark: WATERMARK, max_transports: None }.plugin_config();
    let plugin =
        WasmPlacement::from_bytes(Arc::clone(&runtime), PluginKind::Placement, "pack", DEFAULT_PLACEMENT_WASM, &config)
            .expect("the embedded pack plugin loads");
    let plugin = Arc::new(plugin);
    let wasm_medians = placement(&plugin).await;
    node_selection(&runtime);

    let ((native_create, native_consume), (wasm_create, wasm_consume)) = end_to_end(plugin.clone()).await;
    println!("P3 end to end on a real worker, {ROUNDS} x {CONSUMES} operations each (median µs):");
    println!(
        "  create_plain_transport: native pack {native_create:.1}, wasm pack {wasm_create:.1}, ratio {:.3}",
        wasm_create / native_create
    );
    println!("  consume():              native pack {native_consume:.1}, wasm pack {wasm_consume:.1}");
    let consume = (native_consume + wasm_consume) / 2.0;
    for (n, median) in wasm_medians {
        println!("  one wasm decision at {n} cells = {:.2} % of one consume() (goal <= 1 %)", median / consume * 100.0);
    }
    let counters = plugin.counters();
    println!("  plugin counters: {counters:?}");
    let _ = Candidate::default();
}
