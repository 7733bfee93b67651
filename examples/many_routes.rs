//! Many routes, each leased once: what a crawler does to a pool.
//!
//! For every policy and each N given (default 2 000, 8 000 and 100 000), a
//! pool of `max_total(1024)` mock connections leases each of N new routes
//! once and drops the lease, so every route keeps one idle connection.
//! Once the total is full, each new route's lease closes an idle connection
//! of another route to make room (cross-route reclaim). The first table
//! shows how long the N leases took (wall time, and the CPU time of the
//! leasing thread, which a busy machine disturbs less) and the wall time
//! per lease.
//!
//! The second table (`--hit`) times the idle hit (lease and drop of an idle
//! connection, one thread) on one route of a fresh pool, and on one route
//! registered after the largest N other routes were leased once.
//!
//! ```text
//! cargo run --release --example many_routes                   # 2000 8000 100000
//! cargo run --release --example many_routes -- 500 4000       # other N
//! cargo run --release --example many_routes -- lax 100000     # one policy
//! cargo run --release --example many_routes -- --hit 100000   # the idle hit
//! cargo run --release --example many_routes -- --rss 100000   # memory
//! ```
//!
//! The third table (`--rss`) shows the resident memory (`VmRSS`) of the
//! process before a pool is built, with the pool at work on one route
//! (every connection of the total leased at once, then returned), once
//! the largest N routes were each leased once, after every idle connection
//! was closed (`close_idle(0)`): what the routes themselves keep, and once
//! the pool's event loop has forgotten those routes, unused since.

use leasehold::mock::MockConnector;
use leasehold::{Lax, Offlock, Policy, Pool, Strict};
use std::hint::black_box;
use std::time::{Duration, Instant};

const MAX_TOTAL: usize = 1024;

/// Idle hits timed per measurement (`HITS` in the environment overrides
/// it, e.g. for a run under callgrind).
fn hits() -> u32 {
    std::env::var("HITS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000_000)
}

fn pool<P: Policy>(connector: &MockConnector<u64>) -> Pool<MockConnector<u64>, P> {
    Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(MAX_TOTAL)
        .build()
        .expect("valid pool")
}

/// CPU time the calling thread has run, where Linux tells it
/// (`/proc/thread-self/schedstat`): unlike wall time, it leaves out the
/// time other processes of a busy machine ran instead.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Leases each of `routes` new routes once; the wall time and the CPU time
/// of the leasing thread it took.
fn new_routes<P: Policy>(routes: u64) -> (Duration, Option<Duration>) {
    let connector = MockConnector::<u64>::new();
    let pool = pool::<P>(&connector);
    let (started, cpu) = (Instant::now(), cpu_time());
    for route in 0..routes {
        drop(pool.lease(&route).expect("lease"));
    }
    let took = started.elapsed();
    let cpu = cpu.zip(cpu_time()).map(|(before, after)| after - before);
    let total = pool.stats().total;
    assert_eq!(total.idle, (routes as usize).min(MAX_TOTAL));
    assert_eq!(connector.opened(), routes);
    (took, cpu)
}

/// Nanoseconds per idle hit on a route registered after `others` other
/// routes were leased once each (the best of three runs of [`hits`]).
fn idle_hit<P: Policy>(others: u64) -> f64 {
    let connector = MockConnector::<u64>::new();
    let pool = pool::<P>(&connector);
    for route in 0..others {
        drop(pool.lease(&route).expect("lease"));
    }
    let hot = u64::MAX;
    drop(pool.lease(&hot).expect("lease"));
    let opened = connector.opened();
    let hits = hits();
    let best = (0..3)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..hits {
                drop(black_box(pool.lease(black_box(&hot)).expect("lease")));
            }
            started.elapsed().as_secs_f64() * 1e9 / f64::from(hits)
        })
        .fold(f64::INFINITY, f64::min);
    assert_eq!(connector.opened(), opened, "every lease an idle hit");
    best
}

