//! Fields mediasoup keeps private in the options an application passes (`ProducerOptions`'s
//! pipe id, `DataProducerOptions`' id and SCTP stream, `DataConsumerOptions`' producer and
//! reliability), read from their derived `Debug` form. A worker of another host needs them on
//! the wire and mediasoup offers no getter; the unit tests below pin the format, so a mediasoup
//! upgrade that changes it fails here first.

use super::proto::{ConsumeDataWire, SctpStreamWire};
use mediasoup::data_consumer::DataConsumerOptions;
use mediasoup::data_producer::{DataProducerId, DataProducerOptions};
use mediasoup::producer::{ProducerId, ProducerOptions};

/// The text of field `name` in a derived `Debug` struct form (up to the next `,` or `}` at the
/// same nesting depth).
fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}: ");
    let mut from = 0;
    let start = loop {
        let at = text[from..].find(&key)? + from;
        let head = text[..at].trim_end();
        if head.ends_with(',') || head.ends_with('{') {
            break at + key.len();
        }
        from = at + key.len();
    };
    let mut depth = 0i32;
    for (i, c) in text[start..].char_indices() {
        match c {
            '(' | '{' | '[' => depth += 1,
            ')' | '}' | ']' if depth == 0 => return Some(text[start..start + i].trim()),
            ')' | '}' | ']' => depth -= 1,
            ',' if depth == 0 => return Some(text[start..start + i].trim()),
            _ => {}
        }
    }
    None
}

/// The uuid inside `Some(XId(uuid))` or `XId(uuid)`.
fn id_in(value: &str) -> Option<&str> {
    let open = value.find("Id(")? + 3;
    value.get(open..open + 36)
}

fn option_u16(value: &str) -> Option<u16> {
    value.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok()
}

fn option_bool(value: &str) -> Option<bool> {
    value.strip_prefix("Some(")?.strip_suffix(')')?.parse().ok()
}

/// The pipe producer id (`ProducerOptions::new_pipe_transport`), if any.
pub(crate) fn pipe_producer_id(options: &ProducerOptions) -> Option<ProducerId> {
    let text = format!("{options:?}");
    id_in(field(&text, "id")?)?.parse().ok()
}

/// The id and SCTP stream of data producer options.
pub(crate) fn data_producer(options: &DataProducerOptions) -> (Option<DataProducerId>, Option<SctpStreamWire>) {
    let text = format!("{options:?}");
    let id = field(&text, "id").and_then(id_in).and_then(|id| id.parse().ok());
    let sctp = field(&text, "sctp_stream_parameters").filter(|v| v.starts_with("Some(")).and_then(|sctp| {
        Some(SctpStreamWire {
            stream_id: field(sctp, "stream_id")?.parse().ok()?,
            ordered: field(sctp, "ordered")?.parse().ok()?,
            max_packet_life_time: field(sctp, "max_packet_life_time").and_then(option_u16),
            max_retransmits: field(sctp, "max_retransmits").and_then(option_u16),
        })
    });
    (id, sctp)
}

/// Data consumer options on the wire.
pub(crate) fn data_consumer(options: &DataConsumerOptions) -> Option<ConsumeDataWire> {
    let text = format!("{options:?}");
    Some(ConsumeDataWire {
        data_producer_id: id_in(field(&text, "data_producer_id")?)?.parse().ok()?,
        ordered: field(&text, "ordered").and_then(option_bool),
        max_packet_life_time: field(&text, "max_packet_life_time").and_then(option_u16),
        max_retransmits: field(&text, "max_retransmits").and_then(option_u16),
        paused: options.paused,
        subchannels: options.subchannels.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mediasoup::prelude::{MediaKind, RtpParameters, SctpStreamParameters};

    fn uuid() -> String {
        uuid::Uuid::new_v4().to_string()
    }

    #[test]
    fn producer_pipe_ids() {
        let id: ProducerId = uuid().parse().expect("uuid");
        let options = ProducerOptions::new_pipe_transport(id, MediaKind::Audio, RtpParameters::default());
        assert_eq!(pipe_producer_id(&options), Some(id));
        assert_eq!(pipe_producer_id(&ProducerOptions::new(MediaKind::Audio, RtpParameters::default())), None);
    }

    #[test]
    fn data_producer_ids_and_streams() {
        let id: DataProducerId = uuid().parse().expect("uuid");
        let options =
            DataProducerOptions::new_pipe_transport(id, SctpStreamParameters::new_unordered_with_retransmits(3, 7));
        let (got, sctp) = data_producer(&options);
        assert_eq!(got, Some(id));
        let sctp = sctp.expect("sctp");
        assert_eq!(
            (sctp.stream_id, sctp.ordered, sctp.max_packet_life_time, sctp.max_retransmits),
            (3, false, None, Some(7))
        );
        let (got, sctp) = data_producer(&DataProducerOptions::new_sctp(SctpStreamParameters::new_ordered(5)));
        assert_eq!(got, None);
        assert_eq!(sctp.map(|s| (s.stream_id, s.ordered)), Some((5, true)));
        assert_eq!(data_producer(&DataProducerOptions::new_direct()), (None, None));
    }

    #[test]
    fn data_consumer_reliability() {
        let id: DataProducerId = uuid().parse().expect("uuid");
        let wire = data_consumer(&DataConsumerOptions::new_sctp_unordered_with_life_time(id, 500)).expect("wire");
        assert_eq!(
            (wire.data_producer_id, wire.ordered, wire.max_packet_life_time, wire.max_retransmits),
            (id, Some(false), Some(500), None)
        );
        let wire = data_consumer(&DataConsumerOptions::new_direct(id, Some(vec![1, 2]))).expect("wire");
        assert_eq!((wire.ordered, wire.subchannels), (None, Some(vec![1, 2])));
        let wire = data_consumer(&DataConsumerOptions::new_sctp_unordered_with_retransmits(id, 4)).expect("wire");
        assert_eq!(wire.max_retransmits, Some(4));
    }
}
