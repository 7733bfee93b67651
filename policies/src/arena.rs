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
//! How it works: [the design notes](crate::implementation#the-arena-and-its-index-stacks).

use crate::grow::GrowArray;
use crate::sync::{AtomicU64, AtomicUsize, Ordering, UnsafeCell};
use crossbeam_utils::CachePadded;
use std::fmt;

pub(crate) const NIL: u32 = u32::MAX;

/// The ownership of one slot of an arena: whoever holds the token is the
/// only one that reads or writes the slot's data. Not `Clone`; made where
/// a slot is handed out and given up where it is handed back (see the
/// module docs). A token is good for the arena that made it: a core keeps
/// one arena, and the `Held`s and `Permit`s that carry tokens name their
/// core, which checks it before it uses the token.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct SlotToken(u32);

impl SlotToken {
    /// The token of slot `index`.
    ///
    /// # Safety
    /// The caller owns slot `index`: it took it off a list, by the step
    /// that removed it there, and no token of it exists.
    #[inline(always)]
    pub(crate) unsafe fn claim(index: u32) -> Self {
        Self(index)
    }

    /// The slot's index.
    #[inline(always)]
    pub(crate) fn index(&self) -> u32 {
        self.0
    }

    /// Gives the ownership up, as the slot goes onto a list that hands it
    /// out again through [`Self::claim`].
    #[inline(always)]
    pub(crate) fn into_index(self) -> u32 {
        self.0
    }
}

/// A slot reached through its token: one look-up for its data and its
/// link.
pub(crate) struct OwnedSlot<'a, 't, D> {
    slot: &'a Slot<D>,
    _token: &'t mut SlotToken,
}

impl<'a, D> OwnedSlot<'a, '_, D> {
    /// Runs `f` on the slot's data.
    #[inline]
    pub(crate) fn with<R>(&mut self, f: impl FnOnce(&mut D) -> R) -> R {
        // SAFETY: the token, borrowed mutably for this handle's life, says
        // that no other thread, and no other reference, reaches the data.
        unsafe { self.slot.with(f) }
    }

    /// The slot's link, for the idle stack the slot goes onto (it outlives
    /// the handle: the token may go with the slot).
    #[inline]
    pub(crate) fn link(&self) -> &'a AtomicU64 {
        &self.slot.next
    }
}

/// One slot: the link used by whichever stack holds it, and its data.
pub(crate) struct Slot<D> {
    next: AtomicU64,
    data: UnsafeCell<D>,
}

