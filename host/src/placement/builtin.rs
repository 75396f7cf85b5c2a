//! The built-in policies: bin-packing under a CPU watermark (the default, and the fallback of
//! every other policy) and least-loaded spreading. The algorithms are the SDK's
//! ([`mafalda_plugin_sdk::policies`]), shared with the shipped plugins.

use super::candidates::Candidates;
use super::model::{Decision, PlacementRequest};
use super::policy::{PlacementPolicy, PolicyError};
use mafalda_plugin_sdk::policies;

pub use policies::DEFAULT_CPU_WATERMARK;

/// Bin-packing — the one `pack`, natively (the embedded `pack` plugin runs the same function
/// with the same keys): fill the busiest worker that is not full (predicted CPU under the
/// watermark, fewer transports than the cap when one is set), preferring workers that already
/// host the transport's room (room affinity) and router; start a worker only when every worker
/// is full and the pool is below its maximum; never exceed the maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinPack {
    /// CPU share above which a worker counts as full (`cpu_watermark`).
    pub watermark: f64,
    /// Transports at which a worker counts as full (`max_transports`; `None`: no cap).
    pub max_transports: Option<u32>,
}

impl Default for BinPack {
    fn default() -> Self {
        Self { watermark: DEFAULT_CPU_WATERMARK, max_transports: None }
    }
}

impl BinPack {
    /// The pack rules these settings make (room affinity on, as the plugin's).
    pub fn rules(&self) -> policies::PackRules {
        policies::PackRules { cpu_watermark: self.watermark, max_transports: self.max_transports, room_affinity: true }
    }

    /// The bin-packing decision (infallible; used as the fallback of every other policy).
    pub fn decide(&self, request: &PlacementRequest, cells: &Candidates) -> Decision {
        policies::bin_pack(request, cells.list(), &self.rules())
    }

    /// The same settings as the `pack` plugin's configuration keys (`cpu_watermark`,
    /// `max_transports`; 0 for no cap).
    pub fn plugin_config(&self) -> Vec<(String, String)> {
        vec![
            ("cpu_watermark".to_string(), self.watermark.to_string()),
            ("max_transports".to_string(), self.max_transports.unwrap_or(0).to_string()),
        ]
    }
}

impl PlacementPolicy for BinPack {
    fn name(&self) -> &str {
        "pack"
    }

    fn place(&self, request: &PlacementRequest, cells: &Candidates) -> Result<Decision, PolicyError> {
        Ok(self.decide(request, cells))
    }
}

/// Least-loaded spreading: use every worker the pool may have, then the one carrying the
/// fewest objects (CPU breaks ties: counts change at once, CPU only at the next sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Spread;

impl PlacementPolicy for Spread {
    fn name(&self) -> &str {
        "spread"
    }

    fn place(&self, request: &PlacementRequest, cells: &Candidates) -> Result<Decision, PolicyError> {
        Ok(policies::spread(request, cells.list()))
    }
}
