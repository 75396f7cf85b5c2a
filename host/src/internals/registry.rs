//! What a virtual router knows about its producers and data producers — where each lives (its
//! home cell), so consumers elsewhere get it piped — and the objects that close with it.
//!
//! Ids are the real objects' ids in every cell: a producer piped into another cell keeps its id
//! there (a pipe producer lives on another worker, where the id is free).

use crate::internals::cell::Cell;
use crate::internals::object::{lock, Lost, Member};
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
pub(crate) struct Found<S> {
    /// The object.
    pub(crate) object: S,
    /// The cell it lives in.
    pub(crate) home: Arc<Cell>,
}

struct Entry<W> {
    home: Arc<Cell>,
    weak: W,
}

/// Objects of one kind, by id.
pub(crate) struct Table<I, W> {
    entries: Mutex<HashMap<I, Entry<W>>>,
}

impl<I, W> Default for Table<I, W> {
    fn default() -> Self {
        Self { entries: Mutex::default() }
    }
}

impl<I: Copy + Eq + Hash, W: Registered> Table<I, W> {
    /// Records an object living in `home`; false if a live object has this id.
    pub(crate) fn add(&self, id: I, home: &Arc<Cell>, weak: W) -> bool {
        let mut entries = lock(&self.entries);
        if entries.get(&id).is_some_and(|e| e.weak.live().is_some()) {
            return false;
        }
        entries.insert(id, Entry { home: Arc::clone(home), weak });
        true
    }

    /// Forgets an object.
    pub(crate) fn remove(&self, id: &I) {
        lock(&self.entries).remove(id);
    }

    /// A live object and its home cell.
    pub(crate) fn find(&self, id: &I) -> Option<Found<W::Strong>> {
        let entries = lock(&self.entries);
        let entry = entries.get(id)?;
        let object = entry.weak.live()?;
        Some(Found { object, home: Arc::clone(&entry.home) })
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
        let mut members = lock(&self.members);
        members.retain(|m| m.strong_count() > 0);
        members.push(member);
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
