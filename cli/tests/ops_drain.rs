//! Graceful drain as an operator runs it: `mafalda-host drain` (or SIGTERM) on a host with a
//! live room — no new transport lands there (the application learns it from the adverts), the
//! room's media keeps flowing, and the host exits 0 once the room left; the drain timeout is
//! honoured; a second SIGTERM stops at once.

mod cluster_support;
mod ops_support;

use cluster_support::{application, certs, opus_input, opus_output, run, scratch, until, Node};
use mafalda_host::host::CellDraining;
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use ops_support::get;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_host_takes_no_new_transport_keeps_its_room_flowing_and_exits_0_once_it_left() {
    let dir = scratch("drain-room");
    certs(&dir, &[("drain1", "127.0.0.52"), ("drain2", "127.0.0.53")]);
    let mut draining = Node::start(&dir, "drain1", "127.0.0.52", 4443, &[]);
    let other = Node::start(&dir, "drain2", "127.0.0.53", 4443, &[]);
    let manager = application(&dir, &[&draining, &other], &[("MAFALDA_POLICY", "spread")]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker over the cluster");
    let host = manager.host();
    let events: Arc<Mutex<Vec<CellDraining>>> = Arc::default();
    let seen = Arc::clone(&events);
    let _draining_events = host.on_cell_draining(move |e| seen.lock().expect("events").push(e.clone()));
    let node_of = |cell| host.cell(cell).map(|c| c.node().to_string()).unwrap_or_default();

    // A room over both hosts with media: the producer and consumers spread over them.
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = opus_input(&router, 0x5151).await;
    let mut outputs = Vec::new();
    for _ in 0..4 {
        outputs.push(opus_output(&router, &producer).await);
    }
    let on_drained: Vec<usize> = (0..outputs.len()).filter(|i| node_of(outputs[*i].0.cell()) == "drain1").collect();
    assert!(!on_drained.is_empty(), "some consumers on drain1");
    let _generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x5151).with_count(1_000_000).with_rate(100))
        .await
        .expect("generator");
    for (_, _, sink) in &outputs {
        sink.wait_for(20, Duration::from_secs(20)).await;
    }

    // A serving host counts its applications' media (its sessions' producers and consumers).
    let sent =
        |admin: &str| ops_support::metric_sum(&get(admin, "/metrics").body, "mafalda_cell_rtp_sent_packets_total");
    let since = Instant::now();
    while sent(&other.admin()) <= 0.0 {
        assert!(since.elapsed() < Duration::from_secs(20), "drain2 counts the RTP it sends");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The operator's command.
    let answer = run(&["drain", "--admin", &draining.admin()]);
    assert!(answer.contains("\"draining\":true"), "{answer}");
    until("the application sees drain1's cell draining", Duration::from_secs(5), || {
        host.stats().cells.iter().any(|c| c.node == "drain1" && c.draining)
    })
    .await;
    until("on_cell_draining told the application", Duration::from_secs(5), || {
        events.lock().expect("events").iter().any(|e| e.node == "drain1" && e.draining)
    })
    .await;
    let readyz = get(&draining.admin(), "/readyz");
    assert_eq!(readyz.status, 503, "{}", readyz.body);
    assert_eq!(get(&draining.admin(), "/healthz").status, 200);
    assert_eq!(get(&draining.admin(), "/status").json()["draining"], true);

    // New transports: none on the draining host.
    let mut later = Vec::new();
    for _ in 0..4 {
        let (transport, consumer, sink) = opus_output(&router, &producer).await;
        assert_eq!(node_of(transport.cell()), "drain2", "a new transport avoids the draining host");
        later.push((transport, consumer, sink));
    }
    // Media keeps flowing on the draining host's consumers.
    for i in &on_drained {
        let sink = &outputs[*i].2;
        let before = sink.report().intact;
        until("media still flows on the draining host", Duration::from_secs(10), || sink.report().intact > before + 50)
            .await;
    }
    assert!(draining.running(), "the host waits for its room");

    // The room leaves the draining host: it exits 0.
    let since = Instant::now();
    for i in on_drained.iter().rev() {
        drop(outputs.remove(*i));
    }
    if node_of(input.cell()) == "drain1" {
        drop((_generator, producer, input, later, outputs));
    }
    let status = draining.wait_exit(Duration::from_secs(20)).expect("the drained host exits");
    assert!(status.success(), "exit status {status:?}; log:\n{}", draining.drain_log());
    let log = draining.drain_log();
    assert!(log.contains("drained"), "{log}");
    eprintln!("drained host exited {:?} after its room left", since.elapsed());
    drop(other);
}

/// One host with one plain transport of an application's room on it.
async fn host_with_a_transport(
    ip: &str,
    name: &str,
    extra: &[&str],
) -> (Node, mafalda_host::worker_manager::WorkerManager, PlainTransport) {
    let dir = scratch(name);
    certs(&dir, &[(name, ip)]);
    let node = Node::start(&dir, name, ip, 4443, extra);
    let manager = application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    (node, manager, transport)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_until_the_drain_timeout_and_a_second_sigterm_stops_at_once() {
    // The timeout: SIGTERM, the transport stays, the host stops at --drain-timeout with 0.
    let (mut timed, _app, _transport) = host_with_a_transport("127.0.0.54", "drain3", &["--drain-timeout", "2"]).await;
    let since = Instant::now();
    timed.signal(libc::SIGTERM);
    timed.wait_for_log("SIGTERM: draining", Duration::from_secs(5));
    assert!(get(&timed.admin(), "/readyz").status == 503, "not ready while draining");
    let status = timed.wait_exit(Duration::from_secs(15)).expect("exits at the drain timeout");
    let took = since.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took >= Duration::from_secs(2), "not before the timeout: {took:?}");
    assert!(took < Duration::from_secs(12), "soon after it: {took:?}");
    assert!(timed.drain_log().contains("drain timeout"), "{}", timed.drain_log());

    // A second SIGTERM: at once, long before the (default, 5 min) timeout.
    let (mut second, _app2, _transport2) = host_with_a_transport("127.0.0.55", "drain4", &[]).await;
    second.signal(libc::SIGTERM);
    second.wait_for_log("SIGTERM: draining", Duration::from_secs(5));
    // Once told to stop, the drain cannot be undone over HTTP.
    let undrain = ops_support::post(&second.admin(), "/undrain", None);
    assert_eq!(undrain.status, 409, "{}", undrain.body);
    std::thread::sleep(Duration::from_millis(500));
    assert!(second.running(), "a drain waits for the transport");
    let since = Instant::now();
    second.signal(libc::SIGTERM);
    let status = second.wait_exit(Duration::from_secs(15)).expect("the second SIGTERM stops it");
    assert!(status.success(), "{status:?}");
    assert!(since.elapsed() < Duration::from_secs(12), "{:?}", since.elapsed());
}
