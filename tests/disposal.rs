//! Disposal off the caller's thread: where connections are closed, that a
//! slow close never delays a lease, and the rule when the queue is full.

#[path = "support/wait.rs"]
mod wait;

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Disposal, Lax, Never, Policy, Pool, Progress, Strict};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};
use std::time::Duration;
use wait::eventually;

/// A mock connector whose closes record their thread, and whose next close
/// can be held until the test lets it go.
#[derive(Clone, Default)]
struct Recording {
    mock: MockConnector,
    closed_on: Arc<Mutex<Vec<ThreadId>>>,
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

    fn closed_on(&self) -> Vec<ThreadId> {
        self.closed_on.lock().unwrap().clone()
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
        self.closed_on.lock().unwrap().push(thread::current().id());
        drop(conn);
    }
}

fn pool<P: Policy>(connector: &Recording, disposal: Disposal) -> Pool<Recording, P> {
    Pool::builder(connector.clone())
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
    eventually("the close", || connector.closed_on().len() == 1);
    let caller = thread::current().id();
    assert_eq!(
        connector.closed_on()[0] == caller,
        on_caller,
        "{disposal:?}"
    );
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
    eventually("the held close", || connector.closed_on().len() == 1);
    assert!(connector.gate_opened_in_time.load(Ordering::SeqCst));
}

#[test]
fn a_slow_close_does_not_delay_leases() {
    slow_close_does_not_delay_the_caller::<Strict>();
    slow_close_does_not_delay_the_caller::<Lax>();
}

#[test]
fn a_full_disposal_queue_closes_inline() {
    let connector = Recording::default();
    let pool = pool::<Strict>(&connector, Disposal::Background { queue: 1 });
    let leases: Vec<_> = (0..3).map(|_| pool.lease(&()).unwrap()).collect();
    let mut leases = leases.into_iter();
    // The first close holds the disposal thread; the second waits in the
    // queue; the third finds it full and is closed here.
    let open = connector.hold_next_close();
    leases.next().unwrap().discard();
    eventually("the disposal thread holds", || {
        connector.gate.lock().unwrap().is_none()
    });
    leases.next().unwrap().discard();
    leases.next().unwrap().discard();
    let caller = thread::current().id();
    assert_eq!(
        connector.closed_on(),
        [caller],
        "closed inline, not dropped"
    );
    open.send(()).unwrap();
    eventually("all closed", || connector.closed_on().len() == 3);
    assert_eq!(connector.mock.live(), 0);
}
