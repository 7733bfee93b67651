//! `Lax`'s barging strategy: newcomers may take idle connections ahead of
//! queued requests, which compete for returns rather than being handed
//! them, within a bound.
//!
//! `CONTEND` on every shard of a route says requests wait there and compete
//! for its returns: a request that may take an idle connection itself
//! raises it as it queues (after counting itself), and the serializer
//! raises it for any request it could not serve, then looks once more. A
//! return that sees the flag counts itself in the route's pass counter
//! ([`Passes`]) before it pushes, goes idle, then kicks the serializer,
//! which wakes the oldest request without a grant while it competes: the
//! request takes an idle connection itself ([`Compete::retry`], after
//! registering its waker; it reads every shard with a read-modify-write,
//! so either it sees a concurrent push or the push's kick sees its waker).
//! A return spares the kick while `NUDGED` says a request so woken has yet
//! to look (the flag's protocol is in `route`): one wake-up in flight at a
//! time, not one per return. The return that finds
//! [`Lax::PASS_LIMIT`](crate::Lax::PASS_LIMIT) counted is handed to the
//! serializer instead, which raises `ROUTE_WAIT` (returns go to it
//! outright, and newcomers may no longer take idle connections), serves
//! the oldest request and resets the count (so does a request woken as the
//! oldest that takes a connection itself, before it leaves the queue).
//! Counted by the returning threads, not by the serializer, the limit
//! holds however late the serializer runs.
//!
//! The same goes for time ([`Lax::STARVE_AFTER`](crate::Lax::STARVE_AFTER)):
//! [`Passes`] also keeps when the oldest request queued, and a return that
//! finds it waiting that long is handed over, as the serializer does with
//! every return until the oldest request has waited less. Only the
//! serializer writes the instant: its queue's head's each time it raises
//! the route's flags for it, the next request's as it serves one, none
//! once the queue is empty. A value left from an earlier head is older
//! than the true one, which errs towards handing returns over; until the
//! serializer has seen the first request to queue, returns count passes
//! only.

use super::barging::{Barging, ReturnRule};
use super::queues::{live_node, RouteQueue};
use super::route::{Put, Route, Take, Word};
use super::{Engine, EngineWaiter, Flavor};
use crate::sync::{clock_nanos, AtomicU64, AtomicUsize, Ordering};
use crate::types::{Grant, Item, RouteKey};
use crate::waiter::Node;
use crate::Core;
use std::collections::HashMap;

/// Barging within a bound; queued requests compete for returns (`Lax`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Compete;

impl crate::sealed::Sealed for Compete {}

/// How many returns go idle past a route's waiting requests before returns
/// are handed to the oldest ([`Lax::PASS_LIMIT`](crate::Lax::PASS_LIMIT)).
#[cfg(not(leasehold_loom))]
#[inline]
fn pass_limit() -> usize {
    crate::Lax::PASS_LIMIT
}

/// Under loom: 1, so that the models reach the hand-off, unless a model
/// binary sets another ([`set_loom_pass_limit`]).
#[cfg(leasehold_loom)]
fn pass_limit() -> usize {
    LOOM_PASS_LIMIT.load(std::sync::atomic::Ordering::Relaxed)
}

/// A `std` atomic: it adds no scheduling point for loom to explore.
#[cfg(leasehold_loom)]
static LOOM_PASS_LIMIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// Loom builds only: sets `Lax`'s pass limit for every core of this process
/// (1 unless set). The limit 1 never lets two returns go by a request, so a
/// model of what happens between such returns sets a higher one, in a test
/// binary of its own.
#[cfg(leasehold_loom)]
#[doc(hidden)]
pub fn set_loom_pass_limit(limit: usize) {
    assert!(limit > 0, "a pass limit of at least 1");
    LOOM_PASS_LIMIT.store(limit, std::sync::atomic::Ordering::Relaxed);
}

