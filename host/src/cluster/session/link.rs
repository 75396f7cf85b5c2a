//! The calling side of a session, sans-IO: which session the next hello resumes and from which
//! event, request ids and their deadlines, events seen once each, and when a host that stays
//! unreachable counts as lost. Generic over `W`, what waits for a reply (the IO side's channel).

use crate::cluster::proto::{ResumeTicket, Welcome};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a welcome means for the objects the caller had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Welcomed {
    /// The session was resumed: objects and missed events are kept.
    Resumed,
    /// A new session: the first one, or a replacement for one the host no longer has (its
    /// objects are gone unless they were already reported lost).
    Fresh {
        /// The caller had objects in a session that is gone and not yet reported lost.
        lost: bool,
    },
}

/// The calling side of one link's session.
#[derive(Debug)]
pub struct LinkSession<W> {
    ticket: Option<ResumeTicket>,
    last_event: u64,
    pending: HashMap<u32, (Instant, W)>,
    next_id: u32,
    down_since: Option<Instant>,
    lost_reported: bool,
    request_timeout: Duration,
    lost_after: Duration,
}

impl<W> LinkSession<W> {
    /// A link that has no session yet; requests fail after `request_timeout`, a host unreachable
    /// for `lost_after` counts as lost.
    pub fn new(request_timeout: Duration, lost_after: Duration) -> Self {
        Self {
            ticket: None,
            last_event: 0,
            pending: HashMap::new(),
            next_id: 1,
            down_since: None,
            lost_reported: false,
            request_timeout,
            lost_after,
        }
    }

    /// What the next hello asks to resume, and the last event seen in it.
    pub fn resume(&self) -> (Option<ResumeTicket>, u64) {
        (self.ticket.clone(), if self.ticket.is_some() { self.last_event } else { 0 })
    }

    /// The host welcomed a hello.
    pub fn welcomed(&mut self, welcome: &Welcome) -> Welcomed {
        let had = self.ticket.replace(ResumeTicket { session: welcome.session, secret: welcome.secret }).is_some();
        let lost_reported = std::mem::take(&mut self.lost_reported);
        self.down_since = None;
        if welcome.resumed {
            return Welcomed::Resumed;
        }
        self.last_event = 0;
        Welcomed::Fresh { lost: had && !lost_reported }
    }

    /// A new request: its id (never 0, which marks a notification), tracked until answered.
    pub fn request(&mut self, waiter: W, now: Instant) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).filter(|n| *n != 0).unwrap_or(1);
        self.pending.insert(id, (now, waiter));
        id
    }

    /// A request could not be sent: forget it.
    pub fn unsent(&mut self, id: u32) -> Option<W> {
        self.pending.remove(&id).map(|(_, w)| w)
    }

    /// The response to `id` arrived: who waits for it (none if it timed out or never was).
    pub fn response(&mut self, id: u32) -> Option<W> {
        self.pending.remove(&id).map(|(_, w)| w)
    }

    /// Event `seq` arrived: whether it is new (a replayed one already seen is skipped).
    pub fn event(&mut self, seq: u64) -> bool {
        if seq <= self.last_event {
            return false;
        }
        self.last_event = seq;
        true
    }

    /// The connection dropped at `now`: every pending request fails (the host may or may not
    /// have carried it out).
    pub fn down(&mut self, now: Instant) -> Vec<W> {
        self.down_since.get_or_insert(now);
        self.pending.drain().map(|(_, (_, w))| w).collect()
    }

    /// Requests older than the timeout at `now` (they fail).
    pub fn expired(&mut self, now: Instant) -> Vec<W> {
        let timeout = self.request_timeout;
        let late: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, (at, _))| now.saturating_duration_since(*at) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        late.into_iter().filter_map(|id| self.pending.remove(&id)).map(|(_, w)| w).collect()
    }

    /// Whether the host counts as lost at `now` (down for `lost_after`; reported once): its
    /// objects are gone, and the next hello starts a new session.
    pub fn lost(&mut self, now: Instant) -> bool {
        let down_long = self.down_since.is_some_and(|since| now.saturating_duration_since(since) >= self.lost_after);
        if !down_long || self.lost_reported {
            return false;
        }
        self.lost_reported = true;
        self.ticket = None;
        self.last_event = 0;
        true
    }

    /// Whether the link is down and not yet counted lost.
    pub fn recovering(&self) -> bool {
        self.down_since.is_some() && !self.lost_reported
    }

    #[cfg(test)]
    pub(super) fn next_id_for_test(&mut self, id: u32) {
        self.next_id = id;
    }

    /// Requests waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
