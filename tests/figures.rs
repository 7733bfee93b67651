//! The figures a pool records, under each policy, on a workload whose
//! every step is known: hits, waits for a return, waits for a connect,
//! timeouts, refusals and failed connects counted exactly, per route and in
//! all; waits, holds and connects timed no shorter than the test made
//! them; sampling and turning the figures off; a route's figures folded
//! into the pool's once the route is let go; and the sizing advice on a
//! load of known rate and hold time, its arithmetic checked.

use leasehold_testkit::{for_each_policy, wait};

use leasehold::mock::MockConnector;
use leasehold::{Builder, Error, Policy, Pool};
use std::io;
use std::thread;
use std::time::Duration;
use wait::eventually;

type Mock = MockConnector<u8>;

const ROUTE: u8 = 1;
const OTHER: u8 = 2;

/// How long the test holds a connection another request waits for.
const HOLD: Duration = Duration::from_millis(30);

fn builder<P: Policy>(connector: &Mock) -> Builder<Mock, P> {
    Pool::builder(connector.clone())
        .policy::<P>()
        .max_per_route(1)
        .acquire_timeout(Duration::from_secs(10))
        .sample_every(1)
}

fn every_kind_of_lease_is_counted_and_timed<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).build().unwrap();
    // A connect, then four hits.
    for _ in 0..5 {
        drop(pool.lease(&ROUTE).unwrap());
    }
    // A wait for a return: the holder gives the connection back after HOLD.
    let held = pool.lease(&ROUTE).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| drop(pool.lease(&ROUTE).unwrap()));
        eventually("the request queued", || {
            pool.route_stats(&ROUTE).pending == 1
        });
        thread::sleep(HOLD);
        drop(held);
        waiter.join().unwrap();
    });
    // A refusal and a timeout while the one connection is out.
    let held = pool.lease(&ROUTE).unwrap();
    assert!(matches!(pool.try_lease(&ROUTE), Err(Error::Exhausted(_))));
    let short = builder::<P>(&connector)
        .acquire_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    let _other = short.lease(&ROUTE).unwrap();
    assert!(matches!(short.lease(&ROUTE), Err(Error::Timeout(_))));
    drop(held);

    let figures = pool.route_figures(&ROUTE);
    assert_eq!(
        (figures.hits, figures.waits, figures.connect_waits),
        (6, 1, 1),
        "the connect; four hits, then the holders before the wait and the refusal; the wait"
    );
    assert_eq!(figures.leases(), 8);
    assert_eq!((figures.exhausted, figures.timeouts), (1, 0));
    assert_eq!((figures.connects, figures.connect_failures), (1, 0));
    assert_eq!(figures.connects_started, 1);
    assert_eq!(figures.wait_hit.count(), 6);
    assert_eq!(figures.wait_queued.count(), 1);
    assert!(
        figures.wait_queued.sum() >= HOLD,
        "{:?}",
        figures.wait_queued
    );
    assert_eq!(figures.wait_connect.count(), 1);
    assert_eq!(
        figures.hold.count(),
        8,
        "every lease timed at sample_every(1)"
    );
    assert!(figures.hold.quantile(1.0).unwrap() >= HOLD);
    assert_eq!(figures.connect_time.count(), 1);
    assert_eq!(figures.sample_every, 1);

    let timed_out = short.figures();
    assert_eq!((timed_out.timeouts, timed_out.leases()), (1, 1));
    assert_eq!(short.route_figures(&ROUTE).timeouts, 1);

    // Pool-wide: the same, plus the gauges and closes of the moment.
    let total = pool.figures();
    assert_eq!(total.leases(), 8);
    assert_eq!(total.stats.idle, 1);
    assert_eq!(total.utilization(), 0.0);
    assert_eq!(total.waiting(), 0);
    assert_eq!(pool.route_figures(&OTHER).leases(), 0);
}

fn a_held_lease_shows_in_the_gauges<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).max_total(4).build().unwrap();
    let _held = pool.lease(&ROUTE).unwrap();
    let figures = pool.figures();
    assert_eq!(figures.stats.leased, 1);
    assert_eq!(figures.utilization(), 0.25);
    assert_eq!(pool.route_figures(&ROUTE).utilization(), 1.0);
}

fn failed_and_slow_connects_are_counted_and_timed<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector)
        .connect_backoff(Duration::ZERO, Duration::ZERO)
        .build()
        .unwrap();
    connector.fail_next(2, io::ErrorKind::ConnectionRefused);
    assert!(pool.lease(&ROUTE).is_err());
    assert!(pool.lease(&ROUTE).is_err());
    connector.set_latency(Duration::from_millis(20));
    drop(pool.lease(&ROUTE).unwrap());
    let figures = pool.route_figures(&ROUTE);
    assert_eq!((figures.connects, figures.connect_failures), (1, 2));
    assert_eq!(figures.connects_started, 3);
    assert_eq!(figures.connect_time.count(), 1);
    assert!(figures.connect_time.sum() >= Duration::from_millis(20));
    assert!(figures.wait_connect.sum() >= Duration::from_millis(20));
    assert_eq!(pool.figures().health.connect_failures, 2);
}

