//! The virtual Producer: mediasoup's Producer API over the real producer in its cell. The
//! virtual router records where it lives so consumers elsewhere get it piped.

pub use crate::options::ProducerOptions;
pub use mediasoup::producer::*;

use super::endpoint::{kinded_handle, on, Endpoint};
use super::router::{Router, RouterInner};
use super::transport::Transport;
use crate::backend::ProducerBackend;
use crate::internals::cell::{Cell, Count};
use crate::internals::load_model::Rate;
use crate::internals::object::run_later;
use crate::internals::pause::{Followers, PausableEnd};
use crate::internals::pipes::PipedObject;
use crate::internals::registry::Registered;
use crate::internals::source::PipeSource;
use crate::placement::CellId;
use crate::worker::NotificationError;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, MediaKind, RtpParameters};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

/// What a producer keeps of its real one.
pub(crate) struct ProducerMeta {
    pub(crate) id: ProducerId,
    /// The pipe ends in other cells pausing and resuming with it.
    followers: Followers,
    /// Its packet rate (what its consumers are priced at).
    rate: Arc<Rate>,
    /// The real object's id (differs from `id` only for a renamed pipe producer).
    real_id: ProducerId,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    consumable_rtp_parameters: RtpParameters,
    r#type: ProducerType,
    pub(crate) direct: bool,
}

pub(crate) type ProducerInner = Endpoint<dyn ProducerBackend, ProducerMeta>;

kinded_handle!(
    /// A producer: an audio or video source injected into the (virtual) router.
    #[must_use = "Producer will be closed on drop, make sure to keep it around for as long as needed"]
    Producer,
    /// Producer created on a transport other than a direct transport.
    RegularProducer,
    /// Producer created on a direct transport: the application sends RTP with
    /// [`DirectProducer::send`].
    DirectProducer,
    /// A producer that does not keep it alive.
    WeakProducer,
    ProducerInner
);

impl DirectProducer {
    /// Sends an RTP packet from the Rust process.
    pub fn send(&self, rtp_packet: Vec<u8>) -> Result<(), NotificationError> {
        match self.inner.live() {
            Some(real) => real.send(rtp_packet).map_err(|_| NotificationError::ChannelClosed),
            None => Err(NotificationError::ChannelClosed),
        }
    }
}

