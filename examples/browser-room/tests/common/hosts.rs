//! `mafalda-host serve` processes for rooms through remote hosts: the workspace's own binary
//! (built next to this test by `cargo test --workspace`), a cluster CA and node certificates
//! made with it, every process killed when dropped and every wait bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The `mafalda-host` binary of this build (`target/<profile>/mafalda-host`).
pub fn mafalda_host_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe.parent().and_then(Path::parent).expect("target profile directory");
    let binary = profile.join("mafalda-host");
    assert!(binary.is_file(), "{} is not built: run `cargo test --release --workspace`", binary.display());
    binary
}

fn run(args: &[&str]) {
    let out = Command::new(mafalda_host_binary()).args(args).output().expect("run mafalda-host");
    assert!(out.status.success(), "mafalda-host {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh directory holding a cluster CA (in `ca/`) and the certificates of `nodes`
/// (name, ip): the nodes' `--tls-dir`, and `ca.pem` for the application.
pub fn cluster_dir(name: &str, nodes: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("browser-room-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let ca = dir.join("ca");
    let (ca, out) = (ca.to_str().expect("utf-8"), dir.to_str().expect("utf-8"));
    run(&["certs", "init", "--out", ca]);
    for (node, ip) in nodes {
        run(&["certs", "issue", node, "--ca", ca, "--out", out, "--ip", ip]);
    }
    dir
}

/// One `mafalda-host serve` with one worker, killed when dropped.
pub struct ServeHost {
    child: Child,
    /// Its cluster endpoint, `ip:4443`.
    pub address: String,
}

impl ServeHost {
    /// Starts node `name` on `ip:4443` with `extra` flags; returns once its endpoint is up.
    pub fn start(dir: &Path, name: &str, ip: &str, extra: &[&str]) -> Self {
        let address = format!("{ip}:4443");
        let mut child = Command::new(mafalda_host_binary())
            .env("MAFALDA_ADMIN", "off")
            .args(["serve", "--workers", "1", "--listen", &address, "--node", name])
            .args(["--tls-dir", dir.to_str().expect("utf-8")])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("MAFALDA_CLUSTER")
            .env_remove("MAFALDA_MAX_WORKERS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mafalda-host serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        let tag = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("cluster endpoint up") {
                    let _ = tx.send(());
                }
                if line.contains("WARN") || line.contains("ERROR") {
                    println!("[{tag}] {line}");
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("{name}'s cluster endpoint was not up within 60 s"));
        Self { child, address }
    }
}

impl Drop for ServeHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
