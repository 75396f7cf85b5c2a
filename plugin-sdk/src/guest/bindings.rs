//! Guest bindings for the three worlds of `wit/plugin.wit` (one crate each, see
//! `plugin-sdk/worlds/`); the auth and autoscale worlds reuse the placement world's types and
//! imports.

pub use mafalda_plugin_world_auth as auth;
pub use mafalda_plugin_world_autoscale as autoscale;
pub use mafalda_plugin_world_placement as placement;
