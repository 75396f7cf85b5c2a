//! The virtual [`WorkerManager`]: the entry point of a drop-in application. It owns the host
//! (the real workers, placement, sampler) shared by every virtual worker it creates.

use super::worker::Worker;
use crate::backend::local::{LocalWorkers, WorkerTemplate};
use crate::cluster::Cluster;
use crate::config::HostOptions;
use crate::fleet::{Fleet, FleetOptions};
use crate::internals::host::{Host, WorkerLauncher};
use crate::internals::object::EventBag;
use crate::isolation::launcher::ChildWorkers;
use crate::isolation::Isolation;
use crate::policy::PolicyLoader;
use event_listener_primitives::HandlerId;
use mediasoup::worker::WorkerSettings;
use std::io;
use std::sync::Arc;
use tracing::{error, info, warn};

/// How long `create_worker` waits for the cluster's hosts to answer.
const CLUSTER_READY: std::time::Duration = std::time::Duration::from_secs(10);

/// Where real workers come from.
struct Launcher(Arc<dyn WorkerLauncher>);

impl From<LocalWorkers> for Launcher {
    fn from(local: LocalWorkers) -> Self {
        Self(Arc::new(local))
    }
}

impl From<Arc<dyn WorkerLauncher>> for Launcher {
    fn from(launcher: Arc<dyn WorkerLauncher>) -> Self {
        Self(launcher)
    }
}

struct Inner {
    host: Arc<Host>,
    cluster: Option<Arc<Cluster>>,
    /// Discovery through the registry (`MAFALDA_REGISTRY`), when configured.
    fleet: Option<Arc<Fleet>>,
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

impl WorkerManager {
    /// A manager configured from the environment (`MAFALDA_CONFIG`, `MAFALDA_POLICY`,
    /// `MAFALDA_MAX_WORKERS`, `MAFALDA_CPU_WATERMARK`), with defaults for everything else. A
    /// bad value is reported by the first `create_worker` call.
    #[must_use]
    pub fn new() -> Self {
        Self::from_env(LocalWorkers::default())
    }

    /// As [`WorkerManager::new`]; the real workers' async events run on `executor`.
    #[must_use]
    pub fn with_executor(executor: Arc<async_executor::Executor<'static>>) -> Self {
        Self::from_env(LocalWorkers::with_executor(executor))
    }

    /// mafalda extension: a manager with explicit options (they win over the environment).
    /// Options out of range (`HostOptions::validate`) are reported by the first
    /// `create_worker` call, as a bad environment is.
    #[must_use]
    pub fn with_options(options: HostOptions) -> Self {
        match options.clone().validate() {
            Ok(options) => Self::build(options, None, LocalWorkers::default()),
            Err(error) => Self::build(HostOptions::default(), Some(error.to_string()), LocalWorkers::default()),
        }
    }

    /// The launcher of `[pool] isolation`: worker processes around `launcher` (kept for the
    /// in-process calculator), or `launcher` itself; an error when the worker binary is
    /// missing.
    fn isolated(
        options: &HostOptions,
        launcher: Arc<dyn WorkerLauncher>,
    ) -> Result<Arc<dyn WorkerLauncher>, (String, Arc<dyn WorkerLauncher>)> {
        if options.pool.isolation.unwrap_or_default() != Isolation::Process {
            return Ok(launcher);
        }
        let bin =
            crate::isolation::worker_bin(options.pool.worker_bin.as_deref()).map_err(|e| (e, Arc::clone(&launcher)))?;
        let children = ChildWorkers::new(bin, options.pool.worker_liveness, options.node.clone(), launcher);
        Ok(Arc::new(children))
    }

    fn from_env(launcher: LocalWorkers) -> Self {
        match HostOptions::from_env() {
            Ok(options) => Self::build(options, None, launcher),
            Err(error) => {
                error!(%error, "mafalda-host configuration from the environment is invalid");
                Self::build(HostOptions::default(), Some(error.to_string()), launcher)
            }
        }
    }

    /// A manager whose real workers come from `launcher` (the seam's test double in unit tests).
    #[cfg(test)]
    pub(crate) fn with_launcher(options: HostOptions, launcher: Arc<dyn WorkerLauncher>) -> Self {
        Self::build(options, None, launcher)
    }

