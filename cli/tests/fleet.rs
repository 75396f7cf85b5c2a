//! The fleet on Redis, with real processes: `mafalda-host serve --registry` hosts list
//! themselves, an application that knows only `MAFALDA_REGISTRY` finds them, places rooms on
//! them (media flowing), spreads a burst of rooms opened at once, uses a host that joins later,
//! forgets one that died or drains, rides out a Redis outage, keeps its links within the budget
//! among hundreds of dead records, never uses a host whose certificate is not the node its
//! record names, and keeps using a linked host whose record a Redis writer marks draining.

mod cluster_support;
mod fleet_support;
mod ops_support;

use cluster_support::{certs, opus_input, opus_output, run, scratch, until, Node};
use fleet_support::{application_from_registry, fake_record, fleet_flags, host_key, node_of, Redis};
use mafalda_host::cluster::proto::PROTOCOL_VERSION;
use mafalda_host::fleet::record::HostRecord;
use mafalda_host::prelude::*;
use mafalda_host::worker::{Worker, WorkerSettings};
use mafalda_host::worker_manager::WorkerManager;
use mafalda_media_tools::media::router_codecs;
use mafalda_media_tools::rtp::{GeneratorConfig, RtpGenerator, RtpSink};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A room: a router, its input (a producer fed by a generator when it has outputs) and its
/// outputs (consumers into sinks).
struct Room {
    _router: Router,
    input: PlainTransport,
    _producer: Producer,
    outputs: Vec<(PlainTransport, Consumer, RtpSink)>,
    _generator: Option<RtpGenerator>,
    /// The node its input landed on.
    node: String,
}

impl Room {
    /// A new room with `outputs` consumers (and media when it has some).
    async fn open(manager: &WorkerManager, worker: &Worker, ssrc: u32, outputs: usize) -> Self {
        let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
        let (input, producer) = opus_input(&router, ssrc).await;
        let node = node_of(manager, input.cell());
        let mut outs = Vec::new();
        for _ in 0..outputs {
            outs.push(opus_output(&router, &producer).await);
        }
        let generator = if outputs > 0 {
            let config = GeneratorConfig::opus(ssrc).with_count(1_000_000).with_rate(100);
            Some(RtpGenerator::start(&input, config).await.expect("generator"))
        } else {
            None
        };
        Self { _router: router, input, _producer: producer, outputs: outs, _generator: generator, node }
    }

    /// The nodes its transports are on.
    fn nodes(&self, manager: &WorkerManager) -> BTreeSet<String> {
        std::iter::once(self.input.cell())
            .chain(self.outputs.iter().map(|(t, _, _)| t.cell()))
            .map(|cell| node_of(manager, cell))
            .collect()
    }

    /// Waits until every output got `more` packets beyond what it had (panics after `limit`).
    async fn flows(&self, more: u64, limit: Duration) {
        for (transport, _, sink) in &self.outputs {
            let before = sink.report().indices.len() as u64;
            let report = sink.wait_for(before + more, limit).await;
            assert!(
                report.indices.len() as u64 >= before + more,
                "room on {}: output {} got {} packets, {before} before (wanted {more} more)",
                self.node,
                transport.id(),
                report.indices.len()
            );
            assert_eq!(report.corrupt, 0);
        }
    }
}

