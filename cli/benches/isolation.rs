//! Worker isolation as users run it (`cargo bench -p mafalda-host-cli --bench isolation`):
//! 1. forwarding per worker CPU: one producer fanned out to consumers in one worker, the worker
//!    a thread of this process vs a worker process, in alternating rounds (packets forwarded
//!    per second of the worker thread's own CPU time; goal: process / thread >= 0.97);
//! 2. memory per worker process (resident, idle and with the fan-out);
//! 3. time from a worker process's SIGKILL to its replacement offering its worker.
//!
//! The control path latency (in-process, process, remote) is in the `cluster` bench.

use mafalda_host::config::HostOptions;
use mafalda_host::isolation::Isolation;
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator, RtpSink};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const ROUNDS: usize = 4;
const CONSUMERS: usize = 40;
const RATE: u32 = 500;
const SECONDS: u64 = 4;
const CRASHES: usize = 5;

fn manager(isolation: Isolation) -> WorkerManager {
    let mut options = HostOptions::default();
    options.pool.max_workers = 1;
    options.pool.min_workers = 1;
    options.pool.isolation = Some(isolation);
    options.pool.worker_bin = Some(PathBuf::from(env!("CARGO_BIN_EXE_mafalda-host")));
    WorkerManager::with_options(options)
}

fn quiet() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Error;
    settings
}

fn median_spread(mut values: Vec<f64>) -> String {
    values.sort_by(f64::total_cmp);
    let median = values[values.len() / 2];
    format!("{median:.3} [{:.3} – {:.3}]", values[0], values[values.len() - 1])
}

/// CPU time so far of the mediasoup worker threads of process `pid` (`self` for this one),
/// from `/proc/PID/task/*/schedstat`.
fn worker_threads_cpu(pid: &str) -> f64 {
    let mut nanos = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.starts_with("mediasoup-worke") {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            nanos += stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    nanos as f64 / 1e9
}

/// The worker CPU of a manager's one worker: its thread here, or its process's.
fn worker_cpu(manager: &WorkerManager) -> f64 {
    let stats = manager.host().stats();
    match stats.cells.first().and_then(|c| c.process) {
        Some(process) => worker_threads_cpu(&process.pid.to_string()),
        // This process's worker threads: the thread manager's worker, and the idle RTP
        // capabilities workers of both managers (no media: no CPU to speak of).
        None => worker_threads_cpu("self"),
    }
}

struct Fanout {
    _kept: (Worker, Router, PlainTransport, Producer, RtpGenerator),
    outputs: Vec<(PlainTransport, Consumer, RtpSink)>,
}

async fn fanout(manager: &WorkerManager) -> Fanout {
    let worker = manager.create_worker(quiet()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(7))).await.expect("producer");
    let mut outputs = Vec::new();
    for _ in 0..CONSUMERS {
        let t = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t");
        let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
        t.connect(sink.remote_parameters()).await.expect("connect");
        let c = t.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
        outputs.push((t, c, sink));
    }
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(7).with_rate(RATE)).await.expect("generator");
    Fanout { _kept: (worker, router, input, producer, generator), outputs }
}

/// Packets forwarded per second of worker CPU over `SECONDS` (the worker threads' own CPU
/// time, read from `/proc`).
async fn forwarding(manager: &WorkerManager, room: &Fanout) -> f64 {
    let count = |room: &Fanout| room.outputs.iter().map(|(_, _, s)| s.report().intact).sum::<u64>();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (before, cpu_before) = (count(room), worker_cpu(manager));
    tokio::time::sleep(Duration::from_secs(SECONDS)).await;
    let packets = (count(room) - before) as f64;
    packets / (worker_cpu(manager) - cpu_before).max(1e-6)
}

fn rss_mib(manager: &WorkerManager) -> f64 {
    let stats = manager.host().stats();
    stats.cells.iter().filter_map(|c| c.process?.rss_bytes).map(|b| b as f64 / (1 << 20) as f64).sum()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let thread = manager(Isolation::Thread);
    let process = manager(Isolation::Process);
    let idle = process.create_worker(quiet()).await.expect("worker");
    let idle_rss = rss_mib(&process);
    drop(idle);
    let (thread_room, process_room) = (fanout(&thread).await, fanout(&process).await);
    let (mut t, mut p, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = forwarding(&thread, &thread_room).await;
            (a, forwarding(&process, &process_room).await)
        } else {
            let b = forwarding(&process, &process_room).await;
            (forwarding(&thread, &thread_room).await, b)
        };
        t.push(a);
        p.push(b);
        ratios.push(b / a);
    }
    println!("Isolation: 1 producer x {CONSUMERS} consumers at {RATE} pps, {ROUNDS} alternating rounds of {SECONDS} s");
    println!("  packets per second of worker CPU, thread:  {}", median_spread(t));
    println!("  packets per second of worker CPU, process: {}", median_spread(p));
    println!("  process / thread: {} (goal >= 0.97)", median_spread(ratios));
    println!(
        "  resident memory of a worker process: idle {idle_rss:.1} MiB, with the fan-out {:.1} MiB",
        rss_mib(&process)
    );
    drop(process_room);
    drop(thread_room);

    // Each crash on a host of its own: the first crash of a slot restarts at once (later ones
    // within a minute wait their back-off).
    let mut times = Vec::new();
    for _ in 0..CRASHES {
        let fresh = manager(Isolation::Process);
        let host = fresh.host();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        host.on_new_cell(move |cell| {
            let _ = tx.send(*cell);
        })
        .detach();
        let _keep = fresh.create_worker(quiet()).await.expect("worker");
        let _ = rx.recv().await;
        let pid = host.stats().cells.first().and_then(|c| c.process).expect("a worker process").pid;
        let killed = Instant::now();
        // SAFETY: kill has no memory effects; the pid is this process's child.
        unsafe { libc::kill(i32::try_from(pid).expect("pid"), libc::SIGKILL) };
        tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("replaced").expect("event");
        times.push(killed.elapsed().as_secs_f64() * 1000.0);
    }
    println!("  SIGKILL to replacement ready (ms, {CRASHES} crashes): {}", median_spread(times));
}
