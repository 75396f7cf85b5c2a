//! What all four virtual transports share: the real transport in its cell, mediasoup's
//! transport events, and produce/consume with on-demand piping.

use super::consumer::{Consumer, ConsumerChild};
use super::data_consumer::DataConsumer;
use super::data_producer::DataProducer;
use super::pipes::PipeSource;
use super::producer::Producer;
use super::real_routers::RouterUse;
use super::transport::{Transport, TransportTraceEventData, TransportTraceEventType};
use super::Router;
use crate::cell::{Cell, Count, Ticket};
use crate::object::{inert_handler, lock, on_close_handler, Lost, Member, Slot};
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::prelude::{
    AppData, ConsumeDataError, ConsumeError, ConsumerOptions, DataConsumerOptions, DataProducerId, DataProducerOptions,
    ProduceDataError, ProduceError, ProducerId, ProducerOptions, TransportId,
};
use mediasoup::transport::TransportGeneric as RealTransport;
use mediasoup::worker::RequestError;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// A producer or consumer whose transport was closed under it.
pub(crate) trait Child: Send + Sync {
    /// Fires `on_transport_close` then `on_close`, and drops the real object.
    fn transport_closed(&self);
}

#[allow(clippy::type_complexity)]
#[derive(Default)]
struct Handlers {
    new_producer: Bag<Arc<dyn Fn(&Producer) + Send + Sync>>,
    new_consumer: Bag<Arc<dyn Fn(&Consumer) + Send + Sync>>,
    new_data_producer: Bag<Arc<dyn Fn(&DataProducer) + Send + Sync>>,
    new_data_consumer: Bag<Arc<dyn Fn(&DataConsumer) + Send + Sync>>,
    router_close: BagOnce<Box<dyn FnOnce() + Send>>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
}

/// The shared part of a virtual transport over real transport `T`, with type-specific data
/// `X` kept for reading after the transport closed.
pub(crate) struct TransportCore<T, X> {
    pub(crate) id: TransportId,
    pub(crate) extra: X,
    pub(crate) router: Router,
    pub(crate) cell: Arc<Cell>,
    app_data: AppData,
    pub(crate) real: Slot<T>,
    handlers: Handlers,
    closed: AtomicBool,
    children: Mutex<Vec<Weak<dyn Child>>>,
}

impl<T, X> std::fmt::Debug for TransportCore<T, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("id", &self.id).field("cell", &self.cell.id()).finish()
    }
}

/// The data producer id a `DataConsumerOptions` names (mediasoup keeps the field private;
/// its `Debug` output is the only public view of it).
pub(crate) fn data_producer_id_of(options: &DataConsumerOptions) -> Option<DataProducerId> {
    let text = format!("{options:?}");
    let start = text.find("data_producer_id: DataProducerId(")? + "data_producer_id: DataProducerId(".len();
    let end = start + text[start..].find(')')?;
    DataProducerId::from_str(&text[start..end]).ok()
}

/// The same options naming another data producer (mediasoup keeps the id and the SCTP
/// reliability fields private; `Debug` is their only public view, and the constructors the
/// only way to set them).
pub(crate) fn retarget(options: DataConsumerOptions, data_producer_id: DataProducerId) -> DataConsumerOptions {
    let text = format!("{options:?}");
    let field = |name: &str| -> Option<u16> {
        let start = text.find(&format!("{name}: Some("))? + name.len() + ": Some(".len();
        text[start..].split(')').next()?.parse().ok()
    };
    let mut out = if text.contains("ordered: Some(true)") {
        DataConsumerOptions::new_sctp_ordered(data_producer_id)
    } else if let Some(life_time) = field("max_packet_life_time") {
        DataConsumerOptions::new_sctp_unordered_with_life_time(data_producer_id, life_time)
    } else if let Some(retransmits) = field("max_retransmits") {
        DataConsumerOptions::new_sctp_unordered_with_retransmits(data_producer_id, retransmits)
    } else {
        // `new_sctp` and `new_direct` differ only in the (public) subchannels.
        DataConsumerOptions::new_direct(data_producer_id, None)
    };
    out.paused = options.paused;
    out.subchannels = options.subchannels;
    out.app_data = options.app_data;
    out
}

