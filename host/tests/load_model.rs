//! Placement that predicts load: a join storm of subscribers to silent producers spreads over
//! both workers by predicted load (measured CPU alone is zero and would put them all on one),
//! and the model's per-consumer cost converges on what a real worker measures under RTP and
//! outlives a worker restart.

mod common;

use common::{quiet_settings, EVENT_LIMIT};
use mafalda_host::config::HostOptions;
use mafalda_host::host::CloseReason;
use mafalda_host::internals::load_model::Coefficients;
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use std::time::Duration;

const PRODUCERS: u32 = 20;

async fn ingest(router: &Router) -> (PlainTransport, Vec<Producer>) {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let transport = router.create_plain_transport(options).await.expect("ingest");
    let mut producers = Vec::new();
    for i in 0..PRODUCERS {
        let options = ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x7000 + i));
        producers.push(transport.produce(options).await.expect("producer"));
    }
    (transport, producers)
}

async fn subscriber(router: Router, producers: Vec<ProducerId>) -> (PlainTransport, Vec<Consumer>) {
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    let mut consumers = Vec::new();
    for producer in producers {
        consumers
            .push(transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await.expect("consume"));
    }
    (transport, consumers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_storm_to_silent_producers_spreads_by_predicted_load() {
    // Default settings (the pack policy), with a watermark low enough that 400 silent consumers
    // pass it: ~280 predicted consumers fill a worker.
    let mut options = HostOptions::default();
    options.pool.max_workers = 2;
    options.pool.cpu_watermark = 0.05;
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_ingest, producers) = ingest(&router).await;
    let ids: Vec<ProducerId> = producers.iter().map(|p| p.id()).collect();
    let mut joined = Vec::new();
    for _batch in 0..2 {
        let joins = (0..10).map(|_| subscriber(router.clone(), ids.clone()));
        joined.extend(futures::future::join_all(joins).await);
    }
    let stats = host.stats();
    assert!(stats.cells.iter().all(|c| c.cpu < 0.05), "the producers are silent: measured CPU stays low");
    assert_eq!(stats.cells.len(), 2, "the second worker was started");
    let on = |cell: mafalda_host::placement::CellId| joined.iter().filter(|(t, _)| t.cell() == cell).count();
    let counts: Vec<usize> = stats.cells.iter().map(|c| on(c.id)).collect();
    assert_eq!(counts.iter().sum::<usize>(), 20);
    // The first batch of 10 comes before any consumer exists (nothing to predict from); from
    // the second batch on each decision reserves an average subscriber's load, so the first
    // worker stops at the watermark (~13 subscribers with the ingest) and the rest go on.
    assert!(counts.iter().all(|n| *n >= 5), "subscribers per worker {counts:?}: both carry the storm");
    let predicted: Vec<f64> = stats.cells.iter().map(|c| c.predicted).collect();
    assert!(predicted.iter().all(|p| *p > 0.02), "both workers are predicted to carry load: {predicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_consumer_cost_converges_on_a_real_worker_and_survives_its_restart() {
    let mut options = HostOptions::default();
    options.pool.max_workers = 1;
    options.pool.sample_interval = Duration::from_millis(200);
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("ingest");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x7100))).await.expect("producer");
    const RATE: u32 = 1_000;
    let mut subscribers = Vec::new();
    for _ in 0..10 {
        subscribers.push(subscriber(router.clone(), vec![producer.id(); 20]).await);
    }
    let consumers: Vec<&Consumer> = subscribers.iter().flat_map(|(_, c)| c.iter()).collect();
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x7100).with_rate(RATE).with_count(30_000))
        .await
        .expect("generator");
    let cell = host.cells().into_iter().next().expect("the worker");
    // Independent measure: the worker's CPU time per forwarded packet over a window.
    tokio::time::sleep(Duration::from_millis(500)).await; // media reaches steady state
    let (cpu_before, at) = (cell.cpu_time().expect("cpu time"), std::time::Instant::now());
    let samples_before = host.model().coefficients().samples;
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    while host.model().coefficients().samples < samples_before + 8 {
        assert!(tokio::time::Instant::now() < deadline, "the model learned from 8 samples within the bound");
        tokio::time::sleep(Duration::from_millis(100)).await; // the sampler has no event
    }
    let cpu = cell.cpu_time().expect("cpu time").saturating_sub(cpu_before).as_secs_f64();
    let forwarded = f64::from(RATE) * consumers.len() as f64 * at.elapsed().as_secs_f64();
    let measured_per_consumer = cpu / forwarded * f64::from(RATE);
    let learned = host.model().coefficients();
    let ratio = learned.per_consumer / measured_per_consumer;
    eprintln!(
        "per consumer at {RATE} pps: learned {:.3e}, measured {measured_per_consumer:.3e} (ratio {ratio:.2}, {} samples)",
        learned.per_consumer, learned.samples
    );
    assert!((0.5..=2.0).contains(&ratio), "learned cost within 2x of the measured one: ratio {ratio:.2}");
    generator.stop().await.expect("generator");
    drop(subscribers);
    drop((producer, input));

    // A worker restart keeps what was learned (the model belongs to the host; with no consumer
    // left nothing more is learned).
    let kept = host.model().coefficients();
    assert!(kept.samples >= learned.samples && kept.per_consumer != Coefficients::DEFAULT.per_consumer);
    let id = cell.id();
    drop(cell);
    host.close_cell(id, CloseReason::Retired).expect("open cell");
    let _again = router
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("a transport on the replacement worker");
    assert_eq!(host.model().coefficients(), kept, "the learned cost survives the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_stays_above_the_watermark_gets_rebalance_advice() {
    // A watermark so low that a little real media passes it on the first worker; the second
    // worker carries one idle transport (room by prediction).
    let mut options = common::options_with(2, std::sync::Arc::new(common::ForceBySlot));
    options.pool.cpu_watermark = 0.01;
    options.pool.sample_interval = Duration::from_millis(100);
    options.pool.idle_grace = Duration::from_secs(60);
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let (tx, mut advice) = tokio::sync::mpsc::unbounded_channel();
    let _handler = host.on_rebalance(move |a| {
        let _ = tx.send(a.clone());
    });
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = common::plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0x7200)).await;
    let mut busy = Vec::new();
    for _ in 0..4 {
        busy.push(common::sink_consumer(&router, producer.id(), mafalda_media_tools::rtp::PayloadKind::Opus, 0).await);
    }
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.app_data = common::slot(1);
    let idle = router.create_plain_transport(options).await.expect("idle transport on the second worker");
    assert_ne!(idle.cell(), input.cell());
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x7200).with_rate(2_000).with_count(100_000))
        .await
        .expect("generator");
    let advice =
        tokio::time::timeout(EVENT_LIMIT, advice.recv()).await.expect("advice within the bound").expect("event");
    generator.stop().await.expect("generator");
    assert_eq!(advice.from, input.cell());
    assert_eq!(advice.to, idle.cell());
    assert!(advice.cpu > 0.01, "{advice:?}");
    let here: Vec<_> = std::iter::once(input.id()).chain(busy.iter().map(|(t, _, _)| t.id())).collect();
    assert!(!advice.transports.is_empty());
    for (router_id, transport) in &advice.transports {
        assert_eq!(*router_id, router.id());
        assert!(here.contains(transport), "advice names transports of the hot worker: {transport}");
    }
    assert_eq!(advice.transports[0].1, busy.last().expect("busy").0.id(), "the most recently placed first");
}
