//! The concurrency core of [leasehold](https://docs.rs/leasehold): how a
//! connection pool decides who gets which connection, with no I/O, no clock
//! and no threads of its own.
//!
//! A pool is generic over a [`Policy`], a marker type naming a [`Core`]: the
//! data structure that does capacity accounting (per route and total), keeps
//! idle connections, queues waiting requests and hands connections or
//! capacity to them, evicts idle entries and reports [`Stats`]. The pool
//! itself (crate `leasehold`) opens and closes connections; the core only
//! moves items and counts.
//!
//! | policy | promise |
//! |---|---|
//! | [`Strict`] | exact caps; per-route FIFO waiters with direct hand-off; freed total capacity goes to the oldest waiting request of any route |
//! | [`Lax`] | exact caps; per-CPU idle shards with work stealing; barging allowed, waiters compete for returns; newcomers take at most `Lax::PASS_LIMIT` connections ahead of the oldest |
//! | [`Offlock`] | exact caps; one independent segment per route, FIFO within it; routes share only the total cap; closes never on a caller's thread |
//!
//! The three policies are the only ones: [`Policy`] and the traits of the
//! core behind it are sealed, since the pool relies on the invariants that
//! leasehold's conformance suite (its `tests/` directory) and the loom
//! models check for these implementations. The core's plumbing, which
//! `leasehold` builds on, sits in a hidden module without a semver
//! promise.
//!
//! # Safety and correctness
//!
//! All `unsafe` code of leasehold lives in this crate: the slot arena and
//! its lock-free index stacks (`arena`, whose slots live in segments
//! allocated as connections are made, `grow`), the waiter node's grant
//! cell (`waiter`), the route table's links and their reclamation
//! (`engine/table`, `reclaim`). The ownership of a connection's slot is a
//! value, the arena's slot token, which the engine passes from list to
//! lease to list, so the engine itself only claims a token where a
//! route's idle list hands a slot out (`engine/route`). Each block states
//! its reasoning in a `SAFETY:` comment; the protocols are model-checked
//! with loom (`loom-tests/`, built with `--cfg leasehold_loom`, which swaps
//! the primitives of the `sync` module for loom's).

#![cfg_attr(not(leasehold_loom), deny(unsafe_op_in_unsafe_fn))]

mod arena;
mod capped;
mod count;
mod disposal_queue;
mod engine;
mod grow;
pub mod implementation;
mod lax;
mod lease_mark;
mod mailbox;
mod offlock;
mod reclaim;
mod serial;
mod strict;
mod sync;
mod types;
mod waiter;

pub use lax::Lax;
pub use offlock::Offlock;
pub use strict::Strict;
pub use types::{InvalidLimits, PoolStats, Reuse, RouteKey, State, Stats};

/// The core's plumbing: the engine, its waiters, the grants and permits it
/// hands out and the queues and marks the pool's event loop shares with
/// it. `leasehold` builds on these, and the loom models drive them
/// directly; they follow leasehold's needs, with no semver promise of
/// their own.
#[doc(hidden)]
pub mod unstable {
    pub use crate::capped::Capped;
    pub use crate::count::{CountPart, CountSum};
    pub use crate::disposal_queue::{DisposalQueue, PushError};
    #[cfg(leasehold_loom)]
    pub use crate::engine::set_loom_pass_limit;
    pub use crate::engine::{
        Barging, Compete, CompeteSerial, Engine, EngineWaiter, Fair, Flavor, Handoff,
        OneSerializer, OneShared, PerRoute, SegmentQueues, SegmentSerial, Segmented,
        SegmentsShared, Serializing, Sharded,
    };
    pub use crate::lax::LaxCore;
    pub use crate::lease_mark::{Arming, LeaseMark, WatchEvent};
    pub use crate::mailbox::Mailbox;
    pub use crate::offlock::OfflockCore;
    pub use crate::strict::{StrictCore, StrictWaiter};
    #[cfg(leasehold_loom)]
    pub use crate::sync::set_loom_clock;
    pub use crate::types::{
        Acquire, Disposer, Grant, Held, Item, Limits, Permit, Wait, MAX_CAPACITY,
    };
    pub use crate::{Core, Waiting};
}

