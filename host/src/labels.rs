//! Placement hints read from a transport's `app_data`: mediasoup applications attach arbitrary
//! data; we understand string maps (`HashMap` / `BTreeMap<String, String>`, a list of pairs) and
//! our own [`PlacementHints`]. (JSON values are not read: the library does not depend on
//! `serde_json`, whose impls would change type inference in applications.)
//!
//! Recognised keys: every string value becomes a label `key=value` of the request;
//! `direction` = `send` | `recv` | `both` (or the mediasoup-demo booleans `producing` /
//! `consuming`) sets the direction; `expected_consumers` a number. Cells count the transports
//! per label only for the keys placement groups by ([`DEFAULT_LABEL_KEYS`], or `[placement]
//! label_keys`) and for every label of an explicit [`PlacementHints`]: a peer id or a display
//! name in `app_data` does not grow every cell's label table with each peer.

use crate::placement::{Direction, PlacementRequest};
use mediasoup::prelude::AppData;
use std::collections::{BTreeMap, HashMap};

/// Explicit placement hints an application can put in `app_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementHints {
    /// Media direction of the transport.
    pub direction: Direction,
    /// Labels (room, peer, role, region …).
    pub labels: Vec<(String, String)>,
    /// Consumers the application expects for this transport's media.
    pub expected_consumers: u32,
}

impl PlacementHints {
    /// Hints with labels only.
    pub fn labels<K: Into<String>, V: Into<String>>(labels: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut hints = Self::default();
        for (key, value) in labels {
            hints.set(key.into(), value.into());
        }
        hints
    }

    /// Adds a label, interpreting the special keys.
    fn set(&mut self, key: String, value: String) {
        match (key.as_str(), value.as_str()) {
            ("direction", "send") | ("producing", "true") => self.direction = Direction::Send,
            ("direction", "recv") | ("consuming", "true") => self.direction = Direction::Recv,
            ("expected_consumers", n) => self.expected_consumers = n.parse().unwrap_or(0),
            _ => {}
        }
        self.labels.push((key, value));
    }
}

/// The hints carried by `app_data` (empty when it holds nothing we understand).
pub fn hints_of(app_data: &AppData) -> PlacementHints {
    if let Some(hints) = app_data.downcast_ref::<PlacementHints>() {
        return hints.clone();
    }
    let pairs: Vec<(String, String)> = if let Some(map) = app_data.downcast_ref::<HashMap<String, String>>() {
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    } else if let Some(map) = app_data.downcast_ref::<BTreeMap<String, String>>() {
        map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    } else if let Some(list) = app_data.downcast_ref::<Vec<(String, String)>>() {
        list.clone()
    } else {
        Vec::new()
    };
    let mut sorted = pairs;
    sorted.sort();
    PlacementHints::labels(sorted)
}

/// A placement request for a transport of `router` with `app_data`.
pub fn request_for(router: &str, app_data: &AppData) -> PlacementRequest {
    let hints = hints_of(app_data);
    PlacementRequest {
        router: router.to_string(),
        direction: hints.direction,
        labels: hints.labels,
        expected_consumers: hints.expected_consumers,
        max_cells: 0,
    }
}

/// The label keys cells count transports by unless configured otherwise.
pub const DEFAULT_LABEL_KEYS: [&str; 3] = ["room", "role", "tenant"];

/// The labels of a transport with `app_data` (and its `request`) that its cell counts: every
/// label of explicit [`PlacementHints`], else those whose key is one of `keys`.
pub fn cell_labels(app_data: &AppData, request: &PlacementRequest, keys: &[String]) -> Vec<(String, String)> {
    let explicit = app_data.downcast_ref::<PlacementHints>().is_some();
    request.labels.iter().filter(|(k, _)| explicit || keys.iter().any(|key| key == k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_string_maps_pairs_and_hints() {
        let map: HashMap<String, String> =
            [("room", "a"), ("direction", "recv")].iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let request = request_for("r1", &AppData::new(map));
        assert_eq!(request.direction, Direction::Recv);
        assert_eq!(request.label("room"), Some("a"));

        let pairs: Vec<(String, String)> = vec![
            ("producing".into(), "true".into()),
            ("peer".into(), "p7".into()),
            ("expected_consumers".into(), "12".into()),
        ];
        let hints = hints_of(&AppData::new(pairs));
        assert_eq!(hints.direction, Direction::Send);
        assert_eq!(hints.expected_consumers, 12);
        assert!(hints.labels.contains(&("peer".into(), "p7".into())));

        let explicit = PlacementHints::labels([("role", "presenter"), ("peer", "p9")]);
        assert_eq!(hints_of(&AppData::new(explicit.clone())), explicit);
        let app_data = AppData::new(explicit);
        let counted = cell_labels(&app_data, &request_for("r", &app_data), &[]);
        assert_eq!(counted.len(), 2, "explicit hints are all counted");
    }

    #[test]
    fn only_grouping_keys_of_string_maps_are_counted_per_cell() {
        let map: HashMap<String, String> = [("room", "a"), ("peerId", "p1"), ("displayName", "Ann")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let app_data = AppData::new(map);
        let request = request_for("r", &app_data);
        assert_eq!(request.labels.len(), 3, "the request carries every label");
        let keys: Vec<String> = DEFAULT_LABEL_KEYS.iter().map(|k| k.to_string()).collect();
        assert_eq!(cell_labels(&app_data, &request, &keys), vec![("room".to_string(), "a".to_string())]);
    }

    #[test]
    fn unknown_app_data_gives_no_hints() {
        assert_eq!(hints_of(&AppData::new(42_u8)), PlacementHints::default());
        assert_eq!(hints_of(&AppData::default()), PlacementHints::default());
    }
}
