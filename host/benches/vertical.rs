//! Vertical-scaling benchmarks, plain mediasoup vs mafalda-host in the same run.
//!
//! - P1: forwarding throughput, 1 producer -> 1 consumer on one worker (goal: ratio >= 0.97).
//! - P2: fan-out capacity: most consumers of one 50 pps producer at < 0.5 % loss, mafalda with
//!   1 worker vs 2 workers (goal: >= 1.8x). Delivery is counted from consumer stats; consumers
//!   send to a sink socket nobody reads, so the benchmark does not compete for the cores.
//! - P5: time to create 1,000 consumers, mafalda vs plain single router (goal: <= 1.2x).
//!
//! Run: `cargo bench -p mafalda-host --bench vertical` (add `-- p1`, `p2` or `p5` for one).
//! The same scenario code drives both crates (a macro instantiates it per crate), which is
//! itself a check that the APIs match.

use mafalda_host::backend::local::WorkerThread;
use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::packet::{encode, RtpHeader};
use mafalda_media_tools::rtp::payload::{make, PayloadKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SSRC: u32 = 0x00be_4c11;

/// The scenario, written once against mediasoup's API, instantiated for each crate.
macro_rules! scenario {
    ($module:ident, $krate:ident) => {
        mod $module {
            use super::*;
            use $krate::consumer::ConsumerRtpStreamStat;
            use $krate::prelude::*;

            pub fn quiet() -> WorkerSettings {
                let mut settings = WorkerSettings::default();
                settings.log_level = $krate::worker::WorkerLogLevel::Warn;
                settings.log_tags = Vec::new();
                settings
            }

            pub async fn router(manager: &WorkerManager) -> (Worker, Router) {
                let worker = manager.create_worker(quiet()).await.expect("worker");
                let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
                (worker, router)
            }

            /// A comedia transport with an Opus producer; returns where to send RTP.
            pub async fn ingest(router: &Router) -> (PlainTransport, Producer, SocketAddr) {
                let mut options = PlainTransportOptions::new(loopback_listen_info());
                options.comedia = true;
                let transport = router.create_plain_transport(options).await.expect("ingest");
                let producer = transport
                    .produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(SSRC)))
                    .await
                    .expect("producer");
                let tuple = transport.tuple();
                let target = SocketAddr::new(tuple.local_address().parse().expect("ip"), tuple.local_port());
                (transport, producer, target)
            }

            /// A plain transport sending to `sink`.
            pub async fn egress(router: &Router, sink: SocketAddr) -> PlainTransport {
                let transport = router
                    .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
                    .await
                    .expect("egress");
                transport
                    .connect(PlainTransportRemoteParameters {
                        ip: Some(sink.ip()),
                        port: Some(sink.port()),
                        rtcp_port: None,
                        srtp_parameters: None,
                    })
                    .await
                    .expect("connect");
                transport
            }

            pub async fn consume(transport: &PlainTransport, producer: ProducerId) -> Consumer {
                transport.consume(ConsumerOptions::new(producer, receiver_capabilities())).await.expect("consume")
            }

            /// RTP packets the consumers have sent, fetched concurrently.
            pub async fn sent(consumers: &[Consumer]) -> u64 {
                let stats = consumers.iter().map(|c| c.get_stats());
                let mut total = 0;
                for stat in futures::future::join_all(stats).await {
                    for s in stat.expect("stats") {
                        if let ConsumerRtpStreamStat::Outbound(out) = s {
                            total += out.packet_count;
                        }
                    }
                }
                total
            }
        }
    };
}

scenario!(plain, mediasoup);
scenario!(virt, mafalda_host);

fn mafalda(max_workers: usize, spread: bool) -> mafalda_host::worker_manager::WorkerManager {
    mafalda_host::worker_manager::WorkerManager::with_options(HostOptions {
        pool: PoolOptions { max_workers, ..PoolOptions::default() },
        policy: if spread { PolicyChoice::Spread } else { PolicyChoice::Pack },
        ..HostOptions::default()
    })
}

fn sink() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("sink");
    socket.set_nonblocking(true).expect("nonblocking");
    socket
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// A paced RTP sender keeping its socket (a comedia transport only accepts its first source)
/// and its sequence numbers across windows.
struct Sender {
    socket: UdpSocket,
    target: SocketAddr,
    next: u32,
}

impl Sender {
    fn new(target: SocketAddr) -> Self {
        Self { socket: UdpSocket::bind("127.0.0.1:0").expect("sender"), target, next: 0 }
    }

    /// Sends `count` Opus packets paced at `rate` packets/s (in 1 ms batches).
    fn send(&mut self, count: u32, rate: u32) {
        let body = make(PayloadKind::Opus, 0, 80);
        let per_ms = (rate / 1000).max(1);
        let started = Instant::now();
        for i in 0..count {
            if i % per_ms == 0 {
                let due = started + Duration::from_micros(u64::from(i) * 1_000_000 / u64::from(rate));
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            let n = self.next;
            self.next += 1;
            let header =
                RtpHeader { marker: false, payload_type: 100, sequence: n as u16, timestamp: n * 960, ssrc: SSRC };
            let _ = self.socket.send_to(&encode(&header, &body).expect("packet"), self.target);
        }
    }
}

/// Sends `count` packets at `rate` from a fresh sender.
fn paced(target: SocketAddr, count: u32, rate: u32) {
    Sender::new(target).send(count, rate);
}

/// Waits until `read` stops growing; returns the last value.
async fn settle<F, Fut>(mut read: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut last = read().await;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = read().await;
        if now == last {
            return last;
        }
        last = now;
    }
}

