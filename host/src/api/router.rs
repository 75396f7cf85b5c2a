//! The virtual [`Router`]: mediasoup's Router API over real routers in many cells. Transports
//! are placed by the placement engine; producers are piped on demand to the cells of their
//! consumers; `dump()` and stats merge the real routers.

pub use super::router_events::{CellLost, NewRtpObserver, NewTransport, PipeChange, PipeEvent};
pub use crate::internals::pipes::PipeSource;
pub use mediasoup::router::*;

use super::active_speaker_observer::ActiveSpeakerObserver;
use super::audio_level_observer::AudioLevelObserver;
use super::consumer::{Consumer, ConsumerInner};
use super::data_consumer::DataConsumer;
use super::data_producer::{NonClosingDataProducer, WeakDataProducer};
use super::direct_transport::DirectTransport;
use super::pipe_transport::PipeTransport;
use super::plain_transport::PlainTransport;
use super::producer::{PipedProducer, WeakProducer};
use super::router_events::Handlers;
use super::router_pipes::PairCache;
use super::webrtc_transport::{
    WebRtcTransport, WebRtcTransportListen, WebRtcTransportListenInfos, WebRtcTransportOptions,
};
use super::worker::Worker;
use crate::internals::cell::{Cell, Count, Counts, SettingsSet};
use crate::internals::dump;
use crate::internals::host::{CellClosed, Host, PlaceError, RouterReport};
use crate::internals::load_model::{Reservation, DEFAULT_AUDIO};
use crate::internals::object::{fresh_id, lock, push_live};
use crate::internals::pipes::{connect_link, LinkOptions, PipeEnds, PipeFrom, PipeLease, PipeParts, PipeRegistry};
use crate::internals::real_routers::{RealRouters, RouterUse};
use crate::internals::registry::{Members, Table};
use crate::labels::{cell_labels, request_for};
use crate::placement::CellId;
use crate::placement::{Direction, PlacementRequest};
use crate::stats::RouterStats;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{
    ActiveSpeakerObserverOptions, AppData, AudioLevelObserverOptions, DataProducerId, DirectTransportOptions,
    ListenInfo, PipeTransportOptions, PlainTransportOptions, ProducerId, RtpCapabilities, RtpCapabilitiesFinalized,
    RtpCodecCapability, SctpZeroChecksum,
};
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tracing::debug;

/// Options for [`Router::pipe_producer_to_router`]: mediasoup 0.33's, with a virtual target.
/// The pipe transports listen on the host's configured pipe address (`[pipes] listen_ip`).
#[derive(Debug)]
#[non_exhaustive]
pub struct PipeToRouterOptions {
    /// Target router.
    pub router: Router,
    /// Whether the piped producer keeps its id in the target router (default true). Then both
    /// ends cannot share a worker: the target end is placed on another worker when the pool
    /// has one, else the worker refuses the id as mediasoup does.
    pub keep_id: bool,
    /// Create an SCTP association (default true).
    pub enable_sctp: bool,
    /// Maximum allowed size for SCTP messages sent by DataConsumers (default 262 144).
    pub max_send_message_size: u32,
    /// Maximum allowed size for SCTP messages received by DataProducers (default 262 144).
    pub max_receive_message_size: u32,
    /// Maximum SCTP send buffer used by DataConsumers (default 2 000 000).
    pub sctp_send_buffer_size: u32,
    /// Per stream send queue size limit (default 2 000 000).
    pub sctp_per_stream_send_queue_limit: u32,
    /// Maximum received window buffer size (default 5 242 880).
    pub sctp_max_receiver_window_buffer_size: u32,
    /// SCTP default stream buffered amount low threshold (default 1024).
    pub sctp_default_stream_buffered_amount_low_threshold: u32,
    /// SCTP Zero Checksum to announce (default `TrustedNetwork`).
    pub sctp_zero_checksum: SctpZeroChecksum,
    /// Enable RTX and NACK (default false).
    pub enable_rtx: bool,
    /// Enable SRTP (default false).
    pub enable_srtp: bool,
}

