//! An autoscale plugin as the host's autoscale hook. Its failures take no action.

use super::bindings::autoscale::AutoscalePlugin;
use super::convert::{action_from_wit, snapshot_to_wit};
use super::swap::Swappable;
use mafalda_plugin_sdk::types::{Action, Snapshot};

/// An autoscale hook implemented by a WebAssembly plugin (hot-swappable).
pub type AutoscaleHook = Swappable<AutoscalePlugin>;

impl AutoscaleHook {
    /// The actions the plugin asks for given `snapshot`; none when it fails.
    pub fn evaluate(&self, snapshot: &Snapshot) -> Vec<Action> {
        let wit_snapshot = snapshot_to_wit(snapshot);
        match self.current().call(|plugin, store| plugin.mafalda_plugin_autoscale().call_evaluate(store, &wit_snapshot))
        {
            Ok(actions) => actions.into_iter().map(action_from_wit).collect(),
            Err(error) => {
                tracing::warn!(%error, "autoscale plugin failed: no action");
                Vec::new()
            }
        }
    }
}
