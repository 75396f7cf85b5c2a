//! P4, the cluster as a user meets it (loopback, real `mafalda-host serve` processes):
//! 1. `create_plain_transport` + `consume()` latency on an in-process worker, on a worker
//!    process of this host and through a remote host (`serve` as it runs by default), in
//!    rotating rounds of one run (medians over rounds with their spread, p99 over every sample;
//!    goals: process <= in-process + 50 µs, remote <= in-process + 150 µs median), and control
//!    operations per second on one connection (sequential, and 64 in flight), alternating too;
//! 2. forwarding through a pipe between two hosts (SRTP + RTX, always) vs between two workers
//!    of one host, unprotected and with SRTP: packets per second of worker-thread CPU, in
//!    alternating rounds (goal: ratio >= 0.9 against the same-host pipe with SRTP).
//!
//! Run: `cargo bench --workspace --bench cluster` (add `-- latency` or `-- pipe` for one).

use mafalda_host::config::HostOptions;
use mafalda_host::isolation::Isolation;
use mafalda_host::prelude::*;
use mafalda_host::worker::WorkerSettings;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::packet::{encode, RtpHeader};
use mafalda_media_tools::rtp::payload::{make, PayloadKind};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Alternating rounds (local, remote) and samples per round.
const ROUNDS: usize = 12;
const PER_ROUND: usize = 40;
const OPS: usize = 2000;
const PIPE_ROUNDS: usize = 3;
const PRODUCERS: u32 = 20;
const PIPE_RATE: u32 = 250;
const PIPE_SECONDS: u64 = 4;

struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Host {
    /// CPU time (user + system) of the host's mediasoup worker threads so far: the forwarding
    /// cost, without the control plane both setups share.
    fn cpu(&self) -> Duration {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let mut ticks = 0;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.0.id())).into_iter().flatten().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("mediasoup-worke") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
            ticks += fields.get(11..13).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum::<u64>());
        }
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }
}

fn mafalda(args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(args)
        .status()
        .expect("run mafalda-host");
    assert!(status.success(), "mafalda-host {args:?}");
}

fn serve(dir: &Path, name: &str, ip: &str, workers: &str) -> Host {
    let listen = format!("{ip}:4443");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["serve", "--workers", workers, "--max-workers", workers, "--listen", &listen, "--node", name])
        .args(["--tls-dir", dir.to_str().expect("utf-8")])
        .env_remove("MAFALDA_CLUSTER")
        .env("RUST_LOG", "warn,mafalda_host::cluster::server=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.expect("log").contains("cluster endpoint up") {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Host(child)
}

fn certs(nodes: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-bench-cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = dir.to_str().expect("utf-8");
    let ca = dir.join("ca");
    let ca = ca.to_str().expect("utf-8");
    mafalda(&["certs", "init", "--out", ca]);
    for (name, ip) in nodes {
        mafalda(&["certs", "issue", name, "--ca", ca, "--out", out, "--ip", ip]);
    }
    dir
}

fn application(dir: &Path, hosts: &[&str], policy: &str) -> WorkerManager {
    application_with(dir, hosts, policy, false)
}

/// [`application`] with pipes between workers of one host protected by SRTP or not.
fn application_with(dir: &Path, hosts: &[&str], policy: &str, srtp_pipes: bool) -> WorkerManager {
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_CLUSTER", hosts.iter().map(|h| format!("{h}:4443")).collect::<Vec<_>>().join(",")),
        ("MAFALDA_CA", dir.join("ca.pem").display().to_string()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
        ("MAFALDA_POLICY", policy.to_string()),
    ]);
    let mut options = HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options");
    options.pipes.srtp = srtp_pipes;
    WorkerManager::with_options(options)
}

fn quiet() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    settings
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The value at quantile `q` of `values` (sorted here).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}

/// A median over rounds with its spread: `median [min – max]`.
fn spread(mut values: Vec<f64>) -> String {
    let median = quantile(&mut values, 0.5);
    format!("{median:.1} [{:.1} – {:.1}]", values[0], values[values.len() - 1])
}

/// A router with a producer, where the measured operations run.
struct Bench {
    _worker: Worker,
    router: Router,
    _input: PlainTransport,
    producer: Producer,
}

