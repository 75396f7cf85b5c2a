//! Write mafalda-host plugins in plain Rust.
//!
//! A plugin implements one hook — [`Placement`](guest::Placement), [`Auth`](guest::Auth) or
//! [`Autoscale`](guest::Autoscale) — on a type, and exports it with one macro (a placement
//! policy that also chooses the hosts of a fleet implements
//! [`NodeSelection`](guest::NodeSelection) too and is exported with
//! [`export_fleet_placement!`]):
//!
//! ```
//! use mafalda_plugin_sdk::prelude::*;
//!
//! struct FirstFit;
//!
//! impl Placement for FirstFit {
//!     fn place(request: &Request, cells: &[Candidate]) -> Decision {
//!         cells.iter().find(|c| !c.draining && c.cpu < 0.8).map_or(Decision::NewCell, |c| Decision::Cell(c.id))
//!     }
//! }
//!
//! mafalda_plugin_sdk::export_placement!(FirstFit);
//! # fn main() {
//! use mafalda_plugin_sdk::testing::{cell, place};
//! assert_eq!(place::<FirstFit>(&Request::new("r"), &[cell(4)]), Decision::Cell(4));
//! # }
//! ```
//!
//! A placement policy sees each open cell as a [`Candidate`](candidate::Candidate): its load,
//! where it runs and how it relates to the request (the request's router present, transports
//! sharing each of its labels). Build with `cargo build --release --target
//! wasm32-unknown-unknown` and load the `.wasm` with `mafalda-host --plugin`. The same type is
//! unit-tested natively with `cargo test`, describing cells in full (see [`testing`]).
//!
//! Node selection sees each host of the fleet as a [`FleetNode`](fleet::FleetNode) (its load,
//! workers, routers, region, whether it drains and whether the asking host is linked to it).

pub mod candidate;
pub mod fleet;
pub mod policies;
pub mod testing;
pub mod types;
mod wit_conversions;

#[cfg(feature = "guest")]
pub mod guest;

/// What a plugin usually needs.
pub mod prelude {
    pub use crate::candidate::{Candidate, LabelMatch};
    pub use crate::fleet::{FleetNode, NodeRequest};
    #[cfg(feature = "guest")]
    pub use crate::guest::{log, now_ms, Auth, Autoscale, NodeSelection, Placement};
    pub use crate::types::{
        Action, AuthRequest, Cell, Config, Decision, Denial, Destination, Direction, Grant, LogLevel, Node, NodeAdvice,
        Operation, Request, Snapshot,
    };
}
