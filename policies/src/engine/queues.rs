//! The slow path of the engine, run by one thread at a time inside the
//! serializer: per-route FIFO queues of waiting requests, idle lists of
//! stateful connections, cross-route reclaim, eviction and shutdown.
//!
//! Each batch of commands is followed by `settle`, which serves waiting
//! requests oldest first: among the heads of all queues it picks the one with
//! the smallest ticket that can be served, so freed total capacity goes to
//! the oldest request of any route, while a request whose own route is full
//! does not hold up the others. Once the oldest request is blocked by the
//! total cap, younger ones may still take idle connections of their own
//! route but no new capacity.
//!
//! While a request is blocked by the total cap, every route carries the
//! `TOTAL_WAIT` flag (see `route`), raised *before* the serializer looks a
//! last time for an idle connection to close for it; from then on returns
//! come through here, so the connection that makes room is never missed.

use super::barging::Barging;
use super::route::{Put, Refused, Route, Take};
use super::serializing::Serializing;
use super::{Blocked, Engine, Flavor};
use crate::arena::SlotToken;
use crate::sync::{Arc, Ordering};
use crate::types::{Grant, Item, Permit, Reuse, RouteKey, State, Wait};
use crate::waiter::Node;
use std::collections::{HashMap, VecDeque};

pub(super) enum SerialCommand<T> {
    /// A request that could not be served on the hot path, on route `id`.
    Enqueue(usize, Arc<Node>),
    /// The slot of a returned connection that is stateful or has requests
    /// to go to (the serializer now owns it).
    Release(SlotToken),
    /// Capacity was freed or a connection went idle while requests wait.
    Kick,
    /// Dispose of idle connections the predicate picks.
    Evict(std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>),
    /// A route's cap changed: close idle connections over it.
    Trim,
    /// `max_idle` changed: count the idle connections not counted yet, and
    /// close those over it.
    CountIdle,
    Shutdown,
    /// `Segmented`: a unit of the total cap, reserved for this route by the
    /// total queue.
    Credit,
    /// `Segmented`: the total queue let this route go, none of its requests
    /// waiting any more; it joins again if one is still blocked.
    Dismissed,
    /// `Segmented`: close an idle connection to make room for a route
    /// blocked by the total cap, then (if `answer`) tell the total queue.
    Surrender {
        answer: bool,
    },
    /// Remove these routes (id and uid) if they are still unused (see
    /// `Engine::remove_route`).
    Remove(Vec<(usize, u64)>),
}

/// One route's queue: waiting requests and stateful idle connections.
#[derive(Default)]
pub(super) struct RouteQueue {
    waiters: VecDeque<Arc<Node>>,
    stateful: HashMap<State, VecDeque<SlotToken>>,
}

/// Drops cancelled requests from the front of a queue; the oldest live
/// request.
pub(super) fn live_node(queue: &mut RouteQueue) -> Option<&Arc<Node>> {
    while queue.waiters.front()?.is_cancelled() {
        queue.waiters.pop_front();
    }
    queue.waiters.front()
}

/// A serializer's state, for a flavor whose barging strategy is `B` and
/// serializing strategy `S`.
pub(super) struct WaitQueues<T, B: Barging, S: Serializing> {
    pub(super) closed: bool,
    /// By route id.
    pub(super) queues: HashMap<usize, RouteQueue>,
    /// `Wait::Never` requests queued since the last settle.
    pub(super) never_waiters: usize,
    /// What the barging strategy keeps (see `barging`).
    barge: B::Serial,
    /// What the serializing strategy keeps (see `serializing`).
    pub(super) serializing: S::Queues,
    /// Items to dispose of once the serializer is released.
    victims: Vec<T>,
    /// Capacity was freed in this batch.
    pub(super) freed: bool,
}

/// The routes a serializer with `scope` serves: one, or (`None`) all.
fn scoped<'a, K: RouteKey, T: Item, F: Flavor>(
    scope: Option<usize>,
    core: &'a Engine<K, T, F>,
) -> impl Iterator<Item = &'a Route<K>> + 'a {
    let (one, all) = match scope {
        Some(id) => (Some(core.route(id)), None),
        None => (None, Some(core.table.iter().map(|entry| &entry.route))),
    };
    one.into_iter().chain(all.into_iter().flatten())
}

