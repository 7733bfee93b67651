//! An arena of slots that grows with use, and lock-free stacks of slot
//! indices.
//!
//! Every connection a policy manages lives in one slot for its whole life;
//! the slot index is the connection's token. Idle lists and the free list are
//! Treiber stacks whose nodes *are* the slots, linked through each slot's
//! `next` index, so pushing and popping never allocates and never frees
//! memory: the arena outlives every stack, which removes the reclamation
//! problem of pointer-based lock-free stacks.
//!
//! The arena holds up to `cap` slots (the pool's `max_total`) but makes
//! them only as they are first needed: [`Arena::fresh`] hands out the next
//! index never used, and the slots live in a [`GrowArray`], whose segments
//! of doubling size are allocated on first use and never move. A pool
//! allowed a million connections that opens ten holds sixteen slots.
//!
//! # Implementation Details
//!
//! A stack head packs `(index, tag)` into one `AtomicU64`; the tag is bumped
//! by every successful push or pop, so a popper that read `next` of a slot
//! that was popped and pushed again meanwhile fails its CAS (no ABA). The
//! stale `next` it may have read is an atomic load, never a data race.
//!
//! Fresh indices are claimed with a CAS on the count of slots made, which
//! never passes `cap`; the claimer then makes sure the index's segment
//! exists (`OnceLock`) before it uses the slot or hands the index on, so
//! whoever gets an index later — from a stack, whose CAS orders it after
//! the claimer's, or from a `Held` — finds the segment allocated. Slots are
//! only ever added: a freed slot goes on the free list, to be reused before
//! a fresh one is made.
//!
//! Ownership rule for the slot contents (`# Safety` of the accessors): the
//! thread that popped an index from a stack — or was handed it inside a
//! `Held`/`Permit` — is the only one that touches that slot's `data` until it
//! pushes the index onto a stack again. The push's release CAS publishes the
//! data to the next popper's acquire CAS.
//!
//! Each slot has a cache line (two, where the prefetcher pairs them) to
//! itself: two threads reusing two connections write their slots' links on
//! every return, and sharing a line made each such cycle a line transfer
//! between cores (`Lax` with two threads did 14 M cycles/s instead of 31).

use crate::grow::GrowArray;
use crate::sync::{AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::fmt;

pub(crate) const NIL: u32 = u32::MAX;

/// One slot: the link used by whichever stack holds it, and its data.
pub(crate) struct Slot<D> {
    next: AtomicU64,
    data: UnsafeCell<D>,
}

impl<D> Slot<D> {
    /// Runs `f` on this slot's data.
    ///
    /// # Safety
    /// The caller must own this slot's index (see the module docs): no other
    /// thread may access its data for the duration of the call.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        // SAFETY: the caller owns the slot, so this is the only live
        // reference to its data (module docs, ownership rule).
        self.data.with_mut(|ptr| f(unsafe { &mut *ptr }))
    }

    /// This slot's link, for stacks kept outside this module (a route's
    /// idle stack lives in its route word).
    #[inline]
    pub(crate) fn link(&self) -> &AtomicU64 {
        &self.next
    }
}

/// Up to `cap` slots, made as they are first needed.
pub(crate) struct Arena<D> {
    slots: GrowArray<CachePadded<Slot<D>>>,
    /// How many slots were handed out by [`Arena::fresh`]: every index below
    /// it has a slot. On a line of its own: it changes on connects, while
    /// the hit path reads the segments beside it.
    made: CachePadded<AtomicUsize>,
}

impl<D: Default> Arena<D> {
    /// An arena of up to `cap` slots, none made yet (nothing allocated).
    pub(crate) fn new(cap: usize) -> Self {
        assert!(cap < NIL as usize, "arena too large");
        Self {
            slots: GrowArray::new(cap),
            made: CachePadded::new(AtomicUsize::new(0)),
        }
    }

