//! The simulation: a join/leave trace replayed against the placement engine over simulated
//! cells whose CPU follows a simple load model. Peers send on one transport and receive on
//! another; each consumes every producer of the other peers of its room; a producer consumed in
//! another cell than its own is piped there once. Empty cells are released at once. Policies
//! see the cells as the host shows them: the simulated CPU as measured, and the prediction of
//! the host's own load model (`mafalda_host::internals::load_model`) from the same counts (each
//! simulated stream priced as a 50 packets/s one; simulated CPU is instantaneous, so what the
//! cell carries now is also what it carried at the sample).

use super::trace::{Event, Op};
use mafalda_host::internals::load_model::{Coefficients, Load, DEFAULT_AUDIO};
use mafalda_host::placement::{Candidates, CellLoad, Direction, Placement, PlacementEngine, PlacementRequest};
use std::collections::{BTreeMap, HashMap};

/// What each kind of object costs a simulated worker (share of one core): the simulation's
/// ground truth, which the host's load model only predicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedCosts {
    /// Per transport.
    pub per_transport: f64,
    /// Per producer received.
    pub per_producer: f64,
    /// Per consumer sent.
    pub per_consumer: f64,
    /// Per pipe into a cell (receiving half; the sending half counts as a consumer).
    pub per_pipe: f64,
}

impl Default for SimulatedCosts {
    fn default() -> Self {
        // Roughly what one 50 pps audio + video stream costs a worker on this machine kind
        // (P2: ~4,000 audio consumers saturate one core).
        Self { per_transport: 0.0005, per_producer: 0.002, per_consumer: 0.0006, per_pipe: 0.001 }
    }
}

#[derive(Debug, Default, Clone)]
struct SimCell {
    transports: u32,
    producers: u32,
    consumers: u32,
    pipes: u32,
    labels: HashMap<String, u32>,
    rooms: HashMap<String, u32>,
}

impl SimCell {
    fn cpu(&self, model: &SimulatedCosts) -> f64 {
        f64::from(self.transports) * model.per_transport
            + f64::from(self.producers) * model.per_producer
            + f64::from(self.consumers + self.pipes) * model.per_consumer
            + f64::from(self.pipes) * model.per_pipe
    }

    fn load(&self, id: u32, model: &SimulatedCosts) -> CellLoad {
        let mut load = CellLoad::new(id).with_cpu(self.cpu(model));
        load.transports = self.transports;
        load.producers = self.producers;
        load.consumers = self.consumers;
        load.pipes = self.pipes;
        load.routers = self.rooms.iter().filter(|(_, n)| **n > 0).map(|(r, _)| r.clone()).collect();
        load.labels = self.labels.iter().filter(|(_, n)| **n > 0).map(|(l, n)| (l.clone(), *n)).collect();
        load.routers.sort();
        load.labels.sort();
        load
    }

    fn add_transport(&mut self, labels: &[(String, String)], room: &str, delta: i32) {
        let bump = |n: &mut u32| *n = n.saturating_add_signed(delta);
        bump(&mut self.transports);
        for (k, v) in labels {
            bump(self.labels.entry(format!("{k}={v}")).or_default());
        }
        bump(self.rooms.entry(room.to_string()).or_default());
    }
}

#[derive(Debug, Clone)]
struct Peer {
    room: String,
    labels: Vec<(String, String)>,
    sends: u32,
    send_cell: Option<u32>,
    recv_cell: Option<u32>,
}

/// One sample of the simulated pool.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Trace time (s).
    pub t: f64,
    /// Open cells.
    pub cells: usize,
    /// CPU of the busiest cell.
    pub max_cpu: f64,
    /// Mean CPU of the open cells.
    pub mean_cpu: f64,
}

/// What a simulation produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// After every event.
    pub samples: Vec<Sample>,
    /// Pipes created over the run.
    pub pipes_created: u64,
    /// Peers refused (a transport was rejected).
    pub rejections: u64,
    /// Decisions the built-in fallback made because the policy failed or answered wrongly.
    pub fallbacks: u64,
    /// Peers that joined.
    pub peers: u64,
}

/// The simulation state for one policy.
pub struct Simulation<'a> {
    engine: &'a PlacementEngine,
    model: SimulatedCosts,
    max_cells: u32,
    cells: BTreeMap<u32, SimCell>,
    next_cell: u32,
    peers: HashMap<(String, String), Peer>,
    /// (producer key, cell) → consumers there.
    pipes: HashMap<(String, u32), u32>,
    outcome: Outcome,
}

