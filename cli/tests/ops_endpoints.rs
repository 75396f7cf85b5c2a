//! The admin server as an operator meets it: a real Prometheus scrapes `/metrics` (and
//! promtool parses it), `/readyz` flips while `/healthz` stays ok, and admin actions are
//! refused from a non-loopback address without the token and accepted with it.

mod cluster_support;
mod ops_support;

use cluster_support::{binary, children_of, scratch};
use ops_support::{get, post, promtool_check_metrics, promtool_check_openmetrics, request, Netns, Prometheus};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process killed (and reaped) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `what` every 100 ms until it holds (bounded).
fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let since = Instant::now();
    while !done() {
        assert!(since.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// GET that may fail while the server starts.
fn try_get(addr: &str, path: &str) -> Option<ops_support::Reply> {
    request(addr, "GET", path, &[], &[]).ok()
}

#[test]
fn prometheus_scrapes_the_live_consumers_and_forwarded_packets_of_a_room() {
    let admin = "127.0.0.56:9464";
    // The demo: one room with generated Opus, one producer and five consumers over two workers.
    let _demo = Killed(
        Command::new(binary())
            .args(["demo", "--workers", "2", "--duration", "120", "--admin", admin])
            .env_remove("MAFALDA_CLUSTER")
            .env_remove("MAFALDA_MAX_WORKERS")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("demo"),
    );
    eventually("the room has its five consumers", Duration::from_secs(60), || {
        try_get(admin, "/status").is_some_and(|r| r.json()["stats"]["totals"]["consumers"] == 5)
    });
    // What curl and promtool see: the Prometheus text format, parsed by Prometheus' own parser.
    let classic = get(admin, "/metrics");
    assert!(classic.content_type().starts_with("text/plain; version=0.0.4"), "{}", classic.content_type());
    promtool_check_metrics(&classic.body).expect("promtool check metrics");
    // What Prometheus asks for: OpenMetrics.
    let open = request(admin, "GET", "/metrics", &[("Accept", "application/openmetrics-text;version=1.0.0")], &[])
        .expect("openmetrics");
    assert!(open.content_type().starts_with("application/openmetrics-text"), "{}", open.content_type());
    promtool_check_openmetrics(&open.body).expect("the OpenMetrics exposition parses");

    let prometheus = Prometheus::start(admin);
    let consumers = prometheus.wait_for("sum(mafalda_cell_consumers)", Duration::from_secs(30), |v| {
        v.first().is_some_and(|(_, n)| *n == 5.0)
    });
    assert_eq!(consumers.len(), 1, "{consumers:?}");
    let per_cell = prometheus.values("mafalda_cell_consumers");
    assert_eq!(per_cell.len(), 2, "one series per cell: {per_cell:?}");
    for (labels, _) in &per_cell {
        for label in ["worker", "node", "region"] {
            assert!(labels.contains_key(label), "{labels:?}");
        }
    }
    let forwarded = "sum(mafalda_cell_rtp_sent_packets_total)";
    let first = prometheus.wait_for(forwarded, Duration::from_secs(30), |v| v.first().is_some_and(|(_, n)| *n > 0.0));
    let before = first[0].1;
    prometheus.wait_for(forwarded, Duration::from_secs(30), |v| v.first().is_some_and(|(_, n)| *n > before));
    assert!(prometheus.targets_up(), "{:?}", prometheus.targets());
    let ready = prometheus.values("mafalda_host_ready");
    assert_eq!(ready.first().map(|(_, v)| *v), Some(1.0), "{ready:?}");
    let fds = prometheus.values("process_open_fds");
    assert!(fds.first().is_some_and(|(_, v)| *v > 0.0), "the process collector: {fds:?}");
}

#[test]
fn readyz_fails_while_draining_and_when_every_worker_is_gone_while_healthz_stays_ok() {
    let dir = scratch("readyz");
    let admin = "127.0.0.57:9464";
    // A worker binary that runs the real worker until told to fail: then every restart fails.
    let fail = dir.join("fail-now");
    let script = dir.join("worker.sh");
    std::fs::write(&script, format!("#!/bin/sh\n[ -e '{}' ] && exit 3\nexec '{}' \"$@\"\n", fail.display(), binary()))
        .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let mut host = Killed(
        Command::new(binary())
            .args(["serve", "--workers", "1", "--isolation", "process", "--admin", admin])
            .env("MAFALDA_WORKER_BIN", &script)
            .env_remove("MAFALDA_CLUSTER")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve"),
    );
    eventually("ready", Duration::from_secs(30), || try_get(admin, "/readyz").is_some_and(|r| r.status == 200));
    assert_eq!(get(admin, "/readyz").json()["ready"], true);

    // Draining: not ready, with the reason; ready again once undrained.
    assert_eq!(post(admin, "/drain", None).status, 202);
    let draining = get(admin, "/readyz");
    assert_eq!(draining.status, 503, "{}", draining.body);
    assert!(
        draining.json()["reasons"].as_array().is_some_and(|r| r.iter().any(|x| x == "draining")),
        "{}",
        draining.body
    );
    assert_eq!(get(admin, "/healthz").status, 200);
    assert_eq!(post(admin, "/undrain", None).status, 200);
    assert_eq!(get(admin, "/readyz").status, 200);

    // Every worker gone: its process killed, and no replacement can start.
    std::fs::write(&fail, b"").expect("fail flag");
    let pid = i32::try_from(host.0.id()).expect("pid");
    let children = children_of(pid);
    assert_eq!(children.len(), 1, "one worker process: {children:?}");
    // SAFETY: kill(2) on the host's worker process.
    assert_eq!(unsafe { libc::kill(children[0], libc::SIGKILL) }, 0);
    eventually("not ready once the worker is gone", Duration::from_secs(10), || get(admin, "/readyz").status == 503);
    let gone = get(admin, "/readyz").json();
    let reasons = gone["reasons"].as_array().cloned().unwrap_or_default();
    assert!(reasons.iter().any(|r| r.as_str().is_some_and(|r| r.contains("no worker"))), "{gone}");
    // Alive while its replacements are tried (the host may recover by itself)…
    let healthz = get(admin, "/healthz");
    let recovering = !get(admin, "/readyz").body.contains("crash loop");
    assert!(!recovering || healthz.status == 200, "alive while recovering: {}", healthz.body);
    eventually("the crash loop is reported", Duration::from_secs(20), || {
        get(admin, "/readyz").body.contains("crash loop")
    });
    // …and failing once no worker serves and none will be started: only a restart helps.
    let dead = get(admin, "/healthz");
    assert_eq!(dead.status, 503, "{}", dead.body);
    assert!(dead.body.contains("crash loop"), "{}", dead.body);
    assert!(matches!(host.0.try_wait(), Ok(None)), "the host still runs (its orchestrator restarts it)");
}

/// `serve` inside `netns` with its admin server on every address of the namespace.
fn host_in(netns: &Netns, port: u16, token: Option<&str>) -> Killed {
    let mut command = netns.command(binary());
    command
        .args(["serve", "--workers", "1", "--admin", &format!("0.0.0.0:{port}")])
        .env_remove("MAFALDA_CLUSTER")
        .env_remove("MAFALDA_ADMIN_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(token) = token {
        command.env("MAFALDA_ADMIN_TOKEN", token);
    }
    let host = Killed(command.spawn().expect("serve in the namespace"));
    let at = format!("{}:{port}", netns.ip());
    eventually("the admin server answers", Duration::from_secs(30), || {
        netns.run(|| try_get(&at, "/healthz")).is_some_and(|r| r.status == 200)
    });
    host
}

#[test]
fn admin_actions_need_loopback_or_the_token() {
    let netns = Netns::new("admin");
    let token = "a-long-enough-admin-token-42";

    // No token: loopback only.
    let _open = host_in(&netns, 9464, None);
    let remote = format!("{}:9464", netns.ip());
    for action in ["/drain", "/undrain", "/plugins/reload"] {
        let refused = netns.run(|| post(&remote, action, None));
        assert_eq!(refused.status, 403, "{action} from {}: {}", netns.ip(), refused.body);
        let with_any = netns.run(|| post(&remote, action, Some(token)));
        assert_eq!(with_any.status, 403, "a header does not replace loopback: {}", with_any.body);
    }
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 200, "refused actions did nothing");
    // Not from a web page in a browser on the machine, nor by a host name (DNS rebinding).
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Sec-Fetch-Site", "cross-site")],
        vec![("Host", "evil.example:9464")],
    ] {
        let refused = netns.run(|| request("127.0.0.1:9464", "POST", "/drain", &headers, b"")).expect("answer");
        assert_eq!(refused.status, 403, "{headers:?}: {}", refused.body);
    }
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 200, "refused actions did nothing");
    assert_eq!(netns.run(|| post("127.0.0.1:9464", "/drain", None)).status, 202, "loopback may");
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 503, "now draining");
    assert_eq!(netns.run(|| post("127.0.0.1:9464", "/plugins/reload", None)).status, 200);
    // Reads stay open (bind the admin server to a private address).
    assert_eq!(netns.run(|| get(&remote, "/metrics")).status, 200);

    // With a token: every caller presents it, loopback too.
    let _guarded = host_in(&netns, 9465, Some(token));
    let remote = format!("{}:9465", netns.ip());
    assert_eq!(netns.run(|| post(&remote, "/drain", None)).status, 401);
    assert_eq!(netns.run(|| post(&remote, "/drain", Some("a-long-enough-admin-token-43"))).status, 401);
    assert_eq!(netns.run(|| post("127.0.0.1:9465", "/drain", None)).status, 401);
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 200, "refused actions did nothing");
    assert_eq!(netns.run(|| post(&remote, "/drain", Some(token))).status, 202);
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 503);
    // The operator's command, from the other address, with the token in its environment.
    let undrain = ops_support::output_within(
        netns.command(binary()).args(["drain", "--undrain", "--admin", &remote]).env("MAFALDA_ADMIN_TOKEN", token),
        b"",
        Duration::from_secs(30),
    );
    assert!(undrain.status.success(), "{}", String::from_utf8_lossy(&undrain.stderr));
    assert_eq!(netns.run(|| get(&remote, "/readyz")).status, 200);
    let refused = ops_support::output_within(
        netns.command(binary()).args(["drain", "--admin", &remote]).env_remove("MAFALDA_ADMIN_TOKEN"),
        b"",
        Duration::from_secs(30),
    );
    assert!(!refused.status.success(), "without the token the command fails");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
}

