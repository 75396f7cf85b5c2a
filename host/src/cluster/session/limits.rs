//! The limits a host puts on sessions, with their defaults.

use std::time::Duration;

/// How many sessions a host keeps and what each may hold while its caller is away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionLimits {
    /// How long a session whose connection dropped is kept for its caller to resume
    /// (default 30 s). A caller that says `Bye` releases its session at once.
    pub grace: Duration,
    /// Event bytes kept for replay while a session is detached (default 4 MiB). A session whose
    /// missed events exceed it cannot be resumed without loss: it ends when its caller returns.
    pub replay_bytes: usize,
    /// Event bytes kept while a session is attached (default 256 KiB): the events written into
    /// a connection that died before anyone noticed, replayed on resume.
    pub attached_replay_bytes: usize,
    /// Sessions on the host, attached or in their grace period (default 1,024).
    pub max_sessions: usize,
    /// Sessions per identity (token subject, program name or peer node; default 64).
    pub max_sessions_per_identity: usize,
    /// Sessions per source address (default 128).
    pub max_sessions_per_address: usize,
    /// Failed resumes (unknown session, wrong secret, identity or role) an address may make in
    /// `resume_window` before its resumes are refused (default 8).
    pub max_failed_resumes: u32,
    /// The window of `max_failed_resumes` (default 60 s).
    pub resume_window: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(30),
            replay_bytes: 4 << 20,
            attached_replay_bytes: 256 << 10,
            max_sessions: 1024,
            max_sessions_per_identity: 64,
            max_sessions_per_address: 128,
            max_failed_resumes: 8,
            resume_window: Duration::from_secs(60),
        }
    }
}
