//! One route of an engine: its shard words, its idle lists and its capacity
//! counters.
//!
//! How it works: [the design notes](crate::implementation#a-route-and-its-shard-words).

use super::compete::Passes;
use crate::arena::{Arena, SlotToken, NIL};
use crate::capped::{Capped, BARRED};
use crate::sync::{AtomicBool, AtomicU128, AtomicU64, AtomicUsize, Backoff, Fifo, Ordering};
use crate::types::{Reuse, Stats};
use crossbeam_utils::CachePadded;
use std::fmt;

const INDEX_MASK: u128 = u32::MAX as u128;
const TAG_ONE: u128 = 1 << 32;
const TAG_MASK: u128 = (u32::MAX as u128) << 32;
const IDLE_ONE: u128 = 1 << 64;
/// The idle count's bits (at most `MAX_CAPACITY` < 2^30 connections).
const IDLE_BITS: u32 = (1 << 31) - 1;
const LISTED: u128 = 1 << 95;
/// `Route::stateful`: the route is in the engine's stateful index
/// (`Segmented`), as `LISTED` says of a shard in the idle index.
const STATEFUL_LISTED: usize = 1 << (usize::BITS - 1);
const WAITER_ONE: u128 = 1 << 96;
const WAITERS_MASK: u128 = ((1 << 27) - 1) << 96;
const NUDGED: u128 = 1 << 123;
const CONTEND: u128 = 1 << 124;
const ROUTE_WAIT: u128 = 1 << 125;
const TOTAL_WAIT: u128 = 1 << 126;
const CLOSED: u128 = 1 << 127;

/// A shard's word as one read found it, with a name for each packed field
/// (the layout is in the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Word(u128);

impl Word {
    /// No idle connection, no request, no flag.
    const EMPTY: Self = Self(NIL as u128);

    /// The head of the shard's idle stack (LIFO reuse).
    #[inline]
    fn head(self) -> u32 {
        (self.0 & INDEX_MASK) as u32
    }

    /// Idle stateless connections in the shard.
    #[inline]
    pub(super) fn idle(self) -> usize {
        ((self.0 >> 64) as u32 & IDLE_BITS) as usize
    }

    /// Whether the shard is in the engine's idle index (see the module
    /// docs).
    #[inline]
    pub(super) fn listed(self) -> bool {
        self.has(LISTED)
    }

    /// Requests waiting on the route, as this shard counts them.
    #[inline]
    pub(super) fn waiters(self) -> usize {
        ((self.0 & WAITERS_MASK) >> 96) as usize
    }

    #[inline]
    pub(super) fn is_closed(self) -> bool {
        self.has(CLOSED)
    }

    /// Whether a return that went idle despite this word (the FIFO path,
    /// which checks before it counts) must hand over to the serializer:
    /// requests wait on the route or for total capacity.
    #[inline]
    pub(super) fn wanted(self) -> bool {
        self.waiters() != 0 || self.has(CONTEND | ROUTE_WAIT | TOTAL_WAIT)
    }

    /// Whether requests of a sharded route compete for its returns.
    #[inline]
    pub(super) fn contended(self) -> bool {
        self.has(CONTEND)
    }

    /// Whether a request woken to compete for a sharded route's returns has
    /// yet to look for them.
    #[inline]
    pub(super) fn nudged(self) -> bool {
        self.has(NUDGED)
    }

    /// Whether a request of some route is blocked by the total cap.
    #[inline]
    pub(super) fn total_wait(self) -> bool {
        self.has(TOTAL_WAIT)
    }

    /// Whether any of `flags` is up.
    #[inline]
    fn has(self, flags: u128) -> bool {
        self.0 & flags != 0
    }

    /// The word with `flags` raised.
    #[inline]
    fn with(self, flags: u128) -> Self {
        Self(self.0 | flags)
    }

    /// The word with `flags` lowered.
    #[inline]
    fn without(self, flags: u128) -> Self {
        Self(self.0 & !flags)
    }