impl Bench {
    async fn new(manager: &WorkerManager) -> Self {
        let worker = manager.create_worker(quiet()).await.expect("worker");
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let mut options = PlainTransportOptions::new(loopback_listen_info());
        options.comedia = true;
        let input = router.create_plain_transport(options).await.expect("input");
        let producer =
            input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(1))).await.expect("producer");
        Self { _worker: worker, router, _input: input, producer }
    }

    /// `n` samples of create_plain_transport + consume().
    async fn transport_and_consume(&self, n: usize) -> Vec<f64> {
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let transport = self
                .router
                .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
                .await
                .expect("transport");
            let consumer = transport
                .consume(ConsumerOptions::new(self.producer.id(), receiver_capabilities()))
                .await
                .expect("consume");
            samples.push(micros(start.elapsed()));
            drop(consumer);
            drop(transport);
        }
        samples
    }

    /// Sequential pause/resume, then get_stats with 64 in flight: operations per second.
    async fn operations(&self) -> (f64, f64) {
        let transport =
            self.router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t");
        let consumer =
            transport.consume(ConsumerOptions::new(self.producer.id(), receiver_capabilities())).await.expect("c");
        let start = Instant::now();
        for i in 0..OPS {
            if i % 2 == 0 { consumer.pause().await } else { consumer.resume().await }.expect("pause/resume");
        }
        let sequential = OPS as f64 / start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for lane in 0..64 {
            let consumer = consumer.clone();
            tasks.spawn(async move {
                for _ in 0..OPS / 64 {
                    consumer.get_stats().await.expect("stats");
                }
                lane
            });
        }
        while tasks.join_next().await.is_some() {}
        (sequential, (OPS / 64 * 64) as f64 / start.elapsed().as_secs_f64())
    }
}

async fn p4_latency() {
    let dir = certs(&[("bench1", "127.0.0.20")]);
    // The host as `serve` runs by default (its worker in a child process).
    let _host = serve(&dir, "bench1", "127.0.0.20", "1");
    let in_process = |isolation| {
        let mut options = HostOptions::default();
        options.pool.max_workers = 1;
        options.pool.isolation = Some(isolation);
        options.pool.worker_bin = Some(PathBuf::from(env!("CARGO_BIN_EXE_mafalda-host")));
        WorkerManager::with_options(options)
    };
    let local = in_process(Isolation::Thread);
    let child = in_process(Isolation::Process);
    let remote = application(&dir, &["127.0.0.20"], "pack");
    let benches = [Bench::new(&local).await, Bench::new(&child).await, Bench::new(&remote).await];
    let names = ["in-process worker:  ", "worker process:     ", "remote host (QUIC): "];
    for bench in &benches {
        bench.transport_and_consume(20).await;
    }
    // Rounds rotate which setup goes first.
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); 3];
    let mut all: Vec<Vec<f64>> = vec![Vec::new(); 3];
    for round in 0..ROUNDS {
        for k in 0..3 {
            let which = (round + k) % 3;
            let mut samples = benches[which].transport_and_consume(PER_ROUND).await;
            all[which].extend_from_slice(&samples);
            rounds[which].push(quantile(&mut samples, 0.5));
        }
    }
    println!("P4 create_plain_transport + consume(), {ROUNDS} rotating rounds of {PER_ROUND} (µs, median [min – max] of round medians):");
    for (k, name) in names.iter().enumerate() {
        println!("  {name}{}, p99 {:.1}", spread(rounds[k].clone()), quantile(&mut all[k], 0.99));
    }
    let minus = |a: usize, b: usize| rounds[a].iter().zip(&rounds[b]).map(|(x, y)| x - y).collect::<Vec<f64>>();
    println!("  process - in-process: {} (goal <= +50)", spread(minus(1, 0)));
    println!("  remote - in-process:  {} (goal <= +150)", spread(minus(2, 0)));
    let mut ops: Vec<Vec<(f64, f64)>> = vec![Vec::new(); 3];
    for round in 0..4 {
        for k in 0..3 {
            let which = (round + k) % 3;
            ops[which].push(benches[which].operations().await);
        }
    }
    let column = |ops: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| ops.iter().map(pick).collect::<Vec<f64>>();
    println!("P4 control operations per second on one connection, 4 rotating rounds (median [min – max]):");
    for (k, name) in names.iter().enumerate() {
        println!(
            "  {name}sequential pause/resume {}/s, get_stats 64 in flight {}/s",
            spread(column(&ops[k], |o| o.0)),
            spread(column(&ops[k], |o| o.1))
        );
    }
}

