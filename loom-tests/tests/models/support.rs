//! What the loom models share: the connection stand-in, the wakers, and
//! the cores and requests they are run against. Each test binary names the
//! core (`TestCore`) and the reuse order (`REUSE`) it checks.

use leasehold_policies::unstable::{
    Acquire, Core, Grant, Held, Item, Limits, Permit, Wait, Waiting,
};
use leasehold_policies::State;
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Wake, Waker};

use super::{TestCore, REUSE};

/// The route every model leases on.
pub(crate) const ROUTE: u8 = 0;

/// A second route, for the cross-route model.
pub(crate) const OTHER: u8 = 2;

/// A connection stand-in: an id to follow it through the core, and a state.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) id: u32,
    pub(crate) state: Option<State>,
}

impl Conn {
    pub(crate) fn new(id: u32) -> Self {
        Self { id, state: None }
    }
}

impl Item for Conn {
    fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
}

/// Ids of the items the core handed to its disposer, in order.
pub(crate) type Disposed = std::sync::Arc<Mutex<Vec<u32>>>;

/// Wakes a loom thread: the waker a queued request is given. Besides
/// unparking the thread it raises the thread's [`WOKEN`] flag, which
/// [`wait`] checks before it parks: loom forgets an unpark that arrives
/// while the thread is running when the thread then yields or blocks on a
/// loom mutex (as the policies' 128-bit word does under loom) before it
/// parks, where std's park token would remember it.
pub(crate) struct Unpark {
    thread: thread::Thread,
    woken: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Wake for Unpark {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.woken.store(true, Ordering::Relaxed);
        self.thread.unpark();
    }
}

loom::thread_local! {
    /// Raised by the calling thread's wakers (see [`Unpark`]).
    static WOKEN: std::sync::Arc<std::sync::atomic::AtomicBool> = std::sync::Arc::default();
}

/// A waker that unparks the calling (loom) thread.
pub(crate) fn waker() -> Waker {
    Waker::from(std::sync::Arc::new(Unpark {
        thread: thread::current(),
        woken: WOKEN.with(|woken| woken.clone()),
    }))
}

/// Parks the calling thread unless one of its wakers was woken since it
/// last looked (see [`Unpark`]).
pub(crate) fn park_unless_woken() {
    if !WOKEN.with(|woken| woken.swap(false, Ordering::Relaxed)) {
        thread::park();
    }
}

