//! The vertical-scaling room with placements made by the default `pack` plugin in wasm
//! (configured with a near-zero CPU watermark, so it spreads over 3 workers): every consumer
//! receives every packet, each producer is piped once into each other worker its consumers use,
//! closing consumers releases the pipes, the idle worker is released, and every decision came
//! from the plugin (no fallback).

mod common;

use common::{
    cell_closed_events, options_with, placement_plugin, plain_producer, quiet_settings, sink_consumer, EVENT_LIMIT,
};
use mafalda_host::host::CloseReason;
use mafalda_host::placement::CellId;
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use mafalda_media_tools::media::{opus_send_parameters, router_codecs, vp8_send_parameters};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::collections::{BTreeMap, BTreeSet};

const PACKETS: u32 = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_test_with_wasm_placement() {
    let plugin = placement_plugin("mafalda_plugin_pack", &[("cpu_watermark", "0.000001")]);
    let manager = WorkerManager::with_options(options_with(3, plugin.clone()));
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");

    let (audio_in, audio) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(0xa1)).await;
    let (video_in, video) = plain_producer(&router, 0, MediaKind::Video, vp8_send_parameters(0x71)).await;
    let homes = BTreeMap::from([(audio.id(), audio_in.cell()), (video.id(), video_in.cell())]);
    let mut consumers = Vec::new();
    for i in 0..12 {
        let (producer, kind) =
            if i % 2 == 0 { (audio.id(), PayloadKind::Opus) } else { (video.id(), PayloadKind::Vp8KeyFrame) };
        consumers.push((producer, sink_consumer(&router, producer, kind, 0).await));
    }
    let cells: BTreeSet<CellId> = consumers.iter().map(|(_, (t, _, _))| t.cell()).collect();
    assert_eq!(cells.len(), 3, "the plugin spread the consumers over 3 workers");

    let audio_gen =
        RtpGenerator::start(&audio_in, GeneratorConfig::opus(0xa1).with_rate(200).with_count(PACKETS.into()))
            .await
            .expect("generator");
    let video_gen =
        RtpGenerator::start(&video_in, GeneratorConfig::vp8(0x71).with_rate(200).with_count(PACKETS.into()))
            .await
            .expect("generator");
    audio_gen.finished().await.expect("sent");
    video_gen.finished().await.expect("sent");
    for (_, (_, consumer, sink)) in &consumers {
        let report = sink.wait_for(PACKETS.into(), EVENT_LIMIT).await;
        assert!(report.has_all(PACKETS), "consumer {}: {} of {PACKETS}", consumer.id(), report.indices.len());
        assert_eq!(report.corrupt, 0);
    }

    // Exactly one pipe per producer into each other worker where it is consumed.
    let pipes = router.pipes();
    for (producer, home) in &homes {
        let wanted: BTreeSet<CellId> = consumers
            .iter()
            .filter(|(p, _)| p == producer)
            .map(|(_, (t, _, _))| t.cell())
            .filter(|c| c != home)
            .collect();
        let got: Vec<CellId> =
            pipes.iter().filter(|(s, _)| *s == PipeSource::Producer(*producer)).map(|(_, c)| *c).collect();
        assert_eq!(got.len(), wanted.len(), "no duplicate pipes");
        assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), wanted);
    }

    // Every placement was the plugin's.
    let counters = manager.host().placement_counters();
    assert_eq!(counters.fallbacks, 0);
    assert!(plugin.counters().calls >= 14, "the plugin decided: {:?}", plugin.counters());

    // Closing the consumers of a worker without producers releases its pipes, then the worker.
    let mut closed_rx = cell_closed_events(manager.host());
    let busy: BTreeSet<CellId> = homes.values().copied().collect();
    let quiet = *cells.iter().find(|c| !busy.contains(c)).expect("a worker with consumers only");
    consumers.retain(|(_, (t, _, _))| t.cell() != quiet);
    assert!(router.pipes().iter().all(|(_, cell)| *cell != quiet), "its pipes were released");
    let closed = tokio::time::timeout(EVENT_LIMIT, closed_rx.recv()).await.expect("idle release").expect("event");
    assert_eq!((closed.cell, closed.reason), (quiet, CloseReason::Idle));
}
