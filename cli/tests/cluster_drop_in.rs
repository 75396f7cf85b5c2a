//! mediasoup's API behaves the same over a worker of another host: each program here runs once
//! against a local worker and once against a worker of a `serve` process on 127.0.0.44, and
//! what a mediasoup user observes (state after calls, events, traces, video orientation, data
//! subchannels) must match. WebRTC servers: a host runs one per worker on its configured ports
//! and callers' transports made with a server listen there.

mod cluster_support;

use cluster_support::{application, certs, opus_input, opus_output, scratch, Node};
use mafalda_host::consumer::{ConsumerLayers, ConsumerTraceEventData, ConsumerTraceEventType};
use mafalda_host::prelude::*;
use mafalda_host::producer::{ProducerTraceEventData, ProducerTraceEventType};
use mafalda_host::types::data_structures::TransportTuple;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{
    loopback_listen_info, receiver_capabilities, router_codecs, send_to, vp8_send_parameters,
    vp8_simulcast_send_parameters,
};
use mafalda_media_tools::rtp::packet::{encode_with_extensions, RtpHeader};
use mafalda_media_tools::rtp::payload::{self, PayloadKind};
use mafalda_media_tools::rtp::RtpSink;
use mediasoup::prelude::{RtpHeaderExtensionParameters, RtpHeaderExtensionUri, SrtpCryptoSuite};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);
const ORIENTATION_ID: u8 = 4;
const VIDEO_SSRC: u32 = 0x0d0e;
const PACKETS: u16 = 30;

/// What a mediasoup user observes of one program.
#[derive(Debug, PartialEq)]
struct Seen {
    srtp_suite: Option<SrtpCryptoSuite>,
    /// Whether the plain transport's tuple after `connect()` has its remote half.
    remote_half: bool,
    /// `consumer.paused()` after pause, then after resume.
    consumer_paused: (bool, bool),
    /// `consumer.producer_paused()` and `consumer.paused()` once the producer's pause, then
    /// resume, arrived.
    producer_paused: ((bool, bool), (bool, bool)),
    /// `subchannels()` after set [1, 2], add 3, remove 1, then after set [9, 4, 9].
    subchannels: (Vec<u16>, Vec<u16>),
    /// A simulcast consumer's `preferred_layers()` after asking for spatial 1 / temporal 0,
    /// then after asking for layers it does not have; its `priority()` after set 7, unset.
    preferred_layers: (Option<ConsumerLayers>, Option<ConsumerLayers>),
    priority: (u8, u8),
    /// The orientation the producer reported: (camera, flip, degrees).
    orientation: (bool, bool, u16),
    /// Whether RTP and key frame traces arrived for the producer, RTP for the consumer.
    producer_rtp_traced: bool,
    producer_key_frames_traced: bool,
    consumer_rtp_traced: bool,
    /// Routers in the worker's dump.
    routers_in_dump: usize,
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>, what: &str) -> T {
    tokio::time::timeout(WAIT, rx.recv()).await.unwrap_or_else(|_| panic!("no {what} within {WAIT:?}")).expect(what)
}

