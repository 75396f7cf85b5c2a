//! Whether RTP capabilities can consume a producer on another host, answered here (mediasoup's
//! `can_consume` is synchronous): mediasoup's own rule (`ortc::can_consume`, private to the
//! crate) on the producer's consumable parameters — the first codec of the producer that the
//! capabilities match strictly (MIME type, clock rate, channels; multi-channel Opus stream
//! counts; H264 packetization mode and profile; VP9 profile) must be a media codec.

use mediasoup::types::rtp_parameters::{
    MimeType, MimeTypeAudio, MimeTypeVideo, RtpCapabilities, RtpCodecCapability, RtpCodecParameters,
    RtpCodecParametersParameters, RtpCodecParametersParametersValue, RtpParameters,
};
use std::num::{NonZeroU32, NonZeroU8};

/// What two codecs are matched on.
struct Codec<'a> {
    mime_type: MimeType,
    clock_rate: NonZeroU32,
    channels: Option<NonZeroU8>,
    parameters: &'a RtpCodecParametersParameters,
}

impl<'a> From<&'a RtpCodecCapability> for Codec<'a> {
    fn from(codec: &'a RtpCodecCapability) -> Self {
        match codec {
            RtpCodecCapability::Audio { mime_type, clock_rate, channels, parameters, .. } => Self {
                mime_type: MimeType::Audio(*mime_type),
                clock_rate: *clock_rate,
                channels: Some(*channels),
                parameters,
            },
            RtpCodecCapability::Video { mime_type, clock_rate, parameters, .. } => {
                Self { mime_type: MimeType::Video(*mime_type), clock_rate: *clock_rate, channels: None, parameters }
            }
        }
    }
}

impl<'a> From<&'a RtpCodecParameters> for Codec<'a> {
    fn from(codec: &'a RtpCodecParameters) -> Self {
        match codec {
            RtpCodecParameters::Audio { mime_type, clock_rate, channels, parameters, .. } => Self {
                mime_type: MimeType::Audio(*mime_type),
                clock_rate: *clock_rate,
                channels: Some(*channels),
                parameters,
            },
            RtpCodecParameters::Video { mime_type, clock_rate, parameters, .. } => {
                Self { mime_type: MimeType::Video(*mime_type), clock_rate: *clock_rate, channels: None, parameters }
            }
        }
    }
}

fn number(parameters: &RtpCodecParametersParameters, key: &str) -> RtpCodecParametersParametersValue {
    parameters.get(key).cloned().unwrap_or(RtpCodecParametersParametersValue::Number(0))
}

fn text<'p>(parameters: &'p RtpCodecParametersParameters, key: &str) -> Option<&'p str> {
    match parameters.get(key) {
        Some(RtpCodecParametersParametersValue::String(s)) => Some(s.as_ref()),
        _ => None,
    }
}

/// mediasoup's strict codec match.
fn matches(a: &Codec<'_>, b: &Codec<'_>) -> bool {
    if a.mime_type != b.mime_type || a.channels != b.channels || a.clock_rate != b.clock_rate {
        return false;
    }
    match a.mime_type {
        MimeType::Audio(MimeTypeAudio::MultiChannelOpus) => {
            a.parameters.get("num_streams") == b.parameters.get("num_streams")
                && a.parameters.get("coupled_streams") == b.parameters.get("coupled_streams")
        }
        MimeType::Video(MimeTypeVideo::H264) => {
            number(a.parameters, "packetization-mode") == number(b.parameters, "packetization-mode")
                && h264_profile_level_id::is_same_profile(
                    text(a.parameters, "profile-level-id"),
                    text(b.parameters, "profile-level-id"),
                )
                .is_some()
        }
        MimeType::Video(MimeTypeVideo::Vp9) => number(a.parameters, "profile-id") == number(b.parameters, "profile-id"),
        _ => true,
    }
}

/// Whether `capabilities` can consume a producer whose consumable parameters are `consumable`.
pub fn can_consume(consumable: &RtpParameters, capabilities: &RtpCapabilities) -> bool {
    let first = consumable
        .codecs
        .iter()
        .find(|codec| capabilities.codecs.iter().any(|cap| matches(&Codec::from(cap), &Codec::from(*codec))));
    first.is_some_and(|codec| !codec.is_rtx())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediasoup::types::rtp_parameters::RtpEncodingParameters;

    fn opus(mime_type: MimeTypeAudio, channels: u8, parameters: &[(&str, u32)]) -> RtpCodecParameters {
        let mut p = RtpCodecParametersParameters::default();
        for (k, v) in parameters {
            p.insert(k.to_string(), *v);
        }
        RtpCodecParameters::Audio {
            mime_type,
            payload_type: 100,
            clock_rate: NonZeroU32::new(48_000).expect("rate"),
            channels: NonZeroU8::new(channels).expect("channels"),
            parameters: p,
            rtcp_feedback: Vec::new(),
        }
    }

    fn capability(codec: &RtpCodecParameters) -> RtpCodecCapability {
        match codec.clone() {
            RtpCodecParameters::Audio { mime_type, clock_rate, channels, parameters, .. } => {
                RtpCodecCapability::Audio {
                    mime_type,
                    preferred_payload_type: None,
                    clock_rate,
                    channels,
                    parameters,
                    rtcp_feedback: Vec::new(),
                }
            }
            RtpCodecParameters::Video { mime_type, clock_rate, parameters, .. } => RtpCodecCapability::Video {
                mime_type,
                preferred_payload_type: None,
                clock_rate,
                parameters,
                rtcp_feedback: Vec::new(),
            },
        }
    }

    fn parameters(codec: RtpCodecParameters) -> RtpParameters {
        RtpParameters { codecs: vec![codec], encodings: vec![RtpEncodingParameters::default()], ..Default::default() }
    }

    fn caps(codecs: &[RtpCodecParameters]) -> RtpCapabilities {
        RtpCapabilities { codecs: codecs.iter().map(capability).collect(), header_extensions: Vec::new() }
    }

    #[test]
    fn multi_channel_opus_must_match_channels_and_streams() {
        let surround = opus(MimeTypeAudio::MultiChannelOpus, 6, &[("num_streams", 4), ("coupled_streams", 2)]);
        let producer = parameters(surround.clone());
        assert!(can_consume(&producer, &caps(&[surround])));
        let stereo = opus(MimeTypeAudio::MultiChannelOpus, 2, &[("num_streams", 4), ("coupled_streams", 2)]);
        assert!(!can_consume(&producer, &caps(&[stereo])), "a channel mismatch cannot consume");
        let other_streams = opus(MimeTypeAudio::MultiChannelOpus, 6, &[("num_streams", 3), ("coupled_streams", 2)]);
        assert!(!can_consume(&producer, &caps(&[other_streams])), "a stream count mismatch cannot consume");
        assert!(!can_consume(&producer, &caps(&[opus(MimeTypeAudio::Opus, 2, &[])])), "another mime type");
    }
}
