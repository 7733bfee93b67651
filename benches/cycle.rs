//! The lease cycle: lease an idle [`MockConnector`] connection and give it
//! back, for every policy.
//!
//! * `cycle/1thread` — one thread, pool max 8, route `()`, one connection
//!   pre-warmed, so every iteration is an idle hit (`lease`, and `try_lease`
//!   for comparison).
//! * `cycle/contended` — T threads share a pool of P connections (8 threads
//!   on 4; 8, 64 and 256 threads on 8), each doing blocking `lease` + drop
//!   cycles; the
//!   time is wall-clock for all threads together, so the throughput criterion
//!   prints is pool-wide cycles per second.
//!
//! Each group also runs the textbook pool — a `Mutex<Vec>` of idle
//! connections and a `Condvar` — as a same-run reference.
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
use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Policy, Pool, Progress};
use std::hint::black_box;
use std::sync::{Condvar, Mutex};
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

#[path = "../tests/support/alloc_audit.rs"]
mod alloc_audit;
#[path = "support/threads.rs"]
mod support;

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
// Baseline: the textbook pool, for a same-run reference

/// Idle connections in a `Mutex<Vec>`, waiters on a `Condvar`.
struct MutexPool {
    idle: Mutex<Vec<MockConn>>,
    returned: Condvar,
}

/// A connection leased from a [`MutexPool`], returned on drop.
struct MutexLease<'a> {
    pool: &'a MutexPool,
    conn: Option<MockConn>,
}

impl MutexPool {
    /// A pool holding `size` idle mock connections.
    fn new(size: usize) -> Self {
        let connector = MockConnector::new();
        let idle = (0..size)
            .map(|_| match connector.connect(&()) {
                Ok(Progress::Ready(conn)) => conn,
                _ => unreachable!("the mock connects at once"),
            })
            .collect();
        Self {
            idle: Mutex::new(idle),
            returned: Condvar::new(),
        }
    }

    fn lease(&self) -> MutexLease<'_> {
        let mut idle = self.idle.lock().expect("not poisoned");
        loop {
            if let Some(conn) = idle.pop() {
                return MutexLease {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self.returned.wait(idle).expect("not poisoned");
        }
    }
}

impl Drop for MutexLease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().expect("not poisoned").push(conn);
            self.pool.returned.notify_one();
        }
    }
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
    let baseline = MutexPool::new(8);
    group.bench_function("mutex_condvar/lease", |b| {
        b.iter(|| drop(black_box(baseline.lease())));
    });
    group.finish();
}

fn contended<P: Policy>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    for (pool_size, threads) in CONTENDED {
        let pool = pool::<P>(pool_size);
        warm(&pool, pool_size);
        group.bench_function(
            format!("{}/{threads}threads_pool{pool_size}", P::NAME),
            |b| {
                let cycle = || drop(black_box(pool.lease(&()).expect("lease")));
                b.iter_custom(|iters| {
                    support::timed(threads, iters, |_, share| (0..share).for_each(|_| cycle()))
                })
            },
        );
        let total = pool.stats().total;
        assert_eq!(
            (total.created, total.timeouts),
            (pool_size as u64, 0),
            "contended cycles reuse the warm connections"
        );
    }
}

/// The (pool size, threads) pairs of the contended group.
const CONTENDED: [(usize, usize); 4] = [(4, 8), (8, 8), (8, 64), (8, 256)];

fn cycle_contended(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/contended");
    short(&mut group);
    for_each_policy!(contended(&mut group));
    for (pool_size, threads) in CONTENDED {
        let baseline = MutexPool::new(pool_size);
        group.bench_function(
            format!("mutex_condvar/{threads}threads_pool{pool_size}"),
            |b| {
                let cycle = || drop(black_box(baseline.lease()));
                b.iter_custom(|iters| {
                    support::timed(threads, iters, |_, share| (0..share).for_each(|_| cycle()))
                })
            },
        );
    }
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
