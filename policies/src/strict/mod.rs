//! `Strict`: exact caps, per-route FIFO waiters with direct hand-off, and
//! freed total capacity for the oldest waiting request of any route.
//!
//! # Implementation Details
//!
//! Two paths share the state:
//!
//! * The **hot path** — lease an idle stateless connection, return one when
//!   nobody waits, open a new one when capacity is free and nobody waits — is
//!   lock-free and allocation-free: a route lookup through an `ArcSwap`'d
//!   registry, a CAS on the route's packed idle/waiter word (see `route`),
//!   and a push or pop on the route's idle stack of arena slots.
//! * The **slow path** — queued requests, stateful connections, cross-route
//!   reclaim, eviction, shutdown — runs in a non-blocking serializer
//!   (`serial`): commands are queued and whichever thread finds it idle runs
//!   them, so the waiter queues are plain sequential code.
//!
//! A request that cannot be served at once counts itself in its route's
//! word and in `waiting_all` *before* its `Enqueue` command is queued. From
//! then on, newcomers on that route never take an idle connection (the
//! hit-path CAS refuses while waiters are counted) and nobody opens a new
//! connection on the hot path while anyone waits, so freed capacity and
//! returned connections go through the serializer, which serves the oldest
//! request first. Every operation that frees capacity or adds an idle
//! connection re-reads the waiter counts with a read-modify-write and kicks
//! the serializer when they are non-zero — the counterpart of the queuing
//! request's own read-modify-write, so no wake-up is lost.

mod lines;
mod route;

use self::lines::{Command, Lines};
use self::route::{is_closed, waiters_of, Route};
use crate::arena::{Arena, IndexStack};
use crate::serial::Serial;
use crate::sync::{Arc, AtomicU64, AtomicUsize, Ordering, Swap};
use crate::types::{
    Acquire, Disposer, Grant, Held, Item, Limits, Permit, PoolStats, RouteKey, State, Stats, Wait,
};
use crate::waiter::Node;
use crate::{Core, Policy, Waiting};
use crossbeam_utils::CachePadded;
use std::collections::HashMap;
use std::fmt;
use std::task::Waker;

/// The fair policy: exact caps, FIFO per route, no barging.
///
/// * A request never overtakes one queued before it on the same route: a
///   returned connection goes to the oldest waiter (direct hand-off).
/// * Capacity freed anywhere goes to the oldest waiting request of any route
///   that can use it.
/// * When the total is reached and a route's request finds idle connections
///   only on other routes (or in another state), one is closed to make room.
///
/// Pick it for predictable tail latency.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict;

impl Policy for Strict {
    type Core<K: RouteKey, T: Item> = StrictCore<K, T>;
    const NAME: &'static str = "strict";
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

/// Every route the core has seen; routes are never removed, so a route
/// looked up once stays valid for the core's life.
struct Registry<K> {
    closed: bool,
    by_key: HashMap<K, Arc<Route<K>>, foldhash::fast::RandomState>,
    by_id: Vec<Arc<Route<K>>>,
}

impl<K: RouteKey> Registry<K> {
    fn copy(&self) -> Self {
        Self {
            closed: self.closed,
            by_key: self.by_key.clone(),
            by_id: self.by_id.clone(),
        }
    }
}

/// The data structure behind [`Strict`].
pub struct StrictCore<K, T> {
    arena: Arena<Slot<K, T>>,
    free: IndexStack,
    registry: Swap<Registry<K>>,
    total: CachePadded<AtomicUsize>,
    /// Counted only when `max_idle < max_total` (else the cap cannot bind).
    idle_total: CachePadded<AtomicUsize>,
    enforce_idle_cap: bool,
    /// Requests queued on any route.
    waiting_all: CachePadded<AtomicUsize>,
    tickets: AtomicU64,
    limits: Limits<K>,
    serial: Serial<Command<K, T>, Lines<K, T>>,
    disposer: Disposer<T>,
}

/// A request queued in a [`StrictCore`].
pub struct StrictWaiter<K, T> {
    node: Arc<Node<T>>,
    route: Arc<Route<K>>,
}

impl<K: RouteKey, T: Item> Waiting<T> for StrictWaiter<K, T> {
    fn try_take(&mut self) -> Option<Grant<T>> {
        self.node.try_take()
    }
}

impl<K: fmt::Debug, T> fmt::Debug for StrictWaiter<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StrictWaiter")
            .field("route", &self.route.key)
            .field("node", &self.node)
            .finish()
    }
}

