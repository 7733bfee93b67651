//! Single-threaded (or one-waiter) scenarios with exact expectations.

use crate::asynch::Gated;
use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Builder, Connector, Error, Policy, Pool, Progress, Reuse, State};
pub(crate) use leasehold_testkit::wait::eventually;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

pub(crate) type Mock = MockConnector<&'static str>;

pub(crate) fn pool<P: Policy>(max_total: usize, max_per_route: usize) -> (Mock, Pool<Mock, P>) {
    pool_built(max_total, max_per_route, |builder| builder)
}

/// A pool with these caps, its builder passed through `settings` first.
fn pool_built<P: Policy>(
    max_total: usize,
    max_per_route: usize,
    settings: impl FnOnce(Builder<Mock, P>) -> Builder<Mock, P>,
) -> (Mock, Pool<Mock, P>) {
    let connector = Mock::new();
    let builder = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(max_total)
        .max_per_route(max_per_route);
    (connector, settings(builder).build().unwrap())
}

pub(crate) fn lease_returns_and_reuses<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 4);
    let first = pool.lease(&"a").unwrap().id();
    let second = pool.lease(&"a").unwrap().id();
    assert_eq!(first, second, "an idle connection is reused");
    assert_eq!(connector.opened(), 1);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.idle, stats.leased, stats.created), (1, 0, 1));
}

pub(crate) fn caps_hold_per_route_and_total<P: Policy>() {
    let (connector, pool) = pool::<P>(3, 2);
    let a1 = pool.try_lease(&"a").unwrap();
    let a2 = pool.try_lease(&"a").unwrap();
    assert!(
        matches!(pool.try_lease(&"a"), Err(Error::Exhausted(_))),
        "route cap"
    );
    let b1 = pool.try_lease(&"b").unwrap();
    assert!(
        matches!(pool.try_lease(&"b"), Err(Error::Exhausted(_))),
        "total cap"
    );
    assert!(
        matches!(pool.try_lease(&"c"), Err(Error::Exhausted(_))),
        "total cap"
    );
    let total = pool.stats().total;
    assert_eq!((total.leased, total.allocated()), (3, 3));
    drop((a1, a2, b1));
    assert_eq!(connector.opened(), 3);
}

pub(crate) fn waiter_served_after_non_reusable_release<P: Policy>() {
    // Apache OFFLOCK leaves this waiter hanging; the freed capacity must
    // reach it.
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| pool.lease(&"a").map(|lease| lease.id()));
        eventually("the waiter queues", || pool.route_stats(&"a").pending == 1);
        held.discard();
        let id = waiter.join().unwrap().expect("served after the discard");
        assert_eq!(id, 1, "a new connection was opened for the waiter");
    });
    assert_eq!(connector.opened(), 2);
    eventually("connector.dropped() == 1", || connector.dropped() == 1);
}

pub(crate) fn waiter_served_after_reusable_release<P: Policy>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let id = held.id();
    thread::scope(|s| {
        let waiter = s.spawn(|| pool.lease(&"a").map(|lease| lease.id()));
        eventually("the waiter queues", || pool.route_stats(&"a").pending == 1);
        drop(held);
        assert_eq!(
            waiter.join().unwrap().unwrap(),
            id,
            "handed over, not reopened"
        );
    });
    assert_eq!(connector.opened(), 1);
}

pub(crate) fn route_b_served_when_route_a_idle_fills_total<P: Policy>() {
    // Apache OFFLOCK blocks route B here; an idle A connection must be
    // closed to make room.
    let (connector, pool) = pool::<P>(2, 2);
    drop((pool.lease(&"a").unwrap(), pool.lease(&"a").unwrap()));
    assert_eq!(pool.route_stats(&"a").idle, 2);
    let b = pool
        .try_lease(&"b")
        .expect("an idle A connection makes room");
    assert_eq!(b.route(), &"b");
    assert_eq!(pool.route_stats(&"a").idle, 1);
    assert_eq!(connector.opened(), 3);
    eventually("connector.closed_by_pool() == 1", || {
        connector.closed_by_pool() == 1
    });
    drop(b);
    // Blocking lease too, and on a third route.
    assert_eq!(pool.lease(&"c").unwrap().route(), &"c");
    assert!(pool.stats().total.allocated() <= 2);
}

