//! The spike: 50 requests at once against a pool with `min_idle` 5 warm
//! connections and room for 50, where opening a connection takes 150 ms
//! (the server greets new connections late; the pool's event loop waits
//! for the greeting) and each request holds its connection 2 ms.
//!
//! What matters is how many connections the burst makes the pool open (a
//! pool that opens one per miss opens ~45; HikariCP opens 5–6) and how long
//! the burst takes to drain. Criterion times the drain; the connections
//! created, per policy and `patience` setting, are printed after it.
//!
//! ```text
//! cargo bench --bench spike
//! ```

use leasehold_testkit::greeting;

use criterion::Criterion;
use greeting::{GreetingConnector, GreetingServer};
use leasehold::{Policy, Pool};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

const REQUESTS: usize = 50;
const MIN_IDLE: usize = 5;
const CONNECT: Duration = Duration::from_millis(150);
const HOLD: Duration = Duration::from_millis(2);

/// One burst on a fresh, warmed pool: the drain time and the connections
/// the burst opened.
fn burst<P: Policy>(
    addr: SocketAddr,
    patience: Duration,
    max_connecting: Option<usize>,
) -> (Duration, u64) {
    let mut builder = Pool::builder(GreetingConnector)
        .policy::<P>()
        .max_total(REQUESTS)
        .max_per_route(REQUESTS)
        .min_idle(addr, MIN_IDLE)
        .acquire_timeout(Duration::from_secs(10));
    if !patience.is_zero() {
        builder = builder.patience(patience);
    }
    if let Some(max) = max_connecting {
        builder = builder.max_connecting(max);
    }
    let pool = builder.build().expect("valid config");
    let warm = Instant::now();
    while pool.route_stats(&addr).idle < MIN_IDLE {
        assert!(warm.elapsed() < Duration::from_secs(5), "never warmed up");
        thread::sleep(Duration::from_millis(1));
    }
    let before = pool.route_stats(&addr).created;
    let start = Instant::now();
    thread::scope(|s| {
        for _ in 0..REQUESTS {
            s.spawn(|| {
                let lease = pool.lease(&addr).expect("lease");
                thread::sleep(HOLD);
                drop(lease);
            });
        }
    });
    let drained = start.elapsed();
    // Connects still in flight count: the burst started them.
    let after = pool.route_stats(&addr);
    (drained, after.created + after.connecting as u64 - before)
}

fn spike<P: Policy>(c: &mut Criterion, addr: SocketAddr, report: &mut Vec<String>) {
    let settings = [
        (Duration::ZERO, None),
        (Duration::from_millis(5), None),
        (Duration::from_millis(25), None),
        (Duration::ZERO, Some(1)),
    ];
    for (patience, max_connecting) in settings {
        let mut created = Vec::new();
        let setting = match max_connecting {
            Some(max) => format!("max_connecting {max}"),
            None => format!("patience {patience:?}"),
        };
        let name = format!("spike/{}/{setting}", P::NAME);
        c.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (drained, opened) = burst::<P>(addr, patience, max_connecting);
                    total += drained;
                    created.push(opened);
                }
                total
            })
        });
        created.sort_unstable();
        let median = created.get(created.len() / 2).copied().unwrap_or(0);
        report.push(format!(
            "{:<8} {setting:>17}: connections opened by the burst: median {median}, range {}..{}",
            P::NAME,
            created.first().copied().unwrap_or(0),
            created.last().copied().unwrap_or(0),
        ));
    }
}

fn main() {
    let server = GreetingServer::start(CONNECT).expect("server");
    let addr = server.addr();
    let mut c = Criterion::default()
        .without_plots()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(3));
    let mut report = Vec::new();
    spike::<leasehold::Strict>(&mut c, addr, &mut report);
    spike::<leasehold::Lax>(&mut c, addr, &mut report);
    spike::<leasehold::Offlock>(&mut c, addr, &mut report);
    c.final_summary();
    println!("\nspike: {REQUESTS} requests at once, connect {CONNECT:?}, hold {HOLD:?}, min_idle {MIN_IDLE}");
    for line in report {
        println!("{line}");
    }
}
