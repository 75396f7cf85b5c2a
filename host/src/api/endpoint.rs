//! What producers, consumers, data producers and data consumers share: the real object behind
//! them (a backend handle, detachable when their cell closes), their transport, the cell they
//! live in, their close events fired in mediasoup's order, and the handle types around them
//! (mediasoup's `Regular`/`Direct` enums and weak handles).

use super::transport::Transport;
use super::transport_core::Child;
use crate::internals::lifecycle::Lifecycle;
use crate::internals::media_counters::MediaProbe;
use crate::internals::object::{inert_handler, lock, Slot};
use crate::placement::CellId;
use event_listener_primitives::HandlerId;
use mediasoup::prelude::AppData;
use mediasoup::worker::RequestError;
use std::sync::{Arc, Mutex};

/// A real object's media probe (producers and consumers; data objects carry no RTP).
pub(crate) trait Probed {
    /// The probe of this real object.
    fn probe(self: Arc<Self>) -> Option<MediaProbe>;
}

impl Probed for dyn crate::backend::ProducerBackend {
    fn probe(self: Arc<Self>) -> Option<MediaProbe> {
        Some(MediaProbe::Producer(self))
    }
}

impl Probed for dyn crate::backend::ConsumerBackend {
    fn probe(self: Arc<Self>) -> Option<MediaProbe> {
        Some(MediaProbe::Consumer(self))
    }
}

impl Probed for dyn crate::backend::DataProducerBackend {
    fn probe(self: Arc<Self>) -> Option<MediaProbe> {
        None
    }
}

impl Probed for dyn crate::backend::DataConsumerBackend {
    fn probe(self: Arc<Self>) -> Option<MediaProbe> {
        None
    }
}

/// The pause state of a real producer, consumer, data producer or data consumer: its own, and
/// (consumers) its producer's.
pub(crate) trait PauseState {
    /// (paused, producer paused).
    fn pause_state(&self) -> (bool, bool);
}

impl PauseState for dyn crate::backend::ProducerBackend {
    fn pause_state(&self) -> (bool, bool) {
        (self.paused(), false)
    }
}

impl PauseState for dyn crate::backend::ConsumerBackend {
    fn pause_state(&self) -> (bool, bool) {
        (self.paused(), self.producer_paused())
    }
}

impl PauseState for dyn crate::backend::DataProducerBackend {
    fn pause_state(&self) -> (bool, bool) {
        (self.paused(), false)
    }
}

impl PauseState for dyn crate::backend::DataConsumerBackend {
    fn pause_state(&self) -> (bool, bool) {
        (self.paused(), self.producer_paused())
    }
}

/// The shared part of a producer, consumer, data producer or data consumer over real object
/// `B`, with data `M` read once at creation.
pub(crate) struct Endpoint<B: ?Sized, M> {
    /// Data read at creation (readable after the object closed).
    pub(crate) meta: M,
    /// The transport it belongs to.
    pub(crate) transport: Arc<dyn Transport>,
    /// The cell it lives in.
    pub(crate) cell: CellId,
    /// The application's data.
    pub(crate) app_data: AppData,
    real: Slot<Arc<B>>,
    /// The pause state when the real object was taken away (mediasoup keeps answering the last
    /// state of a closed object).
    last_pause: Mutex<(bool, bool)>,
    /// Close state and events.
    pub(crate) life: Lifecycle,
    forget: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl<B: ?Sized + Send + Sync + PauseState, M: Send + Sync> Endpoint<B, M> {
    /// Wraps `real`; `forget` runs once when the object closes (e.g. leaving a registry).
    pub(crate) fn new(
        meta: M,
        transport: Arc<dyn Transport>,
        cell: CellId,
        app_data: AppData,
        real: Arc<B>,
        forget: Option<Box<dyn FnOnce() + Send>>,
    ) -> Self {
        Self {
            meta,
            transport,
            cell,
            app_data,
            real: Slot::new(real),
            last_pause: Mutex::new((false, false)),
            life: Lifecycle::default(),
            forget: Mutex::new(forget),
        }
    }

    /// The real object, or mediasoup's error for a closed channel.
    pub(crate) fn real(&self) -> Result<Arc<B>, RequestError> {
        self.real.request()
    }

    /// The real object, while attached.
    pub(crate) fn live(&self) -> Option<Arc<B>> {
        self.real.get()
    }

    /// Registers a handler on the real object (an inert one once it is gone).
    pub(crate) fn handler(&self, register: impl FnOnce(&B) -> HandlerId) -> HandlerId {
        self.live().map_or_else(inert_handler, |real| register(&real))
    }

    fn forgotten(&self, closed_now: bool) {
        if closed_now {
            if let Some(forget) = lock(&self.forget).take() {
                forget();
            }
        }
    }

    /// Closes: fires `on_close` (once) and runs `forget`.
    pub(crate) fn close(&self) {
        self.forgotten(self.life.close());
    }

    /// Closes now and drops the real object (closing it).
    pub(crate) fn close_now(&self) {
        self.close();
        self.take_real();
    }

    /// Takes the real object away (dropping it closes it), keeping its last pause state.
    fn take_real(&self) {
        if let Some(real) = self.real.take() {
            *lock(&self.last_pause) = real.pause_state();
        }
    }

    /// (paused, producer paused): the real object's, or its last once it is gone.
    pub(crate) fn pause_state(&self) -> (bool, bool) {
        self.live().map_or_else(|| *lock(&self.last_pause), |real| real.pause_state())
    }

    /// The source (producer) went: fires its close event, then closes.
    pub(crate) fn source_closed(&self) {
        self.forgotten(self.life.source_closed());
    }
}

impl<B: ?Sized + Send + Sync + PauseState + Probed, M: Send + Sync> Child for Endpoint<B, M> {
    fn transport_closed(&self) {
        self.forgotten(self.life.transport_closed());
        self.take_real();
    }