fn producer_key(room: &str, peer: &str, k: u32) -> String {
    format!("{room}/{peer}/{k}")
}

impl<'a> Simulation<'a> {
    /// An empty pool of at most `max_cells` cells, placed by `engine`.
    pub fn new(engine: &'a PlacementEngine, model: SimulatedCosts, max_cells: u32) -> Self {
        Self {
            engine,
            model,
            max_cells,
            cells: BTreeMap::new(),
            next_cell: 0,
            peers: HashMap::new(),
            pipes: HashMap::new(),
            outcome: Outcome::default(),
        }
    }

    fn loads(&self) -> Vec<CellLoad> {
        let coefficients = Coefficients::DEFAULT;
        self.cells
            .iter()
            .map(|(id, cell)| {
                let load = Load {
                    forwarded: [f64::from(cell.consumers + cell.pipes) * DEFAULT_AUDIO.forwarded, 0.0],
                    received: [f64::from(cell.producers + cell.pipes) * DEFAULT_AUDIO.received, 0.0],
                    transports: cell.transports,
                    ..Load::default()
                };
                let cost = load.carried_cost(&coefficients);
                let cpu = cell.cpu(&self.model);
                CellLoad { predicted: load.predicted(&coefficients, cpu, cost), ..cell.load(*id, &self.model) }
            })
            .collect()
    }

    /// Places one transport; `None` when refused.
    fn place(&mut self, room: &str, labels: &[(String, String)], direction: Direction, expected: u32) -> Option<u32> {
        let request = PlacementRequest {
            router: room.to_string(),
            direction,
            labels: labels.to_vec(),
            expected_consumers: expected,
            max_cells: self.max_cells,
        };
        let outcome = self.engine.decide(&request, &Candidates::from_cells(&request, &self.loads()));
        if outcome.fallback_reason.is_some() {
            self.outcome.fallbacks += 1;
        }
        let id = match outcome.placement {
            Placement::Existing(id) => id.0,
            Placement::Spawn => {
                self.next_cell += 1;
                self.cells.insert(self.next_cell - 1, SimCell::default());
                self.next_cell - 1
            }
            Placement::Rejected(_) => return None,
        };
        if let Some(cell) = self.cells.get_mut(&id) {
            cell.add_transport(labels, room, 1);
        }
        Some(id)
    }

    /// A consumer in `cell` of a producer living in `home` (`delta` +1 adds, -1 removes).
    fn consumer(&mut self, producer: &str, home: u32, cell: u32, delta: i32) {
        if let Some(c) = self.cells.get_mut(&cell) {
            c.consumers = c.consumers.saturating_add_signed(delta);
        }
        if home == cell {
            return;
        }
        let key = (producer.to_string(), cell);
        let users = self.pipes.entry(key.clone()).or_default();
        let before = *users;
        *users = users.saturating_add_signed(delta);
        let after = *users;
        let (pipe_delta, consumer_delta) = match (before, after) {
            (0, 1) => {
                self.outcome.pipes_created += 1;
                (1, 1)
            }
            (1, 0) => {
                self.pipes.remove(&key);
                (-1, -1)
            }
            _ => (0, 0),
        };
        if let Some(c) = self.cells.get_mut(&cell) {
            c.pipes = c.pipes.saturating_add_signed(pipe_delta);
        }
        if let Some(h) = self.cells.get_mut(&home) {
            h.consumers = h.consumers.saturating_add_signed(consumer_delta);
        }
    }

    /// Every consumer between `peer` and the rest of its room (`delta` +1 joins, -1 leaves).
    fn wire(&mut self, room: &str, name: &str, delta: i32) {
        let Some(me) = self.peers.get(&(room.to_string(), name.to_string())).cloned() else { return };
        let others: Vec<(String, Peer)> = self
            .peers
            .iter()
            .filter(|((r, p), _)| r == room && p != name)
            .map(|((_, p), peer)| (p.clone(), peer.clone()))
            .collect();
        for (other_name, other) in others {
            if let (Some(home), Some(cell)) = (other.send_cell, me.recv_cell) {
                for k in 0..other.sends {
                    self.consumer(&producer_key(room, &other_name, k), home, cell, delta);
                }
            }
            if let (Some(home), Some(cell)) = (me.send_cell, other.recv_cell) {
                for k in 0..me.sends {
                    self.consumer(&producer_key(room, name, k), home, cell, delta);
                }
            }
        }
    }

