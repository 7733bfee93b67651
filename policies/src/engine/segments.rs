//! `Offlock`'s serializing strategy: every route has a serializer of its
//! own (its *segment*), which lives and goes with the route, and routes
//! meet only at the total cap.
//!
//! A route's serializer serves its own queue, stateful idle lists and
//! eviction. A request blocked by the total cap makes its route join the
//! total queue (`total`), which hands out freed units of the total as
//! *credit*, round-robin among blocked routes, and makes room by closing
//! idle connections of routes not in it: stateless ones itself, stateful
//! ones through their route's serializer (`Surrender`), found in the
//! engine's stateful index. While routes wait there, nobody else takes a
//! unit of the total (`total_blocked`), so a blocked route is never
//! overtaken by one that blocked later. Freed route capacity kicks the
//! route's own serializer; freed total capacity kicks the total queue.

use super::barging::Barging;
use super::idle_index::IdleIndex;
use super::queues::{take_stateful, SerialCommand, WaitQueues};
use super::route::{Route, Take};
use super::serializing::{RouteSerial, Serializing};
use super::total::{TotalCommand, TotalQueue};
use super::{Blocked, Engine, Flavor};
use crate::serial::Serial;
use crate::sync::{AtomicUsize, Ordering};
use crate::types::{Item, Permit, RouteKey, State};
use crossbeam_utils::CachePadded;
use std::fmt;

/// A serializer per route (`Offlock`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PerRoute;

impl crate::sealed::Sealed for PerRoute {}

/// What the engine keeps for [`PerRoute`].
pub struct SegmentsShared<T: Item> {
    /// Routes whose requests wait for total capacity, in the order they
    /// came (see `total`).
    total_queue: Serial<TotalCommand, TotalQueue<T>>,
    /// How many routes are in the total queue.
    pub(super) total_blocked: CachePadded<AtomicUsize>,
    /// Routes with idle stateful connections, for cross-route reclaim
    /// (their serializers close them).
    stateful_index: IdleIndex,
}

impl<T: Item> fmt::Debug for SegmentsShared<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentsShared")
            .field("total_queue", &self.total_queue)
            .field("blocked", &self.total_blocked.load(Ordering::Relaxed))
            .finish()
    }
}

/// A route's own serializer.
pub struct SegmentSerial<T: Item, B: Barging>(RouteSerial<T, B, PerRoute>);

impl<T: Item, B: Barging> fmt::Debug for SegmentSerial<T, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SegmentSerial").field(&self.0).finish()
    }
}

/// What a route's serializer keeps for [`PerRoute`].
#[derive(Debug)]
pub struct SegmentQueues {
    /// The one route this serializer serves.
    scope: usize,
    /// Units of the total the total queue reserved for this route.
    credit: usize,
    /// The route is in the total queue.
    registered: bool,
    /// A `Surrender` was handled and is to be answered.
    surrendered: bool,
    /// The route was removed; this serializer goes with it, and ignores
    /// what threads that found the route before still send.
    removed: bool,
}

impl<K: RouteKey, T: Item, F: Flavor<Serializers = PerRoute>> Engine<K, T, F> {
    /// After a unit of `route`'s own cap was freed, kicks its serializer if
    /// requests wait there (a read-modify-write of the word that counts
    /// them, so none counted before is missed).
    pub(super) fn route_freed(&self, route: &Route<K>) {
        if route.touch().waiters() != 0 {
            self.kick(route);
        }
    }

    /// After a unit of the total was freed (or a route was registered),
    /// kicks the total queue if a route waits in it (a read-modify-write,
    /// as above).
    pub(super) fn wake_total_queue(&self) {
        if self
            .serializers
            .total_blocked
            .fetch_add(0, Ordering::AcqRel)
            != 0
        {
            self.submit_total(TotalCommand::Kick);
        }
    }

    /// Runs `command` in the total queue, pinned: the queue reaches routes
    /// through the indexes, by id.
    pub(super) fn submit_total(&self, command: TotalCommand) {
        let _pin = self.pin();
        self.serializers.total_queue.submit(
            command,
            |total, command| total.apply(command),
            |total| total.settle(self),
            |victims| self.dispose(victims),
        );
    }

