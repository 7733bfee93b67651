//! The routes an engine knows: found by key or by id with plain loads,
//! registered and removed under a mutex, their memory reclaimed through the
//! epoch (`reclaim`).
//!
//! * Each route is boxed once and lives at a small dense id, which connection
//!   slots, requests and the idle index name it by. Ids are kept in chunks of
//!   `CHUNK` pointers; a chunk is made when its first id is handed out and
//!   retired when its last route goes, and the lowest free id is handed out
//!   first, so the chunks in use follow the routes alive, not the most there
//!   ever were.
//! * Keys map to routes through an array of buckets, each a chain of links
//!   (a link names its route's box). Registration pushes a link at a chain's
//!   head; removal unlinks it. Once the routes outnumber the buckets twice
//!   over, or a shrunk table leaves seven in eight empty, the array is built
//!   anew at the right size and swapped in (amortized O(1) per route), so
//!   chains stay short and an emptied table gives its memory back.
//!
//! A reference this table hands out is valid while the caller is pinned
//! (checked in debug builds), or while it owns something that keeps the
//! route from removal (a connection, a permit, a waiter: see
//! `Engine::remove_route`). Whatever is unlinked is retired to the epoch, so
//! a reader pinned before the unlinking may still walk it.

use crate::grow::GrowArray;
use crate::reclaim::{Graveyard, Guard};
use crate::sync::Mutex;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hash};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

/// Ids per chunk.
const CHUNK: usize = 256;
/// The fewest buckets a table has.
const MIN_BUCKETS: usize = 16;
/// The most buckets a new table starts with (a pool allowed a million
/// connections need not make room for as many routes before it sees one).
const MAX_FIRST_BUCKETS: usize = 1 << 12;

/// What a table holds: something with a key.
pub(super) trait Keyed: Send + 'static {
    type Key: Hash + Eq;
    fn key(&self) -> &Self::Key;
}

struct Link<V> {
    hash: u64,
    value: *mut V,
    next: AtomicPtr<Link<V>>,
}

// SAFETY: a link only names its value; dropping a link (the only thing
// done with one on another thread: freeing it) leaves the value alone.
unsafe impl<V: Send> Send for Link<V> {}

type Buckets<V> = Box<[AtomicPtr<Link<V>>]>;
type Chunk<V> = [AtomicPtr<V>; CHUNK];

/// What the table unlinked and has yet to retire, freed together.
struct Dead<V> {
    values: Vec<*mut V>,
    links: Vec<*mut Link<V>>,
    chunks: Vec<*mut Chunk<V>>,
    arrays: Vec<*mut Buckets<V>>,
}

// SAFETY: the pointers are boxes nobody else owns once unlinked; values are
// `Send`, and links, chunks and arrays only name values.
unsafe impl<V: Send> Send for Dead<V> {}

impl<V> Default for Dead<V> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            links: Vec::new(),
            chunks: Vec::new(),
            arrays: Vec::new(),
        }
    }
}

impl<V> Dead<V> {
    fn is_empty(&self) -> bool {
        self.values.is_empty()
            && self.links.is_empty()
            && self.chunks.is_empty()
            && self.arrays.is_empty()
    }

    /// Frees it all.
    ///
    /// # Safety
    /// Nobody reads any of it any more.
    unsafe fn free(self) {
        // SAFETY: each pointer came from `Box::into_raw` and is freed once,
        // here (an array's links are not in `links`: only unlinked ones are).
        unsafe {
            for value in self.values {
                drop(Box::from_raw(value));
            }
            for link in self.links {
                drop(Box::from_raw(link));
            }
            for chunk in self.chunks {
                drop(Box::from_raw(chunk));
            }
            for array in self.arrays {
                free_buckets(array);
            }
        }
    }
}

/// What only the thread holding the mutex changes.
struct Writer<V> {
    /// Unlinked, to be retired by [`Table::retire_dead`].
    dead: Dead<V>,
    closed: bool,
    /// Ids below `next_id` not in use.
    free: BTreeSet<usize>,
    /// Ids ever handed out and not given back at the top.
    next_id: usize,
    /// Routes per chunk.
    per_chunk: Vec<usize>,
    /// The bucket count of a new table: it never shrinks below.
    first_buckets: usize,
}

