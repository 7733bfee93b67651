//! The lease cycle: lease an idle [`MockConnector`] connection and give it
//! back, for every policy.
//!
//! * `cycle/1thread` — one thread, pool max 8, route `()`, one connection
//!   pre-warmed, so every iteration is an idle hit (`lease`, and `try_lease`
//!   for comparison).
//! * `cycle/contended` — T threads share a pool of P connections (8 threads
//!   on 4, 64 threads on 8), each doing blocking `lease` + drop cycles; the
//!   time is wall-clock for all threads together, so the throughput criterion
//!   prints is pool-wide cycles per second.
//!
//! Before the groups run, an allocation audit counts heap allocations on the
//! current thread over 10 000 idle-hit cycles per policy (after warm-up) and
//! panics if there is any: the hit path must not allocate. The same check is
//! a `cargo test` in `tests/alloc.rs`.
//!
//! ```text
//! cargo bench --bench cycle                 # everything
//! cargo bench --bench cycle -- 1thread      # one group
//! ```

use criterion::{BenchmarkGroup, Criterion, Throughput};
use leasehold::mock::MockConnector;
use leasehold::{Policy, Pool};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `$f::<P>(args…)` once per policy under test, in order. A new policy
/// is one more line here.
macro_rules! for_each_policy {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        $f::<leasehold::Strict>($($arg),*);
    }};
}

// ---------------------------------------------------------------------------
// Allocation audit

/// `System`, counting the allocations made on each thread.
struct CountingAlloc;

thread_local! {
    /// Allocations (`alloc`, `alloc_zeroed`, `realloc`) made on this thread.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    // `try_with`: the allocator may run while this thread's locals are being
    // torn down. A const-initialized `Cell` never allocates itself.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

fn allocations_on_this_thread() -> u64 {
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

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Idle-hit cycles the audit counts over.
const AUDIT_CYCLES: u64 = 10_000;

/// Counts the allocations of [`AUDIT_CYCLES`] idle-hit cycles (`lease` and
/// `try_lease`) on this thread, after warm-up; panics if there are any.
fn alloc_audit<P: Policy>() {
    // The counter must see this thread's allocations, or a 0 proves nothing.
    let before = allocations_on_this_thread();
    drop(black_box(Box::new(0u64)));
    assert_eq!(
        allocations_on_this_thread() - before,
        1,
        "the counting allocator is not counting"
    );

    let pool = pool::<P>(8);
    warm(&pool, 1);
    // Warm-up: first-use thread-locals (the thread's waker, `arc_swap`'s
    // per-thread debt list) allocate once per thread, not per cycle.
    for _ in 0..1_000 {
        drop(pool.lease(&()).expect("lease"));
        drop(pool.try_lease(&()).expect("try_lease"));
    }
    let before = allocations_on_this_thread();
    for _ in 0..AUDIT_CYCLES {
        drop(black_box(pool.lease(&()).expect("lease")));
    }
    let lease_allocs = allocations_on_this_thread() - before;
    let before = allocations_on_this_thread();
    for _ in 0..AUDIT_CYCLES {
        drop(black_box(pool.try_lease(&()).expect("try_lease")));
    }
    let try_lease_allocs = allocations_on_this_thread() - before;

    let total = pool.stats().total;
    assert_eq!(
        (total.created, total.idle),
        (1, 1),
        "every audited cycle must be an idle hit on the one warm connection"
    );
    println!(
        "alloc audit [{}]: {lease_allocs} allocations in {AUDIT_CYCLES} lease+drop cycles, \
         {try_lease_allocs} in {AUDIT_CYCLES} try_lease+drop cycles (idle hits)",
        P::NAME
    );
    assert!(
        lease_allocs == 0 && try_lease_allocs == 0,
        "the idle-hit path of policy {} allocated: {lease_allocs} allocations over \
         {AUDIT_CYCLES} lease cycles, {try_lease_allocs} over {AUDIT_CYCLES} try_lease cycles",
        P::NAME
    );
}

// ---------------------------------------------------------------------------
// Benchmarks

/// A pool of at most `max` mock connections, all on route `()`.
fn pool<P: Policy>(max: usize) -> Pool<MockConnector, P> {
    Pool::builder(MockConnector::new())
        .max_total(max)
        .max_per_route(max)
        .build()
        .expect("valid pool config")
}

/// Opens `n` connections and returns them all, so `n` are idle.
fn warm<P: Policy>(pool: &Pool<MockConnector, P>, n: usize) {
    let leases: Vec<_> = (0..n).map(|_| pool.lease(&()).expect("lease")).collect();
    drop(leases);
    let total = pool.stats().total;
    assert_eq!((total.created, total.idle), (n as u64, n));
}

fn short<M: criterion::measurement::Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
}

fn single_thread<P: Policy>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let pool = pool::<P>(8);
    warm(&pool, 1);
    group.bench_function(format!("{}/lease", P::NAME), |b| {
        b.iter(|| drop(black_box(pool.lease(black_box(&())).expect("lease"))));
    });
    group.bench_function(format!("{}/try_lease", P::NAME), |b| {
        b.iter(|| {
            drop(black_box(
                pool.try_lease(black_box(&())).expect("try_lease"),
            ))
        });
    });
    let total = pool.stats().total;
    assert_eq!(
        total.created, 1,
        "single-thread cycles must all be idle hits"
    );
}

fn cycle_1thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/1thread");
    short(&mut group);
    for_each_policy!(single_thread(&mut group));
    group.finish();
}

/// `threads` threads share a pool of `pool_size` warm connections; each does
/// its share of `iters` blocking lease + drop cycles. Returns the wall time
/// from the common start to the last thread's last cycle.
fn contended_run<P: Policy>(pool: &Pool<MockConnector, P>, threads: usize, iters: u64) -> Duration {
    let barrier = Barrier::new(threads + 1);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|i| {
                let share = iters / threads as u64 + u64::from(i < iters % threads as u64);
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    for _ in 0..share {
                        drop(black_box(pool.lease(&()).expect("lease")));
                    }
                    Instant::now()
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let end = workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .max()
            .unwrap_or(start);
        end.saturating_duration_since(start)
    })
}

fn contended<P: Policy>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    for (pool_size, threads) in [(4, 8), (8, 64)] {
        let pool = pool::<P>(pool_size);
        warm(&pool, pool_size);
        group.bench_function(
            format!("{}/{threads}threads_pool{pool_size}", P::NAME),
            |b| b.iter_custom(|iters| contended_run(&pool, threads, iters)),
        );
        let total = pool.stats().total;
        assert_eq!(
            (total.created, total.timeouts),
            (pool_size as u64, 0),
            "contended cycles reuse the warm connections"
        );
    }
}

fn cycle_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/contended");
    short(&mut group);
    for_each_policy!(contended(&mut group));
    group.finish();
}

fn main() {
    // Before criterion starts (it allocates, and runs nothing else yet).
    for_each_policy!(alloc_audit());

    let mut criterion = Criterion::default().configure_from_args();
    cycle_1thread(&mut criterion);
    cycle_contended(&mut criterion);
    criterion.final_summary();
}
