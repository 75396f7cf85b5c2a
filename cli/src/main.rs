//! The `mafalda-host` binary: runs mediasoup workers with their plugins, and the tools around
//! them (demo, plugin check, simulator).

mod admin;
mod cmd;

use crate::cmd::demo::{self, DemoOptions};
use crate::cmd::shutdown::stop_requested;
use crate::cmd::simulate::Shape;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use cmd::plugins::PluginFlags;
use mafalda_host::autoscale::AutoscaleOptions;
use mafalda_host::config::available_cores;
use mafalda_host::config::{HostOptions, PolicyChoice};
use mafalda_host::isolation::Isolation;
use mafalda_host::plugin::{ConfigEntry, ConfigValue};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;
use tracing_subscriber::EnvFilter;

/// mafalda-host: one logical mediasoup Router over every core, placed by plugins.
///
/// Without a command, starts the workers and keeps them running until Ctrl-C (or --duration).
/// Logs go to stderr; set RUST_LOG (e.g. RUST_LOG=mafalda_host=debug,mediasoup=warn) to choose
/// what is logged. Configuration: --config FILE (TOML), then MAFALDA_* environment variables,
/// then the flags below (flags win). SIGHUP reloads the plugins.
#[derive(Debug, Parser)]
#[command(name = "mafalda-host", version, about, long_about)]
struct Cli {
    #[command(flatten)]
    host: HostFlags,

    #[command(flatten)]
    plugins: PluginFlags,

    /// Seconds between two evaluations of the autoscale plugin.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 10.0)]
    autoscale_interval: f64,

    /// Command run for each node action of the autoscale plugin, the advice as JSON on stdin.
    #[arg(long, global = true, value_name = "CMD")]
    scale_hook: Option<String>,

    /// Stop after this many seconds instead of waiting for Ctrl-C.
    #[arg(long, global = true, value_name = "SECS")]
    duration: Option<u64>,

    #[command(flatten)]
    ops: OpsFlags,

    #[command(subcommand)]
    command: Option<Command>,
}

/// How the host is operated: admin server, drain, logs.
#[derive(Debug, Args)]
struct OpsFlags {
    /// The admin HTTP server (/metrics, /healthz, /readyz, /status, the status page at /, and
    /// POST /drain, /undrain, /plugins/reload): ADDR:PORT, or `off`.
    #[arg(long, global = true, value_name = "ADDR|off", env = "MAFALDA_ADMIN", default_value = admin::DEFAULT_ADDR, value_parser = admin::parse_addr)]
    admin: admin::AdminAddr,

    /// Bearer token the admin actions then need from every caller (without it they are
    /// accepted from loopback only). Prefer the environment variable: a command line is
    /// visible to every user of the machine.
    #[arg(long, global = true, value_name = "TOKEN", env = "MAFALDA_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,

    /// Longest drain (SIGTERM or POST /drain) before the host stops with transports left.
    #[arg(long, global = true, value_name = "SECS", default_value_t = cmd::shutdown::DRAIN_TIMEOUT.as_secs_f64())]
    drain_timeout: f64,

    /// Log format: text, or json (one JSON object per line, for log shippers; worker
    /// processes log the same way).
    #[arg(long, global = true, value_name = "FORMAT", env = "MAFALDA_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl OpsFlags {
    /// Binds the admin server (before anything starts: a taken port fails at once).
    async fn admin(&self) -> Result<Option<admin::Bound>> {
        if let Some(token) = &self.admin_token {
            admin::auth::validate_token(token).map_err(anyhow::Error::msg)?;
        }
        match self.admin.0 {
            Some(addr) => Ok(Some(admin::bind(admin::AdminOptions { addr, token: self.admin_token.clone() }).await?)),
            None => Ok(None),
        }
    }

    fn drain_timeout(&self) -> Result<Duration> {
        Duration::try_from_secs_f64(self.drain_timeout).context("--drain-timeout")
    }
}

/// Flags shared by every command that runs workers.
#[derive(Debug, Args)]
struct HostFlags {
    /// Number of mediasoup workers started up front (one per core is the sweet spot).
    /// Default: number of cores.
    #[arg(short, long, global = true, value_name = "N", value_parser = parse_workers)]
    workers: Option<NonZeroUsize>,

