//! An auth plugin built against the plugin contract as it was at `mafalda:plugin@0.1.0` (the
//! frozen copy in `../contract-0.1.0/wit`), without the SDK: it does not import `connect-target`
//! (0.1.2), and newer hosts must keep loading and calling it. The token is the identity; no
//! token, no grant.

wit_bindgen::generate!({ path: "../contract-0.1.0/wit", world: "auth-plugin" });

use exports::mafalda::plugin::auth::Guest as AuthHook;
use exports::mafalda::plugin::lifecycle::Guest as Lifecycle;
use mafalda::plugin::types::{AuthRequest, ConfigEntry, Denial, Grant};

#[allow(dead_code)]
struct Frozen;

impl Lifecycle for Frozen {
    fn configure(_config: Vec<ConfigEntry>) -> Result<(), String> {
        Ok(())
    }
}

impl AuthHook for Frozen {
    fn authorize(request: AuthRequest) -> Result<Grant, Denial> {
        match request.token {
            Some(identity) => Ok(Grant { identity, rooms: Vec::new(), expires_unix: None }),
            None => Err(Denial { reason: "no token".into() }),
        }
    }
}

#[cfg(target_arch = "wasm32")]
export!(Frozen);
