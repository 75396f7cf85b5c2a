//! Plugins in the running binary: bad plugins are refused clearly, SIGHUP reloads them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn built_plugin(name: &str) -> PathBuf {
    Path::new(mafalda_host::plugin::BUILT_PLUGIN_DIR).join(format!("{name}.wasm"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-cli-reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir.join("policy.wasm")
}

/// Replaces `target` atomically (as a deploy would) with `source`.
fn install(source: &Path, target: &Path) {
    let tmp = target.with_extension("tmp");
    std::fs::copy(source, &tmp).expect("copy");
    std::fs::rename(&tmp, target).expect("rename");
}

#[test]
fn sighup_reloads_the_plugins_of_a_running_host() {
    let path = scratch("sighup");
    install(&built_plugin("mafalda_plugin_pack"), &path);
    let mut child = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["--workers", "1", "--duration", "60", "--plugin", path.to_str().expect("utf-8")])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("no '{needle}' in the log"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("mafalda-host running");
    install(&built_plugin("mafalda_plugin_spread"), &path);
    // SAFETY: kill() on our own child's pid with SIGHUP.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) }, 0);
    let reloaded = wait_for("plugin reloaded");
    assert!(reloaded.contains("policy"), "{reloaded}");
    // SAFETY: as above, SIGINT.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    assert!(child.wait().expect("exit").success());
}

#[test]
fn the_cli_refuses_bad_plugins_clearly() {
    let garbage = std::env::temp_dir().join(format!("mafalda-garbage-{}.wasm", std::process::id()));
    std::fs::write(&garbage, b"not wasm at all").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["--plugin", garbage.to_str().expect("utf-8"), "--duration", "0"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not WebAssembly"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["plugin", "check", built_plugin("mafalda_test_plugin_foreign").to_str().expect("utf-8")])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("wrong world"), "{stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["plugin", "check", built_plugin("mafalda_plugin_pack").to_str().expect("utf-8")])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("world:   mafalda:plugin/placement-plugin (built against mafalda:plugin@0.1.3)"),
        "{stdout}"
    );
}
