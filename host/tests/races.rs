//! Races a production host meets: placements while the idle sampler releases workers (grace 0),
//! and concurrent routers with different codecs sharing the RTP-capabilities calculator, also
//! after the calculator's worker closed.

mod common;

use common::{quiet_settings, slot, ForceBySlot, EVENT_LIMIT};
use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_host::host::CloseReason;
use mafalda_host::prelude::*;
use mafalda_media_tools::media::loopback_listen_info;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

fn eager_release_options() -> HostOptions {
    HostOptions {
        pool: PoolOptions {
            max_workers: 2,
            min_workers: 1,
            idle_grace: Duration::ZERO,
            sample_interval: Duration::from_millis(2),
            ..PoolOptions::default()
        },
        policy: PolicyChoice::Custom(Arc::new(ForceBySlot)),
        ..HostOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placements_racing_idle_release_never_land_on_a_closed_worker() {
    let manager = WorkerManager::with_options(eager_release_options());
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(Vec::new())).await.expect("router");
    let mut placed = 0;
    let mut released = common::cell_closed_events(&host);
    let mut releases = 0;
    for round in 0..60 {
        // Four transports at once on the second worker, which the sampler releases as soon as
        // it is empty (grace 0): each must end up on an open worker and stay usable.
        let attempts = (0..4).map(|_| {
            let router = router.clone();
            async move {
                let mut options = PlainTransportOptions::new(loopback_listen_info());
                options.app_data = slot(1);
                tokio::time::timeout(EVENT_LIMIT, router.create_plain_transport(options)).await
            }
        });
        let transports: Vec<PlainTransport> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .map(|r| r.expect("placement within the bound").expect("placement succeeds (retried on a closing cell)"))
            .collect();
        for transport in &transports {
            assert!(host.cell(transport.cell()).is_some(), "round {round}: transport on a closed cell");
            assert!(!transport.closed());
            transport.get_stats().await.expect("the real transport answers");
        }
        placed += transports.len();
        drop(transports);
        while released.try_recv().is_ok() {
            releases += 1;
        }
    }
    assert_eq!(placed, 240);
    eprintln!("{releases} idle releases raced the placements");
    assert!(releases > 0, "the sampler released the second worker between rounds (the race was exercised)");
    // Released workers keep nothing alive: the host is back to its floor once idle.
    let deadline = tokio::time::Instant::now() + EVENT_LIMIT;
    while host.cells().len() > 1 {
        tokio::time::timeout_at(deadline, released.recv()).await.expect("idle release within the bound");
    }
}

fn audio(mime_type: MimeTypeAudio) -> RtpCodecCapability {
    RtpCodecCapability::Audio {
        mime_type,
        preferred_payload_type: None,
        clock_rate: NonZeroU32::new(48_000).expect("clock"),
        channels: std::num::NonZeroU8::new(2).expect("channels"),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: vec![],
    }
}

fn video(mime_type: MimeTypeVideo) -> RtpCodecCapability {
    RtpCodecCapability::Video {
        mime_type,
        preferred_payload_type: None,
        clock_rate: NonZeroU32::new(90_000).expect("clock"),
        parameters: RtpCodecParametersParameters::default(),
        rtcp_feedback: vec![],
    }
}

fn opus() -> RtpCodecCapability {
    audio(MimeTypeAudio::Opus)
}

fn vp8() -> RtpCodecCapability {
    video(MimeTypeVideo::Vp8)
}

fn h264() -> RtpCodecCapability {
    video(MimeTypeVideo::H264)
}

fn name(codec: &RtpCodecCapability) -> &'static str {
    match codec {
        RtpCodecCapability::Audio { mime_type, .. } => mime_type.as_str(),
        RtpCodecCapability::Video { mime_type, .. } => mime_type.as_str(),
    }
}

/// The media codecs (no RTX) of a router's capabilities.
fn mime_types(router: &Router) -> Vec<&'static str> {
    let mut mimes: Vec<&'static str> = router
        .rtp_capabilities()
        .codecs
        .iter()
        .map(|c| match c {
            mafalda_host::types::rtp_parameters::RtpCodecCapabilityFinalized::Audio { mime_type, .. } => {
                mime_type.as_str()
            }
            mafalda_host::types::rtp_parameters::RtpCodecCapabilityFinalized::Video { mime_type, .. } => {
                mime_type.as_str()
            }
        })
        .filter(|m| *m != MimeTypeVideo::Rtx.as_str())
        .collect();
    mimes.sort();
    mimes
}

fn expected(codecs: &[RtpCodecCapability]) -> Vec<&'static str> {
    let mut m: Vec<&'static str> = codecs.iter().map(name).collect();
    m.sort();
    m
}

/// Truly parallel tasks (a multi-thread runtime) interleave `create_router` with
/// `update_media_codecs` of routers created a moment before, all sharing the calculator: each
/// router gets its own capabilities. Closing every worker between rounds (idle release takes
/// the oldest first) changes nothing: the calculator does not live on a pool worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routers_created_and_updated_in_parallel_each_get_their_own_capabilities() {
    let manager = WorkerManager::with_options(eager_release_options());
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let sets = [vec![opus()], vec![vp8()], vec![opus(), h264()], vec![vp8(), h264()]];
    for round in 0..3 {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..24 {
            let (worker, sets) = (worker.clone(), sets.clone());
            tasks.spawn(async move {
                let created = &sets[i % sets.len()];
                let mut router = worker.create_router(RouterOptions::new(created.clone())).await.expect("router");
                let after_create = mime_types(&router);
                assert_eq!(after_create, expected(created), "round {round}: router {i} got another's codecs");
                let updated = &sets[(i + 1) % sets.len()];
                router.update_media_codecs(updated.clone()).expect("update_media_codecs");
                assert_eq!(mime_types(&router), expected(updated), "round {round}: update of router {i}");
                router
            });
        }
        let mut routers = Vec::new();
        while let Some(done) = tokio::time::timeout(EVENT_LIMIT, tasks.join_next()).await.expect("in time") {
            routers.push(done.expect("task"));
        }
        assert_eq!(routers.len(), 24);
        for cell in host.cells() {
            host.close_cell(cell.id(), CloseReason::Retired);
        }
        // With every pool worker closed, updates still work.
        for router in &mut routers {
            router.update_media_codecs(vec![opus()]).expect("update with no pool worker");
            assert_eq!(mime_types(router), expected(&[opus()]));
        }
    }
}
