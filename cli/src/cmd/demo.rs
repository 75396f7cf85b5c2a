//! `mafalda-host demo`: the host and its placement policy at work. One virtual router, one Opus
//! producer fed by the built-in RTP generator, consumers joining one after another: the
//! placement policy (the embedded `pack` plugin unless told otherwise) picks each transport's
//! worker, the virtual router pipes the producer wherever a consumer lands, and a live table
//! shows per worker what it carries and the packets crossing it.

use mafalda_host::host::Host;
use mafalda_host::labels::PlacementHints;
use mafalda_host::placement::{CellId, Direction};
use mafalda_host::prelude::*;
use mafalda_host::router::PipeSource;
use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use mafalda_media_tools::rtp::{GeneratorConfig, GeneratorError, PayloadKind, RtpGenerator, RtpSink};
use mediasoup::consumer::ConsumerRtpStreamStat;
use mediasoup::worker::{CreateRouterError, RequestError};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::info;

const DEMO_SSRC: u32 = 0x4d41_4641; // "MAFA"
const DEMO_ROOM: &str = "demo";

/// Errors of the demo job.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The router could not be created.
    #[error("creating the router failed: {0}")]
    Router(#[from] CreateRouterError),
    /// A request to a worker failed (placement refusals included).
    #[error("worker request failed: {0}")]
    Request(#[from] RequestError),
    /// The producer could not be created.
    #[error("producing failed: {0}")]
    Produce(#[from] ProduceError),
    /// A consumer could not be created.
    #[error("consuming failed: {0}")]
    Consume(#[from] ConsumeError),
    /// The RTP generator failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// A receiving socket could not be bound.
    #[error("binding a receiving socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the demo builds.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Consumers joining the room (each on its own transport, placed by the policy).
    pub consumers: usize,
    /// Packet rate of the generated Opus stream.
    pub packets_per_second: u32,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// How often the table is printed.
    pub report_every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { consumers: 5, packets_per_second: 50, duration: None, report_every: Duration::from_secs(1) }
    }
}

/// One consumer of the room and where its packets end up.
struct Listener {
    transport: PlainTransport,
    consumer: Consumer,
    sink: RtpSink,
}

/// The running demo room.
pub struct DemoRoom {
    router: Router,
    ingest: PlainTransport,
    producer: Producer,
    listeners: Vec<Listener>,
    generator: Option<RtpGenerator>,
    started: Instant,
}

/// One row of the live table: one worker (cell).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// The cell.
    pub cell: CellId,
    /// The host running it.
    pub node: String,
    /// Transports placed here (all routers).
    pub transports: u32,
    /// Consumers here (pipe consumers not included).
    pub consumers: u32,
    /// RTP packets the producer feeding this worker received (the original or its pipe).
    pub packets_in: u64,
    /// RTP packets this worker's consumers sent.
    pub packets_out: u64,
    /// Packets that reached the demo's receivers intact.
    pub delivered: u64,
    /// Share of one core the worker used at the last sample.
    pub cpu: f64,
}

/// A pipe in use, for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeRow {
    /// Source cell.
    pub from: CellId,
    /// Destination cell.
    pub to: CellId,
    /// The piped producer.
    pub producer: ProducerId,
    /// Whether the pipe is SRTP-encrypted.
    pub srtp: bool,
}

/// One table's worth of numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSnapshot {
    /// Time since the room was built.
    pub elapsed: Duration,
    /// Packets the generator sent.
    pub sent: u64,
    /// One row per worker.
    pub rows: Vec<WorkerRow>,
    /// Pipes in use.
    pub pipes: Vec<PipeRow>,
}

/// `app_data` of a demo transport: the room label and its direction, for the policy.
fn hints(direction: Direction) -> AppData {
    let mut hints = PlacementHints::labels([("room", DEMO_ROOM)]);
    hints.direction = direction;
    AppData::new(hints)
}

/// Sums of the consumer's outbound streams and the largest inbound (its producer's) count.
async fn consumer_packets(consumer: &Consumer) -> Result<(u64, u64), RequestError> {
    let (mut sent, mut received) = (0, 0);
    for stat in consumer.get_stats().await? {
        match stat {
            ConsumerRtpStreamStat::Outbound(stat) => sent += stat.packet_count,
            ConsumerRtpStreamStat::Inbound(stat) => received = received.max(stat.packet_count),
        }
    }
    Ok((sent, received))
}

