//! mediasoup's RtpObserver trait over virtual observers, and the core they share: the real
//! observer lives in one cell; producers added to it are piped there first.

pub use mediasoup::rtp_observer::*;

use super::producer::Producer;
use super::router::Router;
use crate::backend::RtpObserverBackend;
use crate::internals::cell::Cell;
use crate::internals::object::{inert_handler, lock, on_close_handler, Lost, Member, Slot};
use crate::internals::pipes::{PipeFrom, PipeLease, PipeSource};
use crate::internals::real_routers::RouterUse;
use async_trait::async_trait;
use event_listener_primitives::{BagOnce, HandlerId};
use mediasoup::prelude::{AppData, ProducerId};
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// An RTP observer inspects the media received by a set of selected producers.
#[async_trait]
pub trait RtpObserver {
    /// RtpObserver id.
    #[must_use]
    fn id(&self) -> RtpObserverId;

    /// Router to which RTP observer belongs.
    fn router(&self) -> &Router;

    /// Whether the RtpObserver is paused.
    #[must_use]
    fn paused(&self) -> bool;

    /// Custom application data.
    #[must_use]
    fn app_data(&self) -> &AppData;

    /// Whether the RTP observer is closed.
    #[must_use]
    fn closed(&self) -> bool;

    /// Pauses the RTP observer.
    async fn pause(&self) -> Result<(), RequestError>;

    /// Resumes the RTP observer.
    async fn resume(&self) -> Result<(), RequestError>;

    /// Provides the RTP observer with a new producer to monitor (piping it here if needed).
    async fn add_producer(
        &self,
        rtp_observer_add_producer_options: RtpObserverAddProducerOptions,
    ) -> Result<(), RequestError>;

    /// Removes the given producer from the RTP observer.
    async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError>;

    /// Callback is called when the RTP observer is paused.
    fn on_pause(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when the RTP observer is resumed.
    fn on_resume(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when a new producer is added into the RTP observer.
    fn on_add_producer(&self, callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when a producer is removed from the RTP observer.
    fn on_remove_producer(&self, callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId;

    /// Callback is called when the router this RTP observer belongs to is closed.
    fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;

    /// Callback is called when the RTP observer is closed for whatever reason.
    fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId;
}

/// What both virtual observers share (over real observer `B`, a backend trait object).
pub(crate) struct ObserverCore<B: ?Sized> {
    pub(crate) id: RtpObserverId,
    pub(crate) router: Router,
    pub(crate) cell: Arc<Cell>,
    app_data: AppData,
    pub(crate) real: Slot<Arc<B>>,
    /// Observed producers: id here (a pipe producer's when piped), hold on the pipe.
    leases: Mutex<HashMap<ProducerId, (ProducerId, Option<PipeLease>)>>,
    closed: AtomicBool,
    router_close: BagOnce<Box<dyn FnOnce() + Send>>,
    close: BagOnce<Box<dyn FnOnce() + Send>>,
}

impl<B: ?Sized + RtpObserverBackend + 'static> ObserverCore<B> {
    /// Wraps `real`; it joins its cell and router (refused when the cell closed meanwhile).
    pub(crate) fn new(
        router: &Router,
        cell: Arc<Cell>,
        router_use: RouterUse,
        real: Arc<B>,
        app_data: AppData,
    ) -> Result<Arc<Self>, RequestError> {
        let load = cell.ledger().data();
        real.on_close(Box::new(move || drop((router_use, load)))).detach();
        let core = Arc::new(Self {
            id: real.id(),
            router: router.clone(),
            cell,
            app_data,
            real: Slot::new(real),
            leases: Mutex::default(),
            closed: AtomicBool::new(false),
            router_close: BagOnce::default(),
            close: BagOnce::default(),
        });
        let member: Weak<dyn Member> = Arc::downgrade(&core) as Weak<Self>;
        if core.cell.join(member.clone()).is_err() {
            core.detach(&mut Lost::default());
            return Err(RequestError::ChannelClosed);
        }
        core.router.inner.members.join(member);
        Ok(core)
    }

    /// The virtual producer the real observer names (by its id in the observer's cell).
    pub(crate) fn virtual_producer(router: &Router, id: &ProducerId) -> Option<Producer> {
        router.inner.producers.find(&router.virtual_producer_id(*id)).map(|found| found.object)
    }

    pub(crate) fn app_data(&self) -> &AppData {
        &self.app_data
    }

    pub(crate) fn closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn paused(&self) -> bool {
        self.real.get().is_some_and(|r| r.paused())
    }

    pub(crate) async fn pause(&self) -> Result<(), RequestError> {
        self.real.request()?.pause().await
    }

    pub(crate) async fn resume(&self) -> Result<(), RequestError> {
        self.real.request()?.resume().await
    }

    pub(crate) async fn add_producer(
        self: &Arc<Self>,
        options: RtpObserverAddProducerOptions,
    ) -> Result<(), RequestError> {
        let real = self.real.request()?;
        let id = options.producer_id;
        let found = self
            .router
            .inner
            .producers
            .find(&id)
            .ok_or_else(|| RequestError::Response { reason: format!("Producer with id \"{id}\" not found") })?;
        let from = PipeFrom {
            known: PipeSource::Producer(id),
            real: PipeSource::Producer(found.real),
            home: &found.home,
            object: &found.object,
        };
        let lease = self.router.ensure_in(from, &self.cell).await?;
        let here = match lease.as_ref().map(|l| l.real_source()) {
            Some(PipeSource::Producer(here)) => here,
            _ => found.real,
        };
        real.add_producer(RtpObserverAddProducerOptions::new(here)).await?;
        lock(&self.leases).insert(id, (here, lease));
        // When the producer goes, so does our hold on its pipe.
        let weak = Arc::downgrade(self);
        found
            .object
            .on_close(move || {
                if let Some(core) = weak.upgrade() {
                    lock(&core.leases).remove(&id);
                }
            })
            .detach();
        Ok(())
    }

    pub(crate) async fn remove_producer(&self, producer_id: ProducerId) -> Result<(), RequestError> {
        let here = lock(&self.leases).get(&producer_id).map_or(producer_id, |(here, _)| *here);
        self.real.request()?.remove_producer(here).await?;
        lock(&self.leases).remove(&producer_id);
        Ok(())
    }

    pub(crate) fn on_pause(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId {
        self.real.get().map_or_else(inert_handler, |r| r.on_pause(Arc::from(callback)))
    }

    pub(crate) fn on_resume(&self, callback: Box<dyn Fn() + Send + Sync + 'static>) -> HandlerId {
        self.real.get().map_or_else(inert_handler, |r| r.on_resume(Arc::from(callback)))
    }

    pub(crate) fn on_add_producer(&self, callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId {
        let router = self.router.downgrade();
        self.real.get().map_or_else(inert_handler, |r| {
            r.on_add_producer(Arc::new(move |id: &ProducerId| {
                if let Some(producer) = router.upgrade().and_then(|router| Self::virtual_producer(&router, id)) {
                    callback(&producer);
                }
            }))
        })
    }

    pub(crate) fn on_remove_producer(&self, callback: Box<dyn Fn(&Producer) + Send + Sync + 'static>) -> HandlerId {
        let router = self.router.downgrade();
        self.real.get().map_or_else(inert_handler, |r| {
            r.on_remove_producer(Arc::new(move |id: &ProducerId| {
                if let Some(producer) = router.upgrade().and_then(|router| Self::virtual_producer(&router, id)) {
                    callback(&producer);
                }
            }))
        })
    }

    pub(crate) fn on_router_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        if self.closed() {
            return inert_handler();
        }
        self.router_close.add(callback)
    }

    pub(crate) fn on_close(&self, callback: Box<dyn FnOnce() + Send + 'static>) -> HandlerId {
        on_close_handler(&self.close, self.closed(), callback)
    }
}

impl<B: ?Sized + RtpObserverBackend + 'static> Member for ObserverCore<B> {
    fn detach(&self, _lost: &mut Lost) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.router_close.call_simple();
        self.close.call_simple();
        drop(self.real.take());
        lock(&self.leases).clear();
    }
}

impl<B: ?Sized> Drop for ObserverCore<B> {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.close.call_simple();
        }
    }
}

