//! WebAssembly plugins: the runtime (wasmtime component model, limits, artifact cache), warm
//! instances with deadlines and backoff, hot reload, and the three hooks as the host uses them:
//! a placement policy, an auth gate (fails closed) and an autoscale hook (fails to no action).

pub mod auth;
pub mod autoscale;
mod bindings;
pub mod cache;
pub mod config;
mod convert;
pub mod error;
pub mod instances;
pub mod placement;
pub mod runtime;
pub mod set;
pub mod swap;
pub mod watch;

pub use auth::AuthGate;
pub use autoscale::AutoscaleHook;
pub use bindings::monotonic_ms;
pub use config::{ConfigEntry, ConfigValue, PluginConfig};
pub use error::PluginError;
pub use instances::PluginCounters;
pub use placement::WasmPlacement;
pub use runtime::{
    plugin_name, set_componentizer, Compiled, Componentizer, PluginKind, PluginLimits, PluginRuntime, NODE_SELECTION,
};
pub use set::PluginSet;

/// The worlds' host bindings (for code generic over [`instances::Instances`]): a placement
/// plugin is loaded as a [`PlacementWorld`](worlds::PlacementWorld), the placement world or,
/// when it selects nodes (contract 0.1.3), the fleet placement world.
pub mod worlds {
    pub use super::bindings::auth::AuthPlugin;
    pub use super::bindings::autoscale::AutoscalePlugin;
    pub use super::bindings::fleet::FleetPlacementPlugin;
    pub use super::bindings::placement::PlacementPlugin;
    pub use super::placement::PlacementWorld;
}

/// The default placement plugin (`plugins/pack`), compiled to wasm by the build and embedded.
pub const DEFAULT_PLACEMENT_WASM: &[u8] =
    include_bytes!(concat!(env!("MAFALDA_PLUGIN_DIR"), "/mafalda_plugin_pack.wasm"));

/// Where the build put the compiled plugins (the shipped ones, the example and the test ones).
pub const BUILT_PLUGIN_DIR: &str = env!("MAFALDA_PLUGIN_DIR");
