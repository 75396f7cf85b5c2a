//! Remote sessions are users of the serving host's cells: a cluster application's routers,
//! transports, producers and consumers count in the cell of the worker they live on (its stats
//! show them, idle release keeps it), and once they are gone the cell is idle again and the
//! host's workers hold nothing of them. A real host (in this process) serves a real application
//! over QUIC on 127.0.0.35 and 127.0.0.47.

use mafalda_host::cluster::certs::{self, NodeCert};
use mafalda_host::cluster::limits::ServeLimits;
use mafalda_host::cluster::server::{ClusterServer, ServeOptions};
use mafalda_host::cluster::tls::NodeTls;
use mafalda_host::config::HostOptions;
use mafalda_host::host::{CellClosed, CloseReason};
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const IP: &str = "127.0.0.35";

/// The serving host's cell counts: (transports, producers, consumers, routers) summed.
fn counts(manager: &WorkerManager) -> (u32, u32, u32, usize) {
    let stats = manager.host().stats();
    stats.cells.iter().fold((0, 0, 0, 0), |(t, p, c, r), cell| {
        (t + cell.transports, p + cell.producers, c + cell.consumers, r + cell.routers)
    })
}

/// A scratch directory with a CA and the certificate of node `name` at `ip`.
fn node_dir(name: &str, ip: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    certs::init_ca(&dir.join("ca"), 30).expect("ca");
    let node =
        NodeCert { name: name.into(), ips: vec![ip.parse().expect("ip")], dns: Vec::new(), localhost: false, days: 30 };
    certs::issue(&dir.join("ca"), &dir, &node).expect("node certificate");
    dir
}

/// Serves `serving`'s workers as node `name` on `ip:4443`.
fn serve(serving: &WorkerManager, dir: &std::path::Path, name: &str, ip: &str) -> ClusterServer {
    let serve = ServeOptions {
        listen: format!("{ip}:4443").parse().expect("listen"),
        announced_ip: ip.parse().expect("ip"),
        tls: NodeTls::in_dir(dir, name),
        insecure_allow_any_client: false,
        limits: ServeLimits::default(),
    };
    ClusterServer::start(std::sync::Arc::clone(serving.host()), serve).expect("serving")
}

