//! A side of the fleet that uses hosts (an application, or a host aggregating peers): it reads
//! the registry (every record each [`READ_EVERY`], one record at once when its host announces a
//! change), keeps the [`FleetBook`], opens and closes the cluster's links as the book plans,
//! and scopes placement to the hosts node selection picks ([`NodeScope`]).

use super::book::{BookSettings, FleetBook, LinkHealth, LinkSeen};
use super::record::{Announcement, Change, HostRecord};
use super::registry::{Registry, RegistryError};
use crate::cluster::client::LinkState;
use crate::cluster::{Cluster, ClusterError};
use crate::config::ClusterOptions;
use crate::host::Host;
use crate::internals::cell::{Count, Origin};
use crate::internals::node_scope::{NodeScope, Scope};
use crate::internals::object::lock;
use crate::placement::nodes::{FleetNode, LeastLoaded, NodeRequest, NodeSelector, SelectError, MAX_SELECTED};
use crate::placement::PlacementPolicy;
use mediasoup::router::RouterId;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

/// How often every record is read (joins, leaves and drains are heard at once on the channel;
/// this catches expired records and load changes).
pub const READ_EVERY: Duration = Duration::from_secs(1);
/// Records a watcher reads per second at most in full reads (a fleet of 5,000 is read every
/// 10 s: joins, leaves and drains still arrive at once by announcement).
pub const READ_RECORDS_PER_SECOND: f64 = 500.0;
/// The longest time between full reads.
pub const MAX_READ_EVERY: Duration = Duration::from_secs(10);
/// How often links are checked against the plan.
pub const PLAN_EVERY: Duration = Duration::from_millis(250);
/// How long a new room waits for the link to the host node selection chose (then it takes
/// the next one, or any linked host).
pub const LINK_WAIT: Duration = Duration::from_secs(2);
/// Announcements queued between the subscription and the book (beyond, they are dropped: the
/// next full read catches up).
pub const ANNOUNCEMENTS_QUEUED: usize = 256;
/// Hosts node selection's best a new room waits for (at most [`LINK_WAIT`] in all) when none
/// of the hosts it chose serves yet.
const NEW_ROOM_CHOICES: usize = 4;

/// How a side uses the fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The registry's URL.
    pub registry: String,
    /// The cluster's name in it.
    pub cluster: String,
    /// A CA for a `rediss://` registry.
    pub registry_ca: Option<PathBuf>,
    /// The book's settings (`max_linked` …).
    pub book: BookSettings,
    /// The region rooms go to unless a transport's `region` label says otherwise.
    pub region: Option<String>,
    /// This host's node (never linked to itself), for a host.
    pub me: Option<String>,
}

impl FleetOptions {
    /// The fleet part of `[cluster]` (`None` without a registry).
    pub fn from_cluster(options: &ClusterOptions, me: Option<String>) -> Option<Self> {
        let registry = options.registry.clone()?;
        let mut book = BookSettings::default();
        if let Some(max) = options.max_linked_hosts {
            book.max_linked = max;
        }
        Some(Self {
            registry,
            cluster: options.cluster_name().to_string(),
            registry_ca: options.registry_ca.clone(),
            book,
            region: options.region.clone(),
            me,
        })
    }
}

/// The placement policy's node selection, or the built-in one when it has none or fails.
struct PolicySelector(Arc<dyn PlacementPolicy>, LeastLoaded);

impl NodeSelector for PolicySelector {
    fn name(&self) -> String {
        self.0.name().to_string()
    }

    fn select(&self, request: &NodeRequest, nodes: &[FleetNode]) -> Result<Vec<u32>, SelectError> {
        match self.0.select_nodes(request, nodes) {
            Some(Ok(chosen)) => Ok(chosen),
            Some(Err(error)) => {
                debug!(%error, "node selection by the policy failed: the built-in one decides");
                self.1.select(request, nodes)
            }
            None => self.1.select(request, nodes),
        }
    }
}

/// What discovery did (metrics, benches).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// Full reads done.
    pub reads: u64,
    /// Reads (full or one record) that failed.
    pub failures: u64,
    /// Announcements heard.
    pub announcements: u64,
    /// Records refused (malformed, under another node's key).
    pub refused: u64,
    /// Hosts whose link was refused (a certificate not naming the record's node, another
    /// version, a token refused): each left alone for a while.
    pub hosts_refused: u64,
}