/// How long, in nanoseconds of [`clock_nanos`], the oldest request of a
/// route may wait before returns are handed to it
/// ([`Lax::STARVE_AFTER`](crate::Lax::STARVE_AFTER), 1 ms: it fits).
const STARVE_AFTER_NANOS: u64 = crate::Lax::STARVE_AFTER.as_nanos() as u64;

/// No instant: no request waits, or none has said when it queued yet.
const NO_INSTANT: u64 = u64::MAX;

/// A route's pass counter, the ticket of the request the serializer last
/// woke to compete as the oldest (`u64::MAX`: none), and when the oldest
/// waiting request queued. Every route has one, on a cache line of its
/// own; only `Compete` counts in it.
#[derive(Debug)]
pub(super) struct Passes {
    count: AtomicUsize,
    oldest: AtomicU64,
    /// On [`clock_nanos`]; [`NO_INSTANT`] if none. Written by the
    /// serializer alone.
    oldest_since: AtomicU64,
}

impl Default for Passes {
    fn default() -> Self {
        Self {
            count: AtomicUsize::new(0),
            oldest: AtomicU64::new(u64::MAX),
            oldest_since: AtomicU64::new(NO_INSTANT),
        }
    }
}

impl Passes {
    /// Before a return to a shard whose word the caller read (`word`):
    /// `None` if no request competes for returns there; else counts the
    /// return as one that goes by the waiting requests, and says whether
    /// it still may (`false` once the limit went by: it is to be handed to
    /// the oldest).
    #[inline]
    fn pass(&self, word: Word) -> Option<bool> {
        if !word.contended() {
            return None;
        }
        let under = self.count.fetch_add(1, Ordering::AcqRel) < pass_limit();
        Some(under && !self.starving())
    }

    /// Counts a return that went idle past waiting requests it had not seen
    /// before (`CONTEND` came between [`Self::pass`] and the push).
    fn passed(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether fewer than the limit went by since the last reset, and the
    /// oldest request has not waited too long.
    fn may_pass(&self) -> bool {
        self.count.load(Ordering::Acquire) < pass_limit() && !self.starving()
    }

    /// Whether the oldest waiting request queued
    /// [`Lax::STARVE_AFTER`](crate::Lax::STARVE_AFTER) ago or earlier.
    fn starving(&self) -> bool {
        let since = self.oldest_since.load(Ordering::Acquire);
        since != NO_INSTANT && clock_nanos().saturating_sub(since) >= STARVE_AFTER_NANOS
    }

    /// The serializer: the oldest waiting request queued at `since`
    /// (`None`: no request waits).
    fn oldest_queued_at(&self, since: Option<u64>) {
        self.oldest_since
            .store(since.unwrap_or(NO_INSTANT), Ordering::Release);
    }

    /// The serializer, as it serves the oldest request or the queue
    /// empties: the next oldest starts with none gone by.
    fn reset(&self) {
        self.count.store(0, Ordering::Release);
    }

    /// The serializer, before it wakes the oldest request (`ticket`) to
    /// compete for an idle connection.
    fn set_oldest(&self, ticket: u64) {
        self.oldest.store(ticket, Ordering::Release);
    }

    /// A woken request (`ticket`) that took an idle connection itself,
    /// before it leaves the queue: if it is the oldest (it was when woken,
    /// and has not left since, so it still is), the next starts with none
    /// gone by. Counts that land between this and its leaving go to the
    /// next, which errs on the safe side.
    fn oldest_served_itself(&self, ticket: u64) {
        if self.oldest.load(Ordering::Acquire) == ticket {
            self.reset();
        }
    }
}

/// Whether a queued request takes returned connections itself, in
/// competition with newcomers, rather than being handed them: while it is
/// stateless and waits, fewer than the limit of returns went by since the
/// oldest request of `route` was last served, and that request has not
/// waited too long.
fn competes<K>(node: &Node, route: &Route<K>) -> bool {
    node.may_take_idle() && route.passes().may_pass()
}

/// What the serializer keeps for `Compete`.
#[derive(Debug, Default)]
pub struct CompeteSerial {
    /// Routes (by id) carrying `CONTEND`.
    contended: Vec<usize>,
    /// Routes (by id) carrying `ROUTE_WAIT`.
    route_waits: Vec<usize>,
    /// Routes whose oldest request this round woke to take one of their
    /// idle connections.
    woken: Vec<usize>,
}

impl CompeteSerial {
    /// The flags route `id` needs for `queue`'s live head, if it has one,
    /// raised unless up; whether it raised any.
    fn raise_for<K: RouteKey, T: Item, F: Flavor>(
        &mut self,
        core: &Engine<K, T, F>,
        id: usize,
        queue: &mut RouteQueue,
    ) -> bool {
        let Some(head) = live_node(queue) else {
            return false;
        };
        let route = core.route(id);
        route.passes().oldest_queued_at(Some(head.since));
        let mut raised = false;
        if !self.contended.contains(&id) {
            route.raise_contend();
            self.contended.push(id);
            raised = true;
        }
        if !competes(head, route) && !self.route_waits.contains(&id) {
            route.set_route_wait(true);
            self.route_waits.push(id);
            raised = true;
        }
        raised
    }
}

// The items name the engine's crate-private types, as the trait does.
#[allow(private_interfaces, private_bounds)]
impl Barging for Compete {
    type Serial = CompeteSerial;

