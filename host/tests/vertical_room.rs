//! The vertical-scaling room: 1 audio + 1 video producer on worker A, 12 consumers whose
//! transports a test policy spreads over 3 workers. Every consumer receives every packet
//! intact, each producer is piped exactly once into each extra worker, closing consumers
//! releases their pipes, and the emptied worker is released after its idle grace.

mod common;

use common::{cell_closed_events, plain_producer, router, sink_consumer, slotted_manager, EVENT_LIMIT};
use mafalda_host::host::CloseReason;
use mafalda_host::placement::CellId;
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use mafalda_media_tools::media::{opus_send_parameters, vp8_send_parameters};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

const PACKETS: u32 = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_over_three_workers() {
    let manager = slotted_manager(3);
    let (_worker, router) = router(&manager).await;
    let pipe_events = Arc::new(Mutex::new(Vec::new()));
    let events = Arc::clone(&pipe_events);
    router.on_pipe(move |e| events.lock().unwrap().push(e.clone())).detach();

    let (audio_in, audio) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0xa0d1)).await;
    let (video_in, video) = plain_producer(&router, 0, MediaKind::Video, vp8_send_parameters(0x7e0)).await;

    // 12 consumers, 4 per worker: slots 0,1,2 alternate; audio and video alternate.
    let mut consumers = Vec::new();
    for i in 0..12 {
        let (producer, kind) =
            if i % 2 == 0 { (audio.id(), PayloadKind::Opus) } else { (video.id(), PayloadKind::Vp8KeyFrame) };
        consumers.push((i % 3, sink_consumer(&router, producer, kind, i % 3).await));
    }
    let cells: BTreeSet<CellId> = consumers.iter().map(|(_, (t, _, _))| t.cell()).collect();
    assert_eq!(cells.len(), 3, "the policy spread the consumers over 3 workers");
    assert_eq!(manager.host().cells().len(), 3);
    let home = audio_in.cell();
    assert_eq!(video_in.cell(), home);

    let audio_gen =
        RtpGenerator::start(&audio_in, GeneratorConfig::opus(0xa0d1).with_rate(200).with_count(PACKETS.into()));
    let video_gen =
        RtpGenerator::start(&video_in, GeneratorConfig::vp8(0x7e0).with_rate(200).with_count(PACKETS.into()));
    let (audio_gen, video_gen) = (audio_gen.await.expect("audio generator"), video_gen.await.expect("video generator"));
    audio_gen.finished().await.expect("audio sent");
    video_gen.finished().await.expect("video sent");
    for (slot, (_, consumer, sink)) in &consumers {
        let report = sink.wait_for(PACKETS.into(), EVENT_LIMIT).await;
        assert!(
            report.has_all(PACKETS),
            "consumer {} in slot {slot}: {} of {PACKETS}",
            consumer.id(),
            report.indices.len()
        );
        assert_eq!(report.corrupt, 0);
    }

    // Exactly one pipe per producer per extra worker.
    let mut pipes = router.pipes();
    pipes.sort_by_key(|(source, cell)| (format!("{source:?}"), *cell));
    let extra: Vec<CellId> = cells.iter().copied().filter(|c| *c != home).collect();
    assert_eq!(pipes.len(), 4, "{pipes:?}");
    for producer in [audio.id(), video.id()] {
        let into: Vec<CellId> =
            pipes.iter().filter(|(s, _)| *s == PipeSource::Producer(producer)).map(|(_, c)| *c).collect();
        assert_eq!(into.iter().copied().collect::<BTreeSet<_>>(), extra.iter().copied().collect());
    }
    assert_eq!(pipe_events.lock().unwrap().len(), 4, "one pipe event per pipe");
    assert_eq!(router.stats().pipes, 4);
    assert_eq!(router.stats().consumers, 12);

    // The merged dump is mediasoup's shape: 2 producers with their 6 consumers each, the 14
    // transports the application made, no internal pipe objects.
    let dump = router.dump().await.expect("dump");
    assert_eq!(dump.transport_ids.len(), 14);
    assert_eq!(dump.map_producer_id_consumer_ids[&audio.id()].len(), 6);
    assert_eq!(dump.map_producer_id_consumer_ids[&video.id()].len(), 6);
    assert_eq!(dump.map_consumer_id_producer_id.len(), 12);

    // Closing the consumers of the last worker releases its pipes, then the worker itself.
    let mut closed_rx = cell_closed_events(manager.host());
    let last = *extra.iter().max().expect("an extra cell");
    let last_slot = consumers.iter().find(|(_, (t, _, _))| t.cell() == last).map(|(s, _)| *s).expect("slot");
    consumers.retain(|(slot, _)| *slot != last_slot);
    let pipes = router.pipes();
    assert_eq!(pipes.len(), 2, "the 2 pipes into {last} were released: {pipes:?}");
    assert!(pipes.iter().all(|(_, cell)| *cell != last));
    assert_eq!(router.stats().pipes, 2);
    let closed = tokio::time::timeout(EVENT_LIMIT, closed_rx.recv()).await.expect("idle release").expect("event");
    assert_eq!(closed.cell, last);
    assert_eq!(closed.reason, CloseReason::Idle);
    assert!(closed.lost_transports.is_empty());
    assert_eq!(manager.host().cells().len(), 2);

    // The two remaining workers keep serving: a new producer piped to the middle worker flows.
    let (fresh_in, fresh) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0xa0d2)).await;
    let (_t, _c, sink) = sink_consumer(&router, fresh.id(), PayloadKind::Opus, 1).await;
    let generator = RtpGenerator::start(&fresh_in, GeneratorConfig::opus(0xa0d2).with_rate(200).with_count(30))
        .await
        .expect("generator");
    generator.finished().await.expect("sent");
    let report = sink.wait_for(30, EVENT_LIMIT).await;
    assert!(report.has_all(30), "after the release: {} of 30", report.indices.len());
    assert_eq!(router.pipes().len(), 3);
}
