//! Faults between hosts: a host killed mid-stream (SIGKILL) leaves placement, routers report
//! what was lost and where, the rest keeps flowing, and it rejoins when restarted; a link that
//! drops and returns (the process stopped, not killed) loses nothing.

mod cluster_support;

use cluster_support::{application, certs, scratch, Node};
use mafalda_host::cluster::client::LinkState;
use mafalda_host::prelude::*;
use mafalda_host::router::CellLost;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

struct Output {
    transport: PlainTransport,
    consumer: Consumer,
    sink: RtpSink,
    node: String,
}

struct Room {
    router: Router,
    input: PlainTransport,
    producer: Producer,
    outputs: Vec<Output>,
    _generator: RtpGenerator,
}

fn node_of(manager: &WorkerManager, cell: mafalda_host::placement::CellId) -> String {
    manager.host().cell(cell).map(|c| c.node().to_string()).unwrap_or_default()
}

/// A producer and `consumers` consumers (spread over the hosts), the generator running.
async fn room(manager: &WorkerManager, consumers: usize) -> Room {
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x77))).await.expect("producer");
    let mut outputs = Vec::new();
    for _ in 0..consumers {
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
        let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
        transport.connect(sink.remote_parameters()).await.expect("connect");
        let consumer =
            transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
        let node = node_of(manager, transport.cell());
        outputs.push(Output { transport, consumer, sink, node });
    }
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x77).with_rate(100)).await.expect("generator");
    for output in &outputs {
        let report = output.sink.wait_for(20, Duration::from_secs(10)).await;
        assert!(report.intact >= 20, "media flows to {} before the fault: {report:?}", output.node);
    }
    Room { router, input, producer, outputs, _generator: generator }
}

