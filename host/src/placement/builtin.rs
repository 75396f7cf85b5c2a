//! The built-in policies: bin-packing under a CPU watermark (the default, and the fallback of
//! every other policy) and least-loaded spreading. The algorithms are the SDK's
//! ([`mafalda_plugin_sdk::policies`]), shared with the shipped plugins.

use super::model::{CellLoad, Decision, PlacementRequest};
use super::policy::{PlacementPolicy, PolicyError};
use mafalda_plugin_sdk::candidate::candidates;
use mafalda_plugin_sdk::policies;

pub use policies::DEFAULT_CPU_WATERMARK;

/// Bin-packing: fill the busiest worker that is still under the CPU watermark, preferring
/// workers that already host the transport's router; start a worker only when every worker is
/// above the watermark and the pool is below its maximum; never exceed the maximum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BinPack {
    /// CPU share above which a worker counts as full.
    pub watermark: f64,
}

impl Default for BinPack {
    fn default() -> Self {
        Self { watermark: DEFAULT_CPU_WATERMARK }
    }
}

impl BinPack {
    /// The bin-packing decision (infallible; used as the fallback of every other policy).
    pub fn decide(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Decision {
        policies::bin_pack(request, &candidates(request, cells), &policies::PackRules::watermark(self.watermark))
    }
}

impl PlacementPolicy for BinPack {
    fn name(&self) -> &str {
        "pack"
    }

    fn place(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Result<Decision, PolicyError> {
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

    fn place(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Result<Decision, PolicyError> {
        Ok(policies::spread(request, &candidates(request, cells)))
    }
}
