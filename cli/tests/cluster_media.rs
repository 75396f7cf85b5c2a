//! Three `mafalda-host serve` processes on 127.0.0.2/3/4 (one worker each); an application with
//! `MAFALDA_CLUSTER` and the spread policy puts one router over all three: a producer on one
//! host, consumers on every host, producers piped host to host over UDP. An application with
//! local workers and a host pipes media both ways over a routable address.

mod cluster_support;

use cluster_support::{application, certs, opus_input, opus_output, scratch, Node};
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
    let (input, producer) = opus_input(&router, 0x1234).await;

    // Six consumers: spread puts two on each host.
    let mut outputs = Vec::new();
    for _ in 0..6 {
        let (transport, consumer, sink) = opus_output(&router, &producer).await;
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

    // Media between hosts is encrypted and repaired: both ends of every pipe, as each host's
    // mediasoup reports them, have SRTP keys and RTX on (the application's [pipes] left at its
    // loopback defaults).
    let links = router.dump_pipes().await.expect("pipe dumps");
    assert_eq!(links.len(), 2, "a link from the producer's host to each other host: {links:?}");
    for link in &links {
        for end in [&link.source, &link.target] {
            assert!(end.srtp_parameters.is_some() && end.rtx, "{} -> {}: {end:?}", link.from, link.to);
        }
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

/// Three hosts linked to each other with `--peer` (mutual TLS with the cluster CA): each
/// aggregates the others for its own clients, so an application linked to media40 only gets
/// routers over all three hosts' workers, with media piped host to host under SRTP and RTX.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_linked_with_peers_serve_one_router_to_a_client_of_one() {
    let dir = scratch("peer");
    let hosts = [("media40", "127.0.0.40"), ("media41", "127.0.0.41"), ("media42", "127.0.0.42")];
    certs(&dir, &hosts);
    let address = |ip: &str| format!("{ip}:4443");
    let mut nodes: Vec<Node> = hosts
        .iter()
        .map(|(name, ip)| {
            let peers: Vec<String> = hosts.iter().filter(|(n, _)| n != name).map(|(_, i)| address(i)).collect();
            let args = ["--peer", peers[0].as_str(), "--peer", peers[1].as_str()];
            Node::start(&dir, name, ip, 4443, &args)
        })
        .collect();
    for node in &mut nodes {
        let line = node.wait_for_log("role=Peer", Duration::from_secs(20));
        assert!(line.contains("identity=media"), "peers are named by their certificates: {line}");
    }
    let manager = application(&dir, &[&nodes[0]], &[("MAFALDA_POLICY", "spread")]);
    let host = manager.host();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    host.on_new_cell(move |cell| {
        let _ = tx.send(*cell);
    })
    .detach();
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let all = |host: &mafalda_host::host::Host| {
        let nodes: BTreeSet<String> = host.cells().iter().map(|c| c.node().to_string()).collect();
        nodes.len() == 3
    };
    while !all(host) {
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("the peers' workers advertised");
    }
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = opus_input(&router, 0x42).await;
    let mut outputs = Vec::new();
    for _ in 0..3 {
        let (transport, consumer, sink) = opus_output(&router, &producer).await;
        outputs.push((transport, consumer, sink));
    }
    let used: BTreeSet<String> = std::iter::once(&input)
        .chain(outputs.iter().map(|(t, _, _)| t))
        .map(|t| host.cell(t.cell()).expect("cell").node().to_string())
        .collect();
    assert_eq!(used, hosts.map(|(n, _)| n.to_string()).into(), "the router uses every host");
    let _generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x42).with_count(PACKETS).with_rate(200))
        .await
        .expect("generator");
    for (_, _, sink) in &outputs {
        let report = sink.wait_for(PACKETS, Duration::from_secs(20)).await;
        assert!(report.has_all(PACKETS as u32) && report.corrupt == 0, "{report:?}");
    }
    for link in router.dump_pipes().await.expect("pipe dumps") {
        for end in [&link.source, &link.target] {
            assert!(end.srtp_parameters.is_some() && end.rtx, "{} -> {}: {end:?}", link.from, link.to);
        }
    }
}

/// The README's cluster demo: `mafalda-host demo` as an application of three hosts prints a
/// live table with packets per host.
#[test]
fn the_demo_runs_a_room_across_three_hosts() {
    let dir = scratch("demo");
    let addresses = [("media17", "127.0.0.17"), ("media18", "127.0.0.18"), ("media19", "127.0.0.19")];
    certs(&dir, &addresses);
    let nodes: Vec<Node> = addresses.iter().map(|(n, ip)| Node::start(&dir, n, ip, 4443, &[])).collect();
    let cluster = nodes.iter().map(Node::address).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new(cluster_support::binary())
        .env("MAFALDA_ADMIN", "off")
        .args(["demo", "--workers", "3", "--duration", "6"])
        .env("MAFALDA_CLUSTER", cluster)
        .env("MAFALDA_CA", dir.join("ca.pem"))
        .env("MAFALDA_MAX_WORKERS", "0")
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let last = stdout.rsplit("t=").next().expect("a table");
    for (name, _) in addresses {
        let row = last.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"));
        let delivered: u64 = row.split_whitespace().nth(6).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert!(delivered > 0, "{name} delivered packets: {row}");
    }
    assert!(last.contains("pipes: w"), "the producer is piped host to host:\n{last}");
}

