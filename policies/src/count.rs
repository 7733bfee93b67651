//! A count that each of a set of items keeps for itself, written without a
//! read-modify-write, and summed for the set: how a pool counts the idle
//! hits of a route's connections without an atomic add on the hit path.
//!
//! Each item has a [`CountPart`] that only the item's current holder adds
//! to, with a load and a store: the pool hands an item from one holder to
//! the next with the same synchronization that hands over the rest of it,
//! so the next holder's load sees the last holder's store. The route's
//! [`CountSum`] keeps the parts of the open items and the total of the
//! closed ones, under one lock that a closing part takes to move its count
//! from one to the other, so that a sum never misses a closed item's count
//! nor counts it twice. Parts are opened and closed with their items (the
//! slow path); sums are read by whoever asks.
//!
//! `loom-tests/tests/count.rs` model-checks it.

use crate::sync::{Arc, AtomicU64, Mutex, Ordering::Relaxed};

/// The parts of the open items, and what the closed ones counted.
#[derive(Debug, Default)]
struct Parts {
    open: Vec<Arc<AtomicU64>>,
    closed: u64,
}

/// The sum of the counts of a set of items, open and closed.
#[derive(Debug, Default)]
pub struct CountSum {
    parts: Arc<Mutex<Parts>>,
}

impl CountSum {
    /// A sum of no items yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The part of a new item, counting from zero.
    pub fn open(&self) -> CountPart {
        let count = Arc::new(AtomicU64::new(0));
        with(&self.parts, |parts| parts.open.push(count.clone()));
        CountPart {
            count,
            parts: self.parts.clone(),
        }
    }

    /// What every item counted: the closed ones exactly, the open ones as of
    /// their holders' latest adds visible to this thread.
    pub fn total(&self) -> u64 {
        with(&self.parts, |parts| {
            let open: u64 = parts.open.iter().map(|count| count.load(Relaxed)).sum();
            parts.closed + open
        })
    }
}

/// Runs `f` on the parts, locked (a panic elsewhere leaves them sound: each
/// change is one step).
fn with<R>(parts: &Mutex<Parts>, f: impl FnOnce(&mut Parts) -> R) -> R {
    f(&mut parts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner))
}

/// One item's count in a [`CountSum`]; dropping it closes the item, its
/// count joining the closed ones'.
#[derive(Debug)]
pub struct CountPart {
    count: Arc<AtomicU64>,
    parts: Arc<Mutex<Parts>>,
}

impl CountPart {
    /// Adds one. Only the item's holder may call it, and holders must hand
    /// the item over with synchronization (a release by the one, an
    /// acquire by the next), as a pool does: two threads adding at once
    /// would lose adds.
    #[inline]
    pub fn add_one(&self) {
        self.count.store(self.count.load(Relaxed) + 1, Relaxed);
    }
}

impl Drop for CountPart {
    fn drop(&mut self) {
        with(&self.parts, |parts| {
            parts.closed += self.count.load(Relaxed);
            if let Some(at) = parts
                .open
                .iter()
                .position(|count| Arc::ptr_eq(count, &self.count))
            {
                parts.open.swap_remove(at);
            }
        });
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_sum_counts_open_and_closed_parts_once() {
        let sum = CountSum::new();
        let a = sum.open();
        let b = sum.open();
        a.add_one();
        a.add_one();
        b.add_one();
        assert_eq!(sum.total(), 3);
        drop(a);
        assert_eq!(sum.total(), 3);
        let c = sum.open();
        c.add_one();
        drop(b);
        assert_eq!(sum.total(), 4);
        drop(c);
        assert_eq!(sum.total(), 4);
    }
}
