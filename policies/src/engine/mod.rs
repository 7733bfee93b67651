//! The engine behind `Strict`, `Lax` and `Offlock`: one data structure,
//! three flavors.
//!
//! # Implementation Details
//!
//! Two paths share the state:
//!
//! * The **hot path** — lease an idle stateless connection, return one when
//!   nobody waits, open a new one when capacity is free and nobody waits — is
//!   lock-free and allocation-free: a route lookup in an insert-only table
//!   (plain loads, see `table`) and one CAS of a 128-bit shard word, which
//!   holds an idle stack's head, the idle count, the waiter count and flags
//!   (see `route`). Routes have one shard per CPU (one in all under
//!   `Strict` and `Offlock` with FIFO reuse), so a thread that finds its own
//!   connection again touches no cache line another thread writes.
//! * The **slow path** — queued requests, stateful connections, cross-route
//!   reclaim, eviction, shutdown — runs in a non-blocking serializer
//!   (`serial`): commands are queued and whichever thread finds it idle runs
//!   them, so the waiter queues are plain sequential code. `Strict` and
//!   `Lax` have one serializer for all routes; `Offlock` (`Segmented`) gives
//!   every route its own, and routes meet only at the total cap, through
//!   the total line (`total`).
//!
//! A request that cannot be served at once counts itself in its route's
//! shard 0 (`Strict` and `Offlock`: then in every other shard) and (except
//! `Segmented`, which checks `total_blocked` instead)
//! in `waiting_all` *before* its `Enqueue` command is queued.
//! From then on nobody opens a new connection on the hot path while anyone
//! waits, so freed capacity goes through the serializer, which serves the
//! oldest request first. Every operation that frees capacity re-reads
//! `waiting_all` with a read-modify-write and kicks the serializer when it is
//! non-zero — the counterpart of the queuing request's own read-modify-write,
//! so no wake-up is lost.
//!
//! Returned connections: under `Strict` and `Offlock` every shard counts the
//! route's waiters, so a return sees them in the same CAS that pushes the
//! connection, whichever shard it returns to, and newcomers never take an
//! idle connection while waiters are counted (no barging). A request counts
//! itself in every shard *before* its `Enqueue` is queued, so a return that
//! pushed without seeing it is found by the serializer's look after it. A
//! newcomer that takes a connection from a shard the request has not
//! counted itself in yet runs alongside the request's `acquire`, and so
//! overtakes nobody queued. Under `Lax` (`Sharded`), `CONTEND` on every
//! shard of a route says requests wait there and compete for returns: a
//! request that may take an idle connection itself raises it as it queues
//! (after counting itself), and the serializer raises it for any request it
//! could not serve, then looks once more. A return that sees the flag
//! counts itself in the route's pass counter, goes idle, then kicks the
//! serializer, which wakes the oldest request without a grant while it
//! competes: the request takes an idle connection itself ([`Core::retry`],
//! after registering its waker; it reads every shard with a
//! read-modify-write, so either it sees a concurrent push or the push's kick
//! sees its waker). A return spares the kick while `NUDGED` says a request
//! so woken has yet to look (the flag's protocol is in `route`): one
//! wake-up in flight at a time, not one per return, so the threads that
//! keep returning and leasing are not preempted by sleepers woken to find
//! nothing. The return that finds `PASS_LIMIT` counted is handed to the
//! serializer instead, which raises `ROUTE_WAIT` (returns go to it outright,
//! and newcomers may no longer take idle connections), serves the oldest
//! request and resets the count (so does a request woken as the oldest
//! that takes a connection itself, before it leaves the line). Counted by
//! the returning threads, not by the serializer, the limit holds however
//! late the serializer runs.
//! `TOTAL_WAIT` works as `ROUTE_WAIT` for requests of other routes that wait
//! for an idle connection to be closed to make room. Such a connection is
//! found in the idle index (`idle_index`), which lists the shards that have
//! idle connections, so making room costs the same however many routes the
//! pool has seen.

mod idle_index;
mod lines;
mod route;
mod table;
#[cfg(all(test, not(leasehold_loom)))]
mod tests;
mod total;

use self::idle_index::IdleIndex;
use self::lines::{Command, Lines};
#[cfg(leasehold_loom)]
pub use self::route::set_loom_pass_limit;
use self::route::{
    contended, is_closed, listed, nudged, total_wait, waiters_of, wanted, Put, Reclaim, Refused,
    Route, Take,
};
use self::table::{IdStore, Table};
use self::total::{TotalCommand, TotalLine};
use crate::arena::{Arena, IndexStack};
use crate::serial::Serial;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering};
use crate::types::{
    Acquire, Disposer, Grant, Held, Item, Limits, Permit, PoolStats, Reuse, RouteKey, State, Stats,
    Wait,
};
use crate::waiter::Node;
use crate::{Core, Waiting};
use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::task::Waker;

