//! P4, the cluster as a user meets it (loopback, real `mafalda-host serve` processes):
//! 1. `create_plain_transport` + `consume()` latency through a remote host vs a local worker
//!    (median, p99; goal: remote <= local + 150 µs median), and control operations per second on
//!    one connection (sequential, and 64 in flight);
//! 2. forwarding through a pipe between two hosts vs between two workers of one host: packets
//!    per second of worker-thread CPU (goal: ratio >= 0.95).
//!
//! Run: `cargo bench --workspace --bench cluster` (add `-- latency` or `-- pipe` for one).

use mafalda_host::config::HostOptions;
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

const ROUNDS: usize = 300;
const OPS: usize = 3000;
const PRODUCERS: u32 = 20;
const PIPE_RATE: u32 = 250;
const PIPE_SECONDS: u64 = 6;

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
    let status = Command::new(env!("CARGO_BIN_EXE_mafalda-host")).args(args).status().expect("run mafalda-host");
    assert!(status.success(), "mafalda-host {args:?}");
}

fn serve(dir: &Path, name: &str, ip: &str, workers: &str) -> Host {
    let listen = format!("{ip}:4443");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
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
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_CLUSTER", hosts.iter().map(|h| format!("{h}:4443")).collect::<Vec<_>>().join(",")),
        ("MAFALDA_CA", dir.join("ca.pem").display().to_string()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
        ("MAFALDA_POLICY", policy.to_string()),
    ]);
    WorkerManager::with_options(HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options"))
}

fn quiet() -> WorkerSettings {
    let mut settings = WorkerSettings::default();
    settings.log_level = mafalda_host::worker::WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    settings
}

fn summary(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.99))
}

/// Median and p99 µs of create_plain_transport + consume(), then sequential and concurrent
/// control operations per second.
async fn latency(manager: &WorkerManager) -> ((f64, f64), f64, f64) {
    let worker = manager.create_worker(quiet()).await.expect("worker");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(1))).await.expect("producer");
    let mut samples = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 20 {
        let start = Instant::now();
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
        let consumer =
            transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
        if round >= 20 {
            samples.push(start.elapsed());
        }
        drop(consumer);
        drop(transport);
    }
    let transport = router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t");
    let consumer = transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("c");
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
    let concurrent = (OPS / 64 * 64) as f64 / start.elapsed().as_secs_f64();
    (summary(samples), sequential, concurrent)
}

async fn p4_latency() {
    let dir = certs(&[("bench1", "127.0.0.20")]);
    let _host = serve(&dir, "bench1", "127.0.0.20", "1");
    let local = WorkerManager::with_options({
        let mut options = HostOptions::default();
        options.pool.max_workers = 1;
        options
    });
    let remote = application(&dir, &["127.0.0.20"], "pack");
    let ((local_median, local_p99), local_seq, local_conc) = latency(&local).await;
    let ((remote_median, remote_p99), remote_seq, remote_conc) = latency(&remote).await;
    println!("P4 create_plain_transport + consume(), {ROUNDS} rounds (µs):");
    println!("  local worker:        median {local_median:.1}, p99 {local_p99:.1}");
    println!("  remote host (QUIC):  median {remote_median:.1}, p99 {remote_p99:.1}");
    println!(
        "  remote - local: median {:+.1} µs (goal <= +150), ratio {:.2}",
        remote_median - local_median,
        remote_median / local_median
    );
    println!("P4 control operations per second on one connection:");
    println!("  sequential pause/resume: local {local_seq:.0}/s, remote {remote_seq:.0}/s");
    println!("  get_stats, 64 in flight: local {local_conc:.0}/s, remote {remote_conc:.0}/s");
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
    let (same_rate, same_sent) = {
        let host = serve(&dir, "pipe3", "127.0.0.23", "2");
        let manager = application(&dir, &["127.0.0.23"], "spread");
        pipe_run(&manager, &[&host]).await
    };
    let (cross_rate, cross_sent) = {
        let a = serve(&dir, "pipe1", "127.0.0.21", "1");
        let b = serve(&dir, "pipe2", "127.0.0.22", "1");
        let manager = application(&dir, &["127.0.0.21", "127.0.0.22"], "spread");
        pipe_run(&manager, &[&a, &b]).await
    };
    println!(
        "P4 pipe forwarding, {PRODUCERS} x {PIPE_RATE} pps for {PIPE_SECONDS} s (packets per second of worker-thread CPU):"
    );
    println!("  same host, two workers: {same_rate:.0} ({same_sent} packets)");
    println!("  two hosts over UDP:     {cross_rate:.0} ({cross_sent} packets)");
    println!("  ratio cross/same: {:.3} (goal >= 0.95)", cross_rate / same_rate);
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
