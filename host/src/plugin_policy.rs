//! Loading a placement policy named by configuration (`MAFALDA_POLICY`, `[placement] policy`):
//! a `.wasm` file, or the embedded default plugin.

use crate::config::{ConfigError, PolicyChoice};
use crate::placement::PlacementPolicy;
use crate::plugin::{PluginKind, PluginLimits, PluginRuntime, WasmPlacement, DEFAULT_PLACEMENT_WASM};
use std::sync::Arc;

fn invalid(choice: &PolicyChoice, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: "policy".into(), reason: format!("{choice:?}: {error}") }
}

/// The policy a plugin choice names, with default limits and no configuration.
pub(crate) fn load(choice: &PolicyChoice) -> Result<Arc<dyn PlacementPolicy>, ConfigError> {
    let runtime = PluginRuntime::new(PluginLimits::default(), None).map_err(|e| invalid(choice, e))?;
    let policy = match choice {
        PolicyChoice::Plugin(path) => {
            let compiled = runtime.load_file(path).map_err(|e| invalid(choice, e))?;
            let instances = crate::plugin::swap::build(&runtime, PluginKind::Placement, compiled, &[])
                .map_err(|e| invalid(choice, e))?;
            WasmPlacement::new(Arc::clone(&runtime), instances, Some(path), &[])
        }
        _ => WasmPlacement::from_bytes(runtime, PluginKind::Placement, "pack", DEFAULT_PLACEMENT_WASM, &[])
            .map_err(|e| invalid(choice, e))?,
    };
    Ok(Arc::new(policy))
}
