//! mediasoup's own refusals of `produce`, `consume`, `produce_data` and `consume_data`, carried
//! across the wire as such: a host turns mediasoup's error into a [`MediasoupError`] (inside
//! [`WireError::Mediasoup`]), and the application's remote backend gives back mediasoup's variant
//! (`ConsumeError::ProducerNotFound`, `ProduceError::FailedRtpParametersMapping`, …), as a local
//! worker would. Failures of the request itself stay `…Error::Request` ([`request_error`]).

use super::proto::{Payload, WireError};
use mediasoup::data_producer::DataProducerId;
use mediasoup::ortc::{
    ConsumerRtpParametersError, RtpCapabilitiesError, RtpParametersError, RtpParametersMappingError,
};
use mediasoup::prelude::{ConsumeDataError, ConsumeError, ProduceDataError, ProduceError};
use mediasoup::producer::ProducerId;
use mediasoup::types::rtp_parameters::MimeType;
use mediasoup::worker::RequestError;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Invalid RTP capabilities (mediasoup's `RtpCapabilitiesError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum CapabilitiesError {
    UnsupportedCodec { mime_type: MimeType },
    CannotAllocate,
    InvalidAptParameter(String),
    DuplicatedPreferredPayloadType(u8),
}

/// RTP parameters that cannot be mapped (mediasoup's `RtpParametersMappingError`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum MappingError {
    UnsupportedCodec { mime_type: MimeType, payload_type: u8 },
    UnsupportedRtxCodec { preferred_payload_type: u8 },
    MissingMediaCodecForRtx { payload_type: u8 },
}

/// A refusal by mediasoup itself, with its variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub enum MediasoupError {
    ProducerExists(ProducerId),
    IncorrectRtpParameters(String),
    RtpParametersMapping(MappingError),
    ProducerNotFound(ProducerId),
    InvalidCapabilities(CapabilitiesError),
    /// `None`: no compatible media codecs.
    BadConsumerRtpParameters(Option<CapabilitiesError>),
    DataProducerExists(DataProducerId),
    SctpStreamParametersRequired,
    DataProducerNotFound(DataProducerId),
    NoSctpStreamId,
}

impl From<&RtpCapabilitiesError> for CapabilitiesError {
    fn from(error: &RtpCapabilitiesError) -> Self {
        match error {
            RtpCapabilitiesError::UnsupportedCodec { mime_type } => Self::UnsupportedCodec { mime_type: *mime_type },
            RtpCapabilitiesError::CannotAllocate => Self::CannotAllocate,
            RtpCapabilitiesError::InvalidAptParameter(text) => Self::InvalidAptParameter(text.to_string()),
            RtpCapabilitiesError::DuplicatedPreferredPayloadType(pt) => Self::DuplicatedPreferredPayloadType(*pt),
        }
    }
}

impl From<CapabilitiesError> for RtpCapabilitiesError {
    fn from(error: CapabilitiesError) -> Self {
        match error {
            CapabilitiesError::UnsupportedCodec { mime_type } => Self::UnsupportedCodec { mime_type },
            CapabilitiesError::CannotAllocate => Self::CannotAllocate,
            CapabilitiesError::InvalidAptParameter(text) => Self::InvalidAptParameter(Cow::Owned(text)),
            CapabilitiesError::DuplicatedPreferredPayloadType(pt) => Self::DuplicatedPreferredPayloadType(pt),
        }
    }
}

impl From<&RtpParametersMappingError> for MappingError {
    fn from(error: &RtpParametersMappingError) -> Self {
        match *error {
            RtpParametersMappingError::UnsupportedCodec { mime_type, payload_type } => {
                Self::UnsupportedCodec { mime_type, payload_type }
            }
            RtpParametersMappingError::UnsupportedRtxCodec { preferred_payload_type } => {
                Self::UnsupportedRtxCodec { preferred_payload_type }
            }
            RtpParametersMappingError::MissingMediaCodecForRtx { payload_type } => {
                Self::MissingMediaCodecForRtx { payload_type }
            }
        }
    }
}

impl From<MappingError> for RtpParametersMappingError {
    fn from(error: MappingError) -> Self {
        match error {
            MappingError::UnsupportedCodec { mime_type, payload_type } => {
                Self::UnsupportedCodec { mime_type, payload_type }
            }
            MappingError::UnsupportedRtxCodec { preferred_payload_type } => {
                Self::UnsupportedRtxCodec { preferred_payload_type }
            }
            MappingError::MissingMediaCodecForRtx { payload_type } => Self::MissingMediaCodecForRtx { payload_type },
        }
    }
}

/// A wire error as mediasoup's request error (what is not one of mediasoup's refusals).
pub(crate) fn request_error(error: WireError) -> RequestError {
    match error {
        WireError::LinkDown => RequestError::ChannelClosed,
        other => RequestError::Response { reason: other.to_string() },
    }
}

fn refused(error: MediasoupError) -> WireError {
    WireError::Mediasoup(Payload::new(&error))
}

/// What a host answers for a failed `produce`.
pub(crate) fn of_produce(error: ProduceError) -> WireError {
    match error {
        ProduceError::AlreadyExists(id) => refused(MediasoupError::ProducerExists(id)),
        ProduceError::IncorrectRtpParameters(RtpParametersError::InvalidAptParameter(text)) => {
            refused(MediasoupError::IncorrectRtpParameters(text.to_string()))
        }
        ProduceError::FailedRtpParametersMapping(e) => refused(MediasoupError::RtpParametersMapping((&e).into())),
        ProduceError::Request(e) => WireError::Failed(e.to_string()),
    }
}

