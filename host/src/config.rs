//! Host configuration: [`HostOptions`] in code, the same keys from a TOML file
//! (`mafalda-host --config`, or `MAFALDA_CONFIG` for drop-in applications) and per-key
//! environment overrides. Every key has a default, so no configuration is needed.
//!
//! Precedence: explicit options in code > environment (`MAFALDA_*`) > file > defaults.

use crate::placement::{PlacementPolicy, DEFAULT_CPU_WATERMARK};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A configuration value that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config file {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<toml::de::Error>,
    },
    /// A value is out of range or malformed.
    #[error("invalid value for {key}: {reason}")]
    Invalid {
        /// The key (file key or environment variable).
        key: String,
        /// Why.
        reason: String,
    },
}

/// Number of cores this process may use (at least 1).
pub fn available_cores() -> std::num::NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(std::num::NonZeroUsize::MIN)
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_string(), reason: reason.into() }
}

/// The worker pool: how many workers, when to add and release them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolOptions {
    /// Most workers the pool may run (default: number of cores).
    pub max_workers: usize,
    /// Workers kept even when idle (default 1).
    pub min_workers: usize,
    /// CPU share above which the built-in packer counts a worker as full (default 0.6).
    pub cpu_watermark: f64,
    /// A worker that hosted nothing this long is released (default 30 s).
    #[serde(with = "secs")]
    pub idle_grace: Duration,
    /// How often worker CPU is sampled and idle workers are checked (default 1 s).
    #[serde(with = "secs")]
    pub sample_interval: Duration,
    /// Ports the workers allocate RTP/ICE ports from.
    pub rtc_min_port: u16,
    /// Upper end of the port range.
    pub rtc_max_port: u16,
    /// Port distance between two worker slots of a WebRTC server: a listen info with port P
    /// listens on `P + slot × stride` in the worker of slot `slot` (default 100).
    pub webrtc_server_port_stride: u16,
    /// Pin each real worker thread to a core: the worker of slot `k` to the `k`-th core this
    /// process may run on (default false). Replaces pinning from a `thread_initializer`, which
    /// would pin every real worker of a virtual worker to the same core.
    pub pin_workers: bool,
    /// Where real workers run: `thread` (threads of this process, mediasoup's model) or
    /// `process` (a `mafalda-host worker` child each: a crash costs that worker's transports
    /// only). `None`: the default of what runs the host — thread for the library, process for
    /// `serve` and `demo`. `MAFALDA_ISOLATION`.
    pub isolation: Option<crate::isolation::Isolation>,
    /// The binary worker processes run (`MAFALDA_WORKER_BIN`; default: `mafalda-host` on
    /// `PATH`).
    pub worker_bin: Option<PathBuf>,
    /// A worker process that leaves two pings through its worker unanswered for this long each
    /// is killed and its cell lost; silent for half of it, it leaves placement until heard
    /// (default 10 s, 1–15 s: a 5 s stall of a loaded machine loses nothing).
    #[serde(with = "secs")]
    pub worker_liveness: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_workers: available_cores().get(),
            min_workers: 1,
            cpu_watermark: DEFAULT_CPU_WATERMARK,
            idle_grace: Duration::from_secs(30),
            sample_interval: Duration::from_secs(1),
            rtc_min_port: 10_000,
            rtc_max_port: 59_999,
            webrtc_server_port_stride: crate::internals::port_plan::DEFAULT_PORT_STRIDE,
            pin_workers: false,
            isolation: None,
            worker_bin: None,
            worker_liveness: Duration::from_secs(10),
        }
    }
}

mod secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// Which placement policy decides.
#[derive(Clone, Default)]
pub enum PolicyChoice {
    /// Built-in bin-packing under the CPU watermark (default).
    #[default]
    Pack,
    /// Built-in least-loaded spreading.
    Spread,
    /// A placement plugin (`.wasm`), loaded by the plugin runtime.
    Plugin(PathBuf),
    /// The default placement plugin (`plugins/pack`, embedded in the host).
    PackPlugin,
    /// A policy given in code.
    Custom(Arc<dyn PlacementPolicy>),
}

