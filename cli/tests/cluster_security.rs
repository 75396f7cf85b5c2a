//! Who may use a host: applications need a valid token for their room (the token-auth plugin),
//! peers need a certificate of the cluster CA, the auth plugin decides where a connect may send
//! media, and bad bytes close only the connection that sent them.

mod cluster_support;

use cluster_support::{application, certs, scratch, Node, Raw};
use mafalda_host::cluster::proto::{Hello, Message, Role, PROTOCOL_VERSION};
use mafalda_host::cluster::tls::NodeTls;
use mafalda_host::cluster::Cluster;
use mafalda_host::config::HostOptions;
use mafalda_host::pipe_transport::{PipeTransportOptions, PipeTransportRemoteParameters};
use mafalda_host::plain_transport::PlainTransportRemoteParameters;
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use mafalda_plugin_token_auth::mint;
use std::collections::HashMap;
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
    // A router without a room label is not the token's room either: fail closed.
    let unlabelled = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let error = unlabelled
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect_err("a router without a room is denied to a room token")
        .to_string();
    assert!(error.contains("denied") && error.contains("without a room"), "unlabelled router: {error}");
    // A router carrying its own token for red (app_data `token`) acts with that one.
    let red_token = mint(SECRET.as_bytes(), "alice", "red", now() + 600);
    let mut options = room("red");
    options.app_data =
        AppData::new(HashMap::from([("room".to_string(), "red".to_string()), ("token".to_string(), red_token)]));
    let own = worker.create_router(options).await.expect("router");
    let _own_transport = own
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("a router with its own token for its room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_plugin_decides_where_a_connect_may_send_media() {
    let dir = scratch("connect-auth");
    certs(&dir, &[("media26", "127.0.0.26")]);
    let plugin = Path::new(mafalda_host::plugin::BUILT_PLUGIN_DIR).join("mafalda_test_plugin_connect_auth.wasm");
    let args = ["--plugin", plugin.to_str().expect("utf-8"), "--plugin-config", "deny=127.0.0.99,0.0.0.0"];
    let node = Node::start(&dir, "media26", "127.0.0.26", 4443, &args);
    let app = application(&dir, &[&node], &[("MAFALDA_TOKEN", "alice")]);
    let worker = app.create_worker(WorkerSettings::default()).await.expect("admitted");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let to = |ip: [u8; 4], port| PlainTransportRemoteParameters {
        ip: Some(ip.into()),
        port: Some(port),
        rtcp_port: None,
        srtp_parameters: None,
    };
    let plain = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("plain");
    let error = plain.connect(to([127, 0, 0, 99], 5004)).await.expect_err("denied by the plugin").to_string();
    assert!(error.contains("alice may not send media to 127.0.0.99:5004"), "{error}");
    // The same address written as IPv4-mapped IPv6 is that address.
    let mapped = PlainTransportRemoteParameters {
        ip: Some("::ffff:127.0.0.99".parse().expect("ip")),
        port: Some(5004),
        rtcp_port: None,
        srtp_parameters: None,
    };
    let error = plain.connect(mapped).await.expect_err("mapped IPv4 is IPv4").to_string();
    assert!(error.contains("127.0.0.99:5004"), "{error}");
    plain.connect(to([127, 0, 0, 1], 5004)).await.expect("another destination is the plugin's to grant");
    // As with mediasoup, the tuple has its remote half once connect returns.
    assert_eq!(plain.tuple().remote_ip(), Some([127, 0, 0, 1].into()), "{:?}", plain.tuple());
    assert_eq!(plain.tuple().remote_port(), Some(5004));
    // A comedia transport would send wherever its first packet came from: shown as anywhere.
    let mut comedia = PlainTransportOptions::new(loopback_listen_info());
    comedia.comedia = true;
    let error = router.create_plain_transport(comedia).await.expect_err("anywhere is denied").to_string();
    assert!(error.contains("may not send media to 0.0.0.0:-"), "{error}");
    let pipe = router.create_pipe_transport(PipeTransportOptions::new(loopback_listen_info())).await.expect("pipe");
    let error = pipe
        .connect(PipeTransportRemoteParameters { ip: [127, 0, 0, 99].into(), port: 5006, srtp_parameters: None })
        .await
        .expect_err("a pipe's destination too")
        .to_string();
    assert!(error.contains("127.0.0.99:5006"), "{error}");
}

