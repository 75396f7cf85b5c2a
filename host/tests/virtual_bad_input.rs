//! Bad input on the virtual API gets mediasoup's own errors and loses nothing: an unknown
//! producer, capabilities that cannot consume (refused before anything is piped), transports
//! on a closed router, and a worker closed under live consumers (their events fire, calls fail
//! with `ChannelClosed`, stats stay consistent, the other workers keep serving).

mod common;

use common::{plain_producer, router, sink_consumer, slot, slotted_manager, EVENT_LIMIT};
use mafalda_host::host::CloseReason;
use mafalda_host::prelude::*;
use mafalda_host::worker::{CreateRouterError, RequestError};
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters};
use mafalda_media_tools::rtp::{GeneratorConfig, GeneratorError, PayloadKind, RtpGenerator};
use mediasoup::types::rtp_parameters::RtpCodecParametersParameters;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::oneshot;

fn fired() -> (Arc<AtomicUsize>, impl Fn() + Send + Sync + Clone + 'static) {
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    (count, move || {
        c.fetch_add(1, Ordering::SeqCst);
    })
}

async fn plain_in(router: &Router, k: usize) -> PlainTransport {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.app_data = slot(k);
    router.create_plain_transport(options).await.expect("transport")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_producers_and_unusable_capabilities() {
    let manager = slotted_manager(2);
    let (_worker, router) = router(&manager).await;
    let (_input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(1)).await;
    let far = plain_in(&router, 1).await;
    assert_ne!(far.cell(), _input.cell());

    let unknown: ProducerId = "00000000-0000-4000-8000-000000000001".parse().expect("uuid");
    let caps = mafalda_media_tools::media::receiver_capabilities();
    match far.consume(ConsumerOptions::new(unknown, caps)).await {
        Err(ConsumeError::ProducerNotFound(id)) => assert_eq!(id, unknown),
        other => panic!("expected ProducerNotFound, got {other:?}"),
    }

    // VP8-only capabilities cannot consume an Opus producer living on another worker.
    let video_only = RtpCapabilities {
        codecs: vec![RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: Some(101),
            clock_rate: NonZeroU32::new(90_000).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        header_extensions: vec![],
    };
    assert!(!router.can_consume(&producer.id(), &video_only));
    let (piped, on_pipe) = fired();
    router.on_pipe(move |_| on_pipe()).detach();
    match far.consume(ConsumerOptions::new(producer.id(), video_only)).await {
        Err(ConsumeError::BadConsumerRtpParameters(_)) => {}
        other => panic!("expected BadConsumerRtpParameters, got {other:?}"),
    }
    assert_eq!(piped.load(Ordering::SeqCst), 0, "nothing was piped for capabilities that cannot consume");
    assert!(router.pipes().is_empty());
    let stats = router.stats();
    assert_eq!((stats.consumers, stats.pipes, stats.producers), (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_router_refuses_transports() {
    let manager = slotted_manager(2);
    let (worker, router) = router(&manager).await;
    let transport = plain_in(&router, 0).await;
    let (router_closes, on_router_close) = fired();
    let (worker_closes, on_worker_close) = fired();
    transport.on_router_close(Box::new(on_router_close.clone())).detach();
    router.on_worker_close(on_worker_close).detach();

    worker.close();
    assert!(router.closed());
    assert!(transport.closed());
    assert_eq!(router_closes.load(Ordering::SeqCst), 1);
    assert_eq!(worker_closes.load(Ordering::SeqCst), 1);
    match router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await {
        Err(RequestError::ChannelClosed) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    match worker.create_router(RouterOptions::new(mafalda_media_tools::media::router_codecs())).await {
        Err(CreateRouterError::Request(RequestError::ChannelClosed)) => {}
        other => panic!("expected ChannelClosed, got {other:?}"),
    }
    assert!(matches!(router.dump().await, Err(RequestError::ChannelClosed)));
    assert_eq!(manager.host().stats().totals.transports, 0, "nothing counted any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_closed_under_live_consumers() {
    let manager = slotted_manager(2);
    let (_worker, router) = router(&manager).await;
    let (input, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(7)).await;
    let (_near_t, _near, near_sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 0).await;
    let (far_t, far, _far_sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
    let doomed = far_t.cell();
    assert_ne!(doomed, input.cell());

    let (transport_closes, on_transport_close) = fired();
    let (closes, on_close) = fired();
    far.on_transport_close(on_transport_close).detach();
    far.on_close(on_close).detach();
    let (lost_tx, lost_rx) = oneshot::channel();
    let lost_tx = std::sync::Mutex::new(Some(lost_tx));
    router
        .on_cell_lost(move |lost| {
            if let Some(tx) = lost_tx.lock().expect("lock").take() {
                let _ = tx.send(lost.clone());
            }
        })
        .detach();

    let closed = manager.host().close_cell(doomed, CloseReason::Retired).expect("cell closed");
    assert_eq!(closed.lost_transports, vec![(router.id(), far_t.id())]);
    let lost = tokio::time::timeout(EVENT_LIMIT, lost_rx).await.expect("event").expect("sent");
    assert_eq!(lost.cell, doomed);
    assert_eq!(lost.reason, CloseReason::Retired);
    assert_eq!(lost.lost_transports, vec![far_t.id()]);

    assert_eq!(transport_closes.load(Ordering::SeqCst), 1, "on_transport_close fired");
    assert_eq!(closes.load(Ordering::SeqCst), 1, "on_close fired once");
    assert!(far.closed() && far_t.closed());
    assert!(matches!(far.get_stats().await, Err(RequestError::ChannelClosed)));
    assert!(matches!(far.pause().await, Err(RequestError::ChannelClosed)));
    match RtpGenerator::start(&far_t, GeneratorConfig::opus(7)).await {
        Err(GeneratorError::TransportClosed(id)) => assert_eq!(id, far_t.id()),
        other => panic!("expected TransportClosed, got {other:?}"),
    }

    // Stats: the cell is gone, only what lives elsewhere is counted.
    let stats = manager.host().stats();
    assert!(stats.cell(doomed).is_none());
    assert_eq!(stats.totals.cells, 1);
    let router_stats = router.stats();
    assert_eq!((router_stats.transports, router_stats.consumers, router_stats.pipes), (2, 1, 0));
    assert!(router.pipes().is_empty());

    // The surviving worker still forwards.
    let generator =
        RtpGenerator::start(&input, GeneratorConfig::opus(7).with_rate(200).with_count(40)).await.expect("gen");
    generator.finished().await.expect("sent");
    let report = near_sink.wait_for(40, EVENT_LIMIT).await;
    assert!(report.has_all(40), "the survivor forwarded {} of 40", report.indices.len());
}