impl std::fmt::Debug for PolicyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pack => f.write_str("Pack"),
            Self::Spread => f.write_str("Spread"),
            Self::Plugin(path) => f.debug_tuple("Plugin").field(path).finish(),
            Self::PackPlugin => f.write_str("PackPlugin"),
            Self::Custom(policy) => f.debug_tuple("Custom").field(&policy.name()).finish(),
        }
    }
}

impl PolicyChoice {
    /// Parses `pack`, `spread`, `pack-plugin` or a path to a `.wasm` file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "pack" => Ok(Self::Pack),
            "spread" => Ok(Self::Spread),
            "pack-plugin" => Ok(Self::PackPlugin),
            path if path.ends_with(".wasm") => Ok(Self::Plugin(PathBuf::from(path))),
            other => Err(invalid("policy", format!("'{other}' is not pack, spread, pack-plugin or a .wasm file"))),
        }
    }
}

/// How producers are piped between workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipeOptions {
    /// Encrypt pipes between workers of this host with SRTP (default false: they stay on
    /// loopback). Pipes between hosts always use SRTP and RTX, whatever this says.
    pub srtp: bool,
    /// Address pipe transports listen on (default 127.0.0.1).
    pub listen_ip: IpAddr,
    /// Address the other end of a pipe is told to send to, when it differs from `listen_ip`
    /// (e.g. `listen_ip = 0.0.0.0` behind a known address). Default: `listen_ip`.
    pub announced_address: Option<String>,
}

impl Default for PipeOptions {
    fn default() -> Self {
        Self { srtp: false, listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST), announced_address: None }
    }
}

impl PipeOptions {
    /// Where pipe transports listen (UDP, a port chosen by the worker).
    pub fn listen_info(&self) -> mediasoup::prelude::ListenInfo {
        listen_info(mediasoup::prelude::Protocol::Udp, self.listen_ip, self.announced_address.clone())
    }
}

/// A listen info of only a protocol, an address and what to announce: the port from the
/// worker's range, mediasoup's default socket settings.
pub fn listen_info(
    protocol: mediasoup::prelude::Protocol,
    ip: IpAddr,
    announced_address: Option<String>,
) -> mediasoup::prelude::ListenInfo {
    mediasoup::prelude::ListenInfo {
        protocol,
        ip,
        announced_address,
        expose_internal_ip: false,
        port: None,
        port_range: None,
        flags: None,
        send_buffer_size: None,
        recv_buffer_size: None,
    }
}

/// The hosts of a cluster whose workers this process uses (`[cluster]`, `MAFALDA_CLUSTER`…).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterOptions {
    /// `host:port` of each host's QUIC control endpoint (empty: no cluster).
    pub hosts: Vec<String>,
    /// The cluster CA hosts are verified against (PEM).
    pub ca: Option<PathBuf>,
    /// The token presented to every host (checked by its auth plugin).
    pub token: Option<String>,
    /// Milliseconds between keep-alive pings of an idle link (default 1,000).
    pub keep_alive_ms: Option<u64>,
    /// Milliseconds of silence before a link is dropped (default 10,000; the shorter of this
    /// and the host's applies). The host's session, and every object in it, waits the host's
    /// grace for the link to return.
    pub idle_timeout_ms: Option<u64>,
    /// The fleet's registry, `redis://[user:pass@]HOST:PORT/DB` or `rediss://…` (TLS): hosts
    /// are found there instead of (or besides) `hosts`.
    pub registry: Option<String>,
    /// The cluster's name in the registry (default `default`): several clusters may share one
    /// Redis.
    pub name: Option<String>,
    /// Hosts linked beside those rooms use (default 8, 1 to 64).
    pub max_linked_hosts: Option<usize>,
    /// A CA (PEM) for a `rediss://` registry whose certificate the system roots do not know.
    pub registry_ca: Option<PathBuf>,
    /// The region rooms are placed in by default (a transport's `region` label wins).
    pub region: Option<String>,
}

