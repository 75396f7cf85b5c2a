//! `mafalda-host demo`: one producer fed by the built-in RTP generator on worker 0, consumers on
//! every worker (piped from worker 0 where needed), and a live per-worker table.

use crate::media::{loopback_listen_info, opus_send_parameters, receiver_capabilities, router_codecs};
use crate::pool::{PoolError, PooledWorker, WorkerPool};
use crate::rtp::{GeneratorConfig, GeneratorError, PayloadKind, RtpGenerator, RtpSink};
use mediasoup::consumer::ConsumerRtpStreamStat;
use mediasoup::prelude::*;
use mediasoup::router::PipeProducerToRouterError;
use mediasoup::worker::{CreateRouterError, RequestError};
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};
use thiserror::Error;
use tracing::info;

const DEMO_SSRC: u32 = 0x4d41_4641; // "MAFA"

/// Errors of the demo job.
#[derive(Debug, Error)]
pub enum DemoError {
    /// The worker pool failed.
    #[error(transparent)]
    Pool(#[from] PoolError),
    /// A router could not be created.
    #[error("creating a router failed: {0}")]
    Router(#[from] CreateRouterError),
    /// A request to a worker failed.
    #[error("worker request failed: {0}")]
    Request(#[from] RequestError),
    /// The producer could not be created.
    #[error("producing failed: {0}")]
    Produce(#[from] ProduceError),
    /// A consumer could not be created.
    #[error("consuming failed: {0}")]
    Consume(#[from] ConsumeError),
    /// Piping the producer to another worker failed.
    #[error("piping the producer failed: {0}")]
    Pipe(#[from] PipeProducerToRouterError),
    /// The RTP generator failed.
    #[error(transparent)]
    Generator(#[from] GeneratorError),
    /// A sink socket could not be bound.
    #[error("binding a receiving socket failed: {0}")]
    Io(#[from] std::io::Error),
}

/// What the demo builds.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Consumers created on each worker.
    pub consumers_per_worker: usize,
    /// Packet rate of the generated Opus stream.
    pub packets_per_second: u32,
    /// Encrypt the pipes between workers with SRTP.
    pub srtp_pipes: bool,
    /// Stop after this long; `None` runs until Ctrl-C.
    pub duration: Option<Duration>,
    /// How often the table is printed.
    pub report_every: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            consumers_per_worker: 2,
            packets_per_second: 50,
            srtp_pipes: false,
            duration: None,
            report_every: Duration::from_secs(1),
        }
    }
}

/// A pipe carrying the producer from worker 0 to another worker.
struct Pipe {
    consumer: Consumer,
    producer: Producer,
}

/// Everything the demo created on one worker.
struct WorkerSide {
    pooled: PooledWorker,
    router: Router,
    /// The producer consumers on this worker read from (the original or a pipe producer).
    source: Producer,
    pipe: Option<Pipe>,
    consumers: Vec<Consumer>,
    _transports: Vec<PlainTransport>,
    sinks: Vec<RtpSink>,
}

/// The running demo room.
pub struct DemoRoom {
    sides: Vec<WorkerSide>,
    generator: Option<RtpGenerator>,
    _ingest: PlainTransport,
    started: Instant,
    last_cpu: Vec<(Instant, Option<Duration>)>,
    srtp_pipes: bool,
}

/// One row of the live table.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Worker position in the pool.
    pub index: usize,
    /// Transports in the worker's router (from the router's dump).
    pub transports: usize,
    /// Consumers on the worker (pipe consumers included).
    pub consumers: usize,
    /// RTP packets received by producers on the worker (pipe producers included).
    pub packets_in: u64,
    /// RTP packets sent by consumers on the worker (pipe consumers included).
    pub packets_out: u64,
    /// Packets that reached the demo's receivers intact.
    pub delivered: u64,
    /// Share of one core the worker thread used since the previous snapshot.
    pub cpu: Option<f64>,
}

/// A pipe in use, for the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeRow {
    /// Source worker index.
    pub from: usize,
    /// Destination worker index.
    pub to: usize,
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

async fn packets_in(producer: &Producer) -> Result<u64, RequestError> {
    Ok(producer.get_stats().await?.iter().map(|s| s.packet_count).sum())
}

async fn packets_out(consumer: &Consumer) -> Result<u64, RequestError> {
    Ok(consumer
        .get_stats()
        .await?
        .iter()
        .map(|s| match s {
            ConsumerRtpStreamStat::Outbound(stat) => stat.packet_count,
            ConsumerRtpStreamStat::Inbound(_) => 0,
        })
        .sum())
}

impl DemoRoom {
    /// Builds the room over every worker of `pool` and starts the generator.
    pub async fn build(pool: &WorkerPool, options: &DemoOptions) -> Result<Self, DemoError> {
        let workers = pool.workers();
        let mut routers = Vec::with_capacity(workers.len());
        for pooled in &workers {
            routers.push(pooled.worker.create_router(RouterOptions::new(router_codecs())).await?);
        }
        let Some(home) = routers.first().cloned() else {
            return Err(PoolError::NoWorkers.into());
        };
        let mut ingest_options = PlainTransportOptions::new(loopback_listen_info());
        ingest_options.comedia = true;
        let ingest = home.create_plain_transport(ingest_options).await?;
        let producer = ingest.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(DEMO_SSRC))).await?;
        info!(producer = %producer.id(), router = %home.id(), "demo producer on worker 0");

        let mut sides = Vec::with_capacity(workers.len());
        for (pooled, router) in workers.into_iter().zip(routers) {
            let pipe = if router.id() == home.id() {
                None
            } else {
                let mut pipe_options = PipeToRouterOptions::new(router.clone());
                pipe_options.enable_srtp = options.srtp_pipes;
                let pair = home.pipe_producer_to_router(producer.id(), pipe_options).await?;
                info!(to = pooled.index(), srtp = options.srtp_pipes, "producer piped");
                Some(Pipe { consumer: pair.pipe_consumer, producer: pair.pipe_producer.into_inner() })
            };
            let source = pipe.as_ref().map_or_else(|| producer.clone(), |p| p.producer.clone());
            let mut side = WorkerSide {
                pooled,
                router,
                source,
                pipe,
                consumers: Vec::new(),
                _transports: Vec::new(),
                sinks: Vec::new(),
            };
            for _ in 0..options.consumers_per_worker {
                side.add_consumer().await?;
            }
            sides.push(side);
        }
        let config = GeneratorConfig::opus(DEMO_SSRC).with_rate(options.packets_per_second);
        let generator = RtpGenerator::start(&ingest, config).await?;
        let now = Instant::now();
        let last_cpu = sides.iter().map(|s| (now, s.pooled.thread().cpu_time())).collect();
        Ok(Self {
            sides,
            generator: Some(generator),
            _ingest: ingest,
            started: now,
            last_cpu,
            srtp_pipes: options.srtp_pipes,
        })
    }

    /// Collects the numbers of one table.
    pub async fn snapshot(&mut self) -> Result<DemoSnapshot, DemoError> {
        let mut rows = Vec::with_capacity(self.sides.len());
        for (side, last) in self.sides.iter().zip(self.last_cpu.iter_mut()) {
            let packets_in_total = packets_in(&side.source).await?;
            let mut packets_out_total = 0;
            for consumer in &side.consumers {
                packets_out_total += packets_out(consumer).await?;
            }
            let mut consumers = side.consumers.len();
            if side.pipe.is_none() {
                // The home worker also runs the sending half of every pipe.
                for other in &self.sides {
                    if let Some(pipe) = &other.pipe {
                        packets_out_total += packets_out(&pipe.consumer).await?;
                        consumers += 1;
                    }
                }
            }
            let now = Instant::now();
            let cpu_now = side.pooled.thread().cpu_time();
            let cpu = match (last.1, cpu_now) {
                (Some(before), Some(after)) => {
                    let wall = now.duration_since(last.0).as_secs_f64();
                    (wall > 0.0).then(|| after.saturating_sub(before).as_secs_f64() / wall)
                }
                _ => None,
            };
            *last = (now, cpu_now);
            rows.push(WorkerRow {
                index: side.pooled.index(),
                transports: side.router.dump().await?.transport_ids.len(),
                consumers,
                packets_in: packets_in_total,
                packets_out: packets_out_total,
                delivered: side.sinks.iter().map(|s| s.report().intact).sum(),
                cpu,
            });
        }
        let home = self.sides.first().map_or(0, |s| s.pooled.index());
        let pipes = self
            .sides
            .iter()
            .filter(|s| s.pipe.is_some())
            .map(|s| PipeRow { from: home, to: s.pooled.index(), producer: s.source.id(), srtp: self.srtp_pipes })
            .collect();
        Ok(DemoSnapshot {
            elapsed: self.started.elapsed(),
            sent: self.generator.as_ref().map_or(0, RtpGenerator::sent),
            rows,
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

impl WorkerSide {
    async fn add_consumer(&mut self) -> Result<(), DemoError> {
        let sink = RtpSink::bind(PayloadKind::Opus).await?;
        let transport = self.router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await?;
        transport
            .connect(PlainTransportRemoteParameters {
                ip: Some(sink.addr().ip()),
                port: Some(sink.addr().port()),
                rtcp_port: None,
                srtp_parameters: None,
            })
            .await?;
        let consumer = transport.consume(ConsumerOptions::new(self.source.id(), receiver_capabilities())).await?;
        self.consumers.push(consumer);
        self._transports.push(transport);
        self.sinks.push(sink);
        Ok(())
    }
}

impl fmt::Display for DemoSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "t={:>5.1}s  generator sent {} RTP packets", self.elapsed.as_secs_f64(), self.sent)?;
        writeln!(
            f,
            "  {:<7} {:>10} {:>9} {:>10} {:>11} {:>10} {:>6}",
            "worker", "transports", "consumers", "pkts in", "pkts out", "delivered", "cpu"
        )?;
        for row in &self.rows {
            let cpu = row.cpu.map_or_else(|| "-".to_string(), |c| format!("{:.1}%", c * 100.0));
            writeln!(
                f,
                "  w{:<6} {:>10} {:>9} {:>10} {:>11} {:>10} {:>6}",
                row.index, row.transports, row.consumers, row.packets_in, row.packets_out, row.delivered, cpu
            )?;
        }
        if self.pipes.is_empty() {
            writeln!(f, "  pipes: none")
        } else {
            let pipes: Vec<String> = self
                .pipes
                .iter()
                .map(|p| format!("w{}->w{}{}", p.from, p.to, if p.srtp { " (srtp)" } else { "" }))
                .collect();
            writeln!(f, "  pipes: {} for producer {}", pipes.join(", "), self.pipes[0].producer)
        }
    }
}

/// Runs the demo until `options.duration` passes or `shutdown` resolves, printing the table,
/// then tears the room down and closes the pool's workers. Returns the last snapshot.
pub async fn run(
    pool: WorkerPool,
    options: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<DemoSnapshot, DemoError> {
    let mut room = DemoRoom::build(&pool, &options).await?;
    println!(
        "demo: 1 Opus producer on w0 at {} packets/s, {} consumers on each of {} workers{}",
        options.packets_per_second,
        options.consumers_per_worker,
        pool.len(),
        if options.srtp_pipes { ", SRTP pipes" } else { "" }
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
    let workers = pool.len();
    pool.close().await;
    println!("demo: generator sent {sent} packets; closed {workers} workers cleanly");
    Ok(last)
}
