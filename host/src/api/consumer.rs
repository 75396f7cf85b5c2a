//! The virtual Consumer: mediasoup's Consumer API over the real consumer in its transport's
//! cell. It holds its pipe lease: when the last consumer of a piped producer in a cell closes,
//! the pipe is torn down.

pub use mediasoup::consumer::*;

use super::endpoint::{on, weak_handle, Endpoint};
use super::router::Router;
use super::transport::Transport;
use super::transport_core::Child;
use crate::backend::ConsumerBackend;
use crate::internals::cell::{Cell, Count};
use crate::internals::load_model::Rate;
use crate::internals::pipes::PipeLease;
use crate::placement::CellId;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, MediaKind, ProducerId, RtpParameters};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

/// What a consumer keeps of its real one.
pub(crate) struct ConsumerMeta {
    pub(crate) id: ConsumerId,
    producer_id: ProducerId,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    r#type: ConsumerType,
}

pub(crate) type ConsumerInner = Endpoint<dyn ConsumerBackend, ConsumerMeta>;

/// A consumer: a producer's media forwarded to an endpoint through a transport.
#[derive(Clone)]
#[must_use = "Consumer will be closed on drop, make sure to keep it around for as long as needed"]
pub struct Consumer {
    pub(crate) inner: Arc<ConsumerInner>,
}

weak_handle!(
    /// A consumer that does not keep it alive.
    WeakConsumer,
    Consumer,
    ConsumerInner,
    |inner| Consumer { inner }
);

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.inner.meta.id)
            .field("producer_id", &self.inner.meta.producer_id)
            .field("closed", &self.closed())
            .finish()
    }
}

