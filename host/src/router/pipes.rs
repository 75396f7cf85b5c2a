//! Ref-counted pipes: a producer (or data producer) made available in another cell of the same
//! virtual router. One pipe per (producer, cell), shared by every user there (consumers,
//! observers), created once even under concurrent demand and torn down when the last user
//! lets go or either cell closes.

use super::dump::Internal;
use crate::cell::Cell;
use crate::object::{lock, Lost, Member};
use crate::placement::CellId;
use crate::router::real_routers::RouterUse;
use mediasoup::prelude::{DataProducerId, ProducerId};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, Weak};

/// What is piped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipeSource {
    /// A media producer.
    Producer(ProducerId),
    /// A data producer.
    DataProducer(DataProducerId),
}

/// The real objects making one pipe.
#[derive(Debug)]
pub(crate) enum PipeEnds {
    /// Pipe consumer in the source cell, pipe producer (same id) in the target cell.
    Media {
        /// Sending half.
        consumer: mediasoup::consumer::Consumer,
        /// Receiving half.
        producer: mediasoup::producer::Producer,
    },
    /// The same for data producers.
    Data {
        /// Sending half.
        consumer: mediasoup::data_consumer::DataConsumer,
        /// Receiving half.
        producer: mediasoup::data_producer::DataProducer,
    },
}

/// Everything a live pipe holds open.
#[derive(Debug)]
pub(crate) struct PipeParts {
    /// The real ends.
    pub(crate) ends: PipeEnds,
    /// The real routers at both ends (kept open while the pipe lives).
    pub(crate) _uses: (RouterUse, RouterUse),
}

type Key = (PipeSource, CellId);

/// One pipe; a member of both its cells.
#[derive(Debug)]
pub(crate) struct Pipe {
    key: Key,
    parts: Mutex<Option<PipeParts>>,
    registry: Weak<Shared>,
}

impl Pipe {
    /// Tears the pipe down (dropping the real ends closes them).
    fn close(&self) -> bool {
        let parts = lock(&self.parts).take();
        parts.is_some()
    }

    /// True while the pipe's real ends are open.
    pub(crate) fn is_open(&self) -> bool {
        lock(&self.parts).is_some()
    }
}

impl Member for Pipe {
    fn detach(&self, _lost: &mut Lost) {
        if let Some(shared) = self.registry.upgrade() {
            let mut slots = lock(&shared.slots);
            let ours =
                slots.get(&self.key).and_then(|s| s.pipe.get()).is_some_and(|p| std::ptr::eq(Arc::as_ptr(p), self));
            if ours {
                slots.remove(&self.key);
            }
        }
        self.close();
    }
}

#[derive(Debug, Default)]
struct Slot {
    users: Mutex<usize>,
    pipe: tokio::sync::OnceCell<Arc<Pipe>>,
}

#[derive(Debug, Default)]
struct Shared {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
}

/// A user's hold on a pipe; dropping the last one tears the pipe down.
#[derive(Debug)]
pub(crate) struct PipeLease {
    key: Key,
    slot: Arc<Slot>,
    registry: Weak<Shared>,
}

impl Drop for PipeLease {
    fn drop(&mut self) {
        let Some(shared) = self.registry.upgrade() else {
            return;
        };
        let last = {
            let mut slots = lock(&shared.slots);
            let mut users = lock(&self.slot.users);
            *users -= 1;
            let last = *users == 0;
            if last && slots.get(&self.key).is_some_and(|s| Arc::ptr_eq(s, &self.slot)) {
                slots.remove(&self.key);
            }
            last
        };
        if last {
            if let Some(pipe) = self.slot.pipe.get() {
                pipe.close();
            }
        }
    }
}

/// The pipes of one virtual router.
#[derive(Debug, Default)]
pub(crate) struct PipeRegistry {
    shared: Arc<Shared>,
}

impl PipeRegistry {
    /// A hold on the pipe of `source` into `target`, made by `create` if there is none yet (a
    /// new pipe joins `cells`, its two ends). Concurrent callers for the same pipe wait for one
    /// creation.
    pub(crate) async fn acquire<E, F, Fut>(
        &self,
        source: PipeSource,
        target: CellId,
        cells: [&Arc<Cell>; 2],
        create: F,
    ) -> Result<PipeLease, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PipeParts, E>>,
    {
        let key = (source, target);
        let slot = {
            let mut slots = lock(&self.shared.slots);
            let slot = Arc::clone(slots.entry(key).or_default());
            *lock(&slot.users) += 1;
            slot
        };
        // From here on, dropping the lease (also on error) releases our use.
        let lease = PipeLease { key, slot, registry: Arc::downgrade(&self.shared) };
        let registry = Arc::downgrade(&self.shared);
        lease
            .slot
            .pipe
            .get_or_try_init(|| async move {
                let parts = create().await?;
                let pipe = Arc::new(Pipe { key, parts: Mutex::new(Some(parts)), registry });
                for cell in cells {
                    let member: Weak<dyn Member> = Arc::downgrade(&pipe) as Weak<Pipe>;
                    cell.join(member);
                }
                Ok(pipe)
            })
            .await?;
        Ok(lease)
    }

    /// Open pipes: (source, target cell).
    pub(crate) fn open(&self) -> Vec<(PipeSource, CellId)> {
        let slots = lock(&self.shared.slots);
        slots.iter().filter(|(_, slot)| slot.pipe.get().is_some_and(|p| p.is_open())).map(|(key, _)| *key).collect()
    }

    /// Ids of the pipes' real objects (hidden from the merged dump).
    pub(crate) fn internal_ids(&self) -> Internal {
        let pipes: Vec<Arc<Pipe>> = lock(&self.shared.slots).values().filter_map(|s| s.pipe.get().cloned()).collect();
        let mut internal = Internal::default();
        for pipe in pipes {
            if let Some(parts) = lock(&pipe.parts).as_ref() {
                let (consumer, transports) = match &parts.ends {
                    PipeEnds::Media { consumer, producer } => {
                        (consumer.id().to_string(), [consumer.transport().id(), producer.transport().id()])
                    }
                    PipeEnds::Data { consumer, producer } => {
                        (consumer.id().to_string(), [consumer.transport().id(), producer.transport().id()])
                    }
                };
                internal.consumers.insert(consumer);
                internal.transports.extend(transports.iter().map(ToString::to_string));
            }
        }
        internal
    }

    /// Tears every pipe down (the virtual router closed).
    pub(crate) fn clear(&self) {
        let slots: Vec<Arc<Slot>> = lock(&self.shared.slots).drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Some(pipe) = slot.pipe.get() {
                pipe.close();
            }
        }
    }
}
