//! P2 as a user meets it: a fan-out program written for mediasoup — producers in one room, K
//! subscribers each with one transport consuming every producer, joining 32 at a time — run on
//! mafalda-host with **default settings and no hints** (the default `pack` policy) with 1 and 2
//! workers, and the same program on plain mediasoup with 1 worker and with 2 workers and the
//! producers piped by hand into a second router (subscribers alternating: the layout a
//! hand-tuned application reaches). Capacity = the largest K with >= 99.5 % of the packets due
//! delivered over a 3 s window, counted from consumer stats (due: what each consumer's current
//! layer carries; video is measured once layers have settled, and a consumer that still switches
//! layer inside the window is left out and counted).
//!
//! Patterns (all four configurations run each, in alternating order, for ROUNDS rounds; medians
//! and spread are reported):
//! - `burst`: 20 Opus producers at 50 packets/s; everyone joins (transport, then its consumers)
//!   while the producers are silent, then media starts;
//! - `live`: the same, joining while media flows;
//! - `client`: mediasoup-client's order while media flows: every subscriber creates its
//!   transport first (in parallel tasks), and consumes afterwards;
//! - `video`: 4 VP8 simulcast producers (3 layers: 10, 33 and 100 packets/s of 200, 500 and
//!   1000 bytes; a sender report per stream each half second), flowing 2.5 s before live joins.
//!   A consumer forwards the layer its transport's bandwidth estimation (on by default) allots:
//!   the sinks send no feedback, so the estimate stays at the 600 kbps start and each subscriber's
//!   four consumers get the middle layer.
//!
//! Run: `cargo bench --workspace --bench fanout` (add pattern names to run some; add
//! `--pin-workers` to pin mafalda's workers to a core each).

use mafalda_media_tools::media::{
    loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs, send_to,
    vp8_simulcast_send_parameters,
};
use mafalda_media_tools::rtp::packet::{encode, encode_sender_report, RtpHeader, SenderReport};
use mafalda_media_tools::rtp::payload::{make, PayloadKind};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BATCH: usize = 32;
const WINDOW: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_millis(300);
const GOAL: f64 = 0.995;
/// Layers are settled when none changed for this long ...
const SETTLED: Duration = Duration::from_secs(1);
/// ... or after this long.
const SETTLE_MAX: Duration = Duration::from_secs(8);
const ROUNDS: usize = 3;
const AUDIO_SSRC: u32 = 0x00fa_0000;
const VIDEO_SSRC: u32 = 0x00fb_0000;
/// Ticks per second of the sender; every stream sends on some of them.
const TICK_HZ: u32 = 100;
/// The sender reports every stream each this many ticks (as a browser does, about once a second
/// or more often): a simulcast consumer cannot switch layers before it has one of each.
const REPORT_EVERY: u32 = 50;
/// Seconds from the NTP epoch (1900) to the Unix epoch.
const NTP_UNIX_OFFSET: f64 = 2_208_988_800.0;

/// One media source of the room.
#[derive(Clone, Copy, Debug)]
struct Stream {
    ssrc: u32,
    payload_type: u8,
    kind: PayloadKind,
    /// Send on one tick of `every`.
    every: u32,
    len: usize,
    clock: u32,
}

/// What the room's producers send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    /// 20 Opus producers at 50 packets/s.
    Audio,
    /// 4 VP8 simulcast producers, 100 + 30 + 10 packets/s.
    Video,
}

impl Media {
    fn producers(self) -> u32 {
        match self {
            Media::Audio => 20,
            Media::Video => 4,
        }
    }

    /// Every stream of producer `i`.
    fn streams(self, i: u32) -> Vec<Stream> {
        match self {
            Media::Audio => vec![Stream {
                ssrc: AUDIO_SSRC + i,
                payload_type: 100,
                kind: PayloadKind::Opus,
                every: TICK_HZ / 50,
                len: 80,
                clock: 48_000,
            }],
            Media::Video => [(0, 10, 200), (1, 3, 500), (2, 1, 1_000)]
                .into_iter()
                .map(|(layer, every, len)| Stream {
                    ssrc: VIDEO_SSRC + i * 4 + layer,
                    payload_type: 101,
                    kind: PayloadKind::Vp8KeyFrame,
                    every,
                    len,
                    clock: 90_000,
                })
                .collect(),
        }
    }

