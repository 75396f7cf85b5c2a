//! A placement plugin as the placement engine's policy. Its failures (trap, timeout, backoff)
//! are reported as [`PolicyError`]s, so the engine's built-in packer decides instead; invalid
//! answers are caught by the engine's validation.

use super::bindings::placement::PlacementPlugin;
use super::convert::{decision_from_wit, packed_to_wit, request_to_wit};
use super::instances::{Instances, PluginCounters};
use super::swap::Swappable;
use crate::placement::{Candidates, Decision, PlacementPolicy, PlacementRequest, PolicyError};

/// A placement policy implemented by a WebAssembly plugin (hot-swappable).
pub type WasmPlacement = Swappable<PlacementPlugin>;

impl PlacementPolicy for WasmPlacement {
    fn name(&self) -> &str {
        self.label()
    }

    fn place(&self, request: &PlacementRequest, cells: &Candidates) -> Result<Decision, PolicyError> {
        let packed = cells.packed();
        let view = packed_to_wit(packed);
        let request = request_to_wit(request);
        // The `load` import answers these during the call (in the candidates' order).
        let predicted: Vec<f64> = packed.cpu.iter().zip(&packed.predicted).map(|(c, p)| c.max(*p)).collect();
        self.current()
            .call(|plugin, store| {
                store.data_mut().predicted = predicted;
                plugin.mafalda_plugin_placement().call_place(store, &request, &view)
            })
            .map(decision_from_wit)
            .map_err(|e| PolicyError { policy: self.label().to_string(), reason: e.to_string() })
    }

    fn plugin_counters(&self) -> Option<PluginCounters> {
        Some(self.counters())
    }
}

impl WasmPlacement {
    /// The current plugin's counters.
    pub fn counters(&self) -> PluginCounters {
        Instances::counters(&self.current())
    }
}
