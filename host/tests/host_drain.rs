//! Draining a host in-process (what `serve`'s SIGTERM and `POST /drain` do): its cells take
//! no new transport and no worker is started for one, what lives there keeps forwarding, every
//! cell reports draining (stats, the autoscale snapshot, `on_cell_draining`), and undraining
//! brings placement back.

mod common;

use common::{plain_producer, sink_consumer, EVENT_LIMIT};
use mafalda_host::config::HostOptions;
use mafalda_host::host::CellDraining;
use mafalda_host::prelude::*;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::sync::{Arc, Mutex};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_host_places_nothing_new_and_keeps_forwarding() {
    // Default settings, a pool that could grow to 3 workers.
    let mut options = HostOptions::default();
    options.pool.max_workers = 3;
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (ingest, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(9)).await;
    let (_out, _consumer, sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await;
    let cells_before = host.cells().len();

    let events: Arc<Mutex<Vec<CellDraining>>> = Arc::default();
    let seen = Arc::clone(&events);
    let _handler = host.on_cell_draining(move |e| seen.lock().expect("events").push(e.clone()));
    assert!(host.drain());
    assert!(!host.drain(), "draining twice changes nothing");
    assert!(host.is_draining());
    assert!(host.stats().cells.iter().all(|c| c.draining), "{:?}", host.stats().cells);
    assert!(host.snapshot().nodes.iter().all(|n| n.draining), "the autoscaler sees the drain");
    // Every cell is reported (events come on the host's event thread, in order).
    let cells: Vec<_> = host.cells().iter().map(|c| c.id()).collect();
    let reported = || {
        let events = events.lock().expect("events");
        cells.iter().all(|cell| events.iter().any(|e| e.cell == *cell && e.draining))
    };
    let since = std::time::Instant::now();
    while !reported() {
        assert!(since.elapsed() < EVENT_LIMIT, "every cell reported draining: {:?}", events.lock());
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // Nothing new lands here, and no worker is started for it.
    let refused = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await;
    assert!(refused.is_err(), "a draining host takes no new transport");
    assert_eq!(host.cells().len(), cells_before, "no worker was started");

    // What lives here keeps forwarding.
    let generator =
        RtpGenerator::start(&ingest, GeneratorConfig::opus(9).with_rate(200).with_count(100)).await.expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(100, EVENT_LIMIT).await;
    assert!(report.has_all(100), "forwarded {} of 100 while draining", report.indices.len());

    // Undrained: placement is back, and the application heard it.
    assert!(host.undrain());
    assert!(!host.is_draining());
    let again = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await;
    assert!(again.is_ok(), "placement is back: {:?}", again.err());
    let since = std::time::Instant::now();
    while !events.lock().expect("events").iter().any(|e| !e.draining) {
        assert!(since.elapsed() < EVENT_LIMIT, "undrain reported");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(host.stats().cells.iter().all(|c| !c.draining));
}
