//! `mafalda-host serve`: the host with its plugins, until stopped.

use super::plugins::PluginFlags;
use crate::admin::Bound;
use crate::cmd::shutdown::{until_stopped, StopReason};
use anyhow::{bail, Context, Result};
use mafalda_host::autoscale::{AutoscaleOptions, Autoscaler};
use mafalda_host::cluster::limits::ServeLimits;
use mafalda_host::cluster::server::{ClusterServer, ServeOptions};
use mafalda_host::cluster::tls::NodeTls;
use mafalda_host::cluster::Cluster;
use mafalda_host::config::{HostOptions, PolicyChoice, ServeSettings};
use mafalda_host::fleet::{Fleet, FleetOptions, Identity, Publisher, Registry};
use mafalda_host::ops::Operations;
use mafalda_host::plugin::{watch, PluginSet};
use mafalda_host::worker::{WorkerLogLevel, WorkerSettings};
use mafalda_host::worker_manager::WorkerManager;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

/// The cluster part of `serve`.
#[derive(Debug, Default)]
pub struct ClusterFlags {
    serve: Option<ServeOptions>,
    peers: Vec<String>,
    tls: Option<NodeTls>,
    /// The fleet's registry: this host is listed there (with --listen) and finds its peers
    /// there.
    fleet: Option<FleetOptions>,
}

impl ClusterFlags {
    /// Checks the flags: --listen, --peer and --registry need --tls-dir with this node's files.
    #[allow(clippy::too_many_arguments)]
    pub fn from_args(
        listen: Option<SocketAddr>,
        announced_ip: Option<IpAddr>,
        tls_dir: Option<PathBuf>,
        peers: Vec<String>,
        insecure_allow_any_client: bool,
        node: &str,
        settings: &ServeSettings,
        fleet: Option<FleetOptions>,
    ) -> Result<Self> {
        if listen.is_none() && peers.is_empty() && fleet.is_none() {
            if tls_dir.is_some() || announced_ip.is_some() {
                bail!("--tls-dir and --announced-ip need --listen or --peer");
            }
            return Ok(Self::default());
        }
        let dir = tls_dir.context("--listen, --peer and --registry need --tls-dir (see `mafalda-host certs`)")?;
        let tls = NodeTls::in_dir(&dir, node);
        for file in [&tls.ca, &tls.cert, &tls.key] {
            if !file.is_file() {
                bail!(
                    "{} is missing (`mafalda-host certs issue {node} --ca CA_DIR --out {}`)",
                    file.display(),
                    dir.display()
                );
            }
        }
        let ca_key = dir.join(mafalda_host::cluster::certs::CA_KEY);
        if ca_key.exists() {
            bail!(
                "{} is in the host's --tls-dir: a host never needs the CA key, and one compromised host \
                 would then mint certificates for any node. Keep the CA elsewhere (`certs issue --ca`).",
                ca_key.display()
            );
        }
        let named = tls.name()?;
        if named != node {
            bail!("{} names node '{named}', not '{node}' (--node must match the certificate)", tls.cert.display());
        }
        let limits = ServeLimits::from_settings(settings)?;
        let serve = listen.map(|listen| {
            let announced_ip = announced_ip.unwrap_or_else(|| listen.ip());
            ServeOptions { listen, announced_ip, tls: tls.clone(), insecure_allow_any_client, limits }
        });
        if let Some(serve) = &serve {
            if serve.announced_ip.is_unspecified() {
                bail!("--announced-ip is needed when --listen is {} (media needs a reachable address)", serve.listen);
            }
        }
        Ok(Self { serve, peers, tls: Some(tls), fleet })
    }
}

