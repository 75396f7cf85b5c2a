//! The local worker pool: real mediasoup workers (C++ threads inside this process), spawned and
//! closed on demand, each with its thread id so its CPU time can be measured.

use mediasoup::prelude::*;
use mediasoup::worker::{WorkerDtlsFiles, WorkerId, WorkerLogLevel, WorkerLogTag};
use std::fs;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{error, info};

/// Errors of the worker pool.
#[derive(Debug, Error)]
pub enum PoolError {
    /// A pool needs at least one worker.
    #[error("a worker pool needs at least one worker (got 0)")]
    NoWorkers,
    /// mediasoup could not start a worker thread.
    #[error("could not start a mediasoup worker: {0}")]
    Spawn(#[from] std::io::Error),
    /// No worker with this id in the pool.
    #[error("no worker {0} in the pool")]
    UnknownWorker(WorkerId),
}

/// How the pool starts each worker.
#[derive(Clone)]
pub struct WorkerTemplate {
    /// Log level of the C++ workers (their logs are forwarded to `tracing`).
    pub log_level: WorkerLogLevel,
    /// Log tags of the C++ workers.
    pub log_tags: Vec<WorkerLogTag>,
    /// UDP/TCP port range the workers allocate from.
    pub rtc_ports: std::ops::RangeInclusive<u16>,
    /// DTLS certificate and key (generated per worker when `None`).
    pub dtls_files: Option<WorkerDtlsFiles>,
    /// Called on each worker thread before it starts (e.g. to pin it to a core).
    pub thread_initializer: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for WorkerTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerTemplate")
            .field("log_level", &self.log_level)
            .field("rtc_ports", &self.rtc_ports)
            .finish()
    }
}

impl Default for WorkerTemplate {
    fn default() -> Self {
        Self {
            log_level: WorkerLogLevel::Warn,
            log_tags: Vec::new(),
            rtc_ports: 10_000..=59_999,
            dtls_files: None,
            thread_initializer: None,
        }
    }
}

impl WorkerTemplate {
    /// The template an application asked for with mediasoup's `WorkerSettings`.
    pub fn from_settings(settings: &WorkerSettings) -> Self {
        Self {
            log_level: settings.log_level,
            log_tags: settings.log_tags.clone(),
            rtc_ports: settings.rtc_port_range.clone(),
            dtls_files: settings.dtls_files.clone(),
            thread_initializer: settings.thread_initializer.clone(),
        }
    }
}

/// The OS thread a worker runs on, learnt from inside the thread when it starts.
#[derive(Debug, Default)]
pub struct WorkerThread {
    tid: OnceLock<libc::pid_t>,
}

impl WorkerThread {
    /// Records the id of the calling thread (call it from the worker thread).
    pub fn record_current(&self) {
        // SAFETY: gettid has no preconditions; it returns the calling thread's id.
        let _ = self.tid.set(unsafe { libc::gettid() });
    }

    /// A mediasoup `thread_initializer` that records the worker thread's id here, then runs
    /// `then` (the application's own initializer, if any).
    pub fn initializer(self: &Arc<Self>, then: Option<Arc<dyn Fn() + Send + Sync>>) -> Arc<dyn Fn() + Send + Sync> {
        let thread = Arc::clone(self);
        Arc::new(move || {
            thread.record_current();
            if let Some(init) = &then {
                init();
            }
        })
    }

    /// Linux thread id, once the worker thread has started.
    pub fn tid(&self) -> Option<libc::pid_t> {
        self.tid.get().copied()
    }

    /// CPU time the worker thread has used so far (from the scheduler's own accounting).
    pub fn cpu_time(&self) -> Option<Duration> {
        let tid = self.tid()?;
        let text = fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
        let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
        Some(Duration::from_nanos(nanos))
    }
}

/// One worker of the pool.
#[derive(Debug, Clone)]
pub struct PooledWorker {
    /// The real mediasoup worker.
    pub worker: Worker,
    /// What stays observable after the worker is gone.
    pub watch: WorkerWatch,
}

impl PooledWorker {
    /// The worker's id.
    pub fn id(&self) -> WorkerId {
        self.worker.id()
    }

    /// Position in spawn order.
    pub fn index(&self) -> usize {
        self.watch.index
    }

    /// The worker's OS thread.
    pub fn thread(&self) -> &WorkerThread {
        &self.watch.thread
    }
}

/// Observes a worker without keeping it alive: its identity, thread and close event.
#[derive(Debug, Clone)]
pub struct WorkerWatch {
    /// Position in spawn order (stable for the worker's life; used in tables and logs).
    pub index: usize,
    /// The worker's id.
    pub id: WorkerId,
    /// Its OS thread.
    pub thread: Arc<WorkerThread>,
    closed: watch::Receiver<bool>,
}

