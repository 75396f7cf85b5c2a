//! A placement plugin built against the plugin contract as it was at `mafalda:plugin@0.1.0`
//! (a frozen copy in `wit/`), without the SDK: newer hosts must keep loading and calling it.
//! It places on the open cell with the least CPU (answering the first one on a tie).

wit_bindgen::generate!({ path: "wit", world: "placement-plugin" });

use exports::mafalda::plugin::lifecycle::Guest as Lifecycle;
use exports::mafalda::plugin::placement::Guest as Placement;
use mafalda::plugin::types::{Candidates, ConfigEntry, Decision, PlacementRequest};

#[allow(dead_code)]
struct Frozen;

impl Lifecycle for Frozen {
    fn configure(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
}

/// Eight numbers per cell in `loads`: id, location, transports, producers, consumers, pipes,
/// routers, flags (bit 1: draining).
const ROW: usize = 8;

impl Placement for Frozen {
    fn place(_request: PlacementRequest, cells: Candidates) -> Decision {
        let best = cells
            .loads
            .chunks(ROW)
            .zip(&cells.cpu)
            .filter(|(row, _)| row.len() == ROW && row[7] & 2 == 0)
            .min_by(|(a, ca), (b, cb)| ca.total_cmp(cb).then(a[0].cmp(&b[0])));
        best.map_or(Decision::NewCell, |(row, _)| Decision::Cell(row[0]))
    }
}

#[cfg(target_arch = "wasm32")]
export!(Frozen);
