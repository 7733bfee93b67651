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
use super::table::TotalWaitFlags;
use super::total::TotalCommand;
use super::{Blocked, Engine, Flavor};
use crate::sync::{Arc, Ordering};
use crate::types::{Grant, Item, Permit, Reuse, RouteKey, State, Wait};
use crate::waiter::Node;
use std::collections::{HashMap, VecDeque};

pub(super) enum SerialCommand<T> {
    /// A request that could not be served on the hot path, on route `id`.
    Enqueue(usize, Arc<Node>),
    /// The slot of a returned connection that is stateful or has requests
    /// to go to (the serializer now owns it).
    Release(u32),
    /// Capacity was freed or a connection went idle while requests wait.
    Kick,
    /// Dispose of idle connections the predicate picks.
    Evict(std::sync::Arc<dyn Fn(&T) -> bool + Send + Sync>),
    /// A route's cap changed: close idle connections over it.
    Trim,
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
    stateful: HashMap<State, VecDeque<u32>>,
}

/// Drops cancelled requests from the front of a queue; the oldest live
/// request.
pub(super) fn live_node(queue: &mut RouteQueue) -> Option<&Arc<Node>> {
    while queue.waiters.front()?.is_cancelled() {
        queue.waiters.pop_front();
    }
    queue.waiters.front()
}

/// The serializer's state, for a flavor whose barging strategy is `B`.
pub(super) struct WaitQueues<T, B: Barging> {
    /// `Segmented`: the one route this serializer serves; `None`: all.
    scope: Option<usize>,
    closed: bool,
    /// By route id.
    queues: HashMap<usize, RouteQueue>,
    /// `Wait::Never` requests queued since the last settle.
    never_waiters: usize,
    /// Routes carrying `TOTAL_WAIT` (not used by `Segmented`: its total
    /// queue keeps them).
    flags: TotalWaitFlags,
    /// What the barging strategy keeps (see `barging`).
    barge: B::Serial,
    /// Items to dispose of once the serializer is released.
    victims: Vec<T>,
    /// `Segmented`: units of the total the total queue reserved for us.
    credit: usize,
    /// `Segmented`: the route is in the total queue.
    registered: bool,
    /// `Segmented`: a `Surrender` was handled and is to be answered.
    surrendered: bool,
    /// Capacity was freed in this batch (`Segmented` tells the total queue).
    freed: bool,
    /// `Segmented`: the route was removed; this serializer goes with it,
    /// and ignores what threads that found the route before still send.
    removed: bool,
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

/// Takes an idle stateful connection of route `id` off `queue`; the caller
/// then owns its slot.
fn take_stateful<K: RouteKey, T: Item, F: Flavor>(
    core: &Engine<K, T, F>,
    id: usize,
    queue: &mut RouteQueue,
    pick: impl Fn(&State) -> bool,
) -> Option<u32> {
    let state = queue.stateful.keys().find(|s| pick(s))?.clone();
    let list = queue.stateful.get_mut(&state)?;
    let index = match core.limits.reuse() {
        Reuse::Lifo => list.pop_back(),
        Reuse::Fifo => list.pop_front(),
    }?;
    if list.is_empty() {
        queue.stateful.remove(&state);
    }
    core.route(id).stateful_left();
    core.idle_left();
    Some(index)
}

impl<T: Item, B: Barging> WaitQueues<T, B> {
    pub(super) fn new(scope: Option<usize>) -> Self {
        Self {
            scope,
            closed: false,
            queues: HashMap::new(),
            never_waiters: 0,
            flags: TotalWaitFlags::default(),
            barge: B::Serial::default(),
            victims: Vec::new(),
            credit: 0,
            registered: false,
            surrendered: false,
            freed: false,
            removed: false,
        }
    }