    /// Most workers the pool may grow to (default: number of cores, at least --workers).
    #[arg(long, global = true, value_name = "N", value_parser = parse_workers)]
    max_workers: Option<NonZeroUsize>,

    /// Placement policy: pack (built-in bin-packing), spread (built-in least loaded),
    /// pack-plugin (the embedded default plugin, used when nothing else is chosen) or a .wasm.
    #[arg(long, global = true, value_name = "POLICY", value_parser = parse_policy)]
    policy: Option<PolicyChoice>,

    /// CPU share (0..1) above which the packer counts a worker as full (default 0.6).
    #[arg(long, global = true, value_name = "SHARE")]
    cpu_watermark: Option<f64>,

    /// Release a worker that hosted nothing for this many seconds (default 30).
    #[arg(long, global = true, value_name = "SECS")]
    idle_grace: Option<f64>,

    /// Where real workers run: process (a child process each, a crash costs that worker's
    /// transports only; the default of serve and demo) or thread (threads of this process).
    /// Overrides [pool] isolation and MAFALDA_ISOLATION.
    #[arg(long, global = true, value_name = "MODE")]
    isolation: Option<mafalda_host::isolation::Isolation>,

    /// Pin each worker (its process under process isolation) to a core of its own.
    #[arg(long, global = true)]
    pin_workers: bool,

