//! Where a caller's events go, sans-IO: each handle's sink, and the events that arrive for a
//! handle before its sink (a host raises an object's first events before its `Created` reply,
//! on the same ordered stream), held until the sink registers, in order, within bounds.

use crate::cluster::proto::Handle;
use std::collections::{HashMap, HashSet, VecDeque};

/// Events held for a handle without a sink yet, at most (the oldest go first).
pub const HELD_PER_HANDLE: usize = 64;
/// Events held for all such handles, at most (the handle held longest goes first).
pub const HELD_IN_ALL: usize = 1024;
/// Handles remembered as forgotten (their late events are dropped, not held).
const FORGOTTEN_KEPT: usize = 4096;

/// Each handle's sink and the events held for handles without one.
#[derive(Debug)]
pub struct Routes<S, E> {
    sinks: HashMap<Handle, S>,
    held: HashMap<Handle, VecDeque<E>>,
    held_order: VecDeque<Handle>,
    held_count: usize,
    forgotten: HashSet<Handle>,
    forgotten_order: VecDeque<Handle>,
}

impl<S: Clone, E> Default for Routes<S, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone, E> Routes<S, E> {
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            sinks: HashMap::new(),
            held: HashMap::new(),
            held_order: VecDeque::new(),
            held_count: 0,
            forgotten: HashSet::new(),
            forgotten_order: VecDeque::new(),
        }
    }

    /// An event for `handle`: its sink if it has one (deliver), else it is held (or dropped,
    /// for a handle that was forgotten).
    pub fn route(&mut self, handle: Handle, event: E) -> Option<(S, E)> {
        if let Some(sink) = self.sinks.get(&handle) {
            return Some((sink.clone(), event));
        }
        if self.forgotten.contains(&handle) {
            return None;
        }
        let queue = self.held.entry(handle).or_insert_with(|| {
            self.held_order.push_back(handle);
            VecDeque::new()
        });
        queue.push_back(event);
        self.held_count += 1;
        if queue.len() > HELD_PER_HANDLE {
            queue.pop_front();
            self.held_count -= 1;
        }
        while self.held_count > HELD_IN_ALL {
            let Some(oldest) = self.held_order.pop_front() else { break };
            if let Some(queue) = self.held.remove(&oldest) {
                self.held_count -= queue.len();
            }
        }
        None
    }

    /// Routes `handle`'s events to `sink` — unless events are held for it: then those are
    /// returned (to deliver, in order) and the caller registers again, so events that arrive
    /// meanwhile are held behind them instead of overtaking them.
    pub fn register(&mut self, handle: Handle, sink: S) -> Result<(), Vec<E>> {
        if let Some(queue) = self.held.remove(&handle) {
            self.held_order.retain(|h| *h != handle);
            self.held_count -= queue.len();
            if !queue.is_empty() {
                return Err(queue.into());
            }
        }
        self.forgotten.remove(&handle);
        self.sinks.insert(handle, sink);
        Ok(())
    }

    /// Stops routing `handle`'s events (later ones are dropped).
    pub fn forget(&mut self, handle: Handle) {
        self.sinks.remove(&handle);
        if let Some(queue) = self.held.remove(&handle) {
            self.held_order.retain(|h| *h != handle);
            self.held_count -= queue.len();
        }
        if self.forgotten.insert(handle) {
            self.forgotten_order.push_back(handle);
            if self.forgotten_order.len() > FORGOTTEN_KEPT {
                if let Some(old) = self.forgotten_order.pop_front() {
                    self.forgotten.remove(&old);
                }
            }
        }
    }

    /// Every sink, removed (the host is lost); held events are dropped.
    pub fn drain(&mut self) -> Vec<S> {
        self.held.clear();
        self.held_order.clear();
        self.held_count = 0;
        self.sinks.drain().map(|(_, s)| s).collect()
    }

    /// Events held now.
    pub fn held(&self) -> usize {
        self.held_count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_before_the_sink_are_delivered_first_and_in_order() {
        let mut routes = Routes::<&str, u32>::new();
        assert!(routes.route(5, 1).is_none(), "held: no sink yet");
        assert!(routes.route(5, 2).is_none());
        assert_eq!(routes.register(5, "sink"), Err(vec![1, 2]), "held events come back first");
        // One more arrived while those were delivered: held behind them.
        assert!(routes.route(5, 3).is_none());
        assert_eq!(routes.register(5, "sink"), Err(vec![3]));
        assert_eq!(routes.register(5, "sink"), Ok(()));
        assert_eq!(routes.route(5, 4), Some(("sink", 4)));
        assert_eq!(routes.held(), 0);
    }

    #[test]
    fn held_events_are_bounded_and_forgotten_handles_hold_nothing() {
        let mut routes = Routes::<(), u32>::new();
        for n in 0..(HELD_PER_HANDLE as u32 + 10) {
            routes.route(1, n);
        }
        assert_eq!(routes.held(), HELD_PER_HANDLE);
        for handle in 2..100 {
            for n in 0..HELD_PER_HANDLE as u32 {
                routes.route(handle, n);
            }
        }
        assert!(routes.held() <= HELD_IN_ALL);
        assert_eq!(routes.register(1, ()), Ok(()), "the oldest handle's events went first");
        routes.forget(7);
        assert!(routes.route(7, 1).is_none());
        assert_eq!(routes.register(200, ()), Ok(()));
        let before = routes.held();
        routes.route(7, 2);
        assert_eq!(routes.held(), before, "a forgotten handle's late event is dropped");
    }
}
