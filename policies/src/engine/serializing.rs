//! How an engine serializes the slow path of its routes: the serializing
//! strategy of its flavor.
//!
//! [`OneSerializer`] (`Strict`, `Lax`) runs every route's queued requests,
//! stateful idle lists and cross-route reclaim in one serializer, so freed
//! total capacity goes to the oldest request of any route: a request that
//! cannot be served counts itself in `waiting_all`, and whoever frees
//! capacity re-reads that count and kicks the serializer. [`PerRoute`](super::PerRoute)
//! (`Offlock`, in `segments`) gives every route a serializer of its own;
//! routes meet only at the total cap, through the total queue (`total`).
//!
//! The engine asks the strategy where the two differ: which serializer
//! serves a route, who is kicked when capacity is freed, whether anyone
//! queues ahead of a newcomer, and, in the serializer, how a round of
//! serving ends. A reader of `Strict` reads this file and not `Offlock`'s.

use super::barging::Barging;
use super::queues::{SerialCommand, WaitQueues};
use super::route::Route;
use super::table::TotalWaitFlags;
use super::{Blocked, Engine, Flavor};
use crate::serial::Serial;
use crate::sync::{AtomicUsize, Ordering};
use crate::types::{Item, Permit, RouteKey, State};
use crossbeam_utils::CachePadded;
use std::fmt;

/// A serializer of a flavor's routes.
pub(super) type RouteSerial<T, B, S> = Serial<SerialCommand<T>, WaitQueues<T, B, S>>;