impl PipeToRouterOptions {
    /// Options for piping into `router`, with mediasoup's defaults.
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self {
            router,
            keep_id: true,
            enable_sctp: true,
            max_send_message_size: 262_144,
            max_receive_message_size: 262_144,
            sctp_send_buffer_size: 2_000_000,
            sctp_per_stream_send_queue_limit: 2_000_000,
            sctp_max_receiver_window_buffer_size: 5_242_880,
            sctp_default_stream_buffered_amount_low_threshold: 1024,
            sctp_zero_checksum: SctpZeroChecksum::TrustedNetwork,
            enable_rtx: false,
            enable_srtp: false,
        }
    }
}

/// Both ends of one pipe link between two cells of a router ([`Router::dump_pipes`]).
#[derive(Debug, Clone)]
pub struct PipeLinkDump {
    /// The cell of the source end (pipe consumers live there).
    pub from: CellId,
    /// The cell of the target end (pipe producers live there).
    pub to: CellId,
    /// The source end's dump.
    pub source: mediasoup::pipe_transport::PipeTransportDump,
    /// The target end's dump.
    pub target: mediasoup::pipe_transport::PipeTransportDump,
}

/// The pipe consumer and pipe producer made by [`Router::pipe_producer_to_router`].
#[derive(Debug)]
pub struct PipeProducerToRouterPair {
    /// The consumer in the source router.
    pub pipe_consumer: Consumer,
    /// The producer in the target router.
    pub pipe_producer: PipedProducer,
}

/// The pipe data consumer and data producer made by [`Router::pipe_data_producer_to_router`].
#[derive(Debug)]
pub struct PipeDataProducerToRouterPair {
    /// The data consumer in the source router.
    pub pipe_data_consumer: DataConsumer,
    /// The data producer in the target router.
    pub pipe_data_producer: NonClosingDataProducer,
}

/// State of one virtual router.
pub(crate) struct RouterInner {
    pub(crate) id: RouterId,
    pub(crate) worker: Worker,
    pub(crate) host: Arc<Host>,
    pub(crate) set: SettingsSet,
    app_data: AppData,
    rtp_capabilities: Mutex<RtpCapabilitiesFinalized>,
    pub(crate) reals: RealRouters,
    pub(crate) producers: Table<ProducerId, WeakProducer>,
    pub(crate) data_producers: Table<DataProducerId, WeakDataProducer>,
    /// The consumers of each producer: they close when it closes, whatever cell they are in
    /// (not only when the pipe carrying it to their cell is torn down).
    consumers_of: Mutex<HashMap<ProducerId, Vec<Weak<ConsumerInner>>>>,
    pub(crate) members: Members,
    pub(crate) pipes: PipeRegistry,
    pub(crate) pairs: PairCache,
    pub(crate) counts: Arc<Counts>,
    pub(crate) handlers: Handlers,
    closed: AtomicBool,
}

impl std::fmt::Debug for RouterInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("id", &self.id).finish()
    }
}

impl Drop for RouterInner {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
        self.pipes.clear();
        self.reals.clear();
    }
}

impl RouterReport for RouterInner {
    fn id(&self) -> RouterId {
        self.id
    }

    fn stats(&self) -> RouterStats {
        RouterStats {
            id: self.id,
            cells: self.reals.all().into_iter().map(|(id, _)| id).collect(),
            transports: self.counts.get(Count::Transport),
            producers: self.counts.get(Count::Producer),
            consumers: self.counts.get(Count::Consumer),
            pipes: self.counts.get(Count::Pipe),
        }
    }

