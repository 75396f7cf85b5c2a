//! The autoscale loop: every interval the cluster snapshot goes to the autoscale plugin; worker
//! actions (add, retire, drain) are executed here; node actions (add, remove, drain a node) are
//! emitted as advice events and, with a scale hook command, given to it as JSON on its stdin
//! (for a script that calls a cloud API). A hook never holds the loop up: each runs in a task
//! of its own, bounded to 30 s.

use crate::internals::host::Host;
use crate::internals::object::EventBag;
use crate::placement::CellId;
use crate::plugin::AutoscaleHook;
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::Action;
use serde_json::json;
use std::sync::{Arc, Weak};
use std::time::Duration;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tracing::{info, warn};

/// How long a scale hook may run before it is killed.
const HOOK_LIMIT: Duration = Duration::from_secs(30);

/// The loop's options are unusable.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AutoscaleError {
    /// The interval must be positive.
    #[error("the autoscale interval must be positive (got {0:?})")]
    ZeroInterval(Duration),
}

/// How the loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoscaleOptions {
    interval: Duration,
    /// Shell command run for each node action, the advice as JSON on its stdin.
    pub scale_hook: Option<String>,
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self { interval: Duration::from_secs(10), scale_hook: None }
    }
}

impl AutoscaleOptions {
    /// Options evaluating every `interval` (positive).
    pub fn new(interval: Duration, scale_hook: Option<String>) -> Result<Self, AutoscaleError> {
        if interval.is_zero() {
            return Err(AutoscaleError::ZeroInterval(interval));
        }
        Ok(Self { interval, scale_hook })
    }

    /// Time between two evaluations.
    pub fn interval(&self) -> Duration {
        self.interval
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

/// How a scale hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookOutcome {
    /// The command.
    pub command: String,
    /// Whether it exited successfully within its time limit.
    pub success: bool,
}

/// Runs `command` with `input` on its stdin; logs how it ended.
async fn run_scale_hook(command: String, input: String) -> HookOutcome {
    let success = run_hook(&command, &input).await;
    HookOutcome { command, success }
}

async fn run_hook(command: &str, input: &str) -> bool {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(error) => {
            warn!(%error, command, "scale hook could not start");
            return false;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        if let Err(error) = stdin.write_all(input.as_bytes()).await {
            warn!(%error, command, "scale hook did not take its input");
        }
    }
    match tokio::time::timeout(HOOK_LIMIT, child.wait()).await {
        Ok(Ok(status)) if status.success() => {
            info!(command, "scale hook ran");
            true
        }
        Ok(Ok(status)) => {
            warn!(command, %status, "scale hook failed");
            false
        }
        Ok(Err(error)) => {
            warn!(%error, command, "scale hook failed");
            false
        }
        Err(_) => {
            warn!(command, "scale hook still running after {HOOK_LIMIT:?}; killed");
            false
        }
    }
}

/// The autoscaler of one host.
pub struct Autoscaler {
    host: Weak<Host>,
    hook: Arc<AutoscaleHook>,
    options: AutoscaleOptions,
    advice: EventBag<ScaleAdvice>,
    hook_done: Arc<EventBag<HookOutcome>>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler").field("options", &self.options).finish()
    }
}

impl Autoscaler {
    /// An autoscaler for `host`, asking `hook`.
    pub fn new(host: &Arc<Host>, hook: Arc<AutoscaleHook>, options: AutoscaleOptions) -> Arc<Self> {
        Arc::new(Self {
            host: Arc::downgrade(host),
            hook,
            options,
            advice: EventBag::default(),
            hook_done: Arc::default(),
        })
    }

    /// Called with each node action the autoscaler asks for (add, remove or drain a node).
    pub fn on_advice<F: Fn(&ScaleAdvice) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.advice.add(Arc::new(callback))
    }

    /// Called when a scale hook run ends (they run beside the loop, never holding it up).
    pub fn on_hook_done<F: Fn(&HookOutcome) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.hook_done.add(Arc::new(callback))
    }

    /// Carries out one action.
    pub async fn execute(&self, action: Action) {
        let Some(host) = self.host.upgrade() else { return };
        match action {
            Action::AddWorker => match host.spawn_cell().await {
                Ok(Some(cell)) => info!(cell = %cell.id(), "autoscale: worker added (kept until retired)"),
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
                let advice = ScaleAdvice::new(&host, node_action);
                info!(advice = %advice.json, "autoscale: node advice");
                self.advice.call_simple(&advice);
                if let Some(command) = &self.options.scale_hook {
                    let done = Arc::clone(&self.hook_done);
                    let run = run_scale_hook(command.clone(), advice.json);
                    tokio::spawn(async move { done.call_simple(&run.await) });
                }
            }
        }
    }

    /// One evaluation: snapshot, plugin, actions. Returns what the plugin asked for.
    pub async fn round(&self) -> Vec<Action> {
        let Some(host) = self.host.upgrade() else { return Vec::new() };
        let snapshot = host.snapshot();
        drop(host);
        let plugin = Arc::clone(&self.hook);
        let actions = tokio::task::spawn_blocking(move || plugin.evaluate(&snapshot)).await.unwrap_or_default();
        for action in actions.clone() {
            self.execute(action).await;
        }
        actions
    }

    /// Runs the loop until the host or the autoscaler is dropped (needs a tokio runtime).
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let autoscaler = Arc::downgrade(self);
        let interval = self.options.interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let Some(autoscaler) = autoscaler.upgrade() else { return };
                if autoscaler.host.strong_count() == 0 {
                    return;
                }
                autoscaler.round().await;
            }
        })
    }
}
