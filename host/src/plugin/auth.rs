//! An auth plugin as the host's gate. Fails closed: whatever goes wrong with the plugin (trap,
//! timeout, backoff) is a denial.

use super::bindings::auth::mafalda::plugin::connect_target::RemoteAddress;
use super::bindings::auth::AuthPlugin;
use super::convert::{auth_request_to_wit, denial_from_wit, grant_from_wit};
use super::swap::Swappable;
use mafalda_plugin_sdk::types::{AuthRequest, Denial, Grant};

/// An auth hook implemented by a WebAssembly plugin (hot-swappable).
pub type AuthGate = Swappable<AuthPlugin>;

impl AuthGate {
    /// Grants or denies `request`; any failure of the plugin denies.
    pub fn authorize(&self, request: &AuthRequest) -> Result<Grant, Denial> {
        let wit_request = auth_request_to_wit(request);
        let destination = request.destination.map(|to| RemoteAddress {
            ip: to.ip.to_string(),
            port: to.port,
            rtcp_port: to.rtcp_port,
        });
        let answer = self.current().call(|plugin, store| {
            store.data_mut().destination = destination;
            let answer = plugin.mafalda_plugin_auth().call_authorize(&mut *store, &wit_request);
            store.data_mut().destination = None;
            answer
        });
        match answer {
            Ok(answer) => answer.map(grant_from_wit).map_err(denial_from_wit),
            Err(error) => {
                tracing::warn!(%error, operation = ?request.operation, "auth plugin failed: denied");
                Err(Denial::new(format!("denied: the auth plugin failed ({error})")))
            }
        }
    }
}