/// An application whose every worker is on the host at `ip`.
fn application(dir: &std::path::Path, ip: &str) -> WorkerManager {
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_CLUSTER", format!("{ip}:4443")),
        ("MAFALDA_CA", dir.join("ca.pem").display().to_string()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
    ]);
    WorkerManager::with_options(HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_sessions_objects_count_in_its_cell_and_keep_it_from_idle_release() {
    let dir = node_dir("media35", IP);

    // The serving host: one worker at most, none kept when idle, released after 1 s idle.
    let mut options = HostOptions { node: "media35".into(), ..HostOptions::default() };
    options.pool.max_workers = 1;
    options.pool.min_workers = 0;
    options.pool.idle_grace = Duration::from_secs(1);
    options.pool.sample_interval = Duration::from_millis(200);
    let serving = WorkerManager::with_options(options);
    let local = serving.create_worker(WorkerSettings::default()).await.expect("worker");
    let started = local.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let warm = started
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("starts a cell");
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel::<CellClosed>();
    serving
        .host()
        .on_cell_closed(move |closed| {
            let _ = closed_tx.send(closed.clone());
        })
        .detach();
    let server = serve(&serving, &dir, "media35", IP);

    // An application uses that worker remotely; the host's own objects go away.
    let app = application(&dir, IP);
    let worker = app.create_worker(WorkerSettings::default()).await.expect("remote worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut comedia = PlainTransportOptions::new(loopback_listen_info());
    comedia.comedia = true;
    let input = router.create_plain_transport(comedia).await.expect("input");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x51))).await.expect("producer");
    let output =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
    let consumer =
        output.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consumer");
    drop((warm, started, local));

    // The host's cell counts the remote session's objects...
    assert_eq!(counts(&serving), (2, 1, 1, 1), "{:?}", serving.host().stats().cells);
    // ...and idle release leaves it alone well past its grace.
    let kept = tokio::time::timeout(Duration::from_secs(3), closed_rx.recv()).await;
    assert!(kept.is_err(), "a cell the remote session uses was closed: {kept:?}");
    consumer.get_stats().await.expect("the remote objects still answer");

    // Once the application lets go, the cell is idle again and released.
    drop((consumer, output, producer, input, router, worker, app));
    let since = Instant::now();
    while counts(&serving) != (0, 0, 0, 0) {
        assert!(since.elapsed() < Duration::from_secs(5), "counts stay: {:?}", counts(&serving));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed =
        tokio::time::timeout(Duration::from_secs(5), closed_rx.recv()).await.expect("released").expect("event");
    assert!(matches!(closed.reason, CloseReason::Idle), "{closed:?}");
    server.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_application_leaves_the_hosts_workers_hold_nothing_of_it() {
    const LEAK_IP: &str = "127.0.0.47";
    const ROUNDS: usize = 40;
    let dir = node_dir("media47", LEAK_IP);
    let mut options = HostOptions { node: "media47".into(), ..HostOptions::default() };
    options.pool.max_workers = 1;
    options.pool.min_workers = 1;
    let serving = WorkerManager::with_options(options);
    let _kept = serving.create_worker(WorkerSettings::default()).await.expect("worker");
    let server = serve(&serving, &dir, "media47", LEAK_IP);
    let baseline = serving.host().worker_dumps().await;
    assert_eq!(baseline.len(), 1, "one worker of this process");

    // Objects of every kind, round after round, then the application leaves.
    let app = application(&dir, LEAK_IP);
    let worker = app.create_worker(WorkerSettings::default()).await.expect("remote worker");
    let (mut held, mut observers) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let mut comedia = PlainTransportOptions::new(loopback_listen_info());
        comedia.comedia = true;
        let input = router.create_plain_transport(comedia).await.expect("input");
        let producer = input
            .produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(0x100 + round as u32)))
            .await
            .expect("producer");
        let output =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
        let consumer =
            output.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consumer");
        let webrtc = router
            .create_webrtc_transport(WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(
                loopback_listen_info(),
            )))
            .await
            .expect("webrtc");
        let pipe = router.create_pipe_transport(PipeTransportOptions::new(loopback_listen_info())).await.expect("pipe");
        let direct = router.create_direct_transport(DirectTransportOptions::default()).await.expect("direct");
        let data_producer = direct.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
        let data_consumer = direct
            .consume_data(DataConsumerOptions::new_direct(data_producer.id(), None))
            .await
            .expect("data consumer");
        let levels =
            router.create_audio_level_observer(AudioLevelObserverOptions::default()).await.expect("audio levels");
        levels.add_producer(RtpObserverAddProducerOptions::new(producer.id())).await.expect("observed");
        let speaker = router
            .create_active_speaker_observer(ActiveSpeakerObserverOptions::default())
            .await
            .expect("active speaker");
        held.push((router, input, producer, output, consumer, webrtc, pipe, direct, data_producer, data_consumer));
        observers.push((levels, speaker));
    }
    let during = serving.host().worker_dumps().await;
    let routers_during = during[0].1.as_ref().expect("dump").router_ids.len();
    assert_eq!(routers_during, ROUNDS, "the host's worker holds the application's routers");
    assert!(server.held_objects() >= ROUNDS * 12, "held for the session: {}", server.held_objects());
    drop((held, observers, worker, app));

    // Everything the session held is gone from the host: its map, and its worker's dump.
    let since = Instant::now();
    while server.held_objects() != 0 || counts(&serving) != (0, 0, 0, 0) {
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "still held: {} objects, counts {:?}",
            server.held_objects(),
            counts(&serving)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = serving.host().worker_dumps().await;
    let (baseline, after) = (baseline[0].1.as_ref().expect("dump"), after[0].1.as_ref().expect("dump"));
    assert!(after.router_ids.is_empty(), "routers left on the host: {:?}", after.router_ids);
    assert!(after.webrtc_server_ids.is_empty(), "servers left: {:?}", after.webrtc_server_ids);
    let handlers = |d: &mafalda_host::worker::WorkerDump| {
        let h = &d.channel_message_handlers;
        (h.channel_request_handlers.len(), h.channel_notification_handlers.len())
    };
    assert_eq!(handlers(after), handlers(baseline), "channel handlers back to the idle worker's");
    server.close();
}
