//! `spread`: least-loaded placement. Uses every worker the pool may have (a new one while every
//! worker carries something), then the one carrying the fewest objects (CPU breaks ties).

use mafalda_plugin_sdk::policies::spread;
use mafalda_plugin_sdk::prelude::*;

/// The spreading policy.
pub struct Spread;

impl Placement for Spread {
    fn place(request: &Request, cells: &[Candidate]) -> Decision {
        spread(request, cells)
    }
}

mafalda_plugin_sdk::export_placement!(Spread);

#[cfg(test)]
mod tests {
    use super::*;
    use mafalda_plugin_sdk::cells;
    use mafalda_plugin_sdk::testing::{cell, place};

    #[test]
    fn fills_every_worker_then_the_emptiest() {
        let request = Request::new("r").with_max_cells(2);
        assert_eq!(place::<Spread>(&request, &[cell(0).with_transports(1)]), Decision::NewCell);
        let cells = cells![cell(0).with_transports(3), cell(1).with_transports(1)];
        assert_eq!(place::<Spread>(&request, &cells), Decision::Cell(1));
    }
}
