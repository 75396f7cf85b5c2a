//! Shared by the cluster tests: certificates, `mafalda-host serve` processes on 127.0.0.x
//! addresses, and an application-side manager configured as an application would be (the
//! `MAFALDA_*` variables, read through the same code path).

#![allow(dead_code)]

use mafalda_host::config::HostOptions;
use mafalda_host::worker_manager::WorkerManager;
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Waits (bounded) until `done` holds, polling every 20 ms; returns how long it took.
pub async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let since = Instant::now();
    while !done() {
        assert!(since.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

/// A comedia plain transport in `router` (a generator sends to it) and an Opus producer of
/// `ssrc` on it: a room's input.
pub async fn opus_input(
    router: &mafalda_host::router::Router,
    ssrc: u32,
) -> (mafalda_host::prelude::PlainTransport, mafalda_host::prelude::Producer) {
    use mafalda_host::prelude::*;
    use mafalda_media_tools::media::{loopback_listen_info, opus_send_parameters};
    let mut options = PlainTransportOptions::new(loopback_listen_info());
    options.comedia = true;
    let input = router.create_plain_transport(options).await.expect("input transport");
    let producer =
        input.produce(ProducerOptions::new(MediaKind::Audio, opus_send_parameters(ssrc))).await.expect("producer");
    (input, producer)
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Worker processes whose parent is `parent`.
pub fn children_of(parent: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok());
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(parent) && cmdline.split(|b| *b == 0).any(|arg| arg == b"worker") && alive(*pid)
        })
        .collect()
}

/// A consumer of `producer` on a plain transport of `router`, connected to an Opus sink: a
/// room's output.
pub async fn opus_output(
    router: &mafalda_host::router::Router,
    producer: &mafalda_host::prelude::Producer,
) -> (mafalda_host::prelude::PlainTransport, mafalda_host::prelude::Consumer, mafalda_media_tools::rtp::RtpSink) {
    use mafalda_host::prelude::*;
    use mafalda_media_tools::media::{loopback_listen_info, receiver_capabilities};
    use mafalda_media_tools::rtp::{PayloadKind, RtpSink};
    let transport =
        router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("output");
    let sink = RtpSink::bind(PayloadKind::Opus).await.expect("sink");
    transport.connect(sink.remote_parameters()).await.expect("connect");
    let consumer =
        transport.consume(ConsumerOptions::new(producer.id(), receiver_capabilities())).await.expect("consume");
    (transport, consumer, sink)
}

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_mafalda-host")
}

