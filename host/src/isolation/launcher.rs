//! The parent's side of worker processes: each real worker runs in a `mafalda-host worker`
//! child, reached over an inherited Unix socketpair with the cluster protocol (the remote
//! backend); its death is the death of that one cell.
//!
//! - Processes (spawn, reap, `/proc`) are `process`'s;
//! - A liveness ping (a request through the child's worker thread) every second: a child that
//!   does not answer for [`crate::config::PoolOptions::worker_liveness`] is killed.

use super::process::{self, ChildProcess, CHILD_SOCKET_FD};
use crate::backend::local::WorkerTemplate;
use crate::backend::{OnceCallback, ProcessStats, RouterBackend, WebRtcServerBackend, WorkerBackend};
use crate::cluster::client::{HostLink, LinkObserver, LinkState, LinkTarget, LinkTransport};
use crate::cluster::proto::{CellAdvert, Op, Role, WireError};
use crate::cluster::remote::RemoteWorker;
use crate::host::WorkerLauncher;
use crate::internals::object::lock;
use async_trait::async_trait;
use event_listener_primitives::HandlerId;
use mediasoup::router::RouterOptions;
use mediasoup::webrtc_server::WebRtcServerOptions;
use mediasoup::worker::{CreateWebRtcServerError, ExitError, RequestError, WorkerDump, WorkerId, WorkerUpdateSettings};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How long a starting child has to offer its worker.
pub const START_WITHIN: Duration = Duration::from_secs(15);
/// How long a child that is asked to stop has before it is killed.
pub const STOP_WITHIN: Duration = Duration::from_secs(5);
/// How often a child's worker is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(1);

/// Starts each real worker in a child process of its own (`[pool] isolation = "process"`).
pub(crate) struct ChildWorkers {
    bin: PathBuf,
    liveness: Duration,
    node: String,
    /// In-process workers for what needs no isolation (the RTP capabilities calculator: no
    /// media, and its computation is synchronous).
    local: Arc<dyn WorkerLauncher>,
}

impl ChildWorkers {
    /// Children run `bin worker`; one that does not answer a ping for `liveness` is killed.
    pub(crate) fn new(bin: PathBuf, liveness: Duration, node: String, local: Arc<dyn WorkerLauncher>) -> Self {
        Self { bin, liveness, node, local }
    }
}

#[async_trait]
impl WorkerLauncher for ChildWorkers {
    async fn start(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
        let runtime = crate::cluster::runtime().map_err(std::io::Error::other)?;
        let spawn = Spawn { bin: self.bin.clone(), args: child_args(template), node: self.node.clone() };
        let liveness = self.liveness;
        let started = runtime.spawn(start_child(spawn, liveness));
        let worker = started.await.map_err(std::io::Error::other)??;
        Ok(worker)
    }

    async fn start_in_process(&self, template: &WorkerTemplate) -> std::io::Result<Arc<dyn WorkerBackend>> {
        self.local.start_in_process(template).await
    }
}

/// The command line of a child made from `template` (log settings, DTLS files, core). A
/// thread initializer cannot cross a process: it is not run (documented).
fn child_args(template: &WorkerTemplate) -> Vec<String> {
    let mut args = vec![
        "worker".to_string(),
        "--socket-fd".into(),
        CHILD_SOCKET_FD.to_string(),
        "--parent-pid".into(),
        std::process::id().to_string(),
        "--log-level".into(),
        crate::worker_log::level_name(template.log_level),
        "--rtc-ports".into(),
        format!("{}-{}", template.rtc_ports.start(), template.rtc_ports.end()),
    ];
    for tag in &template.log_tags {
        args.push("--log-tag".into());
        args.push(crate::worker_log::tag_name(*tag));
    }
    if let Some(files) = &template.dtls_files {
        args.push("--dtls-cert".into());
        args.push(files.certificate.display().to_string());
        args.push("--dtls-key".into());
        args.push(files.private_key.display().to_string());
    }
    if let Some(core) = template.core {
        args.push("--core".into());
        args.push(core.to_string());
    }
    args
}

struct Spawn {
    bin: PathBuf,
    args: Vec<String>,
    node: String,
}

