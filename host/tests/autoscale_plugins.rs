//! The autoscale hook through the host, with the shipped `threshold-autoscale` plugin in wasm
//! and real media as the load: RTP through a worker raises its measured CPU, the plugin asks for
//! a worker and the host starts one; when the media stops the plugin retires the emptiest worker
//! and the host closes it; with the pool full the plugin advises a new node (an event with the
//! node's state; `mafalda-host --scale-hook` hands it to a command, tested in the CLI).

mod common;

use common::{
    cell_closed_events, options_with, plain_producer, plugin_set, quiet_settings, sink_consumer, ForceBySlot,
    EVENT_LIMIT,
};
use mafalda_host::autoscale::{AutoscaleOptions, Autoscaler};
use mafalda_host::host::CloseReason;
use mafalda_host::placement::CellId;
use mafalda_host::plugin::AutoscaleHook;
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{router_codecs, vp8_send_parameters};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use mafalda_plugin_sdk::types::Action;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Adds above 2 % mean CPU, retires below 0.5 %: media at a few thousand packets per second is
/// far above the first, idle workers far below the second.
const THRESHOLDS: &[(&str, &str)] =
    &[("add_above", "0.02"), ("retire_below", "0.005"), ("min_workers", "1"), ("cooldown_ms", "0")];

fn threshold_plugin() -> Arc<AutoscaleHook> {
    plugin_set("mafalda_plugin_threshold_autoscale", THRESHOLDS).autoscale.expect("an autoscale plugin")
}

/// A manager placing every transport on the first worker, sampling CPU every 50 ms and
/// releasing workers placement started after 300 ms of idleness (not those the autoscaler
/// added: only the autoscaler retires them).
fn manager(max_workers: usize) -> WorkerManager {
    WorkerManager::with_options(options_with(max_workers, Arc::new(ForceBySlot)))
}

/// A VP8 producer on the first worker with `consumers` consumers, and a generator feeding it
/// `pps` packets per second until stopped.
struct Load {
    _producer: Producer,
    _consumers: Vec<(PlainTransport, Consumer, RtpSink)>,
    input: PlainTransport,
    generator: RtpGenerator,
}

async fn media_load(router: &Router, consumers: usize, pps: u32) -> Load {
    let (input, producer) = plain_producer(router, 0, MediaKind::Video, vp8_send_parameters(0x5ca1e)).await;
    let mut kept = Vec::new();
    for _ in 0..consumers {
        kept.push(sink_consumer(router, producer.id(), PayloadKind::Vp8KeyFrame, 0).await);
    }
    let generator = RtpGenerator::start(&input, GeneratorConfig::vp8(0x5ca1e).with_rate(pps)).await.expect("generator");
    Load { _producer: producer, _consumers: kept, input, generator }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_adds_a_worker_and_idleness_retires_it() {
    let manager = manager(2);
    let host = manager.host();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (new_cells, mut new_cell) = mpsc::unbounded_channel::<CellId>();
    let _on_new = host.on_new_cell(move |id| {
        let _ = new_cells.send(*id);
    });
    let mut closed = cell_closed_events(host);
    assert_eq!(host.cells().len(), 1);

    let options = AutoscaleOptions::new(Duration::from_millis(100)).expect("options");
    let autoscaler = Autoscaler::new(host, threshold_plugin(), options);
    let _loop = autoscaler.spawn().expect("autoscale thread");

    let load = media_load(&router, 4, 3000).await;
    let added = tokio::time::timeout(EVENT_LIMIT, new_cell.recv()).await.expect("a worker was added under load");
    let added = added.expect("event");
    assert_eq!(host.cells().len(), 2);
    let loaded = load.input.cell();
    assert_ne!(added, loaded);
    let cpu = host.cell(loaded).expect("loaded cell").cpu();
    assert!(cpu > 0.02, "the plugin added a worker because the loaded one measured {cpu}");

    // The added worker carries nothing, far longer than the idle grace, yet only the
    // autoscaler closes it (below: reason Retired, after the media stops).
    assert!(closed.try_recv().is_err(), "nothing was closed while the media flowed");
    let sent = load.generator.stop().await.expect("generator");
    assert!(sent > 0);

    let event = tokio::time::timeout(EVENT_LIMIT, closed.recv()).await.expect("a worker was retired").expect("event");
    assert_eq!(event.reason, CloseReason::Retired);
    assert_eq!(event.cell, added, "the emptiest worker is retired");
    assert!(event.lost_transports.is_empty(), "retiring lost nothing");
    assert_eq!(host.cells().len(), 1, "min_workers is kept");
    assert!(host.cell(loaded).is_some(), "the worker with the transports stays");
    drop(load.input);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_advises_a_node() {
    let manager = manager(1);
    let host = manager.host();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let options = AutoscaleOptions::new(Duration::from_millis(100)).expect("options");
    let autoscaler = Autoscaler::new(host, threshold_plugin(), options.clone());
    let (advices, mut advice) = mpsc::unbounded_channel();
    let _on_advice = autoscaler.on_advice(move |a| {
        let _ = advices.send(a.clone());
    });
    let load = media_load(&router, 4, 3000).await;

    // Rounds of the autoscale loop, run here until the plugin acts.
    let mut ticker = tokio::time::interval(options.interval());
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    let actions = loop {
        ticker.tick().await;
        let actions = autoscaler.round().await;
        if !actions.is_empty() || tokio::time::Instant::now() > deadline {
            break actions;
        }
    };
    load.generator.stop().await.expect("generator");
    let [Action::AddNode(node)] = &actions[..] else { panic!("one add-node action, got {actions:?}") };
    assert_eq!(node.region, "local");
    assert!(node.reason.contains("pool is full"), "{}", node.reason);
    assert_eq!(host.cells().len(), 1, "no worker beyond max_workers");

    let emitted = advice.try_recv().expect("the advice was emitted as an event");
    assert_eq!(emitted.action, actions[0]);
    assert_eq!((emitted.workers, emitted.max_workers), (1, 1));
    assert_eq!(emitted.from_node, host.options().node);
    assert!(emitted.cpu > 0.02, "the node's CPU is in the advice: {emitted:?}");
}
