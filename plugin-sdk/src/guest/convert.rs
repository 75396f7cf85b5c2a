//! Conversions between the guest's WIT types and the SDK's plain types, and the adapters the
//! export macros call.

use super::{Auth, Autoscale, NodeSelection, Placement};

crate::wit_conversions!(super::wit);

/// Runs `P::place` on WIT values.
pub fn place<P: Placement>(
    request: super::wit::PlacementRequest,
    cells: super::wit::Candidates,
) -> super::wit::Decision {
    let request = request_from_wit(request);
    #[cfg_attr(not(target_arch = "wasm32"), allow(unused_mut))]
    let mut cells = candidates_from_wit(&request, cells);
    // The host's predictions (contract 0.1.1), in the candidates' order.
    #[cfg(target_arch = "wasm32")]
    for (cell, predicted) in cells.iter_mut().zip(super::bindings::placement::mafalda::plugin::load::predicted()) {
        cell.predicted = predicted;
    }
    decision_to_wit(P::place(&request, &cells))
}

/// The WIT types of node selection (contract 0.1.3).
pub use super::bindings::fleet::exports::mafalda::plugin::node_selection as node_wit;

/// Runs `S::select_nodes` on WIT values.
pub fn select_nodes<S: NodeSelection>(request: node_wit::NodeRequest, nodes: node_wit::FleetNodes) -> Vec<u32> {
    let request = crate::fleet::NodeRequest {
        router: request.router,
        region: request.region,
        used: request.used,
        limit: request.limit,
    };
    let packed = crate::fleet::PackedNodes {
        names: nodes.names,
        regions: nodes.regions.into_iter().map(Into::into).collect(),
        rows: nodes.rows,
        load: nodes.load,
    };
    S::select_nodes(&request, &crate::fleet::unpack_nodes(&packed))
}

/// Runs `A::authorize` on WIT values.
pub fn authorize<A: Auth>(request: super::wit::AuthRequest) -> Result<super::wit::Grant, super::wit::Denial> {
    #[cfg_attr(not(target_arch = "wasm32"), allow(unused_mut))]
    let mut request = auth_request_from_wit(request);
    // A connect's destination (contract 0.1.2); an address the host cannot have meant denies.
    #[cfg(target_arch = "wasm32")]
    if let Some(to) = super::bindings::auth::mafalda::plugin::connect_target::destination() {
        let Ok(ip) = to.ip.parse() else {
            return Err(denial_to_wit(crate::types::Denial::new(format!("unreadable destination {}", to.ip))));
        };
        request.destination = Some(crate::types::Destination { ip, port: to.port, rtcp_port: to.rtcp_port });
    }
    A::authorize(&request).map(grant_to_wit).map_err(denial_to_wit)
}

/// Runs `A::evaluate` on WIT values.
pub fn evaluate<A: Autoscale>(snapshot: super::wit::ClusterSnapshot) -> Vec<super::wit::Action> {
    A::evaluate(&snapshot_from_wit(snapshot)).into_iter().map(action_to_wit).collect()
}

/// The configuration entries as a [`Config`](crate::types::Config).
pub fn config(entries: Vec<super::wit::ConfigEntry>) -> crate::types::Config {
    config_from_wit(entries)
}

/// The WIT log level of a [`LogLevel`](crate::types::LogLevel).
pub fn log_level(level: crate::types::LogLevel) -> super::wit::LogLevel {
    log_level_to_wit(level)
}
