//! The allocation audit of `tests/alloc.rs` and `benches/cycle.rs`: a
//! counting allocator, and the count of allocations over idle-hit lease
//! cycles.
//!
//! [`CountingAlloc`] wraps `System` and counts the allocations of the
//! current thread only, so other threads (the test harness's, criterion's)
//! do not disturb the count. A library cannot install a global allocator
//! for the binary that links it, so the user does:
//!
//! ```text
//! #[global_allocator]
//! static GLOBAL: leasehold_testkit::alloc_audit::CountingAlloc =
//!     leasehold_testkit::alloc_audit::CountingAlloc;
//! ```
//!
//! [`hit_path_allocations`] checks first that the allocator counts, so a
//! binary that forgot to install it fails instead of reporting 0.

use leasehold::mock::MockConnector;
use leasehold::{Policy, Pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

/// `System`, counting the allocations made on each thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

thread_local! {
    /// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made on this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator may run while this thread's locals are being
    // torn down. A const-initialized `Cell` never allocates itself.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

/// Allocations counted on this thread so far (0 where [`CountingAlloc`]
/// is not the global allocator).
pub fn allocations_on_this_thread() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments, so
// `System`'s guarantees hold; the counting touches no allocator state.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: forwarded from the caller.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Idle-hit cycles counted, per acquisition kind.
pub const CYCLES: u64 = 10_000;

/// Allocations over `CYCLES` idle-hit `lease` cycles and `try_lease` cycles,
/// after warm-up.
pub fn hit_path_allocations<P: Policy>() -> (u64, u64) {
    // The counter must see this thread's allocations, or a 0 proves nothing.
    let before = allocations_on_this_thread();
    drop(black_box(Box::new(0u64)));
    assert_eq!(
        allocations_on_this_thread() - before,
        1,
        "the counting allocator is not counting"
    );

    let pool: Pool<MockConnector, P> = Pool::builder(MockConnector::new())
        .policy::<P>()
        .max_total(8)
        .max_per_route(8)
        .build()
        .expect("valid pool config");
    // Warm-up: opens the one connection, and lets first-use thread-locals
    // (the thread's waker) allocate.
    for _ in 0..1_000 {
        drop(pool.lease(&()).expect("lease"));
        drop(pool.try_lease(&()).expect("try_lease"));
    }

    let before = allocations_on_this_thread();
    for _ in 0..CYCLES {
        drop(black_box(pool.lease(&()).expect("lease")));
    }
    let lease = allocations_on_this_thread() - before;

    let before = allocations_on_this_thread();
    for _ in 0..CYCLES {
        drop(black_box(pool.try_lease(&()).expect("try_lease")));
    }
    let try_lease = allocations_on_this_thread() - before;

    let total = pool.stats().total;
    assert_eq!(
        (total.created, total.idle, total.leased),
        (1, 1, 0),
        "[{}] every counted cycle must be an idle hit on the one connection",
        P::NAME
    );
    (lease, try_lease)
}
