//! What the host keeps, counted: the size of every internal table, list and ledger of the host,
//! its cells and its live virtual routers ([`Host::footprint`]). With nothing open, every
//! field but the cells, the settings-sets and the host's event handlers is zero; a leak check
//! compares it before and after churn.

use crate::internals::host::Host;
use serde::Serialize;

/// The sizes of the host's internal state (read-only; reading it changes nothing).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Footprint {
    /// Open cells (workers of this host, and of peers).
    pub cells: usize,
    /// Settings-sets (worker templates) the host keeps.
    pub settings_sets: usize,
    /// Handlers on the host's events (virtual workers register two each).
    pub host_event_handlers: usize,
    /// Live virtual routers in the host's reporters list.
    pub routers: usize,
    /// Producers in the rate book, gone ones included until the sampler's next poll forgets them.
    pub rate_sources: usize,
    /// Producers in the rate book that are still alive.
    pub rate_sources_live: usize,
    /// WebRTC servers' port plans claimed.
    pub port_claims: usize,
    /// Objects counted in the cells (transports, producers, consumers, pipes, data producers
    /// and data consumers), summed over cells.
    pub cell_objects: u64,
    /// Live virtual objects registered as members of cells (detached when a cell closes).
    pub cell_members: usize,
    /// Producer and data-producer ids held in cells.
    pub cell_held_ids: usize,
    /// Virtual routers present in cells' placement rows (one per real router).
    pub cell_routers_present: usize,
    /// Label values counted in cells' placement rows.
    pub cell_label_values: usize,
    /// Flows (consumers, producers, pipe ends) in the cells' load ledgers.
    pub ledger_flows: usize,
    /// Transports in the cells' load ledgers.
    pub ledger_transports: usize,
    /// Data objects (data producers, data consumers, observers, data pipes) in the ledgers' load.
    pub ledger_data_objects: u64,
    /// Packet rates in the ledgers (carried, received, expected, reserved), in thousandths of
    /// a packet per second, absolute values summed.
    pub ledger_milli_pps: u64,
    /// Objects counted in the live virtual routers (every kind), summed.
    pub router_objects: u64,
    /// Producers in the routers' registries.
    pub router_producers: usize,
    /// Data producers in the routers' registries.
    pub router_data_producers: usize,
    /// Renamed ids (real id → known id) in the routers' registries.
    pub router_renamed_ids: usize,
    /// Producers with a list of their consumers in the routers.
    pub router_consumer_lists: usize,
    /// Live objects registered to close with their router (transports, observers).
    pub router_members: usize,
    /// Real routers of the virtual routers.
    pub real_routers: usize,
    /// The real routers' cell-close watchers.
    pub real_router_watchers: usize,
    /// Pipe slots (source, target cell) in the routers' pipe tables.
    pub pipe_slots: usize,
    /// Pipe producers' real ids in the routers' pipe tables.
    pub pipe_real_ids: usize,
    /// Live links (pipe transport pairs between two cells) in the routers' link caches.
    pub pipe_links: usize,
}

impl Host {
    /// mafalda extension, for leak checks: the size of every internal table of the host, its
    /// cells and its live virtual routers.
    pub fn footprint(&self) -> Footprint {
        let cells = self.cells();
        let mut footprint = Footprint {
            cells: cells.len(),
            settings_sets: self.settings_sets(),
            host_event_handlers: self.event_handlers(),
            rate_sources: self.rates().len(),
            rate_sources_live: self.rates().live(),
            port_claims: self.server_ports().len(),
            ..Footprint::default()
        };
        for cell in &cells {
            let (routers, labels) = cell.row_entries();
            let (flows, transports, data_objects, milli_pps) = cell.ledger().entries();
            footprint.cell_objects += cell.counted();
            footprint.cell_members += cell.live_members();
            footprint.cell_held_ids += cell.held_ids();
            footprint.cell_routers_present += routers;
            footprint.cell_label_values += labels;
            footprint.ledger_flows += flows;
            footprint.ledger_transports += transports;
            footprint.ledger_data_objects += u64::from(data_objects);
            footprint.ledger_milli_pps += milli_pps;
        }
        let routers = self.live_reporters();
        footprint.routers = routers.len();
        for router in &routers {
            router.footprint(&mut footprint);
        }
        footprint
    }
}
