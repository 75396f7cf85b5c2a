//! `pipe_producer_to_router` / `pipe_data_producer_to_router` between two virtual routers, as
//! mediasoup does between two routers: a connected pair of (virtual, visible) pipe transports
//! per (target router, source cell), reused for every producer piped that way, built on the
//! same pair primitive as internal pipes ([`crate::internals::pipes::create_pair`]). The source
//! end lives in the producer's cell; the target end where the target router's placement puts
//! it, with one rule for `keep_id` (the default): a worker refuses a second object with an id
//! it holds, so
//! - into a router of the *same virtual worker*, the target end shares the producer's worker
//!   and the worker refuses the id, which is mediasoup's error for routers of one worker;
//! - into a router of another virtual worker, the target end goes to a worker that does not
//!   hold the id (another pair when the reusable one's worker already does); when every worker
//!   the pool can offer holds it, the pipe producer gets a fresh real id that the target
//!   router translates back (the application sees the kept id everywhere).
//!
//! The pipe producer follows its source's pause and resume (it is one of the source's
//! [`Followers`](crate::internals::pause::Followers)) and closes with it.

use super::consumer::Consumer;
use super::data_consumer::DataConsumerOptions;
use super::data_producer::{DataProducerOptions, NonClosingDataProducer};
use super::pipe_transport::{PipeTransport, WeakPipeTransport};
use super::producer::{PipedProducer, ProducerOptions};
use super::router::{
    PipeDataProducerToRouterError, PipeDataProducerToRouterPair, PipeProducerToRouterError, PipeProducerToRouterPair,
    PipeToRouterOptions, Placed, Router, RouterId,
};
use super::transport::Transport;
use crate::internals::cell::{Cell, IdHold};
use crate::internals::object::{fresh_id, lock};
use crate::internals::pause::PausableEnd;
use crate::internals::pipes::PipedObject;
use crate::internals::pipes::{create_pair, LinkOptions, SctpSettings};
use crate::internals::source::PipeSource;
use crate::placement::CellId;
use mediasoup::prelude::{AppData, ConsumerOptions, DataProducerId, ProducerId, RtpCapabilities};
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A connected pair: the source router's end, the target router's end.
type Pair = (PipeTransport, PipeTransport);

/// A pair as the cache keeps it: weak, as mediasoup keeps its pipe transport pairs (the pipe
/// consumer and producer made on it hold it; a strong pair would hold both routers forever,
/// each transport holding its router).
type WeakPair = (WeakPipeTransport, WeakPipeTransport);

/// The pairs one router made, by (target router, source cell): usually one; more when
/// `keep_id` needs a target end on a worker that does not hold the piped id yet.
#[derive(Default)]
pub(crate) struct PairCache {
    pairs: Mutex<HashMap<(RouterId, CellId), Vec<WeakPair>>>,
    creating: tokio::sync::Mutex<()>,
}

impl PairCache {
    /// Forgets every pair (the router closed).
    pub(crate) fn clear(&self) {
        lock(&self.pairs).clear();
    }

    /// The first open pair of `key` whose target end's cell passes `usable`.
    fn find(
        &self,
        key: &(RouterId, CellId),
        usable: impl Fn(&Arc<Cell>) -> bool,
    ) -> Option<(PipeTransport, PipeTransport)> {
        let mut pairs = lock(&self.pairs);
        let list = pairs.get_mut(key)?;
        list.retain(|pair| open(pair).is_some());
        list.iter().filter_map(open).find(|(_, remote)| usable(&remote.inner.cell))
    }
}

/// The pair while both ends live and are open.
fn open((a, b): &WeakPair) -> Option<Pair> {
    let (a, b) = (a.upgrade()?, b.upgrade()?);
    (!a.closed() && !b.closed()).then_some((a, b))
}

