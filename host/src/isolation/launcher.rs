//! The parent's side of worker processes: each real worker runs in a `mafalda-host worker`
//! child, reached over an inherited Unix socketpair with the cluster protocol (the remote
//! backend); its death is the death of that one cell.
//!
//! - Children are spawned from one thread that lives as long as the process
//!   (`PR_SET_PDEATHSIG` follows the thread that forked), in a process group of their own
//!   (a terminal's Ctrl-C reaches the host only; the host stops them in order).
//! - A reaper thread per child passes its stderr through, keeps its last lines, waits for its
//!   exit and logs the status or signal with those lines.
//! - A liveness ping (a request through the child's worker thread) every second: a child that
//!   does not answer for [`crate::config::PoolOptions::worker_liveness`] is killed.

use crate::backend::local::WorkerTemplate;
use crate::backend::{OnceCallback, ProcessStats, RouterBackend, WebRtcServerBackend, WorkerBackend};
use crate::cluster::client::{HostLink, LinkObserver, LinkState, LinkTarget, LinkTransport};
use crate::cluster::proto::{CellAdvert, Op, Role, WireError};
use crate::cluster::remote::RemoteWorker;
use crate::host::WorkerLauncher;
use crate::internals::object::lock;
use async_trait::async_trait;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::router::RouterOptions;
use mediasoup::webrtc_server::WebRtcServerOptions;
use mediasoup::worker::{CreateWebRtcServerError, ExitError, RequestError, WorkerDump, WorkerId, WorkerUpdateSettings};
use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tracing::{error, info, warn};

/// The descriptor a child finds its socket on.
pub const CHILD_SOCKET_FD: i32 = 3;
/// Lines of a child's stderr kept for the log of its death.
pub const STDERR_TAIL: usize = 20;
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

/// One spawn asked of the spawner thread.
type SpawnRequest = (Command, OwnedFd, oneshot::Sender<std::io::Result<std::process::Child>>);

/// Spawns children from one thread that never exits (their parent-death signal follows it).
fn spawner() -> std::io::Result<&'static Mutex<std_mpsc::Sender<SpawnRequest>>> {
    static SPAWNER: OnceLock<Result<Mutex<std_mpsc::Sender<SpawnRequest>>, String>> = OnceLock::new();
    SPAWNER
        .get_or_init(|| {
            let (tx, rx) = std_mpsc::channel::<SpawnRequest>();
            std::thread::Builder::new()
                .name("mafalda-spawner".into())
                .spawn(move || {
                    while let Ok((mut command, child_end, reply)) = rx.recv() {
                        let spawned = command.spawn();
                        // The parent's copy of the child's end closes once the child has its own.
                        drop(child_end);
                        let _ = reply.send(spawned);
                    }
                })
                .map(|_| Mutex::new(tx))
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| std::io::Error::other(e.clone()))
}