/// Default [`ClusterOptions::name`].
pub const DEFAULT_CLUSTER_NAME: &str = "default";

impl ClusterOptions {
    /// Whether this process uses cluster hosts (a static list or a registry).
    pub fn is_used(&self) -> bool {
        !self.hosts.is_empty() || self.registry.is_some()
    }

    /// The cluster's name in the registry.
    pub fn cluster_name(&self) -> &str {
        self.name.as_deref().unwrap_or(DEFAULT_CLUSTER_NAME)
    }
}

/// The file form of the options (`[pool]`, `[placement]`, `[pipes]`, `[cluster]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FileConfig {
    pool: PoolOptions,
    placement: FilePlacement,
    pipes: PipeOptions,
    cluster: ClusterOptions,
    serve: ServeSettings,
}

/// `[serve]`: the limits of `mafalda-host serve`'s cluster endpoint. Every key is optional;
/// `cluster::limits::ServeLimits` documents each default and what it bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// Seconds a detached session waits for its caller.
    pub grace_secs: Option<u64>,
    /// Event bytes a detached session keeps for replay.
    pub replay_bytes: Option<usize>,
    /// Event bytes an attached session keeps for replay.
    pub attached_replay_bytes: Option<usize>,
    /// Sessions on the host.
    pub max_sessions: Option<usize>,
    /// Sessions per identity.
    pub max_sessions_per_identity: Option<usize>,
    /// Sessions per source address.
    pub max_sessions_per_address: Option<usize>,
    /// Failed resumes per address per window.
    pub max_failed_resumes: Option<u32>,
    /// That window, in seconds.
    pub resume_window_secs: Option<u64>,
    /// Bytes queued for one connection.
    pub outbox_bytes: Option<usize>,
    /// Requests of one connection carried out at once.
    pub requests_in_flight: Option<usize>,
    /// Objects per session.
    pub objects_per_session: Option<usize>,
    /// Milliseconds from a connection's first packet to its hello.
    pub hello_within_ms: Option<u64>,
    /// Connections in their handshake at once.
    pub max_incoming: Option<usize>,
    /// Handshakes at once beyond which a new connection must prove its address.
    pub retry_above: Option<usize>,
    /// QUIC receive window of a stream, bytes.
    pub stream_window: Option<u32>,
    /// QUIC receive window of a connection, bytes.
    pub connection_window: Option<u32>,
    /// Milliseconds between keep-alive pings of an idle connection.
    pub keep_alive_ms: Option<u64>,
    /// Milliseconds of silence before a connection is dropped (its session then waits
    /// `grace_secs`).
    pub idle_timeout_ms: Option<u64>,
    /// Networks (CIDR) plain and pipe transports of callers may be connected to.
    pub connect_to: Option<Vec<String>>,
    /// First port of the WebRTC servers this host runs for callers' WebRTC transports (one per
    /// worker, UDP and TCP, at this port + the worker's slot × `[pool]
    /// webrtc_server_port_stride`); unset (default): none.
    pub webrtc_server_port: Option<u16>,
    /// Trace events one session may receive per second (the excess is dropped).
    pub trace_events_per_second: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FilePlacement {
    policy: Option<String>,
    label_keys: Option<Vec<String>>,
    max_transports: Option<u32>,
}

