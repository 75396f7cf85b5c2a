//! A host carrying out a session's operations on its backend objects (local workers, or a
//! peer's when it aggregates one), and forwarding their events to the session.

use super::grant::{self, RouterGrant, Scope, Target, TokenGrant};
use super::proto::*;
use super::refusals;
use super::server::{Session, Shared};
use crate::backend::*;
use crate::host::Host;
use crate::internals::cell::{Cell, Count, Counts, RouterHere, Ticket};
use crate::internals::object::lock;
use crate::options::{DataConsumerOptions, DataProducerOptions, ProducerOptions};
use event_listener_primitives::HandlerId;
use mafalda_plugin_sdk::types::Operation;
use mediasoup::active_speaker_observer::ActiveSpeakerObserverOptions;
use mediasoup::audio_level_observer::AudioLevelObserverOptions;
use mediasoup::consumer::ConsumerOptions;
use mediasoup::direct_transport::DirectTransportOptions;
use mediasoup::pipe_transport::{PipeTransportOptions, PipeTransportRemoteParameters};
use mediasoup::plain_transport::{PlainTransportOptions, PlainTransportRemoteParameters};
use mediasoup::prelude::WebRtcMessage;
use mediasoup::prelude::{ListenInfo, RouterOptions, WebRtcTransportRemoteParameters};
use mediasoup::producer::ProducerId;
use mediasoup::rtp_observer::RtpObserverAddProducerOptions;
use mediasoup::webrtc_transport::{WebRtcTransportListenInfos, WebRtcTransportOptions};
use mediasoup::worker::{WorkerLogLevel, WorkerLogTag, WorkerUpdateSettings};
use serde::Serialize;
use std::borrow::Cow;
use std::num::NonZeroU16;
use std::sync::{Arc, Mutex, Weak};

