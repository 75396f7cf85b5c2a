//! The close state and close-type events shared by producers, consumers, data producers and
//! data consumers: `on_close`, `on_transport_close` and, for consumers, the close of their
//! source (`on_producer_close` / `on_data_producer_close`), fired in mediasoup's order and once.

use crate::internals::object::on_close_handler;
use event_listener_primitives::{BagOnce, HandlerId};
use std::sync::atomic::{AtomicBool, Ordering};

type OnceBag = BagOnce<Box<dyn FnOnce() + Send>>;

/// Close state of one object.
#[derive(Default)]
pub(crate) struct Lifecycle {
    closed: AtomicBool,
    close: OnceBag,
    transport_close: OnceBag,
    source_close: OnceBag,
}

impl Lifecycle {
    /// Whether the object is closed.
    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Closes: fires `on_close` once. True when this call closed the object.
    pub(crate) fn close(&self) -> bool {
        let closing = !self.closed.swap(true, Ordering::AcqRel);
        if closing {
            self.close.call_simple();
        }
        closing
    }

    /// The transport went: fires `on_transport_close`, then `on_close`. True when this call
    /// closed (the first close wins: a transport and a producer closing at once on two threads
    /// fire one reason, as mediasoup does).
    pub(crate) fn transport_closed(&self) -> bool {
        self.close_because(&self.transport_close)
    }

    /// The source (producer / data producer) went: fires its close event, then `on_close`.
    pub(crate) fn source_closed(&self) -> bool {
        self.close_because(&self.source_close)
    }

    fn close_because(&self, reason: &OnceBag) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        reason.call_simple();
        self.close.call_simple();
        true
    }

    /// `on_close`: called at once when already closed (as mediasoup does).
    pub(crate) fn on_close(&self, callback: Box<dyn FnOnce() + Send>) -> HandlerId {
        on_close_handler(&self.close, self.closed(), callback)
    }

    /// `on_transport_close`.
    pub(crate) fn on_transport_close(&self, callback: Box<dyn FnOnce() + Send>) -> HandlerId {
        self.transport_close.add(callback)
    }

    /// `on_producer_close` / `on_data_producer_close`.
    pub(crate) fn on_source_close(&self, callback: Box<dyn FnOnce() + Send>) -> HandlerId {
        self.source_close.add(callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn recorder(log: &Arc<Mutex<Vec<&'static str>>>, name: &'static str) -> Box<dyn FnOnce() + Send> {
        let log = Arc::clone(log);
        Box::new(move || log.lock().unwrap().push(name))
    }

    #[test]
    fn two_reasons_racing_fire_one() {
        for _ in 0..200 {
            let life = Arc::new(Lifecycle::default());
            let log = Arc::new(Mutex::new(Vec::new()));
            life.on_transport_close(recorder(&log, "transport")).detach();
            life.on_source_close(recorder(&log, "source")).detach();
            life.on_close(recorder(&log, "close")).detach();
            let other = Arc::clone(&life);
            let racer = std::thread::spawn(move || other.source_closed());
            let here = life.transport_closed();
            let there = racer.join().unwrap();
            assert!(here ^ there, "exactly one call closed");
            let log = log.lock().unwrap();
            assert_eq!(log.len(), 2, "one reason, then close: {log:?}");
            assert_eq!(log[1], "close");
        }
    }

    #[test]
    fn events_fire_in_mediasoup_order_and_once() {
        let life = Lifecycle::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        life.on_close(recorder(&log, "close")).detach();
        life.on_transport_close(recorder(&log, "transport")).detach();
        life.on_source_close(recorder(&log, "source")).detach();
        assert!(life.transport_closed());
        assert!(!life.source_closed());
        assert!(!life.close());
        assert_eq!(*log.lock().unwrap(), vec!["transport", "close"]);
        // Registering on a closed object runs the close callback at once.
        life.on_close(recorder(&log, "late")).detach();
        assert_eq!(log.lock().unwrap().last(), Some(&"late"));
    }
}