const P1_PACKETS: u32 = 80_000;
const P1_RATE: u32 = 20_000;
const P1_ROUNDS: usize = 9;

/// Packets forwarded per second of worker CPU.
fn per_core(forwarded: u64, cpu: Duration) -> f64 {
    forwarded as f64 / cpu.as_secs_f64()
}

async fn p1_mediasoup(sink: SocketAddr) -> f64 {
    let thread = Arc::new(WorkerThread::default());
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let mut settings = plain::quiet();
    settings.thread_initializer = Some(thread.initializer(None, None));
    let worker = manager.create_worker(settings).await.expect("worker");
    let router = worker.create_router(mediasoup::prelude::RouterOptions::new(router_codecs())).await.expect("router");
    let (_t, producer, target) = plain::ingest(&router).await;
    let out = plain::egress(&router, sink).await;
    let consumers = [plain::consume(&out, producer.id()).await];
    let before = thread.cpu_time().expect("cpu");
    tokio::task::spawn_blocking(move || paced(target, P1_PACKETS, P1_RATE)).await.expect("sender");
    let forwarded = settle(|| plain::sent(&consumers)).await;
    per_core(forwarded, thread.cpu_time().expect("cpu") - before)
}

async fn p1_mafalda(sink: SocketAddr) -> f64 {
    let manager = mafalda(1, false);
    let (_w, router) = virt::router(&manager).await;
    let (_t, producer, target) = virt::ingest(&router).await;
    let out = virt::egress(&router, sink).await;
    let consumers = [virt::consume(&out, producer.id()).await];
    let cell = manager.host().cells().into_iter().next().expect("a worker");
    let before = cell.cpu_time().expect("cpu");
    tokio::task::spawn_blocking(move || paced(target, P1_PACKETS, P1_RATE)).await.expect("sender");
    let forwarded = settle(|| virt::sent(&consumers)).await;
    per_core(forwarded, cell.cpu_time().expect("cpu") - before)
}

