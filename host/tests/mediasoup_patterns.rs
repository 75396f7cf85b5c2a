//! Programs as people write them for mediasoup, run unchanged on the virtual layer:
//! - one WebRtcServer per worker on `base + i` (mediasoup-demo), through scale-out to the pool's
//!   maximum: every transport is created and every port is bound once;
//! - a server of one worker used by a router of another is refused, as mediasoup refuses it;
//! - a producer piped with the default `keep_id` into routers of three workers on a two-worker
//!   pool: every pipe succeeds and every consumer gets the media;
//! - workers with their own `rtc_port_range` under `max_workers = 2`: no transport refused, and
//!   every port inside its worker's range;
//! - dropping a producer while holding the lock its consumer's `on_producer_close` takes;
//! - pause and resume reaching a consumer behind a pipe on an executor that is not Tokio;
//! - `Worker::dump` naming what the application holds.

mod common;

use common::{plain_producer, quiet_settings, sink_consumer, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_host::worker::RequestError;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

/// A free UDP and TCP port base for `count` consecutive servers, all slots of a pool of `slots`.
fn port_base(seed: u16) -> u16 {
    20_000 + seed + (std::process::id() % 500) as u16 * 10
}

/// A WebRTC server listening on `port` (UDP and TCP) on loopback.
fn server_options(port: u16) -> WebRtcServerOptions {
    let mut udp = loopback_listen_info();
    udp.port = Some(port);
    let mut tcp = udp.clone();
    tcp.protocol = Protocol::Tcp;
    WebRtcServerOptions::new(WebRtcServerListenInfos::new(udp).insert(tcp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_webrtc_server_per_worker_on_base_plus_i_through_scale_out() {
    const WORKERS: usize = 2;
    const SLOTS: usize = 3;
    let manager = slotted_manager(SLOTS);
    let base = port_base(0);
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let worker = manager.create_worker(quiet_settings()).await.expect("worker");
        let server = worker.create_webrtc_server(server_options(base + i as u16)).await.expect("server i on base + i");
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        workers.push((worker, server, router));
    }
    // Transports of both servers on every real worker the pool can start (slots 0..SLOTS).
    let mut transports = Vec::new();
    for k in 0..SLOTS {
        for (_, server, router) in &workers {
            let mut options = WebRtcTransportOptions::new_with_server(server.clone());
            options.app_data = slot(k);
            transports.push(router.create_webrtc_transport(options).await.expect("every transport is created"));
        }
    }
    assert_eq!(manager.host().cells().len(), SLOTS, "scaled out to the maximum");
    // Each (worker, server) pair has its own port, and no port is bound twice.
    let mut by_port: BTreeMap<(Protocol, u16), BTreeSet<_>> = BTreeMap::new();
    for transport in &transports {
        for candidate in transport.ice_candidates() {
            by_port.entry((candidate.protocol, candidate.port)).or_default().insert(transport.cell());
        }
    }
    assert_eq!(by_port.len(), 2 * WORKERS * SLOTS, "one UDP and one TCP port per server per worker: {by_port:?}");
    assert!(by_port.values().all(|cells| cells.len() == 1), "each port lives in one worker: {by_port:?}");
    for (i, (_, server, _)) in workers.iter().enumerate() {
        let dump = server.dump().await.expect("server dump");
        let ports: BTreeSet<u16> = dump.udp_sockets.iter().map(|s| s.port).collect();
        let planned: BTreeSet<u16> = (0..SLOTS).map(|k| base + i as u16 + 100 * k as u16).collect();
        assert_eq!(ports, planned, "server {i}: base + i + slot × 100");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_server_plans_are_checked_when_created() {
    let manager = slotted_manager(3);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let other = manager.create_worker(quiet_settings()).await.expect("worker");
    let base = port_base(3);
    let server = worker.create_webrtc_server(server_options(base)).await.expect("server");
    // base + 100 is this server's slot 1: refused now, not when a second worker starts.
    let clash = other.create_webrtc_server(server_options(base + 100)).await;
    assert!(clash.is_err(), "a plan overlapping another server's is refused at creation");
    // A port another program holds in slot 2 (not running yet) fails creation too.
    let taken = std::net::UdpSocket::bind(("127.0.0.1", base + 1 + 200)).expect("bind");
    let held = other.create_webrtc_server(server_options(base + 1)).await;
    assert!(held.is_err(), "every slot the pool can reach is bound at creation");
    drop(taken);
    let _ok = other.create_webrtc_server(server_options(base + 1)).await.expect("free again");
    // mediasoup refuses a server of another worker.
    let router = other.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    match router.create_webrtc_transport(WebRtcTransportOptions::new_with_server(server.clone())).await {
        Err(RequestError::Response { reason }) => assert!(reason.contains("WebRtcServer"), "{reason}"),
        other => panic!("expected mediasoup's refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_piped_with_keep_id_to_routers_of_three_workers_on_two_cores() {
    // The "router per worker, pipe to all" layout on a two-worker pool.
    let manager = slotted_manager(2);
    let mut routers = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..3 {
        let worker = manager.create_worker(quiet_settings()).await.expect("worker");
        routers.push(worker.create_router(RouterOptions::new(router_codecs())).await.expect("router"));
        workers.push(worker);
    }
    let (input, producer) = plain_producer(&routers[0], 0, MediaKind::Audio, opus_send_parameters(0x7777)).await;
    let mut sinks = Vec::new();
    let mut keep = Vec::new();
    for (k, target) in routers.iter().enumerate().skip(1) {
        let pair = routers[0]
            .pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(target.clone()))
            .await
            .unwrap_or_else(|e| panic!("pipe into router {k}: {e}"));
        let piped = pair.pipe_producer.into_inner();
        assert_eq!(piped.id(), producer.id(), "keep_id: the application sees the same id");
        let (transport, consumer, sink) = sink_consumer(target, piped.id(), PayloadKind::Opus, k % 2).await;
        assert_eq!(consumer.producer_id(), producer.id());
        let dump = target.dump().await.expect("dump");
        assert!(dump.map_producer_id_consumer_ids[&producer.id()].contains(&consumer.id()), "router {k}'s dump");
        sinks.push(sink);
        keep.push((piped, transport, consumer, pair.pipe_consumer));
    }
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x7777).with_rate(200).with_count(40))
        .await
        .expect("generator");
    generator.finished().await.expect("sent");
    for (k, sink) in sinks.iter().enumerate() {
        let report = sink.wait_for(40, EVENT_LIMIT).await;
        assert!(report.has_all(40), "router {}: {} of 40", k + 1, report.indices.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_their_own_port_ranges_are_never_refused_under_max_workers_2() {
    let mut options = mafalda_host::config::HostOptions::default();
    options.pool.max_workers = 2;
    let manager = WorkerManager::with_options(options);
    let ranges = [30_000..=30_099, 30_100..=30_199];
    let mut routers = Vec::new();
    let mut workers = Vec::new();
    for range in &ranges {
        let mut settings = quiet_settings();
        settings.rtc_port_range = range.clone();
        let worker = manager.create_worker(settings).await.expect("worker");
        routers.push(worker.create_router(RouterOptions::new(router_codecs())).await.expect("router"));
        workers.push(worker);
    }
    let mut transports = Vec::new();
    for round in 0..10 {
        for (i, router) in routers.iter().enumerate() {
            let options = WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(loopback_listen_info()));
            let transport = router
                .create_webrtc_transport(options)
                .await
                .unwrap_or_else(|e| panic!("round {round}, worker {i}: {e}"));
            for candidate in transport.ice_candidates() {
                assert!(ranges[i].contains(&candidate.port), "worker {i}: port {} outside its range", candidate.port);
            }
            transports.push(transport);
        }
    }
    assert!(manager.host().cells().len() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_producer_under_the_lock_its_consumer_takes_does_not_deadlock() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0x8888)).await;
    // One consumer on the producer's worker, one behind a pipe.
    let (_t0, here, _s0) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await;
    let (_t1, there, _s1) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
    let room = Arc::new(Mutex::new(vec![producer]));
    let (told_tx, mut told) = tokio::sync::mpsc::unbounded_channel();
    for consumer in [&here, &there] {
        let (room, told_tx) = (Arc::clone(&room), told_tx.clone());
        consumer
            .on_producer_close(move || {
                // A room handler re-locking the room, as apps do.
                let peers = room.lock().expect("room lock").len();
                let _ = told_tx.send(peers);
            })
            .detach();
    }
    let dropper = std::thread::spawn(move || {
        let mut guard = room.lock().expect("room lock");
        guard.clear(); // drop(producer) while holding the room lock
        drop(guard);
    });
    for _ in 0..2 {
        let peers = tokio::time::timeout(EVENT_LIMIT, told.recv()).await.expect("no deadlock").expect("open");
        assert_eq!(peers, 0, "the handler ran after the application released its lock");
    }
    dropper.join().expect("dropper thread");
}

/// mediasoup's own executor-agnostic use: everything on `futures::executor::block_on`.
#[test]
fn pause_and_resume_reach_a_pipe_consumer_without_tokio() {
    futures::executor::block_on(async {
        let manager = slotted_manager(2);
        let first_worker = manager.create_worker(quiet_settings()).await.expect("worker");
        let second_worker = manager.create_worker(quiet_settings()).await.expect("worker");
        let first = first_worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let second = second_worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let (_input, producer) = plain_producer(&first, 0, MediaKind::Audio, opus_send_parameters(0x9999)).await;
        producer.pause().await.expect("pause");
        let pair =
            first.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(second.clone())).await.expect("pipe");
        let piped = pair.pipe_producer.into_inner();
        let mut options = PlainTransportOptions::new(loopback_listen_info());
        options.app_data = slot(1);
        let transport = second.create_plain_transport(options).await.expect("transport");
        let consumer =
            transport.consume(ConsumerOptions::new(piped.id(), receiver_capabilities())).await.expect("consume");
        assert!(consumer.producer_paused());
        producer.resume().await.expect("resume");
        assert!(!consumer.producer_paused(), "resumed behind the pipe when resume() returns");
        producer.pause().await.expect("pause");
        assert!(consumer.producer_paused(), "paused behind the pipe when pause() returns");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_dump_names_what_the_application_holds() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let other = manager.create_worker(quiet_settings()).await.expect("worker");
    let server = worker.create_webrtc_server(server_options(port_base(7))).await.expect("server");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let _other_router = other.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let dump = worker.dump().await.expect("dump");
    assert_eq!(dump.router_ids, vec![router.id()]);
    assert_eq!(dump.webrtc_server_ids, vec![server.id()]);
    let mut expected: Vec<uuid::Uuid> = vec![router.id().into(), server.id().into()];
    expected.sort();
    assert_eq!(dump.channel_message_handlers.channel_request_handlers, expected, "only this worker's objects");
    assert!(dump.channel_message_handlers.channel_notification_handlers.is_empty());
    // Objects created under it appear by their ids; internal pipes do not.
    let (input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0xaaaa)).await;
    let (output, consumer, _sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
    let dump = worker.dump().await.expect("dump");
    let requests: BTreeSet<uuid::Uuid> = dump.channel_message_handlers.channel_request_handlers.into_iter().collect();
    let wanted: BTreeSet<uuid::Uuid> = [
        router.id().into(),
        server.id().into(),
        input.id().into(),
        output.id().into(),
        producer.id().into(),
        consumer.id().into(),
    ]
    .into_iter()
    .collect();
    assert_eq!(requests, wanted);
}