    pub(super) fn apply<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        command: SerialCommand<T>,
    ) {
        if self.removed {
            // Nothing of the route is left to serve. A unit of the total
            // reserved for it goes back (a removed route was in no queue, so
            // none should come), and the total queue, if it asked for a
            // close, is answered: nothing here is left to close.
            match command {
                SerialCommand::Credit => self.credit += 1,
                SerialCommand::Surrender { answer } => self.surrendered |= answer,
                _ => {}
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
            SerialCommand::Shutdown => self.closed = true,
            SerialCommand::Credit => {
                self.credit += 1;
                self.registered = false;
            }
            SerialCommand::Dismissed => self.registered = false,
            SerialCommand::Surrender { answer } => {
                self.surrendered |= answer;
                self.surrender(core);
            }
            SerialCommand::Remove(routes) => {
                for (id, uid) in routes {
                    self.remove(core, id, uid);
                }
            }
        }
    }

    /// Removes route `id` if nothing of it is left here and it is unused.
    fn remove<K: RouteKey, F: Flavor<Barge = B>>(
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
        if B::holds(&self.barge, id) || self.registered || self.credit > 0 {
            // Flags or credit this serializer has yet to settle.
            core.sweep_again(id);
            return;
        }
        if core.remove_route(id, uid) {
            self.queues.remove(&id);
            self.removed = F::SEGMENTED;
        }
    }

    /// Serves what can be served; returns the items to dispose of.
    pub(super) fn settle<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
    ) -> Vec<T> {
        if self.removed {
            // What `settle_segment` does for the total queue, without the
            // route.
            if self.credit > 0 {
                core.total
                    .fetch_sub(std::mem::take(&mut self.credit), Ordering::AcqRel);
                self.freed = true;
            }
            if std::mem::take(&mut self.surrendered) {
                core.submit_total(TotalCommand::Surrendered);
            }
            if std::mem::take(&mut self.freed) {
                core.wake_total_line();
            }
            return std::mem::take(&mut self.victims);
        }
        if self.closed {
            self.close_all(core);
        } else {
            self.serve(core);
            if self.never_waiters > 0 {
                self.refuse_never_waiters(core);
                B::lower_flags(&mut self.barge, core, &mut self.queues);
                if F::SEGMENTED {
                    // Requests that wait may have queued behind them.
                    self.serve(core);
                }
            }
            self.tidy(core);
        }
        if F::SEGMENTED {
            self.settle_segment(core);
        }
        self.freed = false;
        std::mem::take(&mut self.victims)
    }

