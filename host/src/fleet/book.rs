//! The fleet as this side knows it, sans-IO: the registry's records, the links to their
//! hosts and what each link proved, driven by `(input, now)`. It decides which hosts to link
//! to (at most `max_linked` plus the hosts rooms use; idle links are dropped; a host whose
//! link fails is left alone for a growing while) and serves node selection its views.

use super::record::HostRecord;
use crate::placement::nodes::{FleetNode, NodeRequest, NodeSelector};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The hosts node selection may choose from, and each node's index among them.
pub type Views = (Arc<Vec<FleetNode>>, Arc<HashMap<Arc<str>, u32>>);

/// How the book decides.
#[derive(Debug, Clone, PartialEq)]
pub struct BookSettings {
    /// Links kept to hosts no room uses (the best ones by node selection).
    pub max_linked: usize,
    /// Records kept (a registry holding more is read up to this many, by node name).
    pub max_records: usize,
    /// A link not up within this is given up (and its host left alone for a while).
    pub connect_within: Duration,
    /// A link no room uses and node selection no longer wants is closed after this.
    pub idle_after: Duration,
    /// First time a failed host is left alone (doubling on each failure).
    pub penalty: Duration,
    /// Longest time a failed host is left alone.
    pub max_penalty: Duration,
    /// The cluster protocol this side speaks (hosts of another are not linked).
    pub protocol: u16,
}

/// How long a host a room asked for is kept linked before the plan may close it.
pub const PIN: Duration = Duration::from_secs(10);

/// How long a room this side placed counts on its host before the host's record shows it
/// (records are written every second and read about as often).
pub const PLACED_FOR: Duration = Duration::from_secs(3);
/// Most rooms remembered as just placed (the oldest is forgotten first).
pub const MAX_PLACED: usize = 4096;
/// Least predicted load a room just placed adds to its host (a share of one worker; a small
/// audio and video room): a burst of new rooms from one application spreads over hosts whose
/// records are equal rather than all landing on the first until the records catch up.
pub const PLACED_ROOM_LOAD: f64 = 0.02;

/// Default [`BookSettings::max_linked`].
pub const DEFAULT_MAX_LINKED: usize = 8;
/// Default [`BookSettings::max_records`].
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

impl Default for BookSettings {
    fn default() -> Self {
        Self {
            max_linked: DEFAULT_MAX_LINKED,
            max_records: DEFAULT_MAX_RECORDS,
            connect_within: Duration::from_secs(3),
            idle_after: Duration::from_secs(30),
            penalty: Duration::from_secs(10),
            max_penalty: Duration::from_secs(300),
            protocol: crate::cluster::proto::PROTOCOL_VERSION,
        }
    }
}

/// What this side's link to a host is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkHealth {
    /// Opened, not up yet.
    Connecting,
    /// Up: the host proved its node name.
    Up,
    /// Down after being up (it reconnects; the link is the truth for the host's liveness).
    Down,
    /// Refused: wrong certificate, version, token.
    Refused,
}

#[derive(Debug, Clone)]
struct Linked {
    address: String,
    opened: Instant,
    health: LinkHealth,
    /// Since when no room uses it and selection did not want it (None: used or wanted).
    idle_since: Option<Instant>,
    /// Once up: it stays until idle (a failure after that is the link's to recover from).
    was_up: bool,
    /// What the link itself last showed of the host (authenticated, unlike its record).
    seen: Option<LinkSeen>,
}

impl Linked {
    fn new(address: String, now: Instant) -> Self {
        Self { address, opened: now, health: LinkHealth::Connecting, idle_since: None, was_up: false, seen: None }
    }
}

/// What a host's own link shows of it: its workers as advertised over the link (which proved
/// the host's node name) and measured through it. For a host linked and up, this outweighs
/// its record, which anyone able to write to Redis could have written: the record may make
/// the host look busier, never idler, and its draining flag is the link's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkSeen {
    /// Mean predicted CPU share of its open workers, as this side sees them.
    pub load: f64,
    /// Routers this side has over its workers.
    pub routers: u32,
    /// Workers it advertises over the link (open or draining).
    pub workers: u32,
    /// Every worker it advertises drains.
    pub draining: bool,
}

/// Smallest change of a linked host's load that rebuilds the views (loads move all the time).
const SEEN_LOAD_STEP: f64 = 0.01;

#[derive(Debug, Clone)]
struct Penalty {
    until: Instant,
    next: Duration,
    /// The views were rebuilt since it ran out.
    lifted: bool,
}

/// Links to open and to close.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkPlan {
    /// `(node, address)` to link to.
    pub open: Vec<(String, String)>,
    /// `(node, address)` of links to close.
    pub close: Vec<(String, String)>,
    /// `(node, why)` of hosts given up on now.
    pub failed: Vec<(String, String)>,
}

/// What a record read changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Nodes seen for the first time (or with a new boot id).
    pub joined: Vec<String>,
    /// Nodes whose record is gone.
    pub left: Vec<String>,
}

