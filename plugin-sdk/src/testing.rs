//! Native test helpers: build requests and cells tersely, without wasm.
//!
//! ```
//! use mafalda_plugin_sdk::{cells, testing::cell, types::Request};
//! let cells = cells![cell(0).with_cpu(0.7), cell(1).with_router("room-1")];
//! assert_eq!(cells.len(), 2);
//! assert!(cells[1].hosts_router("room-1"));
//! let request = Request::new("room-1").with_label("role", "presenter");
//! assert_eq!(request.label("role"), Some("presenter"));
//! ```

use crate::types::Cell;

/// An empty cell with this id (chain `with_*` to fill it).
pub fn cell(id: u32) -> Cell {
    Cell::new(id)
}

/// A `Vec<Cell>` from cell expressions.
#[macro_export]
macro_rules! cells {
    ($($cell:expr),* $(,)?) => {
        vec![$($cell),*]
    };
}
