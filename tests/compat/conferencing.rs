//! A program written for plain mediasoup 0.33: WorkerManager → Worker → Router → WebRtc, Plain
//! and Direct transports → produce / consume (media and data) → dump, stats and events.
//!
//! It is compiled twice, unchanged: by `compat-mediasoup` against the `mediasoup` crate and by
//! `compat-mafalda` against mafalda-host renamed to `mediasoup` in its Cargo.toml. Both builds
//! must pass the same assertions.

use mediasoup::consumer::ConsumerRtpStreamStat;
use mediasoup::prelude::*;
use mediasoup::types::rtp_parameters::RtpCodecParametersParameters;
use mediasoup::worker::WorkerLogLevel;
use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::num::{NonZeroU32, NonZeroU8};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const SSRC: u32 = 0x00c0_ffee;
const PACKETS: u16 = 50;
const LIMIT: Duration = Duration::from_secs(15);

fn listen() -> ListenInfo {
    ListenInfo {
        protocol: Protocol::Udp,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        announced_address: None,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

fn opus() -> RtpCodecCapability {
    RtpCodecCapability::Audio {
        mime_type: MimeTypeAudio::Opus,
        preferred_payload_type: Some(100),
        clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
        channels: NonZeroU8::new(2).expect("non-zero"),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: vec![],
    }
}

fn receiver() -> RtpCapabilities {
    RtpCapabilities { codecs: vec![opus()], header_extensions: vec![] }
}

fn opus_parameters() -> RtpParameters {
    RtpParameters {
        mid: None,
        codecs: vec![RtpCodecParameters::Audio {
            mime_type: MimeTypeAudio::Opus,
            payload_type: 100,
            clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
            channels: NonZeroU8::new(2).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters { ssrc: Some(SSRC), ..RtpEncodingParameters::default() }],
        rtcp: RtcpParameters { cname: Some("compat".into()), reduced_size: true },
        msid: None,
    }
}

fn rtp_packet(seq: u16) -> Vec<u8> {
    let mut packet = vec![0x80, 100];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    packet.push(0xfc);
    packet.extend((0..40).map(|i: u8| i ^ seq as u8));
    packet
}

fn address(tuple: &mediasoup::types::data_structures::TransportTuple) -> SocketAddr {
    SocketAddr::new(tuple.local_address().parse().expect("ip"), tuple.local_port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conferencing_flow() {
    conference(WorkerManager::new(), |_input, _output| {}).await;
}

/// The program on `worker_manager`. `media_flowed` sees the producing and the consuming plain
/// transports once every packet arrived (a hook for running the program under other
/// deployments; this program needs nothing from it).
pub async fn conference(worker_manager: WorkerManager, media_flowed: impl FnOnce(&PlainTransport, &PlainTransport)) {
    let mut settings = WorkerSettings::default();
    settings.log_level = WorkerLogLevel::Warn;
    settings.log_tags = vec![];
    let worker = worker_manager.create_worker(settings).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(vec![opus()])).await.expect("router");
    assert!(!router.rtp_capabilities().codecs.is_empty());

    // A WebRTC transport: ICE and DTLS parameters come from the worker.
    let webrtc = router
        .create_webrtc_transport(WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(listen())))
        .await
        .expect("webrtc transport");
    assert!(!webrtc.ice_parameters().username_fragment.is_empty());
    assert!(!webrtc.ice_candidates().is_empty());
    assert!(!webrtc.dtls_parameters().fingerprints.is_empty());

    // Media in over a comedia plain transport, out over another one to a UDP socket.
    let mut options = PlainTransportOptions::new(listen());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input");
    let producer = input.produce(ProducerOptions::new(MediaKind::Audio, opus_parameters())).await.expect("producer");
    let receiver_socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    receiver_socket.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let output = router.create_plain_transport(PlainTransportOptions::new(listen())).await.expect("output");
    output
        .connect(PlainTransportRemoteParameters {
            ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: Some(receiver_socket.local_addr().expect("addr").port()),
            rtcp_port: None,
            srtp_parameters: None,
        })
        .await
        .expect("connect");
    assert!(router.can_consume(&producer.id(), &receiver()));
    let consumer = output.consume(ConsumerOptions::new(producer.id(), receiver())).await.expect("consumer");
    let webrtc_consumer =
        webrtc.consume(ConsumerOptions::new(producer.id(), receiver())).await.expect("webrtc consumer");
    assert_eq!(consumer.producer_id(), producer.id());
    assert_eq!(consumer.kind(), MediaKind::Audio);

    let target = address(&input.tuple());
    let receiving = tokio::task::spawn_blocking(move || {
        let mut buf = [0u8; 1500];
        let mut intact = 0;
        while intact < PACKETS {
            let Ok((len, _)) = receiver_socket.recv_from(&mut buf) else {
                break;
            };
            // The worker may add header extensions: skip CSRCs and the extension block.
            let mut offset = 12 + 4 * usize::from(buf[0] & 0x0f);
            if buf[0] & 0x10 != 0 && len >= offset + 4 {
                offset += 4 + 4 * usize::from(u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]));
            }
            if buf[1] & 0x7f == 100 && len == offset + 41 && buf[offset] == 0xfc {
                intact += 1;
            }
        }
        intact
    });
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for seq in 0..PACKETS {
        sender.send_to(&rtp_packet(seq), target).expect("send");
        tokio::time::sleep(Duration::from_millis(5)).await; // pacing, as a real sender does
    }
    assert_eq!(receiving.await.expect("receiver"), PACKETS, "every packet forwarded");
    media_flowed(&input, &output);

    let received: u64 = producer.get_stats().await.expect("stats").iter().map(|s| s.packet_count).sum();
    assert!(received >= u64::from(PACKETS));
    let sent: u64 = consumer
        .get_stats()
        .await
        .expect("stats")
        .iter()
        .map(|s| match s {
            ConsumerRtpStreamStat::Outbound(stat) => stat.packet_count,
            ConsumerRtpStreamStat::Inbound(_) => 0,
        })
        .sum();
    assert!(sent >= u64::from(PACKETS));

    // Data through direct transports.
    let sending = router.create_direct_transport(DirectTransportOptions::default()).await.expect("direct");
    let data_producer = sending.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let receiving = router.create_direct_transport(DirectTransportOptions::default()).await.expect("direct");
    let data_consumer =
        receiving.consume_data(DataConsumerOptions::new_direct(data_producer.id(), None)).await.expect("data consumer");
    // Type inference in the application is mediasoup's (no extra `PartialEq` impls in scope).
    assert!(data_consumer.subchannels().is_empty());
    let (tx, mut rx) = mpsc::unbounded_channel();
    data_consumer
        .on_message(move |message| {
            if let WebRtcMessage::String(bytes) = message {
                let _ = tx.send(String::from_utf8_lossy(bytes).into_owned());
            }
        })
        .detach();
    let DataProducer::Direct(direct) = &data_producer else { panic!("direct data producer") };
    for i in 0..10 {
        direct.send(WebRtcMessage::String(Cow::Owned(format!("m{i}").into_bytes())), None, None, None).expect("send");
    }
    for i in 0..10 {
        let message = tokio::time::timeout(LIMIT, rx.recv()).await.expect("in time").expect("open");
        assert_eq!(message, format!("m{i}"));
    }

    // The dump shows what the application created.
    let dump = router.dump().await.expect("dump");
    for id in [webrtc.id(), input.id(), output.id(), sending.id(), receiving.id()] {
        assert!(dump.transport_ids.contains(&id), "dump lists transport {id}");
    }
    assert_eq!(dump.transport_ids.len(), 5);
    let consumers = &dump.map_producer_id_consumer_ids[&producer.id()];
    assert!(consumers.contains(&consumer.id()) && consumers.contains(&webrtc_consumer.id()));
    assert_eq!(consumers.len(), 2);
    assert_eq!(dump.map_consumer_id_producer_id[&consumer.id()], producer.id());
    assert!(dump.map_data_producer_id_data_consumer_ids[&data_producer.id()].contains(&data_consumer.id()));

    // Events: closing the producer closes its consumers (`on_producer_close`, then `on_close`).
    let (producer_closed_tx, producer_closed_rx) = oneshot::channel();
    let (closed_tx, closed_rx) = oneshot::channel();
    consumer
        .on_producer_close(move || {
            let _ = producer_closed_tx.send(());
        })
        .detach();
    consumer
        .on_close(move || {
            let _ = closed_tx.send(());
        })
        .detach();
    drop(producer);
    tokio::time::timeout(LIMIT, producer_closed_rx).await.expect("producer close event").expect("fired");
    tokio::time::timeout(LIMIT, closed_rx).await.expect("close event").expect("fired");
    assert!(consumer.closed());
}
