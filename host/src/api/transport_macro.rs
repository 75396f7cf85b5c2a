//! The macro implementing mediasoup's transport traits for the four virtual transports.

/// Implements mediasoup's transport traits, `Debug`, `downgrade()` and the weak handle for a
/// virtual transport `$name { inner: Arc<TransportCore<$backend, $extra>> }` (`$mediasoup` names
/// the dump and stat types).
macro_rules! virtual_transport {
    ($name:ident, $weak:ident, $backend:ty, $mediasoup:ty, $extra:ty) => {
        impl $name {
            pub(crate) fn handle(&self) -> std::sync::Arc<dyn $crate::api::transport::Transport> {
                std::sync::Arc::new(self.clone())
            }

            /// Downgrade to a weak handle.
            #[must_use]
            pub fn downgrade(&self) -> $weak {
                $weak { inner: std::sync::Arc::downgrade(&self.inner) }
            }

            /// mafalda extension: the cell (worker) this transport was placed in.
            #[must_use]
            pub fn cell(&self) -> $crate::placement::CellId {
                self.inner.cell.id()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.inner.id)
                    .field("cell", &self.inner.cell.id())
                    .field("closed", &self.inner.closed())
                    .finish()
            }
        }

        #[async_trait::async_trait]
        impl $crate::api::transport::Transport for $name {
            fn id(&self) -> mediasoup::prelude::TransportId {
                self.inner.id
            }

            fn router(&self) -> &$crate::api::router::Router {
                &self.inner.router
            }

            fn app_data(&self) -> &mediasoup::prelude::AppData {
                self.inner.app_data()
            }

            fn closed(&self) -> bool {
                self.inner.closed()
            }

            async fn produce(
                &self,
                producer_options: $crate::options::ProducerOptions,
            ) -> Result<$crate::api::producer::Producer, mediasoup::prelude::ProduceError> {
                self.inner.produce(self.handle(), producer_options, None, None).await
            }

            async fn consume(
                &self,
                consumer_options: mediasoup::prelude::ConsumerOptions,
            ) -> Result<$crate::api::consumer::Consumer, mediasoup::prelude::ConsumeError> {
                self.inner.consume(self.handle(), consumer_options).await
            }

            async fn produce_data(
                &self,
                data_producer_options: $crate::options::DataProducerOptions,
            ) -> Result<$crate::api::data_producer::DataProducer, mediasoup::prelude::ProduceDataError> {
                self.inner.produce_data(self.handle(), data_producer_options, None).await
            }

            async fn consume_data(
                &self,
                data_consumer_options: $crate::api::data_consumer::DataConsumerOptions,
            ) -> Result<$crate::api::data_consumer::DataConsumer, mediasoup::prelude::ConsumeDataError> {
                self.inner.consume_data(self.handle(), data_consumer_options).await
            }

            async fn enable_trace_event(
                &self,
                types: Vec<$crate::api::transport::TransportTraceEventType>,
            ) -> Result<(), mediasoup::worker::RequestError> {
                self.inner.enable_trace_event(types).await
            }

            fn on_new_producer(
                &self,
                callback: std::sync::Arc<dyn Fn(&$crate::api::producer::Producer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_new_producer(callback)
            }

            fn on_new_consumer(
                &self,
                callback: std::sync::Arc<dyn Fn(&$crate::api::consumer::Consumer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_new_consumer(callback)
            }

            fn on_new_data_producer(
                &self,
                callback: std::sync::Arc<dyn Fn(&$crate::api::data_producer::DataProducer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_new_data_producer(callback)
            }

            fn on_new_data_consumer(
                &self,
                callback: std::sync::Arc<dyn Fn(&$crate::api::data_consumer::DataConsumer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_new_data_consumer(callback)
            }

            fn on_trace(
                &self,
                callback: std::sync::Arc<
                    dyn Fn(&$crate::api::transport::TransportTraceEventData) + Send + Sync + 'static,
                >,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_trace(callback)
            }

            fn on_router_close(
                &self,
                callback: Box<dyn FnOnce() + Send + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_router_close(callback)
            }

            fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> event_listener_primitives::HandlerId {
                self.inner.on_close(callback)
            }
        }

        #[async_trait::async_trait]
        impl $crate::api::transport::TransportGeneric for $name {
            type Dump = <$mediasoup as mediasoup::transport::TransportGeneric>::Dump;
            type Stat = <$mediasoup as mediasoup::transport::TransportGeneric>::Stat;

            async fn dump(&self) -> Result<Self::Dump, mediasoup::worker::RequestError> {
                self.inner.real.request()?.dump().await
            }

            async fn get_stats(&self) -> Result<Vec<Self::Stat>, mediasoup::worker::RequestError> {
                self.inner.real.request()?.get_stats().await
            }
        }

        /// A weak handle that does not keep the transport alive.
        #[derive(Clone)]
        pub struct $weak {
            inner: std::sync::Weak<$crate::api::transport_core::TransportCore<$backend, $extra>>,
        }

        impl std::fmt::Debug for $weak {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($weak)).finish()
            }
        }

        impl $weak {
            /// Upgrade to a strong handle, unless the transport is gone.
            #[must_use]
            pub fn upgrade(&self) -> Option<$name> {
                self.inner.upgrade().map(|inner| $name { inner })
            }
        }
    };
}

pub(crate) use virtual_transport;
