//! `Lax`: work-stealing per-CPU idle shards, with exact caps and a bound
//! on how often a waiter is overtaken.

use crate::engine::{Engine, Sharded};
use crate::{Item, Policy, RouteKey};

/// The throughput policy: idle connections live in per-CPU shards.
///
/// * A lease looks first in the shard of the CPU its thread runs on, then
///   steals from the others; a return goes to the shard of its CPU. A
///   thread that finds its own connection again touches no cache line
///   another thread writes, and two threads running at once never share a
///   shard. (Shards are the parallelism rounded up to a power of two; where
///   the OS does not tell the CPU cheaply, as off Linux, each thread is
///   given a shard in turn.)
/// * Caps are exact, per route and in total (Apache's LAX drops the total
///   limit; this one does not).
/// * Newcomers may take an idle connection ahead of a queued request
///   (barging), and queued requests compete for returns rather than being
///   handed them: a return still goes idle, and the oldest request of the
///   route is woken to take it, unless someone is faster. A thread that
///   returns a connection and leases again at once keeps it, instead of
///   handing it to a sleeping thread and going to sleep itself — the lock
///   convoy a strict hand-off falls into when threads outnumber cores.
///   One wake-up at a time: while the woken request has yet to look,
///   further returns wake nobody (it will find them), so threads that keep
///   leasing are not preempted by sleepers woken to find nothing.
/// * The bound: every return that goes idle while requests wait on its
///   route counts itself, and the return that finds [`Lax::PASS_LIMIT`]
///   counted is handed to the oldest request instead, as under `Strict`;
///   newcomers may not take idle connections then until that request is
///   served. So once a request is the oldest of its route, newcomers take
///   at most `PASS_LIMIT` connections ahead of it, and no request starves,
///   however the threads are scheduled. (The count restarts whenever the
///   oldest request is served, handed a connection or taking one itself;
///   returns counted just before that count against the next, which errs on
///   the safe side.) Time bounds it too: once the oldest request has waited
///   [`Lax::STARVE_AFTER`] (1 ms), every return is handed to it and the
///   next, until the oldest has waited less or none waits, as Go's
///   `sync.Mutex` does in its starvation mode. So a request that reaches
///   the head of its route's queue waits at most 1 ms or `PASS_LIMIT`
///   returns longer than under `Strict`, whichever comes first, plus the
///   hold of the connections then out. Requests for a state, and requests
///   that will not wait, are always handed connections.
/// * Otherwise as [`Strict`](crate::Strict): freed capacity goes to the
///   oldest waiter of any route, idle connections of other routes or states
///   are closed to make room, stateful connections are kept apart.
///
/// Pick it for one hot route and raw throughput.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lax;

impl Lax {
    /// How many returns of a route go idle, for anyone to take, while
    /// requests wait there, before returns are handed to the oldest.
    pub const PASS_LIMIT: usize = 32;

    /// How long the oldest request of a route may wait before every return
    /// is handed to it (and to the next, while it too has waited as long),
    /// however few returns went by.
    pub const STARVE_AFTER: std::time::Duration = std::time::Duration::from_millis(1);
}

/// The core of [`Lax`]: per-CPU idle shards per route.
pub type LaxCore<K, T> = Engine<K, T, Sharded>;

impl crate::sealed::Sealed for Lax {}

impl Policy for Lax {
    type Core<K: RouteKey, T: Item> = LaxCore<K, T>;
    const NAME: &'static str = "lax";
}