    /// How long media flows before subscribers join: a simulcast consumer only picks a layer
    /// whose stream has been active for 2 s (mediasoup's `StreamMinActiveMs`), so video rooms
    /// are joined warm, as in a live session.
    fn warm_up(self) -> Duration {
        match self {
            Media::Audio => Duration::ZERO,
            Media::Video => Duration::from_millis(2_500),
        }
    }

    /// Packets a consumer forwards in a window when it sends spatial layer `layer` (the top one
    /// when it reports none: a consumer sending nothing is not let off).
    fn due_in_window(self, layer: Option<u8>) -> u64 {
        let ticks = u64::from(TICK_HZ) * WINDOW.as_secs();
        match self {
            Media::Audio => 50 * WINDOW.as_secs(),
            Media::Video => {
                let streams = self.streams(0);
                let top = streams.len() - 1;
                let layer = layer.map_or(top, |l| usize::from(l).min(top));
                ticks / u64::from(streams[layer].every)
            }
        }
    }
}

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

            /// A comedia transport with the room's producers; returns where to send RTP.
            pub async fn ingest(router: &Router, media: Media) -> (PlainTransport, Vec<Producer>, SocketAddr) {
                let mut options = PlainTransportOptions::new(loopback_listen_info());
                options.comedia = true;
                let transport = router.create_plain_transport(options).await.expect("ingest");
                let mut producers = Vec::new();
                for i in 0..media.producers() {
                    let options = match media {
                        Media::Audio => ProducerOptions::new(MediaKind::Audio, opus_send_parameters(AUDIO_SSRC + i)),
                        Media::Video => {
                            let base = VIDEO_SSRC + i * 4;
                            ProducerOptions::new(
                                MediaKind::Video,
                                vp8_simulcast_send_parameters([base, base + 1, base + 2]),
                            )
                        }
                    };
                    producers.push(transport.produce(options).await.expect("producer"));
                }
                let tuple = transport.tuple();
                let target = SocketAddr::new(tuple.local_address().parse().expect("ip"), tuple.local_port());
                (transport, producers, target)
            }

            /// A subscriber's transport, sending to `sink`.
            pub async fn join(router: Router, sink: SocketAddr) -> PlainTransport {
                let transport = router
                    .create_plain_transport(PlainTransportOptions::new(loopback_listen_info()))
                    .await
                    .expect("egress");
                transport.connect(send_to(sink)).await.expect("connect");
                transport
            }

            /// Consumes every producer on `transport`.
            pub async fn consume(
                transport: PlainTransport,
                producers: Vec<ProducerId>,
            ) -> (PlainTransport, Vec<Consumer>) {
                let mut consumers = Vec::new();
                for producer in producers {
                    let options = ConsumerOptions::new(producer, receiver_capabilities());
                    consumers.push(transport.consume(options).await.expect("consume"));
                }
                (transport, consumers)
            }

            /// Packets the consumers are to forward in a window: each its current layer's (the
            /// transport's default bandwidth estimation picks the layer; with receivers that send
            /// no feedback it stays at the start bitrate).
            /// Each consumer's current spatial layer (None: none reported).
            pub fn layers(consumers: &[Consumer]) -> Vec<Option<u8>> {
                consumers.iter().map(|c| c.current_layers().map(|l| l.spatial_layer)).collect()
            }

            /// RTP packets each consumer has sent.
            pub async fn sent(consumers: &[Consumer]) -> Vec<u64> {
                let mut sent = Vec::with_capacity(consumers.len());
                for chunk in consumers.chunks(256) {
                    let stats = futures::future::join_all(chunk.iter().map(|c| c.get_stats())).await;
                    for stat in stats {
                        let mut total = 0;
                        for s in stat.expect("stats") {
                            if let ConsumerRtpStreamStat::Outbound(out) = s {
                                total += out.packet_count;
                            }
                        }
                        sent.push(total);
                    }
                }
                sent
            }

            /// `subscribers` join `routers` (round robin) in `pattern`'s order, `BATCH` at a time.
            pub async fn subscribe(
                routers: &[Router],
                ids: &[ProducerId],
                subscribers: usize,
                sinks: &[SocketAddr],
                pattern: Pattern,
            ) -> Vec<(PlainTransport, Vec<Consumer>)> {
                let router = |k: usize| routers[k % routers.len()].clone();
                let sink = |k: usize| sinks[k % sinks.len()];
                let mut joined = Vec::new();
                if pattern == Pattern::Client {
                    // Every transport first, in parallel tasks; then the consumes, in parallel.
                    let mut tasks = tokio::task::JoinSet::new();
                    for k in 0..subscribers {
                        tasks.spawn(join(router(k), sink(k)));
                    }
                    let mut transports = Vec::new();
                    while let Some(t) = tasks.join_next().await {
                        transports.push(t.expect("join"));
                    }
                    for chunk in transports.chunks(BATCH) {
                        let mut tasks = tokio::task::JoinSet::new();
                        for transport in chunk {
                            tasks.spawn(consume(transport.clone(), ids.to_vec()));
                        }
                        while let Some(done) = tasks.join_next().await {
                            joined.push(done.expect("consume"));
                        }
                    }
                    return joined;
                }
                for batch in 0..subscribers.div_ceil(BATCH) {
                    let count = BATCH.min(subscribers - batch * BATCH);
                    let joins = (0..count).map(|i| {
                        let k = batch * BATCH + i;
                        let ids = ids.to_vec();
                        let (router, sink) = (router(k), sink(k));
                        async move { consume(join(router, sink).await, ids).await }
                    });
                    joined.extend(futures::future::join_all(joins).await);
                }
                joined
            }
        }
    };
}