/// The fleet as this side uses it.
pub struct Fleet {
    registry: Arc<Registry>,
    cluster: Arc<Cluster>,
    host: Weak<Host>,
    book: Mutex<FleetBook>,
    options: FleetOptions,
    /// The built-in node selection, salted for this process.
    builtin: LeastLoaded,
    /// True once the first read and plan are done (or the first read failed).
    settled: watch::Sender<bool>,
    /// Plan now (a link was asked for).
    wake: Notify,
    stop: Notify,
    reads: AtomicU64,
    failures: AtomicU64,
    announcements: AtomicU64,
    refused: AtomicU64,
    hosts_refused: AtomicU64,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").field("registry", &self.registry).finish()
    }
}

impl Fleet {
    /// Starts discovery for `host` through `cluster`'s links (on the cluster's runtime), and
    /// scopes `host`'s placement to node selection's hosts.
    pub fn start(host: &Arc<Host>, cluster: Arc<Cluster>, options: FleetOptions) -> Result<Arc<Self>, ClusterError> {
        let registry = Registry::open(&options.registry, &options.cluster, options.registry_ca.as_deref())
            .map_err(|e| ClusterError::Unusable(e.to_string()))?;
        // Reads and parsing (up to `max_records` records a read) run on a thread of their own,
        // never on the one every QUIC link runs on.
        static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
        let rt = crate::cluster::one_thread_runtime(&RUNTIME, "mafalda-fleet")?;
        let fleet = Arc::new(Self {
            registry: Arc::new(registry),
            cluster,
            host: Arc::downgrade(host),
            book: Mutex::new(FleetBook::new(options.book.clone(), options.me.clone())),
            options,
            builtin: LeastLoaded::salted(),
            settled: watch::channel(false).0,
            wake: Notify::new(),
            stop: Notify::new(),
            reads: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            announcements: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            hosts_refused: AtomicU64::new(0),
        });
        let (tx, rx) = mpsc::channel(ANNOUNCEMENTS_QUEUED);
        rt.spawn(Self::listen(Arc::downgrade(&fleet), Arc::clone(&fleet.registry), tx));
        rt.spawn(Self::run(Arc::downgrade(&fleet), rx));
        let scope: Arc<dyn NodeScope> = fleet.clone();
        host.set_node_scope(Arc::downgrade(&scope));
        Ok(fleet)
    }

    /// The links.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The records known now.
    pub fn records(&self) -> Vec<HostRecord> {
        lock(&self.book).records().cloned().collect()
    }

    /// How many records are known now.
    pub fn record_count(&self) -> usize {
        lock(&self.book).len()
    }

    /// The nodes linked (or being linked) now, with their address.
    pub fn linked(&self) -> Vec<(String, String)> {
        lock(&self.book).links().map(|(n, a, _)| (n.to_string(), a.to_string())).collect()
    }

    /// Its numbers.
    pub fn stats(&self) -> DiscoveryStats {
        DiscoveryStats {
            reads: self.reads.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            announcements: self.announcements.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            hosts_refused: self.hosts_refused.load(Ordering::Relaxed),
        }
    }

    /// Waits (at most `deadline`) for the first read of the registry and the first link it led
    /// to that is up with its workers (links to hosts that do not answer are not waited for:
    /// the plan gives them up); fails when no link is up.
    pub async fn ready(&self, deadline: Duration) -> Result<(), ClusterError> {
        let end = tokio::time::Instant::now() + deadline;
        let mut settled = self.settled.subscribe();
        let _ = tokio::time::timeout_at(end, settled.wait_for(|s| *s)).await;
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        self.cluster.ready_any(left).await.map_err(|e| match e {
            ClusterError::Unusable(reason) if reason.is_empty() => {
                ClusterError::Unusable(format!("the registry {} lists no usable host", self.registry.shown()))
            }
            other => other,
        })
    }