/// The pipe transport options of `options` on the host's pipe address.
fn link_options(source: &Router, options: &PipeToRouterOptions) -> LinkOptions {
    LinkOptions {
        listen_info: source.inner.host.options().pipes.listen_info(),
        enable_sctp: options.enable_sctp,
        enable_rtx: options.enable_rtx,
        enable_srtp: options.enable_srtp,
        sctp: Some(SctpSettings {
            max_send_message_size: options.max_send_message_size,
            max_receive_message_size: options.max_receive_message_size,
            sctp_send_buffer_size: options.sctp_send_buffer_size,
            sctp_per_stream_send_queue_limit: options.sctp_per_stream_send_queue_limit,
            sctp_max_receiver_window_buffer_size: options.sctp_max_receiver_window_buffer_size,
            sctp_default_stream_buffered_amount_low_threshold: options
                .sctp_default_stream_buffered_amount_low_threshold,
            sctp_zero_checksum: options.sctp_zero_checksum,
        }),
    }
}

/// A pair from `source` to `target` for a piped object.
struct PairFor {
    local: PipeTransport,
    remote: PipeTransport,
    /// Whether the kept id can be used on the target end.
    kept: bool,
    /// The id held in the target end's cell until the pipe producer holds it (concurrent pipes
    /// of the same producer then avoid that cell).
    _hold: Option<IdHold>,
}

/// A pair from `source` (its end in `home`) to `target` for `keep` (the id to keep, if any).
/// Choosing the pair and holding the id happen under one lock per source router.
async fn transport_pair(
    source: &Router,
    target: &Router,
    home: &Arc<Cell>,
    options: &PipeToRouterOptions,
    keep: Option<PipeSource>,
) -> Result<PairFor, RequestError> {
    let same_worker = target.worker().id() == source.worker().id();
    let keeps = |cell: &Arc<Cell>| match keep {
        None => true,
        // mediasoup's routers of one worker: the worker itself refuses the id.
        Some(_) if same_worker => cell.id() == home.id(),
        Some(id) => cell.id() != home.id() && !cell.holds(&id),
    };
    // Held while the pipe producer is made: another pipe of the same producer sees it.
    let hold = |remote: &PipeTransport| match keep {
        Some(id) if !same_worker => Some(remote.inner.cell.hold_id(id)),
        _ => None,
    };
    let cache = &source.inner.pairs;
    let key = (target.id(), home.id());
    let _serial = cache.creating.lock().await;
    if let Some((local, remote)) = cache.find(&key, keeps) {
        let _hold = hold(&remote);
        return Ok(PairFor { local, remote, kept: true, _hold });
    }
    // The target end receives: its cost arrives with the pipe producer, nothing to expect.
    let nothing = Some([0.0; 2]);
    let placed = match keep {
        Some(_) if same_worker => Placed {
            cell: Arc::clone(home),
            router_use: target.real_router_use(home).await?,
            labels: Vec::new(),
            reservation: home.ledger().reserve([0.0; 2]),
        },
        Some(id) => {
            let holders: Vec<CellId> = target
                .inner
                .host
                .cells()
                .iter()
                .filter(|c| c.id() == home.id() || c.holds(&id))
                .map(|c| c.id())
                .collect();
            target.place_avoiding(&AppData::default(), &holders, nothing).await?
        }
        None => target.place_avoiding(&AppData::default(), &[], nothing).await?,
    };
    if !keeps(&placed.cell) {
        // Every worker the pool offers holds the id: a fresh id on a pair we have, if any.
        drop(placed);
        let (local, remote) = match cache.find(&key, |_| true) {
            Some(pair) => pair,
            None => {
                let placed = target.place_avoiding(&AppData::default(), &[], nothing).await?;
                open_pair(source, target, home, options, placed).await?
            }
        };
        return Ok(PairFor { local, remote, kept: false, _hold: None });
    }
    let (local, remote) = open_pair(source, target, home, options, placed).await?;
    let _hold = hold(&remote);
    Ok(PairFor { local, remote, kept: true, _hold })
}

