//! Pipes: a producer (or data producer) made available in another cell, built from the
//! backend's primitives as mediasoup's `pipe_producer_to_router` does — a connected pair of pipe
//! transports (a [`Link`], shared by every pipe between the same two real routers), a pipe
//! consumer at the source, a pipe producer with a *fresh* id at the target (the source's id may
//! be held there by another router's object; the virtual router translates it back), and the
//! pipe producer following its source's pause and resume ([`crate::internals::pause`]).
//! Because only primitives are used, pipes work between any two cells, local or remote.
//!
//! Inside one virtual router, pipes are ref-counted per (source, target cell): created once even
//! under concurrent demand, shared by every user there (consumers, observers), torn down when
//! the last user lets go or either cell closes. A data pipe is usable once its link's SCTP
//! association is up: creating one waits for that, so a message sent right after
//! `consume_data` returns is not lost.
//!
//! The pair of pipe transports (`create_pair`, [`LinkOptions`], [`remote_of`]) is also what
//! `pipe_producer_to_router` between virtual routers is built on (`api::router_pipes`).

use crate::backend::{
    ConsumerBackend, DataConsumerBackend, DataProducerBackend, DirectTransportBackend, PipeTransportBackend,
    ProducerBackend, RouterBackend,
};
use crate::internals::cell::{Cell, Ticket};
use crate::internals::dump::Internal;
use crate::internals::load_model::{LoadTicket, Rate};
use crate::internals::object::{drop_later, lock, push_live, within, Lost, Member};
use crate::internals::pause::{Followers, PausableEnd};
use crate::internals::real_routers::RouterUse;
use crate::options::{DataConsumerOptions, DataProducerOptions, ProducerOptions};
use crate::placement::CellId;
use async_trait::async_trait;
use mediasoup::direct_transport::DirectTransportOptions;
use mediasoup::pipe_transport::{PipeTransportOptions, PipeTransportRemoteParameters};
use mediasoup::prelude::{
    ConsumerOptions, DataProducerId, ListenInfo, ProducerId, RtpCapabilities, TransportId, WebRtcMessage,
};
use mediasoup::types::data_structures::SctpState;
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};

pub use crate::internals::source::PipeSource;

/// How the pipe transports of a link are made.
#[derive(Debug, Clone)]
pub(crate) struct LinkOptions {
    /// Where both ends listen.
    pub(crate) listen_info: ListenInfo,
    /// SCTP for data pipes.
    pub(crate) enable_sctp: bool,
    /// RTX and NACK on the pipe.
    pub(crate) enable_rtx: bool,
    /// SRTP on the pipe.
    pub(crate) enable_srtp: bool,
    /// mediasoup's pipe SCTP settings (as in `PipeToRouterOptions`).
    pub(crate) sctp: Option<SctpSettings>,
}

/// The SCTP fields of mediasoup's `PipeToRouterOptions`.
#[derive(Debug, Clone, Copy)]
#[allow(missing_docs)]
pub(crate) struct SctpSettings {
    pub max_send_message_size: u32,
    pub max_receive_message_size: u32,
    pub sctp_send_buffer_size: u32,
    pub sctp_per_stream_send_queue_limit: u32,
    pub sctp_max_receiver_window_buffer_size: u32,
    pub sctp_default_stream_buffered_amount_low_threshold: u32,
    pub sctp_zero_checksum: mediasoup::prelude::SctpZeroChecksum,
}

impl LinkOptions {
    /// mediasoup's options for both pipe transports of a pair.
    pub(crate) fn transport_options(&self) -> PipeTransportOptions {
        let mut options = PipeTransportOptions::new(self.listen_info.clone());
        options.enable_sctp = self.enable_sctp;
        options.enable_rtx = self.enable_rtx;
        options.enable_srtp = self.enable_srtp;
        if let Some(sctp) = self.sctp {
            options.max_send_message_size = sctp.max_send_message_size;
            options.max_receive_message_size = sctp.max_receive_message_size;
            options.sctp_send_buffer_size = sctp.sctp_send_buffer_size;
            options.sctp_per_stream_send_queue_limit = sctp.sctp_per_stream_send_queue_limit;
            options.sctp_max_receiver_window_buffer_size = sctp.sctp_max_receiver_window_buffer_size;
            options.sctp_default_stream_buffered_amount_low_threshold =
                sctp.sctp_default_stream_buffered_amount_low_threshold;
            options.sctp_zero_checksum = sctp.sctp_zero_checksum;
        }
        options
    }
}

