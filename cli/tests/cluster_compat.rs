//! `tests/compat`'s program, written for plain mediasoup, runs unchanged against a remote host:
//! only its environment names the cluster (`MAFALDA_CLUSTER`, `MAFALDA_CA`,
//! `MAFALDA_MAX_WORKERS=0`), so every object it creates lives on the `serve` process; and with
//! every worker in a process of its own (`MAFALDA_ISOLATION=process`).

mod cluster_support;

use cluster_support::{certs, scratch, Node};
use std::path::PathBuf;
use std::process::Command;

/// The compat program's test binary as built against mafalda-host (a sibling of this test's
/// binary: `cargo test --workspace` builds every test target before running any).
fn compat_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("deps directory");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("deps")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.strip_prefix(name).and_then(|rest| rest.strip_prefix('-')).is_some_and(|h| !h.contains('.'))
            })
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p).unwrap_or_else(|| {
        panic!("{name} is not built next to {}: run `cargo test --release --workspace`", exe.display())
    })
}

#[test]
fn the_mediasoup_program_runs_against_a_remote_host() {
    let dir = scratch("compat");
    certs(&dir, &[("media5", "127.0.0.5")]);
    let mut node = Node::start(&dir, "media5", "127.0.0.5", 4443, &[]);
    for program in ["mafalda_conferencing", "mafalda_conferencing_spread"] {
        let out = Command::new(compat_binary(program))
            .env("MAFALDA_CLUSTER", node.address())
            .env("MAFALDA_CA", dir.join("ca.pem"))
            .env("MAFALDA_MAX_WORKERS", "0")
            .env_remove("MAFALDA_POLICY")
            .output()
            .expect("run the compat program");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{program} against the remote host:\n{stdout}\n{stderr}\nhost log:\n{}",
            node.drain_log()
        );
        assert!(stdout.contains("test result: ok"), "{stdout}");
    }
    // Everything it did happened on the host: its session held the objects.
    let log = node.drain_log();
    assert!(log.contains("cluster session"), "the program connected to the host:\n{log}");
}

#[test]
fn the_mediasoup_program_runs_with_every_worker_in_its_own_process() {
    for program in ["mafalda_conferencing", "mafalda_conferencing_spread"] {
        let out = Command::new(compat_binary(program))
            .env("MAFALDA_ISOLATION", "process")
            .env("MAFALDA_WORKER_BIN", cluster_support::binary())
            .env("RUST_LOG", "mafalda_host::isolation=info")
            .env_remove("MAFALDA_POLICY")
            .env_remove("MAFALDA_CLUSTER")
            .output()
            .expect("run the compat program");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{program} with worker processes:\n{stdout}\n{stderr}");
        assert!(stdout.contains("test result: ok"), "{stdout}");
    }
}
