//! The real mediasoup routers behind one virtual router: at most one per cell, created the
//! first time something needs the router in that cell, closed when the last user (transport,
//! pipe end, observer) lets go.

use crate::backend::RouterBackend;
use crate::internals::cell::Cell;
use crate::internals::object::{lock, Lost, Member};
use crate::placement::CellId;
use mediasoup::prelude::{AppData, RouterOptions, RtpCodecCapability};
use mediasoup::router::{RouterId, UpdateMediaCodecsError};
use mediasoup::worker::RequestError;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use tracing::debug;

/// One real router and how many users it has.
#[derive(Debug)]
struct Entry {
    cell: Arc<Cell>,
    real: Arc<dyn RouterBackend>,
    users: Mutex<usize>,
}

#[derive(Debug, Default)]
struct Shared {
    entries: Mutex<HashMap<CellId, Arc<Entry>>>,
    members: Mutex<Vec<Arc<CellRouter>>>,
}

/// Drops a virtual router's real router from its map when the real router's cell closes.
#[derive(Debug)]
struct CellRouter {
    shared: Weak<Shared>,
    cell: CellId,
}

impl Member for CellRouter {
    fn detach(&self, _lost: &mut Lost) {
        if let Some(shared) = self.shared.upgrade() {
            lock(&shared.entries).remove(&self.cell);
            lock(&shared.members).retain(|m| m.cell != self.cell);
        }
    }
}

/// Keeps a real router open while held.
#[derive(Debug)]
pub(crate) struct RouterUse {
    entry: Arc<Entry>,
    shared: Weak<Shared>,
    owner: RouterId,
}

impl RouterUse {
    /// The real router.
    pub(crate) fn real(&self) -> &Arc<dyn RouterBackend> {
        &self.entry.real
    }

    /// The cell it is in.
    pub(crate) fn cell(&self) -> &Arc<Cell> {
        &self.entry.cell
    }
}

impl Drop for RouterUse {
    fn drop(&mut self) {
        {
            let mut users = lock(&self.entry.users);
            *users -= 1;
            if *users > 0 {
                return;
            }
        }
        let id = self.entry.cell.id();
        if let Some(shared) = self.shared.upgrade() {
            let mut entries = lock(&shared.entries);
            // Re-check under the map lock: a new user may have arrived meanwhile.
            if *lock(&self.entry.users) > 0 {
                return;
            }
            match entries.get(&id) {
                Some(e) if Arc::ptr_eq(e, &self.entry) => {
                    entries.remove(&id);
                    lock(&shared.members).retain(|m| m.cell != id);
                }
                Some(_) => return, // a newer real router serves this cell
                None => {}
            }
        }
        debug!(router = %self.owner, real = %self.entry.real.id(), cell = %id, "real router released");
        self.entry.cell.set_router_present(self.owner, false);
    }
}

/// The per-cell real routers of one virtual router.
#[derive(Debug)]
pub(crate) struct RealRouters {
    owner: RouterId,
    /// The codecs and how many times they were replaced.
    media_codecs: Mutex<(Vec<RtpCodecCapability>, u64)>,
    app_data: AppData,
    shared: Arc<Shared>,
    creating: tokio::sync::Mutex<()>,
}

/// Whether [`RealRouters::acquire`] had to create the real router.
pub(crate) type Created = bool;

impl RealRouters {
    /// No real router yet; they will be created with the virtual router's codecs.
    pub(crate) fn new(owner: RouterId, media_codecs: Vec<RtpCodecCapability>, app_data: AppData) -> Self {
        Self {
            owner,
            media_codecs: Mutex::new((media_codecs, 0)),
            app_data,
            shared: Arc::default(),
            creating: tokio::sync::Mutex::new(()),
        }
    }

    /// Replaces the codecs of every real router, and of those created from now on (a real
    /// router being created meanwhile is updated once it exists, see [`RealRouters::acquire`]).
    pub(crate) fn set_media_codecs(&self, media_codecs: Vec<RtpCodecCapability>) -> Result<(), UpdateMediaCodecsError> {
        let mut codecs = lock(&self.media_codecs);
        for (_, real) in self.all() {
            real.update_media_codecs(media_codecs.clone())?;
        }
        codecs.1 += 1;
        codecs.0 = media_codecs;
        Ok(())
    }

    /// Options of a new real router, and the version of the codecs in them.
    fn options(&self) -> (RouterOptions, u64) {
        let codecs = lock(&self.media_codecs);
        let mut options = RouterOptions::new(codecs.0.clone());
        options.app_data = self.app_data.clone();
        (options, codecs.1)
    }

    fn take_use(&self, entry: &Arc<Entry>) -> RouterUse {
        *lock(&entry.users) += 1;
        entry.cell.set_router_present(self.owner, true);
        RouterUse { entry: Arc::clone(entry), shared: Arc::downgrade(&self.shared), owner: self.owner }
    }

    /// A use of the real router in `cell`, creating it when needed; refused when the cell is
    /// closed (also when it closes while the router is being created).
    pub(crate) async fn acquire(&self, cell: &Arc<Cell>) -> Result<(RouterUse, Created), RequestError> {
        if let Some(entry) = lock(&self.shared.entries).get(&cell.id()) {
            return Ok((self.take_use(entry), false));
        }
        let _serial = self.creating.lock().await;
        if let Some(entry) = lock(&self.shared.entries).get(&cell.id()) {
            return Ok((self.take_use(entry), false));
        }
        let worker = cell.worker().ok_or(RequestError::ChannelClosed)?;
        let (options, version) = self.options();
        let real = worker.create_router(options).await?;
        let entry = Arc::new(Entry { cell: Arc::clone(cell), real, users: Mutex::new(0) });
        // The cell forgets this real router when it closes (the entry's member).
        let member = Arc::new(CellRouter { shared: Arc::downgrade(&self.shared), cell: cell.id() });
        cell.join(Arc::downgrade(&member) as Weak<dyn Member>).map_err(|_| RequestError::ChannelClosed)?;
        let taken = self.take_use(&entry);
        {
            // Codecs replaced while the router was being created reach it too.
            let codecs = lock(&self.media_codecs);
            if codecs.1 != version {
                let _ = entry.real.update_media_codecs(codecs.0.clone());
            }
            lock(&self.shared.entries).insert(cell.id(), entry);
        }
        lock(&self.shared.members).push(member);
        Ok((taken, true))
    }

    /// The real routers, by cell.
    pub(crate) fn all(&self) -> Vec<(CellId, Arc<dyn RouterBackend>)> {
        let entries = lock(&self.shared.entries);
        let mut all: Vec<_> = entries.iter().map(|(id, e)| (*id, e.real.clone())).collect();
        all.sort_by_key(|(id, _)| *id);
        all
    }

    /// Entries: real routers, their cell-close watchers ([`crate::host::Host::footprint`]).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (lock(&self.shared.entries).len(), lock(&self.shared.members).len())
    }

    /// The real router in `cell`, if there is one.
    pub(crate) fn get(&self, cell: CellId) -> Option<Arc<dyn RouterBackend>> {
        lock(&self.shared.entries).get(&cell).map(|e| e.real.clone())
    }

    /// Forgets every real router (the virtual router closed); users still holding a
    /// [`RouterUse`] keep theirs open until they let go.
    pub(crate) fn clear(&self) {
        lock(&self.shared.entries).clear();
        lock(&self.shared.members).clear();
    }
}
