//! Dumps of virtual objects built from the real ones: `Router::dump()` merges the real routers'
//! dumps into mediasoup's dump shape, without the internal pipes the host made between cells; a
//! producer piped into another cell has another id there (ids are unique per worker), and its
//! consumers there are listed under the producer's own id.
//!
//! mediasoup's dump types cannot be built outside mediasoup (`#[non_exhaustive]`); they are
//! rebuilt here through serde from mirror structs with the same fields in the same order.

use mediasoup::consumer::ConsumerId;
use mediasoup::data_consumer::DataConsumerId;
use mediasoup::data_producer::DataProducerId;
use mediasoup::prelude::TransportId;
use mediasoup::producer::ProducerId;
use mediasoup::router::{RouterDump, RouterId};
use mediasoup::rtp_observer::RtpObserverId;
use mediasoup::worker::RequestError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Builds a `T` from a mirror with the same fields in the same order (postcard encodes fields
/// by position, so the two must agree; the unit tests round-trip real dumps).
pub(crate) fn rebuild<M: Serialize, T: DeserializeOwned>(mirror: &M) -> Result<T, RequestError> {
    let bytes = postcard::to_stdvec(mirror).map_err(|e| RequestError::ResponseConversion(Box::new(e)))?;
    postcard::from_bytes(&bytes).map_err(|e| RequestError::ResponseConversion(Box::new(e)))
}

/// The internal pipe objects: hidden from the merged dump, their producers renamed.
#[derive(Debug, Default)]
pub(crate) struct Internal {
    /// Pipe transports.
    pub(crate) transports: HashSet<TransportId>,
    /// Pipe consumers.
    pub(crate) consumers: HashSet<ConsumerId>,
    /// Pipe data consumers.
    pub(crate) data_consumers: HashSet<DataConsumerId>,
    /// Pipe producers → their sources.
    pub(crate) producers: HashMap<ProducerId, ProducerId>,
    /// Pipe data producers → their sources.
    pub(crate) data_producers: HashMap<DataProducerId, DataProducerId>,
}

impl Internal {
    fn producer(&self, id: ProducerId) -> ProducerId {
        self.producers.get(&id).copied().unwrap_or(id)
    }

    fn data_producer(&self, id: DataProducerId) -> DataProducerId {
        self.data_producers.get(&id).copied().unwrap_or(id)
    }
}

/// Merges the real routers' dumps into the dump of virtual router `id`.
pub(crate) fn merge(id: RouterId, dumps: &[RouterDump], internal: &Internal) -> Result<RouterDump, RequestError> {
    let mut out = RouterDumpPlain {
        id,
        map_consumer_id_producer_id: BTreeMap::new(),
        map_data_consumer_id_data_producer_id: BTreeMap::new(),
        map_data_producer_id_data_consumer_ids: BTreeMap::new(),
        map_producer_id_consumer_ids: BTreeMap::new(),
        map_producer_id_observer_ids: BTreeMap::new(),
        rtp_observer_ids: BTreeSet::new(),
        transport_ids: BTreeSet::new(),
    };
    for dump in dumps {
        out.transport_ids.extend(dump.transport_ids.iter().filter(|t| !internal.transports.contains(t)));
        out.rtp_observer_ids.extend(dump.rtp_observer_ids.iter().copied());
        for (consumer, producer) in &dump.map_consumer_id_producer_id {
            if !internal.consumers.contains(consumer) {
                out.map_consumer_id_producer_id.insert(*consumer, internal.producer(*producer));
            }
        }
        for (consumer, producer) in &dump.map_data_consumer_id_data_producer_id {
            if !internal.data_consumers.contains(consumer) {
                out.map_data_consumer_id_data_producer_id.insert(*consumer, internal.data_producer(*producer));
            }
        }
        for (producer, consumers) in &dump.map_producer_id_consumer_ids {
            out.map_producer_id_consumer_ids
                .entry(internal.producer(*producer))
                .or_default()
                .extend(consumers.iter().filter(|c| !internal.consumers.contains(c)));
        }
        for (producer, consumers) in &dump.map_data_producer_id_data_consumer_ids {
            out.map_data_producer_id_data_consumer_ids
                .entry(internal.data_producer(*producer))
                .or_default()
                .extend(consumers.iter().filter(|c| !internal.data_consumers.contains(c)));
        }
        for (producer, observers) in &dump.map_producer_id_observer_ids {
            out.map_producer_id_observer_ids.entry(internal.producer(*producer)).or_default().extend(observers);
        }
    }
    rebuild(&out)
}

/// `RouterDump`'s fields, in its order, as encoded.
#[derive(Serialize)]
struct RouterDumpPlain {
    id: RouterId,
    map_consumer_id_producer_id: BTreeMap<ConsumerId, ProducerId>,
    map_data_consumer_id_data_producer_id: BTreeMap<DataConsumerId, DataProducerId>,
    map_data_producer_id_data_consumer_ids: BTreeMap<DataProducerId, BTreeSet<DataConsumerId>>,
    map_producer_id_consumer_ids: BTreeMap<ProducerId, BTreeSet<ConsumerId>>,
    map_producer_id_observer_ids: BTreeMap<ProducerId, BTreeSet<RtpObserverId>>,
    rtp_observer_ids: BTreeSet<RtpObserverId>,
    transport_ids: BTreeSet<TransportId>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internals::object::fresh_id;

    fn dump(transports: &[TransportId], pairs: &[(ConsumerId, ProducerId)]) -> RouterDump {
        let mut consumers: BTreeMap<ProducerId, BTreeSet<ConsumerId>> = BTreeMap::new();
        for (consumer, producer) in pairs {
            consumers.entry(*producer).or_default().insert(*consumer);
        }
        rebuild(&RouterDumpPlain {
            id: fresh_id(),
            map_consumer_id_producer_id: pairs.iter().copied().collect(),
            map_data_consumer_id_data_producer_id: BTreeMap::new(),
            map_data_producer_id_data_consumer_ids: BTreeMap::new(),
            map_producer_id_consumer_ids: consumers,
            map_producer_id_observer_ids: BTreeMap::new(),
            rtp_observer_ids: BTreeSet::new(),
            transport_ids: transports.iter().copied().collect(),
        })
        .expect("a RouterDump")
    }

    #[test]
    fn merges_renames_and_hides_internal_pipes() {
        let (t1, t2, pipe_a, pipe_b): (TransportId, TransportId, TransportId, TransportId) =
            (fresh_id(), fresh_id(), fresh_id(), fresh_id());
        let (c1, c2, pipe_consumer): (ConsumerId, ConsumerId, ConsumerId) = (fresh_id(), fresh_id(), fresh_id());
        let (p1, pipe_p1): (ProducerId, ProducerId) = (fresh_id(), fresh_id());
        let a = dump(&[t1, pipe_a], &[(c1, p1), (pipe_consumer, p1)]);
        let b = dump(&[t2, pipe_b], &[(c2, pipe_p1)]);
        let internal = Internal {
            transports: [pipe_a, pipe_b].into(),
            consumers: [pipe_consumer].into(),
            producers: [(pipe_p1, p1)].into(),
            ..Internal::default()
        };
        let id: RouterId = fresh_id();
        let merged = merge(id, &[a, b], &internal).expect("merged");
        assert_eq!(merged.id, id);
        assert_eq!(merged.transport_ids.iter().copied().collect::<BTreeSet<_>>(), [t1, t2].into());
        assert_eq!(merged.map_producer_id_consumer_ids.len(), 1);
        assert_eq!(merged.map_producer_id_consumer_ids[&p1].iter().copied().collect::<BTreeSet<_>>(), [c1, c2].into());
        assert_eq!(merged.map_consumer_id_producer_id[&c2], p1);
        assert!(!merged.map_consumer_id_producer_id.contains_key(&pipe_consumer));
    }

    #[test]
    fn an_empty_router_has_an_empty_dump() {
        let id: RouterId = fresh_id();
        let merged = merge(id, &[], &Internal::default()).expect("merged");
        assert_eq!(merged.id, id);
        assert!(merged.transport_ids.is_empty() && merged.map_producer_id_consumer_ids.is_empty());
    }
}
