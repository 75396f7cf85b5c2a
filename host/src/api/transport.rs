//! The transport traits of mediasoup, over virtual objects: a transport's `router()` is the
//! virtual router, and what it produces and consumes are virtual producers and consumers.

pub use mediasoup::transport::*;

use super::consumer::Consumer;
use super::data_consumer::{DataConsumer, DataConsumerOptions};
use super::data_producer::DataProducer;
use super::producer::Producer;
use super::router::Router;
use crate::options::{DataProducerOptions, ProducerOptions};
use async_trait::async_trait;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::{AppData, ConsumerOptions};
use mediasoup::worker::RequestError;
use std::fmt::Debug;
use std::sync::Arc;

/// A transport connects an endpoint with a router and carries its producers and consumers.
#[async_trait]
pub trait Transport: Debug + Send + Sync {
    /// Transport id.
    #[must_use]
    fn id(&self) -> TransportId;

    /// Router to which transport belongs.
    fn router(&self) -> &Router;

    /// Custom application data.
    #[must_use]
    fn app_data(&self) -> &AppData;

    /// Whether the transport is closed.
    #[must_use]
    fn closed(&self) -> bool;

    /// Instructs the router to receive audio or video RTP (or SRTP depending on the transport).
    async fn produce(&self, producer_options: ProducerOptions) -> Result<Producer, ProduceError>;

    /// Instructs the router to send audio or video RTP; pipes the producer to this transport's
    /// worker first when it lives on another one.
    async fn consume(&self, consumer_options: ConsumerOptions) -> Result<Consumer, ConsumeError>;

    /// Instructs the router to receive data messages.
    async fn produce_data(&self, data_producer_options: DataProducerOptions) -> Result<DataProducer, ProduceDataError>;

    /// Instructs the router to send data messages; pipes the data producer here when needed.
    async fn consume_data(&self, data_consumer_options: DataConsumerOptions) -> Result<DataConsumer, ConsumeDataError>;

    /// Instructs the transport to emit "trace" events.
    async fn enable_trace_event(&self, types: Vec<TransportTraceEventType>) -> Result<(), RequestError>;

    /// Callback is called when a new producer is created.
    fn on_new_producer(&self, callback: Arc<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when a new consumer is created.
    fn on_new_consumer(&self, callback: Arc<dyn Fn(&Consumer) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when a new data producer is created.
    fn on_new_data_producer(&self, callback: Arc<dyn Fn(&DataProducer) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when a new data consumer is created.
    fn on_new_data_consumer(&self, callback: Arc<dyn Fn(&DataConsumer) + Send + Sync + 'static>) -> HandlerId;

    /// See [`Transport::enable_trace_event`].
    fn on_trace(&self, callback: Arc<dyn Fn(&TransportTraceEventData) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when the router this transport belongs to is closed for whatever
    /// reason (also when the worker hosting this transport was closed).
    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;

    /// Callback is called when the transport is closed for whatever reason.
    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
}

/// Generic transport trait with methods available on all transports in addition to
/// [`Transport`].
#[async_trait]
pub trait TransportGeneric: Transport + Clone + 'static {
    /// Dump data structure specific to each transport.
    #[doc(hidden)]
    type Dump: Debug + 'static;
    /// Stats data structure specific to each transport.
    type Stat: Debug + 'static;

    /// Dump Transport.
    #[doc(hidden)]
    async fn dump(&self) -> Result<Self::Dump, RequestError>;

    /// Returns current RTC statistics of the transport.
    async fn get_stats(&self) -> Result<Vec<Self::Stat>, RequestError>;
}
