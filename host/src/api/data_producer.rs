//! The virtual DataProducer: mediasoup's DataProducer API over the real one in its cell.

pub use crate::options::DataProducerOptions;
pub use mediasoup::data_producer::*;

use super::endpoint::{kinded_handle, on, Endpoint};
use super::router::{Router, RouterInner};
use super::transport::Transport;
use crate::backend::DataProducerBackend;
use crate::internals::cell::{Cell, Count};
use crate::internals::pause::{Followers, PausableEnd};
use crate::internals::pipes::{PipedObject, Replicas};
use crate::internals::registry::Registered;
use crate::internals::source::PipeSource;
use crate::placement::CellId;
use crate::worker::NotificationError;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, SctpStreamParameters, WebRtcMessage};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

/// What a data producer keeps of its real one.
pub(crate) struct DataProducerMeta {
    pub(crate) id: DataProducerId,
    /// The pipe ends in other cells pausing and resuming with it.
    followers: Followers,
    /// Its copies in other cells (a direct data producer's sends reach them all).
    replicas: Replicas,
    /// The real object's id (differs from `id` only for a renamed pipe producer).
    real_id: DataProducerId,
    r#type: DataProducerType,
    sctp_stream_parameters: Option<SctpStreamParameters>,
    label: String,
    protocol: String,
    pub(crate) direct: bool,
}

pub(crate) type DataProducerInner = Endpoint<dyn DataProducerBackend, DataProducerMeta>;

kinded_handle!(
    /// A data producer: data messages injected into the (virtual) router.
    #[must_use = "Data producer will be closed on drop, make sure to keep it around for as long as needed"]
    DataProducer,
    /// Data producer created on a transport other than a direct transport.
    RegularDataProducer,
    /// Data producer created on a direct transport: the application sends with
    /// [`DirectDataProducer::send`].
    DirectDataProducer,
    /// A data producer that does not keep it alive.
    WeakDataProducer,
    DataProducerInner
);

impl DirectDataProducer {
    /// Sends a direct message from the Rust process.
    pub fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), NotificationError> {
        let Some(real) = self.inner.live() else { return Err(NotificationError::ChannelClosed) };
        // Its copies in other cells first (consumers there filter by subchannel themselves),
        // then the original.
        self.inner.meta.replicas.send(&message, &subchannels, required_subchannel, ignored_subchannel);
        real.send(message, subchannels, required_subchannel, ignored_subchannel)
            .map_err(|_| NotificationError::ChannelClosed)
    }
}

impl DataProducer {
    /// Wraps a real data producer living in `cell`, known to the application as `known`.
    pub(crate) fn wrap(
        real: Arc<dyn DataProducerBackend>,
        known: DataProducerId,
        transport: Arc<dyn Transport>,
        router: &Router,
        cell: &Arc<Cell>,
        app_data: AppData,
    ) -> Self {
        let held = cell.hold_id(PipeSource::DataProducer(real.id()));
        let ticket = cell.ticket(&router.inner.counts, Count::DataProducer, Vec::new());
        let load = cell.ledger().data();
        real.on_close(Box::new(move || drop((held, ticket, load)))).detach();
        let meta = DataProducerMeta {
            id: known,
            real_id: real.id(),
            followers: Followers::default(),
            replicas: Replicas::default(),
            r#type: real.r#type(),
            sctp_stream_parameters: real.sctp_stream_parameters(),
            label: real.label(),
            protocol: real.protocol(),
            direct: real.is_direct(),
        };
        let id = meta.id;
        let weak: Weak<RouterInner> = Arc::downgrade(&router.inner);
        let forget = Box::new(move || {
            if let Some(router) = weak.upgrade() {
                router.data_producers.remove(&id);
                // Its copies in other cells go with it (its pipes go when their consumer does).
                router.pipes.close_source(PipeSource::DataProducer(id));
            }
        });
        Self::from_inner(Arc::new(Endpoint::new(meta, transport, cell.id(), app_data, real, Some(forget))))
    }

    /// Closes the data producer now (a pipe data producer whose source went away).
    pub(crate) fn close_now(&self) {
        self.inner().close_now();
    }

    fn real(&self) -> Result<Arc<dyn DataProducerBackend>, RequestError> {
        self.inner().real()
    }

    /// The real data producer's id (the application's unless renamed).
    pub(crate) fn real_id(&self) -> DataProducerId {
        self.inner().meta.real_id
    }