/// Rooms this side placed in the last [`PLACED_FOR`]: where each went, oldest first.
#[derive(Debug, Default)]
struct Placed {
    /// Router → (node, when, the number of its entry in `order`).
    by_router: HashMap<String, (Arc<str>, Instant, u64)>,
    /// (router, when, number), oldest first; a router placed again leaves its older entries.
    order: VecDeque<(String, Instant, u64)>,
    next: u64,
}

impl Placed {
    fn insert(&mut self, router: &str, node: &str, now: Instant) {
        // Every router has an entry in `order`: this ends.
        while self.by_router.len() >= MAX_PLACED && !self.by_router.contains_key(router) {
            self.pop_oldest();
        }
        let number = self.next;
        self.next += 1;
        self.by_router.insert(router.to_string(), (node.into(), now, number));
        self.order.push_back((router.to_string(), now, number));
        // Outdated entries of routers placed again are bounded all the same.
        while self.order.len() > 2 * MAX_PLACED {
            self.pop_oldest();
        }
    }

    /// Forgets the oldest entry (and its router, unless placed again since).
    fn pop_oldest(&mut self) {
        if let Some((router, _, number)) = self.order.pop_front() {
            if self.by_router.get(&router).is_some_and(|(_, _, current)| *current == number) {
                self.by_router.remove(&router);
            }
        }
    }

    /// Forgets rooms placed [`PLACED_FOR`] ago or more; true when one was.
    fn expire(&mut self, now: Instant) -> bool {
        let before = self.by_router.len();
        while self.order.front().is_some_and(|(_, at, _)| now.saturating_duration_since(*at) >= PLACED_FOR) {
            self.pop_oldest();
        }
        self.by_router.len() != before
    }

    fn on(&self, router: &str, now: Instant) -> Option<&Arc<str>> {
        self.by_router
            .get(router)
            .filter(|(_, at, _)| now.saturating_duration_since(*at) < PLACED_FOR)
            .map(|(node, _, _)| node)
    }

    /// Forgets the rooms whose router is in `present`; true when one was.
    fn forget(&mut self, present: &HashSet<String>) -> bool {
        let before = self.by_router.len();
        self.by_router.retain(|router, _| !present.contains(router));
        // Their entries in `order` find no router when they come up (they are not its number).
        self.by_router.len() != before
    }

    fn per_node(&self) -> HashMap<&str, u32> {
        let mut count: HashMap<&str, u32> = HashMap::new();
        for (node, _, _) in self.by_router.values() {
            *count.entry(node).or_default() += 1;
        }
        count
    }
}

/// The records, links and penalties.
#[derive(Debug)]
pub struct FleetBook {
    settings: BookSettings,
    me: Option<String>,
    records: BTreeMap<String, HostRecord>,
    links: BTreeMap<String, Linked>,
    penalties: HashMap<String, Penalty>,
    in_use: HashSet<String>,
    /// Nodes a room is waiting for (linked by `link_now`), kept like used ones until then.
    pins: HashMap<String, Instant>,
    /// Addresses linked statically (`MAFALDA_CLUSTER`, `--peer`): their records are not linked
    /// again (the static link serves them).
    static_addresses: HashSet<String>,
    placed: Placed,
    views: Arc<Vec<FleetNode>>,
    index: Arc<HashMap<Arc<str>, u32>>,
    dirty: bool,
}