/// Starts a child, links to it and waits for its worker.
async fn start_child(spawn: Spawn, liveness: Duration) -> std::io::Result<Arc<dyn WorkerBackend>> {
    let (process, parent_end) = process::spawn(&spawn.bin, &spawn.args, &spawn.node).await?;
    let pid = process.pid;
    let mut link = None;
    let started = link_to(&spawn, pid, parent_end, liveness, &mut link).await;
    match started {
        Ok((remote, observer)) => {
            let link = link.ok_or_else(|| std::io::Error::other("no link"))?;
            let _ = process.worker.set(remote.id());
            info!(id = %remote.id(), pid, "worker process started");
            let worker = Arc::new(ChildWorker { remote, link, process, observer });
            tokio::spawn(ping(Arc::downgrade(&worker), liveness));
            Ok(worker)
        }
        Err(error) => {
            // Whatever failed, the child and its link go.
            process.kill();
            if let Some(link) = link {
                link.shutdown();
            }
            Err(error)
        }
    }
}

/// How long a child may be silent before its worker leaves placement: half its liveness (it is
/// killed after two unanswered pings of `liveness` each), at least a second.
fn silence_of(liveness: Duration) -> Duration {
    (liveness / 2).max(Duration::from_secs(1))
}

/// Links to a started child over `parent_end` and waits for its worker (the link is left in
/// `link` as soon as it exists, for the caller to shut down on failure).
async fn link_to(
    spawn: &Spawn,
    pid: u32,
    parent_end: std::os::unix::net::UnixStream,
    liveness: Duration,
    link: &mut Option<Arc<HostLink>>,
) -> std::io::Result<(Arc<RemoteWorker>, Arc<ChildObserver>)> {
    parent_end.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(parent_end)?;
    let (adverts, mut offered) = watch::channel(None);
    let child_observer = Arc::new(ChildObserver { adverts, pid, worker: OnceLock::new(), silence: Mutex::default() });
    let observer: Arc<dyn LinkObserver> = child_observer.clone();
    let target = LinkTarget {
        address: format!("worker process {pid}"),
        role: Role::Peer,
        node: spawn.node.clone(),
        token: None,
        transport: LinkTransport::Socket { socket: Arc::new(Mutex::new(Some(socket))), silence: silence_of(liveness) },
        expect_node: None,
    };
    let started = HostLink::start(target, tokio::runtime::Handle::current(), Arc::downgrade(&observer));
    *link = Some(Arc::clone(&started));
    let mut state = started.state();
    let advert = tokio::time::timeout(START_WITHIN, async {
        loop {
            if let Some(advert) = offered.borrow_and_update().clone() {
                return Ok(advert);
            }
            if let LinkState::Refused(why) | LinkState::Down(why) = &*state.borrow_and_update() {
                return Err(std::io::Error::other(format!("worker process {pid}: {why}")));
            }
            tokio::select! {
                changed = offered.changed() => if changed.is_err() { break },
                changed = state.changed() => if changed.is_err() { break },
            }
        }
        Err(std::io::Error::other(format!("worker process {pid} ended before offering its worker")))
    })
    .await
    .map_err(|_| std::io::Error::other(format!("worker process {pid} offered no worker within {START_WITHIN:?}")))??;
    let id: WorkerId = advert
        .worker_id
        .parse()
        .map_err(|_| std::io::Error::other(format!("worker process {pid} offered a bad worker id")))?;
    let remote = RemoteWorker::advertised(&started, &advert, id);
    let _ = child_observer.worker.set(Arc::downgrade(&remote));
    drop(observer);
    Ok((remote, child_observer))
}

/// Pings a child's worker every [`PING_EVERY`] (a request through its worker thread); kills the
/// child when two pings in a row go unanswered for `liveness` each (a reply that waited behind a
/// stall of this side is not taken for a dead child).
async fn ping(worker: Weak<ChildWorker>, liveness: Duration) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut missed = 0;
    loop {
        tick.tick().await;
        let Some(child) = worker.upgrade() else { return };
        if child.remote.closed() {
            return;
        }
        let op = Op::UpdateSettings { worker: child.remote.handle(), log_level: None, log_tags: None };
        let (link, process) = (Arc::clone(&child.link), Arc::clone(&child.process));
        drop(child);
        match tokio::time::timeout(liveness, link.call(op)).await {
            Ok(Ok(_)) => missed = 0,
            Ok(Err(WireError::LinkDown)) => return,
            Ok(Err(_)) | Err(_) => {
                missed += 1;
                warn!(pid = process.pid, ?liveness, missed, "worker process did not answer a ping");
                if missed >= 2 {
                    error!(pid = process.pid, ?liveness, "worker process did not answer: killed");
                    process.kill();
                    return;
                }
            }
        }
    }
}

