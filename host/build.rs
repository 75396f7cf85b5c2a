//! Compiles the plugins to WebAssembly (`wasm32-unknown-unknown`) with a nested cargo into a
//! target folder of their own and componentises them, so that the host can embed the default
//! placement plugin and the tests can load real plugins. No `.wasm` is checked in.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Plugin crates built to wasm: the shipped plugins, the example and the test plugins.
const PLUGINS: &[&str] = &[
    "mafalda-plugin-pack",
    "mafalda-plugin-spread",
    "mafalda-plugin-token-auth",
    "mafalda-plugin-threshold-autoscale",
    "room-affinity",
    "mafalda-test-plugin-misbehave",
    "mafalda-test-plugin-trap-auth",
    "mafalda-test-plugin-foreign",
    "mafalda-test-plugin-contract-v010",
    "mafalda-test-plugin-contract-v010-auth",
    "mafalda-test-plugin-connect-auth",
    "mafalda-test-plugin-node-select",
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_path_buf();
    // Relative to this package, so that clones sharing a build cache (fingerprints do not depend
    // on where the workspace lives) each watch their own sources.
    for watched in ["wit", "plugin-sdk", "plugins", "examples/custom-scheduler", "tests/plugins"] {
        println!("cargo:rerun-if-changed=../{watched}");
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    // <target>/<profile>/build/<pkg>/out → <target>: keep the wasm build next to the host's, so
    // it is incremental across host rebuilds.
    let target_dir = out_dir.ancestors().nth(4).map_or_else(|| out_dir.join("wasm"), |t| t.join("wasm-plugins"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--release", "--locked", "--target", "wasm32-unknown-unknown"])
        .args(["--config", "profile.release.debug=false", "--config", "profile.release.strip=true"])
        .arg("--target-dir")
        .arg(&target_dir);
    for plugin in PLUGINS {
        command.args(["-p", plugin]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in
        ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR", "RUSTC_WORKSPACE_WRAPPER"]
    {
        command.env_remove(var);
    }
    let status = command.status().unwrap_or_else(|e| panic!("could not run cargo to build the plugins: {e}"));
    if !status.success() {
        panic!(
            "building the plugins for wasm32-unknown-unknown failed (is the target installed? run scripts/bootstrap): {status}"
        );
    }
    let wasm_dir = target_dir.join("wasm32-unknown-unknown").join("release");
    assert_exists(&wasm_dir.join("mafalda_plugin_pack.wasm"));
    // The library loads components: componentise the core modules here (the library itself
    // does not depend on wit-component; see the mafalda-plugin-componentize crate).
    let components = out_dir.join("plugins");
    std::fs::create_dir_all(&components).unwrap_or_else(|e| panic!("creating {}: {e}", components.display()));
    for plugin in PLUGINS {
        let file = format!("{}.wasm", plugin.replace('-', "_"));
        let module = std::fs::read(wasm_dir.join(&file)).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        let component =
            mafalda_plugin_componentize::componentize(&module).unwrap_or_else(|e| panic!("componentising {file}: {e}"));
        std::fs::write(components.join(&file), component).unwrap_or_else(|e| panic!("writing {file}: {e}"));
    }
    println!("cargo:rustc-env=MAFALDA_PLUGIN_DIR={}", components.display());
    // The core modules too, for the tests of componentisation at load time.
    println!("cargo:rustc-env=MAFALDA_PLUGIN_MODULE_DIR={}", wasm_dir.display());
}

fn assert_exists(path: &Path) {
    if !path.exists() {
        panic!("the plugin build did not produce {}", path.display());
    }
}
