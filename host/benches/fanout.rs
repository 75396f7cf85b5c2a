//! P2 as a user meets it: a fan-out program written for mediasoup (20 Opus producers at
//! 50 packets/s, K subscribers each with one transport consuming all 20, joining 32 at a time),
//! run on mafalda-host with **default settings and no hints** (the default `pack` policy), 1
//! worker vs 2. Capacity = the largest K with ≥ 99.5 % of packets delivered over a 3 s window,
//! counted from consumer stats. Two join patterns: `burst` (everyone joins while producers are
//! silent, then media starts) and `live` (joins while media flows). Baseline in the same run:
//! plain mediasoup with 2 workers, producers piped by hand into a second router, subscribers
//! alternating (the ceiling a hand-tuned app reaches).
//!
//! Run: `cargo bench --workspace --bench fanout` (add `-- burst`, `live` or `plain` for one).

use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::packet::{encode, RtpHeader};
use mafalda_media_tools::rtp::payload::{make, PayloadKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PRODUCERS: u32 = 20;
const RATE: u32 = 50;
const BATCH: usize = 32;
const WINDOW: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_millis(300);
const GOAL: f64 = 0.995;
const SSRC_BASE: u32 = 0x00fa_0000;

/// The program, written once against mediasoup's API, instantiated for each crate.
macro_rules! program {
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

            pub async fn router(worker: &Worker) -> Router {
                worker.create_router(RouterOptions::new(router_codecs())).await.expect("router")
            }

            /// A comedia transport with PRODUCERS Opus producers; returns where to send RTP.
            pub async fn ingest(router: &Router) -> (PlainTransport, Vec<Producer>, SocketAddr) {
                let mut options = PlainTransportOptions::new(loopback_listen_info());
                options.comedia = true;
                let transport = router.create_plain_transport(options).await.expect("ingest");
                let mut producers = Vec::new();
                for i in 0..PRODUCERS {
                    let options = ProducerOptions::new(MediaKind::Audio, opus_send_parameters(SSRC_BASE + i));
                    producers.push(transport.produce(options).await.expect("producer"));
                }
                let tuple = transport.tuple();
                let target = SocketAddr::new(tuple.local_address().parse().expect("ip"), tuple.local_port());
                (transport, producers, target)
            }

            /// One subscriber: a transport sending to `sink`, consuming every producer.
            pub async fn subscribe(
                router: Router,
                producers: Vec<ProducerId>,
                sink: SocketAddr,
            ) -> (PlainTransport, Vec<Consumer>) {
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
                let mut consumers = Vec::new();
                for producer in producers {
                    let options = ConsumerOptions::new(producer, receiver_capabilities());
                    consumers.push(transport.consume(options).await.expect("consume"));
                }
                (transport, consumers)
            }

            /// RTP packets the consumers have sent.
            pub async fn sent(consumers: &[Consumer]) -> u64 {
                let mut total = 0;
                for chunk in consumers.chunks(256) {
                    let stats = futures::future::join_all(chunk.iter().map(|c| c.get_stats())).await;
                    for stat in stats {
                        for s in stat.expect("stats") {
                            if let ConsumerRtpStreamStat::Outbound(out) = s {
                                total += out.packet_count;
                            }
                        }
                    }
                }
                total
            }
        }
    };
}

program!(plain, mediasoup);
program!(virt, mafalda_host);

/// Every producer's stream from one socket (a comedia transport keeps its first source),
/// keeping sequence numbers across calls.
struct Feed {
    socket: UdpSocket,
    target: SocketAddr,
    next: u32,
}

impl Feed {
    fn new(target: SocketAddr) -> Self {
        Self { socket: UdpSocket::bind("127.0.0.1:0").expect("sender"), target, next: 0 }
    }

    /// Sends `rounds` packets of every producer at RATE, or until `stop` is set.
    fn send(&mut self, rounds: u32, stop: &AtomicBool) {
        let body = make(PayloadKind::Opus, 0, 80);
        let started = Instant::now();
        for round in 0..rounds {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let due = started + Duration::from_micros(u64::from(round) * 1_000_000 / u64::from(RATE));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let n = self.next;
            self.next += 1;
            for i in 0..PRODUCERS {
                let header = RtpHeader {
                    marker: false,
                    payload_type: 100,
                    sequence: n as u16,
                    timestamp: n.wrapping_mul(960),
                    ssrc: SSRC_BASE + i,
                };
                let _ = self.socket.send_to(&encode(&header, &body).expect("packet"), self.target);
            }
        }
    }
}

/// A feed sending in the background until stopped (media flowing while subscribers join).
struct Background {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Feed>,
}

impl Background {
    fn start(mut feed: Feed) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            feed.send(u32::MAX, &flag);
            feed
        });
        Self { stop, thread }
    }

    fn stop(self) -> Feed {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("feed thread")
    }
}

/// Delivered share of one window: RATE × WINDOW packets of every producer, sent after a
/// first stats read (the consumers are quiet then), read again GRACE after the last one.
async fn window<F, Fut>(feed: Feed, read: F, consumers: usize) -> (f64, Feed)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    tokio::time::sleep(GRACE).await;
    let before = read().await;
    let rounds = RATE * WINDOW.as_secs() as u32;
    let feed = tokio::task::spawn_blocking(move || {
        let mut feed = feed;
        feed.send(rounds, &AtomicBool::new(false));
        feed
    })
    .await
    .expect("feed");
    tokio::time::sleep(GRACE).await;
    let after = read().await;
    let expected = u64::from(rounds) * consumers as u64;
    ((after - before) as f64 / expected as f64, feed)
}

