//! The engine behind `Strict`, `Lax` and `Offlock`: one data structure,
//! three flavors.
//!
//! How it works: [the design notes](crate::implementation#the-engine).

mod barging;
mod compete;
mod idle_index;
mod queues;
mod route;
mod segments;
mod serializing;
mod table;
#[cfg(all(test, not(leasehold_loom)))]
mod tests;
mod total;

pub use self::barging::{Barging, Handoff};
#[cfg(leasehold_loom)]
pub use self::compete::set_loom_pass_limit;
pub use self::compete::{Compete, CompeteSerial};
use self::idle_index::IdleIndex;
use self::queues::SerialCommand;
use self::route::{Reclaim, Refused, Route, Take, Word};
pub use self::segments::{PerRoute, SegmentQueues, SegmentSerial, SegmentsShared};
pub use self::serializing::{OneSerializer, OneShared, Serializing};
use self::table::{Keyed, Table, TotalWaitFlags};
use crate::arena::{Arena, IndexStack, SlotToken};
use crate::capped::Capped;
use crate::reclaim;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Backoff, Fifo, Ordering};
use crate::types::{
    Acquire, Disposer, Grant, Held, Item, Limits, Permit, PoolStats, Reuse, RouteKey, State, Stats,
    Wait, MAX_CAPACITY,
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
pub trait Flavor: crate::sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// Whether newcomers may take idle connections ahead of queued
    /// requests: [`Compete`] (`Lax`) or [`Handoff`] (see `barging`).
    type Barge: Barging;
    /// Whether one serializer serves every route ([`OneSerializer`]) or
    /// each route has its own ([`PerRoute`]; see `serializing`).
    type Serializers: Serializing;
}

impl crate::sealed::Sealed for Fair {}
impl crate::sealed::Sealed for Sharded {}
impl crate::sealed::Sealed for Segmented {}

/// The `Strict` flavor: per-CPU idle shards, no barging.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fair;

impl Flavor for Fair {
    type Barge = Handoff;
    type Serializers = OneSerializer;
}

/// The `Lax` flavor: per-CPU idle shards, barging allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sharded;

impl Flavor for Sharded {
    type Barge = Compete;
    type Serializers = OneSerializer;
}

/// The `Offlock` flavor: one independent segment per route, per-CPU idle
/// shards, FIFO per route.
#[derive(Clone, Copy, Debug, Default)]
pub struct Segmented;

impl Flavor for Segmented {
    type Barge = Handoff;
    type Serializers = PerRoute;
}

