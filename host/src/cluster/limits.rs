//! What a cluster endpoint bounds, with the defaults. Each is set in the `[serve]`
//! table of the configuration file ([`ServeSettings`]); tests in `cli/tests/cluster_limits.rs`
//! and `session::tests` trip them.

use super::proto::MAX_FRAME;
use super::session::SessionLimits;
use crate::config::ServeSettings;
use std::net::IpAddr;
use std::time::Duration;

/// Limits of one QUIC connection (both sides set them for what the other may send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicLimits {
    /// Bytes one stream may have in flight towards us unread (default 2 MiB: two frames).
    pub stream_window: u32,
    /// Bytes all streams of a connection may have in flight towards us (default 4 MiB).
    pub connection_window: u32,
    /// How long a connection may be silent before it is dropped (default 10 s; the shorter of
    /// the two sides' applies). A dropped connection is not a lost host: its session waits
    /// [`SessionLimits::grace`] for a resume.
    pub idle_timeout: Duration,
    /// How often an idle connection pings (default 1 s).
    pub keep_alive: Duration,
}

impl Default for QuicLimits {
    fn default() -> Self {
        Self {
            stream_window: 2 << 20,
            connection_window: 4 << 20,
            idle_timeout: Duration::from_secs(10),
            keep_alive: Duration::from_secs(1),
        }
    }
}

impl QuicLimits {
    /// How long a caller hears nothing from a host (which advertises every second) before it
    /// takes the host's workers out of placement: 3 s, or three keep-alives if longer. Nothing
    /// is lost then; the workers return when the host is heard again.
    pub fn stale_after(&self) -> Duration {
        (self.keep_alive * 3).max(Duration::from_secs(3))
    }

    /// These limits with `keep_alive_ms` and `idle_timeout_ms` applied (from `section`'s keys).
    pub fn with_timers(
        mut self,
        section: &'static str,
        keep_alive_ms: Option<u64>,
        idle_timeout_ms: Option<u64>,
    ) -> Result<Self, LimitError> {
        if let Some(ms) = keep_alive_ms {
            if ms < 100 {
                return Err(LimitError { section, key: "keep_alive_ms", reason: format!("{ms} is below 100") });
            }
            self.keep_alive = Duration::from_millis(ms);
        }
        if let Some(ms) = idle_timeout_ms {
            if ms < 500 {
                return Err(LimitError { section, key: "idle_timeout_ms", reason: format!("{ms} is below 500") });
            }
            self.idle_timeout = Duration::from_millis(ms);
        }
        if self.keep_alive >= self.idle_timeout {
            return Err(LimitError {
                section,
                key: "keep_alive_ms",
                reason: format!("{:?} must be shorter than the idle timeout {:?}", self.keep_alive, self.idle_timeout),
            });
        }
        Ok(self)
    }

    /// An application's limits: the defaults with `[cluster]` `keep_alive_ms` and
    /// `idle_timeout_ms`.
    pub fn for_application(options: &crate::config::ClusterOptions) -> Result<Self, LimitError> {
        Self::default().with_timers("cluster", options.keep_alive_ms, options.idle_timeout_ms)
    }
}

/// Limits of a host serving the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Sessions: how many, per identity and address, what they keep while detached.
    pub sessions: SessionLimits,
    /// QUIC windows and timeouts.
    pub quic: QuicLimits,
    /// Bytes of responses and events queued for one connection (default 8 MiB); a caller that
    /// does not read beyond it is disconnected (its session waits for it to resume).
    pub outbox_bytes: usize,
    /// Requests of one connection being carried out at once (default 64); the next ones wait
    /// unread, so a flooding caller is slowed by its own QUIC window.
    pub requests_in_flight: usize,
    /// Objects (routers, transports, producers, consumers…) one session may hold (default 10,000).
    pub objects_per_session: usize,
    /// How long a connection has from its first packet to a complete hello (default 5 s, at
    /// most 60 s).
    pub hello_within: Duration,
    /// Connections in their handshake at once (default 256); more are refused.
    pub max_incoming: usize,
    /// Above this many connections in their handshake, a new one must first prove its address
    /// (a QUIC retry; default 32).
    pub retry_above: usize,
    /// Networks a caller's plain and pipe transports may send to (`connect`); empty (default):
    /// any unicast address. Multicast, broadcast and unspecified destinations are always refused.
    pub connect_to: Vec<ipnet::IpNet>,
    /// First port of the host's WebRTC servers for callers (one per worker, at this port + the
    /// worker's slot × `[pool] webrtc_server_port_stride`); `None` (default): callers' WebRTC
    /// transports cannot use a WebRTC server on this host.
    pub webrtc_server_port: Option<u16>,
    /// Trace events (`enable_trace_event`: one per packet for `rtp`) one session may receive
    /// per second, over all its objects (default 1,000; a burst of one second's worth); the
    /// excess is dropped on the host before it is encoded, and counted.
    pub trace_events_per_second: u32,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            sessions: SessionLimits::default(),
            quic: QuicLimits::default(),
            outbox_bytes: 8 << 20,
            requests_in_flight: 64,
            objects_per_session: 10_000,
            hello_within: Duration::from_secs(5),
            max_incoming: 256,
            retry_above: 32,
            connect_to: Vec::new(),
            webrtc_server_port: None,
            trace_events_per_second: 1_000,
        }
    }
}

