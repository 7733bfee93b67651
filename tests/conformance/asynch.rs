//! The async path of the conformance suite: `lease_async` scenarios with
//! exact expectations, stamped out for every policy and for several
//! executors (tokio current-thread and multi-thread, async-executor, and
//! `futures`' `block_on`), since the pool must need nothing from any of
//! them but wakers.
//!
//! Cancellation is tested at each point a future can be dropped: before
//! its first poll, queued, after a connection was handed to it but before
//! it was polled again, bound to a connect in flight, and during its
//! patience; and at random points by a storm of races.

use crate::scenarios::{eventually, pool, Mock};
use leasehold::mock::MockConn;
use leasehold::{Connector, Error, Handshake, Policy, Pool, Progress, State};
use leasehold_testkit::settled::settled;
use std::future::Future;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

/// Runs a future to completion on one kind of executor.
pub(crate) trait Executor {
    fn block_on<F: Future>(future: F) -> F::Output;
}

/// tokio's current-thread runtime, without its timer: deadlines must come
/// from the pool.
pub(crate) struct TokioCurrent;
/// tokio's multi-thread runtime.
pub(crate) struct TokioMulti;
/// smol's `async-executor`.
pub(crate) struct Smol;
/// `futures::executor::block_on`: no timers, no reactor, one thread.
pub(crate) struct BlockOn;

impl Executor for TokioCurrent {
    fn block_on<F: Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(future)
    }
}

impl Executor for TokioMulti {
    fn block_on<F: Future>(future: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        runtime.block_on(future)
    }
}

impl Executor for Smol {
    fn block_on<F: Future>(future: F) -> F::Output {
        let executor = async_executor::Executor::new();
        futures::executor::block_on(executor.run(future))
    }
}

impl Executor for BlockOn {
    fn block_on<F: Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }
}

/// Polls `future` once with a waker that does nothing: it is then queued
/// (or bound) with a waker nobody will act on, and must register the real
/// one when awaited later.
fn poll_once<F: Future + Unpin>(future: &mut F) -> Poll<F::Output> {
    Pin::new(future).poll(&mut Context::from_waker(Waker::noop()))
}

