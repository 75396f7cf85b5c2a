//! The policy seam: anything that maps (request, cells) to a decision. Built-in policies,
//! native test policies and WebAssembly plugins all implement [`PlacementPolicy`].

use super::candidates::Candidates;
use super::model::{CellLoad, Decision, PlacementRequest};
use super::nodes::{FleetNode, NodeRequest};
use thiserror::Error;

/// A policy failed to answer (a plugin trapped, timed out, …).
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("placement policy {policy} failed: {reason}")]
pub struct PolicyError {
    /// The policy's name.
    pub policy: String,
    /// What went wrong.
    pub reason: String,
}

/// Decides where transports go.
pub trait PlacementPolicy: Send + Sync {
    /// Short name for logs and stats.
    fn name(&self) -> &str;

    /// Decides where the transport described by `request` goes among `cells` (the open cells as
    /// the request sees them: `cells.list()` for the SDK's candidates, `cells.packed()` for the
    /// rows a plugin receives).
    fn place(&self, request: &PlacementRequest, cells: &Candidates) -> Result<Decision, PolicyError>;

    /// [`PlacementPolicy::place`] over plain cells (as the plugin contract describes them).
    fn place_cells(&self, request: &PlacementRequest, cells: &[CellLoad]) -> Result<Decision, PolicyError> {
        self.place(request, &Candidates::from_cells(request, cells))
    }

    /// The plugin's counters, when the policy is a WebAssembly plugin (the metrics export
    /// them).
    fn plugin_counters(&self) -> Option<crate::plugin::PluginCounters> {
        None
    }

    /// Node selection by the policy itself (a plugin exporting `node-selection`): the hosts a
    /// room may use, as indices into `nodes`, best first. `None` (the default) lets the
    /// built-in [`super::LeastLoaded`] decide; so does an error.
    fn select_nodes(&self, _request: &NodeRequest, _nodes: &[FleetNode]) -> Option<Result<Vec<u32>, PolicyError>> {
        None
    }
}
