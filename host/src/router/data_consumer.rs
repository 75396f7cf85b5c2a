//! The virtual DataConsumer: mediasoup's DataConsumer API over the real one in its transport's
//! cell; it holds the lease of the data pipe it reads from.

pub use mediasoup::data_consumer::*;

use super::pipes::PipeLease;
use super::transport::Transport;
use super::transport_core::Child;
use super::Router;
use crate::lifecycle::Lifecycle;
use crate::object::{inert_handler, Slot};
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, DataProducerId, SctpStreamParameters, WebRtcMessage};
use mediasoup::worker::RequestError;
use std::fmt;
use std::sync::{Arc, Weak};

pub(crate) struct DataConsumerInner {
    id: DataConsumerId,
    data_producer_id: DataProducerId,
    r#type: DataConsumerType,
    sctp_stream_parameters: Option<SctpStreamParameters>,
    label: String,
    protocol: String,
    direct: bool,
    app_data: AppData,
    transport: Arc<dyn Transport>,
    real: Slot<mediasoup::data_consumer::DataConsumer>,
    life: Lifecycle,
}

impl Drop for DataConsumerInner {
    fn drop(&mut self) {
        self.life.close();
    }
}

impl Child for DataConsumerInner {
    fn transport_closed(&self) {
        self.life.transport_closed();
        drop(self.real.take());
    }
}

/// Data consumer created on a transport other than a direct transport.
#[derive(Clone)]
pub struct RegularDataConsumer {
    inner: Arc<DataConsumerInner>,
}

impl fmt::Debug for RegularDataConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegularDataConsumer").field("id", &self.inner.id).finish()
    }
}

impl From<RegularDataConsumer> for DataConsumer {
    fn from(consumer: RegularDataConsumer) -> Self {
        DataConsumer::Regular(consumer)
    }
}

impl RegularDataConsumer {
    /// Sends a message to the consuming endpoint over the SCTP association.
    pub async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError> {
        match self.inner.real.get() {
            Some(mediasoup::data_consumer::DataConsumer::Regular(real)) => real.send(message).await,
            _ => Err(RequestError::ChannelClosed),
        }
    }
}

/// Data consumer created on a direct transport: messages arrive through
/// [`DataConsumer::on_message`].
#[derive(Clone)]
pub struct DirectDataConsumer {
    inner: Arc<DataConsumerInner>,
}

impl fmt::Debug for DirectDataConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectDataConsumer").field("id", &self.inner.id).finish()
    }
}

impl From<DirectDataConsumer> for DataConsumer {
    fn from(consumer: DirectDataConsumer) -> Self {
        DataConsumer::Direct(consumer)
    }
}

/// A data consumer: a data producer's messages forwarded to an endpoint.
#[derive(Clone)]
#[non_exhaustive]
#[must_use = "Data consumer will be closed on drop, make sure to keep it around for as long as needed"]
pub enum DataConsumer {
    /// Data consumer created on a transport other than a direct transport.
    Regular(RegularDataConsumer),
    /// Data consumer created on a direct transport.
    Direct(DirectDataConsumer),
}

impl fmt::Debug for DataConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataConsumer").field("id", &self.inner().id).field("closed", &self.closed()).finish()
    }
}

impl DataConsumer {
    /// Wraps a real data consumer; `lease` (its data pipe, if any) is released when the real
    /// data consumer closes.
    pub(crate) fn wrap(
        real: mediasoup::data_consumer::DataConsumer,
        data_producer_id: DataProducerId,
        transport: Arc<dyn Transport>,
        _router: &Router,
        lease: Option<PipeLease>,
    ) -> Self {
        let inner = Arc::new(DataConsumerInner {
            id: real.id(),
            data_producer_id,
            r#type: real.r#type(),
            sctp_stream_parameters: real.sctp_stream_parameters(),
            label: real.label().clone(),
            protocol: real.protocol().clone(),
            direct: matches!(real, mediasoup::data_consumer::DataConsumer::Direct(_)),
            app_data: real.app_data().clone(),
            transport,
            real: Slot::new(real.clone()),
            life: Lifecycle::default(),
        });
        let weak = Arc::downgrade(&inner);
        real.on_data_producer_close(move || {
            if let Some(inner) = weak.upgrade() {
                inner.life.source_closed();
            }
        })
        .detach();
        let weak = Arc::downgrade(&inner);
        real.on_close(move || {
            drop(lease);
            if let Some(inner) = weak.upgrade() {
                inner.life.close();
            }
        })
        .detach();
        Self::from_inner(inner)
    }

    fn from_inner(inner: Arc<DataConsumerInner>) -> Self {
        if inner.direct {
            DataConsumer::Direct(DirectDataConsumer { inner })
        } else {
            DataConsumer::Regular(RegularDataConsumer { inner })
        }
    }

    fn inner(&self) -> &Arc<DataConsumerInner> {
        match self {
            DataConsumer::Regular(c) => &c.inner,
            DataConsumer::Direct(c) => &c.inner,
        }
    }

    pub(crate) fn as_child(&self) -> Weak<dyn Child> {
        Arc::downgrade(self.inner()) as Weak<DataConsumerInner>
    }

    fn real(&self) -> Result<mediasoup::data_consumer::DataConsumer, RequestError> {
        self.inner().real.request()
    }