/// Creates, connects and caches a pair; its target end where `at` was placed.
async fn open_pair(
    source: &Router,
    target: &Router,
    home: &Arc<Cell>,
    options: &PipeToRouterOptions,
    at: Placed,
) -> Result<Pair, RequestError> {
    let local_use = source.real_router_use(home).await?;
    let transport_options = link_options(source, options).transport_options();
    let (a, b) = create_pair(local_use.real(), at.router_use.real(), transport_options).await?;
    let local_end = Placed {
        cell: Arc::clone(home),
        router_use: local_use,
        labels: Vec::new(),
        reservation: home.ledger().reserve([0.0; 2]),
    };
    let local = source.wrap_pipe_transport(local_end, a)?;
    let remote = target.wrap_pipe_transport(at, b)?;
    let mut pairs = lock(&source.inner.pairs.pairs);
    // Pairs closed since (their target router or a worker went) are forgotten.
    pairs.retain(|_, list| {
        list.retain(|pair| open(pair).is_some());
        !list.is_empty()
    });
    pairs.entry((target.id(), home.id())).or_default().push((local.downgrade(), remote.downgrade()));
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
        source.inner.producers.find(&producer_id).ok_or(PipeProducerToRouterError::ProducerNotFound(producer_id))?;
    let (producer, home) = (found.object, found.home);
    let keep = options.keep_id.then_some(PipeSource::Producer(producer_id));
    let PairFor { local, remote, kept, _hold } = transport_pair(source, &options.router, &home, &options, keep).await?;
    let pipe_consumer: Consumer = local.consume(ConsumerOptions::new(producer_id, RtpCapabilities::default())).await?;
    let known = if options.keep_id { producer_id } else { fresh_id() };
    let real_id = if kept { known } else { fresh_id() };
    let mut producer_options =
        ProducerOptions::new_pipe_transport(real_id, pipe_consumer.kind(), pipe_consumer.rtp_parameters().clone());
    producer_options.paused = pipe_consumer.producer_paused();
    producer_options.app_data = producer.app_data().clone();
    let rate = Some(Arc::clone(producer.rate()));
    let pipe_producer = remote.inner.produce(remote.handle(), producer_options, Some(known), rate).await?;
    // Source closed → pipe consumer closed → pipe producer closed.
    let weak = pipe_producer.downgrade();
    pipe_consumer
        .on_close(move || {
            if let Some(pipe_producer) = weak.upgrade() {
                pipe_producer.close_now();
            }
        })
        .detach();
    // Source paused or resumed → the pipe producer too, before the source's call returns.
    let follower: Arc<dyn PausableEnd> = Arc::new(pipe_producer.downgrade());
    producer.followers().follow(follower, || producer.is_paused()).await;
    // The pipe consumer lives as long as the pipe producer, whatever the application keeps.
    let kept_consumer = pipe_consumer.clone();
    pipe_producer.on_close(move || drop(kept_consumer)).detach();
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
    let keep = options.keep_id.then_some(PipeSource::DataProducer(data_producer_id));
    let PairFor { local, remote, kept, _hold } = transport_pair(source, &options.router, &home, &options, keep).await?;
    let pipe_data_consumer = local.consume_data(DataConsumerOptions::new_sctp(data_producer_id)).await?;
    let sctp = pipe_data_consumer.sctp_stream_parameters().ok_or_else(|| {
        PipeDataProducerToRouterError::TransportFailed(RequestError::Response {
            reason: "pipe data consumer has no SCTP stream parameters (enable_sctp is off)".into(),
        })
    })?;
    let known = if options.keep_id { data_producer_id } else { fresh_id() };
    let real_id = if kept { known } else { fresh_id() };
    let mut producer_options = DataProducerOptions::new_pipe_transport(real_id, sctp);
    producer_options.label.clone_from(pipe_data_consumer.label());
    producer_options.protocol.clone_from(pipe_data_consumer.protocol());
    producer_options.app_data = data_producer.app_data().clone();
    let pipe_data_producer = remote.inner.produce_data(remote.handle(), producer_options, Some(known)).await?;
    let weak = pipe_data_producer.downgrade();
    pipe_data_consumer
        .on_close(move || {
            if let Some(pipe_data_producer) = weak.upgrade() {
                pipe_data_producer.close_now();
            }
        })
        .detach();
    let follower: Arc<dyn PausableEnd> = Arc::new(pipe_data_producer.downgrade());
    data_producer.followers().follow(follower, || data_producer.is_paused()).await;
    let kept_consumer = pipe_data_consumer.clone();
    pipe_data_producer.on_close(move || drop(kept_consumer)).detach();
    Ok(PipeDataProducerToRouterPair {
        pipe_data_consumer,
        pipe_data_producer: NonClosingDataProducer::new(pipe_data_producer, data_producer.downgrade()),
    })
}
