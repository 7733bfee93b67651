//! The recycling hooks, under each policy: `on_create` once per connection
//! before its first lease (warm connections included), `on_check_out` at
//! every lease, a failing or panicking hook costing the connection and not
//! the request, a hook that refuses everything ending in the acquire
//! timeout rather than a hang, the async path running them too, and
//! `validate_on_lease` against a real socket the peer closed.

use leasehold_testkit::{for_each_policy, wait};

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Builder, Error, Policy, Pool};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wait::eventually;

type Mock = MockConnector<u8>;

const ROUTE: u8 = 1;

fn builder<P: Policy>(connector: &Mock) -> Builder<Mock, P> {
    Pool::builder(connector.clone())
        .policy::<P>()
        .max_per_route(4)
        .acquire_timeout(Duration::from_secs(10))
}

/// Counts hook calls per connection id.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<HashMap<u64, usize>>>);

impl Calls {
    fn record(&self, conn: &MockConn<u8>) {
        *self.0.lock().unwrap().entry(conn.id()).or_default() += 1;
    }

    fn of(&self, id: u64) -> usize {
        self.0.lock().unwrap().get(&id).copied().unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }

    /// A hook that records its calls here and lets every connection in.
    fn hook(&self) -> impl Fn(&mut MockConn<u8>) -> io::Result<()> + Send + Sync + 'static {
        let calls = self.clone();
        move |conn| {
            calls.record(conn);
            Ok(())
        }
    }
}

fn on_create_runs_once_per_connection_before_its_first_lease<P: Policy>() {
    let connector = Mock::new();
    let created = Calls::default();
    let pool = builder::<P>(&connector)
        .on_create(created.hook())
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..5 {
        let lease = pool.lease(&ROUTE).unwrap();
        assert_eq!(created.of(lease.id()), 1, "before the lease, once");
        ids.push(lease.id());
    }
    // Two at once: the second is a new connection, with its own call.
    let a = pool.lease(&ROUTE).unwrap();
    let b = pool.lease(&ROUTE).unwrap();
    assert_ne!(a.id(), b.id());
    assert_eq!(created.of(b.id()), 1);
    assert_eq!(created.total(), 2);
    assert_eq!(pool.health().rejected, 0);
}

fn a_warm_connection_gets_on_create_at_its_first_lease<P: Policy>() {
    let connector = Mock::new();
    let created = Calls::default();
    let pool = builder::<P>(&connector)
        .min_idle(ROUTE, 2)
        .on_create(created.hook())
        .build()
        .unwrap();
    eventually("two warm connections", || {
        pool.route_stats(&ROUTE).idle == 2
    });
    assert_eq!(created.total(), 0, "not leased yet");
    let lease = pool.lease(&ROUTE).unwrap();
    assert_eq!(created.of(lease.id()), 1);
}

fn a_failing_on_create_costs_the_connection_not_the_request<P: Policy>() {
    let connector = Mock::new();
    let refusals = Arc::new(AtomicUsize::new(0));
    let pool = builder::<P>(&connector)
        .on_create({
            let refusals = refusals.clone();
            move |_| {
                // The first connection is refused, then one panics.
                match refusals.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(io::Error::other("no session")),
                    1 => panic!("a hook that panics"),
                    _ => Ok(()),
                }
            }
        })
        .build()
        .unwrap();
    let lease = pool.lease(&ROUTE).unwrap();
    assert_eq!(pool.health().rejected, 2);
    assert_eq!(connector.opened(), 3);
    drop(lease);
    eventually("the refused connections closed", || connector.live() == 1);
    assert_eq!(pool.stats().total.leased, 0);
}

fn on_check_out_runs_at_every_lease_and_a_refusal_takes_another<P: Policy>() {
    let connector = Mock::new();
    let checked = Calls::default();
    let refuse: Arc<Mutex<Option<u64>>> = Arc::default();
    let pool = builder::<P>(&connector)
        .on_check_out({
            let (checked, refuse) = (checked.clone(), refuse.clone());
            move |conn| {
                checked.record(conn);
                if *refuse.lock().unwrap() == Some(conn.id()) {
                    return Err(io::Error::other("stale session"));
                }
                Ok(())
            }
        })
        .build()
        .unwrap();
    let first = pool.lease(&ROUTE).unwrap().id();
    let again = pool.lease(&ROUTE).unwrap().id();
    assert_eq!(first, again);
    assert_eq!(checked.of(first), 2);
    *refuse.lock().unwrap() = Some(first);
    let other = pool.lease(&ROUTE).unwrap();
    assert_ne!(other.id(), first);
    assert_eq!(checked.of(first), 3);
    assert_eq!(checked.of(other.id()), 1);
    assert_eq!(pool.health().rejected, 1);
}

fn a_hook_refusing_everything_ends_in_the_acquire_timeout<P: Policy>() {
    let connector = Mock::new();
    let pool = builder::<P>(&connector)
        .acquire_timeout(Duration::from_millis(100))
        .on_check_out(|_| Err(io::Error::other("never")))
        .build()
        .unwrap();
    let err = pool.lease(&ROUTE).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert!(pool.health().rejected >= 1);
    let err = pool.try_lease(&ROUTE).unwrap_err();
    assert!(matches!(err, Error::Exhausted(_)), "{err:?}");
    let err = futures::executor::block_on(pool.lease_async(&ROUTE)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err:?}");
    assert_eq!(pool.stats().total.leased, 0);
}

fn the_async_path_runs_the_hooks_too<P: Policy>() {
    let connector = Mock::new();
    let calls = Calls::default();
    let pool = builder::<P>(&connector)
        .on_create(calls.hook())
        .on_check_out(calls.hook())
        .build()
        .unwrap();
    let id = futures::executor::block_on(async {
        let lease = pool.lease_async(&ROUTE).await.unwrap();
        lease.id()
    });
    assert_eq!(calls.of(id), 2, "on_create, then on_check_out");
}

for_each_policy!(
    on_create_runs_once_per_connection_before_its_first_lease,
    a_warm_connection_gets_on_create_at_its_first_lease,
    a_failing_on_create_costs_the_connection_not_the_request,
    on_check_out_runs_at_every_lease_and_a_refusal_takes_another,
    a_hook_refusing_everything_ends_in_the_acquire_timeout,
    the_async_path_runs_the_hooks_too,
);

/// A connection the peer closed a moment ago, before the event loop could
/// have armed its watch for bytes: `validate_on_lease` peeks and takes
/// another, without waiting for the watch.
#[cfg(target_os = "linux")]
#[test]
fn validate_on_lease_finds_a_connection_the_peer_just_wrote_to() {
    use leasehold::TcpConnector;
    use std::io::Write;
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let pool = Pool::builder(TcpConnector::new())
        .validate_on_lease()
        .build()
        .unwrap();
    let lease = pool.lease(&addr).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    drop(lease);
    // Bytes nobody asked for: the loop hears of them only once the
    // connection has been idle for 50–100 ms; the lease peeks at once.
    server.write_all(b"unsolicited").unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let _fresh = pool.lease(&addr).unwrap();
    let (_second, _) = listener.accept().unwrap();
    assert_eq!(pool.health().invalid, 1);
}
