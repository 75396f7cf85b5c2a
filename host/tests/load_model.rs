//! Placement that predicts load, as users run it (default settings, the pack policy):
//! - a join storm in mediasoup-client's order (every peer creates its transport first, in
//!   parallel tasks on a multi-thread runtime, and consumes afterwards) to audio and simulcast
//!   video producers that are still silent spreads over both workers by the fan-out prior:
//!   subscribers split within ±15 % of even, and no worker is predicted above the watermark
//!   while the other has room;
//! - producers' packet rates are measured from their stats;
//! - the per-packet costs learned on a real worker under real RTP predict its CPU at another
//!   load (out of sample), and outlive a worker restart;
//! - reading the stats changes no prediction.

mod common;

use common::{quiet_settings, EVENT_LIMIT};
use mafalda_host::config::HostOptions;
use mafalda_host::host::CloseReason;
use mafalda_host::internals::load_model::{Coefficients, Kind};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{
    loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs, send_to,
    vp8_simulcast_send_parameters,
};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use std::time::Duration;

const AUDIO: u32 = 20;
const VIDEO: u32 = 4;

/// A comedia transport with the room's producers: `AUDIO` Opus, `VIDEO` VP8 simulcast.
async fn ingest(router: &Router) -> (PlainTransport, Vec<Producer>) {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let transport = router.create_plain_transport(options).await.expect("ingest");
    let mut producers = Vec::new();
    for i in 0..AUDIO {
        let options = ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x7000 + i));
        producers.push(transport.produce(options).await.expect("audio producer"));
    }
    for i in 0..VIDEO {
        let base = 0x8000 + i * 4;
        let options = ProducerOptions::new(MediaKind::Video, vp8_simulcast_send_parameters([base, base + 1, base + 2]));
        producers.push(transport.produce(options).await.expect("video producer"));
    }
    (transport, producers)
}

