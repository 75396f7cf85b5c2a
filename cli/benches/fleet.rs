//! The fleet on Redis as an operator runs it (loopback, a real `redis-server`, real `serve`
//! processes with `--registry`, an application with only `MAFALDA_REGISTRY`):
//! 1. discovery latency, in rounds: a new host is started while the application's rooms run on
//!    the others; from its spawn to its cluster endpoint up, to its record in the
//!    application's book, and to the first new room placed on it (it is the least loaded);
//! 2. Redis traffic: bytes in and out and commands per second at the server (`INFO stats`)
//!    over 10 s with the hosts and the application running, per participant; then again with
//!    500 more records in the registry (what each full read costs a watcher).
//!
//! Node selection's own time at 500 and 5,000 records is `cargo bench -p mafalda-host --bench
//! fleet`. Run: `cargo bench -p mafalda-host-cli --bench fleet`.

#[path = "../tests/cluster_support/mod.rs"]
mod cluster_support;

use cluster_support::{certs, scratch, Node};
use mafalda_host::config::HostOptions;
use mafalda_host::prelude::*;
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::{loopback_listen_info, router_codecs};
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REDIS_PORT: u16 = 46380;
const CLUSTER: &str = "bench";
const ROUNDS: usize = 5;

/// A `redis-server` of the bench's own.
struct Redis(Child);

impl Redis {
    fn start() -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &REDIS_PORT.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (installed by scripts/bootstrap)");
        let redis = Self(child);
        let end = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["ping"]).trim() != "PONG" {
            assert!(Instant::now() < end, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli").args(["-p", &REDIS_PORT.to_string()]).args(args).output();
        out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }

    /// `INFO stats` counters: bytes in, bytes out, commands.
    fn counters(&self) -> (f64, f64, f64) {
        let info = self.cli(&["info", "stats"]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (field("total_net_input_bytes"), field("total_net_output_bytes"), field("total_commands_processed"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn registry() -> String {
    format!("redis://127.0.0.1:{REDIS_PORT}")
}

fn host(dir: &Path, name: &str, ip: &str) -> Node {
    certs(dir, &[(name, ip)]);
    let registry = registry();
    Node::start(dir, name, ip, 4443, &["--admin", "off", "--registry", &registry, "--cluster-name", CLUSTER])
}

fn application(dir: &Path) -> WorkerManager {
    let vars: HashMap<&str, String> = HashMap::from([
        ("MAFALDA_REGISTRY", registry()),
        ("MAFALDA_CLUSTER_NAME", CLUSTER.to_string()),
        ("MAFALDA_CA", dir.join("ca.pem").display().to_string()),
        ("MAFALDA_MAX_WORKERS", "0".to_string()),
    ]);
    let options = HostOptions::from_vars(|k| vars.get(k).cloned()).expect("options");
    WorkerManager::with_options(options)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn spread(values: &[f64]) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(0.0, f64::max);
    (min, max)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = scratch("fleet-bench");
    let redis = Redis::start();
    let _first = host(&dir, "bench1", "127.0.0.101");
    let _second = host(&dir, "bench2", "127.0.0.102");
    let manager = application(&dir);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("worker over the fleet");
    let fleet = manager.fleet().expect("fleet").clone();
    let node_of = |t: &PlainTransport| manager.host().cell(t.cell()).map(|c| c.node().to_string()).unwrap_or_default();
    let mut rooms = Vec::new();
    for _ in 0..4 {
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let transport =
            router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t");
        rooms.push((router, transport));
    }

    println!("1. discovery latency (ms), {ROUNDS} rounds: spawn -> endpoint up -> in the application's book -> first room on it");
    let (mut up, mut listed, mut placed) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let name = format!("late{round}");
        let ip = format!("127.0.0.{}", 110 + round);
        certs(&dir, &[(&name, &ip)]);
        let spawned = Instant::now();
        let mut late = host(&dir, &name, &ip);
        let ready = spawned.elapsed();
        while !fleet.records().iter().any(|r| r.node == name) {
            assert!(spawned.elapsed() < Duration::from_secs(20), "{name} never listed");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let known = spawned.elapsed();
        let first = loop {
            let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
            let transport =
                router.create_plain_transport(PlainTransportOptions::new(loopback_listen_info())).await.expect("t");
            let on_it = node_of(&transport) == name;
            rooms.push((router, transport));
            if on_it {
                break spawned.elapsed();
            }
            assert!(spawned.elapsed() < Duration::from_secs(30), "no room reached {name}");
        };
        println!(
            "  round {round}: up {:>6.1}  listed {:>6.1}  first room {:>6.1}  (listed -> room {:>5.1})",
            ready.as_secs_f64() * 1e3,
            known.as_secs_f64() * 1e3,
            first.as_secs_f64() * 1e3,
            (first - known).as_secs_f64() * 1e3
        );
        up.push(ready.as_secs_f64() * 1e3);
        listed.push((known - ready).as_secs_f64() * 1e3);
        placed.push((first - ready).as_secs_f64() * 1e3);
        // Its rooms leave, and it stops as an operator stops a host (SIGTERM: drained, out of
        // the registry): the next round's host is the least loaded again.
        rooms.retain(|(_, t)| node_of(t) != name);
        late.signal(libc::SIGTERM);
        assert!(late.wait_exit(Duration::from_secs(20)).is_some(), "{name} did not stop");
        while fleet.records().iter().any(|r| r.node == name) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    for (what, values) in [("spawn -> up", &mut up), ("up -> listed", &mut listed), ("up -> first room", &mut placed)] {
        let (min, max) = spread(values);
        println!("  {what:<18} median {:>7.1} ms [{min:.1}, {max:.1}]", median(values));
    }

    println!("2. Redis traffic over 10 s (INFO stats at the server)");
    let measure = |label: &str, participants: f64| {
        let (i0, o0, c0) = redis.counters();
        std::thread::sleep(Duration::from_secs(10));
        let (i1, o1, c1) = redis.counters();
        let per = |v: f64| v / 10.0;
        println!(
            "  {label}: in {:.0} B/s, out {:.0} B/s, {:.1} commands/s; per participant ({participants}): in {:.0} B/s, out {:.0} B/s, {:.1} commands/s",
            per(i1 - i0),
            per(o1 - o0),
            per(c1 - c0),
            per(i1 - i0) / participants,
            per(o1 - o0) / participants,
            per(c1 - c0) / participants
        );
    };
    measure("2 hosts + 1 application", 3.0);
    let fake = |i: usize| {
        format!(
            r#"{{"node":"fake{i}","region":"eu","address":"127.0.1.{}:{}","announced_ip":"127.0.1.1","version":"0.1.0","protocol":{},"boot_id":"b{i}","max_workers":2,"draining":false,"cells":[{{"worker":"w1","predicted":0.5,"transports":3,"routers":1,"draining":false}},{{"worker":"w2","predicted":0.5,"transports":3,"routers":1,"draining":false}}]}}"#,
            i % 250 + 1,
            20000 + i,
            mafalda_host::cluster::proto::PROTOCOL_VERSION
        )
    };
    for i in 0..500 {
        redis.cli(&["set", &format!("mafalda:{CLUSTER}:host:fake{i}"), &fake(i), "px", "120000"]);
    }
    measure("the same with 500 more records listed", 3.0);
    drop(rooms);
}
