//! Faults between hosts. A stall is not a death: a host that goes silent leaves placement at
//! once and returns with nothing lost, requests made meanwhile are answered after it. A host is
//! lost only on proof (it restarted: a new boot id) or once its grace ran out, and then both
//! sides agree its objects are gone; routers report what was lost and where, the rest keeps
//! flowing, and a restarted host rejoins. An application that exits cleanly frees its session
//! at once.

mod cluster_support;

use cluster_support::{application, certs, limited, opus_input, opus_output, scratch, until, Node};
use mafalda_host::cluster::client::LinkState;
use mafalda_host::prelude::*;
use mafalda_host::router::CellLost;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator, RtpSink};
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
    let (input, producer) = opus_input(&router, 0x77).await;
    let mut outputs = Vec::new();
    for _ in 0..consumers {
        let (transport, consumer, sink) = opus_output(&router, &producer).await;
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

fn link_state(manager: &WorkerManager, node: &Node) -> LinkState {
    let address = node.address();
    let cluster = manager.cluster().expect("cluster");
    cluster.states().into_iter().find(|(a, _)| *a == address).map(|(_, s)| s).expect("link")
}

fn placeable(manager: &WorkerManager, node: &str) -> bool {
    manager.host().cells().iter().any(|c| c.node() == node && !c.is_draining() && !c.is_closed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_host_leaves_placement_and_is_lost_on_proof_or_after_its_grace() {
    let dir = scratch("kill");
    let addresses = [("media10", "127.0.0.10"), ("media11", "127.0.0.11"), ("media12", "127.0.0.12")];
    let grace = Duration::from_secs(12);
    let serve = format!("grace_secs = {}", grace.as_secs());
    let mut nodes: Vec<Node> = addresses.iter().map(|(n, ip)| limited(&dir, n, ip, &serve)).collect();
    let manager = application(&dir, &nodes.iter().collect::<Vec<_>>(), &[("MAFALDA_POLICY", "spread")]);
    let room = room(&manager, 6).await;
    let home = node_of(&manager, room.input.cell());
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
    room.router
        .on_cell_lost(move |lost| {
            let _ = lost_tx.send(lost.clone());
        })
        .detach();

    // Kill a host that carries consumers but not the producer: it goes silent, and its cells
    // leave placement within a few seconds, long before anything counts as lost.
    let victim = nodes.iter().position(|n| n.name != home).expect("another host");
    let victim_name = nodes[victim].name.clone();
    let killed = Instant::now();
    nodes[victim].kill();
    until("the silent host leaves placement", Duration::from_secs(6), || !placeable(&manager, &victim_name)).await;
    assert!(lost_rx.try_recv().is_err(), "silence alone loses nothing");
    // Consumers on the surviving hosts keep receiving; new transports avoid the silent host.
    for output in room.outputs.iter().filter(|o| o.node != victim_name) {
        keeps_receiving(output, 30).await;
    }
    let mut fresh = Vec::new();
    for _ in 0..4 {
        let t = room
            .router
            .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
            .await
            .expect("transport");
        assert_ne!(node_of(&manager, t.cell()), victim_name, "placed on the silent host");
        fresh.push(t);
    }

    // Restarted well within its grace: a new boot id is proof, the loss is reported at once.
    let (new_tx, mut new_rx) = mpsc::unbounded_channel();
    let host = manager.host();
    host.on_new_cell(move |cell| {
        let _ = new_tx.send(*cell);
    })
    .detach();
    let (name, ip) = addresses[victim];
    nodes[victim] = limited(&dir, name, ip, &serve);
    let lost =
        tokio::time::timeout(Duration::from_secs(10), lost_rx.recv()).await.expect("loss reported").expect("event");
    assert!(killed.elapsed() < grace, "reported on proof, not by the grace: {:?}", killed.elapsed());
    assert_eq!(lost.node.as_deref(), Some(victim_name.as_str()), "{lost:?}");
    let expected: Vec<TransportId> =
        room.outputs.iter().filter(|o| o.node == victim_name).map(|o| o.transport.id()).collect();
    assert!(!expected.is_empty());
    for id in &expected {
        assert!(lost.lost_transports.contains(id), "{id} reported lost: {lost:?}");
    }
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

    // Kill the producer's host for good: once its connection timed out (10 s of silence) and
    // its grace ran out, consumers elsewhere learn their producer closed.
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
    let killed = Instant::now();
    nodes[producer_host].kill();
    for _ in &survivors {
        let wait = grace + Duration::from_secs(10 + 8);
        tokio::time::timeout(wait, closed_rx.recv()).await.expect("producer close").expect("id");
    }
    let idle = Duration::from_secs(10);
    assert!(killed.elapsed() >= idle + grace - Duration::from_secs(1), "not before the grace: {:?}", killed.elapsed());
    drop(room.producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_host_leaves_placement_and_returns_with_nothing_lost() {
    let dir = scratch("stall");
    let addresses = [("media13", "127.0.0.13"), ("media14", "127.0.0.14")];
    certs(&dir, &addresses);
    let nodes: Vec<Node> = addresses.iter().map(|(n, ip)| Node::start(&dir, n, ip, 4443, &[])).collect();
    let manager = application(&dir, &nodes.iter().collect::<Vec<_>>(), &[("MAFALDA_POLICY", "spread")]);
    let room = room(&manager, 4).await;
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
    room.router
        .on_cell_lost(move |lost| {
            let _ = lost_tx.send(lost.clone());
        })
        .detach();

    // A comedia transport on the host to be stopped: its tuple becomes known only when media
    // arrives, which will happen while the host is stopped.
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

    // A 5 s stall (a loaded host, a paused VM), with the production defaults: the host leaves
    // placement while silent; a request made meanwhile waits for it.
    nodes[stopped].signal(libc::SIGSTOP);
    let stalled = Instant::now();
    until("the stalled host leaves placement", Duration::from_secs(5), || !placeable(&manager, &stopped_name)).await;
    let late = RtpGenerator::start(&comedia, GeneratorConfig::opus(0x99).with_rate(50)).await.expect("generator");
    let on_stalled = room.outputs.iter().find(|o| o.node == stopped_name).expect("a consumer on the stalled host");
    let pending = {
        let consumer = on_stalled.consumer.clone();
        tokio::spawn(async move { consumer.get_stats().await })
    };
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(stalled.elapsed())).await;
    nodes[stopped].signal(libc::SIGCONT);

    let answer = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("answered after the stall");
    answer.expect("task").expect("the request made during the stall succeeds");
    until("the host returns to placement", Duration::from_secs(5), || placeable(&manager, &stopped_name)).await;
    assert!(matches!(link_state(&manager, &nodes[stopped]), LinkState::Up(_)), "the link held");

    // The event the host raised after the stall arrives; nothing was lost or doubled.
    let port =
        tokio::time::timeout(Duration::from_secs(10), tuple_rx.recv()).await.expect("tuple event").expect("port");
    assert_eq!(port, Some(late.local_addr().port()), "the tuple names the late sender");
    assert_eq!(comedia.tuple().remote_port(), Some(late.local_addr().port()), "the state was re-synced");
    assert!(lost_rx.try_recv().is_err(), "no cell was lost");
    for output in &room.outputs {
        keeps_receiving(output, 30).await;
        let report = output.sink.report();
        assert_eq!(report.intact, report.indices.len() as u64, "no packet twice at {}: {report:?}", output.node);
        output.consumer.get_stats().await.expect("the consumer still answers");
    }
    drop(room.producer);
}

/// Short timers, so a dropped link and an expired grace fit in a test.
const QUICK: &str = "idle_timeout_ms = 1000\nkeep_alive_ms = 250";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_through_a_dropped_link_and_are_answered_after_the_resume() {
    let dir = scratch("drop");
    let mut node = limited(&dir, "media15", "127.0.0.15", &format!("{QUICK}\ngrace_secs = 30"));
    let manager = application(&dir, &[&node], &[]);
    let room = room(&manager, 1).await;
    node.signal(libc::SIGSTOP);
    until("the link drops", Duration::from_secs(5), || !matches!(link_state(&manager, &node), LinkState::Up(_))).await;
    // Made while the link is down: sent after the resume, answered once.
    let pending = {
        let transport = room.outputs[0].transport.clone();
        tokio::spawn(async move { transport.get_stats().await })
    };
    let second = {
        let (transport, producer) = (room.outputs[0].transport.clone(), room.producer.id());
        tokio::spawn(async move { transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    node.signal(libc::SIGCONT);
    let line = node.wait_for_log("resumed=true", Duration::from_secs(10));
    assert!(line.contains("cluster session"), "{line}");
    let stats = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("answered").expect("task");
    stats.expect("a request made while the link was down is answered after the resume");
    let consumer = tokio::time::timeout(Duration::from_secs(10), second).await.expect("answered").expect("task");
    let consumer = consumer.expect("a consumer asked for while the host was unreachable is made once it is back");
    consumer.get_stats().await.expect("and it is usable");
    keeps_receiving(&room.outputs[0], 30).await;
    drop(room.producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_grace_both_sides_agree_the_objects_are_gone() {
    let dir = scratch("grace");
    let grace = Duration::from_secs(3);
    let mut node = limited(&dir, "media16", "127.0.0.16", &format!("{QUICK}\ngrace_secs = {}", grace.as_secs()));
    let manager = application(&dir, &[&node], &[]);
    let room = room(&manager, 1).await;
    let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
    room.router
        .on_cell_lost(move |lost| {
            let _ = lost_tx.send(lost.clone());
        })
        .detach();
    node.signal(libc::SIGSTOP);
    until("the link drops", Duration::from_secs(5), || !matches!(link_state(&manager, &node), LinkState::Up(_))).await;
    let down = Instant::now();
    let pending = {
        let transport = room.outputs[0].transport.clone();
        tokio::spawn(async move { transport.get_stats().await })
    };
    let lost = tokio::time::timeout(grace * 3, lost_rx.recv()).await.expect("loss reported").expect("event");
    assert!(down.elapsed() >= grace - Duration::from_millis(500), "not before the host's grace: {:?}", down.elapsed());
    assert!(lost.lost_transports.contains(&room.outputs[0].transport.id()), "{lost:?}");
    let failed = tokio::time::timeout(Duration::from_secs(5), pending).await.expect("failed in time").expect("task");
    assert!(failed.is_err(), "a request waiting for a lost host fails");
    // The host, once running again, ends the session and closes its objects.
    node.signal(libc::SIGCONT);
    node.wait_for_log("cluster session ended: its objects are closed", grace * 3);
    drop(room.producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_exits_cleanly_frees_its_session_at_once() {
    let dir = scratch("bye");
    certs(&dir, &[("media29", "127.0.0.29")]);
    let mut node = Node::start(&dir, "media29", "127.0.0.29", 4443, &[]);
    let manager = application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    node.wait_for_log("cluster session", Duration::from_secs(5));
    drop((transport, router, worker, manager));
    let at = Instant::now();
    node.wait_for_log("said bye", Duration::from_secs(3));
    node.wait_for_log("cluster session ended: its objects are closed", Duration::from_secs(1));
    assert!(at.elapsed() < Duration::from_secs(3));
}
