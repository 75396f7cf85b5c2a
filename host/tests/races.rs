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

fn name(codec: &RtpCodecCapability) -> String {
    match codec {
        RtpCodecCapability::Audio { mime_type, .. } => format!("{mime_type:?}"),
        RtpCodecCapability::Video { mime_type, .. } => format!("{mime_type:?}"),
    }
}

fn mime_types(router: &Router) -> Vec<String> {
    let mut mimes: Vec<String> = router
        .rtp_capabilities()
        .codecs
        .iter()
        .map(|c| match c {
            mafalda_host::types::rtp_parameters::RtpCodecCapabilityFinalized::Audio { mime_type, .. } => {
                format!("{mime_type:?}")
            }
            mafalda_host::types::rtp_parameters::RtpCodecCapabilityFinalized::Video { mime_type, .. } => {
                format!("{mime_type:?}")
            }
        })
        .filter(|m| !m.contains("Rtx"))
        .collect();
    mimes.sort();
    mimes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_routers_each_get_their_own_capabilities_and_the_calculator_survives_its_worker() {
    let manager = WorkerManager::with_options(eager_release_options());
    let host = manager.host().clone();
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let sets = [vec![opus()], vec![vp8()], vec![opus(), h264()], vec![vp8(), h264()]];
    for round in 0..2 {
        let creations = (0..16).map(|i| {
            let (worker, codecs) = (worker.clone(), sets[i % sets.len()].clone());
            async move { (i, worker.create_router(RouterOptions::new(codecs)).await.expect("router")) }
        });
        let routers = futures::future::join_all(creations).await;
        let expected: Vec<Vec<String>> = sets
            .iter()
            .map(|codecs| {
                let mut m: Vec<String> = codecs.iter().map(name).collect();
                m.sort();
                m
            })
            .collect();
        for (i, router) in &routers {
            assert_eq!(mime_types(router), expected[i % sets.len()], "round {round}: router {i} got another's codecs");
        }
        // A concurrent update_media_codecs gets its own codecs too.
        let updates = routers.iter().map(|(i, router)| {
            let (i, codecs, mut router) = (*i, sets[(i + 1) % sets.len()].clone(), router.clone());
            tokio::task::spawn_blocking(move || router.update_media_codecs(codecs).map(|()| i))
        });
        for result in futures::future::join_all(updates).await {
            let i = result.expect("thread").expect("update_media_codecs");
            let router = &routers.iter().find(|(j, _)| *j == i).expect("router").1;
            assert_eq!(mime_types(router), expected[(i + 1) % sets.len()], "round {round}: update of router {i}");
        }
        // Every worker closes (the calculator's too); the next round must still work.
        for cell in host.cells() {
            host.close_cell(cell.id(), CloseReason::Retired);
        }
    }
}
