//! The virtual Consumer: mediasoup's Consumer API over the real consumer in its transport's
//! cell. It holds its pipe lease: when the last consumer of a piped producer in a cell closes,
//! the pipe is torn down.

pub use mediasoup::consumer::*;

use super::pipes::PipeLease;
use super::transport::Transport;
use super::transport_core::Child;
use super::Router;
use crate::cell::{Cell, Count};
use crate::lifecycle::Lifecycle;
use crate::object::{inert_handler, Slot};
use crate::placement::CellId;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, MediaKind, ProducerId, RtpParameters};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

pub(crate) struct ConsumerInner {
    id: ConsumerId,
    producer_id: ProducerId,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    r#type: ConsumerType,
    app_data: AppData,
    transport: Arc<dyn Transport>,
    cell: CellId,
    real: Slot<mediasoup::consumer::Consumer>,
    life: Lifecycle,
}

impl Drop for ConsumerInner {
    fn drop(&mut self) {
        self.life.close();
    }
}

/// Adapts a consumer to its transport's child list.
pub(crate) struct ConsumerChild;

impl ConsumerChild {
    pub(crate) fn of(consumer: &Consumer) -> Weak<dyn Child> {
        Arc::downgrade(&consumer.inner) as Weak<ConsumerInner>
    }
}

impl Child for ConsumerInner {
    fn transport_closed(&self) {
        self.life.transport_closed();
        drop(self.real.take());
    }
}

/// A consumer: a producer's media forwarded to an endpoint through a transport.
#[derive(Clone)]
#[must_use = "Consumer will be closed on drop, make sure to keep it around for as long as needed"]
pub struct Consumer {
    pub(crate) inner: Arc<ConsumerInner>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.inner.id)
            .field("producer_id", &self.inner.producer_id)
            .field("closed", &self.closed())
            .finish()
    }
}

impl Consumer {
    /// Wraps a real consumer; `lease` (the pipe it reads from, if any) and the cell's count are
    /// released when the real consumer closes, for whatever reason.
    pub(crate) fn wrap(
        real: mediasoup::consumer::Consumer,
        producer_id: ProducerId,
        transport: Arc<dyn Transport>,
        router: &Router,
        cell: &Arc<Cell>,
        lease: Option<PipeLease>,
    ) -> Self {
        let ticket = cell.ticket(&router.inner.counts, Count::Consumer, Vec::new());
        let inner = Arc::new(ConsumerInner {
            id: real.id(),
            producer_id,
            kind: real.kind(),
            rtp_parameters: real.rtp_parameters().clone(),
            r#type: real.r#type(),
            app_data: real.app_data().clone(),
            transport,
            cell: cell.id(),
            real: Slot::new(real.clone()),
            life: Lifecycle::default(),
        });
        let weak = Arc::downgrade(&inner);
        real.on_producer_close(move || {
            if let Some(inner) = weak.upgrade() {
                inner.life.source_closed();
            }
        })
        .detach();
        let weak = Arc::downgrade(&inner);
        real.on_close(move || {
            drop((ticket, lease));
            if let Some(inner) = weak.upgrade() {
                inner.life.close();
            }
        })
        .detach();
        Self { inner }
    }

    fn real(&self) -> Result<mediasoup::consumer::Consumer, RequestError> {
        self.inner.real.request()
    }

    fn live(&self) -> Option<mediasoup::consumer::Consumer> {
        self.inner.real.get()
    }

    /// Consumer id.
    #[must_use]
    pub fn id(&self) -> ConsumerId {
        self.inner.id
    }

    /// Associated Producer id.
    #[must_use]
    pub fn producer_id(&self) -> ProducerId {
        self.inner.producer_id
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
        self.inner.kind
    }

    /// Consumer RTP parameters.
    #[must_use]
    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.inner.rtp_parameters
    }

    /// Consumer type.
    #[must_use]
    pub fn r#type(&self) -> ConsumerType {
        self.inner.r#type
    }

    /// Whether the consumer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.live().is_some_and(|r| r.paused())
    }

    /// Whether the associated producer is paused.
    #[must_use]
    pub fn producer_paused(&self) -> bool {
        self.live().is_some_and(|r| r.producer_paused())
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

    /// Currently active spatial and temporal layers.
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
        self.real()?.dump().await
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

    /// Sets the preferred (highest) spatial and temporal layers to be sent to the endpoint.
    pub async fn set_preferred_layers(&self, consumer_layers: ConsumerLayers) -> Result<(), RequestError> {
        self.real()?.set_preferred_layers(consumer_layers).await
    }

    /// Sets the priority for this consumer.
    pub async fn set_priority(&self, priority: u8) -> Result<(), RequestError> {
        self.real()?.set_priority(priority).await
    }

    /// Unsets the priority for this consumer (back to 1).
    pub async fn unset_priority(&self) -> Result<(), RequestError> {
        self.real()?.unset_priority().await
    }

    /// Request a key frame from the associated producer.
    pub async fn request_key_frame(&self) -> Result<(), RequestError> {
        self.real()?.request_key_frame().await
    }

    /// Instructs the consumer to emit "trace" events.
    pub async fn enable_trace_event(&self, types: Vec<ConsumerTraceEventType>) -> Result<(), RequestError> {
        self.real()?.enable_trace_event(types).await
    }

    /// Callback is called for every RTP packet (only for consumers on a direct transport).
    pub fn on_rtp<F: Fn(&[u8]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_rtp(callback))
    }

    /// Callback is called when the consumer or its producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_pause(callback))
    }

    /// Callback is called when the consumer or its producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_resume(callback))
    }

    /// Callback is called when the associated producer is paused.
    pub fn on_producer_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_producer_pause(callback))
    }

    /// Callback is called when the associated producer is resumed.
    pub fn on_producer_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_producer_resume(callback))
    }

    /// Callback is called when the consumer score changes.
    pub fn on_score<F: Fn(&ConsumerScore) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_score(callback))
    }

    /// Callback is called when the spatial/temporal layers being sent to the endpoint change.
    pub fn on_layers_change<F: Fn(&Option<ConsumerLayers>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_layers_change(callback))
    }

    /// See [`Consumer::enable_trace_event`].
    pub fn on_trace<F: Fn(&ConsumerTraceEventData) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_trace(callback))
    }

    /// Callback is called when the associated producer is closed.
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

/// A consumer that does not keep it alive.
#[derive(Clone)]
pub struct WeakConsumer {
    inner: Weak<ConsumerInner>,
}

impl fmt::Debug for WeakConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakConsumer").finish()
    }
}

impl WeakConsumer {
    /// Upgrade to a strong handle, unless the consumer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<Consumer> {
        self.inner.upgrade().map(|inner| Consumer { inner })
    }
}