    /// `Segmented`, after a batch: gives back credit nothing here could use,
    /// answers the total queue, and tells it when this route has idle
    /// connections it could close for a route blocked by the total cap.
    fn settle_segment<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
        if self.credit > 0 {
            core.total.fetch_sub(self.credit, Ordering::AcqRel);
            self.credit = 0;
            self.freed = true;
        }
        if std::mem::take(&mut self.surrendered) {
            core.submit_total(TotalCommand::Surrendered);
        }
        let route = core.route(self.scope.expect("a segment's route"));
        let idle = route.idle() + route.stateful_idle();
        if !self.closed && route.word().total_wait() && idle > 0 {
            core.submit_total(TotalCommand::Kick);
        }
        if self.freed {
            core.wake_total_line();
        }
    }

    /// `Segmented`: closes one idle connection of this route, if it has one,
    /// to make room for another route.
    fn surrender<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
        let id = self.scope.expect("a segment's route");
        let route = core.route(id);
        let index = core.take_idle(route, Take::Serial).or_else(|| {
            let queue = self.queues.get_mut(&id)?;
            take_stateful(core, id, queue, |_| true)
        });
        if let Some(index) = index {
            self.close(core, route, index);
        }
    }

    /// Reserves route and total capacity and a slot for a new connection;
    /// `Segmented` spends a unit of credit first, and takes none of the
    /// total while routes wait in the total queue.
    fn reserve_new<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        state: Option<&State>,
    ) -> Result<Permit, Blocked> {
        if !F::SEGMENTED {
            return core.reserve_new(route, state);
        }
        core.reserve_new_with(route, state, || {
            if self.credit > 0 {
                self.credit -= 1;
                true
            } else {
                !core.total_line_busy() && core.reserve_total()
            }
        })
    }

    /// Closes a connection whose slot we own: capacity freed, item to dispose.
    fn close<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        index: u32,
    ) {
        // SAFETY: we own `index`, and give it up.
        self.victims.push(unsafe { core.close_slot(route, index) });
        self.freed = true;
    }

    /// A returned connection (or one a cancelled request was given), whose
    /// slot we own: to idle, where `serve` finds it for the oldest waiter.
    fn put_back<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>, index: u32) {
        // SAFETY: we own `index` (the caller gave it to us).
        let id = unsafe { core.route_of(index) };
        let route = core.route(id);
        if self.closed || route.is_over_cap() {
            return self.close(core, route, index);
        }
        if !core.admit_idle() {
            return self.close(core, route, index);
        }
        // SAFETY: as above.
        match unsafe { core.state_of(index) } {
            Some(state) => {
                if route.stateful_went_idle(F::SEGMENTED) {
                    core.stateful_index.push(id, 0);
                }
                let queue = self.queues.entry(id).or_default();
                queue.stateful.entry(state).or_default().push_back(index);
            }
            None => {
                B::returned_to_serial(&mut self.barge, core, &mut self.queues, id);
                let word = route.shard_word(0);
                let link = core.arena.link(index);
                // SAFETY: we own `index`; `put` publishes it if it succeeds,
                // else we still own it.
                match unsafe { route.put(link, 0, index, Put::Serial, word, |_| {}) } {
                    // `Segmented`: the total queue is kicked after this
                    // route's own requests were served (`settle_segment`
                    // sees `TOTAL_WAIT` in shard 0's word, which
                    // `list_idle` read after listing).
                    Ok(before) if !before.listed() => {
                        if core.list_idle(route, 0) && !F::SEGMENTED {
                            core.kick(route);
                        }
                    }
                    Ok(_) => {}
                    Err(refused) => {
                        debug_assert_eq!(refused, Refused::Closed);
                        core.idle_left();
                        self.close(core, route, index);
                    }
                }
            }
        }
    }

    /// An idle connection of route `id` in `state`.
    fn take_match<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Option<u32> {
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
    fn reclaim_same_route<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Option<u32> {
        let route = core.route(id);
        let stateless = match state {
            Some(_) => core.take_idle(route, Take::Serial),
            None => None,
        };
        let index = match stateless {
            Some(index) => index,
            None => {
                let queue = self.queues.get_mut(&id)?;
                take_stateful(core, id, queue, |s| Some(s) != state)?
            }
        };
        // SAFETY: we own `index`; it stays route `id`'s.
        self.victims.push(unsafe { core.retire(route, index) });
        Some(index)
    }

    /// Closes an idle connection of another route and moves its slot (and
    /// its unit of the total cap) to route `id`, whose own unit the caller
    /// has reserved.
    fn reclaim_other_route<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
    ) -> Option<u32> {
        // Not the connections an older request was just woken to take.
        let mut found = core
            .take_idle_elsewhere(Some(id), B::woken(&self.barge))
            .map(|(route, index)| (route.id, index));
        if found.is_none() {
            for (&victim, queue) in self.queues.iter_mut().filter(|(&other, _)| other != id) {
                if let Some(index) = take_stateful(core, victim, queue, |_| true) {
                    found = Some((victim, index));
                    break;
                }
            }
        }
        let (victim, index) = found?;
        let victim = core.route(victim);
        // SAFETY: we own the victim's slot.
        self.victims.push(unsafe { core.retire(victim, index) });
        // SAFETY: as above; the slot now belongs to route `id`.
        unsafe { core.arena.with(index, |slot| slot.route = id) };
        core.allocated_down(victim);
        if F::SEGMENTED {
            // The victim's own requests are served by its own serializer.
            core.route_freed(victim);
        }
        Some(index)
    }

    /// Capacity for a request of route `id` blocked by the total cap, made by
    /// closing an idle connection: of its own route in another state, else
    /// of another route (whose slot and unit of the total it takes over).
    fn make_room<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        state: Option<&State>,
    ) -> Result<Permit, Blocked> {
        let route = core.route(id);
        let index = if let Some(index) = self.reclaim_same_route(core, id, state) {
            index
        } else if core.total_line_busy() {
            // Routes ahead in the total queue come first.
            return Err(Blocked::Total);
        } else if !route.reserve_own() {
            return Err(Blocked::Route);
        } else if let Some(index) = self.reclaim_other_route(core, id) {
            index
        } else if F::SEGMENTED && self.surrender_elsewhere(core, id) && core.reserve_total() {
            return Ok(core.permit_for(route, state));
        } else {
            core.allocated_down(route);
            return Err(Blocked::Total);
        };
        route.connecting.fetch_add(1, Ordering::AcqRel);
        // SAFETY: we own the emptied slot, and hand it on.
        Ok(unsafe { core.permit(index, state) })
    }

    /// `Segmented`: asks a route with stateful idle connections (which only
    /// its serializer may touch) to close one. If that serializer was idle it
    /// ran here and then, and the freed unit is in the total; else the route
    /// blocks and the total queue waits for the close. Whether it asked one.
    fn surrender_elsewhere<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
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

    /// Tries to serve the head of queue `id`.
    fn serve_head<K: RouteKey, F: Flavor<Barge = B>>(
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
        let grant = if let Some(index) = self.take_match(core, id, state) {
            // SAFETY: we own `index`, and lend it.
            Grant::Conn(unsafe { core.lend(index) })
        } else if !allow_new {
            return Err(Blocked::Total);
        } else {
            match self.reserve_new(core, route, state) {
                Ok(permit) => Grant::Connect(permit),
                Err(Blocked::Route) => {
                    let index = self
                        .reclaim_same_route(core, id, state)
                        .ok_or(Blocked::Route)?;
                    route.connecting.fetch_add(1, Ordering::AcqRel);
                    // SAFETY: we own the emptied slot, and hand it on.
                    Grant::Connect(unsafe { core.permit(index, state) })
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
        self.queues
            .get_mut(&id)
            .expect("a queue")
            .waiters
            .pop_front();
        B::head_served(route);
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
    fn undo<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        route: &Route<K>,
        grant: Grant,
    ) {
        match grant {
            Grant::Conn(held) => self.put_back(core, core.slot_of(&held)),
            Grant::Connect(permit) => {
                route.connecting.fetch_sub(1, Ordering::AcqRel);
                core.free_slot(route, core.permit_slot(&permit));
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
    fn serve_round<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) -> bool {
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

    fn serve<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
        if F::SEGMENTED {
            // Blocked by the total: join the total queue (once), which looks
            // for room on other routes and reserves freed units for us — not
            // for a request that will not wait (refused, then served again).
            if self.serve_round(core) && self.never_waiters == 0 && !self.registered {
                self.registered = true;
                core.total_blocked.fetch_add(1, Ordering::AcqRel);
                let id = self.scope.expect("a segment's route");
                core.submit_total(TotalCommand::Block(id));
            }
            return;
        }
        B::before_rounds(&mut self.barge, core);
        loop {
            let total_blocked = self.serve_round(core);
            // Raise the flags a waiter needs, then look again: a connection
            // that went idle before a flag is found by the next round, one
            // returned after it comes through the serializer.
            let mut raised = total_blocked && core.raise_total_wait(&mut self.flags);
            raised |= B::raise_flags(&mut self.barge, core, &mut self.queues);
            if raised {
                continue;
            }
            if !total_blocked {
                core.lower_total_wait(&mut self.flags);
            }
            B::lower_flags(&mut self.barge, core, &mut self.queues);
            return;
        }
    }

    /// Answers `Busy` to every `Wait::Never` request still queued.
    fn refuse_never_waiters<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
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
    fn tidy<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
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
    fn evict<K: RouteKey, F: Flavor<Barge = B>>(
        &mut self,
        core: &Engine<K, T, F>,
        evict: &dyn Fn(&T) -> bool,
        over_cap_only: bool,
    ) {
        let mut kept = Vec::new();
        for route in scoped(self.scope, core) {
            while let Some(index) = core.take_idle(route, Take::Serial) {
                kept.push(index);
            }
            // Taken newest first for LIFO: put back oldest first.
            if core.limits.reuse() == Reuse::Lifo {
                kept.reverse();
            }
            for index in kept.drain(..) {
                // SAFETY: we own `index`.
                let pick = unsafe {
                    core.arena
                        .with(index, |slot| slot.item.as_ref().is_some_and(evict))
                };
                if (!over_cap_only || route.is_over_cap()) && pick {
                    self.close(core, route, index);
                } else {
                    self.put_back(core, index);
                }
            }
        }
        for (&id, queue) in &mut self.queues {
            let route = core.route(id);
            for list in queue.stateful.values_mut() {
                let mut i = 0;
                while i < list.len() {
                    let index = list[i];
                    // SAFETY: indices on our lists are ours.
                    let pick = unsafe {
                        core.arena.with(index, |slot| {
                            (!over_cap_only || route.is_over_cap())
                                && slot.item.as_ref().is_some_and(evict)
                        })
                    };
                    if !pick {
                        i += 1;
                        continue;
                    }
                    list.remove(i);
                    route.stateful_left();
                    core.idle_left();
                    // SAFETY: the index was on our list: ours, given up.
                    self.victims.push(unsafe { core.close_slot(route, index) });
                    self.freed = true;
                }
            }
            queue.stateful.retain(|_, list| !list.is_empty());
        }
    }

    /// Shutdown: every request gets `Closed`, every idle connection goes.
    fn close_all<K: RouteKey, F: Flavor<Barge = B>>(&mut self, core: &Engine<K, T, F>) {
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
        for route in scoped(self.scope, core) {
            while let Some(index) = core.take_idle(route, Take::Drain) {
                self.close(core, route, index);
            }
        }
        self.queues.clear();
    }
}