    /// The word after pushing slot `index` on the idle stack: the head
    /// replaced, the tag bumped (no ABA), the idle count up.
    #[inline]
    fn pushed(self, index: u32) -> Self {
        self.with_head(index, true)
    }

    /// The word after popping the head, `next` the new one.
    #[inline]
    fn popped(self, next: u32) -> Self {
        self.with_head(next, false)
    }

    #[inline]
    fn with_head(self, index: u32, up: bool) -> Self {
        let tag = (self.0 & TAG_MASK).wrapping_add(TAG_ONE) & TAG_MASK;
        let rest = self.0 & !(TAG_MASK | INDEX_MASK);
        let rest = if up { rest + IDLE_ONE } else { rest - IDLE_ONE };
        Self(rest | tag | u128::from(index))
    }
}

impl fmt::Debug for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Word")
            .field("head", &self.head())
            .field("idle", &self.idle())
            .field("listed", &self.listed())
            .field("waiters", &self.waiters())
            .field("nudged", &self.nudged())
            .field("contended", &self.contended())
            .field("route_wait", &self.has(ROUTE_WAIT))
            .field("total_wait", &self.total_wait())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A shard's atomic word: every operation returns the [`Word`] it found.
struct AtomicWord(AtomicU128);

impl AtomicWord {
    fn new(word: Word) -> Self {
        Self(AtomicU128::new(word.0))
    }

    #[inline(always)]
    fn load(&self, order: Ordering) -> Word {
        Word(self.0.load(order))
    }

    #[inline(always)]
    fn compare_exchange_weak(
        &self,
        current: Word,
        new: Word,
        success: Ordering,
        failure: Ordering,
    ) -> Result<Word, Word> {
        self.0
            .compare_exchange_weak(current.0, new.0, success, failure)
            .map(Word)
            .map_err(Word)
    }

    /// Raises `flags`; the word before.
    #[inline]
    fn raise(&self, flags: u128, order: Ordering) -> Word {
        Word(self.0.fetch_or(flags, order))
    }

    /// Lowers `flags`; the word before.
    #[inline]
    fn lower(&self, flags: u128, order: Ordering) -> Word {
        Word(self.0.fetch_and(!flags, order))
    }

    /// Adds `amount` (a count's unit, shifted in place); the word before.
    #[inline]
    fn add(&self, amount: u128, order: Ordering) -> Word {
        Word(self.0.fetch_add(amount, order))
    }

    /// Takes `amount` away; the word before.
    #[inline]
    fn sub(&self, amount: u128, order: Ordering) -> Word {
        Word(self.0.fetch_sub(amount, order))
    }
}

/// Sets (or clears) `flag` in `word`; returns the word before.
#[inline]
fn set_flag(word: &AtomicWord, flag: u128, on: bool) -> Word {
    if on {
        word.raise(flag, Ordering::AcqRel)
    } else {
        word.lower(flag, Ordering::AcqRel)
    }
}

/// Who takes an idle connection, and so what it must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Take {
    /// A request on the hot path: only while nobody waits (no barging).
    Newcomer,
    /// A request on the hot path that may overtake waiters (`Lax`), unless
    /// `ROUTE_WAIT` is up.
    Barging,
    /// The serializer, serving the oldest request.
    Serial,
    /// Disposal after the route closed.
    Drain,
}

impl Take {
    #[inline]
    fn allows(self, word: Word) -> bool {
        match self {
            Self::Newcomer => !word.is_closed() && word.waiters() == 0,
            // While returns go to the oldest request, so does what the
            // serializer puts back for it.
            Self::Barging => !word.is_closed() && !word.has(ROUTE_WAIT),
            Self::Serial => !word.is_closed(),
            Self::Drain => true,
        }
    }
}