/// Idle shards per route: one per CPU (the parallelism, rounded up to a
/// power of two, at most 64), or one under FIFO reuse where the barging
/// strategy asks for it ([`Barging::ONE_FIFO_LIST`]).
fn shard_count<F: Flavor>(reuse: Reuse) -> usize {
    if F::Barge::ONE_FIFO_LIST && reuse == Reuse::Fifo {
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

/// Routes retired by one sweep past which the sweep asks the allocator to
/// give freed memory back to the OS (`reclaim::trim_heap`).
const TRIM_AFTER_ROUTES: usize = 1024;

/// What lives in an arena slot: the item while it is idle, and the route the
/// slot's connection belongs to while it exists.
pub(crate) struct SlotContent<K, T> {
    item: Option<T>,
    route: usize,
    /// Idle and counted against `max_idle` (see `Engine::admit_idle`).
    idle_counted: bool,
    _key: std::marker::PhantomData<fn() -> K>,
}

impl<K, T> Default for SlotContent<K, T> {
    fn default() -> Self {
        Self {
            item: None,
            route: NO_ROUTE,
            idle_counted: false,
            _key: std::marker::PhantomData,
        }
    }
}

/// The data structure behind [`Strict`](crate::Strict) and
/// [`Lax`](crate::Lax).
pub struct Engine<K, T: Item, F: Flavor> {
    /// The owner id in the `Held`s this core lends.
    id: usize,
    arena: Arena<SlotContent<K, T>>,
    free: IndexStack,
    table: Table<RouteEntry<K, T, F::Barge, F::Serializers>>,
    /// Routes that lost their last connection and request (id and uid),
    /// which `sweep_routes` looks at (see [`Route::in_sweep`]).
    emptied: Fifo<(usize, u64)>,
    /// `sweep_routes` calls so far.
    sweep_round: AtomicU64,
    /// Unused routes are removed (`Limits::with_forget_routes`): lookups
    /// pin the epoch.
    forgets: bool,
    /// Routes the last `sweep_routes` retired.
    retired_last: std::sync::atomic::AtomicUsize,
    /// Route uids handed out so far (a `std` atomic: it is bumped under the
    /// table's mutex, where loom is to see no scheduling point).
    uids: std::sync::atomic::AtomicU64,
    /// Requests are blocked by the total cap: routes registered now carry
    /// `TOTAL_WAIT` from the start (read and written under the table's
    /// mutex, see `TotalWaitFlags`).
    total_episode: AtomicBool,
    /// The caps routes get when they register: those set with
    /// `set_route_max` (which outlive their route) and the default.
    route_caps: std::sync::Mutex<RouteCaps<K>>,
    /// The counters of removed routes, which the pool's totals keep.
    retired: Retired,
    /// Shards with idle stateless connections, for cross-route reclaim.
    idle_index: IdleIndex,
    /// Entries of the idle and stateful indexes cross-route reclaim looked
    /// at (for the tests of its cost).
    #[cfg(all(test, not(leasehold_loom)))]
    reclaim_looks: std::sync::atomic::AtomicUsize,
    closed: AtomicBool,
    /// Every connection (leased, idle, connecting) and `max_total`.
    total: CachePadded<Capped>,
    /// Idle connections counted against `max_idle` (see `admit_idle`).
    idle_total: CachePadded<AtomicUsize>,
    /// Counting is on: a `max_idle` below `max_total` was configured, or
    /// one was set at run time.
    enforce_idle_cap: AtomicBool,
    max_idle: AtomicUsize,
    tickets: AtomicU64,
    limits: Limits<K>,
    /// What the serializing strategy keeps: the one serializer, or the
    /// total queue of the per-route ones.
    serializers: <F::Serializers as Serializing>::Shared<T, F::Barge>,
    disposer: Disposer<T>,
    /// Shards per route.
    shards: usize,
    _flavor: std::marker::PhantomData<F>,
}

/// What the route table holds: a route and what the serializing strategy
/// keeps for it (under `PerRoute`, its serializer, which lives and goes
/// with it).
pub(crate) struct RouteEntry<K, T: Item, B: Barging, S: Serializing> {
    route: Route<K>,
    serializing: S::Route<T, B>,
}

impl<K: RouteKey, T: Item, B: Barging, S: Serializing> Keyed for RouteEntry<K, T, B, S> {
    type Key = K;

    fn key(&self) -> &K {
        &self.route.key
    }
}

/// The caps of routes not registered yet, and of the registered ones
/// whose cap follows the default.
#[derive(Debug)]
struct RouteCaps<K> {
    /// Caps given at run time (`set_route_max`).
    set: std::collections::HashMap<K, usize>,
    /// The cap of a route given none (`max_per_route`, or as changed).
    default: usize,
}

impl<K: RouteKey> RouteCaps<K> {
    /// Route `key`'s cap, and whether it is its own (set at run time or
    /// configured) rather than the default.
    fn own_cap(&self, key: &K, limits: &Limits<K>) -> Option<usize> {
        self.set
            .get(key)
            .copied()
            .or_else(|| limits.route_override(key))
    }

    fn cap(&self, key: &K, limits: &Limits<K>) -> usize {
        self.own_cap(key, limits).unwrap_or(self.default)
    }
}

/// Counters of removed routes.
#[derive(Debug, Default)]
struct Retired {
    created: std::sync::atomic::AtomicU64,
    closed: std::sync::atomic::AtomicU64,
    timeouts: std::sync::atomic::AtomicU64,
}

/// A request queued in an [`Engine`].
pub struct EngineWaiter<K, T> {
    node: Arc<Node>,
    route: usize,
    _core: std::marker::PhantomData<fn() -> (K, T)>,
}

impl<K: RouteKey, T: Item> crate::sealed::Sealed for EngineWaiter<K, T> {}

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
    /// Whether a route's waiting requests are counted in every shard
    /// ([`Barging::COUNT_EVERYWHERE`]).
    const COUNT_EVERYWHERE: bool = F::Barge::COUNT_EVERYWHERE;

    /// A pin of the epoch, where routes are removed (see `reclaim`): held
    /// while a route is read that nothing the caller owns keeps.
    #[inline(always)]
    fn pin(&self) -> Option<reclaim::Guard> {
        self.forgets.then(reclaim::pin)
    }

    /// The route for `key`, registered on first use; `None` once the core is
    /// closed and the route is new. The caller is pinned ([`Self::pin`]).
    #[inline]
    fn lookup(&self, key: &K) -> Option<&Route<K>> {
        debug_assert!(
            !self.forgets || reclaim::is_pinned(),
            "a lookup outside a pin"
        );
        match self.table.get(key) {
            Some(entry) => Some(&entry.route),
            None => self.register(key),
        }
    }

    /// The cap route `key` gets when it is registered: the last one
    /// `set_route_max` gave it, else its configured one, else the default.
    fn route_cap(&self, key: &K) -> usize {
        self.route_caps
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cap(key, &self.limits)
    }

    /// Registers the route for `key` (cold: its first request, or its first
    /// since it was removed).
    #[cold]
    fn register(&self, key: &K) -> Option<&Route<K>> {
        let entry = self.table.register(key, |id| {
            let route = Route::new(
                key.clone(),
                id,
                self.uids.fetch_add(1, Ordering::Relaxed),
                self.route_cap(key),
                self.limits.reuse(),
                self.shards,
            );
            // Under the table's mutex, which raising and lowering the flag
            // everywhere hold: a route new to an episode carries it before
            // anyone can find it.
            if self.total_episode.load(Ordering::Relaxed) {
                route.set_total_wait(true);
            }
            RouteEntry {
                route,
                serializing: F::Serializers::new_route(id),
            }
        })?;
        // A new route counts as emptied until it holds a connection or a
        // request: one that never does is removed as well.
        if self.forgets {
            self.route_emptied(&entry.route);
        }
        Some(&entry.route)
    }

    /// The route with id `id`: the caller is pinned, or holds a
    /// connection, permit or request of it.
    #[inline]
    fn route(&self, id: usize) -> &Route<K> {
        &self.table.by_id(id).expect("a registered route").route
    }

    /// The route of an owned slot.
    #[inline]
    fn route_of(&self, slot: &SlotToken) -> usize {
        self.arena.get(slot).route
    }

    /// Lends the connection in `slot`: the `Held` carries its ownership.
    #[inline]
    fn lend(&self, slot: SlotToken) -> Held {
        Held::new(slot, self.id)
    }

    /// Checks that `held` was lent by this core.
    #[inline]
    fn check_held(&self, held: &Held) {
        assert_eq!(held.owner(), self.id, "a Held of another core");
    }

    /// The slot a `Held` of this core owns, back from the lease.
    #[inline]
    fn take_held(&self, held: Held) -> SlotToken {
        self.check_held(&held);
        held.into_slot()
    }

    /// Takes an idle stateless connection of `route` from `shard`, if
    /// `rule` allows.
    #[inline]
    fn take_idle_from(&self, route: &Route<K>, shard: usize, rule: Take) -> Option<SlotToken> {
        let mut index = route.take(&self.arena, shard, rule)?;
        self.idle_left(&mut index);
        Some(index)
    }

    /// Takes an idle stateless connection of `route` from any shard, first
    /// from `first` (a thread's own), if `rule` allows.
    #[inline]
    fn take_idle_near(&self, route: &Route<K>, first: usize, rule: Take) -> Option<SlotToken> {
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
    fn take_idle(&self, route: &Route<K>, rule: Take) -> Option<SlotToken> {
        self.take_idle_near(route, 0, rule)
    }

    /// Takes an idle stateless connection of any route but `except` and
    /// those in `spare`, for the serializer to close; the caller then owns
    /// its slot. It looks in the idle index (see `idle_index`).
    fn take_idle_elsewhere(
        &self,
        except: Option<usize>,
        spare: &[usize],
    ) -> Option<(&Route<K>, SlotToken)> {
        self.find_in_index(&self.idle_index, except, spare, |route, shard| {
            match route.take_or_unlist(&self.arena, shard) {
                Reclaim::Taken(mut slot) => {
                    self.idle_left(&mut slot);
                    // Still listed: it may have more.
                    Some((route, slot))
                }
                Reclaim::Unlisted | Reclaim::Closed => None,
            }
        })
    }

    /// Looks at each entry of `index` there when it started at most once,
    /// skipping (and keeping) those of `except` and of the routes in
    /// `spare`, until `look` finds what it wants in one: that entry is kept,
    /// the ones where it found nothing are dropped (stale), as are those of
    /// removed routes.
    fn find_in_index<'a, R>(
        &'a self,
        index: &IdleIndex,
        except: Option<usize>,
        spare: &[usize],
        mut look: impl FnMut(&'a Route<K>, usize) -> Option<R>,
    ) -> Option<R> {
        let mut kept = Vec::new();
        let mut found = None;
        for _ in 0..index.len() {
            let Some((id, shard)) = index.pop() else {
                break;
            };
            #[cfg(all(test, not(leasehold_loom)))]
            self.reclaim_looks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if Some(id) == except || spare.contains(&id) {
                kept.push((id, shard));
                continue;
            }
            // An entry of a removed route (whose id another route may have
            // now: then it names a shard of that one, which is harmless, as
            // a listed shard may have two entries, see `idle_index`).
            let Some(entry) = self.table.by_id(id) else {
                continue;
            };
            if let Some(hit) = look(&entry.route, shard) {
                kept.push((id, shard));
                found = Some(hit);
                break;
            }
        }
        for &(id, shard) in &kept {
            index.push(id, shard);
        }
        if kept.iter().any(|(id, _)| !spare.contains(id)) {
            F::Serializers::index_entries_back(self);
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
        route.touch_shard(shard).total_wait()
    }

    /// Kicks whoever reclaims idle connections of `route` for requests
    /// blocked by the total cap: the one serializer, or (`PerRoute`) the
    /// total queue.
    #[cold]
    fn kick_reclaimer(&self, route: &Route<K>) {
        F::Serializers::kick_reclaimer(self, route);
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
    fn take_item(&self, slot: &mut SlotToken) -> T {
        let item = self.arena.with(slot, |slot| slot.item.take());
        item.expect("a live connection's slot holds its item")
    }

    /// Takes the item out of an owned slot of `route` to be closed, and
    /// counts it closed there; the slot keeps its unit of the caps.
    fn retire(&self, route: &Route<K>, slot: &mut SlotToken) -> T {
        let item = self.take_item(slot);
        route.closed.fetch_add(1, Ordering::Relaxed);
        item
    }

    /// [`retire`](Self::retire), and frees the slot's capacity.
    fn close_slot(&self, route: &Route<K>, mut slot: SlotToken) -> T {
        let item = self.retire(route, &mut slot);
        self.free_slot(route, slot);
        item
    }

    /// Counts one more idle connection against `max_idle` and marks its
    /// slot counted; `false` (and nothing counted) if that would exceed it.
    /// Nothing is counted while no idle cap was ever set below the total
    /// (then it cannot bind): the count costs a read-modify-write on a line
    /// every return shares. Counting, once on, stays on; a connection that
    /// went idle before it began is counted by the serializers' pass that
    /// `set_max_idle` starts (or not at all, if it is leased first).
    #[inline]
    fn admit_idle(&self, slot: &mut SlotToken) -> bool {
        if !self.enforce_idle_cap.load(Ordering::Acquire) {
            return true;
        }
        if self.idle_total.fetch_add(1, Ordering::AcqRel) >= self.max_idle.load(Ordering::Acquire) {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.arena.with(slot, |slot| slot.idle_counted = true);
        true
    }

    /// Counts an idle connection less against `max_idle`, if it was
    /// counted.
    #[inline]
    fn idle_left(&self, slot: &mut SlotToken) {
        // Off: no slot was ever marked. On: the mark was made by a return
        // that saw it on, ordered before this take by the push and the take.
        if self.enforce_idle_cap.load(Ordering::Acquire)
            && self
                .arena
                .with(slot, |slot| std::mem::take(&mut slot.idle_counted))
        {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The state of the item in an owned slot.
    fn state_of(&self, slot: &SlotToken) -> Option<State> {
        let slot = self.arena.get(slot);
        slot.item.as_ref().and_then(|item| item.state().cloned())
    }

    /// After their caps changed: each route's serializer closes the idle
    /// connections over its cap and serves the requests a raised cap lets
    /// through. Outside the table's mutex, which a serializer may take (an
    /// id reused meanwhile gets a trim it does not need, which is harmless).
    fn trim_routes(&self, ids: impl IntoIterator<Item = usize>) {
        for id in ids {
            if self.table.by_id(id).is_some() {
                self.submit(id, SerialCommand::Trim);
            }
        }
    }

    /// A return went idle over a cap lowered meanwhile: the serializers
    /// close what is over it (every one for the total; `route`'s, if this
    /// thread may still touch the route, for its cap).
    #[cold]
    fn trim_after_return(&self, route: &Route<K>, may_touch_route: bool) {
        let _pin = self.pin();
        if self.total.is_over() {
            F::Serializers::broadcast(self, || SerialCommand::Trim);
        } else if may_touch_route {
            self.submit(route.id, SerialCommand::Trim);
        }
    }

    /// Whether `route` or the pool holds more connections than its cap (a
    /// cap lowered while they were open): a returned one is closed.
    #[inline]
    fn over_cap(&self, route: &Route<K>) -> bool {
        route.is_over_cap() || self.total.is_over()
    }

    /// Reserves one unit of the total cap.
    fn reserve_total(&self) -> bool {
        self.total.try_take()
    }

    /// Reserves route and total capacity and a slot for a new connection.
    /// Returns whether route capacity was the obstacle, if it fails.
    fn reserve_new(&self, route: &Route<K>, state: Option<&State>) -> Result<Permit, Blocked> {
        self.reserve_new_with(route, state, || self.reserve_total())
    }

    /// [`reserve_new`](Self::reserve_new), with `total` reserving the unit
    /// of the total cap (`PerRoute` may spend credit instead).
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
            self.allocated_down(route);
            return Err(Blocked::Total);
        }
        Ok(self.permit_for(route, state))
    }

    /// Takes a free slot, or a fresh one, for capacity already reserved on
    /// `route`.
    fn permit_for(&self, route: &Route<K>, state: Option<&State>) -> Permit {
        let backoff = Backoff::new();
        let mut slot = loop {
            // Total capacity was reserved, so a slot is there to take: the
            // arena is short of its cap, or one of its slots is held by no
            // unit of the total and so is on the free list (a closed slot is
            // freed before its total unit is released).
            if let Some(slot) = self.free.pop(&self.arena) {
                break slot;
            }
            if let Some(slot) = self.arena.fresh() {
                break slot;
            }
            // A slot on its way to the free list: its thread may have been
            // preempted.
            backoff.snooze();
        };
        self.arena.with(&mut slot, |slot| slot.route = route.id);
        route.connecting.fetch_add(1, Ordering::AcqRel);
        self.permit(slot, state)
    }

    /// Issues a permit for an owned, empty slot of the route it is for.
    fn permit(&self, slot: SlotToken, state: Option<&State>) -> Permit {
        Permit::new(slot, self.id, state.cloned())
    }

    /// The slot a `Permit` of this core owns, back from the permit.
    fn take_permit(&self, permit: Permit) -> SlotToken {
        assert_eq!(permit.owner(), self.id, "a Permit of another core");
        permit.into_slot()
    }

    /// Releases the capacity of an owned slot: slot back to the free list,
    /// then the route's and the total's unit.
    fn free_slot(&self, route: &Route<K>, mut slot: SlotToken) {
        self.arena.with(&mut slot, |slot| slot.route = NO_ROUTE);
        self.free.push(&self.arena, slot);
        self.allocated_down(route);
        self.total.give_back(1);
    }

    /// Gives back one unit of `route`'s cap; if that was its last, the route
    /// may be removed by a later sweep. The caller is pinned.
    fn allocated_down(&self, route: &Route<K>) {
        if route.allocated.give_back(1) == 1 && self.forgets {
            self.route_emptied(route);
        }
    }

    /// `route` lost its last connection or request (or was just
    /// registered): stamps it with the sweep round and queues it for
    /// `sweep_routes`, unless it is queued. The caller is pinned.
    ///
    /// The flag is raised with a read-modify-write after the change that
    /// emptied the route, and `sweep_routes` lowers it with one before it
    /// reads whether the route is empty: so either this call queues the
    /// route again, or the sweep sees it empty.
    #[cold]
    fn route_emptied(&self, route: &Route<K>) {
        route
            .empty_since
            .store(self.sweep_round.load(Ordering::Acquire), Ordering::Release);
        if !route.in_sweep.swap(true, Ordering::AcqRel) {
            self.emptied.push((route.id, route.uid));
        }
    }

    /// Whether `route` holds no connection (nor a unit of its cap) and no
    /// request, read with read-modify-writes (see [`Self::route_emptied`]).
    fn is_unused(route: &Route<K>) -> bool {
        route.allocated.touch() == 0 && route.touch().waiters() == 0
    }

    /// Removes route `id` (with uid `uid`) if it is still unused; run by the
    /// serializer that serves it, which has checked that nothing of the
    /// route is left in its queues. Whether it removed it. The caller is
    /// pinned.
    ///
    /// What keeps a route from removal is what it holds: a connection
    /// (leased, idle or being opened) holds a unit of its cap, and a request
    /// counts itself in shard 0's word. Removal takes the whole cap if
    /// nothing holds a unit ([`Route::seal`]; reservations fail from then
    /// on), then closes shard 0 in a CAS that finds no request counted. A
    /// request that counts itself after that finds `CLOSED` in the word its
    /// count returns and looks the route up again (`acquire`), as does a
    /// newcomer that finds the route closed; both run pinned, as does
    /// whoever else may read the route without holding something of it, so
    /// the route, unlinked from the table, is freed only once they are done.
    fn remove_route(&self, id: usize, uid: u64) -> bool {
        let Some(entry) = self.table.by_id(id).filter(|entry| entry.route.uid == uid) else {
            return false;
        };
        let route = &entry.route;
        if self.closed.load(Ordering::Acquire) || !route.seal() {
            return false;
        }
        if !route.close_if_unused() {
            // A request came: it waits for the serializer (this one), which
            // serves it once the cap is back.
            route.unseal();
            return false;
        }
        let stats = route.stats();
        self.retired
            .created
            .fetch_add(stats.created, Ordering::Relaxed);
        self.retired
            .closed
            .fetch_add(stats.closed, Ordering::Relaxed);
        self.retired
            .timeouts
            .fetch_add(stats.timeouts, Ordering::Relaxed);
        self.table.remove(id);
        true
    }

    /// After capacity of `route` was freed outside its serializer: make
    /// sure a waiting request gets it.
    fn capacity_freed(&self, route: &Route<K>) {
        F::Serializers::capacity_freed(self, route);
    }

    /// The hot path of `acquire`: an idle stateless connection, or new
    /// capacity while nobody waits, or `Closed`. `None`: the request must
    /// queue (stateful requests always do); nothing was queued.
    ///
    /// Inlined always, as are [`Route::take`] and [`Route::put`]: left to
    /// itself LLVM makes the idle hit a chain of calls, each saving and
    /// restoring registers.
    #[inline(always)]
    fn serve_now(&self, route: &Route<K>, state: Option<&State>) -> Option<Grant> {
        if state.is_none() {
            let taken = self.take_idle_near(route, self.own_shard(), F::Barge::NEWCOMER);
            if let Some(slot) = taken {
                return Some(Grant::Conn(self.lend(slot)));
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
                    if route.word().is_closed() {
                        route.connecting.fetch_sub(1, Ordering::AcqRel);
                        self.free_slot(route, self.take_permit(permit));
                        self.capacity_freed(route);
                        return Some(Grant::Closed);
                    }
                    return Some(Grant::Connect(permit));
                }
                // A transient reservation may have turned others away.
                self.capacity_freed(route);
            }
        }
        route.word().is_closed().then_some(Grant::Closed)
    }

    /// Whether `route`, found closed, was removed rather than shut down.
    #[cold]
    fn was_removed(&self, route: &Route<K>) -> bool {
        route.word().is_closed() && !self.closed.load(Ordering::Acquire)
    }

    /// Whether a newcomer on `route` may take new capacity on the hot path:
    /// only while nobody waits for it (freed capacity belongs to waiters).
    #[inline]
    fn nobody_waits(&self, route: &Route<K>) -> bool {
        F::Serializers::nobody_queued(self) && route.word().waiters() == 0
    }

    /// Counts a request of `route` about to queue; returns shard 0's word
    /// before.
    fn waiter_came(&self, route: &Route<K>) -> Word {
        F::Serializers::count_waiter(self, true);
        route.add_waiter(Self::COUNT_EVERYWHERE)
    }

    /// Takes back the count [`Self::waiter_came`] made.
    fn uncount_waiter(&self, route: &Route<K>) {
        route.remove_waiter(Self::COUNT_EVERYWHERE);
        F::Serializers::count_waiter(self, false);
    }

    /// Counts a request of `route` that left the queue; if it was the
    /// route's last hold, the route may be removed by a later sweep. The
    /// caller is pinned.
    fn waiter_left(&self, route: &Route<K>) {
        self.uncount_waiter(route);
        if self.forgets && Self::is_unused(route) {
            self.route_emptied(route);
        }
    }

    /// `Sharded`, after a request of `route` left its queue other than by
    /// a grant: the serializer looks at the next one, which may have to be
    /// woken to take an idle connection. (One that queues later is looked at
    /// when its own request is applied.)
    fn next_in_line(&self, route: &Route<K>) {
        if route.word().waiters() != 0 {
            self.kick(route);
        }
    }

    fn kick(&self, route: &Route<K>) {
        self.submit(route.id, SerialCommand::Kick);
    }

    /// Runs `command` in the serializer of route `id`.
    /// The caller is pinned, or holds a connection, permit or request of
    /// route `id` until this returns.
    fn submit(&self, id: usize, command: SerialCommand<T>) {
        let _pin = self.pin();
        let Some(serial) = F::Serializers::serializer(self, id) else {
            // Removed since the caller found it, which only a kick can race
            // with (whoever holds a connection, permit or request of a route
            // keeps it): nothing is left to serve there.
            debug_assert!(matches!(command, SerialCommand::Kick | SerialCommand::Trim));
            return;
        };
        serial.submit(
            command,
            |queues, command| queues.apply(self, command),
            |queues| queues.settle(self),
            |victims| self.dispose(victims),
        );
    }

    fn dispose(&self, victims: Vec<T>) {
        for item in victims {
            (self.disposer)(item);
        }
    }

    /// The sweep of round `round`: removes the routes that emptied before
    /// the previous round began and are still unused (see
    /// [`Self::remove_route`]), and retires what the table unlinked.
    fn remove_due(&self, round: u64) -> usize {
        let guard = reclaim::pin();
        let mut due = Vec::new();
        for _ in 0..self.emptied.len() {
            let Some((id, uid)) = self.emptied.pop() else {
                break;
            };
            let Some(entry) = self.table.by_id(id).filter(|entry| entry.route.uid == uid) else {
                continue;
            };
            let route = &entry.route;
            if route.empty_since.load(Ordering::Acquire) + 2 > round {
                // Emptied since the last sweep began: not a full period yet.
                self.emptied.push((id, uid));
                continue;
            }
            // Lowered before the look (see `route_emptied`): a route in use
            // now is queued again once it is unused again.
            route.in_sweep.swap(false, Ordering::AcqRel);
            if Self::is_unused(route) {
                due.push((id, uid));
            }
        }
        F::Serializers::submit_removals(self, due);
        // What those removals (and any the serializers ran since the last
        // sweep) unlinked goes to the epoch as one object, freed once the
        // readers pinned now are gone: in `sweep_routes`, after the few epoch
        // advances `collect` makes, if no other thread stays pinned that
        // long. Returns how many routes it retired.
        self.table.retire_dead(&guard)
    }

    /// Whether a return whose push finds `word` touches the route after the
    /// push: to list its shard, to drain a closed route, or to kick the
    /// serializer for requests that want it.
    #[inline(always)]
    fn touched_after_push(word: Word) -> bool {
        !word.listed() || word.is_closed() || word.wanted()
    }

    /// Raises `TOTAL_WAIT` on every route for an episode of requests blocked
    /// by the total cap (see `TotalWaitFlags`); whether it started one.
    fn raise_total_wait(&self, flags: &mut TotalWaitFlags) -> bool {
        let _pin = self.pin();
        flags.raise(&self.table, &self.total_episode, |entry, on| {
            entry.route.set_total_wait(on);
        })
    }

    /// Lowers `TOTAL_WAIT` everywhere once the episode is over.
    fn lower_total_wait(&self, flags: &mut TotalWaitFlags) {
        let _pin = self.pin();
        flags.lower(&self.table, &self.total_episode, |entry, on| {
            entry.route.set_total_wait(on);
        });
    }

    /// Queues route `id` for the next sweep again (its serializer could not
    /// tell yet whether it is unused).
    fn sweep_again(&self, id: usize) {
        if let Some(entry) = self.table.by_id(id) {
            self.route_emptied(&entry.route);
        }
    }

    /// Closes a connection its holder gave back (not reusable, over cap, or
    /// the pool closed), outside the serializer.
    fn close_returned(&self, route: &Route<K>, slot: SlotToken) {
        let item = self.close_slot(route, slot);
        (self.disposer)(item);
        self.capacity_freed(route);
    }

    /// Disposes of everything idle on a closed route (a return raced with
    /// shutdown).
    fn drain_closed_route(&self, route: &Route<K>) {
        while let Some(slot) = self.take_idle(route, Take::Drain) {
            self.close_returned(route, slot);
        }
    }

    /// Queues a request on `route`; `None` if the route turned out to be
    /// removed (the caller looks it up again). The caller is pinned.
    fn enqueue(
        &self,
        route: &Route<K>,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> Option<EngineWaiter<K, T>> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let node = Arc::new(Node::new(ticket, state.cloned(), mode, waker));
        let before = self.waiter_came(route);
        if before.is_closed() && !self.closed.load(Ordering::Acquire) {
            // Removed (see `remove_route`): our count kept nothing alive.
            self.uncount_waiter(route);
            return None;
        }
        F::Barge::queued(route, &node, before);
        self.submit(route.id, SerialCommand::Enqueue(route.id, node.clone()));
        Some(EngineWaiter {
            node,
            route: route.id,
            _core: std::marker::PhantomData,
        })
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

impl<K: RouteKey, T: Item, F: Flavor> crate::sealed::Sealed for Engine<K, T, F> {}

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
            // Up to the most any `max_total` may be raised to: slots are
            // made only as connections are.
            arena: Arena::new(MAX_CAPACITY),
            table: Table::new(limits.max_total().saturating_mul(2)),
            emptied: Fifo::new(),
            sweep_round: AtomicU64::new(0),
            retired_last: std::sync::atomic::AtomicUsize::new(0),
            forgets: limits.forgets_routes(),
            uids: std::sync::atomic::AtomicU64::new(0),
            total_episode: AtomicBool::new(false),
            route_caps: std::sync::Mutex::new(RouteCaps {
                set: std::collections::HashMap::new(),
                default: limits.max_per_route(),
            }),
            retired: Retired::default(),
            idle_index: IdleIndex::new(),
            #[cfg(all(test, not(leasehold_loom)))]
            reclaim_looks: std::sync::atomic::AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            total: CachePadded::new(Capped::new(limits.max_total())),
            idle_total: CachePadded::new(AtomicUsize::new(0)),
            enforce_idle_cap: AtomicBool::new(limits.max_idle() < limits.max_total()),
            max_idle: AtomicUsize::new(limits.max_idle()),
            tickets: AtomicU64::new(0),
            serializers: F::Serializers::new_shared(),
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
        let _pin = self.pin();
        loop {
            let Some(route) = self.lookup(key) else {
                return Acquire::Ready(Grant::Closed);
            };
            match self.serve_now(route, state) {
                Some(Grant::Closed) if self.was_removed(route) => {}
                Some(grant) => return Acquire::Ready(grant),
                None => {
                    if let Some(waiter) = self.enqueue(route, state, mode, waker) {
                        return Acquire::Queued(waiter);
                    }
                }
            }
            // The route was removed: it is about to leave the table.
            crate::sync::spin_hint();
        }
    }

    #[inline]
    fn acquire_now(&self, key: &K, state: Option<&State>) -> Option<Grant> {
        let _pin = self.pin();
        loop {
            let Some(route) = self.lookup(key) else {
                return Some(Grant::Closed);
            };
            match self.serve_now(route, state) {
                Some(Grant::Closed) if self.was_removed(route) => crate::sync::spin_hint(),
                grant => return grant,
            }
        }
    }

    fn cancel(&self, waiter: Self::Waiter, timed_out: bool) -> Option<Grant> {
        let _pin = self.pin();
        match waiter.node.cancel() {
            Ok(()) => {
                let route = self.route(waiter.route);
                self.waiter_left(route);
                if timed_out {
                    route.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                F::Barge::left_unserved(self, route);
                None
            }
            Err(grant) => grant,
        }
    }

    fn retry(&self, waiter: &mut Self::Waiter) -> Option<Grant> {
        F::Barge::retry(self, waiter)
    }

    #[inline]
    fn item<'a>(&'a self, held: &'a Held) -> &'a T {
        self.check_held(held);
        let slot = self.arena.get(held.slot());
        slot.item.as_ref().expect("a leased slot holds its item")
    }

    #[inline]
    fn item_mut<'a>(&'a self, held: &'a mut Held) -> &'a mut T {
        self.check_held(held);
        let slot = self.arena.get_mut(held.slot_mut());
        slot.item.as_mut().expect("a leased slot holds its item")
    }

    #[inline]
    fn release(&self, held: Held, reuse: bool) {
        let mut slot = self.take_held(held);
        // What a return needs of the slot, in one look-up: its route, whether
        // its item carries a state, and (below) its link.
        let mut owned = self.arena.owned(&mut slot);
        let (id, stateful) = owned.with(|slot| {
            let stateful = slot
                .item
                .as_ref()
                .is_some_and(|item| item.state().is_some());
            (slot.route, stateful)
        });
        let link = owned.link();
        // The connection keeps its route from removal until we give it up:
        // from then on, only a pin does (see `remove_route`).
        let route = self.route(id);
        if !reuse || self.over_cap(route) {
            let _pin = self.pin();
            return self.close_returned(route, slot);
        }
        if stateful {
            // Stateful idle lists are kept by the serializer.
            return self.submit(route.id, SerialCommand::Release(slot));
        }
        if !self.admit_idle(&mut slot) {
            let _pin = self.pin();
            return self.close_returned(route, slot);
        }
        let shard = self.own_shard();
        let word = route.shard_word(shard);
        let rule = F::Barge::return_rule(route, word);
        // Pinned before the push if what follows it touches the route: that
        // is decided by the word before the push, which the push's CAS
        // compares in full, so a return that needs nothing after it (the
        // shard listed, nobody waiting, the route open) pins nothing.
        let mut pin = None;
        let before_push = |word: Option<Word>| {
            if self.forgets
                && pin.is_none()
                && word.is_none_or(|word| Self::touched_after_push(word))
            {
                pin = self.pin();
            }
        };
        match route.put(link, shard, slot, rule.put, word, before_push) {
            Ok(before) => {
                if !before.listed() && self.list_idle(route, shard) {
                    self.kick_reclaimer(route);
                }
                if before.is_closed() {
                    self.drain_closed_route(route);
                } else if before.wanted() {
                    // Requests wait: under `Compete` they compete for it
                    // (the strategy may spare the kick); else (FIFO only: a
                    // LIFO push refuses in its CAS) a waiter or a flag came
                    // between the check and the count.
                    F::Barge::went_idle(route, rule, before);
                    if !F::Barge::spares_kick(route, before) {
                        self.kick(route);
                    }
                }
                // A cap lowered between the check above and the push: the
                // lowering's trim looked before the push landed, so trim
                // again. (Two plain loads; the route's only where this
                // thread may touch it after the push.)
                let pinned = pin.is_some() || !self.forgets;
                if self.total.is_over() || (pinned && route.is_over_cap()) {
                    self.trim_after_return(route, pinned);
                }
            }
            Err((refused, mut slot)) => {
                let _pin = self.pin();
                self.idle_left(&mut slot);
                match refused {
                    Refused::Closed => self.close_returned(route, slot),
                    // Requests wait: the serializer hands it to the oldest.
                    Refused::Waiters => self.submit(route.id, SerialCommand::Release(slot)),
                }
            }
        }
    }

    fn connected(&self, permit: Permit, item: T) -> Result<Held, T> {
        let _pin = self.pin();
        let mut slot = self.take_permit(permit);
        let route = self.route(self.route_of(&slot));
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        route.created.fetch_add(1, Ordering::Relaxed);
        if route.word().is_closed() {
            self.free_slot(route, slot);
            route.closed.fetch_add(1, Ordering::Relaxed);
            self.capacity_freed(route);
            return Err(item);
        }
        // The item goes in, and the slot is lent to the permit's holder.
        self.arena.with(&mut slot, |slot| slot.item = Some(item));
        Ok(self.lend(slot))
    }

    fn connect_failed(&self, permit: Permit) {
        let _pin = self.pin();
        let slot = self.take_permit(permit);
        let route = self.route(self.route_of(&slot));
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        self.free_slot(route, slot);
        self.capacity_freed(route);
    }

    fn evict_idle(&self, evict: std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>) {
        let _pin = self.pin();
        F::Serializers::broadcast(self, || SerialCommand::Evict(evict.clone()));
    }

    fn set_route_max(&self, key: &K, max: usize) {
        assert!(max > 0, "a route's maximum must be at least 1");
        let max = max.min(MAX_CAPACITY);
        let _pin = self.pin();
        let mut changed = None;
        // Under the table's mutex, as registration is: a route registering
        // meanwhile gets this cap, or had registered and is found here.
        self.table.for_each_locked(
            || {
                // Kept for the route's next registration if it is removed.
                self.route_caps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .set
                    .insert(key.clone(), max);
                if let Some(entry) = self.table.get(key) {
                    entry.route.allocated.set_cap(max);
                    changed = Some(entry.route.id);
                }
            },
            |_| {},
        );
        self.trim_routes(changed);
    }

    fn set_max_per_route(&self, max: usize) {
        assert!(max > 0, "max_per_route must be at least 1");
        let max = max.min(MAX_CAPACITY);
        let _pin = self.pin();
        let mut changed = Vec::new();
        self.table.for_each_locked(
            || {
                self.route_caps
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .default = max;
            },
            |entry| {
                let caps = self.route_caps.lock().unwrap_or_else(|e| e.into_inner());
                if caps.own_cap(&entry.route.key, &self.limits).is_none() {
                    entry.route.allocated.set_cap(max);
                    changed.push(entry.route.id);
                }
            },
        );
        self.trim_routes(changed);
    }

    fn set_max_total(&self, max: usize) {
        assert!(
            (1..=MAX_CAPACITY).contains(&max),
            "max_total must be between 1 and {MAX_CAPACITY}"
        );
        let _pin = self.pin();
        let count = self.total.set_cap(max);
        if count > max {
            // Idle connections over the cap go now; leased ones as they
            // come back.
            F::Serializers::broadcast(self, || SerialCommand::Trim);
        }
        // Requests blocked by the old cap may be served now.
        F::Serializers::capacity_grew(self);
    }

    fn set_max_idle(&self, max: usize) {
        self.max_idle.store(max, Ordering::Release);
        self.enforce_idle_cap.store(true, Ordering::Release);
        let _pin = self.pin();
        // Every serializer counts the idle connections not counted yet and
        // closes those over the cap.
        F::Serializers::broadcast(self, || SerialCommand::CountIdle);
    }

    fn stats(&self) -> PoolStats<K> {
        let mut stats = PoolStats {
            total: Stats {
                max: self.total.cap(),
                ..Stats::default()
            },
            routes: Vec::with_capacity(self.table.len()),
            paused: false,
        };
        let _pin = self.pin();
        for entry in self.table.iter() {
            let route_stats = entry.route.stats();
            stats.total.add(&route_stats);
            stats.routes.push((entry.route.key.clone(), route_stats));
        }
        stats.total.created += self.retired.created.load(Ordering::Relaxed);
        stats.total.closed += self.retired.closed.load(Ordering::Relaxed);
        stats.total.timeouts += self.retired.timeouts.load(Ordering::Relaxed);
        stats
    }

    fn route_stats(&self, key: &K) -> Stats {
        let _pin = self.pin();
        match self.table.get(key) {
            Some(entry) => entry.route.stats(),
            None => Stats {
                max: self.route_cap(key),
                ..Stats::default()
            },
        }
    }

    fn sweep_routes(&self) -> usize {
        if !self.forgets {
            return 0;
        }
        let round = self.sweep_round.fetch_add(1, Ordering::AcqRel) + 1;
        let retired = self.remove_due(round);
        reclaim::collect();
        // Many routes' memory freed, now or (retired by the last sweep while
        // a thread stayed pinned) by this collection: give the pages back.
        let before = self.retired_last.swap(retired, Ordering::Relaxed);
        if before.max(retired) >= TRIM_AFTER_ROUTES {
            reclaim::trim_heap();
        }
        retired
    }

    fn shutdown(&self) {
        self.closed.store(true, Ordering::Release);
        let _pin = self.pin();
        self.table.close(|entry| entry.route.close());
        F::Serializers::broadcast(self, || SerialCommand::Shutdown);
        F::Serializers::shut_down(self);
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

impl<K: RouteKey, T: Item, F: Flavor> fmt::Debug for Engine<K, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("shards", &self.shards)
            .field("flavor", &std::any::type_name::<F>())
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .field("total", &*self.total)
            .field("routes", &self.table.len())
            .field("serializers", &self.serializers)
            .finish()
    }
}
