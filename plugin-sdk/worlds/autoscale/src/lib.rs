//! Guest bindings of the `autoscale-plugin` world; types and imports come from the placement world's
//! crate, so one set of conversions serves every world.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "autoscale-plugin",
    pub_export_macro: true,
    export_macro_name: "export_autoscale_world",
    default_bindings_module: "mafalda_plugin_world_autoscale",
    with: {
        "mafalda:plugin/types@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::types,
        "mafalda:plugin/log@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::log,
        "mafalda:plugin/clock@0.1.3": mafalda_plugin_world_placement::mafalda::plugin::clock,
    },
});