/// Who puts a connection back, and so what it must respect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Put {
    /// A holder on the hot path: refused while requests wait on this route
    /// (counted, or flagged by `ROUTE_WAIT`) or anyone is blocked by the
    /// total cap (the connection then goes through the serializer, which
    /// serves the oldest request first).
    Return,
    /// A holder on the hot path of a route whose waiters compete (`Lax`):
    /// refused only while `ROUTE_WAIT` or `TOTAL_WAIT` is up; the caller
    /// kicks the serializer if the word it gets back is [`Word::wanted`].
    Compete,
    /// The serializer.
    Serial,
}

/// Why a connection was not put back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refused {
    Closed,
    /// Requests wait on this route, or for total capacity.
    Waiters,
}

/// What the idle index's reclaimer found in a listed shard
/// ([`Route::take_or_unlist`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reclaim {
    /// An idle connection's slot, now the caller's; the shard stays listed.
    Taken(SlotToken),
    /// The shard was empty and is no longer listed.
    Unlisted,
    /// The route is closed.
    Closed,
}

/// One shard of a route's idle connections, on a cache line of its own
/// (`CachePadded`): the word, and beside it the pointer to the FIFO list,
/// which never changes.
struct Shard {
    word: AtomicWord,
    /// The idle list with FIFO reuse; with LIFO it lives in the word.
    fifo: Option<Box<Fifo<u32>>>,
}

pub(crate) struct Route<K> {
    pub(super) key: K,
    pub(super) id: usize,
    /// Unique among every route the engine ever had (ids are reused).
    pub(super) uid: u64,
    /// The engine's sweep round when the route last had no connection and
    /// no request (see `Engine::sweep_routes`).
    pub(super) empty_since: AtomicU64,
    /// The route has an entry in the engine's queue of emptied routes.
    pub(super) in_sweep: AtomicBool,
    /// A power of two; shard 0 also counts the route's waiters.
    shards: Box<[CachePadded<Shard>]>,
    /// leased + idle (stateless and stateful) + connecting, and the
    /// route's cap.
    pub(super) allocated: Capped,
    pub(super) connecting: AtomicUsize,
    /// Idle stateful connections (kept by the serializer), and
    /// `STATEFUL_LISTED`.
    stateful: AtomicUsize,
    pub(super) created: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) timeouts: AtomicU64,
    /// `Sharded`: returns that went idle past the route's waiting requests
    /// since the oldest one was last served or the queue emptied.
    passes: CachePadded<Passes>,
}

impl<K> Route<K> {
    pub(super) fn new(
        key: K,
        id: usize,
        uid: u64,
        max: usize,
        reuse: Reuse,
        shards: usize,
    ) -> Self {
        debug_assert!(shards.is_power_of_two());
        Self {
            key,
            id,
            uid,
            empty_since: AtomicU64::new(0),
            in_sweep: AtomicBool::new(false),
            shards: (0..shards)
                .map(|_| {
                    CachePadded::new(Shard {
                        word: AtomicWord::new(Word::EMPTY),
                        fifo: match reuse {
                            Reuse::Lifo => None,
                            Reuse::Fifo => Some(Box::new(Fifo::new())),
                        },
                    })
                })
                .collect(),
            // A route's cap above what any total can be never binds.
            allocated: Capped::new(max.min(crate::types::MAX_CAPACITY)),
            connecting: AtomicUsize::new(0),
            stateful: AtomicUsize::new(0),
            created: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            passes: CachePadded::default(),
        }
    }

    /// Shard 0's word: the waiter count and the flags.
    #[inline]
    pub(super) fn word(&self) -> Word {
        self.shard_word(0)
    }

    /// The word of `shard`, as a return reads it first (for
    /// its barging rule and [`Self::put`]).
    #[inline]
    pub(super) fn shard_word(&self, shard: usize) -> Word {
        self.shards[shard].word.load(Ordering::Acquire)
    }

