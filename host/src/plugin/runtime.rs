//! The plugin runtime: one wasmtime engine (component model, epoch interruption, optional fuel),
//! the epoch ticker that enforces call deadlines, and loading: bytes → component (a core module
//! is componentised by the installed componentizer) → compiled (cached) → checked against the
//! contract (which hook it implements, nothing but `log`/`clock` imported).

use super::cache::{self, ArtifactCache};
use super::error::PluginError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

/// Interval at which the engine's epoch advances: the resolution of call deadlines.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Which hook a plugin implements (its world).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// `placement-plugin`.
    Placement,
    /// `auth-plugin`.
    Auth,
    /// `autoscale-plugin`.
    Autoscale,
}

impl PluginKind {
    /// The world's name in `wit/plugin.wit`.
    pub fn world(self) -> &'static str {
        match self {
            Self::Placement => "placement-plugin",
            Self::Auth => "auth-plugin",
            Self::Autoscale => "autoscale-plugin",
        }
    }

    /// The hook's short name (`placement`, `auth`, `autoscale`).
    pub fn hook(self) -> &'static str {
        match self {
            Self::Placement => "placement",
            Self::Auth => "auth",
            Self::Autoscale => "autoscale",
        }
    }

    fn hook_export(self) -> &'static str {
        match self {
            Self::Placement => "mafalda:plugin/placement",
            Self::Auth => "mafalda:plugin/auth",
            Self::Autoscale => "mafalda:plugin/autoscale",
        }
    }
}

/// The contract versions this host runs: `mafalda:plugin@0.1.x` (0.1.1 added the `load`
/// import, 0.1.2 the `connect-target` import, 0.1.3 the `node-selection` export in a new world;
/// plugins built against earlier 0.1 versions keep loading).
pub const CONTRACT: &str = "0.1";

/// The interface a placement plugin of the `fleet-placement-plugin` world exports besides
/// `placement` (contract 0.1.3), unversioned.
pub const NODE_SELECTION: &str = "mafalda:plugin/node-selection";

/// `name` without its version, if the version is one of [`CONTRACT`]'s.
fn unversioned(name: &str) -> Option<&str> {
    let (interface, version) = name.split_once('@')?;
    let minor = version.strip_prefix(CONTRACT)?;
    (minor.starts_with('.') && minor[1..].chars().all(|c| c.is_ascii_digit()) && minor.len() > 1).then_some(interface)
}

/// Limits applied to every plugin call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginLimits {
    /// CPU-time budget of one call (default 5 ms).
    pub deadline: Duration,
    /// Most linear memory a plugin instance may have (default 16 MiB).
    pub memory: usize,
    /// Wasm fuel per call, when set (deterministic instruction budget).
    pub fuel: Option<u64>,
    /// Wall-clock bound of one call (default 200 ms; whichever of it and `deadline` comes first
    /// stops a call): a call is interrupted at the first epoch tick past it even when it used
    /// little CPU (its thread descheduled).
    pub wall: Duration,
    /// Most elements all tables of an instance may grow to (default 20,000), as memory is
    /// capped.
    pub table_elements: usize,
    /// Idle warm instances kept after a burst of concurrent calls (default 4); more are
    /// dropped when they come back.
    pub warm_instances: usize,
    /// Guest `log` calls forwarded per instance per second (default 50); the rest are dropped
    /// and counted, and one line per second says how many.
    pub logs_per_second: u32,
}

impl Default for PluginLimits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(5),
            memory: 16 << 20,
            fuel: None,
            wall: Duration::from_millis(200),
            table_elements: 20_000,
            warm_instances: 4,
            logs_per_second: 50,
        }
    }
}

/// A compiled, checked plugin.
pub struct Compiled {
    /// Name (file stem) for logs and errors.
    pub name: String,
    /// The hook it implements.
    pub kind: PluginKind,
    /// The compiled component.
    pub component: Component,
    /// Exported interface names.
    pub exports: Vec<String>,
    /// Imported interface names.
    pub imports: Vec<String>,
    /// Whether the native code came from the artifact cache.
    pub from_cache: bool,
}

impl Compiled {
    /// Whether the plugin exports `interface` (unversioned, e.g. [`NODE_SELECTION`]) at one of
    /// [`CONTRACT`]'s versions.
    pub fn exports_interface(&self, interface: &str) -> bool {
        self.exports.iter().any(|e| unversioned(e) == Some(interface))
    }

    /// Whether it is a placement plugin that also selects nodes (it exports [`NODE_SELECTION`]).
    pub fn selects_nodes(&self) -> bool {
        self.kind == PluginKind::Placement && self.exports_interface(NODE_SELECTION)
    }
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled").field("name", &self.name).field("kind", &self.kind).finish()
    }
}

/// The engine and everything shared by all plugins.
pub struct PluginRuntime {
    engine: Engine,
    limits: PluginLimits,
    cache: Option<ArtifactCache>,
    ticking: Arc<AtomicBool>,
}

impl std::fmt::Debug for PluginRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginRuntime").field("limits", &self.limits).finish()
    }
}

impl Drop for PluginRuntime {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::Relaxed);
    }
}

/// The name a plugin is known by: its file stem.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem().map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