impl<T: RealTransport + Clone, X: Send + Sync + 'static> TransportCore<T, X> {
    /// Wraps `real`, created in `cell` under `router_use`; counts it (with its labels) until the
    /// real transport closes. The core joins its cell and router, which close it with them.
    pub(crate) fn new(
        router: &Router,
        cell: Arc<Cell>,
        router_use: RouterUse,
        labels: Vec<String>,
        real: T,
        extra: X,
    ) -> Arc<Self> {
        let ticket: Ticket = cell.ticket(&router.inner.counts, Count::Transport, labels);
        real.on_close(Box::new(move || drop((router_use, ticket)))).detach();
        let core = Arc::new(Self {
            id: real.id(),
            extra,
            router: router.clone(),
            cell,
            app_data: real.app_data().clone(),
            real: Slot::new(real),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
            children: Mutex::default(),
        });
        let member: Weak<dyn Member> = Arc::downgrade(&core) as Weak<Self>;
        core.cell.join(member.clone());
        core.router.inner.registry.join(member);
        core
    }

    pub(crate) fn app_data(&self) -> &AppData {
        &self.app_data
    }

    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn adopt(&self, child: Weak<dyn Child>) {
        let mut children = lock(&self.children);
        children.retain(|c| c.strong_count() > 0);
        children.push(child);
    }

    pub(crate) async fn produce(
        &self,
        handle: Arc<dyn Transport>,
        options: ProducerOptions,
    ) -> Result<Producer, ProduceError> {
        self.produce_as(handle, options, None).await
    }

    /// Produces; the virtual producer gets `virtual_id` instead of the real id when given.
    pub(crate) async fn produce_as(
        &self,
        handle: Arc<dyn Transport>,
        options: ProducerOptions,
        virtual_id: Option<ProducerId>,
    ) -> Result<Producer, ProduceError> {
        let real = self.real.request().map_err(ProduceError::Request)?;
        let real_producer = real.produce(options).await?;
        let real_id = real_producer.id();
        let id = virtual_id.unwrap_or(real_id);
        let registry = &self.router.inner.registry;
        if registry.producer(&id).is_some() {
            return Err(ProduceError::AlreadyExists(id));
        }
        let producer = Producer::wrap(real_producer, id, handle, &self.router, &self.cell);
        registry.add_producer(&producer, &self.cell, real_id);
        self.adopt(producer.as_child());
        self.handlers.new_producer.call(|cb| cb(&producer));
        Ok(producer)
    }

    pub(crate) async fn consume(
        &self,
        handle: Arc<dyn Transport>,
        options: ConsumerOptions,
    ) -> Result<Consumer, ConsumeError> {
        let real = self.real.request().map_err(ConsumeError::Request)?;
        let id = options.producer_id;
        let Some(found) = self.router.inner.registry.producer(&id) else {
            // Unknown here: the real transport reports it exactly as mediasoup does (invalid
            // capabilities first, then the unknown producer).
            return match real.consume(options).await {
                Err(error) => Err(error),
                Ok(_) => Err(ConsumeError::ProducerNotFound(id)),
            };
        };
        // Capabilities that cannot consume fail in the real consume below, with mediasoup's own
        // error; the pipe made for it is then released with the lease.
        let lease = self
            .router
            .ensure_in(PipeSource::Producer(found.real_id), &found.home, &self.cell)
            .await
            .map_err(ConsumeError::Request)?;
        let mut options = options;
        options.producer_id = found.real_id;
        let real_consumer = real.consume(options).await?;
        let consumer = Consumer::wrap(real_consumer, id, handle, &self.router, &self.cell, lease);
        self.adopt(ConsumerChild::of(&consumer));
        self.handlers.new_consumer.call(|cb| cb(&consumer));
        Ok(consumer)
    }

    pub(crate) async fn produce_data(
        &self,
        handle: Arc<dyn Transport>,
        options: DataProducerOptions,
    ) -> Result<DataProducer, ProduceDataError> {
        self.produce_data_as(handle, options, None).await
    }

    /// Produces data; the virtual data producer gets `virtual_id` when given.
    pub(crate) async fn produce_data_as(
        &self,
        handle: Arc<dyn Transport>,
        options: DataProducerOptions,
        virtual_id: Option<DataProducerId>,
    ) -> Result<DataProducer, ProduceDataError> {
        let real = self.real.request().map_err(ProduceDataError::Request)?;
        let real_data_producer = real.produce_data(options).await?;
        let real_id = real_data_producer.id();
        let id = virtual_id.unwrap_or(real_id);
        let registry = &self.router.inner.registry;
        if registry.data_producer(&id).is_some() {
            return Err(ProduceDataError::AlreadyExists(id));
        }
        let data_producer = DataProducer::wrap(real_data_producer, id, handle, &self.router);
        registry.add_data_producer(&data_producer, &self.cell, real_id);
        self.adopt(data_producer.as_child());
        self.handlers.new_data_producer.call(|cb| cb(&data_producer));
        Ok(data_producer)
    }

    pub(crate) async fn consume_data(
        &self,
        handle: Arc<dyn Transport>,
        options: DataConsumerOptions,
    ) -> Result<DataConsumer, ConsumeDataError> {
        let real = self.real.request().map_err(ConsumeDataError::Request)?;
        let id = data_producer_id_of(&options).ok_or_else(|| {
            ConsumeDataError::Request(RequestError::Response { reason: "no data producer id".into() })
        })?;
        let found = self.router.inner.registry.data_producer(&id).ok_or(ConsumeDataError::DataProducerNotFound(id))?;
        let lease = self
            .router
            .ensure_in(PipeSource::DataProducer(found.real_id), &found.home, &self.cell)
            .await
            .map_err(ConsumeDataError::Request)?;
        let options = retarget(options, found.real_id);
        let real_data_consumer = real.consume_data(options).await?;
        let data_consumer = DataConsumer::wrap(real_data_consumer, id, handle, &self.router, lease);
        self.adopt(data_consumer.as_child());
        self.handlers.new_data_consumer.call(|cb| cb(&data_consumer));
        Ok(data_consumer)
    }

    pub(crate) async fn enable_trace_event(&self, types: Vec<TransportTraceEventType>) -> Result<(), RequestError> {
        self.real.request()?.enable_trace_event(types).await
    }

    pub(crate) fn on_new_producer(&self, callback: Arc<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId {
        self.handlers.new_producer.add(callback)
    }

    pub(crate) fn on_new_consumer(&self, callback: Arc<dyn Fn(&Consumer) + Send + Sync + 'static>) -> HandlerId {
        self.handlers.new_consumer.add(callback)
    }

    pub(crate) fn on_new_data_producer(
        &self,
        callback: Arc<dyn Fn(&DataProducer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.handlers.new_data_producer.add(callback)
    }

    pub(crate) fn on_new_data_consumer(
        &self,
        callback: Arc<dyn Fn(&DataConsumer) + Send + Sync + 'static>,
    ) -> HandlerId {
        self.handlers.new_data_consumer.add(callback)
    }

    pub(crate) fn on_trace(
        &self,
        callback: Arc<dyn Fn(&TransportTraceEventData) + Send + Sync + 'static>,
    ) -> HandlerId {
        match self.real.get() {
            Some(real) => real.on_trace(callback),
            None => inert_handler(),
        }
    }

    pub(crate) fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        if self.closed() {
            return inert_handler();
        }
        self.handlers.router_close.add(callback)
    }

    pub(crate) fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        on_close_handler(&self.handlers.close, self.closed(), callback)
    }

    /// The transport's cell or router went away: close everything on it, firing mediasoup's
    /// events in mediasoup's order (children's `on_transport_close`, then `on_router_close`,
    /// then `on_close`).
    pub(crate) fn detach(&self, lost: &mut Lost) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        lost.transports.push((self.router.id(), self.id));
        let children = std::mem::take(&mut *lock(&self.children));
        for child in children.iter().filter_map(Weak::upgrade) {
            child.transport_closed();
        }
        self.handlers.router_close.call_simple();
        self.handlers.close.call_simple();
        drop(self.real.take());
    }
}

