//! Operating a host: what an operator's tools read — readiness with reasons, a status report
//! (the host's stats, links, recent events) and the Prometheus metrics — gathered from the
//! host, its cluster endpoint and links, and its plugins. The HTTP server around it is the
//! binary's (`mafalda-host serve --admin`); an application embedding the library can serve the
//! same from [`Operations`].
//!
//! - [`journal`]: recent events (bounded);
//! - [`media`]: the cells' RTP counters, read at a bounded rate;
//! - [`metrics`]: the OpenMetrics exposition;
//! - [`process`]: this process's resources.

pub mod journal;
pub mod media;
pub mod metrics;
pub mod process;

use crate::cell::Origin;
use crate::cluster::client::LinkStats;
use crate::cluster::server::ClusterServer;
use crate::cluster::Cluster;
use crate::fleet::{Fleet, Publisher};
use crate::host::Host;
use crate::internals::cell::{Count, DrainCause};
use crate::internals::object::lock;
use crate::plugin::PluginSet;
use crate::stats::HostStats;
use journal::{Journal, JournalEntry};
use media::MediaSampler;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether the host should receive new work, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// True when every check passes.
    pub ready: bool,
    /// What fails (empty when ready).
    pub reasons: Vec<String>,
}

/// The status report (`/status`, and the live status page).
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// This node.
    pub node: String,
    /// Its region.
    pub region: String,
    /// The binary's version.
    pub version: &'static str,
    /// Seconds since the operations view was made (the host's start).
    pub uptime_seconds: f64,
    /// Whether the host drains.
    pub draining: bool,
    /// Whether it is ready.
    pub ready: bool,
    /// Why not.
    pub not_ready: Vec<String>,
    /// Cells, rooms (virtual routers) and totals.
    pub stats: HostStats,
    /// Links to other hosts.
    pub links: Vec<LinkStats>,
    /// Sessions of applications and peers on this host's cluster endpoint.
    pub sessions: usize,
    /// Recent events, newest first.
    pub events: Vec<JournalEntry>,
    /// The fleet registry, when the host uses one.
    pub fleet: Option<metrics::FleetReading>,
}

/// Discovery through the registry, and this host's record there.
#[derive(Default, Clone)]
struct FleetParts(Option<Arc<Fleet>>, Option<Arc<Publisher>>);

impl std::fmt::Debug for FleetParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetParts").field("discovery", &self.0).field("listed", &self.1.is_some()).finish()
    }
}

/// The pieces a running host is made of, as its operator sees them.
#[derive(Debug)]
pub struct Operations {
    host: Arc<Host>,
    server: Mutex<Option<Arc<ClusterServer>>>,
    peers: Mutex<Option<Arc<Cluster>>>,
    /// The peer addresses readiness waits for.
    required: Mutex<std::collections::HashSet<String>>,
    /// Discovery through the registry, and this host's record there.
    fleet: Mutex<FleetParts>,
    plugins: Mutex<PluginSet>,
    journal: Arc<Journal>,
    media: Arc<MediaSampler>,
    started: Instant,
    /// Set once the process is told to stop (SIGTERM): a drain can no longer be undone.
    terminating: AtomicBool,
    /// Peers (by address) whose link was up at least once: readiness waits for each once; a
    /// peer down later shows in the status and metrics, not readiness (one peer down would
    /// otherwise take every host of the cluster out of rotation).
    linked: Mutex<HashSet<String>>,
}

impl Operations {
    /// The operations view of `host`; the cells' RTP counters are read at most every
    /// `media_interval` (when metrics are scraped).
    pub fn new(host: &Arc<Host>, media_interval: Duration) -> Arc<Self> {
        let journal = Journal::listening(host);
        let cells = host.cells();
        journal.record(
            "started",
            format!(
                "host {} up with {} workers: {}",
                host.options().node,
                cells.len(),
                cells.iter().map(|c| c.id().to_string()).collect::<Vec<_>>().join(", ")
            ),
        );
        Arc::new(Self {
            host: Arc::clone(host),
            server: Mutex::default(),
            peers: Mutex::default(),
            required: Mutex::default(),
            fleet: Mutex::default(),
            plugins: Mutex::default(),
            journal,
            media: MediaSampler::new(host, media_interval),
            started: Instant::now(),
            terminating: AtomicBool::new(false),
            linked: Mutex::default(),
        })
    }

    /// The host.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Adds the host's cluster endpoint (sessions, resumes, queues).
    pub fn set_server(&self, server: Arc<ClusterServer>) {
        *lock(&self.server) = Some(server);
    }