impl FleetBook {
    /// An empty book; `me` (a host's own node) is never linked or selected.
    pub fn new(settings: BookSettings, me: Option<String>) -> Self {
        Self {
            settings,
            me,
            records: BTreeMap::new(),
            links: BTreeMap::new(),
            penalties: HashMap::new(),
            in_use: HashSet::new(),
            pins: HashMap::new(),
            static_addresses: HashSet::new(),
            placed: Placed::default(),
            views: Arc::default(),
            index: Arc::default(),
            dirty: true,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BookSettings {
        &self.settings
    }

    /// Records known.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record is known.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A node's record.
    pub fn record(&self, node: &str) -> Option<&HostRecord> {
        self.records.get(node)
    }

    /// Every record, by node.
    pub fn records(&self) -> impl Iterator<Item = &HostRecord> {
        self.records.values()
    }

    /// Nodes linked (or being linked) and their address.
    pub fn links(&self) -> impl Iterator<Item = (&str, &str, LinkHealth)> {
        self.links.iter().map(|(node, l)| (node.as_str(), l.address.as_str(), l.health))
    }

    fn usable(&self, record: &HostRecord) -> bool {
        self.me.as_deref() != Some(record.node.as_str())
            && record.protocol == self.settings.protocol
            && !self.static_addresses.contains(&record.address)
    }

    /// The addresses this side links statically (their records are not linked again).
    pub fn set_static(&mut self, addresses: HashSet<String>) {
        if addresses != self.static_addresses {
            self.static_addresses = addresses;
            self.dirty = true;
        }
    }

    /// Whether `node`'s link is kept whatever the plan wants: a room uses it, or one waits
    /// for it.
    fn kept(&self, node: &str, now: Instant) -> bool {
        self.in_use.contains(node) || self.pins.get(node).is_some_and(|until| now < *until)
    }

    fn link_up(&self, node: &str) -> bool {
        self.links.get(node).is_some_and(|l| l.health == LinkHealth::Up)
    }

    /// A full read of the registry: records not in it are gone (their key expired or was
    /// deleted). Records beyond `max_records` are not kept.
    pub fn snapshot(&mut self, records: Vec<HostRecord>) -> Changes {
        let mut fresh: BTreeMap<String, HostRecord> = BTreeMap::new();
        for record in records {
            if fresh.len() >= self.settings.max_records && !fresh.contains_key(&record.node) {
                continue;
            }
            fresh.insert(record.node.clone(), record);
        }
        let mut changes = Changes::default();
        for (node, record) in &fresh {
            if self.records.get(node).is_none_or(|old| old.boot_id != record.boot_id) {
                changes.joined.push(node.clone());
            }
        }
        // A record gone while its link is up stays (the link is the truth for liveness).
        let stale: Vec<(String, HostRecord)> = self
            .records
            .iter()
            .filter(|(node, _)| !fresh.contains_key(*node) && self.link_up(node))
            .map(|(node, record)| (node.clone(), record.clone()))
            .collect();
        for node in self.records.keys() {
            if !fresh.contains_key(node) && !stale.iter().any(|(n, _)| n == node) {
                changes.left.push(node.clone());
            }
        }
        fresh.extend(stale);
        for node in &changes.joined {
            // A new start of a host it gave up on is tried again.
            self.penalties.remove(node);
        }
        // Penalties only of hosts still listed (rotating names cannot grow the map).
        self.penalties.retain(|node, _| fresh.contains_key(node));
        self.records = fresh;
        self.dirty = true;
        changes
    }

    /// One record (read after its host announced a change). True when it is new.
    pub fn upsert(&mut self, record: HostRecord) -> bool {
        if self.records.len() >= self.settings.max_records && !self.records.contains_key(&record.node) {
            return false;
        }
        let new = self.records.get(&record.node).is_none_or(|old| old.boot_id != record.boot_id);
        if new {
            self.penalties.remove(&record.node);
        }
        self.records.insert(record.node.clone(), record);
        self.dirty = true;
        new
    }

    /// A host announced it leaves (its record is deleted).
    pub fn remove(&mut self, node: &str) -> bool {
        if self.link_up(node) {
            // Its link says it is alive: it goes when the link does.
            return false;
        }
        self.dirty = true;
        self.records.remove(node).is_some()
    }

    /// Which linked hosts this side's rooms use now (their links stay whatever the registry
    /// says).
    pub fn set_in_use(&mut self, nodes: HashSet<String>) {
        if nodes != self.in_use {
            self.in_use = nodes;
        }
    }

    /// What `node`'s link, up, shows of it.
    fn seen(&self, node: &str) -> Option<LinkSeen> {
        self.links.get(node).filter(|l| l.health == LinkHealth::Up).and_then(|l| l.seen)
    }

    /// Whether `record`'s host drains for node selection: as its link shows it when up, else
    /// as the record says.
    fn draining(&self, record: &HostRecord) -> bool {
        self.seen(&record.node).map_or_else(|| record.is_draining(), |seen| seen.draining)
    }

    /// Whether `record`'s host drains for its link to close: its record says so and its link
    /// (when up and showing workers) agrees. A forged drain does not close a genuine host's
    /// link; nor does a drain the link shows only because it fell silent.
    fn drains(&self, record: &HostRecord) -> bool {
        record.is_draining() && self.seen(&record.node).is_none_or(|seen| seen.draining)
    }

    /// What each linked host's link shows of it now, by node (ignored unless the link is up);
    /// a host missing from `seen` (no worker advertised) is known by its record alone.
    pub fn links_seen(&mut self, seen: &HashMap<String, LinkSeen>) {
        for (node, link) in &mut self.links {
            let now = seen.get(node).copied();
            let moved = match (link.seen, now) {
                (Some(old), Some(new)) => {
                    old.draining != new.draining
                        || old.routers != new.routers
                        || old.workers != new.workers
                        || (old.load - new.load).abs() >= SEEN_LOAD_STEP
                }
                (old, new) => old.is_some() != new.is_some(),
            };
            if moved {
                link.seen = now;
                self.dirty = true;
            }
        }
    }

    /// Rooms this side placed lately whose router is now on a remote host (`present`): the
    /// link's view counts them from now on (one count, not two).
    pub fn placed_arrived(&mut self, present: &HashSet<String>) {
        if self.placed.forget(present) {
            self.dirty = true;
        }
    }

    /// What a link reports.
    pub fn link_health(&mut self, node: &str, health: LinkHealth, now: Instant) {
        let Some(link) = self.links.get_mut(node) else { return };
        if link.health != health {
            // What the link showed before is not what it shows now.
            link.seen = None;
            self.dirty = true;
        }
        link.health = health;
        if health == LinkHealth::Up {
            link.was_up = true;
            self.penalties.remove(node);
        }
        let _ = now;
    }

    fn penalize(&mut self, node: &str, now: Instant) {
        self.dirty = true;
        let next = self.penalties.get(node).map_or(self.settings.penalty, |p| p.next);
        self.penalties.insert(
            node.to_string(),
            Penalty { until: now + next, next: (next * 2).min(self.settings.max_penalty), lifted: false },
        );
    }

    fn penalized(&self, node: &str, now: Instant) -> bool {
        self.penalties.get(node).is_some_and(|p| now < p.until)
    }

    /// Leaves `node` alone for a while (a room waited for its link in vain).
    pub fn give_up(&mut self, node: &str, now: Instant) {
        self.penalize(node, now);
        self.dirty = true;
    }

    /// This side placed the new room `router` on `node`: until [`PLACED_FOR`] has passed, the
    /// room counts on `node` (one router more, and its share of load: see [`PLACED_ROOM_LOAD`])
    /// and [`FleetBook::placed_on`] names `node` for it.
    pub fn placed(&mut self, router: &str, node: &str, now: Instant) {
        self.placed.insert(router, node, now);
        self.dirty = true;
    }

    /// The node this side placed the new room `router` on less than [`PLACED_FOR`] ago (its
    /// next transports go there too, even before it has a router there).
    pub fn placed_on(&self, router: &str, now: Instant) -> Option<Arc<str>> {
        self.placed.on(router, now).cloned()
    }

    /// The hosts node selection may choose from (not this host, same protocol, not left alone
    /// after a failure), rebuilt when records, links, penalties or rooms just placed changed,
    /// with each node's index. A host's rooms just placed count on top of its record.
    pub fn views(&mut self, now: Instant) -> Views {
        let expired = self.penalties.values().any(|p| p.until <= now && !p.lifted);
        let forgotten = self.placed.expire(now);
        if self.dirty || expired || forgotten {
            let placed = self.placed.per_node();
            for penalty in self.penalties.values_mut() {
                penalty.lifted = penalty.until <= now;
            }
            let mut views = Vec::with_capacity(self.records.len());
            let mut index = HashMap::with_capacity(self.records.len());
            for record in self.records.values().filter(|r| self.usable(r) && !self.penalized(&r.node, now)) {
                let node: Arc<str> = record.node.as_str().into();
                let at = u32::try_from(views.len()).unwrap_or(u32::MAX);
                index.insert(Arc::clone(&node), at);
                let mut view = FleetNode::shared(at, &node, &record.region.as_str().into())
                    .with_load(record.load())
                    .with_workers(u32::try_from(record.cells.len()).unwrap_or(u32::MAX), record.max_workers)
                    .with_routers(record.routers());
                if let Some(seen) = self.seen(&record.node) {
                    // Busier than its record says, never idler: a forged record's many routers
                    // or workers cannot make a room there look cheap either.
                    view.load = view.load.max(seen.load);
                    view.routers = view.routers.max(seen.routers);
                    view.workers = seen.workers.max(1);
                }
                if let Some(rooms) = placed.get(record.node.as_str()) {
                    // Each counts what a room costs there on average, at least PLACED_ROOM_LOAD
                    // of one of its workers.
                    let workers = f64::from(view.workers.max(1));
                    let per_room = (view.load / f64::from(view.routers.max(1))).max(PLACED_ROOM_LOAD / workers);
                    view.load += f64::from(*rooms) * per_room;
                    view.routers = view.routers.saturating_add(*rooms);
                }
                view.draining = self.draining(record);
                view.linked = self.link_up(&record.node);
                views.push(view);
            }
            self.views = Arc::new(views);
            self.index = Arc::new(index);
            self.dirty = false;
        }
        (Arc::clone(&self.views), Arc::clone(&self.index))
    }

    /// Which links to open and close now. Links rooms use are kept; a link not up within
    /// `connect_within` (never up) is given up and its host penalized; the best hosts by
    /// `selector` (skipping penalized ones) are linked up to `max_linked`; others idle for
    /// `idle_after` are closed.
    pub fn plan(&mut self, selector: &dyn NodeSelector, region: Option<&str>, now: Instant) -> LinkPlan {
        let mut plan = LinkPlan::default();
        // Give up on links that never came up, or were refused.
        let failed: Vec<(String, Linked)> = self
            .links
            .iter()
            .filter(|(node, l)| {
                !self.in_use.contains(*node)
                    && (l.health == LinkHealth::Refused
                        || (!l.was_up && now.duration_since(l.opened) >= self.settings.connect_within))
            })
            .map(|(n, l)| (n.clone(), l.clone()))
            .collect();
        for (node, link) in failed {
            let why = match link.health {
                LinkHealth::Refused => "refused".to_string(),
                _ => format!("not up within {:?}", self.settings.connect_within),
            };
            self.links.remove(&node);
            self.penalize(&node, now);
            plan.close.push((node.clone(), link.address));
            plan.failed.push((node, why));
            self.dirty = true;
        }
        // A record that moved (new address) or left: its link goes unless a room uses it.
        let moved: Vec<(String, String)> = self
            .links
            .iter()
            .filter(|(node, l)| {
                !self.kept(node, now)
                    && self.records.get(*node).is_none_or(|r| r.address != l.address || self.drains(r))
            })
            .map(|(n, l)| (n.clone(), l.address.clone()))
            .collect();
        for (node, address) in moved {
            self.links.remove(&node);
            plan.close.push((node, address));
            self.dirty = true;
        }
        // The hosts wanted: the best ones (penalized ones are not in the views).
        let (filtered, _) = self.views(now);
        let request = NodeRequest {
            region: region.map(String::from),
            limit: u32::try_from(self.settings.max_linked).unwrap_or(u32::MAX),
            ..NodeRequest::default()
        };
        let wanted: Vec<String> = selector
            .select(&request, &filtered)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| filtered.get(i as usize))
            .filter(|v| !v.draining)
            .take(self.settings.max_linked)
            .map(|v| v.name().to_string())
            .collect();
        // Idle links: neither used nor wanted, for `idle_after`.
        let mut idle = Vec::new();
        self.pins.retain(|_, until| now < *until);
        let kept: HashSet<String> = self.links.keys().filter(|n| self.kept(n, now)).cloned().collect();
        for (node, link) in &mut self.links {
            if kept.contains(node) || wanted.contains(node) {
                link.idle_since = None;
            } else {
                let since = *link.idle_since.get_or_insert(now);
                if now.duration_since(since) >= self.settings.idle_after {
                    idle.push((node.clone(), link.address.clone()));
                }
            }
        }
        // Over the budget (rooms left hosts): unwanted links go at once.
        let allowed = self.settings.max_linked + kept.len();
        let mut over = self.links.len().saturating_sub(allowed + idle.len());
        for (node, link) in &self.links {
            if over == 0 {
                break;
            }
            let unwanted = !kept.contains(node) && !wanted.contains(node);
            if unwanted && !idle.iter().any(|(n, _)| n == node) {
                idle.push((node.clone(), link.address.clone()));
                over -= 1;
            }
        }
        for (node, address) in idle {
            self.links.remove(&node);
            plan.close.push((node, address));
            self.dirty = true;
        }
        // New links, while the budget allows.
        for node in wanted {
            if self.links.len() >= allowed {
                break;
            }
            if self.links.contains_key(&node) {
                continue;
            }
            let Some(record) = self.records.get(&node) else { continue };
            let address = record.address.clone();
            self.links.insert(node.clone(), Linked::new(address.clone(), now));
            plan.open.push((node, address));
            self.dirty = true;
        }
        plan
    }

    /// Links `node` now (for a room that wants it), unless it is linked, unknown or penalized.
    /// Returns its address when a link is to be opened.
    pub fn link_now(&mut self, node: &str, now: Instant) -> Option<String> {
        if self.penalized(node, now) || !self.records.get(node).is_some_and(|r| self.usable(r)) {
            return None;
        }
        // Kept while the room waits (a link the plan does not want is not closed under it).
        self.pins.insert(node.to_string(), now + PIN);
        if self.links.contains_key(node) {
            return None;
        }
        let address = self.records.get(node).filter(|r| self.usable(r))?.address.clone();
        self.links.insert(node.to_string(), Linked::new(address.clone(), now));
        self.dirty = true;
        Some(address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::record::tests::record;
    use crate::placement::nodes::LeastLoaded;
    use proptest::prelude::*;

    fn book(max_linked: usize) -> FleetBook {
        FleetBook::new(BookSettings { max_linked, ..BookSettings::default() }, Some("me".into()))
    }

    fn fleet(n: usize) -> Vec<HostRecord> {
        (0..n)
            .map(|i| record(&format!("h{i:03}"), &format!("127.0.1.{}:4443", i % 250 + 1), i as f64 / 1000.0))
            .collect()
    }

    fn opened(plan: &LinkPlan) -> Vec<&str> {
        plan.open.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn links_the_best_hosts_up_to_the_budget_and_never_itself() {
        let mut b = book(3);
        let mut records = fleet(10);
        records.push(record("me", "127.0.0.9:4443", 0.0));
        let changes = b.snapshot(records);
        assert_eq!(changes.joined.len(), 11);
        let now = Instant::now();
        let plan = b.plan(&LeastLoaded::default(), None, now);
        assert_eq!(opened(&plan), ["h000", "h001", "h002"]);
        assert!(b.plan(&LeastLoaded::default(), None, now).open.is_empty(), "already linked");
    }

    #[test]
    fn a_link_that_never_comes_up_is_given_up_and_its_host_left_alone() {
        let mut b = book(1);
        b.snapshot(fleet(3));
        let t0 = Instant::now();
        assert_eq!(opened(&b.plan(&LeastLoaded::default(), None, t0)), ["h000"]);
        let later = t0 + Duration::from_secs(4);
        let plan = b.plan(&LeastLoaded::default(), None, later);
        assert_eq!(plan.failed.len(), 1);
        assert_eq!(plan.close[0].0, "h000");
        assert_eq!(opened(&plan), ["h001"], "the next best is tried at once");
        b.link_health("h001", LinkHealth::Up, later);
        // h000 returns to consideration after its penalty, but h001 is up and used nothing yet.
        let plan = b.plan(&LeastLoaded::default(), None, later + Duration::from_secs(11));
        assert!(plan.open.is_empty(), "the budget is full");
    }

    #[test]
    fn a_refused_host_is_dropped_and_a_restart_is_tried_again() {
        let mut b = book(1);
        b.snapshot(fleet(1));
        let t0 = Instant::now();
        b.plan(&LeastLoaded::default(), None, t0);
        b.link_health("h000", LinkHealth::Refused, t0);
        let plan = b.plan(&LeastLoaded::default(), None, t0);
        assert_eq!(plan.failed[0].0, "h000");
        assert!(b.plan(&LeastLoaded::default(), None, t0).open.is_empty(), "penalized");
        let mut restarted = fleet(1);
        restarted[0].boot_id = "again".into();
        b.snapshot(restarted);
        assert_eq!(opened(&b.plan(&LeastLoaded::default(), None, t0)), ["h000"]);
    }

    #[test]
    fn links_rooms_use_stay_even_when_the_record_expired_and_idle_ones_go() {
        let mut b = book(1);
        b.snapshot(fleet(2));
        let t0 = Instant::now();
        b.plan(&LeastLoaded::default(), None, t0);
        b.link_health("h000", LinkHealth::Up, t0);
        b.set_in_use(["h000".to_string()].into());
        let changes = b.snapshot(fleet(2)[1..].to_vec());
        assert!(changes.left.is_empty(), "the link is the truth for liveness");
        let plan = b.plan(&LeastLoaded::default(), None, t0);
        assert!(plan.close.is_empty(), "the link is the truth for liveness");
        assert!(opened(&plan).is_empty(), "h000, kept by its link, is still the best: {plan:?}");
        // The room left and the host is gone (its link down, its record expired): it closes.
        b.set_in_use(HashSet::new());
        b.link_health("h000", LinkHealth::Down, t0);
        assert_eq!(b.snapshot(fleet(2)[1..].to_vec()).left, ["h000"]);
        let plan = b.plan(&LeastLoaded::default(), None, t0);
        assert_eq!(plan.close, [("h000".to_string(), "127.0.1.1:4443".to_string())]);
    }

    #[test]
    fn an_unwanted_link_closes_after_idle_after() {
        let mut b = book(1);
        b.snapshot(fleet(2));
        let t0 = Instant::now();
        b.plan(&LeastLoaded::default(), None, t0);
        b.link_health("h000", LinkHealth::Up, t0);
        // h001 becomes the better host: h000 idles, then closes; h001 is linked once room exists.
        let mut records = fleet(2);
        records[0].cells[0].predicted = 0.9;
        b.snapshot(records);
        let plan = b.plan(&LeastLoaded::default(), None, t0);
        assert!(plan.close.is_empty() && plan.open.is_empty(), "the budget is full until h000 idles out");
        let plan = b.plan(&LeastLoaded::default(), None, t0 + Duration::from_secs(31));
        assert_eq!(plan.close.len(), 1);
        assert_eq!(opened(&plan), ["h001"]);
    }

    #[test]
    fn a_host_a_room_waits_for_is_not_closed_under_it_however_full_the_budget() {
        let mut b = book(1);
        b.snapshot(fleet(3));
        let t0 = Instant::now();
        assert_eq!(opened(&b.plan(&LeastLoaded::default(), None, t0)), ["h000"]);
        b.link_health("h000", LinkHealth::Up, t0);
        // A room wants h002 (another region, a plugin's choice): linked beyond the budget.
        assert_eq!(b.link_now("h002", t0).as_deref(), Some("127.0.1.3:4443"));
        let plan = b.plan(&LeastLoaded::default(), None, t0 + Duration::from_millis(250));
        assert!(plan.close.is_empty(), "the pinned link stays: {plan:?}");
        b.link_health("h002", LinkHealth::Up, t0 + Duration::from_millis(300));
        // Once the pin ran out and no room uses it, the budget closes it.
        let plan = b.plan(&LeastLoaded::default(), None, t0 + PIN + Duration::from_secs(1));
        assert_eq!(plan.close.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["h002"]);
        assert_eq!(b.link_now("nobody", t0), None, "no record, no link and no pin");
    }

    #[test]
    fn a_record_gone_while_its_link_is_up_stays_and_a_leave_does_not_drop_it() {
        let mut b = book(2);
        b.snapshot(fleet(2));
        let t0 = Instant::now();
        b.plan(&LeastLoaded::default(), None, t0);
        b.link_health("h000", LinkHealth::Up, t0);
        let changes = b.snapshot(Vec::new());
        assert_eq!(changes.left, ["h001"], "h000's link is up: not gone");
        assert!(b.record("h000").is_some());
        assert!(!b.remove("h000"), "a leave while the link is up waits for the link");
        assert!(!b.plan(&LeastLoaded::default(), None, t0).close.iter().any(|(n, _)| n == "h000"));
        b.link_health("h000", LinkHealth::Down, t0);
        assert_eq!(b.snapshot(Vec::new()).left, ["h000"]);
    }

    #[test]
    fn statically_linked_addresses_are_not_linked_again() {
        let mut b = book(4);
        b.snapshot(fleet(2));
        b.set_static(["127.0.1.1:4443".to_string()].into());
        assert_eq!(opened(&b.plan(&LeastLoaded::default(), None, Instant::now())), ["h001"]);
    }

    #[test]
    fn a_linked_hosts_record_may_make_it_look_busier_never_idler_nor_draining() {
        let mut b = book(3);
        b.snapshot(fleet(3));
        let t0 = Instant::now();
        b.plan(&LeastLoaded::default(), None, t0);
        for node in ["h000", "h001"] {
            b.link_health(node, LinkHealth::Up, t0);
        }
        // Then forged records: h000 claims to be idle, h001 to drain; h002's link is not up.
        let mut records = fleet(3);
        records[1].draining = true;
        b.snapshot(records);
        let seen = |load, draining| LinkSeen { load, routers: 5, workers: 1, draining };
        let mut shown = HashMap::from([
            ("h000".to_string(), seen(0.6, false)),
            ("h001".to_string(), seen(0.2, false)),
            ("h002".to_string(), seen(0.9, true)),
        ]);
        b.links_seen(&shown);
        let (views, index) = b.views(t0);
        let view = |node: &str| views[index[node] as usize].clone();
        assert!((view("h000").load - 0.6).abs() < 1e-9 && view("h000").routers == 5, "the link's load");
        assert!(!view("h001").draining, "the link says it takes rooms");
        assert!(!view("h002").draining && view("h002").load < 0.01, "no link up: the record");
        let plan = b.plan(&LeastLoaded::default(), None, t0);
        assert!(plan.close.is_empty(), "a forged drain does not close a genuine host's link: {plan:?}");
        // A record busier than the link shows counts; the link's drain counts.
        shown.insert("h000".into(), seen(0.1, true));
        b.links_seen(&shown);
        let (views, index) = b.views(t0);
        assert!(views[index["h000"] as usize].draining);
        shown.insert("h001".into(), seen(0.0, false));
        b.links_seen(&shown);
        let mut busy = fleet(3);
        busy[1].cells[0].predicted = 0.7;
        b.snapshot(busy);
        let (views, index) = b.views(t0);
        assert!((views[index["h001"] as usize].load - 0.7).abs() < 1e-9);
        // Small moves of a linked host's load leave the views as they are.
        shown.insert("h001".into(), seen(0.004, false));
        b.links_seen(&shown);
        assert!(Arc::ptr_eq(&views, &b.views(t0).0));
        // A link that went down and came back shows nothing until told again; a host no
        // longer showing workers is known by its record alone.
        b.link_health("h000", LinkHealth::Down, t0);
        b.link_health("h000", LinkHealth::Up, t0);
        assert_eq!(b.seen("h000"), None);
        let mut forged = fleet(3);
        forged[1].draining = true;
        // Many forged workers and routers do not make a room there look cheap.
        forged[0].cells = vec![forged[0].cells[0].clone(); 200];
        forged[0].cells.iter_mut().for_each(|c| c.routers = 1_000);
        b.snapshot(forged);
        b.links_seen(&shown);
        assert_eq!(b.views(t0).0[index["h000"] as usize].workers, 1, "the link's worker count");
        shown.remove("h001");
        b.links_seen(&shown);
        assert_eq!(b.seen("h001"), None);
        assert!(b.views(t0).0[index["h001"] as usize].draining, "the forged record decides again");
    }

    /// Places the new room `router` as discovery does: the best host by the built-in selector.
    fn place_new_room(b: &mut FleetBook, router: &str, now: Instant) -> String {
        let (views, _) = b.views(now);
        let chosen = LeastLoaded::default().select(&NodeRequest::new(1).with_router(router), &views).expect("select");
        let node = views[chosen[0] as usize].name().to_string();
        b.placed(router, &node, now);
        node
    }

    #[test]
    fn a_burst_of_new_rooms_spreads_over_hosts_whose_records_are_equal_until_the_records_show_them() {
        let mut b = book(3);
        // Three idle hosts, a little measured noise apart.
        b.snapshot(fleet(3));
        let now = Instant::now();
        let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
        for i in 0..6 {
            *by_node.entry(place_new_room(&mut b, &format!("room-{i}"), now)).or_default() += 1;
        }
        assert_eq!(by_node.values().copied().collect::<Vec<_>>(), [2, 2, 2], "{by_node:?}");
        // A room's next transport goes where its first did, before it has a router there.
        let first = b.placed_on("room-0", now).expect("room-0 was placed");
        assert!(by_node.contains_key(&*first));
        assert_eq!(b.placed_on("room-9", now), None);
        let (views, _) = b.views(now);
        assert!(views.iter().all(|v| v.routers == 2 && v.load >= 2.0 * PLACED_ROOM_LOAD / 1.0), "{views:?}");
        // A room whose router is there now counts through the link's view, not twice.
        b.placed_arrived(&HashSet::from(["room-0".to_string()]));
        assert_eq!(b.placed_on("room-0", now), None);
        let (views, index) = b.views(now);
        assert_eq!(views[index[&*first] as usize].routers, 1);
        // Once the records had time to show them, rooms count only through the records.
        let later = now + PLACED_FOR;
        assert_eq!(b.placed_on("room-0", later), None);
        let (views, _) = b.views(later);
        assert!(views.iter().all(|v| v.routers == 0 && v.load < 0.01), "{views:?}");
    }

    #[test]
    fn a_room_just_placed_costs_its_hosts_mean_room() {
        let mut b = book(2);
        let mut busy = record("busy", "127.0.1.1:4443", 0.3);
        busy.cells[0].routers = 3;
        b.snapshot(vec![busy, record("idle", "127.0.1.2:4443", 0.35)]);
        let now = Instant::now();
        // Busy (0.3, 3 rooms): a room there is predicted at 0.1, so after it the idle host
        // (0.35, counted at least PLACED_ROOM_LOAD a room) is the better one.
        assert_eq!(place_new_room(&mut b, "r1", now), "busy");
        let (views, index) = b.views(now);
        let busy = &views[index["busy"] as usize];
        assert!((busy.load - 0.4).abs() < 1e-9 && busy.routers == 4, "{busy:?}");
        assert_eq!(place_new_room(&mut b, "r2", now), "idle");
    }

    #[test]
    fn rooms_just_placed_are_bounded() {
        let mut b = book(1);
        b.snapshot(fleet(2));
        let now = Instant::now();
        for i in 0..MAX_PLACED + 10 {
            b.placed(&format!("r{i}"), "h000", now);
        }
        assert_eq!(b.placed.by_router.len(), MAX_PLACED);
        assert_eq!(b.placed_on("r0", now), None, "the oldest is forgotten first");
        assert!(b.placed_on(&format!("r{}", MAX_PLACED + 9), now).is_some());
        // One router placed over and over cannot grow the queue without bound.
        for _ in 0..3 * MAX_PLACED {
            b.placed("again", "h001", now);
        }
        assert!(b.placed.order.len() <= 2 * MAX_PLACED && b.placed.by_router.len() <= MAX_PLACED);
        assert_eq!(b.placed_on("again", now).as_deref(), Some("h001"));
        let (views, index) = b.views(now);
        assert!(views[index["h000"] as usize].routers < u32::try_from(MAX_PLACED).unwrap_or(u32::MAX));
    }

    proptest! {
        #[test]
        fn links_never_exceed_the_budget_plus_used_hosts(
            steps in proptest::collection::vec((0usize..40, 0u8..4, proptest::collection::vec(0usize..40, 0..4), 0u64..5000), 1..40),
            max_linked in 1usize..6,
        ) {
            let mut b = book(max_linked);
            let mut now = Instant::now();
            let all = fleet(40);
            for (n, event, used, advance) in steps {
                now += Duration::from_millis(advance);
                b.snapshot(all[..n].to_vec());
                let used: HashSet<String> = used.into_iter().map(|i| format!("h{i:03}")).filter(|n| b.links.contains_key(n)).collect();
                let used_count = used.len();
                b.set_in_use(used);
                let linked: Vec<String> = b.links.keys().cloned().collect();
                for node in linked.iter().take(2) {
                    let health = [LinkHealth::Up, LinkHealth::Connecting, LinkHealth::Refused, LinkHealth::Down][event as usize];
                    b.link_health(node, health, now);
                }
                let plan = b.plan(&LeastLoaded::default(), None, now);
                prop_assert!(b.links.len() <= max_linked + used_count, "{} links, budget {} + {} used", b.links.len(), max_linked, used_count);
                for (node, _) in &plan.open {
                    prop_assert!(node != "me");
                }
            }
        }
    }
}
