//! Loom models of [`DisposalQueue`], the hand-over protocol between the
//! threads that give connections up and the pool's disposal thread: a
//! bounded push that hands the item back when it cannot queue it, a worker
//! that drains, looks at the stop flag and parks, `stop`, and `take` by
//! threads that close beside the worker.
//!
//! In every model a worker thread runs [`DisposalQueue::run`] and records
//! the ids it closes; an item given back by `push` is recorded by its
//! pusher, one taken by a taker. Each item must end in exactly one record. A thread
//! that waits parks (it is unparked when what it waits for happens), so a
//! lost wake-up leaves every thread blocked and loom reports a deadlock.
//! The worker starts concurrently with the first push or the stop, so each
//! model also races the worker's registration of its thread handle.
//!
//! Bookkeeping (the records, the tallies) uses `std` primitives, so that it
//! adds no scheduling points to the state space loom explores.
//!
//! Built only with `--cfg leasehold_loom`; the models' names start with
//! `disposal_`, so `loom-tests/run.sh disposal` runs them alone.

#![cfg(leasehold_loom)]

use leasehold_loom_tests::Tally;
use leasehold_policies::unstable::{DisposalQueue, PushError};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread::{self, JoinHandle};
use std::sync::Mutex;

/// A connection stand-in: an id, and the thread to wake once it is closed,
/// if one parks until then.
///
/// Only a thread that waits in `park` may be unparked: loom (0.7) resumes a
/// thread blocked in `join` when it is unparked, and then fails an internal
/// assertion (tokio-rs/loom#249), where std would only leave a token for a
/// later `park`.
#[derive(Debug)]
struct Conn {
    id: u32,
    waiting: Option<thread::Thread>,
    /// Its close parks the worker until this is set: a user's close that
    /// waits on a lock or a channel, and so uses up wake-ups of the
    /// worker's thread meant for something else.
    held_by: Option<Arc<AtomicBool>>,
}

impl Conn {
    /// Connection `id`; nobody waits for its close.
    fn new(id: u32) -> Self {
        Self {
            id,
            waiting: None,
            held_by: None,
        }
    }

    /// Connection `id`, whose close the calling thread parks for.
    fn waited_for(id: u32) -> Self {
        Self {
            id,
            waiting: Some(thread::current()),
            held_by: None,
        }
    }

    /// Connection `id`, whose close parks until `release` is set (and the
    /// worker unparked).
    fn held(id: u32, release: &Arc<AtomicBool>) -> Self {
        Self {
            id,
            waiting: None,
            held_by: Some(release.clone()),
        }
    }
}

/// Ids, in the order they were recorded.
type Record = std::sync::Arc<Mutex<Vec<u32>>>;

fn ids(record: &Record) -> Vec<u32> {
    record.lock().unwrap().clone()
}

/// One execution's queue, its worker thread, and the records of what the
/// worker closed and what pushes gave back.
struct Harness {
    queue: Arc<DisposalQueue<Conn>>,
    closed: Record,
    handed_back: Record,
    taken: Record,
    worker: Option<JoinHandle<()>>,
}

impl Harness {
    /// A queue with room for `capacity`, and its worker starting: it records
    /// each id it closes and wakes the thread waiting for it, if any.
    fn start(capacity: usize) -> Self {
        let queue = Arc::new(DisposalQueue::new(capacity));
        let closed = Record::default();
        let worker = {
            let (queue, closed) = (queue.clone(), closed.clone());
            thread::spawn(move || {
                queue.run(|conn: Conn| {
                    if let Some(release) = &conn.held_by {
                        while !release.load(Ordering::SeqCst) {
                            thread::park();
                        }
                    }
                    closed.lock().unwrap().push(conn.id);
                    if let Some(waiting) = conn.waiting {
                        waiting.unpark();
                    }
                });
            })
        };
        Self {
            queue,
            closed,
            handed_back: Record::default(),
            taken: Record::default(),
            worker: Some(worker),
        }
    }

    /// The worker's thread, to unpark.
    fn worker_thread(&self) -> thread::Thread {
        self.worker.as_ref().expect("running").thread().clone()
    }

