//! Shared by the fleet tests: a `redis-server` child the test owns (killed on drop, restartable
//! on its port), a small RESP client to read and write the registry as an operator (or an
//! attacker) would, records written by hand, and an application configured only with
//! `MAFALDA_REGISTRY` (the same `HostOptions::from_vars` path an application takes).

#![allow(dead_code)]

use mafalda_host::config::HostOptions;
use mafalda_host::fleet::record::{CellRecord, HostRecord};
use mafalda_host::worker_manager::WorkerManager;
use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` on 127.0.0.1:`port`, no persistence; the test's own child.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts it; returns once it answers (bounded).
    pub fn start(port: u16) -> Self {
        let mut redis = Self { port, child: None };
        redis.restart();
        redis
    }

    /// (Re)starts the server on its port (an empty one: nothing is persisted).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis on {} still runs", self.port);
        let child = Command::new("/usr/bin/redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let since = Instant::now();
        loop {
            // Ours, not another run's on the same port.
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server on {} exited ({status}): is the port taken?", self.port);
            }
            if let Ok(mut client) = Resp::connect(self.port) {
                let pid = self.child.as_ref().map_or(0, Child::id);
                let info = client.cmd(&["INFO", "server"]).ok().and_then(|v| v.text()).unwrap_or_default();
                if info.lines().any(|l| l.trim() == format!("process_id:{pid}")) {
                    return;
                }
            }
            assert!(since.elapsed() < Duration::from_secs(10), "redis-server on {} did not answer", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The registry URL hosts and applications are given.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A new client.
    pub fn client(&self) -> Resp {
        Resp::connect(self.port).expect("connect to redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A RESP reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Value>),
}

impl Value {
    /// A bulk string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::Bulk(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Status(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// A blocking RESP2 client (one command at a time, or a pipeline).
pub struct Resp {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Resp {
    pub fn connect(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.set_nodelay(true)?;
        Ok(Self { writer: stream.try_clone()?, reader: BufReader::new(stream) })
    }

    fn encode(args: &[&str], out: &mut Vec<u8>) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    fn read_value(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "redis closed the connection"));
        }
        let line = line.trim_end_matches("\r\n");
        let (kind, rest) = line.split_at(1);
        let number = || rest.parse::<i64>().map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e));
        Ok(match kind {
            "+" => Value::Status(rest.into()),
            "-" => Value::Error(rest.into()),
            ":" => Value::Int(number()?),
            "$" => match number()? {
                -1 => Value::Nil,
                n => {
                    let mut buf = vec![0; usize::try_from(n).unwrap_or(0) + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(buf.len() - 2);
                    Value::Bulk(buf)
                }
            },
            "*" => match number()? {
                -1 => Value::Nil,
                n => (0..n).map(|_| self.read_value()).collect::<io::Result<Vec<_>>>().map(Value::Array)?,
            },
            other => return Err(io::Error::new(io::ErrorKind::InvalidData, format!("RESP type {other:?}"))),
        })
    }

    /// One command.
    pub fn cmd(&mut self, args: &[&str]) -> io::Result<Value> {
        let mut out = Vec::new();
        Self::encode(args, &mut out);
        self.writer.write_all(&out)?;
        self.read_value()
    }

    /// Many commands in one write; their replies.
    pub fn pipeline(&mut self, commands: &[Vec<String>]) -> io::Result<Vec<Value>> {
        let mut out = Vec::new();
        for command in commands {
            let args: Vec<&str> = command.iter().map(String::as_str).collect();
            Self::encode(&args, &mut out);
        }
        self.writer.write_all(&out)?;
        commands.iter().map(|_| self.read_value()).collect()
    }

    /// `GET key` as text.
    pub fn get(&mut self, key: &str) -> Option<String> {
        self.cmd(&["GET", key]).expect("GET").text()
    }

    /// Every key matching `pattern`, sorted.
    pub fn keys(&mut self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = match self.cmd(&["KEYS", pattern]).expect("KEYS") {
            Value::Array(values) => values.iter().filter_map(Value::text).collect(),
            other => panic!("KEYS answered {other:?}"),
        };
        keys.sort();
        keys
    }

    /// `SET key value PX ms`.
    pub fn set_px(&mut self, key: &str, value: &str, ms: u64) {
        let answer = self.cmd(&["SET", key, value, "PX", &ms.to_string()]).expect("SET");
        assert_eq!(answer, Value::Status("OK".into()));
    }
}

/// The key of `node`'s record in `cluster`.
pub fn host_key(cluster: &str, node: &str) -> String {
    format!("mafalda:{cluster}:host:{node}")
}

/// A record as a host writes it: `node` at `address` with one worker at `load`.
pub fn fake_record(node: &str, address: &str, load: f64) -> HostRecord {
    HostRecord {
        node: node.into(),
        region: "eu".into(),
        address: address.into(),
        announced_ip: address.rsplit_once(':').map_or("127.0.0.1", |(ip, _)| ip).into(),
        version: env!("CARGO_PKG_VERSION").into(),
        protocol: mafalda_host::cluster::proto::PROTOCOL_VERSION,
        boot_id: format!("boot-{node}"),
        max_workers: 1,
        draining: false,
        cells: vec![CellRecord {
            worker: format!("00000000-0000-4000-8000-{:012}", node.len()),
            predicted: load,
            transports: 0,
            routers: 0,
            draining: false,
        }],
    }
}

/// The flags of a host listed in (and finding its peers in) `redis`'s cluster `cluster`; with
/// `admin`, its admin server listens on IP:9464 (`Node::start`'s default), else there is none.
pub fn fleet_flags(redis: &Redis, cluster: &str, admin: bool) -> Vec<String> {
    let mut flags = ["--registry", &redis.url(), "--cluster-name", cluster].map(String::from).to_vec();
    if !admin {
        flags.extend(["--admin", "off"].map(String::from));
    }
    flags
}

/// An application's manager that knows only the registry (no `MAFALDA_CLUSTER`): the
/// `MAFALDA_*` variables an application would set, with no local workers.
pub fn application_from_registry(dir: &Path, url: &str, cluster: &str, extra: &[(&str, &str)]) -> WorkerManager {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("MAFALDA_REGISTRY".into(), url.into());
    vars.insert("MAFALDA_CLUSTER_NAME".into(), cluster.into());
    vars.insert("MAFALDA_CA".into(), dir.join("ca.pem").display().to_string());
    vars.insert("MAFALDA_MAX_WORKERS".into(), "0".into());
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let options = HostOptions::from_vars(|k| vars.get(k).cloned()).expect("fleet options");
    assert!(options.cluster.hosts.is_empty(), "no static host list");
    WorkerManager::with_options(options)
}

/// The node a cell of `manager`'s host is on ("?" for an unknown cell).
pub fn node_of(manager: &WorkerManager, cell: mafalda_host::placement::CellId) -> String {
    manager.host().cell(cell).map_or_else(|| "?".into(), |c| c.node().to_string())
}
