//! The load model: what a cell is *predicted* to use, so placement does not wait for the CPU
//! sampler. A join storm places its transports while producers are silent or between two
//! samples; measured CPU alone sends the whole storm to one worker.
//!
//! The predicted share is the measured CPU share, or the model's when it expects more. The model
//! adds `per_transport` per transport, `per_consumer` per expected consumer, `per_pipe` per pipe
//! and `per_producer` per producer. Expected consumers are the consumers there, or (transports +
//! reserved) times the expected fan-out when that is more: a transport just placed (reserved at
//! decision time, so concurrent decisions see each other) is expected to carry as many consumers
//! as the average transport did recently (the peak average, fading with a 30 s half-life, so a
//! storm of new empty transports does not dilute it). Consumers of silent producers count at the
//! default rate: the model predicts the load they bring once media flows.
//!
//! `per_consumer` is learned online from the workers' own CPU samples (an EWMA of measured CPU
//! per consumer, only while media flows: at least [`LEARN_MIN_CPU`] and [`LEARN_MIN_CONSUMERS`]),
//! starting from [`Coefficients::DEFAULT`] (calibrated on this machine kind: a core forwards
//! ~280,000 packets/s, so a 50 packets/s consumer costs ~1.8e-4 of a core). It is kept by the
//! host, not the cell, so it survives worker restarts.

use crate::internals::object::lock;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least measured CPU share of a sample the model learns from (below: media is not flowing).
pub const LEARN_MIN_CPU: f64 = 0.05;
/// Least consumers in a cell for its sample to teach the per-consumer cost.
pub const LEARN_MIN_CONSUMERS: u32 = 20;
/// Weight of a new sample in the learned cost.
const LEARN_WEIGHT: f64 = 0.3;

/// CPU share of one core per object.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coefficients {
    /// Per consumer (forwarding its producer's packets).
    pub per_consumer: f64,
    /// Per transport.
    pub per_transport: f64,
    /// Per producer (receiving its packets).
    pub per_producer: f64,
    /// Per pipe producer piped into the cell.
    pub per_pipe: f64,
    /// Samples the per-consumer cost was learned from.
    pub samples: u64,
}

impl Coefficients {
    /// Calibrated defaults (2-core machine, Opus at 50 packets/s).
    pub const DEFAULT: Self =
        Self { per_consumer: 1.8e-4, per_transport: 2.0e-5, per_producer: 1.8e-4, per_pipe: 1.8e-4, samples: 0 };
}

impl Default for Coefficients {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// What the model reads of a cell.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CellCounts {
    /// Measured CPU share.
    pub cpu: f64,
    /// Transports placed.
    pub transports: u32,
    /// Transports decided but not created yet.
    pub reserved: u32,
    /// Producers.
    pub producers: u32,
    /// Consumers.
    pub consumers: u32,
    /// Pipe producers piped in.
    pub pipes: u32,
}

/// How fast the remembered consumers-per-transport fades (half-life).
const FANOUT_HALF_LIFE: Duration = Duration::from_secs(30);

/// The host's load model.
#[derive(Debug, Default)]
pub struct LoadModel {
    coefficients: Mutex<Coefficients>,
    /// Consumers per transport seen recently, and when: transports just created have no
    /// consumers yet and would dilute the instantaneous ratio in the middle of a join storm.
    fanout: Mutex<Option<(f64, Instant)>>,
}

impl LoadModel {
    /// The current coefficients.
    pub fn coefficients(&self) -> Coefficients {
        *lock(&self.coefficients)
    }

    /// Consumers a transport is expected to carry: the `observed` average now, or the recent
    /// peak fading with a half-life of 30 s, whichever is more.
    pub fn expected_fanout(&self, observed: f64) -> f64 {
        let mut fanout = lock(&self.fanout);
        let remembered = fanout.map_or(0.0, |(value, at)| {
            value * 0.5f64.powf(at.elapsed().as_secs_f64() / FANOUT_HALF_LIFE.as_secs_f64())
        });
        if observed >= remembered {
            *fanout = Some((observed, Instant::now()));
            observed
        } else {
            remembered
        }
    }

    /// The model's share for `cell` given the set's average consumers per transport.
    pub fn model(&self, cell: &CellCounts, consumers_per_transport: f64) -> f64 {
        let c = self.coefficients();
        let placed = f64::from(cell.transports) + f64::from(cell.reserved);
        let expected = f64::from(cell.consumers).max(placed * consumers_per_transport);
        c.per_transport * placed
            + c.per_consumer * expected
            + c.per_producer * f64::from(cell.producers)
            + c.per_pipe * f64::from(cell.pipes)
    }

    /// The predicted share: the measured one, or the model's when it expects more.
    pub fn predicted(&self, cell: &CellCounts, consumers_per_transport: f64) -> f64 {
        cell.cpu.max(self.model(cell, consumers_per_transport))
    }

    /// Learns from one CPU sample of a cell (ignored unless media visibly flows).
    pub fn learn(&self, cell: &CellCounts) {
        if cell.cpu < LEARN_MIN_CPU || cell.consumers < LEARN_MIN_CONSUMERS {
            return;
        }
        let mut c = lock(&self.coefficients);
        let rest = c.per_transport * f64::from(cell.transports)
            + c.per_producer * f64::from(cell.producers)
            + c.per_pipe * f64::from(cell.pipes);
        let observed = ((cell.cpu - rest) / f64::from(cell.consumers))
            .clamp(Coefficients::DEFAULT.per_consumer / 20.0, Coefficients::DEFAULT.per_consumer * 20.0);
        c.per_consumer += LEARN_WEIGHT * (observed - c.per_consumer);
        c.samples += 1;
    }
}

/// Average consumers per transport over `cells` (0 with no transport).
pub fn consumers_per_transport(cells: &[CellCounts]) -> f64 {
    let transports: u32 = cells.iter().map(|c| c.transports).sum();
    let consumers: u32 = cells.iter().map(|c| c.consumers).sum();
    if transports == 0 {
        0.0
    } else {
        f64::from(consumers) / f64::from(transports)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_transports_count_as_average_ones() {
        let model = LoadModel::default();
        let empty = CellCounts { reserved: 10, ..CellCounts::default() };
        let busy = CellCounts { transports: 10, consumers: 200, ..CellCounts::default() };
        let average = consumers_per_transport(&[empty, busy]);
        assert!((average - 20.0).abs() < 1e-9);
        assert!(model.model(&empty, average) > 0.9 * model.model(&busy, average), "ten reserved ≈ ten busy");
        let silent = CellCounts { cpu: 0.0, ..busy };
        assert!(model.predicted(&silent, average) > 0.03, "silent consumers are predicted, not zero");
        let measured = CellCounts { cpu: 0.9, ..busy };
        assert_eq!(model.predicted(&measured, average), 0.9, "measured CPU wins when higher");
    }

    #[test]
    fn learning_converges_to_the_observed_cost_and_ignores_idle_samples() {
        let model = LoadModel::default();
        let truth = 4.0e-4;
        let cell = |cpu: f64| CellCounts { cpu, transports: 50, consumers: 1_000, ..CellCounts::default() };
        model.learn(&cell(0.0));
        assert_eq!(model.coefficients().samples, 0, "no media, nothing learned");
        for _ in 0..20 {
            let rest = Coefficients::DEFAULT.per_transport * 50.0;
            model.learn(&cell(truth * 1_000.0 + rest));
        }
        let learned = model.coefficients().per_consumer;
        assert!((learned - truth).abs() / truth < 0.01, "learned {learned}, truth {truth}");
    }
}
