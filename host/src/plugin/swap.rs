//! A plugin that can be replaced while in use: callers take the current instances (an `Arc`),
//! a reload builds new ones off to the side and swaps them in atomically; calls in flight
//! finish on the old ones. A reload that fails keeps the old plugin.

use super::error::PluginError;
use super::instances::{Instances, World};
use super::runtime::{PluginKind, PluginRuntime};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// A swappable plugin of world `W`.
pub struct Swappable<W> {
    label: String,
    source: Option<PathBuf>,
    config: Vec<(String, String)>,
    runtime: Arc<PluginRuntime>,
    current: RwLock<Arc<Instances<W>>>,
    swaps: AtomicU64,
}

impl<W> std::fmt::Debug for Swappable<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin").field("name", &self.label).field("source", &self.source).finish()
    }
}

impl<W: World> Swappable<W> {
    /// Wraps instances of a plugin of `kind` loaded from `source` (when it came from a file).
    pub fn new(
        runtime: Arc<PluginRuntime>,
        instances: Instances<W>,
        source: Option<&Path>,
        config: &[(String, String)],
    ) -> Self {
        Self {
            label: instances.name().to_string(),
            source: source.map(Path::to_path_buf),
            config: config.to_vec(),
            runtime,
            current: RwLock::new(Arc::new(instances)),
            swaps: AtomicU64::new(0),
        }
    }

    /// Loads bytes as a plugin of `kind` (refusing other worlds).
    pub fn from_bytes(
        runtime: Arc<PluginRuntime>,
        kind: PluginKind,
        name: &str,
        bytes: &[u8],
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let compiled = runtime.load(name, bytes)?;
        Self::from_compiled(runtime, kind, compiled, None, config)
    }

    /// Instances of `compiled` (refusing another world than `kind`), wrapped; `source` is the
    /// file a reload reads again.
    pub fn from_compiled(
        runtime: Arc<PluginRuntime>,
        kind: PluginKind,
        compiled: super::runtime::Compiled,
        source: Option<&Path>,
        config: &[(String, String)],
    ) -> Result<Self, PluginError> {
        let instances = build::<W>(&runtime, kind, compiled, config)?;
        Ok(Self::new(runtime, instances, source, config))
    }

    /// The plugin's name.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file it was loaded from, if any.
    pub fn source(&self) -> Option<&Path> {
        self.source.as_deref()
    }

    /// How many times a reload swapped a new version in.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Acquire)
    }

    /// The instances calls should use now.
    pub fn current(&self) -> Arc<Instances<W>> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Recompiles the source file and swaps the new plugin in; on any error the old one stays.
    pub fn reload(&self, kind: PluginKind) -> Result<(), PluginError> {
        let Some(path) = &self.source else {
            return Ok(());
        };
        let fresh = build::<W>(&self.runtime, kind, self.runtime.load_file(path)?, &self.config)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        self.swaps.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

/// Instances of `compiled`, refusing it when it implements another hook than `kind`.
pub fn build<W: World>(
    runtime: &Arc<PluginRuntime>,
    kind: PluginKind,
    compiled: super::runtime::Compiled,
    config: &[(String, String)],
) -> Result<Instances<W>, PluginError> {
    if compiled.kind != kind {
        return Err(PluginError::WrongWorld {
            name: compiled.name.clone(),
            reason: format!("expected a {} but it is a {}", kind.world(), compiled.kind.world()),
            exports: compiled.exports.join(", "),
        });
    }
    Instances::new(Arc::clone(runtime), compiled, config)
}