impl<D> Slot<D> {
    /// Runs `f` on this slot's data.
    ///
    /// # Safety
    /// The caller holds this slot's token, and makes no other reference to
    /// its data for the duration of the call.
    #[inline]
    unsafe fn with<R>(&self, f: impl FnOnce(&mut D) -> R) -> R {
        // SAFETY: the caller owns the slot, so this is the only live
        // reference to its data.
        self.data.with_mut(|ptr| f(unsafe { &mut *ptr }))
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

    /// A slot never used before, if fewer than `cap` were made. Allocates
    /// the slot's segment if it is the first of it (once per doubling of
    /// the arena).
    pub(crate) fn fresh(&self) -> Option<SlotToken> {
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
        // SAFETY: the count's CAS gave this index to us alone.
        Some(unsafe { SlotToken::claim(made as u32) })
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
    fn slot(&self, index: u32) -> &Slot<D> {
        self.slots
            .get(index as usize)
            .expect("an index handed out by `fresh`")
    }

    /// The slot `token` owns, for its data and its link.
    #[inline]
    pub(crate) fn owned<'a, 't>(&'a self, token: &'t mut SlotToken) -> OwnedSlot<'a, 't, D> {
        OwnedSlot {
            slot: self.slot(token.index()),
            _token: token,
        }
    }

    /// Runs `f` on the data of the slot `token` owns.
    #[inline]
    pub(crate) fn with<R>(&self, token: &mut SlotToken, f: impl FnOnce(&mut D) -> R) -> R {
        self.owned(token).with(f)
    }

    /// The data of the slot `token` owns, for as long as the token is
    /// borrowed mutably.
    #[inline]
    // The slot is an `UnsafeCell`: exclusive access comes from the token,
    // not from `&mut self`.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn get_mut<'a>(&'a self, token: &'a mut SlotToken) -> &'a mut D {
        // SAFETY: the token owns the slot and is borrowed mutably for as long
        // as this reference lives, so no other reference to the data can be
        // made meanwhile (loom does not track the access past this call).
        self.slot(token.index())
            .data
            .with_mut(|ptr| unsafe { &mut *ptr })
    }

    /// The data of the slot `token` owns, shared, for as long as the token
    /// is borrowed.
    #[inline]
    pub(crate) fn get<'a>(&'a self, token: &'a SlotToken) -> &'a D {
        // SAFETY: the token owns the slot; while it is borrowed shared, no
        // `&mut` to the data can be made through it.
        self.slot(token.index())
            .data
            .with_mut(|ptr| unsafe { &*ptr })
    }

    /// The link of slot `index`, which may be owned by another thread: a
    /// popper reads the link of the head it found, which the CAS that pops
    /// it checks.
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

    /// Pushes the slot `token` owns, giving the ownership up; publishes the
    /// slot's data to whoever pops it. `arena` is the arena every slot of
    /// this stack belongs to.
    #[inline]
    pub(crate) fn push<D>(&self, arena: &Arena<D>, token: SlotToken) {
        let index = token.into_index();
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

    /// Pops a slot, with its ownership.
    #[inline]
    pub(crate) fn pop<D>(&self, arena: &Arena<D>) -> Option<SlotToken> {
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
                // SAFETY: the CAS took `top` off the stack, whose pushers
                // gave its ownership up.
                Ok(_) => return Some(unsafe { SlotToken::claim(top) }),
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
        while let Some(token) = arena.fresh() {
            stack.push(arena, token);
        }
        stack
    }

    #[test]
    fn nothing_is_allocated_before_a_slot_is_needed() {
        let arena: Arena<Option<u32>> = Arena::new(1_000_000);
        assert_eq!(arena.slots.allocated(), 0);
        assert_eq!(arena.fresh().map(SlotToken::into_index), Some(0));
        assert_eq!(arena.fresh().map(SlotToken::into_index), Some(1));
        // The first segment only.
        assert_eq!(arena.slots.allocated(), 16);
    }

    #[test]
    fn fresh_hands_out_each_slot_once_up_to_the_cap() {
        let arena: Arena<Option<u32>> = Arena::new(if cfg!(miri) { 40 } else { 1_000 });
        let claimed: Vec<Vec<SlotToken>> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| std::iter::from_fn(|| arena.fresh()).collect()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut seen = HashSet::new();
        for mut token in claimed.into_iter().flatten() {
            let index = token.index();
            assert!(seen.insert(index), "slot {index} handed out twice");
            arena.with(&mut token, |d| *d = Some(index));
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
        while let Some(token) = free.pop(&arena) {
            let i = token.into_index();
            assert!(seen.insert(i), "slot {i} popped twice");
        }
        assert_eq!(seen.len(), 64);
    }

    #[test]
    fn stack_is_lifo_and_keeps_data() {
        let arena: Arena<Option<u32>> = Arena::new(4);
        let stack = IndexStack::new();
        while let Some(mut token) = arena.fresh() {
            let i = token.index();
            arena.with(&mut token, |d| *d = Some(i * 10));
            stack.push(&arena, token);
        }
        for expect in (0..4u32).rev() {
            let mut token = stack.pop(&arena).unwrap();
            assert_eq!(token.index(), expect);
            assert_eq!(arena.with(&mut token, |d| d.take()), Some(expect * 10));
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
                        if let Some(mut token) = stack.pop(&arena) {
                            arena.with(&mut token, |d| *d += 1);
                            stack.push(&arena, token);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = HashSet::new();
        while let Some(token) = stack.pop(&arena) {
            assert!(seen.insert(token.into_index()));
        }
        assert_eq!(seen.len(), 32, "every slot is back exactly once");
    }
}