/// The application's logs on stderr when `FLEET_TEST_LOG` is set (e.g. `info,mafalda_host=debug`).
fn logs() {
    if let Ok(filter) = std::env::var("FLEET_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    }
}

/// The nodes of the cells the application's host closes from now on.
fn closed_cells(manager: &WorkerManager) -> Arc<Mutex<Vec<String>>> {
    let closed: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = Arc::clone(&closed);
    manager
        .host()
        .on_cell_closed(move |e| seen.lock().expect("closed").push(e.node.clone().unwrap_or_default()))
        .detach();
    closed
}

/// Hosts `names` (node, IP) listed in `redis`'s cluster `cluster` (no admin server), their
/// certificates in a fresh scratch directory named after the cluster.
fn listed_hosts(redis: &Redis, cluster: &str, names: &[(&str, &str)]) -> (std::path::PathBuf, Vec<Node>) {
    let dir = scratch(cluster);
    certs(&dir, names);
    let flags = fleet_flags(redis, cluster, false);
    let hosts = names.iter().map(|(name, ip)| Node::start(&dir, name, ip, 4443, &refs(&flags))).collect();
    (dir, hosts)
}

/// `flags` as the `&str`s `Node::start` takes.
fn refs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_found_in_the_registry_serve_rooms_a_new_one_is_used_a_dead_one_and_a_drained_one_are_not() {
    const CLUSTER: &str = "fleet-a";
    logs();
    let redis = Redis::start(46390);
    let mut db = redis.client();
    let dir = scratch("fleet-a");
    let names = [("fa1", "127.0.0.71"), ("fa2", "127.0.0.72"), ("fa3", "127.0.0.73"), ("fa4", "127.0.0.74")];
    certs(&dir, &names);
    // No --admin off: each host's admin server listens on IP:9464 (the drain needs one).
    let flags = fleet_flags(&redis, CLUSTER, true);
    let mut hosts: BTreeMap<String, Node> = BTreeMap::new();
    for (name, ip) in &names[..3] {
        hosts.insert((*name).into(), Node::start(&dir, name, ip, 4443, &refs(&flags)));
    }

    // Each host wrote its record: the address it serves on, this protocol, a TTL of at most 5 s.
    let pattern = host_key(CLUSTER, "*");
    until("three records in the registry", Duration::from_secs(10), || db.keys(&pattern).len() == 3).await;
    for (name, ip) in &names[..3] {
        let key = host_key(CLUSTER, name);
        let record: serde_json::Value = serde_json::from_str(&db.get(&key).expect("record")).expect("JSON record");
        assert_eq!(record["node"], *name);
        assert_eq!(record["address"], format!("{ip}:4443"));
        assert_eq!(record["protocol"], PROTOCOL_VERSION);
        assert_eq!(record["draining"], false);
        assert_eq!(record["cells"].as_array().map(Vec::len), Some(1), "{record}");
        let ttl = db.cmd(&["PTTL", &key]).expect("PTTL");
        assert!(matches!(ttl, fleet_support::Value::Int(ms) if ms > 0 && ms <= 5000), "{key}: PTTL {ttl:?}");
    }

    // The hosts found each other there too (each links to the others as peers, and offers
    // their workers to its clients).
    for (name, host) in hosts.iter_mut() {
        for (peer, ip) in names[..3].iter().filter(|(peer, _)| peer != name) {
            let needle = format!("cluster link up host={ip}:4443 node={peer}");
            tokio::task::block_in_place(|| host.wait_for_log(&needle, Duration::from_secs(10)));
        }
    }

    // The application knows only the registry.
    let manager = application_from_registry(&dir, &redis.url(), CLUSTER, &[]);
    let since = Instant::now();
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("a worker from the registry");
    eprintln!("create_worker from the registry: {:?}", since.elapsed());
    let fleet = manager.fleet().expect("a fleet").clone();
    assert_eq!(fleet.records().len(), 3);
    assert!(manager.cluster().is_some());

    // Rooms with media land on the listed hosts, each on one host, each on the host with the
    // fewest rooms once the registry shows the last one.
    let mut rooms = Vec::new();
    for i in 0..3 {
        let since = Instant::now();
        let room = Room::open(&manager, &worker, 0xa100 + i, 2).await;
        eprintln!("room {i} on {} in {:?}", room.node, since.elapsed());
        assert!(["fa1", "fa2", "fa3"].contains(&room.node.as_str()), "room on {}", room.node);
        assert_eq!(room.nodes(&manager), BTreeSet::from([room.node.clone()]), "a room stays on its host");
        let listed = until("the registry shows the room", Duration::from_secs(5), || {
            fleet.records().iter().any(|r| r.node == room.node && r.routers() > 0)
        })
        .await;
        eprintln!("  … listed by the application {listed:?} later");
        rooms.push(room);
    }
    let used: BTreeSet<&str> = rooms.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(used, BTreeSet::from(["fa1", "fa2", "fa3"]), "a room on each host");
    for room in &rooms {
        room.flows(20, Duration::from_secs(10)).await;
    }

    // Each host serves the application's rooms itself, none relays them to a peer: a host
    // advertises its peers' workers too, but a fleet application reaches every worker through
    // its own host's link (so a host that dies takes only its own rooms).
    for (name, host) in &hosts {
        let status = ops_support::get(&host.admin(), "/status").json();
        let relayed: Vec<&serde_json::Value> = status["stats"]["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .filter(|c| c["node"] != name.as_str())
            .filter(|c| c["transports"].as_u64() > Some(0) || c["routers"].as_u64() > Some(0))
            .collect();
        assert!(relayed.is_empty(), "{name} relays the application's rooms to its peers: {relayed:?}");
    }

    // A fourth host joins: it is the least loaded, the next rooms go there once it is listed.
    let (dir4, flags4) = (dir.clone(), flags.clone());
    let starting = tokio::task::spawn_blocking(move || Node::start(&dir4, "fa4", "127.0.0.74", 4443, &refs(&flags4)));
    let key4 = host_key(CLUSTER, "fa4");
    until("fa4's record", Duration::from_secs(60), || db.get(&key4).is_some()).await;
    let listed = Instant::now();
    let mut later = Vec::new();
    loop {
        let room = Room::open(&manager, &worker, 0xa200 + later.len() as u32, 0).await;
        let there = room.node == "fa4";
        later.push(room);
        if there {
            break;
        }
        assert!(listed.elapsed() < Duration::from_secs(5), "no room on fa4 within 5 s of its record");
    }
    let discovery = listed.elapsed();
    eprintln!("fa4 listed → first room on it: {discovery:?} ({} rooms created meanwhile)", later.len());
    assert!(discovery <= Duration::from_secs(2), "fa4 got its first room {discovery:?} after it was listed");
    hosts.insert("fa4".into(), starting.await.expect("fa4 started"));

    // One host is drained, another is killed.
    let drained = rooms[0].node.clone();
    let victim = rooms[1].node.clone();
    let survivors: Vec<&Room> = rooms.iter().filter(|r| r.node != victim).collect();

    let closed = closed_cells(&manager);
    hosts.get_mut(&victim).expect("victim").kill();
    let killed = Instant::now();
    let key = host_key(CLUSTER, &victim);
    until("the killed host's record expires", Duration::from_secs(6), || db.get(&key).is_none()).await;
    eprintln!("{victim} killed → its record gone after {:?}", killed.elapsed());
    // Its link went silent: its workers left placement (its record, kept while the link is
    // up, goes with the link: below).
    for i in 0..4 {
        let room = Room::open(&manager, &worker, 0xa300 + i, 0).await;
        assert_ne!(room.node, victim, "a new room on the killed host");
        later.push(room);
    }
    // Rooms on the other hosts are unaffected: only the killed host's workers left.
    let gone = closed.lock().expect("closed").clone();
    assert!(gone.iter().all(|node| *node == victim), "cells closed: {gone:?}");
    for room in &survivors {
        room.flows(50, Duration::from_secs(10)).await;
    }

    let admin = hosts[&drained].admin();
    let answer = run(&["drain", "--admin", &admin]);
    assert!(answer.contains("\"draining\":true"), "{answer}");
    let key = host_key(CLUSTER, &drained);
    let shown = until("the drained host's record says so", Duration::from_secs(2), || {
        db.get(&key).is_some_and(|r| r.contains("\"draining\":true"))
    })
    .await;
    until("the application sees the drain", Duration::from_secs(2), || {
        fleet.records().iter().any(|r| r.node == drained && r.is_draining())
    })
    .await;
    eprintln!("{drained} drained → its record shows it after {shown:?}");
    for i in 0..4 {
        let room = Room::open(&manager, &worker, 0xa400 + i, 0).await;
        assert!(room.node != drained && room.node != victim, "a new room on {}", room.node);
        later.push(room);
    }
    rooms[0].flows(50, Duration::from_secs(10)).await;
    // The killed host's link gives up (QUIC idle timeout): the application forgets it.
    let left = Duration::from_secs(15).saturating_sub(killed.elapsed()).max(Duration::from_millis(100));
    until("the application forgets the killed host", left, || !fleet.records().iter().any(|r| r.node == victim)).await;
    eprintln!("{victim} killed → forgotten by the application after {:?}", killed.elapsed());
    let placed: BTreeMap<&str, usize> = later.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.node.as_str()).or_default() += 1;
        m
    });
    eprintln!("later rooms by host: {placed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_leaves_links_and_rooms_alone_and_every_record_is_back_soon_after_redis() {
    const CLUSTER: &str = "fleet-b";
    logs();
    let mut redis = Redis::start(46391);
    let mut db = redis.client();
    let names = [("fb1", "127.0.0.75"), ("fb2", "127.0.0.76")];
    let (dir, mut hosts) = listed_hosts(&redis, CLUSTER, &names);
    let pattern = host_key(CLUSTER, "*");
    until("both records", Duration::from_secs(10), || db.keys(&pattern).len() == 2).await;

    let manager = application_from_registry(&dir, &redis.url(), CLUSTER, &[]);
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("a worker from the registry");
    let fleet = manager.fleet().expect("a fleet").clone();
    until("both hosts serve the application", Duration::from_secs(5), || {
        names.iter().all(|(name, _)| manager.host().cells().iter().any(|c| c.node() == *name))
    })
    .await;

    // A burst: four rooms at once, each joined as a consume-first client does (its first two
    // transports created at once, before either made a router). The records show none of them
    // yet: still rooms on both hosts (two each unless their idle loads differ by a room's
    // worth), each room on one host.
    let mut joins = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (manager, worker) = (manager.clone(), worker.clone());
        joins.spawn(async move {
            let router = worker.create_router(RouterOptions::new(router_codecs())).await.expect("router");
            let options = || PlainTransportOptions::new(mafalda_media_tools::media::loopback_listen_info());
            let (a, b) =
                tokio::join!(router.create_plain_transport(options()), router.create_plain_transport(options()));
            let (a, b) = (a.expect("a transport"), b.expect("a transport"));
            let nodes: BTreeSet<String> = [a.cell(), b.cell()].into_iter().map(|c| node_of(&manager, c)).collect();
            (router, a, b, nodes)
        });
    }
    let burst = tokio::time::timeout(Duration::from_secs(10), joins.join_all()).await.expect("the burst is placed");
    let mut per_host: BTreeMap<String, usize> = BTreeMap::new();
    for (_, _, _, nodes) in &burst {
        assert_eq!(nodes.len(), 1, "a room's first transports on several hosts: {nodes:?}");
        *per_host.entry(nodes.iter().next().cloned().unwrap_or_default()).or_default() += 1;
    }
    eprintln!("a burst of four rooms by host: {per_host:?}");
    assert!(per_host.len() == 2 && per_host.values().all(|n| *n >= 1), "the burst's rooms by host: {per_host:?}");
    drop(burst);

    let mut rooms = Vec::new();
    for i in 0..2 {
        rooms.push(Room::open(&manager, &worker, 0xb100 + i, 2).await);
    }
    for room in &rooms {
        room.flows(20, Duration::from_secs(10)).await;
    }
    let closed = closed_cells(&manager);
    let failures = fleet.stats().failures;

    // Redis dies: every host says so once, media flows on, new rooms go to the linked hosts.
    redis.kill();
    let killed = Instant::now();
    for host in &mut hosts {
        tokio::task::block_in_place(|| host.wait_for_log("fleet registry unreachable", Duration::from_secs(5)));
    }
    until("the application notices", Duration::from_secs(5), || fleet.stats().failures > failures).await;
    for room in &rooms {
        room.flows(50, Duration::from_secs(10)).await;
    }
    let mut later = Vec::new();
    for i in 0..2 {
        let since = Instant::now();
        let room = Room::open(&manager, &worker, 0xb200 + i, 1).await;
        let took = since.elapsed();
        assert!(["fb1", "fb2"].contains(&room.node.as_str()), "a room on {}", room.node);
        assert!(took < Duration::from_secs(1), "a room without Redis took {took:?}");
        room.flows(20, Duration::from_secs(10)).await;
        later.push(room);
    }
    // Longer than a record's TTL: the hosts stay in placement (the links are the truth).
    until("an outage longer than a record's TTL", Duration::from_secs(10), || {
        killed.elapsed() > Duration::from_secs(6)
    })
    .await;
    let room = Room::open(&manager, &worker, 0xb300, 1).await;
    assert!(["fb1", "fb2"].contains(&room.node.as_str()), "a room on {}", room.node);
    room.flows(20, Duration::from_secs(10)).await;
    later.push(room);
    for host in &mut hosts {
        let log = host.drain_log();
        // Said once per outage (not once per retry).
        let warned: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains("fleet registry unreachable"))
            .map(|l| l.split_once(" WARN ").map_or(l, |(_, m)| m).split(" error=").next().unwrap_or(l))
            .collect();
        let distinct: BTreeSet<&str> = warned.iter().copied().collect();
        assert!(!warned.is_empty() && warned.len() == distinct.len(), "{}: WARNs {warned:#?}", host.name);
    }

    // Redis is back (empty): every host's record is back within 2 s, the application reads them.
    redis.restart();
    let back = until("every record back", Duration::from_secs(2), || db_keys(&redis, &pattern) == 2).await;
    eprintln!("Redis restarted → every record back after {back:?}");
    until("the application reads them again", Duration::from_secs(3), || fleet.records().len() == 2).await;
    for room in rooms.iter().chain(&later) {
        room.flows(20, Duration::from_secs(10)).await;
    }
    let gone = closed.lock().expect("closed").clone();
    assert!(gone.is_empty(), "cells closed during the outage: {gone:?}");
    for host in &mut hosts {
        tokio::task::block_in_place(|| host.wait_for_log("fleet registry reachable again", Duration::from_secs(2)));
    }
}

