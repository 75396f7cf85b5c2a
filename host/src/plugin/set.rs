//! The plugins a host runs: files given with `--plugin`, each sorted into its hook by the world
//! it implements (one per hook), configured with `--plugin-config`, reloadable together.

use super::auth::AuthGate;
use super::autoscale::AutoscaleHook;
use super::config::PluginConfig;
use super::error::PluginError;
use super::placement::WasmPlacement;
use super::runtime::{plugin_name, PluginKind, PluginRuntime};
use super::swap::Swappable;
use std::path::PathBuf;
use std::sync::Arc;

/// One loaded plugin's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginReading {
    /// Its label (file name).
    pub label: String,
    /// The hook it implements (`placement`, `auth`, `autoscale`).
    pub hook: &'static str,
    /// Its current version's counters (calls, failures, timeouts, durations).
    pub counters: super::instances::PluginCounters,
    /// Times it was reloaded.
    pub swaps: u64,
}

impl PluginReading {
    fn of<W: super::instances::World>(plugin: &Swappable<W>, kind: PluginKind) -> Self {
        Self {
            label: plugin.label().to_string(),
            hook: kind.hook(),
            counters: plugin.current().counters(),
            swaps: plugin.swaps(),
        }
    }
}

/// One plugin per hook, at most.
#[derive(Debug, Default, Clone)]
pub struct PluginSet {
    /// Where transports go.
    pub placement: Option<Arc<WasmPlacement>>,
    /// Who may do what.
    pub auth: Option<Arc<AuthGate>>,
    /// When capacity grows or shrinks.
    pub autoscale: Option<Arc<AutoscaleHook>>,
}

fn twice(kind: PluginKind, file: &std::path::Path) -> PluginError {
    PluginError::WrongWorld {
        name: file.display().to_string(),
        reason: format!("a second {} was given; one plugin per hook", kind.world()),
        exports: String::new(),
    }
}

impl PluginSet {
    /// Loads every file, configures it with its part of `config` (shared keys and its own),
    /// and sorts it into its hook.
    pub fn load(runtime: &Arc<PluginRuntime>, files: &[PathBuf], config: &PluginConfig) -> Result<Self, PluginError> {
        let mut set = Self::default();
        for file in files {
            let own = config.for_plugin(&plugin_name(file))?;
            let config = own.as_slice();
            let compiled = runtime.load_file(file)?;
            let kind = compiled.kind;
            match kind {
                PluginKind::Placement if set.placement.is_none() => {
                    set.placement =
                        Some(Arc::new(Swappable::from_compiled(runtime.clone(), kind, compiled, Some(file), config)?));
                }
                PluginKind::Auth if set.auth.is_none() => {
                    set.auth =
                        Some(Arc::new(Swappable::from_compiled(runtime.clone(), kind, compiled, Some(file), config)?));
                }
                PluginKind::Autoscale if set.autoscale.is_none() => {
                    set.autoscale =
                        Some(Arc::new(Swappable::from_compiled(runtime.clone(), kind, compiled, Some(file), config)?));
                }
                _ => return Err(twice(kind, file)),
            }
            tracing::info!(plugin = %file.display(), world = kind.world(), "plugin loaded");
        }
        Ok(set)
    }

    /// Each loaded plugin: its label, its hook (world), its current version's counters and how
    /// many times it was swapped (reloads).
    pub fn counters(&self) -> Vec<PluginReading> {
        let mut readings = Vec::new();
        if let Some(p) = &self.placement {
            readings.push(PluginReading::of(p, PluginKind::Placement));
        }
        if let Some(p) = &self.auth {
            readings.push(PluginReading::of(p, PluginKind::Auth));
        }
        if let Some(p) = &self.autoscale {
            readings.push(PluginReading::of(p, PluginKind::Autoscale));
        }
        readings
    }

    /// Files of the loaded plugins.
    pub fn sources(&self) -> Vec<PathBuf> {
        let placement = self.placement.as_ref().and_then(|p| p.source().map(PathBuf::from));
        let auth = self.auth.as_ref().and_then(|p| p.source().map(PathBuf::from));
        let autoscale = self.autoscale.as_ref().and_then(|p| p.source().map(PathBuf::from));
        [placement, auth, autoscale].into_iter().flatten().collect()
    }

    /// Recompiles every plugin from its file and swaps it in; a plugin that fails to reload is
    /// kept as it was (and the error reported).
    pub fn reload(&self) -> Vec<(String, Result<(), PluginError>)> {
        let mut results = Vec::new();
        if let Some(p) = &self.placement {
            results.push((p.label().to_string(), p.reload(PluginKind::Placement)));
        }
        if let Some(p) = &self.auth {
            results.push((p.label().to_string(), p.reload(PluginKind::Auth)));
        }
        if let Some(p) = &self.autoscale {
            results.push((p.label().to_string(), p.reload(PluginKind::Autoscale)));
        }
        for (name, result) in &results {
            match result {
                Ok(()) => tracing::info!(plugin = %name, "plugin reloaded"),
                Err(error) => {
                    tracing::error!(plugin = %name, %error, "plugin reload failed; keeping the previous version")
                }
            }
        }
        results
    }
}
