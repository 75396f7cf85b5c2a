//! One cell's ledger: every flow of packets it carries (a consumer or pipe consumer forwarding,
//! a producer or pipe producer receiving, a data object), every transport with its fan-out
//! prior, every placement decision not created yet; and their running sum, the cell's [`Load`],
//! which placement reads in constant time. Entries are RAII tickets: dropping one takes it out.
//! Each sample re-adds everything at the producers' current rates (sums do not drift) and lets
//! the transports' priors fade.

use super::{Kind, Load, Rate};
use crate::internals::object::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What a flow does with its producer's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Sends them on (a consumer, a pipe consumer).
    Forward,
    /// Takes them in (a producer, a pipe producer).
    Receive,
}

#[derive(Debug)]
struct Flow {
    rate: Arc<Rate>,
    role: Role,
    transport: Option<u64>,
    /// Packets per second counted for it now.
    pps: f64,
}

/// A transport's expectation.
#[derive(Debug, Default)]
struct Tx {
    /// Packets per second it is expected to forward, by kind.
    prior: [f64; 2],
    /// Packets per second its consumers forward, by kind.
    actual: [f64; 2],
}

impl Tx {
    fn expects(&self) -> [f64; 2] {
        [(self.prior[0] - self.actual[0]).max(0.0), (self.prior[1] - self.actual[1]).max(0.0)]
    }
}

/// `into += sign × amount`, by kind.
fn add(into: &mut [f64; 2], amount: [f64; 2], sign: f64) {
    for (value, delta) in into.iter_mut().zip(amount) {
        *value += sign * delta;
    }
}

#[derive(Debug, Default)]
struct Book {
    next: u64,
    flows: HashMap<u64, Flow>,
    transports: HashMap<u64, Tx>,
    /// Priors of decisions whose transport does not exist yet.
    reserved: [f64; 2],
    load: Load,
}

impl Book {
    fn key(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Changes transport `id` with `change`, keeping `load.expected` in step.
    fn with_tx(&mut self, id: u64, change: impl FnOnce(&mut Tx)) {
        if let Some(tx) = self.transports.get_mut(&id) {
            let before = tx.expects();
            change(tx);
            add(&mut self.load.expected, before, -1.0);
            add(&mut self.load.expected, tx.expects(), 1.0);
        }
    }

    /// Adds (`sign` 1) or takes out (`sign` -1) a flow's packets.
    fn count(&mut self, role: Role, kind: Kind, transport: Option<u64>, pps: f64, sign: f64) {
        let k = kind as usize;
        match role {
            Role::Forward => {
                self.load.forwarded[k] += sign * pps;
                if let Some(id) = transport {
                    self.with_tx(id, |tx| tx.actual[k] += sign * pps);
                }
            }
            Role::Receive => self.load.received[k] += sign * pps,
        }
    }
}

/// A cell's ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    book: Mutex<Book>,
}

/// A flow or data object counted in a ledger until dropped.
#[derive(Debug)]
pub struct LoadTicket {
    ledger: Arc<Ledger>,
    /// The flow's key; `None` for a data object.
    flow: Option<u64>,
}

impl Drop for LoadTicket {
    fn drop(&mut self) {
        let mut book = lock(&self.ledger.book);
        match self.flow {
            Some(key) => {
                if let Some(flow) = book.flows.remove(&key) {
                    book.count(flow.role, flow.rate.kind(), flow.transport, flow.pps, -1.0);
                }
            }
            None => book.load.data_objects = book.load.data_objects.saturating_sub(1),
        }
    }
}

/// A placement decision's prior, counted until its transport exists (or the decision is
/// abandoned: dropped).
#[derive(Debug)]
pub struct Reservation {
    /// `None` once moved into its transport.
    ledger: Option<Arc<Ledger>>,
    prior: [f64; 2],
}

impl Reservation {
    /// The transport exists: its prior moves to it (in one step: the cell's expected load does
    /// not dip meanwhile).
    pub fn into_transport(mut self) -> TransportLoad {
        let Some(ledger) = self.ledger.take() else { unreachable!("a reservation moves once, by value") };
        let mut book = lock(&ledger.book);
        add(&mut book.reserved, self.prior, -1.0);
        let id = book.key();
        book.transports.insert(id, Tx { prior: self.prior, actual: [0.0; 2] });
        book.load.transports += 1;
        drop(book);
        TransportLoad { ledger, id }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(ledger) = &self.ledger {
            let mut book = lock(&ledger.book);
            add(&mut book.reserved, self.prior, -1.0);
            add(&mut book.load.expected, self.prior, -1.0);
        }
    }
}

