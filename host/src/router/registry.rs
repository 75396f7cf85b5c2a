//! What a virtual router knows about its producers and data producers: where each lives (its
//! home cell), so consumers elsewhere get it piped, and its real id.
//!
//! The real id equals the virtual id, except for producers made by `pipe_producer_to_router`
//! between virtual routers: mediasoup ids are unique per worker, so the real pipe producer gets
//! a fresh id while the application sees the source's id (mediasoup's `keep_id`). Consumers,
//! observers and dumps translate between the two.

use super::data_producer::{DataProducer, WeakDataProducer};
use super::producer::{Producer, WeakProducer};
use crate::cell::Cell;
use crate::object::{lock, Lost, Member};
use mediasoup::prelude::{DataProducerId, ProducerId};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// A weak handle to a virtual producer or data producer.
pub(crate) trait Registered: Clone {
    /// The strong handle.
    type Strong;
    /// Upgrades to an open object.
    fn live(&self) -> Option<Self::Strong>;
}

impl Registered for WeakProducer {
    type Strong = Producer;
    fn live(&self) -> Option<Producer> {
        self.upgrade().filter(|p| !p.closed())
    }
}

impl Registered for WeakDataProducer {
    type Strong = DataProducer;
    fn live(&self) -> Option<DataProducer> {
        self.upgrade().filter(|p| !p.closed())
    }
}

/// A live registered object.
pub(crate) struct Found<S, I> {
    /// The virtual object.
    pub(crate) object: S,
    /// The cell it lives in.
    pub(crate) home: Arc<Cell>,
    /// Its id in the real router.
    pub(crate) real_id: I,
}

struct Entry<W, I> {
    home: Arc<Cell>,
    weak: W,
    real_id: I,
}

/// Objects of one kind, by virtual id, with the reverse map for differing real ids.
struct Table<W, I> {
    entries: HashMap<I, Entry<W, I>>,
    by_real: HashMap<I, I>,
}

impl<W, I> Default for Table<W, I> {
    fn default() -> Self {
        Self { entries: HashMap::new(), by_real: HashMap::new() }
    }
}

impl<W: Registered, I: Copy + Eq + Hash> Table<W, I> {
    fn add(&mut self, id: I, real_id: I, home: &Arc<Cell>, weak: W) -> bool {
        if self.entries.get(&id).is_some_and(|e| e.weak.live().is_some()) {
            return false;
        }
        if real_id != id {
            self.by_real.insert(real_id, id);
        }
        self.entries.insert(id, Entry { home: Arc::clone(home), weak, real_id });
        true
    }

    fn remove(&mut self, id: &I) {
        if let Some(entry) = self.entries.remove(id) {
            self.by_real.remove(&entry.real_id);
        }
    }

    fn find(&self, id: &I) -> Option<Found<W::Strong, I>> {
        let entry = self.entries.get(id)?;
        let object = entry.weak.live()?;
        Some(Found { object, home: Arc::clone(&entry.home), real_id: entry.real_id })
    }

    fn virtual_id(&self, real_id: &I) -> I {
        self.by_real.get(real_id).copied().unwrap_or(*real_id)
    }
}

/// The virtual router's registry.
#[derive(Default)]
pub(crate) struct Registry {
    producers: Mutex<Table<WeakProducer, ProducerId>>,
    data_producers: Mutex<Table<WeakDataProducer, DataProducerId>>,
    members: Mutex<Vec<Weak<dyn Member>>>,
}

impl Registry {
    /// Records a producer living in `home` as `real_id`; false if its id is taken.
    pub(crate) fn add_producer(&self, producer: &Producer, home: &Arc<Cell>, real_id: ProducerId) -> bool {
        lock(&self.producers).add(producer.id(), real_id, home, producer.downgrade())
    }

    /// Forgets a producer.
    pub(crate) fn remove_producer(&self, id: &ProducerId) {
        lock(&self.producers).remove(id);
    }

    /// A live producer, its home cell and real id.
    pub(crate) fn producer(&self, id: &ProducerId) -> Option<Found<Producer, ProducerId>> {
        lock(&self.producers).find(id)
    }

    /// The virtual id of the producer whose real id is `real_id`.
    pub(crate) fn producer_id_of_real(&self, real_id: &ProducerId) -> ProducerId {
        lock(&self.producers).virtual_id(real_id)
    }

    /// The live producer whose real id is `real_id`.
    pub(crate) fn producer_by_real(&self, real_id: &ProducerId) -> Option<Producer> {
        let id = self.producer_id_of_real(real_id);
        self.producer(&id).map(|found| found.object)
    }

    /// Records a data producer living in `home` as `real_id`; false if its id is taken.
    pub(crate) fn add_data_producer(
        &self,
        data_producer: &DataProducer,
        home: &Arc<Cell>,
        real_id: DataProducerId,
    ) -> bool {
        lock(&self.data_producers).add(data_producer.id(), real_id, home, data_producer.downgrade())
    }

    /// Forgets a data producer.
    pub(crate) fn remove_data_producer(&self, id: &DataProducerId) {
        lock(&self.data_producers).remove(id);
    }

    /// A live data producer, its home cell and real id.
    pub(crate) fn data_producer(&self, id: &DataProducerId) -> Option<Found<DataProducer, DataProducerId>> {
        lock(&self.data_producers).find(id)
    }

    /// The virtual id of the data producer whose real id is `real_id`.
    pub(crate) fn data_producer_id_of_real(&self, real_id: &DataProducerId) -> DataProducerId {
        lock(&self.data_producers).virtual_id(real_id)
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
