//! Configuration that must take effect: the pool's RTC port range, per-virtual-worker settings
//! (a virtual worker's own port range reaches its transports on shared real workers; other log
//! settings get real workers of their own), and the pipes' listen address.

mod common;

use common::{options_with, plain_producer, quiet_settings, sink_consumer, slot, ForceBySlot};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::PayloadKind;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::sync::Arc;

/// The UDP port of a WebRTC transport's first ICE candidate.
fn candidate_port(transport: &WebRtcTransport) -> u16 {
    transport.ice_candidates().first().expect("an ICE candidate").port
}

async fn webrtc_transport(router: &Router, k: usize) -> WebRtcTransport {
    let listen = mafalda_media_tools::media::loopback_listen_info();
    let mut options = WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(listen));
    options.app_data = slot(k);
    router.create_webrtc_transport(options).await.expect("webrtc transport")
}

fn settings_with_ports(ports: RangeInclusive<u16>) -> WorkerSettings {
    let mut settings = quiet_settings();
    settings.rtc_port_range = ports;
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pools_rtc_port_range_applies_to_workers_with_default_settings() {
    let mut options = options_with(2, Arc::new(ForceBySlot));
    options.pool.rtc_min_port = 42_000;
    options.pool.rtc_max_port = 42_049;
    let manager = WorkerManager::with_options(options);
    // mediasoup's default settings: the host's configured range is what applies.
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    let worker = manager.create_worker(settings).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut transports = Vec::new();
    for k in 0..2 {
        let transport = webrtc_transport(&router, k).await;
        let port = candidate_port(&transport);
        assert!((42_000..=42_049).contains(&port), "slot {k}: port {port} outside [pool] rtc_min_port..rtc_max_port");
        transports.push(transport);
    }
    assert_eq!(router.cells().len(), 2, "both real workers use the configured range");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_workers_with_their_own_port_ranges_share_real_workers_and_keep_their_ports() {
    let manager = WorkerManager::with_options(options_with(4, Arc::new(ForceBySlot)));
    let low = manager.create_worker(settings_with_ports(43_000..=43_049)).await.expect("worker");
    let high = manager.create_worker(settings_with_ports(43_100..=43_149)).await.expect("worker");
    let low_router = low.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let high_router = high.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let low_transport = webrtc_transport(&low_router, 0).await;
    let high_transport = webrtc_transport(&high_router, 0).await;
    let (low_port, high_port) = (candidate_port(&low_transport), candidate_port(&high_transport));
    assert!((43_000..=43_049).contains(&low_port), "first virtual worker's range: {low_port}");
    assert!((43_100..=43_149).contains(&high_port), "second virtual worker's range: {high_port}");
    assert_eq!(low_transport.cell(), high_transport.cell(), "a port range alone does not need its own real worker");
    let mut plain = PlainTransportOptions::new(mafalda_media_tools::media::loopback_listen_info());
    plain.app_data = slot(1);
    let plain = high_router.create_plain_transport(plain).await.expect("plain transport");
    assert!((43_100..=43_149).contains(&plain.tuple().local_port()), "plain transports keep the range too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn virtual_workers_with_other_log_settings_get_their_own_real_workers() {
    let manager = WorkerManager::with_options(options_with(4, Arc::new(ForceBySlot)));
    let quiet = manager.create_worker(quiet_settings()).await.expect("worker");
    let mut louder = quiet_settings();
    louder.log_level = mafalda_host::worker::WorkerLogLevel::Error;
    let louder = manager.create_worker(louder).await.expect("worker");
    let quiet_router = quiet.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let louder_router = louder.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let a = webrtc_transport(&quiet_router, 0).await;
    let b = webrtc_transport(&louder_router, 0).await;
    assert_ne!(a.cell(), b.cell(), "different log settings, different real workers");
    // Settings updated later apply to the real workers started from then on.
    let mut update = mafalda_host::worker::WorkerUpdateSettings::default();
    update.log_level = Some(mafalda_host::worker::WorkerLogLevel::Debug);
    quiet.update_settings(update).await.expect("update settings");
    let later = webrtc_transport(&quiet_router, 2).await;
    assert_ne!(later.cell(), a.cell(), "slot 2 started another real worker");
}

/// Local addresses of this network namespace's UDP sockets (`/proc/net/udp`).
fn udp_local_ips() -> Vec<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .filter_map(|local| local.split(':').next())
        .filter_map(|hex| u32::from_str_radix(hex, 16).ok())
        .map(|raw| Ipv4Addr::from(raw.swap_bytes()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_listen_on_the_configured_address() {
    let pipe_ip = Ipv4Addr::new(127, 0, 0, 3);
    let mut options = options_with(2, Arc::new(ForceBySlot));
    options.pipes.listen_ip = IpAddr::V4(pipe_ip);
    let manager = WorkerManager::with_options(options);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let before = udp_local_ips().iter().filter(|ip| **ip == pipe_ip).count();
    let (_ingest, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0x33)).await;
    let (_transport, consumer, _sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
    assert_ne!(producer.cell(), consumer.cell(), "the consumer is on the other worker, behind a pipe");
    let after = udp_local_ips().iter().filter(|ip| **ip == pipe_ip).count();
    assert_eq!(after, before + 2, "both pipe transports listen on {pipe_ip}");
}

/// Where the next plain transport of `router` goes: its cell and the cell count after it.
async fn next_transport(router: &Router, manager: &WorkerManager) -> (PlainTransport, usize) {
    let transport = router
        .create_plain_transport(PlainTransportOptions::new(mafalda_media_tools::media::loopback_listen_info()))
        .await
        .expect("transport");
    let cells = manager.host().cells().len();
    (transport, cells)
}

/// `pack`'s keys (`[pool] cpu_watermark`, `[placement] max_transports`) take effect in the
/// library's native pack and in the embedded pack plugin `mafalda-host serve` runs by default;
/// the plugin's own `--plugin-config pack.KEY` wins there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packs_keys_reach_the_native_pack_and_the_embedded_plugin() {
    use mafalda_host::config::{HostOptions, PolicyChoice};
    use mafalda_host::plugin::PluginConfig;
    use mafalda_host::policy::PolicyLoader;
    let tiny = "[pool]\nmax_workers = 2\ncpu_watermark = 0.00001\n";
    let capped = "[pool]\nmax_workers = 2\n[placement]\nmax_transports = 2\n";
    let plugin_with = |options: &HostOptions, config: &[(&str, &str)]| {
        let loader = PolicyLoader { runtime: Some(common::plugin_runtime()), config: PluginConfig::shared(config) };
        PolicyChoice::Custom(loader.resolve(&PolicyChoice::PackPlugin, options.pack()).expect("the embedded pack"))
    };
    for (file, transports_on_first) in [(tiny, 1usize), (capped, 2)] {
        let native = HostOptions::from_toml(file).expect("valid file");
        let plugin = HostOptions { policy: plugin_with(&native, &[]), ..native.clone() };
        for (which, options) in [("native pack", native), ("pack plugin", plugin)] {
            let manager = WorkerManager::with_options(options);
            let worker = manager.create_worker(quiet_settings()).await.expect("worker");
            let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
            let mut kept = Vec::new();
            for _ in 0..transports_on_first {
                let (transport, cells) = next_transport(&router, &manager).await;
                assert_eq!(cells, 1, "{which}: the first worker takes {transports_on_first} transport(s)");
                kept.push(transport);
            }
            let (transport, cells) = next_transport(&router, &manager).await;
            assert_eq!(cells, 2, "{which} ({file:?}): the worker counts as full, a second one starts");
            kept.push(transport);
        }
    }
    // The plugin's own configuration wins over the host's keys.
    let native = HostOptions::from_toml(tiny).expect("valid file");
    let options = HostOptions { policy: plugin_with(&native, &[("cpu_watermark", "0.9")]), ..native };
    let manager = WorkerManager::with_options(options);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut kept = Vec::new();
    for _ in 0..3 {
        let (transport, cells) = next_transport(&router, &manager).await;
        assert_eq!(cells, 1, "--plugin-config pack.cpu_watermark=0.9 wins: the first worker is not full");
        kept.push(transport);
    }
    // The environment's watermark reaches the native pack too.
    let env = HostOptions::from_vars(|key| {
        (key == "MAFALDA_CPU_WATERMARK")
            .then(|| "0.00001".to_string())
            .or((key == "MAFALDA_MAX_WORKERS").then(|| "2".into()))
    })
    .expect("valid environment");
    let manager = WorkerManager::with_options(env);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_first, _) = next_transport(&router, &manager).await;
    let (_second, cells) = next_transport(&router, &manager).await;
    assert_eq!(cells, 2, "MAFALDA_CPU_WATERMARK reached pack");
}

#[test]
fn new_keys_are_read_from_the_file() {
    let options = mafalda_host::config::HostOptions::from_toml(
        "[pool]\nwebrtc_server_port_stride = 10\npin_workers = true\n[placement]\nlabel_keys = [\"room\", \"team\"]\nmax_transports = 7\n",
    )
    .expect("valid");
    assert_eq!(options.pool.webrtc_server_port_stride, 10);
    assert!(options.pool.pin_workers);
    assert_eq!(options.label_keys, vec!["room".to_string(), "team".to_string()]);
    assert_eq!(options.max_transports, Some(7));
    let err = mafalda_host::config::HostOptions::from_toml("[pool]\nmax_workers = 2\nwebrtc_server_port_stride = 0\n")
        .expect_err("a zero stride with two workers");
    assert!(err.to_string().contains("webrtc_server_port_stride"), "{err}");
}