    /// Shard 0 alone counts waiters: returns to other shards go idle past
    /// them, counted by the pass counter instead.
    const COUNT_EVERYWHERE: bool = false;
    const ONE_FIFO_LIST: bool = false;
    const NEWCOMER: Take = Take::Barging;

    /// Returns count themselves against the request from now on, not only
    /// once the serializer has seen it.
    #[inline]
    fn queued<K>(route: &Route<K>, node: &Node, before: Word) {
        if node.may_take_idle() && !before.contended() {
            route.raise_contend();
        }
    }

    /// The request may have been woken to take an idle connection: the
    /// next one in the queue is woken instead.
    fn left_unserved<K: RouteKey, T: Item, F: Flavor>(core: &Engine<K, T, F>, route: &Route<K>) {
        core.next_in_line(route);
    }

    fn retry<K: RouteKey, T: Item, F: Flavor>(
        core: &Engine<K, T, F>,
        waiter: &mut EngineWaiter<K, T>,
    ) -> Option<Grant> {
        let node = &waiter.node;
        if !node.may_take_idle() {
            return None;
        }
        let _pin = core.pin();
        let route = core.route(waiter.route);
        if route.look() == 0 {
            return None;
        }
        let slot = core.take_idle_near(route, core.own_shard(), Take::Barging)?;
        let held = core.lend(slot);
        route.passes().oldest_served_itself(node.ticket);
        match node.cancel() {
            Ok(()) => {
                core.waiter_left(route);
                core.next_in_line(route);
                Some(Grant::Conn(held))
            }
            // Served meanwhile: keep the grant, put the connection back.
            Err(grant) => {
                core.release(held, true);
                grant
            }
        }
    }

    /// A return counts itself against the waiting requests before it goes
    /// idle for them to compete for; past the limit it is handed over, as
    /// under `Handoff`.
    #[inline(always)]
    fn return_rule<K>(route: &Route<K>, word: Word) -> ReturnRule {
        let pass = route.passes().pass(word);
        let put = if pass == Some(false) {
            Put::Return
        } else {
            Put::Compete
        };
        ReturnRule { put, pass }
    }

    /// A return that did not count itself because `CONTEND` came between
    /// its look and its push counts now.
    #[inline]
    fn went_idle<K>(route: &Route<K>, rule: ReturnRule, before: Word) {
        if rule.pass.is_none() && before.contended() {
            route.passes().passed();
        }
    }

