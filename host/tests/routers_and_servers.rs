//! Between virtual routers and through a virtual WebRtcServer: `pipe_producer_to_router` makes
//! a producer of one virtual router consumable in another (on any of its workers), and a
//! WebRtcServer spread over workers listens on its port in the first worker and port + k in
//! worker k.

mod common;

use common::{plain_producer, quiet_settings, sink_consumer, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::collections::BTreeSet;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_piped_between_virtual_routers_flows() {
    let manager = slotted_manager(2);
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let first = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let second = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
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
    assert_eq!(ports, BTreeSet::from([port, port + 1]), "port in worker 0, port + 1 in worker 1");
    let dump = server.dump().await.expect("dump");
    assert_eq!(dump.webrtc_transport_ids.len(), 2);
    assert_eq!(worker.dump().await.expect("dump").webrtc_server_ids, vec![server.id()]);
}
