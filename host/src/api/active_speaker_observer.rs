//! The virtual ActiveSpeakerObserver: the real observer lives in one cell; producers from other
//! cells are piped to it; dominant-speaker events name the virtual producer.

pub use mediasoup::active_speaker_observer::*;

use super::producer::Producer;
use super::router::Router;
use super::rtp_observer::{virtual_observer, ObserverCore};
use crate::backend::ActiveSpeakerObserverBackend;
use crate::internals::cell::Cell;
use crate::internals::object::inert_handler;
use crate::internals::real_routers::RouterUse;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::worker::RequestError;
use std::sync::{Arc, Weak};

/// The dominant speaker, as reported by [`ActiveSpeakerObserver::on_dominant_speaker`].
#[derive(Debug, Clone)]
pub struct ActiveSpeakerObserverDominantSpeaker {
    /// The audio producer instance.
    pub producer: Producer,
}

type Core = ObserverCore<dyn ActiveSpeakerObserverBackend>;

/// An active speaker observer monitors the speaking activity of the selected audio producers.
#[derive(Clone)]
#[must_use = "Active speaker observer will be closed on drop, make sure to keep it around for as long as needed"]
pub struct ActiveSpeakerObserver {
    inner: Arc<Core>,
}

virtual_observer!(ActiveSpeakerObserver);

impl ActiveSpeakerObserver {
    pub(crate) fn wrap(
        router: &Router,
        cell: Arc<Cell>,
        router_use: RouterUse,
        real: Arc<dyn ActiveSpeakerObserverBackend>,
        app_data: AppData,
    ) -> Result<Self, RequestError> {
        Ok(Self { inner: ObserverCore::new(router, cell, router_use, real, app_data)? })
    }

    /// Callback is called when another producer becomes the dominant speaker.
    pub fn on_dominant_speaker<F: Fn(&ActiveSpeakerObserverDominantSpeaker) + Send + Sync + 'static>(
        &self,
        callback: F,
    ) -> HandlerId {
        let router = self.inner.router.downgrade();
        self.inner.real.get().map_or_else(inert_handler, |real| {
            real.on_dominant_speaker(Arc::new(move |id| {
                let producer = router.upgrade().and_then(|router| Core::virtual_producer(&router, id));
                if let Some(producer) = producer {
                    callback(&ActiveSpeakerObserverDominantSpeaker { producer });
                }
            }))
        })
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakActiveSpeakerObserver {
        WeakActiveSpeakerObserver { inner: Arc::downgrade(&self.inner) }
    }
}

/// An active speaker observer that does not keep it alive.
#[derive(Clone)]
pub struct WeakActiveSpeakerObserver {
    inner: Weak<Core>,
}

impl std::fmt::Debug for WeakActiveSpeakerObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakActiveSpeakerObserver").finish()
    }
}

impl WeakActiveSpeakerObserver {
    /// Upgrade to a strong handle, unless the observer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<ActiveSpeakerObserver> {
        self.inner.upgrade().map(|inner| ActiveSpeakerObserver { inner })
    }
}