/// One leg of media: a generator into a producer on `from`, a sink behind a consumer on `to`.
async fn leg(from: &PlainTransport, to: &PlainTransport, ssrc: u32) -> (Producer, Consumer, RtpSink, RtpGenerator) {
    let producer =
        from.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(ssrc))).await.expect("producer");
    let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
    to.connect(sink.remote_parameters()).await.expect("connect");
    let consumer = to.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
    let generator = RtpGenerator::start(from, GeneratorConfig::opus(ssrc).with_rate(100)).await.expect("generator");
    (producer, consumer, sink, generator)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_remote_workers_pipe_media_both_ways_over_a_routable_address() {
    let dir = scratch("mixed");
    certs(&dir, &[("media38", "127.0.0.38")]);
    let node = Node::start(&dir, "media38", "127.0.0.38", 4443, &[]);
    // Local workers too: their pipes listen on and announce 127.0.0.39, which the host reaches.
    let config = dir.join("mixed.toml");
    std::fs::write(&config, "[pipes]\nlisten_ip = \"127.0.0.39\"\n").expect("config");
    let extra = [
        ("MAFALDA_MAX_WORKERS", "1"),
        ("MAFALDA_POLICY", "spread"),
        ("MAFALDA_CONFIG", config.to_str().expect("utf-8")),
    ];
    let manager = application(&dir, &[&node], &extra);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let host = manager.host();
    // Inputs (comedia: they learn the generator's address) and outputs on each side.
    let by_side = |comedia: bool| {
        let (router, host) = (router.clone(), host.clone());
        async move {
            let (mut local, mut remote) = (Vec::new(), Vec::new());
            for _ in 0..4 {
                let mut options = PlainTransportOptions::new(loopback_listen_info());
                options.comedia = comedia;
                let transport = router.create_plain_transport(options).await.expect("transport");
                let on_host = host.cell(transport.cell()).expect("cell").node() == "media38";
                if on_host {
                    remote.push(transport)
                } else {
                    local.push(transport)
                }
            }
            assert!(
                !local.is_empty() && !remote.is_empty(),
                "spread over both: {} local, {} remote",
                local.len(),
                remote.len()
            );
            (local.swap_remove(0), remote.swap_remove(0))
        }
    };
    let (in_local, in_remote) = by_side(true).await;
    let (out_local, out_remote) = by_side(false).await;
    // Local producer to a consumer on the host, and the host's producer to a local consumer.
    let up = leg(&in_local, &out_remote, 0x3801).await;
    let down = leg(&in_remote, &out_local, 0x3802).await;
    for (name, sink) in [("local to host", &up.2), ("host to local", &down.2)] {
        let report = sink.wait_for(PACKETS, Duration::from_secs(10)).await;
        assert!(report.intact >= PACKETS, "{name}: {report:?}");
    }
    // Each leg crossed a pipe between this process and the host: the local end listens on the
    // routable address, the host's on its own; both protected (different nodes).
    let links = router.dump_pipes().await.expect("pipes");
    assert_eq!(links.len(), 2, "one pipe each way: {links:?}");
    for link in &links {
        let ends = [&link.source, &link.target];
        let ips: BTreeSet<String> = ends.iter().map(|end| end.tuple.local_address().to_string()).collect();
        assert_eq!(ips, BTreeSet::from(["127.0.0.38".to_string(), "127.0.0.39".to_string()]), "{link:?}");
        for end in ends {
            assert!(end.srtp_parameters.is_some() && end.rtx, "{} -> {}: {end:?}", link.from, link.to);
        }
    }
    drop((up, down));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mediasoups_refusals_keep_their_variant_over_a_remote_host() {
    use mafalda_host::prelude::{ConsumeError, ProduceError, RtpCodecParameters};
    use mafalda_media_tools::media::vp8_send_parameters;
    let dir = scratch("refusals");
    certs(&dir, &[("media43", "127.0.0.43")]);
    let node = Node::start(&dir, "media43", "127.0.0.43", 4443, &[]);
    let manager = application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    // A producer this router does not know.
    let unknown: ProducerId = "6b3e3c5e-9d54-4f64-9c3d-2a1f0e7f9a10".parse().expect("id");
    match transport.consume(ConsumerOptions::new(unknown, receiver_capabilities())).await {
        Err(ConsumeError::ProducerNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("expected ProducerNotFound, got {:?}", other.map(|c| c.id())),
    }
    // A codec the router does not have (VP9; it has Opus and VP8).
    let mut parameters = vp8_send_parameters(0x4301);
    if let Some(RtpCodecParameters::Video { mime_type, .. }) = parameters.codecs.first_mut() {
        *mime_type = mafalda_host::prelude::MimeTypeVideo::Vp9;
    }
    match transport.produce(ProducerOptions::new(MediaKind::Video, parameters)).await {
        Err(ProduceError::FailedRtpParametersMapping(_)) => {}
        other => panic!("expected FailedRtpParametersMapping, got {:?}", other.map(|p| p.id())),
    }
}