/// A connected pair of pipe transports: `local` in the source router, `remote` in the target
/// router. Closing either end (its cell closed) makes the link unusable; pipes on it close.
pub(crate) struct Link {
    /// The source end (pipe consumers live here).
    pub(crate) local: Arc<dyn PipeTransportBackend>,
    /// The target end (pipe producers live here).
    pub(crate) remote: Arc<dyn PipeTransportBackend>,
    /// The real routers at both ends, kept open while the link lives.
    uses: (RouterUse, RouterUse),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("from", &self.uses.0.cell().id()).field("to", &self.uses.1.cell().id()).finish()
    }
}

impl Link {
    /// The source cell.
    pub(crate) fn source_cell(&self) -> &Arc<Cell> {
        self.uses.0.cell()
    }

    /// The target cell.
    pub(crate) fn target_cell(&self) -> &Arc<Cell> {
        self.uses.1.cell()
    }

    /// Whether both ends are still open.
    pub(crate) fn is_open(&self) -> bool {
        !self.local.closed() && !self.remote.closed()
    }

    /// The cells of its two ends.
    pub(crate) fn cells(&self) -> (CellId, CellId) {
        (self.uses.0.cell().id(), self.uses.1.cell().id())
    }

    /// Ids of the link's two transports.
    pub(crate) fn transport_ids(&self) -> [TransportId; 2] {
        [self.local.id(), self.remote.id()]
    }
}

/// What the other end of a pair is told about `transport` (its address, its SRTP key).
pub(crate) fn remote_of(transport: &dyn PipeTransportBackend) -> Result<PipeTransportRemoteParameters, RequestError> {
    let tuple = transport.tuple();
    let ip: IpAddr = tuple.local_address().parse().map_err(|_| RequestError::Response {
        reason: format!("pipe transport address {} is not an IP", tuple.local_address()),
    })?;
    Ok(PipeTransportRemoteParameters { ip, port: tuple.local_port(), srtp_parameters: transport.srtp_parameters() })
}

/// Creates a pipe transport in each of two real routers with `options` and connects them to each
/// other: the pair mediasoup's `pipe_producer_to_router` makes.
pub(crate) async fn create_pair(
    from: &Arc<dyn RouterBackend>,
    to: &Arc<dyn RouterBackend>,
    options: PipeTransportOptions,
) -> Result<(Arc<dyn PipeTransportBackend>, Arc<dyn PipeTransportBackend>), RequestError> {
    let local = from.create_pipe_transport(options.clone()).await?;
    let remote = to.create_pipe_transport(options).await?;
    local.connect(remote_of(remote.as_ref())?).await?;
    remote.connect(remote_of(local.as_ref())?).await?;
    Ok((local, remote))
}

/// Creates and connects a link between the real routers `from` and `to`.
pub(crate) async fn connect_link(from: RouterUse, to: RouterUse, options: &LinkOptions) -> Result<Link, RequestError> {
    let (local, remote) = create_pair(from.real(), to.real(), options.transport_options()).await?;
    Ok(Link { local, remote, uses: (from, to) })
}