impl<K: RouteKey, T: Item> StrictCore<K, T> {
    /// Runs `f` on the route for `key`, registering the route on first use.
    /// `None` once the core is closed.
    #[inline]
    fn with_route<R>(&self, key: &K, f: impl FnOnce(&Arc<Route<K>>) -> R) -> Option<R> {
        let registry = self.registry.load();
        if registry.closed {
            return None;
        }
        if let Some(route) = registry.by_key.get(key) {
            return Some(f(route));
        }
        drop(registry);
        self.register(key).map(|route| f(&route))
    }

    #[cold]
    fn register(&self, key: &K) -> Option<Arc<Route<K>>> {
        let mut found = None;
        self.registry.update(|registry| {
            found = None;
            if registry.closed {
                return None;
            }
            if let Some(route) = registry.by_key.get(key) {
                found = Some(route.clone());
                return None;
            }
            let mut next = registry.copy();
            let route = Arc::new(Route::new(
                key.clone(),
                next.by_id.len(),
                self.limits.route_max(key),
                self.limits.reuse(),
                self.arena.len(),
            ));
            next.by_key.insert(key.clone(), route.clone());
            next.by_id.push(route.clone());
            found = Some(route);
            Some(next)
        });
        found
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

    /// Takes the item out of a reserved idle slot of `route`.
    #[inline]
    fn take_idle(&self, route: &Route<K>) -> Held<T> {
        let index = route.pop_reserved(&self.arena);
        // SAFETY: we reserved and popped `index`, so we own it.
        let item = unsafe { self.arena.with(index, |slot| slot.item.take()) };
        if self.enforce_idle_cap {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
        }
        Held::new(item.expect("an idle slot holds its item"), index as usize)
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
        if !route.reserve_own() {
            return Err(Blocked::Route);
        }
        if !self.reserve_total() {
            route.allocated.fetch_sub(1, Ordering::AcqRel);
            return Err(Blocked::Total);
        }
        Ok(self.permit_for(route, state))
    }

    /// Takes a free slot for capacity already reserved on `route`.
    fn permit_for(&self, route: &Route<K>, state: Option<&State>) -> Permit {
        let index = loop {
            // Total capacity was reserved, so a free slot exists (a closed
            // slot is freed before its total unit is released).
            if let Some(index) = self.free.pop(&self.arena) {
                break index;
            }
            crate::sync::spin_hint();
        };
        // SAFETY: we popped `index` from the free list.
        unsafe { self.arena.with(index, |slot| slot.route = route.id) };
        route.connecting.fetch_add(1, Ordering::AcqRel);
        Permit::new(index as usize, state.cloned())
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

    /// After capacity was freed outside the serializer: make sure a waiting
    /// request gets it.
    fn capacity_freed(&self) {
        // A read-modify-write, so it cannot miss a request counted before it.
        if self.waiting_all.fetch_add(0, Ordering::AcqRel) != 0 {
            self.kick();
        }
    }

    fn kick(&self) {
        self.submit(Command::Kick);
    }

    fn submit(&self, command: Command<K, T>) {
        self.serial.submit(
            command,
            |lines, command| lines.apply(self, command),
            |lines| lines.settle(self),
            |victims| {
                for item in victims {
                    (self.disposer)(item);
                }
            },
        );
    }

    /// Closes a connection its holder gave back (not reusable, over cap, or
    /// the pool closed), outside the serializer.
    fn close_returned(&self, route: &Route<K>, index: u32, item: T) {
        self.free_slot(route, index);
        route.closed.fetch_add(1, Ordering::Relaxed);
        (self.disposer)(item);
        self.capacity_freed();
    }

    /// Disposes of everything idle on a closed route (a return raced with
    /// shutdown).
    fn drain_closed_route(&self, route: &Route<K>) {
        while route.reserve_idle_for_drain() {
            let (item, index) = self.take_idle(route).into_parts();
            self.close_returned(route, index as u32, item);
        }
    }

    fn enqueue(
        &self,
        route: &Arc<Route<K>>,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> StrictWaiter<K, T> {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let node = Arc::new(Node::new(ticket, state.cloned(), mode, waker.clone()));
        self.waiting_all.fetch_add(1, Ordering::AcqRel);
        route.add_waiter();
        self.submit(Command::Enqueue(route.clone(), node.clone()));
        StrictWaiter {
            node,
            route: route.clone(),
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

impl<K: RouteKey, T: Item> Core<K, T> for StrictCore<K, T> {
    type Waiter = StrictWaiter<K, T>;

    fn new(limits: Limits<K>, disposer: Disposer<T>) -> Self {
        if let Err(invalid) = limits.validate() {
            panic!("invalid limits: {invalid}");
        }
        let arena = Arena::new(limits.max_total());
        let free = arena.stack(true);
        Self {
            free,
            arena,
            registry: Swap::new(Registry {
                closed: false,
                by_key: HashMap::default(),
                by_id: Vec::new(),
            }),
            total: CachePadded::new(AtomicUsize::new(0)),
            idle_total: CachePadded::new(AtomicUsize::new(0)),
            enforce_idle_cap: limits.max_idle() < limits.max_total(),
            waiting_all: CachePadded::new(AtomicUsize::new(0)),
            tickets: AtomicU64::new(0),
            serial: Serial::new(Lines::new()),
            limits,
            disposer,
        }
    }

    #[inline]
    fn acquire(
        &self,
        key: &K,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> Acquire<T, Self::Waiter> {
        self.with_route(key, |route| {
            if state.is_none() {
                if route.reserve_idle(true) {
                    return Acquire::Ready(Grant::Conn(self.take_idle(route)));
                }
                // New capacity on the hot path only while nobody waits
                // anywhere: freed capacity belongs to the oldest waiter.
                if self.waiting_all.load(Ordering::Acquire) == 0 && waiters_of(route.word()) == 0 {
                    if let Ok(permit) = self.reserve_new(route, None) {
                        // The capacity may have been freed by a connection
                        // closed because the route was closed (a return
                        // racing `shutdown`): then this request comes after
                        // the shutdown and must get `Closed`, not open a new
                        // connection. Our reservation read that close's
                        // counter update, so this load sees the closed flag.
                        if is_closed(route.word()) {
                            route.connecting.fetch_sub(1, Ordering::AcqRel);
                            self.free_slot(route, permit.token() as u32);
                            self.capacity_freed();
                            return Acquire::Ready(Grant::Closed);
                        }
                        return Acquire::Ready(Grant::Connect(permit));
                    }
                    // A transient reservation may have turned others away.
                    self.capacity_freed();
                }
            }
            if is_closed(route.word()) {
                return Acquire::Ready(Grant::Closed);
            }
            Acquire::Queued(self.enqueue(route, state, mode, waker))
        })
        .unwrap_or(Acquire::Ready(Grant::Closed))
    }

    fn cancel(&self, waiter: Self::Waiter, timed_out: bool) -> Option<Grant<T>> {
        match waiter.node.cancel() {
            Ok(()) => {
                waiter.route.remove_waiter();
                self.waiting_all.fetch_sub(1, Ordering::AcqRel);
                if timed_out {
                    waiter.route.timeouts.fetch_add(1, Ordering::Relaxed);
                }
                None
            }
            Err(grant) => grant,
        }
    }

    #[inline]
    fn release(&self, held: Held<T>, reuse: bool) {
        let (item, index) = held.into_parts();
        let index = index as u32;
        let registry = self.registry.load();
        // SAFETY: the holder of a `Held` owns its slot.
        let route = &registry.by_id[unsafe { self.route_of(index) }];
        if !reuse || route.is_over_cap() {
            return self.close_returned(route, index, item);
        }
        let word = route.word();
        if is_closed(word) {
            return self.close_returned(route, index, item);
        }
        if item.state().is_some() || waiters_of(word) != 0 {
            // Stateful idle lists and hand-off to waiters are serialized.
            return self.submit(Command::Release(Held::new(item, index as usize)));
        }
        if self.enforce_idle_cap
            && self.idle_total.fetch_add(1, Ordering::AcqRel) >= self.limits.max_idle()
        {
            self.idle_total.fetch_sub(1, Ordering::AcqRel);
            return self.close_returned(route, index, item);
        }
        // SAFETY: we own `index` until `push_idle` publishes it.
        let before = unsafe {
            self.arena.with(index, |slot| slot.item = Some(item));
            route.push_idle(&self.arena, index)
        };
        if is_closed(before) {
            self.drain_closed_route(route);
        } else if waiters_of(before) != 0 {
            self.kick();
        } else {
            // A request of another route may be blocked by the total cap,
            // with this connection now the idle one to close to make room
            // for it (cross-route reclaim); it looked before the connection
            // went idle, so it must be looked at again. The same
            // read-modify-write re-check as for freed capacity: it cannot
            // miss a request counted before it, and a request counted after
            // it finds this connection idle.
            self.capacity_freed();
        }
    }

    fn connected(&self, permit: Permit, item: T) -> Result<Held<T>, T> {
        let index = permit.token() as u32;
        let registry = self.registry.load();
        // SAFETY: the holder of a `Permit` owns its slot.
        let route = &registry.by_id[unsafe { self.route_of(index) }];
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        route.created.fetch_add(1, Ordering::Relaxed);
        if is_closed(route.word()) {
            self.free_slot(route, index);
            route.closed.fetch_add(1, Ordering::Relaxed);
            self.capacity_freed();
            return Err(item);
        }
        Ok(Held::new(item, index as usize))
    }

    fn connect_failed(&self, permit: Permit) {
        let index = permit.token() as u32;
        let registry = self.registry.load();
        // SAFETY: the holder of a `Permit` owns its slot.
        let route = &registry.by_id[unsafe { self.route_of(index) }];
        route.connecting.fetch_sub(1, Ordering::AcqRel);
        self.free_slot(route, index);
        self.capacity_freed();
    }

    fn evict_idle(&self, evict: std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>) {
        self.submit(Command::Evict(evict));
    }

    fn set_route_max(&self, key: &K, max: usize) {
        assert!(max > 0, "a route's maximum must be at least 1");
        let changed = self.with_route(key, |route| route.max.store(max, Ordering::Release));
        if changed.is_some() {
            // Trims idle connections over the new cap and serves waiters it
            // lets through.
            self.submit(Command::Trim);
        }
    }

    fn stats(&self) -> PoolStats<K> {
        let registry = self.registry.load();
        let mut stats = PoolStats {
            total: Stats {
                max: self.limits.max_total(),
                ..Stats::default()
            },
            routes: Vec::with_capacity(registry.by_id.len()),
        };
        for route in &registry.by_id {
            let route_stats = route.stats();
            stats.total.add(&route_stats);
            stats.routes.push((route.key.clone(), route_stats));
        }
        stats
    }

    fn route_stats(&self, key: &K) -> Stats {
        match self.registry.load().by_key.get(key) {
            Some(route) => route.stats(),
            None => Stats {
                max: self.limits.route_max(key),
                ..Stats::default()
            },
        }
    }

    fn shutdown(&self) {
        self.registry.update(|registry| {
            if registry.closed {
                return None;
            }
            let mut next = registry.copy();
            next.closed = true;
            Some(next)
        });
        for route in &self.registry.load().by_id {
            route.close();
        }
        self.submit(Command::Shutdown);
    }

    fn is_closed(&self) -> bool {
        self.registry.load().closed
    }
}

impl<K: RouteKey, T> fmt::Debug for StrictCore<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let registry = self.registry.load();
        f.debug_struct("StrictCore")
            .field("closed", &registry.closed)
            .field("max_total", &self.limits.max_total())
            .field("total", &self.total.load(Ordering::Relaxed))
            .field("waiting", &self.waiting_all.load(Ordering::Relaxed))
            .field("routes", &registry.by_id)
            .field("serial", &self.serial)
            .finish()
    }
}