/// A transport counted in a ledger until dropped.
#[derive(Debug)]
pub struct TransportLoad {
    ledger: Arc<Ledger>,
    id: u64,
}

impl TransportLoad {
    /// The key its consumers and producers name.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for TransportLoad {
    fn drop(&mut self) {
        let mut book = lock(&self.ledger.book);
        if let Some(tx) = book.transports.remove(&self.id) {
            add(&mut book.load.expected, tx.expects(), -1.0);
        }
        book.load.transports = book.load.transports.saturating_sub(1);
    }
}

impl Ledger {
    /// What the cell carries now.
    pub fn load(&self) -> Load {
        let load = lock(&self.book).load;
        // Running sums may dip a hair below zero; what is not there costs nothing.
        Load {
            forwarded: load.forwarded.map(|v| v.max(0.0)),
            received: load.received.map(|v| v.max(0.0)),
            expected: load.expected.map(|v| v.max(0.0)),
            ..load
        }
    }

    /// Entries of the book: flows, transports, data objects, and every packet rate it sums
    /// (carried, received, expected, reserved; absolute values) in thousandths of a packet per
    /// second ([`crate::host::Host::footprint`]).
    pub(crate) fn entries(&self) -> (usize, usize, u32, u64) {
        let book = lock(&self.book);
        let rates = [book.load.forwarded, book.load.received, book.load.expected, book.reserved];
        let milli = rates.iter().flatten().map(|v| (v.abs() * 1000.0).round() as u64).sum();
        (book.flows.len(), book.transports.len(), book.load.data_objects, milli)
    }

    /// Counts a decision's `prior` (packets per second by kind) until its transport exists.
    pub fn reserve(self: &Arc<Self>, prior: [f64; 2]) -> Reservation {
        let mut book = lock(&self.book);
        add(&mut book.reserved, prior, 1.0);
        add(&mut book.load.expected, prior, 1.0);
        Reservation { ledger: Some(Arc::clone(self)), prior }
    }

    /// Counts a transport expecting to forward `prior`.
    pub fn transport(self: &Arc<Self>, prior: [f64; 2]) -> TransportLoad {
        let mut book = lock(&self.book);
        let id = book.key();
        let tx = Tx { prior, actual: [0.0; 2] };
        add(&mut book.load.expected, tx.expects(), 1.0);
        book.transports.insert(id, tx);
        book.load.transports += 1;
        TransportLoad { ledger: Arc::clone(self), id }
    }

    /// Counts a consumer (of `transport`, if it is one) or a pipe consumer forwarding `rate`.
    pub fn forward(self: &Arc<Self>, rate: &Arc<Rate>, transport: Option<u64>) -> LoadTicket {
        self.flow(rate, Role::Forward, transport)
    }

    /// Counts a producer (of `transport`, if it is one) or a pipe producer receiving `rate`. A
    /// transport that produces before it consumes is a sending one: it expects nothing more.
    pub fn receive(self: &Arc<Self>, rate: &Arc<Rate>, transport: Option<u64>) -> LoadTicket {
        if let Some(id) = transport {
            let mut book = lock(&self.book);
            book.with_tx(id, |tx| {
                if tx.actual == [0.0; 2] {
                    tx.prior = [0.0; 2];
                }
            });
        }
        self.flow(rate, Role::Receive, None)
    }

    /// Counts a data producer, data consumer or observer.
    pub fn data(self: &Arc<Self>) -> LoadTicket {
        lock(&self.book).load.data_objects += 1;
        LoadTicket { ledger: Arc::clone(self), flow: None }
    }

    fn flow(self: &Arc<Self>, rate: &Arc<Rate>, role: Role, transport: Option<u64>) -> LoadTicket {
        let pps = match role {
            Role::Forward => rate.pps().forwarded,
            Role::Receive => rate.pps().received,
        };
        let mut book = lock(&self.book);
        let key = book.key();
        book.count(role, rate.kind(), transport, pps, 1.0);
        book.flows.insert(key, Flow { rate: Arc::clone(rate), role, transport, pps });
        LoadTicket { ledger: Arc::clone(self), flow: Some(key) }
    }

