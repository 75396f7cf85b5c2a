//! RTP observers (audio level, active speaker): made on a router, the producers they watch.

use super::*;
use mediasoup::active_speaker_observer::ActiveSpeakerObserverOptions;
use mediasoup::audio_level_observer::AudioLevelObserverOptions;
use mediasoup::producer::ProducerId;
use mediasoup::rtp_observer::RtpObserverAddProducerOptions;
use std::num::NonZeroU16;

pub(super) async fn handle(call: Call<'_>, op: Op) -> Result<Reply, WireError> {
    let held = &call.held;
    match op {
        Op::CreateAudioLevelObserver { max_entries, threshold, interval, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_audio_level_observer", held)) };
            let mut options = AudioLevelObserverOptions::default();
            options.max_entries =
                NonZeroU16::new(max_entries).ok_or(WireError::BadRequest("max_entries is 0".into()))?;
            options.threshold = threshold;
            options.interval = interval;
            let o = real.create_audio_level_observer(options).await.map_err(failed)?;
            let handle = call.hold(Held::AudioLevel(o.clone()), None, |e| {
                let mut handlers = watch_observer(e, o.as_ref());
                handlers.extend(events_of!(audio_level_observer => forward_events!(e, o)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::Observer { id: o.id(), paused: o.paused() };
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreateActiveSpeakerObserver { interval, .. } => {
            let Held::Router(real) = held else { return Err(wrong("create_active_speaker_observer", held)) };
            let mut options = ActiveSpeakerObserverOptions::default();
            options.interval = interval;
            let o = real.create_active_speaker_observer(options).await.map_err(failed)?;
            let handle = call.hold(Held::ActiveSpeaker(o.clone()), None, |e| {
                let mut handlers = watch_observer(e, o.as_ref());
                handlers.extend(events_of!(active_speaker_observer => forward_events!(e, o)));
                handlers
            });
            // The state is read once its events are forwarded: none falls between.
            let info = ObjectInfo::Observer { id: o.id(), paused: o.paused() };
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::AddProducer { producer_id, .. } => {
            let o = held.observer().ok_or_else(|| wrong("add_producer", held))?;
            let producer_id: ProducerId = unpack(&producer_id)?;
            o.add_producer(RtpObserverAddProducerOptions::new(producer_id)).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RemoveProducer { producer_id, .. } => {
            let o = held.observer().ok_or_else(|| wrong("remove_producer", held))?;
            o.remove_producer(unpack(&producer_id)?).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        other => Err(misrouted(&other)),
    }
}

/// What every RTP observer forwards: its close and its declared events.
fn watch_observer(events: &Emitter, observer: &dyn RtpObserverBackend) -> Vec<HandlerId> {
    let e = events.clone();
    let mut handlers = vec![observer.on_close(Box::new(move || e.closed()))];
    handlers.extend(events_of!(rtp_observer => forward_events!(events, observer)));
    handlers
}
