//! Every limit of a cluster endpoint trips, cutting off only the caller that crossed it: a
//! caller that never reads, extra streams, a missing hello, objects beyond the quota, sessions
//! beyond the identity cap, requests beyond those in flight. Real `serve` processes on
//! 127.0.0.x with `[serve]` limits from a configuration file; raw protocol clients.

mod cluster_support;

use cluster_support::{limited, scratch, Node, Raw};
use mafalda_host::cluster::proto::{Message, Op, Payload, Reply, WireError};
use mafalda_media_tools::media::router_codecs;
use std::path::Path;
use std::time::Duration;

async fn client(dir: &Path, node: &Node, name: &str) -> Raw {
    let mut raw = Raw::connect(dir, &node.address(), "127.0.0.1:0").await;
    raw.hello(name, None, 0);
    raw.welcome().await.expect("welcome");
    raw
}

async fn router(raw: &mut Raw, id: u32) -> Result<u64, WireError> {
    let worker = raw.worker().await;
    let op = Op::CreateRouter { worker, media_codecs: Payload::new(&router_codecs()), room: None, token: None };
    match raw.call(id, op).await? {
        Reply::Created { handle, .. } => Ok(handle),
        other => panic!("router: {other:?}"),
    }
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_does_not_read_is_cut_off_alone_and_memory_stays_bounded() {
    let dir = scratch("limits-reader");
    let mut node = limited(&dir, "media20", "127.0.0.20", "outbox_bytes = 2097152\nrequests_in_flight = 8");
    let mut other = client(&dir, &node, "other").await;
    let other_router = router(&mut other, 1).await.expect("router");
    let mut flooder = client(&dir, &node, "flooder").await;
    let worker = flooder.worker().await;
    let before = rss_kib(node.pid());
    // Requests, never reading a reply: replies fill the QUIC window, then the 2 MiB outbox.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut id = 0u32;
    let cut = loop {
        for _ in 0..256 {
            id += 1;
            let _ = flooder.outbox.send(&Message::Request { id, op: Op::WorkerDump { worker } });
        }
        // Paced by the connection's end (bounded): it is what the test waits for.
        if tokio::time::timeout(Duration::from_millis(2), flooder.connection.closed()).await.is_ok() {
            break true;
        }
        if tokio::time::Instant::now() > deadline {
            break false;
        }
    };
    assert!(cut, "the host did not cut off a caller that never reads ({id} requests)");
    let reason = tokio::time::timeout(Duration::from_secs(10), flooder.connection.closed()).await.expect("closed");
    assert!(reason.to_string().contains("not reading"), "{reason}");
    node.wait_for_log("requests in flight at the limit", Duration::from_secs(5));
    let after = rss_kib(node.pid());
    assert!(after < before + 64 * 1024, "host memory grew from {before} KiB to {after} KiB");
    // The other caller is served as before.
    assert!(other.call(2, Op::Dump { handle: other_router }).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_streams_and_a_missing_hello_get_nothing() {
    let dir = scratch("limits-streams");
    let node = limited(&dir, "media21", "127.0.0.21", "hello_within_ms = 500");
    // A caller that connects and says nothing (its stream carries only the preamble) is closed
    // in time...
    let silent = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    let reason = tokio::time::timeout(Duration::from_secs(5), silent.connection.closed()).await.expect("closed");
    assert!(reason.to_string().contains("no hello within 500ms"), "{reason}");
    // ...and one that starts a hello and never finishes it is refused and closed in time.
    let mut slow = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    slow.outbox.send_frame(vec![0, 0]).expect("queued");
    let refusal = slow.welcome().await.expect_err("refused");
    assert!(refusal.contains("no hello within"), "{refusal}");
    tokio::time::timeout(Duration::from_secs(5), slow.connection.closed()).await.expect("closed");
    // Before its hello is accepted a caller's frames are hello-sized: a 64 KiB one closes it.
    let big = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    big.outbox.send_frame((64u32 << 10).to_be_bytes().to_vec()).expect("queued");
    let reason = tokio::time::timeout(Duration::from_secs(5), big.connection.closed()).await.expect("closed");
    assert!(reason.to_string().contains("exceeds"), "{reason}");
    // A welcomed caller cannot open more streams than its control stream.
    let raw = client(&dir, &node, "streams").await;
    let second = tokio::time::timeout(Duration::from_secs(1), raw.connection.open_bi()).await;
    assert!(second.is_err(), "a second bidirectional stream was granted");
    let uni = tokio::time::timeout(Duration::from_secs(1), raw.connection.open_uni()).await;
    assert!(uni.is_err(), "a unidirectional stream was granted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_beyond_the_quota_and_sessions_beyond_the_identity_cap_are_refused() {
    let dir = scratch("limits-quota");
    let node = limited(&dir, "media22", "127.0.0.22", "objects_per_session = 3\nmax_sessions_per_identity = 2");
    let mut raw = client(&dir, &node, "quota").await;
    // The worker's handle is the first object; two routers fill the quota.
    let first = router(&mut raw, 1).await.expect("router");
    router(&mut raw, 2).await.expect("router");
    let denied = router(&mut raw, 3).await.expect_err("over the quota");
    assert!(matches!(&denied, WireError::Denied(reason) if reason.contains("maximum of 3 objects")), "{denied:?}");
    // Closing one makes room.
    raw.outbox.send(&Message::Request { id: 0, op: Op::Close { handle: first } }).expect("queued");
    router(&mut raw, 4).await.expect("room again");
    // A second session of the same identity is fine, a third is refused.
    let _second = client(&dir, &node, "quota").await;
    let mut third = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    third.hello("quota", None, 0);
    let refusal = third.welcome().await.expect_err("refused");
    assert!(refusal.contains("identity holds its maximum of 2"), "{refusal}");
    // Other identities are not affected.
    client(&dir, &node, "someone else").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_handshake_limit_callers_prove_their_address_and_oversized_hellos_are_refused() {
    let dir = scratch("limits-retry");
    let mut node = limited(&dir, "media23", "127.0.0.23", "retry_above = 0");
    // Every connection now goes through a QUIC retry first: it still gets in.
    client(&dir, &node, "validated").await;
    node.wait_for_log("must prove its address", Duration::from_secs(5));
    // A hello with an attacker-sized name is refused, and neither the refusal nor the log
    // carries the name.
    let mut big = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    big.hello(&"x".repeat(1_000), None, 0);
    let refusal = big.welcome().await.expect_err("refused");
    assert!(refusal.contains("at most 255 bytes") && refusal.len() < 300, "{refusal}");
    let line = node.wait_for_log("cluster hello refused", Duration::from_secs(5));
    assert!(line.len() < 1_000, "a refusal log line of {} bytes", line.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transports_send_only_where_the_host_allows() {
    use mafalda_host::prelude::*;
    use mafalda_host::worker::WorkerSettings;
    use mafalda_media_tools::media::loopback_listen_info;
    let dir = scratch("limits-connect");
    let node = limited(&dir, "media24", "127.0.0.24", "connect_to = [\"127.0.0.0/8\"]");
    let manager = cluster_support::application(&dir, &[&node], &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    let connect = |ip: &str| PlainTransportRemoteParameters {
        ip: Some(ip.parse().expect("ip")),
        port: Some(5004),
        rtcp_port: None,
        srtp_parameters: None,
    };
    let outside = transport.connect(connect("10.1.2.3")).await.expect_err("outside connect_to").to_string();
    assert!(outside.contains("connect_to"), "{outside}");
    let multicast = transport.connect(connect("224.0.0.1")).await.expect_err("multicast").to_string();
    assert!(multicast.contains("multicast"), "{multicast}");
    transport.connect(connect("127.0.0.1")).await.expect("inside connect_to");
    let mapped = transport.connect(connect("::ffff:224.0.0.1")).await.expect_err("mapped multicast").to_string();
    assert!(mapped.contains("multicast"), "{mapped}");
    // A comedia transport would send wherever its first packet came from: off while connect_to
    // is set.
    let mut comedia = PlainTransportOptions::new(loopback_listen_info());
    comedia.comedia = true;
    let refused = router.create_plain_transport(comedia).await.expect_err("comedia").to_string();
    assert!(refused.contains("comedia"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_those_in_their_handshake_are_refused() {
    let dir = scratch("limits-incoming");
    let node = limited(&dir, "media25", "127.0.0.25", "max_incoming = 1\nhello_within_ms = 5000");
    // One caller holds the only handshake slot: connected, no hello yet.
    let mut holding = Raw::connect(&dir, &node.address(), "127.0.0.1:0").await;
    // The next is refused at once.
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("from")).expect("endpoint");
    endpoint
        .set_default_client_config(mafalda_host::cluster::tls::app_client_config(&dir.join("ca.pem")).expect("tls"));
    let address: std::net::SocketAddr = node.address().parse().expect("address");
    let connecting = endpoint.connect(address, "127.0.0.25").expect("connect");
    let refused = tokio::time::timeout(Duration::from_secs(5), connecting).await.expect("answered in time");
    assert!(refused.is_err(), "a second connection in its handshake was admitted");
    // Once the first is welcomed, the slot is free again.
    holding.hello("first", None, 0);
    holding.welcome().await.expect("welcome");
    client(&dir, &node, "second").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_those_in_flight_wait_unread_and_are_all_answered() {
    const SENT: u32 = 60;
    let dir = scratch("limits-in-flight");
    let mut node = limited(&dir, "media49", "127.0.0.49", "requests_in_flight = 2");
    let mut raw = client(&dir, &node, "pipeliner").await;
    let router = router(&mut raw, 1).await.expect("router");
    // Sixty dumps at once: two are carried out at a time, the rest wait unread.
    for id in 100..100 + SENT {
        raw.outbox.send(&Message::Request { id, op: Op::Dump { handle: router } }).expect("queued");
    }
    let mut answered = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while answered.len() < SENT as usize {
        let next = tokio::time::timeout_at(deadline, raw.next()).await.expect("every request answered in time");
        match next {
            Some(Message::Response { id, result }) => {
                assert!(result.is_ok(), "request {id}: {result:?}");
                answered.insert(id);
            }
            Some(_) => {}
            None => panic!("the connection ended after {} replies", answered.len()),
        }
    }
    assert_eq!(answered, (100..100 + SENT).collect(), "each request answered once");
    node.wait_for_log("requests in flight at the limit: reading paused", Duration::from_secs(5));
}
