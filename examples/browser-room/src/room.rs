//! Rooms: one mediasoup router each, the peers in it, and what the server does for each
//! request of a page. Written against mediasoup's API only (mafalda's extensions are in
//! `stats.rs`).

use crate::peer::{OwnProducer, OwnTransport, Peer};
use crate::signal::{ClientRequest, Notification, ServerRequest};
use mediasoup::prelude::*;
use mediasoup::types::rtp_parameters::RtpCodecParametersParameters;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroU8};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use tokio::runtime::Handle;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where WebRTC transports listen.
#[derive(Debug, Clone)]
pub struct MediaListen {
    /// Local IP the transports bind.
    pub ip: IpAddr,
    /// Address put in ICE candidates instead of `ip` (public IP or host name).
    pub announced_address: Option<String>,
}

impl MediaListen {
    /// A listen info of `protocol` on this IP, at `port` (any free port when `None`).
    pub fn info(&self, protocol: Protocol, port: Option<u16>) -> ListenInfo {
        ListenInfo {
            protocol,
            ip: self.ip,
            announced_address: self.announced_address.clone(),
            expose_internal_ip: false,
            port,
            port_range: None,
            flags: None,
            send_buffer_size: None,
            recv_buffer_size: None,
        }
    }
}

/// The codecs every room's router offers: Opus and VP8 (simulcast-capable, with RTCP feedback).
fn media_codecs() -> Vec<RtpCodecCapability> {
    let non_zero = |n| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    vec![
        RtpCodecCapability::Audio {
            mime_type: MimeTypeAudio::Opus,
            preferred_payload_type: None,
            clock_rate: non_zero(48_000),
            channels: NonZeroU8::new(2).unwrap_or(NonZeroU8::MIN),
            parameters: RtpCodecParametersParameters::from([("useinbandfec", 1_u32.into())]),
            rtcp_feedback: vec![RtcpFeedback::TransportCc],
        },
        RtpCodecCapability::Video {
            mime_type: MimeTypeVideo::Vp8,
            preferred_payload_type: None,
            clock_rate: non_zero(90_000),
            parameters: RtpCodecParametersParameters::default(),
            rtcp_feedback: vec![
                RtcpFeedback::Nack,
                RtcpFeedback::NackPli,
                RtcpFeedback::CcmFir,
                RtcpFeedback::GoogRemb,
                RtcpFeedback::TransportCc,
            ],
        },
    ]
}

/// Work that follows a request once its response was sent (so that the page sees the response
/// before the consumers it causes).
pub enum FollowUp {
    /// The peer joined: it consumes everything the others produce, and they learn of it.
    Joined,
    /// The peer produced a track: every other joined peer consumes it.
    Produced(ProducerId),
    /// The peer produced a data channel: every other joined peer consumes it.
    ProducedData(DataProducerId),
}

/// What the server shares between rooms.
pub struct Rooms {
    worker: Worker,
    webrtc_server: Option<WebRtcServer>,
    listen: MediaListen,
    runtime: Handle,
    rooms: Mutex<HashMap<String, Arc<Room>>>,
    creating: tokio::sync::Mutex<()>,
}

