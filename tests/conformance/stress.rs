//! Multi-threaded stress with exact final counts.

use super::scenarios::{eventually, Mock};
use leasehold::{Error, Lease, Policy, Pool};
use leasehold_testkit::settled::quiet;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

const ROUTES: [&str; 3] = ["a", "b", "c"];

/// Raises its flag when dropped: should a check on the main thread fail,
/// the threads looping until the flag is up stop, so that the scope ends
/// and the failure shows instead of a hang.
struct Stop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(crate) fn threads_keep_caps_and_exclusivity<P: Policy>() {
    const THREADS: usize = 8;
    const CYCLES: usize = 2_000;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(4)
        .max_per_route(2)
        .build()
        .unwrap();
    // Cross-route reclaim opens new connections, so ids are unbounded.
    let in_use: Mutex<HashSet<u64>> = Mutex::default();
    let per_route: Vec<AtomicUsize> = ROUTES.iter().map(|_| AtomicUsize::new(0)).collect();
    let total = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, in_use, per_route, total, barrier) =
                (&pool, &in_use, &per_route, &total, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..CYCLES {
                    let r = (t + i) % ROUTES.len();
                    let lease = pool.lease(&ROUTES[r]).unwrap();
                    let id = lease.id();
                    assert!(in_use.lock().unwrap().insert(id), "conn {id} leased twice");
                    assert!(per_route[r].fetch_add(1, Ordering::SeqCst) < 2, "route cap");
                    assert!(total.fetch_add(1, Ordering::SeqCst) < 4, "total cap");
                    if i % 8 == 0 {
                        thread::yield_now();
                    }
                    total.fetch_sub(1, Ordering::SeqCst);
                    per_route[r].fetch_sub(1, Ordering::SeqCst);
                    assert!(in_use.lock().unwrap().remove(&id));
                    drop(lease);
                }
            });
        }
    });
    let stats = quiet(&pool);
    assert!(stats.idle <= 4);
    assert_eq!(stats.created, connector.opened());
    eventually("stats.closed == connector.dropped()", || {
        stats.closed == connector.dropped()
    });
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
    pool.shutdown();
    eventually("connector.live() == 0", || connector.live() == 0);
}

pub(crate) fn threads_with_discards_and_timeouts_conserve<P: Policy>() {
    const THREADS: usize = 8;
    const CYCLES: usize = 500;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(3)
        .max_per_route(2)
        .acquire_timeout(Duration::from_micros(200))
        .build()
        .unwrap();
    let timeouts = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, timeouts, barrier) = (&pool, &timeouts, &barrier);
            s.spawn(move || {
                barrier.wait();
                for i in 0..CYCLES {
                    match pool.lease(&ROUTES[(t * 7 + i) % ROUTES.len()]) {
                        Ok(lease) if (t + i) % 5 == 0 => lease.discard(),
                        Ok(lease) => {
                            thread::yield_now();
                            drop(lease);
                        }
                        Err(Error::Timeout(_)) => {
                            timeouts.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(other) => panic!("unexpected {other}"),
                    }
                }
            });
        }
    });
    let stats = quiet(&pool);
    assert_eq!(stats.timeouts as usize, timeouts.load(Ordering::SeqCst));
    assert_eq!(stats.created, connector.opened());
    eventually("stats.closed == connector.dropped()", || {
        stats.closed == connector.dropped()
    });
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
    assert!(stats.idle <= 3);
    pool.shutdown();
    eventually("connector.live() == 0", || connector.live() == 0);
    let stats = pool.stats().total;
    assert_eq!(stats.created, stats.closed);
}

pub(crate) fn waiters_on_many_routes_all_served<P: Policy>() {
    // Total 2 over 6 routes: most leases need an idle connection of another
    // route closed for them, and every one must be served (within the
    // default acquire timeout, 30 s).
    const THREADS: usize = 12;
    const CYCLES: usize = 200;
    let routes = ["r0", "r1", "r2", "r3", "r4", "r5"];
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(2)
        .max_per_route(2)
        .build()
        .unwrap();
    let served = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, served, barrier, routes) = (&pool, &served, &barrier, &routes);
            s.spawn(move || {
                barrier.wait();
                for i in 0..CYCLES {
                    let route = routes[(t + i * 5) % routes.len()];
                    let lease = pool.lease(&route).unwrap();
                    assert_eq!(lease.route(), &route);
                    served.fetch_add(1, Ordering::SeqCst);
                    drop(lease);
                }
            });
        }
    });
    assert_eq!(served.load(Ordering::SeqCst), THREADS * CYCLES);
    let stats = quiet(&pool);
    assert!(stats.allocated() <= 2);
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
}

