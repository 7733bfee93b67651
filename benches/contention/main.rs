//! The connection cycle of HikariCP's benchmark (`ConnectionBench`: get a
//! connection, hold it, give it back), ported, with every pool in one run:
//! our three policies, the Rust peers and four reference designs.
//!
//! A batch is [`OPS`] cycles (2^17; the environment variable
//! `CONTENTION_OPS` replaces it, to shrink a run) over W workers; each
//! cycle leases an idle connection, holds it for 0 or 1 µs of spinning
//! (the work; two cores can then complete at most 2 M cycles/s), and
//! returns it. On OS threads the W threads cycle without pause from the
//! first batch of a pool and scenario to its last (after 150 ms to settle),
//! and a batch is the time they take for their next [`OPS`] cycles
//! (`leasehold_testkit::bench::threads`): so with more threads than cores the pool is
//! measured as a long-running service meets it, threads preempted while
//! they hold connections and the queues that leaves. On tasks each batch
//! spawns W tasks that take equal shares, timed from the first spawn to the
//! last join. Either way the throughput criterion prints
//! (`Throughput::Elements`) is pool-wide cycles per second. Every 16th
//! acquire of each worker is timed into an HDR histogram; the bench prints
//! p50/p99/p99.9/max of the acquire latency beside the throughput.
//!
//! The scenarios (pool size, workers):
//!
//! * `contention/hold0ns`: pool 8 with 1, 2, 4, …, 256 workers (the scaling
//!   curve), plus (16, 64) and (4, 256);
//! * `contention/hold1us`: (8, 2), (8, 8), (8, 32), (16, 64), (4, 256).
//!
//! The pools, each warmed to its maximum first (the connector's count of
//! opened connections must equal the size before and after, so only lease
//! and return are timed), all holding the same [`MockConn`]:
//!
//! * ours: `strict`, `lax`, `offlock`, blocking `lease(&())` on OS threads;
//! * r2d2 0.8 (`Pool::get`, defaults: `is_valid` runs on every checkout) on
//!   OS threads;
//! * deadpool 0.12, bb8 0.9 and qp 0.2 on a tokio multi-thread runtime (one
//!   worker per core), the workers being tasks: they are async pools, and a
//!   task is how they are used;
//! * `mutex_condvar`, the textbook pool, `hikari_bag`, HikariCP's
//!   `ConcurrentBag` reduced, `fifo_tickets`, a FIFO ticket semaphore:
//!   the most any FIFO hand-off can do once every request queues, and
//!   `fifo_awake`, the same semaphore with its oldest waiters spinning
//!   instead of sleeping (`leasehold_testkit::bench::baseline`, `fifo.rs`,
//!   `awake.rs`), on OS threads.
//!
//! Criterion runs one warm-up batch and 10 measured batches per pool and
//! scenario (flat sampling, 1 ms targets: its floor; it warns that 10
//! samples do not fit, which is the intent). At the end the bench prints the
//! tables (Mops/s of the median measured batch, the latency percentiles of
//! the measured batches, ours ÷ the best peer) and writes them as CSV to
//! `target/bench-report/contention.csv`, with the date and the machine, for
//! `cargo run -p leasehold-bench-report` to turn into `benches/README.md`'s
//! table and plot. A filtered run prints its tables but leaves the CSV alone.
//!
//! ```text
//! cargo bench --bench contention                        # everything
//! cargo bench --bench contention -- hold1us/qp          # one group, one pool
//! CONTENTION_OPS=32768 cargo bench --bench contention   # a quick run
//! ```

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use hdrhistogram::Histogram;
use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Lax, Offlock, Policy, Pool, Strict};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

mod awake;
mod fifo;

use leasehold_testkit::bench::report::{self, Row, Side};
use leasehold_testkit::bench::{baseline, threads};

/// Cycles in one batch, over all workers.
const OPS: u64 = 1 << 17;

/// Each worker times every this many acquires.
const SAMPLE_EVERY: u64 = 16;

/// Measured batches per pool and scenario (criterion's minimum).
const SAMPLES: usize = 10;

