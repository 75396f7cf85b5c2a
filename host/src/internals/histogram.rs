//! A fixed-bucket histogram of durations, recorded with a few atomic adds (no lock) and read as
//! a snapshot (the metrics export it as a Prometheus histogram).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in seconds (the last bucket, `+Inf`, is implicit): 10 µs to
/// 100 ms, the range of a plugin call (its default CPU budget is 10 ms).
pub const BUCKETS: [f64; 10] = [0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.01, 0.1];

/// Recorded durations.
#[derive(Debug, Default)]
pub struct DurationHistogram {
    /// Per bucket (not cumulative); the last is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Per bucket of [`BUCKETS`] then `+Inf` (not cumulative).
    pub counts: [u64; BUCKETS.len() + 1],
    /// Sum of the recorded durations, in nanoseconds.
    pub sum_ns: u64,
}

impl HistogramSnapshot {
    /// Number of recorded durations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of the recorded durations in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns as f64 / 1e9
    }

    /// `(upper bound in seconds, count)` per bucket, `+Inf` last (not cumulative).
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        BUCKETS.iter().copied().chain([f64::INFINITY]).zip(self.counts).collect()
    }
}

impl DurationHistogram {
    /// Records one duration.
    pub fn record(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let at = BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(BUCKETS.len());
        self.counts[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_first_bucket_that_holds_them() {
        let h = DurationHistogram::default();
        h.record(Duration::from_micros(5));
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(11));
        h.record(Duration::from_secs(1));
        let s = h.snapshot();
        assert_eq!(s.counts[0], 2, "5 µs and exactly 10 µs are in the first bucket");
        assert_eq!(s.counts[1], 1);
        assert_eq!(s.counts[BUCKETS.len()], 1, "1 s is above every bound: +Inf");
        assert_eq!(s.count(), 4);
        assert_eq!(s.sum_ns, 5_000 + 10_000 + 11_000 + 1_000_000_000);
        assert_eq!(s.buckets().last().map(|b| b.0), Some(f64::INFINITY));
    }
}