pub(crate) fn route_b_served_when_route_a_stateful_idle_fills_total<P: Policy>() {
    // The idle connections filling the total are stateful: one of them is
    // closed all the same.
    let (connector, pool) = pool_with_timeout::<P>(2, 2);
    let mut leases = [pool.lease(&"a").unwrap(), pool.lease(&"a").unwrap()];
    for lease in &mut leases {
        lease.set_state(Some(State::new("alice")));
    }
    drop(leases);
    assert_eq!(pool.route_stats(&"a").idle, 2);
    let b = pool
        .lease(&"b")
        .expect("a stateful A connection makes room");
    assert_eq!((b.route(), pool.route_stats(&"a").idle), (&"b", 1));
    eventually("connector.closed_by_pool() == 1", || {
        connector.closed_by_pool() == 1
    });
    assert_eq!(connector.opened(), 3);
}

pub(crate) fn route_b_waiter_served_when_route_a_lease_returns<P: Policy>() {
    // Nothing is idle when B's request queues; the A connection returned
    // afterwards (reusable, stateless or stateful) must make room for it
    // rather than go idle.
    for state in [None, Some(State::new("alice"))] {
        let (connector, pool) = pool_with_timeout::<P>(1, 1);
        let mut held = pool.lease(&"a").unwrap();
        held.set_state(state.clone());
        let a_id = held.id();
        thread::scope(|s| {
            let waiter = s.spawn(|| pool.lease(&"b").map(|lease| lease.id()));
            eventually("B's request queues", || pool.route_stats(&"b").pending == 1);
            drop(held);
            let id = waiter.join().unwrap().expect("served, not timed out");
            assert_ne!(id, a_id, "a new B connection");
        });
        assert_eq!(pool.route_stats(&"a").allocated(), 0, "{state:?}");
        eventually("the A connection is closed", || {
            connector.closed_by_pool() == 1
        });
    }
}

pub(crate) fn freed_total_goes_to_the_route_that_blocked_first<P: Policy>() {
    // Total 1, held on A; B's request blocks, then C's. A newcomer on D may
    // not take the unit A frees; B gets it, then C.
    let (_, pool) = pool_with_timeout::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let order = std::sync::Mutex::new(Vec::new());
    thread::scope(|s| {
        let (pool, order) = (&pool, &order);
        let mut waiters = Vec::new();
        for route in ["b", "c"] {
            waiters.push(s.spawn(move || {
                let lease = pool.lease(&route).expect("served in time");
                order.lock().unwrap().push(route);
                // Held until the test has checked who was served.
                thread::park();
                lease.discard();
            }));
            eventually("the request queues", || {
                pool.route_stats(&route).pending == 1
            });
        }
        held.discard();
        eventually("one is served", || order.lock().unwrap().len() == 1);
        assert!(matches!(pool.try_lease(&"d"), Err(Error::Exhausted(_))));
        assert_eq!(*order.lock().unwrap(), ["b"], "B blocked first");
        waiters[0].thread().unpark();
        eventually("the next is served", || order.lock().unwrap().len() == 2);
        waiters[1].thread().unpark();
    });
    assert_eq!(*order.lock().unwrap(), ["b", "c"]);
}

pub(crate) fn slow_disposal_on_one_route_does_not_delay_another<P: Policy>() {
    // Closing a connection of route "slow" hangs until the test lets it go.
    // Meanwhile route "fast" leases, discards (its closes queue behind the
    // hung one), makes room across routes and opens new connections: every
    // step finishes while the slow close is still held.
    let connector = Mock::new();
    let gate = std::sync::Arc::new(std::sync::Mutex::new(()));
    let held_gate = gate.lock().unwrap();
    let slow = SlowClose {
        mock: connector.clone(),
        gate: gate.clone(),
    };
    let pool: Pool<SlowClose, P> = Pool::builder(slow)
        .policy::<P>()
        .max_total(4)
        .max_per_route(4)
        .acquire_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for lease in [pool.lease(&"slow").unwrap(), pool.lease(&"slow").unwrap()] {
        lease.discard();
    }
    eventually("the slow close has begun", || gate.try_lock().is_err());
    for i in 0..200 {
        let lease = pool.lease(&"fast").unwrap();
        if i % 10 == 0 {
            lease.discard();
        }
    }
    // Room across routes: idle "fast" connections fill the total.
    let fast: Vec<_> = (0..4).map(|_| pool.lease(&"fast").unwrap()).collect();
    drop(fast);
    assert!(pool.lease(&"other").is_ok());
    assert_eq!(connector.closed_by_pool(), 0, "the slow close still holds");
    drop(held_gate);
    eventually("everything closed", || {
        connector.closed_by_pool() == 2 + 20 + 1
    });
}