program!(plain, mediasoup);
program!(virt, mafalda_host);

/// Every producer's streams from one socket (a comedia transport keeps its first source),
/// keeping sequence numbers across calls.
struct Feed {
    socket: UdpSocket,
    target: SocketAddr,
    streams: Vec<Stream>,
    tick: u32,
    /// Wall-clock time of tick 0, in seconds since the NTP epoch.
    ntp_start: f64,
}

impl Stream {
    /// The media timestamp of the stream's `n`th packet.
    fn timestamp(&self, n: u32) -> u32 {
        n.wrapping_mul(self.clock / (TICK_HZ / self.every))
    }
}

impl Feed {
    fn new(target: SocketAddr, media: Media) -> Self {
        let streams = (0..media.producers()).flat_map(|i| media.streams(i)).collect();
        let unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970");
        let ntp_start = unix.as_secs_f64() + NTP_UNIX_OFFSET;
        Self { socket: UdpSocket::bind("127.0.0.1:0").expect("sender"), target, streams, tick: 0, ntp_start }
    }

    /// Sends `ticks` ticks of every stream at TICK_HZ, or until `stop` is set.
    fn send(&mut self, ticks: u32, stop: &AtomicBool) {
        let started = Instant::now();
        for round in 0..ticks {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let due = started + Duration::from_micros(u64::from(round) * 1_000_000 / u64::from(TICK_HZ));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let tick = self.tick;
            self.tick += 1;
            for stream in &self.streams {
                if !tick.is_multiple_of(stream.every) {
                    continue;
                }
                let n = tick / stream.every;
                let header = RtpHeader {
                    marker: true,
                    payload_type: stream.payload_type,
                    sequence: n as u16,
                    timestamp: stream.timestamp(n),
                    ssrc: stream.ssrc,
                };
                let body = make(stream.kind, n, stream.len);
                let _ = self.socket.send_to(&encode(&header, &body).expect("packet"), self.target);
            }
            if tick.is_multiple_of(REPORT_EVERY) {
                self.report(tick);
            }
        }
    }
}

