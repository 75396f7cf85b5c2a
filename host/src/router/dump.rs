//! `Router::dump()` of a virtual router: the real routers' dumps merged into mediasoup's dump
//! shape, without the internal pipes the host made between cells.

use super::{Router, RouterDump};
use mediasoup::prelude::{DataProducerId, ProducerId};
use mediasoup::worker::RequestError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Ids of the internal pipe objects (hidden from the merged dump).
#[derive(Debug, Default)]
pub(crate) struct Internal {
    pub(crate) transports: BTreeSet<String>,
    pub(crate) consumers: BTreeSet<String>,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

fn map_of_sets(value: Option<&Value>) -> BTreeMap<String, BTreeSet<String>> {
    match value {
        Some(Value::Object(map)) => {
            map.iter().map(|(k, v)| (k.clone(), strings(Some(v)).into_iter().collect())).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn map_of_strings(value: Option<&Value>) -> BTreeMap<String, String> {
    match value {
        Some(Value::Object(map)) => {
            map.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string()))).collect()
        }
        _ => BTreeMap::new(),
    }
}

fn conversion(error: impl std::error::Error + Send + Sync + 'static) -> RequestError {
    RequestError::ResponseConversion(Box::new(error))
}

/// Renames real producer (or data producer) ids to the ids the application knows.
pub(crate) type Rename<'a> = &'a dyn Fn(&str) -> String;

/// Merges real router dumps (as JSON) into one virtual dump.
pub(crate) fn merge(
    id: &str,
    dumps: &[Value],
    internal: &Internal,
    producer: Rename<'_>,
    data_producer: Rename<'_>,
) -> Map<String, Value> {
    let mut transports = BTreeSet::new();
    let mut observers = BTreeSet::new();
    let mut consumer_producer = BTreeMap::new();
    let mut data_consumer_producer = BTreeMap::new();
    let mut producer_consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut data_producer_consumers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut producer_observers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let visible = |id: &String| !internal.consumers.contains(id);
    for dump in dumps {
        let field = |name: &str| dump.get(name);
        transports.extend(strings(field("transportIds")).into_iter().filter(|t| !internal.transports.contains(t)));
        observers.extend(strings(field("rtpObserverIds")));
        let visible_pairs = |name: &str| map_of_strings(field(name)).into_iter().filter(|(c, _)| visible(c));
        consumer_producer.extend(visible_pairs("mapConsumerIdProducerId").map(|(c, p)| (c, producer(&p))));
        data_consumer_producer
            .extend(visible_pairs("mapDataConsumerIdDataProducerId").map(|(c, p)| (c, data_producer(&p))));
        for (id, consumers) in map_of_sets(field("mapProducerIdConsumerIds")) {
            producer_consumers.entry(producer(&id)).or_default().extend(consumers.into_iter().filter(visible));
        }
        for (id, consumers) in map_of_sets(field("mapDataProducerIdDataConsumerIds")) {
            data_producer_consumers
                .entry(data_producer(&id))
                .or_default()
                .extend(consumers.into_iter().filter(visible));
        }
        for (id, observer_ids) in map_of_sets(field("mapProducerIdObserverIds")) {
            producer_observers.entry(producer(&id)).or_default().extend(observer_ids);
        }
    }
    let mut out = Map::new();
    out.insert("id".into(), Value::from(id));
    out.insert("transportIds".into(), serde_json::json!(transports));
    out.insert("rtpObserverIds".into(), serde_json::json!(observers));
    out.insert("mapConsumerIdProducerId".into(), serde_json::json!(consumer_producer));
    out.insert("mapDataConsumerIdDataProducerId".into(), serde_json::json!(data_consumer_producer));
    out.insert("mapProducerIdConsumerIds".into(), serde_json::json!(producer_consumers));
    out.insert("mapDataProducerIdDataConsumerIds".into(), serde_json::json!(data_producer_consumers));
    out.insert("mapProducerIdObserverIds".into(), serde_json::json!(producer_observers));
    out
}

/// The merged dump of a virtual router.
pub(crate) async fn merged(router: &Router) -> Result<RouterDump, RequestError> {
    let mut dumps = Vec::new();
    for (_, real) in router.inner.reals.all() {
        let dump = real.dump().await?;
        dumps.push(serde_json::to_value(&dump).map_err(conversion)?);
    }
    let internal = router.inner.pipes.internal_ids();
    let registry = &router.inner.registry;
    let producer = |id: &str| match id.parse::<ProducerId>() {
        Ok(real) => registry.producer_id_of_real(&real).to_string(),
        Err(_) => id.to_string(),
    };
    let data_producer = |id: &str| match id.parse::<DataProducerId>() {
        Ok(real) => registry.data_producer_id_of_real(&real).to_string(),
        Err(_) => id.to_string(),
    };
    let merged = merge(&router.id().to_string(), &dumps, &internal, &producer, &data_producer);
    serde_json::from_value(Value::Object(merged)).map_err(conversion)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_and_hides_internal_pipes() {
        let a = json!({
            "id": "ra", "transportIds": ["t1", "pipeA"], "rtpObserverIds": [],
            "mapConsumerIdProducerId": {"c1": "p1", "pc": "p1"},
            "mapProducerIdConsumerIds": {"p1": ["c1", "pc"]},
            "mapDataConsumerIdDataProducerId": {}, "mapDataProducerIdDataConsumerIds": {},
            "mapProducerIdObserverIds": {}
        });
        let b = json!({
            "id": "rb", "transportIds": ["t2", "pipeB"], "rtpObserverIds": ["o1"],
            "mapConsumerIdProducerId": {"c2": "p1"},
            "mapProducerIdConsumerIds": {"p1": ["c2"]},
            "mapDataConsumerIdDataProducerId": {}, "mapDataProducerIdDataConsumerIds": {},
            "mapProducerIdObserverIds": {"p1": ["o1"]}
        });
        let internal = Internal {
            transports: ["pipeA", "pipeB"].iter().map(|s| s.to_string()).collect(),
            consumers: ["pc"].iter().map(|s| s.to_string()).collect(),
        };
        let renamed = |id: &str| if id == "p1" { "virtual-p1".to_string() } else { id.to_string() };
        let same = |id: &str| id.to_string();
        let merged = Value::Object(merge("virtual", &[a, b], &internal, &renamed, &same));
        assert_eq!(merged["id"], "virtual");
        assert_eq!(merged["transportIds"], json!(["t1", "t2"]));
        assert_eq!(merged["mapProducerIdConsumerIds"], json!({"virtual-p1": ["c1", "c2"]}));
        assert_eq!(merged["mapConsumerIdProducerId"], json!({"c1": "virtual-p1", "c2": "virtual-p1"}));
        assert_eq!(merged["mapProducerIdObserverIds"], json!({"virtual-p1": ["o1"]}));
    }
}