/// How an engine treats newcomers and serializes its routes; sealed: the
/// flavors are [`Fair`] (`Strict`), [`Sharded`] (`Lax`) and [`Segmented`]
/// (`Offlock`). Every flavor keeps a route's idle connections in per-CPU
/// shards (one list under FIFO reuse, unless it barges).
pub trait Flavor: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// Newcomers may take idle connections ahead of queued requests, which
    /// compete for returns, within a bound (`Lax`); else a request never
    /// overtakes one queued before it, and returns are handed to the oldest.
    const BARGES: bool;
    /// Each route has a serializer of its own, and routes meet only at the
    /// total cap (see `total`); else one serializer serves every route.
    const SEGMENTED: bool;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Fair {}
    impl Sealed for super::Sharded {}
    impl Sealed for super::Segmented {}
}

/// The `Strict` flavor: per-CPU idle shards, no barging.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fair;

impl Flavor for Fair {
    const BARGES: bool = false;
    const SEGMENTED: bool = false;
}

/// The `Lax` flavor: per-CPU idle shards, barging allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sharded;

impl Flavor for Sharded {
    const BARGES: bool = true;
    const SEGMENTED: bool = false;
}

/// The `Offlock` flavor: one independent segment per route, per-CPU idle
/// shards, FIFO per route.
#[derive(Clone, Copy, Debug, Default)]
pub struct Segmented;

impl Flavor for Segmented {
    const BARGES: bool = false;
    const SEGMENTED: bool = true;
}

/// Idle shards per route: one per CPU (the parallelism, rounded up to a
/// power of two, at most 64). A flavor that does not barge keeps one list
/// under FIFO reuse, so that leases rotate through every idle connection of
/// the route exactly, as [`Reuse::Fifo`] says; per-CPU lists would let those
/// of a quiet CPU sit unused.
fn shard_count<F: Flavor>(reuse: Reuse) -> usize {
    if !F::BARGES && reuse == Reuse::Fifo {
        return 1;
    }
    if cfg!(leasehold_loom) {
        return 2;
    }
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 64)
        .next_power_of_two()
}

const NO_ROUTE: usize = usize::MAX;

/// What lives in an arena slot: the item while it is idle, and the route the
/// slot's connection belongs to while it exists.
pub(crate) struct Slot<K, T> {
    item: Option<T>,
    route: usize,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<K, T> Default for Slot<K, T> {
    fn default() -> Self {
        Self {
            item: None,
            route: NO_ROUTE,
            _key: std::marker::PhantomData,
        }
    }
}

/// The data structure behind [`Strict`](crate::Strict) and
/// [`Lax`](crate::Lax).
pub struct Engine<K, T, F> {
    /// The owner id in the `Held`s this core lends.
    id: usize,
    arena: Arena<Slot<K, T>>,
    free: IndexStack,
    table: Table<K>,
    /// Shards with idle stateless connections, for cross-route reclaim.
    idle_index: IdleIndex,
    /// `Segmented`: routes with idle stateful connections, for cross-route
    /// reclaim (their serializers close them, see `total`).
    stateful_index: IdleIndex,
    /// Entries of the idle and stateful indexes cross-route reclaim looked
    /// at (for the tests of its cost).
    #[cfg(all(test, not(leasehold_loom)))]
    reclaim_looks: std::sync::atomic::AtomicUsize,
    closed: AtomicBool,
    total: CachePadded<AtomicUsize>,
    /// Counted only when `max_idle < max_total` (else the cap cannot bind).
    idle_total: CachePadded<AtomicUsize>,
    enforce_idle_cap: bool,
    /// Requests queued on any route (not kept by `Segmented`, whose routes
    /// share nothing but the total).
    waiting_all: CachePadded<AtomicUsize>,
    tickets: AtomicU64,
    limits: Limits<K>,
    /// The serializer of every route, or (`Segmented`) of none.
    serial: Serial<Command<T>, Lines<T>>,
    /// `Segmented`: each route's serializer, by route id, made with the
    /// route.
    segments: IdStore<Serial<Command<T>, Lines<T>>>,
    /// `Segmented`: routes whose requests wait for total capacity, in the
    /// order they came (see `total`).
    total_line: Serial<TotalCommand, TotalLine<T>>,
    /// `Segmented`: how many routes are in the total line.
    total_blocked: CachePadded<AtomicUsize>,
    disposer: Disposer<T>,
    /// Shards per route.
    shards: usize,
    _flavor: std::marker::PhantomData<F>,
}

/// A request queued in an [`Engine`].
pub struct EngineWaiter<K, T> {
    node: Arc<Node>,
    route: usize,
    _core: std::marker::PhantomData<fn() -> (K, T)>,
}

impl<K: RouteKey, T: Item> Waiting for EngineWaiter<K, T> {
    fn try_take(&mut self) -> Option<Grant> {
        self.node.try_take()
    }

    fn register(&self, waker: &Waker) {
        self.node.register(waker);
    }
}

impl<K: fmt::Debug, T> fmt::Debug for EngineWaiter<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineWaiter")
            .field("route", &self.route)
            .field("node", &self.node)
            .finish()
    }
}

