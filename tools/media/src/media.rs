//! Media parameters shared by the demo, the tests and the benchmarks: an Opus + VP8 router,
//! the RTP parameters of a plain Opus sender and the capabilities of a plain receiver.

use mediasoup::prelude::*;
use mediasoup::types::rtp_parameters::RtpCodecParametersParameters;
use std::net::{IpAddr, Ipv4Addr};
use std::num::{NonZeroU32, NonZeroU8};

/// Payload type the built-in generator uses for Opus.
pub const OPUS_PAYLOAD_TYPE: u8 = 100;
/// Payload type receivers ask for VP8.
pub const VP8_PAYLOAD_TYPE: u8 = 101;

const OPUS_CLOCK: u32 = 48_000;
const VIDEO_CLOCK: u32 = 90_000;

fn clock(rate: u32) -> NonZeroU32 {
    NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN)
}

fn stereo() -> NonZeroU8 {
    NonZeroU8::new(2).unwrap_or(NonZeroU8::MIN)
}

/// A UDP listen address on `ip` with a port chosen by the worker.
pub fn listen_info(ip: IpAddr) -> ListenInfo {
    mafalda_host::config::listen_info(Protocol::Udp, ip, None)
}

/// A UDP listen address on the loopback interface.
pub fn loopback_listen_info() -> ListenInfo {
    listen_info(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// Router codecs: Opus (stereo, in-band FEC) and VP8.
pub fn router_codecs() -> Vec<RtpCodecCapability> {
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: clock(OPUS_CLOCK),
            channels: stereo(),
            parameters: RtpCodecParametersParameters::from_iter([("useinbandfec", 1_u32.into())]),
            rtcp_feedback: vec![],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: None,
            clock_rate: clock(VIDEO_CLOCK),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        },
    ]
}

/// What a plain RTP receiver supports: Opus and VP8 without feedback.
pub fn receiver_capabilities() -> RtpCapabilities {
    RtpCapabilities {
        codecs: vec![
            RtpCodecCapability::Audio {
                mime_type: MimeTypeAudio::Opus,
                preferred_payload_type: Some(OPUS_PAYLOAD_TYPE),
                clock_rate: clock(OPUS_CLOCK),
                channels: stereo(),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
            RtpCodecCapability::Video {
                mime_type: MimeTypeVideo::Vp8,
                preferred_payload_type: Some(VP8_PAYLOAD_TYPE),
                clock_rate: clock(VIDEO_CLOCK),
                parameters: RtpCodecParametersParameters::default(),
                rtcp_feedback: vec![],
            },
        ],
        header_extensions: vec![],
    }
}

/// RTP parameters of a plain Opus sender using `ssrc`.
pub fn opus_send_parameters(ssrc: u32) -> RtpParameters {
    RtpParameters {
        mid: None,
        codecs: vec![RtpCodecParameters::Audio {
            mime_type: MimeTypeAudio::Opus,
            payload_type: OPUS_PAYLOAD_TYPE,
            clock_rate: clock(OPUS_CLOCK),
            channels: stereo(),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters { ssrc: Some(ssrc), ..RtpEncodingParameters::default() }],
        rtcp: RtcpParameters { cname: Some(format!("mafalda-{ssrc:08x}")), reduced_size: true },
        msid: None,
    }
}

/// Header extension id the generator uses for `ssrc-audio-level`.
pub const AUDIO_LEVEL_EXTENSION_ID: u8 = 1;

/// RTP parameters of a plain Opus sender using `ssrc` that announces its audio level (what
/// audio level and active speaker observers read).
pub fn opus_send_parameters_with_audio_level(ssrc: u32) -> RtpParameters {
    let mut parameters = opus_send_parameters(ssrc);
    parameters.header_extensions = vec![RtpHeaderExtensionParameters {
        uri: RtpHeaderExtensionUri::SsrcAudioLevel,
        id: u16::from(AUDIO_LEVEL_EXTENSION_ID),
        encrypt: false,
    }];
    parameters
}

/// RTP parameters of a plain VP8 sender using `ssrc`.
pub fn vp8_send_parameters(ssrc: u32) -> RtpParameters {
    RtpParameters {
        mid: None,
        codecs: vec![RtpCodecParameters::Video {
            mime_type: MimeTypeVideo::Vp8,
            payload_type: VP8_PAYLOAD_TYPE,
            clock_rate: clock(VIDEO_CLOCK),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![],
        }],
        header_extensions: vec![],
        encodings: vec![RtpEncodingParameters { ssrc: Some(ssrc), ..RtpEncodingParameters::default() }],
        rtcp: RtcpParameters { cname: Some(format!("mafalda-{ssrc:08x}")), reduced_size: true },
        msid: None,
    }
}

/// RTP parameters of a VP8 simulcast sender with one encoding (spatial layer) per SSRC of
/// `ssrcs`, lowest first (as browsers send simulcast).
pub fn vp8_simulcast_send_parameters(ssrcs: [u32; 3]) -> RtpParameters {
    let mut parameters = vp8_send_parameters(ssrcs[0]);
    parameters.encodings = ssrcs
        .iter()
        .map(|ssrc| RtpEncodingParameters { ssrc: Some(*ssrc), ..RtpEncodingParameters::default() })
        .collect();
    parameters
}

/// Remote parameters of a plain transport sending RTP to `address` (no RTCP port, no SRTP).
pub fn send_to(address: std::net::SocketAddr) -> mediasoup::plain_transport::PlainTransportRemoteParameters {
    mediasoup::plain_transport::PlainTransportRemoteParameters {
        ip: Some(address.ip()),
        port: Some(address.port()),
        rtcp_port: None,
        srtp_parameters: None,
    }
}