/// Packets per second of host CPU through one pipe: the producers on one worker, their
/// consumer on another (the spread policy alternates), `hosts` serving them.
async fn pipe_run(manager: &WorkerManager, hosts: &[&Host]) -> (f64, u64) {
    let worker = manager.create_worker(quiet()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input");
    let output =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
    assert_ne!(input.cell(), output.cell(), "spread puts the consumer on the other worker");
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
    let addr = sink.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while sink.recv(&mut buf).is_ok() {}
    });
    output
        .connect(PlainTransportRemoteParameters {
            ip: Some(addr.ip()),
            port: Some(addr.port()),
            rtcp_port: None,
            srtp_parameters: None,
        })
        .await
        .expect("connect");
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    for i in 0..PRODUCERS {
        let producer = input
            .produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(100 + i)))
            .await
            .expect("producer");
        consumers
            .push(output.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume"));
        producers.push(producer);
    }
    // One socket sends every producer's stream (a comedia transport follows one source).
    let tuple = input.tuple();
    let target = SocketAddr::new(tuple.local_address().parse().expect("ip"), tuple.local_port());
    let stop = Arc::new(AtomicBool::new(false));
    let sending = Arc::clone(&stop);
    let sender = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        let body = make(PayloadKind::Opus, 0, 80);
        let started = Instant::now();
        for n in 0u32.. {
            if sending.load(Ordering::Relaxed) {
                return;
            }
            let due = started + Duration::from_micros(u64::from(n) * 1_000_000 / u64::from(PIPE_RATE));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            for i in 0..PRODUCERS {
                let header = RtpHeader {
                    marker: false,
                    payload_type: 100,
                    sequence: n as u16,
                    timestamp: n.wrapping_mul(960),
                    ssrc: 100 + i,
                };
                let _ = socket.send_to(&encode(&header, &body).expect("packet"), target);
            }
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent_before: u64 = consumer_packets(&consumers).await;
    let cpu_before: Duration = hosts.iter().map(|h| h.cpu()).sum();
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs(PIPE_SECONDS)).await;
    let sent = consumer_packets(&consumers).await - sent_before;
    let cpu = hosts.iter().map(|h| h.cpu()).sum::<Duration>() - cpu_before;
    let _ = start;
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    (sent as f64 / cpu.as_secs_f64().max(1e-3), sent)
}

async fn consumer_packets(consumers: &[Consumer]) -> u64 {
    let mut total = 0;
    for consumer in consumers {
        for stat in consumer.get_stats().await.expect("stats") {
            if let mafalda_host::consumer::ConsumerRtpStreamStat::Outbound(o) = stat {
                total += o.packet_count;
            }
        }
    }
    total
}

async fn p4_pipe() {
    let dir = certs(&[("pipe1", "127.0.0.21"), ("pipe2", "127.0.0.22"), ("pipe3", "127.0.0.23")]);
    let same = serve(&dir, "pipe3", "127.0.0.23", "2");
    let (a, b) = (serve(&dir, "pipe1", "127.0.0.21", "1"), serve(&dir, "pipe2", "127.0.0.22", "1"));
    let (mut plain, mut srtp, mut cross) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..PIPE_ROUNDS {
        let manager = application_with(&dir, &["127.0.0.23"], "spread", false);
        plain.push(pipe_run(&manager, &[&same]).await.0);
        drop(manager);
        let manager = application_with(&dir, &["127.0.0.23"], "spread", true);
        srtp.push(pipe_run(&manager, &[&same]).await.0);
        drop(manager);
        let manager = application(&dir, &["127.0.0.21", "127.0.0.22"], "spread");
        cross.push(pipe_run(&manager, &[&a, &b]).await.0);
    }
    let ratios = |of: &[f64]| cross.iter().zip(of).map(|(c, s)| c / s).collect::<Vec<f64>>();
    let (to_srtp, to_plain) = (ratios(&srtp), ratios(&plain));
    println!(
        "P4 pipe forwarding, {PRODUCERS} x {PIPE_RATE} pps, {PIPE_ROUNDS} alternating rounds of {PIPE_SECONDS} s (packets per second of worker-thread CPU, median [min – max]):"
    );
    println!("  same host, two workers, unprotected pipe: {}", spread(plain));
    println!("  same host, two workers, SRTP pipe:        {}", spread(srtp));
    println!("  two hosts over UDP (SRTP + RTX):          {}", spread(cross));
    println!("  ratio two hosts / same host with SRTP:    {} (goal >= 0.9)", spread_ratio(to_srtp));
    println!("  ratio two hosts / same host unprotected:  {}", spread_ratio(to_plain));
}

/// [`spread`] of ratios, with 3 decimals.
fn spread_ratio(mut values: Vec<f64>) -> String {
    let median = quantile(&mut values, 0.5);
    format!("{median:.3} [{:.3} – {:.3}]", values[0], values[values.len() - 1])
}

#[tokio::main]
async fn main() {
    let which: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wants = |name: &str| which.is_empty() || which.iter().any(|w| w == name);
    if wants("latency") {
        p4_latency().await;
    }
    if wants("pipe") {
        p4_pipe().await;
    }
}