#[test]
fn json_logs_are_one_object_per_line_and_a_cells_lines_carry_its_worker_and_node() {
    let out = ops_support::output_within(
        Command::new(binary())
            .args(["serve", "--workers", "1", "--isolation", "process", "--log-format", "json", "--duration", "3"])
            .args(["--node", "jsonnode", "--admin", "off"])
            .env("RUST_LOG", "info")
            .env_remove("MAFALDA_CLUSTER"),
        b"",
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let with = |message: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["fields"]["message"] == message).collect()
    };
    let new_cell = with("new cell");
    assert_eq!(new_cell.len(), 1, "{stderr}");
    assert_eq!(new_cell[0]["fields"]["node"], "jsonnode");
    assert!(new_cell[0]["fields"]["worker"].as_str().is_some_and(|w| w.len() == 36), "{}", new_cell[0]);
    // The worker process logs JSON too, relayed with its pid, worker and node.
    let relayed = with("worker process output");
    assert!(!relayed.is_empty(), "the worker process said something: {stderr}");
    for line in relayed {
        assert_eq!(line["fields"]["node"], "jsonnode", "{line}");
        assert!(line["fields"]["pid"].as_u64().is_some(), "{line}");
        // The child's line, quoted as one field (it cannot pose as the host's fields).
        let quoted = line["fields"]["line"].as_str().expect("the child's line");
        let inner: String = serde_json::from_str(quoted).unwrap_or_else(|e| panic!("a quoted line ({e}): {quoted}"));
        serde_json::from_str::<serde_json::Value>(&inner)
            .unwrap_or_else(|e| panic!("the child logs JSON ({e}): {inner}"));
    }
}
