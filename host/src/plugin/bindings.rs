//! Host bindings of the plugin worlds, generated from `wit/` by wasmtime's `bindgen!`,
//! and the host side of the plugins' two imports: `log` and a monotonic `clock`.
#![allow(missing_docs)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};
use wasmtime::StoreLimits;

/// The `placement-plugin` world (it also defines the types and imports every world uses).
pub mod placement {
    wasmtime::component::bindgen!({ path: "../wit", world: "placement-plugin" });
}

/// The `fleet-placement-plugin` world (contract 0.1.3): the placement world plus the
/// `node-selection` export. Its imports are the placement world's.
pub mod fleet {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "fleet-placement-plugin",
        with: {
            "mafalda:plugin/types": super::placement::mafalda::plugin::types,
            "mafalda:plugin/log": super::placement::mafalda::plugin::log,
            "mafalda:plugin/clock": super::placement::mafalda::plugin::clock,
            "mafalda:plugin/load": super::placement::mafalda::plugin::load,
        },
    });
}

/// The `auth-plugin` world.
pub mod auth {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "auth-plugin",
        with: {
            "mafalda:plugin/types": super::placement::mafalda::plugin::types,
            "mafalda:plugin/log": super::placement::mafalda::plugin::log,
            "mafalda:plugin/clock": super::placement::mafalda::plugin::clock,
        },
    });
}

/// The `autoscale-plugin` world.
pub mod autoscale {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "autoscale-plugin",
        with: {
            "mafalda:plugin/types": super::placement::mafalda::plugin::types,
            "mafalda:plugin/log": super::placement::mafalda::plugin::log,
            "mafalda:plugin/clock": super::placement::mafalda::plugin::clock,
        },
    });
}

/// The WIT types, as the host sees them.
pub use placement::mafalda::plugin::types as wit;

/// What each plugin store holds: its name (for logs), its resource limits and the CPU-time
/// budget of the call in progress.
pub struct PluginState {
    /// The plugin's name.
    pub name: String,
    /// Memory and instance limits of the store.
    pub limits: StoreLimits,
    /// CPU time one call may use.
    pub budget: Duration,
    /// The calling thread's CPU time when the current call started, counted conservatively
    /// from one epoch tick before the call first outlived a tick (`None` until then: short
    /// calls never read the clock).
    pub started: Option<Duration>,
    /// Wall-clock bound of one call.
    pub wall: Duration,
    /// When the current call started (wall clock).
    pub called_at: Instant,
    /// The guest's log budget.
    pub logs: LogBudget,
    /// Predicted CPU share of the candidates of the placement call in progress (the `load`
    /// import).
    pub predicted: Vec<f64>,
    /// Destination of the `connect` being authorized (the `connect-target` import).
    pub destination: Option<auth::mafalda::plugin::connect_target::RemoteAddress>,
}

/// Rate limit of a guest's `log` calls: `per_second` forwarded per one-second window, the rest
/// dropped (counted in `dropped`, shared with the plugin's counters) and summed up in one
/// warning when the next window opens.
#[derive(Debug)]
pub struct LogBudget {
    /// Lines allowed per window.
    pub per_second: u32,
    window: Instant,
    used: u32,
    dropped_here: u64,
    /// Lines dropped over the plugin's life (all its instances).
    pub dropped: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LogBudget {
    /// A budget of `per_second` lines, counting drops into `dropped`.
    pub fn new(per_second: u32, dropped: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        Self { per_second, window: Instant::now(), used: 0, dropped_here: 0, dropped }
    }

    /// Whether one more line may go out now; reports the previous window's drops when a new
    /// window opens.
    fn admit(&mut self, plugin: &str) -> bool {
        if self.window.elapsed() >= Duration::from_secs(1) {
            if self.dropped_here > 0 {
                tracing::warn!(plugin, dropped = self.dropped_here, "plugin log lines dropped (rate limit)");
            }
            self.window = Instant::now();
            self.used = 0;
            self.dropped_here = 0;
        }
        if self.used < self.per_second {
            self.used += 1;
            true
        } else {
            self.dropped_here += 1;
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            false
        }
    }
}

/// Longest guest log line forwarded (longer ones are cut).
const MAX_LOG_LINE: usize = 1024;

/// CPU time used so far by the calling thread.
pub fn thread_cpu_time() -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own; CLOCK_THREAD_CPUTIME_ID is valid.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
}

impl placement::mafalda::plugin::types::Host for PluginState {}

impl placement::mafalda::plugin::log::Host for PluginState {
    fn log(&mut self, level: wit::LogLevel, mut message: String) {
        let plugin = self.name.as_str();
        if !self.logs.admit(plugin) {
            return;
        }
        if message.len() > MAX_LOG_LINE {
            let mut cut = MAX_LOG_LINE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        match level {
            wit::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wit::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wit::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl placement::mafalda::plugin::load::Host for PluginState {
    fn predicted(&mut self) -> Vec<f64> {
        self.predicted.clone()
    }
}

impl auth::mafalda::plugin::connect_target::Host for PluginState {
    fn destination(&mut self) -> Option<auth::mafalda::plugin::connect_target::RemoteAddress> {
        self.destination.clone()
    }
}

impl placement::mafalda::plugin::clock::Host for PluginState {
    fn now_ms(&mut self) -> u64 {
        monotonic_ms()
    }
}

/// Milliseconds since the first call (the plugins' and the snapshots' shared clock).
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