    /// Forwards announcements until the fleet is gone, resubscribing after a failure.
    async fn listen(fleet: Weak<Self>, registry: Arc<Registry>, tx: mpsc::Sender<Announcement>) {
        let mut warned = false;
        loop {
            let subscribed = || {
                if warned {
                    info!(registry = %registry.shown(), "fleet registry subscription back");
                }
            };
            let error = registry.listen(&tx, subscribed).await;
            if fleet.strong_count() == 0 || tx.is_closed() {
                return;
            }
            if !warned {
                debug!(%error, "fleet registry subscription lost: retrying");
            }
            warned = true;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Reads, hears and plans until the fleet is dropped. Full reads come every
    /// [`READ_EVERY`], slower in a large fleet (at most [`READ_RECORDS_PER_SECOND`] records a
    /// second, so a watcher's Redis traffic stays bounded); announcements are handled in
    /// batches, with one plan per batch.
    async fn run(fleet: Weak<Self>, mut rx: mpsc::Receiver<Announcement>) {
        let mut connection = None;
        let mut next_read = tokio::time::Instant::now();
        let mut plan = tokio::time::interval(PLAN_EVERY);
        plan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let Some(this) = fleet.upgrade() else { return };
            tokio::select! {
                () = tokio::time::sleep_until(next_read) => {
                    let result = this.read_all(&mut connection).await;
                    this.note_read(result, &mut connection);
                    this.plan();
                    this.settled.send_replace(true);
                    next_read = tokio::time::Instant::now() + this.read_interval();
                }
                Some(first) = rx.recv() => {
                    let mut batch = vec![first];
                    while batch.len() < ANNOUNCEMENTS_QUEUED {
                        match rx.try_recv() {
                            Ok(more) => batch.push(more),
                            Err(_) => break,
                        }
                    }
                    this.announcements.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.sort_by(|a, b| a.node.cmp(&b.node));
                    batch.dedup_by(|a, b| a.node == b.node);
                    for announcement in &batch {
                        let result = this.hear(announcement, &mut connection).await;
                        this.note_read(result, &mut connection);
                    }
                    this.plan();
                }
                _ = plan.tick() => this.plan(),
                () = this.wake.notified() => this.plan(),
                () = this.stop.notified() => return,
            }
        }
    }

    /// The time between full reads: [`READ_EVERY`], or longer for a large fleet.
    fn read_interval(&self) -> Duration {
        let records = lock(&self.book).len() as f64;
        READ_EVERY.max(Duration::from_secs_f64(records / READ_RECORDS_PER_SECOND)).min(MAX_READ_EVERY)
    }

    fn note_read(&self, result: Result<(), RegistryError>, connection: &mut Option<redis::aio::MultiplexedConnection>) {
        match result {
            Ok(()) => self.registry.succeeded(),
            Err(error) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                *connection = None;
                self.registry.failed(&error);
            }
        }
    }

    async fn connection<'a>(
        &self,
        connection: &'a mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<&'a mut redis::aio::MultiplexedConnection, RegistryError> {
        if connection.is_none() {
            *connection = Some(self.registry.connect().await?);
        }
        connection.as_mut().ok_or_else(|| RegistryError::Config("no connection".into()))
    }

    async fn read_all(&self, connection: &mut Option<redis::aio::MultiplexedConnection>) -> Result<(), RegistryError> {
        let max = self.options.book.max_records;
        let conn = self.connection(connection).await?;
        let read = self.registry.read_all(conn, max).await?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.note_refused(&read.refused);
        let changes = lock(&self.book).snapshot(read.records);
        for node in &changes.joined {
            debug!(%node, "fleet host listed");
        }
        for node in &changes.left {
            debug!(%node, "fleet host no longer listed");
        }
        Ok(())
    }

    fn note_refused(&self, refused: &[(String, super::record::RecordError)]) {
        if refused.is_empty() {
            return;
        }
        let before = self.refused.fetch_add(refused.len() as u64, Ordering::Relaxed);
        if before == 0 {
            let (key, error) = &refused[0];
            warn!(%key, %error, count = refused.len(), "fleet registry records refused (shown once)");
        }
    }

