//! The child's side of process isolation (`mafalda-host worker`): one real mediasoup worker
//! in this process, served to the parent host over the Unix socket it inherited, with the
//! cluster protocol's dispatch (the same as `serve --listen`). Media sockets live here; only
//! control crosses the socket. The process ends with its link: when the parent closes it, or
//! dies (the parent-death signal set before exec, and a check of the parent at start).

use crate::cluster::limits::ServeLimits;
use crate::config::HostOptions;
use crate::worker_manager::WorkerManager;
use mediasoup::worker::{WorkerDtlsFiles, WorkerLogLevel, WorkerSettings};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use thiserror::Error;
use tracing::info;

/// Objects the parent may hold in one worker process (its own limits bound what applications
/// hold; this only stops a runaway parent).
pub const MAX_OBJECTS: usize = 1_000_000;
/// Requests the parent may have in flight at once.
pub const REQUESTS_IN_FLIGHT: usize = 1_024;

/// The serving limits of a worker process: the parent is not a stranger (its own limits bound
/// what applications do), its session never resumes (nothing is kept for a replay), and trace
/// events are budgeted by the parent for its own callers, not here.
fn parent_limits() -> ServeLimits {
    let mut limits = ServeLimits {
        objects_per_session: MAX_OBJECTS,
        requests_in_flight: REQUESTS_IN_FLIGHT,
        // Replies and events for the parent, whose reader is the host's cluster thread: the
        // same bound as the parent's queue towards this process.
        outbox_bytes: crate::cluster::client::SOCKET_OUTBOX_BYTES,
        trace_events_per_second: u32::MAX,
        ..ServeLimits::default()
    };
    limits.sessions.replay_bytes = 0;
    limits.sessions.attached_replay_bytes = 0;
    limits
}

/// What the parent asks of a worker process (its command line).
#[derive(Debug, Clone)]
pub struct ChildArgs {
    /// The inherited socket's descriptor.
    pub socket_fd: i32,
    /// The parent's pid: the child stops at once if its parent is already another process.
    pub parent_pid: u32,
    /// Log level of the worker.
    pub log_level: Option<String>,
    /// Log tags of the worker.
    pub log_tags: Vec<String>,
    /// The port range of the worker.
    pub rtc_ports: Option<(u16, u16)>,
    /// DTLS certificate and key.
    pub dtls: Option<(PathBuf, PathBuf)>,
    /// The core this process is pinned to.
    pub core: Option<usize>,
}

/// Why a worker process could not serve.
#[derive(Debug, Error)]
pub enum ChildError {
    /// Started by something other than its parent host, or the parent is gone.
    #[error("the parent process {0} is gone (this is started by mafalda-host, not by hand)")]
    Orphan(u32),
    /// The socket descriptor.
    #[error("socket descriptor {fd}: {source}")]
    Socket {
        /// The descriptor.
        fd: i32,
        /// Why.
        source: std::io::Error,
    },
    /// A bad argument.
    #[error("{0}")]
    Argument(String),
    /// The worker could not start.
    #[error("the worker could not start: {0}")]
    Worker(std::io::Error),
}

/// Serves the parent until the link ends (runs on the caller's tokio runtime).
pub async fn run(args: ChildArgs) -> Result<String, ChildError> {
    // SAFETY: getppid has no memory effects.
    let parent = unsafe { libc::getppid() };
    if u32::try_from(parent).ok() != Some(args.parent_pid) {
        return Err(ChildError::Orphan(args.parent_pid));
    }
    if args.socket_fd < 0 {
        return Err(ChildError::Argument("a negative socket descriptor".into()));
    }
    // SAFETY: the descriptor was inherited for this process alone (the parent dup'ed it here
    // before exec); nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(args.socket_fd) };
    // Not passed on to anything this process might start.
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        let flags = libc::fcntl(args.socket_fd, libc::F_GETFD);
        if flags >= 0 {
            libc::fcntl(args.socket_fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
    // The parent stops this process (by ending the link): a terminal's Ctrl-C or a SIGTERM to
    // the whole group must not take the worker from under it first.
    // SAFETY: setting a signal's disposition to ignore.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let socket = std::os::unix::net::UnixStream::from(fd);
    let socket_error = |source| ChildError::Socket { fd: args.socket_fd, source };
    socket.set_nonblocking(true).map_err(socket_error)?;
    let socket = tokio::net::UnixStream::from_std(socket).map_err(socket_error)?;
    if let Some(core) = args.core {
        // The whole process: every thread started after this inherits the core.
        crate::backend::local::pin_current_thread(core)
            .map_err(|e| ChildError::Argument(format!("--core {core}: {e}")))?;
    }
    let mut settings = WorkerSettings::default();
    if let Some(level) = &args.log_level {
        settings.log_level = crate::worker_log::level_of(level)
            .ok_or_else(|| ChildError::Argument(format!("'{level}' is not a worker log level")))?;
    } else {
        settings.log_level = WorkerLogLevel::Error;
    }
    settings.log_tags = args
        .log_tags
        .iter()
        .map(|t| crate::worker_log::tag_of(t).ok_or_else(|| ChildError::Argument(format!("'{t}' is not a log tag"))))
        .collect::<Result<_, _>>()?;
    if let Some((min, max)) = args.rtc_ports {
        settings.rtc_port_range = min..=max;
    }
    settings.dtls_files =
        args.dtls.clone().map(|(certificate, private_key)| WorkerDtlsFiles { certificate, private_key });
    let mut options = HostOptions::default();
    options.pool.isolation = Some(crate::isolation::Isolation::Thread);
    options.pool.max_workers = 1;
    options.pool.min_workers = 1;
    if let Some((min, max)) = args.rtc_ports {
        options.pool.rtc_min_port = min;
        options.pool.rtc_max_port = max;
    }
    let manager = WorkerManager::with_options(options);
    // The virtual worker holds the set's one real worker for the process's life.
    let worker = manager.create_worker(settings).await.map_err(ChildError::Worker)?;
    info!(pid = std::process::id(), "worker process serving its parent");
    let limits = parent_limits();
    let reason = crate::cluster::server::serve_parent(std::sync::Arc::clone(manager.host()), socket, limits).await;
    drop(worker);
    manager.host().close_all(std::time::Duration::from_secs(2)).await;
    Ok(reason)
}