    /// How many shards the route has (a power of two).
    #[inline]
    pub(super) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Takes an idle stateless connection's slot from `shard`, if `rule`
    /// allows.
    #[inline(always)]
    pub(super) fn take<D>(&self, arena: &Arena<D>, shard: usize, rule: Take) -> Option<SlotToken> {
        let Shard { word: cell, fifo } = &*self.shards[shard];
        let mut word = cell.load(Ordering::Acquire);
        loop {
            if word.idle() == 0 || !rule.allows(word) {
                return None;
            }
            let next = match fifo {
                None => {
                    // Possibly stale if the head was taken meanwhile; the tag
                    // makes the CAS below fail then.
                    arena.link(word.head()).load(Ordering::Relaxed) as u32
                }
                Some(_) => word.head(),
            };
            match cell.compare_exchange_weak(
                word,
                word.popped(next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(seen) => word = seen,
            }
        }
        match fifo {
            // SAFETY: the CAS took the head off the stack, whose pushers
            // gave its ownership up.
            None => Some(unsafe { SlotToken::claim(word.head()) }),
            Some(queue) => {
                let backoff = Backoff::new();
                loop {
                    // Reserved: an index is queued before it is counted, so
                    // one is there (the loop only covers a push still
                    // completing, whose thread may have been preempted).
                    if let Some(index) = queue.pop() {
                        // SAFETY: dequeued, it is ours: the queue's pushers
                        // gave its ownership up.
                        return Some(unsafe { SlotToken::claim(index) });
                    }
                    backoff.snooze();
                }
            }
        }
    }

    /// Puts the slot of an idle stateless connection on `shard`'s idle list.
    /// Returns the shard's word as it was before; `LISTED` down in it says
    /// that this push listed the shard, and the caller adds its entry to the
    /// idle index. `word` is the shard's word as the caller read it
    /// ([`Self::shard_word`]): the first guess of the CAS, which checks it,
    /// so a return reads the queue once.
    ///
    /// `slot` is a slot of this route, holding its item, whose link is
    /// `link`; it is given up if this returns `Ok`, and handed back with
    /// the refusal else.
    ///
    /// `before_push` runs before each attempt, with the word the attempt
    /// expects (`None` with FIFO reuse, whose push cannot know it): once the
    /// push succeeds the caller may own nothing of the route any more, and
    /// so pins (see `Engine::release`) if what it does after the push,
    /// which the word before it decides, touches the route.
    #[inline(always)]
    pub(super) fn put(
        &self,
        link: &AtomicU64,
        shard: usize,
        slot: SlotToken,
        rule: Put,
        mut word: Word,
        mut before_push: impl FnMut(Option<Word>),
    ) -> Result<Word, (Refused, SlotToken)> {
        let Shard { word: cell, fifo } = &*self.shards[shard];
        // A return that lost the word to another core steps back before it
        // tries again, so the winner's next few leases and returns find the
        // line still in its cache instead of both cores pulling it back and
        // forth. Only returns back off: the lease is what the caller waits
        // for (a lease that backs off lengthens the tail of the acquire
        // latency), and a return's caller has its connection's work done.
        let backoff = Backoff::new();
        loop {
            if word.is_closed() {
                return Err((Refused::Closed, slot));
            }
            let refused = match rule {
                Put::Return => word.wanted(),
                Put::Compete => word.has(ROUTE_WAIT | TOTAL_WAIT),
                Put::Serial => false,
            };
            if refused {
                return Err((Refused::Waiters, slot));
            }
            let Some(queue) = fifo else {
                before_push(Some(word));
                link.store(u64::from(word.head()), Ordering::Relaxed);
                match cell.compare_exchange_weak(
                    word,
                    word.pushed(slot.index()),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(before) => {
                        // On the stack now: whoever pops it claims it.
                        slot.into_index();
                        return Ok(self.list(shard, before));
                    }
                    Err(seen) => {
                        word = seen;
                        backoff.spin();
                        continue;
                    }
                }
            };
            before_push(None);
            queue.push(slot.into_index());
            // The caller sees a close or waiters that came meanwhile in the
            // word returned, and drains or kicks.
            let before = cell.add(IDLE_ONE, Ordering::AcqRel);
            return Ok(self.list(shard, before));
        }
    }

    /// After a push to `shard` whose word was `before`: raises `LISTED`
    /// unless it was up; returns `before`, with `LISTED` down if this push
    /// raised it (see [`Self::put`]).
    #[inline(always)]
    fn list(&self, shard: usize, before: Word) -> Word {
        if before.listed() {
            return before;
        }
        // Listed by whichever push raises the flag.
        let raised = self.shards[shard].word.raise(LISTED, Ordering::AcqRel);
        if raised.listed() {
            before.with(LISTED)
        } else {
            before
        }
    }

    /// The idle index's reclaimer, holding `shard`'s entry: takes an idle
    /// stateless connection's slot from it (the caller then owns it, and
    /// keeps the entry), or, if it has none, lowers `LISTED` in the same
    /// CAS that finds it empty (the caller drops the entry), or says that
    /// the route is closed (the caller drops the entry; shutdown disposes
    /// of what is idle there, and closed shards take no pushes).
    pub(super) fn take_or_unlist<D>(&self, arena: &Arena<D>, shard: usize) -> Reclaim {
        let cell = &self.shards[shard].word;
        loop {
            let word = cell.load(Ordering::Acquire);
            if word.is_closed() {
                return Reclaim::Closed;
            }
            if word.idle() > 0 {
                match self.take(arena, shard, Take::Serial) {
                    Some(slot) => return Reclaim::Taken(slot),
                    // Leased or closed meanwhile: look again.
                    None => continue,
                }
            }
            if cell
                .compare_exchange_weak(
                    word,
                    word.without(LISTED),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return Reclaim::Unlisted;
            }
        }
    }

    /// Shard 0's word, read with a read-modify-write: ordered after every
    /// earlier change of it (see `Engine::route_freed`).
    pub(super) fn touch(&self) -> Word {
        self.touch_shard(0)
    }

    /// [`Self::touch`] for any shard.
    pub(super) fn touch_shard(&self, shard: usize) -> Word {
        self.shards[shard].word.add(0, Ordering::AcqRel)
    }

    /// [`Self::touch`] for every shard.
    pub(super) fn touch_shards(&self) {
        for shard in 0..self.shards.len() {
            self.touch_shard(shard);
        }
    }

    /// Lowers `NUDGED` on every shard and counts the idle stateless
    /// connections over all of them, in the same read-modify-write per
    /// shard: ordered against every push, so a push either is counted here
    /// or finds the flag down and kicks the serializer, which wakes a
    /// request that registered its waker before this call.
    pub(super) fn look(&self) -> usize {
        self.idle_read(|word| word.lower(NUDGED, Ordering::AcqRel))
    }

    /// The serializer, before it wakes the oldest request to compete:
    /// returns may spare their kick until someone has looked.
    pub(super) fn raise_nudged(&self) {
        self.flag(NUDGED, true);
    }

    /// The route's pass counter (see `compete`).
    #[inline]
    pub(super) fn passes(&self) -> &Passes {
        &self.passes
    }

    /// Counts a request about to queue in shard 0, and with `everywhere` in
    /// every other shard after; returns shard 0's word before.
    pub(super) fn add_waiter(&self, everywhere: bool) -> Word {
        let before = self.shards[0].word.add(WAITER_ONE, Ordering::AcqRel);
        if everywhere {
            for shard in &self.shards[1..] {
                shard.word.add(WAITER_ONE, Ordering::AcqRel);
            }
        }
        before
    }

    /// Counts a request that left the queue, as [`Self::add_waiter`] counted
    /// it, shard 0 last: no shard counts more waiters than shard 0.
    pub(super) fn remove_waiter(&self, everywhere: bool) {
        if everywhere {
            for shard in self.shards[1..].iter().rev() {
                shard.word.sub(WAITER_ONE, Ordering::AcqRel);
            }
        }
        self.shards[0].word.sub(WAITER_ONE, Ordering::AcqRel);
    }

    /// Sets (or clears) `flag` on every shard, shard 0 first: whoever
    /// reads it there (the serializer's check for `CLOSED` after it reserved
    /// capacity) knows that every shard has it.
    fn flag(&self, flag: u128, on: bool) {
        for shard in self.shards.iter() {
            set_flag(&shard.word, flag, on);
        }
    }

    /// Sets (or clears, with `NUDGED`) `CONTEND` on every shard, shard 0
    /// *last* (see [`Self::lower_contend`]); returns shard 0's word before.
    fn flag_contend(&self, on: bool) -> Word {
        let flags = if on { CONTEND } else { CONTEND | NUDGED };
        let mut before = Word::EMPTY;
        for shard in self.shards.iter().rev() {
            before = set_flag(&shard.word, flags, on);
        }
        before
    }

    pub(super) fn close(&self) {
        self.flag(CLOSED, true);
    }

    /// The first step of removing the route: takes its whole cap, if it
    /// holds no connection, so that no request can reserve one.
    pub(super) fn seal(&self) -> bool {
        self.allocated.bar_if_empty()
    }

    /// Gives the cap [`Self::seal`] took back.
    pub(super) fn unseal(&self) {
        self.allocated.unbar();
    }

    /// The second step of removing a sealed route: closes shard 0, in a CAS
    /// that finds no request counted there and nothing idle. A request about
    /// to queue counts itself there with a read-modify-write, so either it
    /// came first and this fails, or it sees `CLOSED` and looks the route up
    /// again. (Nothing can be idle on a sealed route: the check is a guard.)
    pub(super) fn close_if_unused(&self) -> bool {
        let cell = &self.shards[0].word;
        let mut word = cell.load(Ordering::Acquire);
        loop {
            if word.waiters() != 0 || word.idle() != 0 || word.is_closed() {
                return false;
            }
            match cell.compare_exchange_weak(
                word,
                word.with(CLOSED),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Raises or lowers `TOTAL_WAIT`.
    pub(super) fn set_total_wait(&self, on: bool) {
        self.flag(TOTAL_WAIT, on);
    }

    /// Raises `CONTEND` (the serializer, or a request about to queue that
    /// found it down in shard 0), so that every return from then on counts
    /// itself against the waiting requests.
    pub(super) fn raise_contend(&self) {
        self.flag_contend(true);
    }

    /// The serializer, once a route's queue is empty: lowers `CONTEND`.
    /// Returns `false`, leaving it raised, if a request came meanwhile
    /// (counted, its `Enqueue` not yet applied).
    ///
    /// Such a request counts itself in shard 0 and then raises the flag
    /// unless it was up, shard 0 last as here. Shard 0 orders the two
    /// read-modify-writes: if our clear of it comes first, the request's
    /// raise of every shard comes after our clear of that shard; if the
    /// request's count comes first, our clear returns it, and we raise the
    /// flag again.
    pub(super) fn lower_contend(&self) -> bool {
        let before = self.flag_contend(false);
        if before.waiters() == 0 {
            return true;
        }
        self.flag_contend(true);
        false
    }

    /// Raises or lowers `ROUTE_WAIT`.
    pub(super) fn set_route_wait(&self, on: bool) {
        self.flag(ROUTE_WAIT, on);
    }

    /// Reserves one unit of this route's own cap.
    pub(super) fn reserve_own(&self) -> bool {
        self.allocated.try_take()
    }

    pub(super) fn is_over_cap(&self) -> bool {
        self.allocated.is_over()
    }

    /// Idle stateful connections.
    pub(super) fn stateful_idle(&self) -> usize {
        self.stateful.load(Ordering::Acquire) & !STATEFUL_LISTED
    }

    /// The serializer, as a stateful connection goes idle: counts it, and
    /// with `list` says whether this listed the route (the caller adds its
    /// entry to the stateful index), as a push lists its shard.
    pub(super) fn stateful_went_idle(&self, list: bool) -> bool {
        let before = self.stateful.fetch_add(1, Ordering::AcqRel);
        list && before & STATEFUL_LISTED == 0
            && self.stateful.fetch_or(STATEFUL_LISTED, Ordering::AcqRel) & STATEFUL_LISTED == 0
    }

    /// The serializer, as an idle stateful connection leaves.
    pub(super) fn stateful_left(&self) {
        self.stateful.fetch_sub(1, Ordering::AcqRel);
    }

    /// The stateful index's reclaimer, holding the route's entry: whether
    /// the route has idle stateful connections; if not, the route is
    /// unlisted in the same CAS that finds none (the caller drops the entry).
    pub(super) fn stateful_or_unlist(&self) -> bool {
        let mut seen = self.stateful.load(Ordering::Acquire);
        loop {
            if seen & !STATEFUL_LISTED != 0 {
                return true;
            }
            match self.stateful.compare_exchange_weak(
                seen,
                seen & !STATEFUL_LISTED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return false,
                Err(now) => seen = now,
            }
        }
    }

    /// Idle stateless connections over all shards.
    pub(super) fn idle(&self) -> usize {
        self.idle_read(|word| word.load(Ordering::Acquire))
    }

    /// The idle counts of every shard's word, each read with `read`, summed.
    fn idle_read(&self, read: impl Fn(&AtomicWord) -> Word) -> usize {
        self.shards
            .iter()
            .map(|shard| read(&shard.word).idle())
            .sum()
    }

    pub(super) fn stats(&self) -> Stats {
        let word = self.word();
        let idle = self.idle() + self.stateful_idle();
        let connecting = self.connecting.load(Ordering::Acquire);
        let allocated = match self.allocated.count() {
            BARRED => 0,
            allocated => allocated,
        };
        Stats {
            leased: allocated.saturating_sub(idle + connecting),
            idle,
            pending: word.waiters(),
            connecting,
            max: self.allocated.cap(),
            created: self.created.load(Ordering::Relaxed),
            closed: self.closed.load(Ordering::Relaxed),
            timeouts: self.timeouts.load(Ordering::Relaxed),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for Route<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("key", &self.key)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;

    #[test]
    fn word_fields_do_not_overlap() {
        let word = Word(Word::EMPTY.pushed(7).0 + WAITER_ONE * 3).with(TOTAL_WAIT);
        assert_eq!(word.head(), 7);
        assert_eq!(word.idle(), 1);
        assert_eq!(word.waiters(), 3);
        assert!(word.total_wait() && word.wanted() && !word.is_closed());
        let popped = word.popped(NIL);
        assert_eq!(
            (popped.head(), popped.idle(), popped.waiters()),
            (NIL, 0, 3)
        );
        assert_eq!((popped.0 & TAG_MASK) >> 32, 2, "each step bumps the tag");
        let closed = popped.with(CLOSED);
        assert!(closed.is_closed() && closed.waiters() == 3);
        let flagged = popped.with(CONTEND | ROUTE_WAIT);
        assert_eq!(flagged.waiters(), 3, "the flags sit above the count");
        assert!(Word(popped.0 - 3 * WAITER_ONE).with(CONTEND).wanted() && !flagged.is_closed());
        let nudged_word = popped.with(NUDGED);
        assert_eq!(nudged_word.waiters(), 3, "`NUDGED` sits above the count");
        assert!(nudged_word.nudged() && !flagged.nudged() && !nudged_word.contended());
        assert!(!Word(NUDGED).wanted(), "`NUDGED` alone wants nothing");
        assert_eq!(WAITERS_MASK & (NUDGED | CONTEND | LISTED), 0);
        let listed_word = word.with(LISTED);
        assert!(listed_word.listed() && !word.listed());
        assert_eq!(listed_word.idle(), 1, "`LISTED` sits above the idle count");
        assert!(
            crate::types::MAX_CAPACITY <= IDLE_BITS as usize,
            "every idle count fits"
        );
        assert_eq!(Word(WAITERS_MASK).waiters(), (1 << 27) - 1);
    }
}
