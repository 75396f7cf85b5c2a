//! Leak check: through the mediasoup-shaped API, 10,000 objects of every kind — routers, WebRTC
//! servers, WebRTC / plain / pipe / direct transports, producers, consumers, data producers and
//! data consumers (direct ones copied, SCTP ones piped to the other worker), audio-level and
//! active-speaker observers (and a virtual worker per round) — are created and closed in
//! rounds, concurrently, on a host of two workers. Every consumer and data consumer is on the other worker than its
//! source, so every source is piped between cells; half of the objects live in two routers kept
//! open throughout (their tables must empty while they live), the others in a router of their
//! own; one unit per round carries real RTP from end to end. Afterwards everything the host
//! keeps is back where it started: every internal table ([`Host::footprint`]), the stats
//! (totals, per-cell counts and load), the real workers' dumps (routers, WebRTC servers, channel
//! handlers), and the process' open fds and threads. A second test does the same for pipes
//! between routers (`pipe_producer_to_router`).

mod common;

use common::{options_with, plain_producer, quiet_settings, sink_consumer, slot, ForceBySlot, EVENT_LIMIT};
use mafalda_host::host::Host;
use mafalda_host::internals::footprint::Footprint;
use mafalda_host::prelude::*;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, PayloadKind, RtpGenerator};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Units of churn; each creates (and closes) one or more objects of every kind.
const UNITS: usize = 10_000;
/// Rounds they are spread over (a fresh virtual worker each).
const ROUNDS: usize = 40;
/// Units in flight at once within a round.
const LANES: usize = 8;
/// Routers kept open throughout.
const RESIDENT: usize = 2;
/// How long asynchronous teardown (mediasoup's close events, the deferred thread, the sampler
/// forgetting producers) may take to bring everything back.
const SETTLE: Duration = Duration::from_secs(30);
/// Threads the runtime may have started or let go meanwhile (tokio's blocking pool).
const THREAD_SLACK: i64 = 4;
/// Packets sent through the media unit of each round.
const PACKETS: u32 = 30;

/// The tests of this file run one at a time: the process' fds and threads are compared.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What was created, by kind.
#[derive(Clone, Copy, Debug)]
enum Kind {
    VirtualWorker,
    Router,
    WebRtcServer,
    WebRtcTransport,
    PlainTransport,
    PipeTransport,
    DirectTransport,
    Producer,
    Consumer,
    DataProducer,
    DataConsumer,
    AudioLevelObserver,
    ActiveSpeakerObserver,
    PipedDataProducer,
}

const KINDS: [Kind; 14] = [
    Kind::VirtualWorker,
    Kind::Router,
    Kind::WebRtcServer,
    Kind::WebRtcTransport,
    Kind::PlainTransport,
    Kind::PipeTransport,
    Kind::DirectTransport,
    Kind::Producer,
    Kind::Consumer,
    Kind::DataProducer,
    Kind::DataConsumer,
    Kind::AudioLevelObserver,
    Kind::ActiveSpeakerObserver,
    Kind::PipedDataProducer,
];

#[derive(Default)]
struct Tally([AtomicUsize; KINDS.len()]);

impl Tally {
    fn add(&self, kind: Kind, n: usize) {
        self.0[kind as usize].fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self, kind: Kind) -> usize {
        self.0[kind as usize].load(Ordering::Relaxed)
    }
}

/// A WebRTC server of its own (each worker binds a free port of its range).
fn server_options() -> WebRtcServerOptions {
    WebRtcServerOptions::new(WebRtcServerListenInfos::new(loopback_listen_info()))
}

/// Everything one unit holds until it is torn down.
struct Held {
    router: Router,
    server: WebRtcServer,
    webrtc: WebRtcTransport,
    pipe: PipeTransport,
    send: PlainTransport,
    producer: Producer,
    receive: PlainTransport,
    consumer: Consumer,
    data_send: DirectTransport,
    data_producer: DataProducer,
    data_receive: DirectTransport,
    data_consumer: DataConsumer,
    sctp: Option<(PlainTransport, DataProducer, DataConsumer)>,
    levels: AudioLevelObserver,
    speaker: ActiveSpeakerObserver,
}

