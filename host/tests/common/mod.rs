//! Helpers shared by the integration tests of the virtual API.
#![allow(dead_code)]

use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_host::host::{CellClosed, Host};
use mafalda_host::labels::PlacementHints;
use mafalda_host::placement::{Candidates, Decision, PlacementPolicy, PlacementRequest, PolicyError};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{PayloadKind, RtpSink};
use std::sync::Arc;
use std::time::Duration;

/// A test policy: a transport labelled `slot=k` goes to the k-th cell (starting cells until
/// there are k+1); unlabelled ones go to the first cell.
pub struct ForceBySlot;

impl PlacementPolicy for ForceBySlot {
    fn name(&self) -> &str {
        "force-by-slot"
    }

    fn place(&self, request: &PlacementRequest, cells: &Candidates) -> Result<Decision, PolicyError> {
        let slot: usize = request.label("slot").and_then(|s| s.parse().ok()).unwrap_or(0);
        Ok(cells.list().get(slot).map_or(Decision::NewCell, |c| Decision::Cell(c.id)))
    }
}

/// App data putting a transport in slot `k`.
pub fn slot(k: usize) -> AppData {
    AppData::new(PlacementHints::labels([("slot", k.to_string())]))
}

/// Host options for tests: up to `max_workers`, fast sampling, short idle grace, `policy`.
pub fn options_with(max_workers: usize, policy: Arc<dyn PlacementPolicy>) -> HostOptions {
    HostOptions {
        pool: PoolOptions {
            max_workers,
            min_workers: 1,
            idle_grace: Duration::from_millis(300),
            sample_interval: Duration::from_millis(50),
            ..PoolOptions::default()
        },
        policy: PolicyChoice::Custom(policy),
        ..HostOptions::default()
    }
}

/// A manager whose transports go where their `slot` label says.
pub fn slotted_manager(max_workers: usize) -> WorkerManager {
    WorkerManager::with_options(options_with(max_workers, Arc::new(ForceBySlot)))
}

/// Worker settings without the chatty debug logging of mediasoup's default.
pub fn quiet_settings() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    settings
}

/// A virtual router with Opus and VP8 from a fresh worker of `manager`.
pub async fn router(manager: &WorkerManager) -> (Worker, Router) {
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    (worker, router)
}

/// A comedia plain transport in slot `k` producing `kind` with `parameters`.
pub async fn plain_producer(
    router: &Router,
    k: usize,
    kind: MediaKind,
    parameters: RtpParameters,
) -> (PlainTransport, Producer) {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    options.app_data = slot(k);
    let transport = router.create_plain_transport(options).await.expect("producer transport");
    let producer = transport.produce(ProducerOptions::new(kind, parameters)).await.expect("producer");
    (transport, producer)
}

/// A plain transport in slot `k` sending to a fresh sink, consuming `producer`.
pub async fn sink_consumer(
    router: &Router,
    producer: ProducerId,
    kind: PayloadKind,
    k: usize,
) -> (PlainTransport, Consumer, RtpSink) {
    let sink = RtpSink::bind(kind).await.expect("sink");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.app_data = slot(k);
    let transport = router.create_plain_transport(options).await.expect("consumer transport");
    transport.connect(sink.remote_parameters()).await.expect("connect");
    let consumer = transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await.expect("consume");
    (transport, consumer, sink)
}

/// The host's `on_cell_closed` events as a channel (the handler lives as long as the host).
pub fn cell_closed_events(host: &Host) -> tokio::sync::mpsc::UnboundedReceiver<CellClosed> {
    let (events, received) = tokio::sync::mpsc::unbounded_channel();
    host.on_cell_closed(move |event| {
        let _ = events.send(event.clone());
    })
    .detach();
    received
}

/// Upper bound for waiting on an event that should come quickly.
pub const EVENT_LIMIT: Duration = Duration::from_secs(15);

/// A plugin the build compiled to wasm (`plugins/*`, the example, the test plugins).
pub fn built_plugin(name: &str) -> std::path::PathBuf {
    std::path::Path::new(mafalda_host::plugin::BUILT_PLUGIN_DIR).join(format!("{name}.wasm"))
}

/// A plugin runtime with default limits and a private artifact cache.
pub fn plugin_runtime() -> Arc<mafalda_host::plugin::PluginRuntime> {
    let cache = std::env::temp_dir().join(format!("mafalda-test-cache-{}", std::process::id()));
    mafalda_host::plugin::PluginRuntime::new(mafalda_host::plugin::PluginLimits::default(), Some(cache))
        .expect("plugin runtime")
}

/// One built plugin loaded into a plugin set, configured with `config`.
pub fn plugin_set(name: &str, config: &[(&str, &str)]) -> mafalda_host::plugin::PluginSet {
    let runtime = plugin_runtime();
    let config = mafalda_host::plugin::PluginConfig::shared(config);
    mafalda_host::plugin::PluginSet::load(&runtime, &[built_plugin(name)], &config).expect("plugin loads")
}

/// A placement plugin loaded from the built plugins, configured with `config`.
pub fn placement_plugin(name: &str, config: &[(&str, &str)]) -> Arc<mafalda_host::plugin::WasmPlacement> {
    plugin_set(name, config).placement.expect("a placement plugin")
}