/// Opens the QUIC endpoint and the links to peers.
pub fn join_cluster(running: &mut Running, flags: ClusterFlags) -> Result<()> {
    let host = running.manager.host();
    let linked = !flags.peers.is_empty() || flags.fleet.is_some();
    if let (true, Some(tls)) = (linked, &flags.tls) {
        let quic = flags.serve.as_ref().map(|serve| serve.limits.quic.clone()).unwrap_or_default();
        let peers = Cluster::for_peers(host, &flags.peers, tls, &quic).context("linking to peers")?;
        running.ops.set_peers(Arc::clone(&peers), &flags.peers);
        if let Some(options) = flags.fleet.clone() {
            // `--max-linked-hosts 0`: listed, but no peer is discovered (nor the registry read).
            let fleet = if options.book.max_linked == 0 {
                None
            } else {
                Some(Fleet::start(host, Arc::clone(&peers), options.clone()).context("joining the fleet registry")?)
            };
            let registry = match &fleet {
                Some(fleet) => Arc::clone(fleet.registry()),
                None => Arc::new(
                    Registry::open(&options.registry, &options.cluster, options.registry_ca.as_deref())
                        .context("the fleet registry")?,
                ),
            };
            if let Some(serve) = &flags.serve {
                let address = if serve.listen.ip().is_unspecified() {
                    SocketAddr::new(serve.announced_ip, serve.listen.port())
                } else {
                    serve.listen
                };
                let identity = Identity {
                    node: host.options().node.clone(),
                    region: host.options().region.clone(),
                    address,
                    announced_ip: serve.announced_ip,
                    boot_id: uuid::Uuid::new_v4().to_string(),
                };
                running.publisher = Some(Publisher::start(registry, host, identity));
            }
            running.ops.set_fleet(fleet.clone(), running.publisher.clone());
            running.fleet = fleet;
        }
        running.peers = Some(peers);
    }
    if let Some(serve) = flags.serve {
        if serve.insecure_allow_any_client {
            warn!(
                "--insecure-allow-any-client: any address gets full control of this host's workers \
                 without a token (load an auth plugin instead)"
            );
        } else if !host.has_auth() {
            info!("no auth plugin: only loopback applications are accepted");
        }
        let server = Arc::new(ClusterServer::start(Arc::clone(host), serve).context("opening the cluster endpoint")?);
        running.ops.set_server(Arc::clone(&server));
        running.server = Some(server);
    }
    Ok(())
}

/// How long a stop waits for the workers to close.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A running host: its manager, plugins and background tasks.
pub struct Running {
    /// The manager (its host serves placements).
    pub manager: WorkerManager,
    /// The virtual worker created for the host's own use.
    pub worker: mafalda_host::worker::Worker,
    /// Loaded plugins.
    pub _plugins: PluginSet,
    /// The autoscaler, when an autoscale plugin is loaded.
    pub autoscaler: Option<Arc<Autoscaler>>,
    /// The cluster endpoint (`--listen`).
    pub server: Option<Arc<ClusterServer>>,
    /// What the admin server reads (metrics, readiness, status) and drains.
    pub ops: Arc<Operations>,
    /// The links to peers (`--peer`, and those found in the registry).
    pub peers: Option<Arc<Cluster>>,
    /// Discovery of peers through the registry (`--registry`).
    pub fleet: Option<Arc<Fleet>>,
    /// This host's record in the registry (`--registry` with `--listen`).
    pub publisher: Option<Arc<Publisher>>,
    _watch: Option<watch::WatchGuard>,
}

