//! The `mafalda-host demo` job as users run it: the embedded pack plugin places the transports,
//! filling one worker then the next, packets visibly flow through every worker, a bounded run
//! ends by itself, Ctrl-C ends it cleanly (workers closed, exit code 0, no panic).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn demo(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mafalda-host"));
    cmd.arg("demo").args(args).env("RUST_LOG", "info").env("MAFALDA_ADMIN", "off");
    cmd
}

/// Rows `w<N>` of the last table in `stdout`: (worker, packets in, packets out, delivered).
fn last_table(stdout: &str) -> Vec<(String, u64, u64, u64)> {
    let start = stdout.rfind("t=").expect("a table was printed");
    stdout[start..]
        .lines()
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // worker, host, transports, consumers, pkts in, pkts out, delivered, cpu
            (cols.len() == 8 && cols[0].starts_with('w')).then(|| {
                let n = |i: usize| cols[i].parse::<u64>().expect("numeric column");
                (cols[0].to_string(), n(4), n(5), n(6))
            })
        })
        .collect()
}

#[test]
fn bounded_demo_shows_packets_flowing_through_two_workers() {
    let out = demo(&["--workers", "2", "--duration", "3", "--pps", "100"]).output().expect("run demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}", out.status);
    let rows = last_table(&stdout);
    assert_eq!(rows.len(), 2, "one row per worker:\n{stdout}");
    for (worker, packets_in, packets_out, delivered) in &rows {
        assert!(*packets_in > 0, "{worker} received nothing:\n{stdout}");
        assert!(*packets_out > 0, "{worker} sent nothing:\n{stdout}");
        assert!(*delivered > 0, "{worker} delivered nothing:\n{stdout}");
    }
    assert!(stdout.contains("pipes: w0->w1"), "the pipe is shown:\n{stdout}");
    assert!(stdout.contains("placed by Custom(\"pack\")"), "the default plugin placed them:\n{stdout}");
    assert!(stderr.contains("max_transports 3"), "the plugin got the demo's cap:\n{stderr}");
    assert!(stdout.contains("closed 2 workers cleanly"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("ERROR"),
        "a clean stop logs no error (e.g. closing consumers after their transport):\n{stderr}"
    );
}

#[test]
fn ctrl_c_ends_the_demo_cleanly() {
    let mut child = demo(&["--workers", "2", "--srtp-pipes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines_rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    // Wait for the first live table (an event from the process, not a fixed sleep).
    loop {
        let line = lines_rx.recv_timeout(Duration::from_secs(60)).expect("demo printed a table");
        if line.starts_with("t=") {
            break;
        }
    }
    // SAFETY: kill() with a valid pid of our own child and SIGINT has no memory effects.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let status = child.wait().expect("demo exits");
    let stdout = reader.join().expect("reader");
    let mut err = String::new();
    stderr.read_to_string(&mut err).expect("stderr");
    assert!(status.success(), "exit {status:?}\n{stdout}\n{err}");
    assert!(stdout.contains("demo: interrupted"), "{stdout}");
    assert!(stdout.contains("(srtp)"), "SRTP pipe shown: {stdout}");
    assert!(stdout.contains("closed 2 workers cleanly"), "{stdout}");
    // Every worker started (the two of the pool, the RTP-capabilities calculator's) was closed
    // before the process exited.
    let started = err.matches("worker started").count();
    assert!(started >= 2, "{err}");
    assert_eq!(err.matches("worker closed").count(), started, "every close event logged:\n{err}");
    assert!(!err.contains("panicked"), "{err}");
}
