//! How it is done: the machinery behind the mediasoup-shaped API of [`crate::api`]. Nothing
//! here names an API type; the API layer plugs in through traits (`RouterReport`,
//! `registry::Registered`) and the cell backend seam ([`crate::backend`]).
//!
//! - [`host`]: the cells shared by every virtual worker and router, placement, sampling, idle
//!   release, host-wide events;
//! - [`cell`]: one place objects live (a worker through its backend), its counts and CPU;
//! - [`load_model`]: the predicted load of a cell (measured CPU + what is placed or coming);
//! - `real_routers`: the per-cell real routers of a virtual router;
//! - `registry`: where each producer lives, and what closes with a router;
//! - `pipes`: producers made available in other cells, from backend primitives;
//! - [`port_plan`]: where each virtual WebRTC server listens in each worker slot;
//! - `dump`: merging real routers' dumps;
//! - `object`, `lifecycle`: slots, close events, members of cells;
//! - [`histogram`]: lock-free duration histograms (plugin calls);
//! - [`media_counters`]: per-cell RTP totals from the objects' stats;
//! - [`footprint`]: the size of every internal table, for leak checks;
//! - [`node_scope`]: which hosts a placement may use (a fleet's node selection).

pub mod cell;
pub(crate) mod dump;
pub mod footprint;
pub mod histogram;
pub mod host;
pub(crate) mod lifecycle;
pub mod load_model;
pub mod media_counters;
pub mod node_scope;
pub(crate) mod object;
pub(crate) mod pause;
pub(crate) mod pipes;
pub mod port_plan;
pub(crate) mod real_routers;
pub(crate) mod registry;
pub mod source;
