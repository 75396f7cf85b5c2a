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

    /// The transport went: fires `on_transport_close`, then closes. True when this call closed.
    pub(crate) fn transport_closed(&self) -> bool {
        if self.closed() {
            return false;
        }
        self.transport_close.call_simple();
        self.close()
    }

    /// The source (producer / data producer) went: fires its close event, then closes.
    pub(crate) fn source_closed(&self) -> bool {
        if self.closed() {
            return false;
        }
        self.source_close.call_simple();
        self.close()
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
