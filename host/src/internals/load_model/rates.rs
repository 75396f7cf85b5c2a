//! Producers' packet rates, measured from their stats: each sample reads the stats of at most
//! [`POLL_BUDGET`] producers (round robin, each read bounded by [`POLL_LIMIT`], the whole round
//! by [`ROUND_LIMIT`]), so a host with thousands of producers refreshes each of them every few
//! seconds instead of flooding its workers. A producer's rate is shared by everything carrying
//! its packets (its consumers, the pipes taking it to other cells, a pipe producer made of it).

use super::{default_pps, Kind, Pps};
use crate::backend::ProducerBackend;
use crate::internals::object::{lock, within};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// Producers whose stats one sample reads at most.
pub const POLL_BUDGET: usize = 256;
/// How long one stats read may take.
pub const POLL_LIMIT: Duration = Duration::from_millis(100);
/// How long one sample's reads may take together.
pub const ROUND_LIMIT: Duration = Duration::from_millis(250);
/// Weight of a new reading in a producer's rate.
const SMOOTHING: f64 = 0.5;

/// One producer's packet rate (its kind's default until measured).
#[derive(Debug)]
pub struct Rate {
    kind: Kind,
    received: AtomicU64,
    forwarded: AtomicU64,
    measured: AtomicBool,
}

impl Rate {
    /// A rate of `kind`, not measured yet.
    pub fn new(kind: Kind) -> Arc<Self> {
        let pps = default_pps(kind);
        Arc::new(Self {
            kind,
            received: AtomicU64::new(pps.received.to_bits()),
            forwarded: AtomicU64::new(pps.forwarded.to_bits()),
            measured: AtomicBool::new(false),
        })
    }

    /// The producer's kind.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Its rates now.
    pub fn pps(&self) -> Pps {
        Pps {
            received: f64::from_bits(self.received.load(Ordering::Relaxed)),
            forwarded: f64::from_bits(self.forwarded.load(Ordering::Relaxed)),
        }
    }

    /// Whether it was measured (not the default).
    pub fn measured(&self) -> bool {
        self.measured.load(Ordering::Relaxed)
    }

    /// Takes a reading (smoothed once measured). Until the producer is seen sending, a silent
    /// reading keeps the kind's default: a producer created before its endpoint connects will
    /// send.
    pub fn record(&self, reading: Pps) {
        if !self.measured() && reading.received == 0.0 {
            return;
        }
        let blend = |old: f64, new: f64| if self.measured() { old + SMOOTHING * (new - old) } else { new };
        let now = self.pps();
        self.received.store(blend(now.received, reading.received).to_bits(), Ordering::Relaxed);
        self.forwarded.store(blend(now.forwarded, reading.forwarded).to_bits(), Ordering::Relaxed);
        self.measured.store(true, Ordering::Relaxed);
    }
}

/// A producer whose stats are read.
struct Source {
    rate: Weak<Rate>,
    producer: Weak<dyn ProducerBackend>,
    /// When it was last read, with its streams' packet counts then (by SSRC).
    last: Option<(Instant, HashMap<u32, u64>)>,
}

/// The rates of a host's producers.
#[derive(Default)]
pub struct RateBook {
    sources: Mutex<VecDeque<Source>>,
}

impl std::fmt::Debug for RateBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateBook").field("sources", &lock(&self.sources).len()).finish()
    }
}

/// The rates of one producer between two readings of its streams' packet counts.
pub fn reading(before: &HashMap<u32, u64>, now: &HashMap<u32, u64>, seconds: f64) -> Pps {
    let mut received = 0.0;
    let mut busiest: f64 = 0.0;
    for (ssrc, count) in now {
        let pps = before.get(ssrc).map_or(0.0, |b| count.saturating_sub(*b) as f64 / seconds);
        received += pps;
        busiest = busiest.max(pps);
    }
    Pps { received, forwarded: busiest }
}

impl RateBook {
    /// Measures `rate` from `producer`'s stats from now on (both held weakly).
    pub(crate) fn track(&self, rate: &Arc<Rate>, producer: &Arc<dyn ProducerBackend>) {
        lock(&self.sources).push_back(Source {
            rate: Arc::downgrade(rate),
            producer: Arc::downgrade(producer),
            last: None,
        });
    }

    /// Producers tracked.
    pub fn len(&self) -> usize {
        lock(&self.sources).len()
    }

    /// Whether none is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Producers tracked that are still alive (the others are forgotten by the next poll).
    pub(crate) fn live(&self) -> usize {
        lock(&self.sources).iter().filter(|s| s.rate.strong_count() > 0 && s.producer.strong_count() > 0).count()
    }

    /// Reads the stats of the next producers (see the module docs for the bounds); call it from
    /// a thread that may block (the sampler).
    pub(crate) fn poll(&self) {
        let started = Instant::now();
        let mut read = 0;
        // One pass at most; producers gone since are forgotten without counting against the
        // budget (so the list stays as long as the live producers, whatever the churn).
        for _ in 0..self.len() {
            if read >= POLL_BUDGET || started.elapsed() > ROUND_LIMIT {
                return;
            }
            let Some(mut source) = lock(&self.sources).pop_front() else { return };
            let (Some(rate), Some(producer)) = (source.rate.upgrade(), source.producer.upgrade()) else {
                continue;
            };
            read += 1;
            // A paused producer keeps the rate it had (it will send again).
            if !producer.paused() {
                let stats = futures_lite::future::block_on(within(POLL_LIMIT, producer.get_stats()));
                if let Some(Ok(stats)) = stats {
                    let at = Instant::now();
                    let counts: HashMap<u32, u64> = stats.iter().map(|s| (s.ssrc, s.packet_count)).collect();
                    if let Some((then, before)) = &source.last {
                        let seconds = at.duration_since(*then).as_secs_f64();
                        if seconds > 0.0 {
                            rate.record(reading(before, &counts, seconds));
                        }
                    }
                    source.last = Some((at, counts));
                }
            }
            lock(&self.sources).push_back(source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_sums_streams_and_forwards_the_busiest() {
        let before = HashMap::from([(1, 100), (2, 100), (3, 100)]);
        let now = HashMap::from([(1, 240), (2, 140), (3, 115), (4, 50)]);
        let pps = reading(&before, &now, 1.0);
        assert_eq!(pps.received, 140.0 + 40.0 + 15.0, "a stream new since the last reading counts from the next");
        assert_eq!(pps.forwarded, 140.0);
    }

    #[test]
    fn defaults_until_measured_then_smoothed() {
        let rate = Rate::new(Kind::Video);
        assert_eq!(rate.pps(), super::super::DEFAULT_VIDEO);
        rate.record(Pps { received: 0.0, forwarded: 0.0 });
        assert_eq!(rate.pps(), super::super::DEFAULT_VIDEO, "not sending yet: still the default");
        rate.record(Pps { received: 100.0, forwarded: 60.0 });
        assert_eq!(rate.pps(), Pps { received: 100.0, forwarded: 60.0 }, "the first reading replaces the default");
        rate.record(Pps { received: 0.0, forwarded: 0.0 });
        assert_eq!(rate.pps(), Pps { received: 50.0, forwarded: 30.0 });
    }
}