    /// A route not in `spare` holding idle stateful connections (which only
    /// its serializer may touch), found in the stateful index.
    pub(super) fn stateful_holder(&self, spare: &[usize]) -> Option<&Route<K>> {
        self.find_in_index(&self.serializers.stateful_index, None, spare, |route, _| {
            route.stateful_or_unlist().then_some(route)
        })
    }
}

impl<T: Item, B: Barging> WaitQueues<T, B, PerRoute> {
    /// Closes one idle connection of this route, if it has one, to make
    /// room for another route.
    fn surrender<K: RouteKey, F: Flavor<Barge = B, Serializers = PerRoute>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        let id = self.serializing.scope;
        let route = core.route(id);
        let index = core
            .take_idle(route, Take::Serial)
            .or_else(|| take_stateful(core, id, self.queues.get_mut(&id)?, |_| true));
        if let Some(index) = index {
            self.close(core, route, index);
        }
    }
}

// The items name the engine's crate-private types, as the trait does.
#[allow(private_interfaces, private_bounds)]
impl Serializing for PerRoute {
    type Shared<T: Item, B: Barging> = SegmentsShared<T>;
    type Route<T: Item, B: Barging> = SegmentSerial<T, B>;
    type Queues = SegmentQueues;

    const STATEFUL_INDEX: bool = true;

    fn new_shared<T: Item, B: Barging>() -> SegmentsShared<T> {
        SegmentsShared {
            total_queue: Serial::new(TotalQueue::new()),
            total_blocked: CachePadded::new(AtomicUsize::new(0)),
            stateful_index: IdleIndex::new(),
        }
    }

    fn new_route<T: Item, B: Barging>(id: usize) -> SegmentSerial<T, B> {
        SegmentSerial(Serial::new(WaitQueues::new(Some(id))))
    }