/// A mock whose closes of route "slow" wait on a gate.
#[derive(Debug)]
struct SlowClose {
    mock: Mock,
    gate: std::sync::Arc<std::sync::Mutex<()>>,
}

impl Connector for SlowClose {
    type Route = &'static str;
    type Conn = MockConn<&'static str>;
    type Handshake = leasehold::Never<Self::Conn>;

    fn connect(&self, route: &&'static str) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        self.mock.connect(route)
    }

    fn close(&self, conn: Self::Conn) {
        if *conn.route() == "slow" {
            drop(self.gate.lock());
        }
        self.mock.close(conn);
    }
}

/// A pool whose blocking leases give up after 5 s (instead of hanging a
/// failing test).
fn pool_with_timeout<P: Policy>(max_total: usize, max_per_route: usize) -> (Mock, Pool<Mock, P>) {
    pool_built(max_total, max_per_route, |builder| {
        builder.acquire_timeout(Duration::from_secs(5))
    })
}

pub(crate) fn stateless_lease_never_gets_stateful_connection<P: Policy>() {
    // Apache hands another user's connection to a lease with no state.
    let (connector, pool) = pool::<P>(2, 2);
    let mut lease = pool.lease(&"a").unwrap();
    let alice_conn = lease.id();
    lease.set_state(Some(State::new("alice")));
    drop(lease);
    let plain = pool.lease(&"a").unwrap();
    assert_ne!(
        plain.id(),
        alice_conn,
        "the stateful connection is not reused"
    );
    assert_eq!(plain.state(), None);
    drop(plain);
    assert_eq!(connector.opened(), 2);
}

pub(crate) fn stateful_lease_gets_only_its_state<P: Policy>() {
    let (_, pool) = pool::<P>(4, 4);
    let alice = State::new("alice");
    let bob = State::new("bob");
    let mut lease = pool.lease(&"a").unwrap();
    lease.set_state(Some(alice.clone()));
    let alice_conn = lease.id();
    drop(lease);
    let plain_conn = pool.lease(&"a").unwrap().id();
    let for_bob = pool.lease_with_state(&"a", &bob).unwrap();
    assert_ne!(for_bob.id(), alice_conn);
    assert_ne!(for_bob.id(), plain_conn);
    assert_eq!(for_bob.state(), Some(&bob));
    let for_alice = pool.lease_with_state(&"a", &alice).unwrap();
    assert_eq!(
        for_alice.id(),
        alice_conn,
        "alice's connection goes back to alice"
    );
    assert_eq!(for_alice.state(), Some(&alice));
}

pub(crate) fn stateful_lease_reclaims_other_state_when_route_full<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 2);
    drop((pool.lease(&"a").unwrap(), pool.lease(&"a").unwrap()));
    let carol = State::new("carol");
    let lease = pool
        .try_lease_with_state(&"a", &carol)
        .expect("an idle stateless one makes room");
    assert_eq!(lease.state(), Some(&carol));
    assert_eq!(connector.opened(), 3);
    eventually("connector.closed_by_pool() == 1", || {
        connector.closed_by_pool() == 1
    });
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.leased, stats.idle), (1, 1));
}

pub(crate) fn stateless_waiter_reclaims_its_routes_stateful_return_at_total<P: Policy>() {
    // The total is reached and route A has room of its own; A's stateless
    // request waits. The A connection returned next carries a state, so it
    // cannot serve the request (invariant 7): it is closed and the request
    // opens a stateless one in its place. The one returned after it,
    // stateless, goes idle: neither is closed to make room for its own
    // route.
    let (connector, pool) = pool_with_timeout::<P>(2, 4);
    let (first, mut second) = (pool.lease(&"a").unwrap(), pool.lease(&"a").unwrap());
    second.set_state(Some(State::new("alice")));
    thread::scope(|s| {
        let waiter = s.spawn(|| {
            pool.lease(&"a")
                .map(|lease| (lease.id(), lease.state().cloned()))
        });
        eventually("the request queues", || pool.route_stats(&"a").pending == 1);
        drop(second);
        let served = waiter.join().unwrap().expect("served, not timed out");
        assert_eq!(served, (2, None), "a new stateless connection");
    });
    drop(first);
    eventually("connector.closed_by_pool() == 1", || {
        connector.closed_by_pool() == 1
    });
    let stats = pool.route_stats(&"a");
    assert_eq!(
        (stats.idle, stats.created, stats.closed),
        (2, 3, 1),
        "{stats}"
    );
    assert_eq!(connector.opened(), 3);
}

