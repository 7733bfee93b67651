//! Many routes: lease + return on 1, 8 and 64 routes with Zipf-skewed
//! traffic (s = 1.1), 8 threads, for every policy — and the same with one
//! "slow" route (the hottest) whose connections take 200 ms to close, and
//! one of whose leases is discarded every 200 ms, so a slow close is always
//! under way (as fast as one disposal thread can close them).
//!
//! Criterion reports throughput (leases per second over all threads); a
//! table printed after it gives the p99 lease wait of the healthy routes,
//! measured with an HDR histogram over a fixed run.
//!
//! ```text
//! cargo bench --bench routes
//! ```

use leasehold_testkit::bench::threads;

use criterion::{BenchmarkGroup, Criterion, Throughput};
use hdrhistogram::Histogram;
use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Never, Policy, Pool, Progress};
use std::hint::black_box;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

macro_rules! for_each_policy {
    ($f:ident($($arg:expr),* $(,)?)) => {{
        $f::<leasehold::Strict>($($arg),*);
        $f::<leasehold::Lax>($($arg),*);
        $f::<leasehold::Offlock>($($arg),*);
    }};
}

const THREADS: usize = 8;
const SLOW_CLOSE: Duration = Duration::from_millis(200);

/// Milliseconds since the first call; the time of the last slow discard.
fn due_for_slow_discard() -> bool {
    static START: OnceLock<Instant> = OnceLock::new();
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = START.get_or_init(Instant::now).elapsed().as_millis() as u64;
    let last = LAST.load(Ordering::Relaxed);
    now >= last + SLOW_CLOSE.as_millis() as u64
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Route 0 is the hottest; with `slow`, its connections close slowly.
#[derive(Clone, Default)]
struct Backends {
    mock: MockConnector<u16>,
    slow: bool,
}

impl Connector for Backends {
    type Route = u16;
    type Conn = MockConn<u16>;
    type Handshake = Never<MockConn<u16>>;

    fn connect(&self, route: &u16) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        self.mock.connect(route)
    }

    fn close(&self, conn: Self::Conn) {
        if self.slow && *conn.route() == 0 {
            thread::sleep(SLOW_CLOSE);
        }
        drop(conn);
    }
}

/// Cumulative Zipf weights over `routes` routes.
fn zipf(routes: usize) -> Vec<f64> {
    let weights: Vec<f64> = (1..=routes).map(|k| 1.0 / (k as f64).powf(1.1)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// A xorshift generator: cheap, per thread, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn route(&mut self, cumulative: &[f64]) -> u16 {
        let x = self.next();
        cumulative
            .partition_point(|&c| c < x)
            .min(cumulative.len() - 1) as u16
    }
}

fn pool<P: Policy>(routes: usize, slow: bool) -> Pool<Backends, P> {
    Pool::builder(Backends {
        slow,
        ..Backends::default()
    })
    .policy::<P>()
    .max_total(4 * routes.max(8))
    .max_per_route(8)
    .build()
    .expect("valid pool")
}

/// One lease + return on a Zipf-chosen route; with `slow`, a lease of route
/// 0 is discarded every 200 ms (a 200 ms close).
fn cycle<P: Policy>(
    pool: &Pool<Backends, P>,
    rng: &mut Rng,
    cumulative: &[f64],
    slow: bool,
) -> (u16, Duration) {
    let route = rng.route(cumulative);
    let started = Instant::now();
    let lease = pool.lease(&route).expect("lease");
    let waited = started.elapsed();
    if slow && route == 0 && due_for_slow_discard() {
        lease.discard();
    } else {
        drop(black_box(lease));
    }
    (route, waited)
}

/// `THREADS` threads share `iters` cycles.
fn run<P: Policy>(pool: &Pool<Backends, P>, routes: usize, slow: bool, iters: u64) -> Duration {
    let cumulative = zipf(routes);
    let rngs = (1..=THREADS as u64)
        .map(|seed| Rng(0x9E37_79B9_7F4A_7C15 ^ seed))
        .collect();
    let (took, _) = threads::timed(rngs, iters, |rng, share| {
        for _ in 0..share {
            cycle(pool, rng, &cumulative, slow);
        }
    });
    took
}

fn scenario(slow: bool) -> &'static str {
    if slow {
        "slow_route"
    } else {
        "healthy"
    }
}

fn throughput<P: Policy>(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    for routes in [1, 8, 64] {
        for slow in [false, true] {
            let pool = pool::<P>(routes, slow);
            group.bench_function(
                format!("{}/{routes}routes/{}", P::NAME, scenario(slow)),
                |b| b.iter_custom(|iters| run(&pool, routes, slow, iters)),
            );
        }
    }
}

/// p99 lease wait of the healthy routes (all but route 0 when `slow`, all
/// otherwise) over a fixed run.
fn p99<P: Policy>() {
    for routes in [8, 64] {
        for slow in [false, true] {
            let pool = pool::<P>(routes, slow);
            let cumulative = zipf(routes);
            let waits = thread::scope(|s| {
                let workers: Vec<_> = (0..THREADS as u64)
                    .map(|t| {
                        let (pool, cumulative) = (&pool, &cumulative);
                        s.spawn(move || {
                            let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (t + 1));
                            let mut waits = Histogram::<u64>::new(3).expect("histogram");
                            for _ in 0..50_000 {
                                let (route, waited) = cycle(pool, &mut rng, cumulative, slow);
                                if !slow || route != 0 {
                                    waits.record(waited.as_nanos() as u64).expect("in range");
                                }
                            }
                            waits
                        })
                    })
                    .collect();
                let mut all = Histogram::<u64>::new(3).expect("histogram");
                for w in workers {
                    all.add(w.join().expect("worker")).expect("same precision");
                }
                all
            });
            println!(
                "p99 lease wait, healthy routes: {:<6} {routes:>2} routes {:<10} {:>8} ns (p50 {} ns, max {} ns)",
                P::NAME,
                scenario(slow),
                waits.value_at_quantile(0.99),
                waits.value_at_quantile(0.5),
                waits.max()
            );
        }
    }
}

fn main() {
    let mut criterion = Criterion::default().without_plots().configure_from_args();
    let mut group = criterion.benchmark_group("routes");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(10)
        .throughput(Throughput::Elements(1));
    for_each_policy!(throughput(&mut group));
    group.finish();
    criterion.final_summary();
    // Skipped by `cargo bench --no-run` and by test runs of the harness.
    if std::env::args().any(|a| a == "--bench") {
        for_each_policy!(p99());
    }
}
