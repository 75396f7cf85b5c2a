//! The same mediasoup program (tests/compat/conferencing.rs, unchanged) run against
//! mafalda-host deployed with `MAFALDA_POLICY=spread` and 2 workers: its transports spread over
//! both workers, so the media it checks crosses a pipe between them — checked here through
//! mafalda's `cell()` extension, not assumed.

#[path = "conferencing.rs"]
mod program;

use mediasoup::config::HostOptions;
use mediasoup::worker_manager::WorkerManager;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_program_spread_over_two_workers_moves_media_across_them() {
    // Exactly what the environment of such a deployment says.
    let options = HostOptions::from_vars(|key| match key {
        "MAFALDA_POLICY" => Some("spread".to_owned()),
        "MAFALDA_MAX_WORKERS" => Some("2".to_owned()),
        _ => None,
    })
    .expect("options");
    let manager = WorkerManager::with_options(options);
    let host = manager.host().clone();
    let mut crossed = false;
    program::conference(manager, |input, output| {
        assert_ne!(input.cell(), output.cell(), "producer and consumer on different workers under spread");
        crossed = true;
    })
    .await;
    assert!(crossed, "the program reached its media check");
    assert_eq!(host.cells().len(), 2, "both workers served the program");
}