    fn live(&self) -> Option<mediasoup::data_consumer::DataConsumer> {
        self.inner().real.get()
    }

    /// Data consumer id.
    #[must_use]
    pub fn id(&self) -> DataConsumerId {
        self.inner().id
    }

    /// The associated data producer id.
    #[must_use]
    pub fn data_producer_id(&self) -> DataProducerId {
        self.inner().data_producer_id
    }

    /// Transport to which the data consumer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner().transport
    }

    /// The type of the data consumer.
    #[must_use]
    pub fn r#type(&self) -> DataConsumerType {
        self.inner().r#type
    }

    /// Whether the data consumer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.live().is_some_and(|r| r.paused())
    }

    /// Whether the associated data producer is paused.
    #[must_use]
    pub fn producer_paused(&self) -> bool {
        self.live().is_some_and(|r| r.producer_paused())
    }

    /// The SCTP stream parameters (just if the data consumer type is `Sctp`).
    #[must_use]
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner().sctp_stream_parameters
    }

    /// The data consumer label.
    #[must_use]
    pub fn label(&self) -> &String {
        &self.inner().label
    }

    /// The data consumer sub-protocol.
    #[must_use]
    pub fn protocol(&self) -> &String {
        &self.inner().protocol
    }

    /// The data consumer subchannels.
    #[must_use]
    pub fn subchannels(&self) -> Vec<u16> {
        self.live().map(|r| r.subchannels()).unwrap_or_default()
    }

    /// Custom application data.
    #[must_use]
    pub fn app_data(&self) -> &AppData {
        &self.inner().app_data
    }

    /// Whether the data consumer is closed.
    #[must_use]
    pub fn closed(&self) -> bool {
        self.inner().life.closed()
    }

    /// Dump DataConsumer.
    #[doc(hidden)]
    pub async fn dump(&self) -> Result<DataConsumerDump, RequestError> {
        self.real()?.dump().await
    }

    /// Returns current statistics of the data consumer.
    pub async fn get_stats(&self) -> Result<Vec<DataConsumerStat>, RequestError> {
        self.real()?.get_stats().await
    }

    /// Pauses the data consumer.
    pub async fn pause(&self) -> Result<(), RequestError> {
        self.real()?.pause().await
    }

    /// Resumes the data consumer.
    pub async fn resume(&self) -> Result<(), RequestError> {
        self.real()?.resume().await
    }

    /// Returns the number of bytes of data currently buffered to be sent over the SCTP association.
    pub async fn get_buffered_amount(&self) -> Result<u32, RequestError> {
        self.real()?.get_buffered_amount().await
    }

    /// Whenever the underlying SCTP association buffered bytes drop to this value,
    /// `on_buffered_amount_low` is called.
    pub async fn set_buffered_amount_low_threshold(&self, threshold: u32) -> Result<(), RequestError> {
        self.real()?.set_buffered_amount_low_threshold(threshold).await
    }

    /// Sets subchannels to the worker DataConsumer.
    pub async fn set_subchannels(&self, subchannels: Vec<u16>) -> Result<(), RequestError> {
        self.real()?.set_subchannels(subchannels).await
    }

    /// Adds a subchannel to the worker DataConsumer.
    pub async fn add_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        self.real()?.add_subchannel(subchannel).await
    }

    /// Removes a subchannel from the worker DataConsumer.
    pub async fn remove_subchannel(&self, subchannel: u16) -> Result<(), RequestError> {
        self.real()?.remove_subchannel(subchannel).await
    }

    /// Callback is called when a message has been received from the corresponding data producer.
    pub fn on_message<F: Fn(&WebRtcMessage<'_>) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_message(callback))
    }

    /// Callback is called when a message could not be sent because the SCTP send buffer was full.
    pub fn on_sctp_send_buffer_full<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_sctp_send_buffer_full(callback))
    }

    /// Emitted when the underlying SCTP association buffered bytes drop down to the threshold.
    pub fn on_buffered_amount_low<F: Fn(u32) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_buffered_amount_low(callback))
    }

    /// Callback is called when the associated data producer is closed.
    pub fn on_data_producer_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_source_close(Box::new(callback))
    }

    /// Callback is called when the data consumer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_pause(callback))
    }

    /// Callback is called when the data consumer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_resume(callback))
    }

    /// Callback is called when the associated data producer is paused.
    pub fn on_data_producer_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_data_producer_pause(callback))
    }

    /// Callback is called when the associated data producer is resumed.
    pub fn on_data_producer_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.live().map_or_else(inert_handler, |r| r.on_data_producer_resume(callback))
    }

    /// Callback is called when the transport this data consumer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the data consumer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_close(Box::new(callback))
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakDataConsumer {
        WeakDataConsumer { inner: Arc::downgrade(self.inner()) }
    }
}

/// A data consumer that does not keep it alive.
#[derive(Clone)]
pub struct WeakDataConsumer {
    inner: Weak<DataConsumerInner>,
}

impl fmt::Debug for WeakDataConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakDataConsumer").finish()
    }
}

impl WeakDataConsumer {
    /// Upgrade to a strong handle, unless the data consumer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<DataConsumer> {
        self.inner.upgrade().map(DataConsumer::from_inner)
    }
}
