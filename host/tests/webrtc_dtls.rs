//! A WebRTC client at protocol level, without a browser: str0m (a sans-IO Rust WebRTC stack with
//! its own DTLS, no OpenSSL) does ICE, a DTLS 1.2 handshake and SRTP against a real
//! WebRtcTransport of the shipped worker, both ways. A worker that crashes on a DTLS handshake
//! (the kTLS trap of Debian's OpenSSL) or cannot key SRTP fails this in seconds.

mod common;

use common::slotted_manager;
use mafalda_host::prelude::*;
use mafalda_host::types::data_structures::{DtlsFingerprint, DtlsRole, DtlsState};
use mafalda_host::types::rtp_parameters::RtpCodecParametersParameters;
use mafalda_media_tools::media::loopback_listen_info;
use std::net::{SocketAddr, UdpSocket};
use std::num::{NonZeroU32, NonZeroU8};
use std::time::{Duration, Instant};
use str0m::config::DtlsVersion;
use str0m::ice::IceCreds;
use str0m::media::{Mid, Pt};
use str0m::net::{Protocol as NetProtocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo, Ssrc};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};

const OPUS_PT: u8 = 111; // str0m's default Opus payload type
const SEND_SSRC: u32 = 0x5eed_0001;
const PACKETS: u64 = 50;
const LIMIT: Duration = Duration::from_secs(20);

fn opus_capability() -> RtpCodecCapability {
    RtpCodecCapability::Audio {
        mime_type: MimeTypeAudio::Opus,
        preferred_payload_type: Some(OPUS_PT),
        clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
        channels: NonZeroU8::new(2).expect("non-zero"),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: vec![],
    }
}