impl Rooms {
    /// Rooms on `worker`; transports share `webrtc_server`'s ports when given, else each listens
    /// on its own port on `listen`.
    pub fn new(worker: Worker, webrtc_server: Option<WebRtcServer>, listen: MediaListen) -> Self {
        Self {
            worker,
            webrtc_server,
            listen,
            runtime: Handle::current(),
            rooms: Mutex::default(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// The worker rooms are created on.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The room called `id`, created (with its router) on first use.
    pub async fn room(self: &Arc<Self>, id: &str) -> Result<Arc<Room>, String> {
        if let Some(room) = lock(&self.rooms).get(id) {
            return Ok(Arc::clone(room));
        }
        let _serial = self.creating.lock().await;
        if let Some(room) = lock(&self.rooms).get(id) {
            return Ok(Arc::clone(room));
        }
        let router = self
            .worker
            .create_router(RouterOptions::new(media_codecs()))
            .await
            .map_err(|e| format!("creating the router of room {id}: {e}"))?;
        tracing::info!(room = id, router = %router.id(), "room opened");
        let room = Arc::new(Room { id: id.to_owned(), router, rooms: Arc::downgrade(self), peers: Mutex::default() });
        lock(&self.rooms).insert(id.to_owned(), Arc::clone(&room));
        Ok(room)
    }

    /// Every open room.
    pub fn all(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<_> = lock(&self.rooms).values().cloned().collect();
        rooms.sort_by(|a, b| a.id.cmp(&b.id));
        rooms
    }

    /// The open room called `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Room>> {
        lock(&self.rooms).get(id).cloned()
    }

    fn close_if_empty(&self, room: &Room) {
        let mut rooms = lock(&self.rooms);
        if lock(&room.peers).is_empty() && rooms.get(&room.id).is_some_and(|r| std::ptr::eq(&**r, room)) {
            rooms.remove(&room.id);
            tracing::info!(room = %room.id, "room closed");
        }
    }
}

/// One room.
pub struct Room {
    /// Its name.
    pub id: String,
    /// Its router (closed when the room is dropped).
    pub router: Router,
    rooms: Weak<Rooms>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
}

impl Room {
    /// Its peers, by id.
    pub fn peers(&self) -> Vec<Arc<Peer>> {
        let mut peers: Vec<_> = lock(&self.peers).values().cloned().collect();
        peers.sort_by(|a, b| a.id.cmp(&b.id));
        peers
    }

    fn others(&self, id: &str) -> Vec<Arc<Peer>> {
        self.peers().into_iter().filter(|p| p.id != id).collect()
    }

    /// Admits a peer; refused while a peer with the same id is connected.
    pub fn enter(&self, peer: Arc<Peer>) -> Result<(), String> {
        let mut peers = lock(&self.peers);
        if peers.contains_key(&peer.id) {
            return Err(format!("peer id {} is already in room {}", peer.id, self.id));
        }
        peers.insert(peer.id.clone(), peer);
        Ok(())
    }

    /// The peer left (its socket closed): everything it owned is closed, so the others'
    /// consumers of its tracks close too; the others are told.
    pub fn leave(&self, peer: &Peer) {
        self.remove(peer);
    }

    /// A transport of `peer` lost its router (the worker serving it died): the peer leaves the
    /// room and its page is told to join again (once, whichever of its transports tells first).
    fn evict(&self, peer: &Peer, reason: &str) {
        if self.remove(peer) {
            tracing::warn!(room = %self.id, peer = %peer.id, reason, "peer evicted: its page joins again");
            peer.notify(Notification::Reconnect { reason: reason.to_owned() });
        }
    }

    /// Removes `peer` (if it is still this room's): closes what it owned, tells the others.
    fn remove(&self, peer: &Peer) -> bool {
        let removed = {
            let mut peers = lock(&self.peers);
            match peers.get(&peer.id) {
                Some(p) if std::ptr::eq(&**p, peer) => peers.remove(&peer.id),
                _ => None,
            }
        };
        if removed.is_none() {
            return false;
        }
        let was_joined = peer.state().joined();
        drop(peer.leave());
        tracing::info!(room = %self.id, peer = %peer.id, "peer left");
        if was_joined {
            for other in self.others(&peer.id) {
                other.notify(Notification::PeerClosed { peer_id: peer.id.clone() });
            }
        }
        if let Some(rooms) = self.rooms.upgrade() {
            rooms.close_if_empty(self);
        }
        true
    }

    /// Carries out one request of `peer`'s page.
    pub async fn handle(&self, peer: &Arc<Peer>, request: ClientRequest) -> Result<(Value, Option<FollowUp>), String> {
        match request {
            ClientRequest::GetRouterRtpCapabilities {} => {
                let capabilities = self.router.rtp_capabilities();
                Ok((serde_json::to_value(capabilities).map_err(|e| e.to_string())?, None))
            }
            ClientRequest::CreateWebRtcTransport { producing, consuming, sctp_capabilities } => {
                self.create_transport(peer, producing, consuming, sctp_capabilities.is_some()).await.map(|v| (v, None))
            }
            ClientRequest::ConnectWebRtcTransport { transport_id, dtls_parameters } => {
                let transport = self.transport(peer, transport_id)?;
                transport
                    .connect(WebRtcTransportRemoteParameters { dtls_parameters })
                    .await
                    .map_err(|e| format!("connect: {e}"))?;
                Ok((json!({}), None))
            }
            ClientRequest::Join { display_name, rtp_capabilities } => {
                let others: Vec<Value> = {
                    let mut state = peer.state();
                    if state.rtp_capabilities.is_some() {
                        return Err("already joined".into());
                    }
                    state.display_name = Some(display_name);
                    state.rtp_capabilities = Some(rtp_capabilities);
                    self.others(&peer.id)
                        .iter()
                        .filter_map(|other| {
                            let other_state = other.state();
                            other_state
                                .joined()
                                .then(|| json!({"peerId": other.id, "displayName": other_state.display_name.clone()}))
                        })
                        .collect()
                };
                tracing::info!(room = %self.id, peer = %peer.id, "peer joined");
                Ok((json!({ "peers": others }), Some(FollowUp::Joined)))
            }
            ClientRequest::Produce { transport_id, kind, mut rtp_parameters, app_data } => {
                let transport = self.transport(peer, transport_id)?;
                // Chromium puts no CNAME in simulcast (rid-only) SDP, so mediasoup-client sends an
                // empty one; mediasoup's Node server then picks a CNAME, its Rust crate passes ""
                // to the worker, which refuses it. Treat empty as absent, as Node does.
                if rtp_parameters.rtcp.cname.as_deref() == Some("") {
                    rtp_parameters.rtcp.cname = None;
                }
                let producer = transport
                    .produce(ProducerOptions::new(kind, rtp_parameters))
                    .await
                    .map_err(|e| format!("produce: {e}"))?;
                let id = producer.id();
                tracing::info!(room = %self.id, peer = %peer.id, producer = %id, ?kind, "new producer");
                let mut state = peer.state();
                if state.left {
                    return Err("peer left".into());
                }
                state.producers.insert(id, OwnProducer { producer, app_data });
                Ok((json!({ "id": id }), Some(FollowUp::Produced(id))))
            }
            ClientRequest::ProduceData { transport_id, sctp_stream_parameters, label, protocol } => {
                let transport = self.transport(peer, transport_id)?;
                let mut options = DataProducerOptions::new_sctp(sctp_stream_parameters);
                options.label = label;
                options.protocol = protocol;
                let data_producer = transport.produce_data(options).await.map_err(|e| format!("produceData: {e}"))?;
                let id = data_producer.id();
                let mut state = peer.state();
                if state.left {
                    return Err("peer left".into());
                }
                state.data_producers.insert(id, data_producer);
                Ok((json!({ "id": id }), Some(FollowUp::ProducedData(id))))
            }
            ClientRequest::CloseProducer { producer_id } => {
                let closed = peer.state().producers.remove(&producer_id);
                closed.ok_or_else(|| format!("no producer {producer_id}"))?;
                Ok((json!({}), None))
            }
            ClientRequest::PauseProducer { producer_id } => {
                self.producer(peer, producer_id)?.pause().await.map_err(|e| e.to_string())?;
                Ok((json!({}), None))
            }
            ClientRequest::ResumeProducer { producer_id } => {
                self.producer(peer, producer_id)?.resume().await.map_err(|e| e.to_string())?;
                Ok((json!({}), None))
            }
            ClientRequest::SetConsumerPreferredLayers { consumer_id, spatial_layer, temporal_layer } => {
                let consumer = peer.state().consumers.get(&consumer_id).cloned();
                let consumer = consumer.ok_or_else(|| format!("no consumer {consumer_id}"))?;
                consumer
                    .set_preferred_layers(ConsumerLayers { spatial_layer, temporal_layer })
                    .await
                    .map_err(|e| e.to_string())?;
                Ok((json!({}), None))
            }
        }
    }

    /// Carries out what follows a request of `peer`, after its response was sent.
    pub async fn follow_up(&self, peer: &Arc<Peer>, follow_up: FollowUp) {
        match follow_up {
            FollowUp::Joined => {
                let display_name = peer.state().display_name.clone().unwrap_or_default();
                for other in self.others(&peer.id) {
                    if !other.state().joined() {
                        continue;
                    }
                    other
                        .notify(Notification::NewPeer { peer_id: peer.id.clone(), display_name: display_name.clone() });
                    let (producers, data_producers): (Vec<_>, Vec<_>) = {
                        let state = other.state();
                        (state.producers.keys().copied().collect(), state.data_producers.keys().copied().collect())
                    };
                    for producer_id in producers {
                        self.consume(peer, &other, producer_id).await;
                    }
                    for data_producer_id in data_producers {
                        self.consume_data(peer, &other, data_producer_id).await;
                    }
                }
            }
            FollowUp::Produced(producer_id) => {
                for other in self.others(&peer.id) {
                    self.consume(&other, peer, producer_id).await;
                }
            }
            FollowUp::ProducedData(data_producer_id) => {
                for other in self.others(&peer.id) {
                    self.consume_data(&other, peer, data_producer_id).await;
                }
            }
        }
    }

    async fn create_transport(
        &self,
        peer: &Arc<Peer>,
        producing: bool,
        consuming: bool,
        sctp: bool,
    ) -> Result<Value, String> {
        let rooms = self.rooms.upgrade().ok_or("server stopping")?;
        let mut options = match &rooms.webrtc_server {
            Some(server) => WebRtcTransportOptions::new_with_server(server.clone()),
            None => WebRtcTransportOptions::new(
                WebRtcTransportListenInfos::new(rooms.listen.info(Protocol::Udp, None))
                    .insert(rooms.listen.info(Protocol::Tcp, None)),
            ),
        };
        options.enable_sctp = sctp;
        options.prefer_udp = true;
        let transport =
            self.router.create_webrtc_transport(options).await.map_err(|e| format!("createWebRtcTransport: {e}"))?;
        let id = transport.id();
        let (room, peer_id) = (self.id.clone(), peer.id.clone());
        transport
            .on_dtls_state_change(move |state| {
                tracing::debug!(room, peer = peer_id, transport = %id, ?state, "DTLS state");
            })
            .detach();
        // The worker under the transport died (mediasoup closes its routers): the peer joins
        // again, placed afresh. Evicted on the runtime, not inside the worker's callback.
        let (me, who, runtime) =
            (rooms.get(&self.id).map(|r| Arc::downgrade(&r)), Arc::downgrade(peer), rooms.runtime.clone());
        transport
            .on_router_close(Box::new(move || {
                let (Some(room), Some(peer)) = (me.and_then(|r| r.upgrade()), who.upgrade()) else { return };
                drop(runtime.spawn(async move { room.evict(&peer, "the media worker serving this peer stopped") }));
            }))
            .detach();
        let answer = json!({
            "id": id,
            "iceParameters": transport.ice_parameters(),
            "iceCandidates": transport.ice_candidates(),
            "dtlsParameters": transport.dtls_parameters(),
            "sctpParameters": transport.sctp_parameters(),
        });
        let mut state = peer.state();
        if state.left {
            return Err("peer left".into());
        }
        state.transports.insert(id, OwnTransport { transport, consuming: consuming && !producing });
        Ok(answer)
    }

    fn transport(&self, peer: &Peer, id: TransportId) -> Result<WebRtcTransport, String> {
        peer.state().transports.get(&id).map(|t| t.transport.clone()).ok_or_else(|| format!("no transport {id}"))
    }

    fn producer(&self, peer: &Peer, id: ProducerId) -> Result<Producer, String> {
        peer.state().producers.get(&id).map(|p| p.producer.clone()).ok_or_else(|| format!("no producer {id}"))
    }

    /// `consumer_peer` consumes `producer_id` of `producer_peer`: created paused, the page is asked
    /// to create it, then it is resumed (so the page gets the first key frame).
    async fn consume(&self, consumer_peer: &Arc<Peer>, producer_peer: &Peer, producer_id: ProducerId) {
        if let Err(error) = self.try_consume(consumer_peer, producer_peer, producer_id).await {
            tracing::warn!(room = %self.id, peer = %consumer_peer.id, producer = %producer_id, %error, "consume failed");
        }
    }

    async fn try_consume(
        &self,
        consumer_peer: &Arc<Peer>,
        producer_peer: &Peer,
        producer_id: ProducerId,
    ) -> Result<(), String> {
        let (transport, capabilities) = {
            let mut state = consumer_peer.state();
            if !state.joined() || !state.consumed.insert(producer_id.to_string()) {
                return Ok(());
            }
            let transport = state.receive_transport().ok_or("no receive transport")?;
            (transport, state.rtp_capabilities.clone().ok_or("not joined")?)
        };
        let (producer, app_data) = {
            let state = producer_peer.state();
            let own = state.producers.get(&producer_id).ok_or("producer gone")?;
            (own.producer.clone(), own.app_data.clone())
        };
        if !self.router.can_consume(&producer_id, &capabilities) {
            return Err("the page cannot receive this codec".into());
        }
        let mut options = ConsumerOptions::new(producer_id, capabilities);
        options.paused = true;
        let consumer = transport.consume(options).await.map_err(|e| e.to_string())?;
        let id = consumer.id();
        self.watch_consumer(consumer_peer, &consumer);
        {
            let mut state = consumer_peer.state();
            if state.left {
                return Ok(());
            }
            state.consumers.insert(id, consumer.clone());
        }
        let asked = consumer_peer
            .request(ServerRequest::NewConsumer {
                peer_id: producer_peer.id.clone(),
                producer_id,
                id,
                kind: consumer.kind(),
                rtp_parameters: consumer.rtp_parameters().clone(),
                producer_paused: producer.paused(),
                app_data,
            })
            .await;
        if let Err(error) = asked {
            // The page may still create it later: tell it the consumer is gone.
            if consumer_peer.state().consumers.remove(&id).is_some() {
                consumer_peer.notify(Notification::ConsumerClosed { consumer_id: id });
            }
            return Err(error);
        }
        consumer.resume().await.map_err(|e| e.to_string())
    }

    /// Forwards a consumer's events to its page; forgets it once it closed.
    fn watch_consumer(&self, peer: &Arc<Peer>, consumer: &Consumer) {
        let id = consumer.id();
        let runtime = self.rooms.upgrade().map(|r| r.runtime.clone());
        let weak = Arc::downgrade(peer);
        consumer
            .on_close(move || {
                let Some(peer) = weak.upgrade() else { return };
                // Dropped on the runtime, not inside the worker's callback.
                let forget = move || {
                    let forgotten = peer.state().consumers.remove(&id);
                    if forgotten.is_some() {
                        peer.notify(Notification::ConsumerClosed { consumer_id: id });
                    }
                };
                match &runtime {
                    Some(runtime) => drop(runtime.spawn(async move { forget() })),
                    None => forget(),
                }
            })
            .detach();
        let weak = Arc::downgrade(peer);
        consumer
            .on_producer_pause(move || {
                if let Some(peer) = weak.upgrade() {
                    peer.notify(Notification::ConsumerPaused { consumer_id: id });
                }
            })
            .detach();
        let weak = Arc::downgrade(peer);
        consumer
            .on_producer_resume(move || {
                if let Some(peer) = weak.upgrade() {
                    peer.notify(Notification::ConsumerResumed { consumer_id: id });
                }
            })
            .detach();
        let weak = Arc::downgrade(peer);
        consumer
            .on_layers_change(move |layers| {
                if let Some(peer) = weak.upgrade() {
                    peer.notify(Notification::ConsumerLayersChanged {
                        consumer_id: id,
                        spatial_layer: layers.map(|l| l.spatial_layer),
                        temporal_layer: layers.and_then(|l| l.temporal_layer),
                    });
                }
            })
            .detach();
    }

    async fn consume_data(&self, consumer_peer: &Arc<Peer>, producer_peer: &Peer, data_producer_id: DataProducerId) {
        if let Err(error) = self.try_consume_data(consumer_peer, producer_peer, data_producer_id).await {
            tracing::warn!(room = %self.id, peer = %consumer_peer.id, %error, "consume data failed");
        }
    }

    async fn try_consume_data(
        &self,
        consumer_peer: &Arc<Peer>,
        producer_peer: &Peer,
        data_producer_id: DataProducerId,
    ) -> Result<(), String> {
        let transport = {
            let mut state = consumer_peer.state();
            if !state.joined() || !state.consumed.insert(data_producer_id.to_string()) {
                return Ok(());
            }
            state.receive_transport().ok_or("no receive transport")?
        };
        if transport.sctp_parameters().is_none() {
            return Ok(());
        }
        if !producer_peer.state().data_producers.contains_key(&data_producer_id) {
            return Ok(());
        }
        let data_consumer =
            transport.consume_data(DataConsumerOptions::new_sctp(data_producer_id)).await.map_err(|e| e.to_string())?;
        let id = data_consumer.id();
        let runtime = self.rooms.upgrade().map(|r| r.runtime.clone());
        let weak = Arc::downgrade(consumer_peer);
        data_consumer
            .on_close(move || {
                let Some(peer) = weak.upgrade() else { return };
                let forget = move || {
                    if peer.state().data_consumers.remove(&id).is_some() {
                        peer.notify(Notification::DataConsumerClosed { data_consumer_id: id });
                    }
                };
                match &runtime {
                    Some(runtime) => drop(runtime.spawn(async move { forget() })),
                    None => forget(),
                }
            })
            .detach();
        {
            let mut state = consumer_peer.state();
            if state.left {
                return Ok(());
            }
            state.data_consumers.insert(id, data_consumer.clone());
        }
        let asked = consumer_peer
            .request(ServerRequest::NewDataConsumer {
                peer_id: producer_peer.id.clone(),
                data_producer_id,
                id,
                sctp_stream_parameters: data_consumer.sctp_stream_parameters(),
                label: data_consumer.label().clone(),
                protocol: data_consumer.protocol().clone(),
            })
            .await;
        if asked.is_err() && consumer_peer.state().data_consumers.remove(&id).is_some() {
            consumer_peer.notify(Notification::DataConsumerClosed { data_consumer_id: id });
        }
        asked.map(drop)
    }
}
