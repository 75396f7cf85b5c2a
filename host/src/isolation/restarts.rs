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
        Self { limit: limit.max(1), window, crashes: HashMap::new(), given_up: Vec::new() }
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
        let crashes = history.len();
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
        let later = t0 + CRASH_WINDOW + Duration::from_secs(10);
        assert_eq!(restarts.crashed(1, later), Restart::After(Duration::ZERO), "the old crashes left the window");
        assert!(restarts.given_up().is_empty());
    }

    proptest! {
        /// Whatever the crash times, a slot gives up exactly when `limit` of its crashes fall
        /// within one window, waits never exceed the maximum and history stays bounded.
        #[test]
        fn gives_up_exactly_at_the_limit_within_the_window(gaps in proptest::collection::vec(0u64..40_000, 1..40)) {
            let mut restarts = Restarts::default();
            let t0 = Instant::now();
            let mut now = t0;
            let mut times: Vec<Instant> = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                times.push(now);
                let in_window = times.iter().filter(|t| now.duration_since(**t) < CRASH_WINDOW).count();
                match restarts.crashed(0, now) {
                    Restart::GiveUp { .. } => prop_assert!(in_window >= CRASH_LIMIT),
                    Restart::After(wait) => {
                        prop_assert!(in_window < CRASH_LIMIT);
                        prop_assert!(wait <= MAX_BACKOFF);
                    }
                }
                prop_assert!(restarts.crashes[&0].len() <= CRASH_LIMIT);
            }
        }
    }
}
