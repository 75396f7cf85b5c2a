//! What a virtual router knows about its producers, data producers and transports: where each
//! producer lives (its home cell), so consumers elsewhere can have it piped, and which objects
//! to close when the router closes.

use super::data_producer::{DataProducer, WeakDataProducer};
use super::producer::{Producer, WeakProducer};
use crate::cell::Cell;
use crate::object::{lock, Lost, Member};
use mediasoup::prelude::{DataProducerId, ProducerId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A registered producer and its home cell.
#[derive(Debug, Clone)]
pub(crate) struct Homed<W> {
    pub(crate) home: Arc<Cell>,
    pub(crate) weak: W,
}

/// The virtual router's registry.
#[derive(Default)]
pub(crate) struct Registry {
    producers: Mutex<HashMap<ProducerId, Homed<WeakProducer>>>,
    data_producers: Mutex<HashMap<DataProducerId, Homed<WeakDataProducer>>>,
    members: Mutex<Vec<Weak<dyn Member>>>,
}

impl Registry {
    /// Records a producer; false if the id is taken by a live producer.
    pub(crate) fn add_producer(&self, producer: &Producer, home: &Arc<Cell>) -> bool {
        let mut map = lock(&self.producers);
        if map.get(&producer.id()).is_some_and(|h| h.weak.upgrade().is_some()) {
            return false;
        }
        map.insert(producer.id(), Homed { home: Arc::clone(home), weak: producer.downgrade() });
        true
    }

    /// True when a live producer has this id.
    pub(crate) fn has_producer(&self, id: &ProducerId) -> bool {
        self.producer(id).is_some()
    }

    /// Forgets a producer.
    pub(crate) fn remove_producer(&self, id: &ProducerId) {
        lock(&self.producers).remove(id);
    }

    /// A live producer and its home cell.
    pub(crate) fn producer_homed(&self, id: &ProducerId) -> Option<(Producer, Arc<Cell>)> {
        let map = lock(&self.producers);
        let homed = map.get(id)?;
        let producer = homed.weak.upgrade().filter(|p| !p.closed())?;
        Some((producer, Arc::clone(&homed.home)))
    }

    /// A live producer.
    pub(crate) fn producer(&self, id: &ProducerId) -> Option<Producer> {
        self.producer_homed(id).map(|(p, _)| p)
    }

    /// Records a data producer; false if the id is taken by a live one.
    pub(crate) fn add_data_producer(&self, data_producer: &DataProducer, home: &Arc<Cell>) -> bool {
        let mut map = lock(&self.data_producers);
        if map.get(&data_producer.id()).is_some_and(|h| h.weak.upgrade().is_some()) {
            return false;
        }
        map.insert(data_producer.id(), Homed { home: Arc::clone(home), weak: data_producer.downgrade() });
        true
    }

    /// Forgets a data producer.
    pub(crate) fn remove_data_producer(&self, id: &DataProducerId) {
        lock(&self.data_producers).remove(id);
    }

    /// A live data producer and its home cell.
    pub(crate) fn data_producer_homed(&self, id: &DataProducerId) -> Option<(DataProducer, Arc<Cell>)> {
        let map = lock(&self.data_producers);
        let homed = map.get(id)?;
        let data_producer = homed.weak.upgrade().filter(|p| !p.closed())?;
        Some((data_producer, Arc::clone(&homed.home)))
    }

    /// Registers an object (transport, observer) to close with the router.
    pub(crate) fn join(&self, member: Weak<dyn Member>) {
        let mut members = lock(&self.members);
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
    }

    /// Closes every registered object (the router closed under them).
    pub(crate) fn close_all(&self) {
        let members = std::mem::take(&mut *lock(&self.members));
        let mut lost = Lost::default();
        for member in members.iter().filter_map(Weak::upgrade) {
            member.detach(&mut lost);
        }
    }
}
