//! Whether a newcomer may take an idle connection ahead of queued
//! requests: the barging strategy of an engine's flavor.
//!
//! [`Handoff`] (`Strict`, `Offlock`) never lets a request overtake one
//! queued before it: every shard of a route counts its waiters, so a
//! newcomer and a return see them in the word they touch, and returns go
//! through the serializer to the oldest request. [`Compete`](super::Compete) (`Lax`, in
//! `compete`) lets newcomers take idle connections within a bound while
//! queued requests compete for returns.
//!
//! The engine asks the strategy at every point where the two differ, on
//! the callers' side (a request queues, leaves, retries; a connection
//! returns) and in the serializer (a request is applied, a round of serving
//! begins, a head is served or stays blocked). `Handoff` answers each with
//! what a strict FIFO queue does, which is nothing beyond the engine's own
//! rules; so a reader of `Strict` reads this file and not `Lax`'s.

use super::queues::RouteQueue;
use super::route::{Put, Route, Take, Word};
use super::{Engine, EngineWaiter, Flavor};
use crate::types::{Grant, Item, RouteKey};
use crate::waiter::Node;
use std::collections::HashMap;
use std::fmt;

/// How a return goes back, as its strategy decides from the shard's word
/// before the push.
#[derive(Clone, Copy, Debug)]
pub(super) struct ReturnRule {
    /// What the push must respect.
    pub(super) put: Put,
    /// `Compete`: whether the return was counted against the waiting
    /// requests, and if so whether it still may go by them (see
    /// `compete`); `None` where nobody competed.
    pub(super) pass: Option<bool>,
}

/// A barging strategy; sealed: [`Handoff`] or [`Compete`](super::Compete).
///
/// Public only as the engine's flavors name it: its items speak of the
/// engine's own types, which stay private to the crate.
#[allow(private_interfaces, private_bounds)]
pub trait Barging: crate::sealed::Sealed + Send + Sync + fmt::Debug + 'static {
    /// What the serializer keeps for the strategy between batches.
    #[doc(hidden)]
    type Serial: Default + Send;

    /// Whether a route's waiting requests are counted in every shard, not
    /// only shard 0, so that a newcomer and a return see them in the word
    /// of whichever shard they touch.
    #[doc(hidden)]
    const COUNT_EVERYWHERE: bool;

    /// Whether FIFO reuse keeps one idle list per route, so that leases
    /// rotate through every idle connection of the route exactly, as
    /// [`Reuse::Fifo`](crate::Reuse::Fifo) says (per-CPU lists would let
    /// those of a quiet CPU sit unused).
    #[doc(hidden)]
    const ONE_FIFO_LIST: bool;

    /// The rule a newcomer takes idle connections by on the hot path.
    #[doc(hidden)]
    const NEWCOMER: Take;

    /// A request of `route` counted itself (the shard 0 word `before` its
    /// count) and is about to be queued.
    #[doc(hidden)]
    fn queued<K>(route: &Route<K>, node: &Node, before: Word);

    /// A queued request of `route` left without a grant (cancelled).
    #[doc(hidden)]
    fn left_unserved<K: RouteKey, T: Item, F: Flavor>(core: &Engine<K, T, F>, route: &Route<K>);

    /// A queued request looks for an idle connection itself ([`Core::retry`](crate::Core::retry)).
    #[doc(hidden)]
    fn retry<K: RouteKey, T: Item, F: Flavor>(
        core: &Engine<K, T, F>,
        waiter: &mut EngineWaiter<K, T>,
    ) -> Option<Grant>;

    /// How a return to a shard whose word is `word` goes back.
    #[doc(hidden)]
    fn return_rule<K>(route: &Route<K>, word: Word) -> ReturnRule;

    /// A return that went idle found `before` wanted (requests wait), as
    /// `rule` said it would go back.
    #[doc(hidden)]
    fn went_idle<K>(route: &Route<K>, rule: ReturnRule, before: Word);

    /// After [`Barging::went_idle`]: whether that return may spare the
    /// serializer its kick.
    #[doc(hidden)]
    fn spares_kick<K>(route: &Route<K>, before: Word) -> bool;

    /// The serializer applies the request `node` of route `id`.
    #[doc(hidden)]
    fn enqueued(serial: &mut Self::Serial, id: usize, node: &Node);

    /// The serializer begins a batch of serving rounds.
    #[doc(hidden)]
    fn before_rounds<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut Self::Serial,
        core: &Engine<K, T, F>,
    );

    /// The serializer is about to serve `node`, the head of route `id`:
    /// whether it woke the request to take an idle connection itself
    /// instead (the head then stays queued).
    #[doc(hidden)]
    fn wakes_to_compete<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut Self::Serial,
        core: &Engine<K, T, F>,
        id: usize,
        node: &Node,
    ) -> bool;

    /// The serializer is about to grant the head of `route`, and `next` is
    /// the request after it, if one waits.
    #[doc(hidden)]
    fn head_served<K>(route: &Route<K>, next: Option<&Node>);

    /// After a serving round left requests unserved: raises the flags their
    /// routes need; whether it raised any (the serializer then looks again).
    #[doc(hidden)]
    fn raise_flags<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut Self::Serial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
    ) -> bool;

    /// A stateless connection of route `id` goes idle through the
    /// serializer: what keeps it for the oldest request, where that one is
    /// to be handed returns.
    #[doc(hidden)]
    fn returned_to_serial<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut Self::Serial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
        id: usize,
    );

    /// After the serializer is done serving: lowers the flags no request
    /// needs any more.
    #[doc(hidden)]
    fn lower_flags<K: RouteKey, T: Item, F: Flavor>(
        serial: &mut Self::Serial,
        core: &Engine<K, T, F>,
        queues: &mut HashMap<usize, RouteQueue>,
    );

    /// A serving round begins.
    #[doc(hidden)]
    fn round_begins(serial: &mut Self::Serial);

    /// Routes whose oldest request this round was woken to take one of
    /// their idle connections, which requests of other routes must not
    /// close to make room.
    #[doc(hidden)]
    fn woken(serial: &Self::Serial) -> &[usize];

    /// Whether the serializer has flags of route `id` yet to settle (the
    /// route is not removed then).
    #[doc(hidden)]
    fn holds(serial: &Self::Serial, id: usize) -> bool;
}

