//! The autoscale loop: every interval the cluster snapshot goes to the autoscale plugin; worker
//! actions (add, retire, drain) are executed here; node actions (add, remove, drain a node) are
//! emitted as advice events ([`Autoscaler::on_advice`]: `mafalda-host --scale-hook CMD` gives
//! each to a command, as JSON on its stdin, for a script that calls a cloud API).

use crate::internals::host::Host;
use crate::internals::object::EventBag;
use crate::placement::CellId;
use crate::plugin::AutoscaleHook;
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::Action;
use std::sync::{Arc, Weak};
use std::time::Duration;
use thiserror::Error;
use tracing::{info, warn};

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
}

impl Default for AutoscaleOptions {
    fn default() -> Self {
        Self { interval: Duration::from_secs(10) }
    }
}

impl AutoscaleOptions {
    /// Options evaluating every `interval` (positive).
    pub fn new(interval: Duration) -> Result<Self, AutoscaleError> {
        if interval.is_zero() {
            return Err(AutoscaleError::ZeroInterval(interval));
        }
        Ok(Self { interval })
    }

    /// Time between two evaluations.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

/// A node action the autoscaler asked for (the host cannot add or remove nodes itself), with
/// the node's state when it was asked.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScaleAdvice {
    /// The action.
    #[serde(flatten)]
    pub action: Action,
    /// The node asking.
    pub from_node: String,
    /// Its workers.
    pub workers: usize,
    /// Most workers it may run.
    pub max_workers: usize,
    /// Its mean CPU share per worker.
    pub cpu: f64,
}

impl ScaleAdvice {
    fn new(host: &Host, action: Action) -> Self {
        let snapshot = host.snapshot();
        Self {
            action,
            from_node: host.options().node.clone(),
            workers: snapshot.cells.len(),
            max_workers: host.options().pool.max_workers,
            cpu: snapshot.nodes.first().map_or(0.0, |n| n.cpu),
        }
    }
}

/// The autoscaler of one host.
pub struct Autoscaler {
    host: Weak<Host>,
    hook: Arc<AutoscaleHook>,
    options: AutoscaleOptions,
    advice: EventBag<ScaleAdvice>,
}

impl std::fmt::Debug for Autoscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Autoscaler").field("options", &self.options).finish()
    }
}

impl Autoscaler {
    /// An autoscaler for `host`, asking `hook`.
    pub fn new(host: &Arc<Host>, hook: Arc<AutoscaleHook>, options: AutoscaleOptions) -> Arc<Self> {
        Arc::new(Self { host: Arc::downgrade(host), hook, options, advice: EventBag::default() })
    }

    /// Called with each node action the autoscaler asks for (add, remove or drain a node).
    pub fn on_advice<F: Fn(&ScaleAdvice) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.advice.add(Arc::new(callback))
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
                info!(?advice, "autoscale: node advice");
                self.advice.call_simple(&advice);
            }
        }
    }

    /// One evaluation: snapshot, plugin, actions. Returns what the plugin asked for.
    ///
    /// The plugin call itself is synchronous (bounded by the plugin's fuel and epoch
    /// deadline), so a caller on an async runtime blocks one runtime thread for its length;
    /// [`Autoscaler::spawn`] runs rounds on the autoscaler's own thread for that reason.
    pub async fn round(&self) -> Vec<Action> {
        let Some(host) = self.host.upgrade() else { return Vec::new() };
        let snapshot = host.snapshot();
        drop(host);
        // Bounded by the plugin's CPU and wall-time limits, as placement calls are.
        let actions = self.hook.evaluate(&snapshot);
        for action in actions.clone() {
            self.execute(action).await;
        }
        actions
    }

    /// Runs the loop on a thread of its own (no runtime needed) until the host or the
    /// autoscaler is dropped.
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<std::thread::JoinHandle<()>> {
        let autoscaler = Arc::downgrade(self);
        let interval = self.options.interval;
        std::thread::Builder::new().name("mafalda-autoscale".into()).spawn(move || loop {
            std::thread::sleep(interval);
            let Some(autoscaler) = autoscaler.upgrade() else { return };
            if autoscaler.host.strong_count() == 0 {
                return;
            }
            futures_lite::future::block_on(autoscaler.round());
        })
    }
}