/// Yields to the executor `times` times.
async fn yield_now(times: usize) {
    let mut left = times;
    std::future::poll_fn(|cx| {
        if left == 0 {
            return Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

/// Whichever of `a` and `b` finishes first; the other is dropped.
async fn race<A: Future, B: Future>(a: A, b: B) -> Option<A::Output> {
    let (mut a, mut b) = (Box::pin(a), Box::pin(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = a.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        if b.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}

fn with_timeout<P: Policy>(max: usize, timeout: Duration) -> (Mock, Pool<Mock, P>) {
    let connector = Mock::new();
    let pool = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(max)
        .max_per_route(max)
        .acquire_timeout(timeout)
        .build()
        .unwrap();
    (connector, pool)
}

pub(crate) fn async_lease_returns_and_reuses<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(4, 4);
    E::block_on(async {
        let first = pool.lease_async(&"a").await.unwrap().id();
        let second = pool.lease_async(&"a").await.unwrap().id();
        assert_eq!(first, second, "an idle connection is reused");
    });
    assert_eq!(connector.opened(), 1);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.idle, stats.leased, stats.created), (1, 0, 1));
}

/// A future queued behind a lease held by a blocking thread is served by
/// its return: async and blocking requests share one queue.
pub(crate) fn async_waiter_served_by_blocking_return<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let held_id = held.id();
    thread::scope(|s| {
        s.spawn(|| {
            eventually("the future is queued", || {
                pool.route_stats(&"a").pending == 1
            });
            drop(held);
        });
        let got = E::block_on(pool.lease_async(&"a")).unwrap();
        assert_eq!(got.id(), held_id, "the returned connection, handed over");
    });
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// With the pool's one connection held, how long an async lease of "a"
/// waits until it fails with `Timeout` (no sooner than `timeout`).
fn async_wait_until_timeout<P: Policy, E: Executor>(
    pool: &Pool<Mock, P>,
    timeout: Duration,
) -> Duration {
    let _held = pool.lease(&"a").unwrap();
    let asked = Instant::now();
    let err = E::block_on(pool.lease_async(&"a")).unwrap_err();
    let waited = asked.elapsed();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    assert!(waited >= timeout, "not before its deadline: {waited:?}");
    waited
}

/// The deadline passes on time although nothing happens in the pool and
/// the executor has no timer: the pool's event loop wakes the future.
pub(crate) fn async_timeout_fires_without_pool_activity<P: Policy, E: Executor>() {
    let timeout = Duration::from_millis(60);
    let (connector, pool) = with_timeout::<P>(1, timeout);
    let waited = async_wait_until_timeout::<P, E>(&pool, timeout);
    assert!(
        waited < Duration::from_secs(5),
        "woken by its alarm: {waited:?}"
    );
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.pending, stats.timeouts), (0, 1));
    assert_eq!(connector.opened(), 1);
}

/// A deadline further off than two of the loop's sweep periods reaches the
/// loop without waking it (the loop turns once a period anyway), and still
/// fires on time.
pub(crate) fn async_far_deadline_fires_on_time<P: Policy, E: Executor>() {
    let timeout = Duration::from_millis(150);
    let connector = Mock::new();
    // An idle timeout of 200 ms makes the loop sweep every 20 ms.
    let pool = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(1)
        .idle_timeout(Duration::from_millis(200))
        .acquire_timeout(timeout)
        .build()
        .unwrap();
    let waited = async_wait_until_timeout::<P, E>(&pool, timeout);
    assert!(
        waited < timeout + Duration::from_secs(1),
        "late: {waited:?}"
    );
    assert_eq!(connector.opened(), 1);
}

/// `lease_owned_async` resolves to an owned lease, which outlives the
/// borrow of the pool the future took while it waited.
pub(crate) fn async_owned_lease<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let owned = thread::scope(|s| {
        s.spawn(|| {
            eventually("the future is queued", || {
                pool.route_stats(&"a").pending == 1
            });
            drop(held);
        });
        E::block_on(pool.lease_owned_async(&"a")).unwrap()
    });
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.leased, stats.pending), (1, 0));
    thread::spawn(move || drop(owned)).join().unwrap();
    assert_eq!(pool.route_stats(&"a").idle, 1);
    assert_eq!(connector.opened(), 1);
}

pub(crate) fn async_shutdown_wakes_waiter<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    thread::scope(|s| {
        s.spawn(|| {
            eventually("the future is queued", || {
                pool.route_stats(&"a").pending == 1
            });
            pool.shutdown();
        });
        let err = E::block_on(pool.lease_async(&"a")).unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
    });
    drop(held);
    eventually("every connection closed", || connector.live() == 0);
}

pub(crate) fn async_refused_connect_fails_fast<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(2, 2);
    connector.fail_next(1, io::ErrorKind::ConnectionRefused);
    let err = E::block_on(pool.lease_async(&"a")).unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err}");
    assert_eq!(pool.stats().total.allocated(), 0, "the capacity went back");
}

pub(crate) fn async_stateful_lease_gets_only_its_state<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(4, 4);
    let alice = State::new("alice");
    E::block_on(async {
        let plain = pool.lease_async(&"a").await.unwrap().id();
        let mut lease = pool.lease_async_with_state(&"a", &alice).await.unwrap();
        assert_ne!(lease.id(), plain, "no stateless connection for a state");
        lease.set_state(Some(alice.clone()));
        let stateful = lease.id();
        drop(lease);
        let again = pool.lease_async_with_state(&"a", &alice).await.unwrap();
        assert_eq!(again.id(), stateful, "its state's connection, reused");
    });
    assert_eq!(connector.opened(), 2);
}

/// Dropped before its first poll: it never asked for anything.
pub(crate) fn cancel_before_first_poll<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    drop(pool.lease_async(&"a"));
    assert_eq!(pool.stats().total.allocated(), 0);
    assert_eq!(connector.opened(), 0);
    E::block_on(async {
        drop(pool.lease_async(&"a").await.unwrap());
    });
    settled(&connector, &pool);
}