pub(crate) fn lease_timeout_fires_without_pool_activity<P: Policy>() {
    // Apache STRICT/LAX only notice an expired request on the next pool
    // operation; nothing else happens in this pool.
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector)
        .policy::<P>()
        .max_total(1)
        .acquire_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let _held = pool.lease(&"a").unwrap();
    let started = Instant::now();
    let err = pool.lease(&"a").unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(
        waited >= Duration::from_millis(50),
        "not before the deadline: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "fired on its own: {waited:?}"
    );
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.timeouts, stats.pending), (1, 0));
}

pub(crate) fn timeout_error_names_route_and_stats<P: Policy>() {
    let (_, pool) = pool_built::<P>(2, 1, |builder| {
        builder.acquire_timeout(Duration::from_millis(10))
    });
    let _held = pool.lease(&"db").unwrap();
    match pool.lease(&"db").unwrap_err() {
        Error::Timeout(at) => {
            assert_eq!(at.route, "\"db\"");
            assert!(at.waited >= Duration::from_millis(10));
            assert_eq!((at.stats.leased, at.stats.max), (1, 1));
            assert_eq!((at.total.leased, at.total.max), (1, 2));
        }
        other => panic!("expected a timeout, got {other}"),
    }
    // One line: the wait, the route, how full it was.
    let message = pool.lease(&"db").unwrap_err().to_string();
    assert!(message.starts_with("timed out after "), "{message}");
    assert!(
        message.contains(" waiting for \"db\" (1/1 leased, ") && message.ends_with(" waiting)"),
        "{message}"
    );
}

pub(crate) fn try_lease_exhausted_never_waits<P: Policy>() {
    let (_, pool) = pool::<P>(1, 1);
    let _held = pool.lease(&"a").unwrap();
    let started = Instant::now();
    let err = pool.try_lease(&"a").unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    match err {
        Error::Exhausted(at) => {
            assert_eq!(at.route, "\"a\"");
            assert_eq!(at.stats.leased, 1);
        }
        other => panic!("expected exhaustion, got {other}"),
    }
    assert!(pool.try_lease(&"a").unwrap_err().is_capacity());
    assert_eq!(pool.route_stats(&"a").pending, 0, "nothing left queued");
}

pub(crate) fn panicking_holder_connection_is_discarded<P: Policy>() {
    let (connector, pool) = pool::<P>(2, 2);
    let poisoned = thread::scope(|s| {
        s.spawn(|| {
            let lease = pool.lease(&"a").unwrap();
            let id = lease.id();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _lease = lease;
                panic!("holder fails mid-request");
            }))
            .unwrap_err();
            id
        })
        .join()
        .unwrap()
    });
    eventually("closed, not returned", || connector.dropped() == 1);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.idle, stats.leased, stats.closed), (0, 0, 1));
    assert_ne!(pool.lease(&"a").unwrap().id(), poisoned);
}

pub(crate) fn discard_closes_and_frees_capacity<P: Policy>() {
    let (connector, pool) = pool::<P>(1, 1);
    pool.lease(&"a").unwrap().discard();
    eventually("connector.dropped() == 1", || connector.dropped() == 1);
    assert_eq!(pool.stats().total.allocated(), 0);
    assert!(pool.try_lease(&"b").is_ok(), "capacity is free again");
}

pub(crate) fn shutdown_wakes_every_waiter<P: Policy>() {
    let (_, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    thread::scope(|s| {
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let pool = &pool;
                s.spawn(move || pool.lease(if i % 2 == 0 { &"a" } else { &"b" }).map(|_| ()))
            })
            .collect();
        eventually("all four queue", || pool.stats().total.pending == 4);
        pool.shutdown();
        for waiter in waiters {
            assert!(matches!(waiter.join().unwrap(), Err(Error::Closed)));
        }
    });
    drop(held);
    assert!(pool.is_closed());
}

pub(crate) fn shutdown_closes_idle_and_returned<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 4);
    let idle = pool.lease(&"a").unwrap();
    let leased = pool.lease(&"a").unwrap();
    drop(idle);
    pool.shutdown();
    eventually("the idle one is closed", || connector.dropped() == 1);
    assert!(matches!(pool.lease(&"a"), Err(Error::Closed)));
    assert!(matches!(pool.try_lease(&"z"), Err(Error::Closed)));
    drop(leased);
    eventually("the leased one is closed on return", || {
        connector.live() == 0
    });
    let total = pool.stats().total;
    assert_eq!((total.allocated(), total.created, total.closed), (0, 2, 2));
}