    /// Pushes `conn`, and answers with ids for connections. One given back
    /// is closed by its pusher: recorded in `handed_back`.
    fn push(&self, conn: Conn) -> Result<(), PushError<u32>> {
        let id = conn.id;
        let refused = match self.queue.push(conn) {
            Ok(()) => return Ok(()),
            Err(PushError::Full(conn)) => PushError::Full(conn.id),
            Err(PushError::Stopped(conn)) => PushError::Stopped(conn.id),
            Err(other) => panic!("a refusal the models do not know: {other:?}"),
        };
        assert_eq!(refused.into_inner(), id, "given back another connection");
        self.handed_back.lock().unwrap().push(id);
        Err(refused)
    }

    /// [`push`](Self::push) on a thread of its own.
    fn spawn_push(&self, conn: Conn) -> JoinHandle<Result<(), PushError<u32>>> {
        let pusher = Self {
            queue: self.queue.clone(),
            closed: self.closed.clone(),
            handed_back: self.handed_back.clone(),
            taken: self.taken.clone(),
            worker: None,
        };
        thread::spawn(move || pusher.push(conn))
    }

    /// On a thread of its own, takes what it finds queued (until the queue
    /// is empty) and records it in `taken`.
    fn spawn_take(&self) -> JoinHandle<()> {
        let (queue, taken) = (self.queue.clone(), self.taken.clone());
        thread::spawn(move || {
            while let Some(conn) = queue.take() {
                taken.lock().unwrap().push(conn.id);
            }
        })
    }

    /// Stops the queue and joins the worker: never returns if the worker
    /// does not (loom then reports a deadlock).
    fn stop(&mut self) {
        self.queue.stop();
        if let Some(worker) = self.worker.take() {
            worker.join().unwrap();
        }
    }

    fn closed(&self) -> Vec<u32> {
        ids(&self.closed)
    }

    fn handed_back(&self) -> Vec<u32> {
        ids(&self.handed_back)
    }

    fn taken(&self) -> Vec<u32> {
        ids(&self.taken)
    }

    /// Every id in `0..n` is in exactly one of the records.
    fn assert_each_closed_once(&self, n: u32) {
        let (closed, handed_back, taken) = (self.closed(), self.handed_back(), self.taken());
        let mut all = [closed.as_slice(), &handed_back, &taken].concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "each item closed exactly once (closed by the worker: {closed:?}, handed back: {handed_back:?}, taken: {taken:?})"
        );
    }
}

/// Model (a) — a push vs the worker's drain-then-park: no lost wake-up.
///
/// The main thread pushes connection 0, parks until the worker has closed
/// it, then does the same with connection 1; the worker starts at the same
/// time. The second push lands anywhere in the worker's loop: before its
/// drain, during it, or between the drain and the park.
///
/// Catches a worker asleep with an item queued: a push that wakes the
/// worker before its item is in the queue, a worker that parks without
/// having looked at the queue since the last wake-up, or a push that decides
/// whether to wake from a view of the worker's registration older than its
/// item (the worker registers and parks in between). Any of them leaves both
/// threads parked: loom reports a deadlock.
#[test]
fn disposal_push_wakes_the_parking_worker() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let mut harness = Harness::start(1);
        for id in 0..2 {
            let pushed = harness.push(Conn::waited_for(id));
            assert!(pushed.is_ok(), "room: the worker took the one before");
            while !harness.closed().contains(&id) {
                thread::park();
            }
        }
        harness.stop();
        assert_eq!(harness.closed(), [0, 1]);
        seen.note(false);
    });
    tally.report_runs("push vs drain-then-park");
}

/// Model (b) — `stop` vs concurrent pushes: nothing lost, nothing closed
/// twice, and the worker returns.
///
/// Two threads push one connection each while the main thread stops the
/// queue and joins the worker (which may not have started yet). A push
/// before the stop is closed by the worker; one racing it is either closed
/// by the worker or given back as `Stopped`, never both and never neither.
///
/// Catches: a worker that returns while a push that did not see the stop
/// is still on its way into the queue (its item stays queued after the last
/// drain: in neither record); a worker that reads the stop flag after its
/// drain instead of before (same); a worker that waits for a push in flight
/// that never wakes it when it leaves, or a `stop` that does not wake a
/// parked worker (deadlock on the join); a push after the stop that is
/// queued instead of given back.
#[test]
fn disposal_stop_races_pushes() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let mut harness = Harness::start(2);
        let pushers: Vec<_> = (0..2).map(|id| harness.spawn_push(Conn::new(id))).collect();
        harness.stop();
        for pusher in pushers {
            let pushed = pusher.join().unwrap();
            assert!(
                matches!(pushed, Ok(()) | Err(PushError::Stopped(_))),
                "room for both: {pushed:?}"
            );
        }
        harness.assert_each_closed_once(2);
        seen.note(!harness.handed_back().is_empty());
    });
    tally.assert_both(
        "stop vs pushes",
        ["all closed by the worker", "some handed back"],
    );
}

