//! `Offlock`: one independent segment per route; routes meet only at the
//! total cap, and graceful closes never run on a caller's thread.

use crate::engine::{Engine, Segmented};
use crate::{Item, Policy, RouteKey};

/// The isolation policy: each route is a segment of its own.
///
/// * Each route has its own idle connections (in per-CPU shards, as under
///   [`Strict`](crate::Strict)), FIFO queue of waiting requests, counters and
///   serializer; the only state routes share is the total cap.
///   A route whose requests queue, whose connections are slow to close or
///   that churns through connections does not slow requests of another.
/// * Within a route, as [`Strict`](crate::Strict): a request never overtakes
///   one queued before it, a returned connection goes to the oldest waiter.
/// * Across routes, requests blocked by the total cap wait in a queue of
///   routes: a freed unit of the total goes to the route that blocked first,
///   then the next (round-robin while several stay blocked), and nobody
///   else takes one while routes wait there. Idle connections of other
///   routes (or other states) are closed to make room.
/// * Graceful closes (TLS `close_notify`, a peer slow to answer) run on the
///   pool's disposal thread, never on the thread that gives a connection
///   up: the pool refuses inline disposal
///   ([`Policy::DISPOSES_OFF_THREAD`]). When the disposal queue is full the
///   connection is aborted where it is (leasehold's `Connector::abort`:
///   closed at once, without the graceful steps) — never dropped unclosed.
///
/// Pick it for many routes, when one slow or overloaded route must not hurt
/// the others.
#[derive(Clone, Copy, Debug, Default)]
pub struct Offlock;

/// The core of [`Offlock`]: one segment per route.
pub type OfflockCore<K, T> = Engine<K, T, Segmented>;

impl crate::sealed::Sealed for Offlock {}

impl Policy for Offlock {
    type Core<K: RouteKey, T: Item> = OfflockCore<K, T>;
    const NAME: &'static str = "offlock";
    const DISPOSES_OFF_THREAD: bool = true;
}
