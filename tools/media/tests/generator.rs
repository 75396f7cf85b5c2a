//! The RTP generator against real mediasoup transports: a generator pointed at a closed
//! transport refuses to start (or stops) with a typed error; a zero rate is refused.

use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, GeneratorError, GeneratorTarget, RtpGenerator};
use mediasoup::prelude::*;
use std::time::Duration;

/// A real router on a fresh real worker (kept alive by the router).
async fn router() -> Router {
    let manager = WorkerManager::new();
    let mut settings = WorkerSettings::default();
    settings.log_level = mediasoup::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    let worker = manager.create_worker(settings).await.expect("worker");
    worker.create_router(RouterOptions::new(router_codecs())).await.expect("router")
}

async fn comedia_transport(router: &Router) -> PlainTransport {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    router.create_plain_transport(options).await.expect("transport")
}

/// Drops the transport (mediasoup closes it with its last handle) and waits for its close event.
async fn close(transport: PlainTransport) {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    transport
        .on_close(Box::new(move || {
            let _ = closed_tx.send(());
        }))
        .detach();
    drop(transport);
    tokio::time::timeout(Duration::from_secs(10), closed_rx).await.expect("close event").expect("fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_refuses_a_closed_transport() {
    let router = router().await;
    let transport = comedia_transport(&router).await;
    let target = GeneratorTarget::of(&transport);
    close(transport).await;
    let err = RtpGenerator::start(target.clone(), GeneratorConfig::opus(1)).await.expect_err("closed target");
    match &err {
        GeneratorError::TransportClosed(closed) => assert_eq!(*closed, target.id()),
        other => panic!("expected TransportClosed, got {other:?}"),
    }
    assert!(err.to_string().contains("is closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_stops_with_an_error_when_its_transport_closes() {
    let router = router().await;
    let transport = comedia_transport(&router).await;
    let _producer =
        transport.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(9))).await.expect("producer");
    let generator = RtpGenerator::start(&transport, GeneratorConfig::opus(9)).await.expect("starts");
    let id = transport.id();
    drop(_producer);
    close(transport).await;
    match tokio::time::timeout(Duration::from_secs(10), generator.finished()).await {
        Ok(Err(GeneratorError::TransportClosed(closed))) => assert_eq!(closed, id),
        other => panic!("expected TransportClosed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_refuses_a_zero_rate() {
    let router = router().await;
    let transport = comedia_transport(&router).await;
    let err = RtpGenerator::start(&transport, GeneratorConfig::opus(1).with_rate(0)).await.expect_err("zero rate");
    assert!(matches!(err, GeneratorError::ZeroRate));
    assert!(err.to_string().contains("at least 1 packet/s"));
}