/// Dropped while queued: its place is withdrawn and the connection it was
/// waiting for goes idle when returned.
pub(crate) fn cancel_while_queued<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let mut waiting = pool.lease_async(&"a");
    assert!(poll_once(&mut waiting).is_pending());
    assert_eq!(pool.route_stats(&"a").pending, 1);
    drop(waiting);
    assert_eq!(pool.route_stats(&"a").pending, 0, "withdrawn");
    drop(held);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.idle, stats.leased), (1, 0), "returned to idle");
    E::block_on(async {
        drop(pool.lease_async(&"a").await.unwrap());
    });
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// Dropped after a connection was handed to it, before it was polled
/// again: the connection goes on to the next waiter, which is woken.
pub(crate) fn cancel_after_hand_off_before_poll<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    let held = pool.lease(&"a").unwrap();
    let held_id = held.id();
    let mut first = pool.lease_async(&"a");
    assert!(poll_once(&mut first).is_pending());
    let mut second = pool.lease_async(&"a");
    assert!(poll_once(&mut second).is_pending());
    assert_eq!(pool.route_stats(&"a").pending, 2);
    drop(held);
    drop(first);
    let got = E::block_on(second).unwrap();
    assert_eq!(got.id(), held_id, "the next waiter got it");
    drop(got);
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// Dropped while its connect is in flight: the new connection goes idle
/// when the connect completes.
pub(crate) fn cancel_while_connect_in_flight<P: Policy, E: Executor>() {
    let gate = Gated::default();
    let pool: Pool<Gated, P> = Pool::builder(gate.clone())
        .policy::<P>()
        .max_total(2)
        .build()
        .unwrap();
    let mut waiting = pool.lease_async(&"a");
    assert!(poll_once(&mut waiting).is_pending());
    assert_eq!(pool.route_stats(&"a").connecting, 1);
    drop(waiting);
    gate.open();
    eventually("the connect's connection goes idle", || {
        pool.route_stats(&"a").idle == 1
    });
    let got = E::block_on(pool.lease_async(&"a")).unwrap();
    drop(got);
    let stats = pool.route_stats(&"a");
    assert_eq!((stats.created, stats.connecting, stats.idle), (1, 0, 1));
    assert_eq!(gate.started(), 1, "the orphan's connection was used");
}

/// Dropped while waiting out its patience: the capacity it held goes back.
pub(crate) fn cancel_during_patience<P: Policy, E: Executor>() {
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(2)
        .patience(Duration::from_secs(5))
        .build()
        .unwrap();
    let held = pool.lease(&"a").unwrap();
    let mut patient = pool.lease_async(&"a");
    assert!(poll_once(&mut patient).is_pending(), "waits for a return");
    assert_eq!(pool.stats().total.allocated(), 2, "holding capacity");
    drop(patient);
    assert_eq!(pool.stats().total.allocated(), 1, "the capacity went back");
    drop(held);
    E::block_on(async {
        drop(pool.lease_async(&"a").await.unwrap());
    });
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// Many requests race `lease_async` against a few yields, so futures are
/// dropped queued, just served, or never polled; holders yield while they
/// hold. Afterwards nothing is leaked: no lease, waiter or capacity left
/// over, caps kept.
pub(crate) fn cancel_storm_conserves<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(3, 3);
    E::block_on(async {
        let tasks = (0..12).map(|task| {
            let pool = &pool;
            async move {
                let mut served = 0;
                for round in 0..60usize {
                    let patience = (task + round) % 4;
                    if let Some(lease) = race(pool.lease_async(&"a"), yield_now(patience)).await {
                        let lease = lease.unwrap();
                        served += 1;
                        yield_now(round % 3).await;
                        drop(lease);
                    }
                }
                served
            }
        });
        let served: usize = futures::future::join_all(tasks).await.into_iter().sum();
        assert!(served > 0);
    });
    assert!(connector.opened() <= 3, "caps kept: {}", connector.opened());
    settled(&connector, &pool);
}

