//! Choosing the placement policy — the one way, used by the library (options, `MAFALDA_POLICY`,
//! `[placement] policy`), by `mafalda-host serve` / `demo` (`--policy`, `--plugin`) and by the
//! simulator: a [`PolicyChoice`] and the plugin runtime (with each plugin's configuration)
//! resolve to a [`PlacementPolicy`].

use crate::config::{ConfigError, PolicyChoice};
use crate::placement::{BinPack, PlacementPolicy, Spread};
use crate::plugin::{
    plugin_name, PluginConfig, PluginKind, PluginLimits, PluginRuntime, WasmPlacement, DEFAULT_PLACEMENT_WASM,
};
use std::sync::Arc;

/// What loading a plugin policy needs: a runtime (default limits when none) and the
/// configuration the plugin's `configure` receives.
#[derive(Debug, Clone, Default)]
pub struct PolicyLoader {
    /// The runtime plugins are compiled and run by (one with default limits if `None`).
    pub runtime: Option<Arc<PluginRuntime>>,
    /// Configuration of the plugins (the placement plugin receives the shared keys and its own).
    pub config: PluginConfig,
}

fn invalid(choice: &PolicyChoice, error: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid { key: "policy".into(), reason: format!("{choice:?}: {error}") }
}

impl PolicyLoader {
    fn runtime(&self, choice: &PolicyChoice) -> Result<Arc<PluginRuntime>, ConfigError> {
        match &self.runtime {
            Some(runtime) => Ok(Arc::clone(runtime)),
            None => PluginRuntime::new(PluginLimits::default(), None).map_err(|e| invalid(choice, e)),
        }
    }

    /// The policy `choice` names. `pack` — native or the embedded plugin, one algorithm — takes
    /// `pack`'s settings (the host's `cpu_watermark` and `max_transports`); keys given to the
    /// plugin itself (`--plugin-config pack.cpu_watermark=…`) win over them.
    pub fn resolve(&self, choice: &PolicyChoice, pack: BinPack) -> Result<Arc<dyn PlacementPolicy>, ConfigError> {
        Ok(match choice {
            PolicyChoice::Pack => Arc::new(pack),
            PolicyChoice::Spread => Arc::new(Spread),
            PolicyChoice::Custom(policy) => Arc::clone(policy),
            PolicyChoice::PackPlugin => {
                let mut config = pack.plugin_config();
                for (key, value) in self.config.for_plugin("pack").map_err(|e| invalid(choice, e))? {
                    config.retain(|(k, _)| *k != key);
                    config.push((key, value));
                }
                Arc::new(
                    WasmPlacement::from_bytes(
                        self.runtime(choice)?,
                        PluginKind::Placement,
                        "pack",
                        DEFAULT_PLACEMENT_WASM,
                        &config,
                    )
                    .map_err(|e| invalid(choice, e))?,
                )
            }
            PolicyChoice::Plugin(path) => {
                let runtime = self.runtime(choice)?;
                let own = self.config.for_plugin(&plugin_name(path)).map_err(|e| invalid(choice, e))?;
                let compiled = runtime.load_file(path).map_err(|e| invalid(choice, e))?;
                Arc::new(
                    WasmPlacement::from_compiled(runtime, PluginKind::Placement, compiled, Some(path), &own)
                        .map_err(|e| invalid(choice, e))?,
                )
            }
        })
    }
}