impl Feed {
    /// One sender report per stream, for its last packet at or before `tick`.
    fn report(&self, tick: u32) {
        for stream in &self.streams {
            let n = tick / stream.every;
            let seconds = self.ntp_start + f64::from(n * stream.every) / f64::from(TICK_HZ);
            let ntp = ((seconds.trunc() as u64) << 32) | ((seconds.fract() * 4_294_967_296.0) as u64);
            let report = SenderReport {
                ssrc: stream.ssrc,
                ntp,
                rtp_timestamp: stream.timestamp(n),
                packets: n + 1,
                octets: (n + 1).wrapping_mul(stream.len as u32),
            };
            let _ = self.socket.send_to(&encode_sender_report(&report), self.target);
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

/// How many consumers send each spatial layer ("-" for none), e.g. `1:512`.
fn layer_mix(layers: &[Option<u8>]) -> String {
    let mut mix = std::collections::BTreeMap::<Option<u8>, usize>::new();
    for layer in layers {
        *mix.entry(*layer).or_default() += 1;
    }
    let parts: Vec<String> =
        mix.iter().map(|(layer, n)| format!("{}:{n}", layer.map_or("-".to_owned(), |l| l.to_string()))).collect();
    parts.join(" ")
}

/// Waits (media flowing) until no consumer has changed layer for SETTLED, at most SETTLE_MAX: a
/// consumer of a producer piped a moment ago may start on a layer whose bitrate its router has
/// not measured yet, and moves when it has. Returns how long it took.
async fn settle(media: Media, layers: impl Fn() -> Vec<Option<u8>>) -> Duration {
    if media == Media::Audio {
        return Duration::ZERO;
    }
    let started = Instant::now();
    let (mut last, mut since) = (layers(), Instant::now());
    while since.elapsed() < SETTLED && started.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = layers();
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    started.elapsed()
}

/// One window's outcome.
struct Window {
    /// Packets sent / packets due, over the consumers that kept their layer.
    share: f64,
    /// Consumers that changed layer during the window (left out of `share`).
    switched: usize,
    /// The layers at the end.
    layers: Vec<Option<u8>>,
}

/// Delivered share of one window: WINDOW of media sent after a first stats read (the consumers
/// are quiet then), read again GRACE after the last packet, against what each consumer's layer
/// carries. A consumer whose layer differs between the two reads is left out (its due is not
/// known) and counted.
async fn window<F, Fut>(feed: Feed, media: Media, read: F, layers: impl Fn() -> Vec<Option<u8>>) -> Window
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<u64>>,
{
    tokio::time::sleep(GRACE).await;
    let (before, layers_before) = (read().await, layers());
    let ticks = TICK_HZ * WINDOW.as_secs() as u32;
    tokio::task::spawn_blocking(move || {
        let mut feed = feed;
        feed.send(ticks, &AtomicBool::new(false));
    })
    .await
    .expect("feed");
    tokio::time::sleep(GRACE).await;
    let (after, layers_after) = (read().await, layers());
    let (mut sent, mut due, mut switched) = (0, 0, 0);
    for i in 0..after.len() {
        // A consumer's first layer event may trail its first packets: None before is no switch.
        if layers_before[i].is_some() && layers_before[i] != layers_after[i] {
            switched += 1;
            continue;
        }
        sent += after[i] - before[i];
        due += media.due_in_window(layers_after[i]);
    }
    Window { share: sent as f64 / due.max(1) as f64, switched, layers: layers_after }
}

fn sinks() -> (Vec<UdpSocket>, Vec<SocketAddr>) {
    let sockets: Vec<UdpSocket> = (0..16)
        .map(|_| {
            let socket = UdpSocket::bind("127.0.0.1:0").expect("sink");
            socket.set_nonblocking(true).expect("nonblocking");
            socket
        })
        .collect();
    let addresses = sockets.iter().map(|s| s.local_addr().expect("addr")).collect();
    (sockets, addresses)
}

/// How subscribers join.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pattern {
    /// Everyone joins while producers are silent, then media starts.
    Burst,
    /// Joins while media flows.
    Live,
    /// Transports first (parallel), consumes afterwards, while media flows.
    Client,
}

/// One of the four configurations compared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Setup {
    Plain1,
    PlainHandPiped2,
    Mafalda1,
    Mafalda2,
}

impl Setup {
    fn name(self) -> &'static str {
        match self {
            Setup::Plain1 => "mediasoup 1 worker",
            Setup::PlainHandPiped2 => "mediasoup 2 workers hand-piped",
            Setup::Mafalda1 => "mafalda 1 worker",
            Setup::Mafalda2 => "mafalda 2 workers",
        }
    }
}

