//! Bad input gets a clear error and no panic: CLI misuse exits non-zero with a message.

use std::process::Command;

fn host(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(args)
        .output()
        .expect("run mafalda-host")
}

#[test]
fn zero_workers_is_a_clear_cli_error() {
    let out = host(&["--workers", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit with 2");
    assert!(stderr.contains("at least 1 worker"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn unknown_flag_is_a_clear_cli_error() {
    let out = host(&["demo", "--bogus-flag"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("unexpected argument '--bogus-flag'"), "stderr: {stderr}");
    assert!(stderr.contains("Usage:"), "stderr: {stderr}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let out = host(&["--config", "/nonexistent/mafalda.toml", "--duration", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("/nonexistent/mafalda.toml"), "stderr: {stderr}");

    let out = host(&["--policy", "fastest"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("'fastest' is not pack, spread, pack-plugin or a .wasm file"), "stderr: {stderr}");

    let out = Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(["--duration", "0"])
        .env("MAFALDA_MAX_WORKERS", "lots")
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("MAFALDA_MAX_WORKERS"), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "stderr: {stderr}");
}

#[test]
fn out_of_range_numbers_are_clear_errors() {
    for (args, names) in [
        (&["--autoscale-interval", "0", "--duration", "0"][..], "--autoscale-interval"),
        (&["--autoscale-interval=-1", "--duration", "0"][..], "--autoscale-interval"),
        (&["--cpu-watermark", "1.5", "--duration", "0"][..], "cpu_watermark"),
        (&["--cpu-watermark", "0", "--duration", "0"][..], "cpu_watermark"),
        (&["--idle-grace=-3", "--duration", "0"][..], "--idle-grace"),
    ] {
        let out = host(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(names), "{args:?}: the error names {names}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn serve_runs_and_stops_cleanly() {
    let dir = std::env::temp_dir().join(format!("mafalda-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("mafalda.toml");
    std::fs::write(&config, "[pool]\nmax_workers = 2\nidle_grace = 60\n[placement]\npolicy = \"spread\"\n")
        .expect("write");
    let out = host(&["--workers", "2", "--duration", "1", "--config", config.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("closed 2 workers"), "{stdout}");
    assert!(stderr.contains("Spread"), "the file's policy is used: {stderr}");
    assert_eq!(stderr.matches("worker closed").count(), 2, "{stderr}");
}

#[test]
fn help_explains_every_flag() {
    let out = host(&["demo", "--help"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--workers",
        "--duration",
        "--consumers-per-worker",
        "--pps",
        "--srtp-pipes",
        "--max-workers",
        "--policy",
        "--cpu-watermark",
        "--config",
    ] {
        assert!(stdout.contains(flag), "demo --help lacks {flag}:\n{stdout}");
    }
}

#[test]
fn serve_keeps_the_workers_it_was_asked_for() {
    let dir = std::env::temp_dir().join(format!("mafalda-serve-keep-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("mafalda.toml");
    // Idle release as eager as it gets: without a floor, two of the three would close at once.
    std::fs::write(&config, "[pool]\nidle_grace = 0.05\nsample_interval = 0.02\n").expect("write");
    let out = host(&["serve", "--workers", "3", "--duration", "2", "--config", config.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("closed 3 workers"), "--workers 3 keeps 3 up until the stop:\n{stdout}\n{stderr}");
    assert!(!stderr.contains("reason=Idle"), "no worker was released as idle:\n{stderr}");
    assert!(!stderr.contains("ERROR"), "{stderr}");
}
