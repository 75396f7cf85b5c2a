//! The virtual DataProducer: mediasoup's DataProducer API over the real one in its cell.

pub use mediasoup::data_producer::*;

use super::transport::Transport;
use super::transport_core::Child;
use super::{Router, RouterInner};
use crate::lifecycle::Lifecycle;
use crate::object::Slot;
use crate::worker::NotificationError;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, SctpStreamParameters, WebRtcMessage};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

pub(crate) struct DataProducerInner {
    id: DataProducerId,
    r#type: DataProducerType,
    sctp_stream_parameters: Option<SctpStreamParameters>,
    label: String,
    protocol: String,
    direct: bool,
    app_data: AppData,
    transport: Arc<dyn Transport>,
    router: Weak<RouterInner>,
    real: Slot<mediasoup::data_producer::DataProducer>,
    life: Lifecycle,
}

impl DataProducerInner {
    /// Leaves the router's registry once closed.
    fn forget(&self, closed_now: bool) {
        if closed_now {
            if let Some(router) = self.router.upgrade() {
                router.registry.remove_data_producer(&self.id);
            }
        }
    }

    fn close(&self) {
        self.forget(self.life.close());
    }
}

impl Drop for DataProducerInner {
    fn drop(&mut self) {
        self.close();
    }
}

impl Child for DataProducerInner {
    fn transport_closed(&self) {
        self.forget(self.life.transport_closed());
        drop(self.real.take());
    }
}

/// Data producer created on a transport other than a direct transport.
#[derive(Clone)]
pub struct RegularDataProducer {
    inner: Arc<DataProducerInner>,
}

impl fmt::Debug for RegularDataProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegularDataProducer").field("id", &self.inner.id).finish()
    }
}

impl From<RegularDataProducer> for DataProducer {
    fn from(producer: RegularDataProducer) -> Self {
        DataProducer::Regular(producer)
    }
}

/// Data producer created on a direct transport: the application sends with
/// [`DirectDataProducer::send`].
#[derive(Clone)]
pub struct DirectDataProducer {
    inner: Arc<DataProducerInner>,
}

impl fmt::Debug for DirectDataProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectDataProducer").field("id", &self.inner.id).finish()
    }
}

impl From<DirectDataProducer> for DataProducer {
    fn from(producer: DirectDataProducer) -> Self {
        DataProducer::Direct(producer)
    }
}

impl DirectDataProducer {
    /// Sends a direct message from the Rust process.
    pub fn send(
        &self,
        message: WebRtcMessage<'_>,
        subchannels: Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) -> Result<(), NotificationError> {
        match self.inner.real.get() {
            Some(mediasoup::data_producer::DataProducer::Direct(real)) => real
                .send(message, subchannels, required_subchannel, ignored_subchannel)
                .map_err(|_| NotificationError::ChannelClosed),
            _ => Err(NotificationError::ChannelClosed),
        }
    }
}

/// A data producer: data messages injected into the (virtual) router.
#[derive(Clone)]
#[non_exhaustive]
#[must_use = "Data producer will be closed on drop, make sure to keep it around for as long as needed"]
pub enum DataProducer {
    /// Data producer created on a transport other than a direct transport.
    Regular(RegularDataProducer),
    /// Data producer created on a direct transport.
    Direct(DirectDataProducer),
}

impl fmt::Debug for DataProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataProducer").field("id", &self.inner().id).field("closed", &self.closed()).finish()
    }
}

impl DataProducer {
    /// Wraps a real data producer; `id` is the virtual id (the real one except for data
    /// producers piped between virtual routers).
    pub(crate) fn wrap(
        real: mediasoup::data_producer::DataProducer,
        id: DataProducerId,
        transport: Arc<dyn Transport>,
        router: &Router,
    ) -> Self {
        let inner = Arc::new(DataProducerInner {
            id,
            r#type: real.r#type(),
            sctp_stream_parameters: real.sctp_stream_parameters(),
            label: real.label().clone(),
            protocol: real.protocol().clone(),
            direct: matches!(real, mediasoup::data_producer::DataProducer::Direct(_)),
            app_data: real.app_data().clone(),
            transport,
            router: Arc::downgrade(&router.inner),
            real: Slot::new(real),
            life: Lifecycle::default(),
        });
        Self::from_inner(inner)
    }

    fn from_inner(inner: Arc<DataProducerInner>) -> Self {
        if inner.direct {
            DataProducer::Direct(DirectDataProducer { inner })
        } else {
            DataProducer::Regular(RegularDataProducer { inner })
        }
    }

    fn inner(&self) -> &Arc<DataProducerInner> {
        match self {
            DataProducer::Regular(p) => &p.inner,
            DataProducer::Direct(p) => &p.inner,
        }
    }

    pub(crate) fn as_child(&self) -> Weak<dyn Child> {
        Arc::downgrade(self.inner()) as Weak<DataProducerInner>
    }

    fn real(&self) -> Result<mediasoup::data_producer::DataProducer, RequestError> {
        self.inner().real.request()
    }

    /// Data producer id.
    #[must_use]
    pub fn id(&self) -> DataProducerId {
        self.inner().id
    }

    /// Transport to which the data producer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner().transport
    }

    /// The type of the data producer.
    #[must_use]
    pub fn r#type(&self) -> DataProducerType {
        self.inner().r#type
    }

    /// The SCTP stream parameters (just if the data producer type is `Sctp`).
    #[must_use]
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner().sctp_stream_parameters
    }

    /// Whether the data producer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner().real.get().is_some_and(|r| r.paused())
    }

    /// The data producer label.
    #[must_use]
    pub fn label(&self) -> &String {
        &self.inner().label
    }

    /// The data producer sub-protocol.
    #[must_use]
    pub fn protocol(&self) -> &String {
        &self.inner().protocol
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
        self.real()?.pause().await
    }

    /// Resumes the data producer.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.real()?.resume().await
    }

    /// Callback is called when the transport this data producer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the data producer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(crate::object::inert_handler, |r| r.on_pause(callback))
    }

    /// Callback is called when the data producer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner().real.get().map_or_else(crate::object::inert_handler, |r| r.on_resume(callback))
    }

    /// Callback is called when the data producer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_close(Box::new(callback))
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakDataProducer {
        WeakDataProducer { inner: Arc::downgrade(self.inner()) }
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

/// A data producer that does not keep it alive.
#[derive(Clone)]
pub struct WeakDataProducer {
    inner: Weak<DataProducerInner>,
}

impl fmt::Debug for WeakDataProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakDataProducer").finish()
    }
}

impl WeakDataProducer {
    /// Upgrade to a strong handle, unless the data producer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<DataProducer> {
        self.inner.upgrade().map(DataProducer::from_inner)
    }
}
