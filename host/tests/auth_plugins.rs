//! The auth hook through the host: the token-auth plugin (real wasm) grants valid tokens and
//! denies expired, wrong-room, garbage and missing ones; a trapping auth plugin denies (fails
//! closed); a token plugin without its secret is refused at load; a plugin sees a connect's
//! destination (contract 0.1.2) and only during that call.

mod common;

use common::{built_plugin, plugin_runtime, slotted_manager};
use mafalda_host::placement::{CellLoad, PlacementPolicy, PlacementRequest};
use mafalda_host::plugin::{ConfigEntry, PluginConfig, PluginError, PluginSet};
use mafalda_plugin_sdk::types::{AuthRequest, Destination, Operation};
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
        destination: None,
    }
}

#[tokio::test]
async fn an_auth_plugin_sees_where_a_connect_points_and_only_then() {
    let runtime = plugin_runtime();
    let config = PluginConfig::shared(&[("deny", "192.0.2.7, 2001:db8::7")]);
    let set = PluginSet::load(&runtime, &[built_plugin("mafalda_test_plugin_connect_auth")], &config).expect("loads");
    let manager = slotted_manager(1);
    let host = manager.host();
    host.set_auth(set.auth.clone());
    let connect = |ip: &str, port| AuthRequest {
        operation: Operation::CreateTransport,
        destination: Some(Destination { ip: ip.parse().expect("ip"), port, rtcp_port: None }),
        ..request(Some("alice".into()), "r", 1)
    };
    let denial = host.authorize(&connect("192.0.2.7", Some(5004))).expect_err("listed");
    assert_eq!(denial.reason, "connect-auth: alice may not send media to 192.0.2.7:5004");
    let denial = host.authorize(&connect("2001:db8::7", None)).expect_err("listed v6");
    assert!(denial.reason.contains("2001:db8::7:-"), "{}", denial.reason);
    assert_eq!(host.authorize(&connect("192.0.2.8", Some(5004))).expect("not listed").identity, "alice");
    // The destination is the call's only: the next call (on the same warm instance) sees none,
    // so a create after a denied connect is granted.
    let create = AuthRequest { operation: Operation::CreateTransport, ..request(Some("alice".into()), "r", 1) };
    assert!(host.authorize(&create).is_ok(), "no destination left over from the previous call");
    let odd = AuthRequest { operation: Operation::Consume, ..connect("192.0.2.8", Some(1)) };
    assert!(host.authorize(&odd).expect_err("the plugin saw it").reason.contains("Consume"));
}

#[tokio::test]
async fn tokens_are_checked_by_the_plugin() {
    let runtime = plugin_runtime();
    let config = PluginConfig::shared(&[("secret", SECRET)]);
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
    let set = PluginSet::load(&runtime, &[built_plugin("mafalda_test_plugin_trap_auth")], &PluginConfig::default())
        .expect("loads");
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
    match PluginSet::load(&runtime, &[built_plugin("mafalda_plugin_token_auth")], &PluginConfig::default()) {
        Err(error @ PluginError::Configure { .. }) => assert!(error.to_string().contains("secret"), "{error}"),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

fn entries(args: &[&str]) -> PluginConfig {
    PluginConfig::from(args.iter().map(|a| a.parse().expect("entry")).collect::<Vec<ConfigEntry>>())
}

#[tokio::test]
async fn each_plugin_sees_only_its_own_configuration() {
    let runtime = plugin_runtime();
    let secret_file = std::env::temp_dir().join(format!("mafalda-token-secret-{}", std::process::id()));
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write secret");
    // The auth plugin's keys are scoped to it; one of them would make the placement plugin trap
    // if it reached it (the misbehave plugin obeys `mode`).
    let config = entries(&[
        &format!("mafalda-plugin-token-auth.secret=@file:{}", secret_file.display()),
        "mafalda_plugin_token_auth.mode=trap",
    ]);
    let files = [built_plugin("mafalda_plugin_token_auth"), built_plugin("mafalda_test_plugin_misbehave")];
    let set = PluginSet::load(&runtime, &files, &config).expect("loads");
    let _ = std::fs::remove_file(&secret_file);
    let manager = slotted_manager(2);
    manager.host().set_auth(set.auth.clone());
    let now = 1_800_000_000;
    let token = mint(SECRET.as_bytes(), "alice", "standup", now + 60);
    manager.host().authorize(&request(Some(token), "standup", now)).expect("the secret from the file is the one used");

    let placement = set.placement.clone().expect("placement plugin");
    let cells = [CellLoad::new(0)];
    let decision = placement.place_cells(&PlacementRequest::new("r").with_max_cells(2), &cells);
    assert!(decision.is_ok(), "the placement plugin never saw the auth plugin's keys: {decision:?}");
    assert_eq!(placement.counters().failures, 0);

    // A secret that cannot be read stops the load with a clear error, naming the key.
    let missing = entries(&["mafalda-plugin-token-auth.secret=@file:/nonexistent/secret"]);
    let error = PluginSet::load(&runtime, &files[..1], &missing).expect_err("unreadable secret");
    assert!(error.to_string().contains("secret") && error.to_string().contains("/nonexistent/secret"), "{error}");
}
