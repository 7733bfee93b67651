//! The routes a `Strict` core has seen: an insert-only table whose reads are
//! plain acquire loads.
//!
//! A lease and a return each look a route up, so the lookup must not write
//! to shared memory (an `ArcSwap` load costs two read-modify-writes of a
//! per-thread slot). Routes are never removed while the core lives, which
//! makes a simple structure possible, in safe code:
//!
//! * routes live in segments of doubling size, each allocated once
//!   (`OnceLock`), so a `&Route` stays valid for the table's life and a route
//!   id maps to its place by arithmetic;
//! * keys map to ids through an array of buckets, each an insert-only
//!   chain of `OnceLock` links.
//!
//! Registration (the first lease of a route) takes a mutex; lookups never do.
//! The bucket array starts sized from `max_total`; once the routes outnumber
//! its buckets twice over, registration makes one twice as long, with a link
//! for every route, and publishes it, so chains stay short however many
//! routes a pool sees (each route is linked again once per doubling: O(1)
//! amortized). The arrays it replaces stay, as do their links, until the
//! table is dropped: a lookup may still walk one, and finds there every
//! route registered before it was replaced; a route registered since, which
//! it misses, is found by registration, which looks again under the mutex.

use super::route::Route;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Routes in the first segment; segment `s` holds `FIRST << s`.
const FIRST: usize = 16;
/// Enough segments for any id below `usize::MAX / 2`.
const SEGMENTS: usize = usize::BITS as usize - 5;
/// Bucket arrays a table may make: the last is `2^(LEVELS - 1)` times as
/// long as the first, which is far more than memory holds.
const LEVELS: usize = 40;
/// Routes per bucket, on average, past which the table doubles its buckets.
const LOAD: usize = 2;

/// A bucket array: each bucket an insert-only chain of links.
type Buckets = Box<[OnceLock<Box<Link>>]>;

struct Link {
    id: usize,
    hash: u64,
    next: OnceLock<Box<Link>>,
}

/// A segment of values, allocated once, each place set once.
type Segment<V> = OnceLock<Box<[OnceLock<V>]>>;

/// Values by dense id, each set once, read with plain acquire loads: a
/// reference handed out stays valid for the store's life.
pub(super) struct IdStore<V> {
    segments: [Segment<V>; SEGMENTS],
}

