//! Options of producers and data endpoints whose fields mediasoup keeps partly private (a pipe
//! producer's id, a data producer's id and SCTP stream, a data consumer's delivery), as
//! mafalda's own types with mediasoup's constructors and public fields: every part is readable
//! inside the crate, so a worker of another host gets all of it on the wire, and they become
//! mediasoup's types at a real worker of this process.

use mediasoup::data_producer::DataProducerId;
use mediasoup::prelude::{AppData, MediaKind, RtpParameters, SctpStreamParameters};
use mediasoup::producer::ProducerId;

/// Producer options: mediasoup's (`ProducerOptions`), with the pipe producer id readable.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerOptions {
    id: Option<ProducerId>,
    /// Media kind.
    pub kind: MediaKind,
    /// RTP parameters defining what the endpoint is sending.
    pub rtp_parameters: RtpParameters,
    /// Whether the producer must start in paused mode. Default false.
    pub paused: bool,
    /// Just for video: time (ms) before asking the sender for a new key frame after a previous
    /// request. If 0 there is no delay.
    pub key_frame_request_delay: u32,
    /// Add mediasoup's custom packet-id header extension to RTP packets received from the
    /// sender endpoint.
    pub enable_mediasoup_packet_id_header_extension: bool,
    /// Custom application data.
    pub app_data: AppData,
}

impl ProducerOptions {
    /// Options of a producer on a pipe transport, keeping the piped producer's id.
    #[must_use]
    pub fn new_pipe_transport(producer_id: ProducerId, kind: MediaKind, rtp_parameters: RtpParameters) -> Self {
        Self { id: Some(producer_id), ..Self::new(kind, rtp_parameters) }
    }

    /// Options of a producer on any other transport.
    #[must_use]
    pub fn new(kind: MediaKind, rtp_parameters: RtpParameters) -> Self {
        Self {
            id: None,
            kind,
            rtp_parameters,
            paused: false,
            key_frame_request_delay: 0,
            enable_mediasoup_packet_id_header_extension: false,
            app_data: AppData::default(),
        }
    }

    /// The piped producer's id (pipe transports only).
    pub(crate) fn pipe_id(&self) -> Option<ProducerId> {
        self.id
    }

    /// mediasoup's options.
    pub(crate) fn into_real(self) -> mediasoup::producer::ProducerOptions {
        let mut real = match self.id {
            Some(id) => mediasoup::producer::ProducerOptions::new_pipe_transport(id, self.kind, self.rtp_parameters),
            None => mediasoup::producer::ProducerOptions::new(self.kind, self.rtp_parameters),
        };
        real.paused = self.paused;
        real.key_frame_request_delay = self.key_frame_request_delay;
        real.enable_mediasoup_packet_id_header_extension = self.enable_mediasoup_packet_id_header_extension;
        real.app_data = self.app_data;
        real
    }
}

/// Data producer options: mediasoup's (`DataProducerOptions`), with the id and SCTP stream
/// readable.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DataProducerOptions {
    id: Option<DataProducerId>,
    sctp_stream_parameters: Option<SctpStreamParameters>,
    /// A label which can be used to distinguish this data channel from others.
    pub label: String,
    /// Name of the sub-protocol used by this data channel.
    pub protocol: String,
    /// Whether the data producer must start in paused mode. Default false.
    pub paused: bool,
    /// Custom application data.
    pub app_data: AppData,
}

impl DataProducerOptions {
    fn with(id: Option<DataProducerId>, sctp_stream_parameters: Option<SctpStreamParameters>) -> Self {
        Self {
            id,
            sctp_stream_parameters,
            label: String::new(),
            protocol: String::new(),
            paused: false,
            app_data: AppData::default(),
        }
    }

    /// Options of a data producer on a pipe transport, keeping the piped data producer's id.
    #[must_use]
    pub fn new_pipe_transport(data_producer_id: DataProducerId, sctp_stream_parameters: SctpStreamParameters) -> Self {
        Self::with(Some(data_producer_id), Some(sctp_stream_parameters))
    }

