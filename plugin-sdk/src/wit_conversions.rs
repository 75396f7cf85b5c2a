//! `wit_conversions!`: conversions between the SDK's plain types and a set of types generated
//! from `wit/plugin.wit`. Guests (wit-bindgen types) and the host (wasmtime `bindgen!` types)
//! both invoke it, so the mapping is written once.

/// Generates `*_from_wit` / `*_to_wit` functions between [`crate::types`] and the WIT types in
/// the module given (e.g. `wit_conversions!(super::wit)`).
#[macro_export]
#[doc(hidden)]
macro_rules! wit_conversions {
    ($($wit:tt)+) => {
        #[allow(dead_code)]
        pub fn direction_from_wit(d: $($wit)+::Direction) -> $crate::types::Direction {
            match d {
                $($wit)+::Direction::Send => $crate::types::Direction::Send,
                $($wit)+::Direction::Recv => $crate::types::Direction::Recv,
                $($wit)+::Direction::Both => $crate::types::Direction::Both,
            }
        }

        #[allow(dead_code)]
        pub fn direction_to_wit(d: $crate::types::Direction) -> $($wit)+::Direction {
            match d {
                $crate::types::Direction::Send => $($wit)+::Direction::Send,
                $crate::types::Direction::Recv => $($wit)+::Direction::Recv,
                $crate::types::Direction::Both => $($wit)+::Direction::Both,
            }
        }

        #[allow(dead_code)]
        pub fn request_from_wit(r: $($wit)+::PlacementRequest) -> $crate::types::Request {
            $crate::types::Request {
                router: r.router,
                direction: direction_from_wit(r.direction),
                labels: r.labels.into_iter().map(|l| (l.key, l.value)).collect(),
                expected_consumers: r.expected_consumers,
                max_cells: r.max_cells,
            }
        }

        #[allow(dead_code)]
        pub fn request_to_wit(r: &$crate::types::Request) -> $($wit)+::PlacementRequest {
            $($wit)+::PlacementRequest {
                router: r.router.clone(),
                direction: direction_to_wit(r.direction),
                labels: r.labels.iter().map(|(key, value)| $($wit)+::Label { key: key.clone(), value: value.clone() }).collect(),
                expected_consumers: r.expected_consumers,
                max_cells: r.max_cells,
            }
        }

        #[allow(dead_code)]
        pub fn cell_from_wit(c: $($wit)+::Cell) -> $crate::types::Cell {
            $crate::types::Cell {
                id: c.id,
                node: c.node,
                region: c.region,
                cpu: c.cpu,
                predicted: 0.0,
                transports: c.transports,
                producers: c.producers,
                consumers: c.consumers,
                pipes: c.pipes,
                routers: c.routers,
                draining: c.draining,
                labels: c.labels.into_iter().map(|l| (l.label, l.count)).collect(),
            }
        }

        #[allow(dead_code)]
        pub fn cell_to_wit(c: &$crate::types::Cell) -> $($wit)+::Cell {
            $($wit)+::Cell {
                id: c.id,
                node: c.node.clone(),
                region: c.region.clone(),
                cpu: c.cpu,
                transports: c.transports,
                producers: c.producers,
                consumers: c.consumers,
                pipes: c.pipes,
                routers: c.routers.clone(),
                draining: c.draining,
                labels: c.labels.iter().map(|(label, count)| $($wit)+::LabelCount { label: label.clone(), count: *count }).collect(),
            }
        }

        /// The open cells as `request` sees them, packed (what `place` receives).
        #[allow(dead_code)]
        pub fn candidates_to_wit(request: &$crate::types::Request, cells: &[$crate::types::Cell]) -> $($wit)+::Candidates {
            packed_to_wit(&$crate::candidate::pack(request, cells))
        }

        /// Packed candidates as they cross into a plugin.
        #[allow(dead_code)]
        pub fn packed_to_wit(packed: &$crate::candidate::Packed) -> $($wit)+::Candidates {
            $($wit)+::Candidates {
                locations: packed.locations.iter().map(|(node, region)| $($wit)+::Location { node: node.to_string(), region: region.to_string() }).collect(),
                loads: packed.loads.clone(),
                cpu: packed.cpu.clone(),
                labels: packed.labels.clone(),
            }
        }

        /// The SDK's candidates of `request` from the packed view.
        #[allow(dead_code)]
        pub fn candidates_from_wit(request: &$crate::types::Request, view: $($wit)+::Candidates) -> ::std::vec::Vec<$crate::candidate::Candidate> {
            let packed = $crate::candidate::Packed {
                locations: view.locations.into_iter().map(|l| (l.node.into(), l.region.into())).collect(),
                loads: view.loads,
                cpu: view.cpu,
                labels: view.labels,
                predicted: ::std::vec::Vec::new(),
            };
            $crate::candidate::unpack(request, &packed)
        }

        #[allow(dead_code)]
        pub fn decision_from_wit(d: $($wit)+::Decision) -> $crate::types::Decision {
            match d {
                $($wit)+::Decision::Cell(id) => $crate::types::Decision::Cell(id),
                $($wit)+::Decision::NewCell => $crate::types::Decision::NewCell,
                $($wit)+::Decision::Reject(reason) => $crate::types::Decision::Reject(reason),
            }
        }

        #[allow(dead_code)]
        pub fn decision_to_wit(d: $crate::types::Decision) -> $($wit)+::Decision {
            match d {
                $crate::types::Decision::Cell(id) => $($wit)+::Decision::Cell(id),
                $crate::types::Decision::NewCell => $($wit)+::Decision::NewCell,
                $crate::types::Decision::Reject(reason) => $($wit)+::Decision::Reject(reason),
            }
        }

        #[allow(dead_code)]
        pub fn operation_from_wit(o: $($wit)+::Operation) -> $crate::types::Operation {
            match o {
                $($wit)+::Operation::Connect => $crate::types::Operation::Connect,
                $($wit)+::Operation::CreateRouter => $crate::types::Operation::CreateRouter,
                $($wit)+::Operation::CreateTransport => $crate::types::Operation::CreateTransport,
                $($wit)+::Operation::Produce => $crate::types::Operation::Produce,
                $($wit)+::Operation::Consume => $crate::types::Operation::Consume,
                $($wit)+::Operation::ProduceData => $crate::types::Operation::ProduceData,
                $($wit)+::Operation::ConsumeData => $crate::types::Operation::ConsumeData,
                $($wit)+::Operation::Admin => $crate::types::Operation::Admin,
            }
        }

        #[allow(dead_code)]
        pub fn operation_to_wit(o: $crate::types::Operation) -> $($wit)+::Operation {
            match o {
                $crate::types::Operation::Connect => $($wit)+::Operation::Connect,
                $crate::types::Operation::CreateRouter => $($wit)+::Operation::CreateRouter,
                $crate::types::Operation::CreateTransport => $($wit)+::Operation::CreateTransport,
                $crate::types::Operation::Produce => $($wit)+::Operation::Produce,
                $crate::types::Operation::Consume => $($wit)+::Operation::Consume,
                $crate::types::Operation::ProduceData => $($wit)+::Operation::ProduceData,
                $crate::types::Operation::ConsumeData => $($wit)+::Operation::ConsumeData,
                $crate::types::Operation::Admin => $($wit)+::Operation::Admin,
            }
        }

        #[allow(dead_code)]
        pub fn auth_request_from_wit(r: $($wit)+::AuthRequest) -> $crate::types::AuthRequest {
            $crate::types::AuthRequest {
                token: r.token,
                peer: r.peer,
                operation: operation_from_wit(r.operation),
                router: r.router,
                room: r.room,
                now_unix: r.now_unix,
                // Not part of the record: the `connect-target` import carries it (0.1.2).
                destination: None,
            }
        }

        #[allow(dead_code)]
        pub fn auth_request_to_wit(r: &$crate::types::AuthRequest) -> $($wit)+::AuthRequest {
            $($wit)+::AuthRequest {
                token: r.token.clone(),
                peer: r.peer.clone(),
                operation: operation_to_wit(r.operation),
                router: r.router.clone(),
                room: r.room.clone(),
                now_unix: r.now_unix,
            }
        }

        #[allow(dead_code)]
        pub fn grant_from_wit(g: $($wit)+::Grant) -> $crate::types::Grant {
            $crate::types::Grant { identity: g.identity, rooms: g.rooms, expires_unix: g.expires_unix }
        }

        #[allow(dead_code)]
        pub fn grant_to_wit(g: $crate::types::Grant) -> $($wit)+::Grant {
            $($wit)+::Grant { identity: g.identity, rooms: g.rooms, expires_unix: g.expires_unix }
        }

        #[allow(dead_code)]
        pub fn denial_from_wit(d: $($wit)+::Denial) -> $crate::types::Denial {
            $crate::types::Denial { reason: d.reason }
        }

        #[allow(dead_code)]
        pub fn denial_to_wit(d: $crate::types::Denial) -> $($wit)+::Denial {
            $($wit)+::Denial { reason: d.reason }
        }

        #[allow(dead_code)]
        pub fn snapshot_from_wit(s: $($wit)+::ClusterSnapshot) -> $crate::types::Snapshot {
            $crate::types::Snapshot {
                nodes: s
                    .nodes
                    .into_iter()
                    .map(|n| $crate::types::Node {
                        name: n.name,
                        region: n.region,
                        workers: n.workers,
                        max_workers: n.max_workers,
                        cpu: n.cpu,
                        draining: n.draining,
                    })
                    .collect(),
                cells: s.cells.into_iter().map(cell_from_wit).collect(),
                now_ms: s.now_ms,
            }
        }

        #[allow(dead_code)]
        pub fn snapshot_to_wit(s: &$crate::types::Snapshot) -> $($wit)+::ClusterSnapshot {
            $($wit)+::ClusterSnapshot {
                nodes: s
                    .nodes
                    .iter()
                    .map(|n| $($wit)+::Node {
                        name: n.name.clone(),
                        region: n.region.clone(),
                        workers: n.workers,
                        max_workers: n.max_workers,
                        cpu: n.cpu,
                        draining: n.draining,
                    })
                    .collect(),
                cells: s.cells.iter().map(cell_to_wit).collect(),
                now_ms: s.now_ms,
            }
        }

        #[allow(dead_code)]
        pub fn action_from_wit(a: $($wit)+::Action) -> $crate::types::Action {
            match a {
                $($wit)+::Action::AddWorker => $crate::types::Action::AddWorker,
                $($wit)+::Action::RetireWorker(cell) => $crate::types::Action::RetireWorker { cell },
                $($wit)+::Action::DrainWorker(cell) => $crate::types::Action::DrainWorker { cell },
                $($wit)+::Action::AddNode(advice) => {
                    $crate::types::Action::AddNode($crate::types::NodeAdvice { region: advice.region, reason: advice.reason })
                }
                $($wit)+::Action::RemoveNode(node) => $crate::types::Action::RemoveNode { node },
                $($wit)+::Action::DrainNode(node) => $crate::types::Action::DrainNode { node },
            }
        }

        #[allow(dead_code)]
        pub fn action_to_wit(a: $crate::types::Action) -> $($wit)+::Action {
            match a {
                $crate::types::Action::AddWorker => $($wit)+::Action::AddWorker,
                $crate::types::Action::RetireWorker { cell } => $($wit)+::Action::RetireWorker(cell),
                $crate::types::Action::DrainWorker { cell } => $($wit)+::Action::DrainWorker(cell),
                $crate::types::Action::AddNode(advice) => {
                    $($wit)+::Action::AddNode($($wit)+::NodeAdvice { region: advice.region, reason: advice.reason })
                }
                $crate::types::Action::RemoveNode { node } => $($wit)+::Action::RemoveNode(node),
                $crate::types::Action::DrainNode { node } => $($wit)+::Action::DrainNode(node),
            }
        }

        #[allow(dead_code)]
        pub fn config_from_wit(entries: ::std::vec::Vec<$($wit)+::ConfigEntry>) -> $crate::types::Config {
            $crate::types::Config { entries: entries.into_iter().map(|e| (e.key, e.value)).collect() }
        }

        #[allow(dead_code)]
        pub fn config_to_wit(config: &$crate::types::Config) -> ::std::vec::Vec<$($wit)+::ConfigEntry> {
            config.entries.iter().map(|(key, value)| $($wit)+::ConfigEntry { key: key.clone(), value: value.clone() }).collect()
        }

        #[allow(dead_code)]
        pub fn log_level_to_wit(level: $crate::types::LogLevel) -> $($wit)+::LogLevel {
            match level {
                $crate::types::LogLevel::Trace => $($wit)+::LogLevel::Trace,
                $crate::types::LogLevel::Debug => $($wit)+::LogLevel::Debug,
                $crate::types::LogLevel::Info => $($wit)+::LogLevel::Info,
                $crate::types::LogLevel::Warn => $($wit)+::LogLevel::Warn,
                $crate::types::LogLevel::Error => $($wit)+::LogLevel::Error,
            }
        }
    };
}