/// The number of keys matching `pattern` (0 while Redis does not answer).
fn db_keys(redis: &Redis, pattern: &str) -> usize {
    fleet_support::Resp::connect(redis.port).ok().and_then(|mut c| c.cmd(&["KEYS", pattern]).ok()).map_or(
        0,
        |v| match v {
            fleet_support::Value::Array(keys) => keys.len(),
            _ => 0,
        },
    )
}

/// Whether the application's rooms use `node` (a transport or router on one of its cells).
fn in_use(manager: &WorkerManager) -> usize {
    let nodes: BTreeSet<String> = manager
        .host()
        .stats()
        .cells
        .into_iter()
        .filter(|c| c.routers > 0 || c.transports > 0)
        .map(|c| c.node)
        .collect();
    nodes.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn among_500_dead_records_the_links_stay_within_the_budget_and_rooms_land_on_real_hosts() {
    const CLUSTER: &str = "fleet-c";
    const DEAD: usize = 500;
    logs();
    let redis = Redis::start(46392);
    let mut db = redis.client();
    // 500 hosts that never answer (nothing listens where they say): most loaded, five idle so
    // that they are the best choice at first.
    let writes: Vec<Vec<String>> = (0..DEAD)
        .map(|i| {
            let load = if i < 5 { 0.0 } else { 0.3 + (i % 60) as f64 / 100.0 };
            let node = format!("dead-{i:03}");
            let record = fake_record(&node, &format!("127.0.0.{}:{}", 90 + i % 10, 20000 + i), load);
            ["SET", &host_key(CLUSTER, &node), &record.to_json(), "PX", "120000"].map(String::from).to_vec()
        })
        .collect();
    let answers = db.pipeline(&writes).expect("records written");
    assert!(answers.iter().all(|a| *a == fleet_support::Value::Status("OK".into())));

    let names = [("fc1", "127.0.0.78"), ("fc2", "127.0.0.79"), ("fc3", "127.0.0.80")];
    let (dir, _hosts) = listed_hosts(&redis, CLUSTER, &names);
    let pattern = host_key(CLUSTER, "*");
    until("every record", Duration::from_secs(10), || db.keys(&pattern).len() == DEAD + 3).await;

    let manager = application_from_registry(&dir, &redis.url(), CLUSTER, &[]);
    let max_linked = mafalda_host::fleet::book::DEFAULT_MAX_LINKED;
    // Sampled all along: links (the cluster's and the book's) against the budget plus the hosts
    // rooms use.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (manager, sampling) = (manager.clone(), Arc::clone(&sampling));
        tokio::spawn(async move {
            let (mut samples, mut most, mut over) = (0usize, (0usize, 0usize), Vec::new());
            let mut tried = BTreeSet::new();
            while sampling.load(Ordering::Relaxed) {
                let links = manager.cluster().map_or(0, |c| c.links().len());
                let book = manager.fleet().map(|f| f.linked()).unwrap_or_default();
                let linked = book.len();
                tried.extend(book.into_iter().map(|(node, _)| node).filter(|n| n.starts_with("dead-")));
                let used = in_use(&manager);
                if links.max(linked) > max_linked + used {
                    over.push((links, linked, used));
                }
                most = (most.0.max(links), most.1.max(linked));
                samples += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (samples, most, over, tried)
        })
    };
    let since = Instant::now();
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("a worker from the registry");
    let ready = since.elapsed();
    let first = Room::open(&manager, &worker, 0xc100, 1).await;
    let first_room = since.elapsed();
    eprintln!("500 dead records: create_worker {ready:?}, first room on {} after {first_room:?}", first.node);
    let fleet = manager.fleet().expect("a fleet").clone();
    assert_eq!(fleet.records().len(), DEAD + 3);
    let mut rooms = vec![first];
    let mut slowest = Duration::ZERO;
    for i in 1..10 {
        let since = Instant::now();
        rooms.push(Room::open(&manager, &worker, 0xc100 + i, 0).await);
        slowest = slowest.max(since.elapsed());
    }
    for room in &rooms {
        assert!(["fc1", "fc2", "fc3"].contains(&room.node.as_str()), "a room on {}", room.node);
    }
    rooms[0].flows(20, Duration::from_secs(10)).await;
    // A few more rounds of the plan (dead links given up, others tried).
    let settle = Instant::now();
    until("a few seconds of link churn", Duration::from_secs(10), || settle.elapsed() > Duration::from_secs(4)).await;
    sampling.store(false, Ordering::Relaxed);
    let (samples, most, over, tried) = sampler.await.expect("sampler");
    let stats = fleet.stats();
    eprintln!(
        "links: at most {} (cluster) / {} (book) over {samples} samples; dead hosts tried {}; slowest later \
         room {slowest:?}; discovery {stats:?}",
        most.0,
        most.1,
        tried.len()
    );
    assert!(samples > 100, "{samples} samples");
    assert!(
        over.is_empty(),
        "{} samples with links beyond {max_linked} + the hosts rooms use, e.g. (links, book's, used) {:?}",
        over.len(),
        &over[..over.len().min(5)]
    );
    // The idle dead hosts were the plan's first choice: tried, given up, others tried next.
    for i in 0..5 {
        assert!(tried.contains(&format!("dead-{i:03}")), "dead-{i:03} was never tried: {tried:?}");
    }
    assert!(tried.len() > 5, "no other dead host tried after the idle ones were given up: {tried:?}");
    let linked_now: Vec<String> = fleet.linked().into_iter().map(|(n, _)| n).collect();
    assert!(!linked_now.iter().any(|n| n.starts_with("dead-00")), "idle dead hosts still linked: {linked_now:?}");
    let real: Vec<String> = fleet.linked().into_iter().map(|(n, _)| n).filter(|n| n.starts_with("fc")).collect();
    assert!(!real.is_empty(), "the real hosts stay linked: {:?}", fleet.linked());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_naming_another_node_at_a_real_hosts_address_is_refused_and_odd_records_are_ignored() {
    const CLUSTER: &str = "fleet-d";
    logs();
    let redis = Redis::start(46393);
    let mut db = redis.client();
    // Written before anyone reads the registry: an impostor at fd1's address (idle, so the
    // best choice), a host of a future protocol, a malformed record, a record under another
    // node's key.
    let impostor = fake_record("impostor", "127.0.0.81:4443", 0.0);
    db.set_px(&host_key(CLUSTER, "impostor"), &impostor.to_json(), 120_000);
    let mut future = fake_record("future", "127.0.0.83:4443", 0.0);
    future.protocol = PROTOCOL_VERSION + 1;
    db.set_px(&host_key(CLUSTER, "future"), &future.to_json(), 120_000);
    db.set_px(&host_key(CLUSTER, "broken"), "{\"node\":\"broken\",", 120_000);
    let liar = fake_record("fd2", "127.0.0.84:4443", 0.0);
    db.set_px(&host_key(CLUSTER, "liar"), &liar.to_json(), 120_000);

    let names = [("fd1", "127.0.0.81"), ("fd2", "127.0.0.82")];
    let (dir, mut hosts) = listed_hosts(&redis, CLUSTER, &names);
    let pattern = host_key(CLUSTER, "*");
    until("the real records", Duration::from_secs(10), || db.keys(&pattern).len() == 6).await;

    let manager = application_from_registry(&dir, &redis.url(), CLUSTER, &[]);
    let closed = closed_cells(&manager);
    // Sampled all along: a refused link at fd1's address, any link to the future host.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (manager, sampling) = (manager.clone(), Arc::clone(&sampling));
        tokio::spawn(async move {
            let (mut refused, mut future) = (false, Vec::<String>::new());
            while sampling.load(Ordering::Relaxed) {
                for link in manager.cluster().map(|c| c.link_stats()).unwrap_or_default() {
                    refused |= link.address == "127.0.0.81:4443" && link.state == "refused";
                    if link.address == "127.0.0.83:4443" {
                        future.push(format!("{link:?}"));
                    }
                }
                if manager.fleet().is_some_and(|f| f.linked().iter().any(|(n, _)| n == "future")) {
                    future.push("in the book's links".to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (refused, future)
        })
    };
    let worker = manager.create_worker(WorkerSettings::default()).await.expect("a worker from the registry");
    let fleet = manager.fleet().expect("a fleet").clone();
    let known: BTreeSet<String> = fleet.records().into_iter().map(|r| r.node).collect();
    assert_eq!(known, ["fd1", "fd2", "future", "impostor"].map(String::from).into(), "the usable records");

    // Rooms land on the real hosts (at least one on fd1, whose address the impostor claims:
    // the next room goes to the host with fewer rooms once the registry shows the last one).
    let mut rooms: Vec<Room> = Vec::new();
    while !rooms.iter().any(|r| r.node == "fd1") {
        assert!(rooms.len() < 3, "no room on fd1: {:?}", rooms.iter().map(|r| &r.node).collect::<Vec<_>>());
        let started = Instant::now();
        let room = Room::open(&manager, &worker, 0xd100 + rooms.len() as u32, 1).await;
        eprintln!("room on {} in {:?}", room.node, started.elapsed());
        assert!(["fd1", "fd2"].contains(&room.node.as_str()), "a room on {}", room.node);
        let there = 1 + rooms.iter().filter(|r| r.node == room.node).count();
        until("the registry shows the room", Duration::from_secs(5), || {
            fleet.records().iter().any(|r| r.node == room.node && r.routers() as usize >= there)
        })
        .await;
        rooms.push(room);
    }
    until("the impostor's link is refused and dropped", Duration::from_secs(10), || {
        !fleet.linked().iter().any(|(n, _)| n == "impostor")
    })
    .await;
    for room in &rooms {
        room.flows(50, Duration::from_secs(10)).await;
    }
    // A Redis writer marks fd1 draining, rewriting its record faster than fd1 does: fd1's own
    // link shows that it takes rooms, so new rooms still reach it (a record may make a linked
    // host look busier, never idler nor draining).
    let key1 = host_key(CLUSTER, "fd1");
    let mut forged = HostRecord::parse(db.get(&key1).expect("fd1's record").as_bytes()).expect("fd1's record parses");
    forged.draining = true;
    forged.cells.iter_mut().for_each(|c| c.draining = true);
    let forging = Arc::new(AtomicBool::new(true));
    let forger = {
        let (forging, mut db, forged) = (Arc::clone(&forging), redis.client(), forged.to_json());
        std::thread::spawn(move || {
            while forging.load(Ordering::Relaxed) {
                db.set_px(&key1, &forged, 5_000);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    until("the application reads fd1's forged drain", Duration::from_secs(5), || {
        fleet.records().iter().any(|r| r.node == "fd1" && r.is_draining())
    })
    .await;
    let mut forged_rooms = Vec::new();
    for i in 0..6 {
        forged_rooms.push(Room::open(&manager, &worker, 0xd200 + i, 0).await);
    }
    forging.store(false, Ordering::Relaxed);
    forger.join().expect("forger");
    let on: Vec<&str> = forged_rooms.iter().map(|r| r.node.as_str()).collect();
    assert!(on.contains(&"fd1"), "no new room on fd1 while its record said it drains: {on:?}");

    // The genuine link to fd1 is up, and stays so while the impostor is tried again.
    let stats = manager.cluster().expect("cluster").link_stats();
    assert!(
        stats.iter().any(|l| l.address == "127.0.0.81:4443" && l.state == "up" && l.node.as_deref() == Some("fd1")),
        "{stats:?}"
    );
    sampling.store(false, Ordering::Relaxed);
    let (refused, future) = sampler.await.expect("sampler");
    // Refused (its state may have come and gone between two samples: the counter stays).
    assert!(refused || fleet.stats().hosts_refused >= 1, "the impostor's link was refused: {:?}", fleet.stats());
    assert!(future.is_empty(), "a host of another protocol was linked: {future:?}");
    assert!(fleet.stats().refused >= 2, "malformed and misfiled records refused: {:?}", fleet.stats());
    let gone = closed.lock().expect("closed").clone();
    assert!(gone.is_empty(), "cells closed: {gone:?}");
    for host in &mut hosts {
        assert!(host.running(), "{} survived the odd records", host.name);
    }
}
