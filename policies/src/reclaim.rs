//! Epoch-based reclamation of what the engine removes while other threads
//! may still read it (routes and the route table's links and arrays): a
//! reader *pins* the epoch for as long as it holds a reference it did not
//! get from something it owns, and memory unlinked by a writer is freed
//! only once every thread pinned at the time has unpinned.
//!
//! This is `crossbeam-epoch`'s default collector. Under loom, which cannot
//! run it, a pin is a no-op and retired memory is kept until its owner
//! drops (the models check the removal protocol, not the collector); so
//! under miri, whose aliasing models `crossbeam-epoch` 0.9 does not pass
//! (its intrusive list breaks Stacked Borrows, and Tree Borrows refuses its
//! integer-to-pointer casts), so that miri checks this crate's own pointers
//! with both, strict provenance included.

#[cfg(not(any(leasehold_loom, miri)))]
mod imp {
    pub(crate) use crossbeam_epoch::{pin, Guard};

    /// Whether the calling thread is pinned (checked by debug assertions
    /// where a reference depends on it).
    #[inline]
    pub(crate) fn is_pinned() -> bool {
        crossbeam_epoch::is_pinned()
    }

    /// Where retired memory waits: nothing of its own, the collector keeps
    /// it.
    pub(crate) struct Graveyard;

    impl Graveyard {
        pub(crate) fn new() -> Self {
            Self
        }

        /// Runs `free` once no thread pinned now is still pinned.
        ///
        /// # Safety
        /// What `free` frees is unreachable for any thread that pins after
        /// this call, and `free` may run on any thread.
        pub(crate) unsafe fn retire(&self, guard: &Guard, free: impl FnOnce() + Send + 'static) {
            // SAFETY: forwarded from the caller; `free` owns nothing that
            // borrows from the stack (the callers pass pointers by value).
            unsafe { guard.defer_unchecked(free) };
        }
    }

    /// Lets the collector free what was retired before now, as far as the
    /// threads still pinned allow, rather than over later pins of other
    /// threads: a pool that removed routes and then goes quiet gives their
    /// memory back. For a few objects at a time (see `Table::retire_dead`):
    /// a retired object waits two epoch advances, each tried once a step,
    /// and a step frees up to 8 bags of 64 objects.
    pub(crate) fn collect() {
        for _ in 0..3 {
            pin().flush();
        }
    }
}

#[cfg(any(leasehold_loom, miri))]
mod imp {
    /// A pin that pins nothing (see the module docs).
    #[derive(Debug)]
    pub(crate) struct Guard;

    pub(crate) fn pin() -> Guard {
        Guard
    }

    pub(crate) fn is_pinned() -> bool {
        true
    }

    /// Retired memory, freed when the graveyard drops.
    #[derive(Default)]
    pub(crate) struct Graveyard {
        dead: std::sync::Mutex<Vec<Box<dyn FnOnce() + Send>>>,
    }

    impl Graveyard {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// # Safety
        /// As the collector's: `free` runs when the graveyard drops.
        pub(crate) unsafe fn retire(&self, _guard: &Guard, free: impl FnOnce() + Send + 'static) {
            let mut dead = self.dead.lock().unwrap_or_else(|e| e.into_inner());
            dead.push(Box::new(free));
        }
    }

    pub(crate) fn collect() {}

    impl Drop for Graveyard {
        fn drop(&mut self) {
            let dead = self.dead.get_mut().unwrap_or_else(|e| e.into_inner());
            for free in dead.drain(..) {
                free();
            }
        }
    }
}

pub(crate) use imp::{collect, is_pinned, pin, Graveyard, Guard};

/// Gives the heap's free memory back to the OS where the allocator would
/// keep it: glibc's `malloc` returns memory only from the top of its heap,
/// so the routes of a crawler, freed in the middle of it, would stay
/// resident. A no-op elsewhere (other allocators return memory on their
/// own terms).
pub(crate) fn trim_heap() {
    #[cfg(all(
        target_os = "linux",
        target_env = "gnu",
        not(miri),
        not(leasehold_loom)
    ))]
    // SAFETY: `malloc_trim` has no preconditions; it only releases free
    // pages of the allocator's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}
