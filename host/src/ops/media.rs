//! Reads the cells' RTP counters at a bounded rate: a scrape asks for a refresh, which starts
//! one background round unless one runs or the last ended less than the interval ago; the
//! scrape answers with the totals of the last round.

use crate::cell::Origin;
use crate::host::Host;
use crate::internals::media_counters::{self, MediaBook, MediaProbe, MediaTotals};
use crate::internals::object::lock;
use crate::placement::CellId;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Shortest time between two rounds (default of [`MediaSampler::new`]).
pub const MEDIA_INTERVAL: Duration = Duration::from_secs(5);
/// Stats requests in flight at once in a round.
pub const MEDIA_CONCURRENCY: usize = 16;
/// Objects read per round at most (a host with more reads the first ones of each cell's list).
pub const MEDIA_PROBES_MAX: usize = 20_000;
/// How long one stats request may take.
pub const MEDIA_READ_WITHIN: Duration = Duration::from_secs(2);
/// How long a whole round may take (objects not read by then keep their previous reading).
pub const MEDIA_ROUND_WITHIN: Duration = Duration::from_secs(10);

/// The per-cell RTP totals, refreshed at most every `interval`.
#[derive(Debug)]
pub struct MediaSampler {
    host: Weak<Host>,
    interval: Duration,
    book: Mutex<MediaBook>,
    running: AtomicBool,
    last: Mutex<Option<Instant>>,
    /// How long the last round took, and how many objects it read.
    last_round: Mutex<(Duration, usize)>,
}

impl MediaSampler {
    /// A sampler of `host`'s own cells, at most one round per `interval`.
    pub fn new(host: &Arc<Host>, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            host: Arc::downgrade(host),
            interval,
            book: Mutex::default(),
            running: AtomicBool::new(false),
            last: Mutex::default(),
            last_round: Mutex::default(),
        })
    }

    /// The totals of the last round, per cell.
    pub fn totals(&self) -> HashMap<CellId, MediaTotals> {
        lock(&self.book).totals().clone()
    }

    /// How long the last round took and how many objects it read.
    pub fn last_round(&self) -> (Duration, usize) {
        *lock(&self.last_round)
    }

    /// Starts a round on the current tokio runtime unless one runs or the last is recent;
    /// `more` gives the probes the cells do not list (a cluster endpoint's sessions' objects),
    /// asked only when a round starts.
    pub(crate) fn refresh(self: &Arc<Self>, more: impl FnOnce() -> Vec<(CellId, MediaProbe)> + Send + 'static) {
        if lock(&self.last).is_some_and(|at| at.elapsed() < self.interval) {
            return;
        }
        if self.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::Release);
            return;
        };
        let me = Arc::clone(self);
        runtime.spawn(async move {
            me.round(more()).await;
            *lock(&me.last) = Some(Instant::now());
            me.running.store(false, Ordering::Release);
        });
    }

    /// One round: every probe of every own open cell and `more`, read with bounded concurrency.
    pub(crate) async fn round(&self, more: Vec<(CellId, MediaProbe)>) {
        let Some(host) = self.host.upgrade() else { return };
        let started = Instant::now();
        let cells: Vec<_> =
            host.cells().into_iter().filter(|c| c.origin() != Origin::Remote && !c.is_closed()).collect();
        let open: Vec<CellId> = cells.iter().map(|c| c.id()).collect();
        let probes: Vec<(CellId, MediaProbe)> = cells
            .iter()
            .flat_map(|cell| cell.media_probes().into_iter().map(move |p| (cell.id(), p)))
            .chain(more.into_iter().filter(|(cell, _)| open.contains(cell)))
            .take(MEDIA_PROBES_MAX)
            .collect();
        drop((host, cells));
        let count = probes.len();
        let alive: Vec<media_counters::ProbeKey> = probes.iter().map(|(_, p)| p.key()).collect();
        // Reads that do not finish within the round's deadline keep their previous reading.
        let mut readings = Vec::with_capacity(count);
        let mut reads = futures_util::stream::iter(probes)
            .map(|(cell, probe)| async move {
                let read = tokio::time::timeout(MEDIA_READ_WITHIN, media_counters::read(&probe)).await.ok().flatten();
                read.map(|(key, totals)| (cell, key, totals))
            })
            .buffer_unordered(MEDIA_CONCURRENCY);
        let _ = tokio::time::timeout(MEDIA_ROUND_WITHIN, async {
            while let Some(read) = reads.next().await {
                readings.extend(read);
            }
        })
        .await;
        drop(reads);
        lock(&self.book).round(readings, &alive, &open);
        *lock(&self.last_round) = (started.elapsed(), count);
    }
}