fn producer_parameters() -> RtpParameters {
    RtpParameters {
        mid: Some("a".into()),
        codecs: vec![RtpCodecParameters::Audio {
            mime_type: MimeTypeAudio::Opus,
            payload_type: OPUS_PT,
            clock_rate: NonZeroU32::new(48_000).expect("non-zero"),
            channels: NonZeroU8::new(2).expect("non-zero"),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters { ssrc: Some(SEND_SSRC), ..RtpEncodingParameters::default() }],
        rtcp: RtcpParameters { cname: Some("str0m".into()), reduced_size: true },
        msid: None,
    }
}

/// `"sha-256 AB:CD:…"` as str0m prints and parses fingerprints.
fn str0m_fingerprint(fingerprint: &DtlsFingerprint) -> String {
    let value = serde_json::to_value(fingerprint).expect("fingerprint as JSON");
    format!("{} {}", value["algorithm"].as_str().expect("algorithm"), value["value"].as_str().expect("value"))
}

/// The payload of the n-th packet: recognisable on the way back.
fn payload(n: u64) -> Vec<u8> {
    let mut payload = vec![0xfc];
    payload.extend((0..60).map(|i: u8| i.wrapping_mul(7) ^ n as u8));
    payload
}

/// What the client saw.
struct ClientOutcome {
    connected_after: Duration,
    sent: u64,
    echoed: u64,
}

/// Runs the str0m client on its socket until `PACKETS` packets came back through the consumer.
fn run_client(mut rtc: Rtc, socket: UdpSocket, echo: (Ssrc, Mid)) -> ClientOutcome {
    let start = Instant::now();
    let local = socket.local_addr().expect("local address");
    let mut buffer = vec![0_u8; 2000];
    let mut connected_after = None;
    let (mut sent, mut echoed) = (0_u64, 0_u64);
    let mut next_send = Instant::now();
    while echoed < PACKETS {
        assert!(
            start.elapsed() < LIMIT,
            "no SRTP echo within {LIMIT:?} (connected: {connected_after:?}, sent {sent}, echoed {echoed})"
        );
        // Drain what str0m wants to do now.
        let timeout = loop {
            match rtc.poll_output().expect("str0m poll") {
                Output::Timeout(at) => break at,
                Output::Transmit(transmit) => {
                    socket.send_to(&transmit.contents, transmit.destination).expect("send datagram");
                }
                Output::Event(Event::Connected) => connected_after = Some(start.elapsed()),
                Output::Event(Event::RtpPacket(packet)) if packet.header.ssrc == echo.0 => {
                    let n = echoed;
                    assert_eq!(&packet.payload[..], &payload(n)[..], "packet {n} came back byte-identical");
                    echoed += 1;
                }
                Output::Event(_) => {}
            }
        };
        if connected_after.is_some() && Instant::now() >= next_send && sent < PACKETS * 4 {
            let mut api = rtc.direct_api();
            let stream = api.stream_tx(&Ssrc::from(SEND_SSRC)).expect("declared stream");
            let write = RtpWrite::new(
                Pt::from(OPUS_PT),
                SeqNo::from(sent + 1),
                (sent as u32) * 960,
                Instant::now(),
                payload(sent),
            );
            stream.write_rtp(write);
            sent += 1;
            next_send = Instant::now() + Duration::from_millis(20);
            continue;
        }
        let wait = timeout
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(20));
        socket.set_read_timeout(Some(wait)).expect("read timeout");
        match socket.recv_from(&mut buffer) {
            Ok((len, source)) => {
                let receive =
                    Receive::new(NetProtocol::Udp, source, local, &buffer[..len]).expect("a STUN/DTLS/SRTP datagram");
                rtc.handle_input(Input::Receive(Instant::now(), receive)).expect("str0m input");
            }
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                rtc.handle_input(Input::Timeout(Instant::now())).expect("str0m timeout");
            }
            Err(e) => panic!("socket: {e}"),
        }
    }
    ClientOutcome { connected_after: connected_after.expect("connected"), sent, echoed }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_webrtc_client_completes_ice_and_dtls_and_srtp_flows_both_ways() {
    let manager = slotted_manager(1);
    let worker = manager.create_worker(common::quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(vec![opus_capability()])).await.expect("router");
    let transport = router
        .create_webrtc_transport(WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(loopback_listen_info())))
        .await
        .expect("WebRTC transport");

    // The client: str0m, DTLS 1.2 client (mediasoup is the DTLS server), ICE controlling
    // (mediasoup is ICE-lite), RTP mode so packets come out as sent.
    let socket = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    let mut rtc = RtcConfig::new().set_dtls_version(DtlsVersion::Dtls12).set_rtp_mode(true).build(Instant::now());
    rtc.add_local_candidate(Candidate::host(socket.local_addr().expect("addr"), "udp").expect("local candidate"));
    let server = transport.ice_candidates().first().cloned().expect("a candidate");
    let server: SocketAddr = format!("{}:{}", server.address, server.port).parse().expect("candidate address");
    rtc.add_remote_candidate(Candidate::host(server, "udp").expect("remote candidate"));
    let ice = transport.ice_parameters().clone();
    let server_fingerprint = transport
        .dtls_parameters()
        .fingerprints
        .iter()
        .map(str0m_fingerprint)
        .find(|f| f.starts_with("sha-256 "))
        .expect("a sha-256 fingerprint");
    let client_fingerprint;
    {
        let mut api = rtc.direct_api();
        api.set_ice_controlling(true);
        api.set_remote_ice_credentials(IceCreds { ufrag: ice.username_fragment.clone(), pass: ice.password.clone() });
        api.set_remote_fingerprint(server_fingerprint.parse().expect("fingerprint parses"));
        client_fingerprint = api.local_dtls_fingerprint().to_string();
        api.start_dtls(true).expect("DTLS client");
        api.declare_media(Mid::from("a"), str0m::media::MediaKind::Audio);
        api.declare_stream_tx(Ssrc::from(SEND_SSRC), None, Mid::from("a"), None);
    }

    // The server side, as a signalling server would set it up.
    let (algorithm, value) = client_fingerprint.split_once(' ').expect("algorithm and value");
    let fingerprint: DtlsFingerprint =
        serde_json::from_value(serde_json::json!({ "algorithm": algorithm, "value": value })).expect("fingerprint");
    transport
        .connect(WebRtcTransportRemoteParameters {
            dtls_parameters: DtlsParameters { role: DtlsRole::Client, fingerprints: vec![fingerprint] },
        })
        .await
        .expect("connect");
    let producer =
        transport.produce(ProducerOptions::new(MediaKind::Audio, producer_parameters())).await.expect("produce");
    let capabilities = RtpCapabilities { codecs: vec![opus_capability()], header_extensions: vec![] };
    let consumer = transport.consume(ConsumerOptions::new(producer.id(), capabilities)).await.expect("consume");
    let echo_ssrc = consumer.rtp_parameters().encodings[0].ssrc.expect("consumer ssrc");
    let echo_mid = consumer.rtp_parameters().mid.clone().expect("consumer mid");
    {
        let mut api = rtc.direct_api();
        api.declare_media(Mid::from(echo_mid.as_str()), str0m::media::MediaKind::Audio);
        api.expect_stream_rx(Ssrc::from(echo_ssrc), None, Mid::from(echo_mid.as_str()), None);
    }

    let outcome = tokio::task::spawn_blocking(move || {
        run_client(rtc, socket, (Ssrc::from(echo_ssrc), Mid::from(echo_mid.as_str())))
    })
    .await
    .expect("client thread");
    println!(
        "ICE + DTLS connected after {:?}; sent {} SRTP packets, {} came back",
        outcome.connected_after, outcome.sent, outcome.echoed
    );

    assert_eq!(transport.dtls_state(), DtlsState::Connected);
    let received: u64 = producer.get_stats().await.expect("producer stats").iter().map(|s| s.packet_count).sum();
    assert!(received >= PACKETS, "the worker decrypted {received} SRTP packets from the client");
    assert_eq!(outcome.echoed, PACKETS);
}