    /// Adds the host's fleet: discovery of its peers and its own record in the registry.
    pub fn set_fleet(&self, fleet: Option<Arc<Fleet>>, publisher: Option<Arc<Publisher>>) {
        *lock(&self.fleet) = FleetParts(fleet, publisher);
    }

    /// The fleet's numbers, when the host uses a registry.
    fn fleet_reading(&self) -> Option<metrics::FleetReading> {
        let FleetParts(fleet, publisher) = lock(&self.fleet).clone();
        if fleet.is_none() && publisher.is_none() {
            return None;
        }
        let discovery = fleet.as_ref().map(|f| f.stats()).unwrap_or_default();
        let written = publisher.as_ref().map(|p| p.stats()).unwrap_or_default();
        Some(metrics::FleetReading {
            registry: fleet.as_ref().map(|f| f.registry().shown().to_string()).unwrap_or_default(),
            records: fleet.as_ref().map_or(0, |f| f.record_count()),
            linked: fleet.as_ref().map_or_else(Vec::new, |f| f.linked().into_iter().map(|(node, _)| node).collect()),
            reads: discovery.reads,
            read_failures: discovery.failures,
            announcements: discovery.announcements,
            refused: discovery.refused,
            hosts_refused: discovery.hosts_refused,
            writes: written.writes,
            write_failures: written.failures,
            written_bytes: written.bytes,
        })
    }

    /// Adds the host's links to its peers; readiness waits for those to `required` addresses
    /// (the configured `--peer`s: peers found in a fleet's registry come and go).
    pub fn set_peers(&self, peers: Arc<Cluster>, required: &[String]) {
        *lock(&self.required) = required.iter().cloned().collect();
        *lock(&self.peers) = Some(peers);
    }

    /// Adds the loaded plugins (counters; reloads).
    pub fn set_plugins(&self, plugins: PluginSet) {
        *lock(&self.plugins) = plugins;
    }

    /// The recent events.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Starts draining (see [`Host::drain`]); false if already draining.
    pub fn drain(&self, why: &str) -> bool {
        let started = self.host.drain();
        if started {
            self.journal.record("drain", format!("host draining ({why})"));
        }
        started
    }

    /// Ends a drain; false if not draining; refused once the process is stopping.
    pub fn undrain(&self, why: &str) -> Result<bool, String> {
        if self.terminating.load(Ordering::Acquire) {
            return Err("the host is stopping (SIGTERM): its drain cannot be undone".into());
        }
        let ended = self.host.undrain();
        if ended {
            self.journal.record("undrain", format!("host no longer draining ({why})"));
        }
        Ok(ended)
    }

    /// The process was told to stop: drains, and refuses undrain from now on. Returns whether
    /// it was told before.
    pub fn terminate(&self, why: &str) -> bool {
        let before = self.terminating.swap(true, Ordering::AcqRel);
        self.drain(why);
        before
    }

    /// Whether the host is alive and can recover by itself: its cells and stats answer, and
    /// unless it runs no worker of its own by configuration, not every worker slot is down
    /// with no worker serving (only a restart helps then).
    pub fn liveness(&self) -> Result<(), String> {
        let _ = self.host.stats();
        if self.host.options().pool.max_workers > 0 && self.serving() == 0 {
            if let Err(why) = self.host.readiness() {
                return Err(format!("no worker is serving and {why}"));
            }
        }
        Ok(())
    }

    /// This host's own workers that serve (open, not silent).
    fn serving(&self) -> usize {
        self.host
            .cells()
            .iter()
            .filter(|c| c.origin() != Origin::Remote && !c.is_closed() && !c.drains_for(DrainCause::Silent))
            .count()
    }

    /// Reloads every plugin from its file: each plugin's label and error, if any.
    pub fn reload_plugins(&self) -> Vec<(String, Option<String>)> {
        let plugins = lock(&self.plugins).clone();
        let results: Vec<(String, Option<String>)> =
            plugins.reload().into_iter().map(|(name, result)| (name, result.err().map(|e| e.to_string()))).collect();
        let failed = results.iter().filter(|(_, e)| e.is_some()).count();
        self.journal.record(
            "plugins_reloaded",
            format!("{} plugins reloaded, {failed} failed (kept as they were)", results.len() - failed),
        );
        results
    }

    /// Transports still living in this host's own cells (a drain ends at zero).
    pub fn local_transports(&self) -> u32 {
        self.host.cells().iter().filter(|c| c.origin() != Origin::Remote).map(|c| c.count(Count::Transport)).sum()
    }

