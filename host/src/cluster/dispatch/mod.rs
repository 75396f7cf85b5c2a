//! A host carrying out a session's operations on its backend objects (local workers, or a
//! peer's when it aggregates one), and forwarding their events to the session. One module per
//! object kind; this one checks each operation's access and routes it.

use super::grant::{self, RouterGrant, Scope, Target, TokenGrant};
use super::proto::*;
use super::server::{Session, Shared};
use crate::backend::*;
use crate::host::Host;
use crate::internals::cell::{Cell, Count, Counts, RouterHere, Ticket};
use crate::internals::object::lock;
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::{Destination, Operation};
use mediasoup::prelude::WebRtcMessage;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::{Arc, Mutex, Weak};

mod data;
mod media;
mod observers;
mod transports;
mod workers;

pub(crate) use workers::WebRtcServers;

/// A backend object held for a session.
#[derive(Clone)]
#[allow(missing_docs)]
pub(crate) enum Held {
    Worker(Arc<dyn WorkerBackend>),
    Router(Arc<dyn RouterBackend>),
    WebRtc(Arc<dyn WebRtcTransportBackend>),
    Plain(Arc<dyn PlainTransportBackend>),
    Pipe(Arc<dyn PipeTransportBackend>),
    Direct(Arc<dyn DirectTransportBackend>),
    Producer(Arc<dyn ProducerBackend>),
    Consumer(Arc<dyn ConsumerBackend>),
    DataProducer(Arc<dyn DataProducerBackend>),
    DataConsumer(Arc<dyn DataConsumerBackend>),
    AudioLevel(Arc<dyn AudioLevelObserverBackend>),
    ActiveSpeaker(Arc<dyn ActiveSpeakerObserverBackend>),
    WebRtcServer(Arc<dyn WebRtcServerBackend>),
}

impl Held {
    fn name(&self) -> &'static str {
        match self {
            Self::Worker(_) => "a worker",
            Self::Router(_) => "a router",
            Self::WebRtc(_) => "a WebRTC transport",
            Self::Plain(_) => "a plain transport",
            Self::Pipe(_) => "a pipe transport",
            Self::Direct(_) => "a direct transport",
            Self::Producer(_) => "a producer",
            Self::Consumer(_) => "a consumer",
            Self::DataProducer(_) => "a data producer",
            Self::DataConsumer(_) => "a data consumer",
            Self::AudioLevel(_) => "an audio level observer",
            Self::ActiveSpeaker(_) => "an active speaker observer",
            Self::WebRtcServer(_) => "a WebRTC server",
        }
    }

    /// The real object's id (a worker's is not shown to sessions).
    fn id(&self) -> Option<String> {
        Some(match self {
            Self::Worker(_) => return None,
            Self::Router(r) => r.id().to_string(),
            Self::WebRtc(t) => t.id().to_string(),
            Self::Plain(t) => t.id().to_string(),
            Self::Pipe(t) => t.id().to_string(),
            Self::Direct(t) => t.id().to_string(),
            Self::Producer(p) => p.id().to_string(),
            Self::Consumer(c) => c.id().to_string(),
            Self::DataProducer(p) => p.id().to_string(),
            Self::DataConsumer(c) => c.id().to_string(),
            Self::AudioLevel(o) => o.id().to_string(),
            Self::ActiveSpeaker(o) => o.id().to_string(),
            Self::WebRtcServer(s) => s.id().to_string(),
        })
    }

    fn transport(&self) -> Option<Arc<dyn TransportBackend>> {
        match self {
            Self::WebRtc(t) => Some(t.clone()),
            Self::Plain(t) => Some(t.clone()),
            Self::Pipe(t) => Some(t.clone()),
            Self::Direct(t) => Some(t.clone()),
            _ => None,
        }
    }

    fn observer(&self) -> Option<Arc<dyn RtpObserverBackend>> {
        match self {
            Self::AudioLevel(o) => Some(o.clone()),
            Self::ActiveSpeaker(o) => Some(o.clone()),
            _ => None,
        }
    }
}

