//! The async lease cycle against the async pools people use, in one run on
//! one tokio runtime: the scenario of bikeshedder's `async-pool-benchmark`
//! (also deadpool's `benches/managed.rs` and qp's comparisons).
//!
//! A batch is [`OPS`] lease + drop operations (2^20; the environment variable
//! `ASYNC_CYCLE_OPS` replaces it, to shrink a run), split evenly over W tokio
//! tasks spawned on a multi-thread runtime with the default worker count (one
//! per core). Each task leases a connection, drops it, and does it again; the
//! time of a batch is from the first spawn to the last join, so the
//! throughput criterion prints is pool-wide operations per second. The
//! (pool size, tasks) pairs are (2, 8), (8, 8), (8, 32), (16, 32) and
//! (32, 32): from 4 tasks per connection down to one.
//!
//! The pools, each with its ordinary lease call and default settings:
//!
//! * deadpool 0.12, managed (`Pool::get`), a trivial `Manager` whose
//!   `recycle` says yes;
//! * bb8 0.9 (`Pool::get`), a trivial `ManageConnection` (`is_valid` is `Ok`,
//!   run on every checkout as `test_on_check_out` is on by default);
//! * qp 0.2 (`Pool::acquire`), a trivial `Manage` (`validate` is `true`;
//!   through `async_trait`, so each acquire boxes its future);
//! * ours, every policy, through `lease_async(&())` on a
//!   `Pool<MockConnector, P>` with `max_total` = `max_per_route` = pool size
//!   (shared by the tasks through an `Arc`).
//!
//! Every pool holds the same trivial in-memory object, a [`MockConn`] made by
//! a [`MockConnector`] (the peers' managers call it too), and every pool is
//! warmed to its maximum before it is measured: pool-size leases are held at
//! once and dropped. The connector's count of opened connections must equal
//! the pool size before and after the measurement, so what is timed is lease
//! and return, never creation.
//!
//! Criterion runs one warm-up batch and 10 samples of one batch each per
//! pool and pair (flat sampling with a 1 ms target; it warns that it cannot
//! complete 10 samples in that time, which is the intent). That is its floor
//! (no fewer than 10 samples, at least one warm-up iteration) and still
//! 11 × 40 batches: 2 min 15 s to 2 min 25 s on two cores, most of it
//! bb8 and deadpool at about 1 Mops/s; `ASYNC_CYCLE_OPS=262144` takes about
//! 45 s. At the end the bench prints a table: for each pair and pool the
//! median of its batches in this run (the warm-up one included) in millions
//! of operations per second, then each of our policies' ratio to each peer.
//!
//! Criterion draws no plots here unless `--plotting-backend plotters` asks
//! for them: they took longer than the batches.
//!
//! ```text
//! cargo bench --bench async_cycle                        # everything
//! cargo bench --bench async_cycle -- deadpool            # one pool
//! ASYNC_CYCLE_OPS=65536 cargo bench --bench async_cycle  # a quick run
//! ```

use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Lax, Offlock, Policy, Pool, Progress, Strict};
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// Lease + drop operations in one batch, over all tasks.
const OPS: u64 = 1 << 20;

/// The (pool size, tasks) pairs.
const PAIRS: [(usize, usize); 5] = [(2, 8), (8, 8), (8, 32), (16, 32), (32, 32)];

/// Samples criterion takes per pool and pair (its minimum).
const SAMPLES: usize = 10;

/// [`OPS`], or `ASYNC_CYCLE_OPS` where it is set.
fn ops_per_batch() -> u64 {
    match std::env::var("ASYNC_CYCLE_OPS") {
        Ok(value) => match value.trim().parse() {
            Ok(ops) if ops > 0 => ops,
            _ => panic!("ASYNC_CYCLE_OPS must be a positive integer, not {value:?}"),
        },
        Err(_) => OPS,
    }
}

/// A fresh mock connection, as every pool's manager makes them.
fn connect(connector: &MockConnector) -> MockConn {
    match connector.connect(&()) {
        Ok(Progress::Ready(conn)) => conn,
        _ => unreachable!("the mock connects at once"),
    }
}

// ---------------------------------------------------------------------------
// The pools

