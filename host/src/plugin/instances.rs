//! Warm instances of one plugin: a small pool of instantiated, configured stores reused across
//! calls (any thread takes one, calls, gives it back). Every call runs under the epoch deadline,
//! the memory cap and optional fuel. An instance that failed is dropped (a fresh one is built
//! for the next call) and the plugin backs off exponentially before it is called again.

use super::bindings::{
    auth::AuthPlugin, autoscale::AutoscalePlugin, placement::PlacementPlugin, thread_cpu_time, wit, LogBudget,
    PluginState,
};
use super::error::PluginError;
use super::runtime::{Compiled, PluginRuntime, EPOCH_TICK};
use crate::internals::histogram::{DurationHistogram, HistogramSnapshot};
use crate::internals::object::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};

/// Backoff after the first failure; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest backoff.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A plugin world (or a choice of worlds, as [`PlacementWorld`](super::placement::PlacementWorld)),
/// as instances need it.
pub trait World: Sized + Send + 'static {
    /// Adds the world's imports to `linker`.
    fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()>;
    /// Instantiates the compiled plugin.
    fn instantiate(
        store: &mut Store<PluginState>,
        compiled: &Compiled,
        linker: &Linker<PluginState>,
    ) -> wasmtime::Result<Self>;
    /// Calls the world's `lifecycle.configure`.
    fn configure(
        &self,
        store: &mut Store<PluginState>,
        config: &[wit::ConfigEntry],
    ) -> wasmtime::Result<Result<(), String>>;
}

macro_rules! world {
    ($ty:ty) => {
        impl World for $ty {
            fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
                <$ty>::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)
            }

            fn instantiate(
                store: &mut Store<PluginState>,
                compiled: &Compiled,
                linker: &Linker<PluginState>,
            ) -> wasmtime::Result<Self> {
                <$ty>::instantiate(store, &compiled.component, linker)
            }

            fn configure(
                &self,
                store: &mut Store<PluginState>,
                config: &[wit::ConfigEntry],
            ) -> wasmtime::Result<Result<(), String>> {
                self.mafalda_plugin_lifecycle().call_configure(store, config)
            }
        }
    };
}

world!(PlacementPlugin);
world!(AuthPlugin);
world!(AutoscalePlugin);

struct Warm<W> {
    store: Store<PluginState>,
    bindings: W,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
}

/// Counters of one plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PluginCounters {
    /// Calls that returned.
    pub calls: u64,
    /// Calls that trapped or timed out.
    pub failures: u64,
    /// Of those, calls stopped at their CPU budget, wall bound or fuel.
    pub timeouts: u64,
    /// How long calls took (those that returned and those that failed).
    pub durations: HistogramSnapshot,
    /// Calls refused during backoff.
    pub skipped: u64,
    /// Instances built.
    pub instances: u64,
    /// Idle warm instances right now.
    pub warm: usize,
    /// Guest log lines dropped by the rate limit.
    pub logs_dropped: u64,
}

/// The warm instances of one compiled plugin.
pub struct Instances<W> {
    runtime: Arc<PluginRuntime>,
    compiled: Compiled,
    linker: Linker<PluginState>,
    config: Vec<wit::ConfigEntry>,
    idle: Mutex<Vec<Warm<W>>>,
    health: Mutex<Health>,
    calls: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
    durations: DurationHistogram,
    skipped: AtomicU64,
    built: AtomicU64,
    logs_dropped: Arc<AtomicU64>,
}

impl<W> std::fmt::Debug for Instances<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instances").field("plugin", &self.compiled.name).finish()
    }
}

impl<W: World> Instances<W> {
    /// Instances of `compiled`, configured with `config`. One instance is built (and
    /// configured) at once, so a plugin that cannot start is refused here.
    pub fn new(
        runtime: Arc<PluginRuntime>,
        compiled: Compiled,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let mut linker = Linker::new(runtime.engine());
        W::add_to_linker(&mut linker)
            .map_err(|e| PluginError::Instantiate { name: compiled.name.clone(), reason: format!("{e:#}") })?;
        let config =
            config.iter().map(|(key, value)| wit::ConfigEntry { key: key.clone(), value: value.clone() }).collect();
        let instances = Self {
            runtime,
            compiled,
            linker,
            config,
            idle: Mutex::default(),
            health: Mutex::default(),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            durations: DurationHistogram::default(),
            skipped: AtomicU64::new(0),
            built: AtomicU64::new(0),
            logs_dropped: Arc::default(),
        };
        let warm = instances.build()?;
        lock(&instances.idle).push(warm);
        Ok(instances)
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.compiled.name
    }

    /// The compiled plugin.
    pub fn compiled(&self) -> &Compiled {
        &self.compiled
    }

    /// The plugin's counters.
    pub fn counters(&self) -> PluginCounters {
        PluginCounters {
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
            durations: self.durations.snapshot(),
            skipped: self.skipped.load(Ordering::Relaxed),
            instances: self.built.load(Ordering::Relaxed),
            warm: lock(&self.idle).len(),
            logs_dropped: self.logs_dropped.load(Ordering::Relaxed),
        }
    }

