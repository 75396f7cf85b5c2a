//! Data producers and consumers: made on a transport, and a data consumer's messages,
//! buffering and subchannels.

use super::super::refusals;
use super::*;
use crate::options::{DataConsumerOptions, DataProducerOptions};

pub(super) async fn handle(call: Call<'_>, op: Op) -> Result<Reply, WireError> {
    let held = &call.held;
    match op {
        Op::ProduceData { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("produce_data", held))?;
            let wire = unpack(&options)?;
            let mut full = match (wire.id, wire.sctp) {
                (Some(id), Some(sctp)) => DataProducerOptions::new_pipe_transport(id, sctp.parameters()),
                (_, Some(sctp)) => DataProducerOptions::new_sctp(sctp.parameters()),
                _ => DataProducerOptions::new_direct(),
            };
            full.label = wire.label;
            full.protocol = wire.protocol;
            full.paused = wire.paused;
            let p = transport.produce_data(full).await.map_err(refusals::of_produce_data)?;
            let handle = call.hold(Held::DataProducer(p.clone()), Some(Count::DataProducer), |e| {
                let closed = e.clone();
                let mut handlers = vec![p.on_close(Box::new(move || closed.closed()))];
                handlers.extend(events_of!(data_producer => forward_events!(e, p)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::DataProducer(DataProducerInfo {
                id: p.id(),
                r#type: p.r#type(),
                sctp_stream_parameters: p.sctp_stream_parameters().as_ref().map(SctpStreamWire::of),
                label: p.label(),
                protocol: p.protocol(),
                paused: p.paused(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::ConsumeData { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("consume_data", held))?;
            let wire = unpack(&options)?;
            let id = wire.data_producer_id;
            let direct = matches!(held, Held::Direct(_));
            let mut full = match (direct, wire.ordered, wire.max_packet_life_time, wire.max_retransmits) {
                (true, ..) => DataConsumerOptions::new_direct(id, wire.subchannels.clone()),
                (false, _, Some(life), _) => DataConsumerOptions::new_sctp_unordered_with_life_time(id, life),
                (false, _, None, Some(n)) => DataConsumerOptions::new_sctp_unordered_with_retransmits(id, n),
                (false, Some(true), None, None) => DataConsumerOptions::new_sctp_ordered(id),
                (false, _, None, None) => DataConsumerOptions::new_sctp(id),
            };
            full.paused = wire.paused;
            full.subchannels = wire.subchannels;
            let c = transport.consume_data(full).await.map_err(refusals::of_consume_data)?;
            let handle = call.hold(Held::DataConsumer(c.clone()), Some(Count::DataConsumer), |e| {
                let closed = e.clone();
                let mut handlers = vec![c.on_close(Box::new(move || closed.closed()))];
                handlers.extend(events_of!(data_consumer => forward_events!(e, c)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::DataConsumer(DataConsumerInfo {
                id: c.id(),
                r#type: c.r#type(),
                sctp_stream_parameters: c.sctp_stream_parameters().as_ref().map(SctpStreamWire::of),
                label: c.label(),
                protocol: c.protocol(),
                paused: c.paused(),
                producer_paused: c.producer_paused(),
                subchannels: c.subchannels(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::SendToDataConsumer { ppid, payload, .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("send", held)) };
            let message = WebRtcMessage::new(ppid, Cow::Owned(payload))
                .map_err(|ppid| WireError::BadRequest(format!("unknown PPID {ppid}")))?;
            Ok(Reply::Number(c.send(message).await.map_err(failed)?))
        }
        Op::GetBufferedAmount { .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("get_buffered_amount", held)) };
            Ok(Reply::Number(c.get_buffered_amount().await.map_err(failed)?))
        }
        Op::SetBufferedAmountLowThreshold { threshold, .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("set_buffered_amount_low_threshold", held)) };
            c.set_buffered_amount_low_threshold(threshold).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetSubchannels { subchannels, .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("set_subchannels", held)) };
            c.set_subchannels(subchannels).await.map_err(failed)?;
            packed(&c.subchannels())
        }
        Op::AddSubchannel { subchannel, .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("add_subchannel", held)) };
            c.add_subchannel(subchannel).await.map_err(failed)?;
            packed(&c.subchannels())
        }
        Op::RemoveSubchannel { subchannel, .. } => {
            let Held::DataConsumer(c) = held else { return Err(wrong("remove_subchannel", held)) };
            c.remove_subchannel(subchannel).await.map_err(failed)?;
            packed(&c.subchannels())
        }
        other => Err(misrouted(&other)),
    }
}
