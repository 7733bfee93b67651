//! `Lax`: work-stealing per-thread idle shards, with exact caps and a bound
//! on how often a waiter is overtaken.

use crate::engine::{Engine, Sharded};
use crate::{Item, Policy, RouteKey};

/// The throughput policy: idle connections live in per-thread shards.
///
/// * A lease looks in its thread's own shard first, then steals from the
///   others; a return goes to the returning thread's shard. A thread that
///   finds its own connection again touches no cache line another thread
///   writes.
/// * Caps are exact, per route and in total (Apache's LAX drops the total
///   limit; this one does not).
/// * Newcomers may take an idle connection ahead of a queued request
///   (barging), but only until the serializer has looked at that request
///   (normally on the request's own thread, before it sleeps): it then flags
///   every shard of the route, and from then on every return goes to the
///   oldest waiter and no connection is added to a shard. So a waiter is
///   overtaken only by connections that were idle on its route before the
///   flag went up — at most the route's cap — and never starves.
/// * Otherwise as [`Strict`](crate::Strict): freed capacity goes to the
///   oldest waiter of any route, idle connections of other routes or states
///   are closed to make room, stateful connections are kept apart.
///
/// Pick it for one hot route and raw throughput.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lax;

/// The core of [`Lax`]: per-thread idle shards per route.
pub type LaxCore<K, T> = Engine<K, T, Sharded>;

impl Policy for Lax {
    type Core<K: RouteKey, T: Item> = LaxCore<K, T>;
    const NAME: &'static str = "lax";
}