/// One program, written for mediasoup.
async fn observe(manager: &WorkerManager) -> Seen {
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");

    // SRTP with a suite other than the default.
    let mut srtp = PlainTransportOptions::new(loopback_listen_info());
    srtp.enable_srtp = true;
    srtp.srtp_crypto_suite = SrtpCryptoSuite::AeadAes256Gcm;
    let srtp = router.create_plain_transport(srtp).await.expect("srtp transport");
    let srtp_suite = srtp.srtp_parameters().map(|p| p.crypto_suite);

    // A sender with video orientation, traced; a consumer connected to a sink, traced.
    let mut input = PlainTransportOptions::new(loopback_listen_info());
    input.comedia = true;
    let input = router.create_plain_transport(input).await.expect("input");
    let mut parameters = vp8_send_parameters(VIDEO_SSRC);
    parameters.header_extensions = vec![RtpHeaderExtensionParameters {
        uri: RtpHeaderExtensionUri::VideoOrientation,
        id: u16::from(ORIENTATION_ID),
        encrypt: false,
    }];
    let producer = input.produce(ProducerOptions::new(MediaKind::Video, parameters)).await.expect("producer");
    let (orientation_tx, mut orientation_rx) = mpsc::unbounded_channel();
    producer
        .on_video_orientation_change(move |o| {
            let _ = orientation_tx.send((o.camera, o.flip, o.rotation as u16));
        })
        .detach();
    let (producer_rtp, producer_key_frames, consumer_rtp) =
        (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let (rtp, key) = (Arc::clone(&producer_rtp), Arc::clone(&producer_key_frames));
    producer
        .on_trace(move |trace| match trace {
            ProducerTraceEventData::Rtp { .. } => drop(rtp.fetch_add(1, Ordering::Relaxed)),
            ProducerTraceEventData::KeyFrame { .. } => drop(key.fetch_add(1, Ordering::Relaxed)),
            _ => {}
        })
        .detach();
    producer
        .enable_trace_event(vec![ProducerTraceEventType::Rtp, ProducerTraceEventType::KeyFrame])
        .await
        .expect("trace");

    let output = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("out");
    let sink = RtpSink::bind(PayloadKind::Vp8KeyFrame).await.expect("sink");
    output.connect(send_to(sink.addr())).await.expect("connect");
    let remote_half = match output.tuple() {
        TransportTuple::WithRemote { remote_ip, remote_port, .. } => {
            std::net::SocketAddr::new(remote_ip, remote_port) == sink.addr()
        }
        TransportTuple::LocalOnly { .. } => false,
    };
    let consumer = output.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
    let traced = Arc::clone(&consumer_rtp);
    consumer
        .on_trace(move |trace| {
            if let ConsumerTraceEventData::Rtp { .. } = trace {
                traced.fetch_add(1, Ordering::Relaxed);
            }
        })
        .detach();
    consumer.enable_trace_event(vec![ConsumerTraceEventType::Rtp]).await.expect("consumer trace");

    // Key frames carrying the orientation: camera, not flipped, 90°.
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("socket");
    let to = match input.tuple() {
        TransportTuple::LocalOnly { local_address, local_port, .. } => {
            std::net::SocketAddr::new(local_address.parse().expect("an IP address"), local_port)
        }
        other => panic!("a comedia transport before its first packet: {other:?}"),
    };
    for n in 0..PACKETS {
        let header = RtpHeader {
            marker: true,
            payload_type: 101,
            sequence: n,
            timestamp: u32::from(n) * 3000,
            ssrc: VIDEO_SSRC,
        };
        let body = payload::make(PayloadKind::Vp8KeyFrame, u32::from(n), 200);
        let packet = encode_with_extensions(&header, &[(ORIENTATION_ID, &[0b1001])], &body).expect("packet");
        socket.send_to(&packet, to).await.expect("send");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let orientation = next(&mut orientation_rx, "video orientation").await;
    let report = sink.wait_for(u64::from(PACKETS), WAIT).await;
    assert!(report.has_all(u32::from(PACKETS)), "the consumer forwarded every packet: {report:?}");

    // Pause and resume the consumer, then its producer.
    consumer.pause().await.expect("pause");
    let paused = consumer.paused();
    consumer.resume().await.expect("resume");
    let consumer_paused = (paused, consumer.paused());
    let (producer_tx, mut producer_rx) = mpsc::unbounded_channel();
    let tx = producer_tx.clone();
    consumer
        .on_producer_pause(move || {
            let _ = tx.send(());
        })
        .detach();
    consumer
        .on_producer_resume(move || {
            let _ = producer_tx.send(());
        })
        .detach();
    producer.pause().await.expect("producer pause");
    next(&mut producer_rx, "producer pause").await;
    let paused = (consumer.producer_paused(), consumer.paused());
    producer.resume().await.expect("producer resume");
    next(&mut producer_rx, "producer resume").await;
    let producer_paused = (paused, (consumer.producer_paused(), consumer.paused()));

    // Data subchannels of a direct data consumer.
    let direct = router.create_direct_transport(DirectTransportOptions::default()).await.expect("direct");
    let data_producer = direct.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let data_consumer =
        direct.consume_data(DataConsumerOptions::new_direct(data_producer.id(), None)).await.expect("data consumer");
    data_consumer.set_subchannels(vec![1, 2]).await.expect("set");
    data_consumer.add_subchannel(3).await.expect("add");
    data_consumer.remove_subchannel(1).await.expect("remove");
    let mut first = data_consumer.subchannels();
    first.sort_unstable();
    data_consumer.set_subchannels(vec![9, 4, 9]).await.expect("set again");
    let subchannels = (first, data_consumer.subchannels());

    // A simulcast consumer's layers and priority, as the worker settles them.
    let simulcast = input
        .produce(ProducerOptions::new(MediaKind::Video, vp8_simulcast_send_parameters([0x51, 0x52, 0x53])))
        .await
        .expect("simulcast producer");
    let layered = output
        .consume(ConsumerOptions::new(simulcast.id(), receiver_capabilities()))
        .await
        .expect("simulcast consumer");
    layered.set_preferred_layers(ConsumerLayers { spatial_layer: 1, temporal_layer: Some(0) }).await.expect("layers");
    let asked = layered.preferred_layers();
    layered.set_preferred_layers(ConsumerLayers { spatial_layer: 9, temporal_layer: Some(9) }).await.expect("layers");
    let preferred_layers = (asked, layered.preferred_layers());
    layered.set_priority(7).await.expect("priority");
    let set = layered.priority();
    layered.unset_priority().await.expect("unset priority");
    let priority = (set, layered.priority());

    let routers_in_dump = worker.dump().await.expect("worker dump").router_ids.len();
    Seen {
        srtp_suite,
        remote_half,
        consumer_paused,
        producer_paused,
        subchannels,
        preferred_layers,
        priority,
        orientation,
        producer_rtp_traced: producer_rtp.load(Ordering::Relaxed) > 0,
        producer_key_frames_traced: producer_key_frames.load(Ordering::Relaxed) > 0,
        consumer_rtp_traced: consumer_rtp.load(Ordering::Relaxed) > 0,
        routers_in_dump,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_sees_the_same_over_a_remote_host_as_over_a_local_worker() {
    let local = observe(&WorkerManager::new()).await;
    let expected = (true, false, 90);
    assert!(local.remote_half && local.orientation == expected, "the local run itself: {local:?}");

    let dir = scratch("drop-in");
    certs(&dir, &[("dropin44", "127.0.0.44")]);
    let node = Node::start(&dir, "dropin44", "127.0.0.44", 4443, &[]);
    let remote = observe(&application(&dir, &[&node], &[])).await;
    println!("locally: {local:?}");
    assert_eq!(remote, local, "over a remote host, then locally");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webrtc_transports_on_a_remote_hosts_server_listen_on_its_ports() {
    let dir = scratch("drop-in-server");
    certs(&dir, &[("dropin45", "127.0.0.45"), ("dropin46", "127.0.0.46")]);
    let with_server = Node::start(&dir, "dropin45", "127.0.0.45", 4443, &["--webrtc-server-port", "46100"]);
    let without = Node::start(&dir, "dropin46", "127.0.0.46", 4443, &[]);

    // Two applications (two sessions) on the host with servers.
    let mut transports = Vec::new();
    let mut servers = Vec::new();
    let apps = [application(&dir, &[&with_server], &[]), application(&dir, &[&with_server], &[])];
    for app in &apps {
        let worker = app.create_worker(WorkerSettings::default()).await.expect("worker");
        // The application's own listen infos are the host's business: see docs/drop-in.md.
        let mut listen = loopback_listen_info();
        listen.port = Some(45999);
        let server = worker
            .create_webrtc_server(WebRtcServerOptions::new(WebRtcServerListenInfos::new(listen)))
            .await
            .expect("server");
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let transport = router
            .create_webrtc_transport(WebRtcTransportOptions::new_with_server(server.clone()))
            .await
            .expect("transport on the server");
        let candidates: Vec<(String, u16)> =
            transport.ice_candidates().iter().map(|c| (c.address.clone(), c.port)).collect();
        assert!(!candidates.is_empty());
        assert!(
            candidates.iter().all(|(address, port)| address == "127.0.0.45" && *port == 46100),
            "candidates on the host's server: {candidates:?}"
        );
        transports.push((worker, router, transport));
        servers.push(server);
    }
    // Each application's dump of the server lists its own transport only.
    for (server, (_, _, transport)) in servers.iter().zip(&transports) {
        let dump = server.dump().await.expect("server dump");
        let ids: Vec<TransportId> = dump.webrtc_transport_ids.iter().copied().collect();
        assert_eq!(ids, vec![transport.id()], "a session sees its own transports on the shared server");
    }

    // A host without servers says so when a transport asks for one.
    let app = application(&dir, &[&without], &[]);
    let worker = app.create_worker(WorkerSettings::default()).await.expect("worker");
    let server = worker
        .create_webrtc_server(WebRtcServerOptions::new(WebRtcServerListenInfos::new(loopback_listen_info())))
        .await
        .expect("the virtual server (bound lazily on remote workers)");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let refused = router
        .create_webrtc_transport(WebRtcTransportOptions::new_with_server(server))
        .await
        .expect_err("no server on that host");
    assert!(refused.to_string().contains("webrtc_server_port"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_events_beyond_the_hosts_budget_are_dropped_and_media_flows_on() {
    use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
    const SENT: u64 = 60;
    const BUDGET: u64 = 5;
    let dir = scratch("drop-in-traces");
    let node = cluster_support::limited(&dir, "dropin48", "127.0.0.48", &format!("trace_events_per_second = {BUDGET}"));
    let app = application(&dir, &[&node], &[]);
    let worker = app.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = opus_input(&router, 0x48).await;
    let (_output, consumer, sink) = opus_output(&router, &producer).await;
    let traced = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&traced);
    consumer
        .on_trace(move |_| {
            count.fetch_add(1, Ordering::Relaxed);
        })
        .detach();
    consumer.enable_trace_event(vec![ConsumerTraceEventType::Rtp]).await.expect("trace");
    let started = std::time::Instant::now();
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(0x48).with_count(SENT).with_rate(100))
        .await
        .expect("generator");
    let report = sink.wait_for(SENT, WAIT).await;
    assert!(report.has_all(SENT as u32), "media is not what the budget cuts: {report:?}");
    assert_eq!(generator.sent(), SENT);
    // A stats round trip: every trace the host let through has arrived before its reply.
    consumer.get_stats().await.expect("stats");
    let seconds = started.elapsed().as_secs_f64();
    let traced = u64::from(traced.load(Ordering::Relaxed));
    let allowed = BUDGET + (BUDGET as f64 * seconds).ceil() as u64;
    assert!(traced > 0 && traced <= allowed, "{traced} traces of {SENT} packets in {seconds:.2} s, budget {allowed}");
}
