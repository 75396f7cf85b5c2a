//! The calling side of a session, sans-IO: which session the next hello resumes and from which
//! event, requests waiting for their replies (kept across a dropped link and sent again after a
//! resume, so the host answers each once) and their deadlines, events seen once each, when a
//! silent host leaves placement, and when an unreachable host counts as lost: only on proof (a
//! new boot id, or a host that no longer has the session) or once the host's grace ran out.
//! Generic over `W`, what waits for a reply (the IO side's channel).

use crate::cluster::proto::{ResumeTicket, Welcome};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a welcome means for the objects the caller had.
#[derive(Debug)]
pub enum Welcomed<W> {
    /// The session was resumed: objects and missed events are kept; these request frames are
    /// to be sent again, in this order, before anything else (the host answers each once).
    Resumed {
        /// Frames of the requests still waiting, oldest first.
        resend: Vec<Vec<u8>>,
    },
    /// A new session: the first one, or a replacement for one the host no longer has (its
    /// objects are gone unless they were already reported lost).
    Fresh {
        /// The caller had objects in a session that is gone and not yet reported lost.
        lost: bool,
        /// The host is another incarnation than the one that held the session (it restarted).
        restarted: bool,
        /// Requests of the gone session: they fail.
        failed: Vec<W>,
    },
}

/// A request waiting for its reply.
#[derive(Debug)]
struct Pending<W> {
    at: Instant,
    order: u64,
    frame: Vec<u8>,
    waiter: W,
}

/// The calling side of one link's session.
#[derive(Debug)]
pub struct LinkSession<W> {
    ticket: Option<ResumeTicket>,
    boot: Option<u64>,
    last_event: u64,
    pending: HashMap<u32, Pending<W>>,
    next_id: u32,
    next_order: u64,
    down_since: Option<Instant>,
    lost_reported: bool,
    heard_at: Option<Instant>,
    stale: bool,
    request_timeout: Duration,
    lost_after: Duration,
    stale_after: Duration,
}

impl<W> LinkSession<W> {
    /// A link that has no session yet. Requests fail after `request_timeout`; a host silent
    /// for `stale_after` leaves placement; one unreachable for `lost_after` counts as lost
    /// (until a welcome gives the host's own grace).
    pub fn new(request_timeout: Duration, lost_after: Duration, stale_after: Duration) -> Self {
        Self {
            ticket: None,
            boot: None,
            last_event: 0,
            pending: HashMap::new(),
            next_id: 1,
            next_order: 0,
            down_since: None,
            lost_reported: false,
            heard_at: None,
            stale: false,
            request_timeout,
            lost_after,
            stale_after,
        }
    }

    /// What the next hello asks to resume, and the last event seen in it.
    pub fn resume(&self) -> (Option<ResumeTicket>, u64) {
        (self.ticket.clone(), if self.ticket.is_some() { self.last_event } else { 0 })
    }

    /// The host welcomed a hello at `now`.
    pub fn welcomed(&mut self, welcome: &Welcome, now: Instant) -> Welcomed<W> {
        let had = self.ticket.replace(ResumeTicket { session: welcome.session, secret: welcome.secret }).is_some();
        let restarted = self.boot.replace(welcome.boot).is_some_and(|boot| boot != welcome.boot);
        let lost_reported = std::mem::take(&mut self.lost_reported);
        self.down_since = None;
        self.heard_at = Some(now);
        self.stale = false;
        self.lost_after = Duration::from_millis(welcome.grace_ms);
        if welcome.resumed && !restarted {
            let mut waiting: Vec<&Pending<W>> = self.pending.values().collect();
            waiting.sort_by_key(|p| p.order);
            let resend = waiting.into_iter().map(|p| p.frame.clone()).collect();
            return Welcomed::Resumed { resend };
        }
        self.last_event = 0;
        let failed = self.pending.drain().map(|(_, p)| p.waiter).collect();
        Welcomed::Fresh { lost: had && !lost_reported, restarted, failed }
    }

    /// The id of the next request (never 0, which marks a message nobody waits for).
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).filter(|n| *n != 0).unwrap_or(1);
        id
    }

    /// Request `id` (encoded as `frame`) waits for its reply from `now`.
    pub fn track(&mut self, id: u32, waiter: W, frame: Vec<u8>, now: Instant) {
        let order = self.next_order;
        self.next_order += 1;
        self.pending.insert(id, Pending { at: now, order, frame, waiter });
    }

    /// Whether a request may wait for the link to come back: the caller holds a session the
    /// host has not been counted lost with (otherwise a request fails at once).
    pub fn may_wait(&self) -> bool {
        self.ticket.is_some()
    }

    /// A request could not be sent and will not wait: forget it.
    pub fn unsent(&mut self, id: u32) -> Option<W> {
        self.pending.remove(&id).map(|p| p.waiter)
    }

    /// The response to `id` arrived: who waits for it (none if it timed out or never was).
    pub fn response(&mut self, id: u32) -> Option<W> {
        self.pending.remove(&id).map(|p| p.waiter)
    }

    /// Event `seq` arrived: whether it is new (a replayed one already seen is skipped).
    pub fn event(&mut self, seq: u64) -> bool {
        if seq <= self.last_event {
            return false;
        }
        self.last_event = seq;
        true
    }

    /// Something arrived from the host at `now`: true if it had gone silent (it may return to
    /// placement).
    pub fn heard(&mut self, now: Instant) -> bool {
        self.heard_at = Some(now);
        std::mem::take(&mut self.stale)
    }

    /// Whether the host went silent by `now` (nothing for `stale_after`, though it advertises
    /// every second): true once, when it does; its cells leave placement, nothing is lost.
    pub fn silent(&mut self, now: Instant) -> bool {
        let quiet = self.heard_at.is_some_and(|at| now.saturating_duration_since(at) >= self.stale_after);
        if !quiet || self.stale {
            return false;
        }
        self.stale = true;
        true
    }

    /// The connection dropped at `now`. Requests keep waiting: they are sent again after a
    /// resume, or fail when the host is lost or their deadline passes.
    pub fn down(&mut self, now: Instant) {
        self.down_since.get_or_insert(now);
    }

    /// Requests older than the timeout at `now` (they fail).
    pub fn expired(&mut self, now: Instant) -> Vec<W> {
        let timeout = self.request_timeout;
        let late: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.at) >= timeout)
            .map(|(id, _)| *id)
            .collect();
        late.into_iter().filter_map(|id| self.pending.remove(&id)).map(|p| p.waiter).collect()
    }

    /// Whether the host counts as lost at `now` (unreachable for its grace; reported once):
    /// its objects are gone, the next hello starts a new session, and the requests still
    /// waiting fail (returned).
    pub fn lost(&mut self, now: Instant) -> Option<Vec<W>> {
        let down_long = self.down_since.is_some_and(|since| now.saturating_duration_since(since) >= self.lost_after);
        if !down_long || self.lost_reported {
            return None;
        }
        self.lost_reported = true;
        self.ticket = None;
        self.last_event = 0;
        Some(self.pending.drain().map(|(_, p)| p.waiter).collect())
    }

    /// The link stops for good: the session is given up (nothing will be sent again) and the
    /// requests still waiting fail (returned).
    pub fn stop(&mut self) -> Vec<W> {
        self.ticket = None;
        self.pending.drain().map(|(_, p)| p.waiter).collect()
    }

    /// Whether the link is down and not yet counted lost.
    pub fn recovering(&self) -> bool {
        self.down_since.is_some() && !self.lost_reported
    }

    /// How long an unreachable host has before it counts as lost.
    pub fn lost_after(&self) -> Duration {
        self.lost_after
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