/// Pool size of the scaling curve, and its worker counts.
const SCALING_POOL: usize = 8;
const SCALING: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

/// The (pool size, workers) pairs measured, for both holds.
const PAIRS: [(usize, usize); 5] = [(8, 2), (8, 8), (8, 32), (16, 64), (4, 256)];

/// [`OPS`], or `CONTENTION_OPS` where it is set.
fn ops_per_batch() -> u64 {
    match std::env::var("CONTENTION_OPS") {
        Ok(value) => match value.trim().parse() {
            Ok(ops) if ops > 0 => ops,
            _ => panic!("CONTENTION_OPS must be a positive integer, not {value:?}"),
        },
        Err(_) => OPS,
    }
}

/// The work done while a connection is held: spinning for `hold`.
fn work(hold: Duration) {
    if hold.is_zero() {
        return;
    }
    let start = Instant::now();
    while start.elapsed() < hold {
        std::hint::spin_loop();
    }
}

/// An empty histogram of nanoseconds, 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// Nanoseconds, saturating.
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------
// Batches on threads and on tasks

/// One batch: its wall time, and the acquire latencies its workers sampled.
struct Batch {
    took: Duration,
    latency: Histogram<u64>,
}

/// The histograms added up.
fn merged(histograms: &[Histogram<u64>]) -> Histogram<u64> {
    let mut latency = histogram();
    for h in histograms {
        latency.add(h).expect("same bounds");
    }
    latency
}

/// A pool used from OS threads: lease, run `f` while holding, return.
trait Blocking: Sync {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// A pool used from tokio tasks.
trait Tasked: Clone + Send + Sync + 'static {
    fn with_lease<R: Send>(&self, f: impl FnOnce() -> R + Send) -> impl Future<Output = R> + Send;
}

/// `share` cycles holding for `hold`, every [`SAMPLE_EVERY`]th acquire timed
/// into `latency` if `record`. Generic over how a cycle runs, so threads and
/// tasks share it; `cycle(f)` must acquire, run `f`, and return.
macro_rules! cycles {
    ($share:expr, $hold:expr, $record:expr, $latency:expr, |$f:ident| $cycle:expr) => {{
        for i in 0..$share {
            if $record && i % SAMPLE_EVERY == 0 {
                let start = Instant::now();
                let $f = || {
                    let waited = start.elapsed();
                    work($hold);
                    waited
                };
                let waited = $cycle;
                $latency.saturating_record(nanos(waited).max(1));
            } else {
                let $f = || work($hold);
                $cycle;
            }
        }
    }};
}

/// The clock a [`Driver::session`] hands its caller: it runs the next
/// batch of `ops` cycles and returns how long the batch took.
type Clock<'a> = &'a mut dyn FnMut(u64) -> Duration;