/// A held object, the room and router it belongs to and the grant it acts with (for auth),
/// its event registrations, and what it counts in its worker's cell.
pub(crate) struct Entry {
    held: Held,
    place: Place,
    _handlers: Vec<HandlerId>,
    _counted: Option<CellUse>,
}

/// Where an object is: for auth, its router's room and id and the router's own grant (when the
/// router was made with its own token; else the session's grant is in force); for the host's
/// lifecycle, the cell its worker is and the router's counts.
#[derive(Clone, Default)]
struct Place {
    room: Option<String>,
    router: Option<String>,
    grant: Option<RouterGrant>,
    cell: Option<(Arc<Cell>, Arc<Counts>)>,
}

/// What a session's object counts in its worker's cell while it lives: remote sessions are
/// users of cells like the host's own routers (idle release, retirement, autoscale and stats
/// see them).
enum CellUse {
    /// A router lives there.
    Router(#[allow(dead_code)] RouterHere),
    /// A transport, producer or consumer lives there.
    Object(#[allow(dead_code)] Ticket),
}

impl Place {
    /// A count of `count` in the place's cell, if it has one.
    fn count(&self, count: Count) -> Option<CellUse> {
        self.cell.as_ref().map(|(cell, router)| CellUse::Object(cell.ticket(router, count, Vec::new())))
    }
}

impl Entry {
    /// A producer's or consumer's media probe with its cell (the metrics' RTP counters).
    pub(crate) fn media(&self) -> Option<(crate::placement::CellId, crate::internals::media_counters::MediaProbe)> {
        use crate::internals::media_counters::MediaProbe;
        let cell = self.place.cell.as_ref()?.0.id();
        match &self.held {
            Held::Producer(p) => Some((cell, MediaProbe::Producer(Arc::clone(p)))),
            Held::Consumer(c) => Some((cell, MediaProbe::Consumer(Arc::clone(c)))),
            _ => None,
        }
    }

    /// Whether this is a worker's entry (every session holds its host's workers).
    pub(crate) fn is_worker(&self) -> bool {
        matches!(self.held, Held::Worker(_))
    }

    /// A worker's entry.
    pub(crate) fn worker(held: Held) -> Self {
        Self { held, place: Place::default(), _handlers: Vec::new(), _counted: None }
    }
}

fn failed(error: impl ToString) -> WireError {
    WireError::Failed(error.to_string())
}

fn wrong(op: &str, held: &Held) -> WireError {
    WireError::WrongObject(format!("{op} does not apply to {}", held.name()))
}

fn packed<T: Serialize>(value: &T) -> Result<Reply, WireError> {
    Ok(Reply::Value(super::proto::pack(value)))
}

fn unpack<T: serde::de::DeserializeOwned>(payload: &Payload<T>) -> Result<T, WireError> {
    payload.get().map_err(|e| WireError::BadRequest(e.to_string()))
}

/// Whether an operation completes without waiting (it is then carried out in arrival order:
/// messages sent one after another arrive in that order).
pub(crate) fn is_immediate(op: &Op) -> bool {
    matches!(op, Op::SendRtp { .. } | Op::SendRtcp { .. } | Op::SendData { .. } | Op::Close { .. })
}

/// Carries out an immediate operation (see [`is_immediate`]).
pub(crate) fn handle_immediate(host: &Host, session: &Arc<Session>, op: Op) -> Result<Reply, WireError> {
    let target = op.target();
    let (held, place) = lock(&session.objects)
        .get(&target)
        .map(|e| (e.held.clone(), e.place.clone()))
        .ok_or(WireError::NotFound(target))?;
    grant::check(&session.caller(host, place.grant.as_ref()), op.access(), Target::under(place.router, place.room))?;
    match op {
        Op::Close { .. } => {
            if !matches!(held, Held::Worker(_)) {
                let entry = lock(&session.objects).remove(&target);
                drop(entry);
            }
            Ok(Reply::Done)
        }
        Op::SendData { ppid, payload, subchannels, required_subchannel, ignored_subchannel, .. } => {
            let Held::DataProducer(p) = &held else { return Err(wrong("send", &held)) };
            let message = WebRtcMessage::new(ppid, Cow::Owned(payload))
                .map_err(|ppid| WireError::BadRequest(format!("unknown PPID {ppid}")))?;
            p.send(message, subchannels, required_subchannel, ignored_subchannel)
                .map_err(|_| WireError::Failed("data producer closed".into()))?;
            Ok(Reply::Done)
        }
        Op::SendRtp { packet, .. } => {
            let Held::Producer(p) = &held else { return Err(wrong("send", &held)) };
            p.send(packet).map_err(|_| WireError::Failed("producer closed".into()))?;
            Ok(Reply::Done)
        }
        Op::SendRtcp { packet, .. } => {
            let Held::Direct(t) = &held else { return Err(wrong("send_rtcp", &held)) };
            t.send_rtcp(packet).map_err(|_| WireError::Failed("transport closed".into()))?;
            Ok(Reply::Done)
        }
        other => Err(WireError::BadRequest(format!("{other:?} is not immediate"))),
    }
}

/// One operation's context: the session, the object it names and where that object is.
struct Call<'a> {
    shared: &'a Arc<Shared>,
    session: &'a Arc<Session>,
    held: Held,
    place: Place,
    /// Where the operation lets media go (see [`Op::destination`]).
    destination: Option<Destination>,
}

impl Call<'_> {
    fn host(&self) -> &Host {
        &self.shared.host
    }

