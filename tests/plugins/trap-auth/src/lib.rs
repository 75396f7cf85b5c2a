//! An auth plugin that traps on every call: the host must deny (fail closed).

use mafalda_plugin_sdk::prelude::*;

/// Always traps.
pub struct TrapAuth;

impl Auth for TrapAuth {
    fn authorize(request: &AuthRequest) -> Result<Grant, Denial> {
        panic!("trap-auth: refusing to answer {:?}", request.operation)
    }
}

mafalda_plugin_sdk::export_auth!(TrapAuth);
