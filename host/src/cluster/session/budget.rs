//! A token bucket for events a caller may turn into a flood (trace events: one per packet),
//! sans-IO: `allow(now)` refills at `per_second` up to a burst of one second's worth.

use std::time::Instant;

/// How many events of a kind a session may send per second; the excess is dropped (and
/// counted) before it is encoded, so one tenant's traces cannot fill its host's queues.
#[derive(Debug, Clone)]
pub struct EventBudget {
    per_second: u32,
    tokens: f64,
    last: Option<Instant>,
    dropped: u64,
}

impl EventBudget {
    /// A full budget of `per_second` events per second (0: none pass).
    pub fn new(per_second: u32) -> Self {
        Self { per_second, tokens: f64::from(per_second), last: None, dropped: 0 }
    }

    /// Whether one more event may go at `now`; a refused one is counted.
    pub fn allow(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.per_second);
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * rate).min(rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Events refused so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn a_burst_beyond_a_seconds_worth_is_dropped_and_the_budget_refills() {
        let start = Instant::now();
        let mut budget = EventBudget::new(10);
        let passed = (0..25).filter(|_| budget.allow(start)).count();
        assert_eq!((passed, budget.dropped()), (10, 15));
        // Half a second later, half the budget is back.
        let later = start + Duration::from_millis(500);
        assert_eq!((0..10).filter(|_| budget.allow(later)).count(), 5);
        // A long pause refills no more than one second's worth.
        let much_later = later + Duration::from_secs(60);
        assert_eq!((0..30).filter(|_| budget.allow(much_later)).count(), 10);
        assert!(!EventBudget::new(0).allow(start), "a zero budget lets nothing through");
    }

    proptest! {
        /// Over any sequence of arrivals, what passes never exceeds the burst plus the refill.
        #[test]
        fn what_passes_is_bounded_by_the_rate(rate in 1u32..500, gaps in prop::collection::vec(0u64..50_000, 1..400)) {
            let start = Instant::now();
            let mut budget = EventBudget::new(rate);
            let mut now = start;
            let mut passed = 0u64;
            for gap in &gaps {
                now += Duration::from_micros(*gap);
                passed += u64::from(budget.allow(now));
            }
            let allowed = f64::from(rate) * (1.0 + now.duration_since(start).as_secs_f64());
            prop_assert!(passed as f64 <= allowed + 1e-6, "{passed} passed, at most {allowed}");
            prop_assert_eq!(passed + budget.dropped(), gaps.len() as u64);
        }
    }
}
