//! The guest side: bindings generated from `wit/`, the hook traits, the export macros and the
//! host imports (log, clock).

pub mod bindings;
#[doc(hidden)]
pub mod convert;
mod macros;

use crate::candidate::Candidate;
use crate::fleet::{FleetNode, NodeRequest};
use crate::types::{Action, AuthRequest, Config, Decision, Denial, Grant, LogLevel, Request, Snapshot};

/// The generated WIT types (what crosses the component boundary).
pub use bindings::placement::mafalda::plugin::types as wit;

/// A placement policy: where a transport goes.
pub trait Placement {
    /// Decides where the transport described by `request` goes, given the open `cells` as
    /// the request sees them.
    fn place(request: &Request, cells: &[Candidate]) -> Decision;

    /// Receives the plugin's configuration once, before any `place` call.
    fn configure(config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
}

/// Node selection (contract 0.1.3): which hosts of a fleet a room may use, for a placement
/// policy that also chooses hosts. Export the type with
/// [`export_fleet_placement!`](crate::export_fleet_placement) (the `fleet-placement-plugin`
/// world); a placement plugin without it leaves the choice to the host's built-in selector.
pub trait NodeSelection: Placement {
    /// The hosts the room described by `request` may use, as indices ([`FleetNode::index`])
    /// into `nodes`, best first, at most `request.limit`. An index out of range makes the host's
    /// built-in selector decide instead; draining hosts in the answer are ignored.
    fn select_nodes(request: &NodeRequest, nodes: &[FleetNode]) -> Vec<u32>;
}

/// An auth policy: who may do what.
pub trait Auth {
    /// Grants or denies one operation.
    fn authorize(request: &AuthRequest) -> Result<Grant, Denial>;

    /// Receives the plugin's configuration once, before any `authorize` call.
    fn configure(config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
}

/// An autoscale policy: when capacity grows or shrinks.
pub trait Autoscale {
    /// Returns the actions to take now.
    fn evaluate(snapshot: &Snapshot) -> Vec<Action>;

    /// Receives the plugin's configuration once, before any `evaluate` call.
    fn configure(config: &Config) -> Result<(), String> {
        let _ = config;
        Ok(())
    }
}

/// Writes to the host's log (inside the host); to stderr in native tests.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::placement::mafalda::plugin::log::log(convert::log_level(level), message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[plugin {level:?}] {message}");
}

/// Monotonic milliseconds (the host's clock inside the host; the process's in native tests).
pub fn now_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        bindings::placement::mafalda::plugin::clock::now_ms()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        use std::time::Instant;
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}