pub(super) struct Table<V> {
    buckets: AtomicPtr<Buckets<V>>,
    /// How many buckets `buckets` has (kept by the writer).
    bucket_count: AtomicUsize,
    chunks: GrowArray<AtomicPtr<Chunk<V>>>,
    /// Bound of the ids in use (iteration stops there).
    id_bound: AtomicUsize,
    len: AtomicUsize,
    writer: Mutex<Writer<V>>,
    graveyard: Graveyard,
    hasher: foldhash::fast::RandomState,
}

// SAFETY: the raw pointers are boxes this table owns (values, links,
// arrays); values are `Send`, and shared access to them goes through `&V`,
// which the engine only needs `Sync` values for.
unsafe impl<V: Keyed + Sync> Sync for Table<V> {}
// SAFETY: as above.
unsafe impl<V: Keyed> Send for Table<V> {}

fn empty_buckets<V>(len: usize) -> *mut Buckets<V> {
    let buckets: Buckets<V> = (0..len).map(|_| AtomicPtr::new(ptr::null_mut())).collect();
    Box::into_raw(Box::new(buckets))
}

/// The bucket of `hash` among `buckets`.
#[inline]
fn bucket<V>(buckets: &Buckets<V>, hash: u64) -> &AtomicPtr<Link<V>> {
    &buckets[hash as usize & (buckets.len() - 1)]
}

