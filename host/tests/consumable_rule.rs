//! The cluster answers `can_consume` for producers on other hosts without a round trip; its
//! rule must answer as mediasoup's own `Router::can_consume` does. Checked against a real
//! mediasoup router for producers of every codec family whose matching has special cases
//! (Opus channels, multi-channel Opus streams, VP9 profiles, H264 packetization and profiles)
//! and capabilities that differ in each of them.

use mafalda_host::cluster::consumable::can_consume;
use mediasoup::direct_transport::DirectTransportOptions;
use mediasoup::prelude::{MediaKind, ProducerOptions, RouterOptions, Transport, WorkerSettings};
use mediasoup::types::rtp_parameters::{
    MimeTypeAudio, MimeTypeVideo, RtpCapabilities, RtpCodecCapability, RtpCodecCapabilityFinalized, RtpCodecParameters,
    RtpCodecParametersParameters, RtpEncodingParameters, RtpParameters,
};
use std::num::{NonZeroU32, NonZeroU8};

fn params(entries: &[(&str, &str)]) -> RtpCodecParametersParameters {
    let mut p = RtpCodecParametersParameters::default();
    for (key, value) in entries {
        match value.parse::<u32>() {
            Ok(n) => p.insert(key.to_string(), n),
            Err(_) => p.insert(key.to_string(), value.to_string()),
        };
    }
    p
}

fn audio(mime_type: MimeTypeAudio, channels: u8, entries: &[(&str, &str)]) -> RtpCodecCapability {
    RtpCodecCapability::Audio {
        mime_type,
        preferred_payload_type: None,
        clock_rate: NonZeroU32::new(48_000).expect("rate"),
        channels: NonZeroU8::new(channels).expect("channels"),
        parameters: params(entries),
        rtcp_feedback: Vec::new(),
    }
}

fn video(mime_type: MimeTypeVideo, entries: &[(&str, &str)]) -> RtpCodecCapability {
    RtpCodecCapability::Video {
        mime_type,
        preferred_payload_type: None,
        clock_rate: NonZeroU32::new(90_000).expect("rate"),
        parameters: params(entries),
        rtcp_feedback: Vec::new(),
    }
}

const SURROUND: &[(&str, &str)] = &[("num_streams", "4"), ("coupled_streams", "2"), ("channel_mapping", "0,4,1,2,3,5")];

fn codecs() -> Vec<RtpCodecCapability> {
    vec![
        audio(MimeTypeAudio::Opus, 2, &[]),
        audio(MimeTypeAudio::MultiChannelOpus, 6, SURROUND),
        video(MimeTypeVideo::Vp8, &[]),
        video(MimeTypeVideo::Vp9, &[("profile-id", "0")]),
        video(MimeTypeVideo::Vp9, &[("profile-id", "2")]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "1"), ("profile-level-id", "42e01f")]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "1"), ("profile-level-id", "640032")]),
    ]
}

/// What a remote endpoint might offer: each codec as the router has it, and variants that
/// differ in what mediasoup matches on.
fn candidates() -> Vec<RtpCapabilities> {
    let mut single: Vec<RtpCodecCapability> = codecs();
    single.extend([
        audio(MimeTypeAudio::Opus, 1, &[]),
        audio(MimeTypeAudio::MultiChannelOpus, 2, SURROUND),
        audio(MimeTypeAudio::MultiChannelOpus, 6, &[("num_streams", "3"), ("coupled_streams", "3")]),
        video(MimeTypeVideo::Vp9, &[("profile-id", "1")]),
        video(MimeTypeVideo::Vp9, &[]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "0"), ("profile-level-id", "42e01f")]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "1"), ("profile-level-id", "42e034")]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "1"), ("profile-level-id", "4d0032")]),
        video(MimeTypeVideo::H264, &[("packetization-mode", "1")]),
    ]);
    let mut all: Vec<RtpCapabilities> = single
        .into_iter()
        .map(|codec| RtpCapabilities { codecs: vec![codec], header_extensions: Vec::new() })
        .collect();
    all.push(RtpCapabilities { codecs: codecs(), header_extensions: Vec::new() });
    all.push(RtpCapabilities::default());
    all
}

/// The parameters a sender of the router's codec `codec` uses.
fn sender(codec: &RtpCodecCapabilityFinalized, ssrc: u32) -> Option<(MediaKind, RtpParameters)> {
    let (kind, codec) = match codec.clone() {
        RtpCodecCapabilityFinalized::Audio {
            mime_type,
            preferred_payload_type,
            clock_rate,
            channels,
            parameters,
            ..
        } => (
            MediaKind::Audio,
            RtpCodecParameters::Audio {
                mime_type,
                payload_type: preferred_payload_type,
                clock_rate,
                channels,
                parameters,
                rtcp_feedback: Vec::new(),
            },
        ),
        RtpCodecCapabilityFinalized::Video { mime_type, preferred_payload_type, clock_rate, parameters, .. } => {
            if mime_type == MimeTypeVideo::Rtx {
                return None;
            }
            (
                MediaKind::Video,
                RtpCodecParameters::Video {
                    mime_type,
                    payload_type: preferred_payload_type,
                    clock_rate,
                    parameters,
                    rtcp_feedback: Vec::new(),
                },
            )
        }
    };
    let encodings = vec![RtpEncodingParameters { ssrc: Some(ssrc), ..RtpEncodingParameters::default() }];
    Some((kind, RtpParameters { codecs: vec![codec], encodings, ..RtpParameters::default() }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_answers_can_consume_as_mediasoup_does() {
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(codecs())).await.expect("router");
    let transport = router.create_direct_transport(DirectTransportOptions::default()).await.expect("transport");
    let mut producers = Vec::new();
    for (n, codec) in router.rtp_capabilities().codecs.iter().enumerate() {
        let Some((kind, parameters)) = sender(codec, 1000 + n as u32) else { continue };
        producers.push(transport.produce(ProducerOptions::new(kind, parameters)).await.expect("producer"));
    }
    assert_eq!(producers.len(), codecs().len(), "a producer of each codec");
    let (mut yes, mut no) = (0, 0);
    for producer in &producers {
        for caps in candidates() {
            let theirs = router.can_consume(&producer.id(), &caps);
            let ours = can_consume(producer.consumable_rtp_parameters(), &caps);
            assert_eq!(ours, theirs, "{:?} with {:?}", producer.rtp_parameters().codecs, caps.codecs);
            if theirs {
                yes += 1;
            } else {
                no += 1;
            }
        }
    }
    assert!(yes >= producers.len() && no > yes, "both answers are exercised: {yes} yes, {no} no");
}