    /// Options of a data producer sending over SCTP.
    #[must_use]
    pub fn new_sctp(sctp_stream_parameters: SctpStreamParameters) -> Self {
        Self::with(None, Some(sctp_stream_parameters))
    }

    /// Options of a data producer on a direct transport.
    #[must_use]
    pub fn new_direct() -> Self {
        Self::with(None, None)
    }

    /// The piped data producer's id (pipe transports only).
    pub(crate) fn pipe_id(&self) -> Option<DataProducerId> {
        self.id
    }

    /// The SCTP stream it sends on (none on a direct transport).
    pub(crate) fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.sctp_stream_parameters
    }

    /// mediasoup's options.
    pub(crate) fn into_real(self) -> mediasoup::data_producer::DataProducerOptions {
        let mut real = match (self.id, self.sctp_stream_parameters) {
            (Some(id), Some(sctp)) => mediasoup::data_producer::DataProducerOptions::new_pipe_transport(id, sctp),
            (_, Some(sctp)) => mediasoup::data_producer::DataProducerOptions::new_sctp(sctp),
            _ => mediasoup::data_producer::DataProducerOptions::new_direct(),
        };
        real.label = self.label;
        real.protocol = self.protocol;
        real.paused = self.paused;
        real.app_data = self.app_data;
        real
    }
}

/// How a data consumer delivers over SCTP (mediasoup keeps this private in its options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// As the data producer does (or in order for direct data producers).
    Inherit,
    /// Reliably, in order.
    Ordered,
    /// Unordered, retransmitted for at most this many milliseconds.
    LifeTime(u16),
    /// Unordered, retransmitted at most this many times.
    Retransmits(u16),
}

/// `DataConsumer` options: mediasoup's, whose data producer the virtual router can read (it
/// pipes that data producer to the consuming transport's worker first).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DataConsumerOptions {
    data_producer_id: DataProducerId,
    delivery: Delivery,
    /// Whether the DataConsumer must start in paused mode. Default false.
    pub paused: bool,
    /// Subchannels this DataConsumer initially subscribes to.
    pub subchannels: Option<Vec<u16>>,
    /// Custom application data.
    pub app_data: AppData,
}

impl DataConsumerOptions {
    fn with(data_producer_id: DataProducerId, delivery: Delivery, subchannels: Option<Vec<u16>>) -> Self {
        Self { data_producer_id, delivery, paused: false, subchannels, app_data: AppData::default() }
    }

    /// Inherits parameters of the corresponding data producer.
    #[must_use]
    pub fn new_sctp(data_producer_id: DataProducerId) -> Self {
        Self::with(data_producer_id, Delivery::Inherit, None)
    }

    /// For a direct transport.
    #[must_use]
    pub fn new_direct(data_producer_id: DataProducerId, subchannels: Option<Vec<u16>>) -> Self {
        Self::with(data_producer_id, Delivery::Inherit, subchannels)
    }

    /// Messages will be sent reliably in order.
    #[must_use]
    pub fn new_sctp_ordered(data_producer_id: DataProducerId) -> Self {
        Self::with(data_producer_id, Delivery::Ordered, None)
    }

    /// Messages will be sent unreliably with time (in milliseconds) after which a SCTP packet
    /// will stop being retransmitted.
    #[must_use]
    pub fn new_sctp_unordered_with_life_time(data_producer_id: DataProducerId, max_packet_life_time: u16) -> Self {
        Self::with(data_producer_id, Delivery::LifeTime(max_packet_life_time), None)
    }

    /// Messages will be sent unreliably with a limited number of retransmission attempts.
    #[must_use]
    pub fn new_sctp_unordered_with_retransmits(data_producer_id: DataProducerId, max_retransmits: u16) -> Self {
        Self::with(data_producer_id, Delivery::Retransmits(max_retransmits), None)
    }