/// What the batch needs of a pool: a handle each task can own, and one lease
/// + drop.
trait AsyncPool: Clone + Send + Sync + 'static {
    /// Its name in benchmark ids and the table.
    const NAME: &'static str;

    /// Whether it is one of ours (the table divides ours by the peers).
    const OURS: bool = false;

    /// A pool of at most `size` connections from `connector`, holding `size`
    /// idle ones.
    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self;

    /// Leases a connection and drops it.
    fn cycle(&self) -> impl Future<Output = ()> + Send + '_;
}

/// deadpool's managed pool.
#[derive(Clone)]
struct Deadpool(deadpool::managed::Pool<DeadpoolManager>);

struct DeadpoolManager(MockConnector);

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = MockConn;
    type Error = Infallible;

    async fn create(&self) -> Result<MockConn, Infallible> {
        Ok(connect(&self.0))
    }

    async fn recycle(
        &self,
        _: &mut MockConn,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

impl AsyncPool for Deadpool {
    const NAME: &'static str = "deadpool";

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

    async fn cycle(&self) {
        drop(black_box(self.0.get().await.expect("deadpool get")));
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
        Ok(connect(&self.0))
    }

    async fn is_valid(&self, _: &mut MockConn) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut MockConn) -> bool {
        false
    }
}

impl AsyncPool for Bb8 {
    const NAME: &'static str = "bb8";

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

    async fn cycle(&self) {
        drop(black_box(self.0.get().await.expect("bb8 get")));
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
        Ok(connect(&self.0))
    }
}

impl AsyncPool for Qp {
    const NAME: &'static str = "qp";

    fn warmed(runtime: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let pool = qp::Pool::new(QpManager(connector.clone()), size);
        runtime.block_on(pool.reserve(size)).expect("qp reserve");
        Self(pool)
    }

    async fn cycle(&self) {
        drop(black_box(self.0.acquire().await.expect("qp acquire")));
    }
}

/// One of our policies, leased through `lease_async`.
struct Leasehold<P: Policy>(Arc<Pool<MockConnector, P>>);

impl<P: Policy> Clone for Leasehold<P> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<P: Policy + Send + Sync + 'static> AsyncPool for Leasehold<P> {
    const OURS: bool = true;

    const NAME: &'static str = P::NAME;

    fn warmed(_: &Runtime, connector: &MockConnector, size: usize) -> Self {
        let pool = Pool::builder(connector.clone())
            .max_total(size)
            .max_per_route(size)
            .build()
            .expect("valid pool config");
        let held: Vec<_> = (0..size).map(|_| pool.lease(&()).expect("lease")).collect();
        drop(held);
        Self(Arc::new(pool))
    }

    async fn cycle(&self) {
        drop(black_box(
            self.0.lease_async(&()).await.expect("lease_async"),
        ));
    }
}

// ---------------------------------------------------------------------------
// The batch and its measurement

/// Runs one batch of `ops` lease + drop cycles over `tasks` tasks on
/// `runtime`; returns the time from the first spawn to the last join (at
/// least a nanosecond, as criterion rejects zero).
fn batch<A: AsyncPool>(runtime: &Runtime, pool: &A, tasks: usize, ops: u64) -> Duration {
    let tasks = tasks as u64;
    runtime.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let share = ops / tasks + u64::from(task < ops % tasks);
                let pool = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..share {
                        pool.cycle().await;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.expect("a benchmark task panicked");
        }
        start.elapsed().max(Duration::from_nanos(1))
    })
}

/// The batches one pool ran for one pair.
struct Row {
    size: usize,
    tasks: usize,
    pool: &'static str,
    ours: bool,
    batches: Vec<Duration>,
}

/// Warms a pool of `A` and has criterion measure its batches for one pair.
fn bench<A: AsyncPool>(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &Runtime,
    rows: &mut Vec<Row>,
    (size, tasks): (usize, usize),
    ops: u64,
) {
    let connector = MockConnector::new();
    let pool = A::warmed(runtime, &connector, size);
    assert_eq!(
        connector.opened(),
        size as u64,
        "{} warmed to its max",
        A::NAME
    );

    let mut batches = Vec::new();
    group.bench_function(
        BenchmarkId::new(A::NAME, format!("pool{size}_tasks{tasks}")),
        |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        let took = batch(runtime, &pool, tasks, ops);
                        batches.push(took);
                        took
                    })
                    .sum()
            })
        },
    );
    assert_eq!(
        connector.opened(),
        size as u64,
        "{}: the batches reuse the warm connections",
        A::NAME
    );
    // Criterion skipped it: filtered out, or `--list`.
    if batches.is_empty() {
        return;
    }
    rows.push(Row {
        size,
        tasks,
        pool: A::NAME,
        ours: A::OURS,
        batches,
    });
}

