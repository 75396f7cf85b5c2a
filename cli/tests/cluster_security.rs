//! Who may use a host: applications need a valid token for their room (the token-auth plugin),
//! peers need a certificate of the cluster CA, and bad bytes close only the connection that
//! sent them.

mod cluster_support;

use cluster_support::{application, certs, scratch, Node};
use mafalda_host::cluster::link::{self, MessageStream};
use mafalda_host::cluster::proto::{Hello, Message, Role, PROTOCOL_VERSION};
use mafalda_host::cluster::tls::{app_client_config, NodeTls};
use mafalda_host::cluster::Cluster;
use mafalda_host::config::HostOptions;
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use mafalda_plugin_token_auth::mint;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "cluster-test-secret";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn token_host(dir: &Path, name: &str, ip: &str) -> Node {
    let plugin = Path::new(mafalda_host::plugin::BUILT_PLUGIN_DIR).join("mafalda_plugin_token_auth.wasm");
    let secret = format!("secret={SECRET}");
    Node::start(dir, name, ip, 4443, &["--plugin", plugin.to_str().expect("utf-8"), "--plugin-config", &secret])
}

async fn worker_error(manager: &WorkerManager) -> String {
    manager.create_worker(WorkerSettings::default()).await.expect_err("refused").to_string()
}

fn room(room: &str) -> RouterOptions {
    let mut options = RouterOptions::new(router_codecs());
    options.app_data = AppData::new(HashMap::from([("room".to_string(), room.to_string())]));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_need_a_valid_token_for_their_room() {
    let dir = scratch("tokens");
    certs(&dir, &[("media6", "127.0.0.6")]);
    let node = token_host(&dir, "media6", "127.0.0.6");

    let none = application(&dir, &[&node], &[]);
    let error = worker_error(&none).await;
    assert!(error.contains("token refused"), "no token: {error}");

    let forged = mint(b"another secret", "mallory", "blue", now() + 600);
    let bad = application(&dir, &[&node], &[("MAFALDA_TOKEN", &forged)]);
    let error = worker_error(&bad).await;
    assert!(error.contains("token refused") && error.contains("signature"), "bad token: {error}");

    let stale = mint(SECRET.as_bytes(), "alice", "blue", now() - 10);
    let expired = application(&dir, &[&node], &[("MAFALDA_TOKEN", &stale)]);
    let error = worker_error(&expired).await;
    assert!(error.contains("token refused") && error.contains("expired"), "expired token: {error}");

    let token = mint(SECRET.as_bytes(), "alice", "blue", now() + 600);
    let good = application(&dir, &[&node], &[("MAFALDA_TOKEN", &token)]);
    let worker = good.create_worker(WorkerSettings::default()).await.expect("a valid token is admitted");
    let blue = worker.create_router(room("blue")).await.expect("router");
    let _blue_transport =
        blue.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("own room");
    let red = worker.create_router(room("red")).await.expect("router");
    let error = red
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect_err("another room is denied")
        .to_string();
    assert!(error.contains("denied") && error.contains("red"), "outside the token's room: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let dir = scratch("peers");
    certs(&dir, &[("media7", "127.0.0.7"), ("media8", "127.0.0.8")]);
    let rogue_dir = scratch("rogue");
    certs(&rogue_dir, &[("media8", "127.0.0.8")]);
    let mut node = Node::start(&dir, "media7", "127.0.0.7", 4443, &[]);
    let manager = WorkerManager::with_options(HostOptions::default());
    let host = manager.host();

    // The rogue presents media8's name, signed by another CA: refused during the handshake.
    let rogue = NodeTls::in_dir(&rogue_dir, "media8");
    let mut rogue_tls = rogue.clone();
    rogue_tls.ca = dir.join("ca.pem"); // it trusts the real host; the host does not trust it
    let cluster = Cluster::for_peers(host, &[node.address()], &rogue_tls).expect("links start");
    let error = cluster.ready(Duration::from_secs(10)).await.expect_err("refused").to_string();
    assert!(error.contains("127.0.0.7:4443"), "{error}");
    node.wait_for_log("refused during TLS", Duration::from_secs(10));
    drop(cluster);

    // The real media8 (same CA) is accepted as a peer and sees media7's worker.
    let real = NodeTls::in_dir(&dir, "media8");
    let cluster = Cluster::for_peers(host, &[node.address()], &real).expect("links start");
    cluster.ready(Duration::from_secs(10)).await.expect("a peer of the cluster CA is admitted");
    assert!(host.cells().iter().any(|c| c.node() == "media7"), "media7's worker became a cell: {:?}", host.cells());
    let line = node.wait_for_log("role=Peer", Duration::from_secs(10));
    assert!(line.contains("media8"), "the peer is named by its certificate: {line}");
}

/// A raw connection, as a client, to `address`.
async fn raw(dir: &Path, address: SocketAddr) -> (quinn::Connection, link::Outbox, MessageStream) {
    let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse().expect("addr")).expect("endpoint");
    endpoint.set_default_client_config(app_client_config(&dir.join("ca.pem")).expect("tls"));
    let connection = endpoint.connect(address, "localhost").expect("connect").await.expect("handshake");
    let (send, recv) = connection.open_bi().await.expect("stream");
    (connection, link::spawn_writer(send), MessageStream::new(recv))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_frames_and_old_versions_close_only_their_connection() {
    let dir = scratch("garbage");
    certs(&dir, &[("media9", "127.0.0.9")]);
    let node = Node::start(&dir, "media9", "127.0.0.9", 4443, &[]);
    let address: SocketAddr = node.address().parse().expect("address");

    // A working application first.
    let manager = application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let _first =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");

    // A hello from another protocol version: a clear refusal naming both versions.
    let (_connection, outbox, mut stream) = raw(&dir, address).await;
    let hello = Hello {
        version: PROTOCOL_VERSION + 1,
        role: Role::Client,
        node: "old".into(),
        token: None,
        resume: None,
        last_event: 0,
    };
    link::send(&outbox, &Message::Hello(hello));
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("answer") {
        Ok(Some(Message::Refused { reason })) => {
            assert!(
                reason.contains("version mismatch") && reason.contains(&(PROTOCOL_VERSION + 1).to_string()),
                "{reason}"
            )
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    // Garbage after a valid hello, then an oversized frame: each closes its own connection.
    for bytes in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), (u32::MAX).to_be_bytes().to_vec()] {
        let (connection, outbox, mut stream) = raw(&dir, address).await;
        let hello = Hello {
            version: PROTOCOL_VERSION,
            role: Role::Client,
            node: "fuzzer".into(),
            token: None,
            resume: None,
            last_event: 0,
        };
        link::send(&outbox, &Message::Hello(hello));
        assert!(matches!(stream.next().await, Ok(Some(Message::Welcome(_)))), "welcomed first");
        outbox.send(bytes).expect("queued");
        let reason = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await.expect("closed in time");
        let text = reason.to_string();
        assert!(text.contains("undecodable") || text.contains("exceeds"), "closed with a reason: {text}");
    }

    // The application's connection was not affected.
    let _second = router
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("other connections keep working");
}
