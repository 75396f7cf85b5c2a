//! The virtual [`Router`]: mediasoup's Router API over real routers in many cells. Transports
//! are placed by the placement engine; producers are piped on demand to the cells of their
//! consumers; `dump()` and stats merge the real routers.

pub(crate) mod active_speaker_observer;
pub(crate) mod audio_level_observer;
pub(crate) mod consumer;
mod cross_router;
pub(crate) mod data_consumer;
pub(crate) mod data_producer;
pub(crate) mod direct_transport;
mod dump;
mod events;
pub(crate) mod pipe_transport;
mod pipes;
pub(crate) mod plain_transport;
pub(crate) mod producer;
mod real_routers;
mod registry;
pub(crate) mod rtp_observer;
pub(crate) mod transport;
mod transport_core;
mod transport_macro;
pub(crate) mod webrtc_transport;

pub use events::{CellLost, NewRtpObserver, NewTransport, PipeChange, PipeEvent};
pub use mediasoup::router::*;
pub use pipes::PipeSource;

use crate::cell::{Cell, Count, Counts};
use crate::host::{CellClosed, Host, PlaceError};
use crate::labels::{cell_labels, request_for};
use crate::object::{fresh_id, lock};
use crate::placement::CellId;
use crate::stats::RouterStats;
use crate::worker::Worker;
use active_speaker_observer::ActiveSpeakerObserver;
use audio_level_observer::AudioLevelObserver;
use consumer::Consumer;
use data_consumer::DataConsumer;
use data_producer::NonClosingDataProducer;
use direct_transport::DirectTransport;
use event_listener_primitives::HandlerId;
use events::Handlers;
use mediasoup::prelude::{
    ActiveSpeakerObserverOptions, AppData, AudioLevelObserverOptions, DataProducerId, DirectTransportOptions,
    PipeTransportOptions, PlainTransportOptions, ProducerId, RtpCapabilities, RtpCapabilitiesFinalized,
    RtpCodecCapability,
};
use mediasoup::worker::RequestError;
use pipe_transport::PipeTransport;
use pipes::{PipeEnds, PipeLease, PipeParts, PipeRegistry};
use plain_transport::PlainTransport;
use producer::PipedProducer;
use real_routers::{RealRouters, RouterUse};
use registry::Registry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use webrtc_transport::{WebRtcTransport, WebRtcTransportOptions};

/// Options for [`Router::pipe_producer_to_router`] (mediasoup's, with a virtual destination).
#[derive(Debug)]
#[non_exhaustive]
pub struct PipeToRouterOptions {
    /// Target router.
    pub router: Router,
    /// Keep the producer's id in the target router (default true).
    pub keep_id: bool,
    /// Create an SCTP association (default true).
    pub enable_sctp: bool,
    /// Enable RTX and NACK (default false).
    pub enable_rtx: bool,
    /// Enable SRTP (default false).
    pub enable_srtp: bool,
}

impl PipeToRouterOptions {
    /// Options for piping into `router`.
    #[must_use]
    pub fn new(router: Router) -> Self {
        Self { router, keep_id: true, enable_sctp: true, enable_rtx: false, enable_srtp: false }
    }
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
    app_data: AppData,
    rtp_capabilities: Mutex<RtpCapabilitiesFinalized>,
    pub(crate) reals: RealRouters,
    pub(crate) registry: Registry,
    pub(crate) pipes: PipeRegistry,
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

impl RouterInner {
    /// Reacts to a cell closing: reports this router's lost transports (if it used the cell).
    pub(crate) fn cell_closed(&self, event: &CellClosed, was_present: bool) {
        let lost: Vec<_> =
            event.lost_transports.iter().filter(|(router, _)| *router == self.id).map(|(_, t)| *t).collect();
        if was_present || !lost.is_empty() {
            self.handlers.cell_lost.call_simple(&CellLost {
                cell: event.cell,
                worker: event.worker,
                reason: event.reason,
                lost_transports: lost,
            });
        }
    }

