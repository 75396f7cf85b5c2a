//! Real workers under the host: retiring one closes it (its real worker's close event fires)
//! while the others keep forwarding; stopping the host closes every worker within a deadline;
//! a pool of zero workers is refused.

mod common;

use common::{cell_closed_events, plain_producer, sink_consumer, slotted_manager, EVENT_LIMIT};
use mafalda_host::config::HostOptions;
use mafalda_host::host::CloseReason;
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::time::Duration;
use tokio::time::timeout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retiring_a_worker_closes_it_and_the_host_keeps_serving() {
    let manager = slotted_manager(2);
    let host = manager.host().clone();
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut closed = cell_closed_events(&host);
    // Something on the second worker, so that it exists and is used.
    let (doomed_transport, _doomed_producer) =
        plain_producer(&router, 1, MediaKind::Audio, opus_send_parameters(3)).await;
    let doomed = doomed_transport.cell();
    let (transport_closed_tx, transport_closed) = tokio::sync::oneshot::channel();
    doomed_transport
        .on_close(Box::new(move || {
            let _ = transport_closed_tx.send(());
        }))
        .detach();

    assert!(host.retire_cell(doomed));
    // Busy cells close once idle: closing it outright loses what it carries.
    let event = host.close_cell(doomed, CloseReason::Retired).expect("open cell");
    assert_eq!(event.lost_transports, vec![(router.id(), doomed_transport.id())]);
    timeout(EVENT_LIMIT, transport_closed).await.expect("transport close event").expect("fired");
    let reported = timeout(EVENT_LIMIT, closed.recv()).await.expect("cell event").expect("cell event");
    assert_eq!((reported.cell, reported.reason), (doomed, CloseReason::Retired));
    assert!(host.cell(doomed).is_none());
    assert!(host.close_cell(doomed, CloseReason::Retired).is_none(), "closing twice is a no-op");

    // The surviving worker still forwards media.
    let (ingest, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(7)).await;
    let (_out, _consumer, sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await;
    let generator =
        RtpGenerator::start(&ingest, GeneratorConfig::opus(7).with_rate(200).with_count(50)).await.expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(50, EVENT_LIMIT).await;
    assert!(report.has_all(50), "survivor forwarded {} of 50", report.indices.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_host_closes_every_worker_within_the_deadline() {
    let manager = slotted_manager(2);
    let host = manager.host().clone();
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let _busy = plain_producer(&router, 1, MediaKind::Audio, opus_send_parameters(5)).await;
    assert_eq!(host.cells().len(), 2);
    let (closed, late) = timeout(EVENT_LIMIT, host.close_all(Duration::from_secs(5))).await.expect("bounded");
    assert_eq!((closed, late), (2, 0));
    assert!(host.cells().is_empty());
}

#[test]
fn a_pool_of_zero_workers_is_refused() {
    let mut options = HostOptions::default();
    options.pool.max_workers = 0;
    let error = options.validate().expect_err("zero workers");
    assert!(error.to_string().contains("max_workers"), "{error}");
}
