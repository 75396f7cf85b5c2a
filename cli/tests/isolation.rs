//! Worker isolation with real processes and real media: each worker in a `mafalda-host worker`
//! child. A child that crashes (SIGSEGV, SIGABRT, SIGKILL) costs its own transports only: the
//! host lives, other rooms lose no packet, `on_cell_lost` names exactly the dead child's
//! transports, a replacement is placed on at once and nothing is left behind. A crash loop
//! stops at its limit; a killed host leaves no child; garbage on the socket ends that link only.

mod cluster_support;

use cluster_support::{alive, binary, children_of, opus_input, opus_output, scratch, until};
use mafalda_host::config::{HostOptions, PolicyChoice};
use mafalda_host::isolation::Isolation;
use mafalda_host::prelude::*;
use mafalda_host::router::CellLost;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator, RtpSink};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A host of `workers` worker processes running `bin`, two transports per worker (the built-in
/// packer keeps a room's transports together).
fn isolated(workers: usize, bin: &Path) -> WorkerManager {
    isolated_with(workers, bin, |_| {})
}

/// [`isolated`], with `change` applied to the options.
fn isolated_with(workers: usize, bin: &Path, change: impl FnOnce(&mut HostOptions)) -> WorkerManager {
    let mut options = HostOptions::default();
    options.pool.isolation = Some(Isolation::Process);
    options.pool.worker_bin = Some(bin.to_path_buf());
    options.pool.max_workers = workers;
    options.pool.min_workers = workers;
    options.policy = PolicyChoice::parse("pack").expect("pack");
    options.policy_given = true;
    options.max_transports = Some(2);
    change(&mut options);
    WorkerManager::with_options(options)
}

struct Room {
    router: Router,
    transports: Vec<TransportId>,
    sink: RtpSink,
    cell: mafalda_host::placement::CellId,
    _kept: (PlainTransport, PlainTransport, Producer, Consumer, RtpGenerator),
}

/// A producer fed by a generator and one consumer, in one worker.
async fn room(worker: &Worker, ssrc: u32) -> Room {
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = opus_input(&router, ssrc).await;
    let (output, consumer, sink) = opus_output(&router, &producer).await;
    assert_eq!(input.cell(), output.cell(), "a room's two transports share a worker");
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(ssrc).with_rate(100)).await.expect("generator");
    let report = sink.wait_for(20, Duration::from_secs(10)).await;
    assert!(report.intact >= 20, "media flows: {report:?}");
    let cell = input.cell();
    Room {
        router,
        transports: vec![input.id(), output.id()],
        sink,
        cell,
        _kept: (input, output, producer, consumer, generator),
    }
}

/// The pid of the worker process of `cell`.
fn pid_of(manager: &WorkerManager, cell: mafalda_host::placement::CellId) -> i32 {
    let stats = manager.host().stats();
    let process = stats.cells.iter().find(|c| c.id == cell).and_then(|c| c.process).expect("a worker process");
    i32::try_from(process.pid).expect("pid")
}

/// The cells the host adds from now on (replacements).
fn new_cells(manager: &WorkerManager) -> mpsc::UnboundedReceiver<mafalda_host::placement::CellId> {
    let (tx, rx) = mpsc::unbounded_channel();
    manager
        .host()
        .on_new_cell(move |cell| {
            let _ = tx.send(*cell);
        })
        .detach();
    rx
}

