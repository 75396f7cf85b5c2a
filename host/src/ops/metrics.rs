//! The Prometheus exposition: everything is read once per scrape into [`Readings`] (plain
//! data), then encoded as OpenMetrics text with the `prometheus-client` crate. Labels have a
//! bounded cardinality: per cell (worker id, node, region), per plugin, per auth operation, per
//! configured link — never per transport, consumer or room.

use super::process::ProcessReading;
use crate::cluster::client::LinkStats;
use crate::cluster::server::ServerStats;
use crate::host::WorkerCounters;
use crate::internals::media_counters::MediaTotals;
use crate::placement::{CellId, EngineCounters};
use crate::plugin::set::PluginReading;
use crate::stats::CellStats;
use mafalda_plugin_sdk::types::Operation;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;

/// Labels of one metric sample.
type Labels = Vec<(&'static str, String)>;
/// A per-cell count: name, help, reader.
type CellCount = (&'static str, &'static str, fn(&CellStats) -> u32);
/// A per-cell media counter: name, help, reader.
type MediaCounter = (&'static str, &'static str, fn(&MediaTotals) -> u64);

/// The two text formats a scraper may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (curl, `promtool check metrics`).
    PrometheusText,
}

impl Format {
    /// The format an `Accept` header asks for (Prometheus text when it names no OpenMetrics).
    pub fn from_accept(accept: Option<&str>) -> Self {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::PrometheusText,
        }
    }

    /// Its `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Everything one scrape exports.
#[derive(Debug, Clone, Default)]
pub struct Readings {
    /// This host's node and region.
    pub node: String,
    /// Its region.
    pub region: String,
    /// The placement policy's name.
    pub policy: String,
    /// This host's own cells (its peers export theirs: summing over hosts counts each once).
    pub cells: Vec<CellStats>,
    /// RTP totals of this host's cells.
    pub media: HashMap<CellId, MediaTotals>,
    /// Whether the host drains.
    pub draining: bool,
    /// Whether it is ready.
    pub ready: bool,
    /// Placement counters.
    pub placement: EngineCounters,
    /// Loaded plugins.
    pub plugins: Vec<PluginReading>,
    /// Auth decisions per operation (granted, denied).
    pub auth: Vec<(Operation, u64, u64)>,
    /// Links to other hosts.
    pub links: Vec<LinkStats>,
    /// The cluster endpoint, when serving.
    pub server: Option<ServerStats>,
    /// Worker deaths and replacements.
    pub workers: WorkerCounters,
    /// The last media round: seconds and objects read.
    pub media_round: (f64, usize),
    /// This process.
    pub process: Option<ProcessReading>,
    /// The fleet registry, when the host uses one.
    pub fleet: Option<FleetReading>,
}

/// The fleet registry as one host uses it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FleetReading {
    /// The registry's URL (no password).
    pub registry: String,
    /// Host records known.
    pub records: usize,
    /// Nodes linked through discovery.
    pub linked: Vec<String>,
    /// Full reads of the registry.
    pub reads: u64,
    /// Reads that failed (Redis unreachable).
    pub read_failures: u64,
    /// Announcements heard.
    pub announcements: u64,
    /// Records refused (malformed, under another node's key).
    pub refused: u64,
    /// Hosts whose link was refused (certificate, version, token).
    pub hosts_refused: u64,
    /// This host's record writes.
    pub writes: u64,
    /// Writes that failed.
    pub write_failures: u64,
    /// Bytes of records written.
    pub written_bytes: u64,
}

fn operation_name(op: Operation) -> &'static str {
    match op {
        Operation::Connect => "connect",
        Operation::CreateRouter => "create_router",
        Operation::CreateTransport => "create_transport",
        Operation::Produce => "produce",
        Operation::Consume => "consume",
        Operation::ProduceData => "produce_data",
        Operation::ConsumeData => "consume_data",
        Operation::Admin => "admin",
    }
}

fn gauge<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, f64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in samples {
        metric.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// A counter (`name` without `_total`: the encoder adds it).
fn counter<L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in samples {
        metric.encode_family(&labels)?.encode_counter::<NoLabelSet, u64, u64>(&value, None)?;
    }
    Ok(())
}

fn none() -> Labels {
    Vec::new()
}

impl Readings {
    fn cell_labels(cell: &CellStats) -> Labels {
        vec![("worker", cell.worker.to_string()), ("node", cell.node.clone()), ("region", cell.region.clone())]
    }

    fn per_cell(&self, value: impl Fn(&CellStats) -> f64) -> Vec<(Labels, f64)> {
        self.cells.iter().map(|c| (Self::cell_labels(c), value(c))).collect()
    }

    fn per_media(&self, value: impl Fn(&MediaTotals) -> u64) -> Vec<(Labels, u64)> {
        self.cells.iter().filter_map(|c| self.media.get(&c.id).map(|t| (Self::cell_labels(c), value(t)))).collect()
    }

