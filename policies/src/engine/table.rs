//! The routes a `Strict` core has seen: an insert-only table whose reads are
//! plain acquire loads.
//!
//! A lease and a return each look a route up, so the lookup must not write
//! to shared memory (an `ArcSwap` load costs two read-modify-writes of a
//! per-thread slot). Routes are never removed while the core lives, which
//! makes a simple structure possible, in safe code:
//!
//! * routes live in segments of doubling size, each allocated once
//!   (`GrowArray`), so a `&Route` stays valid for the table's life and a
//!   route id maps to its place by arithmetic;
//! * keys map to ids through a fixed array of buckets, each an insert-only
//!   chain of `OnceLock` links.
//!
//! Registration (the first lease of a route) takes a mutex; lookups never do.
//! The bucket count is fixed when the core is built (from `max_total`, at
//! most `MAX_BUCKETS`), so a pool that sees far more routes than that gets
//! longer chains.

use super::route::Route;
use crate::grow::GrowArray;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The most buckets a table has (64 KiB of them, made with the table): a
/// pool allowed a million connections need not make room for as many
/// routes before it sees one. Past a few thousand routes, chains grow.
const MAX_BUCKETS: usize = 1 << 12;

struct Link {
    id: usize,
    hash: u64,
    next: OnceLock<Box<Link>>,
}

/// Values by dense id, each set once, read with plain acquire loads: a
/// reference handed out stays valid for the store's life.
pub(super) struct IdStore<V> {
    values: GrowArray<OnceLock<V>>,
}

impl<V> IdStore<V> {
    pub(super) fn new() -> Self {
        Self {
            values: GrowArray::new(usize::MAX),
        }
    }

    /// The value with id `id`, if set.
    #[inline]
    pub(super) fn get(&self, id: usize) -> Option<&V> {
        self.values.get(id)?.get()
    }

    /// Sets the value of `id`, once.
    ///
    /// # Panics
    /// If `id` already has a value.
    pub(super) fn set(&self, id: usize, value: V) {
        if self
            .values
            .get_or_grow(id, OnceLock::new)
            .set(value)
            .is_err()
        {
            panic!("id {id} set twice");
        }
    }
}

pub(super) struct Table<K> {
    buckets: Box<[OnceLock<Box<Link>>]>,
    routes: IdStore<Route<K>>,
    len: AtomicUsize,
    /// Serializes registration; `true` once the table is closed to new
    /// routes.
    register: Mutex<bool>,
    hasher: foldhash::fast::RandomState,
}

impl<K: Hash + Eq> Table<K> {
    pub(super) fn new(expected_routes: usize) -> Self {
        let buckets = expected_routes.clamp(16, MAX_BUCKETS).next_power_of_two();
        Self {
            buckets: (0..buckets).map(|_| OnceLock::new()).collect(),
            routes: IdStore::new(),
            len: AtomicUsize::new(0),
            register: Mutex::new(false),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The route with id `id`, if registered.
    #[inline]
    pub(super) fn by_id(&self, id: usize) -> Option<&Route<K>> {
        self.routes.get(id)
    }

    /// The route for `key`, if registered.
    #[inline]
    pub(super) fn get(&self, key: &K) -> Option<&Route<K>> {
        let hash = self.hasher.hash_one(key);
        self.find(key, hash)
    }

    #[inline]
    fn find(&self, key: &K, hash: u64) -> Option<&Route<K>> {
        let mut link = self.buckets[hash as usize & (self.buckets.len() - 1)].get()?;
        loop {
            if link.hash == hash {
                let route = self.by_id(link.id)?;
                if route.key == *key {
                    return Some(route);
                }
            }
            link = link.next.get()?;
        }
    }

    /// The route for `key`, registered with `make(id)` if new; `None` once
    /// the table is closed.
    #[cold]
    pub(super) fn register(
        &self,
        key: &K,
        make: impl FnOnce(usize) -> Route<K>,
    ) -> Option<&Route<K>> {
        let closed = self.register.lock().unwrap_or_else(|e| e.into_inner());
        if *closed {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(route) = self.find(key, hash) {
            return Some(route);
        }
        // Route ids are handed out once each, under the lock.
        let id = self.len.load(Ordering::Relaxed);
        self.routes.set(id, make(id));
        // Append the link: registration is serialized, so the last link's
        // `next` is unset and nobody else sets it.
        let new = || {
            Box::new(Link {
                id,
                hash,
                next: OnceLock::new(),
            })
        };
        let mut chain = &self.buckets[hash as usize & (self.buckets.len() - 1)];
        while let Some(link) = chain.get() {
            chain = &link.next;
        }
        if chain.set(new()).is_err() {
            unreachable!("only the registering thread appends");
        }
        self.len.store(id + 1, Ordering::Release);
        drop(closed);
        self.by_id(id)
    }

    /// Closes the table to new routes and runs `f` on every route, with
    /// registration held off until it returns.
    pub(super) fn close(&self, mut f: impl FnMut(&Route<K>)) {
        let mut closed = self.register.lock().unwrap_or_else(|e| e.into_inner());
        *closed = true;
        self.iter().for_each(&mut f);
    }

    /// Every registered route, oldest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Route<K>> {
        let len = self.len.load(Ordering::Acquire);
        (0..len).filter_map(move |id| self.by_id(id))
    }

    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

/// Which routes carry `TOTAL_WAIT`: those with ids below a count, as routes
/// are registered in id order. Kept by the one serializer that raises and
/// lowers the flag (`Strict`'s and `Lax`'s, or `Offlock`'s total line).
#[derive(Default)]
pub(super) struct TotalWaitFlags {
    flagged: usize,
}

impl TotalWaitFlags {
    /// Raises `TOTAL_WAIT` on every route that does not carry it yet;
    /// whether there was one (the caller then looks again).
    pub(super) fn raise<K: Hash + Eq>(&mut self, table: &Table<K>) -> bool {
        let routes = table.len();
        if self.flagged >= routes {
            return false;
        }
        table
            .iter()
            .skip(self.flagged)
            .for_each(|route| route.set_total_wait(true));
        self.flagged = routes;
        true
    }

    /// Lowers `TOTAL_WAIT` wherever it was raised.
    pub(super) fn lower<K: Hash + Eq>(&mut self, table: &Table<K>) {
        if self.flagged > 0 {
            table
                .iter()
                .take(self.flagged)
                .for_each(|route| route.set_total_wait(false));
            self.flagged = 0;
        }
    }
}
