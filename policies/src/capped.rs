//! A count and its cap in one atomic word, so that the cap can change while
//! others take and give back units, and every take is checked against the
//! cap in force at the instant it is made.
//!
//! The pool keeps two of these: each route's connections (leased, idle and
//! connecting) against its `max`, and every connection against
//! `max_total`. Kept apart, a taker would read the cap, then add to the
//! count: a cap lowered between the two would let the add through after
//! the lowering returned. One word makes the check and the add one
//! compare-and-swap, and a change of the cap a read-modify-write of the
//! same word, so a change is ordered against every take: after
//! [`Capped::set_cap`] returns, no take succeeds while the count is at or
//! over the new cap. Units taken before it stay taken; the owner closes
//! them as they come back ([`Capped::is_over`]).
//!
//! `loom-tests/tests/capped.rs` model-checks it.

use crate::sync::{AtomicU64, Ordering};

/// The count's bits: the low half of the word, the cap the high half.
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

/// A count above any cap (caps are below 2^30): a count set to it lets no
/// take through, whatever the cap.
pub(crate) const BARRED: usize = 1 << 31;

/// A count of units and the most that may be taken, in one atomic word.
pub struct Capped {
    word: AtomicU64,
}

#[inline(always)]
fn count_of(word: u64) -> usize {
    (word & COUNT_MASK) as usize
}

#[inline(always)]
fn cap_of(word: u64) -> usize {
    (word >> COUNT_BITS) as usize
}

#[inline(always)]
fn pack(cap: usize, count: usize) -> u64 {
    debug_assert!(cap <= COUNT_MASK as usize && count <= COUNT_MASK as usize);
    ((cap as u64) << COUNT_BITS) | count as u64
}

impl Capped {
    /// No units taken, at most `cap` (below 2^31).
    pub fn new(cap: usize) -> Self {
        assert!(cap < BARRED, "a cap of {cap} is too large");
        Self {
            word: AtomicU64::new(pack(cap, 0)),
        }
    }

    /// Takes one unit if the count is below the cap.
    #[inline]
    pub fn try_take(&self) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if count_of(word) >= cap_of(word) {
                return false;
            }
            match self.word.compare_exchange_weak(
                word,
                word + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Gives `n` units back; returns the count before.
    #[inline]
    pub fn give_back(&self, n: usize) -> usize {
        let before = count_of(self.word.fetch_sub(n as u64, Ordering::AcqRel));
        debug_assert!(before >= n, "more units given back than taken");
        before
    }

    /// The count, read with a read-modify-write: it cannot miss a take
    /// ordered before it.
    pub fn touch(&self) -> usize {
        count_of(self.word.fetch_add(0, Ordering::AcqRel))
    }

    /// The count.
    #[inline]
    pub fn count(&self) -> usize {
        count_of(self.word.load(Ordering::Acquire))
    }

    /// The cap.
    pub fn cap(&self) -> usize {
        cap_of(self.word.load(Ordering::Acquire))
    }

    /// Whether more units are taken than the cap allows (after the cap was
    /// lowered), in one load.
    #[inline]
    pub fn is_over(&self) -> bool {
        let word = self.word.load(Ordering::Acquire);
        count_of(word) > cap_of(word)
    }

    /// Sets the cap (below 2^31); returns the count at the instant it
    /// changed.
    pub fn set_cap(&self, cap: usize) -> usize {
        assert!(cap < BARRED, "a cap of {cap} is too large");
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            let new = pack(cap, count_of(word));
            match self
                .word
                .compare_exchange_weak(word, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return count_of(word),
                Err(seen) => word = seen,
            }
        }
    }

    /// Sets the count to [`BARRED`] if it is 0, so that nothing can be
    /// taken until [`Self::unbar`]; whether it did.
    pub(crate) fn bar_if_empty(&self) -> bool {
        let mut word = self.word.load(Ordering::Acquire);
        loop {
            if count_of(word) != 0 {
                return false;
            }
            let barred = pack(cap_of(word), BARRED);
            match self
                .word
                .compare_exchange_weak(word, barred, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(seen) => word = seen,
            }
        }
    }

    /// Undoes [`Self::bar_if_empty`]: the count back to 0, the cap kept.
    pub(crate) fn unbar(&self) {
        self.word.fetch_and(!COUNT_MASK, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("Capped")
            .field("count", &count_of(word))
            .field("cap", &cap_of(word))
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;

    #[test]
    fn takes_up_to_the_cap_and_follows_a_change() {
        let capped = Capped::new(2);
        assert!(capped.try_take() && capped.try_take());
        assert!(!capped.try_take(), "at the cap");
        assert_eq!(capped.set_cap(1), 2);
        assert!(capped.is_over());
        assert_eq!(capped.give_back(1), 2);
        assert!(!capped.is_over());
        assert!(!capped.try_take(), "at the lowered cap");
        assert_eq!(capped.set_cap(3), 1);
        assert!(capped.try_take() && capped.try_take());
        assert!(!capped.try_take());
        assert_eq!((capped.count(), capped.cap()), (3, 3));
    }

    #[test]
    fn a_barred_count_lets_nothing_through_and_keeps_its_cap() {
        let capped = Capped::new(4);
        assert!(capped.bar_if_empty());
        assert!(!capped.try_take());
        capped.set_cap(8);
        assert!(!capped.try_take());
        capped.unbar();
        assert_eq!((capped.count(), capped.cap()), (0, 8));
        assert!(capped.try_take());
        assert!(!capped.bar_if_empty(), "a unit is taken");
    }
}
