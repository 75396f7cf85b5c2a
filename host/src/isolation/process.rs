//! Worker processes as processes: spawning (from one thread that lives as long as the host:
//! `PR_SET_PDEATHSIG` follows the thread that forked), the socket on a fixed descriptor, a
//! process group of their own, reaping with the last stderr lines, CPU and memory from `/proc`.

use crate::backend::OnceCallback;
use crate::internals::object::lock;
use event_listener_primitives::BagOnce;
use mediasoup::worker::WorkerId;
use std::collections::VecDeque;
use std::io::BufRead;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::{error, info, warn};

/// The descriptor a child finds its socket on.
pub const CHILD_SOCKET_FD: i32 = 3;
/// Lines of a child's stderr kept for the log of its death.
pub const STDERR_TAIL: usize = 20;

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

/// Starts `bin args` with the child's end of a new socketpair on [`CHILD_SOCKET_FD`], its
/// parent-death signal set and in a process group of its own; a reaper thread watches it.
/// Returns the process and the parent's end of the socket.
pub(super) async fn spawn(
    bin: &std::path::Path,
    args: &[String],
    node: &str,
) -> std::io::Result<(Arc<ChildProcess>, std::os::unix::net::UnixStream)> {
    let (parent_end, child_end) = std::os::unix::net::UnixStream::pair()?;
    let child_fd = child_end.as_raw_fd();
    let mut command = Command::new(bin);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    // A worker needs no credential of its host.
    command.env_remove("MAFALDA_ADMIN_TOKEN");
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
        std::io::Error::new(e.kind(), format!("cannot start the worker process {}: {e}", bin.display()))
    })?;
    let pid = child.id();
    let process = Arc::new(ChildProcess {
        pid,
        node: node.to_string(),
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
    Ok((process, parent_end))
}

/// What the parent knows of a child process.
pub(super) struct ChildProcess {
    /// The process id.
    pub(super) pid: u32,
    /// The host's node (in the child's log lines).
    pub(super) node: String,
    /// Set once reaped.
    pub(super) exited: AtomicBool,
    /// Its worker, once offered (for the log of its exit).
    pub(super) worker: OnceLock<WorkerId>,
    /// Called once the process is reaped.
    pub(super) on_exit: BagOnce<OnceCallback>,
}

impl ChildProcess {
    /// Kills the process (SIGKILL) unless it was reaped.
    pub(super) fn kill(&self) {
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
    pub(super) fn worker_cpu(&self) -> Option<Duration> {
        let mut total: Option<Duration> = None;
        for task in std::fs::read_dir(format!("/proc/{}/task", self.pid)).ok()?.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("mediasoup-worke") {
                continue;
            }
            if let Some(cpu) = crate::backend::local::schedstat_cpu(&task.path().join("schedstat")) {
                total = Some(total.unwrap_or_default().saturating_add(cpu));
            }
        }
        total
    }

    /// Resident memory (`/proc/PID/statm`).
    pub(super) fn rss_bytes(&self) -> Option<u64> {
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
                        // Re-logged as the host's own event with the child's pid, worker and
                        // node (a child cannot pass its lines off as the host's, and a JSON log
                        // stays JSON: the line is one field).
                        let text = String::from_utf8_lossy(&line).trim_end().to_string();
                        let worker = process.worker.get().map(ToString::to_string).unwrap_or_default();
                        // Quoted (`?`): the line cannot pose as fields or lines of the host's.
                        let (pid, node) = (process.pid, &process.node);
                        match relayed_level(&text) {
                            tracing::Level::ERROR => error!(target: "mafalda_host::worker_process", pid, %worker, %node, line = ?text, "worker process output"),
                            tracing::Level::WARN => warn!(target: "mafalda_host::worker_process", pid, %worker, %node, line = ?text, "worker process output"),
                            tracing::Level::INFO => info!(target: "mafalda_host::worker_process", pid, %worker, %node, line = ?text, "worker process output"),
                            _ => tracing::debug!(target: "mafalda_host::worker_process", pid, %worker, %node, line = ?text, "worker process output"),
                        }
                        if tail.len() == STDERR_TAIL {
                            tail.pop_front();
                        }
                        tail.push_back(text);
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

/// The level a worker process's stderr line is relayed at: its own, as its log line states it
/// (the host's text or JSON format, which the child shares); anything else a worker writes
/// (a panic, mediasoup's abort message) is an error.
fn relayed_level(line: &str) -> tracing::Level {
    const LEVELS: [(&str, tracing::Level); 5] = [
        ("ERROR", tracing::Level::ERROR),
        ("WARN", tracing::Level::WARN),
        ("INFO", tracing::Level::INFO),
        ("DEBUG", tracing::Level::DEBUG),
        ("TRACE", tracing::Level::TRACE),
    ];
    // JSON: `"level":"WARN"`; text: the first word after the timestamp.
    let stated = match line.split_once("\"level\":\"") {
        Some((_, rest)) => rest.split('"').next(),
        None => line.split_whitespace().nth(1),
    };
    LEVELS.iter().find(|(name, _)| stated == Some(*name)).map_or(tracing::Level::ERROR, |(_, level)| *level)
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

#[cfg(test)]
mod relay_tests {
    use super::relayed_level;
    use tracing::Level;

    #[test]
    fn a_relayed_line_keeps_its_level_and_anything_else_is_an_error() {
        assert_eq!(relayed_level("2026-12-06T21:00:00.000000Z  WARN mafalda_host: slow"), Level::WARN);
        assert_eq!(relayed_level("2026-12-06T21:00:00.000000Z  INFO mafalda_host: up"), Level::INFO);
        assert_eq!(relayed_level(r#"{"timestamp":"x","level":"DEBUG","fields":{}}"#), Level::DEBUG);
        assert_eq!(relayed_level("thread 'main' panicked at src/x.rs:1:1:"), Level::ERROR);
        assert_eq!(relayed_level(""), Level::ERROR);
    }
}