    /// Reports this router's lost transports (if it used the cell).
    fn cell_closed(&self, event: &CellClosed, was_present: bool) {
        let lost: Vec<_> =
            event.lost_transports.iter().filter(|(router, _)| *router == self.id).map(|(_, t)| *t).collect();
        if was_present || !lost.is_empty() {
            self.handlers.cell_lost.call_simple(&CellLost {
                cell: event.cell,
                worker: event.worker,
                reason: event.reason,
                lost_transports: lost,
                node: event.node.clone(),
            });
        }
    }

    fn footprint(&self, footprint: &mut crate::internals::footprint::Footprint) {
        let (producers, renamed) = self.producers.sizes();
        let (data_producers, data_renamed) = self.data_producers.sizes();
        let (reals, watchers) = self.reals.sizes();
        let (slots, real_ids, links) = self.pipes.sizes();
        footprint.router_objects += self.counts.total();
        footprint.router_producers += producers;
        footprint.router_data_producers += data_producers;
        footprint.router_renamed_ids += renamed + data_renamed;
        footprint.router_consumer_lists += lock(&self.consumers_of).len();
        footprint.router_members += self.members.live();
        footprint.real_routers += reals;
        footprint.real_router_watchers += watchers;
        footprint.pipe_slots += slots;
        footprint.pipe_real_ids += real_ids;
        footprint.pipe_links += links;
    }
}

impl RouterInner {
    /// Records a consumer of `producer`.
    pub(crate) fn add_consumer_of(&self, producer: ProducerId, consumer: Weak<ConsumerInner>) {
        let mut all = lock(&self.consumers_of);
        push_live(all.entry(producer).or_default(), consumer);
    }

    /// `producer` closed: its consumers get their producer-close event and close.
    pub(crate) fn producer_closed(&self, producer: &ProducerId) {
        let consumers = lock(&self.consumers_of).remove(producer).unwrap_or_default();
        for consumer in consumers.iter().filter_map(Weak::upgrade) {
            consumer.source_closed();
        }
    }

    /// Closes the router because its (virtual) worker closed.
    pub(crate) fn close_from_worker(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.handlers.worker_close.call_simple();
        self.handlers.close.call_simple();
        self.members.close_all();
        self.pipes.clear();
        self.pairs.clear();
        self.reals.clear();
    }
}

/// A virtual router: one logical mediasoup Router spread over the host's workers.
#[derive(Clone)]
#[must_use = "Router will be closed on drop, make sure to keep it around for as long as needed"]
pub struct Router {
    pub(crate) inner: Arc<RouterInner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router").field("id", &self.inner.id).field("closed", &self.closed()).finish()
    }
}

/// Where placement put a new object of a router.
pub(crate) struct Placed {
    /// The cell.
    pub(crate) cell: Arc<Cell>,
    /// A use of the router's real router there.
    pub(crate) router_use: RouterUse,
    /// The labels the cell counts for it.
    pub(crate) labels: Vec<(String, String)>,
    /// The room reserved for it (moves to its transport).
    pub(crate) reservation: Reservation,
}

/// Maps a placement failure to the error mediasoup reports for a failed worker request.
fn place_error(error: PlaceError) -> RequestError {
    RequestError::Response { reason: error.to_string() }
}

impl Router {
    pub(crate) fn new(
        worker: Worker,
        host: Arc<Host>,
        set: SettingsSet,
        media_codecs: Vec<RtpCodecCapability>,
        rtp_capabilities: RtpCapabilitiesFinalized,
        app_data: AppData,
    ) -> Self {
        let id: RouterId = fresh_id();
        let inner = Arc::new(RouterInner {
            id,
            worker,
            host: Arc::clone(&host),
            set,
            reals: RealRouters::new(id, media_codecs, app_data.clone()),
            app_data,
            rtp_capabilities: Mutex::new(rtp_capabilities),
            producers: Table::default(),
            data_producers: Table::default(),
            consumers_of: Mutex::default(),
            members: Members::default(),
            pipes: PipeRegistry::default(),
            pairs: PairCache::default(),
            counts: Arc::default(),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
        });
        host.add_router(Arc::downgrade(&inner) as Weak<dyn RouterReport>);
        Self { inner }
    }