pub(crate) fn refused_connect_frees_capacity<P: Policy>() {
    let (connector, pool) = pool::<P>(1, 1);
    connector.fail_next(1, io::ErrorKind::ConnectionRefused);
    assert!(matches!(pool.lease(&"a"), Err(Error::Refused { .. })));
    assert_eq!(pool.stats().total.allocated(), 0);
    assert!(
        pool.lease(&"a").is_ok(),
        "the failed connect gave its capacity back"
    );
}

pub(crate) fn connect_errors_are_told_apart<P: Policy>() {
    // Without backoff, so each failure reaches the connector.
    let (connector, pool) = pool_built::<P>(1, 1, |builder| {
        builder.connect_backoff(Duration::ZERO, Duration::ZERO)
    });
    connector.fail_next(1, io::ErrorKind::ConnectionRefused);
    let refused = pool.lease(&"a").unwrap_err();
    assert!(matches!(refused, Error::Refused { .. }), "{refused}");
    connector.fail_next(1, io::ErrorKind::TimedOut);
    let timeout = pool.lease(&"a").unwrap_err();
    assert!(matches!(timeout, Error::ConnectTimeout { .. }), "{timeout}");
    connector.fail_next(1, io::ErrorKind::PermissionDenied);
    let other = pool.lease(&"a").unwrap_err();
    assert!(matches!(other, Error::Connect { .. }), "{other}");
    assert!(!other.is_capacity());
    let source = std::error::Error::source(&other).expect("the cause is kept");
    assert_eq!(source.to_string(), "mock connect failure");
    assert!(refused.to_string().contains("refused"));
}

pub(crate) fn repeated_connect_failures_back_off<P: Policy>() {
    let (connector, pool) = pool::<P>(2, 2);
    connector.fail_next(2, io::ErrorKind::ConnectionRefused);
    assert!(matches!(pool.lease(&"a"), Err(Error::Refused { .. })));
    assert!(matches!(pool.lease(&"a"), Err(Error::Refused { .. })));
    assert_eq!(connector.opened(), 0);
    // Down: fails at once with the last cause, without a connect.
    let resting = pool.lease(&"a").unwrap_err();
    match &resting {
        Error::Down {
            failures: 2,
            source,
            ..
        } => assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused),
        other => panic!("expected the route to be down, got {other:?}"),
    }
    assert!(resting.to_string().contains("is down"), "{resting}");
    assert_eq!(pool.health().connect_failures, 2, "the rest tried nothing");
    // Other routes are not touched.
    assert!(pool.lease(&"b").is_ok());
    eventually("the rest ends", || pool.lease(&"a").is_ok());
    assert_eq!(pool.stats().total.allocated(), 2);
}

pub(crate) fn connect_timeout_bounds_a_stuck_handshake<P: Policy>() {
    // A gate never opened: the handshake never completes.
    let pool: Pool<Gated, P> = Pool::builder(Gated::default())
        .policy::<P>()
        .max_total(1)
        .connect_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.lease(&"slow").unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert_eq!(pool.stats().total.allocated(), 0, "capacity given back");
}

/// A connector that panics while connecting.
#[derive(Debug)]
pub(crate) struct Panicky;

impl Connector for Panicky {
    type Route = &'static str;
    type Conn = MockConn<&'static str>;
    type Handshake = leasehold::Never<Self::Conn>;
    fn connect(&self, _: &&'static str) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        panic!("connector bug");
    }
}

/// A connector's panic is its request's connect error (as on the event
/// loop): the caller is told, the capacity goes back, nothing unwinds
/// through the pool's bookkeeping.
pub(crate) fn panicking_connector_returns_capacity<P: Policy>() {
    let pool: Pool<Panicky, P> = Pool::builder(Panicky)
        .policy::<P>()
        .max_total(1)
        .build()
        .unwrap();
    for _ in 0..3 {
        // After two panics in a row the route is down, with the panic as
        // its cause.
        match pool.lease(&"a") {
            Err(Error::Connect { route, source } | Error::Down { route, source, .. }) => {
                assert_eq!(route, "\"a\"");
                assert!(source.to_string().contains("panicked"), "{source}");
            }
            other => panic!("expected a connect error, got {other:?}"),
        }
        assert_eq!(pool.stats().total.allocated(), 0, "the permit went back");
    }
}