impl<K: RouteKey, T: Item, F: Flavor> Engine<K, T, F> {
    /// Whether a route's waiting requests are counted in every shard, not
    /// only shard 0: without barging (`Strict`, `Offlock`), so that a
    /// newcomer and a return see the waiters in the word of whichever shard
    /// they touch.
    const COUNT_EVERYWHERE: bool = !F::BARGES;

    /// The route for `key`, registered on first use; `None` once the core is
    /// closed and the route is new.
    #[inline]
    fn lookup(&self, key: &K) -> Option<&Route<K>> {
        match self.table.get(key) {
            Some(route) => Some(route),
            None => self.register(key),
        }
    }

    /// Registers the route for `key` (cold: its first request).
    #[cold]
    fn register(&self, key: &K) -> Option<&Route<K>> {
        let route = self.table.register(key, |id| {
            if F::SEGMENTED {
                // Before the route is published: whoever finds the route
                // finds its serializer.
                self.segments.set(id, Serial::new(Lines::new(Some(id))));
            }
            Route::new(
                key.clone(),
                id,
                self.limits.route_max(key),
                self.limits.reuse(),
                self.arena.cap(),
                self.shards,
            )
        });
        if F::SEGMENTED {
            // A route new to a total line that has raised `TOTAL_WAIT` must
            // be flagged before it can hold a connection: this
            // read-modify-write orders the route's registration against the
            // increment of a route joining the line, so either the line sees
            // the new route when it raises the flags, or we see the line and
            // kick it to raise the flag on the new route too.
            self.wake_total_line();
        }
        route
    }

    /// The route with id `id` (ids come from registered routes only).
    #[inline]
    fn route(&self, id: usize) -> &Route<K> {
        self.table.by_id(id).expect("a registered route")
    }

    /// The route of an owned slot.
    ///
    /// # Safety
    /// The caller owns `index`.
    #[inline]
    unsafe fn route_of(&self, index: u32) -> usize {
        // SAFETY: forwarded from the caller.
        unsafe { self.arena.with(index, |slot| slot.route) }
    }

    /// Lends the connection in slot `index`.
    ///
    /// # Safety
    /// The caller owns `index` (it holds its item) and hands that ownership
    /// to the `Held`.
    #[inline]
    unsafe fn lend(&self, index: u32) -> Held {
        // SAFETY: forwarded: the slot is ours to lend, once.
        unsafe { Held::new(index as usize, self.id) }
    }

    /// The slot a `Held` of this core stands for.
    #[inline]
    fn slot_of(&self, held: &Held) -> u32 {
        assert_eq!(held.owner(), self.id, "a Held of another core");
        held.token() as u32
    }

    /// Takes an idle stateless connection of `route` from `shard`, if
    /// `rule` allows; the caller then owns its slot.
    #[inline]
    fn take_idle_from(&self, route: &Route<K>, shard: usize, rule: Take) -> Option<u32> {
        let index = route.take(&self.arena, shard, rule)?;
        self.idle_left();
        Some(index)
    }

    /// Takes an idle stateless connection of `route` from any shard, first
    /// from `first` (a thread's own), if `rule` allows.
    #[inline]
    fn take_idle_near(&self, route: &Route<K>, first: usize, rule: Take) -> Option<u32> {
        let mask = route.shard_count() - 1;
        // The own shard on its own, the hit path kept straight; then the
        // others in turn.
        if let Some(index) = self.take_idle_from(route, first & mask, rule) {
            return Some(index);
        }
        (1..=mask).find_map(|i| self.take_idle_from(route, (first + i) & mask, rule))
    }

    /// Takes an idle stateless connection of `route` from any shard.
    #[inline]
    fn take_idle(&self, route: &Route<K>, rule: Take) -> Option<u32> {
        self.take_idle_near(route, 0, rule)
    }

    /// Takes an idle stateless connection of any route but `except` and
    /// those in `spare`, for the serializer to close; the caller then owns
    /// its slot.
    ///
    /// It looks in the idle index (see `idle_index`), at each entry there
    /// when it started at most once, dropping stale ones.
    fn take_idle_elsewhere(
        &self,
        except: Option<usize>,
        spare: &[usize],
    ) -> Option<(&Route<K>, u32)> {
        let mut kept = Vec::new();
        let mut found = None;
        for _ in 0..self.idle_index.len() {
            let Some((id, shard)) = self.idle_index.pop() else {
                break;
            };
            #[cfg(all(test, not(leasehold_loom)))]
            self.reclaim_looks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if Some(id) == except || spare.contains(&id) {
                kept.push((id, shard));
                continue;
            }
            let route = self.route(id);
            match route.take_or_unlist(&self.arena, shard) {
                Reclaim::Taken(index) => {
                    self.idle_left();
                    // Still listed: it may have more.
                    kept.push((id, shard));
                    found = Some((route, index));
                    break;
                }
                Reclaim::Unlisted | Reclaim::Closed => {}
            }
        }
        for &(id, shard) in &kept {
            self.idle_index.push(id, shard);
        }
        // The total line may have looked while we held them; it spares the
        // routes in its line itself, so their entries need no wake-up (and
        // the line, calling this, does not wake itself for nothing).
        if F::SEGMENTED && kept.iter().any(|(id, _)| !spare.contains(id)) {
            self.wake_total_line();
        }
        found
    }