    /// Re-counts every flow at its producer's current rate and multiplies every transport's
    /// prior by `fade` (a sample's share of the prior's half-life).
    pub fn refresh(&self, fade: f64) {
        let mut book = lock(&self.book);
        let book = &mut *book;
        let mut load =
            Load { transports: book.load.transports, data_objects: book.load.data_objects, ..Load::default() };
        for tx in book.transports.values_mut() {
            tx.actual = [0.0; 2];
            tx.prior = tx.prior.map(|p| p * fade);
        }
        for flow in book.flows.values_mut() {
            let pps = flow.rate.pps();
            flow.pps = match flow.role {
                Role::Forward => pps.forwarded,
                Role::Receive => pps.received,
            };
            let k = flow.rate.kind() as usize;
            match flow.role {
                Role::Forward => {
                    load.forwarded[k] += flow.pps;
                    if let Some(tx) = flow.transport.and_then(|id| book.transports.get_mut(&id)) {
                        tx.actual[k] += flow.pps;
                    }
                }
                Role::Receive => load.received[k] += flow.pps,
            }
        }
        load.expected = book.reserved;
        for tx in book.transports.values() {
            add(&mut load.expected, tx.expects(), 1.0);
        }
        book.load = load;
    }
}

#[cfg(test)]
mod tests {
    use super::super::Pps;
    use super::*;

    fn audio() -> Arc<Rate> {
        Rate::new(Kind::Audio)
    }

    #[test]
    fn a_prior_follows_the_decision_into_its_transport_and_is_used_up_by_its_consumers() {
        let ledger = Arc::new(Ledger::default());
        let producers: Vec<Arc<Rate>> = (0..4).map(|_| audio()).collect();
        let prior = [200.0, 0.0]; // four audio producers at 50 packets/s
        let reservation = ledger.reserve(prior);
        assert_eq!(ledger.load().expected, prior, "a decision counts at once");
        let transport = reservation.into_transport();
        assert_eq!(ledger.load().expected, prior, "and moves with its transport");
        assert_eq!(ledger.load().transports, 1);
        let consumers: Vec<LoadTicket> = producers.iter().map(|p| ledger.forward(p, Some(transport.id()))).collect();
        let load = ledger.load();
        assert_eq!(load.forwarded, [200.0, 0.0]);
        assert_eq!(load.expected, [0.0, 0.0], "consumed: nothing more expected");
        drop(consumers);
        assert_eq!(ledger.load().expected, prior, "consumers gone: the transport expects again");
        drop(transport);
        assert_eq!(ledger.load(), Load::default());
    }

    #[test]
    fn an_abandoned_decision_and_a_sending_transport_expect_nothing() {
        let ledger = Arc::new(Ledger::default());
        drop(ledger.reserve([100.0, 140.0]));
        assert_eq!(ledger.load(), Load::default());
        let transport = ledger.reserve([100.0, 140.0]).into_transport();
        let producer = audio();
        let _produces = ledger.receive(&producer, Some(transport.id()));
        let load = ledger.load();
        assert_eq!(load.expected, [0.0, 0.0], "produced before consuming: a send transport");
        assert_eq!(load.received, [50.0, 0.0]);
    }

    #[test]
    fn a_refresh_prices_flows_at_current_rates_and_fades_priors() {
        let ledger = Arc::new(Ledger::default());
        let producer = audio();
        let transport = ledger.transport([100.0, 0.0]);
        let _consumer = ledger.forward(&producer, Some(transport.id()));
        assert_eq!(ledger.load().expected, [50.0, 0.0]);
        producer.record(Pps { received: 20.0, forwarded: 20.0 });
        ledger.refresh(0.5);
        let load = ledger.load();
        assert_eq!(load.forwarded, [20.0, 0.0], "re-priced at the measured rate");
        assert_eq!(load.expected, [30.0, 0.0], "prior 100 faded to 50, 20 of it forwarded");
        let _data = ledger.data();
        assert_eq!(ledger.load().data_objects, 1);
    }
}