/// Starts the host: plugins loaded and hooked in, `workers` workers up front and kept.
pub async fn start(
    mut options: HostOptions,
    flags: &PluginFlags,
    autoscale_options: AutoscaleOptions,
    scale_hook: Option<String>,
    workers: NonZeroUsize,
) -> Result<Running> {
    let runtime = flags.runtime()?;
    let plugins = flags.load(&runtime)?;
    // A --plugin placement plugin wins; then a chosen policy; then the embedded pack plugin.
    let choice = match (&plugins.placement, options.policy_given) {
        (Some(plugin), _) => PolicyChoice::Custom(Arc::clone(plugin) as _),
        (None, true) => options.policy.clone(),
        (None, false) => PolicyChoice::PackPlugin,
    };
    let loader = flags.policy_loader(&runtime);
    let mut loaded: Vec<String> = flags.plugins.iter().map(|p| mafalda_host::plugin::plugin_name(p)).collect();
    loaded.push("pack".into());
    for scope in flags.config().unknown_scopes(&loaded) {
        tracing::warn!(plugin = %scope, "--plugin-config names a plugin that is not loaded; its keys reach nobody");
    }
    options.policy = PolicyChoice::Custom(loader.resolve(&choice, options.pack())?);
    // The workers asked for stay up: idle release never goes below them (an application of a
    // cluster, e.g. the demo with MAFALDA_CLUSTER, keeps the pool it was configured with).
    if !options.cluster.is_used() {
        options.pool.max_workers = options.pool.max_workers.max(workers.get());
        options.pool.min_workers = options.pool.min_workers.max(workers.get());
    }
    let policy = format!("{choice:?}");
    let manager = WorkerManager::with_options(options);
    let mut settings = WorkerSettings::default();
    settings.log_level = WorkerLogLevel::Warn;
    settings.log_tags = Vec::new();
    let worker = manager.create_worker(settings).await.context("starting mediasoup workers")?;
    let host = manager.host();
    host.set_auth(plugins.auth.clone());
    let autoscaler = plugins.autoscale.as_ref().map(|hook| {
        let autoscaler = Autoscaler::new(host, Arc::clone(hook), autoscale_options);
        if let Some(command) = scale_hook {
            // Advice arrives on the autoscale thread; hooks run on this runtime.
            let runtime = tokio::runtime::Handle::current();
            autoscaler
                .on_advice(move |advice| {
                    drop(super::scale_hook::spawn(&runtime, &command, advice));
                })
                .detach();
        }
        if let Err(error) = autoscaler.spawn() {
            tracing::warn!(%error, "could not start the autoscale thread: the autoscale plugin is not asked");
        }
        autoscaler
    });
    let ops = Operations::new(host, mafalda_host::ops::media::MEDIA_INTERVAL);
    ops.set_plugins(plugins.clone());
    let reloadable = Arc::clone(&ops);
    let mut hangups = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            info!("SIGHUP: reloading plugins");
            let ops = Arc::clone(&reloadable);
            let _ = tokio::task::spawn_blocking(move || ops.reload_plugins()).await;
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
    Ok(Running {
        manager,
        worker,
        _plugins: plugins,
        autoscaler,
        server: None,
        ops,
        peers: None,
        fleet: None,
        publisher: None,
        _watch: watch,
    })
}

/// Serves the admin server (`--admin`, bound before the host started), unless disabled.
pub fn open_admin(running: &Running, admin: Option<Bound>) -> Result<()> {
    if let Some(admin) = admin {
        crate::admin::start(Arc::clone(&running.ops), admin)?;
    }
    Ok(())
}

/// Closes every worker and waits (bounded) for their close events; returns how many.
pub async fn stop(running: Running) -> usize {
    let Running { manager, worker, autoscaler, server, peers, fleet, publisher, .. } = running;
    // Out of the registry first: applications stop choosing this host at once.
    if let Some(publisher) = publisher {
        publisher.leave().await;
    }
    if let Some(server) = server {
        server.close();
    }
    drop(fleet);
    drop(peers);
    drop(autoscaler);
    worker.close();
    let (closed, late) = manager.host().close_all(STOP_DEADLINE).await;
    if late > 0 {
        warn!(late, "workers still closing after {STOP_DEADLINE:?}; stopping anyway");
    } else {
        info!(workers = closed, "all workers closed");
    }
    closed
}

/// Runs until SIGINT, `duration`, or a drain's end (SIGTERM or `POST /drain`; see
/// [`until_stopped`]).
pub async fn serve(running: Running, duration: Option<Duration>, drain_timeout: Duration) -> Result<()> {
    let reason = until_stopped(&running.ops, duration, drain_timeout).await.context("installing signal handlers")?;
    info!(?reason, "stopping");
    let closed = stop(running).await;
    if reason == StopReason::Deadline {
        println!("mafalda-host: ran for the requested duration; closed {closed} workers");
    }
    Ok(())
}
