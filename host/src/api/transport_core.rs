//! What all four virtual transports share: the real transport in its cell (a backend handle),
//! mediasoup's transport events, and produce/consume with on-demand piping.

use super::consumer::Consumer;
use super::data_consumer::{DataConsumer, DataConsumerOptions};
use super::data_producer::DataProducer;
use super::producer::Producer;
use super::router::{Placed, Router};
use super::transport::{Transport, TransportTraceEventData, TransportTraceEventType};
use crate::backend::{RouterBackend, TransportBackend};
use crate::internals::cell::{Cell, Count, Origin, Ticket};
use crate::internals::load_model::Rate;
use crate::internals::object::{inert_handler, lock, on_close_handler, push_live, Lost, Member, Slot};
use crate::internals::pipes::{PipeFrom, PipeSource};
use crate::internals::registry::Found;
use crate::options::{DataProducerOptions, ProducerOptions};
use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::ortc::ConsumerRtpParametersError;
use mediasoup::prelude::{
    AppData, ConsumeDataError, ConsumeError, ConsumerOptions, DataProducerId, ProduceDataError, ProduceError,
    ProducerId, TransportId,
};
use mediasoup::worker::RequestError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Refuses, with mediasoup's own error, capabilities that cannot consume a producer living in
/// another cell, before anything is piped for them. `home` is the producer's real router; only
/// this process's routers answer `can_consume` exactly, so for a producer on another host the
/// real consume decides (after the pipe, which is then released).
async fn check_consumable<B: ?Sized + TransportBackend>(
    home: Option<Arc<dyn RouterBackend>>,
    found: &Found<Producer, ProducerId>,
    real: &Arc<B>,
    options: &ConsumerOptions,
) -> Result<(), ConsumeError> {
    let Some(home) = home.filter(|_| found.home.origin() != Origin::Remote) else { return Ok(()) };
    if home.can_consume(&found.real, &options.rtp_capabilities) {
        return Ok(());
    }
    // Invalid capabilities are reported as such by the real transport (the producer is not in
    // its router, so it cannot succeed); valid ones have no codec in common with the producer.
    match real.consume(options.clone()).await {
        Err(ConsumeError::FailedRtpCapabilitiesValidation(error)) => {
            Err(ConsumeError::FailedRtpCapabilitiesValidation(error))
        }
        _ => Err(ConsumeError::BadConsumerRtpParameters(ConsumerRtpParametersError::NoCompatibleMediaCodecs)),
    }
}

/// A producer or consumer whose transport was closed under it.
pub(crate) trait Child: Send + Sync {
    /// Fires `on_transport_close` then `on_close`, and drops the real object.
    fn transport_closed(&self);

    /// The real producer or consumer, when this is one and is open (its stats are the cell's
    /// media counters).
    fn media(&self) -> Option<crate::internals::media_counters::MediaProbe> {
        None
    }
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

/// The shared part of a virtual transport over real transport `B` (a backend trait object),
/// with type-specific data `X` kept for reading after the transport closed.
pub(crate) struct TransportCore<B: ?Sized, X> {
    pub(crate) id: TransportId,
    pub(crate) extra: X,
    pub(crate) router: Router,
    pub(crate) cell: Arc<Cell>,
    /// The transport's entry in its cell's ledger (its consumers and producers name it).
    pub(crate) load_id: u64,
    app_data: AppData,
    pub(crate) real: Slot<Arc<B>>,
    handlers: Handlers,
    closed: AtomicBool,
    children: Mutex<Vec<Weak<dyn Child>>>,
}

impl<B: ?Sized, X> std::fmt::Debug for TransportCore<B, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport").field("id", &self.id).field("cell", &self.cell.id()).finish()
    }
}

impl<B: ?Sized + TransportBackend + 'static, X: Send + Sync + 'static> TransportCore<B, X> {
    /// Wraps `real`, created in `cell` under `router_use`; counts it (with its labels) until the
    /// real transport closes. The core joins its cell and router, which close it with them; a
    /// cell closed meanwhile refuses it (the real transport is dropped, so closed).
    pub(crate) fn new(
        router: &Router,
        placed: Placed,
        real: Arc<B>,
        extra: X,
        app_data: AppData,
    ) -> Result<Arc<Self>, RequestError> {
        let Placed { cell, router_use, labels, reservation } = placed;
        let ticket: Ticket = cell.ticket(&router.inner.counts, Count::Transport, labels);
        // The room placement reserved now belongs to the transport (its fan-out prior).
        let load = reservation.into_transport();
        let load_id = load.id();
        real.on_close(Box::new(move || drop((router_use, ticket, load)))).detach();
        let core = Arc::new(Self {
            id: real.id(),
            extra,
            router: router.clone(),
            load_id,
            cell,
            app_data,
            real: Slot::new(real),
            handlers: Handlers::default(),
            closed: AtomicBool::new(false),
            children: Mutex::default(),
        });
        let member: Weak<dyn Member> = Arc::downgrade(&core) as Weak<Self>;
        if core.cell.join(member.clone()).is_err() {
            core.detach(&mut Lost::default());
            return Err(RequestError::ChannelClosed);
        }
        core.router.inner.members.join(member);
        Ok(core)
    }

    pub(crate) fn app_data(&self) -> &AppData {
        &self.app_data
    }

    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn adopt(&self, child: Weak<dyn Child>) {
        push_live(&mut lock(&self.children), child);
    }

