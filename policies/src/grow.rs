//! An array that grows in segments as it is used, and never moves.
//!
//! Segment `s` holds `FIRST << s` places, after the `FIRST * (2^s - 1)`
//! places of the segments before it, so a place's index maps to its segment
//! and offset by arithmetic. Each segment is allocated once, by the first
//! thread that needs a place in it (a `OnceLock`: threads racing for the
//! same segment wait for the one that allocates it), and then never moved
//! nor freed while the array lives. So a reference to a place stays valid
//! for the array's life, and reading one takes a bit scan and plain loads
//! (the segment's `OnceLock`, then the place), with no lock and nothing to
//! reclaim.
//!
//! An array of `cap` places holds none until one is asked for, and at most
//! one segment per doubling of the highest place used, the last one cut to
//! `cap`: memory follows use, not the cap.

use crate::sync::OnceLock;
use std::fmt;

/// Places in the first segment (a power of two); under loom 2, so that a
/// model with a handful of connections allocates several segments.
const FIRST: usize = if cfg!(leasehold_loom) { 2 } else { 16 };
/// Segments of an array: enough for `usize::MAX / 2` places; under loom
/// 8 (510 places), as loom makes every segment's `OnceLock` afresh in
/// every execution it explores.
const SEGMENTS: usize = if cfg!(leasehold_loom) {
    8
} else {
    usize::BITS as usize - 5
};
/// The places of all segments: the most an array holds.
const MAX_PLACES: usize = FIRST * ((1 << SEGMENTS) - 1);

/// Values by index, in segments of doubling size allocated on first use.
pub(crate) struct GrowArray<V> {
    segments: [OnceLock<Box<[V]>>; SEGMENTS],
    /// Places the array may hold: indices below it.
    cap: usize,
}

/// Segment and offset of place `index` (below `MAX_PLACES`).
///
/// Counted from `FIRST`, the places of segment `s` are the numbers whose
/// highest bit is bit `s + log2(FIRST)`, and the offset is the rest: a bit
/// scan and a bit clear, the cheapest form of the arithmetic (it runs on
/// every slot access of the hit path).
#[inline]
fn place(index: usize) -> (usize, usize) {
    let from_first = index + FIRST;
    let top = usize::BITS - 1 - from_first.leading_zeros();
    (
        top as usize - FIRST.trailing_zeros() as usize,
        from_first ^ (1 << top),
    )
}

impl<V> GrowArray<V> {
    /// An array of up to `cap` places (at most `MAX_PLACES`), none
    /// allocated yet.
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            segments: std::array::from_fn(|_| OnceLock::new()),
            cap: cap.min(MAX_PLACES),
        }
    }

    /// How many places the array may hold.
    pub(crate) fn cap(&self) -> usize {
        self.cap
    }

    /// Place `index`, if its segment is allocated.
    #[inline]
    pub(crate) fn get(&self, index: usize) -> Option<&V> {
        if index >= MAX_PLACES {
            return None;
        }
        let (segment, offset) = place(index);
        let segment = self.segments.get(segment)?;
        // Under loom a read is no scheduling point, which keeps the models'
        // state space as it was with a fixed array: an arena slot's index
        // reaches its reader from whoever made the slot through a stack or
        // a lease, which loom checks, and loom tracks the slot's own cells
        // from their creation on, so a slot read out of that order is still
        // caught where it is used. `get_or_grow`, which may race to
        // allocate, is a loom step.
        #[cfg(leasehold_loom)]
        let segment = segment.peek();
        #[cfg(not(leasehold_loom))]
        let segment = segment.get();
        segment?.get(offset)
    }

    /// Place `index`, its segment allocated first (every place of it made
    /// by `make`) if no place of that segment was asked for before.
    ///
    /// # Panics
    /// If `index` is not below the cap.
    pub(crate) fn get_or_grow(&self, index: usize, mut make: impl FnMut() -> V) -> &V {
        assert!(
            index < self.cap,
            "place {index} of an array of {}",
            self.cap
        );
        let (segment, offset) = place(index);
        let len = (FIRST << segment).min(self.cap - (index - offset));
        &self.segments[segment].get_or_init(|| (0..len).map(|_| make()).collect())[offset]
    }

    /// How many places are allocated.
    pub(crate) fn allocated(&self) -> usize {
        self.segments
            .iter()
            .filter_map(|segment| segment.get())
            .map(|segment| segment.len())
            .sum()
    }
}

impl<V> fmt::Debug for GrowArray<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GrowArray")
            .field("cap", &self.cap)
            .field("allocated", &self.allocated())
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::{place, GrowArray, FIRST};

    #[test]
    fn places_are_dense_and_distinct() {
        let mut expect = (0, 0);
        for index in 0..if cfg!(miri) { 2_000 } else { 100_000 } {
            let (segment, offset) = place(index);
            assert_eq!((segment, offset), expect, "index {index}");
            expect = if offset + 1 == FIRST << segment {
                (segment + 1, 0)
            } else {
                (segment, offset + 1)
            };
        }
    }

    #[test]
    fn grows_one_segment_per_doubling_and_stops_at_the_cap() {
        let array: GrowArray<usize> = GrowArray::new(100);
        assert_eq!(array.allocated(), 0, "nothing before first use");
        assert!(array.get(0).is_none());
        let mut next = 0;
        let mut make = || {
            next += 1;
            next - 1
        };
        assert_eq!(*array.get_or_grow(0, &mut make), 0);
        assert_eq!(array.allocated(), FIRST);
        // The second segment, 32 places; the third is cut to the cap.
        array.get_or_grow(20, &mut make);
        assert_eq!(array.allocated(), FIRST + 2 * FIRST);
        array.get_or_grow(99, &mut make);
        assert_eq!(array.allocated(), 100);
        assert!(array.get(100).is_none());
        // Each place was made once, in order, and stays where it is.
        let first = array.get(5).unwrap() as *const usize;
        array.get_or_grow(50, &mut make);
        assert_eq!(array.get(5).unwrap() as *const usize, first);
        assert_eq!(
            (0..100).map(|i| *array.get(i).unwrap()).sum::<usize>(),
            4950
        );
    }

    #[test]
    #[should_panic(expected = "place 10 of an array of 10")]
    fn a_place_past_the_cap_is_refused() {
        let array: GrowArray<u8> = GrowArray::new(10);
        array.get_or_grow(10, || 0);
    }

    #[test]
    fn racing_threads_allocate_each_segment_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let array: GrowArray<usize> = GrowArray::new(1_000);
        let made = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let (array, made) = (&array, &made);
                scope.spawn(move || {
                    for index in (t..1_000).step_by(4) {
                        array.get_or_grow(index, || made.fetch_add(1, Ordering::Relaxed));
                    }
                });
            }
        });
        assert_eq!(made.load(Ordering::Relaxed), 1_000, "every place made once");
        assert_eq!(array.allocated(), 1_000);
    }
}
