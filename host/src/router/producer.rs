//! The virtual Producer: mediasoup's Producer API over the real producer in its cell. The
//! virtual router records where it lives so consumers elsewhere get it piped.

pub use mediasoup::producer::*;

use super::transport::Transport;
use super::transport_core::Child;
use super::{Router, RouterInner};
use crate::cell::{Cell, Count};
use crate::lifecycle::Lifecycle;
use crate::object::{inert_handler, Slot};
use crate::placement::CellId;
use crate::worker::NotificationError;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, MediaKind, RtpParameters};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

pub(crate) struct ProducerInner {
    id: ProducerId,
    kind: MediaKind,
    rtp_parameters: RtpParameters,
    consumable_rtp_parameters: RtpParameters,
    r#type: ProducerType,
    direct: bool,
    app_data: AppData,
    transport: Arc<dyn Transport>,
    router: Weak<RouterInner>,
    cell: CellId,
    real: Slot<mediasoup::producer::Producer>,
    life: Lifecycle,
}

impl ProducerInner {
    /// Leaves the router's registry once closed.
    fn forget(&self, closed_now: bool) {
        if closed_now {
            if let Some(router) = self.router.upgrade() {
                router.registry.remove_producer(&self.id);
            }
        }
    }

    fn close(&self) {
        self.forget(self.life.close());
    }
}

impl Drop for ProducerInner {
    fn drop(&mut self) {
        self.close();
    }
}

impl Child for ProducerInner {
    fn transport_closed(&self) {
        self.forget(self.life.transport_closed());
        drop(self.real.take());
    }
}

/// Producer created on a transport other than a direct transport.
#[derive(Clone)]
pub struct RegularProducer {
    inner: Arc<ProducerInner>,
}

impl fmt::Debug for RegularProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegularProducer").field("id", &self.inner.id).finish()
    }
}

impl From<RegularProducer> for Producer {
    fn from(producer: RegularProducer) -> Self {
        Producer::Regular(producer)
    }
}

/// Producer created on a direct transport: the application sends RTP with [`DirectProducer::send`].
#[derive(Clone)]
pub struct DirectProducer {
    inner: Arc<ProducerInner>,
}

impl fmt::Debug for DirectProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectProducer").field("id", &self.inner.id).finish()
    }
}

impl From<DirectProducer> for Producer {
    fn from(producer: DirectProducer) -> Self {
        Producer::Direct(producer)
    }
}

impl DirectProducer {
    /// Sends an RTP packet from the Rust process.
    pub fn send(&self, rtp_packet: Vec<u8>) -> Result<(), NotificationError> {
        match self.inner.real.get() {
            Some(mediasoup::producer::Producer::Direct(real)) => {
                real.send(rtp_packet).map_err(|_| NotificationError::ChannelClosed)
            }
            _ => Err(NotificationError::ChannelClosed),
        }
    }
}

/// A producer: an audio or video source injected into the (virtual) router.
#[derive(Clone)]
#[non_exhaustive]
#[must_use = "Producer will be closed on drop, make sure to keep it around for as long as needed"]
pub enum Producer {
    /// Producer created on a transport other than a direct transport.
    Regular(RegularProducer),
    /// Producer created on a direct transport.
    Direct(DirectProducer),
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("id", &self.inner().id)
            .field("kind", &self.inner().kind)
            .field("closed", &self.closed())
            .finish()
    }
}