    /// Data producer id.
    #[must_use]
    pub fn id(&self) -> DataProducerId {
        self.inner().meta.id
    }

    /// Transport to which the data producer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner().transport
    }

    /// mafalda extension: the cell (worker) the data producer lives in.
    #[must_use]
    pub fn cell(&self) -> CellId {
        self.inner().cell
    }

    /// The type of the data producer.
    #[must_use]
    pub fn r#type(&self) -> DataProducerType {
        self.inner().meta.r#type
    }

    /// The SCTP stream parameters (just if the data producer type is `Sctp`).
    #[must_use]
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner().meta.sctp_stream_parameters
    }

    /// Whether the data producer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner().pause_state().0
    }

    /// The data producer label.
    #[must_use]
    pub fn label(&self) -> &String {
        &self.inner().meta.label
    }

    /// The data producer sub-protocol.
    #[must_use]
    pub fn protocol(&self) -> &String {
        &self.inner().meta.protocol
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner().app_data
    }

    /// Whether the data producer is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner().life.closed()
    }

    /// Dump DataProducer.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<DataProducerDump, RequestError> {
        self.real()?.dump().await
    }

    /// Returns current statistics of the data producer.
    pub async fn get_stats(&self) -> Result<Vec<DataProducerStat>, RequestError> {
        self.real()?.get_stats().await
    }

    /// Pauses the data producer.
    pub async fn pause(&self) -> Result<(), RequestError> {
        let real = self.real()?;
        self.inner().meta.followers.apply(true, real.pause()).await
    }

    /// Resumes the data producer (its data consumers in every worker know when this returns).
    pub async fn resume(&self) -> Result<(), RequestError> {
        let real = self.real()?;
        self.inner().meta.followers.apply(false, real.resume()).await
    }

    /// Callback is called when the transport this data producer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the data producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_pause(callback))
    }

    /// Callback is called when the data producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_resume(callback))
    }

    /// Callback is called when the data producer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_close(Box::new(callback))
    }
}

/// A data producer made by [`Router::pipe_data_producer_to_router`]: it lives as long as its
/// source unless turned into a regular one with [`NonClosingDataProducer::into_inner`].
pub struct NonClosingDataProducer {
    data_producer: Option<DataProducer>,
    source: WeakDataProducer,
}

impl fmt::Debug for NonClosingDataProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NonClosingDataProducer").field("data_producer", &self.data_producer).finish()
    }
}

impl NonClosingDataProducer {
    pub(crate) fn new(data_producer: DataProducer, source: WeakDataProducer) -> Self {
        Self { data_producer: Some(data_producer), source }
    }

    /// Turns into a regular data producer that closes on drop.
    pub fn into_inner(mut self) -> DataProducer {
        match self.data_producer.take() {
            Some(data_producer) => data_producer,
            None => unreachable!("the data producer is only taken here or on drop"),
        }
    }
}

impl Drop for NonClosingDataProducer {
    fn drop(&mut self) {
        if let Some(data_producer) = self.data_producer.take() {
            if let Some(source) = self.source.upgrade() {
                source.on_close(move || drop(data_producer)).detach();
            }
        }
    }
}

impl PipedObject for DataProducer {
    fn followers(&self) -> &Followers {
        &self.inner().meta.followers
    }

    fn is_paused(&self) -> bool {
        self.paused()
    }

    fn replicated(&self) -> Option<(Arc<dyn DataProducerBackend>, &Replicas)> {
        let inner = self.inner();
        inner.meta.direct.then(|| inner.live().map(|real| (real, &inner.meta.replicas))).flatten()
    }
}

/// A data producer made by `pipe_data_producer_to_router` follows its source.
#[async_trait::async_trait]
impl PausableEnd for WeakDataProducer {
    fn paused_state(&self) -> Option<bool> {
        self.upgrade().filter(|p| !p.closed()).map(|p| p.paused())
    }

    async fn set_paused(&self, paused: bool) {
        if let Some(end) = self.upgrade() {
            let _ = if paused { end.pause().await } else { end.resume().await };
        }
    }
}

impl Registered for WeakDataProducer {
    type Strong = DataProducer;

    fn live(&self) -> Option<DataProducer> {
        self.upgrade().filter(|p| !p.closed())
    }
}
