//! Recent events of the host for the status page: cells started, closed and lost, draining,
//! rebalance advice, drains and plugin reloads. Bounded: the newest [`JOURNAL_LEN`] are kept.

use crate::host::{CloseReason, Host};
use crate::internals::object::lock;
use event_listener_primitives::HandlerId;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Events kept (older ones are dropped).
pub const JOURNAL_LEN: usize = 200;

/// Longest text of one event, in bytes (longer texts are cut).
pub const EVENT_TEXT_MAX: usize = 512;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JournalEntry {
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What kind: `started`, `new_cell`, `cell_closed`, `cell_lost`, `cell_draining`, `rebalance`,
    /// `drain`, `undrain`, `plugins_reloaded`.
    pub kind: &'static str,
    /// What happened, for a person.
    pub text: String,
}

/// The recent events, fed by the host's events (and by the operator's actions).
#[derive(Default)]
pub struct Journal {
    entries: Mutex<VecDeque<JournalEntry>>,
    handlers: Mutex<Vec<HandlerId>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("entries", &lock(&self.entries).len()).finish()
    }
}

impl Journal {
    /// A journal listening to `host`'s events.
    pub fn listening(host: &Arc<Host>) -> Arc<Self> {
        let journal = Arc::new(Self::default());
        let weak = Arc::downgrade(&journal);
        let mut handlers = Vec::new();
        let j = weak.clone();
        handlers.push(host.on_new_cell(move |cell| {
            if let Some(j) = j.upgrade() {
                j.record("new_cell", format!("{cell} started"));
            }
        }));
        let j = weak.clone();
        handlers.push(host.on_cell_closed(move |closed| {
            let Some(j) = j.upgrade() else { return };
            let whose = closed.node.as_deref().map(|n| format!(" of {n}")).unwrap_or_default();
            match closed.reason {
                CloseReason::Died => j.record(
                    "cell_lost",
                    format!(
                        "{}{whose} (worker {}) died: {} transports lost",
                        closed.cell,
                        closed.worker,
                        closed.lost_transports.len()
                    ),
                ),
                reason => j.record("cell_closed", format!("{}{whose} closed ({reason:?})", closed.cell)),
            }
        }));
        let j = weak.clone();
        handlers.push(host.on_cell_draining(move |event| {
            if let Some(j) = j.upgrade() {
                let what = if event.draining { "draining" } else { "taking transports again" };
                j.record("cell_draining", format!("{} on {} {what}", event.cell, event.node));
            }
        }));
        handlers.push(host.on_rebalance(move |advice| {
            if let Some(j) = weak.upgrade() {
                j.record(
                    "rebalance",
                    format!(
                        "{} at {:.0}% CPU: move {} transports to {}",
                        advice.from,
                        advice.cpu * 100.0,
                        advice.transports.len(),
                        advice.to
                    ),
                );
            }
        }));
        *lock(&journal.handlers) = handlers;
        journal
    }

    /// Records an event now.
    pub fn record(&self, kind: &'static str, mut text: String) {
        if text.len() > EVENT_TEXT_MAX {
            let mut end = EVENT_TEXT_MAX;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let at_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let mut entries = lock(&self.entries);
        if entries.len() == JOURNAL_LEN {
            entries.pop_front();
        }
        entries.push_back(JournalEntry { at_ms, kind, text });
    }

    /// The events kept, newest first.
    pub fn recent(&self) -> Vec<JournalEntry> {
        lock(&self.entries).iter().rev().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_the_newest_events_and_cuts_long_texts() {
        let journal = Journal::default();
        for n in 0..JOURNAL_LEN + 5 {
            journal.record("drain", format!("event {n}"));
        }
        let recent = journal.recent();
        assert_eq!(recent.len(), JOURNAL_LEN);
        assert_eq!(recent[0].text, format!("event {}", JOURNAL_LEN + 4), "newest first");
        assert_eq!(recent[JOURNAL_LEN - 1].text, "event 5", "the oldest five were dropped");
        journal.record("drain", "é".repeat(EVENT_TEXT_MAX));
        assert!(journal.recent()[0].text.len() <= EVENT_TEXT_MAX);
    }
}