    fn encode_cells(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        gauge(
            e,
            "mafalda_cell_cpu_ratio",
            "Measured CPU share of one core of the cell's worker",
            self.per_cell(|c| c.cpu),
        )?;
        gauge(
            e,
            "mafalda_cell_predicted_cpu_ratio",
            "CPU share the load model predicts for the cell (what placement reads)",
            self.per_cell(|c| c.predicted),
        )?;
        let counts: [CellCount; 6] = [
            ("mafalda_cell_transports", "Transports placed in the cell", |c| c.transports),
            ("mafalda_cell_producers", "Producers living in the cell", |c| c.producers),
            ("mafalda_cell_consumers", "Consumers living in the cell", |c| c.consumers),
            ("mafalda_cell_data_producers", "Data producers living in the cell", |c| c.data_producers),
            ("mafalda_cell_data_consumers", "Data consumers living in the cell", |c| c.data_consumers),
            ("mafalda_cell_pipes", "Producers piped into the cell from other cells", |c| c.pipes),
        ];
        for (name, help, count) in counts {
            gauge(e, name, help, self.per_cell(|c| f64::from(count(c))))?;
        }
        gauge(
            e,
            "mafalda_cell_routers",
            "Virtual routers with a real router in the cell",
            self.per_cell(|c| c.routers as f64),
        )?;
        gauge(
            e,
            "mafalda_cell_draining",
            "1 when the cell takes no new transports",
            self.per_cell(|c| f64::from(u8::from(c.draining))),
        )?;
        let isolated = self
            .cells
            .iter()
            .filter_map(|c| c.process.and_then(|p| p.rss_bytes).map(|rss| (Self::cell_labels(c), rss as f64)));
        gauge(
            e,
            "mafalda_cell_process_resident_memory_bytes",
            "Resident memory of the cell's worker process",
            isolated,
        )?;
        let media: [MediaCounter; 8] = [
            ("mafalda_cell_rtp_received_packets", "RTP packets received from producing endpoints", |t| t.packets_in),
            ("mafalda_cell_rtp_received_bytes", "RTP bytes received from producing endpoints", |t| t.bytes_in),
            ("mafalda_cell_rtp_sent_packets", "RTP packets sent to consuming endpoints", |t| t.packets_out),
            ("mafalda_cell_rtp_sent_bytes", "RTP bytes sent to consuming endpoints", |t| t.bytes_out),
            ("mafalda_cell_nacks_sent", "NACKs sent to producing endpoints", |t| t.nacks_sent),
            ("mafalda_cell_nacks_received", "NACKs received from consuming endpoints", |t| t.nacks_received),
            ("mafalda_cell_plis_sent", "PLIs sent to producing endpoints", |t| t.plis_sent),
            ("mafalda_cell_plis_received", "PLIs received from consuming endpoints", |t| t.plis_received),
        ];
        for (name, help, field) in media {
            counter(e, name, help, self.per_media(field))?;
        }
        gauge(
            e,
            "mafalda_media_stats_round_seconds",
            "How long the last read of the cells' producer and consumer stats took",
            [(none(), self.media_round.0)],
        )?;
        gauge(
            e,
            "mafalda_media_stats_round_objects",
            "Producers and consumers read in the last round",
            [(none(), self.media_round.1 as f64)],
        )
    }

