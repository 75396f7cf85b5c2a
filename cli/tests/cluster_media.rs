//! Three `mafalda-host serve` processes on 127.0.0.2/3/4 (one worker each); an application with
//! `MAFALDA_CLUSTER` and the spread policy puts one router over all three: a producer on one
//! host, consumers on every host, producers piped host to host over UDP.

mod cluster_support;

use cluster_support::{application, certs, scratch, Node};
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use std::collections::BTreeSet;
use std::time::Duration;

const PACKETS: u64 = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_router_over_three_hosts_carries_every_packet() {
    let dir = scratch("media");
    certs(&dir, &[("media1", "127.0.0.2"), ("media2", "127.0.0.3"), ("media3", "127.0.0.4")]);
    let nodes = [
        Node::start(&dir, "media1", "127.0.0.2", 4443, &[]),
        Node::start(&dir, "media2", "127.0.0.3", 4443, &[]),
        Node::start(&dir, "media3", "127.0.0.4", 4443, &[]),
    ];
    let manager = application(&dir, &nodes.iter().collect::<Vec<_>>(), &[("MAFALDA_POLICY", "spread")]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker over the cluster");
    let host = manager.host();
    let cells = host.cells();
    let node_names: BTreeSet<String> = cells.iter().map(|c| c.node().to_string()).collect();
    assert_eq!(node_names, ["media1", "media2", "media3"].map(String::from).into(), "cells: {cells:?}");

    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut input_options = PlainTransportOptions::new(loopback_listen_info());
    input_options.comedia = true;
    let input = router.create_plain_transport(input_options).await.expect("input transport");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x1234))).await.expect("producer");

    // Six consumers: spread puts two on each host.
    let mut outputs = Vec::new();
    for _ in 0..6 {
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
        let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
        transport.connect(sink.remote_parameters()).await.expect("connect");
        let consumer =
            transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
        outputs.push((transport, consumer, sink));
    }
    let used: BTreeSet<String> =
        outputs.iter().map(|(t, _, _)| host.cell(t.cell()).expect("cell").node().to_string()).collect();
    assert_eq!(used.len(), 3, "consumers spread over every host: {used:?}");

    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x1234).with_count(PACKETS).with_rate(200))
        .await
        .expect("generator");
    for (transport, _, sink) in &outputs {
        let report = sink.wait_for(PACKETS, Duration::from_secs(20)).await;
        assert!(report.has_all(PACKETS as u32), "consumer on {:?} got {report:?}", transport.cell());
        assert_eq!(report.corrupt, 0, "payloads are byte-identical");
    }
    assert_eq!(generator.sent(), PACKETS);

    // Stats and dumps through the application agree with what was sent and placed.
    let received: u64 = producer.get_stats().await.expect("producer stats").iter().map(|s| s.packet_count).sum();
    assert_eq!(received, PACKETS, "the producer's host counted every packet");
    for (_, consumer, _) in &outputs {
        let sent: u64 = consumer
            .get_stats()
            .await
            .expect("consumer stats")
            .iter()
            .filter_map(|s| match s {
                mafalda_host::consumer::ConsumerRtpStreamStat::Outbound(o) => Some(o.packet_count),
                _ => None,
            })
            .sum();
        assert_eq!(sent, PACKETS, "each consumer's host sent every packet");
    }
    let dump = router.dump().await.expect("router dump");
    for (transport, consumer, _) in &outputs {
        assert!(dump.transport_ids.contains(&transport.id()), "dump lists {}", transport.id());
        assert!(dump.map_producer_id_consumer_ids.iter().any(|(_, cs)| cs.contains(&consumer.id())));
    }

    // One pipe per producer per host that consumes it (not one per consumer)…
    let stats = host.stats();
    let home = host.cell(producer.cell()).expect("producer cell").id();
    for cell in &stats.cells {
        let expected = u32::from(cell.id != home);
        assert_eq!(cell.pipes, expected, "pipes in {}: {stats:?}", cell.id);
    }
    // …released when its consumers go.
    drop(outputs);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while host.stats().cells.iter().any(|c| c.pipes > 0) {
        assert!(tokio::time::Instant::now() < deadline, "pipes released: {:?}", host.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