/// A serializing strategy; sealed: [`OneSerializer`] or [`PerRoute`](super::PerRoute).
///
/// Public only as the engine's flavors name it: its items speak of the
/// engine's own types, which stay private to the crate.
#[allow(private_interfaces, private_bounds)]
pub trait Serializing: crate::sealed::Sealed + Sized + Send + Sync + fmt::Debug + 'static {
    /// What the engine keeps for the strategy.
    #[doc(hidden)]
    type Shared<T: Item, B: Barging>: Send + Sync + fmt::Debug;

    /// What each route's table entry keeps for it.
    #[doc(hidden)]
    type Route<T: Item, B: Barging>: Send + Sync;

    /// What each serializer keeps for it between batches.
    #[doc(hidden)]
    type Queues: Send;

    /// Whether routes with idle stateful connections are listed in the
    /// engine's stateful index, where cross-route reclaim finds them (their
    /// own serializers close them); else the one serializer finds them in
    /// its own lists.
    #[doc(hidden)]
    const STATEFUL_INDEX: bool;

    #[doc(hidden)]
    fn new_shared<T: Item, B: Barging>() -> Self::Shared<T, B>;

    /// The state of route `id`'s entry, made as the route is registered.
    #[doc(hidden)]
    fn new_route<T: Item, B: Barging>(id: usize) -> Self::Route<T, B>;

    /// The serializer of route `id`; `None` if the route was removed.
    /// The caller is pinned.
    #[doc(hidden)]
    fn serializer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    ) -> Option<&RouteSerial<T, F::Barge, Self>>;

    /// Capacity of `route` was freed outside its serializer: makes sure a
    /// waiting request gets it.
    #[doc(hidden)]
    fn capacity_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    );

    /// The total cap was raised: makes sure requests it blocked get the
    /// new capacity.
    #[doc(hidden)]
    fn capacity_grew<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(core: &Engine<K, T, F>);

    /// Kicks whoever reclaims idle connections of `route` for requests
    /// blocked by the total cap.
    #[doc(hidden)]
    fn kick_reclaimer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    );

    /// A look in an idle index held entries that someone else may have
    /// wanted meanwhile.
    #[doc(hidden)]
    fn index_entries_back<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    );

    /// Whether no request anywhere queues ahead of a newcomer for new
    /// capacity (its route's own waiters aside).
    #[doc(hidden)]
    fn nobody_queued<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) -> bool;

    /// Whether routes wait for total capacity ahead of every serializer.
    #[doc(hidden)]
    fn total_queue_busy<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) -> bool;

    /// A request is about to queue (`came`), or left the queue.
    #[doc(hidden)]
    fn count_waiter<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        came: bool,
    );

    /// Sends `command(id)` to the serializer of every route `id` in
    /// `routes` (all of them under one serializer, in one command).
    #[doc(hidden)]
    fn submit_removals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        due: Vec<(usize, u64)>,
    );

    /// Sends what `command` makes to every serializer.
    #[doc(hidden)]
    fn broadcast<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        command: impl Fn() -> SerialCommand<T>,
    );

    /// After every serializer was told to shut down.
    #[doc(hidden)]
    fn shut_down<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(core: &Engine<K, T, F>);

    /// The routes a serializer serves: one, or (`None`) all.
    #[doc(hidden)]
    fn scope(queues: &Self::Queues) -> Option<usize>;

    /// A serializer made for route `scope` (`None`: all routes).
    #[doc(hidden)]
    fn new_queues(scope: Option<usize>) -> Self::Queues;

    /// Whether the serializer's route was removed: it then only answers
    /// what threads that found the route before still send.
    #[doc(hidden)]
    fn is_removed(queues: &Self::Queues) -> bool;

    /// The serializer's route (its only one) was removed.
    #[doc(hidden)]
    fn route_removed(queues: &mut Self::Queues);

    /// Whether the serializer must keep route `id` (credit or a place in
    /// the total queue still to settle).
    #[doc(hidden)]
    fn holds(queues: &Self::Queues) -> bool;

    /// Applies a command about the total cap (`Credit`, `Dismissed`,
    /// `Surrender`).
    #[doc(hidden)]
    fn apply_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
        command: SerialCommand<T>,
    );

    /// After `Wait::Never` requests were refused: what follows in the
    /// batch.
    #[doc(hidden)]
    fn after_refusals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    );

    /// A stateful connection of route `id` went idle and listed the route
    /// ([`Self::STATEFUL_INDEX`]): adds its entry to the stateful index.
    #[doc(hidden)]
    fn list_stateful<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    );

    /// Serves queued requests, raising what flags their wait needs.
    #[doc(hidden)]
    fn serve<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    );

    /// After a batch: whatever the strategy settles beyond serving.
    #[doc(hidden)]
    fn settle<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    );

    /// Reserves route and total capacity and a slot for a new connection
    /// for a request the serializer serves.
    #[doc(hidden)]
    fn reserve_new<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        state: Option<&State>,
    ) -> Result<Permit, Blocked>;

    /// The serializer listed a shard of `route` in the idle index and saw
    /// `TOTAL_WAIT`: whoever reclaims for the blocked request is to look.
    #[doc(hidden)]
    fn listed_for_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    );

    /// The serializer closed an idle connection of `victim` (another route)
    /// to make room: that route's own requests may use the freed unit of
    /// its cap.
    #[doc(hidden)]
    fn victim_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        victim: &Route<K>,
    );

    /// Nothing idle to close for a request of route `id` blocked by the
    /// total cap: asks a route holding idle stateful connections to close
    /// one; whether it asked one.
    #[doc(hidden)]
    fn surrender_elsewhere<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    ) -> bool;
}

/// One serializer for every route (`Strict`, `Lax`).
#[derive(Clone, Copy, Debug, Default)]
pub struct OneSerializer;

impl crate::sealed::Sealed for OneSerializer {}

/// What the engine keeps for [`OneSerializer`].
pub struct OneShared<T: Item, B: Barging> {
    /// The serializer of every route.
    serial: RouteSerial<T, B, OneSerializer>,
    /// Requests queued on any route.
    waiting_all: CachePadded<AtomicUsize>,
}

impl<T: Item, B: Barging> fmt::Debug for OneShared<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneShared")
            .field("serial", &self.serial)
            .field("waiting", &self.waiting_all.load(Ordering::Relaxed))
            .finish()
    }
}

// The items name the engine's crate-private types, as the trait does.
#[allow(private_interfaces, private_bounds)]
impl Serializing for OneSerializer {
    type Shared<T: Item, B: Barging> = OneShared<T, B>;
    type Route<T: Item, B: Barging> = ();
    type Queues = TotalWaitFlags;