/// Everything the host needs; pass it to `WorkerManager::with_options`.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The worker pool.
    pub pool: PoolOptions,
    /// The placement policy.
    pub policy: PolicyChoice,
    /// Pipes between workers.
    pub pipes: PipeOptions,
    /// Name of this host in cell loads.
    pub node: String,
    /// Region of this host in cell loads.
    pub region: String,
    /// Whether the policy was chosen (file or environment) rather than defaulted.
    pub policy_given: bool,
    /// Hosts whose workers this process uses besides its own.
    pub cluster: ClusterOptions,
    /// The `app_data` label keys cells count transports by (`[placement] label_keys`).
    pub label_keys: Vec<String>,
    /// Transports at which `pack` counts a worker as full (`[placement] max_transports`; `None`,
    /// or 0 in the file: no cap).
    pub max_transports: Option<u32>,
    /// Limits of the cluster endpoint (`[serve]`).
    pub serve: ServeSettings,
}

/// This machine's host name (`local` when unknown).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "local".to_string())
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            pool: PoolOptions::default(),
            policy: PolicyChoice::default(),
            pipes: PipeOptions::default(),
            node: host_name(),
            region: "local".to_string(),
            policy_given: false,
            cluster: ClusterOptions::default(),
            label_keys: crate::labels::DEFAULT_LABEL_KEYS.iter().map(|k| k.to_string()).collect(),
            max_transports: None,
            serve: ServeSettings::default(),
        }
    }
}

