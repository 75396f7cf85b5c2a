//! A custom placement plugin in a few lines: keep each room on as few workers as possible, but
//! never put two "presenter" transports on one worker. See README.md for the walkthrough.

use mafalda_plugin_sdk::prelude::*;

/// Rooms together, presenters apart.
pub struct RoomAffinity;

impl Placement for RoomAffinity {
    fn place(request: &Request, cells: &[Candidate]) -> Decision {
        let presenter = request.label("role") == Some("presenter");
        // Transports of this room / presenters already in a cell (the host counts the labels).
        let (room, role) = (request.label_index("room"), request.label_index("role"));
        let in_room = |c: &Candidate| c.label_at(room).same;
        let allowed = |c: &&Candidate| !c.draining && c.cpu < 0.8 && !(presenter && c.label_at(role).same > 0);
        // Most transports of the room first, then the fullest worker: pack the room tightly.
        let best = cells.iter().filter(allowed).max_by_key(|c| (in_room(c), c.transports, std::cmp::Reverse(c.id)));
        match best {
            Some(cell) => Decision::Cell(cell.id),
            None if (cells.len() as u32) < request.max_cells => Decision::NewCell,
            None => Decision::Reject("every worker already has a presenter (or is full)".into()),
        }
    }
}

mafalda_plugin_sdk::export_placement!(RoomAffinity);

#[cfg(test)]
mod tests {
    use super::*;
    use mafalda_plugin_sdk::cells;
    use mafalda_plugin_sdk::testing::{cell, place};

    fn request(role: &str) -> Request {
        Request::new("r").with_label("room", "blue").with_label("role", role).with_max_cells(3)
    }

    #[test]
    fn a_room_stays_together() {
        let cells = cells![cell(0).with_transports(5), cell(1).with_transports(1).with_label("room=blue", 1)];
        assert_eq!(place::<RoomAffinity>(&request("viewer"), &cells), Decision::Cell(1));
    }

    #[test]
    fn presenters_never_share_a_worker() {
        let cells = cells![cell(0).with_label("room=blue", 2).with_label("role=presenter", 1), cell(1)];
        assert_eq!(place::<RoomAffinity>(&request("presenter"), &cells), Decision::Cell(1));
        let both_taken = cells![
            cell(0).with_label("role=presenter", 1),
            cell(1).with_label("role=presenter", 1),
            cell(2).with_label("role=presenter", 1),
        ];
        assert!(matches!(place::<RoomAffinity>(&request("presenter"), &both_taken), Decision::Reject(_)));
        assert_eq!(place::<RoomAffinity>(&request("presenter"), &both_taken[..2]), Decision::NewCell);
    }
}
