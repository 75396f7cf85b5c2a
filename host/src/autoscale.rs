//! The autoscale loop: every interval the cluster snapshot goes to the autoscale plugin; worker
//! actions (add, retire, drain) are executed here; node actions (add, remove, drain a node) are
//! emitted as events and, with a scale hook command, given to it as JSON on its stdin (for a
//! script that calls a cloud API).

use crate::host::Host;
use crate::placement::CellId;
use crate::plugin::AutoscaleHook;
use mafalda_plugin_sdk::types::Action;
use serde_json::json;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// How the loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscaleOptions {
    /// Time between two evaluations.
    pub interval: Duration,
    /// Shell command run for each node action, the advice as JSON on its stdin.
    pub scale_hook: Option<String>,
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self { interval: Duration::from_secs(10), scale_hook: None }
    }
}

/// A node action the autoscaler asked for (the host cannot add or remove nodes itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleAdvice {
    /// The action.
    pub action: Action,
    /// What the scale hook receives.
    pub json: String,
}

impl ScaleAdvice {
    fn new(host: &Host, action: Action) -> Self {
        let snapshot = host.snapshot();
        let mut body = serde_json::to_value(&action).unwrap_or_else(|_| json!({}));
        if let Some(object) = body.as_object_mut() {
            object.insert("from_node".into(), json!(host.options().node));
            object.insert("workers".into(), json!(snapshot.cells.len()));
            object.insert("max_workers".into(), json!(host.options().pool.max_workers));
            object.insert("cpu".into(), json!(snapshot.nodes.first().map_or(0.0, |n| n.cpu)));
        }
        Self { action, json: body.to_string() }
    }
}

/// Runs `command` with `input` on its stdin; logs how it ended.
async fn run_scale_hook(command: &str, input: &str) {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => return warn!(%error, command, "scale hook could not start"),
    };
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(error) = stdin.write_all(input.as_bytes()).await {
            warn!(%error, command, "scale hook did not take its input");
        }
    }
    match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
        Ok(Ok(status)) if status.success() => info!(command, "scale hook ran"),
        Ok(Ok(status)) => warn!(command, %status, "scale hook failed"),
        Ok(Err(error)) => warn!(%error, command, "scale hook failed"),
        Err(_) => warn!(command, "scale hook still running after 30 s; killed"),
    }
}

/// Carries out one action.
pub async fn execute(host: &Arc<Host>, action: Action, options: &AutoscaleOptions) {
    match action {
        Action::AddWorker => match host.spawn_cell().await {
            Ok(Some(cell)) => info!(cell = %cell.id(), "autoscale: worker added"),
            Ok(None) => info!("autoscale: add-worker ignored, the pool is at its maximum"),
            Err(error) => warn!(%error, "autoscale: could not add a worker"),
        },
        Action::RetireWorker { cell } => {
            if !host.retire_cell(CellId(cell)) {
                warn!(cell, "autoscale: retire-worker names no open cell");
            }
        }
        Action::DrainWorker { cell } => {
            if !host.drain_cell(CellId(cell)) {
                warn!(cell, "autoscale: drain-worker names no open cell");
            }
        }
        node_action => {
            let advice = ScaleAdvice::new(host, node_action);
            info!(advice = %advice.json, "autoscale: node advice");
            host.advise(&advice);
            if let Some(command) = &options.scale_hook {
                run_scale_hook(command, &advice.json).await;
            }
        }
    }
}

/// One evaluation: snapshot, plugin, actions. Returns what the plugin asked for.
pub async fn round(host: &Arc<Host>, hook: &Arc<AutoscaleHook>, options: &AutoscaleOptions) -> Vec<Action> {
    let snapshot = host.snapshot();
    let plugin = Arc::clone(hook);
    let actions = tokio::task::spawn_blocking(move || plugin.evaluate(&snapshot)).await.unwrap_or_default();
    for action in actions.clone() {
        execute(host, action, options).await;
    }
    actions
}

/// Runs the loop until the host is dropped (needs a tokio runtime).
pub fn spawn(host: &Arc<Host>, hook: Arc<AutoscaleHook>, options: AutoscaleOptions) -> tokio::task::JoinHandle<()> {
    let host: Weak<Host> = Arc::downgrade(host);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(options.interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(host) = host.upgrade() else { return };
            round(&host, &hook, &options).await;
        }
    })
}
