//! Precompiled plugin artifacts, cached on disk keyed by the component's hash and the engine's
//! compatibility hash. Loading a precompiled artifact executes native code, so the host only
//! loads artifacts it wrote itself: each carries an HMAC-SHA256 under a secret key the host
//! created (0600) in the cache folder; anything else is recompiled.

use super::error::PluginError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

type HmacSha256 = Hmac<Sha256>;

const SECRET: &str = "secret.key";
const MAC_LEN: usize = 32;

/// The artifact cache.
#[derive(Debug)]
pub struct ArtifactCache {
    dir: PathBuf,
    secret: [u8; 32],
}

fn cache_error(what: &str, path: &Path, e: impl std::fmt::Display) -> PluginError {
    PluginError::Cache(format!("{what} {}: {e}", path.display()))
}

/// The default cache folder: `$MAFALDA_CACHE_DIR/plugins` or `~/.cache/mafalda-host/plugins`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("MAFALDA_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/mafalda-host")))
        .unwrap_or_else(|| std::env::temp_dir().join("mafalda-host"));
    base.join("plugins")
}

fn read_or_create_secret(dir: &Path) -> Result<[u8; 32], PluginError> {
    let path = dir.join(SECRET);
    let mut secret = [0u8; 32];
    match fs::File::open(&path) {
        Ok(mut file) => {
            let mode = file.metadata().map_err(|e| cache_error("stat", &path, e))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(cache_error("refusing a key readable by others", &path, format!("mode {mode:o}")));
            }
            file.read_exact(&mut secret).map_err(|e| cache_error("read", &path, e))?;
        }
        Err(_) => {
            fs::File::open("/dev/urandom")
                .and_then(|mut r| r.read_exact(&mut secret))
                .map_err(|e| cache_error("random key for", &path, e))?;
            let tmp = dir.join(format!("{SECRET}.{}", std::process::id()));
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| cache_error("create", &tmp, e))?;
            file.write_all(&secret).map_err(|e| cache_error("write", &tmp, e))?;
            // Another process may have won the race: use whichever key is in place.
            if fs::hard_link(&tmp, &path).is_err() {
                let _ = fs::remove_file(&tmp);
                return read_or_create_secret(dir);
            }
            let _ = fs::remove_file(&tmp);
        }
    }
    Ok(secret)
}

impl ArtifactCache {
    /// Opens (creating) the cache in `dir`.
    pub fn open(dir: &Path) -> Result<Self, PluginError> {
        fs::create_dir_all(dir).map_err(|e| cache_error("create", dir, e))?;
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
        Ok(Self { dir: dir.to_path_buf(), secret: read_or_create_secret(dir)? })
    }

    fn key(engine: &Engine, component: &[u8]) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{}-{:016x}", hex::encode(Sha256::digest(component)), hasher.finish())
    }

    /// The MAC of an artifact for `key`: it binds the artifact to the wasm it was compiled
    /// from and the engine that compiled it (both are in the key), so two artifacts the host
    /// wrote cannot be swapped to run plugin A as plugin B.
    fn mac(&self, key: &str, artifact: &[u8]) -> Result<HmacSha256, PluginError> {
        let mut mac = HmacSha256::new_from_slice(&self.secret).map_err(|e| PluginError::Cache(e.to_string()))?;
        mac.update(&(key.len() as u64).to_le_bytes());
        mac.update(key.as_bytes());
        mac.update(artifact);
        Ok(mac)
    }

    /// The compiled component for `component` bytes: from the cache when a valid artifact the
    /// host wrote is there, else compiled and stored. Returns whether it came from the cache.
    pub fn load_or_compile(&self, engine: &Engine, component: &[u8]) -> Result<(Component, bool), wasmtime::Error> {
        let key = Self::key(engine, component);
        let path = self.dir.join(format!("{key}.cwasm"));
        if let Ok(stored) = fs::read(&path) {
            if stored.len() > MAC_LEN {
                let (artifact, tag) = stored.split_at(stored.len() - MAC_LEN);
                if self.mac(&key, artifact).map_err(wasmtime::Error::msg)?.verify_slice(tag).is_ok() {
                    // SAFETY: the artifact carries our MAC over (key, artifact), so it is one we
                    // wrote, unaltered, for exactly this wasm and this engine's compatibility
                    // hash.
                    if let Ok(loaded) = unsafe { Component::deserialize(engine, artifact) } {
                        return Ok((loaded, true));
                    }
                }
            }
            tracing::warn!(path = %path.display(), "ignoring a cached plugin artifact the host did not write");
        }
        let artifact = engine.precompile_component(component)?;
        let tag = self.mac(&key, &artifact).map_err(wasmtime::Error::msg)?.finalize().into_bytes();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written =
            fs::write(&tmp, [artifact.as_slice(), tag.as_slice()].concat()).and_then(|()| fs::rename(&tmp, &path));
        if let Err(error) = written {
            tracing::warn!(%error, path = %path.display(), "could not cache a compiled plugin");
        }
        // SAFETY: produced just now by this engine.
        let loaded = unsafe { Component::deserialize(engine, &artifact) }?;
        Ok((loaded, false))
    }
}