/// Listen infos a caller's WebRTC transport may have (a socket each).
const MAX_LISTEN_INFOS: usize = 4;

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
    let new = |held: Held, handlers: Vec<HandlerId>, place: Place, counted: Option<CellUse>| {
        let handle = session.next_handle();
        lock(&session.objects).insert(handle, Entry { held, place, _handlers: handlers, _counted: counted });
        handle
    };
    match op {
        Op::CreateRouter { media_codecs, room, token, .. } => {
            let Held::Worker(worker) = &held else { return Err(wrong("create_router", &held)) };
            let grant = match token {
                Some(token) => router_grant(session, host, token, room.clone())?,
                None => None,
            };
            let real = worker.create_router(RouterOptions::new(unpack(&media_codecs)?)).await.map_err(failed)?;
            let info = ObjectInfo::Router { id: real.id(), rtp_capabilities: real.rtp_capabilities() };
            let router = Some(real.id().to_string());
            let cell = host.cells().into_iter().find(|c| c.worker_id() == worker.id() && !c.is_closed());
            let counted = cell.as_ref().map(|c| CellUse::Router(c.router_here(real.id())));
            let cell = cell.map(|c| (c, Arc::new(Counts::default())));
            let handle = new(Held::Router(real), Vec::new(), Place { room, router, grant, cell }, counted);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::WorkerDump { .. } => match &held {
            Held::Worker(worker) => {
                let mut dump = worker.dump().await.map_err(failed)?;
                own_objects_only(session, &mut dump);
                packed(&dump)
            }
            _ => Err(wrong("dump", &held)),
        },
        Op::UpdateSettings { log_level, log_tags, .. } => {
            let Held::Worker(worker) = &held else { return Err(wrong("update_settings", &held)) };
            let mut settings = WorkerUpdateSettings::default();
            settings.log_level = log_level.as_deref().map(log_level_of);
            settings.log_tags = log_tags.map(|tags| tags.iter().filter_map(|t| log_tag_of(t)).collect());
            worker.update_settings(settings).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::CapabilitiesFor { media_codecs, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("update_media_codecs", &held)) };
            let caps = real.capabilities_for(unpack(&media_codecs)?).await.map_err(failed)?;
            Ok(Reply::Capabilities(Payload::new(&caps)))
        }
        Op::CreateWebRtcTransport { options, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_webrtc_transport", &held)) };
            let wire = unpack(&options)?;
            if wire.listen_infos.len() > MAX_LISTEN_INFOS {
                return Err(WireError::BadRequest(format!("at most {MAX_LISTEN_INFOS} listen infos")));
            }
            let infos: Vec<ListenInfo> = wire.listen_infos.into_iter().map(|i| shared.media_listen(i)).collect();
            let infos = WebRtcTransportListenInfos::try_from(infos)
                .map_err(|_| WireError::BadRequest("no listen info".into()))?;
            let mut full = WebRtcTransportOptions::new(infos.clone());
            full.enable_bwe = wire.bitrate.enable_bwe;
            full.initial_available_outgoing_bitrate = wire.bitrate.initial_available_outgoing_bitrate;
            full.max_incoming_bitrate = wire.bitrate.max_incoming_bitrate;
            full.max_outgoing_bitrate = wire.bitrate.max_outgoing_bitrate;
            full.min_outgoing_bitrate = wire.bitrate.min_outgoing_bitrate;
            full.enable_udp = wire.enable_udp;
            full.enable_tcp = wire.enable_tcp;
            full.prefer_udp = wire.prefer_udp;
            full.prefer_tcp = wire.prefer_tcp;
            full.ice_consent_timeout = wire.ice_consent_timeout;
            apply_sctp_wire!(full, wire.sctp);
            let settings = WebRtcTransportSettings::of(&full);
            let t = real.create_webrtc_transport(WebRtcListen::Individual(infos), settings).await.map_err(failed)?;
            let info = ObjectInfo::WebRtcTransport(WebRtcInfo {
                id: t.id(),
                ice_role: t.ice_role(),
                ice_parameters: t.ice_parameters(),
                ice_candidates: t.ice_candidates(),
                ice_state: t.ice_state(),
                ice_selected_tuple: t.ice_selected_tuple(),
                dtls_parameters: t.dtls_parameters(),
                dtls_state: t.dtls_state(),
                dtls_remote_cert: t.dtls_remote_cert(),
                sctp: sctp_info_of!(t),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_transport(&events, t.as_ref());
            let e = events.clone();
            handlers.push(t.on_ice_state_change(Arc::new(move |s| e.emit(Event::IceState(Payload::new(&s))))));
            let e = events.clone();
            handlers.push(
                t.on_ice_selected_tuple_change(Arc::new(move |s| e.emit(Event::IceSelectedTuple(Payload::new(s))))),
            );
            let e = events.clone();
            handlers.push(t.on_dtls_state_change(Arc::new(move |s| e.emit(Event::DtlsState(Payload::new(&s))))));
            let e = events.clone();
            handlers.push(t.on_sctp_state_change(Arc::new(move |s| e.emit(Event::SctpState(Payload::new(&s))))));
            insert_counted(session, handle, Held::WebRtc(t), handlers, &place, Some(Count::Transport));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreatePlainTransport { options, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_plain_transport", &held)) };
            let wire = unpack(&options)?;
            if wire.comedia && !shared.options.limits.connect_to.is_empty() {
                // comedia sends to whoever sent first: no destination to check against connect_to.
                return Err(WireError::Denied("comedia transports are off while [serve] connect_to is set".into()));
            }
            let mut full = PlainTransportOptions::new(shared.media_listen(wire.listen_info));
            full.rtcp_listen_info = wire.rtcp_listen_info.map(|i| shared.media_listen(i));
            full.rtcp_mux = wire.rtcp_mux;
            full.comedia = wire.comedia;
            full.enable_bwe = wire.bitrate.enable_bwe;
            full.initial_available_outgoing_bitrate = wire.bitrate.initial_available_outgoing_bitrate;
            full.max_incoming_bitrate = wire.bitrate.max_incoming_bitrate;
            full.max_outgoing_bitrate = wire.bitrate.max_outgoing_bitrate;
            full.min_outgoing_bitrate = wire.bitrate.min_outgoing_bitrate;
            apply_sctp_wire!(full, wire.sctp);
            full.enable_srtp = wire.enable_srtp;
            full.srtp_crypto_suite = wire.srtp_crypto_suite;
            let t = real.create_plain_transport(full).await.map_err(failed)?;
            let info = ObjectInfo::PlainTransport(TupleTransportInfo {
                id: t.id(),
                tuple: t.tuple(),
                rtcp_tuple: t.rtcp_tuple(),
                sctp: sctp_info_of!(t),
                srtp_parameters: t.srtp_parameters(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_transport(&events, t.as_ref());
            let e = events.clone();
            handlers.push(t.on_tuple(Arc::new(move |s| e.emit(Event::Tuple(Payload::new(s))))));
            let e = events.clone();
            handlers.push(t.on_rtcp_tuple(Arc::new(move |s| e.emit(Event::RtcpTuple(Payload::new(s))))));
            let e = events.clone();
            handlers.push(t.on_sctp_state_change(Arc::new(move |s| e.emit(Event::SctpState(Payload::new(&s))))));
            insert_counted(session, handle, Held::Plain(t), handlers, &place, Some(Count::Transport));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreatePipeTransport { options, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_pipe_transport", &held)) };
            let wire = unpack(&options)?;
            let mut full = PipeTransportOptions::new(shared.media_listen(wire.listen_info));
            apply_sctp_wire!(full, wire.sctp);
            full.enable_rtx = wire.enable_rtx;
            full.enable_srtp = wire.enable_srtp;
            let t = real.create_pipe_transport(full).await.map_err(failed)?;
            let info = ObjectInfo::PipeTransport(TupleTransportInfo {
                id: t.id(),
                tuple: t.tuple(),
                rtcp_tuple: None,
                sctp: sctp_info_of!(t),
                srtp_parameters: t.srtp_parameters(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_transport(&events, t.as_ref());
            let e = events.clone();
            handlers.push(t.on_tuple(Arc::new(move |s| e.emit(Event::Tuple(Payload::new(s))))));
            let e = events.clone();
            handlers.push(t.on_sctp_state_change(Arc::new(move |s| e.emit(Event::SctpState(Payload::new(&s))))));
            insert_counted(session, handle, Held::Pipe(t), handlers, &place, Some(Count::Transport));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreateDirectTransport { max_send_message_size, max_receive_message_size, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_direct_transport", &held)) };
            let mut options = DirectTransportOptions::default();
            options.max_send_message_size = max_send_message_size;
            options.max_receive_message_size = max_receive_message_size;
            let t = real.create_direct_transport(options).await.map_err(failed)?;
            let info = ObjectInfo::DirectTransport { id: t.id() };
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_transport(&events, t.as_ref());
            let e = events.clone();
            handlers.push(t.on_rtcp(Arc::new(move |p| e.emit(Event::Rtcp(p.to_vec())))));
            insert_counted(session, handle, Held::Direct(t), handlers, &place, Some(Count::Transport));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreateAudioLevelObserver { max_entries, threshold, interval, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_audio_level_observer", &held)) };
            let mut options = AudioLevelObserverOptions::default();
            options.max_entries =
                NonZeroU16::new(max_entries).ok_or(WireError::BadRequest("max_entries is 0".into()))?;
            options.threshold = threshold;
            options.interval = interval;
            let o = real.create_audio_level_observer(options).await.map_err(failed)?;
            let info = ObjectInfo::Observer { id: o.id(), paused: o.paused() };
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_observer(&events, o.as_ref());
            let e = events.clone();
            handlers.push(o.on_volumes(Arc::new(move |v| {
                e.emit(Event::Volumes(v.iter().map(|v| (Payload::new(&v.producer_id), v.volume)).collect()))
            })));
            let e = events.clone();
            handlers.push(o.on_silence(Arc::new(move || e.emit(Event::Silence))));
            insert(session, handle, Held::AudioLevel(o), handlers, &place);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::CreateActiveSpeakerObserver { interval, .. } => {
            let Held::Router(real) = &held else { return Err(wrong("create_active_speaker_observer", &held)) };
            let mut options = ActiveSpeakerObserverOptions::default();
            options.interval = interval;
            let o = real.create_active_speaker_observer(options).await.map_err(failed)?;
            let info = ObjectInfo::Observer { id: o.id(), paused: o.paused() };
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = watch_observer(&events, o.as_ref());
            let e = events.clone();
            handlers.push(o.on_dominant_speaker(Arc::new(move |id| e.emit(Event::DominantSpeaker(Payload::new(id))))));
            insert(session, handle, Held::ActiveSpeaker(o), handlers, &place);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::Connect { params, .. } => {
            let params = unpack(&params)?;
            if let Some(to) = destination {
                shared.options.limits.may_connect_to(to.ip).map_err(WireError::Denied)?;
            }
            // mediasoup is given the address the plugin and `connect_to` saw (mapped IPv4 as IPv4).
            let params = match params {
                ConnectParams::Plain { ip, port, rtcp_port, srtp_parameters } => {
                    ConnectParams::Plain { ip: ip.map(|ip| ip.to_canonical()), port, rtcp_port, srtp_parameters }
                }
                ConnectParams::Pipe { ip, port, srtp_parameters } => {
                    ConnectParams::Pipe { ip: ip.to_canonical(), port, srtp_parameters }
                }
                webrtc => webrtc,
            };
            match (params, &held) {
                (ConnectParams::WebRtc { dtls_parameters }, Held::WebRtc(t)) => {
                    t.connect(WebRtcTransportRemoteParameters { dtls_parameters }).await.map_err(failed)?;
                    Ok(Reply::Done)
                }
                // The state connect changes goes back with the reply: the tuple's remote half,
                // the RTCP tuple and the SRTP parameters the transport now uses.
                (ConnectParams::Plain { ip, port, rtcp_port, srtp_parameters }, Held::Plain(t)) => {
                    t.connect(PlainTransportRemoteParameters { ip, port, rtcp_port, srtp_parameters })
                        .await
                        .map_err(failed)?;
                    packed(&Connected {
                        tuple: t.tuple(),
                        rtcp_tuple: t.rtcp_tuple(),
                        srtp_parameters: t.srtp_parameters(),
                    })
                }
                (ConnectParams::Pipe { ip, port, srtp_parameters }, Held::Pipe(t)) => {
                    t.connect(PipeTransportRemoteParameters { ip, port, srtp_parameters }).await.map_err(failed)?;
                    packed(&Connected { tuple: t.tuple(), rtcp_tuple: None, srtp_parameters: t.srtp_parameters() })
                }
                _ => Err(wrong("these connect parameters", &held)),
            }
        }
        Op::SetMaxIncomingBitrate { bitrate, .. } => {
            match &held {
                Held::WebRtc(t) => t.set_max_incoming_bitrate(bitrate).await,
                Held::Plain(t) => t.set_max_incoming_bitrate(bitrate).await,
                Held::Pipe(t) => t.set_max_incoming_bitrate(bitrate).await,
                _ => return Err(wrong("set_max_incoming_bitrate", &held)),
            }
            .map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetMaxOutgoingBitrate { bitrate, .. } => {
            let Held::WebRtc(t) = &held else { return Err(wrong("set_max_outgoing_bitrate", &held)) };
            t.set_max_outgoing_bitrate(bitrate).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetMinOutgoingBitrate { bitrate, .. } => {
            let Held::WebRtc(t) = &held else { return Err(wrong("set_min_outgoing_bitrate", &held)) };
            t.set_min_outgoing_bitrate(bitrate).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RestartIce { .. } => {
            let Held::WebRtc(t) = &held else { return Err(wrong("restart_ice", &held)) };
            Ok(Reply::Ice(Payload::new(&t.restart_ice().await.map_err(failed)?)))
        }
        Op::Produce { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("produce", &held))?;
            let wire = unpack(&options)?;
            let mut full = match wire.id {
                Some(id) => ProducerOptions::new_pipe_transport(id, wire.kind, wire.rtp_parameters),
                None => ProducerOptions::new(wire.kind, wire.rtp_parameters),
            };
            full.paused = wire.paused;
            full.key_frame_request_delay = wire.key_frame_request_delay;
            full.enable_mediasoup_packet_id_header_extension = wire.enable_mediasoup_packet_id_header_extension;
            let p = transport.produce(full).await.map_err(refusals::of_produce)?;
            let info = ObjectInfo::Producer(ProducerInfo {
                id: p.id(),
                kind: p.kind(),
                rtp_parameters: p.rtp_parameters(),
                consumable_rtp_parameters: p.consumable_rtp_parameters(),
                r#type: p.r#type(),
                is_direct: p.is_direct(),
                paused: p.paused(),
                score: p.score(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let e = events.clone();
            let mut handlers = vec![p.on_close(Box::new(move || e.closed()))];
            let e = events.clone();
            handlers.push(p.on_pause(Arc::new(move || e.emit(Event::Paused))));
            let e = events.clone();
            handlers.push(p.on_resume(Arc::new(move || e.emit(Event::Resumed))));
            let e = events.clone();
            handlers.push(p.on_score(Arc::new(move |s| e.emit(Event::ProducerScore(Payload::new(&s.to_vec()))))));
            insert_counted(session, handle, Held::Producer(p), handlers, &place, Some(Count::Producer));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::Consume { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("consume", &held))?;
            let wire = unpack(&options)?;
            let mut full = ConsumerOptions::new(wire.producer_id, wire.rtp_capabilities);
            full.paused = wire.paused;
            full.mid = wire.mid;
            full.preferred_layers = wire.preferred_layers;
            full.enable_rtx = wire.enable_rtx;
            full.ignore_dtx = wire.ignore_dtx;
            full.pipe = wire.pipe;
            let c = transport.consume(full).await.map_err(refusals::of_consume)?;
            let info = ObjectInfo::Consumer(ConsumerInfo {
                id: c.id(),
                kind: c.kind(),
                rtp_parameters: c.rtp_parameters(),
                r#type: c.r#type(),
                paused: c.paused(),
                producer_paused: c.producer_paused(),
                priority: c.priority(),
                score: c.score(),
                preferred_layers: c.preferred_layers(),
                current_layers: c.current_layers(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = Vec::new();
            let e = events.clone();
            handlers.push(c.on_close(Box::new(move || e.closed())));
            let e = events.clone();
            handlers.push(c.on_producer_close(Box::new(move || e.emit(Event::ProducerClosed))));
            for event in [Event::Paused, Event::Resumed, Event::ProducerPaused, Event::ProducerResumed] {
                let (e, sent) = (events.clone(), event.clone());
                let callback: Callback = Arc::new(move || e.emit(sent.clone()));
                handlers.push(match event {
                    Event::Paused => c.on_pause(callback),
                    Event::Resumed => c.on_resume(callback),
                    Event::ProducerPaused => c.on_producer_pause(callback),
                    _ => c.on_producer_resume(callback),
                });
            }
            let e = events.clone();
            handlers.push(c.on_score(Arc::new(move |s| e.emit(Event::ConsumerScore(Payload::new(s))))));
            let e = events.clone();
            handlers.push(c.on_layers_change(Arc::new(move |l| e.emit(Event::Layers(Payload::new(l))))));
            if matches!(held, Held::Direct(_)) {
                let e = events.clone();
                handlers.push(c.on_rtp(Arc::new(move |p| e.emit(Event::Rtp(p.to_vec())))));
            }
            insert_counted(session, handle, Held::Consumer(c), handlers, &place, Some(Count::Consumer));
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::ProduceData { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("produce_data", &held))?;
            let wire = unpack(&options)?;
            let mut full = match (wire.id, wire.sctp) {
                (Some(id), Some(sctp)) => DataProducerOptions::new_pipe_transport(id, sctp.parameters()),
                (_, Some(sctp)) => DataProducerOptions::new_sctp(sctp.parameters()),
                _ => DataProducerOptions::new_direct(),
            };
            full.label = wire.label;
            full.protocol = wire.protocol;
            full.paused = wire.paused;
            let p = transport.produce_data(full).await.map_err(refusals::of_produce_data)?;
            let info = ObjectInfo::DataProducer(DataProducerInfo {
                id: p.id(),
                r#type: p.r#type(),
                sctp_stream_parameters: p.sctp_stream_parameters().as_ref().map(SctpStreamWire::of),
                label: p.label(),
                protocol: p.protocol(),
                paused: p.paused(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let e = events.clone();
            let mut handlers = vec![p.on_close(Box::new(move || e.closed()))];
            let e = events.clone();
            handlers.push(p.on_pause(Arc::new(move || e.emit(Event::Paused))));
            let e = events.clone();
            handlers.push(p.on_resume(Arc::new(move || e.emit(Event::Resumed))));
            insert(session, handle, Held::DataProducer(p), handlers, &place);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::ConsumeData { options, .. } => {
            let transport = held.transport().ok_or_else(|| wrong("consume_data", &held))?;
            let wire = unpack(&options)?;
            let id = wire.data_producer_id;
            let direct = matches!(held, Held::Direct(_));
            let mut full = match (direct, wire.ordered, wire.max_packet_life_time, wire.max_retransmits) {
                (true, ..) => DataConsumerOptions::new_direct(id, wire.subchannels.clone()),
                (false, _, Some(life), _) => DataConsumerOptions::new_sctp_unordered_with_life_time(id, life),
                (false, _, None, Some(n)) => DataConsumerOptions::new_sctp_unordered_with_retransmits(id, n),
                (false, Some(true), None, None) => DataConsumerOptions::new_sctp_ordered(id),
                (false, _, None, None) => DataConsumerOptions::new_sctp(id),
            };
            full.paused = wire.paused;
            full.subchannels = wire.subchannels;
            let c = transport.consume_data(full).await.map_err(refusals::of_consume_data)?;
            let info = ObjectInfo::DataConsumer(DataConsumerInfo {
                id: c.id(),
                r#type: c.r#type(),
                sctp_stream_parameters: c.sctp_stream_parameters().as_ref().map(SctpStreamWire::of),
                label: c.label(),
                protocol: c.protocol(),
                paused: c.paused(),
                producer_paused: c.producer_paused(),
                subchannels: c.subchannels(),
            });
            let handle = session.next_handle();
            let events = Emitter::new(session, handle);
            let mut handlers = Vec::new();
            let e = events.clone();
            handlers.push(c.on_close(Box::new(move || e.closed())));
            let e = events.clone();
            handlers.push(c.on_data_producer_close(Box::new(move || e.emit(Event::ProducerClosed))));
            for event in [
                Event::Paused,
                Event::Resumed,
                Event::ProducerPaused,
                Event::ProducerResumed,
                Event::SctpSendBufferFull,
            ] {
                let (e, sent) = (events.clone(), event.clone());
                let callback: Callback = Arc::new(move || e.emit(sent.clone()));
                handlers.push(match event {
                    Event::Paused => c.on_pause(callback),
                    Event::Resumed => c.on_resume(callback),
                    Event::ProducerPaused => c.on_data_producer_pause(callback),
                    Event::ProducerResumed => c.on_data_producer_resume(callback),
                    _ => c.on_sctp_send_buffer_full(callback),
                });
            }
            let e = events.clone();
            handlers.push(c.on_buffered_amount_low(Arc::new(move |n| e.emit(Event::BufferedAmountLow(n)))));
            let e = events.clone();
            handlers.push(c.on_message(Arc::new(move |message| {
                let (ppid, payload) = message.clone().into_ppid_and_payload();
                e.emit(Event::DataMessage { ppid, payload: payload.into_owned() });
            })));
            insert(session, handle, Held::DataConsumer(c), handlers, &place);
            Ok(Reply::Created { handle, info: Payload::new(&info) })
        }
        Op::SendToDataConsumer { ppid, payload, .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("send", &held)) };
            let message = WebRtcMessage::new(ppid, Cow::Owned(payload))
                .map_err(|ppid| WireError::BadRequest(format!("unknown PPID {ppid}")))?;
            Ok(Reply::Number(c.send(message).await.map_err(failed)?))
        }
        Op::GetBufferedAmount { .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("get_buffered_amount", &held)) };
            Ok(Reply::Number(c.get_buffered_amount().await.map_err(failed)?))
        }
        Op::SetBufferedAmountLowThreshold { threshold, .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("set_buffered_amount_low_threshold", &held)) };
            c.set_buffered_amount_low_threshold(threshold).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetSubchannels { subchannels, .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("set_subchannels", &held)) };
            c.set_subchannels(subchannels).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::AddSubchannel { subchannel, .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("add_subchannel", &held)) };
            c.add_subchannel(subchannel).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RemoveSubchannel { subchannel, .. } => {
            let Held::DataConsumer(c) = &held else { return Err(wrong("remove_subchannel", &held)) };
            c.remove_subchannel(subchannel).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SendRtp { .. } | Op::SendRtcp { .. } | Op::SendData { .. } | Op::Close { .. } => {
            handle_immediate(host, session, op)
        }
        // Carried out before any object lookup (it may name none).
        Op::Refresh { .. } => Err(WireError::BadRequest("a refresh names the session, not an object".into())),
        Op::SetPreferredLayers { layers, .. } => {
            let Held::Consumer(c) = &held else { return Err(wrong("set_preferred_layers", &held)) };
            c.set_preferred_layers(unpack(&layers)?).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::SetPriority { priority, .. } => {
            let Held::Consumer(c) = &held else { return Err(wrong("set_priority", &held)) };
            match priority {
                Some(priority) => c.set_priority(priority).await,
                None => c.unset_priority().await,
            }
            .map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RequestKeyFrame { .. } => {
            let Held::Consumer(c) = &held else { return Err(wrong("request_key_frame", &held)) };
            c.request_key_frame().await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::AddProducer { producer_id, .. } => {
            let o = held.observer().ok_or_else(|| wrong("add_producer", &held))?;
            let producer_id: ProducerId = unpack(&producer_id)?;
            o.add_producer(RtpObserverAddProducerOptions::new(producer_id)).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::RemoveProducer { producer_id, .. } => {
            let o = held.observer().ok_or_else(|| wrong("remove_producer", &held))?;
            o.remove_producer(unpack(&producer_id)?).await.map_err(failed)?;
            Ok(Reply::Done)
        }
        Op::Pause { .. } | Op::Resume { .. } => {
            let pause = matches!(op, Op::Pause { .. });
            match (&held, pause) {
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
        Op::Dump { .. } => match &held {
            Held::Worker(w) => {
                let mut dump = w.dump().await.map_err(failed)?;
                own_objects_only(session, &mut dump);
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
            other => Err(wrong("dump", other)),
        },
        Op::GetStats { .. } => match &held {
            Held::WebRtc(t) => packed(&t.get_stats().await.map_err(failed)?),
            Held::Plain(t) => packed(&t.get_stats().await.map_err(failed)?),
            Held::Pipe(t) => packed(&t.get_stats().await.map_err(failed)?),
            Held::Direct(t) => packed(&t.get_stats().await.map_err(failed)?),
            Held::Producer(p) => packed(&p.get_stats().await.map_err(failed)?),
            Held::Consumer(c) => packed(&c.get_stats().await.map_err(failed)?),
            Held::DataProducer(p) => packed(&p.get_stats().await.map_err(failed)?),
            Held::DataConsumer(c) => packed(&c.get_stats().await.map_err(failed)?),
            other => Err(wrong("get_stats", other)),
        },
    }
}

fn insert(session: &Arc<Session>, handle: Handle, held: Held, handlers: Vec<HandlerId>, place: &Place) {
    insert_counted(session, handle, held, handlers, place, None);
}

/// [`insert`] of an object counted as `count` in its cell.
fn insert_counted(
    session: &Arc<Session>,
    handle: Handle,
    held: Held,
    handlers: Vec<HandlerId>,
    place: &Place,
    count: Option<Count>,
) {
    let counted = count.and_then(|count| place.count(count));
    lock(&session.objects).insert(handle, Entry { held, place: place.clone(), _handlers: handlers, _counted: counted });
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

/// Leaves in a worker's dump only what belongs to `session` (the worker is shared with other
/// sessions, whose object ids are not this caller's business).
fn own_objects_only(session: &Session, dump: &mut mediasoup::worker::WorkerDump) {
    let own: std::collections::HashSet<String> =
        lock(&session.objects).values().filter_map(|entry| entry.held.id()).collect();
    dump.router_ids.retain(|id| own.contains(&id.to_string()));
    dump.webrtc_server_ids.retain(|id| own.contains(&id.to_string()));
    let handlers = &mut dump.channel_message_handlers;
    handlers.channel_request_handlers.retain(|id| own.contains(&id.to_string()));
    handlers.channel_notification_handlers.retain(|id| own.contains(&id.to_string()));
}

fn log_level_of(text: &str) -> WorkerLogLevel {
    match text {
        "Debug" => WorkerLogLevel::Debug,
        "Warn" => WorkerLogLevel::Warn,
        "Error" => WorkerLogLevel::Error,
        _ => WorkerLogLevel::None,
    }
}

fn log_tag_of(text: &str) -> Option<WorkerLogTag> {
    use WorkerLogTag::*;
    [Info, Ice, Dtls, Rtp, Srtp, Rtcp, Rtx, Bwe, Score, Simulcast, Svc, Sctp, Message]
        .into_iter()
        .find(|tag| format!("{tag:?}") == text)
}

/// Sends the events of one object to its session (if the session still exists).
#[derive(Clone)]
struct Emitter {
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

    /// The object closed on this host: tell the caller and forget it.
    fn closed(&self) {
        if let Some(session) = self.session.upgrade() {
            session.emit(self.handle, Event::Closed);
            session.remove_later(self.handle);
        }
    }
}

fn watch_transport(events: &Emitter, transport: &dyn TransportBackend) -> Vec<HandlerId> {
    let e = events.clone();
    vec![transport.on_close(Box::new(move || e.closed()))]
}

fn watch_observer(events: &Emitter, observer: &dyn RtpObserverBackend) -> Vec<HandlerId> {
    let mut handlers = Vec::new();
    let e = events.clone();
    handlers.push(observer.on_close(Box::new(move || e.closed())));
    let e = events.clone();
    handlers.push(observer.on_pause(Arc::new(move || e.emit(Event::Paused))));
    let e = events.clone();
    handlers.push(observer.on_resume(Arc::new(move || e.emit(Event::Resumed))));
    let e = events.clone();
    handlers.push(observer.on_add_producer(Arc::new(move |id| e.emit(Event::ObserverAdded(Payload::new(id))))));
    let e = events.clone();
    handlers.push(observer.on_remove_producer(Arc::new(move |id| e.emit(Event::ObserverRemoved(Payload::new(id))))));
    handlers
}
