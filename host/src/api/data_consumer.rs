//! The virtual DataConsumer: mediasoup's DataConsumer API over the real one in its transport's
//! cell; it holds the lease of the data pipe it reads from.

pub use crate::options::DataConsumerOptions;
pub use mediasoup::data_consumer::*;

use super::endpoint::{kinded_handle, on, Endpoint};
use super::transport::Transport;
use crate::backend::DataConsumerBackend;
use crate::internals::cell::{Cell, Count};
use crate::internals::pipes::PipeLease;
use crate::placement::CellId;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, DataProducerId, SctpStreamParameters, WebRtcMessage};
use mediasoup::worker::RequestError;
use std::sync::Arc;

/// What a data consumer keeps of its real one.
pub(crate) struct DataConsumerMeta {
    pub(crate) id: DataConsumerId,
    data_producer_id: DataProducerId,
    r#type: DataConsumerType,
    sctp_stream_parameters: Option<SctpStreamParameters>,
    label: String,
    protocol: String,
    pub(crate) direct: bool,
}

pub(crate) type DataConsumerInner = Endpoint<dyn DataConsumerBackend, DataConsumerMeta>;

kinded_handle!(
    /// A data consumer: a data producer's messages forwarded to an endpoint.
    #[must_use = "Data consumer will be closed on drop, make sure to keep it around for as long as needed"]
    DataConsumer,
    /// Data consumer created on a transport other than a direct transport.
    RegularDataConsumer,
    /// Data consumer created on a direct transport: messages arrive through
    /// [`DataConsumer::on_message`].
    DirectDataConsumer,
    /// A data consumer that does not keep it alive.
    WeakDataConsumer,
    DataConsumerInner
);

impl RegularDataConsumer {
    /// Sends a message to the consuming endpoint over the SCTP association.
    pub async fn send(&self, message: WebRtcMessage<'_>) -> Result<u32, RequestError> {
        self.inner.real()?.send(message).await
    }
}

impl DataConsumer {
    /// Wraps a real data consumer; `lease` (its data pipe, if any) is released when the real
    /// data consumer closes.
    pub(crate) fn wrap(
        real: Arc<dyn DataConsumerBackend>,
        data_producer_id: DataProducerId,
        transport: Arc<dyn Transport>,
        (router, cell): (&super::router::Router, &Arc<Cell>),
        lease: Option<PipeLease>,
        app_data: AppData,
    ) -> Self {
        let ticket = cell.ticket(&router.inner.counts, Count::DataConsumer, Vec::new());
        let meta = DataConsumerMeta {
            id: real.id(),
            data_producer_id,
            r#type: real.r#type(),
            sctp_stream_parameters: real.sctp_stream_parameters(),
            label: real.label(),
            protocol: real.protocol(),
            direct: real.is_direct(),
        };
        let inner = Arc::new(Endpoint::new(meta, transport, cell.id(), app_data, Arc::clone(&real), None));
        let load = cell.ledger().data();
        let weak = Arc::downgrade(&inner);
        real.on_data_producer_close(Box::new(move || {
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
            drop((lease, ticket, load));
            if let Some(inner) = weak.upgrade() {
                inner.close();
            }
        }))
        .detach();
        Self::from_inner(inner)
    }

    fn real(&self) -> Result<Arc<dyn DataConsumerBackend>, RequestError> {
        self.inner().real()
    }

    fn live(&self) -> Option<Arc<dyn DataConsumerBackend>> {
        self.inner().live()
    }

    /// Data consumer id.
    #[must_use]
    pub fn id(&self) -> DataConsumerId {
        self.inner().meta.id
    }

    /// The associated data producer id.
    #[must_use]
    pub fn data_producer_id(&self) -> DataProducerId {
        self.inner().meta.data_producer_id
    }

    /// Transport to which the data consumer belongs.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner().transport
    }

    /// mafalda extension: the cell (worker) the data consumer lives in.
    #[must_use]
    pub fn cell(&self) -> CellId {
        self.inner().cell
    }

    /// The type of the data consumer.
    #[must_use]
    pub fn r#type(&self) -> DataConsumerType {
        self.inner().meta.r#type
    }

    /// Whether the data consumer is paused.
    #[must_use]
    pub fn paused(&self) -> bool {
        self.inner().pause_state().0
    }

    /// Whether the associated data producer is paused.
    #[must_use]
    pub fn producer_paused(&self) -> bool {
        self.inner().pause_state().1
    }

    /// The SCTP stream parameters (just if the data consumer type is `Sctp`).
    #[must_use]
    pub fn sctp_stream_parameters(&self) -> Option<SctpStreamParameters> {
        self.inner().meta.sctp_stream_parameters
    }

    /// The data consumer label.
    #[must_use]
    pub fn label(&self) -> &String {
        &self.inner().meta.label
    }

    /// The data consumer sub-protocol.
    #[must_use]
    pub fn protocol(&self) -> &String {
        &self.inner().meta.protocol
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
        let mut dump = self.real()?.dump().await?;
        // Named by the data producer the application knows, not its pipe end (see Consumer::dump).
        dump.data_producer_id = self.data_producer_id();
        Ok(dump)
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

    /// Returns the number of bytes of data currently buffered to be sent over the SCTP
    /// association.
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
        on!(self.inner(), on_message(callback))
    }

    /// Callback is called when a message could not be sent because the SCTP send buffer was full.
    pub fn on_sctp_send_buffer_full<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_sctp_send_buffer_full(callback))
    }

    /// Emitted when the underlying SCTP association buffered bytes drop down to the threshold.
    pub fn on_buffered_amount_low<F: Fn(u32) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_buffered_amount_low(callback))
    }

    /// Callback is called when the associated data producer is closed.
    pub fn on_data_producer_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_source_close(Box::new(callback))
    }

    /// Callback is called when the data consumer is paused.
    pub fn on_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_pause(callback))
    }

    /// Callback is called when the data consumer is resumed.
    pub fn on_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_resume(callback))
    }

    /// Callback is called when the associated data producer is paused.
    pub fn on_data_producer_pause<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_data_producer_pause(callback))
    }

    /// Callback is called when the associated data producer is resumed.
    pub fn on_data_producer_resume<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        on!(self.inner(), on_data_producer_resume(callback))
    }

    /// Callback is called when the transport this data consumer belongs to is closed.
    pub fn on_transport_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_transport_close(Box::new(callback))
    }

    /// Callback is called when the data consumer is closed for whatever reason.
    pub fn on_close<F: FnOnce() + Send + 'static>(&self, callback: F) -> HandlerId {
        self.inner().life.on_close(Box::new(callback))
    }
}
