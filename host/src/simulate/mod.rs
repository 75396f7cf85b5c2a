//! The policy simulator (`mafalda-host simulate`): the same placement engine as the host, driven
//! by a join/leave trace over simulated cells, so placement plugins can be compared before they
//! are deployed.

pub mod model;
pub mod report;
pub mod trace;

pub use model::{LoadModel, Outcome, Simulation};
pub use trace::{generate, read, Event, Op, Shape, TraceError};
