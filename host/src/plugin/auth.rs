//! An auth plugin as the host's gate. Fails closed: whatever goes wrong with the plugin (trap,
//! timeout, backoff) is a denial.

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
        match self.current().call(|plugin, store| plugin.mafalda_plugin_auth().call_authorize(store, &wit_request)) {
            Ok(answer) => answer.map(grant_from_wit).map_err(denial_from_wit),
            Err(error) => {
                tracing::warn!(%error, operation = ?request.operation, "auth plugin failed: denied");
                Err(Denial::new(format!("denied: the auth plugin failed ({error})")))
            }
        }
    }
}