    /// Holds a new object for the session in this call's place, counted as `count` in its cell,
    /// its close and the events `watch` registers forwarded to the session; its handle.
    fn hold(&self, held: Held, count: Option<Count>, watch: impl FnOnce(&Emitter) -> Vec<HandlerId>) -> Handle {
        let handle = self.session.next_handle();
        let events = Emitter::new(self.session, handle);
        let handlers = watch(&events);
        let counted = count.and_then(|count| self.place.count(count));
        let entry = Entry { held, place: self.place.clone(), _handlers: handlers, _counted: counted };
        lock(&self.session.objects).insert(handle, entry);
        handle
    }
}

/// Carries out one operation of `session`.
pub(crate) async fn handle(shared: &Arc<Shared>, session: &Arc<Session>, op: Op) -> Result<Reply, WireError> {
    let target = op.target();
    let access = op.access();
    let host = &shared.host;
    if let Op::Refresh { router, token } = op {
        return refresh(host, session, router, token);
    }
    if access.creates() && lock(&session.objects).len() >= session.max_objects {
        return Err(WireError::Denied(format!(
            "the session holds its maximum of {} objects (close some first)",
            session.max_objects
        )));
    }
    let (held, place) = {
        let objects = lock(&session.objects);
        let entry = objects.get(&target).ok_or(WireError::NotFound(target))?;
        (entry.held.clone(), entry.place.clone())
    };
    // Where media would go (a connect's destination, a comedia transport's "anywhere"): shown
    // to the auth plugin. A payload that does not decode is refused once the caller's grant
    // covers the target, without asking the plugin.
    let destination = match op.destination() {
        Ok(destination) => destination,
        Err(bad) => {
            let target = Target::under(place.router.clone(), place.room.clone());
            grant::check(&session.caller(host, place.grant.as_ref()), Access::Use, target)?;
            return Err(bad);
        }
    };
    match &op {
        // A router made with its own token is checked with that token (see `create_router`).
        Op::CreateRouter { token: Some(_), .. } => {}
        Op::CreateRouter { room, .. } => {
            grant::check(&session.caller(host, None), access, Target::under(None, room.clone()))?
        }
        _ => {
            let target = Target { router: place.router.clone(), room: place.room.clone(), destination };
            grant::check(&session.caller(host, place.grant.as_ref()), access, target)?
        }
    }
    let call = Call { shared, session, held, place, destination };
    match op {
        Op::CreateRouter { .. }
        | Op::WorkerDump { .. }
        | Op::UpdateSettings { .. }
        | Op::WebRtcServer { .. }
        | Op::CreateWebRtcServer { .. }
        | Op::CapabilitiesFor { .. } => workers::handle(call, op).await,
        Op::CreateWebRtcTransport { .. }
        | Op::CreatePlainTransport { .. }
        | Op::CreatePipeTransport { .. }
        | Op::CreateDirectTransport { .. }
        | Op::Connect { .. }
        | Op::SetMaxIncomingBitrate { .. }
        | Op::SetMaxOutgoingBitrate { .. }
        | Op::SetMinOutgoingBitrate { .. }
        | Op::RestartIce { .. } => transports::handle(call, op).await,
        Op::Produce { .. }
        | Op::Consume { .. }
        | Op::SetPreferredLayers { .. }
        | Op::SetPriority { .. }
        | Op::RequestKeyFrame { .. } => media::handle(call, op).await,
        Op::ProduceData { .. }
        | Op::ConsumeData { .. }
        | Op::SendToDataConsumer { .. }
        | Op::GetBufferedAmount { .. }
        | Op::SetBufferedAmountLowThreshold { .. }
        | Op::SetSubchannels { .. }
        | Op::AddSubchannel { .. }
        | Op::RemoveSubchannel { .. } => data::handle(call, op).await,
        Op::CreateAudioLevelObserver { .. }
        | Op::CreateActiveSpeakerObserver { .. }
        | Op::AddProducer { .. }
        | Op::RemoveProducer { .. } => observers::handle(call, op).await,
        Op::Pause { .. } | Op::Resume { .. } => pause(&call.held, matches!(op, Op::Pause { .. })).await,
        Op::Dump { .. } => dump(call).await,
        Op::GetStats { .. } => stats(&call.held).await,
        Op::EnableTraceEvent { types, .. } => trace(&call.held, unpack(&types)?).await,
        Op::SendRtp { .. } | Op::SendRtcp { .. } | Op::SendData { .. } | Op::Close { .. } => {
            handle_immediate(host, session, op)
        }
        // Carried out before any object lookup (it may name none).
        Op::Refresh { .. } => Err(WireError::BadRequest("a refresh names the session, not an object".into())),
    }
}