/// How long a data pipe waits for its link's SCTP association.
pub const SCTP_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits (at most [`SCTP_READY_LIMIT`]) until both ends of `link` report SCTP connected.
async fn sctp_ready(link: &Link) -> Result<(), RequestError> {
    let (tx, rx) = tokio::sync::watch::channel(());
    let handlers: Vec<_> = [&link.local, &link.remote]
        .into_iter()
        .map(|end| {
            let tx = tx.clone();
            end.on_sctp_state_change(Arc::new(move |_| {
                let _ = tx.send(());
            }))
        })
        .collect();
    let connected = || [&link.local, &link.remote].iter().all(|e| e.sctp_state() == Some(SctpState::Connected));
    let mut changes = rx;
    let wait = async {
        while !connected() {
            if changes.changed().await.is_err() {
                break;
            }
        }
        connected()
    };
    let ready = within(SCTP_READY_LIMIT, wait).await.unwrap_or(false);
    drop(handlers);
    if ready {
        Ok(())
    } else {
        Err(RequestError::Response {
            reason: format!("the pipe's SCTP association did not come up within {SCTP_READY_LIMIT:?}"),
        })
    }
}

/// Links by (source cell, target cell), shared while used; one creation at a time.
#[derive(Default)]
pub(crate) struct LinkCache {
    links: Mutex<HashMap<(CellId, CellId), Weak<Link>>>,
    creating: tokio::sync::Mutex<()>,
}

impl LinkCache {
    /// The open link between the two cells, or a new one made by `create`.
    pub(crate) async fn get_or_connect<F, Fut>(
        &self,
        key: (CellId, CellId),
        create: F,
    ) -> Result<Arc<Link>, RequestError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Link, RequestError>>,
    {
        let existing = |cache: &Self| lock(&cache.links).get(&key).and_then(Weak::upgrade).filter(|l| l.is_open());
        if let Some(link) = existing(self) {
            return Ok(link);
        }
        let _serial = self.creating.lock().await;
        if let Some(link) = existing(self) {
            return Ok(link);
        }
        let link = Arc::new(create().await?);
        let mut links = lock(&self.links);
        links.retain(|_, l| l.strong_count() > 0);
        links.insert(key, Arc::downgrade(&link));
        Ok(link)
    }

    /// Ids of the open links' transports.
    pub(crate) fn transport_ids(&self) -> Vec<TransportId> {
        lock(&self.links).values().filter_map(Weak::upgrade).flat_map(|l| l.transport_ids()).collect()
    }

    /// The open links.
    pub(crate) fn open(&self) -> Vec<Arc<Link>> {
        lock(&self.links).values().filter_map(Weak::upgrade).filter(|l| l.is_open()).collect()
    }
}

/// A pipe's receiving half as a follower of its source's pause state (held weakly: the pipe
/// owns it).
enum Follower {
    Media(Weak<dyn ProducerBackend>),
    Data(Weak<dyn DataProducerBackend>),
}

#[async_trait]
impl PausableEnd for Follower {
    fn paused_state(&self) -> Option<bool> {
        match self {
            Self::Media(end) => end.upgrade().map(|e| e.paused()),
            Self::Data(end) => end.upgrade().map(|e| e.paused()),
        }
    }

    async fn set_paused(&self, paused: bool) {
        match self {
            Self::Media(end) => {
                if let Some(end) = end.upgrade() {
                    let _ = if paused { end.pause().await } else { end.resume().await };
                }
            }
            Self::Data(end) => {
                if let Some(end) = end.upgrade() {
                    let _ = if paused { end.pause().await } else { end.resume().await };
                }
            }
        }
    }
}

/// The real objects making one pipe.
#[derive(Debug)]
pub(crate) enum PipeEnds {
    /// Pipe consumer at the source, pipe producer at the target.
    Media {
        /// Sending half.
        consumer: Arc<dyn ConsumerBackend>,
        /// Receiving half.
        producer: Arc<dyn ProducerBackend>,
    },
    /// The same for data producers.
    Data {
        /// Sending half.
        consumer: Arc<dyn DataConsumerBackend>,
        /// Receiving half.
        producer: Arc<dyn DataProducerBackend>,
    },
    /// A copy of a *direct* data producer in the target cell, on a direct transport of its
    /// own: the application's sends reach every copy, subchannels and all (SCTP carries no
    /// subchannels, so a pipe would lose them), with nothing to wait for.
    Replica {
        /// The internal direct transport holding the copy.
        transport: Arc<dyn DirectTransportBackend>,
        /// The copy.
        producer: Arc<dyn DataProducerBackend>,
    },
}

