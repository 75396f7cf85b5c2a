//! Vertical-scaling benchmarks, plain mediasoup vs mafalda-host in the same run.
//!
//! - P1: forwarding throughput, 1 producer -> 1 consumer on one worker (goal: ratio >= 0.97).
//! - P2: fan-out capacity: most consumers of one 50 pps producer at < 0.5 % loss, mafalda with
//!   1 worker vs 2 workers (goal: >= 1.8x). Delivery is counted from consumer stats; consumers
//!   send to a sink socket nobody reads, so the benchmark does not compete for the cores.
//! - P5: time to create 1,000 consumers, mafalda vs plain single router (goal: <= 1.2x).
//! - metrics: the cost of metrics on the hot path (P1 and P5's one `consume()` while an
//!   [`Operations`] of the host is scraped every second; goals: P1 ratio unchanged >= 0.97,
//!   `consume()` +<= 2 %) and at scrape time (1,000 consumers on 2 workers: `metrics()`, the
//!   exposition's size, one media round and the worker CPU it costs). Not run by default.
//!
//! Run: `cargo bench -p mafalda-host --bench vertical` (add `-- p1`, `p2`, `p5` or `metrics`
//! for one).
//! The same scenario code drives both crates (a macro instantiates it per crate), which is
//! itself a check that the APIs match.

use mafalda_host::backend::local::WorkerThread;
use mafalda_host::config::{HostOptions, PolicyChoice, PoolOptions};
use mafalda_host::ops::media::MEDIA_INTERVAL;
use mafalda_host::ops::metrics::Format;
use mafalda_host::ops::Operations;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::packet::{encode, RtpHeader};
use mafalda_media_tools::rtp::payload::{make, PayloadKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
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

/// `median (min–max)` of `values`, with `decimals` decimals.
fn spread(values: &[f64], decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.decimals$} ({min:.decimals$}–{max:.decimals$})", median(values.to_vec()))
}

/// How often the scraper of the `metrics` mode scrapes (Prometheus' default is 15 s).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// An [`Operations`] of a host, scraped (OpenMetrics) by a tokio task as a [`Way`] says.
struct Scraper {
    ops: Arc<Operations>,
    task: tokio::task::JoinHandle<()>,
    scrapes: Arc<AtomicUsize>,
}