    pub(crate) fn from_inner(inner: Arc<RouterInner>) -> Self {
        Self { inner }
    }

    /// Router id.
    #[must_use]
    pub fn id(&self) -> RouterId {
        self.inner.id
    }

    /// Worker to which router belongs.
    pub fn worker(&self) -> &Worker {
        &self.inner.worker
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner.app_data
    }

    /// Whether router is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    /// RTP capabilities of the router.
    #[must_use]
    pub fn rtp_capabilities(&self) -> RtpCapabilitiesFinalized {
        lock(&self.inner.rtp_capabilities).clone()
    }

    /// mafalda extension, for operators: the dumps of the pipe transports this router made
    /// between its cells (hidden from [`Router::dump`]), both ends of each link, e.g. to check
    /// that pipes between hosts carry SRTP and RTX.
    pub async fn dump_pipes(&self) -> Result<Vec<PipeLinkDump>, RequestError> {
        self.check_open()?;
        let mut dumps = Vec::new();
        for link in self.inner.pipes.links.open() {
            let (from, to) = link.cells();
            dumps.push(PipeLinkDump { from, to, source: link.local.dump().await?, target: link.remote.dump().await? });
        }
        Ok(dumps)
    }

    /// Dump the router: its real routers' dumps merged into one, internal pipes hidden.
    pub async fn dump(&self) -> Result<RouterDump, RequestError> {
        self.check_open()?;
        let mut dumps = Vec::new();
        for (cell, real) in self.inner.reals.all() {
            match real.dump().await {
                Ok(dump) => dumps.push(dump),
                // A worker that went away meanwhile took its objects with it: the router's
                // dump is what the others hold.
                Err(RequestError::ChannelClosed) => debug!(router = %self.id(), %cell, "real router gone during dump"),
                Err(error) if self.inner.host.cell(cell).is_none() => {
                    debug!(router = %self.id(), %cell, %error, "real router's cell closed during dump")
                }
                Err(error) => return Err(error),
            }
        }
        let mut internal = self.inner.pipes.internal();
        internal.producers.extend(self.inner.producers.renamed());
        internal.data_producers.extend(self.inner.data_producers.renamed());
        dump::merge(self.id(), &dumps, &internal)
    }

    fn check_open(&self) -> Result<(), RequestError> {
        if self.closed() {
            Err(RequestError::ChannelClosed)
        } else {
            Ok(())
        }
    }