impl Consumer {
    /// Wraps a real consumer of (virtual) producer `producer_id`; `lease` (the pipe it reads
    /// from, if any) and the cell's count are released when the real consumer closes.
    ///
    /// It forwards its producer's packets (`rate`) and is counted so in its cell's ledger, on
    /// its transport `load_id`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn wrap(
        real: Arc<dyn ConsumerBackend>,
        producer_id: ProducerId,
        rate: &Arc<Rate>,
        transport: Arc<dyn Transport>,
        router: &Router,
        cell: &Arc<Cell>,
        load_id: u64,
        lease: Option<PipeLease>,
        app_data: AppData,
    ) -> Self {
        let ticket = (
            cell.ticket(&router.inner.counts, Count::Consumer, Vec::new()),
            cell.ledger().forward(rate, Some(load_id)),
        );
        let meta = ConsumerMeta {
            id: real.id(),
            producer_id,
            kind: real.kind(),
            rtp_parameters: real.rtp_parameters(),
            r#type: real.r#type(),
        };
        let inner = Arc::new(Endpoint::new(meta, transport, cell.id(), app_data, Arc::clone(&real), None));
        router.inner.add_consumer_of(producer_id, Arc::downgrade(&inner));
        let weak = Arc::downgrade(&inner);
        real.on_producer_close(Box::new(move || {
            if let Some(inner) = weak.upgrade() {
                inner.source_closed();
                // This may be the last reference (the application dropped its handle meanwhile,
                // on another thread): it must not die on the worker's channel thread, whose
                // handler lock the real object's drop takes.
                crate::internals::object::drop_later(inner);
            }
        }))
        .detach();
        let weak = Arc::downgrade(&inner);
        real.on_close(Box::new(move || {
            drop((ticket, lease));
            if let Some(inner) = weak.upgrade() {
                inner.close();
            }
        }))
        .detach();
        Self { inner }
    }

    pub(crate) fn as_child(&self) -> Weak<dyn Child> {
        Arc::downgrade(&self.inner) as Weak<ConsumerInner>
    }

    fn real(&self) -> Result<Arc<dyn ConsumerBackend>, RequestError> {
        self.inner.real()
    }

    fn live(&self) -> Option<Arc<dyn ConsumerBackend>> {
        self.inner.live()
    }

    /// Consumer id.
    #[must_use]
    pub fn id(&self) -> ConsumerId {
        self.inner.meta.id
    }

    /// Associated Producer id.
    #[must_use]
    pub fn producer_id(&self) -> ProducerId {
        self.inner.meta.producer_id
    }

    /// Transport to which the consumer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// mafalda extension: the cell (worker) the consumer lives in (its transport's).
    #[must_use]
    pub fn cell(&self) -> CellId {
        self.inner.cell
    }

    /// Media kind.
    #[must_use]
    pub fn kind(&self) -> MediaKind {
        self.inner.meta.kind
    }

    /// Consumer RTP parameters.
    #[must_use]
    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.inner.meta.rtp_parameters
    }

    /// Consumer type.
    #[must_use]
    pub fn r#type(&self) -> ConsumerType {
        self.inner.meta.r#type
    }

    /// Whether the consumer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner.pause_state().0
    }

    /// Whether the associated producer is paused.
    #[must_use]
    pub fn producer_paused(&self) -> bool {
        self.inner.pause_state().1
    }

    /// Current priority.
    #[must_use]
    pub fn priority(&self) -> u8 {
        self.live().map_or(1, |r| r.priority())
    }

    /// Consumer score.
    #[must_use]
    pub fn score(&self) -> ConsumerScore {
        self.live().map_or(ConsumerScore { score: 0, producer_score: 0, producer_scores: Vec::new() }, |r| r.score())
    }

    /// Preferred spatial and temporal layers.
    #[must_use]
    pub fn preferred_layers(&self) -> Option<ConsumerLayers> {
        self.live().and_then(|r| r.preferred_layers())
    }

    /// Current spatial and temporal layers.
    #[must_use]
    pub fn current_layers(&self) -> Option<ConsumerLayers> {
        self.live().and_then(|r| r.current_layers())
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner.app_data
    }

    /// Whether the consumer is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner.life.closed()
    }

    /// Dump Consumer.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<ConsumerDump, RequestError> {
        let mut dump = self.real()?.dump().await?;
        // A consumer on another worker consumes its producer's pipe end there: the dump names
        // the producer the application knows, as Router::dump does.
        dump.producer_id = self.producer_id();
        Ok(dump)
    }

    /// Returns current RTC statistics of the consumer.
    pub async fn get_stats(&self) -> Result<Vec<ConsumerRtpStreamStat>, RequestError> {
        self.real()?.get_stats().await
    }

    /// Pauses the consumer.
    pub async fn pause(&self) -> Result<(), RequestError> {
        self.real()?.pause().await
    }

    /// Resumes the consumer.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.real()?.resume().await
    }

    /// Sets preferred video layers.
    pub async fn set_preferred_layers(&self, consumer_layers: ConsumerLayers) -> Result<(), RequestError> {
        self.real()?.set_preferred_layers(consumer_layers).await
    }

    /// Sets priority for this consumer.
    pub async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        self.real()?.set_priority(priority).await
    }

    /// Unsets priority for this consumer.
    pub async fn unset_priority(&self) -> Result<(), RequestError> {
        self.real()?.unset_priority().await
    }

    /// Requests a key frame from the associated producer.
    pub async fn request_key_frame(&self) -> Result<(), RequestError> {
        self.real()?.request_key_frame().await
    }

    /// Instructs the consumer to emit "trace" events.
    pub async fn enable_trace_event(&self, types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError> {
        self.real()?.enable_trace_event(types).await
    }

    /// Callback is called when the consumer receives through its router an RTP packet.
    pub fn on_rtp<F: Fn(&[u8]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_rtp(callback))
    }

    /// Callback is called when the consumer or its producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_pause(callback))
    }

    /// Callback is called when the consumer or its producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_resume(callback))
    }

    /// Callback is called when the associated producer is paused.
    pub fn on_producer_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_producer_pause(callback))
    }

    /// Callback is called when the associated producer is resumed.
    pub fn on_producer_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_producer_resume(callback))
    }

    /// Callback is called when the consumer score changes.
    pub fn on_score<F: Fn(&ConsumerScore) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_score(callback))
    }

    /// Callback is called when the spatial/temporal layers being sent to the endpoint change.
    pub fn on_layers_change<F: Fn(&Option<ConsumerLayers>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_layers_change(callback))
    }

    /// See [`Consumer::enable_trace_event`].
    pub fn on_trace<F: Fn(&ConsumerTraceEventData) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner, on_trace(callback))
    }

    /// Callback is called when the associated producer is closed for whatever reason.
    pub fn on_producer_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.life.on_source_close(Box::new(callback))
    }

    /// Callback is called when the transport this consumer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the consumer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner.life.on_close(Box::new(callback))
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakConsumer {
        WeakConsumer { inner: Arc::downgrade(&self.inner) }
    }
}