/// How a [`Contender`]'s workers run.
trait Driver<C> {
    /// Runs `measure` with a clock that times batches of cycles of `pool`
    /// over `workers` workers holding for `hold`; returns the acquire
    /// latencies of every batch but the first (criterion's warm-up).
    fn session(
        pool: &C,
        runtime: &Runtime,
        workers: usize,
        hold: Duration,
        measure: impl FnOnce(Clock<'_>),
    ) -> Histogram<u64>;
}

/// On `workers` OS threads that cycle without pause while `measure` times
/// batches of their cycles (`threads::steady`).
struct OnThreads;

impl<C: Blocking> Driver<C> for OnThreads {
    fn session(
        pool: &C,
        _: &Runtime,
        workers: usize,
        hold: Duration,
        measure: impl FnOnce(Clock<'_>),
    ) -> Histogram<u64> {
        let histograms = threads::steady(
            workers,
            histogram,
            |latency, share, record| cycles!(share, hold, record, latency, |f| pool.with_lease(f)),
            measure,
        );
        merged(&histograms)
    }
}

/// On tokio tasks: each batch spawns `workers` tasks that share its cycles
/// ([`on_tasks`]). Tasks are not preempted holding a connection, so a fresh
/// set per batch meets the pool as a long-running one does.
struct OnTasks;

impl<C: Tasked> Driver<C> for OnTasks {
    fn session(
        pool: &C,
        runtime: &Runtime,
        workers: usize,
        hold: Duration,
        measure: impl FnOnce(Clock<'_>),
    ) -> Histogram<u64> {
        let mut latency = histogram();
        let mut first = true;
        measure(&mut |ops| {
            let batch = on_tasks(runtime, pool, workers, ops, hold);
            if !std::mem::take(&mut first) {
                latency.add(&batch.latency).expect("same bounds");
            }
            batch.took
        });
        latency
    }
}

/// A batch of `ops` cycles over `workers` tasks on `runtime`, timed from the
/// first spawn to the last join.
fn on_tasks(
    runtime: &Runtime,
    pool: &impl Tasked,
    workers: usize,
    ops: u64,
    hold: Duration,
) -> Batch {
    let tasks = workers as u64;
    let histograms: Vec<_> = (0..workers).map(|_| histogram()).collect();
    runtime.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = histograms
            .into_iter()
            .zip(0..)
            .map(|(mut latency, task)| {
                let share = ops / tasks + u64::from(task < ops % tasks);
                let pool = pool.clone();
                tokio::spawn(async move {
                    cycles!(share, hold, true, latency, |f| pool.with_lease(f).await);
                    latency
                })
            })
            .collect();
        let mut histograms = Vec::with_capacity(workers);
        for handle in handles {
            histograms.push(handle.await.expect("a benchmark task panicked"));
        }
        Batch {
            took: start.elapsed().max(Duration::from_nanos(1)),
            latency: merged(&histograms),
        }
    })
}

// ---------------------------------------------------------------------------
// The pools

/// What a scenario needs of a pool.
trait Contender: Sized {
    /// Its name in benchmark ids and the tables.
    const NAME: &'static str;

    /// Ours, a peer, or a reference design.
    const SIDE: Side;

    /// A pool of at most `size` connections from `connector`, holding `size`
    /// idle ones.
    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self;

    /// How its workers run: OS threads or tokio tasks.
    type Driver: Driver<Self>;
}

/// One of our policies, leased with the blocking `lease`.
struct Ours<P: Policy>(Pool<MockConnector, P>);

impl<P: Policy> Blocking for Ours<P> {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        let lease = self.0.lease(&()).expect("lease");
        black_box(&lease);
        f()
    }
}

impl<P: Policy> Contender for Ours<P> {
    const NAME: &'static str = P::NAME;
    const SIDE: Side = Side::Ours;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let pool = Pool::builder(connector.clone())
            .policy::<P>()
            .max_total(size)
            .max_per_route(size)
            .build()
            .expect("valid pool config");
        let held: Vec<_> = (0..size).map(|_| pool.lease(&()).expect("lease")).collect();
        drop(held);
        Self(pool)
    }
}

/// One of our policies on tokio tasks, leased with `lease_async`: the
/// like-for-like comparison with the async peers.
struct OursAsync<P: Policy>(Arc<Pool<MockConnector, P>>);

impl<P: Policy> Clone for OursAsync<P> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<P: Policy + Send + Sync + 'static> Tasked for OursAsync<P> {
    async fn with_lease<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let lease = self.0.lease_async(&()).await.expect("lease_async");
        black_box(&lease);
        f()
    }
}

/// The names of the async rows.
trait AsyncName {
    const ASYNC_NAME: &'static str;
}

impl AsyncName for Strict {
    const ASYNC_NAME: &'static str = "strict_async";
}

impl AsyncName for Lax {
    const ASYNC_NAME: &'static str = "lax_async";
}

impl AsyncName for Offlock {
    const ASYNC_NAME: &'static str = "offlock_async";
}

impl<P: Policy + AsyncName + Send + Sync + 'static> Contender for OursAsync<P> {
    const NAME: &'static str = P::ASYNC_NAME;
    const SIDE: Side = Side::Ours;
    type Driver = OnTasks;

    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self {
        Self(Arc::new(Ours::<P>::warmed(runtime, connector, size).0))
    }
}

/// r2d2's pool.
struct R2d2(r2d2::Pool<R2d2Manager>);