/// Starts a child, links to it and waits for its worker.
async fn start_child(spawn: Spawn, liveness: Duration) -> std::io::Result<Arc<dyn WorkerBackend>> {
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()?;
    let child_fd = child_end.as_raw_fd();
    let mut command = Command::new(&spawn.bin);
    command.args(&spawn.args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls (prctl, getppid, setpgid, dup2, fcntl) between fork
    // and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if child_fd == CHILD_SOCKET_FD {
                let flags = libc::fcntl(child_fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(child_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(child_fd, CHILD_SOCKET_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let (tx, rx) = oneshot::channel();
    lock(spawner()?).send((command, OwnedFd::from(child_end), tx)).map_err(std::io::Error::other)?;
    let mut child = rx.await.map_err(std::io::Error::other)?.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot start the worker process {}: {e}", spawn.bin.display()))
    })?;
    let pid = child.id();
    let process = Arc::new(ChildProcess {
        pid,
        exited: AtomicBool::new(false),
        worker: OnceLock::new(),
        on_exit: BagOnce::default(),
    });
    let stderr = child.stderr.take();
    if let Err(error) = reap(child, stderr, Arc::clone(&process)) {
        // Not reaped by a thread of its own: killed, and left to the spawner's exit.
        process.kill();
        return Err(error);
    }
    let mut link = None;
    let started = link_to(&spawn, pid, parent_end, liveness, &mut link).await;
    match started {
        Ok((remote, observer)) => {
            let link = link.ok_or_else(|| std::io::Error::other("no link"))?;
            let _ = process.worker.set(remote.id());
            info!(id = %remote.id(), pid, "worker process started");
            let worker = Arc::new(ChildWorker { remote, link, process, _observer: observer });
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

/// Links to a started child over `parent_end` and waits for its worker (the link is left in
/// `link` as soon as it exists, for the caller to shut down on failure).
async fn link_to(
    spawn: &Spawn,
    pid: u32,
    parent_end: std::os::unix::net::UnixStream,
    liveness: Duration,
    link: &mut Option<Arc<HostLink>>,
) -> std::io::Result<(Arc<RemoteWorker>, Arc<dyn LinkObserver>)> {
    parent_end.set_nonblocking(true)?;
    let socket = tokio::net::UnixStream::from_std(parent_end)?;
    let (adverts, mut offered) = watch::channel(None);
    let child_observer = Arc::new(ChildObserver { adverts, pid, worker: OnceLock::new() });
    let observer: Arc<dyn LinkObserver> = child_observer.clone();
    let target = LinkTarget {
        address: format!("worker process {pid}"),
        role: Role::Peer,
        node: spawn.node.clone(),
        token: None,
        transport: LinkTransport::Socket { socket: Arc::new(Mutex::new(Some(socket))), silence: liveness },
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
    Ok((remote, observer))
}

/// What the parent knows of a child process.
struct ChildProcess {
    pid: u32,
    exited: AtomicBool,
    worker: OnceLock<WorkerId>,
    /// Called once the process is reaped.
    on_exit: BagOnce<OnceCallback>,
}

impl ChildProcess {
    fn kill(&self) {
        if !self.exited.load(Ordering::Acquire) {
            // The reaper has not reaped it: the pid is still this child's.
            if let Ok(pid) = i32::try_from(self.pid) {
                // SAFETY: kill has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    /// CPU time of the child's mediasoup worker thread(s), read by the parent from
    /// `/proc/PID/task/*/schedstat` (what the child cannot misreport).
    fn worker_cpu(&self) -> Option<Duration> {
        let mut nanos = 0u64;
        let mut found = false;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid)).ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("mediasoup-worke") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            if let Some(n) = stat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()) {
                nanos = nanos.saturating_add(n);
                found = true;
            }
        }
        found.then(|| Duration::from_nanos(nanos))
    }

    fn rss_bytes(&self) -> Option<u64> {
        let statm = std::fs::read_to_string(format!("/proc/{}/statm", self.pid)).ok()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no memory effects.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * u64::try_from(page).ok()?)
    }
}

/// Passes a child's stderr through (keeping its last lines), waits for its exit and logs it.
fn reap(
    mut child: std::process::Child,
    stderr: Option<std::process::ChildStderr>,
    process: Arc<ChildProcess>,
) -> std::io::Result<()> {
    std::thread::Builder::new().name(format!("mafalda-reap-{}", process.pid)).spawn(move || {
        let mut tail: VecDeque<String> = VecDeque::with_capacity(STDERR_TAIL);
        if let Some(stderr) = stderr {
            let mut reader = std::io::BufReader::new(stderr);
            let mut line = Vec::new();
            // Lines are bounded (64 KiB) so a child cannot grow this buffer without end.
            loop {
                line.clear();
                match std::io::Read::take(&mut reader, 64 << 10).read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        // Prefixed, so a child cannot pass its lines off as the host's.
                        let mut out = std::io::stderr().lock();
                        let _ = write!(out, "[worker process {}] ", process.pid);
                        let _ = out.write_all(&line);
                        if !line.ends_with(b"\n") {
                            let _ = out.write_all(b"\n");
                        }
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(String::from_utf8_lossy(&line).trim_end().to_string());
                    }
                }
            }
        }
        let status = child.wait();
        process.exited.store(true, Ordering::Release);
        process.on_exit.call_simple();
        let worker = process.worker.get().map(ToString::to_string).unwrap_or_default();
        let pid = process.pid;
        match status {
            Ok(status) if status.success() => info!(pid, %worker, "worker process exited"),
            Ok(status) => {
                let how = match (status.code(), status.signal()) {
                    (_, Some(signal)) => format!("killed by signal {signal} ({})", signal_name(signal)),
                    (Some(code), None) => format!("exit status {code}"),
                    (None, None) => status.to_string(),
                };
                let last: Vec<String> = tail.into_iter().collect();
                error!(pid, %worker, %how, last_stderr = ?last, "worker process died");
            }
            Err(error) => warn!(pid, %worker, %error, "worker process could not be waited for"),
        }
    })?;
    Ok(())
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGBUS => "SIGBUS",
        libc::SIGILL => "SIGILL",
        libc::SIGFPE => "SIGFPE",
        libc::SIGINT => "SIGINT",
        _ => "signal",
    }
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

/// A link observer that hands the child's first advert to the starter.
struct ChildObserver {
    adverts: watch::Sender<Option<CellAdvert>>,
    pid: u32,
    /// The child's worker once known (later adverts update it).
    worker: OnceLock<Weak<RemoteWorker>>,
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
        warn!(pid = self.pid, "worker process silent");
    }

    fn up(&self, _link: &Arc<HostLink>) {}

    fn lost(&self, _link: &Arc<HostLink>) {}
}

/// A worker in a child process: the remote backend over the child's socket, and the process.
pub(crate) struct ChildWorker {
    remote: Arc<RemoteWorker>,
    link: Arc<HostLink>,
    process: Arc<ChildProcess>,
    _observer: Arc<dyn LinkObserver>,
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

    fn process(&self) -> Option<ProcessStats> {
        Some(ProcessStats { pid: self.process.pid, rss_bytes: self.process.rss_bytes() })
    }
}