/// Keeps [`Policy`], [`Core`], [`Waiting`] and the engine's flavors to the
/// implementations of this crate: the pool relies on the contracts that
/// the conformance suite and the loom models check for these, and no
/// other.
mod sealed {
    pub trait Sealed {}
}

use crate::types::{Acquire, Disposer, Grant, Held, Item, Limits, Permit, Wait};
use std::fmt;
use std::task::Waker;

/// A concurrency policy: a marker type that names the [`Core`] a pool uses.
///
/// The strategy-as-type-parameter shape lets `Pool<C, P = Strict>` pick its
/// policy at compile time, with no dynamic dispatch on the hot path.
pub trait Policy: sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// The policy's data structure for routes `K` and items `T`.
    type Core<K: RouteKey, T: Item>: Core<K, T>;

    /// A short name, for reports.
    const NAME: &'static str;

    /// Whether the policy promises that graceful closes never run on a
    /// caller's thread: a pool then refuses inline disposal (a full
    /// disposal queue still aborts a connection on the caller's thread).
    const DISPOSES_OFF_THREAD: bool = false;
}

/// A queued request, as handed out by [`Core::acquire`].
pub trait Waiting: sealed::Sealed + Send + Unpin + fmt::Debug {
    /// Takes the grant if the request has been served. Returns `None` while
    /// it waits, and after the grant was taken.
    fn try_take(&mut self) -> Option<Grant>;

    /// Wakes `waker`, instead of the waker given before, when the request is
    /// served: for a task that is polled again, perhaps on another thread.
    /// A grant published before the call woke the old waker, so the caller
    /// looks with [`Waiting::try_take`] after registering.
    fn register(&self, waker: &Waker);
}