/// Leases of one route taken on one thread and returned on another, the
/// total cap reached: a request that waits while a lease of its own route
/// comes back must get that connection, never have it closed to make room
/// for a new one: the connector opens exactly `max_total` connections and
/// the pool closes none.
fn hand_leases_across<P: Policy>(
    per_route: usize,
    lease: for<'p> fn(&'p Pool<Mock, P>) -> Lease<'p, Mock, P>,
) {
    const LEASES: usize = 4_000;
    const MAX_TOTAL: usize = 2;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(MAX_TOTAL)
        .max_per_route(per_route)
        .build()
        .unwrap();
    let (sender, receiver) = mpsc::sync_channel::<Lease<Mock, P>>(1);
    thread::scope(|s| {
        s.spawn(move || receiver.into_iter().for_each(drop));
        for _ in 0..LEASES {
            sender.send(lease(&pool)).unwrap();
        }
        drop(sender);
    });
    let stats = quiet(&pool);
    assert_eq!(
        (connector.opened(), connector.closed_by_pool(), stats.closed),
        (MAX_TOTAL as u64, 0, 0),
        "connections opened and closed (pool: {stats:?})"
    );
    assert_eq!(stats.idle, MAX_TOTAL);
}

pub(crate) fn leases_returned_on_another_thread_reuse_their_connections<P: Policy>() {
    hand_leases_across::<P>(4, |pool| pool.lease(&"a").unwrap());
    // The route's own cap binds together with the total.
    hand_leases_across::<P>(2, |pool| pool.lease(&"a").unwrap());
}

pub(crate) fn async_leases_returned_on_another_thread_reuse_their_connections<P: Policy>() {
    hand_leases_across::<P>(4, |pool| {
        futures::executor::block_on(pool.lease_async(&"a")).unwrap()
    });
}

