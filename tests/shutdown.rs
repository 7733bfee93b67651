//! Shutdown as a user sees it when the last `Pool` handle is dropped:
//! safely on any thread, the pool's own included (a connection or a
//! connect that carries the last handle); within the shutdown grace even
//! when closes are slow, with what is left aborted; and by a closer that
//! outlives a connector whose `close` panics. Every test runs under every
//! policy.

use leasehold_testkit::for_each_policy;

use leasehold_testkit::wait;

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{
    Builder, ConfigError, Connector, Disposal, Handshake, Lax, Policy, Pool, Progress, Strict,
};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Waker};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};
use wait::{eventually, settle};

// ---------------------------------------------------------------------------
// The last handle, carried by a connection or a connect
// ---------------------------------------------------------------------------

/// A pool handle that a connection or a handshake carries and drops with
/// itself; it reports whether dropping the handle panicked.
struct Keepsake {
    handle: Option<Box<dyn Send>>,
    dropped_cleanly: mpsc::Sender<bool>,
}

impl Keepsake {
    /// Carries `pool`; the receiver hears how its drop went.
    fn of<C: Connector, P: Policy>(pool: &Pool<C, P>) -> (Self, mpsc::Receiver<bool>) {
        let (dropped_cleanly, report) = mpsc::channel();
        let keepsake = Self {
            handle: Some(Box::new(pool.clone())),
            dropped_cleanly,
        };
        (keepsake, report)
    }
}

impl Drop for Keepsake {
    fn drop(&mut self) {
        let handle = self.handle.take();
        let clean = catch_unwind(AssertUnwindSafe(move || drop(handle))).is_ok();
        let _ = self.dropped_cleanly.send(clean);
    }
}

/// Waits for `report` to say how the carried handle's drop went.
fn assert_dropped_cleanly(report: &mpsc::Receiver<bool>, on: &str) {
    let clean = report
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the last handle was never dropped on {on}: {e}"));
    assert!(clean, "dropping the last handle on {on} panicked");
}

// ---------------------------------------------------------------------------
// Threads that end
// ---------------------------------------------------------------------------

/// The threads that ran a connector's code, and whether each has ended.
#[derive(Clone, Default)]
struct Threads(Arc<Mutex<HashMap<ThreadId, bool>>>);

/// Marks its thread ended when the thread's locals are destroyed.
struct EndWatch {
    threads: Threads,
    id: ThreadId,
}

impl Drop for EndWatch {
    fn drop(&mut self) {
        self.threads.0.lock().unwrap().insert(self.id, true);
    }
}

thread_local! {
    static END_WATCHES: RefCell<Vec<EndWatch>> = const { RefCell::new(Vec::new()) };
}

impl Threads {
    /// Notes the calling thread (once).
    fn note(&self) {
        let id = thread::current().id();
        if self.0.lock().unwrap().insert(id, false).is_some() {
            return;
        }
        let watch = EndWatch {
            threads: self.clone(),
            id,
        };
        END_WATCHES.with(|watches| watches.borrow_mut().push(watch));
    }

    /// How many threads were noted, and how many of them have ended.
    fn counts(&self) -> (usize, usize) {
        let threads = self.0.lock().unwrap();
        (
            threads.len(),
            threads.values().filter(|&&ended| ended).count(),
        )
    }

    /// Waits until every noted thread has ended (at least `least` noted).
    fn assert_all_end(&self, least: usize) {
        settle(
            "every pool thread that ran the connector ends",
            Duration::from_secs(10),
            || match self.counts() {
                (noted, ended) if noted >= least && ended == noted => Ok(()),
                counts => Err(counts),
            },
        );
    }
}

// ---------------------------------------------------------------------------
// The connector
// ---------------------------------------------------------------------------

/// A mock connection that may carry a pool handle.
struct Kept {
    mock: MockConn,
    keepsake: Option<Keepsake>,
}

/// A connector whose closes can be slow, held, or panic, whose next connect
/// can be a handshake the test completes, and which notes the threads it
/// closes and connects on.
#[derive(Clone, Default)]
struct Scripted(Arc<Script>);

