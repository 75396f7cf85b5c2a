//! A session's events: numbered from 1, the recent ones kept (bounded in bytes) so a caller
//! that resumes gets every event after the last one it saw, or learns that some are gone.

use std::collections::VecDeque;

/// Numbered event frames, the most recent kept.
#[derive(Debug, Default)]
pub(super) struct EventLog {
    /// The last number given (0: none yet).
    last: u64,
    /// The kept frames, consecutive, ending at `last`.
    kept: VecDeque<Vec<u8>>,
    bytes: usize,
}

impl EventLog {
    /// The next event's number.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// Takes back the last number (its frame could not be made).
    pub(super) fn unnumber(&mut self) {
        self.last -= 1;
    }

    /// Keeps event `last`'s frame, then drops the oldest beyond `budget` bytes.
    pub(super) fn keep(&mut self, frame: Vec<u8>, budget: usize) {
        self.bytes += frame.len();
        self.kept.push_back(frame);
        self.trim(budget);
    }

    /// Drops the oldest frames beyond `budget` bytes.
    pub(super) fn trim(&mut self, budget: usize) {
        while self.bytes > budget {
            match self.kept.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// Bytes kept.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The frames after `last_seen`, if every one of them is still kept (a caller cannot have
    /// seen an event not yet raised: that is refused too).
    pub(super) fn after(&self, last_seen: u64) -> Option<Vec<Vec<u8>>> {
        let missed = self.last.checked_sub(last_seen)?;
        let missed = usize::try_from(missed).ok().filter(|m| *m <= self.kept.len())?;
        Some(self.kept.iter().skip(self.kept.len() - missed).cloned().collect())
    }
}
