//! When the process stops: Ctrl-C / SIGINT stops at once; SIGTERM drains (no new transport
//! here, what lives here keeps flowing) and stops once this host's cells are empty or at the
//! drain timeout — a second SIGTERM or a SIGINT then stops at once, and the drain can no longer
//! be undone; a deadline (`--duration`) stops too. A drain asked over the admin server
//! (`POST /drain`) ends the same way (and may be undone with `POST /undrain`).

use mafalda_host::ops::Operations;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

/// Default of `--drain-timeout`.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a drain checks whether the cells are empty.
const DRAIN_CHECK: Duration = Duration::from_millis(250);

/// Why the host stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM (a second one during a drain, or without a drain).
    Terminate,
    /// The deadline passed.
    Deadline,
    /// The drain ended: no transport left in this host's cells.
    Drained,
    /// The drain timeout passed with transports left.
    DrainTimeout,
}

/// Waits for SIGINT, SIGTERM or `deadline` (if any), whichever comes first.
pub async fn stop_requested(deadline: Option<Duration>) -> std::io::Result<StopReason> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let deadline = async {
        match deadline {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    Ok(tokio::select! {
        _ = interrupt.recv() => StopReason::Interrupt,
        _ = terminate.recv() => StopReason::Terminate,
        _ = deadline => StopReason::Deadline,
    })
}

/// Runs until the host should stop: SIGINT, a second SIGTERM, `deadline`, or the end of a
/// drain (asked by SIGTERM or by the admin server) — empty cells or `drain_timeout`.
pub async fn until_stopped(
    ops: &Operations,
    deadline: Option<Duration>,
    drain_timeout: Duration,
) -> std::io::Result<StopReason> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let deadline = deadline.map(|d| tokio::time::Instant::now() + d);
    let mut check = tokio::time::interval(DRAIN_CHECK);
    let mut drain_since: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = interrupt.recv() => return Ok(StopReason::Interrupt),
            _ = terminate.recv() => {
                // A drain asked over HTTP before does not make the first SIGTERM a hard stop.
                if ops.terminate("SIGTERM") {
                    return Ok(StopReason::Terminate);
                }
                info!(timeout = ?drain_timeout, "SIGTERM: draining; a second SIGTERM or Ctrl-C stops at once");
            }
            _ = async { match deadline { Some(at) => tokio::time::sleep_until(at).await, None => std::future::pending().await } } => {
                return Ok(StopReason::Deadline);
            }
            _ = check.tick() => {}
        }
        if !ops.host().is_draining() {
            drain_since = None;
            continue;
        }
        let since = *drain_since.get_or_insert_with(Instant::now);
        let left = ops.local_transports();
        if left == 0 {
            info!(after = ?since.elapsed(), "drained: no transport left on this host");
            return Ok(StopReason::Drained);
        }
        if since.elapsed() >= drain_timeout {
            warn!(transports = left, timeout = ?drain_timeout, "drain timeout: stopping with transports left");
            return Ok(StopReason::DrainTimeout);
        }
    }
}