    /// Adds the entry of `route`'s `shard`, which a push just listed, to the
    /// idle index, then reads the shard's word again with a
    /// read-modify-write. Returns whether it shows `TOTAL_WAIT`: a request
    /// blocked by the total cap that raised it before this read may have
    /// looked in the index before the entry was there, and its reclaimer is
    /// to be kicked ([`Self::kick_reclaimer`]; see `idle_index`).
    #[cold]
    fn list_idle(&self, route: &Route<K>, shard: usize) -> bool {
        self.idle_index.push(route.id, shard);
        total_wait(route.touch_shard(shard))
    }

    /// Kicks whoever reclaims idle connections of `route` for requests
    /// blocked by the total cap: the serializer, or (`Segmented`) the total
    /// line.
    #[cold]
    fn kick_reclaimer(&self, route: &Route<K>) {
        if F::SEGMENTED {
            self.wake_total_line();
        } else {
            self.kick(route);
        }
    }

    /// `Segmented`: a route not in `spare` holding idle stateful
    /// connections (which only its serializer may touch). It looks in the
    /// stateful index as [`Self::take_idle_elsewhere`] in the idle index.
    fn stateful_holder(&self, spare: &[usize]) -> Option<&Route<K>> {
        debug_assert!(F::SEGMENTED, "listed only by `Segmented` routes");
        let mut kept = Vec::new();
        let mut found = None;
        for _ in 0..self.stateful_index.len() {
            let Some((id, shard)) = self.stateful_index.pop() else {
                break;
            };
            #[cfg(all(test, not(leasehold_loom)))]
            self.reclaim_looks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if spare.contains(&id) {
                kept.push((id, shard));
                continue;
            }
            let route = self.route(id);
            if route.stateful_or_unlist() {
                kept.push((id, shard));
                found = Some(route);
                break;
            }
        }
        for &(id, shard) in &kept {
            self.stateful_index.push(id, shard);
        }
        // As in `take_idle_elsewhere`.
        if kept.iter().any(|(id, _)| !spare.contains(id)) {
            self.wake_total_line();
        }
        found
    }

    /// The shard of the calling thread: the one of the CPU it runs on.
    #[inline]
    fn own_shard(&self) -> usize {
        if self.shards > 1 {
            crate::sync::locality() & (self.shards - 1)
        } else {
            0
        }
    }

    /// Takes the item out of an owned slot.
    ///
    /// # Safety
    /// The caller owns `index`.
    unsafe fn take_item(&self, index: u32) -> T {
        // SAFETY: forwarded from the caller.
        let item = unsafe { self.arena.with(index, |slot| slot.item.take()) };
        item.expect("a live connection's slot holds its item")
    }

    /// Takes the item out of an owned slot to be closed, and counts it
    /// closed on `route`; the slot keeps its unit of the caps.
    ///
    /// # Safety
    /// The caller owns `index`, a slot of `route`.
    unsafe fn retire(&self, route: &Route<K>, index: u32) -> T {
        // SAFETY: forwarded from the caller.
        let item = unsafe { self.take_item(index) };
        route.closed.fetch_add(1, Ordering::Relaxed);
        item
    }

    /// [`retire`](Self::retire), and frees the slot's capacity.
    ///
    /// # Safety
    /// As for `retire`; the caller gives `index` up.
    unsafe fn close_slot(&self, route: &Route<K>, index: u32) -> T {
        // SAFETY: forwarded from the caller.
        let item = unsafe { self.retire(route, index) };
        self.free_slot(route, index);
        item
    }

