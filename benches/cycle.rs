//! The idle hit: one thread leases an idle [`MockConnector`] connection and
//! gives it back, for every policy (`cycle/1thread`: pool max 8, route `()`,
//! one connection pre-warmed, so every iteration is an idle hit; `lease`,
//! and `try_lease` and `lease_async` for comparison, the future polled once
//! by hand, without a runtime; `lease` again with the pool's figures off
//! and with every lease timed, to price them). The two reference designs of
//! `leasehold_testkit::bench::baseline` run beside them: the textbook `Mutex<Vec>` +
//! `Condvar` pool, and HikariCP's bag, reduced, which finds the thread's own
//! connection again. Contention is `benches/contention.rs`.
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
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Runs `$f::<P>(args…)` once per policy under test, in order. A new policy
/// is one more line here.
macro_rules! for_each_policy {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        $f::<leasehold::Strict>($($arg),*);
        $f::<leasehold::Lax>($($arg),*);
        $f::<leasehold::Offlock>($($arg),*);
    }};
}

// ---------------------------------------------------------------------------
// Allocation audit

use leasehold_testkit::alloc_audit;
use leasehold_testkit::bench::baseline;

/// Counts this thread's allocations for the audit.
#[global_allocator]
static GLOBAL: alloc_audit::CountingAlloc = alloc_audit::CountingAlloc;

/// Counts the allocations of idle-hit cycles (`lease` and `try_lease`) on
/// this thread, after warm-up; panics if there are any.
fn alloc_audit<P: Policy>() {
    let (lease, try_lease) = alloc_audit::hit_path_allocations::<P>();
    let cycles = alloc_audit::CYCLES;
    println!(
        "alloc audit [{}]: {lease} allocations in {cycles} lease+drop cycles, \
         {try_lease} in {cycles} try_lease+drop cycles (idle hits)",
        P::NAME
    );
    assert!(
        lease == 0 && try_lease == 0,
        "the idle-hit path of policy {} allocated",
        P::NAME
    );
}

// ---------------------------------------------------------------------------
// Benchmarks

/// A pool of at most `max` mock connections, all on route `()`, timing
/// one lease in `sample_every` (0: no figures).
fn pool<P: Policy>(max: usize, sample_every: u32) -> Pool<MockConnector, P> {
    Pool::builder(MockConnector::new())
        .policy::<P>()
        .max_total(max)
        .max_per_route(max)
        .sample_every(sample_every)
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
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .throughput(Throughput::Elements(1));
}

fn single_thread<P: Policy>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    for (name, sample_every) in [("lease, figures off", 0), ("lease, every lease timed", 1)] {
        let pool = pool::<P>(8, sample_every);
        warm(&pool, 1);
        group.bench_function(format!("{}/{name}", P::NAME), |b| {
            b.iter(|| drop(black_box(pool.lease(black_box(&())).expect("lease"))));
        });
    }
    let pool = pool::<P>(8, leasehold::DEFAULT_SAMPLE_EVERY);
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
    group.bench_function(format!("{}/lease_async", P::NAME), |b| {
        let mut cx = Context::from_waker(Waker::noop());
        b.iter(|| {
            let mut lease = pin!(pool.lease_async(black_box(&())));
            match lease.as_mut().poll(&mut cx) {
                Poll::Ready(lease) => drop(black_box(lease.expect("lease_async"))),
                Poll::Pending => panic!("an idle hit is ready at the first poll"),
            }
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
    let connector = MockConnector::new();
    let mutex = baseline::MutexPool::new(&connector, 8);
    group.bench_function("mutex_condvar/lease", |b| {
        b.iter(|| drop(black_box(mutex.lease())));
    });
    let bag = baseline::HikariBag::new(&connector, 8);
    group.bench_function("hikari_bag/lease", |b| {
        b.iter(|| bag.with_lease(|conn| black_box(conn).id()));
    });
    group.finish();
}

fn main() {
    // Before criterion starts (it allocates, and runs nothing else yet).
    for_each_policy!(alloc_audit());

    let mut criterion = Criterion::default().without_plots().configure_from_args();
    cycle_1thread(&mut criterion);
    criterion.final_summary();
}