/// Model (c) — a full queue: the item goes back to its pusher, none is lost.
///
/// With room for one connection, the main thread and another pusher push
/// one each while the worker drains. Depending on whether the worker took
/// the first before the second arrived, both are queued, or the second is
/// given back as `Full` — and then its pusher closes it.
///
/// Catches: a push that claims to have queued an item the full queue
/// dropped, or gives back an item and queues it too (in both records, or in
/// neither); a push that, giving an item back, forgets to leave (the count
/// of pushes in flight never returns to zero: the worker waits for it
/// forever after the stop, a deadlock on the join).
#[test]
fn disposal_full_queue_hands_the_item_back() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let mut harness = Harness::start(1);
        let other = harness.spawn_push(Conn::new(1));
        let mine = harness.push(Conn::new(0));
        let other = other.join().unwrap();
        for pushed in [mine, other] {
            assert!(
                matches!(pushed, Ok(()) | Err(PushError::Full(_))),
                "not stopped yet: {pushed:?}"
            );
        }
        harness.stop();
        harness.assert_each_closed_once(2);
        seen.note(mine.is_err() || other.is_err());
    });
    tally.assert_both("full queue", ["both queued", "one handed back"]);
}

/// Model (d) — `take` beside the worker, a push and `stop`: each item is
/// closed once, by the worker or by the taker, and the worker returns.
///
/// A taker thread takes whatever it finds while another thread pushes
/// connection 0 and the main thread pushes connection 1, then stops the
/// queue and joins the worker.
///
/// Catches: an item taken and closed by the worker too, or by neither; a
/// worker that returns, or parks for good, because a taker emptied the
/// queue under it (an item of the push in flight left behind, or a
/// deadlock on the join).
#[test]
fn disposal_take_beside_the_worker() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let mut harness = Harness::start(2);
        let pusher = harness.spawn_push(Conn::new(0));
        let taker = harness.spawn_take();
        let pushed = harness.push(Conn::new(1));
        assert!(pushed.is_ok(), "room for both, not stopped: {pushed:?}");
        harness.stop();
        let pushed = pusher.join().unwrap();
        assert!(
            matches!(pushed, Ok(()) | Err(PushError::Stopped(_))),
            "room for both: {pushed:?}"
        );
        taker.join().unwrap();
        harness.assert_each_closed_once(2);
        seen.note(!harness.taken().is_empty());
    });
    tally.assert_both(
        "take beside the worker",
        ["all closed by the worker", "some taken"],
    );
}

/// Model (e) — a close that parks the worker's thread (a user's close that
/// waits on a lock or a channel) and so uses up the wake-up of a `stop`
/// that came meanwhile: the worker still sees the stop and returns.
///
/// The main thread pushes connection 0, whose close parks until a
/// releaser thread sets its flag and unparks the worker; it stops the
/// queue and joins the worker while the close may be parked. A wake-up
/// from `stop` that lands in that close's park is gone when the close
/// returns.
///
/// Catches a worker that, after closing, decides from the state it read
/// before the close whether to park: it has missed the stop, its wake-up
/// was used up, and it parks for good (a deadlock on the join).
#[test]
fn disposal_a_parking_close_keeps_the_stop() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let mut harness = Harness::start(1);
        let release = Arc::new(AtomicBool::new(false));
        let releaser = {
            let (release, worker) = (release.clone(), harness.worker_thread());
            thread::spawn(move || {
                release.store(true, Ordering::SeqCst);
                worker.unpark();
            })
        };
        let pushed = harness.push(Conn::held(0, &release));
        assert!(pushed.is_ok(), "room, not stopped: {pushed:?}");
        harness.stop();
        releaser.join().unwrap();
        harness.assert_each_closed_once(1);
        seen.note(false);
    });
    tally.report_runs("a parking close");
}
