//! Late binding and connect elision over loopback, with connects slowed
//! down by a server that greets new connections late.

use leasehold_testkit::{greeting, wait};

use greeting::{GreetingConnector, GreetingServer};
use leasehold::{Error, Lax, Offlock, Policy, Pool, Strict};
use std::io::{Read, Write};
use std::thread;
use std::time::{Duration, Instant};
use wait::eventually;

const SLOW: Duration = Duration::from_millis(400);

fn pool<P: Policy>(max: usize) -> Pool<GreetingConnector, P> {
    Pool::builder(GreetingConnector)
        .policy::<P>()
        .max_total(max)
        .max_per_route(max)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A request that misses starts a connect, but a connection returned
/// meanwhile serves it; the connect's connection then goes idle.
fn a_return_serves_a_waiter_whose_connect_is_in_flight<P: Policy>() {
    let server = GreetingServer::start(SLOW).unwrap();
    let addr = server.addr();
    let pool = pool::<P>(2);
    let first = pool.lease(&addr).unwrap();
    let first_local = first.local_addr().unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            let asked = Instant::now();
            let lease = pool.lease(&addr).unwrap();
            (lease.local_addr().unwrap(), asked.elapsed())
        });
        eventually("the second request's connect is in flight", || {
            server.accepted() == 2
        });
        drop(first);
        let (got, waited) = waiter.join().unwrap();
        assert_eq!(got, first_local, "served by the returned connection");
        assert!(waited < SLOW, "not held up by its connect: {waited:?}");
    });
    eventually("the late connection goes idle", || {
        pool.route_stats(&addr).idle == 2
    });
    let stats = pool.route_stats(&addr);
    assert_eq!((stats.created, stats.connecting, stats.leased), (2, 0, 0));
}

/// A connect nobody waits for any more is adopted by the next request
/// instead of starting another.
fn an_orphan_connect_is_adopted<P: Policy>() {
    let server = GreetingServer::start(SLOW).unwrap();
    let addr = server.addr();
    let pool = pool::<P>(3);
    let first = pool.lease(&addr).unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| drop(pool.lease(&addr).unwrap()));
        eventually("a connect in flight", || server.accepted() == 2);
        drop(first);
        waiter.join().unwrap();
        // The connect in flight now covers nobody: the next request whose
        // miss would start one adopts it.
        let busy = pool.lease(&addr).unwrap();
        let adopter = s.spawn(|| pool.lease(&addr).map(drop));
        adopter.join().unwrap().unwrap();
        drop(busy);
    });
    assert_eq!(server.accepted(), 2, "no third connect");
    assert_eq!(pool.route_stats(&addr).created, 2);
}

/// Many requests that miss at once start no more connects than there are
/// requests, and every one is served.
fn a_burst_is_served<P: Policy>() {
    let server = GreetingServer::start(Duration::from_millis(50)).unwrap();
    let addr = server.addr();
    let pool = pool::<P>(8);
    thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                let mut conn = pool.lease(&addr).unwrap();
                conn.write_all(b"x").unwrap();
                let mut echo = [0u8; 1];
                conn.read_exact(&mut echo).unwrap();
                thread::sleep(Duration::from_millis(5));
            });
        }
    });
    let stats = pool.route_stats(&addr);
    assert!(stats.created <= 8, "{stats}");
    assert_eq!(stats.allocated(), stats.idle);
}

/// With `max_connecting(1)`, a burst against a slow backend opens one
/// connection at a time, and returns serve the rest.
fn max_connecting_holds_a_burst_to_few_connects<P: Policy>() {
    // Connects far slower than the burst's ten 5 ms holds, so that a
    // loaded machine's slow wake-ups do not stretch the burst over several.
    let server = GreetingServer::start(Duration::from_millis(500)).unwrap();
    let addr = server.addr();
    let pool: Pool<GreetingConnector, P> = Pool::builder(GreetingConnector)
        .policy::<P>()
        .max_total(10)
        .max_per_route(10)
        .max_connecting(1)
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    thread::scope(|s| {
        for _ in 0..10 {
            s.spawn(|| {
                let lease = pool.lease(&addr).unwrap();
                thread::sleep(Duration::from_millis(5));
                drop(lease);
            });
        }
    });
    let most = server.most_ungreeted();
    let stats = pool.route_stats(&addr);
    assert_eq!(
        most,
        1,
        "{most} connects in flight at once; accepted {}; {stats}",
        server.accepted()
    );
    let stats = pool.route_stats(&addr);
    // The first connect, then one more each time one completes while
    // requests still wait: returns serve most of the burst (a return's
    // wake-up that reaches a waiter about to leave the group is passed on
    // to the next); one connect per miss would be ten.
    assert!(
        stats.created + stats.connecting as u64 <= 5,
        "connects one at a time: {stats}"
    );
    assert!(server.accepted() <= 5);
}

/// Routes named in `min_idle` and also covered by `min_idle_per_route`
/// are warmed once each, with slow connects still in flight when the next
/// route is looked at.
fn each_route_is_warmed_once<P: Policy>() {
    let servers = [
        GreetingServer::start(Duration::from_millis(50)).unwrap(),
        GreetingServer::start(Duration::from_millis(50)).unwrap(),
    ];
    let addrs = servers.each_ref().map(GreetingServer::addr);
    let pool: Pool<GreetingConnector, P> = Pool::builder(GreetingConnector)
        .policy::<P>()
        .max_total(10)
        .max_per_route(10)
        .min_idle(addrs[0], 2)
        .min_idle(addrs[1], 2)
        .min_idle_per_route(2)
        .build()
        .unwrap();
    let warm = || addrs.iter().all(|addr| pool.route_stats(addr).idle == 2);
    eventually("warmed up", warm);
    // Now the pool has seen both routes too; empty them and let them re-warm.
    pool.close_idle(Duration::ZERO);
    eventually("warmed up again", warm);
    thread::sleep(Duration::from_millis(700));
    for (server, addr) in servers.iter().zip(&addrs) {
        assert_eq!(server.accepted(), 4, "2 at start, 2 after the eviction");
        assert_eq!(pool.route_stats(addr).allocated(), 2);
    }
}

/// Shutdown fails requests waiting on connects at once, and abandons the
/// connects.
fn shutdown_during_connects<P: Policy>() {
    let server = GreetingServer::start(Duration::from_secs(30)).unwrap();
    let addr = server.addr();
    let pool = pool::<P>(3);
    thread::scope(|s| {
        let waiters: Vec<_> = (0..3)
            .map(|_| s.spawn(|| pool.lease(&addr).map(drop)))
            .collect();
        eventually("three connects in flight", || server.accepted() == 3);
        let asked = Instant::now();
        pool.shutdown();
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
        }
        assert!(asked.elapsed() < Duration::from_secs(2));
    });
    eventually("the connects were abandoned", || {
        pool.stats().total.allocated() == 0
    });
}

macro_rules! for_each_policy {
    ($($name:ident),* $(,)?) => {
        mod strict { $( #[test] fn $name() { super::$name::<super::Strict>(); } )* }
        mod lax { $( #[test] fn $name() { super::$name::<super::Lax>(); } )* }
        mod offlock { $( #[test] fn $name() { super::$name::<super::Offlock>(); } )* }
    };
}

for_each_policy!(
    a_return_serves_a_waiter_whose_connect_is_in_flight,
    an_orphan_connect_is_adopted,
    a_burst_is_served,
    max_connecting_holds_a_burst_to_few_connects,
    each_route_is_warmed_once,
    shutdown_during_connects,
);
