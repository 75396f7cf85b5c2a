//! The sessions of a host: admission, resume, attach and detach by connection, event
//! numbering and replay, expiry. Generic over `O`, what the server sends frames through (an
//! outbox): the book only hands it back, it never does IO.

use super::events::EventLog;
use super::limits::SessionLimits;
use crate::cluster::grant::TokenGrant;
use crate::cluster::proto::Role;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;
use subtle::ConstantTimeEq;
use thiserror::Error;

/// A session's number (random: it names a session in logs and hellos, it grants nothing).
pub type SessionId = u64;
/// A connection's number, unique per host run: attach and detach name the connection they are
/// about, so a connection that ends late cannot detach a newer one.
pub type ConnectionId = u64;

/// The 128-bit secret that, with the session's identity, resumes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Secret(pub [u8; 16]);

impl Secret {
    /// Whether `other` is this secret (compared in constant time).
    pub fn matches(&self, other: &[u8; 16]) -> bool {
        self.0.ct_eq(other).into()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Who a connection is, once its hello has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Client or peer.
    pub role: Role,
    /// The token's subject, the program name of a trusted client, or the peer's certificate name.
    pub identity: String,
    /// The hello's token and what it was granted (a resumed session takes them).
    pub grant: TokenGrant,
    /// Where the connection comes from.
    pub address: IpAddr,
}

/// A hello's request to resume a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeAsk {
    /// The session.
    pub session: SessionId,
    /// Its secret, from the Welcome that opened it.
    pub secret: [u8; 16],
    /// The last event the caller received: later ones are replayed.
    pub last_event: u64,
}

/// An admitted connection.
#[derive(Debug)]
pub struct Admitted<O> {
    /// Its session.
    pub session: SessionId,
    /// The session's secret (for the Welcome).
    pub secret: Secret,
    /// Whether an existing session was resumed (false: a new, empty one).
    pub resumed: bool,
    /// Event frames to send before anything else (the ones the caller missed).
    pub replay: Vec<Vec<u8>>,
    /// Connections to close: the one the resumed session was attached to before (the caller
    /// came back on a new one before the host noticed the old one die), and the one of a
    /// session that ended here.
    pub close: Vec<(ConnectionId, O)>,
    /// Sessions that ended (their objects are to be closed): the one asked for when its
    /// missed events are no longer all kept.
    pub ended: Vec<SessionId>,
}

/// Why a hello gets no session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The host holds `max_sessions`.
    #[error("the host holds its maximum of {0} sessions")]
    Sessions(usize),
    /// The identity holds `max_sessions_per_identity`.
    #[error("this identity holds its maximum of {0} sessions")]
    Identity(usize),
    /// The address holds `max_sessions_per_address`.
    #[error("this address holds its maximum of {0} sessions")]
    Address(usize),
    /// The address failed too many resumes lately.
    #[error("too many failed resumes from this address: wait and connect without resuming")]
    ResumeRateLimited,
    /// The fresh session number is taken (the caller draws another).
    #[error("session number taken")]
    Collision,
}

struct Record<O> {
    role: Role,
    identity: String,
    address: IpAddr,
    grant: TokenGrant,
    secret: Secret,
    events: EventLog,
    attached: Option<(ConnectionId, O)>,
    detached_at: Option<Instant>,
}

/// Every session of a host.
pub struct SessionBook<O> {
    limits: SessionLimits,
    sessions: HashMap<SessionId, Record<O>>,
    per_identity: HashMap<String, usize>,
    per_address: HashMap<IpAddr, usize>,
    /// Failed resumes per address: when the window started, how many.
    failed_resumes: HashMap<IpAddr, (Instant, u32)>,
}