impl HostOptions {
    /// The settings of `pack` (native or the embedded plugin) these options give.
    pub fn pack(&self) -> crate::placement::BinPack {
        crate::placement::BinPack { watermark: self.pool.cpu_watermark, max_transports: self.max_transports }
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => ConfigError::Parse { path: path.to_path_buf(), source },
            other => other,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: FileConfig = toml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: PathBuf::new(), source: Box::new(source) })?;
        let policy_given = file.placement.policy.is_some();
        let policy = file.placement.policy.as_deref().map(PolicyChoice::parse).transpose()?.unwrap_or_default();
        let mut options = Self {
            pool: file.pool,
            policy,
            pipes: file.pipes,
            policy_given,
            cluster: file.cluster,
            serve: file.serve,
            ..Self::default()
        };
        if let Some(keys) = file.placement.label_keys {
            options.label_keys = keys;
        }
        options.max_transports = file.placement.max_transports.filter(|cap| *cap > 0);
        options.validate()
    }

    /// Defaults, then `MAFALDA_CONFIG` (a TOML file), then `MAFALDA_POLICY`,
    /// `MAFALDA_MAX_WORKERS`, `MAFALDA_CPU_WATERMARK`, `MAFALDA_CLUSTER` (comma-separated
    /// `host:port`s), `MAFALDA_REGISTRY` (a `redis://` or `rediss://` URL),
    /// `MAFALDA_CLUSTER_NAME`, `MAFALDA_MAX_LINKED_HOSTS`, `MAFALDA_REGISTRY_CA`,
    /// `MAFALDA_REGION`, `MAFALDA_CA`, `MAFALDA_TOKEN`, `MAFALDA_ISOLATION` (`thread` or
    /// `process`), `MAFALDA_WORKER_BIN` from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(|key| std::env::var(key).ok())
    }

    /// As [`HostOptions::from_env`], reading variables through `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut options = match var("MAFALDA_CONFIG") {
            Some(path) => Self::from_file(Path::new(&path))?,
            None => Self::default(),
        };
        if let Some(policy) = var("MAFALDA_POLICY") {
            options.policy_given = true;
            options.policy = PolicyChoice::parse(&policy).map_err(|_| {
                invalid("MAFALDA_POLICY", format!("'{policy}' is not pack, spread, pack-plugin or a .wasm file"))
            })?;
        }
        if let Some(max) = var("MAFALDA_MAX_WORKERS") {
            options.pool.max_workers =
                max.parse().map_err(|_| invalid("MAFALDA_MAX_WORKERS", format!("'{max}' is not a number")))?;
            options.pool.min_workers = options.pool.min_workers.min(options.pool.max_workers);
        }
        if let Some(hosts) = var("MAFALDA_CLUSTER") {
            options.cluster.hosts =
                hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(String::from).collect();
        }
        if let Some(registry) = var("MAFALDA_REGISTRY") {
            options.cluster.registry = Some(registry);
        }
        if let Some(name) = var("MAFALDA_CLUSTER_NAME") {
            options.cluster.name = Some(name);
        }
        if let Some(ca) = var("MAFALDA_REGISTRY_CA") {
            options.cluster.registry_ca = Some(PathBuf::from(ca));
        }
        if let Some(region) = var("MAFALDA_REGION") {
            options.cluster.region = Some(region);
        }
        if let Some(max) = var("MAFALDA_MAX_LINKED_HOSTS") {
            options.cluster.max_linked_hosts =
                Some(max.parse().map_err(|_| invalid("MAFALDA_MAX_LINKED_HOSTS", format!("'{max}' is not a number")))?);
        }
        if let Some(ca) = var("MAFALDA_CA") {
            options.cluster.ca = Some(PathBuf::from(ca));
        }
        if let Some(token) = var("MAFALDA_TOKEN") {
            options.cluster.token = Some(token);
        }
        if let Some(isolation) = var("MAFALDA_ISOLATION") {
            options.pool.isolation = Some(isolation.parse().map_err(|e| invalid("MAFALDA_ISOLATION", e))?);
        }
        if let Some(bin) = var("MAFALDA_WORKER_BIN") {
            options.pool.worker_bin = Some(PathBuf::from(bin));
        }
        if let Some(mark) = var("MAFALDA_CPU_WATERMARK") {
            options.pool.cpu_watermark =
                mark.parse().map_err(|_| invalid("MAFALDA_CPU_WATERMARK", format!("'{mark}' is not a number")))?;
        }
        options.validate()
    }

    /// In mixed mode (local workers and cluster hosts), whether the local ends of pipes announce
    /// an address the hosts can send to: not this machine's loopback when a host is elsewhere.
    /// The error names the setting to change.
    pub fn check_pipes_reach_hosts(&self) -> Result<(), ConfigError> {
        let remote_host = self.cluster.hosts.iter().find(|h| {
            let host = h.rsplit_once(':').map_or(h.as_str(), |(host, _)| host);
            host.trim_matches(['[', ']']).parse::<IpAddr>().map_or(host != "localhost", |ip| !ip.is_loopback())
        });
        let pipes = &self.pipes;
        let announced_loopback = match &pipes.announced_address {
            Some(address) => address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()),
            None => pipes.listen_ip.is_loopback() || pipes.listen_ip.is_unspecified(),
        };
        match remote_host {
            Some(host) if self.pool.max_workers > 0 && announced_loopback => Err(invalid(
                "pipes",
                format!(
                    "local workers pipe media to {host}, which cannot reach this machine's {}: set [pipes] \
                     listen_ip (and announced_address) to an address {host} can reach, or \
                     MAFALDA_MAX_WORKERS=0 for no local workers",
                    pipes.announced_address.clone().unwrap_or_else(|| pipes.listen_ip.to_string())
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks ranges; returns the options unchanged when they are usable.
    pub fn validate(self) -> Result<Self, ConfigError> {
        let pool = &self.pool;
        if pool.max_workers == 0 && !self.cluster.is_used() {
            return Err(invalid("max_workers", "must be at least 1 (0 only with cluster hosts to use)"));
        }
        if let Some(registry) = &self.cluster.registry {
            if !(registry.starts_with("redis://") || registry.starts_with("rediss://")) {
                return Err(invalid("registry", "not a redis:// or rediss:// URL"));
            }
            if let Some(max) = self.cluster.max_linked_hosts {
                let most = crate::placement::nodes::MAX_SELECTED;
                if max == 0 || max > most {
                    return Err(invalid("max_linked_hosts", format!("{max} is not between 1 and {most}")));
                }
            }
        }
        if self.cluster.is_used() {
            if self.cluster.ca.is_none() {
                return Err(invalid(
                    "cluster",
                    "hosts are given but no CA to verify them (MAFALDA_CA or [cluster] ca)",
                ));
            }
            if let Some(bad) =
                self.cluster.hosts.iter().find(|h| h.rsplit_once(':').is_none_or(|(_, p)| p.parse::<u16>().is_err()))
            {
                return Err(invalid("cluster", format!("'{bad}' is not host:port")));
            }
        }
        if pool.min_workers > pool.max_workers {
            return Err(invalid(
                "min_workers",
                format!("{} exceeds max_workers {}", pool.min_workers, pool.max_workers),
            ));
        }
        let deadline = crate::cluster::client::REQUEST_TIMEOUT;
        if pool.worker_liveness < Duration::from_secs(1) || pool.worker_liveness > deadline {
            return Err(invalid(
                "worker_liveness",
                format!("{:?} is not between 1 s and {deadline:?} (a request's deadline)", pool.worker_liveness),
            ));
        }
        if !(pool.cpu_watermark > 0.0 && pool.cpu_watermark <= 1.0) {
            return Err(invalid(
                "cpu_watermark",
                format!("{} is not a CPU share in (0, 1] (share of one core)", pool.cpu_watermark),
            ));
        }
        if pool.sample_interval.is_zero() {
            return Err(invalid("sample_interval", "must be positive"));
        }
        if pool.webrtc_server_port_stride == 0 && pool.max_workers > 1 {
            return Err(invalid("webrtc_server_port_stride", "must be positive when max_workers exceeds 1"));
        }
        if pool.rtc_min_port > pool.rtc_max_port {
            return Err(invalid("rtc_min_port", "exceeds rtc_max_port"));
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_need_no_configuration() {
        let options = HostOptions::from_vars(vars(&[])).unwrap();
        assert_eq!(options.pool, PoolOptions::default());
        assert!(matches!(options.policy, PolicyChoice::Pack));
        assert!(options.pool.max_workers >= 1);
    }

    #[test]
    fn file_keys_and_environment_overrides() {
        let text =
            "[pool]\nmax_workers = 3\nidle_grace = 0.5\n[placement]\npolicy = \"spread\"\n[pipes]\nsrtp = true\n";
        let options = HostOptions::from_toml(text).unwrap();
        assert_eq!(options.pool.max_workers, 3);
        assert_eq!(options.pool.idle_grace, Duration::from_millis(500));
        assert!(matches!(options.policy, PolicyChoice::Spread));
        assert!(options.pipes.srtp);

        let options = HostOptions::from_vars(vars(&[
            ("MAFALDA_POLICY", "policy.wasm"),
            ("MAFALDA_MAX_WORKERS", "5"),
            ("MAFALDA_CPU_WATERMARK", "0.8"),
        ]))
        .unwrap();
        assert!(matches!(options.policy, PolicyChoice::Plugin(ref p) if p == Path::new("policy.wasm")));
        assert_eq!(options.pool.max_workers, 5);
        assert_eq!(options.pool.cpu_watermark, 0.8);
    }

    #[test]
    fn local_workers_with_remote_hosts_need_pipes_the_hosts_can_reach() {
        let mixed = |extra: &[(&str, &str)]| {
            let mut all = vec![("MAFALDA_CLUSTER", "10.0.0.5:4443"), ("MAFALDA_CA", "/etc/ca.pem")];
            all.extend_from_slice(extra);
            HostOptions::from_vars(vars(&all)).expect("valid").check_pipes_reach_hosts()
        };
        let err = mixed(&[]).expect_err("loopback pipes towards 10.0.0.5");
        assert!(err.to_string().contains("[pipes] listen_ip"), "{err}");
        assert!(mixed(&[("MAFALDA_MAX_WORKERS", "0")]).is_ok(), "no local workers");
        let file = std::env::temp_dir().join(format!("mafalda-pipes-{}.toml", std::process::id()));
        std::fs::write(&file, "[pipes]\nlisten_ip = \"10.0.0.9\"\n").expect("file");
        assert!(mixed(&[("MAFALDA_CONFIG", file.to_str().expect("utf-8"))]).is_ok(), "a routable pipe address");
        let _ = std::fs::remove_file(&file);
        let local = HostOptions::from_vars(vars(&[("MAFALDA_CLUSTER", "127.0.0.2:4443"), ("MAFALDA_CA", "ca.pem")]));
        assert!(local.expect("valid").check_pipes_reach_hosts().is_ok(), "every host on this machine");
    }

    #[test]
    fn cluster_keys_from_the_environment_and_the_file() {
        let options = HostOptions::from_vars(vars(&[
            ("MAFALDA_CLUSTER", "media1:4443, media2:4443"),
            ("MAFALDA_CA", "/etc/ca.pem"),
            ("MAFALDA_TOKEN", "t"),
            ("MAFALDA_MAX_WORKERS", "0"),
        ]))
        .expect("valid");
        assert_eq!(options.cluster.hosts, vec!["media1:4443".to_string(), "media2:4443".to_string()]);
        assert_eq!(options.cluster.ca.as_deref(), Some(Path::new("/etc/ca.pem")));
        assert_eq!(options.cluster.token.as_deref(), Some("t"));
        assert_eq!((options.pool.max_workers, options.pool.min_workers), (0, 0));
        let file = HostOptions::from_toml("[cluster]\nhosts = [\"h:1\"]\nca = \"ca.pem\"\n").expect("toml");
        assert_eq!(file.cluster.hosts, vec!["h:1".to_string()]);
        // No local worker needs cluster hosts; hosts need a CA and a port.
        let err = HostOptions::from_vars(vars(&[("MAFALDA_MAX_WORKERS", "0")])).unwrap_err();
        assert!(err.to_string().contains("cluster hosts"), "{err}");
        let err = HostOptions::from_vars(vars(&[("MAFALDA_CLUSTER", "media1:4443")])).unwrap_err();
        assert!(err.to_string().contains("MAFALDA_CA"), "{err}");
        let err = HostOptions::from_vars(vars(&[("MAFALDA_CLUSTER", "media1"), ("MAFALDA_CA", "ca.pem")])).unwrap_err();
        assert!(err.to_string().contains("'media1' is not host:port"), "{err}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = HostOptions::from_vars(vars(&[("MAFALDA_MAX_WORKERS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("MAFALDA_MAX_WORKERS"), "{err}");
        let err = HostOptions::from_vars(vars(&[("MAFALDA_POLICY", "fastest")])).unwrap_err();
        assert!(err.to_string().contains("'fastest' is not pack, spread, pack-plugin or a .wasm file"), "{err}");
        let err = HostOptions::from_toml("[pool]\nmax_workers = 0\n").unwrap_err();
        assert!(err.to_string().contains("max_workers"), "{err}");
        let err = HostOptions::from_toml("[pool]\nbogus = 1\n").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = HostOptions::from_vars(vars(&[("MAFALDA_CONFIG", "/nonexistent/mafalda.toml")])).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        let err = HostOptions::from_vars(vars(&[("MAFALDA_ISOLATION", "fibers")])).unwrap_err();
        assert!(err.to_string().contains("MAFALDA_ISOLATION"), "{err}");
        for liveness in ["0", "0.5", "16"] {
            let err = HostOptions::from_toml(&format!("[pool]\nworker_liveness = {liveness}\n")).unwrap_err();
            assert!(err.to_string().contains("worker_liveness"), "{liveness}: {err}");
        }
        let options = HostOptions::from_toml("[pool]\nisolation = \"process\"\nworker_liveness = 3\n").expect("valid");
        assert_eq!(options.pool.isolation, Some(crate::isolation::Isolation::Process));
    }
}