impl Held {
    /// Closes everything in one of three orders (unit `i` picks): sinks first, sources first
    /// (their consumers close with them), or transports first (under live producer handles).
    fn close(self, i: usize) {
        let Held {
            router,
            server,
            webrtc,
            pipe,
            send,
            producer,
            receive,
            consumer,
            data_send,
            data_producer,
            data_receive,
            data_consumer,
            sctp,
            levels,
            speaker,
        } = self;
        match i % 3 {
            0 => {
                drop((consumer, data_consumer, levels, speaker));
                drop((producer, data_producer, sctp));
                drop((webrtc, pipe, send, receive, data_send, data_receive));
            }
            1 => {
                drop((producer, data_producer));
                drop(sctp);
                drop((levels, speaker, consumer, data_consumer));
                drop((receive, data_receive, send, data_send, pipe, webrtc));
            }
            _ => {
                drop((send, receive, data_send, data_receive, webrtc, pipe));
                drop(sctp);
                drop((speaker, levels, producer, consumer, data_producer, data_consumer));
            }
        }
        drop(server);
        drop(router);
    }
}

/// One unit: a router and a WebRTC server of its own (a WebRTC transport, on the server every
/// other unit, and a pipe transport in the router, on both workers between them), and
/// in `room` (a resident router, or its own) a producer on worker 0 consumed on worker 1, a
/// direct data producer on worker 0 consumed on worker 1 (copied there), every fourth unit an
/// SCTP data producer consumed on worker 1 (piped over SCTP), and both observers (the audio
/// level one on worker 1, observing the producer through its pipe). With `media`, RTP flows
/// from the producer to a sink behind the consumer and every packet must arrive.
async fn unit(i: usize, worker: &Worker, room: Option<Router>, media: bool, tally: &Tally) -> Held {
    let own = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    tally.add(Kind::Router, 1);
    let router = room.unwrap_or_else(|| own.clone());
    let server = worker.create_webrtc_server(server_options()).await.expect("webrtc server");
    tally.add(Kind::WebRtcServer, 1);
    // Every other WebRTC transport on the unit's server, the others on ports of their own.
    let mut options = if i.is_multiple_of(2) {
        WebRtcTransportOptions::new_with_server(server.clone())
    } else {
        WebRtcTransportOptions::new(WebRtcTransportListenInfos::new(loopback_listen_info()))
    };
    options.app_data = slot(i % 2);
    let webrtc = own.create_webrtc_transport(options).await.expect("webrtc transport");
    let mut options = PipeTransportOptions::new(loopback_listen_info());
    options.app_data = slot((i + 1) % 2);
    let pipe = own.create_pipe_transport(options).await.expect("pipe transport");
    tally.add(Kind::WebRtcTransport, 1);
    tally.add(Kind::PipeTransport, 1);

    let ssrc = 0x1000_0000 + u32::try_from(i).expect("small");
    let (send, producer) = plain_producer(&router, 0, MediaKind::Audio, opus_send_parameters(ssrc)).await;
    let (receive, consumer, sink) = if media {
        let (receive, consumer, sink) = sink_consumer(&router, producer.id(), PayloadKind::Opus, 1).await;
        (receive, consumer, Some(sink))
    } else {
        let mut options = PlainTransportOptions::new(loopback_listen_info());
        options.app_data = slot(1);
        let receive = router.create_plain_transport(options).await.expect("receive transport");
        let consumer =
            receive.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consumer");
        (receive, consumer, None)
    };
    assert_ne!(consumer.cell(), producer.cell(), "unit {i}: consumed on the other worker");
    tally.add(Kind::PlainTransport, 2);
    tally.add(Kind::Producer, 1);
    tally.add(Kind::Consumer, 1);

    let mut options = DirectTransportOptions::default();
    options.app_data = slot(0);
    let data_send = router.create_direct_transport(options).await.expect("direct transport");
    let data_producer = data_send.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
    let mut options = DirectTransportOptions::default();
    options.app_data = slot(1);
    let data_receive = router.create_direct_transport(options).await.expect("direct transport");
    let data_consumer = data_receive
        .consume_data(DataConsumerOptions::new_direct(data_producer.id(), None))
        .await
        .expect("data consumer");
    assert_ne!(data_consumer.cell(), data_producer.cell(), "unit {i}: data consumed on the other worker");
    tally.add(Kind::DirectTransport, 2);
    tally.add(Kind::DataProducer, 1);
    tally.add(Kind::DataConsumer, 1);

    let sctp = if i % 4 == 3 {
        let mut options = PlainTransportOptions::new(loopback_listen_info());
        options.enable_sctp = true;
        options.app_data = slot(0);
        let transport = router.create_plain_transport(options).await.expect("sctp transport");
        let data_producer = transport
            .produce_data(DataProducerOptions::new_sctp(SctpStreamParameters::new_ordered(1)))
            .await
            .expect("sctp data producer");
        let data_consumer = data_receive
            .consume_data(DataConsumerOptions::new_direct(data_producer.id(), None))
            .await
            .expect("data consumer of an sctp data producer");
        tally.add(Kind::PlainTransport, 1);
        tally.add(Kind::DataProducer, 1);
        tally.add(Kind::DataConsumer, 1);
        tally.add(Kind::PipedDataProducer, 1);
        Some((transport, data_producer, data_consumer))
    } else {
        None
    };

    let mut options = AudioLevelObserverOptions::default();
    options.app_data = slot(1);
    let levels = router.create_audio_level_observer(options).await.expect("audio level observer");
    levels.add_producer(RtpObserverAddProducerOptions::new(producer.id())).await.expect("observe levels");
    let mut options = ActiveSpeakerObserverOptions::default();
    options.app_data = slot(0);
    let speaker = router.create_active_speaker_observer(options).await.expect("active speaker observer");
    speaker.add_producer(RtpObserverAddProducerOptions::new(producer.id())).await.expect("observe speaker");
    tally.add(Kind::AudioLevelObserver, 1);
    tally.add(Kind::ActiveSpeakerObserver, 1);

    if let Some(sink) = sink {
        let generator =
            RtpGenerator::start(&send, GeneratorConfig::opus(ssrc).with_rate(500).with_count(PACKETS.into()))
                .await
                .expect("generator");
        assert_eq!(generator.finished().await.expect("sent"), u64::from(PACKETS));
        let report = sink.wait_for(PACKETS.into(), EVENT_LIMIT).await;
        assert!(report.has_all(PACKETS), "unit {i}: {} of {PACKETS} packets through the pipe", report.indices.len());
    }
    Held {
        router: own,
        server,
        webrtc,
        pipe,
        send,
        producer,
        receive,
        consumer,
        data_send,
        data_producer,
        data_receive,
        data_consumer,
        sctp,
        levels,
        speaker,
    }
}

