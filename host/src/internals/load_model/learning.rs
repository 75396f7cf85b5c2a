//! Learning the per-packet costs online from the cells' CPU samples.
//!
//! Each sample of a cell is one observation: its measured CPU share against the packets it
//! forwarded (audio, video) and received. The coefficients are the ridge regression of all
//! observations, older rounds weighing less (each sampling round multiplies the past by
//! [`FORGET`]: about a minute of samples of every cell counts), pulled towards the calibrated
//! defaults by a prior worth [`PRIOR_WEIGHT`]; they stay within 1/20 and 20 times the defaults.
//! The regression is solved in units of the defaults (`cost_j = default_j × θ_j`), so the three
//! unknowns are of one scale. Samples are skipped while media does not visibly flow (under
//! [`MIN_CPU`]) or while a cell's load moved by more than a tenth since its previous sample
//! (mid-storm the counts and the CPU, a mean over the interval, disagree).

use super::{Coefficients, Load};

/// Weight the past keeps at each sampling round.
pub const FORGET: f64 = 0.98;
/// Weight of the defaults (in squared CPU-share units).
pub const PRIOR_WEIGHT: f64 = 0.02;
/// Least measured CPU share of a sample learned from.
pub const MIN_CPU: f64 = 0.05;
/// Bounds of a learned coefficient, as factors of its default.
const CLAMP: (f64, f64) = (1.0 / 20.0, 20.0);

/// The regression's state.
#[derive(Debug, Clone)]
pub struct Learner {
    /// Σ zᵀz (decayed).
    ztz: [[f64; 3]; 3],
    /// Σ zᵀy (decayed).
    zty: [f64; 3],
    /// The coefficients as of the last round.
    coefficients: Coefficients,
}

impl Default for Learner {
    fn default() -> Self {
        Self { ztz: [[0.0; 3]; 3], zty: [0.0; 3], coefficients: Coefficients::DEFAULT }
    }
}

/// Whether two loads of one cell differ by more than a tenth.
fn moved(before: &Load, now: &Load) -> bool {
    let total = |l: &Load| l.forwarded[0] + l.forwarded[1] + l.received[0] + l.received[1];
    let (a, b) = (total(before), total(now));
    (a - b).abs() > 0.1 * a.max(b)
}

impl Learner {
    /// The current coefficients.
    pub fn coefficients(&self) -> Coefficients {
        self.coefficients
    }

    /// One cell's sample: `measured` CPU while carrying `load` (and `before` at its previous
    /// sample). Returns whether it was learned from.
    pub fn observe(&mut self, load: &Load, before: &Load, measured: f64) -> bool {
        if measured < MIN_CPU || moved(before, load) {
            return false;
        }
        let d = Coefficients::DEFAULT;
        let z = [
            d.forward[0] * load.forwarded[0],
            d.forward[1] * load.forwarded[1],
            d.receive * (load.received[0] + load.received[1]),
        ];
        if z.iter().sum::<f64>() < MIN_CPU / 4.0 {
            return false; // what it carries explains too little of what it measured
        }
        let fixed = d.per_transport * f64::from(load.transports) + d.per_data_object * f64::from(load.data_objects);
        let y = measured - fixed;
        for i in 0..3 {
            for j in 0..3 {
                self.ztz[i][j] += z[i] * z[j];
            }
            self.zty[i] += z[i] * y;
        }
        self.coefficients.samples += 1;
        true
    }

    /// Ends a sampling round: solves for the coefficients, then lets the past fade.
    pub fn end_round(&mut self) {
        let mut a = self.ztz;
        let mut b = self.zty;
        for i in 0..3 {
            a[i][i] += PRIOR_WEIGHT;
            b[i] += PRIOR_WEIGHT; // towards θ = 1 (the defaults)
        }
        if let Some(theta) = solve(a, b) {
            let d = Coefficients::DEFAULT;
            let bound = |t: f64| if t.is_finite() { t.clamp(CLAMP.0, CLAMP.1) } else { 1.0 };
            self.coefficients.forward = [d.forward[0] * bound(theta[0]), d.forward[1] * bound(theta[1])];
            self.coefficients.receive = d.receive * bound(theta[2]);
        }
        for row in &mut self.ztz {
            for v in row.iter_mut() {
                *v *= FORGET;
            }
        }
        for v in &mut self.zty {
            *v *= FORGET;
        }
    }
}