/// The concurrency core of a pool: every operation a pool needs, none of
/// which blocks.
///
/// The contract, numbered as the invariants of leasehold's design notes
/// (`docs/design.md`), which say what checks each one; the others there
/// (5, deadlines; 9 and 10, cross-route reclaim and fairness, in the
/// engine's flavors) are the pool's and the policies' own:
///
/// 1. caps: per route, allocated ≤ its max; over all routes, ≤ `max_total`
///    (allocated = leased + idle + connecting);
/// 2. exclusivity: an item is held by at most one `Held`, and never idle
///    while held;
/// 3. conservation: every item that enters the core leaves it exactly
///    once: through the disposer, or back from [`Core::connected`];
/// 4. and 8. no lost wake-up: while a request for a route waits, an idle
///    item of that route or free capacity for it never stays unused;
/// 6. cancellation: a request cancelled while being served loses nothing:
///    what it was given goes back to the core;
/// 7. state isolation: a request for state S only gets items in state S,
///    a request without state only stateless items.
pub trait Core<K: RouteKey, T: Item>:
    sealed::Sealed + Send + Sync + fmt::Debug + Sized + 'static
{
    /// A queued request.
    type Waiter: Waiting;

    /// Builds the core. `disposer` receives every item the core takes out of
    /// the pool to be closed.
    ///
    /// # Panics
    /// If `limits` is invalid ([`Limits::validate`]).
    fn new(limits: Limits<K>, disposer: Disposer<T>) -> Self;

    /// Acquires an idle item or capacity for `route`, in `state` (or
    /// stateless). If it cannot be served at once it queues (with
    /// [`Wait::Queue`]) and `waker` is woken when the returned waiter holds
    /// its grant; with [`Wait::Never`] the request is still answered through
    /// the waiter, promptly, with [`Grant::Busy`] if it would have to wait.
    fn acquire(
        &self,
        route: &K,
        state: Option<&State>,
        mode: Wait,
        waker: &Waker,
    ) -> Acquire<Self::Waiter>;

    /// Serves a request at once where [`Core::acquire`] would (an idle
    /// item, capacity, or `Closed`); `None` where it would queue the
    /// request, and nothing is queued then. A blocking pool asks this first,
    /// and while the answer is `None` it yields its thread and asks again,
    /// a bounded number of times, before it queues: a holder that was
    /// preempted may run and give its item back (see leasehold's
    /// `Pool::lease`). Returning `None` is always correct, at the price of
    /// those yields; a core with a hot path answers from it.
    fn acquire_now(&self, route: &K, state: Option<&State>) -> Option<Grant>;

    /// Withdraws a queued request. Returns the grant if the request was
    /// served first (the caller then owns it, and must use it or give it
    /// back). `timed_out` counts the request in the route's timeouts.
    fn cancel(&self, waiter: Self::Waiter, timed_out: bool) -> Option<Grant>;

    /// Lets a queued request take an idle item itself, in a core whose
    /// requests compete for returned items rather than being handed them
    /// (`Lax`); such a core may wake a request without a grant for this.
    /// Call it after [`Waiting::try_take`] found nothing, with the waker
    /// registered, before waiting again. `Some`: the request is served and
    /// no longer queued. The default serves nothing.
    fn retry(&self, waiter: &mut Self::Waiter) -> Option<Grant> {
        let _ = waiter;
        None
    }

    /// The leased item `held` stands for.
    ///
    /// # Panics
    /// If `held` was lent by another core.
    fn item<'a>(&'a self, held: &'a Held) -> &'a T;

    /// The leased item `held` stands for, mutably.
    ///
    /// # Panics
    /// If `held` was lent by another core.
    fn item_mut<'a>(&'a self, held: &'a mut Held) -> &'a mut T;

    /// Returns a leased item: kept for reuse if `reuse` and the limits allow,
    /// else disposed.
    ///
    /// # Panics
    /// If `held` was lent by another core.
    fn release(&self, held: Held, reuse: bool);

    /// Takes in the item opened on a permit, leased to the permit's holder.
    ///
    /// # Errors
    /// Gives the item back if the pool was shut down meanwhile; the capacity
    /// is released and the caller closes the item.
    fn connected(&self, permit: Permit, item: T) -> Result<Held, T>;

    /// Gives back a permit whose connection could not be opened.
    fn connect_failed(&self, permit: Permit);

    /// Disposes of every idle item for which `evict` returns true.
    fn evict_idle(&self, evict: std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>);

    /// Changes one route's cap at run time (a cap above [`MAX_CAPACITY`](crate::unstable::MAX_CAPACITY)
    /// is that); the route keeps it from then on, [`Core::set_max_per_route`]
    /// notwithstanding.
    ///
    /// Every cap change works the same way. It is ordered against every
    /// reservation: once the call returns, no item is opened while the
    /// count is at or over the new cap. Lowering it closes excess idle items
    /// now and excess leased ones as they return; nothing leased is taken
    /// away. Raising it serves the requests it lets through at once.
    ///
    /// # Panics
    /// If `max` is 0.
    fn set_route_max(&self, route: &K, max: usize);

    /// Changes the cap of every route that has none of its own (configured
    /// or set with [`Core::set_route_max`]), and of routes registered
    /// later, as [`Core::set_route_max`] does for one.
    ///
    /// # Panics
    /// If `max` is 0.
    fn set_max_per_route(&self, max: usize);

    /// Changes `max_idle`: idle items over it are closed now, and from then
    /// on a return that would exceed it is closed. A core that counted no
    /// idle items (its `max_idle` was not below `max_total`) starts
    /// counting; an item going idle at that instant may stay uncounted
    /// until it is next leased.
    fn set_max_idle(&self, max: usize);

    /// Changes the total cap, as [`Core::set_route_max`] does a route's.
    ///
    /// # Panics
    /// If `max` is 0 or above [`MAX_CAPACITY`](crate::unstable::MAX_CAPACITY).
    fn set_max_total(&self, max: usize);

    /// A snapshot of the gauges and counters.
    fn stats(&self) -> PoolStats<K>;

    /// One route's stats; for a route the core has not seen, zeros and the
    /// cap it would get.
    fn route_stats(&self, route: &K) -> Stats;

    /// Forgets routes that have had no connection and no request since
    /// before the previous call: their memory is reclaimed, their counters
    /// stay in the pool's totals, and a cap set with
    /// [`Core::set_route_max`] is kept for when the route is used again.
    /// Meant to be called periodically (the pool's event loop does, once
    /// per sweep period); a route is removed on the second call after it
    /// emptied at the earliest. Returns how many removed routes' memory it
    /// handed to the collector (freed once no thread pinned before is still
    /// pinned: usually during the call).
    fn sweep_routes(&self) -> usize;

    /// Shuts down: every waiting request gets [`Grant::Closed`], idle items
    /// are disposed, items returned later are disposed, new requests get
    /// `Closed`.
    fn shutdown(&self);

    /// Whether [`Core::shutdown`] was called.
    fn is_closed(&self) -> bool;
}