async fn p1() {
    println!(
        "P1 forwarding throughput: 1 producer -> 1 consumer on one worker, {P1_PACKETS} packets at {P1_RATE} pkt/s;\n   \
         packets forwarded per second of worker CPU (the rate one core sustains), {P1_ROUNDS} rounds"
    );
    let sink = sink();
    let sink_addr = sink.local_addr().expect("addr");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..P1_ROUNDS {
        let (a, b) = if round % 2 == 0 {
            let a = p1_mediasoup(sink_addr).await;
            (a, p1_mafalda(sink_addr).await)
        } else {
            let b = p1_mafalda(sink_addr).await;
            (p1_mediasoup(sink_addr).await, b)
        };
        println!("  round {round}: mediasoup {a:>9.0}  mafalda {b:>9.0} pkt/s per core");
        theirs.push(a);
        ours.push(b);
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!(
        "  median: mediasoup {theirs:.0}, mafalda {ours:.0} pkt/s per core, ratio {:.3} (goal >= 0.97)\n",
        ours / theirs
    );
}

const P2_RATE: u32 = 50;
const P2_WINDOW: Duration = Duration::from_secs(3);
/// Packets arriving later than this after the window count as lost (a jitter buffer's worth).
const P2_GRACE: Duration = Duration::from_millis(200);
const P2_PER_TRANSPORT: usize = 100;

/// Loss of a fan-out of `consumers` consumers over one window at 50 pps: what was not
/// delivered within the window (plus P2_GRACE) counts as lost.
async fn fan_out_loss(consumers: &[mafalda_host::consumer::Consumer], sender: &mut Option<Sender>) -> f64 {
    let before = virt::sent(consumers).await;
    let count = P2_RATE * P2_WINDOW.as_secs() as u32;
    let mut moved = sender.take().expect("sender");
    let moved = tokio::task::spawn_blocking(move || {
        moved.send(count, P2_RATE);
        moved
    })
    .await
    .expect("sender");
    *sender = Some(moved);
    tokio::time::sleep(P2_GRACE).await;
    let delivered = virt::sent(consumers).await - before;
    let expected = u64::from(count) * consumers.len() as u64;
    1.0 - delivered as f64 / expected as f64
}

/// The most consumers one producer can feed at < 0.5 % loss with `workers` workers.
async fn capacity(workers: usize) -> usize {
    let manager = mafalda(workers, workers > 1);
    let (_w, router) = virt::router(&manager).await;
    let (_ingest, producer, target) = virt::ingest(&router).await;
    let mut sender = Some(Sender::new(target));
    // One sink socket per transport: a single socket shared by both workers would make them
    // contend on its receive queue lock, which is not what is measured here.
    let mut sinks = Vec::new();
    let mut transports = Vec::new();
    let mut consumers = Vec::new();
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut n = 500;
    for _ in 0..12 {
        while consumers.len() < n {
            if consumers.len() % P2_PER_TRANSPORT == 0 {
                let sink = sink();
                transports.push(virt::egress(&router, sink.local_addr().expect("addr")).await);
                sinks.push(sink);
            }
            let transport = transports.last().expect("transport");
            consumers.push(virt::consume(transport, producer.id()).await);
        }
        consumers.truncate(n);
        let loss = fan_out_loss(&consumers, &mut sender).await;
        let cpu: Vec<String> = manager.host().stats().cells.iter().map(|c| format!("{:.0}%", c.cpu * 100.0)).collect();
        println!(
            "    {workers} worker(s), {n:>6} consumers: loss {:>6.2}% (worker cpu {})",
            loss * 100.0,
            cpu.join(" ")
        );
        if loss < 0.005 {
            good = good.max(n);
        } else {
            bad = Some(bad.map_or(n, |b| b.min(n)));
        }
        n = match bad {
            None => n * 2,
            Some(b) if b - good <= good / 32 => break,
            Some(b) => (good + b) / 2,
        };
    }
    good
}

async fn p2() {
    println!(
        "P2 fan-out capacity: consumers of one {P2_RATE} pps producer at < 0.5 % loss ({}s windows, {} ms grace)",
        P2_WINDOW.as_secs(),
        P2_GRACE.as_millis()
    );
    let one = capacity(1).await;
    let two = capacity(2).await;
    println!(
        "  capacity: 1 worker {one}, 2 workers {two}, ratio {:.2} (goal >= 1.8)\n",
        two as f64 / one.max(1) as f64
    );
}

const P5_CONSUMERS: usize = 1000;
const P5_ROUNDS: usize = 11;

/// One P5 measurement: the whole batch and each `consume()`.
struct P5Round {
    total_ms: f64,
    each_us: Vec<f64>,
}

/// Time to create P5_CONSUMERS consumers on 10 transports of `router`.
macro_rules! time_consumers {
    ($api:ident, $router:expr, $sink:expr) => {{
        let (_t, producer, _) = $api::ingest($router).await;
        let mut transports = Vec::new();
        for _ in 0..10 {
            transports.push($api::egress($router, $sink).await);
        }
        let started = Instant::now();
        let mut consumers = Vec::with_capacity(P5_CONSUMERS);
        let mut each = Vec::with_capacity(P5_CONSUMERS);
        for i in 0..P5_CONSUMERS {
            let one = Instant::now();
            consumers.push($api::consume(&transports[i % 10], producer.id()).await);
            each.push(one.elapsed().as_secs_f64() * 1e6);
        }
        P5Round { total_ms: started.elapsed().as_secs_f64() * 1000.0, each_us: each }
    }};
}

async fn p5_mediasoup(sink: SocketAddr) -> P5Round {
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let (_w, router) = plain::router(&manager).await;
    time_consumers!(plain, &router, sink)
}

async fn p5_mafalda(sink: SocketAddr, workers: usize) -> P5Round {
    let manager = mafalda(workers, workers > 1);
    let (_w, router) = virt::router(&manager).await;
    time_consumers!(virt, &router, sink)
}

async fn p5() {
    println!("P5 creating {P5_CONSUMERS} consumers (10 transports x 100), {P5_ROUNDS} rounds, order alternating");
    let sink = sink();
    let sink_addr = sink.local_addr().expect("addr");
    for workers in [1, 2] {
        let (mut theirs, mut ours) = (Vec::new(), Vec::new());
        for round in 0..P5_ROUNDS {
            if round % 2 == 0 {
                theirs.push(p5_mediasoup(sink_addr).await);
                ours.push(p5_mafalda(sink_addr, workers).await);
            } else {
                ours.push(p5_mafalda(sink_addr, workers).await);
                theirs.push(p5_mediasoup(sink_addr).await);
            }
        }
        let total = |rounds: &[P5Round]| median(rounds.iter().map(|r| r.total_ms).collect());
        let each = |rounds: &[P5Round]| median(rounds.iter().flat_map(|r| r.each_us.iter().copied()).collect());
        let (total_theirs, total_ours) = (total(&theirs), total(&ours));
        let (each_theirs, each_ours) = (each(&theirs), each(&ours));
        let note = if workers == 1 { "(goal <= 1.2)" } else { "(half the consumers on the 2nd worker, piped)" };
        println!(
            "  mafalda over {workers} worker(s): batch median mediasoup {total_theirs:.1} ms, mafalda {total_ours:.1} ms, \
             ratio {:.3};\n    one consume() median mediasoup {each_theirs:.1} µs, mafalda {each_ours:.1} µs, ratio {:.3} {note}",
            total_ours / total_theirs,
            each_ours / each_theirs
        );
    }
    println!();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    if run("p1") {
        p1().await;
    }
    if run("p5") {
        p5().await;
    }
    if run("p2") {
        p2().await;
    }
}