    /// Counts one more idle connection against `max_idle`; `false` (and
    /// nothing counted) if that would exceed it.
    #[inline]
    fn admit_idle(&self) -> bool {
        if !self.enforce_idle_cap {
            return true;
        }
        if self.idle_total.fetch_add(1, Ordering::AcqRel) >= self.limits.max_idle() {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Counts one idle connection less against `max_idle`.
    #[inline]
    fn idle_left(&self) {
        if self.enforce_idle_cap {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The state of the item in an owned slot.
    ///
    /// # Safety
    /// The caller owns `index`.
    unsafe fn state_of(&self, index: u32) -> Option<State> {
        // SAFETY: forwarded from the caller.
        unsafe {
            self.arena.with(index, |slot| {
                slot.item.as_ref().and_then(|item| item.state().cloned())
            })
        }
    }

    /// Reserves one unit of the total cap.
    fn reserve_total(&self) -> bool {
        let max = self.limits.max_total();
        let mut total = self.total.load(Ordering::Acquire);
        loop {
            if total >= max {
                return false;
            }
            match self.total.compare_exchange_weak(
                total,
                total + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => total = seen,
            }
        }
    }

    /// Reserves route and total capacity and a slot for a new connection.
    /// Returns whether route capacity was the obstacle, if it fails.
    fn reserve_new(&self, route: &Route<K>, state: Option<&State>) -> Result<Permit, Blocked> {
        self.reserve_new_with(route, state, || self.reserve_total())
    }

    /// [`reserve_new`](Self::reserve_new), with `total` reserving the unit
    /// of the total cap (`Segmented` may spend credit instead).
    fn reserve_new_with(
        &self,
        route: &Route<K>,
        state: Option<&State>,
        total: impl FnOnce() -> bool,
    ) -> Result<Permit, Blocked> {
        if !route.reserve_own() {
            return Err(Blocked::Route);
        }
        if !total() {
            route.allocated.fetch_sub(1, Ordering::AcqRel);
            return Err(Blocked::Total);
        }
        Ok(self.permit_for(route, state))
    }

    /// Takes a free slot, or a fresh one, for capacity already reserved on
    /// `route`.
    fn permit_for(&self, route: &Route<K>, state: Option<&State>) -> Permit {
        let index = loop {
            // Total capacity was reserved, so a slot is there to take: the
            // arena is short of its cap, or one of its slots is held by no
            // unit of the total and so is on the free list (a closed slot is
            // freed before its total unit is released).
            if let Some(index) = self.free.pop(&self.arena) {
                break index;
            }
            if let Some(index) = self.arena.fresh() {
                break index;
            }
            crate::sync::spin_hint();
        };
        // SAFETY: we popped `index` from the free list, or it is fresh.
        unsafe { self.arena.with(index, |slot| slot.route = route.id) };
        route.connecting.fetch_add(1, Ordering::AcqRel);
        // SAFETY: as above: it is the permit's.
        unsafe { self.permit(index, state) }
    }

    /// Issues a permit for an owned, empty slot of the route it is for.
    ///
    /// # Safety
    /// The caller owns `index` and hands it to the permit.
    unsafe fn permit(&self, index: u32, state: Option<&State>) -> Permit {
        // SAFETY: forwarded from the caller.
        unsafe { Permit::new(index as usize, self.id, state.cloned()) }
    }

    /// The slot a `Permit` of this core stands for.
    fn permit_slot(&self, permit: &Permit) -> u32 {
        assert_eq!(permit.owner(), self.id, "a Permit of another core");
        permit.token() as u32
    }

    /// Releases the capacity of an owned slot: slot back to the free list,
    /// then the route's and the total's unit.
    fn free_slot(&self, route: &Route<K>, index: u32) {
        // SAFETY: the caller owns `index` and gives it up on the free list.
        unsafe {
            self.arena.with(index, |slot| slot.route = NO_ROUTE);
            self.free.push(&self.arena, index);
        }
        route.allocated.fetch_sub(1, Ordering::AcqRel);
        self.total.fetch_sub(1, Ordering::AcqRel);
    }

    /// After capacity of `route` was freed outside its serializer: make
    /// sure a waiting request gets it.
    fn capacity_freed(&self, route: &Route<K>) {
        if F::SEGMENTED {
            self.route_freed(route);
            self.wake_total_line();
        // A read-modify-write, so it cannot miss a request counted before it.
        } else if self.waiting_all.fetch_add(0, Ordering::AcqRel) != 0 {
            self.kick(route);
        }
    }

    /// `Segmented`: after a unit of `route`'s own cap was freed, kicks its
    /// serializer if requests wait there (a read-modify-write of the word
    /// that counts them, so none counted before is missed).
    fn route_freed(&self, route: &Route<K>) {
        if waiters_of(route.touch()) != 0 {
            self.kick(route);
        }
    }

    /// `Segmented`: after a unit of the total was freed (or a route was
    /// registered), kicks the total line if a route waits in it (a
    /// read-modify-write, as above).
    fn wake_total_line(&self) {
        if self.total_blocked.fetch_add(0, Ordering::AcqRel) != 0 {
            self.submit_total(TotalCommand::Kick);
        }
    }

    /// The hot path of `acquire`: an idle stateless connection, or new
    /// capacity while nobody waits, or `Closed`. `None`: the request must
    /// queue (stateful requests always do); nothing was queued.
    ///
    /// Inlined always, as are [`Route::take`] and [`Route::put`]: left to
    /// itself LLVM made the idle hit a chain of calls, each saving and
    /// restoring registers (594 instructions a lease and return, 497
    /// inlined, counted by callgrind).
    #[inline(always)]
    fn serve_now(&self, route: &Route<K>, state: Option<&State>) -> Option<Grant> {
        if state.is_none() {
            let rule = if F::BARGES {
                Take::Barging
            } else {
                Take::Newcomer
            };
            let taken = self.take_idle_near(route, self.own_shard(), rule);
            if let Some(index) = taken {
                // SAFETY: we took `index` off the idle list.
                return Some(Grant::Conn(unsafe { self.lend(index) }));
            }
            // New capacity on the hot path only while nobody waits
            // anywhere: freed capacity belongs to the oldest waiter.
            if self.nobody_waits(route) {
                if let Ok(permit) = self.reserve_new(route, None) {
                    // The capacity may have been freed by a connection
                    // closed because the route was closed (a return racing
                    // `shutdown`): then this request comes after the
                    // shutdown and must get `Closed`, not open a new
                    // connection. Our reservation read that close's counter
                    // update, so this load sees the closed flag.
                    if is_closed(route.word()) {
                        route.connecting.fetch_sub(1, Ordering::AcqRel);
                        self.free_slot(route, self.permit_slot(&permit));
                        self.capacity_freed(route);
                        return Some(Grant::Closed);
                    }
                    return Some(Grant::Connect(permit));
                }
                // A transient reservation may have turned others away.
                self.capacity_freed(route);
            }
        }
        is_closed(route.word()).then_some(Grant::Closed)
    }

    /// Whether a newcomer on `route` may take new capacity on the hot path:
    /// only while nobody waits for it (freed capacity belongs to waiters).
    #[inline]
    fn nobody_waits(&self, route: &Route<K>) -> bool {
        let queued = if F::SEGMENTED {
            &self.total_blocked
        } else {
            &self.waiting_all
        };
        queued.load(Ordering::Acquire) == 0 && waiters_of(route.word()) == 0
    }

    /// `Segmented`: whether routes wait in the total line (they get freed
    /// total capacity first).
    fn total_line_busy(&self) -> bool {
        F::SEGMENTED && self.total_blocked.load(Ordering::Acquire) != 0
    }

    /// Counts a request of `route` about to queue; returns shard 0's word
    /// before.
    fn waiter_came(&self, route: &Route<K>) -> u128 {
        if !F::SEGMENTED {
            self.waiting_all.fetch_add(1, Ordering::AcqRel);
        }
        route.add_waiter(Self::COUNT_EVERYWHERE)
    }

    /// Counts a request of `route` that left the queue.
    fn waiter_left(&self, route: &Route<K>) {
        route.remove_waiter(Self::COUNT_EVERYWHERE);
        if !F::SEGMENTED {
            self.waiting_all.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// `Sharded`, after a request of `route` left its line other than by
    /// a grant: the serializer looks at the next one, which may have to be
    /// woken to take an idle connection. (One that queues later is looked at
    /// when its own request is applied.)
    fn next_in_line(&self, route: &Route<K>) {
        if waiters_of(route.word()) != 0 {
            self.kick(route);
        }
    }

    fn kick(&self, route: &Route<K>) {
        self.submit(route.id, Command::Kick);
    }

    /// Runs `command` in the serializer of route `id`.
    fn submit(&self, id: usize, command: Command<T>) {
        let serial = if F::SEGMENTED {
            self.segments.get(id).expect("a registered route")
        } else {
            &self.serial
        };
        serial.submit(
            command,
            |lines, command| lines.apply(self, command),
            |lines| lines.settle(self),
            |victims| self.dispose(victims),
        );
    }

    /// `Segmented`: runs `command` in the total line.
    fn submit_total(&self, command: TotalCommand) {
        self.total_line.submit(
            command,
            |line, command| line.apply(command),
            |line| line.settle(self),
            |victims| self.dispose(victims),
        );
    }

    fn dispose(&self, victims: Vec<T>) {
        for item in victims {
            (self.disposer)(item);
        }
    }

    /// Closes a connection its holder gave back (not reusable, over cap, or
    /// the pool closed), outside the serializer. The caller owns `index`.
    fn close_returned(&self, route: &Route<K>, index: u32) {
        // SAFETY: the caller owns `index`.
        let item = unsafe { self.close_slot(route, index) };
        (self.disposer)(item);
        self.capacity_freed(route);
    }

    /// Disposes of everything idle on a closed route (a return raced with
    /// shutdown).
    fn drain_closed_route(&self, route: &Route<K>) {
        while let Some(index) = self.take_idle(route, Take::Drain) {
            self.close_returned(route, index);
        }
    }

    fn enqueue(
        &self,
        route: &Route<K>,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> EngineWaiter<K, T> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let node = Arc::new(Node::new(ticket, state.cloned(), mode, waker));
        let before = self.waiter_came(route);
        if F::BARGES && node.may_take_idle() && !contended(before) {
            // Returns count themselves against us from now on, not only
            // once the serializer has seen us.
            route.raise_contend();
        }
        self.submit(route.id, Command::Enqueue(route.id, node.clone()));
        EngineWaiter {
            node,
            route: route.id,
            _core: std::marker::PhantomData,
        }
    }
}

/// Why a request could not be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocked {
    /// Its route is at its cap.
    Route,
    /// The pool is at its total cap.
    Total,
}

impl<K: RouteKey, T: Item, F: Flavor> Core<K, T> for Engine<K, T, F> {
    type Waiter = EngineWaiter<K, T>;

    fn new(limits: Limits<K>, disposer: Disposer<T>) -> Self {
        if let Err(invalid) = limits.validate() {
            panic!("invalid limits: {invalid}");
        }
        let shards = shard_count::<F>(limits.reuse());
        Self {
            id: Held::unique_owner(),
            // Both empty: slots are made as connections are.
            free: IndexStack::new(),
            arena: Arena::new(limits.max_total()),
            table: Table::new(limits.max_total().saturating_mul(2)),
            idle_index: IdleIndex::new(),
            stateful_index: IdleIndex::new(),
            #[cfg(all(test, not(leasehold_loom)))]
            reclaim_looks: std::sync::atomic::AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            total: CachePadded::new(AtomicUsize::new(0)),
            idle_total: CachePadded::new(AtomicUsize::new(0)),
            enforce_idle_cap: limits.max_idle() < limits.max_total(),
            waiting_all: CachePadded::new(AtomicUsize::new(0)),
            tickets: AtomicU64::new(0),
            serial: Serial::new(Lines::new(None)),
            segments: IdStore::new(),
            total_line: Serial::new(TotalLine::new()),
            total_blocked: CachePadded::new(AtomicUsize::new(0)),
            limits,
            disposer,
            shards,
            _flavor: std::marker::PhantomData,
        }
    }

    #[inline]
    fn acquire(
        &self,
        key: &K,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> Acquire<Self::Waiter> {
        let Some(route) = self.lookup(key) else {
            return Acquire::Ready(Grant::Closed);
        };
        match self.serve_now(route, state) {
            Some(grant) => Acquire::Ready(grant),
            None => Acquire::Queued(self.enqueue(route, state, mode, waker)),
        }
    }

    #[inline]
    fn acquire_now(&self, key: &K, state: Option<&State>) -> Option<Grant> {
        match self.lookup(key) {
            Some(route) => self.serve_now(route, state),
            None => Some(Grant::Closed),
        }
    }

    fn cancel(&self, waiter: Self::Waiter, timed_out: bool) -> Option<Grant> {
        match waiter.node.cancel() {
            Ok(()) => {
                let route = self.route(waiter.route);
                self.waiter_left(route);
                if timed_out {
                    route.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                if F::BARGES {
                    // We may have been woken to take an idle connection:
                    // the next request in line is woken instead.
                    self.next_in_line(route);
                }
                None
            }
            Err(grant) => grant,
        }
    }

    fn retry(&self, waiter: &mut Self::Waiter) -> Option<Grant> {
        let node = &waiter.node;
        if !F::BARGES || !node.may_take_idle() {
            return None;
        }
        let route = self.route(waiter.route);
        if route.look() == 0 {
            return None;
        }
        let index = self.take_idle_near(route, self.own_shard(), Take::Barging)?;
        // SAFETY: we took `index` off the idle list.
        let held = unsafe { self.lend(index) };
        route.oldest_served_itself(node.ticket);
        match node.cancel() {
            Ok(()) => {
                self.waiter_left(route);
                self.next_in_line(route);
                Some(Grant::Conn(held))
            }
            // Served meanwhile: keep the grant, put the connection back.
            Err(grant) => {
                self.release(held, true);
                grant
            }
        }
    }

    #[inline]
    fn item<'a>(&'a self, held: &'a Held) -> &'a T {
        let index = self.slot_of(held);
        // SAFETY: the `Held` owns the slot for as long as it is borrowed,
        // and only shared references come from a shared borrow of it.
        let slot = unsafe { self.arena.get(index) };
        slot.item.as_ref().expect("a leased slot holds its item")
    }

    #[inline]
    fn item_mut<'a>(&'a self, held: &'a mut Held) -> &'a mut T {
        let index = self.slot_of(held);
        // SAFETY: the `Held` owns the slot, and is borrowed mutably for as
        // long as this reference lives, so no other reference can be made.
        let slot = unsafe { self.arena.get_mut(index) };
        slot.item.as_mut().expect("a leased slot holds its item")
    }

    #[inline]
    fn release(&self, held: Held, reuse: bool) {
        let index = self.slot_of(&held);
        // What a return needs of the slot, in one look-up: its route, whether
        // its item carries a state, and (below) its link.
        let slot = self.arena.slot(index);
        // SAFETY: the `Held` owned `index`; we own it now.
        let (id, stateful) = unsafe {
            slot.with(|slot| {
                let stateful = slot
                    .item
                    .as_ref()
                    .is_some_and(|item| item.state().is_some());
                (slot.route, stateful)
            })
        };
        let route = self.route(id);
        if !reuse || route.is_over_cap() {
            return self.close_returned(route, index);
        }
        if stateful {
            // Stateful idle lists are kept by the serializer.
            return self.submit(route.id, Command::Release(index));
        }
        if !self.admit_idle() {
            return self.close_returned(route, index);
        }
        let shard = self.own_shard();
        // `Sharded`: a return counts itself against the waiting requests
        // before it goes idle for them to compete for; past the limit it is
        // handed over, as under `Strict`.
        let word = route.shard_word(shard);
        let pass = if F::BARGES { route.pass(word) } else { None };
        let rule = if F::BARGES && pass != Some(false) {
            Put::Compete
        } else {
            Put::Return
        };
        // SAFETY: `put` publishes `index` only when it succeeds; refused, we
        // still own it.
        match unsafe { route.put(slot.link(), shard, index, rule, word) } {
            Ok(before) => {
                if !listed(before) && self.list_idle(route, shard) {
                    self.kick_reclaimer(route);
                }
                if is_closed(before) {
                    self.drain_closed_route(route);
                } else if wanted(before) {
                    if F::BARGES && pass.is_none() && contended(before) {
                        // `CONTEND` came between the count and the push.
                        route.passed();
                    }
                    // `Sharded`: requests compete for it; the serializer
                    // wakes the oldest, unless a request it woke has yet to
                    // look, and will find this one — but not if this return
                    // used up the newcomers' passes: the serializer hands it
                    // to the oldest then. Else (FIFO only: a LIFO push
                    // refuses in its CAS) a waiter or a flag came between
                    // the check and the count.
                    let spared =
                        F::BARGES && contended(before) && nudged(before) && route.may_pass();
                    if !spared {
                        self.kick(route);
                    }
                }
            }
            Err(refused) => {
                self.idle_left();
                match refused {
                    Refused::Closed => self.close_returned(route, index),
                    // Requests wait: the serializer hands it to the oldest.
                    Refused::Waiters => self.submit(route.id, Command::Release(index)),
                }
            }
        }
    }

    fn connected(&self, permit: Permit, item: T) -> Result<Held, T> {
        let index = self.permit_slot(&permit);
        // SAFETY: the holder of a `Permit` owns its slot.
        let route = self.route(unsafe { self.route_of(index) });
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        route.created.fetch_add(1, Ordering::Relaxed);
        if is_closed(route.word()) {
            self.free_slot(route, index);
            route.closed.fetch_add(1, Ordering::Relaxed);
            self.capacity_freed(route);
            return Err(item);
        }
        // SAFETY: the permit owned the slot; the item goes in and the slot
        // is lent to the permit's holder.
        unsafe {
            self.arena.with(index, |slot| slot.item = Some(item));
            Ok(self.lend(index))
        }
    }

    fn connect_failed(&self, permit: Permit) {
        let index = self.permit_slot(&permit);
        // SAFETY: the holder of a `Permit` owns its slot.
        let route = self.route(unsafe { self.route_of(index) });
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        self.free_slot(route, index);
        self.capacity_freed(route);
    }

    fn evict_idle(&self, evict: std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>) {
        if F::SEGMENTED {
            for route in self.table.iter() {
                self.submit(route.id, Command::Evict(evict.clone()));
            }
        } else {
            self.submit(0, Command::Evict(evict));
        }
    }

    fn set_route_max(&self, key: &K, max: usize) {
        assert!(max > 0, "a route's maximum must be at least 1");
        if let Some(route) = self.lookup(key) {
            route.max.store(max, Ordering::Release);
            // Trims idle connections over the new cap and serves waiters it
            // lets through.
            self.submit(route.id, Command::Trim);
        }
    }

    fn stats(&self) -> PoolStats<K> {
        let mut stats = PoolStats {
            total: Stats {
                max: self.limits.max_total(),
                ..Stats::default()
            },
            routes: Vec::with_capacity(self.table.len()),
        };
        for route in self.table.iter() {
            let route_stats = route.stats();
            stats.total.add(&route_stats);
            stats.routes.push((route.key.clone(), route_stats));
        }
        stats
    }

    fn route_stats(&self, key: &K) -> Stats {
        match self.table.get(key) {
            Some(route) => route.stats(),
            None => Stats {
                max: self.limits.route_max(key),
                ..Stats::default()
            },
        }
    }

    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        self.table.close(Route::close);
        if F::SEGMENTED {
            // Every route registered before the table closed; later
            // requests get `Closed` from the closed table.
            for route in self.table.iter() {
                self.submit(route.id, Command::Shutdown);
            }
            self.submit_total(TotalCommand::Shutdown);
        } else {
            self.submit(0, Command::Shutdown);
        }
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<K: RouteKey, T, F: Flavor> fmt::Debug for Engine<K, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.shards)
            .field("barges", &F::BARGES)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .field("max_total", &self.limits.max_total())
            .field("total", &self.total.load(Ordering::Relaxed))
            .field("waiting", &self.waiting_all.load(Ordering::Relaxed))
            .field("routes", &self.table.iter().collect::<Vec<_>>())
            .field("serial", &self.serial)
            .finish()
    }
}
