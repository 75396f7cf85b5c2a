//! Plugin benchmark P3: placement by the default `pack` plugin in wasm vs the same policy
//! compiled natively (the SDK's `candidates` view and `bin_pack`, which the plugin wraps), with
//! 16, 64 and 1,024 cells (64 nodes x 16 workers, the cluster-scale goal: <= 20 µs median):
//! median and p99 µs per decision and their ratio; then the wasm decision as a share of one
//! `consume()` on a real worker (goal: ≤ 1 %), and transport creation (where placement runs)
//! with the plugin vs the native packer, end to end.
//!
//! Run: `cargo bench -p mafalda-host --bench plugins`.

use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_host::internals::load_model::{consumers_per_transport, CellCounts, LoadModel};
use mafalda_host::placement::{CellLoad, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{PluginKind, PluginLimits, PluginRuntime, WasmPlacement, DEFAULT_PLACEMENT_WASM};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_plugin_sdk::candidate::candidates;
use mafalda_plugin_sdk::policies::{bin_pack, PackRules};
use std::sync::Arc;
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

/// `n` cells of a busy node: mixed CPU, several routers and rooms.
fn cells(n: u32) -> Vec<CellLoad> {
    (0..n)
        .map(|i| {
            let cpu = f64::from((i * 37) % 90) / 100.0;
            CellLoad::new(i)
                .with_cpu(cpu)
                .with_predicted(cpu + f64::from(i % 3) * 0.05)
                .with_transports(i % 7 * 10)
                .with_router(format!("router-{}", i % 3))
                .with_label(format!("room=room-{}", i % 5), i % 4 + 1)
        })
        .map(|mut cell| {
            // At cluster scale: 16 workers per node.
            cell.node = format!("media{}", cell.id / 16);
            cell.region = if cell.id / 16 % 2 == 0 { "eu".into() } else { "us".into() };
            cell
        })
        .collect()
}

/// Requests over rooms that exist and one that does not.
fn requests(max_cells: u32) -> Vec<PlacementRequest> {
    (0..6)
        .map(|i| {
            PlacementRequest::new(format!("router-{}", i % 3))
                .with_label("room", format!("room-{i}"))
                .with_max_cells(max_cells + 4)
        })
        .collect()
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

/// Placement alone; returns the wasm median at each size.
fn placement(plugin: &WasmPlacement) -> Vec<(u32, f64)> {
    println!("P3 placement: pack plugin (wasm) vs the same bin_pack native, {CALLS} decisions each");
    println!("  cells   native median/p99 µs    wasm median/p99 µs    ratio (median)");
    let mut wasm_medians = Vec::new();
    let rules = PackRules { room_affinity: true, ..PackRules::watermark(WATERMARK) };
    for n in [16, 64, 1024] {
        let cells = cells(n);
        let requests = requests(n);
        for request in &requests {
            let native = bin_pack(request, &candidates(request, &cells), &rules);
            let wasm = plugin.place(request, &cells).expect("the plugin decides");
            assert_eq!(native, wasm, "the plugin and the native policy agree");
        }
        let native = summary(time_calls(|i| {
            let request = &requests[i % requests.len()];
            std::hint::black_box(bin_pack(request, &candidates(request, &cells), &rules));
        }));
        let wasm = summary(time_calls(|i| {
            std::hint::black_box(plugin.place(&requests[i % requests.len()], &cells).ok());
        }));
        // The whole native decision as the host makes it: the load model's prediction of every
        // cell (from its counts), then the policy.
        let model = LoadModel::default();
        let counts: Vec<CellCounts> = cells
            .iter()
            .map(|c| CellCounts {
                cpu: c.cpu,
                transports: c.transports,
                reserved: 1,
                producers: c.producers,
                consumers: c.consumers,
                pipes: c.pipes,
            })
            .collect();
        let mut predicted_cells = cells.clone();
        let with_model = summary(time_calls(|i| {
            let request = &requests[i % requests.len()];
            let fanout = model.expected_fanout(consumers_per_transport(&counts));
            for (cell, k) in predicted_cells.iter_mut().zip(&counts) {
                cell.predicted = model.predicted(k, fanout);
            }
            std::hint::black_box(bin_pack(request, &candidates(request, &predicted_cells), &rules));
        }));
        println!(
            "  {n:>5}   native with the load model: {:.3} / {:.3} µs (goal <= 5 µs at 16 cells)",
            with_model.0, with_model.1
        );
        println!(
            "  {n:>5}   {:>8.3} / {:<8.3}       {:>8.3} / {:<8.3}      {:>6.1}x",
            native.0,
            native.1,
            wasm.0,
            wasm.1,
            wasm.0 / native.0
        );
        wasm_medians.push((n, wasm.0));
    }
    wasm_medians
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
    let config = vec![("cpu_watermark".to_string(), WATERMARK.to_string())];
    let plugin = WasmPlacement::from_bytes(runtime, PluginKind::Placement, "pack", DEFAULT_PLACEMENT_WASM, &config)
        .expect("the embedded pack plugin loads");
    let wasm_medians = placement(&plugin);

    let plugin = Arc::new(plugin);
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
}
