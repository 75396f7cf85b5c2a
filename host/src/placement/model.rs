//! The placement vocabulary. It is the plugin SDK's (`mafalda_plugin_sdk::types`), so the host,
//! the shipped plugins and plugins unit-tested natively all speak exactly the same types; the
//! host adds [`CellId`] for its own bookkeeping.

pub use mafalda_plugin_sdk::types::{Cell as CellLoad, Decision, Direction, Request as PlacementRequest};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Identifies a cell: one place mediasoup objects can live (a worker).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellId(pub u32);

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cell-{}", self.0)
    }
}
