//! Plumbing shared by every virtual object: the detachable slot holding the real mediasoup
//! object, inert handler ids for events on closed objects, and the [`Member`] trait through
//! which a cell closes everything living in it.
//!
//! mediasoup closes an object when its last handle is dropped; a real object can therefore only
//! be closed under a live application handle if the application's handle does not own it. Our
//! virtual objects own their real object through a [`Slot`], from which the cell can take it
//! away (closing it) when the cell's worker is retired or dies.

use event_listener_primitives::{Bag, BagOnce, HandlerId};
use mediasoup::worker::RequestError;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A new random id of a mediasoup id type (they are UUIDs; their own constructor is private).
pub(crate) fn fresh_id<T: std::str::FromStr>() -> T
where
    T::Err: std::fmt::Debug,
{
    match T::from_str(&uuid::Uuid::new_v4().to_string()) {
        Ok(id) => id,
        Err(error) => unreachable!("a v4 UUID always parses as a mediasoup id: {error:?}"),
    }
}

/// Locks a mutex, ignoring poisoning (our critical sections never leave state half-written).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The real object behind a virtual one; empty once the object was detached (closed).
#[derive(Debug)]
pub(crate) struct Slot<T> {
    real: Mutex<Option<T>>,
}

impl<T: Clone> Slot<T> {
    /// A slot holding `real`.
    pub(crate) fn new(real: T) -> Self {
        Self { real: Mutex::new(Some(real)) }
    }

    /// The real object, if still attached.
    pub(crate) fn get(&self) -> Option<T> {
        lock(&self.real).clone()
    }

    /// The real object, or mediasoup's error for a closed channel.
    pub(crate) fn request(&self) -> Result<T, RequestError> {
        self.get().ok_or(RequestError::ChannelClosed)
    }

    /// Takes the real object out (the caller drops it, which closes it).
    pub(crate) fn take(&self) -> Option<T> {
        lock(&self.real).take()
    }
}

/// A handler id for an event that can no longer fire (the object is closed).
pub(crate) fn inert_handler() -> HandlerId {
    BagOnce::<Box<dyn FnOnce() + Send>>::default().add(Box::new(|| {}))
}

/// Registers a once-handler on `bag`, or calls it at once when the object is already closed
/// (mediasoup's behaviour for `on_close` on a closed object).
pub(crate) fn on_close_handler(
    bag: &BagOnce<Box<dyn FnOnce() + Send>>,
    closed: bool,
    callback: Box<dyn FnOnce() + Send>,
) -> HandlerId {
    if closed {
        callback();
        inert_handler()
    } else {
        bag.add(callback)
    }
}

/// Handlers of an event carrying an `A`.
pub(crate) type EventBag<A> = Bag<Arc<dyn Fn(&A) + Send + Sync>, A>;

/// What a cell's closure took away, reported in worker-death events.
#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Transports that were closed, with the virtual router they belonged to.
    pub(crate) transports: Vec<(mediasoup::router::RouterId, mediasoup::prelude::TransportId)>,
}

/// A virtual object living in a cell; the cell detaches it when it closes.
pub(crate) trait Member: Send + Sync {
    /// Fires the object's close events and drops its real object.
    fn detach(&self, lost: &mut Lost);

    /// The transport this member is, with its virtual router (for rebalance advice).
    fn transport(&self) -> Option<(mediasoup::router::RouterId, mediasoup::prelude::TransportId)> {
        None
    }

    /// The real producers and consumers of this member whose stats count as the cell's media.
    fn media(&self, _probes: &mut Vec<crate::internals::media_counters::MediaProbe>) {}
}

/// Work handed to the host's deferred thread.
type Deferred = Box<dyn FnOnce() + Send>;

/// Runs `work` on the host's deferred thread ("mafalda-deferred"), after everything handed to
/// it before: event deliveries mediasoup makes asynchronously (a consumer's `on_producer_close`
/// after the application dropped its producer) and teardown that must not run on the calling
/// thread (see [`drop_later`]). Falls back to running inline if the thread cannot be started.
pub(crate) fn run_later(work: impl FnOnce() + Send + 'static) {
    static DEFERRED: std::sync::OnceLock<Option<Mutex<std::sync::mpsc::Sender<Deferred>>>> = std::sync::OnceLock::new();
    let sender = DEFERRED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Deferred>();
        std::thread::Builder::new()
            .name("mafalda-deferred".into())
            .spawn(move || {
                for work in rx {
                    work();
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let work: Deferred = Box::new(work);
    match sender {
        Some(sender) => {
            if let Err(returned) = lock(sender).send(work) {
                (returned.0)();
            }
        }
        None => work(),
    }
}

/// Drops `value` on the host's deferred thread instead of the calling one.
///
/// mediasoup calls event handlers on a worker's channel thread while holding that channel's
/// handler lock; dropping the last handle of a real object of the same worker there (which
/// unregisters its handlers, taking that lock) deadlocks the worker, and dropping one of another
/// worker can deadlock two workers against each other. Teardown that event handlers trigger (a
/// pipe going with its source) hands its real objects to this thread.
pub(crate) fn drop_later<T: Send + 'static>(value: T) {
    run_later(move || drop(value));
}

/// `future`'s output, or `None` once `limit` passed first: a bounded wait on any executor (the
/// timer runs on futures-timer's own thread, not on a runtime of the application's).
pub(crate) async fn within<T>(limit: std::time::Duration, future: impl std::future::Future<Output = T>) -> Option<T> {
    let timeout = async {
        futures_timer::Delay::new(limit).await;
        None
    };
    futures_lite::future::or(async { Some(future.await) }, timeout).await
}

/// Adds `item` to a list of weak handles, dropping the dead ones first when the list is full
/// (so a list of N live handles costs O(1) amortized per push, not O(N)).
pub(crate) fn push_live<T: ?Sized>(list: &mut Vec<std::sync::Weak<T>>, item: std::sync::Weak<T>) {
    if list.len() == list.capacity() {
        list.retain(|w| w.strong_count() > 0);
    }
    list.push(item);
}