struct R2d2Manager(MockConnector);

impl r2d2::ManageConnection for R2d2Manager {
    type Connection = MockConn;
    type Error = Infallible;

    fn connect(&self) -> Result<MockConn, Infallible> {
        Ok(baseline::connect(&self.0))
    }

    fn is_valid(&self, _: &mut MockConn) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut MockConn) -> bool {
        false
    }
}

impl Blocking for R2d2 {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        let conn = self.0.get().expect("r2d2 get");
        black_box(&conn);
        f()
    }
}

impl Contender for R2d2 {
    const NAME: &'static str = "r2d2";
    const SIDE: Side = Side::Peer;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        // `build` waits until `min_idle` (by default the maximum)
        // connections are open.
        let pool = r2d2::Pool::builder()
            .max_size(u32::try_from(size).expect("pool size fits u32"))
            .build(R2d2Manager(connector.clone()))
            .expect("valid r2d2 config");
        Self(pool)
    }
}

/// deadpool's managed pool.
#[derive(Clone)]
struct Deadpool(deadpool::managed::Pool<DeadpoolManager>);

struct DeadpoolManager(MockConnector);

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = MockConn;
    type Error = Infallible;

    async fn create(&self) -> Result<MockConn, Infallible> {
        Ok(baseline::connect(&self.0))
    }

    async fn recycle(
        &self,
        _: &mut MockConn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

impl Tasked for Deadpool {
    async fn with_lease<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let conn = self.0.get().await.expect("deadpool get");
        black_box(&conn);
        f()
    }
}

impl Contender for Deadpool {
    const NAME: &'static str = "deadpool";
    const SIDE: Side = Side::Peer;
    type Driver = OnTasks;

    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let pool = deadpool::managed::Pool::builder(DeadpoolManager(connector.clone()))
            .max_size(size)
            .build()
            .expect("valid deadpool config");
        runtime.block_on(async {
            let mut held = Vec::with_capacity(size);
            for _ in 0..size {
                held.push(pool.get().await.expect("deadpool get"));
            }
        });
        Self(pool)
    }
}

/// bb8's pool.
#[derive(Clone)]
struct Bb8(bb8::Pool<Bb8Manager>);

struct Bb8Manager(MockConnector);

impl bb8::ManageConnection for Bb8Manager {
    type Connection = MockConn;
    type Error = Infallible;

    async fn connect(&self) -> Result<MockConn, Infallible> {
        Ok(baseline::connect(&self.0))
    }

    async fn is_valid(&self, _: &mut MockConn) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut MockConn) -> bool {
        false
    }
}

impl Tasked for Bb8 {
    async fn with_lease<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let conn = self.0.get().await.expect("bb8 get");
        black_box(&conn);
        f()
    }
}

impl Contender for Bb8 {
    const NAME: &'static str = "bb8";
    const SIDE: Side = Side::Peer;
    type Driver = OnTasks;

    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self {
        runtime.block_on(async {
            let pool = bb8::Pool::builder()
                .max_size(u32::try_from(size).expect("pool size fits u32"))
                .build(Bb8Manager(connector.clone()))
                .await
                .expect("valid bb8 config");
            let mut held = Vec::with_capacity(size);
            for _ in 0..size {
                held.push(pool.get().await.expect("bb8 get"));
            }
            drop(held);
            Self(pool)
        })
    }
}

/// qp's pool.
#[derive(Clone)]
struct Qp(qp::Pool<QpManager>);

struct QpManager(MockConnector);

#[qp::async_trait]
impl qp::resource::Manage for QpManager {
    type Output = MockConn;
    type Error = Infallible;

    async fn try_create(&self) -> Result<MockConn, Infallible> {
        Ok(baseline::connect(&self.0))
    }
}

impl Tasked for Qp {
    async fn with_lease<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let conn = self.0.acquire().await.expect("qp acquire");
        black_box(&conn);
        f()
    }
}

impl Contender for Qp {
    const NAME: &'static str = "qp";
    const SIDE: Side = Side::Peer;
    type Driver = OnTasks;

    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let pool = qp::Pool::new(QpManager(connector.clone()), size);
        runtime.block_on(pool.reserve(size)).expect("qp reserve");
        Self(pool)
    }
}

