//! Native test helpers: describe cells in full and tersely, and run a placement policy on them
//! as the host would (through the [`Candidate`](crate::candidate::Candidate) view), without wasm;
//! likewise hosts of a fleet and a node selection (through the
//! [`FleetNode`](crate::fleet::FleetNode) view).
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

/// What placement policy `P` decides for `request` given `cells`, seen as the host shows them.
#[cfg(feature = "guest")]
pub fn place<P: crate::guest::Placement>(request: &crate::types::Request, cells: &[Cell]) -> crate::types::Decision {
    P::place(request, &crate::candidate::candidates(request, cells))
}

/// A host of a fleet named `name` in `region`, idle (chain `with_*` to fill it).
pub fn node(name: &str, region: &str) -> crate::fleet::FleetNode {
    crate::fleet::FleetNode::new(name, region)
}

/// `n` varied hosts, as a large fleet looks: three regions sharing their names ("eu",
/// "us-east", "ap"), names of varying length (every seventh not ASCII), mixed load, workers and
/// routers, a few draining, some linked. Each host's index is its position.
pub fn varied_fleet(n: usize) -> Vec<crate::fleet::FleetNode> {
    let regions: [crate::candidate::Name; 3] = ["eu".into(), "us-east".into(), "ap".into()];
    (0..n)
        .map(|i| {
            let name = if i % 7 == 0 { format!("hôte-{i:04}") } else { format!("h{i}") };
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let small = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
            let mut node = crate::fleet::FleetNode::shared(index, &name.into(), &regions[i % 3])
                .with_load((i * 37 % 90) as f64 / 100.0)
                .with_workers(1 + small(i % 4), 8)
                .with_routers(small(i * 13 % 50));
            node.draining = i % 11 == 5;
            node.linked = i % 5 == 2;
            node
        })
        .collect()
}

/// What node selection `S` answers for `request` given `nodes`, seen as the host shows them
/// (packed and unpacked: each host's index is its position in `nodes`).
#[cfg(feature = "guest")]
pub fn select_nodes<S: crate::guest::NodeSelection>(
    request: &crate::fleet::NodeRequest,
    nodes: &[crate::fleet::FleetNode],
) -> Vec<u32> {
    S::select_nodes(request, &crate::fleet::fleet(nodes))
}
