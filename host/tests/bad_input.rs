//! Bad input gets a clear error and no panic: CLI misuse exits non-zero with a message; an RTP
//! generator pointed at a closed transport refuses to start (or stops) with a typed error.

use mafalda_host::media::{loopback_listen_info, opus_send_parameters, router_codecs};
use mafalda_host::pool::WorkerPool;
use mafalda_host::rtp::{GeneratorConfig, GeneratorError, GeneratorTarget, RtpGenerator};
use mediasoup::prelude::*;
use std::process::Command;
use std::time::Duration;

fn host(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mafalda-host")).args(args).output().expect("run mafalda-host")
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

async fn comedia_transport(router: &Router) -> PlainTransport {
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    router.create_plain_transport(options).await.expect("transport")
}

/// Drops the transport (mediasoup closes it with its last handle) and waits for its close event.
async fn close(transport: PlainTransport) {
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    transport
        .on_close(Box::new(move || {
            let _ = closed_tx.send(());
        }))
        .detach();
    drop(transport);
    tokio::time::timeout(Duration::from_secs(10), closed_rx).await.expect("close event").expect("fired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_refuses_a_closed_transport() {
    let pool = WorkerPool::with_workers(1).await.expect("worker");
    let router = pool.workers()[0].worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport = comedia_transport(&router).await;
    let target = GeneratorTarget::of(&transport);
    close(transport).await;
    let err = RtpGenerator::start(target.clone(), GeneratorConfig::opus(1)).await.expect_err("closed target");
    match &err {
        GeneratorError::TransportClosed(closed) => assert_eq!(*closed, target.id()),
        other => panic!("expected TransportClosed, got {other:?}"),
    }
    assert!(err.to_string().contains("is closed"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_stops_with_an_error_when_its_transport_closes() {
    let pool = WorkerPool::with_workers(1).await.expect("worker");
    let router = pool.workers()[0].worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport = comedia_transport(&router).await;
    let _producer =
        transport.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(9))).await.expect("producer");
    let generator = RtpGenerator::start(&transport, GeneratorConfig::opus(9)).await.expect("starts");
    let id = transport.id();
    drop(_producer);
    close(transport).await;
    match tokio::time::timeout(Duration::from_secs(10), generator.finished()).await {
        Ok(Err(GeneratorError::TransportClosed(closed))) => assert_eq!(closed, id),
        other => panic!("expected TransportClosed, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_refuses_a_zero_rate() {
    let pool = WorkerPool::with_workers(1).await.expect("worker");
    let router = pool.workers()[0].worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
    let transport = comedia_transport(&router).await;
    let err = RtpGenerator::start(&transport, GeneratorConfig::opus(1).with_rate(0)).await.expect_err("zero rate");
    assert!(matches!(err, GeneratorError::ZeroRate));
    assert!(err.to_string().contains("at least 1 packet/s"));
}