impl<V: Keyed> Table<V> {
    pub(super) fn new(expected_routes: usize) -> Self {
        let first = expected_routes
            .clamp(MIN_BUCKETS, MAX_FIRST_BUCKETS)
            .next_power_of_two();
        Self {
            buckets: AtomicPtr::new(empty_buckets(first)),
            bucket_count: AtomicUsize::new(first),
            chunks: GrowArray::new(usize::MAX),
            id_bound: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            writer: Mutex::new(Writer {
                dead: Dead::default(),
                closed: false,
                free: BTreeSet::new(),
                next_id: 0,
                per_chunk: Vec::new(),
                first_buckets: first,
            }),
            graveyard: Graveyard::new(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The value with id `id`, if one lives there. The caller is pinned or
    /// keeps the value alive (see the module docs).
    #[inline]
    pub(super) fn by_id(&self, id: usize) -> Option<&V> {
        // SAFETY: a published value is freed only through the epoch, after
        // it was unpublished; the caller is pinned or keeps it alive.
        unsafe { self.value_ptr(id).as_ref() }
    }

    /// The pointer of the value with id `id` (null if none), with the
    /// provenance of its box, which the writer frees it through. The caller
    /// is pinned, keeps a value of the id's chunk alive, or is the writer.
    #[inline]
    fn value_ptr(&self, id: usize) -> *mut V {
        let Some(cell) = self.chunks.get(id / CHUNK) else {
            return ptr::null_mut();
        };
        let chunk = cell.load(Ordering::Acquire);
        if chunk.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a published chunk is freed only through the epoch, after
        // it was unpublished, and the caller is pinned, keeps a value of it
        // (and so it) alive, or is the writer, which alone unpublishes it.
        let values: &Chunk<V> = unsafe { &*chunk };
        values[id % CHUNK].load(Ordering::Acquire)
    }

    /// The value for `key`, if registered. The caller is pinned, unless
    /// nothing is ever retired while the table lives (nothing removed, and
    /// [`Self::retire_dead`] never called: replaced bucket arrays then stay
    /// until the table drops).
    #[inline]
    pub(super) fn get(&self, key: &V::Key) -> Option<&V> {
        let hash = self.hasher.hash_one(key);
        self.find(key, hash)
    }

    #[inline]
    fn find(&self, key: &V::Key, hash: u64) -> Option<&V> {
        // SAFETY: the array, its links and their values are freed only
        // through the epoch after they were unlinked, and the caller is
        // pinned.
        let buckets = unsafe { &*self.buckets.load(Ordering::Acquire) };
        let mut link = bucket(buckets, hash).load(Ordering::Acquire);
        // SAFETY: as above.
        while let Some(at) = unsafe { link.as_ref() } {
            if at.hash == hash {
                // SAFETY: as above.
                let value = unsafe { &*at.value };
                if value.key() == key {
                    return Some(value);
                }
            }
            link = at.next.load(Ordering::Acquire);
        }
        None
    }

    /// The value for `key`, registered with `make(id)` if new; `None` once
    /// the table is closed. `make` runs under the mutex, as does
    /// [`Self::for_each_locked`]. The caller is pinned.
    #[cold]
    pub(super) fn register(&self, key: &V::Key, make: impl FnOnce(usize) -> V) -> Option<&V> {
        let mut writer = self.lock();
        if writer.closed {
            return None;
        }
        let hash = self.hasher.hash_one(key);
        if let Some(value) = self.find(key, hash) {
            return Some(value);
        }
        let id = match writer.free.pop_first() {
            Some(id) => id,
            None => {
                writer.next_id += 1;
                self.id_bound.store(writer.next_id, Ordering::Release);
                writer.next_id - 1
            }
        };
        let value = Box::into_raw(Box::new(make(id)));
        let (chunk_at, offset) = (id / CHUNK, id % CHUNK);
        if writer.per_chunk.len() <= chunk_at {
            writer.per_chunk.resize(chunk_at + 1, 0);
        }
        let cell = self
            .chunks
            .get_or_grow(chunk_at, || AtomicPtr::new(ptr::null_mut()));
        if writer.per_chunk[chunk_at] == 0 {
            let chunk: Box<Chunk<V>> =
                Box::new(std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())));
            cell.store(Box::into_raw(chunk), Ordering::Release);
        }
        writer.per_chunk[chunk_at] += 1;
        // SAFETY: the chunk is published and only the writer frees it.
        let chunk = unsafe { &*cell.load(Ordering::Relaxed) };
        chunk[offset].store(value, Ordering::Release);
        // SAFETY: only the writer changes the buckets' array and chains.
        let buckets = unsafe { &*self.buckets.load(Ordering::Relaxed) };
        push_link(buckets, hash, value);
        let len = self.len.load(Ordering::Relaxed) + 1;
        self.len.store(len, Ordering::Release);
        if len > 2 * buckets.len() {
            self.rebuild(&mut writer, buckets.len() * 2);
        }
        drop(writer);
        // SAFETY: just published; freed only through the epoch, and the
        // caller is pinned.
        Some(unsafe { &*value })
    }

    /// Unlinks the value with id `id`, to be retired with its link by the
    /// next [`Self::retire_dead`]: readers pinned before that still find it,
    /// nobody after this. The caller has made sure nothing will use the
    /// value once the readers before it are gone.
    pub(super) fn remove(&self, id: usize) {
        let mut writer = self.lock();
        // The pointer as the box gave it, which may free it.
        let value = self.value_ptr(id);
        // SAFETY: values in the table are alive, and only the writer, us,
        // unlinks them.
        let Some(named) = (unsafe { value.as_ref() }) else {
            return;
        };
        let hash = self.hasher.hash_one(named.key());
        // SAFETY: only the writer changes the array and its chains.
        let buckets = unsafe { &*self.buckets.load(Ordering::Relaxed) };
        let mut cell = bucket(buckets, hash);
        loop {
            let link = cell.load(Ordering::Relaxed);
            // SAFETY: links in the current array are alive; we are the
            // writer.
            let Some(at) = (unsafe { link.as_ref() }) else {
                unreachable!("a registered value is linked");
            };
            if at.value == value {
                // Readers at `link` go on along its `next`, which stays.
                cell.store(at.next.load(Ordering::Relaxed), Ordering::Release);
                writer.dead.links.push(link);
                break;
            }
            cell = &at.next;
        }
        let (chunk_at, offset) = (id / CHUNK, id % CHUNK);
        let chunk_cell = self.chunks.get(chunk_at).expect("the id's chunk");
        let chunk = chunk_cell.load(Ordering::Relaxed);
        // SAFETY: published, and only the writer frees it.
        let values = unsafe { &*chunk };
        values[offset].store(ptr::null_mut(), Ordering::Release);
        writer.per_chunk[chunk_at] -= 1;
        if writer.per_chunk[chunk_at] == 0 {
            chunk_cell.store(ptr::null_mut(), Ordering::Release);
            writer.dead.chunks.push(chunk);
        }
        writer.dead.values.push(value);
        // Ids at the top go back to the bound, so iteration stays short.
        writer.free.insert(id);
        while let Some(top) = writer.next_id.checked_sub(1) {
            if !writer.free.remove(&top) {
                break;
            }
            writer.next_id = top;
        }
        self.id_bound.store(writer.next_id, Ordering::Release);
        let len = self.len.load(Ordering::Relaxed) - 1;
        self.len.store(len, Ordering::Release);
        if buckets.len() > writer.first_buckets && len * 8 < buckets.len() {
            self.rebuild(&mut writer, buckets.len() / 2);
        }
    }

    /// Retires what was unlinked since the last call, as one object: it is
    /// freed once the threads pinned now have unpinned. Returns how many
    /// values it retired.
    pub(super) fn retire_dead(&self, guard: &Guard) -> usize {
        let dead = std::mem::take(&mut self.lock().dead);
        if dead.is_empty() {
            return 0;
        }
        let values = dead.values.len();
        // SAFETY: all of it unlinked or unpublished: only readers pinned
        // before the unlinking may still read it, and the epoch waits for
        // them.
        unsafe {
            self.graveyard.retire(guard, move || dead.free());
        }
        values
    }

    /// Builds the bucket array anew with `count` buckets and swaps it in;
    /// the old one goes with the dead.
    #[cold]
    fn rebuild(&self, writer: &mut Writer<V>, count: usize) {
        let count = count.max(MIN_BUCKETS);
        let grown = empty_buckets::<V>(count);
        let old = self.buckets.load(Ordering::Relaxed);
        // SAFETY: both arrays are ours to change: `grown` is new, and only
        // the writer changes `old`.
        let (fresh, current) = unsafe { (&*grown, &*old) };
        for cell in current.iter() {
            let mut link = cell.load(Ordering::Relaxed);
            // SAFETY: links of the current array are alive.
            while let Some(at) = unsafe { link.as_ref() } {
                push_link(fresh, at.hash, at.value);
                link = at.next.load(Ordering::Relaxed);
            }
        }
        self.buckets.store(grown, Ordering::Release);
        self.bucket_count.store(count, Ordering::Relaxed);
        writer.dead.arrays.push(old);
    }

    /// Closes the table to new routes and runs `f` on every value, with
    /// registration held off until it returns.
    pub(super) fn close(&self, f: impl FnMut(&V)) {
        let mut writer = self.lock();
        writer.closed = true;
        self.iter().for_each(f);
    }

    /// Runs `first`, then `f` on every value, with registration and
    /// removal held off.
    pub(super) fn for_each_locked(&self, first: impl FnOnce(), f: impl FnMut(&V)) {
        let _writer = self.lock();
        first();
        self.iter().for_each(f);
    }

    /// Every value, by id. The caller is pinned.
    pub(super) fn iter(&self) -> impl Iterator<Item = &V> {
        let bound = self.id_bound.load(Ordering::Acquire);
        (0..bound).filter_map(move |id| self.by_id(id))
    }

    /// How many buckets the table has (for tests).
    #[cfg(test)]
    pub(super) fn bucket_count(&self) -> usize {
        self.bucket_count.load(Ordering::Relaxed)
    }
}

/// Pushes a link for `value` at the head of its chain in `buckets` (the
/// caller is the writer).
fn push_link<V>(buckets: &Buckets<V>, hash: u64, value: *mut V) {
    let cell = bucket(buckets, hash);
    let link = Box::new(Link {
        hash,
        value,
        next: AtomicPtr::new(cell.load(Ordering::Relaxed)),
    });
    cell.store(Box::into_raw(link), Ordering::Release);
}

/// Frees a bucket array and its links (not the values they name).
///
/// # Safety
/// Nobody reads the array any more.
unsafe fn free_buckets<V>(buckets: *mut Buckets<V>) {
    // SAFETY: forwarded from the caller.
    let buckets = unsafe { Box::from_raw(buckets) };
    for cell in buckets.iter() {
        let mut link = cell.load(Ordering::Relaxed);
        while !link.is_null() {
            // SAFETY: each link of the array is freed once, here.
            let at = unsafe { Box::from_raw(link) };
            link = at.next.load(Ordering::Relaxed);
        }
    }
}

impl<V> Table<V> {
    fn lock(&self) -> impl std::ops::DerefMut<Target = Writer<V>> + '_ {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many values the table holds.
    pub(super) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }
}