    /// Produces on the real transport; the producer is known to the application as `known`
    /// (its real id when `None`) and carries `rate` (another producer's, for a pipe producer;
    /// its own when `None`).
    pub(crate) async fn produce(
        &self,
        handle: Arc<dyn Transport>,
        options: ProducerOptions,
        known: Option<ProducerId>,
        rate: Option<Arc<Rate>>,
    ) -> Result<Producer, ProduceError> {
        let real = self.real.request().map_err(ProduceError::Request)?;
        let app_data = options.app_data.clone();
        let real_producer = real.produce(options).await?;
        let id = known.unwrap_or_else(|| real_producer.id());
        let producer =
            Producer::wrap(real_producer, id, handle, &self.router, &self.cell, self.load_id, rate, app_data);
        if !self.router.inner.producers.add(id, producer.real_id(), &self.cell, producer.downgrade()) {
            // Another transport of this router produced the same id meanwhile.
            producer.close_now();
            return Err(ProduceError::AlreadyExists(id));
        }
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
        let Some(found) = self.router.inner.producers.find(&id) else {
            // Unknown here: the real transport reports it exactly as mediasoup does (invalid
            // capabilities first, then the unknown producer).
            return match real.consume(options).await {
                Err(error) => Err(error),
                Ok(_) => Err(ConsumeError::ProducerNotFound(id)),
            };
        };
        let mut options = options;
        options.producer_id = found.real;
        if found.home.id() != self.cell.id() {
            // Nothing is piped for capabilities that cannot consume the producer: the real
            // transport refuses them as mediasoup does.
            let home = self.router.inner.reals.get(found.home.id());
            check_consumable(home, &found, &real, &options).await?;
        }
        let from = PipeFrom {
            known: PipeSource::Producer(id),
            real: PipeSource::Producer(found.real),
            home: &found.home,
            object: &found.object,
        };
        let lease = self.router.ensure_in(from, &self.cell).await.map_err(ConsumeError::Request)?;
        let app_data = options.app_data.clone();
        if let Some(PipeSource::Producer(here)) = lease.as_ref().map(|l| l.real_source()) {
            options.producer_id = here;
        }
        // A producer closing meanwhile is reported under the id the application used (not its
        // pipe end's).
        let real_consumer = real.consume(options).await.map_err(|e| match e {
            ConsumeError::ProducerNotFound(_) => ConsumeError::ProducerNotFound(id),
            other => other,
        })?;
        let rate = Arc::clone(found.object.rate());
        let consumer =
            Consumer::wrap(real_consumer, id, &rate, handle, &self.router, &self.cell, self.load_id, lease, app_data);
        self.adopt(consumer.as_child());
        self.handlers.new_consumer.call(|cb| cb(&consumer));
        Ok(consumer)
    }

    /// Produces data on the real transport; known to the application as `known` (its real id
    /// when `None`).
    pub(crate) async fn produce_data(
        &self,
        handle: Arc<dyn Transport>,
        options: DataProducerOptions,
        known: Option<DataProducerId>,
    ) -> Result<DataProducer, ProduceDataError> {
        let real = self.real.request().map_err(ProduceDataError::Request)?;
        let app_data = options.app_data.clone();
        let real_data_producer = real.produce_data(options).await?;
        let id = known.unwrap_or_else(|| real_data_producer.id());
        let data_producer = DataProducer::wrap(real_data_producer, id, handle, &self.router, &self.cell, app_data);
        if !self.router.inner.data_producers.add(id, data_producer.real_id(), &self.cell, data_producer.downgrade()) {
            data_producer.close_now();
            return Err(ProduceDataError::AlreadyExists(id));
        }
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
        let id = options.data_producer_id();
        let found = self.router.inner.data_producers.find(&id).ok_or(ConsumeDataError::DataProducerNotFound(id))?;
        let from = PipeFrom {
            known: PipeSource::DataProducer(id),
            real: PipeSource::DataProducer(found.real),
            home: &found.home,
            object: &found.object,
        };
        let lease = self.router.ensure_in(from, &self.cell).await.map_err(ConsumeDataError::Request)?;
        let app_data = options.app_data.clone();
        let here = match lease.as_ref().map(|l| l.real_source()) {
            Some(PipeSource::DataProducer(here)) => here,
            _ => found.real,
        };
        let real_data_consumer = real.consume_data(options.consuming(here)).await?;
        let data_consumer =
            DataConsumer::wrap(real_data_consumer, id, handle, (&self.router, &self.cell), lease, app_data);
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

impl<B: ?Sized + TransportBackend + 'static, X: Send + Sync + 'static> Member for TransportCore<B, X> {
    fn detach(&self, lost: &mut Lost) {
        TransportCore::detach(self, lost);
    }

    fn transport(&self) -> Option<(mediasoup::router::RouterId, mediasoup::prelude::TransportId)> {
        (!self.closed.load(Ordering::Acquire)).then(|| (self.router.id(), self.id))
    }

    fn media(&self, probes: &mut Vec<crate::internals::media_counters::MediaProbe>) {
        let children: Vec<Weak<dyn Child>> = lock(&self.children).clone();
        probes.extend(children.iter().filter_map(Weak::upgrade).filter_map(|c| c.media()));
    }
}

impl<B: ?Sized, X> Drop for TransportCore<B, X> {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            // Children close before the transport, as mediasoup closes consumers with their
            // transport (so the worker never sees a consumer closed after its transport).
            let children = std::mem::take(&mut *lock(&self.children));
            for child in children.iter().filter_map(Weak::upgrade) {
                child.transport_closed();
            }
            self.handlers.close.call_simple();
        }
    }
}