/// One round: a fresh virtual worker; `units` units in `LANES` concurrent lanes, each lane
/// closing a unit before it starts the next; units alternate between the resident routers and
/// routers of their own.
async fn round(manager: &WorkerManager, resident: &[Router], first: usize, units: usize, tally: &Arc<Tally>) {
    let worker = manager.create_worker(quiet_settings()).await.expect("virtual worker");
    tally.add(Kind::VirtualWorker, 1);
    let mut lanes = tokio::task::JoinSet::new();
    for lane in 0..LANES.min(units) {
        let (worker, resident, tally) = (worker.clone(), resident.to_vec(), Arc::clone(tally));
        lanes.spawn(async move {
            for i in (first + lane..first + units).step_by(LANES) {
                let room = i.is_multiple_of(2).then(|| resident[(i / 2) % resident.len()].clone());
                let held = unit(i, &worker, room, i == first, &tally).await;
                held.close(i);
            }
        });
    }
    while let Some(done) = lanes.join_next().await {
        done.expect("lane");
    }
}

/// What the real workers hold, per cell: routers, WebRTC servers, channel request and
/// notification handlers.
type DumpSummary = Vec<(u32, Vec<String>, Vec<String>, usize, usize)>;

async fn dumps(host: &Host) -> DumpSummary {
    let mut summary = Vec::new();
    for (cell, dump) in host.worker_dumps().await {
        let dump = dump.expect("worker dump");
        let mut routers: Vec<String> = dump.router_ids.iter().map(ToString::to_string).collect();
        let mut servers: Vec<String> = dump.webrtc_server_ids.iter().map(ToString::to_string).collect();
        routers.sort();
        servers.sort();
        let handlers = &dump.channel_message_handlers;
        summary.push((
            cell.0,
            routers,
            servers,
            handlers.channel_request_handlers.len(),
            handlers.channel_notification_handlers.len(),
        ));
    }
    summary
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() as i64
}

fn threads() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("Threads: in /proc/self/status")
}

