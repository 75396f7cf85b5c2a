//! `pipe_producer_to_router` / `pipe_data_producer_to_router` between two virtual routers, as
//! mediasoup does between two routers: a connected pair of (virtual) pipe transports per
//! (target router, source cell), reused for every producer piped that way; the source end lives
//! in the producer's cell, the target end where the target router's placement puts it — on
//! another worker when the producer keeps its id (a worker refuses a second producer with the
//! same id, as mediasoup's does). Pause, resume and close of the source reach the pipe producer.

use super::consumer::Consumer;
use super::data_consumer::DataConsumerOptions;
use super::data_producer::{DataProducerOptions, NonClosingDataProducer};
use super::pipe_transport::{PipeTransport, PipeTransportOptions, PipeTransportRemoteParameters};
use super::producer::{PipedProducer, Producer, ProducerOptions};
use super::router::{
    PipeDataProducerToRouterError, PipeDataProducerToRouterPair, PipeProducerToRouterError, PipeProducerToRouterPair,
    PipeToRouterOptions, Router, RouterId,
};
use super::transport::Transport;
use crate::internals::cell::Cell;
use crate::internals::object::{fresh_id, lock};
use crate::internals::pipes::forward_pause;
use crate::placement::CellId;
use mediasoup::prelude::{AppData, ConsumerOptions, DataProducerId, ProducerId, RtpCapabilities};
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// The pairs one router made, by (target router, source cell).
#[derive(Default)]
pub(crate) struct PairCache {
    pairs: Mutex<HashMap<(RouterId, CellId), (PipeTransport, PipeTransport)>>,
    creating: tokio::sync::Mutex<()>,
}

impl PairCache {
    /// Forgets every pair (the router closed).
    pub(crate) fn clear(&self) {
        lock(&self.pairs).clear();
    }

    fn open(&self, key: &(RouterId, CellId)) -> Option<(PipeTransport, PipeTransport)> {
        lock(&self.pairs).get(key).filter(|(a, b)| !a.closed() && !b.closed()).cloned()
    }
}

fn remote_of(transport: &PipeTransport) -> Result<PipeTransportRemoteParameters, RequestError> {
    let tuple = transport.tuple();
    let ip: IpAddr = tuple.local_address().parse().map_err(|_| RequestError::Response {
        reason: format!("pipe transport address {} is not an IP", tuple.local_address()),
    })?;
    Ok(PipeTransportRemoteParameters { ip, port: tuple.local_port(), srtp_parameters: transport.srtp_parameters() })
}

/// The connected pair of pipe transports from `source` (in `home`) to `target`, reused.
async fn transport_pair(
    source: &Router,
    target: &Router,
    home: &Arc<Cell>,
    options: &PipeToRouterOptions,
) -> Result<(PipeTransport, PipeTransport), RequestError> {
    let cache = &source.inner.pairs;
    let key = (target.id(), home.id());
    if let Some(pair) = cache.open(&key) {
        return Ok(pair);
    }
    let _serial = cache.creating.lock().await;
    if let Some(pair) = cache.open(&key) {
        return Ok(pair);
    }
    let mut transport_options = PipeTransportOptions::new(source.inner.host.options().pipes.listen_info());
    transport_options.enable_sctp = options.enable_sctp;
    transport_options.max_send_message_size = options.max_send_message_size;
    transport_options.max_receive_message_size = options.max_receive_message_size;
    transport_options.sctp_send_buffer_size = options.sctp_send_buffer_size;
    transport_options.sctp_per_stream_send_queue_limit = options.sctp_per_stream_send_queue_limit;
    transport_options.sctp_max_receiver_window_buffer_size = options.sctp_max_receiver_window_buffer_size;
    transport_options.sctp_default_stream_buffered_amount_low_threshold =
        options.sctp_default_stream_buffered_amount_low_threshold;
    transport_options.sctp_zero_checksum = options.sctp_zero_checksum;
    transport_options.enable_rtx = options.enable_rtx;
    transport_options.enable_srtp = options.enable_srtp;
    let local_use = source.real_router_use(home).await?;
    let local =
        source.create_pipe_transport_at(Arc::clone(home), local_use, Vec::new(), transport_options.clone()).await?;
    let avoid = options.keep_id.then(|| home.id());
    let (cell, remote_use, labels) = target.place_avoiding(&AppData::default(), avoid).await?;
    let remote = target.create_pipe_transport_at(cell, remote_use, labels, transport_options).await?;
    local.connect(remote_of(&remote)?).await?;
    remote.connect(remote_of(&local)?).await?;
    lock(&cache.pairs).insert(key, (local.clone(), remote.clone()));
    Ok((local, remote))
}