/// The textbook pool.
struct MutexCondvar(baseline::MutexPool);

impl Blocking for MutexCondvar {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        let lease = self.0.lease();
        black_box(&lease);
        f()
    }
}

impl Contender for MutexCondvar {
    const NAME: &'static str = "mutex_condvar";
    const SIDE: Side = Side::Baseline;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        Self(baseline::MutexPool::new(connector, size))
    }
}

/// HikariCP's bag, reduced.
struct Hikari(baseline::HikariBag);

impl Blocking for Hikari {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.with_lease(|conn| {
            black_box(conn);
            f()
        })
    }
}

impl Contender for Hikari {
    const NAME: &'static str = "hikari_bag";
    const SIDE: Side = Side::Baseline;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        Self(baseline::HikariBag::new(connector, size))
    }
}

/// The FIFO ticket semaphore: the least a FIFO hand-off costs.
struct Tickets(fifo::FifoTickets);

impl Blocking for Tickets {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.with_permit(f)
    }
}

impl Contender for Tickets {
    const NAME: &'static str = "fifo_tickets";
    const SIDE: Side = Side::Baseline;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        Self(fifo::FifoTickets::new(connector, size))
    }
}

/// The FIFO ticket semaphore with its oldest waiters kept awake
/// (`FIFO_AWAKE_HEADS`, default 2, spinning up to `FIFO_AWAKE_SPIN_US`,
/// default 100) and a request that finds no free permit yielding up to
/// `FIFO_AWAKE_DEFER` times (default 16, as our blocking leases do)
/// before it takes a ticket.
struct Awake(awake::AwakeTickets);

impl Blocking for Awake {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.0.with_permit(f)
    }
}

impl Contender for Awake {
    const NAME: &'static str = "fifo_awake";
    const SIDE: Side = Side::Baseline;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let heads = env("FIFO_AWAKE_HEADS", 2);
        let spin = Duration::from_micros(env("FIFO_AWAKE_SPIN_US", 100));
        let defer = env("FIFO_AWAKE_DEFER", 16) as u32;
        Self(awake::AwakeTickets::new(
            connector, size, heads, spin, defer,
        ))
    }
}

impl Contender for NoPool {
    const NAME: &'static str = "no_pool";
    const SIDE: Side = Side::Ceiling;
    type Driver = OnThreads;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        // Opens what the others do, so the bench's checks hold for it too.
        (0..size).for_each(|_| drop(baseline::connect(connector)));
        NoPool
    }
}

// ---------------------------------------------------------------------------
// Measurement

/// No pool at all: each worker only does the work, so with a hold this is
/// what the machine can complete, the ceiling every pool is measured
/// against. (Without a hold it would only time the loop, so it is skipped.)
struct NoPool;

impl Blocking for NoPool {
    fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// One pool in one scenario.
#[derive(Clone, Copy)]
struct Scenario {
    size: usize,
    workers: usize,
    hold: Duration,
    ops: u64,
}

/// What the run measured.
#[derive(Default)]
struct Results {
    rows: Vec<Row>,
    /// Benchmarks criterion skipped (filtered out, or `--list`).
    skipped: usize,
}

/// Warms a pool of `C` and has criterion measure its batches in `scenario`;
/// adds the result to `results`.
fn bench<C: Contender>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    results: &mut Results,
    scenario: Scenario,
) {
    let Scenario {
        size,
        workers,
        hold,
        ops,
    } = scenario;
    let connector = MockConnector::new();
    let pool = C::warmed(runtime, &connector, size);
    assert_eq!(connector.opened(), size as u64, "{} warmed", C::NAME);

    let mut batches = Vec::new();
    let latency = C::Driver::session(&pool, runtime, workers, hold, |clock| {
        group.bench_function(
            BenchmarkId::new(C::NAME, format!("pool{size}_workers{workers}")),
            |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            let took = clock(ops);
                            batches.push(took);
                            took
                        })
                        .sum()
                })
            },
        );
    });
    assert_eq!(
        connector.opened(),
        size as u64,
        "{}: the batches reuse the warm connections",
        C::NAME
    );
    if batches.is_empty() {
        results.skipped += 1;
        return;
    }
    // The first batch is criterion's warm-up.
    let measured = if batches.len() > 1 {
        &batches[1..]
    } else {
        &batches[..]
    };
    let mut took = measured.to_vec();
    took.sort();
    let q = |quantile| latency.value_at_quantile(quantile);
    results.rows.push(Row {
        pool: C::NAME.into(),
        side: C::SIDE,
        size,
        workers,
        hold_ns: nanos(hold),
        mops: ops as f64 / took[took.len() / 2].as_secs_f64() / 1e6,
        p50_ns: q(0.5),
        p99_ns: q(0.99),
        p999_ns: q(0.999),
        max_ns: latency.max(),
    });
}