    /// A slot never used before, if fewer than `cap` were made; the caller
    /// owns its index. Allocates the slot's segment if it is the first of
    /// it (once per doubling of the arena).
    pub(crate) fn fresh(&self) -> Option<u32> {
        let mut made = self.made.load(Ordering::Relaxed);
        loop {
            if made >= self.slots.cap() {
                return None;
            }
            // Only the count is shared here: the slot is published by its
            // segment's `OnceLock`, and its index by whatever hands it on.
            match self.made.compare_exchange_weak(
                made,
                made + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(seen) => made = seen,
            }
        }
        self.slots.get_or_grow(made, || {
            CachePadded::new(Slot {
                next: AtomicU64::new(u64::from(NIL)),
                data: UnsafeCell::new(D::default()),
            })
        });
        Some(made as u32)
    }
}

impl<D> Arena<D> {
    /// How many slots the arena may make.
    #[cfg(test)]
    fn cap(&self) -> usize {
        self.slots.cap()
    }

    /// How many slots were made.
    #[cfg(all(test, not(leasehold_loom)))]
    pub(crate) fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }

    /// Slot `index`: one made by [`Arena::fresh`], whose segment exists.
    /// Finding a slot takes a few instructions more than indexing an array
    /// would: a caller that touches a slot twice looks it up once.
    #[inline]
    pub(crate) fn slot(&self, index: u32) -> &Slot<D> {
        self.slots
            .get(index as usize)
            .expect("an index handed out by `fresh`")
    }

    /// Runs `f` on the data of slot `index`.
    ///
    /// # Safety
    /// The caller must own `index` (see the module docs): no other thread may
    /// access this slot's data for the duration of the call.
    #[inline]
    pub(crate) unsafe fn with<R>(&self, index: u32, f: impl FnOnce(&mut D) -> R) -> R {
        // SAFETY: forwarded from the caller.
        unsafe { self.slot(index).with(f) }
    }

    /// The data of slot `index`, for as long as the returned borrow lives.
    ///
    /// # Safety
    /// The caller must own `index` while the borrow lives, and create no
    /// other reference to this slot's data meanwhile (loom does not track the
    /// access past this call).
    #[inline]
    // The slot is an `UnsafeCell`: exclusive access comes from owning the
    // index, not from `&mut self`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get_mut(&self, index: u32) -> &mut D {
        // SAFETY: forwarded from the caller.
        self.slot(index).data.with_mut(|ptr| unsafe { &mut *ptr })
    }

    /// The data of slot `index`, shared, for as long as the returned borrow
    /// lives.
    ///
    /// # Safety
    /// The caller must own `index` while the borrow lives and create no
    /// `&mut` to this slot's data meanwhile.
    #[inline]
    pub(crate) unsafe fn get(&self, index: u32) -> &D {
        // SAFETY: forwarded from the caller.
        self.slot(index).data.with_mut(|ptr| unsafe { &*ptr })
    }

    /// The link of slot `index`, for stacks kept outside this module (a
    /// route's idle stack lives in its route word).
    #[inline]
    pub(crate) fn link(&self, index: u32) -> &AtomicU64 {
        &self.slot(index).next
    }
}

// SAFETY: a slot's data is only ever accessed by the one thread that owns
// its index (module docs), so sharing the arena moves a `D` from thread to
// thread but never shares one: `D: Send` suffices, as for a channel.
unsafe impl<D: Send> Sync for Arena<D> {}
// SAFETY: as above.
unsafe impl<D: Send> Send for Arena<D> {}

impl<D> fmt::Debug for Arena<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("cap", &self.slots.cap())
            .field("made", &self.made.load(Ordering::Relaxed))
            .finish()
    }
}

#[inline]
fn pack(index: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index)
}

#[inline]
fn unpack(word: u64) -> (u32, u32) {
    (word as u32, (word >> 32) as u32)
}

/// A Treiber stack of slot indices of one arena.
pub(crate) struct IndexStack {
    head: AtomicU64,
}

impl IndexStack {
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicU64::new(pack(NIL, 0)),
        }
    }

    /// Pushes `index`; publishes the slot's data to whoever pops it.
    ///
    /// # Safety
    /// The caller must own `index` and give up that ownership here; `arena`
    /// must be the arena every index of this stack belongs to.
    #[inline]
    pub(crate) unsafe fn push<D>(&self, arena: &Arena<D>, index: u32) {
        let slot = arena.slot(index);
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let (top, tag) = unpack(head);
            slot.next.store(u64::from(top), Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(index, tag.wrapping_add(1)),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => head = seen,
            }
        }
    }

    /// Pops an index; the caller then owns it.
    #[inline]
    pub(crate) fn pop<D>(&self, arena: &Arena<D>) -> Option<u32> {
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let (top, tag) = unpack(head);
            if top == NIL {
                return None;
            }
            // Possibly stale if `top` was popped meanwhile; the tag check of
            // the CAS below rejects it then.
            let next = arena.slot(top).next.load(Ordering::Relaxed) as u32;
            match self.head.compare_exchange_weak(
                head,
                pack(next, tag.wrapping_add(1)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(top),
                Err(seen) => head = seen,
            }
        }
    }
}

