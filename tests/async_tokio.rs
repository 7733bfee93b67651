//! `lease_async` on tokio's multi-thread runtime: tasks that move between
//! worker threads, cancellation by `tokio::time::timeout` and `select!`,
//! leases held across `.await`, one FIFO order for async and blocking
//! requests, and the `Send` promises, checked at compile time.

use leasehold_testkit::{settled, wait};

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Error, Lax, Lease, LeaseFuture, Offlock, Policy, Pool, Strict};
use settled::settled;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;
use wait::eventually;

type Mock = MockConnector<Route>;

/// The route every test leases on.
const A: Route = 7;
type Route = u32;

fn pool<P: Policy>(max: usize) -> (Mock, Arc<Pool<Mock, P>>) {
    let connector = Mock::new();
    let pool = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(max)
        .max_per_route(max)
        .build()
        .unwrap();
    (connector, Arc::new(pool))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap()
}

/// Compile-time: the future and the lease can cross threads (and so be
/// held across `.await` in a spawned task) whenever the connector allows.
#[allow(dead_code)]
fn send_assertions() {
    fn is_send<T: Send>() {}
    fn for_policy<P: Policy>() {
        is_send::<Lease<'static, Mock, P>>();
        is_send::<LeaseFuture<'static, 'static, Mock, P>>();
        #[cfg(unix)]
        {
            is_send::<Lease<'static, leasehold::TcpConnector, P>>();
            is_send::<LeaseFuture<'static, 'static, leasehold::TcpConnector, P>>();
        }
    }
    for_policy::<Strict>();
    for_policy::<Lax>();
    for_policy::<Offlock>();
}

/// Marks a connection in use; panics if it already was: two holders at once.
fn exclusive(in_use: &[AtomicBool], conn: &MockConn<Route>) -> usize {
    let id = conn.id() as usize;
    assert!(
        !in_use[id].swap(true, Ordering::AcqRel),
        "connection {id} leased twice at once"
    );
    id
}

/// Tasks spread over four worker threads lease, hold across `.await`
/// points (so they resume on other threads) and return; a third of the
/// requests are cut short by tiny `tokio::time::timeout`s and another share
/// lose a `select!` against a ready branch. Every connection has one holder
/// at a time, and at the end nothing is leaked.
fn cancellation_storm<P: Policy>() {
    let (connector, pool) = pool::<P>(4);
    let in_use: Arc<Vec<AtomicBool>> = Arc::new((0..64).map(|_| AtomicBool::new(false)).collect());
    let served = Arc::new(AtomicUsize::new(0));
    runtime().block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|task| {
                let (pool, in_use, served) = (pool.clone(), in_use.clone(), served.clone());
                tokio::spawn(async move {
                    for round in 0..200usize {
                        let lease = match (task + round) % 3 {
                            0 => {
                                let wait = Duration::from_micros((round % 50) as u64);
                                tokio::time::timeout(wait, pool.lease_async(&A)).await.ok()
                            }
                            1 => tokio::select! {
                                biased;
                                lease = pool.lease_async(&A), if round % 2 == 0 => Some(lease),
                                _ = std::future::ready(()) => None,
                            },
                            _ => Some(pool.lease_async(&A).await),
                        };
                        if let Some(lease) = lease {
                            let lease = lease.expect("served within the default 30 s");
                            let id = exclusive(&in_use, &lease);
                            tokio::task::yield_now().await;
                            in_use[id].store(false, Ordering::Release);
                            drop(lease);
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert!(served.load(Ordering::Relaxed) > 32 * 200 / 3);
    assert!(connector.opened() <= 4, "caps kept: {}", connector.opened());
    settled(&connector, &pool);
}

/// Tasks cancelled by timeouts while the pool is held: each timeout is
/// counted, and the waiters behind a withdrawn one are still served.
fn timeouts_withdraw_only_themselves<P: Policy>() {
    let (connector, pool) = pool::<P>(1);
    let held = pool.lease(&A).unwrap();
    runtime().block_on(async {
        let patient = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.lease_async(&A).await.map(|l| l.id()) })
        };
        let hasty: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let wait = Duration::from_millis(5);
                    tokio::time::timeout(wait, pool.lease_async(&A))
                        .await
                        .is_err()
                })
            })
            .collect();
        for task in hasty {
            assert!(task.await.unwrap(), "timed out");
        }
        drop(held);
        let got = patient.await.unwrap().unwrap();
        assert_eq!(got, 0, "the one connection, handed to the patient task");
    });
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// A fair policy serves async and blocking requests of a route in one FIFO
/// order, whichever kind each is.
fn async_and_blocking_share_one_fifo<P: Policy>() {
    let (_connector, pool) = pool::<P>(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = pool.lease(&A).unwrap();
    let rt = runtime();
    thread::scope(|s| {
        let mut handles = Vec::new();
        for who in 0..6 {
            let (task_pool, order) = (pool.clone(), order.clone());
            if who % 2 == 0 {
                handles.push(s.spawn(move || {
                    let lease = task_pool.lease(&A).unwrap();
                    order.lock().unwrap().push(who);
                    drop(lease);
                }));
            } else {
                let task = rt.spawn(async move {
                    let lease = task_pool.lease_async(&A).await.unwrap();
                    order.lock().unwrap().push(who);
                    drop(lease);
                });
                handles.push(s.spawn(move || {
                    futures::executor::block_on(task).unwrap();
                }));
            }
            let queued = who + 1;
            eventually("queued in order", || pool.route_stats(&A).pending == queued);
        }
        drop(held);
        for handle in handles {
            handle.join().unwrap();
        }
    });
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3, 4, 5]);
}

/// A pool-level acquire timeout on the multi-thread runtime: the error
/// comes on time from the pool's event loop, and the task is not stuck.
fn pool_timeout_on_runtime<P: Policy>() {
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector)
        .policy::<P>()
        .max_total(1)
        .acquire_timeout(Duration::from_millis(30))
        .build()
        .unwrap();
    let _held = pool.lease(&A).unwrap();
    let err = runtime().block_on(pool.lease_async(&A)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
}

macro_rules! for_policies {
    ($($test:ident),+ $(,)?) => {
        mod strict {
            use super::*;
            $( #[test] fn $test() { super::$test::<Strict>(); } )+
        }
        mod lax {
            use super::*;
            $( #[test] fn $test() { super::$test::<Lax>(); } )+
        }
        mod offlock {
            use super::*;
            $( #[test] fn $test() { super::$test::<Offlock>(); } )+
        }
    };
}

for_policies!(
    cancellation_storm,
    timeouts_withdraw_only_themselves,
    pool_timeout_on_runtime,
);

#[test]
fn strict_serves_async_and_blocking_in_one_fifo() {
    async_and_blocking_share_one_fifo::<Strict>();
}

#[test]
fn offlock_serves_async_and_blocking_in_one_fifo() {
    async_and_blocking_share_one_fifo::<Offlock>();
}
