//! Routes come and go: a pool forgets a route once it has had no connection
//! and no request for a sweep period, over real loopback sockets, under
//! every policy — and leases racing the removal of their route still get a
//! connection.
//!
//! Linux only, as the other loopback suites.

#![cfg(target_os = "linux")]

use leasehold_testkit::{fds, for_each_policy, wait};

use fds::Descriptors;
use leasehold::{Policy, Pool, TcpConnector};
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::Duration;
use wait::eventually;

/// `n` loopback listeners: `n` routes. Nothing accepts; the kernel completes
/// the handshakes, which is all a lease needs.
fn listeners(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
    let listeners: Vec<_> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    (listeners, addrs)
}

fn unused_routes_are_forgotten<P: Policy>() {
    let before = Descriptors::open();
    let (listeners, addrs) = listeners(64);
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .policy::<P>()
        .max_total(16)
        .idle_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    pool.set_route_max(&addrs[3], 1).unwrap();
    for addr in &addrs {
        drop(pool.lease(addr).unwrap());
    }
    assert!(!pool.stats().routes.is_empty());
    eventually("every route to be forgotten", || {
        pool.stats().routes.is_empty()
    });
    let total = pool.stats().total;
    assert_eq!((total.created, total.closed), (64, 64), "{total}");
    assert_eq!(total.allocated(), 0, "{total}");
    // A route comes back as new; a cap set at run time stays.
    drop(pool.lease(&addrs[3]).unwrap());
    let stats = pool.stats();
    assert_eq!(stats.routes.len(), 1);
    assert_eq!(stats.routes[0].1.max, 1);
    assert_eq!(stats.total.created, 65);
    drop(pool);
    drop(listeners);
    before.assert_none_left();
}

/// Threads lease and return over a few routes while the pool removes them
/// between uses (an idle timeout of 5 ms, so the sweep runs every 5 ms):
/// every lease gets a connection, and the counters add up.
fn leases_race_route_removal<P: Policy>() {
    let (_listeners, addrs) = listeners(8);
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .policy::<P>()
        .max_total(4)
        .idle_timeout(Duration::from_millis(5))
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rounds = if cfg!(debug_assertions) { 150 } else { 600 };
    thread::scope(|scope| {
        for t in 0..4 {
            let (pool, addrs) = (&pool, &addrs);
            scope.spawn(move || {
                for i in 0..rounds {
                    let addr = &addrs[(t * 7 + i) % addrs.len()];
                    drop(pool.lease(addr).expect("a lease"));
                    if i % 50 == 0 {
                        // Long enough for the route to empty and go.
                        thread::sleep(Duration::from_millis(12));
                    }
                }
            });
        }
    });
    eventually("every route to be forgotten", || {
        pool.stats().routes.is_empty()
    });
    let total = pool.stats().total;
    assert_eq!(total.created, total.closed, "{total}");
    assert_eq!(total.allocated(), 0, "{total}");
}

/// `forget_unused_routes(false)`: the pool keeps every route it has seen.
fn routes_are_kept_when_asked<P: Policy>() {
    let (_listeners, addrs) = listeners(8);
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .policy::<P>()
        .idle_timeout(Duration::from_millis(5))
        .forget_unused_routes(false)
        .build()
        .unwrap();
    for addr in &addrs {
        drop(pool.lease(addr).unwrap());
    }
    eventually("every idle connection to expire", || {
        pool.stats().total.allocated() == 0
    });
    // Many sweep periods (5 ms each) later.
    thread::sleep(Duration::from_millis(60));
    assert_eq!(pool.stats().routes.len(), addrs.len());
}

for_each_policy!(
    unused_routes_are_forgotten,
    leases_race_route_removal,
    routes_are_kept_when_asked
);