    /// Arms the call limits. The deadline is a budget of the calling thread's CPU time,
    /// checked on every epoch tick the call outlives (its first tick counted as spent): a thread
    /// the scheduler set aside (another core compiling a reload, say) does not time a plugin out.
    fn arm(&self, store: &mut Store<PluginState>) -> Result<(), PluginError> {
        // The clock is read only once a call outlives one tick (see the epoch callback), so a
        // typical microsecond call costs no system call.
        store.data_mut().started = None;
        store.data_mut().called_at = Instant::now();
        store.set_epoch_deadline(1);
        if let Some(fuel) = self.runtime.limits().fuel {
            store.set_fuel(fuel).map_err(|e| PluginError::Engine(e.to_string()))?;
        }
        Ok(())
    }

    /// A new store, instance, configured.
    fn build(&self) -> Result<Warm<W>, PluginError> {
        let name = self.compiled.name.clone();
        let configured = self.runtime.limits();
        let limits = StoreLimitsBuilder::new()
            .memory_size(configured.memory)
            .table_elements(configured.table_elements)
            .instances(8)
            .tables(8)
            .memories(2)
            .trap_on_grow_failure(true)
            .build();
        let state = PluginState {
            name: name.clone(),
            limits,
            budget: configured.deadline,
            started: None,
            wall: configured.wall,
            called_at: Instant::now(),
            logs: LogBudget::new(configured.logs_per_second, Arc::clone(&self.logs_dropped)),
            predicted: Vec::new(),
            destination: None,
        };
        let mut store = Store::new(self.runtime.engine(), state);
        store.limiter(|state| &mut state.limits);
        store.epoch_deadline_callback(|mut context| {
            let state = context.data_mut();
            let now = thread_cpu_time();
            // First tick of this call: assume the whole tick was spent on it (conservative).
            let started = *state.started.get_or_insert_with(|| now.saturating_sub(EPOCH_TICK));
            let used = now.saturating_sub(started);
            let within = used < state.budget && state.called_at.elapsed() < state.wall;
            Ok(if within { UpdateDeadline::Continue(1) } else { UpdateDeadline::Interrupt })
        });
        self.arm(&mut store)?;
        let bindings = W::instantiate(&mut store, &self.compiled, &self.linker)
            .map_err(|e| self.classify(e, |reason| PluginError::Instantiate { name: name.clone(), reason }))?;
        self.arm(&mut store)?;
        bindings
            .configure(&mut store, &self.config)
            .map_err(|e| self.classify(e, |reason| PluginError::Instantiate { name: name.clone(), reason }))?
            .map_err(|reason| PluginError::Configure { name: name.clone(), reason })?;
        self.built.fetch_add(1, Ordering::Relaxed);
        Ok(Warm { store, bindings })
    }

    /// Turns a wasmtime error into the host's view of it.
    fn classify(&self, error: wasmtime::Error, other: impl FnOnce(String) -> PluginError) -> PluginError {
        let name = self.compiled.name.clone();
        match error.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => {
                let limits = self.runtime.limits();
                PluginError::Timeout {
                    name,
                    limit: format!("CPU budget {:?} or wall bound {:?}", limits.deadline, limits.wall),
                }
            }
            Some(Trap::OutOfFuel) => PluginError::Timeout { name, limit: "fuel".into() },
            Some(_) => PluginError::Trap { name, reason: format!("{error:#}") },
            None => other(format!("{error:#}")),
        }
    }

    fn backing_off(&self) -> Option<u64> {
        let health = lock(&self.health);
        let retry_at = health.retry_at?;
        retry_at.checked_duration_since(Instant::now()).map(|left| left.as_millis() as u64)
    }

    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut health = lock(&self.health);
        health.failures = health.failures.saturating_add(1);
        let backoff = FIRST_BACKOFF.saturating_mul(1 << health.failures.min(10).saturating_sub(1)).min(MAX_BACKOFF);
        health.retry_at = Some(Instant::now() + backoff);
    }

    /// Calls the plugin on a warm instance (built when none is idle) under the call limits.
    pub fn call<R>(
        &self,
        f: impl FnOnce(&W, &mut Store<PluginState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        if let Some(remaining_ms) = self.backing_off() {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return Err(PluginError::BackingOff { name: self.compiled.name.clone(), remaining_ms });
        }
        let idle = lock(&self.idle).pop();
        let mut warm = match idle {
            Some(warm) => warm,
            None => self.build().inspect_err(|_| self.failed())?,
        };
        self.arm(&mut warm.store)?;
        let called_at = warm.store.data().called_at;
        let answer = f(&warm.bindings, &mut warm.store);
        self.durations.record(called_at.elapsed());
        match answer {
            Ok(answer) => {
                self.calls.fetch_add(1, Ordering::Relaxed);
                *lock(&self.health) = Health::default();
                let mut idle = lock(&self.idle);
                // After a burst, only a few warm instances stay (the rest are dropped here).
                if idle.len() < self.runtime.limits().warm_instances.max(1) {
                    idle.push(warm);
                }
                Ok(answer)
            }
            Err(error) => {
                // The instance may be in any state after a trap: it is dropped, not reused.
                self.failed();
                let name = self.compiled.name.clone();
                let error = self.classify(error, |reason| PluginError::Trap { name, reason });
                if matches!(error, PluginError::Timeout { .. }) {
                    self.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                Err(error)
            }
        }
    }
}
