//! `pipe_producer_to_router` / `pipe_data_producer_to_router` between two virtual routers:
//! as mediasoup does between two routers, with a connected pair of (virtual) pipe transports,
//! both created in the cell where the producer lives.

use super::consumer::Consumer;
use super::data_producer::{DataProducerOptions, NonClosingDataProducer};
use super::pipe_transport::{PipeTransport, PipeTransportOptions, PipeTransportRemoteParameters};
use super::producer::{PipedProducer, Producer, ProducerOptions};
use super::transport::Transport;
use super::{
    PipeDataProducerToRouterError, PipeDataProducerToRouterPair, PipeProducerToRouterError, PipeProducerToRouterPair,
    PipeToRouterOptions, Router,
};
use crate::cell::Cell;
use crate::object::fresh_id;
use mediasoup::prelude::{ConsumerOptions, DataConsumerOptions, DataProducerId, ProducerId, RtpCapabilities};
use mediasoup::worker::RequestError;
use std::net::IpAddr;
use std::sync::Arc;

fn remote_of(transport: &PipeTransport) -> Result<PipeTransportRemoteParameters, RequestError> {
    let tuple = transport.tuple();
    let ip: IpAddr = tuple.local_address().parse().map_err(|_| RequestError::Response {
        reason: format!("pipe transport address {} is not an IP", tuple.local_address()),
    })?;
    Ok(PipeTransportRemoteParameters { ip, port: tuple.local_port(), srtp_parameters: transport.srtp_parameters() })
}

/// A connected pair of pipe transports: `local` in `source`, `remote` in `target`, both in `cell`.
async fn transport_pair(
    source: &Router,
    target: &Router,
    cell: &Arc<Cell>,
    options: &PipeToRouterOptions,
) -> Result<(PipeTransport, PipeTransport), RequestError> {
    let mut transport_options = PipeTransportOptions::new(source.inner.host.options().pipes.listen_info());
    transport_options.enable_sctp = options.enable_sctp;
    transport_options.enable_rtx = options.enable_rtx;
    transport_options.enable_srtp = options.enable_srtp;
    let local_use = source.real_router_use(cell).await?;
    let local =
        source.create_pipe_transport_at(Arc::clone(cell), local_use, Vec::new(), transport_options.clone()).await?;
    let remote_use = target.real_router_use(cell).await?;
    let remote = target.create_pipe_transport_at(Arc::clone(cell), remote_use, Vec::new(), transport_options).await?;
    local.connect(remote_of(&remote)?).await?;
    remote.connect(remote_of(&local)?).await?;
    Ok((local, remote))
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
        source.inner.registry.producer(&producer_id).ok_or(PipeProducerToRouterError::ProducerNotFound(producer_id))?;
    let (producer, home) = (found.object, found.home);
    let (local, remote) = transport_pair(source, &options.router, &home, &options).await?;
    let pipe_consumer: Consumer = local.consume(ConsumerOptions::new(producer_id, RtpCapabilities::default())).await?;
    // mediasoup ids are unique per worker and both ends live in the producer's worker: the
    // real pipe producer gets a fresh id; the application sees `producer_id` (keep_id).
    let real_id: ProducerId = fresh_id();
    let mut producer_options =
        ProducerOptions::new_pipe_transport(real_id, pipe_consumer.kind(), pipe_consumer.rtp_parameters().clone());
    producer_options.paused = pipe_consumer.producer_paused();
    producer_options.app_data = producer.app_data().clone();
    let virtual_id = if options.keep_id { producer_id } else { real_id };
    let pipe_producer: Producer = remote.inner.produce_as(remote.handle(), producer_options, Some(virtual_id)).await?;
    // The pipe producer goes when the pipe consumer goes (source producer closed).
    let weak = pipe_producer.downgrade();
    pipe_consumer
        .on_close(move || {
            if let Some(pipe_producer) = weak.upgrade() {
                pipe_producer.close_now();
            }
        })
        .detach();
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
        .registry
        .data_producer(&data_producer_id)
        .ok_or(PipeDataProducerToRouterError::DataProducerNotFound(data_producer_id))?;
    let (data_producer, home) = (found.object, found.home);
    let (local, remote) = transport_pair(source, &options.router, &home, &options).await?;
    let pipe_data_consumer = local.consume_data(DataConsumerOptions::new_sctp(data_producer_id)).await?;
    let sctp = pipe_data_consumer.sctp_stream_parameters().ok_or_else(|| {
        PipeDataProducerToRouterError::TransportFailed(RequestError::Response {
            reason: "pipe data consumer has no SCTP stream parameters (enable_sctp is off)".into(),
        })
    })?;
    let real_id: DataProducerId = fresh_id();
    let mut producer_options = DataProducerOptions::new_pipe_transport(real_id, sctp);
    producer_options.label.clone_from(pipe_data_consumer.label());
    producer_options.protocol.clone_from(pipe_data_consumer.protocol());
    producer_options.app_data = data_producer.app_data().clone();
    let virtual_id = if options.keep_id { data_producer_id } else { real_id };
    let pipe_data_producer = remote.inner.produce_data_as(remote.handle(), producer_options, Some(virtual_id)).await?;
    Ok(PipeDataProducerToRouterPair {
        pipe_data_consumer,
        pipe_data_producer: NonClosingDataProducer::new(pipe_data_producer, data_producer.downgrade()),
    })
}