impl PipeEnds {
    /// Pipes producer `source` over `link`; the pipe producer gets `id`. Pause, resume and close
    /// of the source reach the pipe producer.
    pub(crate) async fn media(link: &Link, source: ProducerId, id: ProducerId) -> Result<Self, RequestError> {
        let consumer = link
            .local
            .consume(ConsumerOptions::new(source, RtpCapabilities::default()))
            .await
            .map_err(|e| RequestError::Response { reason: e.to_string() })?;
        let mut options = ProducerOptions::new_pipe_transport(id, consumer.kind(), consumer.rtp_parameters());
        options.paused = consumer.producer_paused();
        let producer =
            link.remote.produce(options).await.map_err(|e| RequestError::Response { reason: e.to_string() })?;
        Ok(Self::Media { consumer, producer })
    }

    /// Pipes data producer `source` over `link`; the pipe data producer gets `id`.
    pub(crate) async fn data(link: &Link, source: DataProducerId, id: DataProducerId) -> Result<Self, RequestError> {
        let consumer = link
            .local
            .consume_data(DataConsumerOptions::new_sctp(source))
            .await
            .map_err(|e| RequestError::Response { reason: e.to_string() })?;
        let sctp = consumer.sctp_stream_parameters().ok_or_else(|| RequestError::Response {
            reason: "pipe data consumer has no SCTP stream parameters (SCTP is off on the pipe)".into(),
        })?;
        let mut options = DataProducerOptions::new_pipe_transport(id, sctp);
        options.label = consumer.label();
        options.protocol = consumer.protocol();
        options.paused = consumer.producer_paused();
        let producer =
            link.remote.produce_data(options).await.map_err(|e| RequestError::Response { reason: e.to_string() })?;
        sctp_ready(link).await?;
        Ok(Self::Data { consumer, producer })
    }

    /// The receiving half, as a follower of the source's pause state.
    pub(crate) fn follower(&self) -> Arc<dyn PausableEnd> {
        match self {
            Self::Media { producer, .. } => Arc::new(Follower::Media(Arc::downgrade(producer))),
            Self::Data { producer, .. } | Self::Replica { producer, .. } => {
                Arc::new(Follower::Data(Arc::downgrade(producer)))
            }
        }
    }

    /// Copies direct data producer `source` (its label, protocol and pause state) into the
    /// router `to` (the copy gets a fresh id).
    pub(crate) async fn replica(to: &RouterUse, source: &dyn DataProducerBackend) -> Result<Self, RequestError> {
        let transport = to.real().create_direct_transport(DirectTransportOptions::default()).await?;
        let mut options = DataProducerOptions::new_direct();
        options.label = source.label();
        options.protocol = source.protocol();
        options.paused = source.paused();
        let producer =
            transport.produce_data(options).await.map_err(|e| RequestError::Response { reason: e.to_string() })?;
        Ok(Self::Replica { transport, producer })
    }

    /// Lets `replicas` reach the copy, if this is one.
    pub(crate) fn register_copy(&self, replicas: &Replicas) {
        if let Self::Replica { producer, .. } = self {
            replicas.add(producer);
        }
    }

    /// Called once when the sending half closes (its source closed; a replica has none: it
    /// goes when the registry is told its source closed).
    pub(crate) fn on_source_gone(&self, callback: Box<dyn FnOnce() + Send>) {
        match self {
            Self::Media { consumer, .. } => consumer.on_close(callback).detach(),
            Self::Data { consumer, .. } => consumer.on_close(callback).detach(),
            Self::Replica { .. } => {}
        }
    }

    /// Called once when the receiving half closes.
    pub(crate) fn on_target_gone(&self, callback: Box<dyn FnOnce() + Send>) {
        match self {
            Self::Media { producer, .. } => producer.on_close(callback).detach(),
            Self::Data { producer, .. } | Self::Replica { producer, .. } => producer.on_close(callback).detach(),
        }
    }