/// A `[serve]` or `[cluster]` value out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[{section}] {key}: {reason}")]
pub struct LimitError {
    /// The table.
    pub section: &'static str,
    /// The key.
    pub key: &'static str,
    /// Why.
    pub reason: String,
}

impl ServeLimits {
    /// The defaults with the `[serve]` keys that are set.
    pub fn from_settings(settings: &ServeSettings) -> Result<Self, LimitError> {
        let mut limits = Self::default();
        let s = settings;
        let at_least = |key: &'static str, value: Option<usize>, min: usize| -> Result<Option<usize>, LimitError> {
            match value {
                Some(v) if v < min => {
                    Err(LimitError { section: "serve", key, reason: format!("{v} is below the minimum {min}") })
                }
                other => Ok(other),
            }
        };
        let frame = MAX_FRAME + 4;
        if let Some(secs) = s.grace_secs {
            limits.sessions.grace = Duration::from_secs(secs);
        }
        set(&mut limits.sessions.replay_bytes, at_least("replay_bytes", s.replay_bytes, frame)?);
        set(&mut limits.sessions.attached_replay_bytes, s.attached_replay_bytes);
        set(&mut limits.sessions.max_sessions, at_least("max_sessions", s.max_sessions, 1)?);
        set(
            &mut limits.sessions.max_sessions_per_identity,
            at_least("max_sessions_per_identity", s.max_sessions_per_identity, 1)?,
        );
        set(
            &mut limits.sessions.max_sessions_per_address,
            at_least("max_sessions_per_address", s.max_sessions_per_address, 1)?,
        );
        set(&mut limits.sessions.max_failed_resumes, s.max_failed_resumes);
        if let Some(secs) = s.resume_window_secs {
            limits.sessions.resume_window = Duration::from_secs(secs);
        }
        set(&mut limits.outbox_bytes, at_least("outbox_bytes", s.outbox_bytes, frame)?);
        set(&mut limits.requests_in_flight, at_least("requests_in_flight", s.requests_in_flight, 1)?);
        set(&mut limits.objects_per_session, at_least("objects_per_session", s.objects_per_session, 1)?);
        if let Some(ms) = s.hello_within_ms {
            limits.hello_within = Duration::from_millis(ms.clamp(1, 60_000));
        }
        set(&mut limits.max_incoming, at_least("max_incoming", s.max_incoming, 1)?);
        set(&mut limits.retry_above, s.retry_above);
        let window = |key: &'static str, value: Option<u32>| -> Result<Option<u32>, LimitError> {
            Ok(at_least(key, value.map(|v| v as usize), 64 << 10)?.map(|v| v as u32))
        };
        set(&mut limits.quic.stream_window, window("stream_window", s.stream_window)?);
        set(&mut limits.quic.connection_window, window("connection_window", s.connection_window)?);
        limits.quic = limits.quic.with_timers("serve", s.keep_alive_ms, s.idle_timeout_ms)?;
        for network in s.connect_to.iter().flatten() {
            let parsed = network.parse().map_err(|e| LimitError {
                section: "serve",
                key: "connect_to",
                reason: format!("{network}: {e}"),
            })?;
            limits.connect_to.push(parsed);
        }
        limits.webrtc_server_port = s.webrtc_server_port;
        set(&mut limits.trace_events_per_second, s.trace_events_per_second);
        Ok(limits)
    }

    /// Whether a caller's transport may send to `ip`.
    pub fn may_connect_to(&self, ip: IpAddr) -> Result<(), String> {
        // ::ffff:a.b.c.d is a.b.c.d.
        let ip = ip.to_canonical();
        let never = ip.is_unspecified() || ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if never {
            return Err(format!("connect to {ip}: multicast, broadcast and unspecified destinations are refused"));
        }
        if self.connect_to.is_empty() || self.connect_to.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        Err(format!("connect to {ip} is outside the host's [serve] connect_to networks"))
    }
}

fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *field = value;
    }
}
