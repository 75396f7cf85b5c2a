//! Placement: where each transport goes. A pure decision engine over plain data
//! (`(request, cells) -> decision`), a policy trait, the built-in policies and the validation
//! and fallback rules. No mediasoup types here: the simulator and plugins call it as is.

pub mod builtin;
pub mod candidates;
pub mod engine;
pub mod model;
pub mod nodes;
pub mod policy;

pub use builtin::{BinPack, Spread, DEFAULT_CPU_WATERMARK};
pub use candidates::{pack_rows, Candidates, PlacementRow, RowReading};
pub use engine::{EngineCounters, Outcome, Placement, PlacementEngine};
pub use mafalda_plugin_sdk::candidate::{Candidate, LabelMatch, Packed};
pub use model::{CellId, CellLoad, Decision, Direction, PlacementRequest};
pub use nodes::{FleetNode, LeastLoaded, NodeRequest, NodeSelector, SelectError};
pub use policy::{PlacementPolicy, PolicyError};
