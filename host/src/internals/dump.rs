//! `Router::dump()` of a virtual router: the real routers' dumps merged into mediasoup's dump
//! shape, without the internal pipes the host made between cells. A producer piped into another
//! cell has another id there (ids are unique per worker); its consumers there are listed under
//! the producer's own id.

use crate::backend::RouterBackend;
use mediasoup::router::RouterDump;
use mediasoup::worker::RequestError;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The internal pipe objects: hidden from the merged dump, their producers renamed.
#[derive(Debug, Default)]
pub(crate) struct Internal {
    /// Pipe transports.
    pub(crate) transports: BTreeSet<String>,
    /// Pipe consumers.
    pub(crate) consumers: BTreeSet<String>,
    /// Pipe producers' ids → their sources' ids.
    pub(crate) renamed: std::collections::HashMap<String, String>,
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

/// Merges real router dumps (as JSON) into one virtual dump.
pub(crate) fn merge(id: &str, dumps: &[Value], internal: &Internal) -> Map<String, Value> {
    let producer = |id: &str| internal.renamed.get(id).cloned().unwrap_or_else(|| id.to_string());
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
        data_consumer_producer.extend(visible_pairs("mapDataConsumerIdDataProducerId").map(|(c, p)| (c, producer(&p))));
        for (id, consumers) in map_of_sets(field("mapProducerIdConsumerIds")) {
            producer_consumers.entry(producer(&id)).or_default().extend(consumers.into_iter().filter(visible));
        }
        for (id, consumers) in map_of_sets(field("mapDataProducerIdDataConsumerIds")) {
            data_producer_consumers.entry(producer(&id)).or_default().extend(consumers.into_iter().filter(visible));
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

/// The merged dump of virtual router `id` over its real routers.
pub(crate) async fn merged(
    id: &str,
    reals: &[Arc<dyn RouterBackend>],
    internal: &Internal,
) -> Result<RouterDump, RequestError> {
    let mut dumps = Vec::new();
    for real in reals {
        let dump = real.dump().await?;
        dumps.push(serde_json::to_value(&dump).map_err(conversion)?);
    }
    serde_json::from_value(Value::Object(merge(id, &dumps, internal))).map_err(conversion)
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
            "mapConsumerIdProducerId": {"c2": "pipe-p1"},
            "mapProducerIdConsumerIds": {"pipe-p1": ["c2"]},
            "mapDataConsumerIdDataProducerId": {}, "mapDataProducerIdDataConsumerIds": {},
            "mapProducerIdObserverIds": {"p1": ["o1"]}
        });
        let internal = Internal {
            transports: ["pipeA", "pipeB"].iter().map(|s| s.to_string()).collect(),
            consumers: ["pc"].iter().map(|s| s.to_string()).collect(),
            renamed: [("pipe-p1".to_string(), "p1".to_string())].into(),
        };
        let merged = Value::Object(merge("virtual", &[a, b], &internal));
        assert_eq!(merged["id"], "virtual");
        assert_eq!(merged["transportIds"], json!(["t1", "t2"]));
        assert_eq!(merged["mapProducerIdConsumerIds"], json!({"p1": ["c1", "c2"]}));
        assert_eq!(merged["mapConsumerIdProducerId"], json!({"c1": "p1", "c2": "p1"}));
        assert_eq!(merged["mapProducerIdObserverIds"], json!({"p1": ["o1"]}));
    }
}