impl fmt::Debug for IndexStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (top, tag) = unpack(self.head.load(Ordering::Relaxed));
        f.debug_struct("IndexStack")
            .field("top", &top)
            .field("tag", &tag)
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A stack holding every slot of `arena`, all made now.
    fn full_stack<D: Default>(arena: &Arena<D>) -> IndexStack {
        let stack = IndexStack::new();
        while let Some(index) = arena.fresh() {
            // SAFETY: `fresh` handed us `index`; we give it to the stack.
            unsafe { stack.push(arena, index) };
        }
        stack
    }

    #[test]
    fn nothing_is_allocated_before_a_slot_is_needed() {
        let arena: Arena<Option<u32>> = Arena::new(1_000_000);
        assert_eq!(arena.slots.allocated(), 0);
        assert_eq!(arena.fresh(), Some(0));
        assert_eq!(arena.fresh(), Some(1));
        // The first segment only.
        assert_eq!(arena.slots.allocated(), 16);
    }

    #[test]
    fn fresh_hands_out_each_slot_once_up_to_the_cap() {
        let arena: Arena<Option<u32>> = Arena::new(if cfg!(miri) { 40 } else { 1_000 });
        let claimed: Vec<Vec<u32>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| std::iter::from_fn(|| arena.fresh()).collect()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut seen = HashSet::new();
        for index in claimed.into_iter().flatten() {
            assert!(seen.insert(index), "slot {index} handed out twice");
            // SAFETY: `fresh` handed us `index`, once.
            unsafe { arena.with(index, |d| *d = Some(index)) };
        }
        assert_eq!(seen.len(), arena.cap());
        assert_eq!(
            (arena.made(), arena.slots.allocated()),
            (arena.cap(), arena.cap())
        );
        assert_eq!(arena.fresh(), None, "never past the cap");
    }

    #[test]
    fn free_list_hands_out_each_slot_once() {
        let arena: Arena<Option<u32>> = Arena::new(64);
        let free = full_stack(&arena);
        let mut seen = HashSet::new();
        while let Some(i) = free.pop(&arena) {
            assert!(seen.insert(i), "slot {i} popped twice");
        }
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn stack_is_lifo_and_keeps_data() {
        let arena: Arena<Option<u32>> = Arena::new(4);
        let stack = IndexStack::new();
        while arena.fresh().is_some() {}
        for i in 0..4u32 {
            // SAFETY: single-threaded test; we own every index.
            unsafe {
                arena.with(i, |d| *d = Some(i * 10));
                stack.push(&arena, i);
            }
        }
        for expect in (0..4u32).rev() {
            let i = stack.pop(&arena).unwrap();
            assert_eq!(i, expect);
            // SAFETY: we popped `i`.
            assert_eq!(unsafe { arena.with(i, |d| d.take()) }, Some(expect * 10));
        }
        assert!(stack.pop(&arena).is_none());
    }

    #[test]
    fn concurrent_push_pop_conserves_indices() {
        use std::sync::Arc;
        let arena: Arc<Arena<u64>> = Arc::new(Arena::new(32));
        let stack = Arc::new(full_stack(&arena));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (arena, stack) = (arena.clone(), stack.clone());
                std::thread::spawn(move || {
                    for _ in 0..if cfg!(miri) { 100 } else { 20_000 } {
                        if let Some(i) = stack.pop(&arena) {
                            // SAFETY: we popped `i` and push it back after.
                            unsafe {
                                arena.with(i, |d| *d += 1);
                                stack.push(&arena, i);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = HashSet::new();
        while let Some(i) = stack.pop(&arena) {
            assert!(seen.insert(i));
        }
        assert_eq!(seen.len(), 32, "every slot is back exactly once");
    }
}
