//! Many routes, each leased once: what a crawler does to a pool.
//!
//! For every policy and each N given (default 2 000, 8 000 and 100 000), a
//! pool of `max_total(1024)` mock connections leases each of N new routes
//! once and drops the lease, so every route keeps one idle connection.
//! Once the total is full, each new route's lease closes an idle connection
//! of another route to make room (cross-route reclaim). The table shows how
//! long the N leases took and the time per lease.
//!
//! ```text
//! cargo run --release --example many_routes              # 2000 8000 100000
//! cargo run --release --example many_routes -- 500 4000  # other N
//! ```

use leasehold::mock::MockConnector;
use leasehold::{Lax, Offlock, Policy, Pool, Strict};
use std::time::{Duration, Instant};

const MAX_TOTAL: usize = 1024;

/// Leases each of `routes` new routes once; the time it took.
fn new_routes<P: Policy>(routes: u64) -> Duration {
    let connector = MockConnector::<u64>::new();
    let pool: Pool<MockConnector<u64>, P> = Pool::builder(connector.clone())
        .max_total(MAX_TOTAL)
        .build()
        .expect("valid pool");
    let started = Instant::now();
    for route in 0..routes {
        drop(pool.lease(&route).expect("lease"));
    }
    let took = started.elapsed();
    let total = pool.stats().total;
    assert_eq!(total.idle, (routes as usize).min(MAX_TOTAL));
    assert_eq!(connector.opened(), routes);
    took
}

fn row<P: Policy>(counts: &[u64]) {
    for &routes in counts {
        let took = new_routes::<P>(routes);
        println!(
            "| {:<7} | {:>7} | {:>10.1} | {:>12.0} |",
            P::NAME,
            routes,
            took.as_secs_f64() * 1e3,
            took.as_secs_f64() * 1e9 / routes as f64
        );
    }
}

fn main() {
    let counts: Vec<u64> = std::env::args()
        .skip(1)
        .map(|n| n.parse().expect("a route count"))
        .collect();
    let counts = if counts.is_empty() {
        vec![2_000, 8_000, 100_000]
    } else {
        counts
    };
    println!("max_total({MAX_TOTAL}); each route leased once, the lease dropped\n");
    println!("| policy  |  routes |    took ms | ns per lease |");
    println!("|---------|--------:|-----------:|-------------:|");
    row::<Strict>(&counts);
    row::<Lax>(&counts);
    row::<Offlock>(&counts);
}