#[derive(Default)]
struct Script {
    mock: MockConnector,
    /// How long each graceful close takes.
    close_takes: Mutex<Duration>,
    /// The next close waits for this (or 10 s).
    gate: Mutex<Option<mpsc::Receiver<()>>>,
    panic_next_close: AtomicBool,
    /// The next connect is pending on this socket, carrying this handle.
    pending: Mutex<Option<(UnixStream, Keepsake)>>,
    /// Graceful closes that ran to their end.
    closed: Mutex<u64>,
    threads: Threads,
}

impl Scripted {
    fn mock(&self) -> &MockConnector {
        &self.0.mock
    }

    fn closed(&self) -> u64 {
        *self.0.closed.lock().unwrap()
    }

    /// Makes every graceful close take `time`.
    fn close_takes(&self, time: Duration) {
        *self.0.close_takes.lock().unwrap() = time;
    }

    /// Holds the next close until the returned sender sends.
    fn hold_next_close(&self) -> mpsc::Sender<()> {
        let (open, gate) = mpsc::channel();
        *self.0.gate.lock().unwrap() = Some(gate);
        open
    }

    /// Whether the held close has started (and waits at the gate).
    fn holding(&self) -> bool {
        self.0.gate.lock().unwrap().is_none()
    }

    /// Makes the next connect pend until a byte arrives at the returned
    /// socket; its handshake carries `keepsake`.
    fn pend_next_connect(&self, keepsake: Keepsake) -> UnixStream {
        let (test_end, connect_end) = UnixStream::pair().unwrap();
        connect_end.set_nonblocking(true).unwrap();
        *self.0.pending.lock().unwrap() = Some((connect_end, keepsake));
        test_end
    }
}

impl Connector for Scripted {
    type Route = ();
    type Conn = Kept;
    type Handshake = ByteHandshake;

    fn connect(&self, route: &()) -> io::Result<Progress<Kept, ByteHandshake>> {
        if let Some((socket, keepsake)) = self.0.pending.lock().unwrap().take() {
            return Ok(Progress::Pending(ByteHandshake {
                socket: mio::net::UnixStream::from_std(socket),
                _keepsake: Some(keepsake),
                connector: self.clone(),
            }));
        }
        let Ok(Progress::Ready(conn)) = self.0.mock.connect(route) else {
            return Err(io::Error::other("the mock connects at once"));
        };
        Ok(Progress::Ready(Kept {
            mock: conn,
            keepsake: None,
        }))
    }

    fn close(&self, mut conn: Kept) {
        self.0.threads.note();
        let gate = self.0.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        }
        if self.0.panic_next_close.swap(false, Ordering::SeqCst) {
            panic!("a connector whose close panics");
        }
        let takes = *self.0.close_takes.lock().unwrap();
        thread::sleep(takes);
        *self.0.closed.lock().unwrap() += 1;
        // Dropped here: with it, the handle it may carry.
        let keepsake = conn.keepsake.take();
        self.0.mock.close(conn.mock);
        drop(keepsake);
    }

    fn abort(&self, mut conn: Kept) {
        self.0.threads.note();
        let keepsake = conn.keepsake.take();
        self.0.mock.abort(conn.mock);
        drop(keepsake);
    }
}

/// A connect that completes when a byte arrives on its socket, carrying a
/// pool handle until it is dropped.
struct ByteHandshake {
    socket: mio::net::UnixStream,
    /// Only dropped: with the handshake.
    _keepsake: Option<Keepsake>,
    connector: Scripted,
}

impl Source for ByteHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.socket.register(registry, token, interest)
    }
    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.socket.reregister(registry, token, interest)
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket.deregister(registry)
    }
}

impl Handshake for ByteHandshake {
    type Conn = Kept;

    fn interest(&self) -> Interest {
        Interest::READABLE
    }

