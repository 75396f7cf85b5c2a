//! What a token grants on a host, and the one place every operation is checked against it.
//!
//! A session acts with the grant of its token (from the hello, replaced by a resume or a
//! refresh); a router created with its own token (`app_data` `token`) and everything under it
//! act with that router's grant instead, so one application can hold a token per room. The auth
//! plugin is asked when a token arrives and for every operation that makes an object
//! ([`Access::Create`]); every other use is checked here against the grant's rooms and expiry,
//! without a plugin call. A grant scoped to rooms never acts on a router without a room label
//! (fail closed).

use super::proto::{Access, WireError};
use crate::host::Host;
use crate::internals::object::lock;
use mafalda_plugin_sdk::types::{AuthRequest, Destination, Grant, Operation};
use std::sync::{Arc, Mutex};

/// The rooms and expiry a token was granted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Rooms covered (empty: every room, and routers without a room).
    pub rooms: Vec<String>,
    /// When the grant ends (Unix seconds), if it does.
    pub expires_unix: Option<u64>,
}

impl Scope {
    /// The scope of a plugin's grant.
    pub fn of(grant: &Grant) -> Self {
        Self { rooms: grant.rooms.clone(), expires_unix: grant.expires_unix }
    }

    /// Whether the grant still holds at `now_unix`.
    pub fn unexpired(&self, now_unix: u64) -> Result<(), String> {
        match self.expires_unix.filter(|e| *e <= now_unix) {
            Some(expires) => Err(format!("the token expired at {expires} (refresh it)")),
            None => Ok(()),
        }
    }

    /// Whether acting on `room` at `now_unix` is covered.
    pub fn covers(&self, room: Option<&str>, now_unix: u64) -> Result<(), String> {
        self.unexpired(now_unix)?;
        if self.rooms.is_empty() {
            return Ok(());
        }
        match room {
            None => Err(format!(
                "a token for room(s) {} cannot act on a router without a room label",
                self.rooms.join(", ")
            )),
            Some(room) if !self.rooms.iter().any(|r| r == room) => {
                Err(format!("the token is for room(s) {}, not {room}", self.rooms.join(", ")))
            }
            Some(_) => Ok(()),
        }
    }
}

/// A token and its scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenGrant {
    /// The token (asked about again when an object is made).
    pub token: Option<String>,
    /// What it was granted.
    pub scope: Scope,
}

/// A router's own grant, shared with everything under it (a refresh reaches them all).
pub type RouterGrant = Arc<Mutex<TokenGrant>>;

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What an operation acts on, as [`check`] and the auth plugin see it.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The router (its id) the target lives under, if any.
    pub router: Option<String>,
    /// That router's room label, if any.
    pub room: Option<String>,
    /// Where a `connect` points the transport ([`super::proto::Op::destination`]).
    pub destination: Option<Destination>,
}

impl Target {
    /// A target under `router` of `room`.
    pub fn under(router: Option<String>, room: Option<String>) -> Self {
        Self { router, room, destination: None }
    }
}

/// Asks the auth plugin about `operation` with `token` on `target`.
pub fn ask(host: &Host, token: Option<String>, operation: Operation, target: Target) -> Result<Grant, String> {
    let Target { router, room, destination } = target;
    let request = AuthRequest { token, peer: None, operation, router, room, now_unix: now_unix(), destination };
    host.authorize(&request).map_err(|denial| denial.reason)
}

/// Who is asking, for [`check`].
pub struct Caller<'a> {
    /// Peers (the cluster's own hosts) and clients trusted without a plugin are not checked.
    pub checked: bool,
    /// The grant in force for the target: the router's own, else the session's.
    pub grant: TokenGrant,
    /// The host (its auth plugin).
    pub host: &'a Host,
}

/// Checks one operation on `target`: the single gate of dispatch.
pub fn check(caller: &Caller<'_>, access: Access, target: Target) -> Result<(), WireError> {
    let denied = |reason: String| WireError::Denied(reason);
    if !caller.checked {
        return Ok(());
    }
    let grant = &caller.grant;
    match access {
        Access::Release | Access::Refresh => Ok(()),
        // A shared worker is read (or its server named) within an unexpired grant, in any room.
        Access::ReadWorker => grant.scope.unexpired(now_unix()).map_err(denied),
        Access::Use => grant.scope.covers(target.room.as_deref(), now_unix()).map_err(denied),
        Access::Create(_) | Access::Connect => {
            grant.scope.covers(target.room.as_deref(), now_unix()).map_err(denied)?;
            let operation = access.asked().unwrap_or(Operation::CreateTransport);
            ask(caller.host, grant.token.clone(), operation, target).map(|_| ()).map_err(denied)
        }
        Access::Admin => ask(caller.host, grant.token.clone(), Operation::Admin, Target::default())
            .map(|_| ())
            .map_err(|reason| denied(format!("worker settings are for operators: {reason}"))),
    }
}

/// Checks a new token for the same identity; its grant.
pub fn refreshed(host: &Host, identity: &str, token: String, room: Option<String>) -> Result<TokenGrant, WireError> {
    let grant =
        ask(host, Some(token.clone()), Operation::Connect, Target::under(None, room)).map_err(WireError::Denied)?;
    if grant.identity != identity {
        return Err(WireError::Denied(format!(
            "the new token is for '{}', not this session's identity",
            grant.identity
        )));
    }
    Ok(TokenGrant { token: Some(token), scope: Scope::of(&grant) })
}

/// The grant in force for an entry: its router's own, else the session's.
pub fn in_force(router: Option<&RouterGrant>, session: impl FnOnce() -> TokenGrant) -> TokenGrant {
    match router {
        Some(grant) => lock(grant).clone(),
        None => session(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_scoped_grant_fails_closed_on_a_router_without_a_room() {
        let scope = Scope { rooms: vec!["blue".into()], expires_unix: Some(100) };
        assert!(scope.covers(Some("blue"), 99).is_ok());
        assert!(scope.covers(Some("red"), 99).expect_err("other room").contains("not red"));
        assert!(scope.covers(None, 99).expect_err("no room").contains("without a room label"));
        assert!(scope.covers(Some("blue"), 100).expect_err("expired").contains("expired"));
        let any = Scope { rooms: Vec::new(), expires_unix: None };
        assert!(any.covers(None, u64::MAX).is_ok());
    }
}