/// The caps changed while 8 threads lease on three routes: `max_total`
/// and `max_per_route` lowered and raised in turn. No lease fails; after
/// each lowering the pool comes down to the new cap as leases return, and
/// from then on the leases held at once never exceed it (counted by the
/// holders, as above); after each raising more are held at once again.
/// At the end the counts are exact.
pub(crate) fn resizing_under_load_keeps_the_caps<P: Policy>() {
    const THREADS: usize = 8;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(6)
        .max_per_route(6)
        .build()
        .unwrap();
    // The caps the holders check against: raised before a cap is raised,
    // lowered once the pool has come down to the lowered cap.
    let (total_cap, route_cap) = (AtomicUsize::new(6), AtomicUsize::new(6));
    let per_route: Vec<AtomicUsize> = ROUTES.iter().map(|_| AtomicUsize::new(0)).collect();
    let (total, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let done = std::sync::atomic::AtomicBool::new(false);
    let cycles = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, per_route, total, peak, total_cap, route_cap, done, cycles) = (
                &pool, &per_route, &total, &peak, &total_cap, &route_cap, &done, &cycles,
            );
            s.spawn(move || {
                let mut i = t;
                while !done.load(Ordering::SeqCst) {
                    let r = i % ROUTES.len();
                    i += 1;
                    let lease = pool.lease(&ROUTES[r]).expect("no lease fails");
                    let on_route = per_route[r].fetch_add(1, Ordering::SeqCst) + 1;
                    let held = total.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(held, Ordering::SeqCst);
                    assert!(on_route <= route_cap.load(Ordering::SeqCst), "route cap");
                    assert!(held <= total_cap.load(Ordering::SeqCst), "total cap");
                    thread::yield_now();
                    total.fetch_sub(1, Ordering::SeqCst);
                    per_route[r].fetch_sub(1, Ordering::SeqCst);
                    drop(lease);
                    cycles.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let _stop = Stop(&done);
        let run = |ms| {
            let before = cycles.load(Ordering::Relaxed);
            thread::sleep(Duration::from_millis(ms));
            assert!(cycles.load(Ordering::Relaxed) > before, "leases go on");
        };
        let comes_down_to = |cap: usize, allocated: &dyn Fn() -> usize| {
            eventually("the pool comes down to the lowered cap", || {
                allocated() <= cap
            });
        };
        for (lowered, raised) in [(2, 5), (1, 6)] {
            pool.set_max_total(lowered).unwrap();
            comes_down_to(lowered, &|| pool.stats().total.allocated());
            total_cap.store(lowered, Ordering::SeqCst);
            peak.store(0, Ordering::SeqCst);
            run(30);
            assert!(
                pool.stats().total.allocated() <= lowered,
                "{:?}",
                pool.stats()
            );
            total_cap.store(raised, Ordering::SeqCst);
            pool.set_max_total(raised).unwrap();
            peak.store(0, Ordering::SeqCst);
            eventually(&format!("more than {lowered} leases held at once"), || {
                peak.load(Ordering::SeqCst) > lowered
            });
        }
        pool.set_max_per_route(1).unwrap();
        comes_down_to(1, &|| {
            ROUTES
                .iter()
                .map(|r| pool.route_stats(r).allocated())
                .max()
                .unwrap()
        });
        route_cap.store(1, Ordering::SeqCst);
        run(30);
        for r in ROUTES {
            assert!(
                pool.route_stats(&r).allocated() <= 1,
                "{r}: {:?}",
                pool.route_stats(&r)
            );
        }
        route_cap.store(2, Ordering::SeqCst);
        pool.set_max_per_route(2).unwrap();
        peak.store(0, Ordering::SeqCst);
        eventually("more leases held at once", || {
            peak.load(Ordering::SeqCst) > 3
        });
        done.store(true, Ordering::SeqCst);
    });
    let stats = quiet(&pool);
    assert_eq!((stats.leased, stats.pending, stats.connecting), (0, 0, 0));
    assert_eq!(stats.max, 6);
    assert!(stats.idle <= 6);
    assert_eq!(stats.created, connector.opened());
    eventually("stats.closed == connector.dropped()", || {
        stats.closed == connector.dropped()
    });
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
}

/// `max_idle` changed while 8 threads lease and return (some with a
/// state): at each quiet point the idle connections are within the cap in
/// force, and every count is exact.
pub(crate) fn max_idle_changed_under_load<P: Policy>() {
    const THREADS: usize = 8;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(8)
        .max_per_route(8)
        .build()
        .unwrap();
    let alice = leasehold::State::new("alice");
    let (run, done) = (
        std::sync::atomic::AtomicBool::new(true),
        std::sync::atomic::AtomicBool::new(false),
    );
    let active = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, alice, run, done, active) = (&pool, &alice, &run, &done, &active);
            s.spawn(move || {
                let mut i = t;
                while !done.load(Ordering::SeqCst) {
                    if !run.load(Ordering::SeqCst) {
                        thread::yield_now();
                        continue;
                    }
                    active.fetch_add(1, Ordering::SeqCst);
                    // Checked again once counted: a quiet point waits for
                    // the count to reach 0 after `run` is lowered.
                    if run.load(Ordering::SeqCst) {
                        i += 1;
                        let route = ROUTES[i % ROUTES.len()];
                        let lease = if i % 5 == 0 {
                            pool.lease_with_state(&route, alice)
                        } else {
                            pool.lease(&route)
                        };
                        let lease = lease.expect("no lease fails");
                        thread::yield_now();
                        drop(lease);
                    }
                    active.fetch_sub(1, Ordering::SeqCst);
                }
            });
        }
        let _stop = Stop(&done);
        for cap in [1, 5, 0, 3] {
            pool.set_max_idle(cap);
            thread::sleep(Duration::from_millis(30));
            run.store(false, Ordering::SeqCst);
            eventually("the threads stop", || active.load(Ordering::SeqCst) == 0);
            let stats = quiet(&pool);
            assert!(stats.idle <= cap, "max_idle {cap}: {stats:?}");
            assert_eq!(stats.created - stats.closed, stats.idle as u64, "{stats:?}");
            eventually("connector.live() as usize == stats.idle", || {
                connector.live() as usize == stats.idle
            });
            run.store(true, Ordering::SeqCst);
        }
        done.store(true, Ordering::SeqCst);
    });
    let stats = quiet(&pool);
    assert!(stats.idle <= 3);
    assert_eq!(stats.created, connector.opened());
}