impl<O: Clone> SessionBook<O> {
    /// An empty book.
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            sessions: HashMap::new(),
            per_identity: HashMap::new(),
            per_address: HashMap::new(),
            failed_resumes: HashMap::new(),
        }
    }

    /// The limits.
    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Sessions held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Admits a connection whose hello was checked: resumes the asked session when the caller
    /// proves it is its owner and every missed event is kept, else opens `fresh` (a random number
    /// and secret drawn by the caller) within the limits.
    pub fn admit(
        &mut self,
        claim: Claim,
        resume: Option<ResumeAsk>,
        connection: (ConnectionId, O),
        fresh: (SessionId, Secret),
        now: Instant,
    ) -> Result<Admitted<O>, Refusal> {
        let (mut ended, mut close) = (Vec::new(), Vec::new());
        if let Some(ask) = resume {
            let owner = self.sessions.get(&ask.session).is_some_and(|r| {
                // Evaluate the secret first and always: no early exit on role or identity.
                let secret = r.secret.matches(&ask.secret);
                secret && r.role == claim.role && r.identity == claim.identity
            });
            // The owner's proof always counts; guesses are limited per address.
            if !owner && self.resume_limited(claim.address, now) {
                return Err(Refusal::ResumeRateLimited);
            }
            if !owner {
                self.fail_resume(claim.address, now);
            } else if let Some(record) = self.sessions.get_mut(&ask.session) {
                match record.events.after(ask.last_event) {
                    Some(replay) => {
                        close.extend(record.attached.replace(connection));
                        record.detached_at = None;
                        record.grant = claim.grant;
                        record.events.trim(self.limits.attached_replay_bytes);
                        return Ok(Admitted {
                            session: ask.session,
                            secret: record.secret,
                            resumed: true,
                            replay,
                            close,
                            ended,
                        });
                    }
                    None => {
                        close.extend(self.end(ask.session));
                        ended.push(ask.session);
                    }
                }
            }
        }
        self.check_room(&claim, fresh.0)?;
        let (id, secret) = fresh;
        *self.per_identity.entry(claim.identity.clone()).or_default() += 1;
        *self.per_address.entry(claim.address).or_default() += 1;
        self.sessions.insert(
            id,
            Record {
                role: claim.role,
                identity: claim.identity,
                address: claim.address,
                grant: claim.grant,
                secret,
                events: EventLog::default(),
                attached: Some(connection),
                detached_at: None,
            },
        );
        Ok(Admitted { session: id, secret, resumed: false, replay: Vec::new(), close, ended })
    }

    fn check_room(&self, claim: &Claim, id: SessionId) -> Result<(), Refusal> {
        let limits = &self.limits;
        if self.sessions.contains_key(&id) {
            return Err(Refusal::Collision);
        }
        if self.sessions.len() >= limits.max_sessions {
            return Err(Refusal::Sessions(limits.max_sessions));
        }
        if self.per_identity.get(&claim.identity).copied().unwrap_or(0) >= limits.max_sessions_per_identity {
            return Err(Refusal::Identity(limits.max_sessions_per_identity));
        }
        if self.per_address.get(&claim.address).copied().unwrap_or(0) >= limits.max_sessions_per_address {
            return Err(Refusal::Address(limits.max_sessions_per_address));
        }
        Ok(())
    }

    fn resume_limited(&mut self, address: IpAddr, now: Instant) -> bool {
        let window = self.limits.resume_window;
        match self.failed_resumes.get(&address) {
            Some((since, _)) if now.saturating_duration_since(*since) >= window => {
                self.failed_resumes.remove(&address);
                false
            }
            Some((_, failures)) => *failures >= self.limits.max_failed_resumes,
            None => false,
        }
    }

    fn fail_resume(&mut self, address: IpAddr, now: Instant) {
        // Bounded: one entry per address that failed in the last window, pruned as windows pass.
        let window = self.limits.resume_window;
        self.failed_resumes.retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
        self.failed_resumes.entry(address).or_insert((now, 0)).1 += 1;
    }

    /// The connection `connection` of `session` ended: the session is detached if it was still
    /// attached to *that* connection (true), and starts its grace period.
    pub fn detach(&mut self, session: SessionId, connection: ConnectionId, now: Instant) -> bool {
        if !self.is_attached(session, connection) {
            return false;
        }
        let Some(record) = self.sessions.get_mut(&session) else { return false };
        record.attached = None;
        record.detached_at = Some(now);
        true
    }

    /// Where a response of `session` goes (responses are not kept: a caller fails its pending
    /// requests when its link drops).
    pub fn outbox(&self, session: SessionId) -> Option<(ConnectionId, O)> {
        self.sessions.get(&session)?.attached.clone()
    }

    /// An event of `session`: `frame` builds its frame from its number; the frame is kept for
    /// replay and returned with the connection to send it on, if one is attached.
    pub fn emit<E>(
        &mut self,
        session: SessionId,
        frame: impl FnOnce(u64) -> Result<Vec<u8>, E>,
    ) -> Result<Option<(ConnectionId, O, Vec<u8>)>, E> {
        let Some(record) = self.sessions.get_mut(&session) else { return Ok(None) };
        let seq = record.events.next_seq();
        // A number without a frame would leave a gap no resume could cross: take it back.
        let frame = frame(seq).inspect_err(|_| record.events.unnumber())?;
        let budget = match record.attached {
            Some(_) => self.limits.attached_replay_bytes,
            None => self.limits.replay_bytes,
        };
        record.events.keep(frame.clone(), budget);
        Ok(record.attached.clone().map(|(id, outbox)| (id, outbox, frame)))
    }

    /// The grant `session` acts with now (of the latest token it presented).
    pub fn grant(&self, session: SessionId) -> Option<TokenGrant> {
        Some(self.sessions.get(&session)?.grant.clone())
    }

    /// `session` acts with a new token from now on.
    pub fn refresh(&mut self, session: SessionId, grant: TokenGrant) {
        if let Some(record) = self.sessions.get_mut(&session) {
            record.grant = grant;
        }
    }

    /// Bytes of events `session` keeps for replay.
    pub fn replay_bytes(&self, session: SessionId) -> usize {
        self.sessions.get(&session).map_or(0, |r| r.events.bytes())
    }

    /// Ends the sessions whose grace ran out by `now`; their objects are to be closed.
    pub fn expire(&mut self, now: Instant) -> Vec<SessionId> {
        let grace = self.limits.grace;
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, r)| r.detached_at.is_some_and(|at| now.saturating_duration_since(at) >= grace))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.end(*id);
        }
        expired
    }

    /// Ends `session` if it is attached to `connection` (its caller said goodbye on it; a
    /// goodbye on a connection the session has left ends nothing). Whether it ended.
    pub fn end_from(&mut self, session: SessionId, connection: ConnectionId) -> bool {
        let attached = self.is_attached(session, connection);
        if attached {
            self.end(session);
        }
        attached
    }

    /// Whether `session` is attached to `connection`.
    pub fn is_attached(&self, session: SessionId, connection: ConnectionId) -> bool {
        self.sessions.get(&session).and_then(|r| r.attached.as_ref()).is_some_and(|(c, _)| *c == connection)
    }

    /// Ends a session at once (the host stops, or its missed events are gone); the connection
    /// it was attached to, if any.
    pub fn end(&mut self, session: SessionId) -> Option<(ConnectionId, O)> {
        let record = self.sessions.remove(&session)?;
        decrement(&mut self.per_identity, &record.identity);
        decrement(&mut self.per_address, &record.address);
        record.attached
    }

    /// Ends every session.
    pub fn clear(&mut self) {
        self.sessions.clear();
        self.per_identity.clear();
        self.per_address.clear();
    }
}

fn decrement<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = counts.get_mut(key) {
        *count -= 1;
        if *count == 0 {
            counts.remove(key);
        }
    }
}
