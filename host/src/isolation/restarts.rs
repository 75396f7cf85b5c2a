//! When a dead worker's slot is started again, sans-IO: a back-off that grows with the crashes
//! of the slot inside a window, and a crash-loop limit past which the slot stays down (the
//! host reports itself not ready). Driven by `(slot, now)`; the host does the waiting.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Crashes of one slot within [`CRASH_WINDOW`] after which it is no longer restarted.
pub const CRASH_LIMIT: usize = 5;
/// The window crashes are counted in.
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);
/// Wait before the second restart inside the window (the first is at once); doubled for each
/// further one, at most [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between a crash and its restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What to do after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Start the slot again after this wait.
    After(Duration),
    /// The slot crashed [`CRASH_LIMIT`] times within [`CRASH_WINDOW`]: leave it down.
    GiveUp {
        /// Crashes counted in the window.
        crashes: usize,
    },
}

/// Crashes per worker slot.
#[derive(Debug)]
pub struct Restarts {
    limit: usize,
    window: Duration,
    crashes: HashMap<usize, VecDeque<Instant>>,
    /// Crashes (or failed starts) since the slot last started: a start that fails slowly
    /// (longer than the window over the limit) still ends in a give-up.
    in_a_row: HashMap<usize, usize>,
    given_up: Vec<usize>,
}

impl Default for Restarts {
    fn default() -> Self {
        Self::new(CRASH_LIMIT, CRASH_WINDOW)
    }
}

impl Restarts {
    /// A policy giving up after `limit` crashes within `window` (a limit of 0 counts as 1).
    pub fn new(limit: usize, window: Duration) -> Self {
        Self { limit: limit.max(1), window, crashes: HashMap::new(), in_a_row: HashMap::new(), given_up: Vec::new() }
    }

    /// Slot `slot` started a worker (its next crash is the first in a row).
    pub fn started(&mut self, slot: usize) {
        self.in_a_row.remove(&slot);
    }

    /// Slot `slot` crashed (or its replacement failed to start) at `now`.
    pub fn crashed(&mut self, slot: usize, now: Instant) -> Restart {
        let window = self.window;
        let history = self.crashes.entry(slot).or_default();
        while history.front().is_some_and(|at| now.saturating_duration_since(*at) >= window) {
            history.pop_front();
        }
        history.push_back(now);
        // Never more than the limit is kept: older crashes cannot matter once it is reached.
        while history.len() > self.limit {
            history.pop_front();
        }
        let in_a_row = self.in_a_row.entry(slot).or_default();
        *in_a_row += 1;
        let crashes = history.len().max(*in_a_row);
        if crashes >= self.limit {
            if !self.given_up.contains(&slot) {
                self.given_up.push(slot);
            }
            return Restart::GiveUp { crashes };
        }
        let doublings = u32::try_from(crashes.saturating_sub(2)).unwrap_or(u32::MAX).min(16);
        let wait = if crashes <= 1 { Duration::ZERO } else { (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF) };
        Restart::After(wait)
    }

    /// Slots left down after a crash loop.
    pub fn given_up(&self) -> &[usize] {
        &self.given_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_crash_restarts_at_once_then_waits_grow_until_the_limit() {
        let mut restarts = Restarts::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(restarts.crashed(0, at(0)), Restart::After(Duration::ZERO));
        assert_eq!(restarts.crashed(0, at(10)), Restart::After(Duration::from_millis(250)));
        assert_eq!(restarts.crashed(0, at(300)), Restart::After(Duration::from_millis(500)));
        assert_eq!(restarts.crashed(0, at(900)), Restart::After(Duration::from_secs(1)));
        assert!(restarts.given_up().is_empty());
        assert_eq!(restarts.crashed(0, at(2_000)), Restart::GiveUp { crashes: 5 });
        assert_eq!(restarts.given_up(), &[0]);
    }

    #[test]
    fn crashes_older_than_the_window_are_forgotten_and_slots_count_apart() {
        let mut restarts = Restarts::default();
        let t0 = Instant::now();
        for i in 0..4 {
            restarts.crashed(1, t0 + Duration::from_secs(i));
        }
        assert_eq!(restarts.crashed(2, t0), Restart::After(Duration::ZERO), "another slot starts afresh");
        restarts.started(1);
        let later = t0 + CRASH_WINDOW + Duration::from_secs(10);
        assert_eq!(restarts.crashed(1, later), Restart::After(Duration::ZERO), "the old crashes left the window");
        assert!(restarts.given_up().is_empty());
    }

    #[test]
    fn starts_that_fail_slowly_still_end_in_a_give_up_and_a_start_resets_the_run() {
        let mut restarts = Restarts::default();
        let t0 = Instant::now();
        // One failure every 20 s: never five in a window, five in a row.
        for i in 0..4 {
            assert!(matches!(restarts.crashed(3, t0 + Duration::from_secs(20 * i)), Restart::After(_)));
        }
        assert_eq!(restarts.crashed(3, t0 + Duration::from_secs(80)), Restart::GiveUp { crashes: 5 });
        let mut restarts = Restarts::default();
        for i in 0..4 {
            restarts.crashed(4, t0 + Duration::from_secs(20 * i));
        }
        restarts.started(4);
        assert!(matches!(restarts.crashed(4, t0 + Duration::from_secs(80)), Restart::After(_)), "ran in between");
    }

    proptest! {
        /// Whatever the crash times and the starts between them, a slot gives up exactly when
        /// `limit` of its crashes fall within one window or `limit` come in a row without a
        /// start; waits never exceed the maximum and history stays bounded.
        #[test]
        fn gives_up_exactly_at_the_limit(events in proptest::collection::vec((0u64..40_000, proptest::bool::ANY), 1..40)) {
            let mut restarts = Restarts::default();
            let t0 = Instant::now();
            let mut now = t0;
            let mut times: Vec<Instant> = Vec::new();
            let mut in_a_row = 0;
            for (gap, started) in events {
                if started {
                    restarts.started(0);
                    in_a_row = 0;
                }
                now += Duration::from_millis(gap);
                times.push(now);
                in_a_row += 1;
                let in_window = times.iter().filter(|t| now.duration_since(**t) < CRASH_WINDOW).count();
                let expect_give_up = in_window >= CRASH_LIMIT || in_a_row >= CRASH_LIMIT;
                match restarts.crashed(0, now) {
                    Restart::GiveUp { .. } => prop_assert!(expect_give_up),
                    Restart::After(wait) => {
                        prop_assert!(!expect_give_up);
                        prop_assert!(wait <= MAX_BACKOFF);
                    }
                }
                prop_assert!(restarts.crashes[&0].len() <= CRASH_LIMIT);
            }
        }
    }
}