fn holds_and_hits_are_sampled_but_every_lease_counted<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).sample_every(4).build().unwrap();
    // One thread of its own, so that its tick starts at zero.
    thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..41 {
                drop(pool.lease(&ROUTE).unwrap());
            }
        });
    });
    let figures = pool.route_figures(&ROUTE);
    assert_eq!(figures.leases(), 41);
    assert_eq!(
        figures.hold.count(),
        11,
        "the first lease, then one in four"
    );
    assert_eq!(figures.sample_every, 4);
}

fn async_leases_are_counted_and_timed_alike<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).build().unwrap();
    futures::executor::block_on(async {
        for _ in 0..3 {
            drop(pool.lease_async(&ROUTE).await.unwrap());
        }
    });
    let figures = pool.route_figures(&ROUTE);
    assert_eq!((figures.hits, figures.connect_waits), (2, 1));
    assert_eq!((figures.wait_hit.count(), figures.hold.count()), (2, 3));
}

fn figures_can_be_turned_off<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).sample_every(0).build().unwrap();
    for _ in 0..3 {
        drop(pool.lease(&ROUTE).unwrap());
    }
    let figures = pool.figures();
    assert_eq!(
        (figures.leases(), figures.connects, figures.hold.count()),
        (0, 0, 0)
    );
    assert_eq!(figures.sample_every, 0);
    assert_eq!(figures.stats.idle, 1, "the gauges still read");
}

fn a_route_let_go_keeps_its_counts_in_the_pool_total<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector).build().unwrap();
    for _ in 0..3 {
        drop(pool.lease(&ROUTE).unwrap());
    }
    pool.close_idle(Duration::ZERO);
    // The route sweep (every second) lets the route's figures go once no
    // connection refers to them.
    eventually("the route's figures let go", || {
        pool.route_figures(&ROUTE).leases() == 0
    });
    assert_eq!(pool.figures().leases(), 3);
    drop(pool.lease(&ROUTE).unwrap());
    assert_eq!(pool.route_figures(&ROUTE).leases(), 1, "started over");
    assert_eq!(pool.figures().leases(), 4);
}

fn sizing_follows_littles_law_on_a_known_load<P: Policy>() {
    const THREADS: usize = 4;
    const HOLD: Duration = Duration::from_millis(5);
    let connector = Mock::new();
    let pool = builder::<P>(&connector).max_per_route(8).build().unwrap();
    // Each thread: lease, hold 5 ms, give back, rest 5 ms; 40 times.
    thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..40 {
                    let lease = pool.lease(&ROUTE).unwrap();
                    thread::sleep(HOLD);
                    drop(lease);
                    thread::sleep(HOLD);
                }
            });
        }
    });
    let report = pool.sizing();
    let sizing = &report.total;
    assert_eq!(sizing.leases, 160);
    assert_eq!(sizing.max, pool.stats().total.max);
    let rate = 160.0 / sizing.window.as_secs_f64();
    assert!((sizing.arrival_rate - rate).abs() < 1e-6 * rate);
    assert!(sizing.mean_hold >= HOLD, "{:?}", sizing.mean_hold);
    let in_use = sizing.arrival_rate * sizing.mean_hold.as_secs_f64();
    assert!((sizing.in_use - in_use).abs() < 1e-9);
    // Never more than one lease per thread at a time, and busy about half
    // of each thread's time.
    assert!(sizing.in_use <= THREADS as f64, "{sizing}");
    assert!(sizing.in_use >= 0.5, "{sizing}");
    let p99 = sizing.p99_hold.unwrap();
    assert!(p99 >= HOLD);
    let at_p99 = sizing.arrival_rate * p99.as_secs_f64();
    assert!((sizing.in_use_at_p99 - at_p99).abs() < 1e-9);
    let expected = (sizing.in_use + 3.0 * sizing.in_use.sqrt()).ceil() as usize;
    assert_eq!(sizing.recommended, expected.max(1));
    assert_eq!(report.routes.len(), 1);
    assert_eq!(report.routes[0].1.leases, 160);
    assert!(report.to_string().starts_with("pool: needs "), "{report}");
    // The next window starts where this one ended.
    assert_eq!(pool.sizing().total.leases, 0);
}

for_each_policy!(
    sizing_follows_littles_law_on_a_known_load,
    every_kind_of_lease_is_counted_and_timed,
    a_held_lease_shows_in_the_gauges,
    failed_and_slow_connects_are_counted_and_timed,
    holds_and_hits_are_sampled_but_every_lease_counted,
    async_leases_are_counted_and_timed_alike,
    figures_can_be_turned_off,
    a_route_let_go_keeps_its_counts_in_the_pool_total,
);
