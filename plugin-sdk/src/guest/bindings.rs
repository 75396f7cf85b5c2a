//! Guest bindings for the worlds of `wit/plugin.wit` (one crate each, see
//! `plugin-sdk/worlds/`); the fleet placement, auth and autoscale worlds reuse the placement
//! world's types and imports.

pub use mafalda_plugin_world_auth as auth;
pub use mafalda_plugin_world_autoscale as autoscale;
pub use mafalda_plugin_world_fleet_placement as fleet;
pub use mafalda_plugin_world_placement as placement;