impl<V> IdStore<V> {
    pub(super) fn new() -> Self {
        Self {
            segments: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The value with id `id`, if set.
    #[inline]
    pub(super) fn get(&self, id: usize) -> Option<&V> {
        let (segment, offset) = place(id);
        self.segments.get(segment)?.get()?.get(offset)?.get()
    }

    /// Sets the value of `id`, once.
    ///
    /// # Panics
    /// If `id` already has a value.
    pub(super) fn set(&self, id: usize, value: V) {
        let (segment, offset) = place(id);
        let slots = self.segments[segment]
            .get_or_init(|| (0..FIRST << segment).map(|_| OnceLock::new()).collect());
        if slots[offset].set(value).is_err() {
            panic!("id {id} set twice");
        }
    }
}

pub(super) struct Table<K> {
    /// The bucket arrays made so far, each twice as long as the one before.
    levels: [OnceLock<Buckets>; LEVELS],
    /// The newest bucket array's level, which lookups use.
    level: AtomicUsize,
    routes: IdStore<Route<K>>,
    len: AtomicUsize,
    /// Serializes registration; `true` once the table is closed to new
    /// routes.
    register: Mutex<bool>,
    hasher: foldhash::fast::RandomState,
}

/// A bucket array of `len` empty buckets.
fn empty_buckets(len: usize) -> Buckets {
    (0..len).map(|_| OnceLock::new()).collect()
}

/// Appends a link for route `id` to its chain in `buckets`. Only the
/// thread holding the registration mutex links, so the last link's `next`
/// is unset and nobody else sets it.
fn link_into(buckets: &Buckets, id: usize, hash: u64) {
    let mut chain = &buckets[hash as usize & (buckets.len() - 1)];
    while let Some(link) = chain.get() {
        chain = &link.next;
    }
    let link = Box::new(Link {
        id,
        hash,
        next: OnceLock::new(),
    });
    if chain.set(link).is_err() {
        unreachable!("only the registering thread appends");
    }
}

/// Segment and offset of route `id`.
#[inline]
fn place(id: usize) -> (usize, usize) {
    let x = id / FIRST + 1;
    let segment = (usize::BITS - 1 - x.leading_zeros()) as usize;
    (segment, id - FIRST * ((1 << segment) - 1))
}

impl<K: Hash + Eq> Table<K> {
    pub(super) fn new(expected_routes: usize) -> Self {
        let buckets = expected_routes.clamp(16, 1 << 16).next_power_of_two();
        let levels: [OnceLock<Buckets>; LEVELS] = std::array::from_fn(|_| OnceLock::new());
        if levels[0].set(empty_buckets(buckets)).is_err() {
            unreachable!("a new table's first level is unset");
        }
        Self {
            levels,
            level: AtomicUsize::new(0),
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

    /// The newest bucket array (it is set before its level is published).
    #[inline]
    fn buckets(&self) -> Option<&Buckets> {
        self.levels[self.level.load(Ordering::Acquire)].get()
    }

    #[inline]
    fn find(&self, key: &K, hash: u64) -> Option<&Route<K>> {
        let buckets = self.buckets()?;
        let mut link = buckets[hash as usize & (buckets.len() - 1)].get()?;
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
        // Registration is serialized: the newest level is ours to change.
        let level = self.level.load(Ordering::Relaxed);
        let buckets = self.levels[level].get().expect("the newest level is set");
        link_into(buckets, id, hash);
        self.len.store(id + 1, Ordering::Release);
        if id + 1 > LOAD * buckets.len() && level + 1 < LEVELS {
            self.grow(level, id + 1, buckets.len() * 2);
        }
        drop(closed);
        self.by_id(id)
    }

    /// Makes level `level + 1`, with `buckets` buckets and a link for each
    /// of the first `routes` routes, and publishes it. The caller holds the
    /// registration mutex.
    #[cold]
    fn grow(&self, level: usize, routes: usize, buckets: usize) {
        let grown = empty_buckets(buckets);
        let old = self.levels[level].get().expect("the newest level is set");
        for bucket in old.iter() {
            let mut next = bucket.get();
            while let Some(link) = next {
                link_into(&grown, link.id, link.hash);
                next = link.next.get();
            }
        }
        debug_assert_eq!(routes, self.len.load(Ordering::Relaxed));
        if self.levels[level + 1].set(grown).is_err() {
            unreachable!("only the registering thread grows the table");
        }
        self.level.store(level + 1, Ordering::Release);
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

#[cfg(test)]
mod tests {
    use super::{place, Route, Table};
    use crate::Reuse;

    /// The longest chain of the bucket array lookups use.
    fn longest_chain<K: std::hash::Hash + Eq>(table: &Table<K>) -> usize {
        let buckets = table.buckets().expect("the newest level is set");
        let chain = |bucket: &std::sync::OnceLock<Box<super::Link>>| {
            std::iter::successors(bucket.get(), |link| link.next.get()).count()
        };
        buckets.iter().map(chain).max().unwrap_or(0)
    }

    #[test]
    fn chains_stay_short_as_routes_outgrow_the_buckets() {
        let routes: u32 = if cfg!(miri) { 300 } else { 20_000 };
        let table = Table::new(16);
        for key in 0..routes {
            let route = table.register(&key, |id| Route::new(key, id, 1, Reuse::Lifo, 1, 1));
            assert_eq!(route.map(|route| route.key), Some(key));
        }
        for key in 0..routes {
            let route = table.get(&key).expect("every route is found");
            assert_eq!(route.key, key);
            assert_eq!(table.by_id(route.id).map(|route| route.key), Some(key));
        }
        assert!(table.get(&routes).is_none());
        assert_eq!(table.len(), routes as usize);
        let longest = longest_chain(&table);
        assert!(
            longest <= 16,
            "a chain of {longest} links for {routes} routes"
        );
    }

    #[test]
    fn places_are_dense_and_distinct() {
        let mut expect = (0, 0);
        for id in 0..if cfg!(miri) { 2_000 } else { 100_000 } {
            let (segment, offset) = place(id);
            assert_eq!((segment, offset), expect, "id {id}");
            expect = if offset + 1 == super::FIRST << segment {
                (segment + 1, 0)
            } else {
                (segment, offset + 1)
            };
        }
    }
}