    fn advance(&mut self) -> io::Result<Option<Kept>> {
        self.connector.0.threads.note();
        let mut byte = [0];
        match self.socket.read(&mut byte) {
            Ok(1) => {
                let Ok(Progress::Ready(conn)) = self.connector.0.mock.connect(&()) else {
                    return Err(io::Error::other("the mock connects at once"));
                };
                Ok(Some(Kept {
                    mock: conn,
                    keepsake: None,
                }))
            }
            Ok(_) => Err(io::ErrorKind::UnexpectedEof.into()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn pool<P: Policy>(connector: &Scripted, max: usize) -> Pool<Scripted, P> {
    pool_with(connector, max, |b| b)
}

/// A pool of `max` connections to the one route, configured further.
fn pool_with<P: Policy>(
    connector: &Scripted,
    max: usize,
    configure: impl FnOnce(Builder<Scripted, P>) -> Builder<Scripted, P>,
) -> Pool<Scripted, P> {
    configure(
        Pool::builder(connector.clone())
            .policy::<P>()
            .max_total(max)
            .max_per_route(max),
    )
    .build()
    .unwrap()
}

/// Opens `n` connections and leaves them idle.
fn fill<P: Policy>(pool: &Pool<Scripted, P>, n: usize) {
    let leases: Vec<_> = (0..n).map(|_| pool.lease(&()).unwrap()).collect();
    drop(leases);
    assert_eq!(pool.stats().total.idle, n);
}

// ---------------------------------------------------------------------------
// The last handle dropped on the pool's own threads
// ---------------------------------------------------------------------------

/// A discarded connection carries the last handle: the closer drops it
/// while closing that connection. The pool still closes everything (the
/// idle connection too) and its threads end.
fn last_handle_dropped_on_the_closer_thread<P: Policy>() {
    let connector = Scripted::default();
    let pool = pool::<P>(&connector, 2);
    let mut carrier = pool.lease(&()).unwrap();
    drop(pool.lease(&()).unwrap());
    let (keepsake, report) = Keepsake::of(&pool);
    carrier.keepsake = Some(keepsake);
    let open = connector.hold_next_close();
    carrier.discard();
    eventually("the closer holds the carrier", || connector.holding());
    drop(pool);
    open.send(()).unwrap();

    assert_dropped_cleanly(&report, "the closer thread");
    eventually("both connections closed", || {
        connector.mock().closed_by_pool() == 2
    });
    assert_eq!(connector.mock().live(), 0);
    connector.0.threads.assert_all_end(1);
}

/// A connect carries the last handle: its caller gave up on it and dropped
/// the pool, and the event loop drops the handle with the handshake when
/// the connect completes. The connection it opened is closed and the
/// pool's threads end.
fn last_handle_dropped_on_the_event_loop_thread<P: Policy>() {
    let connector = Scripted::default();
    let pool = pool::<P>(&connector, 2);
    let (keepsake, report) = Keepsake::of(&pool);
    let mut peer = connector.pend_next_connect(keepsake);
    {
        let mut lease = pin!(pool.lease_async(&()));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(lease.as_mut().poll(&mut cx).is_pending());
        assert_eq!(pool.stats().total.connecting, 1);
    }
    drop(pool);
    peer.write_all(b"!").unwrap();

    assert_dropped_cleanly(&report, "the event loop thread");
    eventually("the late connection closed", || {
        connector.mock().closed_by_pool() == 1
    });
    assert_eq!(connector.mock().live(), 0);
    // The event loop: it drove the connect, and closed the connection.
    connector.0.threads.assert_all_end(1);
}

// ---------------------------------------------------------------------------
// Slow closes and the grace
// ---------------------------------------------------------------------------

/// Each close takes this long; the pool holds 8 connections, so closing
/// them one after another takes 16 s.
const SLOW_CLOSE: Duration = Duration::from_secs(2);

/// Eight slow closes end the drop within the grace: closed side by side,
/// not one after another.
fn slow_closes_do_not_add_up<P: Policy>() {
    let connector = Scripted::default();
    let pool: Pool<Scripted, P> =
        pool_with(&connector, 8, |b| b.shutdown_grace(Duration::from_secs(4)));
    fill(&pool, 8);
    connector.close_takes(SLOW_CLOSE);

    let dropping = Instant::now();
    drop(pool);
    let took = dropping.elapsed();
    assert!(
        took < 8 * SLOW_CLOSE,
        "the drop took {took:?}: as long as the closes one after another"
    );
    assert_eq!(
        connector.mock().closed_by_pool(),
        8,
        "each closed or aborted"
    );
    assert_eq!(connector.mock().live(), 0);
}

/// With no grace, every connection left at the drop is aborted, none closed
/// gracefully. The drop does not wait for a helper thread that took a
/// connection just before the grace ran out: its abort may land just after.
fn no_grace_aborts_everything_left<P: Policy>() {
    let connector = Scripted::default();
    let pool: Pool<Scripted, P> = pool_with(&connector, 4, |b| b.shutdown_grace(Duration::ZERO));
    fill(&pool, 4);
    drop(pool);
    eventually("every connection aborted", || {
        connector.mock().aborted() == 4 && connector.mock().live() == 0
    });
    assert_eq!(connector.mock().closed_by_pool(), 4);
    assert_eq!(connector.closed(), 0, "no graceful close");
}

/// A grace too long for any clock (`Duration::MAX`) means no limit: the
/// drop waits for every graceful close, and nothing panics.
fn an_endless_grace_waits_for_every_close<P: Policy>() {
    let connector = Scripted::default();
    let pool: Pool<Scripted, P> = pool_with(&connector, 3, |b| b.shutdown_grace(Duration::MAX));
    fill(&pool, 3);
    connector.close_takes(Duration::from_millis(50));
    drop(pool);
    assert_eq!(connector.closed(), 3, "all closed gracefully");
    assert_eq!(connector.mock().aborted(), 0);
    assert_eq!(connector.mock().live(), 0);
}

/// Inline disposal closes on the dropping thread, one connection after
/// another, but none is started after the grace: the rest are aborted.
fn inline_closes_stop_at_the_grace<P: Policy>() {
    let connector = Scripted::default();
    let pool: Pool<Scripted, P> = pool_with(&connector, 8, |b| {
        b.disposal(Disposal::Inline)
            .shutdown_grace(Duration::from_secs(1))
    });
    fill(&pool, 8);
    connector.close_takes(SLOW_CLOSE);

    let dropping = Instant::now();
    drop(pool);
    let took = dropping.elapsed();
    assert!(took < 8 * SLOW_CLOSE, "the drop took {took:?}");
    assert!(
        connector.mock().aborted() >= 7,
        "the first close ends after the grace"
    );
    assert_eq!(connector.mock().closed_by_pool(), 8);
    assert_eq!(connector.mock().live(), 0);
}

#[test]
fn inline_closes_stop_at_the_grace_strict() {
    inline_closes_stop_at_the_grace::<Strict>();
}

#[test]
fn inline_closes_stop_at_the_grace_lax() {
    inline_closes_stop_at_the_grace::<Lax>();
}

// ---------------------------------------------------------------------------
// A panicking close, and the disposal queue's size
// ---------------------------------------------------------------------------

/// A close that panics loses its connection (dropped) and nothing else: the
/// closer closes the ones after it.
fn the_closer_survives_a_panicking_close<P: Policy>() {
    let connector = Scripted::default();
    let pool = pool::<P>(&connector, 2);
    let (first, second) = (pool.lease(&()).unwrap(), pool.lease(&()).unwrap());
    connector.0.panic_next_close.store(true, Ordering::SeqCst);
    first.discard();
    eventually("the panicking close has run", || {
        !connector.0.panic_next_close.load(Ordering::SeqCst) && connector.mock().live() == 1
    });
    second.discard();
    eventually("the next connection is closed", || connector.closed() == 1);
    assert_eq!(connector.mock().live(), 0);
    fill(&pool, 2);
    drop(pool);
    assert_eq!(connector.closed(), 3, "the closer kept closing");
    assert_eq!(connector.mock().live(), 0);
}

fn a_disposal_queue_of_zero_is_refused<P: Policy>() {
    let built: Result<Pool<MockConnector, P>, _> = Pool::builder(MockConnector::new())
        .policy::<_>()
        .disposal(Disposal::Background { queue: 0 })
        .build();
    let error = built.unwrap_err();
    assert_eq!(error, ConfigError::ZeroDisposalQueue);
    assert_eq!(
        error.to_string(),
        "the disposal queue must hold at least one connection"
    );
}

for_each_policy!(
    last_handle_dropped_on_the_closer_thread,
    last_handle_dropped_on_the_event_loop_thread,
    slow_closes_do_not_add_up,
    no_grace_aborts_everything_left,
    an_endless_grace_waits_for_every_close,
    the_closer_survives_a_panicking_close,
    a_disposal_queue_of_zero_is_refused,
);
