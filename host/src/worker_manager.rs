//! The virtual [`WorkerManager`]: the entry point of a drop-in application. It owns the host
//! (the real workers, placement, sampler) shared by every virtual worker it creates.

use crate::config::{ConfigError, HostOptions};
use crate::host::Host;
use crate::object::EventBag;
use crate::placement::{BinPack, PlacementPolicy};
use crate::pool::WorkerTemplate;
use crate::worker::Worker;
use event_listener_primitives::HandlerId;
use mediasoup::worker::WorkerSettings;
use std::io;
use std::sync::Arc;
use tracing::error;

struct Inner {
    host: Arc<Host>,
    config_error: Option<String>,
    new_worker: EventBag<Worker>,
}

/// Creates (virtual) workers; all of them share this manager's pool of real workers.
#[derive(Clone)]
pub struct WorkerManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for WorkerManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerManager").field("host", &self.inner.host).finish()
    }
}

impl Default for WorkerManager {
    fn default() -> Self {
        Self::new()
    }
}

/// Resolves the policy of `options`; plugin policies need a loader (`plugins`).
fn policy_of(options: &HostOptions) -> Result<Arc<dyn PlacementPolicy>, ConfigError> {
    if let Some(policy) = options.policy.native(options.pool.cpu_watermark) {
        return Ok(policy);
    }
    crate::plugin_policy::load(&options.policy)
}

impl WorkerManager {
    /// A manager configured from the environment (`MAFALDA_CONFIG`, `MAFALDA_POLICY`,
    /// `MAFALDA_MAX_WORKERS`, `MAFALDA_CPU_WATERMARK`), with defaults for everything else. A
    /// bad value is reported by the first `create_worker` call.
    #[must_use]
    pub fn new() -> Self {
        match HostOptions::from_env() {
            Ok(options) => Self::with_options(options),
            Err(error) => {
                error!(%error, "mafalda-host configuration from the environment is invalid");
                Self::build(HostOptions::default(), Some(error.to_string()))
            }
        }
    }

    /// As [`WorkerManager::new`]; the executor is not needed (real workers run on their own
    /// threads) and is accepted for compatibility.
    #[must_use]
    pub fn with_executor(_executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self::new()
    }

    /// mafalda extension: a manager with explicit options (they win over the environment).
    #[must_use]
    pub fn with_options(options: HostOptions) -> Self {
        Self::build(options, None)
    }

    fn build(options: HostOptions, mut config_error: Option<String>) -> Self {
        let policy = policy_of(&options).unwrap_or_else(|error| {
            config_error.get_or_insert_with(|| error.to_string());
            Arc::new(BinPack { watermark: options.pool.cpu_watermark })
        });
        Self {
            inner: Arc::new(Inner { host: Host::new(options, policy), config_error, new_worker: EventBag::default() }),
        }
    }

    /// mafalda extension: the host behind this manager (stats, cells, events, placement).
    #[must_use]
    pub fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    /// Creates a virtual worker. The settings' log level/tags, port range, DTLS files and thread
    /// initializer apply to real workers the pool starts from now on; at least `min_workers`
    /// real workers are running when this returns.
    pub async fn create_worker(&self, worker_settings: WorkerSettings) -> io::Result<Worker> {
        if let Some(error) = &self.inner.config_error {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, error.clone()));
        }
        let host = &self.inner.host;
        host.set_worker_template(WorkerTemplate::from_settings(&worker_settings));
        while host.cells().len() < host.options().pool.min_workers {
            match host.spawn_cell().await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(error) => return Err(io::Error::other(error)),
            }
        }
        let worker = Worker::new(self.clone(), Arc::clone(host), worker_settings.app_data);
        self.inner.new_worker.call_simple(&worker);
        Ok(worker)
    }

    /// Callback is called when a new worker is created.
    pub fn on_new_worker<F: Fn(&Worker) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.new_worker.add(Arc::new(callback))
    }
}