/// Waits until `sink` received `more` packets beyond what it has now.
async fn keeps_receiving(output: &Output, more: u64) {
    let before = output.sink.report().intact;
    let report = output.sink.wait_for(before + more, Duration::from_secs(10)).await;
    assert!(report.intact >= before + more, "{} kept receiving: {before} → {report:?}", output.node);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_leaves_reports_its_losses_and_rejoins() {
    let dir = scratch("kill");
    let addresses = [("media10", "127.0.0.10"), ("media11", "127.0.0.11"), ("media12", "127.0.0.12")];
    certs(&dir, &addresses);
    let mut nodes: Vec<Node> = addresses.iter().map(|(n, ip)| Node::start(&dir, n, ip, 4443, &[])).collect();
    let manager = application(&dir, &nodes.iter().collect::<Vec<_>>(), &[("MAFALDA_POLICY", "spread")]);
    let room = room(&manager, 6).await;
    let home = node_of(&manager, room.input.cell());
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
    room.router
        .on_cell_lost(move |lost| {
            let _ = lost_tx.send(lost.clone());
        })
        .detach();

    // Kill a host that carries consumers but not the producer.
    let victim = nodes.iter().position(|n| n.name != home).expect("another host");
    let victim_name = nodes[victim].name.clone();
    let killed = Instant::now();
    nodes[victim].kill();

    // Its cells leave placement within 3 s.
    let host = manager.host();
    while host.cells().iter().any(|c| c.node() == victim_name && !c.is_draining() && !c.is_closed()) {
        assert!(killed.elapsed() < Duration::from_secs(3), "{victim_name}'s cells still placeable: {:?}", host.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The router reports what it lost, and where.
    let lost =
        tokio::time::timeout(Duration::from_secs(10), lost_rx.recv()).await.expect("loss reported").expect("event");
    assert_eq!(lost.node.as_deref(), Some(victim_name.as_str()), "{lost:?}");
    let expected: Vec<TransportId> =
        room.outputs.iter().filter(|o| o.node == victim_name).map(|o| o.transport.id()).collect();
    assert!(!expected.is_empty());
    for id in &expected {
        assert!(lost.lost_transports.contains(id), "{id} reported lost: {lost:?}");
    }
    // Consumers on the surviving hosts keep receiving.
    for output in room.outputs.iter().filter(|o| o.node != victim_name) {
        keeps_receiving(output, 30).await;
    }
    // New transports avoid the dead host.
    let mut fresh = Vec::new();
    for _ in 0..4 {
        let t = room
            .router
            .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
            .await
            .expect("transport");
        assert_ne!(node_of(&manager, t.cell()), victim_name, "placed on the dead host");
        fresh.push(t);
    }

    // Restarted, it rejoins and is used.
    let (new_tx, mut new_rx) = mpsc::unbounded_channel();
    host.on_new_cell(move |cell| {
        let _ = new_tx.send(*cell);
    })
    .detach();
    let (name, ip) = addresses[victim];
    nodes[victim] = Node::start(&dir, name, ip, 4443, &[]);
    let rejoined = loop {
        let cell =
            tokio::time::timeout(Duration::from_secs(15), new_rx.recv()).await.expect("rejoined").expect("event");
        if host.cell(cell).is_some_and(|c| c.node() == victim_name) {
            break cell;
        }
    };
    let placed = room
        .router
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("transport");
    assert_eq!(placed.cell(), rejoined, "spread uses the rejoined (empty) worker");

    // Kill the producer's host: consumers elsewhere learn their producer closed.
    let survivors: Vec<&Output> = room.outputs.iter().filter(|o| o.node != victim_name && o.node != home).collect();
    assert!(!survivors.is_empty());
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    for output in &survivors {
        let tx = closed_tx.clone();
        let id = output.consumer.id();
        output
            .consumer
            .on_producer_close(move || {
                let _ = tx.send(id);
            })
            .detach();
    }
    let producer_host = nodes.iter().position(|n| n.name == home).expect("home");
    nodes[producer_host].kill();
    for _ in &survivors {
        tokio::time::timeout(Duration::from_secs(10), closed_rx.recv()).await.expect("producer close").expect("id");
    }
    drop(room.producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_that_drops_and_returns_loses_nothing() {
    let dir = scratch("drop");
    let addresses = [("media13", "127.0.0.13"), ("media14", "127.0.0.14")];
    certs(&dir, &addresses);
    let mut nodes: Vec<Node> = addresses.iter().map(|(n, ip)| Node::start(&dir, n, ip, 4443, &[])).collect();
    let manager = application(&dir, &nodes.iter().collect::<Vec<_>>(), &[("MAFALDA_POLICY", "spread")]);
    let room = room(&manager, 4).await;
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
    room.router
        .on_cell_lost(move |lost| {
            let _ = lost_tx.send(lost.clone());
        })
        .detach();
    let cluster = manager.cluster().expect("cluster").clone();

    // A comedia transport on the host to be stopped: its tuple becomes known only when media
    // arrives, which will happen while the link is down.
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let comedia = room.router.create_plain_transport(options).await.expect("comedia transport");
    let stopped_name = node_of(&manager, comedia.cell());
    let stopped = nodes.iter().position(|n| n.name == stopped_name).expect("its host");
    let _late_producer =
        comedia.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x99))).await.expect("producer");
    let (tuple_tx, mut tuple_rx) = mpsc::unbounded_channel();
    comedia
        .on_tuple(move |tuple| {
            let _ = tuple_tx.send(tuple.remote_port());
        })
        .detach();

    let address = nodes[stopped].address();
    let state = |cluster: &mafalda_host::cluster::Cluster| {
        cluster.states().into_iter().find(|(a, _)| *a == address).map(|(_, s)| s).expect("link")
    };

    // Stop the process long enough for QUIC to give the link up, then let it continue.
    nodes[stopped].signal(libc::SIGSTOP);
    let since = Instant::now();
    while matches!(state(&cluster), LinkState::Up(_)) {
        assert!(since.elapsed() < Duration::from_secs(5), "the link never dropped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Media for the comedia transport, queued in its socket while the host is stopped.
    let late = RtpGenerator::start(&comedia, GeneratorConfig::opus(0x99).with_rate(50)).await.expect("generator");
    nodes[stopped].signal(libc::SIGCONT);
    while !matches!(state(&cluster), LinkState::Up(_)) {
        assert!(since.elapsed() < Duration::from_secs(10), "the link never returned: {:?}", state(&cluster));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let line = nodes[stopped].wait_for_log("resumed=true", Duration::from_secs(5));
    assert!(line.contains("cluster session"), "{line}");

    // The event the host raised while the link was down arrives through the resumed session.
    let port =
        tokio::time::timeout(Duration::from_secs(10), tuple_rx.recv()).await.expect("tuple event").expect("port");
    assert_eq!(port, Some(late.local_addr().port()), "the tuple names the late sender");
    assert_eq!(comedia.tuple().remote_port(), Some(late.local_addr().port()), "the state was re-synced");

    // Nothing was lost: no cell closed, every consumer keeps receiving, objects answer.
    assert!(lost_rx.try_recv().is_err(), "no cell was lost");
    for output in &room.outputs {
        keeps_receiving(output, 30).await;
        output.consumer.get_stats().await.expect("the consumer still answers");
    }
    assert!(manager.host().cells().iter().all(|c| !c.is_draining()), "every cell placeable again");
    drop(room.producer);
}
