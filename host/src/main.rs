//! The `mafalda-host` binary: runs mediasoup workers and the jobs built on them.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use mafalda_host::config::{HostOptions, PolicyChoice};
use mafalda_host::demo::{self, DemoOptions};
use mafalda_host::host::CloseReason;
use mafalda_host::pool::{available_cores, WorkerPool, WorkerTemplate};
use mafalda_host::shutdown::{stop_requested, StopReason};
use mafalda_host::worker::{WorkerLogLevel, WorkerSettings};
use mafalda_host::worker_manager::WorkerManager;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// mafalda-host: one logical mediasoup Router over every core.
///
/// Without a command, starts the workers and keeps them running until Ctrl-C (or --duration).
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=mafalda_host=debug,mediasoup=warn) to choose
/// what is logged. Configuration: --config FILE (TOML), then MAFALDA_* environment variables,
/// then the flags below (flags win).
#[derive(Debug, Parser)]
#[command(name = "mafalda-host", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    host: HostFlags,

    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<u64>,

    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags shared by every command that runs workers.
#[derive(Debug, Args)]
struct HostFlags {
    /// Number of mediasoup workers started up front (one per core is the sweet spot).
    /// Default: number of cores.
    #[arg(short, long, global = true, value_name = "N", value_parser = parse_workers)]
    workers: Option<NonZeroUsize>,

    /// Most workers the pool may grow to (default: number of cores, at least --workers).
    #[arg(long, global = true, value_name = "N", value_parser = parse_workers)]
    max_workers: Option<NonZeroUsize>,

    /// Placement policy: pack (bin-pack under the CPU watermark), spread (least loaded).
    #[arg(long, global = true, value_name = "POLICY", value_parser = parse_policy)]
    policy: Option<PolicyChoice>,

    /// CPU share (0..1) above which the packer counts a worker as full (default 0.6).
    #[arg(long, global = true, value_name = "SHARE")]
    cpu_watermark: Option<f64>,

    /// Release a worker that hosted nothing for this many seconds (default 30).
    #[arg(long, global = true, value_name = "SECS")]
    idle_grace: Option<f64>,

    /// TOML configuration file (sections [pool], [placement], [pipes]; see the README).
    #[arg(long, global = true, value_name = "FILE", env = "MAFALDA_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the workers and keep them running (the default).
    Serve,
    /// Forward generated Opus RTP through every worker and print a live table once a second:
    /// one producer on worker 0, consumers on every worker, piped between workers.
    Demo {
        /// Consumers created on each worker.
        #[arg(long, value_name = "N", default_value_t = 2)]
        consumers_per_worker: usize,
        /// Packet rate of the generated stream.
        #[arg(long, value_name = "PPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        pps: u32,
        /// Encrypt the pipes between workers with SRTP.
        #[arg(long)]
        srtp_pipes: bool,
    },
}

fn parse_workers(text: &str) -> Result<NonZeroUsize, String> {
    let n: usize = text.parse().map_err(|_| format!("'{text}' is not a number of workers"))?;
    NonZeroUsize::new(n).ok_or_else(|| "at least 1 worker is needed (got 0)".to_string())
}

fn parse_policy(text: &str) -> Result<PolicyChoice, String> {
    PolicyChoice::parse(text).map_err(|e| e.to_string())
}

impl HostFlags {
    /// File, then environment, then these flags.
    fn options(&self) -> Result<HostOptions> {
        let config = self.config.clone();
        let mut options = HostOptions::from_vars(|key| match key {
            "MAFALDA_CONFIG" => config.as_ref().map(|p| p.display().to_string()),
            other => std::env::var(other).ok(),
        })
        .context("reading the configuration")?;
        let pool = &mut options.pool;
        if let Some(max) = self.max_workers {
            pool.max_workers = max.get();
        }
        if let Some(workers) = self.workers {
            pool.max_workers = pool.max_workers.max(workers.get());
        }
        if let Some(mark) = self.cpu_watermark {
            pool.cpu_watermark = mark;
        }
        if let Some(grace) = self.idle_grace {
            pool.idle_grace = Duration::try_from_secs_f64(grace).context("--idle-grace")?;
        }
        if let Some(policy) = &self.policy {
            options.policy = policy.clone();
        }
        Ok(options.validate()?)
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let duration = cli.duration.map(Duration::from_secs);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let initial = cli.host.workers.unwrap_or_else(available_cores);
            serve(cli.host.options()?, initial, duration).await
        }
        Command::Demo { consumers_per_worker, pps, srtp_pipes } => {
            let workers = cli.host.workers.unwrap_or_else(available_cores);
            let pool =
                WorkerPool::start(workers, WorkerTemplate::default()).await.context("starting mediasoup workers")?;
            let options = DemoOptions {
                consumers_per_worker,
                packets_per_second: pps,
                srtp_pipes,
                duration,
                ..DemoOptions::default()
            };
            let shutdown = async {
                let _ = stop_requested(None).await;
            };
            demo::run(pool, options, shutdown).await.context("demo failed")?;
            Ok(())
        }
    }
}

/// Runs the host (workers, placement, sampler) until stopped, with `initial` workers up front
/// (those above `min_workers` are released once idle for the grace period).
async fn serve(options: HostOptions, initial: NonZeroUsize, duration: Option<Duration>) -> Result<()> {
    let policy = format!("{:?}", options.policy);
    let manager = WorkerManager::with_options(options);
    let mut settings = WorkerSettings::default();
    settings.log_level = WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    let _worker = manager.create_worker(settings).await.context("starting mediasoup workers")?;
    let host = manager.host();
    while host.cells().len() < initial.get() {
        if host.spawn_cell().await.context("starting a mediasoup worker")?.is_none() {
            break;
        }
    }
    info!(workers = host.cells().len(), max = host.options().pool.max_workers, %policy, "mafalda-host running; Ctrl-C to stop");
    let reason = stop_requested(duration).await.context("installing signal handlers")?;
    info!(?reason, "stopping");
    let cells = host.cells();
    for cell in &cells {
        host.close_cell(cell.id(), CloseReason::Retired);
        cell.watch().closed().await;
    }
    info!(workers = cells.len(), "all workers closed");
    if reason == StopReason::Deadline {
        println!("mafalda-host: ran for the requested duration; closed {} workers", cells.len());
    }
    Ok(())
}