/// Runs pause/resume of the pipe producer on the current runtime, in order.
fn forwarder(producer: &Producer) -> Option<tokio::sync::mpsc::UnboundedSender<bool>> {
    let weak = producer.downgrade();
    forward_pause(move |paused| {
        let weak = weak.clone();
        Box::pin(async move {
            if let Some(producer) = weak.upgrade() {
                let _ = if paused { producer.pause().await } else { producer.resume().await };
            }
        })
    })
}

pub(crate) async fn pipe_producer(
    source: &Router,
    producer_id: ProducerId,
    options: PipeToRouterOptions,
) -> Result<PipeProducerToRouterPair, PipeProducerToRouterError> {
    if options.keep_id && options.router.id() == source.id() {
        return Err(PipeProducerToRouterError::SameRouter);
    }
    let found =
        source.inner.producers.find(&producer_id).ok_or(PipeProducerToRouterError::ProducerNotFound(producer_id))?;
    let (producer, home) = (found.object, found.home);
    let (local, remote) = transport_pair(source, &options.router, &home, &options).await?;
    let pipe_consumer: Consumer = local.consume(ConsumerOptions::new(producer_id, RtpCapabilities::default())).await?;
    let id = if options.keep_id { producer_id } else { fresh_id() };
    let mut producer_options =
        ProducerOptions::new_pipe_transport(id, pipe_consumer.kind(), pipe_consumer.rtp_parameters().clone());
    producer_options.paused = pipe_consumer.producer_paused();
    producer_options.app_data = producer.app_data().clone();
    let pipe_producer: Producer = remote.produce(producer_options).await?;
    // Source closed → pipe consumer closed → pipe producer closed.
    let weak = pipe_producer.downgrade();
    pipe_consumer
        .on_close(move || {
            if let Some(pipe_producer) = weak.upgrade() {
                pipe_producer.close_now();
            }
        })
        .detach();
    // Source paused or resumed → the pipe producer too.
    if let Some(pauses) = forwarder(&pipe_producer) {
        let resumes = pauses.clone();
        pipe_consumer
            .on_producer_pause(move || {
                let _ = pauses.send(true);
            })
            .detach();
        pipe_consumer
            .on_producer_resume(move || {
                let _ = resumes.send(false);
            })
            .detach();
    }
    // The pipe consumer lives as long as the pipe producer, whatever the application keeps.
    let kept = pipe_consumer.clone();
    pipe_producer.on_close(move || drop(kept)).detach();
    Ok(PipeProducerToRouterPair {
        pipe_consumer,
        pipe_producer: PipedProducer::new(pipe_producer, producer.downgrade()),
    })
}

pub(crate) async fn pipe_data_producer(
    source: &Router,
    data_producer_id: DataProducerId,
    options: PipeToRouterOptions,
) -> Result<PipeDataProducerToRouterPair, PipeDataProducerToRouterError> {
    if options.keep_id && options.router.id() == source.id() {
        return Err(PipeDataProducerToRouterError::SameRouter);
    }
    let found = source
        .inner
        .data_producers
        .find(&data_producer_id)
        .ok_or(PipeDataProducerToRouterError::DataProducerNotFound(data_producer_id))?;
    let (data_producer, home) = (found.object, found.home);
    let (local, remote) = transport_pair(source, &options.router, &home, &options).await?;
    let pipe_data_consumer = local.consume_data(DataConsumerOptions::new_sctp(data_producer_id)).await?;
    let sctp = pipe_data_consumer.sctp_stream_parameters().ok_or_else(|| {
        PipeDataProducerToRouterError::TransportFailed(RequestError::Response {
            reason: "pipe data consumer has no SCTP stream parameters (enable_sctp is off)".into(),
        })
    })?;
    let id = if options.keep_id { data_producer_id } else { fresh_id() };
    let mut producer_options = DataProducerOptions::new_pipe_transport(id, sctp);
    producer_options.label.clone_from(pipe_data_consumer.label());
    producer_options.protocol.clone_from(pipe_data_consumer.protocol());
    producer_options.app_data = data_producer.app_data().clone();
    let pipe_data_producer = remote.produce_data(producer_options).await?;
    let weak = pipe_data_producer.downgrade();
    pipe_data_consumer
        .on_close(move || {
            if let Some(pipe_data_producer) = weak.upgrade() {
                pipe_data_producer.close_now();
            }
        })
        .detach();
    let kept = pipe_data_consumer.clone();
    pipe_data_producer.on_close(move || drop(kept)).detach();
    Ok(PipeDataProducerToRouterPair {
        pipe_data_consumer,
        pipe_data_producer: NonClosingDataProducer::new(pipe_data_producer, data_producer.downgrade()),
    })
}
