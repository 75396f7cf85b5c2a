//! Guest bindings of the `placement-plugin` world (and the types and imports every world
//! shares). Each world lives in its own crate because wit-bindgen's exported helper macros are
//! named after the interfaces, and every world exports `lifecycle`.
#![allow(missing_docs, clippy::all)]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "placement-plugin",
    pub_export_macro: true,
    export_macro_name: "export_placement_world",
    default_bindings_module: "mafalda_plugin_world_placement",
});