/// Default settings on a two-worker pool (what `WorkerManager::new()` gives on this machine).
fn two_workers() -> WorkerManager {
    let mut options = HostOptions::default();
    options.pool.max_workers = 2;
    WorkerManager::with_options(options)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_order_storm_to_silent_producers_spreads_by_the_fan_out_prior() {
    const SUBSCRIBERS: usize = 180;
    let manager = two_workers();
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_ingest, producers) = ingest(&router).await;
    let ids: Vec<ProducerId> = producers.iter().map(|p| p.id()).collect();
    // mediasoup-client's order: every peer creates its transport on join (truly parallel
    // tasks) ...
    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..SUBSCRIBERS {
        let router = router.clone();
        joins.spawn(async move {
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport")
        });
    }
    let mut transports = Vec::new();
    while let Some(joined) = tokio::time::timeout(EVENT_LIMIT, joins.join_next()).await.expect("joins in time") {
        transports.push(joined.expect("join task"));
    }
    // ... and consumes later.
    let mut consumes = tokio::task::JoinSet::new();
    for transport in transports.clone() {
        let ids = ids.clone();
        consumes.spawn(async move {
            let mut consumers = Vec::new();
            for id in ids {
                consumers
                    .push(transport.consume(ConsumerOptions::new(id, receiver_capabilities())).await.expect("consume"));
            }
            consumers
        });
    }
    let mut consumers = Vec::new();
    while let Some(done) = tokio::time::timeout(EVENT_LIMIT, consumes.join_next()).await.expect("consumes in time") {
        consumers.extend(done.expect("consume task"));
    }
    assert_eq!(consumers.len(), SUBSCRIBERS * ids.len());
    let stats = host.stats();
    assert_eq!(stats.cells.len(), 2, "the second worker was started");
    assert!(stats.cells.iter().all(|c| c.cpu < 0.05), "the producers are silent: measured CPU stays low");
    let per_cell: Vec<usize> =
        stats.cells.iter().map(|c| transports.iter().filter(|t| t.cell() == c.id).count()).collect();
    let even = SUBSCRIBERS as f64 / 2.0;
    assert!(
        per_cell.iter().all(|n| (*n as f64 - even).abs() <= 0.15 * even),
        "subscribers per worker {per_cell:?}: within ±15 % of even"
    );
    let watermark = host.options().pool.cpu_watermark;
    let predicted: Vec<f64> = stats.cells.iter().map(|c| c.predicted).collect();
    for (i, p) in predicted.iter().enumerate() {
        let other = predicted[1 - i];
        assert!(
            *p <= watermark + 0.02 || other >= watermark - 0.02,
            "worker {i} predicted {p:.3} above the watermark while the other has room ({other:.3})"
        );
    }
    assert!(predicted.iter().all(|p| *p > 0.3), "both workers are predicted to carry the storm: {predicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rates_and_costs_are_learned_from_a_real_worker_and_outlive_its_restart() {
    const RATE: u32 = 500;
    let mut options = HostOptions::default();
    options.pool.max_workers = 1;
    options.pool.sample_interval = Duration::from_millis(250);
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("ingest");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x7100))).await.expect("producer");
    // Consumers really send (to sockets nobody reads: the kernel drops what overflows).
    let sinks: Vec<std::net::UdpSocket> =
        (0..4).map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("sink")).collect();
    let sink_addresses: Vec<std::net::SocketAddr> = sinks.iter().map(|s| s.local_addr().expect("addr")).collect();
    let subscribe = |count: usize| {
        let (router, id, sinks) = (router.clone(), producer.id(), sink_addresses.clone());
        async move {
            let mut kept = Vec::new();
            for i in 0..count {
                let transport = router
                    .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
                    .await
                    .expect("transport");
                transport.connect(send_to(sinks[i % sinks.len()])).await.expect("connect");
                let consumer =
                    transport.consume(ConsumerOptions::new(id, receiver_capabilities())).await.expect("consume");
                kept.push((transport, consumer));
            }
            kept
        }
    };
    let mut subscribers = subscribe(60).await;
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x7100).with_rate(RATE).with_count(40_000))
        .await
        .expect("generator");
    let cell = host.cells().into_iter().next().expect("the worker");
    // The producer's rate is read from its stats.
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    loop {
        let received = host.stats().cell(cell.id()).expect("cell").load.received[Kind::Audio as usize];
        if (received - f64::from(RATE)).abs() < 0.2 * f64::from(RATE) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the rate was never measured ({received} packets/s)");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Costs learned at 60 consumers (30,000 packets/s forwarded) ...
    let samples_before = host.coefficients().samples;
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    while host.coefficients().samples < samples_before + 12 {
        let cell = host.stats().cells[0].clone();
        assert!(
            tokio::time::Instant::now() < deadline,
            "never learned: {} samples, cpu {:.3}, load {:?}",
            host.coefficients().samples,
            cell.cpu,
            cell.load
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let learned = host.coefficients();
    assert_ne!(learned.forward[0], Coefficients::DEFAULT.forward[0], "the audio cost was learned");
    // ... predict the worker's CPU at twice the load, measured independently over a window.
    subscribers.extend(subscribe(60).await);
    tokio::time::sleep(Duration::from_millis(1_500)).await; // the new consumers reach steady state
    let (before, at) = (cell.cpu_time().expect("cpu time"), std::time::Instant::now());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let measured = (cell.cpu_time().expect("cpu time") - before).as_secs_f64() / at.elapsed().as_secs_f64();
    let load = host.stats().cell(cell.id()).expect("cell").load;
    let predicted = load.carried_cost(&host.coefficients());
    let off = (predicted - measured).abs() / measured;
    eprintln!("120 consumers: measured {measured:.3}, predicted {predicted:.3} ({:.0} % off)", off * 100.0);
    assert!(off < 0.35, "the learned costs predict a new load: measured {measured:.3}, predicted {predicted:.3}");
    drop(generator);
    drop(subscribers);
    // A worker restart keeps what was learned (the host owns it).
    let kept = host.coefficients();
    host.close_cell(cell.id(), CloseReason::Retired).expect("open cell");
    let again = manager.create_worker(quiet_settings()).await.expect("a worker starts again");
    assert_eq!(host.cells().len(), 1);
    assert_eq!(host.coefficients().forward, kept.forward, "the learned costs survive the restart");
    drop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_stats_changes_no_prediction() {
    let mut options = HostOptions::default();
    options.pool.max_workers = 2;
    options.pool.sample_interval = Duration::from_secs(3_600); // no sample during the test
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_ingest, producers) = ingest(&router).await;
    let mut kept = Vec::new();
    for _ in 0..4 {
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
        let consumer =
            transport.consume(ConsumerOptions::new(producers[0].id(), receiver_capabilities())).await.expect("consume");
        kept.push((transport, consumer));
    }
    let first: Vec<f64> = host.stats().cells.iter().map(|c| c.predicted).collect();
    for _ in 0..100 {
        let _ = host.stats();
    }
    let after: Vec<f64> = host.stats().cells.iter().map(|c| c.predicted).collect();
    assert_eq!(first, after, "monitoring does not move placement");
    let preview = router.preview_placement(&AppData::default()).await.expect("a decision");
    assert_eq!(host.stats().cells.iter().map(|c| c.predicted).collect::<Vec<_>>(), after, "nor does a preview");
    assert!(preview.is_some(), "a worker has room");
}
