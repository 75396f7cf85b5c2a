//! Remote sessions are users of the serving host's cells: a cluster application's routers,
//! transports, producers and consumers count in the cell of the worker they live on (its stats
//! show them, idle release keeps it), and once they are gone the cell is idle again. A real
//! host (in this process) serves a real application over QUIC on 127.0.0.35.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_sessions_objects_count_in_its_cell_and_keep_it_from_idle_release() {
    let dir = std::env::temp_dir().join(format!("mafalda-users-of-cells-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    certs::init_ca(&dir.join("ca"), 30).expect("ca");
    let node = NodeCert {
        name: "media35".into(),
        ips: vec![IP.parse().expect("ip")],
        dns: Vec::new(),
        localhost: false,
        days: 30,
    };
    certs::issue(&dir.join("ca"), &dir, &node).expect("node certificate");

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
    let serve = ServeOptions {
        listen: format!("{IP}:4443").parse().expect("listen"),
        announced_ip: IP.parse().expect("ip"),
        tls: NodeTls::in_dir(&dir, "media35"),
        insecure_allow_any_client: false,
        limits: ServeLimits::default(),
    };
    let server = ClusterServer::start(std::sync::Arc::clone(serving.host()), serve).expect("serving");

    // An application uses that worker remotely; the host's own objects go away.
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_CLUSTER", format!("{IP}:4443")),
        ("MAFALDA_CA", dir.join("ca.pem").display().to_string()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
    ]);
    let app = WorkerManager::with_options(HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options"));
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