    /// Links to peers.
    pub fn links(&self) -> Vec<LinkStats> {
        lock(&self.peers).as_ref().map_or_else(Vec::new, |peers| peers.link_stats())
    }

    /// Whether the host should receive new work: a worker of its own serving, no worker slot
    /// in a crash loop, not draining, every configured peer linked.
    pub fn readiness(&self) -> Readiness {
        self.readiness_with(&self.links())
    }

    /// [`Operations::readiness`] with the peers' links already read.
    fn readiness_with(&self, links: &[LinkStats]) -> Readiness {
        let mut reasons = Vec::new();
        // A host configured with no worker of its own (a hub of its peers) serves through them.
        if self.host.options().pool.max_workers > 0 && self.serving() == 0 {
            reasons.push("no worker of this host is serving".to_string());
        }
        if let Err(why) = self.host.readiness() {
            reasons.push(why);
        }
        if self.host.is_draining() {
            reasons.push("draining".to_string());
        }
        let mut linked = lock(&self.linked);
        let required = lock(&self.required);
        for link in links.iter().filter(|l| required.contains(&l.address)) {
            if link.state == "up" {
                linked.insert(link.address.clone());
            } else if !linked.contains(&link.address) {
                reasons.push(format!("peer {} not linked yet ({})", link.address, link.state));
            }
        }
        Readiness { ready: reasons.is_empty(), reasons }
    }

    /// The status report now.
    pub fn status(&self) -> StatusReport {
        let options = self.host.options();
        let links = self.links();
        let readiness = self.readiness_with(&links);
        StatusReport {
            node: options.node.clone(),
            region: options.region.clone(),
            version: env!("CARGO_PKG_VERSION"),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
            draining: self.host.is_draining(),
            ready: readiness.ready,
            not_ready: readiness.reasons,
            stats: self.host.stats(),
            links,
            sessions: lock(&self.server).as_ref().map_or(0, |s| s.sessions()),
            events: self.journal.recent(),
            fleet: self.fleet_reading(),
        }
    }

    /// Everything the metrics export, read now (and a refresh of the RTP counters asked for,
    /// at most one round per interval, read by a later scrape).
    pub fn readings(&self) -> metrics::Readings {
        let server = lock(&self.server).clone();
        self.media.refresh(move || server.map(|s| s.media_probes()).unwrap_or_default());
        let stats = self.host.stats();
        let own: HashSet<crate::placement::CellId> =
            self.host.cells().iter().filter(|c| c.origin() != Origin::Remote).map(|c| c.id()).collect();
        let (round, objects) = self.media.last_round();
        let links = self.links();
        metrics::Readings {
            node: self.host.options().node.clone(),
            region: self.host.options().region.clone(),
            policy: self.host.placement().policy_name(),
            cells: stats.cells.into_iter().filter(|c| own.contains(&c.id)).collect(),
            media: self.media.totals(),
            draining: self.host.is_draining(),
            ready: self.readiness_with(&links).ready,
            placement: stats.placement,
            plugins: self.plugin_readings(),
            auth: self.host.auth_counters(),
            links,
            server: lock(&self.server).as_ref().map(|s| s.stats()),
            workers: self.host.worker_counters(),
            media_round: (round.as_secs_f64(), objects),
            process: process::read(),
            fleet: self.fleet_reading(),
        }
    }

    /// The loaded plugins' numbers, and the placement policy's when it is a plugin that was
    /// not given with `--plugin` (the embedded `pack` plugin, a `MAFALDA_POLICY` file).
    fn plugin_readings(&self) -> Vec<crate::plugin::set::PluginReading> {
        let mut readings = lock(&self.plugins).counters();
        let policy = self.host.placement().policy();
        if let (Some(counters), false) = (policy.plugin_counters(), readings.iter().any(|r| r.hook == "placement")) {
            readings.push(crate::plugin::set::PluginReading {
                label: policy.name().to_string(),
                hook: "placement",
                counters,
                swaps: 0,
            });
        }
        readings
    }

    /// The exposition now, in `format`.
    pub fn metrics(&self, format: metrics::Format) -> Result<String, std::fmt::Error> {
        self.readings().encode(format)
    }

    /// The media sampler.
    pub fn media(&self) -> &Arc<MediaSampler> {
        &self.media
    }

    /// Runs one round of the cells' RTP counters now (benchmarks, tests).
    pub async fn read_media(&self) {
        let more = lock(&self.server).as_ref().map(|s| s.media_probes()).unwrap_or_default();
        self.media.round(more).await;
    }
}
