//! An auth plugin that decides a transport's `connect` by where it points (the `connect-target`
//! import of contract 0.1.2). The token is the identity (no token, no grant); every operation
//! is granted except a connect whose destination IP is listed in `deny` (comma-separated) or
//! whose destination comes with anything but [`Operation::CreateTransport`].

use mafalda_plugin_sdk::prelude::*;
use std::net::IpAddr;
use std::sync::Mutex;

static DENIED: Mutex<Vec<IpAddr>> = Mutex::new(Vec::new());

/// Grants by token, denies connects to listed addresses.
pub struct ConnectAuth;

impl Auth for ConnectAuth {
    fn configure(config: &Config) -> Result<(), String> {
        let list = config.get("deny").unwrap_or_default();
        let parsed: Result<Vec<IpAddr>, _> =
            list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect();
        *DENIED.lock().map_err(|_| "poisoned")? = parsed.map_err(|e| format!("deny: {e}"))?;
        Ok(())
    }

    fn authorize(request: &AuthRequest) -> Result<Grant, Denial> {
        let identity = request.token.clone().ok_or_else(|| Denial::new("no token"))?;
        if let Some(to) = request.destination {
            if request.operation != Operation::CreateTransport {
                return Err(Denial::new(format!("a destination came with {:?}", request.operation)));
            }
            let denied = DENIED.lock().map_err(|_| Denial::new("poisoned"))?;
            if denied.contains(&to.ip) {
                let port = to.port.map_or_else(|| "-".to_string(), |p| p.to_string());
                return Err(Denial::new(format!("connect-auth: {identity} may not send media to {}:{port}", to.ip)));
            }
        }
        Ok(Grant { identity, rooms: Vec::new(), expires_unix: None })
    }
}

mafalda_plugin_sdk::export_auth!(ConnectAuth);
