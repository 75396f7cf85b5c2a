//! The auth hook through the host: the token-auth plugin (real wasm) grants valid tokens and
//! denies expired, wrong-room, garbage and missing ones; a trapping auth plugin denies (fails
//! closed); a token plugin without its secret is refused at load.

mod common;

use common::{built_plugin, plugin_runtime, slotted_manager};
use mafalda_host::plugin::{PluginError, PluginSet};
use mafalda_plugin_sdk::types::{AuthRequest, Operation};
use mafalda_plugin_token_auth::mint;

const SECRET: &str = "correct horse battery staple";

fn request(token: Option<String>, room: &str, now: u64) -> AuthRequest {
    AuthRequest {
        token,
        peer: Some("client-1".into()),
        operation: Operation::Consume,
        router: None,
        room: Some(room.into()),
        now_unix: now,
    }
}

#[tokio::test]
async fn tokens_are_checked_by_the_plugin() {
    let runtime = plugin_runtime();
    let config = vec![("secret".to_string(), SECRET.to_string())];
    let set = PluginSet::load(&runtime, &[built_plugin("mafalda_plugin_token_auth")], &config).expect("loads");
    let manager = slotted_manager(1);
    let host = manager.host();
    host.set_auth(set.auth.clone());

    let now = 1_800_000_000;
    let valid = mint(SECRET.as_bytes(), "alice", "standup", now + 60);
    let grant = host.authorize(&request(Some(valid.clone()), "standup", now)).expect("valid token");
    assert_eq!(grant.identity, "alice");
    assert_eq!(grant.expires_unix, Some(now + 60));

    let expired = mint(SECRET.as_bytes(), "alice", "standup", now - 1);
    let denial = host.authorize(&request(Some(expired), "standup", now)).expect_err("expired");
    assert!(denial.reason.contains("expired"), "{}", denial.reason);
    let denial = host.authorize(&request(Some(valid), "board", now)).expect_err("wrong room");
    assert!(denial.reason.contains("not board"), "{}", denial.reason);
    let denial = host.authorize(&request(Some("garbage".into()), "standup", now)).expect_err("garbage");
    assert!(denial.reason.contains("malformed"), "{}", denial.reason);
    let forged = mint(b"another secret", "mallory", "standup", now + 60);
    let denial = host.authorize(&request(Some(forged), "standup", now)).expect_err("forged");
    assert!(denial.reason.contains("signature"), "{}", denial.reason);
    assert!(host.authorize(&request(None, "standup", now)).is_err());
    let any_room = mint(SECRET.as_bytes(), "ops", "*", now + 60);
    assert!(host.authorize(&request(Some(any_room), "board", now)).is_ok());
}

#[tokio::test]
async fn a_trapping_auth_plugin_denies() {
    let runtime = plugin_runtime();
    let set = PluginSet::load(&runtime, &[built_plugin("mafalda_test_plugin_trap_auth")], &[]).expect("loads");
    let gate = set.auth.clone().expect("auth plugin");
    let manager = slotted_manager(1);
    manager.host().set_auth(set.auth);
    for _ in 0..3 {
        let denial = manager.host().authorize(&request(Some("anything".into()), "r", 1)).expect_err("fails closed");
        assert!(denial.reason.contains("auth plugin failed"), "{}", denial.reason);
    }
    assert!(gate.current().counters().failures >= 1);
}

#[test]
fn token_auth_without_a_secret_is_refused_at_load() {
    let runtime = plugin_runtime();
    match PluginSet::load(&runtime, &[built_plugin("mafalda_plugin_token_auth")], &[]) {
        Err(error @ PluginError::Configure { .. }) => assert!(error.to_string().contains("secret"), "{error}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}
