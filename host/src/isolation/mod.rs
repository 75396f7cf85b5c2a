//! Worker isolation: each real worker in a process of its own, so a crashing worker costs its
//! own transports and never the host.
//!
//! - [`Isolation`]: threads of this process (mediasoup's model) or child processes;
//! - `launcher`: the parent's side (a worker backend over the child's socket, liveness ping);
//! - `process`: children as processes (spawn, parent-death signal, reaping, `/proc` readings);
//! - [`child`]: the child's side (`mafalda-host worker`);
//! - [`restarts`]: when a dead worker's slot starts again, and the crash-loop limit (sans-IO).

pub mod child;
pub(crate) mod launcher;
mod process;
pub mod restarts;

use serde::{Deserialize, Serialize};

/// Where real workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// Threads of this process (mediasoup's own model): a worker crash ends the process.
    #[default]
    Thread,
    /// One child process per worker (`mafalda-host worker`), driven over a Unix socket: a
    /// crash costs that worker's transports only.
    Process,
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "thread" => Ok(Self::Thread),
            "process" => Ok(Self::Process),
            other => Err(format!("'{other}' is not an isolation (thread or process)")),
        }
    }
}

/// The worker binary of process isolation: `explicit` (`MAFALDA_WORKER_BIN`, `[pool]
/// worker_bin`), else `mafalda-host` on `PATH`.
pub fn worker_bin(explicit: Option<&std::path::Path>) -> Result<std::path::PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("the worker binary {} does not exist (MAFALDA_WORKER_BIN / [pool] worker_bin)", path.display()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join("mafalda-host")).find(|p| p.is_file()).ok_or_else(|| {
        "isolation = process needs the mafalda-host binary: put it on PATH or set MAFALDA_WORKER_BIN \
         (or [pool] worker_bin, or use isolation = thread)"
            .to_string()
    })
}