    async fn hear(
        &self,
        announcement: &Announcement,
        connection: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<(), RegistryError> {
        match announcement.change {
            Change::Leave => {
                lock(&self.book).remove(&announcement.node);
            }
            Change::Join | Change::Drain => {
                let conn = self.connection(connection).await?;
                match self.registry.read_one(conn, &announcement.node).await? {
                    Some(Ok(record)) => {
                        let new = lock(&self.book).upsert(record);
                        if new {
                            debug!(node = %announcement.node, "fleet host joined");
                        }
                    }
                    Some(Err(error)) => self.note_refused(&[(announcement.node.clone(), error)]),
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Brings the links in line with the book's plan.
    fn plan(&self) {
        let Some(host) = self.host.upgrade() else { return };
        let now = Instant::now();
        let links = self.cluster.links();
        let LinkedHosts { in_use, seen, present } = linked_hosts(&host);
        let selector = self.selector(&host);
        let plan = {
            let mut book = lock(&self.book);
            let by_address: Vec<(String, String)> =
                book.links().map(|(n, a, _)| (n.to_string(), a.to_string())).collect();
            for (node, address) in &by_address {
                let Some(link) = links.iter().find(|l| l.address() == address && l.expected_node() == Some(node))
                else {
                    continue;
                };
                let health = match &*link.state().borrow() {
                    LinkState::Connecting => LinkHealth::Connecting,
                    LinkState::Up(_) => LinkHealth::Up,
                    LinkState::Down(_) => LinkHealth::Down,
                    LinkState::Refused(_) => LinkHealth::Refused,
                };
                book.link_health(node, health, now);
            }
            book.links_seen(&seen);
            book.placed_arrived(&present);
            book.set_in_use(in_use);
            book.set_static(
                links.iter().filter(|l| l.expected_node().is_none()).map(|l| l.address().to_string()).collect(),
            );
            book.plan(&selector, self.options.region.as_deref(), now)
        };
        for (node, why) in &plan.failed {
            let refusal = links.iter().find(|l| {
                l.expected_node() == Some(node.as_str())
                    && plan.close.iter().any(|(n, a)| n == node && a == l.address())
            });
            match refusal.map(|l| l.state().borrow().clone()) {
                Some(LinkState::Refused(reason)) => {
                    self.hosts_refused.fetch_add(1, Ordering::Relaxed);
                    warn!(%node, %reason, "fleet host refused: left alone for a while");
                }
                _ => debug!(%node, %why, "fleet host not reached: left alone for a while"),
            }
        }
        for (node, address) in &plan.close {
            debug!(%node, %address, "fleet link closed");
            self.cluster.unlink(address, Some(node));
        }
        for (node, address) in &plan.open {
            debug!(%node, %address, "fleet link opened");
            self.cluster.link(address, Some(node));
        }
    }

    /// Node selection as `host`'s placement policy does it (the built-in one when it has none).
    fn selector(&self, host: &Host) -> PolicySelector {
        PolicySelector(host.placement_policy(), self.builtin)
    }

    /// The nodes with an open cell here (their link is up and they advertised workers): one
    /// pass over the cells, however many nodes are asked about.
    fn serving(host: &Host) -> HashSet<String> {
        host.cells()
            .iter()
            .filter(|c| c.origin() == Origin::Remote && !c.is_closed() && !c.is_draining())
            .map(|c| c.node().to_string())
            .collect()
    }

    /// Links the hosts of `nodes` not linked yet and waits (at most [`LINK_WAIT`] in all) until
    /// one serves: the first of them, in `nodes`' order, that does. When none did, each is left
    /// alone for a while.
    async fn wait_for_any(&self, host: &Host, nodes: &[String]) -> Option<String> {
        if nodes.is_empty() {
            return None;
        }
        let mut adverts = self.cluster.adverts();
        let first = || {
            let serving = Self::serving(host);
            nodes.iter().find(|n| serving.contains(n.as_str())).cloned()
        };
        if let Some(node) = first() {
            return Some(node);
        }
        for node in nodes {
            let address = lock(&self.book).link_now(node, Instant::now());
            if let Some(address) = address {
                self.cluster.link(&address, Some(node));
            }
        }
        let waited = tokio::time::timeout(LINK_WAIT, async {
            loop {
                if let Some(node) = first() {
                    return Some(node);
                }
                if adverts.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        let served = waited.ok().flatten();
        if served.is_none() {
            let now = Instant::now();
            let mut book = lock(&self.book);
            for node in nodes {
                book.give_up(node, now);
            }
            debug!(
                ?nodes,
                "fleet hosts chosen for a room did not serve within {LINK_WAIT:?}: any linked host takes it"
            );
        }
        served
    }

    async fn scope(&self, router: RouterId, region: Option<String>, mut used: Vec<String>) -> Scope {
        let host = self.host.upgrade()?;
        let selector = self.selector(&host);
        let router = router.to_string();
        let now = Instant::now();
        let serving = Self::serving(&host);
        // Selection, and the record of where a new room went, under the book's lock: rooms
        // placed at once see each other (a burst spreads; a room's second transport, placed
        // before its first made a router, follows the first).
        let (chosen, best) = {
            let mut book = lock(&self.book);
            if used.is_empty() {
                if let Some(node) = book.placed_on(&router, now) {
                    // Its first transport went there a moment ago: so does this one.
                    if serving.contains(&*node) {
                        return Some(vec![node.to_string()]);
                    }
                    used.push(node.to_string());
                }
            }
            let (views, index) = book.views(now);
            if views.is_empty() {
                // The registry lists nothing usable (or was never read): any linked host.
                return None;
            }
            let request = NodeRequest {
                router: router.clone(),
                region: region.or_else(|| self.options.region.clone()),
                used: used.iter().filter_map(|n| index.get(n.as_str()).copied()).collect(),
                limit: if used.is_empty() {
                    u32::try_from(MAX_SELECTED).unwrap_or(u32::MAX)
                } else {
                    u32::try_from(used.len()).unwrap_or(u32::MAX) + 1
                },
            };
            let chosen = chosen_names(&selector, &request, &views);
            if !used.is_empty() {
                (chosen, Vec::new())
            } else {
                // A new room: the first chosen host of the best one's region that serves now; a
                // room waits for a host only when none of those serves (a record may outlive
                // its host for its TTL, or name a host that never answers: each cost a room
                // LINK_WAIT when they were waited for in turn). Then the best few are linked
                // and the first to serve takes it.
                let region_of =
                    |node: &str| index.get(node).and_then(|i| views.get(*i as usize)).map(|v| Arc::clone(&v.region));
                let best_region = chosen.first().and_then(|n| region_of(n));
                if let Some(node) = chosen.iter().find(|n| region_of(n) == best_region && serving.contains(n.as_str()))
                {
                    book.placed(&router, node, now);
                    return Some(vec![node.clone()]);
                }
                let best = chosen[..chosen.len().min(NEW_ROOM_CHOICES)].to_vec();
                (Vec::new(), best)
            }
        };
        if used.is_empty() {
            let node = self.wait_for_any(&host, &best).await?;
            let mut book = lock(&self.book);
            let now = Instant::now();
            // A transport of the same room that waited too may have taken a host meanwhile.
            if let Some(first) = book.placed_on(&router, now).filter(|n| Self::serving(&host).contains(&**n)) {
                return Some(vec![first.to_string()]);
            }
            book.placed(&router, &node, now);
            return Some(vec![node]);
        }
        // A room already on hosts: the chosen ones that serve (a new one is linked, waited for).
        let mut allowed: Vec<String> = Vec::new();
        for node in chosen {
            if used.contains(&node) || self.wait_for_any(&host, std::slice::from_ref(&node)).await.is_some() {
                allowed.push(node);
            }
        }
        Some(allowed).filter(|a| !a.is_empty())
    }
}

impl NodeScope for Fleet {
    fn nodes_for(
        &self,
        router: RouterId,
        region: Option<String>,
        used: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Scope> + Send + '_>> {
        Box::pin(self.scope(router, region, used))
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}

/// What this side's remote cells show of the hosts it is linked to.
struct LinkedHosts {
    /// Hosts this side's rooms use.
    in_use: HashSet<String>,
    /// Each host's workers as its link shows them (mean predicted load of the open ones, this
    /// side's routers there, workers advertised, whether all drain).
    seen: HashMap<String, LinkSeen>,
    /// Routers this side has on remote hosts.
    present: HashSet<String>,
}

fn linked_hosts(host: &Host) -> LinkedHosts {
    let coefficients = host.coefficients();
    let (mut in_use, mut present) = (HashSet::new(), HashSet::new());
    // Node → (load of open workers, open workers, routers, workers, all drain).
    let mut sums: HashMap<String, (f64, u32, u32, u32, bool)> = HashMap::new();
    for cell in host.cells().iter().filter(|c| c.origin() == Origin::Remote && !c.is_closed()) {
        let routers = cell.routers_present();
        if !routers.is_empty() || cell.count(Count::Transport) > 0 {
            in_use.insert(cell.node().to_string());
        }
        let sum = sums.entry(cell.node().to_string()).or_insert((0.0, 0, 0, 0, true));
        if !cell.is_draining() {
            sum.0 += cell.predicted(&coefficients).max(0.0);
            sum.1 += 1;
            sum.4 = false;
        }
        sum.2 = sum.2.saturating_add(u32::try_from(routers.len()).unwrap_or(u32::MAX));
        sum.3 = sum.3.saturating_add(1);
        present.extend(routers.iter().map(ToString::to_string));
    }
    let seen = sums
        .into_iter()
        .map(|(node, (load, open, routers, workers, draining))| {
            (node, LinkSeen { load: load / f64::from(open.max(1)), routers, workers, draining })
        })
        .collect();
    LinkedHosts { in_use, seen, present }
}

/// `selector`'s answer as node names: valid, open, distinct, at most [`MAX_SELECTED`].
fn chosen_names(selector: &dyn NodeSelector, request: &NodeRequest, views: &[FleetNode]) -> Vec<String> {
    let chosen = selector.select(request, views).unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for i in chosen {
        let Some(view) = views.get(i as usize) else { continue };
        if !view.draining && !names.iter().any(|n| n == view.name()) {
            names.push(view.name().to_string());
        }
        if names.len() >= MAX_SELECTED {
            break;
        }
    }
    names
}
