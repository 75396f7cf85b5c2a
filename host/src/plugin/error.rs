//! What can go wrong with a plugin, as the host reports it.

use std::path::PathBuf;
use thiserror::Error;

/// A plugin could not be loaded or did not answer.
#[derive(Debug, Error)]
pub enum PluginError {
    /// The file could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not WebAssembly.
    #[error("plugin {name} is not WebAssembly (no \\0asm header)")]
    NotWasm {
        /// The plugin.
        name: String,
    },
    /// A core module that cannot be turned into a component (e.g. no wit-bindgen metadata).
    #[error("plugin {name} is a core wasm module that cannot be made a component: {reason}")]
    Componentize {
        /// The plugin.
        name: String,
        /// Why.
        reason: String,
    },
    /// Compilation failed (invalid wasm).
    #[error("plugin {name} does not compile: {reason}")]
    Compile {
        /// The plugin.
        name: String,
        /// Why.
        reason: String,
    },
    /// The component implements none (or several) of the hooks, or not the expected one.
    #[error("plugin {name} is of the wrong world: {reason} (it exports: {exports})")]
    WrongWorld {
        /// The plugin.
        name: String,
        /// What was expected.
        reason: String,
        /// What it exports.
        exports: String,
    },
    /// The component imports something the host does not provide.
    #[error("plugin {name} imports {imports}, but the host provides only mafalda:plugin/log and mafalda:plugin/clock")]
    Imports {
        /// The plugin.
        name: String,
        /// The unexpected imports.
        imports: String,
    },
    /// Instantiation failed.
    #[error("plugin {name} cannot be instantiated: {reason}")]
    Instantiate {
        /// The plugin.
        name: String,
        /// Why.
        reason: String,
    },
    /// `configure` refused the configuration.
    #[error("plugin {name} refused its configuration: {reason}")]
    Configure {
        /// The plugin.
        name: String,
        /// Why.
        reason: String,
    },
    /// The call ran past its deadline (or out of fuel).
    #[error("plugin {name} ran out of time ({limit})")]
    Timeout {
        /// The plugin.
        name: String,
        /// Which limit.
        limit: String,
    },
    /// The call trapped (panic, out-of-bounds, memory limit …).
    #[error("plugin {name} trapped: {reason}")]
    Trap {
        /// The plugin.
        name: String,
        /// The trap.
        reason: String,
    },
    /// The plugin failed recently and is not called until its backoff ends.
    #[error("plugin {name} is backing off after a failure ({remaining_ms} ms left)")]
    BackingOff {
        /// The plugin.
        name: String,
        /// Time left.
        remaining_ms: u64,
    },
    /// The precompiled-artifact cache failed.
    #[error("plugin artifact cache: {0}")]
    Cache(String),
    /// The wasm engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
}
