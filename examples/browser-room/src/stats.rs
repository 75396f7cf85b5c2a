//! The stats endpoint: where each transport, producer and consumer lives (which worker serves
//! it) and the pipes between workers. This is the one module that uses mafalda's extensions of
//! the mediasoup API (`cell()`, `Router::pipes()`, `Host::stats()`); the rest of the server is
//! plain mediasoup.

use crate::room::Rooms;
use mediasoup::placement::CellId;
use mediasoup::prelude::*;
use mediasoup::router::PipeSource;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Everything the page and the tests read: workers, rooms, peers and their objects.
pub fn snapshot(rooms: &Rooms) -> Value {
    let host = rooms.worker().host().stats();
    let workers: HashMap<u32, String> = host.cells.iter().map(|c| (c.id.0, c.worker.to_string())).collect();
    let located = |cell: CellId| json!({ "cell": cell.0, "worker": workers.get(&cell.0) });
    let rooms: Vec<Value> = rooms
        .all()
        .iter()
        .map(|room| {
            let homes: HashMap<ProducerId, CellId> = room
                .peers()
                .iter()
                .flat_map(|peer| {
                    let state = peer.state();
                    state.producers.values().map(|p| (p.producer.id(), p.producer.cell())).collect::<Vec<_>>()
                })
                .collect();
            let peers: Vec<Value> = room
                .peers()
                .iter()
                .map(|peer| {
                    let state = peer.state();
                    let transports: Vec<Value> = state
                        .transports
                        .values()
                        .map(|t| {
                            let transport = &t.transport;
                            json!({
                                "id": transport.id(),
                                "consuming": t.consuming,
                                "where": located(transport.cell()),
                                "iceState": transport.ice_state(),
                                "dtlsState": transport.dtls_state(),
                                "dtlsRole": transport.dtls_parameters().role,
                                "iceCandidates": transport.ice_candidates(),
                            })
                        })
                        .collect();
                    let producers: Vec<Value> = state
                        .producers
                        .values()
                        .map(|p| {
                            let producer = &p.producer;
                            json!({
                                "id": producer.id(),
                                "kind": producer.kind(),
                                "paused": producer.paused(),
                                "where": located(producer.cell()),
                            })
                        })
                        .collect();
                    let consumers: Vec<Value> = state
                        .consumers
                        .values()
                        .map(|consumer| {
                            json!({
                                "id": consumer.id(),
                                "producerId": consumer.producer_id(),
                                "kind": consumer.kind(),
                                "paused": consumer.paused(),
                                "producerPaused": consumer.producer_paused(),
                                "preferredLayers": consumer.preferred_layers(),
                                "currentLayers": consumer.current_layers(),
                                "where": located(consumer.cell()),
                                "producerWhere": homes.get(&consumer.producer_id()).map(|c| located(*c)),
                            })
                        })
                        .collect();
                    json!({
                        "id": peer.id,
                        "displayName": state.display_name,
                        "joined": state.joined(),
                        "transports": transports,
                        "producers": producers,
                        "consumers": consumers,
                        "dataProducers": state.data_producers.keys().collect::<Vec<_>>(),
                        "dataConsumers": state.data_consumers.keys().collect::<Vec<_>>(),
                    })
                })
                .collect();
            let pipes: Vec<Value> = room
                .router
                .pipes()
                .into_iter()
                .filter_map(|(source, cell)| match source {
                    PipeSource::Producer(id) => Some(json!({ "producerId": id, "to": located(cell) })),
                    PipeSource::DataProducer(_) => None,
                })
                .collect();
            json!({ "id": room.id, "router": room.router.id(), "peers": peers, "pipes": pipes })
        })
        .collect();
    json!({ "workers": host.cells, "rooms": rooms })
}
