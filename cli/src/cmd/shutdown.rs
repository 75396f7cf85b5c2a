//! Resolves when the process is asked to stop (Ctrl-C / SIGINT, or SIGTERM) or a deadline passes.

use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// Why [`stop_requested`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// The deadline passed.
    Deadline,
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