/// An operation routed to a module that does not carry it out (a bug of the routing above).
fn misrouted(op: &Op) -> WireError {
    WireError::BadRequest(format!("{op:?} was routed to the wrong object kind"))
}

async fn pause(held: &Held, pause: bool) -> Result<Reply, WireError> {
    match (held, pause) {
        (Held::Producer(p), true) => p.pause().await,
        (Held::Producer(p), false) => p.resume().await,
        (Held::Consumer(c), true) => c.pause().await,
        (Held::Consumer(c), false) => c.resume().await,
        (Held::DataProducer(p), true) => p.pause().await,
        (Held::DataProducer(p), false) => p.resume().await,
        (Held::DataConsumer(c), true) => c.pause().await,
        (Held::DataConsumer(c), false) => c.resume().await,
        (other, true) => other.observer().ok_or_else(|| wrong("pause", other))?.pause().await,
        (other, false) => other.observer().ok_or_else(|| wrong("resume", other))?.resume().await,
    }
    .map_err(failed)?;
    Ok(Reply::Done)
}

async fn dump(call: Call<'_>) -> Result<Reply, WireError> {
    match &call.held {
        Held::Worker(w) => {
            let mut dump = w.dump().await.map_err(failed)?;
            workers::own_objects_only(call.session, &mut dump);
            packed(&dump)
        }
        Held::Router(r) => packed(&r.dump().await.map_err(failed)?),
        Held::WebRtc(t) => packed(&t.dump().await.map_err(failed)?),
        Held::Plain(t) => packed(&t.dump().await.map_err(failed)?),
        Held::Pipe(t) => packed(&t.dump().await.map_err(failed)?),
        Held::Direct(t) => packed(&t.dump().await.map_err(failed)?),
        Held::Producer(p) => packed(&p.dump().await.map_err(failed)?),
        Held::Consumer(c) => packed(&c.dump().await.map_err(failed)?),
        Held::DataProducer(p) => packed(&p.dump().await.map_err(failed)?),
        Held::DataConsumer(c) => packed(&c.dump().await.map_err(failed)?),
        Held::WebRtcServer(s) => packed(&s.dump().await.map_err(failed)?),
        other => Err(wrong("dump", other)),
    }
}