// ---------------------------------------------------------------------------
// The table

/// Millions of operations per second of the median batch.
fn mops(batches: &[Duration], ops: u64) -> Option<f64> {
    let mut sorted = batches.to_vec();
    sorted.sort();
    let median = *sorted.get(sorted.len() / 2)?;
    Some(ops as f64 / median.as_secs_f64() / 1e6)
}

/// Prints Mops/s per pair and pool, then ours ÷ each peer.
fn print_table(rows: &[Row], ops: u64) {
    if rows.is_empty() {
        return;
    }
    let mut pools: Vec<(&str, bool)> = Vec::new();
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for row in rows {
        if !pools.iter().any(|&(name, _)| name == row.pool) {
            pools.push((row.pool, row.ours));
        }
        if !pairs.contains(&(row.size, row.tasks)) {
            pairs.push((row.size, row.tasks));
        }
    }
    let cell = |pool: &str, pair: (usize, usize)| {
        rows.iter()
            .find(|r| r.pool == pool && (r.size, r.tasks) == pair)
            .and_then(|r| mops(&r.batches, ops))
    };
    let show = |value: Option<f64>, suffix: &str| match value {
        Some(v) => format!("{v:.2}{suffix}"),
        None => "-".into(),
    };

    println!();
    println!("async_cycle: {ops} lease + drop per batch; Mops/s of the median batch");
    print!("{:<12}", "pool/tasks");
    for (name, _) in &pools {
        print!("{name:>10}");
    }
    println!();
    for &pair in &pairs {
        print!("{:<12}", format!("{}/{}", pair.0, pair.1));
        for (name, _) in &pools {
            print!("{:>10}", show(cell(name, pair), ""));
        }
        println!();
    }

    let peers: Vec<&str> = pools.iter().filter(|p| !p.1).map(|p| p.0).collect();
    let ours: Vec<&str> = pools.iter().filter(|p| p.1).map(|p| p.0).collect();
    if ours.is_empty() || peers.is_empty() {
        println!("(no ratios: ours and at least one peer must both have run)");
        return;
    }
    println!();
    println!("ours ÷ peer (above 1: ours is faster)");
    print!("{:<20}", "policy pool/tasks");
    for peer in &peers {
        print!("{:>12}", format!("÷{peer}"));
    }
    println!();
    for policy in &ours {
        for &pair in &pairs {
            print!("{:<20}", format!("{policy} {}/{}", pair.0, pair.1));
            for peer in &peers {
                let ratio = cell(policy, pair).zip(cell(peer, pair)).map(|(o, p)| o / p);
                print!("{:>12}", show(ratio, "x"));
            }
            println!();
        }
    }
}

fn main() {
    let ops = ops_per_batch();
    // Multi-thread, one worker per core, timers on (bb8 times its gets out).
    let runtime = Runtime::new().expect("a tokio runtime");
    // No plots unless asked for (`--plotting-backend plotters`): drawing
    // them costs seconds per benchmark, more than a pool's batches.
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    // A shrunken batch gets a group of its own, so criterion does not
    // compare it with (and overwrite) the saved full-size results.
    let mut group = if ops == OPS {
        criterion.benchmark_group("async_cycle")
    } else {
        criterion.benchmark_group(format!("async_cycle_{ops}ops"))
    };
    group
        .sample_size(SAMPLES)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_millis(1))
        .throughput(Throughput::Elements(ops));

    let mut rows = Vec::new();
    for pair in PAIRS {
        bench::<Deadpool>(&mut group, &runtime, &mut rows, pair, ops);
        bench::<Bb8>(&mut group, &runtime, &mut rows, pair, ops);
        bench::<Qp>(&mut group, &runtime, &mut rows, pair, ops);
        bench::<Leasehold<Strict>>(&mut group, &runtime, &mut rows, pair, ops);
        bench::<Leasehold<Lax>>(&mut group, &runtime, &mut rows, pair, ops);
        bench::<Leasehold<Offlock>>(&mut group, &runtime, &mut rows, pair, ops);
    }
    group.finish();
    criterion.final_summary();
    print_table(&rows, ops);
}