    /// Asks placement for a cell (never `avoid` unless it is the only one) for a transport with
    /// `app_data` and takes a use of this router's real router there. The decision reserves room
    /// for what the transport is expected to forward (`prior`, or the router's fan-out prior
    /// when `None`). A cell closing meanwhile is refused and placement tries again.
    pub(crate) async fn place_avoiding(
        &self,
        app_data: &AppData,
        avoid: &[CellId],
        prior: Option<[f64; 2]>,
    ) -> Result<Placed, RequestError> {
        self.check_open()?;
        let request = request_for(&self.id().to_string(), app_data);
        let labels = cell_labels(app_data, &request, &self.inner.host.options().label_keys);
        let prior = prior.unwrap_or_else(|| self.fan_out_prior(&request));
        let mut last = RequestError::ChannelClosed;
        for _ in 0..4 {
            let (cell, reservation) = self
                .inner
                .host
                .place(request.clone(), self.id(), prior, self.inner.set, avoid)
                .await
                .map_err(place_error)?;
            // A worker that died and whose death is not handled yet counts as closed too.
            let gone = |cell: &Arc<Cell>| cell.is_closed() || cell.worker().is_none_or(|w| w.closed());
            match self.real_router_use(&cell).await {
                Ok(_) if gone(&cell) => last = RequestError::ChannelClosed,
                Ok(router_use) => return Ok(Placed { cell, router_use, labels, reservation }),
                Err(error) if gone(&cell) => last = error,
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }

    /// Asks placement for a cell for a transport and takes a use of the real router there.
    pub(crate) async fn place(&self, app_data: &AppData) -> Result<Placed, RequestError> {
        self.place_avoiding(app_data, &[], None).await
    }

    /// The packets per second (by kind) a new transport of this router is expected to forward:
    /// nothing when hinted as sending; `expected_consumers` times the router's average producer
    /// when hinted; else every producer the router has (a receiving peer consumes the room).
    fn fan_out_prior(&self, request: &PlacementRequest) -> [f64; 2] {
        if request.direction == Direction::Send {
            return [0.0; 2];
        }
        let (mut sum, mut producers) = ([0.0; 2], 0u32);
        self.inner.producers.each(|producer| {
            let rate = producer.rate();
            sum[rate.kind() as usize] += rate.pps().forwarded;
            producers += 1;
        });
        match request.expected_consumers {
            0 => sum,
            expected if producers == 0 => [f64::from(expected) * DEFAULT_AUDIO.forwarded, 0.0],
            expected => sum.map(|v| v / f64::from(producers) * f64::from(expected)),
        }
    }

    /// A use of the real router in `cell`, creating it (and firing `on_new_cell`) if needed.
    pub(crate) async fn real_router_use(&self, cell: &Arc<Cell>) -> Result<RouterUse, RequestError> {
        let (router_use, created) = self.inner.reals.acquire(cell).await?;
        if created {
            self.inner.handlers.new_cell.call_simple(&cell.id());
        }
        Ok(router_use)
    }

    /// Create a WebRtcTransport, placed by the placement policy.
    pub async fn create_webrtc_transport(
        &self,
        webrtc_transport_options: WebRtcTransportOptions,
    ) -> Result<WebRtcTransport, RequestError> {
        let mut webrtc_transport_options = webrtc_transport_options;
        if let WebRtcTransportListen::Individual { listen_infos } = &mut webrtc_transport_options.listen {
            let mut infos: Vec<ListenInfo> = listen_infos.to_vec();
            infos.iter_mut().for_each(|info| self.worker().apply_port_range(info));
            if let Ok(infos) = WebRtcTransportListenInfos::try_from(infos) {
                *listen_infos = infos;
            }
        }
        let placed = self.place(&webrtc_transport_options.app_data).await?;
        let transport = WebRtcTransport::create(self, placed, webrtc_transport_options).await?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::WebRtc(&transport)));
        Ok(transport)
    }

