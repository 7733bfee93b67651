//! One route of a `Strict` core: its packed idle/waiter word, its idle list
//! and its capacity counters.
//!
//! # Implementation Details
//!
//! The `word` packs the number of idle stateless connections (bits 0..32),
//! the number of waiting requests (bits 32..63) and a closed flag (bit 63).
//! Keeping both counts in one word is what makes a lost wake-up impossible
//! without any fence: a return adds to the idle count and a request that is
//! about to queue adds to the waiter count, both by read-modify-write on the
//! same word, so one of them always sees the other — the return then sends
//! the connection to the serializer, or the serializer finds it idle.
//!
//! The idle count is a reservation count: an index is pushed on the idle
//! list *before* the count goes up, and the count goes down *before* an index
//! is popped, so whoever reserved one always finds one.

use super::Slot;
use crate::arena::{Arena, IndexStack};
use crate::sync::{AtomicU64, AtomicUsize, BoundedFifo, Ordering};
use crate::types::{Reuse, Stats};
use crossbeam_utils::CachePadded;
use std::fmt;

pub(super) const IDLE_ONE: u64 = 1;
pub(super) const WAITER_ONE: u64 = 1 << 32;
const IDLE_MASK: u64 = WAITER_ONE - 1;
const CLOSED: u64 = 1 << 63;

#[inline]
pub(super) fn idle_of(word: u64) -> u64 {
    word & IDLE_MASK
}

#[inline]
pub(super) fn waiters_of(word: u64) -> u64 {
    (word & !CLOSED) >> 32
}

#[inline]
pub(super) fn is_closed(word: u64) -> bool {
    word & CLOSED != 0
}

/// The idle list of stateless connections, in the configured order.
// One per route, inside the route's `Arc`: the size of the (cache-padded)
// queue costs nothing, while boxing it would add a pointer chase to every
// FIFO lease and return.
#[allow(clippy::large_enum_variant)]
enum IdleList {
    Lifo(IndexStack),
    Fifo(BoundedFifo<u32>),
}

pub(crate) struct Route<K> {
    pub(super) key: K,
    pub(super) id: usize,
    word: CachePadded<AtomicU64>,
    idle: IdleList,
    /// leased + idle (stateless and stateful) + connecting.
    pub(super) allocated: AtomicUsize,
    pub(super) max: AtomicUsize,
    pub(super) connecting: AtomicUsize,
    pub(super) stateful_idle: AtomicUsize,
    pub(super) created: AtomicU64,
    pub(super) closed: AtomicU64,
    pub(super) timeouts: AtomicU64,
}

impl<K> Route<K> {
    pub(super) fn new(key: K, id: usize, max: usize, reuse: Reuse, arena_len: usize) -> Self {
        Self {
            key,
            id,
            word: CachePadded::new(AtomicU64::new(0)),
            idle: match reuse {
                Reuse::Lifo => IdleList::Lifo(IndexStack::new()),
                Reuse::Fifo => IdleList::Fifo(BoundedFifo::new(arena_len)),
            },
            allocated: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            connecting: AtomicUsize::new(0),
            stateful_idle: AtomicUsize::new(0),
            created: AtomicU64::new(0),
            closed: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    pub(super) fn word(&self) -> u64 {
        self.word.load(Ordering::Acquire)
    }

    /// Reserves one idle stateless connection; with `defer_to_waiters`, only
    /// if no request is queued (a newcomer never overtakes a waiter).
    #[inline]
    pub(super) fn reserve_idle(&self, defer_to_waiters: bool) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if idle_of(word) == 0 || is_closed(word) {
                return false;
            }
            if defer_to_waiters && waiters_of(word) != 0 {
                return false;
            }
            match self.word.compare_exchange_weak(
                word,
                word - IDLE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Like `reserve_idle(false)`, but also after the route was closed (for
    /// draining it).
    pub(super) fn reserve_idle_for_drain(&self) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if idle_of(word) == 0 {
                return false;
            }
            match self.word.compare_exchange_weak(
                word,
                word - IDLE_ONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Pops a reserved index.
    #[inline]
    pub(super) fn pop_reserved<T>(&self, arena: &Arena<Slot<K, T>>) -> u32 {
        loop {
            let popped = match &self.idle {
                IdleList::Lifo(stack) => stack.pop(arena),
                IdleList::Fifo(queue) => queue.pop(),
            };
            match popped {
                Some(index) => return index,
                // Cannot happen for the stack; the queue may be finishing a
                // push that was counted (see module docs).
                None => crate::sync::spin_hint(),
            }
        }
    }

    /// Puts an index on the idle list and counts it. Returns the word as it
    /// was before the count went up.
    ///
    /// # Safety
    /// The caller owns `index` (a slot of `arena` belonging to this route,
    /// holding a stateless item) and gives it up.
    #[inline]
    pub(super) unsafe fn push_idle<T>(&self, arena: &Arena<Slot<K, T>>, index: u32) -> u64 {
        match &self.idle {
            // SAFETY: forwarded from the caller.
            IdleList::Lifo(stack) => unsafe { stack.push(arena, index) },
            IdleList::Fifo(queue) => {
                // Capacity is the arena's length, and an index is on at most
                // one list at a time, so the queue is never full.
                if queue.push(index).is_err() {
                    unreachable!("idle queue sized to the arena overflowed");
                }
            }
        }
        self.word.fetch_add(IDLE_ONE, Ordering::AcqRel)
    }

    /// Counts a request about to queue; returns the word before.
    pub(super) fn add_waiter(&self) -> u64 {
        self.word.fetch_add(WAITER_ONE, Ordering::AcqRel)
    }

    /// Counts a request that left the queue.
    pub(super) fn remove_waiter(&self) {
        self.word.fetch_sub(WAITER_ONE, Ordering::AcqRel);
    }

    pub(super) fn close(&self) {
        self.word.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Reserves one unit of this route's own cap.
    pub(super) fn reserve_own(&self) -> bool {
        let mut allocated = self.allocated.load(Ordering::Acquire);
        loop {
            if allocated >= self.max.load(Ordering::Acquire) {
                return false;
            }
            match self.allocated.compare_exchange_weak(
                allocated,
                allocated + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => allocated = seen,
            }
        }
    }

    pub(super) fn is_over_cap(&self) -> bool {
        self.allocated.load(Ordering::Acquire) > self.max.load(Ordering::Acquire)
    }

    pub(super) fn stats(&self) -> Stats {
        let word = self.word();
        let idle = idle_of(word) as usize + self.stateful_idle.load(Ordering::Acquire);
        let connecting = self.connecting.load(Ordering::Acquire);
        let allocated = self.allocated.load(Ordering::Acquire);
        Stats {
            leased: allocated.saturating_sub(idle + connecting),
            idle,
            pending: waiters_of(word) as usize,
            connecting,
            max: self.max.load(Ordering::Acquire),
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