pub(crate) fn max_idle_closes_extra_returns<P: Policy>() {
    let (connector, pool) = pool_built::<P>(4, 4, |builder| builder.max_idle(1));
    let leases: Vec<_> = (0..3).map(|_| pool.lease(&"a").unwrap()).collect();
    drop(leases);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.idle, stats.closed), (1, 2));
    eventually("connector.live() == 1", || connector.live() == 1);
}

pub(crate) fn lowering_route_max_trims_idle<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 4);
    let leases: Vec<_> = (0..4).map(|_| pool.lease(&"a").unwrap()).collect();
    let mut leases = leases.into_iter();
    drop(leases.next());
    drop(leases.next());
    pool.set_route_max(&"a", 1).unwrap();
    let stats = pool.route_stats(&"a");
    assert_eq!(
        (stats.max, stats.idle, stats.leased),
        (1, 0, 2),
        "idle trimmed at once"
    );
    drop(leases.next());
    assert_eq!(
        pool.route_stats(&"a").leased,
        1,
        "returned over the cap: closed"
    );
    assert_eq!(pool.route_stats(&"a").idle, 0);
    drop(leases);
    assert_eq!(pool.route_stats(&"a").idle, 1, "within the cap: kept");
    eventually("connector.live() == 1", || connector.live() == 1);
}

pub(crate) fn raising_route_max_serves_waiters<P: Policy>() {
    let (_, pool) = pool::<P>(4, 1);
    let _held = pool.lease(&"a").unwrap();
    thread::scope(|s| {
        let waiter = s.spawn(|| pool.lease(&"a").map(|_| ()));
        eventually("the waiter queues", || pool.route_stats(&"a").pending == 1);
        pool.set_route_max(&"a", 2).unwrap();
        waiter.join().unwrap().expect("the new cap lets it through");
    });
}

pub(crate) fn reuse_order_lifo_and_fifo<P: Policy>() {
    for (reuse, expect_first) in [(Reuse::Lifo, 2), (Reuse::Fifo, 0)] {
        let (_, pool) = pool_built::<P>(3, 3, |builder| builder.reuse(reuse));
        let leases: Vec<_> = (0..3).map(|_| pool.lease(&"a").unwrap()).collect();
        for lease in leases {
            drop(lease); // returned in id order 0, 1, 2
        }
        assert_eq!(pool.lease(&"a").unwrap().id(), expect_first, "{reuse:?}");
    }
}

pub(crate) fn dropping_pool_closes_idle<P: Policy>() {
    let (connector, pool) = pool::<P>(2, 2);
    drop((pool.lease(&"a").unwrap(), pool.lease(&"a").unwrap()));
    let clone = pool.clone();
    drop(pool);
    assert_eq!(connector.live(), 2, "a handle is still alive");
    drop(clone);
    assert_eq!(connector.live(), 0);
    assert_eq!(
        connector.closed_by_pool(),
        2,
        "closed through the connector"
    );
}

/// A lease can move to another thread when its connection can; an owned
/// one needs no borrow to do it.
const _: () = {
    const fn is_send<T: Send>() {}
    const fn is_static<T: 'static>() {}
    is_send::<leasehold::Lease<'static, Mock>>();
    is_send::<leasehold::OwnedLease<Mock>>();
    is_static::<leasehold::OwnedLease<Mock>>();
};

/// A mock that finds a connection broken when something was written to
/// it, and panics in `has_broken` on the route "panics".
#[derive(Clone, Default)]
struct Fussy(Mock);

impl Connector for Fussy {
    type Route = &'static str;
    type Conn = MockConn<&'static str>;
    type Handshake = leasehold::Never<Self::Conn>;

    fn connect(&self, route: &&'static str) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        self.0.connect(route)
    }

    fn close(&self, conn: Self::Conn) {
        self.0.close(conn);
    }

    fn has_broken(&self, conn: &mut Self::Conn) -> bool {
        assert_ne!(*conn.route(), "panics", "a connector bug in has_broken");
        !conn.written().is_empty()
    }
}