impl PluginRuntime {
    /// A runtime with `limits`, caching compiled artifacts in `cache_dir` (the default folder
    /// when `None`; a cache that cannot be opened only costs recompilation).
    pub fn new(limits: PluginLimits, cache_dir: Option<PathBuf>) -> Result<Arc<Self>, PluginError> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.consume_fuel(limits.fuel.is_some());
        // Compiling a reload on every core would starve the threads placing transports.
        config.parallel_compilation(false);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(e.to_string()))?;
        let cache = match ArtifactCache::open(&cache_dir.unwrap_or_else(cache::default_dir)) {
            Ok(cache) => Some(cache),
            Err(error) => {
                tracing::warn!(%error, "plugin artifact cache unavailable; plugins are compiled on every load");
                None
            }
        };
        let ticking = Arc::new(AtomicBool::new(true));
        let ticker = engine.weak();
        let running = Arc::clone(&ticking);
        std::thread::Builder::new()
            .name("mafalda-epoch".into())
            .spawn(move || {
                while running.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match ticker.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| PluginError::Engine(format!("epoch ticker thread: {e}")))?;
        Ok(Arc::new(Self { engine, limits, cache, ticking }))
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The call limits.
    pub fn limits(&self) -> &PluginLimits {
        &self.limits
    }

    /// Reads and loads a plugin file.
    pub fn load_file(&self, path: &Path) -> Result<Compiled, PluginError> {
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read { path: path.to_path_buf(), source })?;
        self.load(&plugin_name(path), &bytes)
    }

    /// Loads a plugin from its bytes: a component, or a core module with wit-bindgen metadata.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<Compiled, PluginError> {
        let name = name.to_string();
        let component = to_component(&name, bytes)?;
        let compiled = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, &component),
            None => Component::new(&self.engine, &component).map(|c| (c, false)),
        };
        let (component, from_cache) =
            compiled.map_err(|e| PluginError::Compile { name: name.clone(), reason: format!("{e:#}") })?;
        let ty = component.component_type();
        let exports: Vec<String> = ty.exports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let imports: Vec<String> = ty.imports(&self.engine).map(|(n, _)| n.to_string()).collect();
        let provided = [
            "mafalda:plugin/log",
            "mafalda:plugin/clock",
            "mafalda:plugin/types",
            "mafalda:plugin/load",
            "mafalda:plugin/connect-target",
        ];
        let foreign: Vec<&String> =
            imports.iter().filter(|i| !unversioned(i).is_some_and(|name| provided.contains(&name))).collect();
        if !foreign.is_empty() {
            let imports = foreign.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ");
            return Err(PluginError::Imports { name, imports });
        }
        let kinds: Vec<PluginKind> = [PluginKind::Placement, PluginKind::Auth, PluginKind::Autoscale]
            .into_iter()
            .filter(|k| exports.iter().any(|e| unversioned(e) == Some(k.hook_export())))
            .collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                return Err(PluginError::WrongWorld {
                    name,
                    reason: "it implements none of placement, auth, autoscale".into(),
                    exports: exports.join(", "),
                })
            }
            _ => {
                return Err(PluginError::WrongWorld {
                    name,
                    reason: "a plugin implements exactly one hook".into(),
                    exports: exports.join(", "),
                })
            }
        };
        Ok(Compiled { name, kind, component, exports, imports, from_cache })
    }
}

/// Turns a core module into a component (see [`set_componentizer`]).
pub type Componentizer = Box<dyn Fn(&[u8]) -> Result<Vec<u8>, String> + Send + Sync>;

static COMPONENTIZER: OnceLock<Componentizer> = OnceLock::new();

/// Installs the function that turns plugins built as core modules into components, e.g.
/// `set_componentizer(mafalda_plugin_componentize::componentize)`. Without one, only components
/// load. It is not built into the library because `wit-component` brings `serde_json` into the
/// crate graph, which changes type inference in applications (see that crate). The first
/// installation wins.
pub fn set_componentizer<F, E>(componentizer: F)
where
    F: Fn(&[u8]) -> Result<Vec<u8>, E> + Send + Sync + 'static,
    E: std::fmt::Display,
{
    let _ = COMPONENTIZER.set(Box::new(move |wasm| componentizer(wasm).map_err(|e| e.to_string())));
}

/// The component form of `bytes`.
fn to_component(name: &str, bytes: &[u8]) -> Result<Vec<u8>, PluginError> {
    if !bytes.starts_with(b"\0asm") || bytes.len() < 8 {
        return Err(PluginError::NotWasm { name: name.to_string() });
    }
    // Layer byte: 0 for a core module, 1 for a component.
    if bytes[6] == 1 {
        return Ok(bytes.to_vec());
    }
    let refuse = |reason: String| PluginError::Componentize { name: name.to_string(), reason };
    match COMPONENTIZER.get() {
        Some(componentize) => componentize(bytes).map_err(refuse),
        None => Err(refuse(
            "a core module, and this host loads components: componentise it with `mafalda-host plugin \
             componentize IN OUT`, or install mafalda-plugin-componentize (plugin::set_componentizer)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_wasm() {
        assert!(matches!(to_component("x", b"hello, world"), Err(PluginError::NotWasm { .. })));
        assert!(matches!(to_component("x", b""), Err(PluginError::NotWasm { .. })));
    }

    #[test]
    fn a_core_module_needs_a_componentizer() {
        // The smallest valid core module: header only. No componentizer is installed here.
        match to_component("empty", b"\0asm\x01\0\0\0") {
            Err(PluginError::Componentize { reason, .. }) => assert!(reason.contains("componentize"), "{reason}"),
            other => panic!("expected Componentize, got {other:?}"),
        }
    }
}
