//! Per-plugin configuration. `NAME.KEY=VALUE` reaches only the plugin named `NAME` (its file
//! name without `.wasm`, `-` and `_` alike; `pack` for the embedded packer); a bare `KEY=VALUE`
//! is shared by every plugin, so it must never carry a secret. A value `@file:PATH` is read
//! from that file (one trailing newline dropped) and `@env:VAR` from the environment, so
//! secrets need not appear on the command line (where `ps` shows them).

use super::error::PluginError;
use std::path::PathBuf;

/// Where a configuration value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigValue {
    /// Given inline.
    Literal(String),
    /// Read from a file when the plugin is configured.
    File(PathBuf),
    /// Read from an environment variable when the plugin is configured.
    Env(String),
}

/// One configuration entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The plugin it is for; `None`: every plugin.
    pub plugin: Option<String>,
    /// The key the plugin reads.
    pub key: String,
    /// The value.
    pub value: ConfigValue,
}

impl std::str::FromStr for ConfigEntry {
    type Err = String;

    /// Parses `[NAME.]KEY=VALUE` (the last `.` before `=` separates the plugin's name).
    fn from_str(text: &str) -> Result<Self, String> {
        let (name, value) = text.split_once('=').ok_or_else(|| format!("'{text}' is not [PLUGIN.]KEY=VALUE"))?;
        let (plugin, key) = match name.rsplit_once('.') {
            Some((plugin, key)) => (Some(plugin), key),
            None => (None, name),
        };
        if key.is_empty() || plugin.is_some_and(str::is_empty) {
            return Err(format!("'{text}' has an empty plugin name or key"));
        }
        let value = if let Some(path) = value.strip_prefix("@file:") {
            ConfigValue::File(PathBuf::from(path))
        } else if let Some(var) = value.strip_prefix("@env:") {
            ConfigValue::Env(var.to_owned())
        } else {
            ConfigValue::Literal(value.to_owned())
        };
        Ok(Self { plugin: plugin.map(normalize), key: key.to_owned(), value })
    }
}

/// Plugin names compare with `-` and `_` alike.
fn normalize(name: &str) -> String {
    name.replace('_', "-")
}

/// The configuration of every plugin of a host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PluginConfig {
    entries: Vec<ConfigEntry>,
}

impl From<Vec<ConfigEntry>> for PluginConfig {
    fn from(entries: Vec<ConfigEntry>) -> Self {
        Self { entries }
    }
}

impl PluginConfig {
    /// Shared entries (every plugin sees them): for one trusted plugin, and tests.
    #[must_use]
    pub fn shared(pairs: &[(&str, &str)]) -> Self {
        let entries = pairs
            .iter()
            .map(|(key, value)| ConfigEntry {
                plugin: None,
                key: (*key).to_owned(),
                value: ConfigValue::Literal((*value).to_owned()),
            })
            .collect();
        Self { entries }
    }

    /// Adds an entry (later entries win over earlier ones with the same key).
    pub fn push(&mut self, entry: ConfigEntry) {
        self.entries.push(entry);
    }

    /// Whether `plugin` gets `key` (scoped to it or shared).
    #[must_use]
    pub fn has(&self, plugin: &str, key: &str) -> bool {
        let plugin = normalize(plugin);
        self.entries.iter().any(|e| e.key == key && e.plugin.as_ref().is_none_or(|p| *p == plugin))
    }

    /// What plugin `name` receives: shared entries, then its own (which win), values read.
    pub fn for_plugin(&self, name: &str) -> Result<Vec<(String, String)>, PluginError> {
        let wanted = normalize(name);
        let mut resolved: Vec<(String, String)> = Vec::new();
        let shared = self.entries.iter().filter(|e| e.plugin.is_none());
        let own = self.entries.iter().filter(|e| e.plugin.as_deref() == Some(wanted.as_str()));
        for entry in shared.chain(own) {
            let value = read(name, entry)?;
            resolved.retain(|(key, _)| *key != entry.key);
            resolved.push((entry.key.clone(), value));
        }
        Ok(resolved)
    }

    /// Plugin names that entries are scoped to but that no loaded plugin has (likely typos).
    #[must_use]
    pub fn unknown_scopes(&self, loaded: &[String]) -> Vec<String> {
        let loaded: Vec<String> = loaded.iter().map(|n| normalize(n)).collect();
        let mut unknown: Vec<String> =
            self.entries.iter().filter_map(|e| e.plugin.clone()).filter(|p| !loaded.contains(p)).collect();
        unknown.dedup();
        unknown
    }
}

fn read(plugin: &str, entry: &ConfigEntry) -> Result<String, PluginError> {
    let failed = |reason: String| PluginError::Configure { name: plugin.to_owned(), reason };
    match &entry.value {
        ConfigValue::Literal(value) => Ok(value.clone()),
        ConfigValue::File(path) => std::fs::read_to_string(path)
            .map(|text| text.strip_suffix('\n').map_or_else(|| text.clone(), str::to_owned))
            .map_err(|e| failed(format!("{}: cannot read {}: {e}", entry.key, path.display()))),
        ConfigValue::Env(var) => std::env::var(var)
            .map_err(|_| failed(format!("{}: environment variable {var} is not set (or not UTF-8)", entry.key))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> PluginConfig {
        PluginConfig::from(args.iter().map(|a| a.parse().expect("entry")).collect::<Vec<ConfigEntry>>())
    }

    #[test]
    fn scoped_keys_reach_only_their_plugin() {
        let config = config(&["token-auth.secret=s3cret", "max_transports=3", "pack.max_transports=5"]);
        assert_eq!(
            config.for_plugin("token_auth").expect("resolved"),
            vec![("max_transports".to_owned(), "3".to_owned()), ("secret".to_owned(), "s3cret".to_owned())]
        );
        let placement = config.for_plugin("room-affinity").expect("resolved");
        assert_eq!(placement, vec![("max_transports".to_owned(), "3".to_owned())], "no secret for other plugins");
        assert_eq!(config.for_plugin("pack").expect("resolved"), vec![("max_transports".to_owned(), "5".to_owned())]);
        assert!(config.has("pack", "max_transports") && !config.has("pack", "secret"));
        assert_eq!(config.unknown_scopes(&["token_auth".into()]), vec!["pack".to_owned()]);
    }

    #[test]
    fn secrets_come_from_files_and_the_environment() {
        let file = std::env::temp_dir().join(format!("mafalda-secret-{}", std::process::id()));
        std::fs::write(&file, "from-file\n").expect("write");
        let config = config(&[&format!("auth.secret=@file:{}", file.display()), "auth.other=@env:PATH"]);
        let resolved = config.for_plugin("auth").expect("resolved");
        assert_eq!(resolved[0], ("secret".to_owned(), "from-file".to_owned()));
        assert_eq!(resolved[1].1, std::env::var("PATH").expect("PATH"));
        let _ = std::fs::remove_file(&file);
        let missing = config.for_plugin("auth").expect_err("the file is gone");
        assert!(missing.to_string().contains("cannot read"), "{missing}");
        let unset = self::config(&["auth.secret=@env:MAFALDA_SURELY_UNSET_VARIABLE"]);
        assert!(unset.for_plugin("auth").is_err());
    }

    #[test]
    fn malformed_entries_are_refused() {
        for bad in ["novalue", "=x", ".key=x", "plugin.=x"] {
            assert!(bad.parse::<ConfigEntry>().is_err(), "{bad}");
        }
    }
}
