//! What a virtual router knows about its producers and data producers — where each lives (its
//! home cell) and its id there, so consumers elsewhere get it piped — and the objects that close
//! with it.
//!
//! Entries are keyed by the id the application knows. The real object in the home cell has the
//! same id, except for a producer piped in by `pipe_producer_to_router` with `keep_id` whose id
//! every usable worker already held: its real id there is fresh (see [`Found::real`]). Internal
//! pipes into other cells always give the pipe producer a fresh id (`pipes`).

use crate::internals::cell::Cell;
use crate::internals::object::{lock, push_live, Lost, Member};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, Weak};

/// A weak handle to a registered object (the API layer's weak producer types).
pub(crate) trait Registered: Clone + Send {
    /// The strong handle.
    type Strong;
    /// Upgrades to an open object.
    fn live(&self) -> Option<Self::Strong>;
}

/// A live registered object.
pub(crate) struct Found<S, I> {
    /// The object.
    pub(crate) object: S,
    /// The cell it lives in.
    pub(crate) home: Arc<Cell>,
    /// Its id in that cell (the real object's).
    pub(crate) real: I,
}

struct Entry<W, I> {
    home: Arc<Cell>,
    weak: W,
    real: I,
}

/// Objects of one kind, by id.
pub(crate) struct Table<I, W> {
    entries: Mutex<HashMap<I, Entry<W, I>>>,
    /// Real id → known id, for the (rare) objects whose real id differs.
    renamed: Mutex<HashMap<I, I>>,
}

impl<I, W> Default for Table<I, W> {
    fn default() -> Self {
        Self { entries: Mutex::default(), renamed: Mutex::default() }
    }
}

impl<I: Copy + Eq + Hash, W: Registered> Table<I, W> {
    /// Records an object living in `home` (where its id is `real`); false if a live object has
    /// this id.
    pub(crate) fn add(&self, id: I, real: I, home: &Arc<Cell>, weak: W) -> bool {
        let mut entries = lock(&self.entries);
        if entries.get(&id).is_some_and(|e| e.weak.live().is_some()) {
            return false;
        }
        if real != id {
            lock(&self.renamed).insert(real, id);
        }
        if let Some(old) = entries.insert(id, Entry { home: Arc::clone(home), weak, real }) {
            if old.real != id && old.real != real {
                lock(&self.renamed).remove(&old.real);
            }
        }
        true
    }

    /// Forgets an object.
    pub(crate) fn remove(&self, id: &I) {
        if let Some(entry) = lock(&self.entries).remove(id) {
            if entry.real != *id {
                lock(&self.renamed).remove(&entry.real);
            }
        }
    }

    /// A live object and its home cell.
    pub(crate) fn find(&self, id: &I) -> Option<Found<W::Strong, I>> {
        let entries = lock(&self.entries);
        let entry = entries.get(id)?;
        let object = entry.weak.live()?;
        Some(Found { object, home: Arc::clone(&entry.home), real: entry.real })
    }

    /// Calls `f` with every live object.
    pub(crate) fn each(&self, mut f: impl FnMut(&W::Strong)) {
        let entries = lock(&self.entries);
        for entry in entries.values() {
            if let Some(object) = entry.weak.live() {
                f(&object);
            }
        }
    }

    /// The id the application knows of the object whose real id is `real`, when they differ.
    pub(crate) fn known_as(&self, real: &I) -> Option<I> {
        lock(&self.renamed).get(real).copied()
    }

    /// Entries: objects, renamed ids ([`crate::host::Host::footprint`]).
    pub(crate) fn sizes(&self) -> (usize, usize) {
        (lock(&self.entries).len(), lock(&self.renamed).len())
    }

    /// Real id → known id of every renamed object (for dumps).
    pub(crate) fn renamed(&self) -> Vec<(I, I)> {
        lock(&self.renamed).iter().map(|(real, id)| (*real, *id)).collect()
    }
}

/// Objects (transports, observers) that close with their router.
#[derive(Default)]
pub(crate) struct Members {
    members: Mutex<Vec<Weak<dyn Member>>>,
}

impl Members {
    /// Registers an object to close with the router.
    pub(crate) fn join(&self, member: Weak<dyn Member>) {
        push_live(&mut lock(&self.members), member);
    }

    /// Live registered objects ([`crate::host::Host::footprint`]).
    pub(crate) fn live(&self) -> usize {
        lock(&self.members).iter().filter(|m| m.strong_count() > 0).count()
    }

    /// Closes every registered object (the router closed under them).
    pub(crate) fn close_all(&self) {
        let members = std::mem::take(&mut *lock(&self.members));
        let mut lost = Lost::default();
        for member in members.iter().filter_map(Weak::upgrade) {
            member.detach(&mut lost);
        }
    }
}