    fn encode_host(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let host = vec![("node", self.node.clone()), ("region", self.region.clone())];
        gauge(
            e,
            "mafalda_host_draining",
            "1 while the host drains",
            [(host.clone(), f64::from(u8::from(self.draining)))],
        )?;
        gauge(
            e,
            "mafalda_host_ready",
            "1 when the host is ready (see /readyz)",
            [(host, f64::from(u8::from(self.ready)))],
        )?;
        gauge(e, "mafalda_cells", "This host's open cells (workers)", [(none(), self.cells.len() as f64)])?;
        let policy = |outcome: &'static str| vec![("policy", self.policy.clone()), ("outcome", outcome.to_string())];
        let p = self.placement;
        let placed = p.decisions.saturating_sub(p.rejections).saturating_sub(p.new_cells);
        counter(
            e,
            "mafalda_placement_decisions",
            "Placement decisions by policy and outcome (existing cell, new cell, rejected)",
            [(policy("existing_cell"), placed), (policy("new_cell"), p.new_cells), (policy("rejected"), p.rejections)],
        )?;
        counter(
            e,
            "mafalda_placement_fallbacks",
            "Decisions the built-in packer made because the policy failed or answered wrongly",
            [(vec![("policy", self.policy.clone())], p.fallbacks)],
        )?;
        let plugin = |r: &PluginReading| vec![("plugin", r.label.clone()), ("hook", r.hook.to_string())];
        let mut metric = e.encode_descriptor(
            "mafalda_plugin_call_duration_seconds",
            "Duration of plugin calls",
            None,
            MetricType::Histogram,
        )?;
        for reading in &self.plugins {
            let d = reading.counters.durations;
            metric.encode_family(&plugin(reading))?.encode_histogram::<NoLabelSet>(
                d.sum_seconds(),
                d.count(),
                &d.buckets(),
                None,
            )?;
        }
        counter(
            e,
            "mafalda_plugin_calls",
            "Plugin calls that returned",
            self.plugins.iter().map(|r| (plugin(r), r.counters.calls)),
        )?;
        counter(
            e,
            "mafalda_plugin_traps",
            "Plugin calls that trapped (timeouts aside)",
            self.plugins.iter().map(|r| (plugin(r), r.counters.failures.saturating_sub(r.counters.timeouts))),
        )?;
        counter(
            e,
            "mafalda_plugin_timeouts",
            "Plugin calls stopped at their CPU budget, wall bound or fuel",
            self.plugins.iter().map(|r| (plugin(r), r.counters.timeouts)),
        )?;
        counter(
            e,
            "mafalda_plugin_skipped",
            "Plugin calls refused while the plugin backs off after failures",
            self.plugins.iter().map(|r| (plugin(r), r.counters.skipped)),
        )?;
        counter(e, "mafalda_plugin_reloads", "Plugin reloads", self.plugins.iter().map(|r| (plugin(r), r.swaps)))?;
        let auth = self.auth.iter().flat_map(|(op, granted, denied)| {
            let op = operation_name(*op).to_string();
            [
                (vec![("operation", op.clone()), ("outcome", "allow".to_string())], *granted),
                (vec![("operation", op), ("outcome", "deny".to_string())], *denied),
            ]
        });
        counter(e, "mafalda_auth_decisions", "Auth decisions by operation and outcome", auth)?;
        let w = self.workers;
        counter(e, "mafalda_worker_crashes", "Workers of this host that died", [(none(), w.crashes)])?;
        counter(e, "mafalda_worker_restarts", "Workers started in place of dead ones", [(none(), w.restarts)])?;
        gauge(
            e,
            "mafalda_worker_slots_down",
            "Worker slots left down after a crash loop",
            [(none(), w.slots_down as f64)],
        )
    }

    fn encode_cluster(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        // By the configured address only: a peer's node name is known once linked.
        let link = |l: &LinkStats| vec![("peer", l.address.clone())];
        gauge(
            e,
            "mafalda_cluster_link_up",
            "1 while the link to another host is up",
            self.links.iter().map(|l| (link(l), f64::from(u8::from(l.state == "up")))),
        )?;
        gauge(
            e,
            "mafalda_cluster_link_rtt_seconds",
            "Smoothed round-trip time of the link's QUIC path",
            self.links.iter().filter_map(|l| l.rtt_ms.map(|ms| (link(l), ms / 1e3))),
        )?;
        gauge(
            e,
            "mafalda_cluster_link_queued_bytes",
            "Bytes waiting in the link's send queue",
            self.links.iter().map(|l| (link(l), l.queued_bytes as f64)),
        )?;
        counter(
            e,
            "mafalda_cluster_link_drops",
            "Times the link dropped",
            self.links.iter().map(|l| (link(l), l.drops)),
        )?;
        counter(
            e,
            "mafalda_cluster_link_resumes",
            "Times the link came back with its session resumed",
            self.links.iter().map(|l| (link(l), l.resumes)),
        )?;
        let Some(s) = self.server else { return Ok(()) };
        gauge(e, "mafalda_cluster_sessions", "Sessions of applications and peers held", [(none(), s.sessions as f64)])?;
        gauge(e, "mafalda_cluster_held_objects", "Objects held for the sessions", [(none(), s.held_objects as f64)])?;
        gauge(
            e,
            "mafalda_cluster_handshakes_in_progress",
            "Connections in their handshake",
            [(none(), s.handshakes as f64)],
        )?;
        gauge(
            e,
            "mafalda_cluster_queued_bytes",
            "Bytes waiting in the sessions' send queues",
            [(none(), s.queued_bytes as f64)],
        )?;
        counter(e, "mafalda_cluster_session_resumes", "Sessions resumed on a new connection", [(none(), s.resumes)])?;
        counter(
            e,
            "mafalda_cluster_events_replayed",
            "Events replayed to resumed sessions",
            [(none(), s.events_replayed)],
        )
    }