    fn join(&mut self, room: &str, name: &str, role: &str, sends: u32) {
        self.outcome.peers += 1;
        let labels = vec![("room".to_string(), room.to_string()), ("role".to_string(), role.to_string())];
        let size = self.peers.keys().filter(|(r, _)| r == room).count() as u32;
        let send_cell = match sends {
            0 => None,
            _ => match self.place(room, &labels, Direction::Send, size) {
                Some(cell) => Some(cell),
                None => {
                    self.outcome.rejections += 1;
                    return;
                }
            },
        };
        let Some(recv_cell) = self.place(room, &labels, Direction::Recv, 0) else {
            if let Some(cell) = send_cell.and_then(|id| self.cells.get_mut(&id)) {
                cell.add_transport(&labels, room, -1);
            }
            self.outcome.rejections += 1;
            self.release_empty();
            return;
        };
        if let Some(cell) = send_cell.and_then(|id| self.cells.get_mut(&id)) {
            cell.producers += sends;
        }
        let peer = Peer { room: room.to_string(), labels, sends, send_cell, recv_cell: Some(recv_cell) };
        self.peers.insert((room.to_string(), name.to_string()), peer);
        self.wire(room, name, 1);
    }

    fn leave(&mut self, room: &str, name: &str) {
        self.wire(room, name, -1);
        let Some(peer) = self.peers.remove(&(room.to_string(), name.to_string())) else { return };
        if let Some(cell) = peer.send_cell.and_then(|id| self.cells.get_mut(&id)) {
            cell.add_transport(&peer.labels, &peer.room, -1);
            cell.producers = cell.producers.saturating_sub(peer.sends);
        }
        if let Some(cell) = peer.recv_cell.and_then(|id| self.cells.get_mut(&id)) {
            cell.add_transport(&peer.labels, &peer.room, -1);
        }
        self.release_empty();
    }

    fn release_empty(&mut self) {
        self.cells.retain(|_, c| c.transports > 0 || c.pipes > 0 || c.consumers > 0);
    }

    fn sample(&mut self, t: f64) {
        let cpus: Vec<f64> = self.cells.values().map(|c| c.cpu(&self.model)).collect();
        let max_cpu = cpus.iter().copied().fold(0.0, f64::max);
        let mean_cpu = if cpus.is_empty() { 0.0 } else { cpus.iter().sum::<f64>() / cpus.len() as f64 };
        self.outcome.samples.push(Sample { t, cells: cpus.len(), max_cpu, mean_cpu });
    }

    /// Replays `events` and returns what happened.
    pub fn run(mut self, events: &[Event]) -> Outcome {
        for event in events {
            match &event.op {
                Op::Join { room, peer, role, sends } => self.join(room, peer, role, *sends),
                Op::Leave { room, peer } => self.leave(room, peer),
            }
            self.sample(event.t);
        }
        self.outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::simulate::trace::{generate, Shape};
    use mafalda_host::placement::{BinPack, Spread};
    use std::sync::Arc;

    fn run(policy: Arc<dyn mafalda_host::placement::PlacementPolicy>, events: &[Event]) -> Outcome {
        let engine = PlacementEngine::new(policy, BinPack::default());
        Simulation::new(&engine, SimulatedCosts::default(), 8).run(events)
    }

    #[test]
    fn packing_uses_fewer_cells_and_pipes_than_spreading() {
        let events = generate(Shape::Meetings, 6, 6, 300, 3);
        let pack = run(Arc::new(BinPack::default()), &events);
        let spread = run(Arc::new(Spread), &events);
        let peak = |o: &Outcome| o.samples.iter().map(|s| s.cells).max().unwrap_or(0);
        assert!(peak(&pack) < peak(&spread), "pack {} vs spread {}", peak(&pack), peak(&spread));
        assert!(pack.pipes_created < spread.pipes_created);
        assert_eq!(pack.rejections, 0);
        assert_eq!(pack.samples.last().map(|s| s.cells), Some(0), "everyone left: every cell released");
    }
}