/// What a worker's silence and return are told to (its cell's placement).
type SilenceCallback = Box<dyn Fn(bool) + Send + Sync>;

/// A link observer that hands the child's first advert to the starter.
struct ChildObserver {
    adverts: watch::Sender<Option<CellAdvert>>,
    pid: u32,
    /// The child's worker once known (later adverts update it).
    worker: OnceLock<Weak<RemoteWorker>>,
    /// Told when the child goes silent and when it is heard again (its cell leaves placement
    /// meanwhile).
    silence: Mutex<Option<SilenceCallback>>,
}

impl ChildObserver {
    fn silent(&self, silent: bool) {
        if let Some(callback) = lock(&self.silence).as_ref() {
            callback(silent);
        }
    }
}

impl LinkObserver for ChildObserver {
    fn cells(&self, _link: &Arc<HostLink>, adverts: &[CellAdvert]) {
        if let Some(first) = adverts.first() {
            if let Some(worker) = self.worker.get().and_then(Weak::upgrade) {
                worker.update(first);
            }
            self.adverts.send_if_modified(|seen| {
                let first_time = seen.is_none();
                if first_time {
                    *seen = Some(first.clone());
                }
                first_time
            });
        }
    }

    fn down(&self, _link: &Arc<HostLink>) {
        warn!(pid = self.pid, "worker process silent: its worker leaves placement until heard");
        self.silent(true);
    }

    fn up(&self, _link: &Arc<HostLink>) {
        self.silent(false);
    }

    fn lost(&self, _link: &Arc<HostLink>) {}
}

/// A worker in a child process: the remote backend over the child's socket, and the process.
pub(crate) struct ChildWorker {
    remote: Arc<RemoteWorker>,
    link: Arc<HostLink>,
    process: Arc<ChildProcess>,
    observer: Arc<ChildObserver>,
}

impl std::fmt::Debug for ChildWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildWorker").field("pid", &self.process.pid).field("worker", &self.remote.id()).finish()
    }
}

impl Drop for ChildWorker {
    /// The worker is released: the child is told (its link ends, it closes its worker and
    /// exits) and killed if it has not exited within [`STOP_WITHIN`].
    fn drop(&mut self) {
        self.link.shutdown();
        let process = Arc::clone(&self.process);
        if let Ok(runtime) = crate::cluster::runtime() {
            runtime.spawn(async move {
                tokio::time::sleep(STOP_WITHIN).await;
                if !process.exited.load(Ordering::Acquire) {
                    warn!(pid = process.pid, "worker process did not stop in time: killed");
                    process.kill();
                }
            });
        }
    }
}

#[async_trait]
impl WorkerBackend for ChildWorker {
    fn id(&self) -> WorkerId {
        self.remote.id()
    }

    fn closed(&self) -> bool {
        self.remote.closed()
    }

    fn cpu_time(&self) -> Option<Duration> {
        self.process.worker_cpu().or_else(|| self.remote.cpu_time())
    }

    async fn create_router(&self, options: RouterOptions) -> Result<Arc<dyn RouterBackend>, RequestError> {
        self.remote.create_router(options).await
    }

    async fn create_webrtc_server(
        &self,
        options: WebRtcServerOptions,
    ) -> Result<Arc<dyn WebRtcServerBackend>, CreateWebRtcServerError> {
        self.remote.create_webrtc_server(options).await
    }

    async fn update_settings(&self, data: WorkerUpdateSettings) -> Result<(), RequestError> {
        self.remote.update_settings(data).await
    }

    async fn dump(&self) -> Result<WorkerDump, RequestError> {
        self.remote.dump().await
    }

    fn on_dead(&self, callback: Box<dyn FnOnce(ExitError) + Send>) -> HandlerId {
        self.remote.on_dead(callback)
    }

    /// When the process has exited (after a release, its worker closed; or it died).
    fn on_close(&self, callback: OnceCallback) -> HandlerId {
        let handler = self.process.on_exit.add(callback);
        if self.process.exited.load(Ordering::Acquire) {
            self.process.on_exit.call_simple();
        }
        handler
    }

    fn on_silence(&self, callback: Box<dyn Fn(bool) + Send + Sync>) {
        *lock(&self.observer.silence) = Some(callback);
    }

    fn process(&self) -> Option<ProcessStats> {
        Some(ProcessStats { pid: self.process.pid, rss_bytes: self.process.rss_bytes() })
    }
}