impl Scraper {
    /// Starts scraping `manager`'s host the way `way` says (none for an unscraped way).
    fn start(manager: &mafalda_host::worker_manager::WorkerManager, way: Way) -> Option<Self> {
        let media_interval = match way {
            Way::Mediasoup | Way::Mafalda => return None,
            Way::Scraped(interval) => interval,
            Way::Rounds => MEDIA_INTERVAL,
        };
        let ops = Operations::new(manager.host(), media_interval);
        let scrapes = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn({
            let (ops, scrapes) = (Arc::clone(&ops), Arc::clone(&scrapes));
            async move {
                let mut every = tokio::time::interval(SCRAPE_EVERY);
                loop {
                    if matches!(way, Way::Rounds) {
                        ops.read_media().await;
                        if ops.media().last_round().1 == 0 {
                            // Nothing to read yet: a round does not wait on anything then.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                    } else {
                        every.tick().await;
                    }
                    std::hint::black_box(ops.metrics(Format::OpenMetrics).expect("metrics"));
                    scrapes.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Some(Self { ops, task, scrapes })
    }

    /// Stops scraping; returns how many scrapes were made and the objects of the last media
    /// round.
    fn stop(self) -> (usize, usize) {
        self.task.abort();
        (self.scrapes.load(Ordering::Relaxed), self.ops.media().last_round().1)
    }
}

/// The ways the `metrics` mode runs a scenario.
#[derive(Debug, Clone, Copy)]
enum Way {
    Mediasoup,
    Mafalda,
    /// Mafalda, scraped every SCRAPE_EVERY (the first time at once) with this media interval.
    Scraped(Duration),
    /// Mafalda while media rounds run back to back, each followed by a scrape: an upper bound
    /// (the worker always has stats requests to answer).
    Rounds,
}

impl Way {
    /// The ways of the `metrics` mode's P1.
    const P1: [Way; 4] = [Way::Mediasoup, Way::Mafalda, Way::Scraped(MEDIA_INTERVAL), Way::Scraped(SCRAPE_EVERY)];
    /// The ways of its P5 (whose batch is much shorter than a second).
    const P5: [Way; 5] =
        [Way::Mediasoup, Way::Mafalda, Way::Scraped(MEDIA_INTERVAL), Way::Scraped(SCRAPE_EVERY), Way::Rounds];

    fn label(self) -> String {
        match self {
            Way::Mediasoup => "mediasoup".to_string(),
            Way::Mafalda => "mafalda".to_string(),
            Way::Scraped(interval) => format!("scraped/{}s", interval.as_secs()),
            Way::Rounds => "rounds-loop".to_string(),
        }
    }

    /// The order of `ways` in round `round`: rotated by `round`, with their indices.
    fn order(ways: &[Way], round: usize) -> impl Iterator<Item = (usize, Way)> + '_ {
        (0..ways.len()).map(move |k| {
            let i = (k + round) % ways.len();
            (i, ways[i])
        })
    }
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

/// P1 on mafalda, scraped the way `way` says.
async fn p1_mafalda(sink: SocketAddr, way: Way) -> f64 {
    let manager = mafalda(1, false);
    let (_w, router) = virt::router(&manager).await;
    let (_t, producer, target) = virt::ingest(&router).await;
    let out = virt::egress(&router, sink).await;
    let consumers = [virt::consume(&out, producer.id()).await];
    let cell = manager.host().cells().into_iter().next().expect("a worker");
    let scraper = Scraper::start(&manager, way);
    let before = cell.cpu_time().expect("cpu");
    tokio::task::spawn_blocking(move || paced(target, P1_PACKETS, P1_RATE)).await.expect("sender");
    let forwarded = settle(|| virt::sent(&consumers)).await;
    let rate = per_core(forwarded, cell.cpu_time().expect("cpu") - before);
    scraper.map(Scraper::stop);
    rate
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
            (a, p1_mafalda(sink_addr, Way::Mafalda).await)
        } else {
            let b = p1_mafalda(sink_addr, Way::Mafalda).await;
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

/// Time to create P5_CONSUMERS consumers on 10 transports of `router`; returns the
/// measurement and what was created (to keep it alive).
macro_rules! time_consumers {
    ($api:ident, $router:expr, $sink:expr) => {{
        let (ingest, producer, _) = $api::ingest($router).await;
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
        let round = P5Round { total_ms: started.elapsed().as_secs_f64() * 1000.0, each_us: each };
        (round, (ingest, producer, transports, consumers))
    }};
}

async fn p5_mediasoup(sink: SocketAddr) -> P5Round {
    let manager = mediasoup::worker_manager::WorkerManager::new();
    let (_w, router) = plain::router(&manager).await;
    let (round, _created) = time_consumers!(plain, &router, sink);
    round
}

/// P5 on mafalda, scraped the way `way` says (from before the ingest is made); returns the
/// scrapes made and the last media round's objects.
async fn p5_mafalda(sink: SocketAddr, workers: usize, way: Way) -> (P5Round, (usize, usize)) {
    let manager = mafalda(workers, workers > 1);
    let (_w, router) = virt::router(&manager).await;
    let scraper = Scraper::start(&manager, way);
    let (round, _created) = time_consumers!(virt, &router, sink);
    (round, scraper.map_or((0, 0), Scraper::stop))
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
                ours.push(p5_mafalda(sink_addr, workers, Way::Mafalda).await.0);
            } else {
                ours.push(p5_mafalda(sink_addr, workers, Way::Mafalda).await.0);
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

/// Sum of the CPU time of `manager`'s cells' workers.
fn workers_cpu(manager: &mafalda_host::worker_manager::WorkerManager) -> Duration {
    manager.host().cells().iter().map(|c| c.cpu_time().expect("cpu")).sum()
}

/// CPU time of this whole process (every thread: workers, tokio, the sender).
fn process_cpu() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()), 0);
        usage.assume_init()
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The ratios of `medians` (one per way of `ways`, the first two mediasoup and mafalda) the
/// goals are about; `paired` are the medians of the per-round ratios, when there are rounds.
fn report_ratios(what: &str, ways: &[Way], medians: &[f64], paired: Option<&dyn Fn(usize, usize) -> f64>) {
    let ratio = |a: usize, b: usize| match paired {
        Some(paired) => format!("{:.3} [{:.3}]", medians[a] / medians[b], paired(a, b)),
        None => format!("{:.3}", medians[a] / medians[b]),
    };
    let note = if paired.is_some() { " (median of the per-round ratios in brackets)" } else { "" };
    println!("  {what} ratios{note}: mafalda/mediasoup {}", ratio(1, 0));
    for (i, way) in ways.iter().enumerate().skip(2) {
        let label = way.label();
        println!("    {label}/mafalda {}, {label}/mediasoup {}", ratio(i, 1), ratio(i, 0));
    }
}

/// Medians (with spread) of the per-round `values` of each of `ways`, and their ratios.
fn report_ways(what: &str, unit: &str, decimals: usize, ways: &[Way], values: &[Vec<f64>]) {
    for (way, v) in ways.iter().zip(values) {
        println!("  {:<12} median {} {unit} (min–max)", way.label(), spread(v, decimals));
    }
    let medians: Vec<f64> = values.iter().map(|v| median(v.clone())).collect();
    let paired = |a: usize, b: usize| median(values[a].iter().zip(&values[b]).map(|(x, y)| x / y).collect());
    report_ratios(what, ways, &medians, Some(&paired));
}

const METRICS_P1_ROUNDS: usize = 15;
const METRICS_P5_ROUNDS: usize = 21;

/// P1 the ways of [`Way::P1`], order rotating per round.
async fn metrics_p1(sink: SocketAddr) {
    let ways = &Way::P1;
    println!(
        "metrics/P1: forwarding per second of worker CPU ({P1_PACKETS} packets at {P1_RATE} pkt/s), \
         {METRICS_P1_ROUNDS} rounds, order rotating;\n   \
         scraped/Ns = mafalda while its host's metrics are scraped every {}s with a media interval of N s",
        SCRAPE_EVERY.as_secs()
    );
    let mut values = vec![Vec::new(); ways.len()];
    for round in 0..METRICS_P1_ROUNDS {
        let mut line = Vec::new();
        for (i, way) in Way::order(ways, round) {
            let rate = match way {
                Way::Mediasoup => p1_mediasoup(sink).await,
                _ => p1_mafalda(sink, way).await,
            };
            line.push(format!("{} {rate:.0}", way.label()));
            values[i].push(rate);
        }
        println!("  round {round:>2}: {} pkt/s per core", line.join(", "));
    }
    report_ways("P1", "pkt/s per core", 0, ways, &values);
    println!("  (goal: mafalda/mediasoup >= 0.97, unchanged when scraped)\n");
}

/// P5's one-`consume()` median the ways of [`Way::P5`] (1 worker), order rotating per round.
async fn metrics_p5(sink: SocketAddr) {
    let ways = &Way::P5;
    println!(
        "metrics/P5: creating {P5_CONSUMERS} consumers on 1 worker, {METRICS_P5_ROUNDS} rounds, order rotating; \
         per round: one consume() median / batch [scrapes during the batch, objects of the last media round]"
    );
    let (mut each, mut total, mut all) =
        (vec![Vec::new(); ways.len()], vec![Vec::new(); ways.len()], vec![Vec::new(); ways.len()]);
    for round in 0..METRICS_P5_ROUNDS {
        let mut line = Vec::new();
        for (i, way) in Way::order(ways, round) {
            let (r, note) = match way {
                Way::Mediasoup => (p5_mediasoup(sink).await, String::new()),
                _ => {
                    let (r, (scrapes, objects)) = p5_mafalda(sink, 1, way).await;
                    let note =
                        if matches!(way, Way::Mafalda) { String::new() } else { format!(" [{scrapes}, {objects}]") };
                    (r, note)
                }
            };
            let one = median(r.each_us.clone());
            line.push(format!("{} {one:.1} µs / {:.0} ms{note}", way.label(), r.total_ms));
            each[i].push(one);
            total[i].push(r.total_ms);
            all[i].extend(r.each_us);
        }
        println!("  round {round:>2}: {}", line.join(", "));
    }
    let pooled: Vec<f64> = all.into_iter().map(median).collect();
    println!("  one consume(), median of all rounds' consume() calls (as P5 reports it):");
    for (way, m) in ways.iter().zip(&pooled) {
        println!("  {:<12} {m:.1} µs", way.label());
    }
    report_ratios("consume() (pooled)", ways, &pooled, None);
    println!("  one consume(), per-round medians:");
    report_ways("consume()", "µs", 1, ways, &each);
    println!("  batch of {P5_CONSUMERS}:");
    report_ways("batch", "ms", 1, ways, &total);
    println!("  (goal: consume() scraped/mafalda <= 1.02)\n");
}

/// The cost of a scrape with P5's 1,000 consumers on 2 workers.
async fn metrics_scale(sink: SocketAddr) {
    const CALLS: usize = 50;
    const ROUNDS: usize = 5;
    println!("metrics/scale: {P5_CONSUMERS} consumers (P5's setup) on 2 workers");
    let manager = mafalda(2, true);
    let (_w, router) = virt::router(&manager).await;
    let (setup, _created) = time_consumers!(virt, &router, sink);
    let cells: Vec<String> = manager
        .host()
        .stats()
        .cells
        .iter()
        .map(|c| format!("{} consumers/{} producers/{} pipes", c.consumers, c.producers, c.pipes))
        .collect();
    println!("  created in {:.0} ms; cells: {}", setup.total_ms, cells.join("; "));
    let ops = Operations::new(manager.host(), MEDIA_INTERVAL);

    // The first scrape starts a media round in the background; wait for it, so that the
    // timed calls read filled counters and race no round (the next is due MEDIA_INTERVAL later).
    let first = Instant::now();
    let text = ops.metrics(Format::OpenMetrics).expect("metrics");
    let first = first.elapsed();
    while ops.media().last_round().1 == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (round, objects) = ops.media().last_round();
    println!(
        "  first metrics() {:.2} ms ({} bytes, before any media round); its background round: {:.1} ms, {objects} objects",
        first.as_secs_f64() * 1e3,
        text.len(),
        round.as_secs_f64() * 1e3
    );

    let (mut times, mut size, mut lines) = (Vec::with_capacity(CALLS), 0, 0);
    let (cpu_before, started) = (process_cpu(), Instant::now());
    for _ in 0..CALLS {
        let one = Instant::now();
        let text = ops.metrics(Format::OpenMetrics).expect("metrics");
        times.push(one.elapsed().as_secs_f64() * 1e3);
        (size, lines) = (text.len(), text.lines().count());
    }
    let (wall, cpu) = (started.elapsed(), process_cpu() - cpu_before);
    let max = times.iter().copied().fold(0.0, f64::max);
    println!(
        "  metrics() x{CALLS}: median {:.3} ms, max {max:.3} ms (process CPU {:.1} ms over {:.1} ms wall); \
         exposition {size} bytes, {lines} lines",
        median(times),
        cpu.as_secs_f64() * 1e3,
        wall.as_secs_f64() * 1e3
    );

    // Media rounds run directly: their time, and the worker CPU they cost (against the same
    // span idle).
    for n in 0..ROUNDS {
        let (workers_before, process_before, started) = (workers_cpu(&manager), process_cpu(), Instant::now());
        ops.read_media().await;
        let wall = started.elapsed();
        let (workers, process) = (workers_cpu(&manager) - workers_before, process_cpu() - process_before);
        let idle_before = workers_cpu(&manager);
        tokio::time::sleep(wall).await;
        let idle = workers_cpu(&manager) - idle_before;
        let (round, objects) = ops.media().last_round();
        println!(
            "  media round {n}: {:.1} ms, {objects} objects; worker CPU {:.1} ms (idle over the same span {:.1} ms), \
             process CPU {:.1} ms",
            round.as_secs_f64() * 1e3,
            workers.as_secs_f64() * 1e3,
            idle.as_secs_f64() * 1e3,
            process.as_secs_f64() * 1e3
        );
    }
    println!();
}

async fn metrics() {
    let sink = sink();
    let sink_addr = sink.local_addr().expect("addr");
    metrics_p1(sink_addr).await;
    metrics_p5(sink_addr).await;
    metrics_scale(sink_addr).await;
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
    // Not part of the default run (it repeats P1 and P5 several ways).
    if wanted.iter().any(|w| w == "metrics") {
        metrics().await;
    }
}
