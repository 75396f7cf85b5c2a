//! Soak: a real `mafalda-host serve --workers 2` process (its workers in child processes, as
//! `serve` runs by default) serves an application linked to it over the cluster protocol, which
//! keeps `--consumers` consumers with media for `--minutes`: Opus RTP at 50 packets/s from
//! `--producers` generators (one room each, every room's subscribers spread over both workers by
//! the `spread` policy, so the producers are piped between them), every consumer on a plain
//! transport of its own sending to a socket of this process, which counts the packets. Peers
//! join and leave all along: `--churn` transports a minute are closed and created (a subscriber
//! of a room leaves and another joins; every tenth step a small room of its own — router, send
//! transport, producer, receive transport, consumer — leaves and another joins).
//!
//! Every 10 s it samples the host: RSS, open fds and threads of the `serve` process and of its
//! worker processes (from `/proc`), the totals of its `/status` and what its `/metrics` count
//! (RTP sent, the cluster session's held objects), and the packets that reached the sockets
//! here. It prints them as a table, then a summary: RSS after the warm-up (the first 2 minutes,
//! a third of shorter runs) min / median / max and its drift (goal within ±5 %), fds and
//! threads min / max (goal flat), and, once everything has left, the host's totals back to zero
//! and its stats back to where they started.
//!
//! Run: `cargo bench -p mafalda-host-cli --bench soak` (10 minutes, 1,000 consumers); a short
//! check: `cargo bench -p mafalda-host-cli --bench soak -- --minutes 1 --consumers 200`.

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;
#[path = "../tests/ops_support/mod.rs"]
mod ops_support;

use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::packet::is_rtcp;
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const IP: &str = "127.0.0.70";
const CLUSTER_PORT: u16 = 4443;
const ADMIN: &str = "127.0.0.70:9464";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The warm-up left out of the RSS figures: 2 minutes, or a third of a shorter run.
const WARM_UP: Duration = Duration::from_secs(120);
/// Packets per second of every producer.
const PPS: u64 = 50;
/// Subscribers created at once while the rooms fill.
const JOIN_BATCH: usize = 32;
/// How long the host may take to forget everything once the application left.
const LEAVE_LIMIT: Duration = Duration::from_secs(60);

struct Args {
    minutes: f64,
    consumers: usize,
    producers: usize,
    churn: usize,
}

/// `--minutes M` (default 10), `--consumers N` (1000), `--producers P` (4), `--churn T`
/// (transports a minute, 100); anything else (cargo's `--bench`) is ignored.
fn args() -> Args {
    let mut parsed = Args { minutes: 10.0, consumers: 1000, producers: 4, churn: 100 };
    let all: Vec<String> = std::env::args().skip(1).collect();
    let mut at = 0;
    while at < all.len() {
        let value = all.get(at + 1).cloned().unwrap_or_default();
        let number =
            |what: &str| -> f64 { value.parse().unwrap_or_else(|_| panic!("{what} needs a number, got '{value}'")) };
        match all[at].as_str() {
            "--minutes" => parsed.minutes = number("--minutes"),
            "--consumers" => parsed.consumers = number("--consumers") as usize,
            "--producers" => parsed.producers = (number("--producers") as usize).max(1),
            "--churn" => parsed.churn = number("--churn") as usize,
            _ => {
                at += 1;
                continue;
            }
        }
        at += 2;
    }
    parsed
}