/// No packet of `room` is missing up to the last one received.
fn nothing_missing(room: &Room) {
    let report = room.sink.report();
    let last = report.indices.last().copied().expect("packets");
    assert!(report.has_all(last + 1), "a gap in the room's packets: {} of {}", report.indices.len(), last + 1);
    assert_eq!(report.corrupt, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_worker_process_costs_its_own_transports_only() {
    let manager = isolated(3, Path::new(binary()));
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let mut new_cells = new_cells(&manager);
    let mut rooms = vec![room(&worker, 0x10).await, room(&worker, 0x11).await, room(&worker, 0x12).await];
    let cells: HashSet<_> = rooms.iter().map(|r| r.cell).collect();
    assert_eq!(cells.len(), 3, "one room per worker process");
    for (round, signal) in [libc::SIGSEGV, libc::SIGABRT, libc::SIGKILL].into_iter().enumerate() {
        let victim = rooms.remove(0);
        let (lost_tx, mut lost_rx) = mpsc::unbounded_channel::<CellLost>();
        victim
            .router
            .on_cell_lost(move |lost| {
                let _ = lost_tx.send(lost.clone());
            })
            .detach();
        let pid = pid_of(&manager, victim.cell);
        let before: Vec<u64> = rooms.iter().map(|r| r.sink.report().intact).collect();
        let killed = Instant::now();
        // SAFETY: kill has no memory effects; the pid is our own child's.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signal {signal} sent");
        if signal == libc::SIGSEGV {
            // Rust's stack-overflow handler takes a SIGSEGV that no fault caused as spurious and
            // restores the default action (a real fault faults again and dies): a second one
            // is what a faulting instruction would do.
            tokio::time::sleep(Duration::from_millis(20)).await;
            // SAFETY: as above.
            unsafe { libc::kill(pid, signal) };
        }
        let lost =
            tokio::time::timeout(Duration::from_secs(5), lost_rx.recv()).await.expect("loss in time").expect("event");
        let named: HashSet<TransportId> = lost.lost_transports.iter().copied().collect();
        let expected: HashSet<TransportId> = victim.transports.iter().copied().collect();
        assert_eq!(named, expected, "round {round}: exactly the dead child's transports");
        let replacement = tokio::time::timeout(Duration::from_secs(5), new_cells.recv())
            .await
            .expect("a replacement in time")
            .expect("event");
        let replaced_in = killed.elapsed();
        assert!(replaced_in < Duration::from_secs(1), "round {round}: replaced in {replaced_in:?}");
        let fresh = room(&worker, 0x20 + u32::try_from(round).expect("round")).await;
        assert_eq!(fresh.cell, replacement, "the new room is placed on the replacement");
        until("the dead child is reaped", Duration::from_secs(2), || !alive(pid)).await;
        // The other rooms kept flowing through the crash, every packet counted.
        for (room, before) in rooms.iter().zip(&before) {
            let report = room.sink.wait_for(before + 50, Duration::from_secs(5)).await;
            assert!(report.intact >= before + 50, "round {round}: another room kept flowing: {report:?}");
            nothing_missing(room);
        }
        drop(victim);
        rooms.push(fresh);
    }
    assert!(manager.host().readiness().is_ok(), "three crashes in three slots are no crash loop");
    drop(rooms);
    drop(worker);
    let me = i32::try_from(std::process::id()).expect("pid");
    manager.host().close_all(Duration::from_secs(10)).await;
    until("no worker process is left", Duration::from_secs(8), || children_of(me).is_empty()).await;
}

/// A worker binary that starts the real worker `good` times, then dies at start.
fn flaky_bin(dir: &Path, good: u32) -> PathBuf {
    let script = dir.join("flaky-worker");
    let counter = dir.join("starts");
    let text = format!(
        "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0)\nn=$((n + 1))\necho $n > '{c}'\n\
         if [ $n -le {good} ]; then exec '{bin}' \"$@\"; fi\necho 'worker: cannot start (test)' >&2\nexit 3\n",
        c = counter.display(),
        bin = binary(),
    );
    std::fs::write(&script, text).expect("script");
    let mut perms = std::fs::metadata(&script).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).expect("chmod");
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_loop_stops_at_its_limit_and_the_host_serves_on_with_the_rest() {
    let dir = scratch("crash-loop");
    let manager = isolated(2, &flaky_bin(&dir, 2));
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let survivor = room(&worker, 0x30).await;
    let victim = room(&worker, 0x31).await;
    assert_ne!(survivor.cell, victim.cell);
    let pid = pid_of(&manager, victim.cell);
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // The kill and four failed starts: five crashes of the slot within the window.
    until("the crash loop is reported", Duration::from_secs(15), || manager.host().readiness().is_err()).await;
    let starts: u32 = std::fs::read_to_string(dir.join("starts")).expect("starts").trim().parse().expect("count");
    assert_eq!(starts, 2 + 4, "restarted until the limit, then left down");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again: u32 = std::fs::read_to_string(dir.join("starts")).expect("starts").trim().parse().expect("count");
    assert_eq!(again, starts, "no more restarts after the limit");
    // The host still serves with the other worker.
    let before = survivor.sink.report().intact;
    let report = survivor.sink.wait_for(before + 30, Duration::from_secs(5)).await;
    assert!(report.intact >= before + 30, "{report:?}");
    nothing_missing(&survivor);
    let dump = survivor.router.dump().await.expect("the surviving worker answers");
    assert_eq!(dump.transport_ids.len(), 2, "{dump:?}");
    drop(worker);
}

#[test]
fn a_killed_host_leaves_no_worker_process() {
    let mut host = std::process::Command::new(binary())
        .env("MAFALDA_ADMIN", "off")
        .args(["serve", "--workers", "2", "--isolation", "process"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("host");
    let parent = i32::try_from(host.id()).expect("pid");
    let since = Instant::now();
    let children = loop {
        let children = children_of(parent);
        if children.len() == 2 {
            break children;
        }
        assert!(since.elapsed() < Duration::from_secs(20), "two worker processes start: {children:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    host.kill().expect("SIGKILL the host");
    let _ = host.wait();
    let killed = Instant::now();
    while children.iter().any(|pid| alive(*pid)) {
        assert!(killed.elapsed() < Duration::from_secs(2), "worker processes outlived their host: {children:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_worker_socket_ends_that_link_only() {
    // The child's side: a parent that sends garbage is refused, and the child stops serving.
    let manager = WorkerManager::with_options(HostOptions::default());
    let _worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let (mut ours, theirs) = tokio::net::UnixStream::pair().expect("socketpair");
    let limits = mafalda_host::cluster::limits::ServeLimits::default();
    let serving = tokio::spawn(mafalda_host::cluster::server::serve_parent(
        std::sync::Arc::clone(manager.host()),
        theirs,
        limits,
    ));
    let mut bytes = mafalda_host::cluster::proto::preamble(mafalda_host::cluster::proto::PROTOCOL_VERSION).to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 9, 0xff, 0xfe, 0xfd, 1, 2, 3, 4, 5, 6]);
    tokio::io::AsyncWriteExt::write_all(&mut ours, &bytes).await.expect("garbage sent");
    let reason = tokio::time::timeout(Duration::from_secs(5), serving).await.expect("ends in time").expect("task");
    assert!(!reason.is_empty(), "ended with a reason");
    // The parent's side: a worker process that answers with garbage is refused and killed, and
    // the host starts another; the healthy workers serve on.
    let dir = scratch("garbage-child");
    let script = dir.join("garbage-worker");
    std::fs::write(&script, "#!/bin/sh\nprintf 'MAFA\\000\\005\\000\\000\\000\\011garbage!!' >&3\nread x <&3\n")
        .expect("script");
    let mut perms = std::fs::metadata(&script).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).expect("chmod");
    let hostile = isolated(1, &script);
    let started = Instant::now();
    let refused = hostile.create_worker(WorkerSettings::default()).await;
    assert!(refused.is_err(), "a worker that speaks garbage is not used");
    assert!(started.elapsed() < Duration::from_secs(10), "refused at once: {:?}", started.elapsed());
    let me = i32::try_from(std::process::id()).expect("pid");
    until("the garbage worker is killed", Duration::from_secs(5), || {
        children_of(me).iter().all(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |c| !c.windows(7).any(|w| w == b"garbage"))
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_server_listens_per_worker_process_and_again_after_a_crash() {
    let manager = isolated(2, Path::new(binary()));
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let mut new_cells = new_cells(&manager);
    let mut listen = loopback_listen_info();
    let base = 47_300 + (std::process::id() % 500) as u16;
    listen.port = Some(base);
    let server = worker
        .create_webrtc_server(mafalda_host::webrtc_server::WebRtcServerOptions::new(
            mafalda_host::webrtc_server::WebRtcServerListenInfos::new(listen),
        ))
        .await
        .expect("server");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut transports = Vec::new();
    // The packer puts two transports in the first worker process, the third in the second.
    for _ in 0..3 {
        let options = WebRtcTransportOptions::new_with_server(server.clone());
        transports.push(router.create_webrtc_transport(options).await.expect("webrtc transport"));
    }
    let port_of = |t: &WebRtcTransport| t.ice_candidates().first().map(|c| c.port).expect("a candidate");
    let stride = HostOptions::default().pool.webrtc_server_port_stride;
    let slot_of = |cell| manager.host().cell(cell).map(|c| c.slot()).expect("cell");
    for t in &transports {
        assert_eq!(port_of(t), base + stride * slot_of(t.cell()) as u16, "the server of the worker's slot");
    }
    let second = transports[2].cell();
    assert_ne!(second, transports[0].cell());
    let pid = pid_of(&manager, second);
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let replacement =
        tokio::time::timeout(Duration::from_secs(5), new_cells.recv()).await.expect("replaced").expect("event");
    assert_eq!(slot_of(replacement), 1, "the replacement takes the dead worker's slot");
    transports.truncate(2);
    let again = router
        .create_webrtc_transport(WebRtcTransportOptions::new_with_server(server.clone()))
        .await
        .expect("a transport on the replacement's server");
    assert_eq!(again.cell(), replacement);
    assert_eq!(port_of(&again), base + stride, "the replacement binds the slot's ports again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_worker_process_leaves_placement_and_returns_with_its_objects() {
    // Liveness 4 s: silent (out of placement) after 2 s, killed only after two pings of 4 s
    // each went unanswered; a 3.5 s stall costs no object.
    let manager = isolated_with(2, Path::new(binary()), |o| o.pool.worker_liveness = Duration::from_secs(4));
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker");
    let (calm, stalled) = (room(&worker, 0x40).await, room(&worker, 0x41).await);
    assert_ne!(calm.cell, stalled.cell);
    let pid = pid_of(&manager, stalled.cell);
    let host = manager.host();
    let draining = |cell| host.cell(cell).is_some_and(|c| c.is_draining());
    // SAFETY: kill has no memory effects; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let stopped = Instant::now();
    until("the stalled worker leaves placement", Duration::from_secs(4), || draining(stalled.cell)).await;
    assert!(!draining(calm.cell), "the other worker stays in placement");
    let left = Duration::from_millis(3_500).saturating_sub(stopped.elapsed());
    tokio::time::sleep(left).await;
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    until("the worker returns to placement once heard", Duration::from_secs(4), || !draining(stalled.cell)).await;
    assert!(alive(pid), "a stall is not a death");
    assert_eq!(pid_of(&manager, stalled.cell), pid, "the same worker process serves the cell");
    // Its objects are all there: media flows through it again. What reached it while it was
    // stopped was forwarded once it ran, up to its socket's kernel buffer (a stopped worker
    // thread in-process would lose the same); the other worker lost nothing.
    let before = stalled.sink.report().intact;
    let report = stalled.sink.wait_for(before + 30, Duration::from_secs(5)).await;
    assert!(report.intact >= before + 30, "{report:?}");
    let last = report.indices.last().copied().expect("packets");
    let missing = u64::from(last + 1) - report.indices.len() as u64;
    assert!(missing < 350, "at most what was sent during the 3.5 s stall at 100 pps is missing: {missing}");
    assert_eq!(report.corrupt, 0);
    nothing_missing(&calm);
}
