//! Guest bindings of the `auth-plugin` world; types and imports come from the placement world's
//! crate, so one set of conversions serves every world.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "auth-plugin",
    pub_export_macro: true,
    export_macro_name: "export_auth_world",
    default_bindings_module: "mafalda_plugin_world_auth",
    with: {
        "mafalda:plugin/types@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::types,
        "mafalda:plugin/log@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::log,
        "mafalda:plugin/clock@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::clock,
    },
});