impl Producer {
    /// Wraps a real producer living in `cell`, known to the application as `known` (its real
    /// id unless renamed, see [`crate::internals::registry`]).
    ///
    /// The producer's packet rate is `rate` when it carries another's packets (a pipe producer
    /// `pipe_producer_to_router` made), else its own, measured from its stats; it is counted in
    /// its cell's ledger as received by the transport `load_id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn wrap(
        real: Arc<dyn ProducerBackend>,
        known: ProducerId,
        transport: Arc<dyn Transport>,
        router: &Router,
        cell: &Arc<Cell>,
        load_id: u64,
        rate: Option<Arc<Rate>>,
        app_data: AppData,
    ) -> Self {
        let ticket = cell.ticket(&router.inner.counts, Count::Producer, Vec::new());
        let held = cell.hold_id(PipeSource::Producer(real.id()));
        let rate = rate.unwrap_or_else(|| {
            let own = Rate::new(real.kind().into());
            router.inner.host.rates().track(&own, &real);
            own
        });
        let load = cell.ledger().receive(&rate, Some(load_id));
        real.on_close(Box::new(move || drop((ticket, held, load)))).detach();
        let meta = ProducerMeta {
            id: known,
            real_id: real.id(),
            followers: Followers::default(),
            rate,
            kind: real.kind(),
            rtp_parameters: real.rtp_parameters(),
            consumable_rtp_parameters: real.consumable_rtp_parameters(),
            r#type: real.r#type(),
            direct: real.is_direct(),
        };
        let id = meta.id;
        let weak: Weak<RouterInner> = Arc::downgrade(&router.inner);
        let forget = Box::new(move || {
            if let Some(router) = weak.upgrade() {
                router.producers.remove(&id);
                // mediasoup tells consumers asynchronously (from the worker), never inside the
                // application's `drop(producer)`: a handler may take a lock the dropper holds.
                run_later(move || router.producer_closed(&id));
            }
        });
        let inner = Arc::new(Endpoint::new(meta, transport, cell.id(), app_data, real, Some(forget)));
        Self::from_inner(inner)
    }

    /// Closes the producer now (a pipe producer whose source went away).
    pub(crate) fn close_now(&self) {
        self.inner().close_now();
    }

    fn real(&self) -> Result<Arc<dyn ProducerBackend>, RequestError> {
        self.inner().real()
    }

    /// Its packet rate, as the load model prices its consumers.
    pub(crate) fn rate(&self) -> &Arc<Rate> {
        &self.inner().meta.rate
    }

    /// The real producer's id (the application's unless renamed).
    pub(crate) fn real_id(&self) -> ProducerId {
        self.inner().meta.real_id
    }

    /// Producer id.
    #[must_use]
    pub fn id(&self) -> ProducerId {
        self.inner().meta.id
    }

    /// Transport to which the producer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner().transport
    }

    /// mafalda extension: the cell (worker) the producer lives in.
    #[must_use]
    pub fn cell(&self) -> CellId {
        self.inner().cell
    }

    /// Media kind.
    #[must_use]
    pub fn kind(&self) -> MediaKind {
        self.inner().meta.kind
    }

    /// Producer RTP parameters.
    #[must_use]
    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.inner().meta.rtp_parameters
    }

    /// Producer type.
    #[must_use]
    pub fn r#type(&self) -> ProducerType {
        self.inner().meta.r#type
    }

    /// Whether the Producer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner().pause_state().0
    }

    /// Producer score list.
    #[must_use]
    pub fn score(&self) -> Vec<ProducerScore> {
        self.inner().live().map(|r| r.score()).unwrap_or_default()
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner().app_data
    }

    /// Whether the producer is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner().life.closed()
    }

    /// Dump Producer.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<ProducerDump, RequestError> {
        self.real()?.dump().await
    }

    /// Returns current RTC statistics of the producer.
    pub async fn get_stats(&self) -> Result<Vec<ProducerStat>, RequestError> {
        self.real()?.get_stats().await
    }

    /// Pauses the producer; returns once its consumers in every worker (behind pipes too) know.
    pub async fn pause(&self) -> Result<(), RequestError> {
        let real = self.real()?;
        self.inner().meta.followers.apply(true, real.pause()).await
    }

    /// Resumes the producer; returns once its consumers in every worker know.
    pub async fn resume(&self) -> Result<(), RequestError> {
        let real = self.real()?;
        self.inner().meta.followers.apply(false, real.resume()).await
    }

    /// Instructs the producer to emit "trace" events.
    pub async fn enable_trace_event(&self, types: Vec<ProducerTraceEventType>) -> Result<(), RequestError> {
        self.real()?.enable_trace_event(types).await
    }

    /// Callback is called when the producer score changes.
    pub fn on_score<F: Fn(&[ProducerScore]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_score(callback))
    }

    /// Callback is called when the video orientation changes.
    pub fn on_video_orientation_change<F: Fn(ProducerVideoOrientation) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        on!(self.inner(), on_video_orientation_change(callback))
    }

    /// Callback is called when the producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_pause(callback))
    }

    /// Callback is called when the producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_resume(callback))
    }

    /// See [`Producer::enable_trace_event`].
    pub fn on_trace<F: Fn(&ProducerTraceEventData) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_trace(callback))
    }

    /// Callback is called when the transport this producer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the producer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_close(Box::new(callback))
    }

    /// Consumable RTP parameters.
    #[doc(hidden)]
    #[must_use]
    pub fn consumable_rtp_parameters(&self) -> &RtpParameters {
        &self.inner().meta.consumable_rtp_parameters
    }
}

/// A producer made by [`Router::pipe_producer_to_router`]: it lives as long as its source
/// producer unless turned into a regular producer with [`PipedProducer::into_inner`].
pub struct PipedProducer {
    producer: Option<Producer>,
    source: WeakProducer,
}

impl fmt::Debug for PipedProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipedProducer").field("producer", &self.producer).finish()
    }
}

impl PipedProducer {
    pub(crate) fn new(producer: Producer, source: WeakProducer) -> Self {
        Self { producer: Some(producer), source }
    }

    /// Turns into a regular producer that closes on drop.
    pub fn into_inner(mut self) -> Producer {
        match self.producer.take() {
            Some(producer) => producer,
            None => unreachable!("the producer is only taken here or on drop"),
        }
    }
}

impl Drop for PipedProducer {
    fn drop(&mut self) {
        if let Some(producer) = self.producer.take() {
            // Tie the pipe producer's lifetime to the source producer's, as mediasoup does.
            if let Some(source) = self.source.upgrade() {
                source.on_close(move || drop(producer)).detach();
            }
        }
    }
}

impl PipedObject for Producer {
    fn followers(&self) -> &Followers {
        &self.inner().meta.followers
    }

    fn rate(&self) -> Option<&Arc<Rate>> {
        Some(&self.inner().meta.rate)
    }

    fn is_paused(&self) -> bool {
        self.paused()
    }
}

/// A producer made by `pipe_producer_to_router` follows its source like an internal pipe end.
#[async_trait::async_trait]
impl PausableEnd for WeakProducer {
    fn paused_state(&self) -> Option<bool> {
        self.upgrade().filter(|p| !p.closed()).map(|p| p.paused())
    }

    async fn set_paused(&self, paused: bool) {
        if let Some(end) = self.upgrade() {
            let _ = if paused { end.pause().await } else { end.resume().await };
        }
    }
}

impl Registered for WeakProducer {
    type Strong = Producer;

    fn live(&self) -> Option<Producer> {
        self.upgrade().filter(|p| !p.closed())
    }
}