    /// TOML configuration file (sections [pool], [placement], [pipes]; see docs/drop-in.md).
    #[arg(long, global = true, value_name = "FILE", env = "MAFALDA_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the workers and keep them running (the default); with --listen, serve them to
    /// applications and peer hosts over QUIC.
    Serve(ServeArgs),
    /// Cluster certificates: a CA per cluster, a certificate per node.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Forward generated Opus RTP through the host and print a live table once a second: one
    /// producer and consumers in one room, each transport placed by the placement policy (the
    /// embedded pack plugin, capped at consumers-per-worker + 1 transports per worker so that
    /// it fills every worker in turn), the producer piped to every worker its consumers use.
    Demo {
        /// Consumers per worker (the plugin's max_transports is this + 1 unless
        /// --plugin-config pack.max_transports=N is given).
        #[arg(long, value_name = "N", default_value_t = 2)]
        consumers_per_worker: usize,
        /// Packet rate of the generated stream.
        #[arg(long, value_name = "PPS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        pps: u32,
        /// Encrypt the pipes between workers with SRTP.
        #[arg(long)]
        srtp_pipes: bool,
    },
    /// Plugin tools.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Replays a join/leave trace against each --plugin (a .wasm, or pack, spread,
    /// pack-plugin) and prints their cells, CPU, pipes and rejections side by side.
    Simulate {
        /// The trace (JSON lines; `mafalda-host trace` makes one).
        #[arg(long, value_name = "FILE")]
        trace: PathBuf,
    },
    /// One worker in its own process, serving its parent host (started by the host under
    /// --isolation process, not by hand).
    #[command(hide = true)]
    Worker(cmd::worker::WorkerArgs),
    /// Asks a running host to drain (no new transport; it stops once empty or at its
    /// --drain-timeout), or with --undrain to take transports again, through its admin server.
    /// The host is named by --admin (its admin server) and, when it has one, --admin-token.
    Drain {
        /// End a drain instead.
        #[arg(long)]
        undrain: bool,
    },
    /// Prints a generated join/leave trace (JSON lines) of typical rooms.
    Trace {
        /// Room shape.
        #[arg(value_enum)]
        shape: Shape,
        /// Rooms.
        #[arg(long, default_value_t = 20)]
        rooms: u32,
        /// Typical peers per room.
        #[arg(long, default_value_t = 8)]
        peers: u32,
        /// Trace length in seconds.
        #[arg(long, default_value_t = 600)]
        seconds: u32,
        /// Seed (same seed, same trace).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// How a host joins a cluster.
#[derive(Debug, Default, Args)]
struct ServeArgs {
    /// The QUIC control endpoint applications and peers connect to (without it, no socket is
    /// opened: the workers serve this process only).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<std::net::SocketAddr>,
    /// The address endpoints and other hosts send media to (transports created for remote
    /// callers listen on --listen's address and announce this one). Default: --listen's.
    #[arg(long, value_name = "IP")]
    announced_ip: Option<std::net::IpAddr>,
    /// This node's name (its certificate's name in --tls-dir). Default: the host name.
    #[arg(long, value_name = "NAME")]
    node: Option<String>,
    /// This node's region (placement sees it).
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Directory with ca.pem and NODE.pem / NODE.key (`mafalda-host certs`).
    #[arg(long, value_name = "DIR")]
    tls_dir: Option<PathBuf>,
    /// Another host whose workers this one uses too (repeatable): host-to-host links with
    /// mutual TLS; this host's clients get routers over both.
    #[arg(long, value_name = "HOST:PORT")]
    peer: Vec<String>,
    /// The fleet's registry (`redis://[user:pass@]HOST:PORT/DB`, `rediss://…` for TLS): this
    /// host writes its record there (with --listen) and finds its peers there.
    #[arg(long, value_name = "URL", env = "MAFALDA_REGISTRY", hide_env_values = true)]
    registry: Option<String>,
    /// The cluster's name in the registry (several clusters may share one Redis).
    #[arg(long, value_name = "NAME", env = "MAFALDA_CLUSTER_NAME")]
    cluster_name: Option<String>,
    /// A CA (PEM) for a `rediss://` registry whose certificate the system roots do not know.
    #[arg(long, value_name = "FILE", env = "MAFALDA_REGISTRY_CA")]
    registry_ca: Option<PathBuf>,
    /// Peers found in the registry this host links to (default 8, at most 64; 0: none, the
    /// host is only listed).
    #[arg(long, value_name = "N", env = "MAFALDA_MAX_LINKED_HOSTS")]
    max_linked_hosts: Option<usize>,
    /// Accept application connections from any address without an auth plugin (by default
    /// only loopback clients are accepted unless an auth plugin is loaded).
    #[arg(long)]
    insecure_allow_any_client: bool,
    /// Runs a WebRTC server per worker for callers' WebRTC transports that use one, from this
    /// port (UDP and TCP; worker slot N at PORT + N × [pool] webrtc_server_port_stride).
    /// Overrides [serve] webrtc_server_port. Default: none.
    #[arg(long, value_name = "PORT")]
    webrtc_server_port: Option<u16>,
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Writes a new cluster CA (ca.pem, and ca.key readable by its owner only) into DIR, which
    /// must not hold one already. Keep DIR off the hosts.
    Init {
        /// The CA's directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, value_name = "DAYS", default_value_t = mafalda_host::cluster::certs::CA_DAYS)]
        days: u32,
    },
    /// Writes NAME.pem, NAME.key (owner-only) and ca.pem into OUT, signed by the CA in --ca:
    /// OUT is the node's --tls-dir, and holds no CA key.
    Issue {
        /// The node name (its certificate's common name and DNS name; `serve --node` must match).
        name: String,
        /// The CA's directory (ca.pem, ca.key).
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node's directory.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// An address clients dial the node at (repeatable; added to the certificate).
        #[arg(long, value_name = "IP")]
        ip: Vec<std::net::IpAddr>,
        /// A further DNS name of the node (repeatable).
        #[arg(long, value_name = "NAME")]
        dns: Vec<String>,
        /// Name `localhost` too (single-machine setups only: any node would then be valid for
        /// any other dialled as localhost).
        #[arg(long)]
        localhost: bool,
        /// Validity in days.
        #[arg(long, value_name = "DAYS", default_value_t = mafalda_host::cluster::certs::NODE_DAYS)]
        days: u32,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Validates a plugin: loads, compiles, instantiates and configures it; prints its world,
    /// exports and imports. Exits non-zero with the reason when it is not usable.
    Check {
        /// The plugin file.
        file: PathBuf,
    },
    /// Writes the component form of a plugin built as a core module (what an application using
    /// the library with `MAFALDA_POLICY=FILE.wasm` loads; this binary componentises on load).
    Componentize {
        /// The plugin (core module with wit-bindgen metadata).
        input: PathBuf,
        /// Where to write the component.
        output: PathBuf,
    },
}

fn parse_workers(text: &str) -> Result<NonZeroUsize, String> {
    let n: usize = text.parse().map_err(|_| format!("'{text}' is not a number of workers"))?;
    NonZeroUsize::new(n).ok_or_else(|| "at least 1 worker is needed (got 0)".to_string())
}

fn parse_policy(text: &str) -> Result<PolicyChoice, String> {
    PolicyChoice::parse(text).map_err(|e| e.to_string())
}

impl HostFlags {
    /// File, then environment, then these flags.
    fn options(&self) -> Result<HostOptions> {
        let config = self.config.clone();
        let mut options = HostOptions::from_vars(|key| match key {
            "MAFALDA_CONFIG" => config.as_ref().map(|p| p.display().to_string()),
            other => std::env::var(other).ok(),
        })
        .context("reading the configuration")?;
        let pool = &mut options.pool;
        if let Some(max) = self.max_workers {
            pool.max_workers = max.get();
        }
        if let Some(workers) = self.workers {
            pool.max_workers = pool.max_workers.max(workers.get());
        }
        if let Some(mark) = self.cpu_watermark {
            pool.cpu_watermark = mark;
        }
        if let Some(grace) = self.idle_grace {
            pool.idle_grace = Duration::try_from_secs_f64(grace).context("--idle-grace")?;
        }
        if let Some(policy) = &self.policy {
            options.policy = policy.clone();
            options.policy_given = true;
        }
        pool.pin_workers |= self.pin_workers;
        if let Some(isolation) = self.isolation {
            pool.isolation = Some(isolation);
        }
        // serve and demo isolate workers unless told otherwise; the child is this very binary
        // (`/proc/self/exe` in the forked child still names the host's executable, even after
        // a package upgrade replaced the file: a new worker never speaks another version).
        if pool.isolation.get_or_insert(Isolation::Process) == &Isolation::Process && pool.worker_bin.is_none() {
            let this = PathBuf::from("/proc/self/exe");
            pool.worker_bin = Some(if this.is_file() {
                this
            } else {
                std::env::current_exe().context("the path of this binary (the worker processes')")?
            });
        }
        Ok(options.validate()?)
    }
}

fn main() {
    let cli = Cli::parse();
    if cli.ops.log_format == LogFormat::Json {
        // Worker processes inherit the format (set before any thread starts).
        std::env::set_var("MAFALDA_LOG_FORMAT", "json");
    }
    // A worker process runs one worker: one thread serves its parent (the host's own commands
    // use every core).
    let runtime = match cli.command {
        Some(Command::Worker(_)) => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        _ => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
    };
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => Err(anyhow::Error::new(error).context("starting the async runtime")),
    };
    if let Err(error) = outcome {
        eprintln!("mafalda-host: error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Plugins built with the SDK are core modules: componentise them on load.
    mafalda_host::plugin::set_componentizer(mafalda_plugin_componentize::componentize);
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
    match cli.ops.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())).init(),
    }
    let duration = cli.duration.map(Duration::from_secs);
    let interval = Duration::try_from_secs_f64(cli.autoscale_interval).context("--autoscale-interval")?;
    let autoscale = AutoscaleOptions::new(interval).context("--autoscale-interval")?;
    match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => {
            let mut options = cli.host.options()?;
            if let Some(node) = &args.node {
                options.node = node.clone();
            }
            if let Some(region) = &args.region {
                options.region = region.clone();
            }
            if args.webrtc_server_port.is_some() {
                options.serve.webrtc_server_port = args.webrtc_server_port;
            }
            // A serving host's own pipes (to its peers' workers) listen where the cluster
            // endpoint does and announce what it announces, unless [pipes] says otherwise.
            if let (Some(listen), true) = (args.listen, options.pipes == mafalda_host::config::PipeOptions::default()) {
                options.pipes.listen_ip = listen.ip();
                options.pipes.announced_address = args.announced_ip.map(|ip| ip.to_string());
            }
            // The registry is the host's (listed there, peers found there), not an application's.
            let mut fleet = options.cluster.clone();
            options.cluster.registry = None;
            fleet.registry = args.registry.or(fleet.registry);
            fleet.name = args.cluster_name.or(fleet.name);
            fleet.max_linked_hosts = args.max_linked_hosts.or(fleet.max_linked_hosts);
            fleet.registry_ca = args.registry_ca.or(fleet.registry_ca);
            let most = mafalda_host::placement::nodes::MAX_SELECTED;
            if fleet.max_linked_hosts.is_some_and(|n| n > most) {
                anyhow::bail!("--max-linked-hosts is at most {most}");
            }
            fleet.region = Some(options.region.clone());
            let fleet = mafalda_host::fleet::FleetOptions::from_cluster(&fleet, Some(options.node.clone()));
            if let Some(fleet) = &fleet {
                mafalda_host::fleet::record::Keys::new(&fleet.cluster).context("--cluster-name")?;
            }
            let cluster = cmd::serve::ClusterFlags::from_args(
                args.listen,
                args.announced_ip,
                args.tls_dir,
                args.peer,
                args.insecure_allow_any_client,
                &options.node,
                &options.serve,
                fleet,
            )?;
            let initial = cli.host.workers.unwrap_or_else(available_cores);
            let admin = cli.ops.admin().await?;
            let drain_timeout = cli.ops.drain_timeout()?;
            let mut running =
                cmd::serve::start(options, &cli.plugins, autoscale, cli.scale_hook.clone(), initial).await?;
            cmd::serve::join_cluster(&mut running, cluster)?;
            cmd::serve::open_admin(&running, admin)?;
            cmd::serve::serve(running, duration, drain_timeout).await
        }
        Command::Certs { command: CertsCommand::Init { out, days } } => {
            mafalda_host::cluster::certs::init_ca(&out, days)?;
            println!("cluster CA written to {}", out.join("ca.pem").display());
            Ok(())
        }
        Command::Certs { command: CertsCommand::Issue { name, ca, out, ip, dns, localhost, days } } => {
            let node = mafalda_host::cluster::certs::NodeCert { name: name.clone(), ips: ip, dns, localhost, days };
            mafalda_host::cluster::certs::issue(&ca, &out, &node)?;
            println!("{name}'s certificate written to {}", out.join(format!("{name}.pem")).display());
            Ok(())
        }
        Command::Demo { consumers_per_worker, pps, srtp_pipes } => {
            let mut options = cli.host.options()?;
            let workers = cli.host.workers.unwrap_or_else(available_cores);
            if !options.cluster.is_used() {
                // Every worker is started up front and kept: the table shows them all.
                options.pool.max_workers = workers.get();
                options.pool.min_workers = workers.get();
            }
            options.pipes.srtp |= srtp_pipes;
            // At demo scale CPU never reaches the watermark: a transport cap makes the packer
            // fill one worker, then the next (the ingest takes one place on the first).
            let capacity = consumers_per_worker.max(1) + 1;
            let mut plugins = cli.plugins;
            if !plugins.config().has("pack", "max_transports") {
                plugins.plugin_config.push(ConfigEntry {
                    plugin: Some("pack".into()),
                    key: "max_transports".into(),
                    value: ConfigValue::Literal(capacity.to_string()),
                });
            }
            let admin = cli.ops.admin().await?;
            let running = cmd::serve::start(options, &plugins, autoscale, cli.scale_hook.clone(), workers).await?;
            cmd::serve::open_admin(&running, admin)?;
            let demo = DemoOptions {
                consumers: capacity * workers.get() - 1,
                packets_per_second: pps,
                duration,
                ..DemoOptions::default()
            };
            let shutdown = async {
                let _ = stop_requested(None).await;
            };
            let outcome = demo::run(&running.worker, demo, shutdown).await.context("demo failed");
            let closed = cmd::serve::stop(running).await;
            let (_, sent) = outcome?;
            println!("demo: generator sent {sent} packets; closed {closed} workers cleanly");
            Ok(())
        }
        Command::Worker(args) => cmd::worker::run(args).await,
        Command::Drain { undrain } => {
            let address = cli.ops.admin.0.context("--admin names the host's admin server (not off)")?;
            let path = if undrain { "/undrain" } else { "/drain" };
            let answer = admin::client::post(address, path, cli.ops.admin_token.as_deref()).await?;
            println!("{answer}");
            Ok(())
        }
        Command::Plugin { command: PluginCommand::Check { file } } => cmd::plugins::check(&cli.plugins, &file),
        Command::Plugin { command: PluginCommand::Componentize { input, output } } => {
            cmd::plugins::componentize(&input, &output)
        }
        Command::Simulate { trace } => {
            let max = cli.host.max_workers.map_or(8, NonZeroUsize::get);
            cmd::simulate::simulate(&cli.plugins, &trace, u32::try_from(max).unwrap_or(u32::MAX))
        }
        Command::Trace { shape, rooms, peers, seconds, seed } => {
            cmd::simulate::trace(shape, rooms, peers, seconds, seed)
        }
    }
}