    const STATEFUL_INDEX: bool = false;

    fn new_shared<T: Item, B: Barging>() -> OneShared<T, B> {
        OneShared {
            serial: Serial::new(WaitQueues::new(None)),
            waiting_all: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    fn new_route<T: Item, B: Barging>(_: usize) {}

    fn serializer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        _: usize,
    ) -> Option<&RouteSerial<T, F::Barge, Self>> {
        Some(&core.serializers.serial)
    }

    /// A read-modify-write, so it cannot miss a request counted before it.
    fn capacity_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    ) {
        if core.serializers.waiting_all.fetch_add(0, Ordering::AcqRel) != 0 {
            core.kick(route);
        }
    }

    /// The one serializer serves requests of every route.
    fn capacity_grew<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(core: &Engine<K, T, F>) {
        core.submit(0, SerialCommand::Kick);
    }

    /// The serializer reclaims for every route.
    fn kick_reclaimer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    ) {
        core.kick(route);
    }

    /// Only the one serializer looks in the indexes.
    fn index_entries_back<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
    ) {
    }

    fn nobody_queued<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) -> bool {
        core.serializers.waiting_all.load(Ordering::Acquire) == 0
    }

    fn total_queue_busy<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
    ) -> bool {
        false
    }

    fn count_waiter<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        came: bool,
    ) {
        let waiting = &core.serializers.waiting_all;
        if came {
            waiting.fetch_add(1, Ordering::AcqRel);
        } else {
            waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn submit_removals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        due: Vec<(usize, u64)>,
    ) {
        if !due.is_empty() {
            core.submit(0, SerialCommand::Remove(due));
        }
    }

    fn broadcast<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        command: impl Fn() -> SerialCommand<T>,
    ) {
        core.submit(0, command());
    }

    fn shut_down<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(_: &Engine<K, T, F>) {}

    fn scope(_: &TotalWaitFlags) -> Option<usize> {
        None
    }

    fn new_queues(_: Option<usize>) -> TotalWaitFlags {
        TotalWaitFlags::default()
    }

    fn is_removed(_: &TotalWaitFlags) -> bool {
        false
    }

    fn route_removed(_: &mut TotalWaitFlags) {}

    fn holds(_: &TotalWaitFlags) -> bool {
        false
    }

    fn apply_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &mut WaitQueues<T, F::Barge, Self>,
        _: &Engine<K, T, F>,
        _: SerialCommand<T>,
    ) {
        debug_assert!(false, "no total queue");
    }

    /// Serves rounds until no flag a waiter needs is left to raise: a
    /// connection that went idle before a flag is found by the next round,
    /// one returned after it comes through the serializer.
    fn serve<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    ) {
        queues.before_rounds(core);
        loop {
            let total_blocked = queues.serve_round(core);
            let mut raised = total_blocked && core.raise_total_wait(&mut queues.serializing);
            raised |= queues.raise_barging_flags(core);
            if raised {
                continue;
            }
            if !total_blocked {
                core.lower_total_wait(&mut queues.serializing);
            }
            queues.lower_barging_flags(core);
            return;
        }
    }

    fn settle<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &mut WaitQueues<T, F::Barge, Self>,
        _: &Engine<K, T, F>,
    ) {
    }

    fn after_refusals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    ) {
        queues.lower_barging_flags(core);
    }

    fn list_stateful<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
        _: usize,
    ) {
        debug_assert!(false, "no stateful index");
    }

    fn reserve_new<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        state: Option<&State>,
    ) -> Result<Permit, Blocked> {
        core.reserve_new(route, state)
    }

    fn listed_for_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    ) {
        core.kick(route);
    }

    /// The one serializer serves the victim's requests too.
    fn victim_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
        _: &Route<K>,
    ) {
    }

    /// Its own lists hold every route's stateful connections.
    fn surrender_elsewhere<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
        _: usize,
    ) -> bool {
        false
    }
}
