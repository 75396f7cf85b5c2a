//! RTP really crosses workers through the product: one producer on the first worker, consumers
//! on the same worker, on a second one (through the host's pipe) and on a third one; with plain
//! pipes and with SRTP pipes. Every packet must arrive at every receiver byte-identical.

mod common;

use common::{options_with, plain_producer, sink_consumer, ForceBySlot, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::sync::Arc;

const PACKETS: u32 = 120;
const SSRC: u32 = 0x0a0b_0c0d;

async fn every_packet_reaches_three_workers(srtp: bool) {
    let mut options = options_with(3, Arc::new(ForceBySlot));
    options.pipes.srtp = srtp;
    let manager = WorkerManager::with_options(options);
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (ingest, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(SSRC)).await;
    let mut receivers = Vec::new();
    for slot in 0..3 {
        receivers.push(sink_consumer(&router, producer.id(), PayloadKind::Opus, slot).await);
    }
    let cells: Vec<_> = receivers.iter().map(|(transport, _, _)| transport.cell()).collect();
    assert_eq!(cells.len(), 3);
    assert!(cells[0] != cells[1] && cells[1] != cells[2] && cells[0] != cells[2], "three workers: {cells:?}");
    let mut piped = router.pipes();
    piped.sort_by_key(|(_, cell)| *cell);
    assert_eq!(
        piped,
        vec![(PipeSource::Producer(producer.id()), cells[1]), (PipeSource::Producer(producer.id()), cells[2])]
    );

    let generator = RtpGenerator::start(&ingest, GeneratorConfig::opus(SSRC).with_rate(200).with_count(PACKETS.into()))
        .await
        .expect("generator");
    assert_eq!(generator.finished().await.expect("all sent"), u64::from(PACKETS));
    for (slot, (_, consumer, sink)) in receivers.iter().enumerate() {
        let report = sink.wait_for(PACKETS.into(), EVENT_LIMIT).await;
        assert!(report.has_all(PACKETS), "worker {slot}: got {} of {PACKETS} distinct payloads", report.indices.len());
        assert_eq!(report.corrupt, 0, "worker {slot}: corrupted payloads");
        assert_eq!(report.intact, u64::from(PACKETS), "worker {slot}: duplicates or extra packets");
        assert!(!consumer.closed());
    }
    // The merged dump lists the consumers of every cell under the producer, pipes hidden.
    let dump = router.dump().await.expect("dump");
    let consumers = &dump.map_producer_id_consumer_ids[&producer.id()];
    assert_eq!(consumers.len(), 3, "three visible consumers: {consumers:?}");
    assert_eq!(dump.transport_ids.len(), 4, "ingest + three receivers, pipe transports hidden");
    // Each consumer's own dump names the application's producer, also behind a pipe.
    for (slot, (_, consumer, _)) in receivers.iter().enumerate() {
        let own = consumer.dump().await.expect("consumer dump");
        assert_eq!(own.producer_id, producer.id(), "worker {slot}: the consumer dump names the app's producer");
        assert_eq!(own.id, consumer.id());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_reaches_every_worker_intact_through_plain_pipes() {
    every_packet_reaches_three_workers(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_reaches_every_worker_intact_through_srtp_pipes() {
    every_packet_reaches_three_workers(true).await;
}