#[test]
fn a_host_says_who_it_lets_in_without_an_auth_plugin() {
    let dir = scratch("open-door");
    certs(&dir, &[("media27", "127.0.0.27"), ("media28", "127.0.0.28")]);
    let mut closed = Node::start(&dir, "media27", "127.0.0.27", 4443, &[]);
    let line = closed.wait_for_log("no auth plugin", Duration::from_secs(5));
    assert!(line.contains("INFO") && line.contains("only loopback applications"), "{line}");
    let mut open = Node::start(&dir, "media28", "127.0.0.28", 4443, &["--insecure-allow-any-client"]);
    let line = open.wait_for_log("--insecure-allow-any-client", Duration::from_secs(5));
    assert!(line.contains("WARN") && line.contains("without a token"), "{line}");
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
    let cluster = Cluster::for_peers(host, &[node.address()], &rogue_tls, &Default::default()).expect("links start");
    let error = cluster.ready(Duration::from_secs(10)).await.expect_err("refused").to_string();
    assert!(error.contains("127.0.0.7:4443"), "{error}");
    node.wait_for_log("refused during TLS", Duration::from_secs(10));
    drop(cluster);

    // The real media8 (same CA) is accepted as a peer and sees media7's worker.
    let real = NodeTls::in_dir(&dir, "media8");
    let cluster = Cluster::for_peers(host, &[node.address()], &real, &Default::default()).expect("links start");
    cluster.ready(Duration::from_secs(10)).await.expect("a peer of the cluster CA is admitted");
    assert!(host.cells().iter().any(|c| c.node() == "media7"), "media7's worker became a cell: {:?}", host.cells());
    let line = node.wait_for_log("role=Peer", Duration::from_secs(10));
    assert!(line.contains("media8"), "the peer is named by its certificate: {line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_frames_and_old_versions_close_only_their_connection() {
    let dir = scratch("garbage");
    certs(&dir, &[("media9", "127.0.0.9")]);
    let node = Node::start(&dir, "media9", "127.0.0.9", 4443, &[]);
    let address = node.address();

    // A working application first.
    let manager = application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let _first =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");

    // A stream of another protocol version: refused from its preamble, before any message is
    // decoded, with a reason naming both versions.
    let mut old = Raw::connect_speaking(&dir, &address, "127.0.0.1:0", PROTOCOL_VERSION + 1).await;
    let hello = Hello { role: Role::Client, node: "old".into(), token: None, resume: None, last_event: 0 };
    old.outbox.send(&Message::Hello(hello)).expect("queued");
    let reason = old.welcome().await.expect_err("refused");
    assert!(reason.contains("version mismatch") && reason.contains(&(PROTOCOL_VERSION + 1).to_string()), "{reason}");

    // A frame of a valid length whose body is not a message, then an oversized frame: each
    // closes its own connection, with its own reason.
    let mut garbage = 16u32.to_be_bytes().to_vec();
    garbage.extend_from_slice(&[0xff; 16]);
    for (bytes, expected) in [(garbage, "undecodable"), ((u32::MAX).to_be_bytes().to_vec(), "exceeds")] {
        let mut raw = Raw::connect(&dir, &address, "127.0.0.1:0").await;
        raw.hello("fuzzer", None, 0);
        raw.welcome().await.expect("welcomed first");
        raw.outbox.send_frame(bytes).expect("queued");
        let reason =
            tokio::time::timeout(Duration::from_secs(5), raw.connection.closed()).await.expect("closed in time");
        let text = reason.to_string();
        assert!(text.contains(expected), "closed with the reason '{expected}': {text}");
    }

    // The application's connection was not affected.
    let _second = router
        .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
        .await
        .expect("other connections keep working");
}

/// A payload nobody reads: the check comes before any payload is decoded.
fn junk<T>() -> mafalda_host::cluster::proto::Payload<T> {
    postcard::from_bytes(&[0]).expect("an empty payload")
}

/// One operation of every kind, all aimed at `target` (the check comes before the kind check).
fn every_op(worker: u64, target: u64) -> Vec<mafalda_host::cluster::proto::Op> {
    use mafalda_host::cluster::proto::Op::*;
    let t = target;
    vec![
        CreateRouter { worker, media_codecs: junk(), room: Some("blue".into()), token: None },
        UpdateSettings { worker, log_level: Some("Debug".into()), log_tags: None },
        WorkerDump { worker },
        WebRtcServer { worker },
        EnableTraceEvent { handle: t, types: junk() },
        CapabilitiesFor { router: t, media_codecs: junk() },
        CreateWebRtcTransport { router: t, options: junk() },
        CreatePlainTransport { router: t, options: junk() },
        CreatePipeTransport { router: t, options: junk() },
        CreateDirectTransport { router: t, max_send_message_size: 1, max_receive_message_size: 1 },
        CreateAudioLevelObserver { router: t, max_entries: 1, threshold: -80, interval: 1000 },
        CreateActiveSpeakerObserver { router: t, interval: 300 },
        Connect { transport: t, params: junk() },
        SetMaxIncomingBitrate { transport: t, bitrate: 1 },
        SetMaxOutgoingBitrate { transport: t, bitrate: 1 },
        SetMinOutgoingBitrate { transport: t, bitrate: 1 },
        RestartIce { transport: t },
        Produce { transport: t, options: junk() },
        Consume { transport: t, options: junk() },
        ProduceData { transport: t, options: junk() },
        ConsumeData { transport: t, options: junk() },
        SendData {
            data_producer: t,
            ppid: 51,
            payload: vec![1],
            subchannels: None,
            required_subchannel: None,
            ignored_subchannel: None,
        },
        SendToDataConsumer { data_consumer: t, ppid: 51, payload: vec![1] },
        GetBufferedAmount { data_consumer: t },
        SetBufferedAmountLowThreshold { data_consumer: t, threshold: 1 },
        SetSubchannels { data_consumer: t, subchannels: vec![1] },
        AddSubchannel { data_consumer: t, subchannel: 1 },
        RemoveSubchannel { data_consumer: t, subchannel: 1 },
        SendRtp { producer: t, packet: vec![0x80, 0x6f, 0, 1] },
        SendRtcp { transport: t, packet: vec![0x80, 200, 0, 1] },
        SetPreferredLayers { consumer: t, layers: junk() },
        SetPriority { consumer: t, priority: Some(1) },
        RequestKeyFrame { consumer: t },
        AddProducer { observer: t, producer_id: junk() },
        RemoveProducer { observer: t, producer_id: junk() },
        Pause { handle: t },
        Resume { handle: t },
        Dump { handle: t },
        GetStats { handle: t },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_a_token_expires_every_operation_is_denied_until_it_is_refreshed() {
    use mafalda_host::cluster::proto::{Op, Payload, Reply, WireError};
    let dir = scratch("expiry");
    certs(&dir, &[("media12", "127.0.0.12")]);
    let node = token_host(&dir, "media12", "127.0.0.12");
    let expires = now() + 3;
    let mut raw = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    let hello = Hello {
        role: Role::Client,
        node: "app".into(),
        token: Some(mint(SECRET.as_bytes(), "alice", "blue", expires)),
        resume: None,
        last_event: 0,
    };
    raw.outbox.send(&Message::Hello(hello)).expect("queued");
    raw.welcome().await.expect("welcome");
    let worker = raw.worker().await;
    let op = Op::CreateRouter {
        worker,
        media_codecs: Payload::new(&router_codecs()),
        room: Some("blue".into()),
        token: None,
    };
    let Ok(Reply::Created { handle: router, .. }) = raw.call(1, op).await else { panic!("router") };
    // A router without a room is refused to a token for room blue (fail closed).
    let op = Op::CreateRouter { worker, media_codecs: Payload::new(&router_codecs()), room: None, token: None };
    let unlabelled = raw.call(2, op).await;
    assert!(matches!(&unlabelled, Err(WireError::Denied(r)) if r.contains("without a room")), "{unlabelled:?}");
    // Every operation passes the check while the token is valid (the first ones reach their
    // kind check or their payload, not a denial)...
    let before = raw.call(3, Op::Dump { handle: router }).await;
    assert!(before.is_ok(), "{before:?}");
    // ...and none but releasing does once it expired.
    while now() <= expires {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ops = every_op(worker, router);
    assert_eq!(ops.len(), 39, "one of every operation that acts (not Refresh or Close)");
    for (n, op) in ops.into_iter().enumerate() {
        let name = format!("{op:?}");
        let result = raw.call(10 + n as u32, op).await;
        assert!(matches!(&result, Err(WireError::Denied(_))), "{name}: {result:?}");
    }
    // A refreshed token restores the session without reconnecting.
    let fresh = mint(SECRET.as_bytes(), "alice", "blue", now() + 600);
    let refreshed = raw.call(100, Op::Refresh { router: None, token: fresh }).await;
    assert!(refreshed.is_ok(), "{refreshed:?}");
    assert!(raw.call(101, Op::Dump { handle: router }).await.is_ok(), "usable again");
    // A token of another identity cannot be slipped in.
    let mallory = mint(SECRET.as_bytes(), "mallory", "*", now() + 600);
    let slipped = raw.call(102, Op::Refresh { router: None, token: mallory }).await;
    assert!(matches!(&slipped, Err(WireError::Denied(r)) if r.contains("mallory")), "{slipped:?}");
    // Releasing is always allowed.
    assert!(matches!(raw.call(103, Op::Close { handle: router }).await, Ok(Reply::Done)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dump_shows_only_the_callers_objects() {
    use mafalda_host::cluster::proto::{unpack, ObjectInfo, Op, Payload, Reply};
    let dir = scratch("dump");
    certs(&dir, &[("media13", "127.0.0.13")]);
    let node = Node::start(&dir, "media13", "127.0.0.13", 4443, &[]);
    let mut ids = Vec::new();
    let mut callers = Vec::new();
    for name in ["a", "b"] {
        let mut raw = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
        raw.hello(name, None, 0);
        raw.welcome().await.expect("welcome");
        let worker = raw.worker().await;
        let op = Op::CreateRouter { worker, media_codecs: Payload::new(&router_codecs()), room: None, token: None };
        let Ok(Reply::Created { info, .. }) = raw.call(1, op).await else { panic!("router") };
        let Ok(ObjectInfo::Router { id, .. }) = info.get() else { panic!("router info") };
        ids.push(id);
        callers.push((raw, worker));
    }
    let (b, worker) = &mut callers[1];
    let Ok(Reply::Value(bytes)) = b.call(2, Op::WorkerDump { worker: *worker }).await else { panic!("dump") };
    let dump: mediasoup::worker::WorkerDump = unpack(&bytes).expect("a worker dump");
    assert_eq!(dump.router_ids, vec![ids[1]], "b sees its router only, not a's");
    // The generic dump of the worker handle is filtered the same way.
    let Ok(Reply::Value(bytes)) = b.call(3, Op::Dump { handle: *worker }).await else { panic!("dump") };
    let dump: mediasoup::worker::WorkerDump = unpack(&bytes).expect("a worker dump");
    assert_eq!(dump.router_ids, vec![ids[1]]);
    let handlers = &dump.channel_message_handlers;
    assert!(!handlers.channel_request_handlers.iter().any(|h| h.to_string() == ids[0].to_string()));
}

/// A payload of `bytes` (as an attacker would send it).
fn payload_of<T>(bytes: &[u8]) -> mafalda_host::cluster::proto::Payload<T> {
    postcard::from_bytes(&postcard::to_stdvec(bytes).expect("bytes")).expect("a payload")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_payloads_reach_dispatch_and_get_errors_on_a_live_connection() {
    use mafalda_host::cluster::proto::{Op, Payload, Reply, WireError};
    let dir = scratch("fuzz-dispatch");
    certs(&dir, &[("media14", "127.0.0.14")]);
    let node = Node::start(&dir, "media14", "127.0.0.14", 4443, &[]);
    let mut raw = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    raw.hello("fuzzer", None, 0);
    raw.welcome().await.expect("welcome");
    let worker = raw.worker().await;
    let op = Op::CreateRouter { worker, media_codecs: Payload::new(&router_codecs()), room: None, token: None };
    let Ok(Reply::Created { handle: router, .. }) = raw.call(1, op).await else { panic!("router") };
    let op = Op::CreateDirectTransport { router, max_send_message_size: 262_144, max_receive_message_size: 262_144 };
    let Ok(Reply::Created { handle: transport, .. }) = raw.call(2, op).await else { panic!("transport") };
    // xorshift: reproducible bytes without a dependency.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for id in 10..400u32 {
        let len = (next() % 300) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let b = &bytes;
        let op = match next() % 8 {
            0 => Op::CreateRouter { worker, media_codecs: payload_of(b), room: None, token: None },
            1 => Op::CreatePlainTransport { router, options: payload_of(b) },
            2 => Op::CreateWebRtcTransport { router, options: payload_of(b) },
            3 => Op::CapabilitiesFor { router, media_codecs: payload_of(b) },
            4 => Op::Produce { transport, options: payload_of(b) },
            5 => Op::Consume { transport, options: payload_of(b) },
            6 => Op::ProduceData { transport, options: payload_of(b) },
            _ => Op::ConsumeData { transport, options: payload_of(b) },
        };
        let result = raw.call(id, op).await;
        assert!(
            matches!(result, Err(WireError::BadRequest(_) | WireError::Failed(_))),
            "request {id} ({len} random bytes): {result:?}"
        );
    }
    // The connection and its objects are intact.
    assert!(matches!(raw.call(1000, Op::Dump { handle: transport }).await, Ok(Reply::Value(_))));
}
