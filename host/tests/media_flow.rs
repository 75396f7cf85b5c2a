//! RTP really crosses workers: one producer on worker A, consumers on worker A (local), worker B
//! (through a plain pipe) and worker C (through an SRTP pipe). Every packet must arrive at every
//! receiver with a byte-identical payload.

use mafalda_host::pool::WorkerPool;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use mediasoup::prelude::*;
use std::time::Duration;

const PACKETS: u32 = 120;
const SSRC: u32 = 0x0a0b_0c0d;

async fn consumer_to_sink(router: &Router, producer: ProducerId) -> (PlainTransport, Consumer, RtpSink) {
    let sink = RtpSink::bind(PayloadKind::Opus).await.expect("bind sink");
    let transport = router
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("consumer transport");
    transport.connect(sink.remote_parameters()).await.expect("connect to sink");
    let consumer = transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await.expect("consume");
    (transport, consumer, sink)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_reaches_every_worker_intact() {
    let pool = WorkerPool::with_workers(3).await.expect("three workers");
    let workers = pool.workers();
    let mut routers = Vec::new();
    for w in &workers {
        routers.push(w.worker.create_router(RouterOptions::new(router_codecs())).await.expect("router"));
    }
    let (home, plain_side, srtp_side) = (&routers[0], &routers[1], &routers[2]);
    assert_ne!(home.worker().id(), plain_side.worker().id());
    assert_ne!(plain_side.worker().id(), srtp_side.worker().id());

    let mut ingest_options = PlainTransportOptions::new(loopback_listen_info());
    ingest_options.comedia = true;
    let ingest = home.create_plain_transport(ingest_options).await.expect("ingest transport");
    let producer =
        ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(SSRC))).await.expect("producer");

    let plain_pipe = home
        .pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(plain_side.clone()))
        .await
        .expect("plain pipe");
    let mut srtp_options = PipeToRouterOptions::new(srtp_side.clone());
    srtp_options.enable_srtp = true;
    let srtp_pipe = home.pipe_producer_to_router(producer.id(), srtp_options).await.expect("srtp pipe");

    let (_plain_pipe_consumer, plain_pipe_producer) = (plain_pipe.pipe_consumer, plain_pipe.pipe_producer.into_inner());
    let (_srtp_pipe_consumer, srtp_pipe_producer) = (srtp_pipe.pipe_consumer, srtp_pipe.pipe_producer.into_inner());
    // Pipes keep the producer id on the other side.
    assert_eq!(plain_pipe_producer.id(), producer.id());

    let local = consumer_to_sink(home, producer.id()).await;
    let piped = consumer_to_sink(plain_side, plain_pipe_producer.id()).await;
    let encrypted = consumer_to_sink(srtp_side, srtp_pipe_producer.id()).await;

    let generator = RtpGenerator::start(&ingest, GeneratorConfig::opus(SSRC).with_rate(200).with_count(PACKETS.into()))
        .await
        .expect("generator");
    assert_eq!(generator.finished().await.expect("all sent"), u64::from(PACKETS));

    for (name, (_, consumer, sink)) in [("local", &local), ("pipe", &piped), ("srtp pipe", &encrypted)] {
        let report = sink.wait_for(PACKETS.into(), Duration::from_secs(10)).await;
        assert!(report.has_all(PACKETS), "{name}: got {} of {PACKETS} distinct payloads", report.indices.len());
        assert_eq!(report.corrupt, 0, "{name}: corrupted payloads");
        assert_eq!(report.intact, u64::from(PACKETS), "{name}: duplicates or extra packets");
        assert!(!consumer.closed());
    }
    // The pipes really ran through the other workers' routers.
    let plain_dump = plain_side.dump().await.expect("dump");
    assert!(plain_dump.map_producer_id_consumer_ids.contains_key(&producer.id()));
    let srtp_dump = srtp_side.dump().await.expect("dump");
    assert!(srtp_dump.map_producer_id_consumer_ids.contains_key(&producer.id()));
}