/// The largest value of every footprint field while `running` (sampled every 2 ms).
async fn peak_footprint(host: Arc<Host>, running: Arc<std::sync::atomic::AtomicBool>) -> serde_json::Value {
    let mut peak = serde_json::Map::new();
    while running.load(Ordering::Relaxed) {
        let now = serde_json::to_value(host.footprint()).expect("footprint as json");
        for (field, value) in now.as_object().expect("a struct") {
            let value = value.as_u64().expect("a count");
            let entry = peak.entry(field.clone()).or_insert(serde_json::Value::from(0u64));
            if value > entry.as_u64().unwrap_or(0) {
                *entry = value.into();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    serde_json::Value::Object(peak)
}

/// Waits (at most [`SETTLE`]) until the footprint is `expected`; panics with the difference.
async fn footprint_back(host: &Host, expected: &Footprint, when: &str) -> Duration {
    let since = Instant::now();
    loop {
        let now = host.footprint();
        if now == *expected {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < SETTLE,
            "{when}: the host's footprint is not back within {SETTLE:?}:\nnow      {now:?}\nexpected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (at most [`SETTLE`]) until the workers' dumps are `expected`.
async fn dumps_back(host: &Host, expected: &DumpSummary) {
    let since = Instant::now();
    loop {
        let now = dumps(host).await;
        if now == *expected {
            return;
        }
        assert!(
            since.elapsed() < SETTLE,
            "the workers' dumps are not back within {SETTLE:?}:\nnow      {now:?}\nexpected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every count of the stats is zero: totals, cells (data objects too) and their load.
fn stats_empty(host: &Host) {
    let stats = host.stats();
    let totals = &stats.totals;
    assert_eq!(
        (totals.cells, totals.transports, totals.producers, totals.consumers, totals.pipes),
        (2, 0, 0, 0, 0),
        "totals: {totals:?}"
    );
    for cell in &stats.cells {
        assert_eq!(
            (cell.transports, cell.producers, cell.consumers, cell.pipes, cell.data_producers, cell.data_consumers),
            (0, 0, 0, 0, 0, 0),
            "cell {}: {cell:?}",
            cell.id
        );
        let load = &cell.load;
        assert_eq!((load.transports, load.data_objects), (0, 0), "cell {} load: {load:?}", cell.id);
        let rates = load.forwarded.iter().chain(&load.received).chain(&load.expected);
        assert!(rates.into_iter().all(|v| v.abs() < 1e-6), "cell {} carries nothing: {load:?}", cell.id);
    }
    for router in &stats.routers {
        assert_eq!(
            (router.transports, router.producers, router.consumers, router.pipes),
            (0, 0, 0, 0),
            "router {}: {router:?}",
            router.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_objects_of_every_kind_leave_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let mut options = options_with(2, Arc::new(ForceBySlot));
    options.pool.min_workers = 2;
    let manager = WorkerManager::with_options(options);
    let host = Arc::clone(manager.host());
    let worker = manager.create_worker(quiet_settings()).await.expect("worker");
    assert_eq!(host.cells().len(), 2, "two workers up front");
    let mut resident = Vec::new();
    for _ in 0..RESIDENT {
        resident.push(worker.create_router(RouterOptions::new(router_codecs())).await.expect("resident router"));
    }
    let empty = host.footprint();
    assert_eq!(
        empty,
        Footprint {
            cells: 2,
            settings_sets: empty.settings_sets,
            host_event_handlers: empty.host_event_handlers,
            routers: RESIDENT,
            ..Footprint::default()
        },
        "nothing held before the churn"
    );

    // A warm-up round starts what lives as long as the process (the runtime's threads, the
    // deferred thread, the RTP capabilities calculator's worker).
    let tally = Arc::new(Tally::default());
    round(&manager, &resident, 0, 2 * LANES, &tally).await;
    footprint_back(&host, &empty, "after the warm-up").await;
    let baseline_dumps = dumps(&host).await;
    let (fds, threads_before) = (open_fds(), threads());
    let warm_up = started.elapsed();

    let churn = Instant::now();
    let tally = Arc::new(Tally::default());
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = tokio::spawn(peak_footprint(Arc::clone(&host), Arc::clone(&sampling)));
    let per_round = UNITS / ROUNDS;
    for r in 0..ROUNDS {
        round(&manager, &resident, r * per_round, per_round, &tally).await;
    }
    let churned = churn.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.expect("sampler");
    // The footprint saw the churn: every table filled (so its return to empty means something).
    for field in [
        "rate_sources",
        "rate_sources_live",
        "port_claims",
        "cell_objects",
        "cell_members",
        "cell_held_ids",
        "cell_routers_present",
        "ledger_flows",
        "ledger_transports",
        "ledger_data_objects",
        "ledger_milli_pps",
        "router_objects",
        "router_producers",
        "router_data_producers",
        "router_consumer_lists",
        "router_members",
        "real_routers",
        "real_router_watchers",
        "pipe_slots",
        "pipe_real_ids",
        "pipe_links",
    ] {
        assert!(peak[field].as_u64().is_some_and(|v| v > 0), "{field} never counted anything: {peak}");
    }

    // Everything is back while the resident routers live: their own tables are empty too.
    let settled = footprint_back(&host, &empty, "after the churn").await;
    stats_empty(&host);
    dumps_back(&host, &baseline_dumps).await;
    let ids = worker.dump().await.expect("virtual worker dump").router_ids;
    assert_eq!(ids.len(), RESIDENT, "only the resident routers are left on the virtual worker: {ids:?}");
    assert_eq!(host.worker_counters().crashes, 0, "no worker died");
    assert_eq!(open_fds(), fds, "open fds back to the start");
    let threads_after = threads();
    assert!(
        (threads_after - threads_before).abs() <= THREAD_SLACK,
        "threads back to the start: {threads_before} -> {threads_after}"
    );

    // Without the resident routers, the host holds no router at all.
    drop(resident);
    footprint_back(&host, &Footprint { routers: 0, ..empty.clone() }, "after the resident routers closed").await;
    dumps_back(&host, &baseline_dumps).await;

    for kind in KINDS {
        let created = tally.get(kind);
        let least = match kind {
            Kind::VirtualWorker => ROUNDS,
            Kind::PipedDataProducer => UNITS / 4,
            _ => UNITS,
        };
        assert!(created >= least, "{kind:?}: {created} created, {least} expected");
    }
    println!(
        "leak check: {} in {churned:.1?} ({ROUNDS} rounds, {LANES} lanes; warm-up {warm_up:.1?}, settled in {settled:.1?})",
        KINDS.iter().map(|k| format!("{:?} {}", k, tally.get(*k))).collect::<Vec<_>>().join(", "),
    );
    println!("peak footprint during the churn: {peak}");
    println!("fds {fds}, threads {threads_before} -> {threads_after}; footprint {:?}", host.footprint());
}

/// `pipe_producer_to_router` and `pipe_data_producer_to_router` between routers that then
/// close: mediasoup keeps the pipe transport pair of two routers weakly (the pipe consumer and
/// producer hold it), so nothing outlives the routers (mafalda's pair cache held both pipe
/// transports strongly once, and each held its router: both routers stayed alive for good).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_between_routers_leave_nothing_behind() {
    let _serial = SERIAL.lock().await;
    let mut options = options_with(2, Arc::new(ForceBySlot));
    options.pool.min_workers = 2;
    let manager = WorkerManager::with_options(options);
    let host = Arc::clone(manager.host());
    let (one, two) = (
        manager.create_worker(quiet_settings()).await.expect("worker"),
        manager.create_worker(quiet_settings()).await.expect("another virtual worker"),
    );
    let empty = host.footprint();
    for i in 0..200u32 {
        let source = one.create_router(RouterOptions::new(router_codecs())).await.expect("source router");
        let target = two.create_router(RouterOptions::new(router_codecs())).await.expect("target router");
        let (send, producer) = plain_producer(&source, 0, MediaKind::Audio, opus_send_parameters(i + 1)).await;
        let mut options = DirectTransportOptions::default();
        options.app_data = slot(1);
        let direct = source.create_direct_transport(options).await.expect("direct transport");
        let data_producer = direct.produce_data(DataProducerOptions::new_direct()).await.expect("data producer");
        let media = source
            .pipe_producer_to_router(producer.id(), PipeToRouterOptions::new(target.clone()))
            .await
            .expect("pipe producer to router");
        let data = source
            .pipe_data_producer_to_router(data_producer.id(), PipeToRouterOptions::new(target.clone()))
            .await
            .expect("pipe data producer to router");
        drop((media, data, producer, data_producer, send, direct, source, target));
    }
    footprint_back(&host, &empty, "after piping between routers").await;
    stats_empty(&host);
}
