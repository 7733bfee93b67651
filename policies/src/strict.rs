//! `Strict`: exact caps, per-route FIFO waiters with direct hand-off, and
//! freed total capacity for the oldest waiting request of any route.

use crate::engine::{Engine, EngineWaiter, Fair};
use crate::{Item, Policy, RouteKey};

/// The fair policy: exact caps, FIFO per route, no barging.
///
/// * A request never overtakes one queued before it on the same route: a
///   returned connection goes to the oldest waiter (direct hand-off).
/// * Capacity freed anywhere goes to the oldest waiting request of any route
///   that can use it.
/// * When the total is reached and a route's request finds idle connections
///   only on other routes (or in another state), one is closed to make room.
/// * Idle connections live in per-CPU shards, as under [`Lax`](crate::Lax):
///   a lease looks in its CPU's shard first, then in the others, so two
///   cores leasing and returning at once do not pull one cache line back
///   and forth. Every shard counts the route's queued requests, so a
///   newcomer and a return see them whichever shard they touch. With
///   [`Reuse::Fifo`](crate::Reuse::Fifo) a route keeps one list, so that
///   leases rotate through every idle connection.
///
/// Pick it for predictable tail latency.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strict;

/// The core of [`Strict`]: per-CPU idle shards per route.
pub type StrictCore<K, T> = Engine<K, T, Fair>;

/// A request queued in a [`StrictCore`], a [`LaxCore`](crate::lax::LaxCore) or an
/// [`OfflockCore`](crate::offlock::OfflockCore).
pub type StrictWaiter<K, T> = EngineWaiter<K, T>;

impl crate::sealed::Sealed for Strict {}

impl Policy for Strict {
    type Core<K: RouteKey, T: Item> = StrictCore<K, T>;
    const NAME: &'static str = "strict";
}