    /// The pipe source as the application names it (virtual ids).
    fn virtual_source(&self, source: PipeSource) -> PipeSource {
        match source {
            PipeSource::Producer(id) => PipeSource::Producer(self.registry.producer_id_of_real(&id)),
            PipeSource::DataProducer(id) => PipeSource::DataProducer(self.registry.data_producer_id_of_real(&id)),
        }
    }

    /// This router's stats.
    pub(crate) fn stats(&self) -> RouterStats {
        RouterStats {
            id: self.id,
            cells: self.reals.all().into_iter().map(|(id, _)| id).collect(),
            transports: self.counts.get(Count::Transport),
            producers: self.counts.get(Count::Producer),
            consumers: self.counts.get(Count::Consumer),
            pipes: self.counts.get(Count::Pipe),
        }
    }

    /// Closes the router because its (virtual) worker closed.
    pub(crate) fn close_from_worker(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.handlers.worker_close.call_simple();
        self.handlers.close.call_simple();
        self.registry.close_all();
        self.pipes.clear();
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

/// Maps a placement failure to the error mediasoup reports for a failed worker request.
fn place_error(error: PlaceError) -> RequestError {
    RequestError::Response { reason: error.to_string() }
}

impl Router {
    pub(crate) fn new(
        worker: Worker,
        host: Arc<Host>,
        media_codecs: Vec<RtpCodecCapability>,
        rtp_capabilities: RtpCapabilitiesFinalized,
        app_data: AppData,
    ) -> Self {
        let id: RouterId = fresh_id();
        let inner = Arc::new(RouterInner {
            id,
            worker,
            host: Arc::clone(&host),
            reals: RealRouters::new(id, media_codecs, app_data.clone()),
            app_data,
            rtp_capabilities: Mutex::new(rtp_capabilities),
            registry: Registry::default(),
            pipes: PipeRegistry::default(),
            counts: Arc::default(),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
        });
        host.add_router(Arc::downgrade(&inner));
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

    /// Dump the router: its real routers' dumps merged into one, internal pipes hidden.
    pub async fn dump(&self) -> Result<RouterDump, RequestError> {
        if self.closed() {
            return Err(RequestError::ChannelClosed);
        }
        dump::merged(self).await
    }

    fn check_open(&self) -> Result<(), RequestError> {
        if self.closed() {
            Err(RequestError::ChannelClosed)
        } else {
            Ok(())
        }
    }

    /// Asks placement for a cell and takes a use of this router's real router there.
    pub(crate) async fn place(&self, app_data: &AppData) -> Result<(Arc<Cell>, RouterUse, Vec<String>), RequestError> {
        self.check_open()?;
        let request = request_for(&self.id().to_string(), app_data);
        let labels = cell_labels(&request);
        let cell = self.inner.host.place(request).await.map_err(place_error)?;
        let router_use = self.real_router_use(&cell).await?;
        Ok((cell, router_use, labels))
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
        let (cell, router_use, labels) = self.place(&webrtc_transport_options.app_data).await?;
        let transport = WebRtcTransport::create(self, cell, router_use, labels, webrtc_transport_options).await?;
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::WebRtc(&transport)));
        Ok(transport)
    }

    /// Create a PlainTransport, placed by the placement policy.
    pub async fn create_plain_transport(
        &self,
        plain_transport_options: PlainTransportOptions,
    ) -> Result<PlainTransport, RequestError> {
        let (cell, router_use, labels) = self.place(&plain_transport_options.app_data).await?;
        let real = router_use.real().create_plain_transport(plain_transport_options).await?;
        let transport = PlainTransport::wrap(self, cell, router_use, labels, real);
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Plain(&transport)));
        Ok(transport)
    }

    /// Create a PipeTransport, placed by the placement policy.
    pub async fn create_pipe_transport(
        &self,
        pipe_transport_options: PipeTransportOptions,
    ) -> Result<PipeTransport, RequestError> {
        let (cell, router_use, labels) = self.place(&pipe_transport_options.app_data).await?;
        self.create_pipe_transport_at(cell, router_use, labels, pipe_transport_options).await
    }

