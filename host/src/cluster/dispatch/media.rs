//! Producers and consumers: made on a transport, and what a consumer's layers, priority and
//! key frames take.

use super::super::refusals;
use super::*;
use crate::options::ProducerOptions;
use mediasoup::consumer::ConsumerOptions;

pub(super) async fn handle(call: Call<'_>, op: Op) -> Result<Reply, WireError> {
    let held = &call.held;
    match op {
        Op::Produce { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("produce", held))?;
            let wire = unpack(&options)?;
            let mut full = match wire.id {
                Some(id) => ProducerOptions::new_pipe_transport(id, wire.kind, wire.rtp_parameters),
                None => ProducerOptions::new(wire.kind, wire.rtp_parameters),
            };
            full.paused = wire.paused;
            full.key_frame_request_delay = wire.key_frame_request_delay;
            full.enable_mediasoup_packet_id_header_extension = wire.enable_mediasoup_packet_id_header_extension;
            let p = transport.produce(full).await.map_err(refusals::of_produce)?;
            let handle = call.hold(Held::Producer(p.clone()), Some(Count::Producer), |e| {
                let closed = e.clone();
                let mut handlers = vec![p.on_close(Box::new(move || closed.closed()))];
                handlers.extend(events_of!(producer => forward_events!(e, p)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::Producer(ProducerInfo {
                id: p.id(),
                kind: p.kind(),
                rtp_parameters: p.rtp_parameters(),
                consumable_rtp_parameters: p.consumable_rtp_parameters(),
                r#type: p.r#type(),
                is_direct: p.is_direct(),
                paused: p.paused(),
                score: p.score(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::Consume { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("consume", held))?;
            let wire = unpack(&options)?;
            let mut full = ConsumerOptions::new(wire.producer_id, wire.rtp_capabilities);
            full.paused = wire.paused;
            full.mid = wire.mid;
            full.preferred_layers = wire.preferred_layers;
            full.enable_rtx = wire.enable_rtx;
            full.ignore_dtx = wire.ignore_dtx;
            full.pipe = wire.pipe;
            let c = transport.consume(full).await.map_err(refusals::of_consume)?;
            let handle = call.hold(Held::Consumer(c.clone()), Some(Count::Consumer), |e| {
                let closed = e.clone();
                let mut handlers = vec![c.on_close(Box::new(move || closed.closed()))];
                handlers.extend(events_of!(consumer => forward_events!(e, c)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::Consumer(ConsumerInfo {
                id: c.id(),
                kind: c.kind(),
                rtp_parameters: c.rtp_parameters(),
                r#type: c.r#type(),
                paused: c.paused(),
                producer_paused: c.producer_paused(),
                priority: c.priority(),
                score: c.score(),
                preferred_layers: c.preferred_layers(),
                current_layers: c.current_layers(),
            });
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::SetPreferredLayers { layers, .. } => {
            let Held::Consumer(c) = held else { return Err(wrong("set_preferred_layers", held)) };
            c.set_preferred_layers(unpack(&layers)?).await.map_err(failed)?;
            // What the worker made of them (mediasoup keeps its answer, not the request).
            packed(&c.preferred_layers())
        }
        Op::SetPriority { priority, .. } => {
            let Held::Consumer(c) = held else { return Err(wrong("set_priority", held)) };
            match priority {
                Some(priority) => c.set_priority(priority).await,
                None => c.unset_priority().await,
            }
            .map_err(failed)?;
            packed(&c.priority())
        }
        Op::RequestKeyFrame { .. } => {
            let Held::Consumer(c) = held else { return Err(wrong("request_key_frame", held)) };
            c.request_key_frame().await.map_err(failed)?;
            Ok(Reply::Done)
        }
        other => Err(misrouted(&other)),
    }
}
