//! Disposal off the caller's thread: where connections are closed, that a
//! slow close never delays a lease, and the rule when the queue is full (an
//! abortive close on the caller's thread, never a graceful one).

use leasehold_testkit::wait;

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Disposal, Lax, Never, Policy, Pool, Progress, Strict};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;
use wait::eventually;

/// How a connection was closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// `Connector::close`: the graceful close.
    Closed,
    /// `Connector::abort`.
    Aborted,
}

/// A mock connector whose closes and aborts record their thread, and whose
/// next close can be held until the test lets it go.
#[derive(Clone, Default)]
struct Recording {
    mock: MockConnector,
    closes: Arc<Mutex<Vec<(ThreadId, How)>>>,
    gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
    gate_opened_in_time: Arc<AtomicBool>,
}

impl Recording {
    /// Holds the next close until the returned sender sends (or 10 s pass).
    fn hold_next_close(&self) -> mpsc::Sender<()> {
        let (open, gate) = mpsc::channel();
        *self.gate.lock().unwrap() = Some(gate);
        open
    }

    /// Every close and abort so far, in order, with its thread.
    fn closes(&self) -> Vec<(ThreadId, How)> {
        self.closes.lock().unwrap().clone()
    }

    fn record(&self, how: How) {
        self.closes
            .lock()
            .unwrap()
            .push((thread::current().id(), how));
    }
}

impl Connector for Recording {
    type Route = ();
    type Conn = MockConn;
    type Handshake = Never<MockConn>;

    fn connect(&self, route: &()) -> io::Result<Progress<MockConn, Never<MockConn>>> {
        self.mock.connect(route)
    }

    fn close(&self, conn: MockConn) {
        let gate = self.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let opened = gate.recv_timeout(Duration::from_secs(10)).is_ok();
            self.gate_opened_in_time.store(opened, Ordering::SeqCst);
        }
        self.record(How::Closed);
        self.mock.close(conn);
    }

    fn abort(&self, conn: MockConn) {
        self.record(How::Aborted);
        self.mock.abort(conn);
    }
}

fn pool<P: Policy>(connector: &Recording, disposal: Disposal) -> Pool<Recording, P> {
    Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(4)
        .max_per_route(4)
        .disposal(disposal)
        .build()
        .unwrap()
}

fn closes_where<P: Policy>(disposal: Disposal, on_caller: bool) {
    let connector = Recording::default();
    let pool = pool::<P>(&connector, disposal);
    pool.lease(&()).unwrap().discard();
    eventually("the close", || connector.closes().len() == 1);
    let (on, how) = connector.closes()[0];
    assert_eq!(on == thread::current().id(), on_caller, "{disposal:?}");
    assert_eq!(how, How::Closed, "{disposal:?}");
}

#[test]
fn background_disposal_closes_off_the_callers_thread() {
    closes_where::<Strict>(Disposal::default(), false);
    closes_where::<Lax>(Disposal::default(), false);
}

#[test]
fn inline_disposal_closes_on_the_callers_thread() {
    closes_where::<Strict>(Disposal::Inline, true);
    closes_where::<Lax>(Disposal::Inline, true);
}

fn slow_close_does_not_delay_the_caller<P: Policy>() {
    // The close of the discarded connection is held until the caller has
    // leased again; were it inline, the discard would not return and the
    // gate would time out.
    let connector = Recording::default();
    let pool = pool::<P>(&connector, Disposal::default());
    let first = pool.lease(&()).unwrap();
    let open = connector.hold_next_close();
    first.discard();
    let second = pool.lease(&()).unwrap();
    open.send(()).unwrap();
    drop(second);
    eventually("the held close", || connector.closes().len() == 1);
    assert!(connector.gate_opened_in_time.load(Ordering::SeqCst));
}

#[test]
fn a_slow_close_does_not_delay_leases() {
    slow_close_does_not_delay_the_caller::<Strict>();
    slow_close_does_not_delay_the_caller::<Lax>();
}

#[test]
fn a_full_disposal_queue_aborts_on_the_callers_thread() {
    let connector = Recording::default();
    let pool = pool::<Strict>(&connector, Disposal::Background { queue: 1 });
    let leases: Vec<_> = (0..3).map(|_| pool.lease(&()).unwrap()).collect();
    let mut leases = leases.into_iter();
    // The first close holds the disposal thread; the second waits in the
    // queue; the third finds it full and is aborted here.
    let open = connector.hold_next_close();
    leases.next().unwrap().discard();
    eventually("the disposal thread holds", || {
        connector.gate.lock().unwrap().is_none()
    });
    leases.next().unwrap().discard();
    leases.next().unwrap().discard();
    let caller = thread::current().id();
    assert_eq!(
        connector.closes(),
        [(caller, How::Aborted)],
        "aborted here: not closed gracefully here, not dropped"
    );
    open.send(()).unwrap();
    eventually("all closed", || connector.closes().len() == 3);
    let closes = connector.closes();
    assert!(
        closes[1..]
            .iter()
            .all(|&(on, how)| on != caller && how == How::Closed),
        "the queued ones are closed gracefully off the caller's thread: {closes:?}"
    );
    assert!(connector.gate_opened_in_time.load(Ordering::SeqCst));
    // An aborted connection counts as closed by the pool: none is lost.
    assert_eq!(connector.mock.aborted(), 1);
    assert_eq!(connector.mock.closed_by_pool(), 3);
    assert_eq!(connector.mock.live(), 0);
}

/// A connector that only has a graceful close: `abort` is the default.
struct GracefulOnly(MockConnector);

impl Connector for GracefulOnly {
    type Route = ();
    type Conn = MockConn;
    type Handshake = Never<MockConn>;

    fn connect(&self, route: &()) -> io::Result<Progress<MockConn, Never<MockConn>>> {
        self.0.connect(route)
    }

    fn close(&self, conn: MockConn) {
        self.0.close(conn);
    }
}

#[test]
fn the_default_abort_drops_without_a_graceful_close() {
    let connector = GracefulOnly(MockConnector::new());
    let Ok(Progress::Ready(conn)) = connector.connect(&()) else {
        panic!("the mock connects at once");
    };
    connector.abort(conn);
    assert_eq!(connector.0.live(), 0, "dropped");
    assert_eq!(connector.0.closed_by_pool(), 0, "close was not called");
}