    /// Create a PlainTransport, placed by the placement policy.
    pub async fn create_plain_transport(
        &self,
        plain_transport_options: PlainTransportOptions,
    ) -> Result<PlainTransport, RequestError> {
        let mut plain_transport_options = plain_transport_options;
        self.worker().apply_port_range(&mut plain_transport_options.listen_info);
        if let Some(info) = plain_transport_options.rtcp_listen_info.as_mut() {
            self.worker().apply_port_range(info);
        }
        let placed = self.place(&plain_transport_options.app_data).await?;
        let app_data = plain_transport_options.app_data.clone();
        let real = placed.router_use.real().create_plain_transport(plain_transport_options).await?;
        let transport = PlainTransport::wrap(self, placed, real, app_data)?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Plain(&transport)));
        Ok(transport)
    }

    /// Create a PipeTransport, placed by the placement policy.
    pub async fn create_pipe_transport(
        &self,
        pipe_transport_options: PipeTransportOptions,
    ) -> Result<PipeTransport, RequestError> {
        let mut pipe_transport_options = pipe_transport_options;
        self.worker().apply_port_range(&mut pipe_transport_options.listen_info);
        let placed = self.place(&pipe_transport_options.app_data).await?;
        let app_data = pipe_transport_options.app_data.clone();
        let real = placed.router_use.real().create_pipe_transport(pipe_transport_options).await?;
        let transport = PipeTransport::wrap(self, placed, real, app_data)?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Pipe(&transport)));
        Ok(transport)
    }

    /// Wraps a real pipe transport made where `placed` says (one end of a
    /// `pipe_producer_to_router` pair) as a transport of this router.
    pub(crate) fn wrap_pipe_transport(
        &self,
        placed: Placed,
        real: Arc<dyn crate::backend::PipeTransportBackend>,
    ) -> Result<PipeTransport, RequestError> {
        let transport = PipeTransport::wrap(self, placed, real, AppData::default())?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Pipe(&transport)));
        Ok(transport)
    }

    /// Create a DirectTransport, placed by the placement policy.
    pub async fn create_direct_transport(
        &self,
        direct_transport_options: DirectTransportOptions,
    ) -> Result<DirectTransport, RequestError> {
        let placed = self.place(&direct_transport_options.app_data).await?;
        let app_data = direct_transport_options.app_data.clone();
        let real = placed.router_use.real().create_direct_transport(direct_transport_options).await?;
        let transport = DirectTransport::wrap(self, placed, real, app_data)?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Direct(&transport)));
        Ok(transport)
    }

    /// Create an AudioLevelObserver; producers added to it are piped to its cell.
    pub async fn create_audio_level_observer(
        &self,
        audio_level_observer_options: AudioLevelObserverOptions,
    ) -> Result<AudioLevelObserver, RequestError> {
        let Placed { cell, router_use, .. } =
            self.place_avoiding(&audio_level_observer_options.app_data, &[], Some([0.0; 2])).await?;
        let app_data = audio_level_observer_options.app_data.clone();
        let real = router_use.real().create_audio_level_observer(audio_level_observer_options).await?;
        let observer = AudioLevelObserver::wrap(self, cell, router_use, real, app_data)?;
        self.inner.handlers.new_rtp_observer.call(|cb| cb(NewRtpObserver::AudioLevel(&observer)));
        Ok(observer)
    }

    /// Create an ActiveSpeakerObserver; producers added to it are piped to its cell.
    pub async fn create_active_speaker_observer(
        &self,
        active_speaker_observer_options: ActiveSpeakerObserverOptions,
    ) -> Result<ActiveSpeakerObserver, RequestError> {
        let Placed { cell, router_use, .. } =
            self.place_avoiding(&active_speaker_observer_options.app_data, &[], Some([0.0; 2])).await?;
        let app_data = active_speaker_observer_options.app_data.clone();
        let real = router_use.real().create_active_speaker_observer(active_speaker_observer_options).await?;
        let observer = ActiveSpeakerObserver::wrap(self, cell, router_use, real, app_data)?;
        self.inner.handlers.new_rtp_observer.call(|cb| cb(NewRtpObserver::ActiveSpeaker(&observer)));
        Ok(observer)
    }

    /// Makes a producer or data producer available in `target`, piping it there once (shared,
    /// ref-counted). `None` when it already lives there.
    pub(crate) async fn ensure_in(
        &self,
        from: PipeFrom<'_>,
        target: &Arc<Cell>,
    ) -> Result<Option<PipeLease>, RequestError> {
        if from.home.id() == target.id() {
            return Ok(None);
        }
        let lease = self.inner.pipes.acquire(from.known, target.id(), || self.open_pipe(&from, target)).await?;
        Ok(Some(lease))
    }

    async fn open_pipe(&self, from: &PipeFrom<'_>, target: &Arc<Cell>) -> Result<PipeParts, RequestError> {
        let (source, home) = (from.known, from.home);
        let failed = |e: RequestError| RequestError::Response {
            reason: format!("piping {source:?} from {} to {} failed: {e}", home.id(), target.id()),
        };
        if let Some((original, replicas)) = from.object.replicated() {
            let to = self.real_router_use(target).await.map_err(failed)?;
            let ends = PipeEnds::replica(&to, original.as_ref()).await.map_err(failed)?;
            ends.register_copy(replicas);
            return Ok(self.opened(from, target, ends, None, [Arc::clone(home), Arc::clone(target)], Some(to)).await);
        }
        let pipes = &self.inner.host.options().pipes;
        // Between hosts media crosses a network: always encrypted (SRTP) and repaired (NACK +
        // RTX). On one host the pipe is loopback: RTX would only cost, SRTP is the application's
        // choice ([pipes] srtp).
        let between_hosts = home.node() != target.node();
        let options = LinkOptions {
            listen_info: pipes.listen_info(),
            enable_sctp: true,
            enable_rtx: between_hosts,
            enable_srtp: between_hosts || pipes.srtp,
            sctp: None,
        };
        let link = self
            .inner
            .pipes
            .links
            .get_or_connect((home.id(), target.id()), || async {
                let from = self.real_router_use(home).await?;
                let to = self.real_router_use(target).await?;
                connect_link(from, to, &options).await
            })
            .await
            .map_err(failed)?;
        // The pipe producer gets a fresh id: the source's may be taken in the target worker.
        let ends = match from.real {
            PipeSource::Producer(id) => PipeEnds::media(&link, id, fresh_id()).await,
            PipeSource::DataProducer(id) => PipeEnds::data(&link, id, fresh_id()).await,
        }
        .map_err(failed)?;
        let cells = [Arc::clone(link.source_cell()), Arc::clone(link.target_cell())];
        Ok(self.opened(from, target, ends, Some(link), cells, None).await)
    }

    /// Makes the parts of a pipe whose ends exist: they follow the source's pause state, count
    /// in the target cell while the receiving half lives, and `on_pipe` is told.
    async fn opened(
        &self,
        from: &PipeFrom<'_>,
        target: &Arc<Cell>,
        ends: PipeEnds,
        link: Option<Arc<crate::internals::pipes::Link>>,
        cells: [Arc<Cell>; 2],
        router_use: Option<RouterUse>,
    ) -> PipeParts {
        from.object.followers().follow(ends.follower(), || from.object.is_paused()).await;
        // The source cell forwards the producer's packets into the pipe, the target receives
        // them; a data pipe or copy is a data object at each end.
        let loads = match from.object.rate() {
            Some(rate) => vec![from.home.ledger().forward(rate, None), target.ledger().receive(rate, None)],
            None if link.is_some() => vec![from.home.ledger().data(), target.ledger().data()],
            None => vec![target.ledger().data()],
        };
        let ticket = target.ticket(&self.inner.counts, Count::Pipe, Vec::new());
        let counted = Arc::new(Mutex::new(Some((ticket, loads))));
        let released = Arc::clone(&counted);
        ends.on_target_gone(Box::new(move || drop(lock(&released).take())));
        self.inner.handlers.pipe.call_simple(&PipeEvent {
            source: from.known,
            from: from.home.id(),
            to: target.id(),
            change: PipeChange::Opened,
        });
        PipeParts { ends, link, cells, counted, _target_router: router_use }
    }

    /// Pipes a producer of this router into another (virtual) router, as mediasoup does between
    /// routers: a pipe-transport pair per router pair, reused; the source end lives in the
    /// producer's cell, the target end on another worker of the target router.
    pub async fn pipe_producer_to_router(
        &self,
        producer_id: ProducerId,
        pipe_to_router_options: PipeToRouterOptions,
    ) -> Result<PipeProducerToRouterPair, PipeProducerToRouterError> {
        super::router_pipes::pipe_producer(self, producer_id, pipe_to_router_options).await
    }

    /// Pipes a data producer of this router into another (virtual) router.
    pub async fn pipe_data_producer_to_router(
        &self,
        data_producer_id: DataProducerId,
        pipe_to_router_options: PipeToRouterOptions,
    ) -> Result<PipeDataProducerToRouterPair, PipeDataProducerToRouterError> {
        super::router_pipes::pipe_data_producer(self, data_producer_id, pipe_to_router_options).await
    }

    /// The virtual id of the producer whose id in some cell is `real` (a pipe producer's).
    pub(crate) fn virtual_producer_id(&self, real: ProducerId) -> ProducerId {
        match self.inner.pipes.source_of(PipeSource::Producer(real)) {
            Some(PipeSource::Producer(id)) => id,
            _ => self.inner.producers.known_as(&real).unwrap_or(real),
        }
    }

    /// Check whether the given RTP capabilities can consume the given producer.
    #[must_use]
    pub fn can_consume(&self, producer_id: &ProducerId, rtp_capabilities: &RtpCapabilities) -> bool {
        self.inner.producers.find(producer_id).is_some_and(|found| {
            self.inner.reals.get(found.home.id()).is_some_and(|real| real.can_consume(&found.real, rtp_capabilities))
        })
    }

    /// Update the router's media codecs (its real routers' too, and those created later).
    pub fn update_media_codecs(&mut self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError> {
        // Computed once, under the calculator's lock: a concurrent create_router or update of
        // another router cannot hand its capabilities to this one.
        let capabilities = self.inner.host.rtp_capabilities_for(media_codecs.clone())?;
        let mut current = lock(&self.inner.rtp_capabilities);
        self.inner.reals.set_media_codecs(media_codecs)?;
        *current = capabilities;
        Ok(())
    }

    /// Callback is called when a new transport is created.
    pub fn on_new_transport<F: Fn(NewTransport<'_>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_transport.add(Arc::new(callback))
    }

    /// Callback is called when a new RTP observer is created.
    pub fn on_new_rtp_observer<F: Fn(NewRtpObserver<'_>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_rtp_observer.add(Arc::new(callback))
    }

    /// Callback is called when the worker this router belongs to is closed.
    pub fn on_worker_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.worker_close.add(Box::new(callback))
    }

    /// Callback is called when the router is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        let handler_id = self.inner.handlers.close.add(Box::new(callback));
        if self.closed() {
            self.inner.handlers.close.call_simple();
        }
        handler_id
    }

    /// mafalda extension: called when the router starts using a new cell (worker).
    pub fn on_new_cell<F: Fn(&CellId) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.new_cell.add(Arc::new(callback))
    }

    /// mafalda extension: called when a producer is piped into another cell.
    pub fn on_pipe<F: Fn(&PipeEvent) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.pipe.add(Arc::new(callback))
    }

    /// mafalda extension: called when a cell this router used was closed — idle, retired or
    /// its worker died (see [`CellLost::reason`]) — with the transports of this router that
    /// were lost.
    pub fn on_cell_lost<F: Fn(&CellLost) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.cell_lost.add(Arc::new(callback))
    }

    /// mafalda extension: where placement would put a transport with `app_data` now — its cell,
    /// or `None` for a worker it would start — without reserving anything (the decision
    /// `create_*_transport` makes).
    pub async fn preview_placement(&self, app_data: &AppData) -> Result<Option<CellId>, RequestError> {
        self.inner.host.preview(self.id(), self.inner.set, app_data).await.map_err(place_error)
    }

    /// mafalda extension: this router's numbers (cells, transports, producers, consumers, pipes).
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        self.inner.stats()
    }

    /// mafalda extension: open pipes (source, target cell).
    #[must_use]
    pub fn pipes(&self) -> Vec<(PipeSource, CellId)> {
        self.inner.pipes.open()
    }

    /// mafalda extension: the cells this router has a real router in.
    #[must_use]
    pub fn cells(&self) -> Vec<CellId> {
        self.inner.reals.all().into_iter().map(|(id, _)| id).collect()
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakRouter {
        WeakRouter { inner: Arc::downgrade(&self.inner) }
    }
}

/// A router that does not keep it alive.
#[derive(Clone, Debug)]
pub struct WeakRouter {
    inner: Weak<RouterInner>,
}

impl WeakRouter {
    /// Upgrade to a strong handle, unless the router is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<Router> {
        self.inner.upgrade().map(Router::from_inner)
    }
}
