//! The `mafalda-host` binary: runs mediasoup workers and the jobs built on them.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use mafalda_host::demo::{self, DemoOptions};
use mafalda_host::pool::{available_cores, WorkerPool, WorkerTemplate};
use mafalda_host::shutdown::{stop_requested, StopReason};
use std::num::NonZeroUsize;
use std::time::Duration;
use tracing::info;
use tracing_subscriber::EnvFilter;

/// mafalda-host: one logical mediasoup Router over every core.
///
/// Without a command, starts the workers and keeps them running until Ctrl-C (or --duration).
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=mafalda_host=debug,mediasoup=warn) to choose
/// what is logged.
#[derive(Debug, Parser)]
#[command(name = "mafalda-host", version, about, long_about)]
struct Cli {
    /// Number of mediasoup workers (one per core is the sweet spot). Default: number of cores.
    #[arg(short, long, global = true, value_name = "N", value_parser = parse_workers)]
    workers: Option<NonZeroUsize>,

    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<u64>,

    #[command(subcommand)]
    command: Option<Command>,
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
    let n: usize = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of workers"))?;
    NonZeroUsize::new(n).ok_or_else(|| "at least 1 worker is needed (got 0)".to_string())
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let workers = cli.workers.unwrap_or_else(available_cores);
    let duration = cli.duration.map(Duration::from_secs);
    let pool = WorkerPool::start(workers, WorkerTemplate::default())
        .await
        .context("starting mediasoup workers")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(pool, duration).await,
        Command::Demo {
            consumers_per_worker,
            pps,
            srtp_pipes,
        } => {
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
            demo::run(pool, options, shutdown)
                .await
                .context("demo failed")?;
            Ok(())
        }
    }
}

async fn serve(pool: WorkerPool, duration: Option<Duration>) -> Result<()> {
    info!(workers = pool.len(), "mafalda-host running; Ctrl-C to stop");
    let reason = stop_requested(duration)
        .await
        .context("installing signal handlers")?;
    info!(?reason, "stopping");
    let workers = pool.len();
    pool.close().await;
    info!(workers, "all workers closed");
    if reason == StopReason::Deadline {
        println!("mafalda-host: ran for the requested duration; closed {workers} workers");
    }
    Ok(())
}