/// Where subscribers went, and for video the layers, switches and settling time.
fn describe(placed: String, media: Media, result: &Window, settled: Duration) -> String {
    match media {
        Media::Audio => placed,
        Media::Video => format!(
            "{placed}; layers {}, settled in {:.1} s, {} switched in the window",
            layer_mix(&result.layers),
            settled.as_secs_f64(),
            result.switched
        ),
    }
}

/// One trial: the delivered share and where subscribers went.
async fn trial(setup: Setup, subscribers: usize, pattern: Pattern, media: Media) -> (f64, String) {
    let (_sockets, sink_addresses) = sinks();
    match setup {
        Setup::Mafalda1 | Setup::Mafalda2 => {
            let mut options = mafalda_host::config::HostOptions::default();
            options.pool.max_workers = if setup == Setup::Mafalda1 { 1 } else { 2 };
            // `--pin-workers`: mafalda's real workers pinned to a core each ([pool] pin_workers).
            options.pool.pin_workers = std::env::args().any(|a| a == "--pin-workers");
            let manager = mafalda_host::worker_manager::WorkerManager::with_options(options);
            let worker = manager.create_worker(virt::quiet()).await.expect("worker");
            let router = virt::router(&worker).await;
            let (_ingest, producers, target) = virt::ingest(&router, media).await;
            let ids: Vec<_> = producers.iter().map(|p| p.id()).collect();
            let background = (pattern != Pattern::Burst).then(|| Background::start(Feed::new(target, media)));
            tokio::time::sleep(media.warm_up()).await;
            let joined = virt::subscribe(&[router], &ids, subscribers, &sink_addresses, pattern).await;
            let consumers: Vec<_> = joined.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
            let settled = settle(media, || virt::layers(&consumers)).await;
            let feed = background.map_or_else(|| Feed::new(target, media), Background::stop);
            let result = window(feed, media, || virt::sent(&consumers), || virt::layers(&consumers)).await;
            let stats = manager.host().stats();
            let placed: Vec<String> = stats
                .cells
                .iter()
                .map(|c| {
                    let subs = joined.iter().filter(|(t, _)| t.cell() == c.id).count();
                    format!("{subs} @ {:.0}% (pred {:.0}%)", c.cpu * 100.0, c.predicted * 100.0)
                })
                .collect();
            let placed = placed.join(", ");
            (result.share, describe(placed, media, &result, settled))
        }
        Setup::Plain1 | Setup::PlainHandPiped2 => {
            use mediasoup::prelude::*;
            let manager = WorkerManager::new();
            let first = manager.create_worker(plain::quiet()).await.expect("worker");
            let a = plain::router(&first).await;
            let (_ingest, producers, target) = plain::ingest(&a, media).await;
            let mut routers = vec![a.clone()];
            let mut _second = None;
            let mut _piped = Vec::new();
            if setup == Setup::PlainHandPiped2 {
                let second = manager.create_worker(plain::quiet()).await.expect("worker");
                let b = plain::router(&second).await;
                for producer in &producers {
                    _piped.push(
                        a.pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(b.clone()))
                            .await
                            .expect("pipe"),
                    );
                }
                routers.push(b);
                _second = Some(second);
            }
            let ids: Vec<_> = producers.iter().map(|p| p.id()).collect();
            let background = (pattern != Pattern::Burst).then(|| Background::start(Feed::new(target, media)));
            tokio::time::sleep(media.warm_up()).await;
            let joined = plain::subscribe(&routers, &ids, subscribers, &sink_addresses, pattern).await;
            let consumers: Vec<_> = joined.iter().flat_map(|(_, c)| c.iter().cloned()).collect();
            let settled = settle(media, || plain::layers(&consumers)).await;
            let feed = background.map_or_else(|| Feed::new(target, media), Background::stop);
            let result = window(feed, media, || plain::sent(&consumers), || plain::layers(&consumers)).await;
            let placed = format!("{} per worker, by hand", subscribers / routers.len());
            (result.share, describe(placed, media, &result, settled))
        }
    }
}