impl Producer {
    /// Wraps a real producer; `id` is the virtual id (the real one except for producers piped
    /// between virtual routers).
    pub(crate) fn wrap(
        real: mediasoup::producer::Producer,
        id: ProducerId,
        transport: Arc<dyn Transport>,
        router: &Router,
        cell: &Arc<Cell>,
    ) -> Self {
        let ticket = cell.ticket(&router.inner.counts, Count::Producer, Vec::new());
        real.on_close(move || drop(ticket)).detach();
        let direct = matches!(real, mediasoup::producer::Producer::Direct(_));
        let inner = Arc::new(ProducerInner {
            id,
            kind: real.kind(),
            rtp_parameters: real.rtp_parameters().clone(),
            consumable_rtp_parameters: real.consumable_rtp_parameters().clone(),
            r#type: real.r#type(),
            direct,
            app_data: real.app_data().clone(),
            transport,
            router: Arc::downgrade(&router.inner),
            cell: cell.id(),
            real: Slot::new(real),
            life: Lifecycle::default(),
        });
        Self::from_inner(inner)
    }

    fn inner(&self) -> &Arc<ProducerInner> {
        match self {
            Producer::Regular(p) => &p.inner,
            Producer::Direct(p) => &p.inner,
        }
    }

    fn from_inner(inner: Arc<ProducerInner>) -> Self {
        if inner.direct {
            Producer::Direct(DirectProducer { inner })
        } else {
            Producer::Regular(RegularProducer { inner })
        }
    }

    /// Closes the producer now (a pipe producer whose source went away).
    pub(crate) fn close_now(&self) {
        self.inner().close();
        drop(self.inner().real.take());
    }

    pub(crate) fn as_child(&self) -> Weak<dyn Child> {
        Arc::downgrade(self.inner()) as Weak<ProducerInner>
    }

    fn real(&self) -> Result<mediasoup::producer::Producer, RequestError> {
        self.inner().real.request()
    }

    /// Producer id.
    #[must_use]
    pub fn id(&self) -> ProducerId {
        self.inner().id
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
        self.inner().kind
    }

    /// Producer RTP parameters.
    #[must_use]
    pub fn rtp_parameters(&self) -> &RtpParameters {
        &self.inner().rtp_parameters
    }

    /// Producer type.
    #[must_use]
    pub fn r#type(&self) -> ProducerType {
        self.inner().r#type
    }

    /// Whether the Producer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner().real.get().is_some_and(|r| r.paused())
    }

    /// Producer score list.
    #[must_use]
    pub fn score(&self) -> Vec<ProducerScore> {
        self.inner().real.get().map(|r| r.score()).unwrap_or_default()
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

    /// Pauses the producer (consumers everywhere, piped ones included, stop receiving).
    pub async fn pause(&self) -> Result<(), RequestError> {
        self.real()?.pause().await
    }

    /// Resumes the producer.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.real()?.resume().await
    }

    /// Instructs the producer to emit "trace" events.
    pub async fn enable_trace_event(&self, types: Vec<ProducerTraceEventType>) -> Result<(), RequestError> {
        self.real()?.enable_trace_event(types).await
    }

    /// Callback is called when the producer score changes.
    pub fn on_score<F: Fn(&[ProducerScore]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(inert_handler, |r| r.on_score(callback))
    }

    /// Callback is called when the video orientation changes.
    pub fn on_video_orientation_change<F: Fn(ProducerVideoOrientation) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        self.inner().real.get().map_or_else(inert_handler, |r| r.on_video_orientation_change(callback))
    }

    /// Callback is called when the producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(inert_handler, |r| r.on_pause(callback))
    }

    /// Callback is called when the producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(inert_handler, |r| r.on_resume(callback))
    }

    /// See [`Producer::enable_trace_event`].
    pub fn on_trace<F: Fn(&ProducerTraceEventData) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(inert_handler, |r| r.on_trace(callback))
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
        &self.inner().consumable_rtp_parameters
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakProducer {
        WeakProducer { inner: Arc::downgrade(self.inner()) }
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

/// A producer that does not keep it alive.
#[derive(Clone)]
pub struct WeakProducer {
    inner: Weak<ProducerInner>,
}

impl fmt::Debug for WeakProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakProducer").finish()
    }
}

impl WeakProducer {
    /// Upgrade to a strong handle, unless the producer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<Producer> {
        self.inner.upgrade().map(Producer::from_inner)
    }
}