    /// The receiving half: the source as the target cell knows it.
    pub(crate) fn real_source(&self) -> PipeSource {
        match self {
            Self::Media { producer, .. } => PipeSource::Producer(producer.id()),
            Self::Data { producer, .. } | Self::Replica { producer, .. } => PipeSource::DataProducer(producer.id()),
        }
    }

    /// Records the ends as internal objects of a merged dump.
    fn hide_in(&self, source: PipeSource, internal: &mut Internal) {
        match (self, source) {
            (Self::Media { consumer, producer }, PipeSource::Producer(source)) => {
                internal.consumers.insert(consumer.id());
                internal.producers.insert(producer.id(), source);
            }
            (Self::Data { consumer, producer }, PipeSource::DataProducer(source)) => {
                internal.data_consumers.insert(consumer.id());
                internal.data_producers.insert(producer.id(), source);
            }
            (Self::Replica { transport, producer }, PipeSource::DataProducer(source)) => {
                internal.transports.insert(transport.id());
                internal.data_producers.insert(producer.id(), source);
            }
            _ => {}
        }
    }
}

/// What a pipe needs of the virtual object it pipes (a producer or data producer).
pub(crate) trait PipedObject: Send + Sync {
    /// The pipe ends following its pause state.
    fn followers(&self) -> &Followers;
    /// Whether it is paused now.
    fn is_paused(&self) -> bool;
    /// A media producer's packet rate (what the pipe carries).
    fn rate(&self) -> Option<&Arc<Rate>> {
        None
    }
    /// For a direct data producer: its real object (copied into other cells instead of piped)
    /// and the list its sends reach.
    fn replicated(&self) -> Option<(Arc<dyn DataProducerBackend>, &Replicas)> {
        None
    }
}

/// The copies of a direct data producer in other cells: every send reaches each of them.
#[derive(Default)]
pub(crate) struct Replicas {
    copies: Mutex<Vec<Weak<dyn DataProducerBackend>>>,
}

impl Replicas {
    /// Adds a copy (held weakly: its pipe owns it).
    fn add(&self, copy: &Arc<dyn DataProducerBackend>) {
        push_live(&mut lock(&self.copies), Arc::downgrade(copy));
    }

    /// Sends one message to every copy (as the application sent it to the original).
    pub(crate) fn send(
        &self,
        message: &WebRtcMessage<'_>,
        subchannels: &Option<Vec<u16>>,
        required_subchannel: Option<u16>,
        ignored_subchannel: Option<u16>,
    ) {
        let copies: Vec<Arc<dyn DataProducerBackend>> = lock(&self.copies).iter().filter_map(Weak::upgrade).collect();
        for copy in copies {
            let _ = copy.send(message.clone(), subchannels.clone(), required_subchannel, ignored_subchannel);
        }
    }
}

/// The source of a pipe, as the virtual router knows it.
pub(crate) struct PipeFrom<'a> {
    /// The id the application knows (the router's registry key).
    pub(crate) known: PipeSource,
    /// Its id in its home cell.
    pub(crate) real: PipeSource,
    /// The cell it lives in.
    pub(crate) home: &'a Arc<Cell>,
    /// The virtual object, whose pause state the pipe follows.
    pub(crate) object: &'a dyn PipedObject,
}

/// What counts a pipe in its cells, released once (see [`PipeParts::counted`]).
pub(crate) type Counted = Arc<Mutex<Option<(Ticket, Vec<LoadTicket>)>>>;

/// Everything a live pipe holds open.
pub(crate) struct PipeParts {
    /// The real ends.
    pub(crate) ends: PipeEnds,
    /// The link they use (none for a replica).
    pub(crate) link: Option<Arc<Link>>,
    /// The source and target cells.
    pub(crate) cells: [Arc<Cell>; 2],
    /// The target's real router, kept open (a replica's; a link keeps its own).
    pub(crate) _target_router: Option<RouterUse>,
    /// What counts the pipe in its cells (its target cell's pipe count, the packets it
    /// forwards at the source and receives at the target); released the moment the pipe closes
    /// (its real ends go later, on the deferred thread) or its receiving half goes.
    pub(crate) counted: Counted,
}