fn sinks() -> Vec<UdpSocket> {
    (0..16)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("sink");
            socket.set_nonblocking(true).expect("nonblocking");
            socket
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    /// Everyone joins while producers are silent, then media starts.
    Burst,
    /// Joins while media flows.
    Live,
}

/// One trial on mafalda-host with default settings and `workers` workers: delivered share and
/// the subscribers per worker.
async fn mafalda_trial(workers: usize, subscribers: usize, pattern: Pattern) -> (f64, String) {
    use mafalda_host::config::HostOptions;
    let mut options = HostOptions::default();
    options.pool.max_workers = workers;
    let manager = mafalda_host::worker_manager::WorkerManager::with_options(options);
    let worker = manager.create_worker(virt::quiet()).await.expect("worker");
    let router = virt::router(&worker).await;
    let (_ingest, producers, target) = virt::ingest(&router).await;
    let ids: Vec<_> = producers.iter().map(|p| p.id()).collect();
    let sinks = sinks();
    let background = (pattern == Pattern::Live).then(|| Background::start(Feed::new(target)));
    let mut joined = Vec::new();
    for batch in 0..subscribers.div_ceil(BATCH) {
        let count = BATCH.min(subscribers - batch * BATCH);
        let joins = (0..count).map(|i| {
            let sink = sinks[(batch * BATCH + i) % sinks.len()].local_addr().expect("addr");
            virt::subscribe(router.clone(), ids.clone(), sink)
        });
        joined.extend(futures::future::join_all(joins).await);
    }
    let feed = background.map_or_else(|| Feed::new(target), Background::stop);
    let consumers: Vec<_> = joined.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
    let (share, _feed) = window(feed, || virt::sent(&consumers), consumers.len()).await;
    let stats = manager.host().stats();
    let per_cell: Vec<String> = stats
        .cells
        .iter()
        .map(|c| {
            let subs = joined.iter().filter(|(t, _)| t.cell() == c.id).count();
            format!("{subs} subs @ {:.0}% cpu (predicted {:.0}%)", c.cpu * 100.0, c.predicted * 100.0)
        })
        .collect();
    (share, per_cell.join(", "))
}

/// One trial on plain mediasoup with 2 workers, producers piped by hand into a second router
/// and subscribers alternating between the routers (joins while media flows).
async fn plain_trial(subscribers: usize) -> (f64, String) {
    use mediasoup::prelude::*;
    let manager = WorkerManager::new();
    let first = manager.create_worker(plain::quiet()).await.expect("worker");
    let second = manager.create_worker(plain::quiet()).await.expect("worker");
    let a = plain::router(&first).await;
    let b = plain::router(&second).await;
    let (_ingest, producers, target) = plain::ingest(&a).await;
    let mut piped = Vec::new();
    for producer in &producers {
        piped.push(a.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(b.clone())).await.expect("pipe"));
    }
    let ids: Vec<_> = producers.iter().map(|p| p.id()).collect();
    let sinks = sinks();
    let background = Background::start(Feed::new(target));
    let mut joined = Vec::new();
    for batch in 0..subscribers.div_ceil(BATCH) {
        let count = BATCH.min(subscribers - batch * BATCH);
        let joins = (0..count).map(|i| {
            let k = batch * BATCH + i;
            let router = if k.is_multiple_of(2) { a.clone() } else { b.clone() };
            plain::subscribe(router, ids.clone(), sinks[k % sinks.len()].local_addr().expect("addr"))
        });
        joined.extend(futures::future::join_all(joins).await);
    }
    let feed = background.stop();
    let consumers: Vec<_> = joined.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
    let (share, _feed) = window(feed, || plain::sent(&consumers), consumers.len()).await;
    (share, "half per worker, by hand".into())
}

/// The largest subscriber count a trial delivers ≥ GOAL for (doubling, then bisection).
async fn capacity<F, Fut>(label: &str, trial: F) -> usize
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = (f64, String)>,
{
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut k = 64;
    for _ in 0..12 {
        let (share, placed) = trial(k).await;
        println!(
            "    {label}: {k:>4} subscribers ({:>6} consumers): {:>6.2}% delivered; {placed}",
            k * 20,
            share * 100.0
        );
        if share >= GOAL {
            good = good.max(k);
        } else {
            bad = Some(bad.map_or(k, |b| b.min(k)));
        }
        k = match bad {
            None => k * 2,
            Some(b) if b - good <= (good / 32).max(4) => break,
            Some(b) => (good + b) / 2,
        };
    }
    good
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!(
        "P2 (defaults): {PRODUCERS} Opus producers at {RATE} pps, K subscribers consuming all, joining {BATCH} at a time; \
         capacity at >= {:.1}% delivered",
        GOAL * 100.0
    );
    let plain_two = if run("plain") {
        let c = capacity("plain mediasoup, 2 workers, hand-piped", plain_trial).await;
        println!("  plain mediasoup hand-piped over 2 workers: {c} subscribers ({} consumers)", c * 20);
        Some(c)
    } else {
        None
    };
    for (name, pattern) in [("burst", Pattern::Burst), ("live", Pattern::Live)] {
        if !run(name) {
            continue;
        }
        let one = capacity(&format!("mafalda 1 worker, {name}"), |k| mafalda_trial(1, k, pattern)).await;
        let two = capacity(&format!("mafalda 2 workers, {name}"), |k| mafalda_trial(2, k, pattern)).await;
        let versus_plain =
            plain_two.map_or_else(String::new, |p| format!(", {:.2} of hand-piping", two as f64 / p.max(1) as f64));
        println!(
            "  {name}: 1 worker {one}, 2 workers {two} subscribers: ratio {:.2} (goal >= 1.9){versus_plain}\n",
            two as f64 / one.max(1) as f64
        );
    }
}
