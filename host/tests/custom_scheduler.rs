//! The custom scheduler example (`examples/custom-scheduler`, compiled to wasm) in a real room:
//! presenters never share a worker, viewers join their room's worker, and a presenter that
//! would break the rule when every worker has one is refused.

mod common;

use common::{options_with, placement_plugin, quiet_settings};
use mafalda_host::labels::PlacementHints;
use mafalda_host::prelude::*;
use mafalda_host::worker::RequestError;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use std::collections::BTreeSet;

fn labelled(room: &str, role: &str) -> PlainTransportOptions {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.app_data = AppData::new(PlacementHints::labels([("room", room), ("role", role)]));
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presenters_never_share_a_worker() {
    let plugin = placement_plugin("room_affinity", &[]);
    let manager = WorkerManager::with_options(options_with(3, plugin.clone()));
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");

    let mut presenters = Vec::new();
    for _ in 0..3 {
        presenters.push(router.create_plain_transport(labelled("blue", "presenter")).await.expect("presenter"));
    }
    let cells: BTreeSet<_> = presenters.iter().map(PlainTransport::cell).collect();
    assert_eq!(cells.len(), 3, "three presenters, three workers");

    // Viewers go where the room already is (the rule keeps rooms together).
    let viewer = router.create_plain_transport(labelled("blue", "viewer")).await.expect("viewer");
    assert!(cells.contains(&viewer.cell()));

    // A fourth presenter would share a worker: refused, with the plugin's reason.
    match router.create_plain_transport(labelled("blue", "presenter")).await {
        Err(RequestError::Response { reason }) => assert!(reason.contains("presenter"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    let counters = manager.host().placement_counters();
    assert_eq!((counters.rejections, counters.fallbacks), (1, 0));
    assert!(plugin.counters().calls >= 5);
}