/// What a host answers for a failed `consume`.
pub(crate) fn of_consume(error: ConsumeError) -> WireError {
    match error {
        ConsumeError::ProducerNotFound(id) => refused(MediasoupError::ProducerNotFound(id)),
        ConsumeError::FailedRtpCapabilitiesValidation(e) => refused(MediasoupError::InvalidCapabilities((&e).into())),
        ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::InvalidCapabilities(e)) => {
            refused(MediasoupError::BadConsumerRtpParameters(Some((&e).into())))
        }
        ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::NoCompatibleMediaCodecs) => {
            refused(MediasoupError::BadConsumerRtpParameters(None))
        }
        ConsumeError::Request(e) => WireError::Failed(e.to_string()),
    }
}

/// What a host answers for a failed `produce_data`.
pub(crate) fn of_produce_data(error: ProduceDataError) -> WireError {
    match error {
        ProduceDataError::AlreadyExists(id) => refused(MediasoupError::DataProducerExists(id)),
        ProduceDataError::SctpStreamParametersRequired => refused(MediasoupError::SctpStreamParametersRequired),
        ProduceDataError::Request(e) => WireError::Failed(e.to_string()),
    }
}

/// What a host answers for a failed `consume_data`.
pub(crate) fn of_consume_data(error: ConsumeDataError) -> WireError {
    match error {
        ConsumeDataError::DataProducerNotFound(id) => refused(MediasoupError::DataProducerNotFound(id)),
        ConsumeDataError::NoSctpStreamId => refused(MediasoupError::NoSctpStreamId),
        ConsumeDataError::Request(e) => WireError::Failed(e.to_string()),
    }
}

/// The refusal inside `error`, if it is one.
fn refusal(error: &WireError) -> Option<MediasoupError> {
    match error {
        WireError::Mediasoup(payload) => payload.get().ok(),
        _ => None,
    }
}

/// mediasoup's `produce` error for what a host answered.
pub(crate) fn produce_error(error: WireError) -> ProduceError {
    match refusal(&error) {
        Some(MediasoupError::ProducerExists(id)) => ProduceError::AlreadyExists(id),
        Some(MediasoupError::IncorrectRtpParameters(text)) => {
            ProduceError::IncorrectRtpParameters(RtpParametersError::InvalidAptParameter(Cow::Owned(text)))
        }
        Some(MediasoupError::RtpParametersMapping(e)) => ProduceError::FailedRtpParametersMapping(e.into()),
        _ => ProduceError::Request(request_error(error)),
    }
}

/// mediasoup's `consume` error for what a host answered.
pub(crate) fn consume_error(error: WireError) -> ConsumeError {
    match refusal(&error) {
        Some(MediasoupError::ProducerNotFound(id)) => ConsumeError::ProducerNotFound(id),
        Some(MediasoupError::InvalidCapabilities(e)) => ConsumeError::FailedRtpCapabilitiesValidation(e.into()),
        Some(MediasoupError::BadConsumerRtpParameters(Some(e))) => {
            ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::InvalidCapabilities(e.into()))
        }
        Some(MediasoupError::BadConsumerRtpParameters(None)) => {
            ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::NoCompatibleMediaCodecs)
        }
        _ => ConsumeError::Request(request_error(error)),
    }
}

/// mediasoup's `produce_data` error for what a host answered.
pub(crate) fn produce_data_error(error: WireError) -> ProduceDataError {
    match refusal(&error) {
        Some(MediasoupError::DataProducerExists(id)) => ProduceDataError::AlreadyExists(id),
        Some(MediasoupError::SctpStreamParametersRequired) => ProduceDataError::SctpStreamParametersRequired,
        _ => ProduceDataError::Request(request_error(error)),
    }
}

/// mediasoup's `consume_data` error for what a host answered.
pub(crate) fn consume_data_error(error: WireError) -> ConsumeDataError {
    match refusal(&error) {
        Some(MediasoupError::DataProducerNotFound(id)) => ConsumeDataError::DataProducerNotFound(id),
        Some(MediasoupError::NoSctpStreamId) => ConsumeDataError::NoSctpStreamId,
        _ => ConsumeDataError::Request(request_error(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediasoup::prelude::MimeTypeVideo;

    #[test]
    fn refusals_cross_the_wire_with_their_variant() {
        let mapping = || RtpParametersMappingError::UnsupportedCodec {
            mime_type: MimeType::Video(MimeTypeVideo::Vp9),
            payload_type: 101,
        };
        let wire = of_produce(ProduceError::FailedRtpParametersMapping(mapping()));
        let bytes =
            crate::cluster::proto::encode(&crate::cluster::proto::Message::Response { id: 1, result: Err(wire) })
                .expect("encodes");
        let mut reader = crate::cluster::proto::FrameReader::default();
        reader.push(&crate::cluster::proto::preamble(crate::cluster::proto::PROTOCOL_VERSION));
        reader.push(&bytes);
        let Ok(Some(crate::cluster::proto::Message::Response { result: Err(wire), .. })) = reader.next_message() else {
            panic!("a response")
        };
        assert!(matches!(produce_error(wire), ProduceError::FailedRtpParametersMapping(e) if e == mapping()));
        let id: ProducerId = uuid::Uuid::new_v4().to_string().parse().expect("id");
        assert!(
            matches!(consume_error(of_consume(ConsumeError::ProducerNotFound(id))), ConsumeError::ProducerNotFound(got) if got == id)
        );
        let none =
            of_consume(ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::NoCompatibleMediaCodecs));
        assert!(matches!(
            consume_error(none),
            ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::NoCompatibleMediaCodecs)
        ));
        // A request failure stays one.
        assert!(matches!(consume_error(WireError::Failed("x".into())), ConsumeError::Request(_)));
    }
}