/// The largest subscriber count a setup delivers >= GOAL for: doubling from `start` (or
/// halving), then bisection to within 1/32.
async fn capacity(setup: Setup, pattern: Pattern, media: Media, start: usize) -> usize {
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut k = start.max(8);
    for _ in 0..12 {
        let (share, placed) = trial(setup, k, pattern, media).await;
        println!("      {:<32} {k:>4} subscribers: {:>6.2}% delivered; {placed}", setup.name(), share * 100.0);
        if share >= GOAL {
            good = good.max(k);
        } else {
            bad = Some(bad.map_or(k, |b| b.min(k)));
        }
        k = match bad {
            None => k * 2,
            Some(b) if good == 0 && b <= 8 => break,
            Some(b) if good == 0 => b / 2,
            Some(b) if b - good <= (good / 32).max(4) => break,
            Some(b) => (good + b) / 2,
        };
    }
    good
}

fn median_and_range(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (sorted[sorted.len() / 2], sorted[0], sorted[sorted.len() - 1])
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let run = |name: &str| wanted.is_empty() || wanted.iter().any(|w| w == name);
    println!(
        "P2 (defaults): subscribers consuming every producer, joining {BATCH} at a time; capacity at >= {:.1}% \
         delivered over {} s; {ROUNDS} rounds, setups in alternating order",
        GOAL * 100.0,
        WINDOW.as_secs()
    );
    let patterns = [
        ("burst", Pattern::Burst, Media::Audio),
        ("live", Pattern::Live, Media::Audio),
        ("client", Pattern::Client, Media::Audio),
        ("video", Pattern::Live, Media::Video),
    ];
    let setups = [Setup::Plain1, Setup::PlainHandPiped2, Setup::Mafalda1, Setup::Mafalda2];
    for (name, pattern, media) in patterns {
        if !run(name) {
            continue;
        }
        println!("  pattern {name} ({media:?}, {pattern:?} joins)");
        let mut results: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        let mut last = vec![64usize; setups.len()];
        for round in 0..ROUNDS {
            let mut order: Vec<usize> = (0..setups.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let c = capacity(setups[i], pattern, media, last[i]).await;
                println!("    round {round}: {} = {c} subscribers", setups[i].name());
                results[i].push(c as f64);
                last[i] = c.max(8);
            }
        }
        let ratio = |a: usize, b: usize| -> Vec<f64> {
            results[a].iter().zip(&results[b]).map(|(x, y)| x / y.max(1.0)).collect()
        };
        for (i, setup) in setups.iter().enumerate() {
            let (m, lo, hi) = median_and_range(&results[i]);
            println!("    {:<32} median {m:.0} subscribers (range {lo:.0}-{hi:.0})", setup.name());
        }
        let scale = median_and_range(&ratio(3, 2));
        let hand = median_and_range(&ratio(1, 0));
        let versus = median_and_range(&ratio(3, 1));
        println!(
            "  {name}: mafalda 2/1 workers {:.2} (range {:.2}-{:.2}, goal >= 1.9); mediasoup hand-piped 2/1 {:.2} \
             ({:.2}-{:.2}); mafalda 2 / hand-piped 2 {:.2} ({:.2}-{:.2}, goal >= 0.95)\n",
            scale.0, scale.1, scale.2, hand.0, hand.1, hand.2, versus.0, versus.1, versus.2
        );
    }
}