/// `Connector::has_broken` decides at each return: a broken connection is
/// closed and counted, never reused, and a panic in it counts as broken.
pub(crate) fn broken_connections_are_not_reused<P: Policy>() {
    use std::io::Write;
    let fussy = Fussy::default();
    let pool = Pool::builder(fussy.clone()).policy::<P>().build().unwrap();
    let id = pool.lease(&"a").unwrap().id();
    let mut lease = pool.lease(&"a").unwrap();
    assert_eq!(lease.id(), id, "a clean one is kept");
    lease.write_all(b"half a request").unwrap();
    drop(lease);
    assert_eq!(pool.health().broken, 1);
    assert_eq!(pool.route_stats(&"a").idle, 0);
    assert_ne!(pool.lease(&"a").unwrap().id(), id, "a new one");
    drop(pool.lease(&"panics").unwrap());
    assert_eq!(pool.health().broken, 2);
    assert_eq!(pool.route_stats(&"panics").idle, 0);
    eventually("both are closed", || fussy.0.closed_by_pool() == 2);
}

/// A detached connection leaves the pool: its capacity goes to the next
/// request, the pool never closes it, and it is the caller's to drop.
pub(crate) fn detach_takes_the_connection_out_of_the_pool<P: Policy>() {
    let (connector, pool) = pool::<P>(1, 1);
    let conn = pool.lease(&"a").unwrap().detach();
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.leased, stats.idle), (0, 0), "{stats}");
    let next = pool.try_lease(&"a").expect("the capacity is free again");
    assert_ne!(next.id(), conn.id(), "a new connection");
    drop(next);
    assert_eq!(connector.live(), 2, "the detached one is still open");
    drop(conn);
    assert_eq!(connector.live(), 1);
    drop(pool);
    assert_eq!(connector.closed_by_pool(), 1, "only its own connection");
}

/// An owned lease is the same connection as the lease it came from, goes
/// back to the pool from another thread, keeps the pool alive after its
/// last other handle is dropped, and is closed with it afterwards.
pub(crate) fn owned_lease_returns_from_anywhere_and_keeps_the_pool<P: Policy>() {
    let (connector, pool) = pool::<P>(2, 2);
    let lease = pool.lease(&"a").unwrap();
    let id = lease.id();
    let owned = lease.into_owned();
    assert_eq!(owned.id(), id, "the same connection");
    assert_eq!(pool.route_stats(&"a").leased, 1);
    thread::spawn(move || drop(owned)).join().unwrap();
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.leased, stats.idle), (0, 1), "given back");

    let owned = pool.lease_owned(&"a").unwrap();
    assert_eq!(owned.id(), id, "the idle one again");
    owned.discard();
    eventually("discard closes it", || connector.closed_by_pool() == 1);

    let owned = pool.lease_owned(&"a").unwrap();
    drop(pool);
    assert_eq!(connector.live(), 1, "the lease keeps the pool alive");
    drop(owned);
    assert_eq!(connector.live(), 0, "its return was the pool's last act");
}

/// A pause holds new leases (from 3 threads) while the one leased
/// connection is used and returned (it goes idle, not to them); `resume`
/// lets them all through, and they share the connections the caps allow.
pub(crate) fn pause_holds_new_leases_until_resume<P: Policy>() {
    let (connector, pool) = pool::<P>(2, 2);
    let held = pool.lease(&"a").unwrap();
    assert!(pool.pause(), "was running");
    assert!(!pool.pause(), "already paused");
    let served = std::sync::atomic::AtomicUsize::new(0);
    thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let lease = pool.lease(&"a").expect("served after the resume");
                served.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                thread::sleep(Duration::from_millis(2));
                drop(lease);
            });
        }
        eventually("three leases wait at the pause", || {
            pool.stats().total.pending == 3
        });
        assert!(pool.stats().paused);
        drop(held);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 0);
        let stats = pool.route_stats(&"a");
        assert_eq!((stats.idle, stats.leased), (1, 0), "the return went idle");
        assert!(matches!(pool.try_lease(&"a"), Err(Error::Exhausted(_))));
        assert!(pool.resume(), "was paused");
    });
    assert_eq!(served.load(std::sync::atomic::Ordering::SeqCst), 3);
    let stats = pool.stats();
    assert!(!stats.paused);
    assert_eq!((stats.total.pending, stats.total.leased), (0, 0));
    assert!(connector.opened() <= 2, "within the caps");
}

