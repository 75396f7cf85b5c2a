//! The registry on Redis (IO only: every decision is the book's): one connection per side,
//! reads of every record (`SCAN` + `MGET`), one record (`GET`), a host's write (`SET … PX`),
//! its announcements (`PUBLISH`) and the subscription watchers react on.

use super::record::{Announcement, HostRecord, Keys, RecordError, MAX_RECORD_BYTES};
use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How long a connection attempt or a command may take (a stalled Redis is an unreachable
/// one: links and rooms do not depend on it).
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Keys asked per `SCAN` step, and per bounded read.
const BATCH: usize = 500;

/// `GET` of each key whose value is a string of at most `ARGV[1]` bytes (nil otherwise).
const BOUNDED_GET: &str = r"local out = {}
for i, key in ipairs(KEYS) do
  out[i] = false
  if redis.call('TYPE', key)['ok'] == 'string' and redis.call('STRLEN', key) <= tonumber(ARGV[1]) then
    out[i] = redis.call('GET', key)
  end
end
return out";

/// The registry could not be used.
#[derive(Debug, Error)]
pub enum RegistryError {
    /// The URL or the cluster name.
    #[error("registry {0}")]
    Config(String),
    /// Redis did not answer, or refused.
    #[error("registry {url}: {reason}")]
    Redis {
        /// The URL, without its password.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A cluster's registry in one Redis.
pub struct Registry {
    client: Client,
    keys: Keys,
    shown: String,
    /// The last operation failed (one WARN per outage).
    unreachable: AtomicBool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").field("url", &self.shown).finish()
    }
}

/// `url` without the password of its user info (for logs).
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(at)) if at > scheme.len() + 3 => {
            let userinfo = &rest[..at - scheme.len() - 3];
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{}", &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// What one full read found.
#[derive(Debug, Default)]
pub struct ReadAll {
    /// The usable records.
    pub records: Vec<HostRecord>,
    /// Records refused (malformed, or under another node's key), with why.
    pub refused: Vec<(String, RecordError)>,
}

impl Registry {
    /// The registry of cluster `cluster` at `url` (`redis://` or `rediss://`; `ca` for a TLS
    /// registry whose certificate the system roots do not know). Connects lazily.
    pub fn open(url: &str, cluster: &str, ca: Option<&Path>) -> Result<Self, RegistryError> {
        let keys = Keys::new(cluster).map_err(|e| RegistryError::Config(e.to_string()))?;
        let shown = redact(url);
        // `rediss://` goes through rustls, which needs a process-wide provider: ring, as the
        // cluster's QUIC (an error only says one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = match ca {
            Some(ca) => {
                let root_cert =
                    std::fs::read(ca).map_err(|e| RegistryError::Config(format!("{}: {e}", ca.display())))?;
                Client::build_with_tls(url, redis::TlsCertificates { client_tls: None, root_cert: Some(root_cert) })
            }
            None => Client::open(url),
        }
        .map_err(|e| RegistryError::Config(format!("{shown}: {e}")))?;
        Ok(Self { client, keys, shown, unreachable: AtomicBool::new(false) })
    }

    /// The cluster's keys.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The URL, without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn error(&self, reason: impl ToString) -> RegistryError {
        RegistryError::Redis { url: self.shown.clone(), reason: reason.to_string() }
    }

    /// A connection (each command then has [`REDIS_TIMEOUT`]).
    pub async fn connect(&self) -> Result<MultiplexedConnection, RegistryError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connecting = self.client.get_multiplexed_async_connection_with_config(&config);
        tokio::time::timeout(REDIS_TIMEOUT * 2, connecting)
            .await
            .map_err(|_| self.error("no answer"))?
            .map_err(|e| self.error(e))
    }

    /// Every record (up to `max` keys).
    pub async fn read_all(&self, conn: &mut MultiplexedConnection, max: usize) -> Result<ReadAll, RegistryError> {
        let pattern = self.keys.hosts_pattern();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(BATCH)
                .query_async(conn)
                .await
                .map_err(|e| self.error(e))?;
            keys.extend(found);
            cursor = next;
            if cursor == 0 || keys.len() >= max {
                break;
            }
        }
        keys.sort_unstable();
        keys.dedup();
        keys.truncate(max);
        let mut read = ReadAll::default();
        for chunk in keys.chunks(BATCH) {
            let values = self.bounded_get(conn, chunk).await?;
            for (key, value) in chunk.iter().zip(values) {
                let Some(value) = value else { continue };
                match self.checked(key, &value) {
                    Ok(record) => read.records.push(record),
                    Err(error) => read.refused.push((key.clone(), error)),
                }
            }
        }
        Ok(read)
    }

    /// The values of `keys`, each only if it is a string of at most [`MAX_RECORD_BYTES`]
    /// (longer ones, and other types, read as absent): a record is never transferred whole
    /// before its size is known (a Redis value may be 512 MB).
    async fn bounded_get(
        &self,
        conn: &mut MultiplexedConnection,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>, RegistryError> {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("EVAL")
            .arg(BOUNDED_GET)
            .arg(keys.len())
            .arg(keys)
            .arg(MAX_RECORD_BYTES)
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(values)
    }

    /// Notes a failed registry operation: the first failure after a success is one WARN for
    /// the whole process (a host's publisher and discovery share it), the rest debug lines.
    pub fn failed(&self, error: &RegistryError) {
        if !self.unreachable.swap(true, Ordering::AcqRel) {
            warn!(%error, "fleet registry unreachable: discovery pauses and this host's record (if any) is not refreshed; links and rooms are unaffected");
        } else {
            debug!(%error, "fleet registry still unreachable");
        }
    }

    /// Notes a registry operation that succeeded (one INFO after an outage).
    pub fn succeeded(&self) {
        if self.unreachable.swap(false, Ordering::AcqRel) {
            info!(registry = %self.shown, "fleet registry reachable again");
        }
    }

    /// A record read under `key`: valid, and naming the node its key names.
    fn checked(&self, key: &str, value: &[u8]) -> Result<HostRecord, RecordError> {
        let record = HostRecord::parse(value)?;
        if self.keys.node_of(key) != Some(record.node.as_str()) {
            return Err(RecordError::Field { field: "node", reason: "not the node its key names".into() });
        }
        Ok(record)
    }

    /// `node`'s record, if there is a usable one.
    pub async fn read_one(
        &self,
        conn: &mut MultiplexedConnection,
        node: &str,
    ) -> Result<Option<Result<HostRecord, RecordError>>, RegistryError> {
        let key = self.keys.host(node);
        let value = self.bounded_get(conn, std::slice::from_ref(&key)).await?.pop().flatten();
        Ok(value.map(|v| self.checked(&key, &v)))
    }

    /// Writes `record` to expire in `ttl` unless written again.
    pub async fn write(
        &self,
        conn: &mut MultiplexedConnection,
        record: &HostRecord,
        ttl: Duration,
    ) -> Result<usize, RegistryError> {
        let json = record.to_json();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let () = redis::cmd("SET")
            .arg(self.keys.host(&record.node))
            .arg(&json)
            .arg("PX")
            .arg(millis)
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(json.len())
    }

    /// Deletes `node`'s record.
    pub async fn delete(&self, conn: &mut MultiplexedConnection, node: &str) -> Result<(), RegistryError> {
        let _: i64 = redis::cmd("DEL").arg(self.keys.host(node)).query_async(conn).await.map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Announces a change on the cluster's channel.
    pub async fn announce(
        &self,
        conn: &mut MultiplexedConnection,
        announcement: &Announcement,
    ) -> Result<(), RegistryError> {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(self.keys.events())
            .arg(announcement.to_json())
            .query_async(conn)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Forwards the cluster's announcements into `to` until the subscription breaks (returns
    /// why). A full `to` drops announcements: the periodic read catches up.
    pub async fn listen(&self, to: &mpsc::Sender<Announcement>, subscribed: impl FnOnce()) -> RegistryError {
        let pubsub = tokio::time::timeout(REDIS_TIMEOUT * 2, self.client.get_async_pubsub()).await;
        let mut pubsub = match pubsub {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => return self.error(e),
            Err(_) => return self.error("no answer"),
        };
        match tokio::time::timeout(REDIS_TIMEOUT, pubsub.subscribe(self.keys.events())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return self.error(e),
            Err(_) => return self.error("no answer to SUBSCRIBE"),
        }
        subscribed();
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Some(announcement) = Announcement::parse(message.get_payload_bytes()) else {
                debug!("registry: an unreadable announcement was ignored");
                continue;
            };
            if to.try_send(announcement).is_err() {
                debug!("registry: announcements arrive faster than they are handled: one dropped");
            }
        }
        self.error("the subscription ended")
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(redact("redis://app:s3cret@10.0.0.5:6379/2"), "redis://app:***@10.0.0.5:6379/2");
        assert_eq!(redact("rediss://:s3cret@r:6380"), "rediss://:***@r:6380");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