impl<V> Drop for Table<V> {
    fn drop(&mut self) {
        // Nobody else holds the table: free the array, its links, the
        // values and the chunks.
        let buckets = *self.buckets.get_mut();
        // SAFETY: the array is ours alone now.
        unsafe { free_buckets(buckets) };
        // SAFETY: unlinked and never retired: nobody reads it.
        unsafe { std::mem::take(&mut self.lock().dead).free() };
        let bound = *self.id_bound.get_mut();
        for chunk_at in 0..bound.div_ceil(CHUNK) {
            let Some(cell) = self.chunks.get(chunk_at) else {
                continue;
            };
            let chunk = cell.load(Ordering::Relaxed);
            if chunk.is_null() {
                continue;
            }
            // SAFETY: a published chunk and its values are the table's.
            let chunk = unsafe { Box::from_raw(chunk) };
            for value in chunk.iter() {
                let value = value.load(Ordering::Relaxed);
                if !value.is_null() {
                    // SAFETY: as above.
                    drop(unsafe { Box::from_raw(value) });
                }
            }
        }
    }
}

/// Which routes carry `TOTAL_WAIT`: none, or (during an episode of requests
/// blocked by the total cap) every route, those registered during it
/// included (their registration reads the `active` flag that
/// [`Self::raise`] is given, under the table's mutex, which raising and
/// lowering hold). Kept by the one serializer that
/// raises and lowers the flag (`Strict`'s and `Lax`'s, or `Offlock`'s total
/// queue).
#[derive(Debug, Default)]
pub struct TotalWaitFlags {
    raised: bool,
}