impl DemoRoom {
    /// Builds the room on `worker` (a virtual worker: the host places every transport) and
    /// starts the generator.
    pub async fn build(worker: &Worker, options: &DemoOptions) -> Result<Self, DemoError> {
        let router = worker.create_router(RouterOptions::new(router_codecs())).await?;
        let mut ingest_options = PlainTransportOptions::new(loopback_listen_info());
        ingest_options.comedia = true;
        ingest_options.app_data = hints(Direction::Send);
        let ingest = router.create_plain_transport(ingest_options).await?;
        let producer = ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(DEMO_SSRC))).await?;
        info!(producer = %producer.id(), cell = %ingest.cell(), "demo producer placed");
        let mut listeners = Vec::with_capacity(options.consumers);
        for _ in 0..options.consumers {
            let sink = RtpSink::bind(PayloadKind::Opus).await?;
            let mut transport_options = PlainTransportOptions::new(loopback_listen_info());
            transport_options.app_data = hints(Direction::Recv);
            let transport = router.create_plain_transport(transport_options).await?;
            transport.connect(sink.remote_parameters()).await?;
            let consumer = transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await?;
            info!(consumer = %consumer.id(), cell = %transport.cell(), "demo consumer placed");
            listeners.push(Listener { transport, consumer, sink });
        }
        let config = GeneratorConfig::opus(DEMO_SSRC).with_rate(options.packets_per_second);
        let generator = RtpGenerator::start(&ingest, config).await?;
        Ok(Self { router, ingest, producer, listeners, generator: Some(generator), started: Instant::now() })
    }

    /// The host placing the room's transports.
    fn host(&self) -> &Arc<Host> {
        self.router.worker().host()
    }

    /// Collects the numbers of one table.
    pub async fn snapshot(&self) -> Result<DemoSnapshot, DemoError> {
        let stats = self.host().stats();
        let mut rows: BTreeMap<CellId, WorkerRow> = stats
            .cells
            .iter()
            .map(|cell| {
                let row = WorkerRow {
                    cell: cell.id,
                    node: cell.node.clone(),
                    transports: cell.transports,
                    consumers: cell.consumers,
                    packets_in: 0,
                    packets_out: 0,
                    delivered: 0,
                    cpu: cell.cpu,
                };
                (cell.id, row)
            })
            .collect();
        let home = self.ingest.cell();
        let produced: u64 = self.producer.get_stats().await?.iter().map(|s| s.packet_count).sum();
        if let Some(row) = rows.get_mut(&home) {
            row.packets_in = produced;
        }
        for listener in &self.listeners {
            let (sent, received) = consumer_packets(&listener.consumer).await?;
            if let Some(row) = rows.get_mut(&listener.transport.cell()) {
                row.packets_out += sent;
                row.packets_in = row.packets_in.max(received);
                row.delivered += listener.sink.report().intact;
            }
        }
        let srtp = self.host().options().pipes.srtp;
        let pipes = self
            .router
            .pipes()
            .into_iter()
            .filter_map(|(source, to)| match source {
                PipeSource::Producer(producer) => Some(PipeRow { from: home, to, producer, srtp }),
                PipeSource::DataProducer(_) => None,
            })
            .collect();
        Ok(DemoSnapshot {
            elapsed: self.started.elapsed(),
            sent: self.generator.as_ref().map_or(0, RtpGenerator::sent),
            rows: rows.into_values().collect(),
            pipes,
        })
    }

    /// Stops the generator and closes every object the room created (workers stay open).
    pub async fn shutdown(mut self) -> Result<u64, DemoError> {
        let sent = match self.generator.take() {
            Some(generator) => generator.stop().await?,
            None => 0,
        };
        drop(self);
        Ok(sent)
    }
}

impl fmt::Display for DemoSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "t={:>5.1}s  generator sent {} RTP packets", self.elapsed.as_secs_f64(), self.sent)?;
        writeln!(
            f,
            "  {:<7} {:<12} {:>10} {:>9} {:>10} {:>11} {:>10} {:>6}",
            "worker", "host", "transports", "consumers", "pkts in", "pkts out", "delivered", "cpu"
        )?;
        for row in &self.rows {
            writeln!(
                f,
                "  w{:<6} {:<12} {:>10} {:>9} {:>10} {:>11} {:>10} {:>5.1}%",
                row.cell.0,
                row.node,
                row.transports,
                row.consumers,
                row.packets_in,
                row.packets_out,
                row.delivered,
                row.cpu * 100.0
            )?;
        }
        let Some(first) = self.pipes.first() else {
            return writeln!(f, "  pipes: none");
        };
        let pipes: Vec<String> = self
            .pipes
            .iter()
            .map(|p| format!("w{}->w{}{}", p.from.0, p.to.0, if p.srtp { " (srtp)" } else { "" }))
            .collect();
        writeln!(f, "  pipes: {} for producer {}", pipes.join(", "), first.producer)
    }
}

/// Runs the demo on `worker` until `options.duration` passes or `shutdown` resolves, printing
/// the table, then tears the room down (the caller closes the workers). Returns the last
/// snapshot and the packets the generator sent.
pub async fn run(
    worker: &Worker,
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(DemoSnapshot, u64), DemoError> {
    let room = DemoRoom::build(worker, &options).await?;
    let first = room.snapshot().await?;
    println!(
        "demo: 1 Opus producer at {} packets/s and {} consumers in room '{DEMO_ROOM}', placed by {:?} over {} workers{}",
        options.packets_per_second,
        options.consumers,
        room.host().options().policy,
        first.rows.len(),
        if room.host().options().pipes.srtp { ", SRTP pipes" } else { "" }
    );
    let mut ticker = tokio::time::interval(options.report_every);
    ticker.tick().await;
    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(shutdown, deadline);
    loop {
        tokio::select! {
            _ = ticker.tick() => print!("{}", room.snapshot().await?),
            _ = &mut deadline => break,
            _ = &mut shutdown => {
                println!("demo: interrupted");
                break;
            }
        }
    }
    let last = room.snapshot().await?;
    let sent = room.shutdown().await?;
    Ok((last, sent))
}