    fn media(&self) -> Option<MediaProbe> {
        self.live().and_then(Probed::probe)
    }
}

impl<B: ?Sized, M> Drop for Endpoint<B, M> {
    fn drop(&mut self) {
        if self.life.close() {
            if let Some(forget) = lock(&self.forget).take() {
                forget();
            }
        }
    }
}

/// Defines mediasoup's two-kind handle for an endpoint: `$name { Regular($regular),
/// Direct($direct) }` over `Arc<$inner>`, with `From`, `Debug`, `downgrade()` and the weak
/// handle `$weak`.
macro_rules! kinded_handle {
    (
        $(#[$name_doc:meta])* $name:ident,
        $(#[$regular_doc:meta])* $regular:ident,
        $(#[$direct_doc:meta])* $direct:ident,
        $(#[$weak_doc:meta])* $weak:ident,
        $inner:ty
    ) => {
        $(#[$regular_doc])*
        #[derive(Clone)]
        pub struct $regular {
            inner: std::sync::Arc<$inner>,
        }

        impl std::fmt::Debug for $regular {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($regular)).field("id", &self.inner.meta.id).finish()
            }
        }

        impl From<$regular> for $name {
            fn from(handle: $regular) -> Self {
                $name::Regular(handle)
            }
        }

        $(#[$direct_doc])*
        #[derive(Clone)]
        pub struct $direct {
            inner: std::sync::Arc<$inner>,
        }

        impl std::fmt::Debug for $direct {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($direct)).field("id", &self.inner.meta.id).finish()
            }
        }

        impl From<$direct> for $name {
            fn from(handle: $direct) -> Self {
                $name::Direct(handle)
            }
        }

        $(#[$name_doc])*
        #[derive(Clone)]
        #[non_exhaustive]
        pub enum $name {
            /// Created on a transport other than a direct transport.
            Regular($regular),
            /// Created on a direct transport.
            Direct($direct),
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("id", &self.inner().meta.id)
                    .field("closed", &self.inner().life.closed())
                    .finish()
            }
        }

        impl $name {
            fn from_inner(inner: std::sync::Arc<$inner>) -> Self {
                if inner.meta.direct {
                    $name::Direct($direct { inner })
                } else {
                    $name::Regular($regular { inner })
                }
            }

            fn inner(&self) -> &std::sync::Arc<$inner> {
                match self {
                    $name::Regular(handle) => &handle.inner,
                    $name::Direct(handle) => &handle.inner,
                }
            }

            pub(crate) fn as_child(&self) -> std::sync::Weak<dyn $crate::api::transport_core::Child> {
                std::sync::Arc::downgrade(self.inner()) as std::sync::Weak<$inner>
            }

            /// Downgrade to a weak handle.
            #[must_use]
            pub fn downgrade(&self) -> $weak {
                $weak { inner: std::sync::Arc::downgrade(self.inner()) }
            }
        }

        $crate::api::endpoint::weak_handle!($(#[$weak_doc])* $weak, $name, $inner, $name::from_inner);
    };
}

/// Defines the weak handle `$weak` of `$name` over `Weak<$inner>`, upgraded with `$make`.
macro_rules! weak_handle {
    ($(#[$weak_doc:meta])* $weak:ident, $name:ident, $inner:ty, $make:expr) => {
        $(#[$weak_doc])*
        #[derive(Clone)]
        pub struct $weak {
            inner: std::sync::Weak<$inner>,
        }

        impl std::fmt::Debug for $weak {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($weak)).finish()
            }
        }

        impl $weak {
            /// Upgrade to a strong handle, unless the object is gone.
            #[must_use]
            pub fn upgrade(&self) -> Option<$name> {
                self.inner.upgrade().map($make)
            }
        }
    };
}

pub(crate) use {kinded_handle, weak_handle};

/// Registers a handler on an endpoint's real object: `on!(self, on_pause(callback))` calls the
/// backend's `on_pause` with the callback in an `Arc`.
macro_rules! on {
    ($endpoint:expr, $event:ident($callback:expr)) => {
        $endpoint.handler(|real| real.$event(std::sync::Arc::new($callback)))
    };
}

pub(crate) use on;