impl TotalWaitFlags {
    /// Starts an episode: raises `TOTAL_WAIT` on every route; whether it
    /// started one (the caller then looks again).
    pub(super) fn raise<V: Keyed>(
        &mut self,
        table: &Table<V>,
        active: &std::sync::atomic::AtomicBool,
        set: impl Fn(&V, bool),
    ) -> bool {
        if self.raised {
            return false;
        }
        self.raised = true;
        table.for_each_locked(
            || active.store(true, Ordering::Relaxed),
            |value| set(value, true),
        );
        true
    }

    /// Ends the episode: lowers `TOTAL_WAIT` everywhere.
    pub(super) fn lower<V: Keyed>(
        &mut self,
        table: &Table<V>,
        active: &std::sync::atomic::AtomicBool,
        set: impl Fn(&V, bool),
    ) {
        if std::mem::take(&mut self.raised) {
            table.for_each_locked(
                || active.store(false, Ordering::Relaxed),
                |value| set(value, false),
            );
        }
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::{Keyed, Table};

    struct Named(u32);

    impl Keyed for Named {
        type Key = u32;
        fn key(&self) -> &u32 {
            &self.0
        }
    }

    #[test]
    fn chains_stay_short_and_the_table_shrinks_back() {
        let routes: u32 = if cfg!(miri) { 200 } else { 20_000 };
        let table = Table::new(16);
        let guard = crate::reclaim::pin();
        for key in 0..routes {
            let named = table.register(&key, |_| Named(key));
            assert_eq!(named.map(|named| named.0), Some(key));
        }
        assert!(
            table.bucket_count() <= routes as usize,
            "{}",
            table.bucket_count()
        );
        assert!(table.bucket_count() * 2 >= routes as usize / 2);
        let mut ids = vec![usize::MAX; routes as usize];
        for id in 0..routes as usize {
            let named = table.by_id(id).expect("ids are dense");
            ids[named.0 as usize] = id;
        }
        for key in 0..routes {
            assert_eq!(table.get(&key).map(|named| named.0), Some(key));
        }
        assert!(table.get(&routes).is_none());
        assert_eq!(table.len(), routes as usize);
        // Remove all but the last ten: lookups still find those, the ids
        // in use shrink, and so do the buckets.
        for key in 0..routes - 10 {
            table.remove(ids[key as usize]);
            assert!(table.get(&key).is_none());
        }
        for key in routes - 10..routes {
            assert_eq!(table.get(&key).map(|named| named.0), Some(key));
        }
        assert_eq!(table.len(), 10);
        assert_eq!(table.iter().count(), 10);
        assert!(table.bucket_count() <= 64, "{}", table.bucket_count());
        table.retire_dead(&guard);
        // Freed ids are handed out again, lowest first.
        let again = table.register(&routes, |id| {
            assert_eq!(id, 0, "the lowest free id");
            Named(routes)
        });
        assert!(again.is_some());
        table.close(|_| {});
        assert!(table.register(&(routes + 1), |_| Named(0)).is_none());
    }
}