    fn build(options: HostOptions, config_error: Option<String>, launcher: impl Into<Launcher>) -> Self {
        let Launcher(launcher) = launcher.into();
        let mut config_error = config_error;
        let launcher = match Self::isolated(&options, launcher) {
            Ok(launcher) => launcher,
            Err((error, launcher)) => {
                config_error.get_or_insert(error);
                launcher
            }
        };
        let policy = PolicyLoader::default().resolve(&options.policy, options.pack()).unwrap_or_else(|error| {
            config_error.get_or_insert_with(|| error.to_string());
            Arc::new(options.pack())
        });
        let template = Self::template(&options, &WorkerSettings::default());
        if let Err(error) = options.check_pipes_reach_hosts() {
            config_error.get_or_insert_with(|| error.to_string());
        }
        let cluster_options = options.cluster.clone();
        let host = Host::new(options, policy, launcher, template);
        let cluster = if !cluster_options.is_used() {
            None
        } else {
            Cluster::for_application(&host, &cluster_options)
                .map_err(|error| config_error.get_or_insert_with(|| error.to_string()).clone())
                .ok()
        };
        let fleet = match (&cluster, FleetOptions::from_cluster(&cluster_options, None)) {
            (Some(cluster), Some(options)) => Fleet::start(&host, Arc::clone(cluster), options)
                .map_err(|error| config_error.get_or_insert_with(|| error.to_string()).clone())
                .ok(),
            _ => None,
        };
        Self { inner: Arc::new(Inner { host, cluster, fleet, config_error, new_worker: EventBag::default() }) }
    }

    /// How real workers for `settings` are made: the settings, with the pool's port range (a
    /// virtual worker's own range is applied to its transports' listen infos).
    fn template(options: &HostOptions, settings: &WorkerSettings) -> WorkerTemplate {
        let mut template = WorkerTemplate::from_settings(settings);
        template.rtc_ports = options.pool.rtc_min_port..=options.pool.rtc_max_port;
        template
    }

    /// mafalda extension: the host behind this manager (stats, cells, events, placement).
    #[must_use]
    pub fn host(&self) -> &Arc<Host> {
        &self.inner.host
    }

    /// Creates a virtual worker. Its settings (log level and tags, port range, DTLS files,
    /// thread initializer) choose the real workers that serve it: workers with the same
    /// settings are shared, other settings get workers of their own. At least `min_workers`
    /// real workers are running when this returns.
    pub async fn create_worker(&self, worker_settings: WorkerSettings) -> io::Result<Worker> {
        if let Some(error) = &self.inner.config_error {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, error.clone()));
        }
        if let Some(fleet) = &self.inner.fleet {
            fleet.ready(CLUSTER_READY).await.map_err(io::Error::other)?;
        } else if let Some(cluster) = &self.inner.cluster {
            cluster.ready(CLUSTER_READY).await.map_err(io::Error::other)?;
        }
        let host = &self.inner.host;
        let isolated = host.options().pool.isolation.unwrap_or_default() == Isolation::Process;
        if worker_settings.thread_initializer.is_some() && isolated {
            warn!(
                "thread_initializer is not run under [pool] isolation = \"process\": a closure cannot \
                 cross into a worker process (pin workers with [pool] pin_workers)"
            );
        } else if worker_settings.thread_initializer.is_some() && host.options().pool.max_workers > 1 {
            info!(
                "thread_initializer runs on every real worker serving this worker; pin real workers to \
                 cores with [pool] pin_workers instead of pinning from the initializer"
            );
        }
        let set = host.settings_set(Self::template(host.options(), &worker_settings));
        host.ensure_min_workers(set).await.map_err(io::Error::other)?;
        // A range of its own (not mediasoup's default) reaches its transports' listen infos.
        let port_range = (worker_settings.rtc_port_range != WorkerSettings::default().rtc_port_range)
            .then(|| worker_settings.rtc_port_range.clone());
        let worker = Worker::new(self.clone(), Arc::clone(host), set, port_range, worker_settings.app_data);
        self.inner.new_worker.call_simple(&worker);
        Ok(worker)
    }

    /// mafalda extension: the links to the cluster's hosts (`MAFALDA_CLUSTER`), if any.
    #[must_use]
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.inner.cluster.as_ref()
    }

    /// mafalda extension: discovery through the fleet's registry (`MAFALDA_REGISTRY`), if
    /// configured: the records known, the hosts linked.
    #[must_use]
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.inner.fleet.as_ref()
    }

    /// Callback is called when a new worker is created.
    pub fn on_new_worker<F: Fn(&Worker) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.new_worker.add(Arc::new(callback))
    }
}