/// A waker that only counts its wake-ups, in a `std` atomic: unlike loom's
/// `unpark`, which hands the unparker's causality to the unparked thread at
/// once, it creates no happens-before edge, so a request polling the waiter
/// relies on the waiter's own memory ordering alone.
pub(crate) struct CountWakes(pub(crate) AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A core with one unit of total capacity and `max_per_route` for each
/// route (above 1, a route's request is blocked by the total cap, not by
/// its route's), whose disposer records item ids.
pub(crate) fn core_with_route_max(max_per_route: usize) -> (Arc<TestCore>, Disposed) {
    let disposed = Disposed::default();
    let log = disposed.clone();
    let core = TestCore::new(
        Limits::new(1, max_per_route).with_reuse(REUSE),
        std::sync::Arc::new(move |conn: Conn| log.lock().unwrap().push(conn.id)),
    );
    (Arc::new(core), disposed)
}

/// A core with `max_total` units of total capacity and as many for
/// `ROUTE`, whose disposer records item ids.
pub(crate) fn core_with_total(max_total: usize) -> (Arc<TestCore>, Disposed) {
    let disposed = Disposed::default();
    let log = disposed.clone();
    let core = TestCore::new(
        Limits::new(max_total, max_total).with_reuse(REUSE),
        std::sync::Arc::new(move |conn: Conn| log.lock().unwrap().push(conn.id)),
    );
    (Arc::new(core), disposed)
}

/// A core whose only connection (item 1, on `ROUTE`) is leased: the
/// returned `Held`.
pub(crate) fn leased_core() -> (Arc<TestCore>, Disposed, Held) {
    leased_core_on(ROUTE)
}

/// A core whose only connection (item 1, on `route`) is leased.
pub(crate) fn leased_core_on(route: u8) -> (Arc<TestCore>, Disposed, Held) {
    leased_core_with(route, 1)
}

/// A core of [`core_with_route_max`] whose only connection (item 1, on
/// `route`) is leased.
pub(crate) fn leased_core_with(route: u8, max_per_route: usize) -> (Arc<TestCore>, Disposed, Held) {
    let (core, disposed) = core_with_route_max(max_per_route);
    let permit = expect_connect(core.acquire(&route, None, Wait::Queue, &waker()));
    let held = core
        .connected(permit, Conn::new(1))
        .expect("the core is open");
    (core, disposed, held)
}

pub(crate) fn expect_connect(acquire: Acquire<impl Waiting>) -> Permit {
    match acquire {
        Acquire::Ready(Grant::Connect(permit)) => permit,
        other => panic!("expected Ready(Connect), got {other:?}"),
    }
}

/// The waiter of an acquisition that must queue; `who` names the requester
/// in the panic.
pub(crate) fn expect_queued<W: Waiting>(acquire: Acquire<W>, who: &str) -> W {
    match acquire {
        Acquire::Queued(waiter) => waiter,
        Acquire::Ready(grant) => panic!("{who} must queue, got {grant:?}"),
    }
}

/// A waker that only counts its wake-ups (see [`CountWakes`]), and the
/// count.
pub(crate) fn counting_waker() -> (std::sync::Arc<CountWakes>, Waker) {
    let wakes = std::sync::Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(wakes.clone());
    (wakes, waker)
}

/// Parks until the waiter holds its grant, or (a core whose requests
/// compete for returns, `Lax`) has taken an idle connection itself after a
/// wake-up without a grant; it registers its waker again after every
/// wake-up, before it looks, as `leasehold`'s request does. Never returns if
/// the grant is not published or a wake-up is lost: loom then reports a
/// deadlock.
pub(crate) fn wait(core: &TestCore, mut waiter: <TestCore as Core<u8, Conn>>::Waiter) -> Grant {
    loop {
        if let Some(grant) = waiter.try_take().or_else(|| core.retry(&mut waiter)) {
            return grant;
        }
        park_unless_woken();
        waiter.register(&waker());
    }
}

/// The grant of an acquisition on `ROUTE`, waiting for it if it was queued;
/// also tells whether it was queued.
pub(crate) fn acquire_and_wait(core: &TestCore) -> (Grant, bool) {
    match core.acquire(&ROUTE, None, Wait::Queue, &waker()) {
        Acquire::Ready(grant) => (grant, false),
        Acquire::Queued(waiter) => (wait(core, waiter), true),
    }
}

/// Thread A gives the leased item back (`reuse`) while thread B acquires on
/// `ROUTE` and hands its grant to `serve`. Returns whether B was queued.
pub(crate) fn release_races_acquire(
    core: &Arc<TestCore>,
    held: Held,
    reuse: bool,
    serve: fn(&TestCore, Grant),
) -> bool {
    let a = {
        let core = core.clone();
        thread::spawn(move || core.release(held, reuse))
    };
    let b = {
        let core = core.clone();
        thread::spawn(move || {
            let (grant, queued) = acquire_and_wait(&core);
            serve(&core, grant);
            queued
        })
    };
    a.join().unwrap();
    b.join().unwrap()
}

/// B's request on `ROUTE`, made on the calling (main) thread while nothing
/// else runs, so that it is in line (its `CONTEND` up) before anyone else
/// asks; B's own thread then registers its waker (the main thread must not
/// be unparked while it joins), waits, and gives the connection back.
/// Returns B's thread and a flag raised once B was served.
pub(crate) fn queue_b(
    core: &Arc<TestCore>,
) -> (thread::JoinHandle<()>, std::sync::Arc<AtomicBool>) {
    let acquire = core.acquire(&ROUTE, None, Wait::Queue, Waker::noop());
    let waiter = expect_queued(acquire, "B");
    // Bookkeeping, in a `std` atomic: whether B holds (or held) it.
    let served = std::sync::Arc::new(AtomicBool::new(false));
    let b = {
        let (core, served) = (core.clone(), served.clone());
        thread::spawn(move || {
            waiter.register(&waker());
            let grant = wait(&core, waiter);
            served.store(true, Ordering::SeqCst);
            reuse_the_connection(&core, grant, "B");
        })
    };
    (b, served)
}

/// C, a newcomer that will not wait, asks for the connection on `ROUTE`
/// `rounds` times and gives back what it gets. Its thread returns how many
/// times it got the connection before B was `served` (see [`queue_b`]).
pub(crate) fn barge_c(
    core: &Arc<TestCore>,
    served: std::sync::Arc<AtomicBool>,
    rounds: usize,
) -> thread::JoinHandle<usize> {
    let core = core.clone();
    thread::spawn(move || {
        let mut ahead = 0;
        for _ in 0..rounds {
            let grant = match core.acquire(&ROUTE, None, Wait::Never, &waker()) {
                Acquire::Ready(grant) => grant,
                Acquire::Queued(waiter) => wait(&core, waiter),
            };
            if let Grant::Conn(held) = grant {
                if !served.load(Ordering::SeqCst) {
                    ahead += 1;
                }
                core.release(held, true);
            }
        }
        ahead
    })
}

/// One execution of the newcomer-vs-waiter race (models 11 and 12): B
/// queues behind A's lease (see [`queue_b`]), A gives the connection back
/// while C barges `rounds` times (see [`barge_c`]), and B must end with it.
/// Returns how many times C got the connection ahead of B. Call it inside
/// `loom::model`.
pub(crate) fn newcomer_races_a_waiter(rounds: usize) -> usize {
    let (core, disposed, held) = leased_core();
    let (b, served) = queue_b(&core);
    let c = barge_c(&core, served, rounds);
    core.release(held, true);
    b.join().unwrap();
    let ahead = c.join().unwrap();

    assert_quiet(&core, 1, 0);
    assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    ahead
}

/// Yields until a request is counted as waiting on the route.
pub(crate) fn until_someone_waits(core: &TestCore) {
    while core.route_stats(&ROUTE).pending == 0 {
        thread::yield_now();
    }
}

pub(crate) fn disposed_ids(disposed: &Disposed) -> Vec<u32> {
    disposed.lock().unwrap().clone()
}

/// The route's gauges once every thread has finished: exact, since the core
/// is quiet.
pub(crate) fn assert_quiet(core: &TestCore, idle: usize, leased: usize) {
    let stats = core.route_stats(&ROUTE);
    assert_eq!(stats.idle, idle, "idle: {stats}");
    assert_eq!(stats.leased, leased, "leased: {stats}");
    assert_eq!(stats.pending, 0, "pending: {stats}");
    assert_eq!(stats.connecting, 0, "connecting: {stats}");
    let total = core.stats().total;
    assert_eq!(total.allocated(), idle + leased, "total: {total}");
}

/// `who` must have been granted the one connection (item 1); it gives it
/// back for reuse.
pub(crate) fn reuse_the_connection(core: &TestCore, grant: Grant, who: &str) {
    match grant {
        Grant::Conn(held) => {
            assert_eq!(core.item(&held).id, 1);
            core.release(held, true);
        }
        other => panic!("{who} must get the connection, got {other:?}"),
    }
}

/// Thread A gives `held` back for reuse while thread B, whose request on
/// `ROUTE` is blocked by the total cap, queues and must be granted
/// capacity: B opens item 2 on it and gives it back.
pub(crate) fn return_races_blocked_request(core: &Arc<TestCore>, held: Held) {
    let a = {
        let core = core.clone();
        thread::spawn(move || core.release(held, true))
    };
    let b = {
        let core = core.clone();
        thread::spawn(move || connect_on_route(&core, true))
    };
    a.join().unwrap();
    b.join().unwrap();
}

/// B's part: a request on `ROUTE` that must be granted capacity (after
/// queueing, if `must_queue`); it opens item 2 and gives it back.
pub(crate) fn connect_on_route(core: &TestCore, must_queue: bool) {
    let permit = match acquire_and_wait(core) {
        (Grant::Connect(permit), queued) if queued || !must_queue => permit,
        (other, queued) => {
            panic!(
                "B must get capacity (queued: {queued}, must queue: {must_queue}), got {other:?}"
            )
        }
    };
    let held = core
        .connected(permit, Conn::new(2))
        .expect("the core is open");
    core.release(held, true);
}
