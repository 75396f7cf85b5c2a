//! The virtual AudioLevelObserver: the real observer lives in one cell; producers from other
//! cells are piped to it; volume events name the virtual producers.

pub use mediasoup::audio_level_observer::*;

use super::producer::Producer;
use super::router::Router;
use super::rtp_observer::{virtual_observer, ObserverCore};
use crate::backend::AudioLevelObserverBackend;
use crate::internals::cell::Cell;
use crate::internals::object::inert_handler;
use crate::internals::real_routers::RouterUse;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::worker::RequestError;
use std::sync::{Arc, Weak};

/// Volume of one producer, as reported by [`AudioLevelObserver::on_volumes`].
#[derive(Debug, Clone)]
pub struct AudioLevelObserverVolume {
    /// The audio producer instance.
    pub producer: Producer,
    /// The average volume (in dBvo from -127 to 0) of the audio producer in the last interval.
    pub volume: i8,
}

type Core = ObserverCore<dyn AudioLevelObserverBackend>;

/// An audio level observer monitors the volume of the selected audio producers.
#[derive(Clone)]
#[must_use = "Audio level observer will be closed on drop, make sure to keep it around for as long as needed"]
pub struct AudioLevelObserver {
    inner: Arc<Core>,
}

virtual_observer!(AudioLevelObserver);

impl AudioLevelObserver {
    pub(crate) fn wrap(
        router: &Router,
        cell: Arc<Cell>,
        router_use: RouterUse,
        real: Arc<dyn AudioLevelObserverBackend>,
        app_data: AppData,
    ) -> Result<Self, RequestError> {
        Ok(Self { inner: ObserverCore::new(router, cell, router_use, real, app_data)? })
    }

    /// Callback is called at most every interval with the loudest producers (virtual ones,
    /// wherever they live).
    pub fn on_volumes<F: Fn(&[AudioLevelObserverVolume]) + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        let router = self.inner.router.downgrade();
        self.inner.real.get().map_or_else(inert_handler, |real| {
            real.on_volumes(Arc::new(move |volumes| {
                let Some(router) = router.upgrade() else {
                    return;
                };
                let mapped: Vec<AudioLevelObserverVolume> = volumes
                    .iter()
                    .filter_map(|v| {
                        Core::virtual_producer(&router, &v.producer_id)
                            .map(|producer| AudioLevelObserverVolume { producer, volume: v.volume })
                    })
                    .collect();
                if !mapped.is_empty() {
                    callback(&mapped);
                }
            }))
        })
    }

    /// Callback is called when no one of the producers is above the threshold.
    pub fn on_silence<F: Fn() + Send + Sync + 'static>(&self, callback: F) -> HandlerId {
        self.inner.real.get().map_or_else(inert_handler, |real| real.on_silence(Arc::new(callback)))
    }

    /// Downgrade to a weak handle.
    #[must_use]
    pub fn downgrade(&self) -> WeakAudioLevelObserver {
        WeakAudioLevelObserver { inner: Arc::downgrade(&self.inner) }
    }
}

/// An audio level observer that does not keep it alive.
#[derive(Clone)]
pub struct WeakAudioLevelObserver {
    inner: Weak<Core>,
}

impl std::fmt::Debug for WeakAudioLevelObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeakAudioLevelObserver").finish()
    }
}

impl WeakAudioLevelObserver {
    /// Upgrade to a strong handle, unless the observer is gone.
    #[must_use]
    pub fn upgrade(&self) -> Option<AudioLevelObserver> {
        self.inner.upgrade().map(|inner| AudioLevelObserver { inner })
    }
}