    fn encode_fleet(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(f) = &self.fleet else { return Ok(()) };
        gauge(e, "mafalda_fleet_records", "Host records known from the registry", [(none(), f.records as f64)])?;
        gauge(e, "mafalda_fleet_linked_hosts", "Hosts linked through discovery", [(none(), f.linked.len() as f64)])?;
        counter(e, "mafalda_fleet_registry_reads", "Full reads of the registry", [(none(), f.reads)])?;
        counter(
            e,
            "mafalda_fleet_registry_read_failures",
            "Reads of the registry that failed (Redis unreachable)",
            [(none(), f.read_failures)],
        )?;
        counter(
            e,
            "mafalda_fleet_announcements",
            "Join, leave and drain announcements heard",
            [(none(), f.announcements)],
        )?;
        counter(e, "mafalda_fleet_records_refused", "Registry records refused as unusable", [(none(), f.refused)])?;
        counter(
            e,
            "mafalda_fleet_hosts_refused",
            "Listed hosts whose link was refused (certificate not the record's node, version, token)",
            [(none(), f.hosts_refused)],
        )?;
        counter(e, "mafalda_fleet_record_writes", "This host's record writes", [(none(), f.writes)])?;
        counter(
            e,
            "mafalda_fleet_record_write_failures",
            "This host's record writes that failed",
            [(none(), f.write_failures)],
        )?;
        counter(
            e,
            "mafalda_fleet_record_written_bytes",
            "Bytes of this host's records written",
            [(none(), f.written_bytes)],
        )
    }

    fn encode_process(&self, e: &mut DescriptorEncoder) -> std::fmt::Result {
        let Some(p) = self.process else { return Ok(()) };
        gauge(
            e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            [(none(), p.resident_bytes as f64)],
        )?;
        gauge(e, "process_virtual_memory_bytes", "Virtual memory size in bytes", [(none(), p.virtual_bytes as f64)])?;
        gauge(e, "process_open_fds", "Number of open file descriptors", [(none(), p.open_fds as f64)])?;
        gauge(e, "process_max_fds", "Maximum number of open file descriptors", [(none(), p.max_fds as f64)])?;
        gauge(e, "process_threads", "Number of OS threads in the process", [(none(), p.threads as f64)])?;
        gauge(
            e,
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            [(none(), p.start_time_seconds)],
        )?;
        let mut metric = e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            MetricType::Counter,
        )?;
        metric.encode_family(&none())?.encode_counter::<NoLabelSet, f64, u64>(&p.cpu_seconds, None)
    }

    /// The text of these readings in `format`.
    pub fn encode(self, format: Format) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut text = String::new();
        match format {
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry)?,
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?,
        }
        Ok(text)
    }
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        self.encode_cells(&mut encoder)?;
        self.encode_host(&mut encoder)?;
        self.encode_cluster(&mut encoder)?;
        self.encode_fleet(&mut encoder)?;
        self.encode_process(&mut encoder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internals::load_model::Load;

    fn cell(id: u32, worker: &str) -> CellStats {
        CellStats {
            id: CellId(id),
            worker: worker.parse().expect("uuid"),
            node: "media1".into(),
            region: "eu".into(),
            cpu: 0.25,
            predicted: 0.5,
            transports: 3,
            producers: 1,
            consumers: 2,
            pipes: 1,
            data_producers: 0,
            data_consumers: 0,
            routers: 1,
            draining: true,
            idle_for: None,
            load: Load::default(),
            process: None,
        }
    }

    #[test]
    fn cells_are_labelled_by_worker_node_and_region_and_counters_end_in_total() {
        let worker = "8b5d5b9e-3c4f-4d6a-9a37-1a2b3c4d5e6f";
        let mut media = HashMap::new();
        media.insert(CellId(0), MediaTotals { packets_out: 42, ..MediaTotals::default() });
        let text = Readings {
            node: "media1".into(),
            policy: "pack".into(),
            cells: vec![cell(0, worker)],
            media,
            placement: EngineCounters { decisions: 5, fallbacks: 1, rejections: 1, new_cells: 2 },
            ..Readings::default()
        }
        .encode(Format::OpenMetrics)
        .expect("encodes");
        let labels = format!("worker=\"{worker}\",node=\"media1\",region=\"eu\"");
        assert!(text.contains(&format!("mafalda_cell_consumers{{{labels}}} 2")), "{text}");
        assert!(text.contains(&format!("mafalda_cell_draining{{{labels}}} 1")), "{text}");
        assert!(text.contains(&format!("mafalda_cell_rtp_sent_packets_total{{{labels}}} 42")), "{text}");
        assert!(
            text.contains("mafalda_placement_decisions_total{policy=\"pack\",outcome=\"existing_cell\"} 2"),
            "{text}"
        );
        assert!(text.contains("mafalda_placement_decisions_total{policy=\"pack\",outcome=\"new_cell\"} 2"), "{text}");
        assert!(text.contains("mafalda_worker_crashes_total 0"), "an unlabelled sample has no braces: {text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