/// Implements mediasoup's RtpObserver trait for a virtual observer
/// `$name { inner: Arc<ObserverCore<$real>> }`.
macro_rules! virtual_observer {
    ($name:ident) => {
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.inner.id)
                    .field("cell", &self.inner.cell.id())
                    .finish()
            }
        }

        #[async_trait::async_trait]
        impl $crate::api::rtp_observer::RtpObserver for $name {
            fn id(&self) -> $crate::api::rtp_observer::RtpObserverId {
                self.inner.id
            }

            fn router(&self) -> &$crate::api::router::Router {
                &self.inner.router
            }

            fn paused(&self) -> bool {
                self.inner.paused()
            }

            fn app_data(&self) -> &mediasoup::prelude::AppData {
                self.inner.app_data()
            }

            fn closed(&self) -> bool {
                self.inner.closed()
            }

            async fn pause(&self) -> Result<(), mediasoup::worker::RequestError> {
                self.inner.pause().await
            }

            async fn resume(&self) -> Result<(), mediasoup::worker::RequestError> {
                self.inner.resume().await
            }

            async fn add_producer(
                &self,
                options: $crate::api::rtp_observer::RtpObserverAddProducerOptions,
            ) -> Result<(), mediasoup::worker::RequestError> {
                self.inner.add_producer(options).await
            }

            async fn remove_producer(
                &self,
                producer_id: mediasoup::prelude::ProducerId,
            ) -> Result<(), mediasoup::worker::RequestError> {
                self.inner.remove_producer(producer_id).await
            }

            fn on_pause(
                &self,
                callback: Box<dyn Fn() + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_pause(callback)
            }

            fn on_resume(
                &self,
                callback: Box<dyn Fn() + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_resume(callback)
            }

            fn on_add_producer(
                &self,
                callback: Box<dyn Fn(&$crate::api::producer::Producer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_add_producer(callback)
            }

            fn on_remove_producer(
                &self,
                callback: Box<dyn Fn(&$crate::api::producer::Producer) + Send + Sync + 'static>,
            ) -> event_listener_primitives::HandlerId {
                self.inner.on_remove_producer(callback)
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

        impl $name {
            /// mafalda extension: the cell (worker) the observer runs in.
            #[must_use]
            pub fn cell(&self) -> $crate::placement::CellId {
                self.inner.cell.id()
            }
        }
    };
}

pub(crate) use virtual_observer;
