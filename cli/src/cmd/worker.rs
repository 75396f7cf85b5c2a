//! `mafalda-host worker`: one mediasoup worker in its own process, started by a host with
//! `--isolation process` (not by hand): it serves its parent over the socket it inherited.

use anyhow::{Context, Result};
use clap::Args;
use mafalda_host::isolation::child::{self, ChildArgs};
use std::path::PathBuf;
use tracing::info;

/// What a host passes to its worker process.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The inherited socket's descriptor.
    #[arg(long, value_name = "FD")]
    socket_fd: i32,
    /// The host's pid (the worker stops when it is not its parent).
    #[arg(long, value_name = "PID")]
    parent_pid: u32,
    /// Worker log level (debug, warn, error, none).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Worker log tag (repeatable).
    #[arg(long, value_name = "TAG")]
    log_tag: Vec<String>,
    /// The worker's RTC port range, MIN-MAX.
    #[arg(long, value_name = "MIN-MAX")]
    rtc_ports: Option<String>,
    /// DTLS certificate (with --dtls-key).
    #[arg(long, value_name = "FILE", requires = "dtls_key")]
    dtls_cert: Option<PathBuf>,
    /// DTLS private key.
    #[arg(long, value_name = "FILE", requires = "dtls_cert")]
    dtls_key: Option<PathBuf>,
    /// The core this process is pinned to.
    #[arg(long, value_name = "CORE")]
    core: Option<usize>,
}

/// Serves the parent until it closes the link.
pub async fn run(args: WorkerArgs) -> Result<()> {
    let rtc_ports = match &args.rtc_ports {
        Some(range) => {
            let (min, max) = range.split_once('-').context("--rtc-ports is MIN-MAX")?;
            Some((min.parse().context("--rtc-ports MIN")?, max.parse().context("--rtc-ports MAX")?))
        }
        None => None,
    };
    let child = ChildArgs {
        socket_fd: args.socket_fd,
        parent_pid: args.parent_pid,
        log_level: args.log_level,
        log_tags: args.log_tag,
        rtc_ports,
        dtls: args.dtls_cert.zip(args.dtls_key),
        core: args.core,
    };
    let reason = child::run(child).await?;
    info!(%reason, "worker process: the parent's link ended");
    Ok(())
}
