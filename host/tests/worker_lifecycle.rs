//! Closing a worker fires its close event (the pool's and the user's handlers); the rest of the
//! host keeps forwarding media.

use mafalda_host::pool::{PoolError, WorkerPool};
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use mediasoup::prelude::*;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_worker_fires_close_and_the_host_keeps_serving() {
    let pool = WorkerPool::with_workers(2).await.expect("two workers");
    let [survivor, doomed] = <[_; 2]>::try_from(pool.workers()).expect("two workers");

    let router = doomed.worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (close_tx, close_rx) = oneshot::channel();
    doomed
        .worker
        .on_close(move || {
            let _ = close_tx.send(());
        })
        .detach();

    let watch = pool.close_worker(doomed.id()).expect("close");
    assert_eq!(pool.len(), 1);
    // Our handles still keep it alive: mediasoup closes a worker with its last handle.
    assert!(!watch.is_closed());
    drop(doomed);
    drop(router);
    timeout(LIMIT, watch.closed()).await.expect("worker close event");
    assert!(watch.is_closed(), "close event fired");
    timeout(LIMIT, close_rx).await.expect("user handler ran").expect("user handler ran once");

    // Closing it again is a clear error, not a panic.
    match pool.close_worker(watch.id) {
        Err(PoolError::UnknownWorker(id)) => assert_eq!(id, watch.id),
        other => panic!("expected UnknownWorker, got {other:?}"),
    }

    // The surviving worker still forwards media.
    let router = survivor.worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut ingest_options = PlainTransportOptions::new(loopback_listen_info());
    ingest_options.comedia = true;
    let ingest = router.create_plain_transport(ingest_options).await.expect("ingest");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(7))).await.expect("producer");
    let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
    let out = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("out");
    out.connect(sink.remote_parameters()).await.expect("connect");
    let _consumer = out.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
    let generator =
        RtpGenerator::start(&ingest, GeneratorConfig::opus(7).with_rate(200).with_count(50)).await.expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(50, LIMIT).await;
    assert!(report.has_all(50), "survivor forwarded {} of 50", report.indices.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_close_waits_for_every_worker() {
    let pool = WorkerPool::with_workers(2).await.expect("two workers");
    let watches: Vec<_> = pool.workers().iter().map(|w| w.watch.clone()).collect();
    timeout(LIMIT, pool.close()).await.expect("pool closed");
    assert!(watches.iter().all(|w| w.is_closed()));
}

#[tokio::test]
async fn a_pool_of_zero_workers_is_refused() {
    match WorkerPool::with_workers(0).await {
        Err(PoolError::NoWorkers) => {}
        other => panic!("expected NoWorkers, got {other:?}"),
    }
}