async fn stats(held: &Held) -> Result<Reply, WireError> {
    match held {
        Held::WebRtc(t) => packed(&t.get_stats().await.map_err(failed)?),
        Held::Plain(t) => packed(&t.get_stats().await.map_err(failed)?),
        Held::Pipe(t) => packed(&t.get_stats().await.map_err(failed)?),
        Held::Direct(t) => packed(&t.get_stats().await.map_err(failed)?),
        Held::Producer(p) => packed(&p.get_stats().await.map_err(failed)?),
        Held::Consumer(c) => packed(&c.get_stats().await.map_err(failed)?),
        Held::DataProducer(p) => packed(&p.get_stats().await.map_err(failed)?),
        Held::DataConsumer(c) => packed(&c.get_stats().await.map_err(failed)?),
        other => Err(wrong("get_stats", other)),
    }
}

/// Trace events of a transport, producer or consumer (their events are already forwarded).
async fn trace(held: &Held, types: TraceTypes) -> Result<Reply, WireError> {
    match (types, held) {
        (TraceTypes::Transport(types), held) if held.transport().is_some() => {
            held.transport().ok_or_else(|| wrong("enable_trace_event", held))?.enable_trace_event(types).await
        }
        (TraceTypes::Producer(types), Held::Producer(p)) => p.enable_trace_event(types).await,
        (TraceTypes::Consumer(types), Held::Consumer(c)) => c.enable_trace_event(types).await,
        (_, other) => return Err(wrong("these trace event types", other)),
    }
    .map_err(failed)?;
    Ok(Reply::Done)
}

/// The grant of a router made with its own token: asked of the plugin for `CreateRouter` in
/// `room` (for clients of a host with an auth plugin; others have nothing to check).
fn router_grant(
    session: &Arc<Session>,
    host: &Host,
    token: String,
    room: Option<String>,
) -> Result<Option<RouterGrant>, WireError> {
    if !session.caller(host, None).checked {
        return Ok(None);
    }
    let granted = grant::ask(host, Some(token.clone()), Operation::CreateRouter, Target::under(None, room.clone()))
        .map_err(WireError::Denied)?;
    let scope = Scope::of(&granted);
    scope.covers(room.as_deref(), grant::now_unix()).map_err(WireError::Denied)?;
    Ok(Some(Arc::new(Mutex::new(TokenGrant { token: Some(token), scope }))))
}

/// A new token for the session, or for a router made with its own.
fn refresh(host: &Host, session: &Arc<Session>, router: Option<Handle>, token: String) -> Result<Reply, WireError> {
    if !session.caller(host, None).checked {
        return Ok(Reply::Done);
    }
    match router {
        None => session.refresh(grant::refreshed(host, session.identity(), token, None)?),
        Some(handle) => {
            let place =
                lock(&session.objects).get(&handle).map(|e| e.place.clone()).ok_or(WireError::NotFound(handle))?;
            let grant = place.grant.ok_or_else(|| {
                WireError::WrongObject("only a router made with its own token takes a new one".into())
            })?;
            let Some(fresh) = router_grant(session, host, token, place.room)? else { return Ok(Reply::Done) };
            let fresh = lock(&fresh).clone();
            *lock(&grant) = fresh;
        }
    }
    Ok(Reply::Done)
}

/// Sends the events of one object to its session (if the session still exists).
#[derive(Clone)]
pub(super) struct Emitter {
    session: Weak<Session>,
    handle: Handle,
}

impl Emitter {
    fn new(session: &Arc<Session>, handle: Handle) -> Self {
        Self { session: Arc::downgrade(session), handle }
    }

    fn emit(&self, event: Event) {
        if let Some(session) = self.session.upgrade() {
            session.emit(self.handle, event);
        }
    }

    /// A trace event (within the session's trace budget).
    fn emit_trace(&self, event: Event) {
        if let Some(session) = self.session.upgrade() {
            session.emit_trace(self.handle, event);
        }
    }

    /// The object closed on this host: tell the caller and forget it.
    fn closed(&self) {
        if let Some(session) = self.session.upgrade() {
            session.emit(self.handle, Event::Closed);
            session.remove_later(self.handle);
        }
    }
}