    /// Creates a PipeTransport in a given cell.
    pub(crate) async fn create_pipe_transport_at(
        &self,
        cell: Arc<Cell>,
        router_use: RouterUse,
        labels: Vec<String>,
        pipe_transport_options: PipeTransportOptions,
    ) -> Result<PipeTransport, RequestError> {
        let real = router_use.real().create_pipe_transport(pipe_transport_options).await?;
        let transport = PipeTransport::wrap(self, cell, router_use, labels, real);
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Pipe(&transport)));
        Ok(transport)
    }

    /// Create a DirectTransport, placed by the placement policy.
    pub async fn create_direct_transport(
        &self,
        direct_transport_options: DirectTransportOptions,
    ) -> Result<DirectTransport, RequestError> {
        let (cell, router_use, labels) = self.place(&direct_transport_options.app_data).await?;
        let real = router_use.real().create_direct_transport(direct_transport_options).await?;
        let transport = DirectTransport::wrap(self, cell, router_use, labels, real);
        self.inner.handlers.new_transport.call(|cb| cb(NewTransport::Direct(&transport)));
        Ok(transport)
    }

    /// Create an AudioLevelObserver; producers added to it are piped to its cell.
    pub async fn create_audio_level_observer(
        &self,
        audio_level_observer_options: AudioLevelObserverOptions,
    ) -> Result<AudioLevelObserver, RequestError> {
        let (cell, router_use, _) = self.place(&audio_level_observer_options.app_data).await?;
        let real = router_use.real().create_audio_level_observer(audio_level_observer_options).await?;
        let observer = AudioLevelObserver::wrap(self, cell, router_use, real);
        self.inner.handlers.new_rtp_observer.call(|cb| cb(NewRtpObserver::AudioLevel(&observer)));
        Ok(observer)
    }

    /// Create an ActiveSpeakerObserver; producers added to it are piped to its cell.
    pub async fn create_active_speaker_observer(
        &self,
        active_speaker_observer_options: ActiveSpeakerObserverOptions,
    ) -> Result<ActiveSpeakerObserver, RequestError> {
        let (cell, router_use, _) = self.place(&active_speaker_observer_options.app_data).await?;
        let real = router_use.real().create_active_speaker_observer(active_speaker_observer_options).await?;
        let observer = ActiveSpeakerObserver::wrap(self, cell, router_use, real);
        self.inner.handlers.new_rtp_observer.call(|cb| cb(NewRtpObserver::ActiveSpeaker(&observer)));
        Ok(observer)
    }

    /// Makes `source` (a real producer or data producer id living in `home`) available in
    /// `target`, piping it there once (shared, ref-counted). `None` when it already lives there.
    pub(crate) async fn ensure_in(
        &self,
        source: PipeSource,
        home: &Arc<Cell>,
        target: &Arc<Cell>,
    ) -> Result<Option<PipeLease>, RequestError> {
        if home.id() == target.id() {
            return Ok(None);
        }
        let lease = self
            .inner
            .pipes
            .acquire(source, target.id(), [home, target], || self.open_pipe(source, home, target))
            .await?;
        Ok(Some(lease))
    }

    async fn open_pipe(
        &self,
        source: PipeSource,
        home: &Arc<Cell>,
        target: &Arc<Cell>,
    ) -> Result<PipeParts, RequestError> {
        let from = self.real_router_use(home).await?;
        let to = self.real_router_use(target).await?;
        let mut options = mediasoup::router::PipeToRouterOptions::new(to.real().clone());
        options.enable_srtp = self.inner.host.options().pipes.srtp;
        let failed = |e: &dyn std::fmt::Display| RequestError::Response {
            reason: format!("piping {source:?} from {} to {} failed: {e}", home.id(), target.id()),
        };
        let ends = match source {
            PipeSource::Producer(id) => {
                let pair = from.real().pipe_producer_to_router(id, options).await.map_err(|e| failed(&e))?;
                PipeEnds::Media { consumer: pair.pipe_consumer, producer: pair.pipe_producer.into_inner() }
            }
            PipeSource::DataProducer(id) => {
                let pair = from.real().pipe_data_producer_to_router(id, options).await.map_err(|e| failed(&e))?;
                PipeEnds::Data { consumer: pair.pipe_data_consumer, producer: pair.pipe_data_producer.into_inner() }
            }
        };
        // The pipe counts in the target cell for as long as its receiving half lives.
        let ticket = target.ticket(&self.inner.counts, Count::Pipe, Vec::new());
        match &ends {
            PipeEnds::Media { producer, .. } => producer.on_close(move || drop(ticket)).detach(),
            PipeEnds::Data { producer, .. } => producer.on_close(move || drop(ticket)).detach(),
        }
        self.inner.handlers.pipe.call_simple(&PipeEvent {
            source: self.inner.virtual_source(source),
            from: home.id(),
            to: target.id(),
            change: PipeChange::Opened,
        });
        Ok(PipeParts { ends, _uses: (from, to) })
    }

    /// Pipes a producer of this router into another (virtual) router, as mediasoup does between
    /// routers: the pair is created in the producer's cell.
    pub async fn pipe_producer_to_router(
        &self,
        producer_id: ProducerId,
        pipe_to_router_options: PipeToRouterOptions,
    ) -> Result<PipeProducerToRouterPair, PipeProducerToRouterError> {
        cross_router::pipe_producer(self, producer_id, pipe_to_router_options).await
    }

    /// Pipes a data producer of this router into another (virtual) router.
    pub async fn pipe_data_producer_to_router(
        &self,
        data_producer_id: DataProducerId,
        pipe_to_router_options: PipeToRouterOptions,
    ) -> Result<PipeDataProducerToRouterPair, PipeDataProducerToRouterError> {
        cross_router::pipe_data_producer(self, data_producer_id, pipe_to_router_options).await
    }

    /// Check whether the given RTP capabilities can consume the given producer.
    #[must_use]
    pub fn can_consume(&self, producer_id: &ProducerId, rtp_capabilities: &RtpCapabilities) -> bool {
        self.inner.registry.producer(producer_id).is_some_and(|found| {
            self.inner.reals.get(found.home.id()).is_some_and(|real| real.can_consume(&found.real_id, rtp_capabilities))
        })
    }

    /// Update the router's media codecs (its real routers' too, and those created later).
    pub fn update_media_codecs(&mut self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError> {
        let capabilities = self.inner.host.rtp_capabilities_for(media_codecs.clone())?;
        for (_, mut real) in self.inner.reals.all() {
            real.update_media_codecs(media_codecs.clone())?;
        }
        self.inner.reals.set_media_codecs(media_codecs);
        *lock(&self.inner.rtp_capabilities) = capabilities;
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

    /// mafalda extension: called when a producer is piped into (or out of) a cell.
    pub fn on_pipe<F: Fn(&PipeEvent) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.pipe.add(Arc::new(callback))
    }

    /// mafalda extension: called when a cell this router used was closed (its worker died or
    /// was retired), with the transports of this router that were lost.
    pub fn on_worker_died<F: Fn(&CellLost) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.handlers.cell_lost.add(Arc::new(callback))
    }

    /// mafalda extension: this router's numbers (cells, transports, producers, consumers, pipes).
    #[must_use]
    pub fn stats(&self) -> RouterStats {
        self.inner.stats()
    }

    /// mafalda extension: open pipes (source, target cell).
    #[must_use]
    pub fn pipes(&self) -> Vec<(PipeSource, CellId)> {
        self.inner.pipes.open().into_iter().map(|(source, cell)| (self.inner.virtual_source(source), cell)).collect()
    }

    /// mafalda extension: the real routers, by cell.
    #[must_use]
    pub fn real_routers(&self) -> Vec<(CellId, mediasoup::router::Router)> {
        self.inner.reals.all()
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
