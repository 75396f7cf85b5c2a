//! Placement: where each transport goes. A pure decision engine over plain data
//! (`(request, cells) -> decision`), a policy trait, the built-in policies and the validation
//! and fallback rules. No mediasoup types here: the simulator and plugins call it as is.

pub mod builtin;
pub mod engine;
pub mod model;
pub mod policy;

pub use builtin::{BinPack, Spread, DEFAULT_CPU_WATERMARK};
pub use engine::{EngineCounters, Outcome, Placement, PlacementEngine};
pub use model::{CellId, CellLoad, Decision, Direction, PlacementRequest};
pub use policy::{PlacementPolicy, PolicyError};