    /// Requests compete for the return: the serializer wakes the oldest,
    /// unless a request it woke has yet to look, and will find this one —
    /// but not if this return used up the newcomers' passes: the
    /// serializer hands it to the oldest then.
    #[inline]
    fn spares_kick<K>(route: &Route<K>, before: Word) -> bool {
        before.contended() && before.nudged() && route.passes().may_pass()
    }

    /// It raised `CONTEND` itself (or found it up).
    fn enqueued(serial: &mut CompeteSerial, id: usize, node: &Node) {
        if node.may_take_idle() && !serial.contended.contains(&id) {
            serial.contended.push(id);
        }
    }

    /// A request woken earlier may have been served, or have given up,
    /// without looking: look for it (see `route`), so returns that spared
    /// their kick are found, and returns from now on kick until a request
    /// is woken again.
    fn before_rounds<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut CompeteSerial,
        core: &Engine<K, T, F>,
    ) {
        for &id in &serial.contended {
            core.route(id).look();
        }
    }

    /// The head takes an idle connection itself, if it is faster than the
    /// others; a `ROUTE_WAIT` left up for an older request that did not
    /// compete comes down first, or its look would find nothing it may
    /// take. Not while another route waits for one of ours to be closed:
    /// the oldest request gets it first, then.
    fn wakes_to_compete<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut CompeteSerial,
        core: &Engine<K, T, F>,
        id: usize,
        node: &Node,
    ) -> bool {
        let route = core.route(id);
        if !competes(node, route) || route.word().total_wait() || route.idle() == 0 {
            return false;
        }
        if let Some(at) = serial.route_waits.iter().position(|&r| r == id) {
            route.set_route_wait(false);
            serial.route_waits.swap_remove(at);
        }
        route.passes().set_oldest(node.ticket);
        route.raise_nudged();
        serial.woken.push(id);
        node.nudge();
        true
    }

    /// Before the grant: a return counted after this is one that went by
    /// the next request, which has waited since it queued.
    fn head_served<K>(route: &Route<K>, next: Option<&Node>) {
        let passes = route.passes();
        passes.reset();
        passes.oldest_queued_at(next.map(|node| node.since));
    }

    /// `CONTEND` on every route with live waiters left, and `ROUTE_WAIT`
    /// too where its oldest request no longer competes.
    fn raise_flags<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut CompeteSerial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
    ) -> bool {
        let mut raised = false;
        for (&id, queue) in queues {
            raised |= serial.raise_for(core, id, queue);
        }
        raised
    }

    /// Kept from newcomers until `serve` hands it over, if the oldest
    /// request is to be handed returns.
    fn returned_to_serial<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut CompeteSerial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
        id: usize,
    ) {
        if let Some(queue) = queues.get_mut(&id) {
            serial.raise_for(core, id, queue);
        }
    }

    /// Lowers `CONTEND` on routes whose waiters are all served, and
    /// `ROUTE_WAIT` on those whose oldest request competes (again).
    fn lower_flags<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut CompeteSerial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
    ) {
        serial.route_waits.retain(|id| {
            let handed = queues
                .get_mut(id)
                .and_then(live_node)
                .is_some_and(|head| !competes(head, core.route(*id)));
            if !handed {
                core.route(*id).set_route_wait(false);
            }
            handed
        });
        serial.contended.retain(|id| {
            let waiting = queues
                .get_mut(id)
                .is_some_and(|queue| live_node(queue).is_some());
            if waiting {
                return true;
            }
            let route = core.route(*id);
            route.passes().reset();
            route.passes().oldest_queued_at(None);
            // Kept raised for a request counted but not yet applied.
            !route.lower_contend()
        });
    }

    fn round_begins(serial: &mut CompeteSerial) {
        serial.woken.clear();
    }

    fn woken(serial: &CompeteSerial) -> &[usize] {
        &serial.woken
    }

    fn holds(serial: &CompeteSerial, id: usize) -> bool {
        serial.contended.contains(&id)
            || serial.route_waits.contains(&id)
            || serial.woken.contains(&id)
    }
}
