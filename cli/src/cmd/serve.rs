//! `mafalda-host serve`: the host with its plugins, until stopped.

use super::plugins::PluginFlags;
use crate::cmd::shutdown::{stop_requested, StopReason};
use anyhow::{Context, Result};
use mafalda_host::autoscale::{self, AutoscaleOptions};
use mafalda_host::config::{HostOptions, PolicyChoice};
use mafalda_host::host::{CloseReason, Host};
use mafalda_host::plugin::{watch, PluginSet};
use mafalda_host::worker::{WorkerLogLevel, WorkerSettings};
use mafalda_host::worker_manager::WorkerManager;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::info;

/// A running host: its manager, plugins and background tasks.
pub struct Running {
    /// The manager (its host serves placements).
    pub manager: WorkerManager,
    /// The virtual worker created for the host's own use.
    pub worker: mafalda_host::worker::Worker,
    /// Loaded plugins.
    pub _plugins: PluginSet,
    _watch: Option<watch::WatchGuard>,
}

impl Running {
    /// The host.
    pub fn host(&self) -> &Arc<Host> {
        self.manager.host()
    }
}

/// Starts the host: plugins loaded and hooked in, `initial` workers up front.
pub async fn start(
    mut options: HostOptions,
    policy_given: bool,
    flags: &PluginFlags,
    autoscale_options: AutoscaleOptions,
    initial: NonZeroUsize,
) -> Result<Running> {
    let runtime = flags.runtime()?;
    let plugins = flags.load(&runtime)?;
    let placement = match (&plugins.placement, policy_given) {
        (Some(plugin), _) => Some(Arc::clone(plugin)),
        (None, false) => Some(flags.default_placement(&runtime)?),
        (None, true) => None,
    };
    if let Some(plugin) = placement {
        options.policy = PolicyChoice::Custom(plugin);
    }
    let policy = format!("{:?}", options.policy);
    let manager = WorkerManager::with_options(options);
    let mut settings = WorkerSettings::default();
    settings.log_level = WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    let worker = manager.create_worker(settings).await.context("starting mediasoup workers")?;
    let host = manager.host();
    while host.cells().len() < initial.get() {
        if host.spawn_cell().await.context("starting a mediasoup worker")?.is_none() {
            break;
        }
    }
    host.set_auth(plugins.auth.clone());
    if let Some(hook) = &plugins.autoscale {
        autoscale::spawn(host, Arc::clone(hook), autoscale_options);
    }
    let reloadable = plugins.clone();
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading plugins");
            let set = reloadable.clone();
            let _ = tokio::task::spawn_blocking(move || set.reload()).await;
        }
    });
    let watch = if flags.watch { Some(watch::watch(plugins.clone(), Duration::from_millis(500))?) } else { None };
    info!(
        workers = host.cells().len(),
        max = host.options().pool.max_workers,
        %policy,
        auth = plugins.auth.as_ref().map_or("none", |p| p.label()),
        autoscale = plugins.autoscale.as_ref().map_or("none", |p| p.label()),
        "mafalda-host running; Ctrl-C to stop"
    );
    Ok(Running { manager, worker, _plugins: plugins, _watch: watch })
}

/// Closes every worker and waits for their close events; returns how many.
pub async fn stop(running: Running) -> usize {
    let host = Arc::clone(running.host());
    let cells = host.cells();
    for cell in &cells {
        host.close_cell(cell.id(), CloseReason::Retired);
        cell.watch().closed().await;
    }
    info!(workers = cells.len(), "all workers closed");
    cells.len()
}

/// Runs until SIGINT/SIGTERM or `duration`.
pub async fn serve(running: Running, duration: Option<Duration>) -> Result<()> {
    let reason = stop_requested(duration).await.context("installing signal handlers")?;
    info!(?reason, "stopping");
    let closed = stop(running).await;
    if reason == StopReason::Deadline {
        println!("mafalda-host: ran for the requested duration; closed {closed} workers");
    }
    Ok(())
}
