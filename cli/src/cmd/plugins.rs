//! Plugin flags shared by the commands, and `mafalda-host plugin check`.

use anyhow::{Context, Result};
use clap::Args;
use mafalda_host::config::PolicyChoice;
use mafalda_host::placement::PlacementPolicy;
use mafalda_host::plugin::{
    swap, worlds, ConfigEntry, PluginConfig, PluginKind, PluginLimits, PluginRuntime, PluginSet,
};
use mafalda_host::policy::PolicyLoader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `--plugin*` flags.
#[derive(Debug, Args)]
pub struct PluginFlags {
    /// A plugin (.wasm component, or core module built with the SDK); its world decides its hook
    /// (placement, auth, autoscale). Repeat for several. Without a placement plugin the embedded
    /// default `pack` plugin places transports.
    #[arg(long = "plugin", global = true, value_name = "FILE")]
    pub plugins: Vec<PathBuf>,

    /// Plugin configuration (repeatable): `PLUGIN.KEY=VALUE` reaches only that plugin (named by
    /// its file without .wasm; `pack` for the embedded one), a bare `KEY=VALUE` every plugin —
    /// never a secret. A value `@file:PATH` or `@env:VAR` is read from there, e.g.
    /// `token-auth.secret=@file:/run/secrets/token`.
    #[arg(long = "plugin-config", global = true, value_name = "[PLUGIN.]KEY=VALUE")]
    pub plugin_config: Vec<ConfigEntry>,

    /// Reload plugins when their files change (they are also reloaded on SIGHUP).
    #[arg(long = "plugin-watch", global = true)]
    pub watch: bool,

    /// Deadline of one plugin call, in milliseconds.
    #[arg(long = "plugin-deadline-ms", global = true, value_name = "MS", default_value_t = 5)]
    pub deadline_ms: u64,

    /// Memory cap of one plugin instance, in MiB.
    #[arg(long = "plugin-memory-mib", global = true, value_name = "MIB", default_value_t = 16)]
    pub memory_mib: usize,

    /// Wasm fuel per plugin call (deterministic instruction budget); off by default.
    #[arg(long = "plugin-fuel", global = true, value_name = "UNITS")]
    pub fuel: Option<u64>,
}

impl PluginFlags {
    /// The `--plugin-config` entries.
    pub fn config(&self) -> PluginConfig {
        PluginConfig::from(self.plugin_config.clone())
    }

    /// The runtime these flags describe.
    pub fn runtime(&self) -> Result<Arc<PluginRuntime>> {
        let deadline = Duration::from_millis(self.deadline_ms.max(1));
        let defaults = PluginLimits::default();
        let limits = PluginLimits {
            deadline,
            memory: self.memory_mib.max(1) << 20,
            fuel: self.fuel,
            wall: defaults.wall.max(deadline * 10),
            ..defaults
        };
        Ok(PluginRuntime::new(limits, None)?)
    }

    /// Loads the `--plugin` files.
    pub fn load(&self, runtime: &Arc<PluginRuntime>) -> Result<PluginSet> {
        PluginSet::load(runtime, &self.plugins, &self.config()).context("loading plugins")
    }

    /// The loader resolving placement policies with these flags' runtime and configuration.
    pub fn policy_loader(&self, runtime: &Arc<PluginRuntime>) -> PolicyLoader {
        PolicyLoader { runtime: Some(Arc::clone(runtime)), config: self.config() }
    }
}

/// A placement policy for the simulator: a `.wasm` file, or a built-in name.
pub fn placement_policy(
    flags: &PluginFlags,
    runtime: &Arc<PluginRuntime>,
    spec: &Path,
) -> Result<Arc<dyn PlacementPolicy>> {
    let text = spec.to_string_lossy();
    let choice = if spec.exists() {
        PolicyChoice::Plugin(spec.to_path_buf())
    } else {
        PolicyChoice::parse(&text)
            .with_context(|| format!("{} is neither a file nor a built-in policy", spec.display()))?
    };
    Ok(flags.policy_loader(runtime).resolve(&choice, mafalda_host::placement::BinPack::default())?)
}

/// `mafalda-host plugin check FILE`: validates a plugin and describes it.
pub fn check(flags: &PluginFlags, file: &Path) -> Result<()> {
    let runtime = flags.runtime()?;
    let compiled = runtime.load_file(file).with_context(|| format!("{} is not a usable plugin", file.display()))?;
    println!("plugin:  {}", compiled.name);
    let built_against = compiled
        .exports
        .iter()
        .find_map(|e| e.strip_prefix("mafalda:plugin/").and_then(|rest| rest.split_once('@')).map(|(_, v)| v))
        .unwrap_or("?");
    let world = if compiled.selects_nodes() { "fleet-placement-plugin" } else { compiled.kind.world() };
    println!("world:   mafalda:plugin/{world} (built against mafalda:plugin@{built_against})");
    println!("exports: {}", compiled.exports.join(", "));
    println!("imports: {}", if compiled.imports.is_empty() { "none".to_string() } else { compiled.imports.join(", ") });
    let kind = compiled.kind;
    let config = flags.config().for_plugin(&mafalda_host::plugin::plugin_name(file))?;
    match kind {
        PluginKind::Placement => drop(swap::build::<worlds::PlacementWorld>(&runtime, kind, compiled, &config)?),
        PluginKind::Auth => drop(swap::build::<worlds::AuthPlugin>(&runtime, kind, compiled, &config)?),
        PluginKind::Autoscale => drop(swap::build::<worlds::AutoscalePlugin>(&runtime, kind, compiled, &config)?),
    }
    println!("check:   instantiated and configured within {} MiB", flags.memory_mib);
    Ok(())
}

/// `mafalda-host plugin componentize IN OUT`: writes the component form of a plugin.
pub fn componentize(input: &Path, output: &Path) -> Result<()> {
    let module = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let component = mafalda_plugin_componentize::componentize(&module)
        .with_context(|| format!("{} cannot be componentised", input.display()))?;
    std::fs::write(output, &component).with_context(|| format!("writing {}", output.display()))?;
    println!("{}: component written to {} ({} bytes)", input.display(), output.display(), component.len());
    Ok(())
}