/// The resident memory of this process, in KiB (`VmRSS`), where Linux
/// tells it.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory before a pool, after `routes` routes were leased once,
/// and after their idle connections were closed; in KiB.
fn rss_row<P: Policy>(routes: u64, reuse: leasehold::Reuse) {
    let before = rss_kib();
    let connector = MockConnector::<u64>::new();
    let pool: Pool<MockConnector<u64>, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(MAX_TOTAL)
        .max_per_route(MAX_TOTAL)
        .reuse(reuse)
        .build()
        .expect("valid pool");
    // The pool at work on one route, all of its connections used at once:
    // the baseline the routes add to (the slots of the connections stay
    // once made).
    let leases: Vec<_> = (0..MAX_TOTAL)
        .map(|_| pool.lease(&u64::MAX).expect("lease"))
        .collect();
    drop(leases);
    let working = rss_kib();
    for route in 0..routes {
        drop(pool.lease(&route).expect("lease"));
    }
    let peak = rss_kib();
    pool.close_idle(Duration::ZERO);
    let emptied = rss_kib();
    // The event loop forgets the routes within two sweep periods (1 s
    // each without an idle timeout) of their last connection's close.
    let started = Instant::now();
    while !pool.stats().routes.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "routes forgotten"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    // One more sweep frees what the last removal retired.
    std::thread::sleep(Duration::from_millis(1100));
    let forgotten = rss_kib();
    let kib = |rss: Option<u64>| rss.map_or("-".into(), |kib| kib.to_string());
    let per_route = working.zip(emptied).map_or("-".into(), |(b, e)| {
        format!("{:.0}", (e.saturating_sub(b) * 1024) as f64 / routes as f64)
    });
    println!(
        "| {:<7} | {:<5} | {:>8} | {:>8} | {:>9} | {:>9} | {:>9} | {:>9} | {:>6.1} |",
        P::NAME,
        format!("{reuse:?}"),
        kib(before),
        kib(working),
        kib(peak),
        kib(emptied),
        per_route,
        kib(forgotten),
        took.as_secs_f64()
    );
    drop(pool);
}

fn reclaim_rows<P: Policy>(counts: &[u64]) {
    let ms = |time: Duration| time.as_secs_f64() * 1e3;
    for &routes in counts {
        let (took, cpu) = new_routes::<P>(routes);
        println!(
            "| {:<7} | {:>7} | {:>10.1} | {:>10} | {:>12.0} |",
            P::NAME,
            routes,
            ms(took),
            cpu.map_or("-".into(), |cpu| format!("{:.1}", ms(cpu))),
            took.as_secs_f64() * 1e9 / routes as f64
        );
    }
}

fn hit_row<P: Policy>(others: u64) {
    println!(
        "| {:<7} | {:>10.1} | {:>13.1} |",
        P::NAME,
        idle_hit::<P>(0),
        idle_hit::<P>(others)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let hit = args.iter().any(|arg| arg == "--hit");
    let rss = args.iter().any(|arg| arg == "--rss");
    let (names, counts): (Vec<&String>, Vec<&String>) = args
        .iter()
        .filter(|arg| !arg.starts_with("--"))
        .partition(|arg| arg.parse::<u64>().is_err());
    let counts: Vec<u64> = counts.iter().map(|n| n.parse().unwrap()).collect();
    let counts = if counts.is_empty() {
        vec![2_000, 8_000, 100_000]
    } else {
        counts
    };
    let runs = |name: &str| names.is_empty() || names.iter().any(|n| *n == name);
    if rss {
        let routes = counts.iter().copied().max().unwrap_or(0);
        println!(
            "VmRSS in KiB: before a pool; the pool at work on one route (all {MAX_TOTAL} \
             connections leased at once); after {routes} more \
             routes leased once; after close_idle(0), and per route then; once those routes \
             were forgotten (and how many seconds after close_idle that was)\n"
        );
        println!(
            "| policy  | reuse | before   | working  | peak      | emptied   | B / route | forgotten | after  |"
        );
        println!(
            "|---------|-------|---------:|---------:|----------:|----------:|----------:|----------:|-------:|"
        );
        for reuse in [leasehold::Reuse::Lifo, leasehold::Reuse::Fifo] {
            if runs(Strict::NAME) {
                rss_row::<Strict>(routes, reuse);
            }
            if runs(Lax::NAME) {
                rss_row::<Lax>(routes, reuse);
            }
            if runs(Offlock::NAME) {
                rss_row::<Offlock>(routes, reuse);
            }
        }
        return;
    }
    if hit {
        let others = counts.iter().copied().max().unwrap_or(0);
        println!("idle hit, ns per lease and drop: fresh pool, and a route registered after {others} others\n");
        println!("| policy  | fresh (ns) | after (ns)    |");
        println!("|---------|-----------:|--------------:|");
        if runs(Strict::NAME) {
            hit_row::<Strict>(others);
        }
        if runs(Lax::NAME) {
            hit_row::<Lax>(others);
        }
        if runs(Offlock::NAME) {
            hit_row::<Offlock>(others);
        }
        return;
    }
    println!("max_total({MAX_TOTAL}); each route leased once, the lease dropped\n");
    println!("| policy  |  routes |    took ms |     cpu ms | ns per lease |");
    println!("|---------|--------:|-----------:|-----------:|-------------:|");
    if runs(Strict::NAME) {
        reclaim_rows::<Strict>(&counts);
    }
    if runs(Lax::NAME) {
        reclaim_rows::<Lax>(&counts);
    }
    if runs(Offlock::NAME) {
        reclaim_rows::<Offlock>(&counts);
    }
}
