//! The placement engine: asks the configured policy, validates its answer against the cells
//! that exist, and falls back to the built-in bin-packer (counted and logged) when the policy
//! fails or answers something impossible.

use super::builtin::BinPack;
use super::candidates::Candidates;
use super::model::{CellId, Decision, PlacementRequest};
use super::policy::PlacementPolicy;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use tracing::warn;

/// A validated placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// An existing, accepting cell.
    Existing(CellId),
    /// A new cell must be started (the pool is below its maximum).
    Spawn,
    /// The transport is refused.
    Rejected(String),
}

/// The engine's answer and whether the fallback made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Where the transport goes.
    pub placement: Placement,
    /// Why the configured policy was overruled, if it was.
    pub fallback_reason: Option<String>,
}

/// Counters of an engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineCounters {
    /// Decisions made.
    pub decisions: u64,
    /// Decisions the fallback made because the policy failed or answered wrongly.
    pub fallbacks: u64,
    /// Transports rejected.
    pub rejections: u64,
    /// Decisions that started a new worker.
    pub new_cells: u64,
}

/// Checks a decision against the cells that exist and the pool's maximum.
pub fn validate(decision: Decision, request: &PlacementRequest, cells: &Candidates) -> Result<Placement, String> {
    match decision {
        Decision::Cell(raw) => {
            let id = CellId(raw);
            match cells.draining(raw) {
                Some(true) => Err(format!("{id} is draining")),
                Some(false) => Ok(Placement::Existing(id)),
                None => Err(format!("{id} does not exist")),
            }
        }
        Decision::NewCell if (cells.len() as u64) < u64::from(request.max_cells) => Ok(Placement::Spawn),
        Decision::NewCell => {
            Err(format!("asked for a new cell but the pool is at its maximum of {}", request.max_cells))
        }
        Decision::Reject(reason) => Ok(Placement::Rejected(reason)),
    }
}

/// Policy + validation + fallback.
pub struct PlacementEngine {
    policy: RwLock<Arc<dyn PlacementPolicy>>,
    fallback: BinPack,
    decisions: AtomicU64,
    fallbacks: AtomicU64,
    rejections: AtomicU64,
    new_cells: AtomicU64,
}

impl std::fmt::Debug for PlacementEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlacementEngine").field("policy", &self.policy_name()).finish()
    }
}

impl PlacementEngine {
    /// An engine asking `policy`, falling back to `fallback`.
    pub fn new(policy: Arc<dyn PlacementPolicy>, fallback: BinPack) -> Self {
        Self {
            policy: RwLock::new(policy),
            fallback,
            decisions: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            new_cells: AtomicU64::new(0),
        }
    }

    /// The current policy.
    pub fn policy(&self) -> Arc<dyn PlacementPolicy> {
        Arc::clone(&self.policy.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Name of the current policy.
    pub fn policy_name(&self) -> String {
        self.policy().name().to_string()
    }

    /// Replaces the policy (atomically: a decision in flight finishes with the old one).
    pub fn set_policy(&self, policy: Arc<dyn PlacementPolicy>) {
        *self.policy.write().unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// Decides where `request` goes.
    pub fn decide(&self, request: &PlacementRequest, cells: &Candidates) -> Outcome {
        self.decisions.fetch_add(1, Ordering::Relaxed);
        let policy = self.policy();
        let checked = policy
            .place(request, cells)
            .map_err(|e| e.to_string())
            .and_then(|decision| validate(decision, request, cells));
        let outcome = match checked {
            Ok(placement) => Outcome { placement, fallback_reason: None },
            Err(reason) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                warn!(policy = policy.name(), %reason, "placement policy overruled; built-in packer decides");
                let placement =
                    validate(self.fallback.decide(request, cells), request, cells).unwrap_or_else(Placement::Rejected);
                Outcome { placement, fallback_reason: Some(reason) }
            }
        };
        match outcome.placement {
            Placement::Rejected(_) => self.rejections.fetch_add(1, Ordering::Relaxed),
            Placement::Spawn => self.new_cells.fetch_add(1, Ordering::Relaxed),
            Placement::Existing(_) => 0,
        };
        outcome
    }

    /// The engine's counters.
    pub fn counters(&self) -> EngineCounters {
        EngineCounters {
            decisions: self.decisions.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            rejections: self.rejections.load(Ordering::Relaxed),
            new_cells: self.new_cells.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::model::CellLoad;
    use crate::placement::policy::PolicyError;

    struct Fixed(Result<Decision, PolicyError>);

    impl PlacementPolicy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn place(&self, _: &PlacementRequest, _: &Candidates) -> Result<Decision, PolicyError> {
            self.0.clone()
        }
    }

    fn engine(answer: Result<Decision, PolicyError>) -> PlacementEngine {
        PlacementEngine::new(Arc::new(Fixed(answer)), BinPack::default())
    }

    fn cells() -> Vec<CellLoad> {
        vec![CellLoad::new(3).with_cpu(0.1)]
    }

    fn view(cells: &[CellLoad]) -> Candidates {
        Candidates::from_cells(&PlacementRequest::default(), cells)
    }

    fn request(max_cells: u32) -> PlacementRequest {
        PlacementRequest { max_cells, ..PlacementRequest::default() }
    }

    #[test]
    fn valid_answers_pass_through() {
        let e = engine(Ok(Decision::Cell(3)));
        assert_eq!(e.decide(&request(2), &view(&cells())).placement, Placement::Existing(CellId(3)));
        let e = engine(Ok(Decision::NewCell));
        assert_eq!(e.decide(&request(2), &view(&cells())).placement, Placement::Spawn);
        assert_eq!(e.counters().fallbacks, 0);
    }

    #[test]
    fn unknown_cells_and_impossible_spawns_fall_back() {
        let e = engine(Ok(Decision::Cell(99)));
        let out = e.decide(&request(2), &view(&cells()));
        assert_eq!(out.placement, Placement::Existing(CellId(3)));
        assert!(out.fallback_reason.unwrap().contains("cell-99 does not exist"));
        let e = engine(Ok(Decision::NewCell));
        let out = e.decide(&request(1), &view(&cells()));
        assert_eq!(out.placement, Placement::Existing(CellId(3)));
        assert_eq!(e.counters().fallbacks, 1);
    }

    #[test]
    fn policy_failures_fall_back_and_rejections_are_counted() {
        let e = engine(Err(PolicyError { policy: "fixed".into(), reason: "trap".into() }));
        assert_eq!(e.decide(&request(2), &view(&cells())).placement, Placement::Existing(CellId(3)));
        let e = engine(Ok(Decision::Reject("full".into())));
        assert_eq!(e.decide(&request(2), &view(&cells())).placement, Placement::Rejected("full".into()));
        assert_eq!(e.counters(), EngineCounters { decisions: 1, fallbacks: 0, rejections: 1, new_cells: 0 });
    }

    #[test]
    fn draining_cells_are_refused() {
        let mut cells = cells();
        cells[0].draining = true;
        let e = engine(Ok(Decision::Cell(3)));
        assert_eq!(e.decide(&request(2), &view(&cells)).placement, Placement::Spawn);
    }
}