/// A fresh directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mafalda-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Runs `mafalda-host ARGS` to completion; panics with its stderr when it fails.
pub fn run(args: &[&str]) -> String {
    let out = Command::new(binary())
        .env("MAFALDA_ADMIN", "off")
        .args(args)
        .env_remove("MAFALDA_CLUSTER")
        .output()
        .expect("run mafalda-host");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mafalda-host {args:?} failed: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A cluster CA in `dir/ca`, and certificates for `nodes` (name, ip) in `dir` (the nodes'
/// `--tls-dir`, with the CA's `ca.pem` and no CA key); those already there are kept.
pub fn certs(dir: &Path, nodes: &[(&str, &str)]) {
    let out = dir.to_str().expect("utf-8");
    let ca_dir = dir.join("ca");
    let ca = ca_dir.to_str().expect("utf-8");
    if !ca_dir.join("ca.key").exists() {
        run(&["certs", "init", "--out", ca]);
    }
    for (name, ip) in nodes {
        if !dir.join(format!("{name}.pem")).exists() {
            run(&["certs", "issue", name, "--ca", ca, "--out", out, "--ip", ip]);
        }
    }
}

/// One `mafalda-host serve` process.
pub struct Node {
    pub name: String,
    pub ip: String,
    pub port: u16,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
}

/// The port of every node's admin server (on the node's own address).
pub const ADMIN_PORT: u16 = 9464;

impl Node {
    /// Starts `serve` for node `name` on `ip:port` with `extra` flags; returns once its cluster
    /// endpoint is up (bounded).
    pub fn start(dir: &Path, name: &str, ip: &str, port: u16, extra: &[&str]) -> Self {
        let listen = format!("{ip}:{port}");
        let mut args: Vec<String> = [
            "serve",
            "--workers",
            "1",
            "--listen",
            &listen,
            "--announced-ip",
            ip,
            "--node",
            name,
            "--region",
            "eu",
            "--tls-dir",
            dir.to_str().expect("utf-8"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        // Each node's admin server on its own address (the `--admin` flag in `extra` wins).
        let mut child = Command::new(binary())
            .env("MAFALDA_ADMIN", format!("{ip}:{ADMIN_PORT}"))
            .args(&args)
            .env_remove("MAFALDA_CLUSTER")
            .env_remove("MAFALDA_MAX_WORKERS")
            .env("RUST_LOG", "info,mafalda_host=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut node = Self { name: name.into(), ip: ip.into(), port, child: Some(child), lines, log: Vec::new() };
        node.wait_for_log("cluster endpoint up", Duration::from_secs(60));
        node
    }

    /// `ip:port`.
    pub fn address(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// Its admin server's address.
    pub fn admin(&self) -> String {
        format!("{}:{ADMIN_PORT}", self.ip)
    }

    /// Waits for a log line containing `needle`; panics with the log so far after `limit`.
    pub fn wait_for_log(&mut self, needle: &str, limit: Duration) -> String {
        let end = Instant::now() + limit;
        if let Some(line) = self.log.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => {
                    panic!("{}: no log line with '{needle}' within {limit:?}; log:\n{}", self.name, self.log.join("\n"))
                }
            }
        }
    }

    /// Everything logged so far.
    pub fn drain_log(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// The process id.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// Waits (at most `limit`) for the process to exit on its own; its exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + limit;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child.take();
                return Some(status);
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGSTOP / SIGCONT).
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(rc, 0, "kill({}, {signal})", self.pid());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts node `name` on `ip` (its certificate made in `dir`) with `[serve]` settings `serve`.
pub fn limited(dir: &Path, name: &str, ip: &str, serve: &str) -> Node {
    certs(dir, &[(name, ip)]);
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, format!("[serve]\n{serve}\n")).expect("config");
    Node::start(dir, name, ip, 4443, &["--config", config.to_str().expect("utf-8")])
}

/// An application's manager for `hosts`, configured through the `MAFALDA_*` variables plus
/// `extra` (e.g. the policy), with no local workers.
pub fn application(dir: &Path, hosts: &[&Node], extra: &[(&str, &str)]) -> WorkerManager {
    application_at(dir, &hosts.iter().map(|n| n.address()).collect::<Vec<_>>(), extra)
}

/// As [`application`], for hosts at `addresses` (`ADDR:PORT`, certificates made in `dir`).
pub fn application_at(dir: &Path, addresses: &[String], extra: &[(&str, &str)]) -> WorkerManager {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("MAFALDA_CLUSTER".into(), addresses.join(","));
    vars.insert("MAFALDA_CA".into(), dir.join("ca.pem").display().to_string());
    vars.insert("MAFALDA_MAX_WORKERS".into(), "0".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let options = HostOptions::from_vars(|k| vars.get(k).cloned()).expect("cluster options");
    WorkerManager::with_options(options)
}

/// A raw protocol connection as a client: what a hand-written client (or an attacker) holds.
pub struct Raw {
    pub connection: quinn::Connection,
    pub outbox: mafalda_host::cluster::link::Outbox,
    pub stream: mafalda_host::cluster::link::MessageStream,
    pub cells: Vec<mafalda_host::cluster::proto::CellAdvert>,
    _endpoint: quinn::Endpoint,
}

/// How long a raw client waits for any one message.
pub const RAW_WAIT: Duration = Duration::from_secs(10);

impl Raw {
    /// Connects to `address` from `from` (an `ip:0` on loopback) and opens the control stream.
    pub async fn connect(dir: &Path, address: &str, from: &str) -> Self {
        Self::connect_speaking(dir, address, from, mafalda_host::cluster::proto::PROTOCOL_VERSION).await
    }

    /// [`Raw::connect`] announcing protocol `version` in the stream's preamble.
    pub async fn connect_speaking(dir: &Path, address: &str, from: &str, version: u16) -> Self {
        use mafalda_host::cluster::{link, tls};
        let mut endpoint = quinn::Endpoint::client(from.parse().expect("from")).expect("endpoint");
        endpoint.set_default_client_config(tls::app_client_config(&dir.join("ca.pem")).expect("tls"));
        let address: std::net::SocketAddr = address.parse().expect("address");
        let name = address.ip().to_string();
        let connection = endpoint.connect(address, &name).expect("connect").await.expect("handshake");
        let (send, recv) = connection.open_bi().await.expect("stream");
        let outbox = link::spawn_writer_speaking(send, &connection, 64 << 20, version);
        Self { connection, outbox, stream: link::MessageStream::new(recv), cells: Vec::new(), _endpoint: endpoint }
    }

    /// Sends a hello as client `node`.
    pub fn hello(&self, node: &str, resume: Option<mafalda_host::cluster::proto::ResumeTicket>, last_event: u64) {
        use mafalda_host::cluster::proto::{Hello, Message, Role};
        let hello = Hello { role: Role::Client, node: node.into(), token: None, resume, last_event };
        self.outbox.send(&Message::Hello(hello)).expect("hello queued");
    }

    /// The next message (panics after [`RAW_WAIT`]); `None` when the stream ended or failed.
    pub async fn next(&mut self) -> Option<mafalda_host::cluster::proto::Message> {
        let read = tokio::time::timeout(RAW_WAIT, self.stream.next()).await.expect("a message in time");
        read.unwrap_or_default()
    }

    /// The answer to the hello: the welcome, or the refusal's reason.
    pub async fn welcome(&mut self) -> Result<mafalda_host::cluster::proto::Welcome, String> {
        use mafalda_host::cluster::proto::Message;
        match self.next().await {
            Some(Message::Welcome(welcome)) => {
                self.cells = welcome.cells.clone();
                Ok(welcome)
            }
            Some(Message::Refused { reason }) => Err(reason),
            other => Err(format!("unexpected answer: {:?}", other.map(|m| m.kind()))),
        }
    }

    /// Carries out `op` as request `id`, keeping adverts and skipping events.
    pub async fn call(
        &mut self,
        id: u32,
        op: mafalda_host::cluster::proto::Op,
    ) -> Result<mafalda_host::cluster::proto::Reply, mafalda_host::cluster::proto::WireError> {
        use mafalda_host::cluster::proto::{Message, WireError};
        self.outbox.send(&Message::Request { id, op }).map_err(|e| WireError::Failed(e.to_string()))?;
        loop {
            match self.next().await {
                Some(Message::Response { id: answered, result }) if answered == id => return result,
                Some(Message::Cells(cells)) => self.cells = cells,
                Some(_) => {}
                None => return Err(WireError::LinkDown),
            }
        }
    }

    /// The handle of the host's first worker (from its adverts).
    pub async fn worker(&mut self) -> mafalda_host::cluster::proto::Handle {
        use mafalda_host::cluster::proto::Message;
        while self.cells.is_empty() {
            match self.next().await {
                Some(Message::Cells(cells)) => self.cells = cells,
                Some(_) => {}
                None => panic!("the stream ended before an advert"),
            }
        }
        self.cells[0].worker
    }
}