type Key = (PipeSource, CellId);

/// One pipe; a member of both its cells.
#[derive(Debug)]
pub(crate) struct Pipe {
    key: Key,
    /// The pipe producer (or data producer) in the target cell: a fresh id, since the source's
    /// id may be taken in that worker (by another virtual router's object).
    real: PipeSource,
    parts: Mutex<Option<PipeParts>>,
    registry: Weak<Shared>,
}

impl std::fmt::Debug for PipeParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeParts").field("ends", &self.ends).field("link", &self.link).finish()
    }
}

impl Pipe {
    /// Tears the pipe down (dropping the real ends closes them). Often called from a mediasoup
    /// event handler (the source closed), so the real ends and the link are dropped on the
    /// dropper thread (see [`drop_later`]).
    fn close(&self) -> bool {
        let parts = lock(&self.parts).take();
        let closed = parts.is_some();
        if let Some(parts) = parts {
            drop(lock(&parts.counted).take());
            drop_later(parts);
            if let Some(shared) = self.registry.upgrade() {
                lock(&shared.by_real).remove(&self.real);
            }
        }
        closed
    }

    /// True while the pipe's real ends are open.
    pub(crate) fn is_open(&self) -> bool {
        lock(&self.parts).is_some()
    }
}

impl Member for Pipe {
    fn detach(&self, _lost: &mut Lost) {
        if let Some(shared) = self.registry.upgrade() {
            let mut slots = lock(&shared.slots);
            let ours =
                slots.get(&self.key).and_then(|s| s.pipe.get()).is_some_and(|p| std::ptr::eq(Arc::as_ptr(p), self));
            if ours {
                slots.remove(&self.key);
            }
        }
        self.close();
    }
}

#[derive(Debug, Default)]
struct Slot {
    users: Mutex<usize>,
    pipe: tokio::sync::OnceCell<Arc<Pipe>>,
}

#[derive(Debug, Default)]
struct Shared {
    slots: Mutex<HashMap<Key, Arc<Slot>>>,
    /// A pipe producer's (real) id → the source it stands for (observers translate every event).
    by_real: Mutex<HashMap<PipeSource, PipeSource>>,
}

/// A user's hold on a pipe; dropping the last one tears the pipe down.
#[derive(Debug)]
pub(crate) struct PipeLease {
    key: Key,
    slot: Arc<Slot>,
    registry: Weak<Shared>,
}

impl PipeLease {
    /// The piped source as the target cell knows it (the id to consume there).
    pub(crate) fn real_source(&self) -> PipeSource {
        self.slot.pipe.get().map_or(self.key.0, |pipe| pipe.real)
    }
}

impl Drop for PipeLease {
    fn drop(&mut self) {
        let Some(shared) = self.registry.upgrade() else {
            return;
        };
        let last = {
            let mut slots = lock(&shared.slots);
            let mut users = lock(&self.slot.users);
            *users -= 1;
            let last = *users == 0;
            if last && slots.get(&self.key).is_some_and(|s| Arc::ptr_eq(s, &self.slot)) {
                slots.remove(&self.key);
            }
            last
        };
        if last {
            if let Some(pipe) = self.slot.pipe.get() {
                pipe.close();
            }
        }
    }
}

/// The pipes of one virtual router.
#[derive(Default)]
pub(crate) struct PipeRegistry {
    shared: Arc<Shared>,
    /// The links the pipes use.
    pub(crate) links: LinkCache,
}

