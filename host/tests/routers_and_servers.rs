//! Between virtual routers and through a virtual WebRtcServer: `pipe_producer_to_router` makes
//! a producer of one virtual router consumable in another (on any of its workers), and a
//! WebRtcServer spread over workers listens on its port in the first worker and
//! port + k × stride (100 by default) in worker slot k.

mod common;

use common::{plain_producer, quiet_settings, sink_consumer, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_host::worker::RequestError;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_piped_between_virtual_routers_flows() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let other_worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let first = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let second = other_worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = plain_producer(&first, 0, MediaKind::Audio, opus_send_parameters(0x2222)).await;

    let pair =
        first.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(second.clone())).await.expect("pipe");
    let piped = pair.pipe_producer.into_inner();
    assert_eq!(piped.id(), producer.id(), "keep_id");
    assert_eq!(pair.pipe_consumer.producer_id(), producer.id());
    // keep_id: the target end sits on the other worker (the source's worker would refuse a
    // second producer with this id, as mediasoup's does). The first router consumes it there
    // too, through its own pipe (whose producer carries another id: ids are unique per worker).
    let (_t1, _c1, first_sink) = sink_consumer(&first, producer.id(), PayloadKind::Opus, 1).await;
    let (transport, consumer, sink) = sink_consumer(&second, piped.id(), PayloadKind::Opus, 1).await;
    assert_ne!(transport.cell(), input.cell());
    assert_eq!(consumer.producer_id(), producer.id(), "consumers see the virtual id");
    assert_ne!(piped.cell(), input.cell());
    assert_eq!(transport.cell(), piped.cell());
    assert_eq!(first.pipes(), vec![(mafalda_host::router::PipeSource::Producer(producer.id()), transport.cell())]);
    assert!(second.pipes().is_empty(), "the second router consumes its pipe producer where it lives");
    let dump = second.dump().await.expect("dump");
    assert!(dump.map_producer_id_consumer_ids[&producer.id()].contains(&consumer.id()));

    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x2222).with_rate(200).with_count(60))
        .await
        .expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(60, EVENT_LIMIT).await;
    assert!(report.has_all(60), "{} of 60 through two routers", report.indices.len());
    let report = first_sink.wait_for(60, EVENT_LIMIT).await;
    assert!(report.has_all(60), "{} of 60 in the first router", report.indices.len());

    match first.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(first.clone())).await {
        Err(PipeProducerToRouterError::SameRouter) => {}
        other => panic!("expected SameRouter, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_server_listens_per_worker() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let mut listen = loopback_listen_info();
    let port = 46_800 + (std::process::id() % 1000) as u16;
    listen.port = Some(port);
    let server = worker
        .create_webrtc_server(WebRtcServerOptions::new(WebRtcServerListenInfos::new(listen)))
        .await
        .expect("server");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut ports = BTreeSet::new();
    let mut cells = BTreeSet::new();
    let mut transports = Vec::new();
    for k in 0..2 {
        let mut options = WebRtcTransportOptions::new_with_server(server.clone());
        options.app_data = slot(k);
        let transport = router.create_webrtc_transport(options).await.expect("webrtc transport");
        ports.extend(transport.ice_candidates().iter().map(|c| c.port));
        cells.insert(transport.cell());
        assert!(transport.webrtc_server().is_some());
        transports.push(transport);
    }
    assert_eq!(cells.len(), 2);
    assert_eq!(ports, BTreeSet::from([port, port + 100]), "port in worker 0, port + 100 in worker 1");
    let dump = server.dump().await.expect("dump");
    assert_eq!(dump.webrtc_transport_ids.len(), 2);
    assert_eq!(worker.dump().await.expect("dump").webrtc_server_ids, vec![server.id()]);
}

/// One event, within the bound.
async fn next_event(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>, what: &str) {
    tokio::time::timeout(EVENT_LIMIT, rx.recv()).await.unwrap_or_else(|_| panic!("{what} within the bound"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_to_router_reuses_its_pair_forwards_pause_and_outlives_the_pair_value() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let other_worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let first = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let second = other_worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = plain_producer(&first, 0, MediaKind::Audio, opus_send_parameters(0x4444)).await;
    let (_other_input, other) = plain_producer(&first, 0, MediaKind::Audio, opus_send_parameters(0x4445)).await;

    let pair =
        first.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(second.clone())).await.expect("pipe");
    let transports_after_one = first.dump().await.expect("dump").transport_ids.len();
    let other_pair =
        first.pipe_producer_to_router(other.id(), PipeToRouterOptions::new(second.clone())).await.expect("pipe");
    assert_eq!(
        first.dump().await.expect("dump").transport_ids.len(),
        transports_after_one,
        "the second producer piped to the same router reuses the pipe transport pair"
    );
    assert_eq!(
        pair.pipe_consumer.transport().id(),
        other_pair.pipe_consumer.transport().id(),
        "both pipe consumers on one pipe transport"
    );

    // Dropping the pair value does not close the pipe: the target router still consumes it.
    drop(pair);
    let (transport, consumer, sink) = sink_consumer(&second, producer.id(), PayloadKind::Opus, 1).await;
    assert_ne!(transport.cell(), input.cell());

    // Pause and resume of the source reach the pipe producer, hence its consumers.
    let (paused_tx, mut paused) = tokio::sync::mpsc::unbounded_channel();
    consumer
        .on_producer_pause(move || {
            let _ = paused_tx.send(());
        })
        .detach();
    let (resumed_tx, mut resumed) = tokio::sync::mpsc::unbounded_channel();
    consumer
        .on_producer_resume(move || {
            let _ = resumed_tx.send(());
        })
        .detach();
    producer.pause().await.expect("pause");
    assert!(consumer.producer_paused(), "known on the other worker when pause() returns, as on the same worker");
    next_event(&mut paused, "the pipe producer paused").await;
    producer.resume().await.expect("resume");
    assert!(!consumer.producer_paused(), "known when resume() returns");
    next_event(&mut resumed, "the pipe producer resumed").await;

    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x4444).with_rate(200).with_count(40))
        .await
        .expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(40, EVENT_LIMIT).await;
    assert!(report.has_all(40), "{} of 40 after the pair value was dropped", report.indices.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piping_with_keep_id_into_the_same_worker_is_mediasoups_error() {
    // Two real workers, but both routers belong to one virtual worker: as with mediasoup's
    // routers of one worker, the worker refuses a second producer with the same id.
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let first = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let second = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (_input, producer) = plain_producer(&first, 0, MediaKind::Audio, opus_send_parameters(0x5555)).await;
    let result = first.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(second.clone())).await;
    match result {
        Err(PipeProducerToRouterError::ProduceFailed(ProduceError::Request(RequestError::Response { reason }))) => {
            assert!(reason.contains("already exists"), "mediasoup's worker error: {reason}")
        }
        other => panic!("expected the worker's duplicate-id error, got {other:?}"),
    }
    // Nothing half-made stays behind; the source keeps working.
    assert!(!producer.closed());
    assert!(second.dump().await.expect("dump").map_producer_id_consumer_ids.is_empty());
    // Without keep_id the same pipe works (a fresh id), as in mediasoup.
    let mut options = PipeToRouterOptions::new(second.clone());
    options.keep_id = false;
    let pair = first.pipe_producer_to_router(producer.id(), options).await.expect("pipe without keep_id");
    assert_ne!(pair.pipe_producer.into_inner().id(), producer.id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_server_port_clash_is_an_error_of_its_creation() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut listen = loopback_listen_info();
    listen.port = Some(taken.local_addr().expect("addr").port());
    let result = worker.create_webrtc_server(WebRtcServerOptions::new(WebRtcServerListenInfos::new(listen))).await;
    assert!(result.is_err(), "a taken port fails create_webrtc_server, as in mediasoup");
    assert!(worker.dump().await.expect("dump").webrtc_server_ids.is_empty(), "no half-bound server stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_server_ports_stay_with_their_slot_and_closed_cells_leave_its_map() {
    let manager = slotted_manager(2);
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let mut listen = loopback_listen_info();
    let port = 47_900 + (std::process::id() % 1000) as u16;
    listen.port = Some(port);
    let server = worker
        .create_webrtc_server(WebRtcServerOptions::new(WebRtcServerListenInfos::new(listen)))
        .await
        .expect("server");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport = |k: usize| {
        let (router, server) = (router.clone(), server.clone());
        async move {
            let mut options = WebRtcTransportOptions::new_with_server(server);
            options.app_data = slot(k);
            router.create_webrtc_transport(options).await.expect("webrtc transport")
        }
    };
    let first = transport(0).await;
    let second = transport(1).await;
    let doomed = second.cell();
    assert_eq!(second.ice_candidates()[0].port, port + 100, "slot 1 listens on port + stride");
    assert_eq!(server.cells().len(), 2);
    let dump = server.dump().await.expect("server dump");
    let mut ports: Vec<u16> = dump.udp_sockets.iter().map(|s| s.port).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![port, port + 100], "the dump lists the UDP socket of each worker");
    let handlers = worker.dump().await.expect("worker dump").channel_message_handlers;
    assert!(!handlers.channel_request_handlers.is_empty(), "the real workers' request handlers are reported");

    drop(second);
    host.close_cell(doomed, mafalda_host::host::CloseReason::Retired).expect("open cell");
    assert_eq!(server.cells(), vec![first.cell()], "the closed cell left the server's map");
    // The replacement worker takes the free slot, and with it the same port.
    let again = transport(1).await;
    assert_ne!(again.cell(), doomed);
    assert_eq!(again.ice_candidates()[0].port, port + 100, "ports stay with the slot, not the cell id");
    assert_eq!(server.cells().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_and_resume_reach_consumers_on_another_worker_of_the_same_router() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0x6666)).await;
    let (transport, consumer, _sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
    assert_ne!(transport.cell(), input.cell(), "the consumer reads through the router's own pipe");
    let (paused_tx, mut paused) = tokio::sync::mpsc::unbounded_channel();
    consumer
        .on_producer_pause(move || {
            let _ = paused_tx.send(());
        })
        .detach();
    let (resumed_tx, mut resumed) = tokio::sync::mpsc::unbounded_channel();
    consumer
        .on_producer_resume(move || {
            let _ = resumed_tx.send(());
        })
        .detach();
    producer.pause().await.expect("pause");
    next_event(&mut paused, "the piped consumer saw the pause").await;
    assert!(consumer.producer_paused());
    producer.resume().await.expect("resume");
    next_event(&mut resumed, "the piped consumer saw the resume").await;
    assert!(!consumer.producer_paused());
}