    /// The data producer to consume.
    pub(crate) fn data_producer_id(&self) -> DataProducerId {
        self.data_producer_id
    }

    /// These options consuming `id` (the data producer as the consuming cell knows it).
    pub(crate) fn consuming(mut self, id: DataProducerId) -> Self {
        self.data_producer_id = id;
        self
    }

    /// How messages are delivered over SCTP, as (ordered, max packet life time, max
    /// retransmits); all `None`: as the data producer does.
    pub(crate) fn reliability(&self) -> (Option<bool>, Option<u16>, Option<u16>) {
        match self.delivery {
            Delivery::Inherit => (None, None, None),
            Delivery::Ordered => (Some(true), None, None),
            Delivery::LifeTime(ms) => (Some(false), Some(ms), None),
            Delivery::Retransmits(n) => (Some(false), None, Some(n)),
        }
    }

    /// mediasoup's options (the application data stays with the virtual object).
    pub(crate) fn into_real(self) -> mediasoup::data_consumer::DataConsumerOptions {
        let id = self.data_producer_id;
        let mut real = match self.delivery {
            Delivery::Inherit => mediasoup::data_consumer::DataConsumerOptions::new_direct(id, None),
            Delivery::Ordered => mediasoup::data_consumer::DataConsumerOptions::new_sctp_ordered(id),
            Delivery::LifeTime(ms) => {
                mediasoup::data_consumer::DataConsumerOptions::new_sctp_unordered_with_life_time(id, ms)
            }
            Delivery::Retransmits(n) => {
                mediasoup::data_consumer::DataConsumerOptions::new_sctp_unordered_with_retransmits(id, n)
            }
        };
        real.paused = self.paused;
        real.subchannels = self.subchannels;
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    #[test]
    fn every_part_of_the_options_is_readable() {
        let id: ProducerId = uuid().parse().expect("uuid");
        let piped = ProducerOptions::new_pipe_transport(id, MediaKind::Audio, RtpParameters::default());
        assert_eq!(piped.pipe_id(), Some(id));
        assert_eq!(ProducerOptions::new(MediaKind::Video, RtpParameters::default()).pipe_id(), None);

        let data: DataProducerId = uuid().parse().expect("uuid");
        let sctp = SctpStreamParameters::new_unordered_with_retransmits(3, 7);
        let options = DataProducerOptions::new_pipe_transport(data, sctp);
        assert_eq!((options.pipe_id(), options.sctp_stream_parameters()), (Some(data), Some(sctp)));
        assert_eq!(DataProducerOptions::new_direct().sctp_stream_parameters(), None);

        let reliability = |o: DataConsumerOptions| o.reliability();
        assert_eq!(reliability(DataConsumerOptions::new_sctp(data)), (None, None, None));
        assert_eq!(reliability(DataConsumerOptions::new_sctp_ordered(data)), (Some(true), None, None));
        assert_eq!(
            reliability(DataConsumerOptions::new_sctp_unordered_with_life_time(data, 500)),
            (Some(false), Some(500), None)
        );
        assert_eq!(
            reliability(DataConsumerOptions::new_sctp_unordered_with_retransmits(data, 4)),
            (Some(false), None, Some(4))
        );
        let other: DataProducerId = uuid().parse().expect("uuid");
        assert_eq!(DataConsumerOptions::new_direct(data, Some(vec![1])).consuming(other).data_producer_id(), other);
    }

    #[test]
    fn mediasoups_options_keep_every_public_field() {
        let mut options = ProducerOptions::new(MediaKind::Video, RtpParameters::default());
        options.paused = true;
        options.key_frame_request_delay = 300;
        let real = options.into_real();
        assert!(real.paused);
        assert_eq!(real.key_frame_request_delay, 300);
        let mut data = DataProducerOptions::new_direct();
        data.label = "chat".into();
        data.protocol = "json".into();
        let real = data.into_real();
        assert_eq!((real.label.as_str(), real.protocol.as_str()), ("chat", "json"));
    }
}