    /// Removed since the caller found it, which only a kick can race with
    /// (whoever holds a connection, permit or request of a route keeps
    /// it): nothing is left to serve there.
    fn serializer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    ) -> Option<&RouteSerial<T, F::Barge, Self>> {
        core.table.by_id(id).map(|entry| &entry.serializing.0)
    }

    fn capacity_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        route: &Route<K>,
    ) {
        core.route_freed(route);
        core.wake_total_queue();
    }

    /// Routes blocked by the total cap wait in the total queue.
    fn capacity_grew<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(core: &Engine<K, T, F>) {
        core.wake_total_queue();
    }

    /// The total queue reclaims for blocked routes.
    fn kick_reclaimer<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        _: &Route<K>,
    ) {
        core.wake_total_queue();
    }

    /// The total queue may have looked while they were held; it spares the
    /// routes in its queue itself, so their entries need no wake-up (and
    /// the queue, calling this, does not wake itself for nothing: the
    /// caller checks that entries of other routes were held).
    fn index_entries_back<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) {
        core.wake_total_queue();
    }

    /// Routes in the total queue get freed total capacity first.
    fn nobody_queued<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) -> bool {
        core.serializers.total_blocked.load(Ordering::Acquire) == 0
    }

    fn total_queue_busy<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
    ) -> bool {
        core.serializers.total_blocked.load(Ordering::Acquire) != 0
    }

    /// Routes share nothing but the total: only the route counts them.
    fn count_waiter<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
        _: bool,
    ) {
    }

    fn submit_removals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        due: Vec<(usize, u64)>,
    ) {
        for (id, uid) in due {
            core.submit(id, SerialCommand::Remove(vec![(id, uid)]));
        }
    }

    fn broadcast<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        command: impl Fn() -> SerialCommand<T>,
    ) {
        for entry in core.table.iter() {
            core.submit(entry.route.id, command());
        }
    }

    /// Every route registered before the table closed; later requests get
    /// `Closed` from the closed table.
    fn shut_down<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(core: &Engine<K, T, F>) {
        core.submit_total(TotalCommand::Shutdown);
    }

    fn scope(queues: &SegmentQueues) -> Option<usize> {
        Some(queues.scope)
    }

    fn new_queues(scope: Option<usize>) -> SegmentQueues {
        SegmentQueues {
            scope: scope.expect("a segment's route"),
            credit: 0,
            registered: false,
            surrendered: false,
            removed: false,
        }
    }

    fn is_removed(queues: &SegmentQueues) -> bool {
        queues.removed
    }

    fn route_removed(queues: &mut SegmentQueues) {
        queues.removed = true;
    }

    fn holds(queues: &SegmentQueues) -> bool {
        queues.registered || queues.credit > 0
    }

    /// After its route was removed, a unit of the total reserved for it
    /// goes back (a removed route was in no queue, so none should come),
    /// and the total queue, if it asked for a close, is answered: nothing
    /// here is left to close.
    fn apply_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
        command: SerialCommand<T>,
    ) {
        let removed = queues.serializing.removed;
        let segment = &mut queues.serializing;
        match command {
            SerialCommand::Credit => {
                segment.credit += 1;
                segment.registered &= removed;
            }
            SerialCommand::Dismissed => segment.registered &= removed,
            SerialCommand::Surrender { answer } => {
                segment.surrendered |= answer;
                if !removed {
                    queues.surrender(core);
                }
            }
            _ => {}
        }
    }

    /// Blocked by the total: joins the total queue (once), which looks for
    /// room on other routes and reserves freed units for it — not for a
    /// request that will not wait (refused, then served again).
    fn serve<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    ) {
        queues.before_rounds(core);
        let total_blocked = queues.serve_round(core);
        queues.lower_barging_flags(core);
        let segment = &mut queues.serializing;
        if total_blocked && queues.never_waiters == 0 && !segment.registered {
            segment.registered = true;
            core.serializers
                .total_blocked
                .fetch_add(1, Ordering::AcqRel);
            core.submit_total(TotalCommand::Block(segment.scope));
        }
    }

    /// Gives back credit nothing here could use, answers the total queue,
    /// and tells it when this route has idle connections it could close
    /// for a route blocked by the total cap.
    fn settle<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    ) {
        let segment = &mut queues.serializing;
        if segment.credit > 0 {
            core.total.give_back(std::mem::take(&mut segment.credit));
            queues.freed = true;
        }
        if std::mem::take(&mut segment.surrendered) {
            core.submit_total(TotalCommand::Surrendered);
        }
        if !segment.removed && !queues.closed {
            let route = core.route(segment.scope);
            let idle = route.idle() + route.stateful_idle();
            if route.word().total_wait() && idle > 0 {
                core.submit_total(TotalCommand::Kick);
            }
        }
        if queues.freed {
            core.wake_total_queue();
        }
    }

    /// Requests that wait may have queued behind them: another round,
    /// which lowers the flags no request needs any more.
    fn after_refusals<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
    ) {
        Self::serve(queues, core);
    }

    fn list_stateful<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    ) {
        core.serializers.stateful_index.push(id, 0);
    }

    /// Spends a unit of credit first, and takes none of the total while
    /// routes wait in the total queue.
    fn reserve_new<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        queues: &mut WaitQueues<T, F::Barge, Self>,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        state: Option<&State>,
    ) -> Result<Permit, Blocked> {
        let segment = &mut queues.serializing;
        core.reserve_new_with(route, state, || {
            if segment.credit > 0 {
                segment.credit -= 1;
                true
            } else {
                !Self::total_queue_busy(core) && core.reserve_total()
            }
        })
    }

    /// The total queue is kicked after this route's own requests were
    /// served ([`Self::settle`] sees `TOTAL_WAIT` in shard 0's word, which
    /// `list_idle` read after listing).
    fn listed_for_total<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        _: &Engine<K, T, F>,
        _: &Route<K>,
    ) {
    }

    /// The victim's own requests are served by its own serializer.
    fn victim_freed<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        victim: &Route<K>,
    ) {
        core.route_freed(victim);
    }

    /// If that serializer was idle it ran here and then, and the freed unit
    /// is in the total; else the route blocks and the total queue waits
    /// for the close.
    fn surrender_elsewhere<K: RouteKey, T: Item, F: Flavor<Serializers = Self>>(
        core: &Engine<K, T, F>,
        id: usize,
    ) -> bool {
        match core.stateful_holder(&[id]) {
            Some(holder) => {
                core.submit(holder.id, SerialCommand::Surrender { answer: false });
                true
            }
            None => false,
        }
    }
}