impl PipeRegistry {
    /// A hold on the pipe of `source` into `target`, made by `create` if there is none yet (a
    /// new pipe joins both cells of its link). Concurrent callers for the same pipe wait for one
    /// creation.
    pub(crate) async fn acquire<F, Fut>(
        &self,
        source: PipeSource,
        target: CellId,
        create: F,
    ) -> Result<PipeLease, RequestError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<PipeParts, RequestError>>,
    {
        let key = (source, target);
        let slot = {
            let mut slots = lock(&self.shared.slots);
            let slot = Arc::clone(slots.entry(key).or_default());
            *lock(&slot.users) += 1;
            slot
        };
        // From here on, dropping the lease (also on error) releases our use.
        let lease = PipeLease { key, slot, registry: Arc::downgrade(&self.shared) };
        let registry = Arc::downgrade(&self.shared);
        lease
            .slot
            .pipe
            .get_or_try_init(|| async move {
                let parts = create().await?;
                let cells = parts.cells.clone();
                let real = parts.ends.real_source();
                if let Some(shared) = registry.upgrade() {
                    lock(&shared.by_real).insert(real, key.0);
                }
                let pipe = Arc::new(Pipe { key, real, parts: Mutex::new(Some(parts)), registry });
                for cell in cells {
                    let member: Weak<dyn Member> = Arc::downgrade(&pipe) as Weak<Pipe>;
                    cell.join(member).map_err(|_| RequestError::ChannelClosed)?;
                }
                // The source went (its producer closed): the pipe goes with it.
                let weak = Arc::downgrade(&pipe);
                if let Some(parts) = lock(&pipe.parts).as_ref() {
                    parts.ends.on_source_gone(Box::new(move || {
                        if let Some(pipe) = weak.upgrade() {
                            pipe.detach(&mut Lost::default());
                        }
                    }));
                }
                Ok::<_, RequestError>(pipe)
            })
            .await?;
        Ok(lease)
    }

    /// Open pipes: (source, target cell).
    pub(crate) fn open(&self) -> Vec<(PipeSource, CellId)> {
        let slots = lock(&self.shared.slots);
        slots.iter().filter(|(_, slot)| slot.pipe.get().is_some_and(|p| p.is_open())).map(|(key, _)| *key).collect()
    }

    /// Entries: pipe slots, real ids of pipe producers, live links
    /// ([`crate::host::Host::footprint`]).
    pub(crate) fn sizes(&self) -> (usize, usize, usize) {
        let links = lock(&self.links.links).values().filter(|l| l.strong_count() > 0).count();
        (lock(&self.shared.slots).len(), lock(&self.shared.by_real).len(), links)
    }

    /// The source of the pipe producer (or data producer) whose real id is `real`, if one of
    /// these pipes made it.
    pub(crate) fn source_of(&self, real: PipeSource) -> Option<PipeSource> {
        lock(&self.shared.by_real).get(&real).copied()
    }

    /// The internal objects of these pipes, for a merged dump.
    pub(crate) fn internal(&self) -> Internal {
        let mut internal =
            Internal { transports: self.links.transport_ids().into_iter().collect(), ..Internal::default() };
        let pipes: Vec<Arc<Pipe>> = lock(&self.shared.slots).values().filter_map(|s| s.pipe.get().cloned()).collect();
        for pipe in pipes {
            if let Some(parts) = lock(&pipe.parts).as_ref() {
                parts.ends.hide_in(pipe.key.0, &mut internal);
            }
        }
        internal
    }

    /// Tears down every pipe of `source` (it closed).
    pub(crate) fn close_source(&self, source: PipeSource) {
        let slots: Vec<Arc<Slot>> = {
            let mut slots = lock(&self.shared.slots);
            let keys: Vec<Key> = slots.keys().filter(|(s, _)| *s == source).copied().collect();
            keys.iter().filter_map(|key| slots.remove(key)).collect()
        };
        for slot in slots {
            if let Some(pipe) = slot.pipe.get() {
                pipe.close();
            }
        }
    }

    /// Tears every pipe down (the virtual router closed).
    pub(crate) fn clear(&self) {
        let slots: Vec<Arc<Slot>> = lock(&self.shared.slots).drain().map(|(_, s)| s).collect();
        for slot in slots {
            if let Some(pipe) = slot.pipe.get() {
                pipe.close();
            }
        }
    }
}