/// Paused, resumed and drained while 8 threads lease on three routes: no
/// lease fails (they wait at the pause), nothing is served while paused
/// but the leases taken before it, a drain ends with nothing open, and
/// every count is exact.
pub(crate) fn pause_and_drain_under_load<P: Policy>() {
    const THREADS: usize = 8;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(6)
        .max_per_route(3)
        .build()
        .unwrap();
    let served = AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, served, done) = (&pool, &served, &done);
            s.spawn(move || {
                let mut i = t;
                while !done.load(Ordering::SeqCst) {
                    i += 1;
                    let lease = pool
                        .lease(&ROUTES[i % ROUTES.len()])
                        .expect("no lease fails");
                    thread::yield_now();
                    drop(lease);
                    served.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        let _stop = Stop(&done);
        for round in 0..3 {
            thread::sleep(Duration::from_millis(20));
            pool.pause();
            // Leases taken before the pause finish; then nothing is served.
            eventually("every thread waits at the pause", || {
                pool.stats().total.pending == THREADS
            });
            let before = served.load(Ordering::SeqCst);
            thread::sleep(Duration::from_millis(20));
            assert_eq!(served.load(Ordering::SeqCst), before, "served while paused");
            if round == 1 {
                pool.drain(Duration::from_secs(10)).expect("drained");
                eventually("every connection closed", || connector.live() == 0);
            }
            pool.resume();
            eventually("leases go on", || served.load(Ordering::SeqCst) > before);
        }
        done.store(true, Ordering::SeqCst);
    });
    let stats = quiet(&pool);
    assert!(!pool.stats().paused);
    assert_eq!(stats.created, connector.opened());
    eventually("stats.closed == connector.dropped()", || {
        stats.closed == connector.dropped()
    });
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
}

/// Route settings changed while 8 threads lease on three routes: a short
/// lifetime and idle timeout set on one route retire its connections,
/// those opened before included, though they are handed from holder to
/// holder and never idle long; once cleared, nothing more is retired; no
/// lease fails, and every count is exact.
pub(crate) fn route_settings_changed_under_load<P: Policy>() {
    const THREADS: usize = 8;
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(6)
        .max_per_route(3)
        .build()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|s| {
        for t in 0..THREADS {
            let (pool, done) = (&pool, &done);
            s.spawn(move || {
                let mut i = t;
                while !done.load(Ordering::SeqCst) {
                    i += 1;
                    let lease = pool
                        .lease(&ROUTES[i % ROUTES.len()])
                        .expect("no lease fails");
                    thread::sleep(Duration::from_micros(200));
                    drop(lease);
                }
            });
        }
        let _stop = Stop(&done);
        let short = leasehold::RouteSettings::new()
            .max_lifetime(Duration::from_millis(10))
            .idle_timeout(Duration::from_millis(5));
        pool.set_route_settings(&"a", short).unwrap();
        eventually("route a's connections retired for age", || {
            pool.health().expired > 0
        });
        pool.set_route_settings(&"a", leasehold::RouteSettings::new())
            .unwrap();
        // A sweep or a return under way may still retire one; then none.
        thread::sleep(Duration::from_millis(10));
        let health = pool.health();
        thread::sleep(Duration::from_millis(30));
        let now = pool.health();
        assert_eq!(
            (now.expired, now.idle),
            (health.expired, health.idle),
            "nothing retired once the settings are cleared"
        );
        done.store(true, Ordering::SeqCst);
    });
    let stats = quiet(&pool);
    assert_eq!(stats.created, connector.opened());
    eventually("stats.closed == connector.dropped()", || {
        stats.closed == connector.dropped()
    });
    eventually("connector.live() as usize == stats.idle", || {
        connector.live() as usize == stats.idle
    });
}
