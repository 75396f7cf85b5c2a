//! `mafalda-host simulate` and `mafalda-host trace` as users run them: the shipped traces replayed
//! against the default plugin (embedded) and a plugin file built to wasm, side by side; a
//! generated trace is reproducible and replays; a malformed trace is a clear error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn host(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(args)
        .output()
        .expect("run mafalda-host")
}

fn sample_trace(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/traces").join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The simulator's table: metric name → one value per plugin column (single-number rows).
fn metrics(stdout: &str) -> HashMap<String, Vec<f64>> {
    let mut rows = HashMap::new();
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let split = words.iter().position(|w| w.parse::<f64>().is_ok()).unwrap_or(words.len());
        let values: Vec<f64> = words[split..].iter().filter_map(|w| w.parse().ok()).collect();
        if split > 0 && values.len() == words.len() - split && !values.is_empty() {
            rows.insert(words[..split].join(" "), values);
        }
    }
    rows
}

fn simulate(trace: &Path, plugins: &[&str]) -> (String, HashMap<String, Vec<f64>>) {
    let trace = trace.to_str().expect("utf-8 path");
    let mut args = vec!["simulate", "--trace", trace];
    for plugin in plugins {
        args.extend(["--plugin", plugin]);
    }
    let out = host(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "simulate failed:\n{stdout}\n{}", text(&out.stderr));
    let rows = metrics(&stdout);
    (stdout, rows)
}

#[test]
fn both_sample_traces_compare_the_packer_with_a_spreading_plugin() {
    let spread = std::path::Path::new(mafalda_host::plugin::BUILT_PLUGIN_DIR).join("mafalda_plugin_spread.wasm");
    let spread = spread.to_str().expect("utf-8 path");
    for trace in ["meetings.jsonl", "webinar.jsonl"] {
        let (stdout, rows) = simulate(&sample_trace(trace), &["pack-plugin", spread]);
        assert!(stdout.contains("pack-plugin") && stdout.contains("mafalda_plugin_spread"), "{stdout}");
        for metric in ["peak cells", "pipes created", "rejections", "fallback decisions"] {
            assert_eq!(rows.get(metric).map(Vec::len), Some(2), "{metric} for both plugins:\n{stdout}");
        }
        let (peak, pipes) = (&rows["peak cells"], &rows["pipes created"]);
        assert!(peak[0] >= 1.0, "{trace}: the packer used a cell:\n{stdout}");
        assert!(peak[0] < peak[1], "{trace}: packing uses fewer cells than spreading:\n{stdout}");
        assert!(pipes[0] < pipes[1], "{trace}: packing creates fewer pipes:\n{stdout}");
        assert_eq!(rows["fallback decisions"], vec![0.0, 0.0], "both plugins answered every call:\n{stdout}");
    }
}

#[test]
fn a_generated_trace_is_reproducible_and_replays() {
    let first = host(&["trace", "webinar", "--rooms", "4", "--peers", "6", "--seconds", "120", "--seed", "7"]);
    let again = host(&["trace", "webinar", "--rooms", "4", "--peers", "6", "--seconds", "120", "--seed", "7"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert_eq!(first.stdout, again.stdout, "same seed, same trace");
    let other = host(&["trace", "webinar", "--rooms", "4", "--peers", "6", "--seconds", "120", "--seed", "8"]);
    assert_ne!(first.stdout, other.stdout, "another seed, another trace");
    let file = std::env::temp_dir().join(format!("mafalda-trace-{}.jsonl", std::process::id()));
    std::fs::write(&file, &first.stdout).expect("write trace");
    let (stdout, rows) = simulate(&file, &["pack", "spread"]);
    let _ = std::fs::remove_file(&file);
    let joins = text(&first.stdout).lines().filter(|l| l.contains("\"join\"")).count();
    assert!(joins > 0, "the trace has joins");
    assert!(stdout.contains(&format!("{joins} joins")), "every join replayed:\n{stdout}");
    assert_eq!(rows["rejections"], vec![0.0, 0.0], "{stdout}");
}

/// Runs the host, killed if it outlives `limit` (a spinning simulator fails instead of hanging).
fn host_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mafalda-host"))
        .env("MAFALDA_ADMIN", "off")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run mafalda-host");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("mafalda-host {args:?} still running after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn a_trace_with_absurd_counts_is_a_clear_error() {
    let file = std::env::temp_dir().join(format!("mafalda-absurd-trace-{}.jsonl", std::process::id()));
    std::fs::write(&file, "{\"t\":1,\"op\":\"join\",\"room\":\"a\",\"peer\":\"p\",\"sends\":4294967295}\n")
        .expect("write trace");
    let out = host_within(
        &["simulate", "--plugin", "pack", "--trace", file.to_str().expect("utf-8 path")],
        std::time::Duration::from_secs(20),
    );
    let _ = std::fs::remove_file(&file);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "an absurd trace must fail");
    assert!(stderr.contains("trace line 1") && stderr.contains("sends 4294967295"), "{stderr}");
}

#[test]
fn a_malformed_trace_is_a_clear_error() {
    let file = std::env::temp_dir().join(format!("mafalda-bad-trace-{}.jsonl", std::process::id()));
    std::fs::write(&file, "{\"t\":1,\"op\":\"join\",\"room\":\"a\",\"peer\":\"p\",\"sends\":1}\nnot json\n")
        .expect("write trace");
    let out = host(&["simulate", "--plugin", "pack", "--trace", file.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&file);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "a malformed trace must fail");
    assert!(stderr.contains("trace line 2"), "the error names the line: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let missing = host(&["simulate", "--plugin", "pack", "--trace", "/nonexistent/trace.jsonl"]);
    assert!(!missing.status.success());
    assert!(text(&missing.stderr).contains("/nonexistent/trace.jsonl"), "{}", text(&missing.stderr));
}
