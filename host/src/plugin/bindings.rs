//! Host bindings of the three plugin worlds, generated from `wit/` by wasmtime's `bindgen!`,
//! and the host side of the plugins' two imports: `log` and a monotonic `clock`.
#![allow(missing_docs)]

use std::sync::OnceLock;
use std::time::Instant;
use wasmtime::StoreLimits;

/// The `placement-plugin` world (it also defines the types and imports every world uses).
pub mod placement {
    wasmtime::component::bindgen!({ path: "../wit", world: "placement-plugin" });
}

/// The `auth-plugin` world.
pub mod auth {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "auth-plugin",
        with: {
            "mafalda:plugin/types": super::placement::mafalda::plugin::types,
            "mafalda:plugin/log": super::placement::mafalda::plugin::log,
            "mafalda:plugin/clock": super::placement::mafalda::plugin::clock,
        },
    });
}

/// The `autoscale-plugin` world.
pub mod autoscale {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "autoscale-plugin",
        with: {
            "mafalda:plugin/types": super::placement::mafalda::plugin::types,
            "mafalda:plugin/log": super::placement::mafalda::plugin::log,
            "mafalda:plugin/clock": super::placement::mafalda::plugin::clock,
        },
    });
}

/// The WIT types, as the host sees them.
pub use placement::mafalda::plugin::types as wit;

/// What each plugin store holds: its name (for logs) and its resource limits.
pub struct PluginState {
    /// The plugin's name.
    pub name: String,
    /// Memory and instance limits of the store.
    pub limits: StoreLimits,
}

impl placement::mafalda::plugin::types::Host for PluginState {}

impl placement::mafalda::plugin::log::Host for PluginState {
    fn log(&mut self, level: wit::LogLevel, message: String) {
        let plugin = self.name.as_str();
        match level {
            wit::LogLevel::Trace => tracing::trace!(plugin, "{message}"),
            wit::LogLevel::Debug => tracing::debug!(plugin, "{message}"),
            wit::LogLevel::Info => tracing::info!(plugin, "{message}"),
            wit::LogLevel::Warn => tracing::warn!(plugin, "{message}"),
            wit::LogLevel::Error => tracing::error!(plugin, "{message}"),
        }
    }
}

impl placement::mafalda::plugin::clock::Host for PluginState {
    fn now_ms(&mut self) -> u64 {
        monotonic_ms()
    }
}

/// Milliseconds since the first call (the plugins' and the snapshots' shared clock).
pub fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
