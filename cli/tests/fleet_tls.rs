//! A fleet registry behind TLS and a password (`rediss://:PASSWORD@HOST:PORT` with
//! `--registry-ca` / `MAFALDA_REGISTRY_CA`), as an operator protects it: a host lists itself
//! and an application places a room on it through the TLS registry; the password never reaches
//! a log line; a wrong password is one WARN and nothing else.

mod cluster_support;

use cluster_support::{certs, run, scratch, Node};
use mafalda_host::config::HostOptions;
use mafalda_host::prelude::*;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PORT: u16 = 46385;
const PASSWORD: &str = "fleet-tls-s3cret-pass";

/// A `redis-server` speaking only TLS, with a password.
struct TlsRedis(Child);

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn redis_tls(dir: &Path) -> TlsRedis {
    let redis_dir = dir.join("redis");
    let ca = dir.join("ca").display().to_string();
    run(&["certs", "issue", "registry", "--ca", &ca, "--out", &redis_dir.display().to_string(), "--ip", "127.0.0.1"]);
    let file = |name: &str| redis_dir.join(name).display().to_string();
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &PORT.to_string(), "--bind", "127.0.0.1"])
        .args(["--tls-cert-file", &file("registry.pem"), "--tls-key-file", &file("registry.key")])
        .args(["--tls-ca-cert-file", &file("ca.pem"), "--tls-auth-clients", "no"])
        .args(["--requirepass", PASSWORD, "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (installed by scripts/bootstrap)");
    TlsRedis(child)
}

fn url(password: &str) -> String {
    format!("rediss://:{password}@127.0.0.1:{PORT}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_registry_with_a_password_lists_hosts_and_places_rooms_and_never_logs_the_password() {
    let dir = scratch("fleet-tls");
    certs(&dir, &[("tls1", "127.0.0.120"), ("tls2", "127.0.0.121")]);
    let _redis = redis_tls(&dir);
    let ca = dir.join("ca.pem").display().to_string();
    let good = url(PASSWORD);
    let flags = ["--admin", "off", "--registry", &good, "--registry-ca", &ca, "--cluster-name", "tls"];
    let mut host = Node::start(&dir, "tls1", "127.0.0.120", 4443, &flags);
    host.wait_for_log("registered in the fleet registry", Duration::from_secs(20));

    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_REGISTRY", good.clone()),
        ("MAFALDA_REGISTRY_CA", ca.clone()),
        ("MAFALDA_CLUSTER_NAME", "tls".to_string()),
        ("MAFALDA_CA", ca.clone()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
    ]);
    let manager = WorkerManager::with_options(HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options"));
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("a worker through the TLS registry");
    let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("transport");
    let node = manager.host().cell(transport.cell()).map(|c| c.node().to_string());
    assert_eq!(node.as_deref(), Some("tls1"), "the room is on the host the TLS registry listed");

    // A wrong password: one WARN naming the registry without any password, the host serves on.
    let bad = url("not-the-password");
    let flags = ["--admin", "off", "--registry", &bad, "--registry-ca", &ca, "--cluster-name", "tls"];
    let mut refused = Node::start(&dir, "tls2", "127.0.0.121", 4443, &flags);
    let warned = refused.wait_for_log("fleet registry unreachable", Duration::from_secs(20));
    assert!(warned.contains("rediss://:***@127.0.0.1"), "the registry is named, its password hidden: {warned}");
    // An observation window (nothing is to happen in it): three more failed writes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(refused.running(), "a registry refusing the host does not stop it");
    let log = refused.drain_log();
    assert_eq!(log.matches("fleet registry unreachable").count(), 1, "one WARN, not one per second:\n{log}");
    for (name, log) in [("tls1", host.drain_log()), ("tls2", log)] {
        assert!(!log.contains(PASSWORD) && !log.contains("not-the-password"), "{name} logged a password:\n{log}");
    }
    drop(transport);
}