impl<T: RealTransport + Clone, X: Send + Sync + 'static> Member for TransportCore<T, X> {
    fn detach(&self, lost: &mut Lost) {
        TransportCore::detach(self, lost);
    }
}

impl<T, X> Drop for TransportCore<T, X> {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.handlers.close.call_simple();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retargets_every_kind_of_data_consumer_options() {
        let (from, to) = (
            DataProducerId::from_str("00000000-0000-4000-8000-00000000000a").unwrap(),
            DataProducerId::from_str("00000000-0000-4000-8000-00000000000b").unwrap(),
        );
        let make: [fn(DataProducerId) -> DataConsumerOptions; 5] = [
            DataConsumerOptions::new_sctp,
            |id| DataConsumerOptions::new_direct(id, Some(vec![1, 2])),
            DataConsumerOptions::new_sctp_ordered,
            |id| DataConsumerOptions::new_sctp_unordered_with_life_time(id, 1500),
            |id| DataConsumerOptions::new_sctp_unordered_with_retransmits(id, 7),
        ];
        for make in make {
            let mut original = make(from);
            original.paused = true;
            let moved = retarget(original.clone(), to);
            assert_eq!(data_producer_id_of(&moved), Some(to));
            let expected = format!("{original:?}").replace(&from.to_string(), &to.to_string());
            assert_eq!(format!("{moved:?}"), expected);
        }
    }

    #[test]
    fn reads_the_private_data_producer_id() {
        let id: DataProducerId = crate::object::fresh_id();
        assert_eq!(data_producer_id_of(&DataConsumerOptions::new_direct(id, None)), Some(id));
        assert_eq!(data_producer_id_of(&DataConsumerOptions::new_sctp_ordered(id)), Some(id));
    }
}