/// A lease waiting at a pause fails with `Timeout` by its acquire timeout,
/// and leaves nothing behind.
pub(crate) fn pause_bounds_a_lease_by_its_acquire_timeout<P: Policy>() {
    let (_, pool) = pool_built::<P>(2, 2, |builder| {
        builder.acquire_timeout(Duration::from_millis(40))
    });
    pool.pause();
    let started = Instant::now();
    assert!(matches!(pool.lease(&"a"), Err(Error::Timeout(_))));
    assert!(started.elapsed() >= Duration::from_millis(40));
    assert_eq!(pool.stats().total.pending, 0);
    pool.resume();
    drop(pool.lease(&"a").unwrap());
}

/// `shutdown` wakes a lease waiting at a pause, which finds the pool
/// closed.
pub(crate) fn shutdown_wakes_a_paused_lease<P: Policy>() {
    let (_, pool) = pool::<P>(2, 2);
    pool.pause();
    thread::scope(|s| {
        let waiting = s.spawn(|| pool.lease(&"a").map(|_| ()));
        eventually("the lease waits", || pool.stats().total.pending == 1);
        pool.shutdown();
        assert!(matches!(waiting.join().unwrap(), Err(Error::Closed)));
    });
}

/// `drain` waits for the leases out, then closes every idle connection;
/// the pool stays paused, and opens new connections once resumed.
pub(crate) fn drain_waits_for_leases_then_closes_idle<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 4);
    let leases: Vec<_> = (0..3).map(|_| pool.lease(&"a").unwrap()).collect();
    let mut leases = leases.into_iter();
    drop(leases.next());
    thread::scope(|s| {
        s.spawn(move || {
            thread::sleep(Duration::from_millis(30));
            drop(leases);
        });
        let started = Instant::now();
        pool.drain(Duration::from_secs(10)).expect("drained");
        assert!(started.elapsed() >= Duration::from_millis(25));
    });
    assert!(pool.stats().paused, "still paused");
    eventually("every connection closed", || connector.live() == 0);
    let stats = pool.stats().total;
    assert_eq!((stats.idle, stats.leased, stats.closed), (0, 0, 3));
    pool.resume();
    drop(pool.lease(&"a").unwrap());
    assert_eq!(connector.opened(), 4, "a new connection after the drain");
}

/// `drain` that runs out of time reports the leases still out, closes
/// nothing, and leaves the pool paused.
pub(crate) fn drain_times_out_with_leases_out<P: Policy>() {
    let (connector, pool) = pool::<P>(4, 4);
    let held = pool.lease(&"a").unwrap();
    drop(pool.lease(&"b").unwrap());
    let undrained = pool.drain(Duration::from_millis(20)).unwrap_err();
    assert_eq!(undrained.leased, 1);
    assert!(undrained.waited >= Duration::from_millis(20));
    assert_eq!(
        std::io::Error::from(undrained).kind(),
        std::io::ErrorKind::TimedOut
    );
    assert_eq!(connector.live(), 2, "nothing closed");
    assert!(pool.stats().paused);
    drop(held);
    pool.drain(Duration::from_secs(10)).expect("drained");
    eventually("every connection closed", || connector.live() == 0);
}

/// `set_max_idle` on a pool built without an idle cap: idle connections
/// over it close at once (stateless and stateful), returns over it close,
/// and a raised cap keeps more.
pub(crate) fn set_max_idle_closes_idle_over_it<P: Policy>() {
    let (connector, pool) = pool::<P>(6, 6);
    let alice = State::new("alice");
    let leases: Vec<_> = (0..4).map(|_| pool.lease(&"a").unwrap()).collect();
    let stateful = pool.lease_with_state(&"a", &alice).unwrap();
    drop(leases);
    drop(stateful);
    assert_eq!(pool.route_stats(&"a").idle, 5);
    pool.set_max_idle(2);
    eventually("idle down to 2", || pool.route_stats(&"a").idle == 2);
    eventually("3 closed", || connector.live() == 2);
    let leases: Vec<_> = (0..4).map(|_| pool.lease(&"a").unwrap()).collect();
    drop(leases);
    let stats = pool.route_stats(&"a");
    assert_eq!(
        (stats.idle, stats.leased),
        (2, 0),
        "returns over the cap closed"
    );
    pool.set_max_idle(3);
    let leases: Vec<_> = (0..4).map(|_| pool.lease(&"a").unwrap()).collect();
    drop(leases);
    assert_eq!(pool.route_stats(&"a").idle, 3, "the raised cap keeps 3");
    eventually("connector.live() == 3", || connector.live() == 3);
    let stats = pool.route_stats(&"a");
    assert_eq!(stats.created - stats.closed, 3);
}