/// The `serve` process; killed when dropped. Its log is read on a thread (the last lines kept,
/// warnings and errors counted).
struct Serve {
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    warnings: Arc<AtomicU64>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &std::path::Path) -> Self {
        let listen = format!("{IP}:{CLUSTER_PORT}");
        let mut child = Command::new(cluster_support::binary())
            .args(["serve", "--workers", "2", "--max-workers", "2", "--listen", &listen, "--announced-ip", IP])
            .args(["--node", "soak", "--tls-dir", dir.to_str().expect("utf-8"), "--admin", ADMIN])
            .env_remove("MAFALDA_ADMIN")
            .env_remove("MAFALDA_CLUSTER")
            .env_remove("MAFALDA_MAX_WORKERS")
            .env("RUST_LOG", "warn,mafalda_host::cluster::server=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mafalda-host serve");
        let stderr = child.stderr.take().expect("stderr");
        let (up_tx, up) = std::sync::mpsc::channel();
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let warnings = Arc::new(AtomicU64::new(0));
        {
            let (tail, warnings) = (Arc::clone(&tail), Arc::clone(&warnings));
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("cluster endpoint up") {
                        let _ = up_tx.send(());
                    }
                    if line.contains(" WARN ") || line.contains(" ERROR ") {
                        warnings.fetch_add(1, Ordering::Relaxed);
                    }
                    let mut tail = tail.lock().expect("tail");
                    tail.push_back(line);
                    if tail.len() > 20 {
                        tail.pop_front();
                    }
                }
            });
        }
        let serve = Self { child, tail, warnings };
        if up.recv_timeout(Duration::from_secs(60)).is_err() {
            panic!("serve did not come up within 60 s; its log:\n{}", serve.log());
        }
        let since = Instant::now();
        while get("/healthz").is_none() {
            assert!(since.elapsed() < Duration::from_secs(30), "the admin server on {ADMIN} never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn log(&self) -> String {
        self.tail.lock().expect("tail").iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// `GET path` from the admin server: the body of a 200, else `None`.
fn get(path: &str) -> Option<String> {
    let reply = ops_support::request(ADMIN, "GET", path, &[], &[]).ok()?;
    (reply.status == 200).then_some(reply.body)
}

fn status() -> serde_json::Value {
    serde_json::from_str(&get("/status").expect("GET /status")).expect("/status is JSON")
}

/// One process now: resident memory (bytes), open fds, threads.
#[derive(Clone, Copy, Debug, Default)]
struct Proc {
    rss: u64,
    fds: u64,
    threads: u64,
}

impl std::ops::Add for Proc {
    type Output = Proc;
    fn add(self, other: Proc) -> Proc {
        Proc { rss: self.rss + other.rss, fds: self.fds + other.fds, threads: self.threads + other.threads }
    }
}

fn read_proc(pid: i32) -> Proc {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Proc { rss: field("VmRSS:") * 1024, fds, threads: field("Threads:") }
}

/// The host's totals (`/status` `stats.totals`) and per-cell counts.
fn totals(status: &serde_json::Value) -> [u64; 5] {
    let t = &status["stats"]["totals"];
    ["cells", "transports", "producers", "consumers", "pipes"].map(|k| t[k].as_u64().unwrap_or(u64::MAX))
}

fn cell_counts(status: &serde_json::Value) -> Vec<Vec<u64>> {
    let keys = ["transports", "producers", "consumers", "pipes", "data_producers", "data_consumers", "routers"];
    status["stats"]["cells"]
        .as_array()
        .map(|cells| cells.iter().map(|c| keys.iter().map(|k| c[*k].as_u64().unwrap_or(u64::MAX)).collect()).collect())
        .unwrap_or_default()
}

/// One row of the table.
struct Sample {
    t: f64,
    host: Proc,
    workers: Proc,
    worker_count: usize,
    totals: [u64; 5],
    sessions: u64,
    held: f64,
    sent: f64,
    received: u64,
    consumers: usize,
    app_pipes: u32,
}

/// What the application has now: packets received here, consumers, and the pipes its routers
/// made between the host's workers (the host counts their pipe transports, consumers and
/// producers as ordinary objects of the session).
#[derive(Clone, Copy, Default)]
struct App {
    received: u64,
    consumers: usize,
    pipes: u32,
}

fn sample(serve: &Serve, t: f64, app: App) -> Sample {
    let workers: Vec<i32> = cluster_support::children_of(serve.pid());
    let status = status();
    let metrics = get("/metrics").unwrap_or_default();
    Sample {
        t,
        host: read_proc(serve.pid()),
        workers: workers.iter().map(|pid| read_proc(*pid)).fold(Proc::default(), |a, b| a + b),
        worker_count: workers.len(),
        totals: totals(&status),
        sessions: status["sessions"].as_u64().unwrap_or(0),
        held: ops_support::metric_sum(&metrics, "mafalda_cluster_held_objects"),
        sent: ops_support::metric_sum(&metrics, "mafalda_cell_rtp_sent_packets_total"),
        received: app.received,
        consumers: app.consumers,
        app_pipes: app.pipes,
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn header() {
    println!(
        "{:>6} {:>9} {:>9} {:>9} {:>11} {:>9} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>4} {:>6} {:>9} {:>8} {:>8} {:>7}",
        "t s",
        "host MB",
        "wkrs MB",
        "total MB",
        "fds h+w",
        "thr h+w",
        "wkrs",
        "cells",
        "trans",
        "prod",
        "cons",
        "pipes",
        "sess",
        "held",
        "app pipes",
        "rx pps",
        "due pps",
        "deliv %"
    );
}

fn row(s: &Sample, before: Option<&Sample>) {
    let (rx, due) = match before {
        Some(b) => {
            let seconds = (s.t - b.t).max(1e-3);
            let rx = (s.received - b.received) as f64 / seconds;
            // Due: what the live consumers forward (their count at both ends, averaged).
            (rx, (s.consumers + b.consumers) as f64 / 2.0 * PPS as f64)
        }
        None => (0.0, 0.0),
    };
    let delivery = if due > 0.0 { format!("{:.1}", 100.0 * rx / due) } else { "-".into() };
    println!(
        "{:>6.0} {:>9.1} {:>9.1} {:>9.1} {:>11} {:>9} {:>5} {:>5} {:>5} {:>5} {:>5} {:>5} {:>4} {:>6} {:>9} {:>8.0} {:>8.0} {:>7}",
        s.t,
        mb(s.host.rss),
        mb(s.workers.rss),
        mb(s.host.rss + s.workers.rss),
        format!("{}+{}", s.host.fds, s.workers.fds),
        format!("{}+{}", s.host.threads, s.workers.threads),
        s.worker_count,
        s.totals[0],
        s.totals[1],
        s.totals[2],
        s.totals[3],
        s.totals[4],
        s.sessions,
        s.held,
        s.app_pipes,
        rx,
        due,
        delivery
    );
}

/// A socket of this process standing for a peer: counts the RTP packets (not RTCP) it gets.
struct Sink {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    async fn bind(received: &Arc<AtomicU64>) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("sink socket");
        let port = socket.local_addr().expect("sink address").port();
        let received = Arc::clone(received);
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok(len) = socket.recv(&mut buf).await {
                if !is_rtcp(&buf[..len]) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self { port, task }
    }

    fn remote(&self) -> PlainTransportRemoteParameters {
        PlainTransportRemoteParameters {
            ip: Some("127.0.0.1".parse().expect("ip")),
            port: Some(self.port),
            rtcp_port: None,
            srtp_parameters: None,
        }
    }
}

/// A subscriber: a plain transport consuming one producer, sending to a sink here.
struct Subscriber {
    _consumer: Consumer,
    _transport: PlainTransport,
    _sink: Sink,
}

async fn subscribe(router: &Router, producer: ProducerId, received: &Arc<AtomicU64>) -> Subscriber {
    let sink = Sink::bind(received).await;
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    transport.connect(sink.remote()).await.expect("connect");
    let consumer = transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await.expect("consume");
    Subscriber { _consumer: consumer, _transport: transport, _sink: sink }
}

/// A room: a router, a producer fed by a generator at 50 packets/s, its subscribers (oldest
/// first).
struct Room {
    router: Router,
    producer: Producer,
    _input: PlainTransport,
    _generator: RtpGenerator,
    subscribers: VecDeque<Subscriber>,
}

async fn room(worker: &Worker, ssrc: u32) -> Room {
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let (input, producer) = cluster_support::opus_input(&router, ssrc).await;
    let generator = RtpGenerator::start(&input, GeneratorConfig::opus(ssrc)).await.expect("generator");
    Room { router, producer, _input: input, _generator: generator, subscribers: VecDeque::new() }
}

/// Fills `room` with `count` more subscribers, `JOIN_BATCH` joining at once.
async fn fill(room: &mut Room, count: usize, received: &Arc<AtomicU64>) {
    let mut left = count;
    while left > 0 {
        let batch = left.min(JOIN_BATCH);
        let mut joins = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let (router, producer, received) = (room.router.clone(), room.producer.id(), Arc::clone(received));
            joins.spawn(async move { subscribe(&router, producer, &received).await });
        }
        while let Some(subscriber) = joins.join_next().await {
            room.subscribers.push_back(subscriber.expect("subscriber joins"));
        }
        left -= batch;
    }
}

/// Worker settings without mediasoup's chatty default logging.
fn quiet() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    settings
}

/// Quantile `q` of `values` (sorted here).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

fn summary(samples: &[Sample], warm_up: Duration) {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.t >= warm_up.as_secs_f64()).collect();
    if after.len() < 2 {
        println!("too few samples after the warm-up for a summary");
        return;
    }
    println!(
        "\nafter the warm-up ({:.0} s), {} samples from {:.0} s to {:.0} s:",
        warm_up.as_secs_f64(),
        after.len(),
        after[0].t,
        after[after.len() - 1].t
    );
    let rss = |name: &str, pick: &dyn Fn(&Sample) -> u64| {
        let mut values: Vec<f64> = after.iter().map(|s| mb(pick(s))).collect();
        let (first, last) = (values[0], values[values.len() - 1]);
        let drift = 100.0 * (last - first) / first.max(1e-9);
        let verdict = if drift.abs() <= 5.0 { "ok" } else { "OUTSIDE the goal" };
        println!(
            "  RSS {name:<8} min {:.1} MB, median {:.1} MB, max {:.1} MB; drift first→last {drift:+.2} % (goal ±5 %: {verdict})",
            quantile(&mut values, 0.0),
            quantile(&mut values, 0.5),
            quantile(&mut values, 1.0),
        );
    };
    rss("host", &|s| s.host.rss);
    rss("workers", &|s| s.workers.rss);
    rss("total", &|s| s.host.rss + s.workers.rss);
    let range = |name: &str, pick: &dyn Fn(&Sample) -> u64| {
        let values: Vec<u64> = after.iter().map(|s| pick(s)).collect();
        let (min, max) = (values.iter().min().copied().unwrap_or(0), values.iter().max().copied().unwrap_or(0));
        println!("  {name:<15} min {min}, max {max}{}", if min == max { " (flat)" } else { "" });
    };
    range("fds host", &|s| s.host.fds);
    range("fds workers", &|s| s.workers.fds);
    range("threads host", &|s| s.host.threads);
    range("threads workers", &|s| s.workers.threads);
    let first = after[0];
    let last = after[after.len() - 1];
    let seconds = (last.t - first.t).max(1e-3);
    let rx = (last.received - first.received) as f64 / seconds;
    let due = after.iter().map(|s| s.consumers as f64).sum::<f64>() / after.len() as f64 * PPS as f64;
    println!(
        "  media: {rx:.0} packets/s reached the sockets here, {due:.0} due ({:.2} %); the host's /metrics counted {:.0} RTP packets/s sent",
        100.0 * rx / due.max(1e-9),
        (last.sent - first.sent) / seconds
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    raise_fd_limit();
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let warm_up = WARM_UP.min(duration / 3);
    let per_room = args.consumers.div_ceil(args.producers);
    println!(
        "soak: {:.1} min, {} consumers ({} rooms of {per_room}, Opus at {PPS} packets/s), {} transports closed and created a minute, host `serve --workers 2` on {IP}",
        args.minutes, args.consumers, args.producers, args.churn
    );
    let dir = cluster_support::scratch("soak");
    cluster_support::certs(&dir, &[("soak", IP)]);
    let serve = Serve::start(&dir);
    let started = Instant::now();
    let start_status = status();
    let start = sample(&serve, 0.0, App::default());

    let received = Arc::new(AtomicU64::new(0));
    // No workers of its own, the host's through the cluster link, placed by `spread`.
    let manager =
        cluster_support::application_at(&dir, &[format!("{IP}:{CLUSTER_PORT}")], &[("MAFALDA_POLICY", "spread")]);
    let worker = manager.create_worker(quiet()).await.expect("application worker");
    let mut rooms = Vec::new();
    for r in 0..args.producers {
        let mut room = room(&worker, 0x5000 + r as u32).await;
        let count = per_room.min(args.consumers - r * per_room);
        fill(&mut room, count, &received).await;
        rooms.push(room);
    }
    let app = |rooms: &[Room], side: &Option<(Room, Subscriber)>| App {
        received: received.load(Ordering::Relaxed),
        consumers: rooms.iter().map(|r| r.subscribers.len()).sum::<usize>() + usize::from(side.is_some()),
        pipes: manager.host().stats().routers.iter().map(|r| r.pipes).sum(),
    };
    println!("rooms filled in {:.1} s", started.elapsed().as_secs_f64());
    header();
    row(&start, None);

    let mut samples = Vec::new();
    let mut side: Option<(Room, Subscriber)> = None;
    let mut sampler = tokio::time::interval_at(tokio::time::Instant::now() + SAMPLE_EVERY, SAMPLE_EVERY);
    let step = Duration::from_secs_f64(60.0 / args.churn.max(1) as f64);
    let mut churner = tokio::time::interval_at(tokio::time::Instant::now() + step, step);
    let end = tokio::time::Instant::now() + duration;
    let (mut steps, mut churned) = (0u64, 0u64);
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = sampler.tick() => {
                let s = sample(&serve, started.elapsed().as_secs_f64(), app(&rooms, &side));
                row(&s, samples.last());
                samples.push(s);
            }
            _ = churner.tick() => {
                steps += 1;
                if steps.is_multiple_of(10) {
                    // A small room leaves and another joins: its router, send and receive
                    // transports, producer and consumer.
                    drop(side.take());
                    let small = room(&worker, 0x6000 + (steps as u32 % 1000)).await;
                    let subscriber = subscribe(&small.router, small.producer.id(), &received).await;
                    side = Some((small, subscriber));
                    churned += 2;
                } else {
                    // A peer leaves a room (its oldest) and another joins one.
                    let at = steps as usize % rooms.len();
                    rooms[at].subscribers.pop_front();
                    let next = (at + 1) % rooms.len();
                    let room = &mut rooms[next];
                    let subscriber = subscribe(&room.router, room.producer.id(), &received).await;
                    room.subscribers.push_back(subscriber);
                    churned += 1;
                }
            }
        }
    }
    let ran = started.elapsed();
    // A last sample unless the sampler just took one.
    if samples.last().is_none_or(|s| ran.as_secs_f64() - s.t > 2.0) {
        let last = sample(&serve, ran.as_secs_f64(), app(&rooms, &side));
        row(&last, samples.last());
        samples.push(last);
    }
    println!("{churned} transports closed and created by churn in {:.1} min", ran.as_secs_f64() / 60.0);
    summary(&samples, warm_up);

    // Everyone leaves; the application goes.
    drop((side, rooms, worker, manager));
    let since = Instant::now();
    let mut end_status = status();
    while totals(&end_status)[1..] != [0, 0, 0, 0] || end_status["sessions"].as_u64() != Some(0) {
        if since.elapsed() > LEAVE_LIMIT {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        end_status = status();
    }
    let left = since.elapsed();
    let after = sample(
        &serve,
        started.elapsed().as_secs_f64(),
        App { received: received.load(Ordering::Relaxed), ..App::default() },
    );
    println!("\nafter everyone left ({:.1} s to settle):", left.as_secs_f64());
    header();
    row(&start, None);
    row(&after, None);
    let back = totals(&end_status)[1..] == [0, 0, 0, 0];
    println!(
        "  totals (cells, transports, producers, consumers, pipes) {:?} at the start, {:?} now: {}",
        totals(&start_status),
        totals(&end_status),
        if back { "back to zero" } else { "NOT back to zero" }
    );
    let (cells_before, cells_after) = (cell_counts(&start_status), cell_counts(&end_status));
    println!(
        "  per-cell counts (transports, producers, consumers, pipes, data producers, data consumers, routers) {:?} → {:?}: {}",
        cells_before,
        cells_after,
        if cells_before == cells_after { "as at the start" } else { "DIFFERENT from the start" }
    );
    println!(
        "  cluster sessions {} (held objects {}); fds {} → {}, threads {} → {}, RSS {:.1} → {:.1} MB (host + workers)",
        end_status["sessions"],
        after.held,
        start.host.fds + start.workers.fds,
        after.host.fds + after.workers.fds,
        start.host.threads + start.workers.threads,
        after.host.threads + after.workers.threads,
        mb(start.host.rss + start.workers.rss),
        mb(after.host.rss + after.workers.rss),
    );
    let warnings = serve.warnings.load(Ordering::Relaxed);
    if warnings > 0 {
        println!("  the host logged {warnings} warnings or errors; its last lines:\n{}", serve.log());
    }
    drop(serve);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Raises this process's open-files limit to its hard limit (one socket per consumer here; the
/// host's processes inherit it).
fn raise_fd_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill and setrlimit to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