/// No barging: a request never overtakes one queued before it, and
/// returns are handed to the oldest (`Strict`, `Offlock`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Handoff;

impl crate::sealed::Sealed for Handoff {}

// The items name the engine's crate-private types, as the trait does.
#[allow(private_interfaces, private_bounds)]
impl Barging for Handoff {
    type Serial = ();

    const COUNT_EVERYWHERE: bool = true;
    const ONE_FIFO_LIST: bool = true;
    const NEWCOMER: Take = Take::Newcomer;

    #[inline]
    fn queued<K>(_: &Route<K>, _: &Node, _: Word) {}

    fn left_unserved<K: RouteKey, T: Item, F: Flavor>(_: &Engine<K, T, F>, _: &Route<K>) {}

    fn retry<K: RouteKey, T: Item, F: Flavor>(
        _: &Engine<K, T, F>,
        _: &mut EngineWaiter<K, T>,
    ) -> Option<Grant> {
        None
    }

    /// Refused while anyone waits: the serializer hands it to the oldest.
    #[inline(always)]
    fn return_rule<K>(_: &Route<K>, _: Word) -> ReturnRule {
        ReturnRule {
            put: Put::Return,
            pass: None,
        }
    }

    /// Never: the oldest request is handed it by the serializer.
    #[inline]
    fn went_idle<K>(_: &Route<K>, _: ReturnRule, _: Word) {}

    fn spares_kick<K>(_: &Route<K>, _: Word) -> bool {
        false
    }

    fn enqueued(_: &mut (), _: usize, _: &Node) {}

    fn before_rounds<K: RouteKey, T: Item, F: Flavor>(_: &mut (), _: &Engine<K, T, F>) {}

    fn wakes_to_compete<K: RouteKey, T: Item, F: Flavor>(
        _: &mut (),
        _: &Engine<K, T, F>,
        _: usize,
        _: &Node,
    ) -> bool {
        false
    }

    fn head_served<K>(_: &Route<K>, _: Option<&Node>) {}

    fn raise_flags<K: RouteKey, T: Item, F: Flavor>(
        _: &mut (),
        _: &Engine<K, T, F>,
        _: &mut HashMap<usize, RouteQueue>,
    ) -> bool {
        false
    }

    fn returned_to_serial<K: RouteKey, T: Item, F: Flavor>(
        _: &mut (),
        _: &Engine<K, T, F>,
        _: &mut HashMap<usize, RouteQueue>,
        _: usize,
    ) {
    }

    fn lower_flags<K: RouteKey, T: Item, F: Flavor>(
        _: &mut (),
        _: &Engine<K, T, F>,
        _: &mut HashMap<usize, RouteQueue>,
    ) {
    }

    fn round_begins(_: &mut ()) {}

    fn woken(_: &()) -> &[usize] {
        &[]
    }

    fn holds(_: &(), _: usize) -> bool {
        false
    }
}