/// Takes an idle stateful connection of route `id` off `queue`.
pub(super) fn take_stateful<K: RouteKey, T: Item, F: Flavor>(
    core: &Engine<K, T, F>,
    id: usize,
    queue: &mut RouteQueue,
    pick: impl Fn(&State) -> bool,
) -> Option<SlotToken> {
    let state = queue.stateful.keys().find(|s| pick(s))?.clone();
    let list = queue.stateful.get_mut(&state)?;
    let slot = match core.limits.reuse() {
        Reuse::Lifo => list.pop_back(),
        Reuse::Fifo => list.pop_front(),
    }?;
    if list.is_empty() {
        queue.stateful.remove(&state);
    }
    core.route(id).stateful_left();
    let mut slot = slot;
    core.idle_left(&mut slot);
    Some(slot)
}

impl<T: Item, B: Barging, S: Serializing> WaitQueues<T, B, S> {
    /// A serializer for route `scope`, or (`None`) for every route.
    pub(super) fn new(scope: Option<usize>) -> Self {
        Self {
            closed: false,
            queues: HashMap::new(),
            never_waiters: 0,
            barge: B::Serial::default(),
            serializing: S::new_queues(scope),
            victims: Vec::new(),
            freed: false,
        }
    }

    pub(super) fn apply<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        command: SerialCommand<T>,
    ) {
        if S::is_removed(&self.serializing) {
            // Nothing of the route is left to serve; what concerns the
            // total is answered.
            if let SerialCommand::Credit
            | SerialCommand::Dismissed
            | SerialCommand::Surrender { .. } = command
            {
                S::apply_total(self, core, command);
            }
            return;
        }
        match command {
            SerialCommand::Enqueue(id, node) => {
                if node.mode == Wait::Never {
                    self.never_waiters += 1;
                }
                B::enqueued(&mut self.barge, id, &node);
                self.queues.entry(id).or_default().waiters.push_back(node);
            }
            SerialCommand::Release(index) => self.put_back(core, index),
            SerialCommand::Kick => {}
            SerialCommand::Evict(evict) => self.evict(core, &*evict, false),
            SerialCommand::Trim => self.evict(core, &|_: &T| true, true),
            SerialCommand::CountIdle => self.count_idle(core),
            SerialCommand::Shutdown => self.closed = true,
            SerialCommand::Credit | SerialCommand::Dismissed | SerialCommand::Surrender { .. } => {
                S::apply_total(self, core, command)
            }
            SerialCommand::Remove(routes) => {
                for (id, uid) in routes {
                    self.remove(core, id, uid);
                }
            }
        }
    }

    /// Removes route `id` if nothing of it is left here and it is unused.
    fn remove<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        uid: u64,
    ) {
        if self.closed {
            return;
        }
        if let Some(queue) = self.queues.get_mut(&id) {
            if Self::live_head(queue).is_some() || !queue.stateful.is_empty() {
                // In use: queued again once it is unused again.
                return;
            }
        }
        if B::holds(&self.barge, id) || S::holds(&self.serializing) {
            // Flags or credit this serializer has yet to settle.
            core.sweep_again(id);
            return;
        }
        if core.remove_route(id, uid) {
            self.queues.remove(&id);
            S::route_removed(&mut self.serializing);
        }
    }

    /// Serves what can be served; returns the items to dispose of.
    pub(super) fn settle<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> Vec<T> {
        if S::is_removed(&self.serializing) {
            // No route left: only what concerns the total (below).
        } else if self.closed {
            self.close_all(core);
        } else {
            S::serve(self, core);
            if self.never_waiters > 0 {
                self.refuse_never_waiters(core);
                S::after_refusals(self, core);
            }
            self.tidy(core);
        }
        S::settle(self, core);
        self.freed = false;
        std::mem::take(&mut self.victims)
    }

    /// Closes a connection whose slot we own: capacity freed, item to dispose.
    pub(super) fn close<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        slot: SlotToken,
    ) {
        self.victims.push(core.close_slot(route, slot));
        self.freed = true;
    }

    /// A returned connection (or one a cancelled request was given), whose
    /// slot we own: to idle, where `serve` finds it for the oldest waiter.
    fn put_back<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        slot: SlotToken,
    ) {
        let id = core.route_of(&slot);
        let route = core.route(id);
        if self.closed || core.over_cap(route) {
            return self.close(core, route, slot);
        }
        let mut slot = slot;
        if !core.admit_idle(&mut slot) {
            return self.close(core, route, slot);
        }
        match core.state_of(&slot) {
            Some(state) => {
                if route.stateful_went_idle(S::STATEFUL_INDEX) {
                    S::list_stateful(core, id);
                }
                let queue = self.queues.entry(id).or_default();
                queue.stateful.entry(state).or_default().push_back(slot);
            }
            None => {
                B::returned_to_serial(&mut self.barge, core, &mut self.queues, id);
                let word = route.shard_word(0);
                let link = core.arena.link(slot.index());
                match route.put(link, 0, slot, Put::Serial, word, |_| {}) {
                    Ok(before) if !before.listed() => {
                        if core.list_idle(route, 0) {
                            S::listed_for_total(core, route);
                        }
                    }
                    Ok(_) => {}
                    Err((refused, mut slot)) => {
                        debug_assert_eq!(refused, Refused::Closed);
                        core.idle_left(&mut slot);
                        self.close(core, route, slot);
                    }
                }
            }
        }
    }

    /// An idle connection of route `id` in `state`.
    fn take_match<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Option<SlotToken> {
        match state {
            None => core.take_idle(core.route(id), Take::Serial),
            Some(state) => {
                let queue = self.queues.get_mut(&id)?;
                take_stateful(core, id, queue, |s| s == state)
            }
        }
    }

    /// Closes an idle connection of route `id` in a state other than
    /// `state`, keeping its slot (and its unit of the caps) for a new one.
    fn reclaim_same_route<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Option<SlotToken> {
        let route = core.route(id);
        let stateless = match state {
            Some(_) => core.take_idle(route, Take::Serial),
            None => None,
        };
        let mut slot = match stateless {
            Some(slot) => slot,
            None => {
                let queue = self.queues.get_mut(&id)?;
                take_stateful(core, id, queue, |s| Some(s) != state)?
            }
        };
        // It stays route `id`'s.
        self.victims.push(core.retire(route, &mut slot));
        Some(slot)
    }

    /// Closes an idle connection of another route and moves its slot (and
    /// its unit of the total cap) to route `id`, whose own unit the caller
    /// has reserved.
    fn reclaim_other_route<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
    ) -> Option<SlotToken> {
        // Not the connections an older request was just woken to take.
        let mut found = core
            .take_idle_elsewhere(Some(id), B::woken(&self.barge))
            .map(|(route, slot)| (route.id, slot));
        if found.is_none() {
            for (&victim, queue) in self.queues.iter_mut().filter(|(&other, _)| other != id) {
                if let Some(slot) = take_stateful(core, victim, queue, |_| true) {
                    found = Some((victim, slot));
                    break;
                }
            }
        }
        let (victim, mut slot) = found?;
        let victim = core.route(victim);
        self.victims.push(core.retire(victim, &mut slot));
        // The slot now belongs to route `id`.
        core.arena.with(&mut slot, |slot| slot.route = id);
        core.allocated_down(victim);
        S::victim_freed(core, victim);
        Some(slot)
    }

    /// Capacity for a request of route `id` blocked by the total cap, made by
    /// closing an idle connection: of its own route in another state, else
    /// of another route (whose slot and unit of the total it takes over).
    fn make_room<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Result<Permit, Blocked> {
        let route = core.route(id);
        let slot = if let Some(slot) = self.reclaim_same_route(core, id, state) {
            slot
        } else if S::total_queue_busy(core) {
            // Routes ahead in the total queue come first.
            return Err(Blocked::Total);
        } else if !route.reserve_own() {
            return Err(Blocked::Route);
        } else if let Some(slot) = self.reclaim_other_route(core, id) {
            slot
        } else if S::surrender_elsewhere(core, id) && core.reserve_total() {
            return Ok(core.permit_for(route, state));
        } else {
            core.allocated_down(route);
            return Err(Blocked::Total);
        };
        route.connecting.fetch_add(1, Ordering::AcqRel);
        // The emptied slot goes on to the permit.
        Ok(core.permit(slot, state))
    }

    /// Tries to serve the head of queue `id`.
    fn serve_head<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        allow_new: bool,
    ) -> Result<(), Blocked> {
        let node = self.queues[&id].waiters.front().expect("a head").clone();
        let route = core.route(id);
        let state = node.state_token.as_ref();
        if B::wakes_to_compete(&mut self.barge, core, id, &node) {
            return Err(Blocked::Route);
        }
        let grant = if let Some(slot) = self.take_match(core, id, state) {
            Grant::Conn(core.lend(slot))
        } else if !allow_new {
            return Err(Blocked::Total);
        } else {
            match S::reserve_new(self, core, route, state) {
                Ok(permit) => Grant::Connect(permit),
                Err(Blocked::Route) => {
                    let slot = self
                        .reclaim_same_route(core, id, state)
                        .ok_or(Blocked::Route)?;
                    route.connecting.fetch_add(1, Ordering::AcqRel);
                    // The emptied slot goes on to the permit.
                    Grant::Connect(core.permit(slot, state))
                }
                Err(Blocked::Total) => Grant::Connect(self.make_room(core, id, state)?),
            }
        };
        // Once the route is closed its requests are answered by the coming
        // `Shutdown` command (`shutdown` closes routes before submitting it):
        // capacity freed by a connection closed because the route closed must
        // not become a `Connect` for a request served after the shutdown. Our
        // reservation read that close's counter update, so this load sees the
        // closed flag.
        if route.word().is_closed() {
            self.undo(core, route, grant);
            return Err(Blocked::Route);
        }
        let queue = self.queues.get_mut(&id).expect("a queue");
        queue.waiters.pop_front();
        B::head_served(route, live_node(queue).map(|next| &**next));
        match node.fulfil(grant) {
            Ok(()) => {
                if node.mode == Wait::Never {
                    self.never_waiters -= 1;
                }
                core.waiter_left(route);
            }
            // Cancelled meanwhile (it accounted for itself): take it back.
            Err(grant) => self.undo(core, route, grant),
        }
        Ok(())
    }

    /// Gives back a grant its request no longer wants.
    fn undo<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        grant: Grant,
    ) {
        match grant {
            Grant::Conn(held) => self.put_back(core, core.take_held(held)),
            Grant::Connect(permit) => {
                route.connecting.fetch_sub(1, Ordering::AcqRel);
                core.free_slot(route, core.take_permit(permit));
                self.freed = true;
            }
            Grant::Busy | Grant::Closed => {}
        }
    }

    /// The oldest live request's ticket (see [`live_node`]).
    fn live_head(queue: &mut RouteQueue) -> Option<u64> {
        live_node(queue).map(|node| node.ticket)
    }

    /// Serves heads oldest first until none can be served. Returns whether a
    /// request is left blocked by the total cap.
    pub(super) fn serve_round<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> bool {
        B::round_begins(&mut self.barge);
        let mut blocked: Vec<usize> = Vec::new();
        let mut allow_new = true;
        loop {
            let mut oldest: Option<(u64, usize)> = None;
            for (id, queue) in &mut self.queues {
                if blocked.contains(id) {
                    continue;
                }
                if let Some(ticket) = Self::live_head(queue) {
                    if oldest.is_none_or(|(t, _)| ticket < t) {
                        oldest = Some((ticket, *id));
                    }
                }
            }
            let Some((_, id)) = oldest else {
                return !allow_new;
            };
            match self.serve_head(core, id, allow_new) {
                Ok(()) => {}
                Err(Blocked::Route) => blocked.push(id),
                Err(Blocked::Total) => {
                    blocked.push(id);
                    allow_new = false;
                }
            }
        }
    }

    /// The barging strategy's look before a batch of serving rounds.
    pub(super) fn before_rounds<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        B::before_rounds(&mut self.barge, core);
    }

    /// Raises the barging strategy's flags for requests left unserved;
    /// whether it raised any.
    pub(super) fn raise_barging_flags<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> bool {
        B::raise_flags(&mut self.barge, core, &mut self.queues)
    }

    /// Lowers the barging strategy's flags no request needs any more.
    pub(super) fn lower_barging_flags<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        B::lower_flags(&mut self.barge, core, &mut self.queues);
    }

    /// Answers `Busy` to every `Wait::Never` request still queued.
    fn refuse_never_waiters<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        for (&id, queue) in &mut self.queues {
            let route = core.route(id);
            queue.waiters.retain(|node| {
                if node.mode != Wait::Never {
                    return true;
                }
                if node.fulfil(Grant::Busy).is_ok() {
                    core.waiter_left(route);
                }
                false
            });
        }
        self.never_waiters = 0;
    }

    /// Drops queues with nothing in them, and cancelled requests piling up
    /// behind a blocked head.
    fn tidy<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(&mut self, core: &Engine<K, T, F>) {
        self.queues.retain(|&id, queue| {
            let live = core.route(id).word().waiters();
            if queue.waiters.len() > 2 * live + 8 {
                queue.waiters.retain(|node| !node.is_cancelled());
            }
            !queue.waiters.is_empty() || !queue.stateful.is_empty()
        });
    }

    /// Disposes of idle connections `evict` picks (with `over_cap_only`, only
    /// while their route is over its cap), keeping the others in order.
    fn evict<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
        evict: &dyn Fn(&T) -> bool,
        over_cap_only: bool,
    ) {
        let mut kept = Vec::new();
        for route in scoped(S::scope(&self.serializing), core) {
            if over_cap_only {
                // A read-modify-write of every shard after the cap changed:
                // a return whose push comes after it reads the new cap
                // after its push, and trims again; one before it is taken
                // below.
                route.touch_shards();
            }
            while let Some(slot) = core.take_idle(route, Take::Serial) {
                kept.push(slot);
            }
            // Taken newest first for LIFO: put back oldest first.
            if core.limits.reuse() == Reuse::Lifo {
                kept.reverse();
            }
            for slot in kept.drain(..) {
                let pick = core.arena.get(&slot).item.as_ref().is_some_and(evict);
                if (!over_cap_only || core.over_cap(route)) && pick {
                    self.close(core, route, slot);
                } else {
                    self.put_back(core, slot);
                }
            }
        }
        for (&id, queue) in &mut self.queues {
            let route = core.route(id);
            for list in queue.stateful.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    let pick = (!over_cap_only || core.over_cap(route))
                        && core.arena.get(&list[i]).item.as_ref().is_some_and(evict);
                    if !pick {
                        i += 1;
                        continue;
                    }
                    let mut slot = list.remove(i).expect("an index in range");
                    route.stateful_left();
                    core.idle_left(&mut slot);
                    self.victims.push(core.close_slot(route, slot));
                    self.freed = true;
                }
            }
            queue.stateful.retain(|_, list| !list.is_empty());
        }
    }

    /// Counts the idle connections of this serializer's routes not counted
    /// against `max_idle` yet, closing those over it: the stateless ones
    /// taken out and put back (which counts them, or closes them), the
    /// stateful ones where they lie.
    fn count_idle<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        self.evict(core, &|_: &T| false, false);
        for (&id, queue) in &mut self.queues {
            let route = core.route(id);
            for list in queue.stateful.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    if core.arena.get(&list[i]).idle_counted {
                        i += 1;
                        continue;
                    }
                    let mut slot = list.remove(i).expect("an index in range");
                    // Counted as it went idle again, or over the cap.
                    if core.admit_idle(&mut slot) {
                        list.insert(i, slot);
                        i += 1;
                    } else {
                        route.stateful_left();
                        self.victims.push(core.close_slot(route, slot));
                        self.freed = true;
                    }
                }
            }
            queue.stateful.retain(|_, list| !list.is_empty());
        }
    }

    /// Shutdown: every request gets `Closed`, every idle connection goes.
    fn close_all<K: RouteKey, F: Flavor<Barge = B, Serializers = S>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) {
        for (&id, queue) in &mut self.queues {
            let route = core.route(id);
            for node in queue.waiters.drain(..) {
                if node.fulfil(Grant::Closed).is_ok() {
                    core.waiter_left(route);
                }
            }
        }
        self.never_waiters = 0;
        self.evict(core, &|_: &T| true, false);
        for route in scoped(S::scope(&self.serializing), core) {
            while let Some(index) = core.take_idle(route, Take::Drain) {
                self.close(core, route, index);
            }
        }
        self.queues.clear();
    }
}
