//! A placement plugin as the placement engine's policy. Its failures (trap, timeout, backoff)
//! are reported as [`PolicyError`]s, so the engine's built-in packer decides instead; invalid
//! answers are caught by the engine's validation. A plugin of the `fleet-placement-plugin` world
//! (contract 0.1.3) also selects nodes; its failures and answers naming no host likewise leave
//! the choice to the built-in selector.

use super::bindings::fleet::exports::mafalda::plugin::node_selection as node_wit;
use super::bindings::fleet::FleetPlacementPlugin;
use super::bindings::placement::PlacementPlugin;
use super::bindings::PluginState;
use super::convert::{decision_from_wit, packed_to_wit, request_to_wit};
use super::instances::{Instances, PluginCounters, World};
use super::runtime::Compiled;
use super::swap::Swappable;
use crate::placement::nodes::MAX_SELECTED;
use crate::placement::{Candidates, Decision, FleetNode, NodeRequest, PlacementPolicy, PlacementRequest, PolicyError};
use mafalda_plugin_sdk::fleet::{pack_nodes, PackedNodes};
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

/// A placement plugin's bindings: the `placement-plugin` world, or the `fleet-placement-plugin`
/// world when the component exports `node-selection` (contract 0.1.3). Both import the same
/// host interfaces; plugins built against any 0.1 version load as one or the other.
pub enum PlacementWorld {
    /// A placement plugin (any 0.1 version).
    Placement(PlacementPlugin),
    /// A placement plugin that also selects nodes.
    Fleet(FleetPlacementPlugin),
}

impl World for PlacementWorld {
    fn add_to_linker(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
        // The fleet world imports exactly what the placement world imports.
        PlacementPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |state| state)
    }

    fn instantiate(
        store: &mut Store<PluginState>,
        compiled: &Compiled,
        linker: &Linker<PluginState>,
    ) -> wasmtime::Result<Self> {
        if compiled.selects_nodes() {
            FleetPlacementPlugin::instantiate(store, &compiled.component, linker).map(Self::Fleet)
        } else {
            PlacementPlugin::instantiate(store, &compiled.component, linker).map(Self::Placement)
        }
    }

    fn configure(
        &self,
        store: &mut Store<PluginState>,
        config: &[super::bindings::wit::ConfigEntry],
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Self::Placement(plugin) => plugin.mafalda_plugin_lifecycle().call_configure(store, config),
            Self::Fleet(plugin) => plugin.mafalda_plugin_lifecycle().call_configure(store, config),
        }
    }
}

/// A placement policy implemented by a WebAssembly plugin (hot-swappable; a reload may bring a
/// version that selects nodes, or one that no longer does).
pub type WasmPlacement = Swappable<PlacementWorld>;

/// The WIT form of a node selection's request.
fn node_request_to_wit(request: &NodeRequest) -> node_wit::NodeRequest {
    node_wit::NodeRequest {
        router: request.router.clone(),
        region: request.region.clone(),
        used: request.used.clone(),
        limit: request.limit,
    }
}

/// The WIT form of packed nodes.
fn packed_nodes_to_wit(packed: PackedNodes) -> node_wit::FleetNodes {
    node_wit::FleetNodes {
        names: packed.names,
        regions: packed.regions.iter().map(|r| r.to_string()).collect(),
        rows: packed.rows,
        load: packed.load,
    }
}

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
                match plugin {
                    PlacementWorld::Placement(p) => p.mafalda_plugin_placement().call_place(store, &request, &view),
                    PlacementWorld::Fleet(p) => p.mafalda_plugin_placement().call_place(store, &request, &view),
                }
            })
            .map(decision_from_wit)
            .map_err(|e| PolicyError { policy: self.label().to_string(), reason: e.to_string() })
    }

    fn plugin_counters(&self) -> Option<PluginCounters> {
        Some(self.counters())
    }

    /// The plugin's node selection, when it exports `node-selection` (else `None`): called under
    /// the same limits, backoff and counters as `place`. A trap, a timeout, a backoff or an
    /// answer naming an index out of range is an error (the built-in selector decides); the
    /// answer is cut to `request.limit` (at least 1, at most [`MAX_SELECTED`]).
    fn select_nodes(&self, request: &NodeRequest, nodes: &[FleetNode]) -> Option<Result<Vec<u32>, PolicyError>> {
        let current = self.current();
        if !current.compiled().selects_nodes() {
            return None;
        }
        let failed = |reason: String| PolicyError { policy: self.label().to_string(), reason };
        let wit_request = node_request_to_wit(request);
        let wit_nodes = packed_nodes_to_wit(pack_nodes(nodes));
        let answer = current.call(|plugin, store| match plugin {
            PlacementWorld::Fleet(p) => {
                // No placement call is in progress: the `load` import answers nothing.
                store.data_mut().predicted.clear();
                p.mafalda_plugin_node_selection().call_select_nodes(store, &wit_request, &wit_nodes).map(Some)
            }
            // Not reached: a plugin exporting `node-selection` is instantiated in the fleet world.
            PlacementWorld::Placement(_) => Ok(None),
        });
        let mut chosen = match answer {
            Ok(Some(chosen)) => chosen,
            Ok(None) => return None,
            Err(e) => return Some(Err(failed(e.to_string()))),
        };
        if let Some(wrong) = chosen.iter().find(|i| **i as usize >= nodes.len()) {
            return Some(Err(failed(format!(
                "node selection answered host {wrong}, out of range ({} hosts)",
                nodes.len()
            ))));
        }
        chosen.truncate((request.limit as usize).clamp(1, MAX_SELECTED));
        Some(Ok(chosen))
    }
}

impl WasmPlacement {
    /// The current plugin's counters.
    pub fn counters(&self) -> PluginCounters {
        Instances::counters(&self.current())
    }

    /// Whether the current plugin selects nodes (it exports `node-selection`, contract 0.1.3).
    pub fn selects_nodes(&self) -> bool {
        self.current().compiled().selects_nodes()
    }
}