/// Solves `a x = b` (3×3, Gaussian elimination with partial pivoting); `None` when singular.
fn solve(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-15 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let pivot_row = a[col];
        for row in col + 1..3 {
            let factor = a[row][col] / pivot_row[col];
            for (value, pivot) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *value -= factor * pivot;
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let tail: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - tail) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn load(audio: f64, video: f64, received: f64) -> Load {
        Load { forwarded: [audio, video], received: [received, 0.0], transports: 10, ..Load::default() }
    }

    /// CPU a cell with `load` uses when the true costs are `truth`.
    fn cpu(load: &Load, truth: &Coefficients) -> f64 {
        load.cost(truth)
    }

    #[test]
    fn converges_per_kind_from_heterogeneous_cells() {
        let truth = Coefficients { forward: [5.0e-6, 1.2e-5], receive: 2.0e-6, ..Coefficients::DEFAULT };
        let cells =
            [load(60_000.0, 0.0, 1_000.0), load(5_000.0, 30_000.0, 2_000.0), load(20_000.0, 10_000.0, 60_000.0)];
        let mut learner = Learner::default();
        for _ in 0..200 {
            for cell in &cells {
                learner.observe(cell, cell, cpu(cell, &truth));
            }
            learner.end_round();
        }
        let c = learner.coefficients();
        for (got, want) in
            [(c.forward[0], truth.forward[0]), (c.forward[1], truth.forward[1]), (c.receive, truth.receive)]
        {
            assert!((got - want).abs() / want < 0.05, "learned {got:e}, truth {want:e}");
        }
    }

    #[test]
    fn the_last_cell_sampled_does_not_dominate() {
        // Two cells with different mixes: a per-round EWMA of "cost per consumer" would swing
        // with the sampling order; the regression settles on both costs.
        let truth = Coefficients { forward: [3.0e-6, 9.0e-6], ..Coefficients::DEFAULT };
        let audio_only = load(100_000.0, 0.0, 0.0);
        let video_only = load(0.0, 40_000.0, 0.0);
        let mut learner = Learner::default();
        for round in 0..300 {
            let (first, last) = if round % 2 == 0 { (&audio_only, &video_only) } else { (&video_only, &audio_only) };
            learner.observe(first, first, cpu(first, &truth));
            learner.observe(last, last, cpu(last, &truth));
            learner.end_round();
        }
        let c = learner.coefficients();
        assert!((c.forward[0] - 3.0e-6).abs() < 2e-7 && (c.forward[1] - 9.0e-6).abs() < 5e-7, "{c:?}");
    }

    #[test]
    fn idle_or_moving_samples_teach_nothing() {
        let mut learner = Learner::default();
        let busy = load(50_000.0, 0.0, 0.0);
        assert!(!learner.observe(&busy, &busy, 0.01), "media not flowing");
        assert!(!learner.observe(&busy, &load(10_000.0, 0.0, 0.0), 0.5), "mid-storm");
        learner.end_round();
        assert_eq!(learner.coefficients(), Coefficients::DEFAULT);
    }

    proptest! {
        #[test]
        fn coefficients_stay_bounded_whatever_is_observed(
            samples in prop::collection::vec((0.0f64..2e5, 0.0f64..2e5, 0.0f64..2e5, 0.0f64..4.0), 1..60)
        ) {
            let mut learner = Learner::default();
            for (a, v, r, measured) in samples {
                let l = load(a, v, r);
                learner.observe(&l, &l, measured);
                learner.end_round();
            }
            let c = learner.coefficients();
            let d = Coefficients::DEFAULT;
            for (got, default) in [(c.forward[0], d.forward[0]), (c.forward[1], d.forward[1]), (c.receive, d.receive)] {
                prop_assert!(got.is_finite() && got >= default / 20.0 - 1e-18 && got <= default * 20.0 + 1e-18);
            }
        }
    }
}
