//! The host's half of "a request is carried out once": per session, which request ids are
//! running and the recent replies, so a caller that sends a request again after a resume (it
//! cannot know whether the first copy arrived, or whether the reply was lost with the old
//! connection) gets the first answer instead of a second object.

use std::collections::{HashMap, HashSet, VecDeque};

/// What to do with a request that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before: carry it out.
    New,
    /// Being carried out: its reply goes to the caller when done.
    Running,
    /// Answered before: send this reply frame again.
    Answered(Vec<u8>),
    /// Carried out long ago and its reply is no longer kept.
    Forgotten,
}

/// Request ids seen in one session and the replies kept for them. A caller numbers its
/// requests upward (wrapping past `u32::MAX`, skipping 0) on an ordered stream, and sends those
/// still waiting again, in order, after a resume; an id at or below the highest seen that is
/// neither running nor kept was answered long ago.
#[derive(Debug)]
pub struct Replies {
    running: HashSet<u32>,
    kept: VecDeque<u32>,
    frames: HashMap<u32, Vec<u8>>,
    bytes: usize,
    highest: Option<u32>,
    max_replies: usize,
    max_bytes: usize,
}

/// Whether `a` comes after `b` in serial-number order (RFC 1982 over u32).
fn after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

impl Replies {
    /// Keeps at most `max_replies` replies and `max_bytes` of them (the oldest go first).
    pub fn new(max_replies: usize, max_bytes: usize) -> Self {
        Self {
            running: HashSet::new(),
            kept: VecDeque::new(),
            frames: HashMap::new(),
            bytes: 0,
            highest: None,
            max_replies,
            max_bytes,
        }
    }

    /// Request `id` arrived.
    pub fn arrive(&mut self, id: u32) -> Arrival {
        if self.running.contains(&id) {
            return Arrival::Running;
        }
        if let Some(frame) = self.frames.get(&id) {
            return Arrival::Answered(frame.clone());
        }
        if self.highest.is_some_and(|highest| !after(id, highest)) {
            return Arrival::Forgotten;
        }
        self.highest = Some(id);
        self.running.insert(id);
        Arrival::New
    }

    /// Request `id` was answered with `frame` (kept for a caller that asks again).
    pub fn answered(&mut self, id: u32, frame: &[u8]) {
        if !self.running.remove(&id) || frame.len() > self.max_bytes || self.max_replies == 0 {
            return;
        }
        self.kept.push_back(id);
        self.bytes += frame.len();
        self.frames.insert(id, frame.to_vec());
        while self.kept.len() > self.max_replies || self.bytes > self.max_bytes {
            let Some(old) = self.kept.pop_front() else { break };
            if let Some(frame) = self.frames.remove(&old) {
                self.bytes -= frame.len();
            }
        }
    }

    /// Requests being carried out.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Bytes of replies kept.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_request_sent_again_is_answered_once() {
        let mut replies = Replies::new(8, 1024);
        assert_eq!(replies.arrive(1), Arrival::New);
        // Sent again while running: the first run's reply will answer it.
        assert_eq!(replies.arrive(1), Arrival::Running);
        replies.answered(1, b"reply-1");
        assert_eq!(replies.arrive(1), Arrival::Answered(b"reply-1".to_vec()));
        assert_eq!(replies.arrive(2), Arrival::New);
        assert_eq!(replies.running(), 1);
    }

    #[test]
    fn old_replies_are_forgotten_within_bounds() {
        let mut replies = Replies::new(2, 10);
        for id in 1..=3 {
            assert_eq!(replies.arrive(id), Arrival::New);
            replies.answered(id, b"abcd");
        }
        // Two kept (count bound); the first is forgotten, not run again.
        assert_eq!(replies.arrive(1), Arrival::Forgotten);
        assert_eq!(replies.arrive(3), Arrival::Answered(b"abcd".to_vec()));
        assert!(replies.bytes() <= 10);
        // A reply larger than the byte bound is not kept at all.
        assert_eq!(replies.arrive(4), Arrival::New);
        replies.answered(4, &[0; 11]);
        assert_eq!(replies.arrive(4), Arrival::Forgotten);
        assert!(replies.bytes() <= 10);
    }

    #[test]
    fn ids_wrap_past_the_top() {
        let mut replies = Replies::new(4, 1024);
        assert_eq!(replies.arrive(u32::MAX - 1), Arrival::New);
        replies.answered(u32::MAX - 1, b"a");
        assert_eq!(replies.arrive(u32::MAX), Arrival::New);
        // The caller skips 0 when it wraps.
        assert_eq!(replies.arrive(1), Arrival::New);
    }

    proptest! {
        /// However a caller's requests are sent again (any prefix of those waiting, after any
        /// number of resumes), each id is carried out at most once, and never after it was
        /// answered while its reply is kept.
        #[test]
        fn each_request_runs_at_most_once(
            plan in proptest::collection::vec((1usize..6, any::<bool>(), 0usize..4), 1..40),
        ) {
            let mut replies = Replies::new(64, 1 << 20);
            let mut next = 1u32;
            let mut waiting: Vec<u32> = Vec::new();
            let mut runs: HashMap<u32, u32> = HashMap::new();
            for (new, answer_first, resend) in plan {
                for _ in 0..new {
                    waiting.push(next);
                    next += 1;
                }
                // The caller sends again the first `resend` of those waiting, then the rest.
                let cut = resend.min(waiting.len());
                let sent: Vec<u32> = waiting[..cut].iter().chain(waiting.iter()).copied().collect();
                for id in sent {
                    if replies.arrive(id) == Arrival::New {
                        *runs.entry(id).or_default() += 1;
                    }
                }
                if answer_first {
                    if let Some(id) = waiting.first().copied() {
                        replies.answered(id, &id.to_le_bytes());
                        waiting.remove(0);
                    }
                }
            }
            prop_assert!(runs.values().all(|n| *n == 1), "{runs:?}");
        }
    }
}
