//! Shared by the operations tests: a small blocking HTTP/1.1 client for the admin endpoints, a
//! real Prometheus (Debian's `prometheus` package, installed by `scripts/bootstrap`) scraping a
//! target, `promtool check metrics`, and network namespaces that give a test a client address
//! that is not loopback.
//!
//! Everything here waits with a deadline and panics with what it saw when the deadline passes;
//! child processes are killed and reaped, namespaces deleted and scratch directories removed on
//! drop.

#![allow(dead_code)]

use serde_json::{Map, Value};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

/// How long one request may take: to connect, and to read the whole reply.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP reply, its body decoded (`Content-Length` or chunked) and read as UTF-8 (lossily).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The `Content-Type` header, or "" without one.
    pub fn content_type(&self) -> &str {
        self.header("content-type").unwrap_or("")
    }

    /// The body as JSON; panics (with the reply) when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("reply is not JSON ({e}): status {} body {:?}", self.status, self.body))
    }
}

/// `GET http://addr/path`; panics when no reply comes (refused, timeout, malformed).
pub fn get(addr: &str, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// `POST http://addr/path` with an empty body and, given `bearer`, `Authorization: Bearer …`;
/// panics when no reply comes.
pub fn post(addr: &str, path: &str, bearer: Option<&str>) -> Reply {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.as_deref().map(|a| ("Authorization", a)).into_iter().collect();
    request(addr, "POST", path, &headers, b"").unwrap_or_else(|e| panic!("POST http://{addr}{path}: {e}"))
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`, `Content-Length` always
/// sent), the reply read to the end; connecting and reading are bounded by [`HTTP_TIMEOUT`].
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> io::Result<Reply> {
    let deadline = Instant::now() + HTTP_TIMEOUT;
    let mut stream = connect(addr)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    // The caller's own Host header replaces the default one.
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, format!("reply not complete within {HTTP_TIMEOUT:?}")));
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A server that answered and then reset the connection: what was read is the reply.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(e),
        }
    }
    parse_reply(&raw, method.eq_ignore_ascii_case("HEAD"))
}

fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: no address"));
    for sa in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&sa, HTTP_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Parses a whole HTTP/1.1 reply (status line, headers, body by `Transfer-Encoding: chunked`,
/// `Content-Length` or to the end); `head_request`: no body whatever the headers say.
pub fn parse_reply(raw: &[u8], head_request: bool) -> io::Result<Reply> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid(format!("no end of headers in {:?}", String::from_utf8_lossy(raw))))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("headers are not UTF-8"))?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status: u16 =
        parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(h, _)| h.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_str());
    let body: Vec<u8> = if head_request || status / 100 == 1 || status == 204 || status == 304 {
        Vec::new()
    } else if find("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        dechunk(rest)?
    } else if let Some(len) = find("content-length") {
        let len: usize = len.parse().map_err(|_| invalid(format!("bad Content-Length {len:?}")))?;
        if rest.len() < len {
            return Err(invalid(format!("body cut short: {} of {len} bytes", rest.len())));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Reply { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
}

/// Decodes a chunked body (chunk extensions and trailers ignored).
fn dechunk(mut data: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| invalid("chunk size line cut short"))?;
        let line = std::str::from_utf8(&data[..eol]).map_err(|_| invalid("chunk size line not UTF-8"))?;
        let hex = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(hex, 16).map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 || &data[size..size + 2] != b"\r\n" {
            return Err(invalid(format!("chunk of {size} bytes cut short or not followed by CRLF")));
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Percent-encodes `s` for a URL query value: everything but `A-Za-z0-9-._~`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// Runs `command` to completion with `stdin` fed to it, its output collected; kills it and
/// panics when it takes longer than `limit`.
pub fn output_within(command: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut input = child.stdin.take().expect("child stdin piped");
    let data = stdin.to_vec();
    // A writer and two readers, so that no pipe fills while we wait.
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let mut out = child.stdout.take().expect("child stdout piped");
    let mut err = child.stderr.take().expect("child stderr piped");
    let stdout = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let stderr = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let since = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap_or_else(|e| panic!("wait for {what}: {e}")) {
            break status;
        }
        if since.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: not done within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    Output { status, stdout, stderr }
}

/// A port on `ip` that nobody listened on a moment ago (the OS's choice).
pub fn free_port(ip: &str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
    listener.local_addr().expect("bound address").port()
}

static SCRATCH_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the temporary directory, named after `name`, the pid and a sequence
/// number (several per test process).
fn scratch(name: &str) -> PathBuf {
    let n = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mafalda-ops-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

// ---------------------------------------------------------------------------------------------
// Prometheus and promtool
// ---------------------------------------------------------------------------------------------

/// The Prometheus server binary (Debian's `prometheus` package).
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// promtool, from the same package.
pub const PROMTOOL: &str = "/usr/bin/promtool";
/// How long Prometheus may take to answer `/-/ready`.
pub const PROMETHEUS_START: Duration = Duration::from_secs(30);

/// The labels of one series in a query result.
pub type Labels = Map<String, Value>;

/// A Prometheus server, child of the test, on `127.0.0.1:<port>`, scraping its targets every
/// second (job `mafalda`, path `/metrics`), with its own storage in a scratch directory; killed
/// and its scratch removed on drop.
pub struct Prometheus {
    addr: String,
    dir: PathBuf,
    child: Option<Child>,
}

impl Prometheus {
    /// Starts a Prometheus on a free port of 127.0.0.1 scraping `target` (`ip:port`); returns
    /// once it is ready (bounded by [`PROMETHEUS_START`]).
    pub fn start(target: &str) -> Self {
        Self::start_targets(&[target])
    }

    /// [`Prometheus::start`] with several targets (one job, one series set per instance).
    pub fn start_targets(targets: &[&str]) -> Self {
        // The port is free a moment before Prometheus binds it: on a lost race, another port.
        let mut failures = Vec::new();
        for _ in 0..3 {
            let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));
            match Self::try_start_on(&listen, targets) {
                Ok(prometheus) => return prometheus,
                Err(log) => failures.push(log),
            }
        }
        panic!("prometheus did not start (3 attempts):\n{}", failures.join("\n---\n"))
    }

    /// Starts one listening on `listen` (e.g. to scrape itself: `start_on(a, &[a])`).
    pub fn start_on(listen: &str, targets: &[&str]) -> Self {
        Self::try_start_on(listen, targets).unwrap_or_else(|log| panic!("prometheus did not start:\n{log}"))
    }

    /// Starts one; `Err(its log)` when it exits before being ready. Panics when it neither
    /// exits nor gets ready within [`PROMETHEUS_START`].
    fn try_start_on(listen: &str, targets: &[&str]) -> Result<Self, String> {
        assert!(
            Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} missing: run scripts/bootstrap (Debian package prometheus)"
        );
        let dir = scratch("prometheus");
        let config = dir.join("prometheus.yml");
        let list = targets.iter().map(|t| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        let yaml = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mafalda\n    metrics_path: /metrics\n    scheme: http\n    \
             static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("write {}: {e}", config.display()));
        let log_path = dir.join("prometheus.log");
        let log = File::create(&log_path).unwrap_or_else(|e| panic!("create {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("clone log file handle");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address={listen}"))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--log.level=warn")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {PROMETHEUS}: {e}"));
        let mut prometheus = Self { addr: listen.to_string(), dir, child: Some(child) };
        let since = Instant::now();
        loop {
            if let Ok(reply) = request(listen, "GET", "/-/ready", &[], b"") {
                if reply.status == 200 {
                    return Ok(prometheus);
                }
            }
            let child = prometheus.child.as_mut().expect("child present until drop");
            if let Some(status) = child.try_wait().expect("try_wait on prometheus") {
                return Err(format!("prometheus on {listen} exited ({status}); log:\n{}", prometheus.log()));
            }
            assert!(
                since.elapsed() < PROMETHEUS_START,
                "prometheus on {listen}: /-/ready not 200 within {PROMETHEUS_START:?}; log:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:<port>` it listens on.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What it logged so far (warnings and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The whole answer of `/api/v1/query` for `promql` (evaluated now); panics unless it is
    /// a success.
    pub fn query(&self, promql: &str) -> Value {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let reply = get(&self.addr, &path);
        let json = reply.json();
        assert!(
            reply.status == 200 && json["status"] == "success",
            "query {promql:?}: status {} answer {}",
            reply.status,
            reply.body
        );
        json
    }

    /// The series of `promql`'s instant vector (or its scalar, with no labels), as (labels,
    /// value) pairs.
    pub fn values(&self, promql: &str) -> Vec<(Labels, f64)> {
        let answer = self.query(promql);
        parse_samples(&answer).unwrap_or_else(|e| panic!("query {promql:?}: {e}; answer {answer}"))
    }

    /// Polls `promql` every 250 ms until `pred` holds on its series and returns them; panics
    /// with the last answer after `limit`.
    pub fn wait_for(
        &self,
        promql: &str,
        limit: Duration,
        pred: impl Fn(&[(Labels, f64)]) -> bool,
    ) -> Vec<(Labels, f64)> {
        let since = Instant::now();
        loop {
            let values = self.values(promql);
            if pred(&values) {
                return values;
            }
            assert!(
                since.elapsed() < limit,
                "prometheus: {promql:?} not as expected within {limit:?}; last: {values:?}; targets: {:?}",
                self.targets()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The active targets (`/api/v1/targets`: `scrapeUrl`, `health`, `lastError`, …).
    pub fn targets(&self) -> Vec<Value> {
        let reply = get(&self.addr, "/api/v1/targets?state=active");
        let json = reply.json();
        assert!(reply.status == 200 && json["status"] == "success", "targets: {}", reply.body);
        json["data"]["activeTargets"].as_array().cloned().unwrap_or_default()
    }

    /// Whether there are targets and the last scrape of each succeeded (`health` "up").
    pub fn targets_up(&self) -> bool {
        let targets = self.targets();
        !targets.is_empty() && targets.iter().all(|t| t["health"] == "up")
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The samples of a `/api/v1/query` answer (vector or scalar).
fn parse_samples(answer: &Value) -> Result<Vec<(Labels, f64)>, String> {
    let data = &answer["data"];
    let number = |pair: &Value| -> Result<f64, String> {
        let text = pair.get(1).and_then(Value::as_str).ok_or_else(|| format!("bad sample {pair}"))?;
        text.parse::<f64>().map_err(|e| format!("bad value {text:?}: {e}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("no result array")?
            .iter()
            .map(|s| {
                let labels = s["metric"].as_object().cloned().unwrap_or_default();
                Ok((labels, number(&s["value"])?))
            })
            .collect(),
        Some("scalar") => Ok(vec![(Labels::new(), number(&data["result"])?)]),
        other => Err(format!("result type {other:?} (want vector or scalar)")),
    }
}

/// `promtool check metrics` on `exposition` (Prometheus text format 0.0.4): `Ok` when it exits
/// 0; otherwise `Err` with its exit status and everything it printed (exit 1: parse error, 3:
/// lint problems such as a counter without `_total` or a metric without help).
///
/// promtool 2.42 reads the classic text format: an OpenMetrics exposition (counters' `_total`
/// samples under a family without it, `info` types, `# EOF`) fails here although Prometheus
/// The sum of every sample of metric `name` (any labels) in an exposition (either format).
pub fn metric_sum(exposition: &str, name: &str) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// scrapes it fine; see [`promtool_check_openmetrics`].
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    assert!(Path::new(PROMTOOL).exists(), "{PROMTOOL} missing: run scripts/bootstrap (Debian package prometheus)");
    let out = output_within(
        Command::new(PROMTOOL).args(["check", "metrics"]),
        exposition.as_bytes(),
        Duration::from_secs(30),
    );
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "promtool check metrics: {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An OpenMetrics text exposition (as the prometheus-client crate writes it) checked by
/// promtool: it must end with `# EOF`, and is rewritten to the classic format promtool reads
/// ([`openmetrics_to_classic`]) before [`promtool_check_metrics`] lints it.
pub fn promtool_check_openmetrics(exposition: &str) -> Result<(), String> {
    if !exposition.ends_with("# EOF\n") && !exposition.ends_with("# EOF") {
        return Err("an OpenMetrics exposition ends with \"# EOF\"".into());
    }
    let classic = openmetrics_to_classic(exposition);
    promtool_check_metrics(&classic).map_err(|e| format!("{e}\n(exposition as checked:)\n{classic}"))
}

/// OpenMetrics text to the classic text format, for promtool's lint: `# EOF` and `# UNIT`
/// lines dropped, a counter family `x` named `x_total` (its `x_created` samples dropped), an
/// `info` family `x` made the gauge `x_info`, `stateset` a gauge, `unknown` untyped, exemplars
/// (` # {…} v`) cut off. Sample names and values are left as they are.
pub fn openmetrics_to_classic(exposition: &str) -> String {
    use std::collections::HashMap;
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (it.next(), it.next()) {
                types.insert(name, kind);
            }
        }
    }
    let family_name = |name: &str| -> String {
        match types.get(name).copied() {
            Some("counter") if !name.ends_with("_total") => format!("{name}_total"),
            Some("info") if !name.ends_with("_info") => format!("{name}_info"),
            _ => name.to_string(),
        }
    };
    let created: Vec<String> = types
        .iter()
        .filter(|(_, k)| matches!(**k, "counter" | "histogram" | "summary"))
        .map(|(n, _)| format!("{}_created", n.trim_end_matches("_total")))
        .collect();
    let mut out = String::with_capacity(exposition.len());
    for line in exposition.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push_str(&format!("# HELP {} {help}\n", family_name(name)));
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let kind = match kind.trim() {
                "info" | "stateset" => "gauge",
                "unknown" => "untyped",
                other => other,
            };
            out.push_str(&format!("# TYPE {} {kind}\n", family_name(name)));
        } else if line.starts_with('#') || line.is_empty() {
            out.push_str(line);
            out.push('\n');
        } else {
            let sample_name = line.split(['{', ' ']).next().unwrap_or_default();
            if created.iter().any(|c| c == sample_name) {
                continue;
            }
            let sample = line.split_once(" # {").map_or(line, |(s, _)| s);
            out.push_str(sample);
            out.push('\n');
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Network namespaces
// ---------------------------------------------------------------------------------------------

/// A network namespace of the test's own (`mafalda-<tag>-<pid>`), deleted on drop: its `lo` is
/// up, and an interface inside it carries `10.254.<n>.1/24` (n from the pid, 1..=250) — a
/// `dummy`, or where the kernel has no dummy driver a `veth` pair with both ends inside. A
/// server in the namespace (bound to 0.0.0.0 or to [`Netns::ip`]) sees a client in the same
/// namespace that connects to [`Netns::ip`] as coming from that address: not loopback. Nothing
/// is added to the root namespace.
///
/// Run a process inside with [`Netns::command`]; connect from this process with [`Netns::run`].
pub struct Netns {
    name: String,
    ip: String,
    link: &'static str,
}

impl Netns {
    /// Creates and configures the namespace (root is needed); panics with `ip`'s message.
    pub fn new(tag: &str) -> Self {
        let pid = std::process::id();
        let name = format!("mafalda-{tag}-{pid}");
        let ip = format!("10.254.{}.1", pid % 250 + 1);
        // A namespace of a dead process that had our pid.
        let _ = output_within(Command::new("ip").args(["netns", "del", &name]), b"", Duration::from_secs(10));
        ip_cmd(&["netns", "add", &name]);
        let mut netns = Self { name, ip, link: "" };
        let n = netns.name.clone();
        ip_cmd(&["-n", &n, "link", "set", "lo", "up"]);
        let dummy = output_within(
            Command::new("ip").args(["-n", &n, "link", "add", "mafalda0", "type", "dummy"]),
            b"",
            Duration::from_secs(10),
        );
        if dummy.status.success() {
            netns.link = "dummy";
        } else {
            ip_cmd(&["-n", &n, "link", "add", "mafalda0", "type", "veth", "peer", "name", "mafalda1"]);
            ip_cmd(&["-n", &n, "link", "set", "mafalda1", "up"]);
            netns.link = "veth";
        }
        ip_cmd(&["-n", &n, "addr", "add", &format!("{}/24", netns.ip), "dev", "mafalda0"]);
        ip_cmd(&["-n", &n, "link", "set", "mafalda0", "up"]);
        netns
    }

    /// `mafalda-<tag>-<pid>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `10.254.<n>.1`, the namespace's non-loopback address.
    pub fn ip(&self) -> String {
        self.ip.clone()
    }

    /// "dummy" or "veth": the kind of interface that carries [`Netns::ip`].
    pub fn link_kind(&self) -> &str {
        self.link
    }

    /// The namespace's handle, `/run/netns/<name>`, there while the namespace is.
    pub fn path(&self) -> PathBuf {
        netns_path(&self.name)
    }

    /// `ip netns exec <name> <program>`: `program` runs inside (with this pid: killing the
    /// child kills the program).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// Runs `f` on a thread of this process that joined the namespace (setns): sockets it opens
    /// are in the namespace, e.g. `netns.run(|| post(&format!("{}:9100", netns.ip()), "/drain",
    /// None))` reaches a server in the namespace from the non-loopback address. A panic in `f`
    /// is passed on.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = self.path();
        let handle = File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        std::thread::scope(|s| {
            let thread = s.spawn(move || {
                use std::os::fd::AsRawFd;
                // SAFETY: setns(2) on an open namespace file; affects this new thread only.
                let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns into {}: {}", path.display(), io::Error::last_os_error());
                f()
            });
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = output_within(Command::new("ip").args(["netns", "del", &self.name]), b"", Duration::from_secs(10));
    }
}

/// `/run/netns/<name>`: where `ip netns` keeps a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// Runs `ip ARGS`; panics with its stderr when it fails.
fn ip_cmd(args: &[&str]) -> String {
    let out = output_within(Command::new("ip").args(args), b"", Duration::from_secs(10));
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