impl WorkerWatch {
    /// True once the worker's close event has fired.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves once the worker's close event has fired.
    pub async fn closed(&self) {
        let mut closed = self.closed.clone();
        let _ = closed.wait_for(|closed| *closed).await;
    }
}

/// A pool of local mediasoup workers.
pub struct WorkerPool {
    manager: WorkerManager,
    template: Mutex<WorkerTemplate>,
    entries: Mutex<Vec<PooledWorker>>,
    spawned: AtomicUsize,
}

impl std::fmt::Debug for WorkerPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPool").field("workers", &self.len()).finish()
    }
}

impl WorkerPool {
    /// Starts a pool with `count` workers made from `template`.
    pub async fn start(count: NonZeroUsize, template: WorkerTemplate) -> Result<Self, PoolError> {
        let pool = Self::empty(template);
        for _ in 0..count.get() {
            pool.spawn_worker().await?;
        }
        Ok(pool)
    }

    /// A pool with no worker yet (workers are added with [`WorkerPool::spawn_worker`]).
    pub fn empty(template: WorkerTemplate) -> Self {
        Self::with_manager(WorkerManager::new(), template)
    }

    /// A pool with no worker yet, starting workers through `manager`.
    pub fn with_manager(manager: WorkerManager, template: WorkerTemplate) -> Self {
        Self { manager, template: Mutex::new(template), entries: Mutex::new(Vec::new()), spawned: AtomicUsize::new(0) }
    }

    /// Starts `count` workers (at least one) with the default template.
    pub async fn with_workers(count: usize) -> Result<Self, PoolError> {
        let count = NonZeroUsize::new(count).ok_or(PoolError::NoWorkers)?;
        Self::start(count, WorkerTemplate::default()).await
    }

    /// Changes how workers started from now on are made.
    pub fn set_template(&self, template: WorkerTemplate) {
        *self.template.lock().unwrap_or_else(PoisonError::into_inner) = template;
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Vec<PooledWorker>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts one more worker and keeps it in the pool.
    pub async fn spawn_worker(&self) -> Result<PooledWorker, PoolError> {
        let pooled = self.start_worker().await?;
        self.entries().push(pooled.clone());
        Ok(pooled)
    }

    /// Starts a worker the caller owns (the pool does not keep it).
    pub async fn start_worker(&self) -> Result<PooledWorker, PoolError> {
        let thread = Arc::new(WorkerThread::default());
        let template = self.template.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut settings = WorkerSettings::default();
        settings.log_level = template.log_level;
        settings.log_tags = template.log_tags;
        settings.rtc_port_range = template.rtc_ports;
        settings.dtls_files = template.dtls_files;
        settings.thread_initializer = Some(thread.initializer(template.thread_initializer));
        let worker = self.manager.create_worker(settings).await?;
        let index = self.spawned.fetch_add(1, Ordering::Relaxed);
        let id = worker.id();
        let (closed_tx, closed) = watch::channel(false);
        // Detached: these handlers live as long as the worker and hold nothing of it.
        worker
            .on_close(move || {
                info!(worker = index, %id, "worker closed");
                closed_tx.send_replace(true);
            })
            .detach();
        worker
            .on_dead(move |result| match result {
                Ok(()) => info!(worker = index, %id, "worker thread exited"),
                Err(reason) => error!(worker = index, %id, %reason, "worker died"),
            })
            .detach();
        let pooled = PooledWorker { worker, watch: WorkerWatch { index, id, thread, closed } };
        info!(worker = index, %id, tid = ?pooled.thread().tid(), "worker started");
        Ok(pooled)
    }

    /// The workers currently in the pool, in spawn order.
    pub fn workers(&self) -> Vec<PooledWorker> {
        self.entries().clone()
    }

    /// The worker with this id.
    pub fn worker(&self, id: WorkerId) -> Result<PooledWorker, PoolError> {
        self.entries().iter().find(|w| w.id() == id).cloned().ok_or(PoolError::UnknownWorker(id))
    }

    /// Number of workers in the pool.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    /// True when the pool has no worker.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes a worker from the pool and drops the pool's handle on it. mediasoup closes a
    /// worker when its last handle (including those held by its routers) is dropped; await
    /// [`WorkerWatch::closed`] on the returned watch to know when that happened.
    pub fn close_worker(&self, id: WorkerId) -> Result<WorkerWatch, PoolError> {
        let entry = {
            let mut entries = self.entries();
            let at = entries.iter().position(|w| w.id() == id).ok_or(PoolError::UnknownWorker(id))?;
            entries.remove(at)
        };
        info!(%id, "worker removed from the pool");
        Ok(entry.watch.clone())
    }

    /// Closes every worker and waits for their close events (callers must have dropped their
    /// routers and transports first).
    pub async fn close(self) {
        let entries = std::mem::take(&mut *self.entries());
        let watches: Vec<WorkerWatch> = entries.into_iter().map(|w| w.watch.clone()).collect();
        for watch in watches {
            watch.closed().await;
        }
    }
}