// ---------------------------------------------------------------------------
// A connector whose connects complete when the test says so.

/// Connects over a socket pair; a connect completes when [`Gated::open`]
/// writes to the other end, and never if nobody does (a stuck handshake).
#[derive(Clone, Debug, Default)]
pub(crate) struct Gated {
    peers: Arc<Mutex<Vec<mio::net::UnixStream>>>,
    started: Arc<Mutex<usize>>,
}

impl Gated {
    /// Lets every connect started so far complete.
    pub(crate) fn open(&self) {
        for peer in self.peers.lock().unwrap().iter_mut() {
            let _ = peer.write_all(b"!");
        }
    }

    pub(crate) fn started(&self) -> usize {
        *self.started.lock().unwrap()
    }
}

#[derive(Debug)]
pub(crate) struct GatedHandshake {
    socket: mio::net::UnixStream,
}

impl mio::event::Source for GatedHandshake {
    fn register(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.socket.register(r, t, i)
    }
    fn reregister(&mut self, r: &mio::Registry, t: mio::Token, i: mio::Interest) -> io::Result<()> {
        self.socket.reregister(r, t, i)
    }
    fn deregister(&mut self, r: &mio::Registry) -> io::Result<()> {
        self.socket.deregister(r)
    }
}

impl Handshake for GatedHandshake {
    type Conn = MockConn<&'static str>;
    fn interest(&self) -> mio::Interest {
        mio::Interest::READABLE
    }
    fn advance(&mut self) -> io::Result<Option<Self::Conn>> {
        use std::io::Read;
        let mut byte = [0];
        match self.socket.read(&mut byte) {
            Ok(1) => match Mock::new().connect(&"a")? {
                Progress::Ready(conn) => Ok(Some(conn)),
                Progress::Pending(_) => unreachable!("the mock connects at once"),
            },
            Ok(_) => Err(io::Error::other("gate closed")),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Connector for Gated {
    type Route = &'static str;
    type Conn = MockConn<&'static str>;
    type Handshake = GatedHandshake;
    fn connect(&self, _: &&'static str) -> io::Result<Progress<Self::Conn, GatedHandshake>> {
        let (socket, peer) = mio::net::UnixStream::pair()?;
        self.peers.lock().unwrap().push(peer);
        *self.started.lock().unwrap() += 1;
        Ok(Progress::Pending(GatedHandshake { socket }))
    }
}

/// A paused pool holds `lease_async` (polled, then awaited) until
/// `resume`, from another thread; a future dropped at the pause leaves
/// nothing behind; one still waiting at its deadline times out.
pub(crate) fn async_pause_holds_until_resume<P: Policy, E: Executor>() {
    let (connector, pool) = pool::<P>(1, 1);
    pool.pause();
    let mut dropped = pool.lease_async(&"a");
    assert!(poll_once(&mut dropped).is_pending());
    let mut waiting = pool.lease_async(&"a");
    assert!(poll_once(&mut waiting).is_pending());
    assert_eq!(pool.stats().total.pending, 2);
    drop(dropped);
    assert_eq!(pool.stats().total.pending, 1, "the dropped one left");
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(20));
            pool.resume();
        });
        let lease = E::block_on(waiting).expect("served after the resume");
        assert!(!pool.stats().paused);
        drop(lease);
    });
    assert_eq!(connector.opened(), 1);
    settled(&connector, &pool);
}

/// A `lease_async` waiting at a pause fails with `Timeout` by its acquire
/// timeout, with no pool activity to notice it (the pool's timer fires).
pub(crate) fn async_pause_times_out<P: Policy, E: Executor>() {
    let connector = Mock::new();
    let pool: Pool<Mock, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .acquire_timeout(Duration::from_millis(40))
        .build()
        .unwrap();
    pool.pause();
    let started = Instant::now();
    let result = E::block_on(pool.lease_async(&"a"));
    assert!(matches!(result, Err(Error::Timeout(_))), "{result:?}");
    assert!(started.elapsed() >= Duration::from_millis(40));
    assert_eq!(pool.stats().total.pending, 0);
}