/// Every pool, in one scenario.
fn bench_all(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    results: &mut Results,
    scenario: Scenario,
) {
    bench::<Ours<Strict>>(group, runtime, results, scenario);
    bench::<Ours<Lax>>(group, runtime, results, scenario);
    bench::<Ours<Offlock>>(group, runtime, results, scenario);
    bench::<OursAsync<Strict>>(group, runtime, results, scenario);
    bench::<OursAsync<Lax>>(group, runtime, results, scenario);
    bench::<OursAsync<Offlock>>(group, runtime, results, scenario);
    bench::<R2d2>(group, runtime, results, scenario);
    bench::<Deadpool>(group, runtime, results, scenario);
    bench::<Bb8>(group, runtime, results, scenario);
    bench::<Qp>(group, runtime, results, scenario);
    bench::<MutexCondvar>(group, runtime, results, scenario);
    bench::<Hikari>(group, runtime, results, scenario);
    bench::<Tickets>(group, runtime, results, scenario);
    bench::<Awake>(group, runtime, results, scenario);
    if !scenario.hold.is_zero() {
        bench::<NoPool>(group, runtime, results, scenario);
    }
}

/// The (size, workers) pairs measured with `hold`: for 0, the scaling curve
/// and the pairs not on it.
fn scenarios(hold: Duration, ops: u64) -> Vec<Scenario> {
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    if hold.is_zero() {
        pairs.extend(SCALING.iter().map(|&workers| (SCALING_POOL, workers)));
    }
    for pair in PAIRS {
        if !pairs.contains(&pair) {
            pairs.push(pair);
        }
    }
    pairs
        .into_iter()
        .map(|(size, workers)| Scenario {
            size,
            workers,
            hold,
            ops,
        })
        .collect()
}

fn main() {
    let ops = ops_per_batch();
    // Multi-thread, one worker per core, timers on (bb8 times its gets out).
    let runtime = Runtime::new().expect("a tokio runtime");
    // No plots: drawing them takes longer than the batches.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    let mut results = Results::default();
    for hold in [Duration::ZERO, Duration::from_micros(1)] {
        // A shrunken batch gets a group of its own, so criterion does not
        // compare it with (and overwrite) the saved full-size results.
        let mut name = format!("contention/hold{}", report::hold_label(nanos(hold)));
        if ops != OPS {
            name += &format!("_{ops}ops");
        }
        let mut group = criterion.benchmark_group(name);
        group
            .sample_size(SAMPLES)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(1))
            .throughput(Throughput::Elements(ops));
        for scenario in scenarios(hold, ops) {
            bench_all(&mut group, &runtime, &mut results, scenario);
        }
        group.finish();
    }
    criterion.final_summary();
    let Results { rows, skipped } = results;
    if rows.is_empty() {
        return;
    }
    report::print(&rows, ops);
    // A filtered run (one pool, say) must not replace the full results the
    // report is made from.
    if skipped > 0 {
        println!("\na filtered run: {} not written", report::CSV);
        return;
    }
    match report::save(&rows, ops) {
        Ok(path) => println!("\nwrote {}", path.display()),
        Err(e) => eprintln!("\ncould not write the results: {e}"),
    }
}
