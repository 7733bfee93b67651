//! Unit tests of `StrictCore` through the `Core` trait, single-threaded
//! (and small enough for miri): the operations the pool does not reach on
//! its own, and the token checks.

use crate::strict::StrictCore;
use crate::types::{Acquire, Disposer, Grant, Held, Item, Limits, Reuse, State, Wait};
use crate::Core;
use std::sync::{Arc, Mutex};
use std::task::Waker;

#[derive(Debug)]
struct Conn {
    id: u32,
    state: Option<State>,
}

impl Item for Conn {
    fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
}

type TestCore = StrictCore<&'static str, Conn>;

fn core(limits: Limits<&'static str>) -> (TestCore, Arc<Mutex<Vec<u32>>>) {
    let disposed = Arc::new(Mutex::new(Vec::new()));
    let sink = disposed.clone();
    let disposer: Disposer<Conn> = Arc::new(move |conn: Conn| sink.lock().unwrap().push(conn.id));
    (TestCore::new(limits, disposer), disposed)
}

/// Leases on `route`, opening connection `id` if the core grants capacity.
fn lease<F: super::Flavor>(
    core: &super::Engine<&'static str, Conn, F>,
    route: &'static str,
    state: Option<&State>,
    id: u32,
) -> Held {
    match core.acquire(&route, state, Wait::Never, Waker::noop()) {
        Acquire::Ready(Grant::Conn(held)) => held,
        Acquire::Ready(Grant::Connect(permit)) => {
            let conn = Conn {
                id,
                state: permit.state().cloned(),
            };
            core.connected(permit, conn).expect("open pool")
        }
        other => panic!("expected a lease, got {other:?}"),
    }
}

#[test]
fn idle_hit_reuses_without_connecting() {
    let (core, disposed) = core(Limits::new(2, 2));
    let held = lease(&core, "a", None, 1);
    core.release(held, true);
    let mut again = lease(&core, "a", None, 99);
    assert_eq!(core.item(&again).id, 1, "the idle one, not a new one");
    core.item_mut(&mut again).id = 10;
    core.release(again, true);
    assert_eq!(
        core.item(&lease(&core, "a", None, 99)).id,
        10,
        "changed in place"
    );
    assert!(disposed.lock().unwrap().is_empty());
}

#[test]
fn evict_idle_closes_picked_connections_only() {
    let (core, disposed) = core(Limits::new(6, 6));
    let alice = State::new("alice");
    let leases: Vec<Held> = (1..=4).map(|id| lease(&core, "a", None, id)).collect();
    let mut stateful = lease(&core, "a", None, 5);
    core.item_mut(&mut stateful).state = Some(alice.clone());
    for held in leases {
        core.release(held, true);
    }
    core.release(stateful, true);
    assert_eq!(core.route_stats(&"a").idle, 5);
    core.evict_idle(Arc::new(|conn: &Conn| conn.id % 2 == 1));
    let mut gone = disposed.lock().unwrap().clone();
    gone.sort_unstable();
    assert_eq!(gone, [1, 3, 5], "odd ids evicted, the stateful one too");
    let stats = core.route_stats(&"a");
    assert_eq!((stats.idle, stats.closed, stats.leased), (2, 3, 0));
    // The survivors keep their LIFO order: 4 was returned last.
    assert_eq!(core.item(&lease(&core, "a", None, 0)).id, 4);
}

#[test]
fn fifo_reuse_takes_the_oldest_return() {
    let (core, _) = core(Limits::new(3, 3).with_reuse(Reuse::Fifo));
    assert_eq!(core.shards, 1, "`Strict` keeps one list for FIFO reuse");
    let leases: Vec<Held> = (1..=3).map(|id| lease(&core, "a", None, id)).collect();
    for held in leases {
        core.release(held, true);
    }
    assert_eq!(core.item(&lease(&core, "a", None, 0)).id, 1);
}

#[test]
fn never_waiting_request_is_refused_busy() {
    let (core, _) = core(Limits::new(1, 1));
    let _held = lease(&core, "a", None, 1);
    let mut waiter = match core.acquire(&"a", None, Wait::Never, Waker::noop()) {
        Acquire::Queued(waiter) => waiter,
        other => panic!("expected to be queued for an answer, got {other:?}"),
    };
    use crate::Waiting;
    assert!(matches!(waiter.try_take(), Some(Grant::Busy)));
    assert_eq!(core.route_stats(&"a").pending, 0);
}

/// `acquire_now` answers from the hot path and queues nothing: capacity,
/// then (exhausted) nothing, with no request left behind for the return,
/// which goes idle and is the next hit; stateful requests always take the
/// slow path; after shutdown, `Closed`.
fn acquire_now_serves_or_queues_nothing<F: super::Flavor>() {
    let core = super::Engine::<&'static str, Conn, F>::new(Limits::new(1, 1), Arc::new(|_| {}));
    let Some(Grant::Connect(permit)) = core.acquire_now(&"a", None) else {
        panic!("expected a permit");
    };
    let held = core.connected(permit, Conn { id: 1, state: None }).unwrap();
    assert!(core.acquire_now(&"a", None).is_none(), "exhausted");
    assert_eq!(core.route_stats(&"a").pending, 0, "nothing queued");
    core.release(held, true);
    assert_eq!(core.route_stats(&"a").idle, 1, "nobody was waiting for it");
    let Some(Grant::Conn(held)) = core.acquire_now(&"a", None) else {
        panic!("expected the idle connection");
    };
    assert_eq!(core.item(&held).id, 1);
    core.release(held, true);
    assert!(core.acquire_now(&"a", Some(&State::new("alice"))).is_none());
    let stats = core.route_stats(&"a");
    assert_eq!((stats.pending, stats.idle), (0, 1));
    core.shutdown();
    assert!(matches!(core.acquire_now(&"a", None), Some(Grant::Closed)));
    assert!(matches!(core.acquire_now(&"b", None), Some(Grant::Closed)));
}

#[test]
#[should_panic(expected = "a Held of another core")]
fn held_of_another_core_is_refused() {
    let (first, _) = core(Limits::new(1, 1));
    let (second, _) = core(Limits::new(1, 1));
    let held = lease(&first, "a", None, 1);
    second.release(held, true);
}

#[test]
#[should_panic(expected = "a Permit of another core")]
fn permit_of_another_core_is_refused() {
    let (first, _) = core(Limits::new(1, 1));
    let (second, _) = core(Limits::new(1, 1));
    let Acquire::Ready(Grant::Connect(permit)) =
        first.acquire(&"a", None, Wait::Never, Waker::noop())
    else {
        panic!("expected a permit");
    };
    second.connect_failed(permit);
}

#[test]
fn shutdown_disposes_idle_and_later_returns() {
    let (core, disposed) = core(Limits::new(3, 3));
    let kept = lease(&core, "a", None, 1);
    let idle = lease(&core, "b", None, 2);
    core.release(idle, true);
    core.shutdown();
    assert!(core.is_closed());
    assert_eq!(*disposed.lock().unwrap(), [2]);
    core.release(kept, true);
    assert_eq!(*disposed.lock().unwrap(), [2, 1]);
    assert!(matches!(
        core.acquire(&"c", None, Wait::Queue, Waker::noop()),
        Acquire::Ready(Grant::Closed)
    ));
    let total = core.stats().total;
    assert_eq!((total.allocated(), total.created, total.closed), (0, 2, 2));
}

#[test]
fn connected_after_shutdown_gives_the_item_back() {
    let (core, _) = core(Limits::new(1, 1));
    let Acquire::Ready(Grant::Connect(permit)) =
        core.acquire(&"a", None, Wait::Never, Waker::noop())
    else {
        panic!("expected a permit");
    };
    core.shutdown();
    let back = core.connected(permit, Conn { id: 7, state: None });
    assert_eq!(back.map(|_| ()).unwrap_err().id, 7);
    assert_eq!(core.stats().total.allocated(), 0);
}

#[test]
fn idle_cap_closes_returns_beyond_it() {
    let (core, disposed) = core(Limits::new(4, 4).with_max_idle(2));
    let leases: Vec<Held> = (1..=4).map(|id| lease(&core, "a", None, id)).collect();
    for held in leases {
        core.release(held, true);
    }
    assert_eq!(core.route_stats(&"a").idle, 2);
    assert_eq!(*disposed.lock().unwrap(), [3, 4]);
}

#[test]
fn stats_count_every_gauge() {
    let (core, _) = core(Limits::new(4, 3).with_route_max("b", 1));
    let a1 = lease(&core, "a", None, 1);
    let a2 = lease(&core, "a", None, 2);
    core.release(a2, true);
    let Acquire::Ready(Grant::Connect(permit)) =
        core.acquire(&"b", None, Wait::Never, Waker::noop())
    else {
        panic!("expected a permit");
    };
    let a = core.route_stats(&"a");
    assert_eq!(
        (a.leased, a.idle, a.connecting, a.max, a.created),
        (1, 1, 0, 3, 2)
    );
    let b = core.route_stats(&"b");
    assert_eq!((b.leased, b.connecting, b.max), (0, 1, 1));
    assert_eq!(core.route_stats(&"unseen").max, 3);
    let total = core.stats().total;
    assert_eq!((total.allocated(), total.max), (3, 4));
    core.connect_failed(permit);
    core.release(a1, false);
    let total = core.stats().total;
    assert_eq!((total.allocated(), total.closed), (1, 1));
}

/// Two CPUs this thread may run on whose shards (of `shards`) differ, if
/// there are.
#[cfg(all(target_os = "linux", not(miri)))]
fn cpus_of_two_shards(shards: usize) -> Option<[usize; 2]> {
    // SAFETY: an all-zero `cpu_set_t` is the empty set (what `CPU_ZERO`
    // makes); `sched_getaffinity` gets its true size, and `CPU_ISSET` CPU
    // numbers below `CPU_SETSIZE`.
    let allowed: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    };
    let shard = |cpu: usize| cpu & (shards - 1);
    let first = *allowed.first()?;
    let second = *allowed.iter().find(|&&cpu| shard(cpu) != shard(first))?;
    Some([first, second])
}

/// Pins the calling thread to `cpu`; whether that was allowed.
#[cfg(all(target_os = "linux", not(miri)))]
fn pin_to(cpu: usize) -> bool {
    // SAFETY: as in `cpus_of_two_shards`; `cpu` is below `CPU_SETSIZE`.
    unsafe {
        let mut only: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut only);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &only) == 0
    }
}

/// A thread finds the connection it returned in its CPU's shard again
/// (`Lax`, and `Strict` with LIFO reuse).
#[cfg(all(target_os = "linux", not(miri)))]
fn thread_finds_its_own_connection_first<F: super::Flavor>() {
    use std::sync::Barrier;
    let disposer: Disposer<Conn> = Arc::new(|_| {});
    let core = super::Engine::<&'static str, Conn, F>::new(Limits::new(4, 4), disposer);
    // A gets the second CPU: where the first is CPU 0, as it usually is, a
    // lease that looked in shard 0 first, whatever its CPU, fails here.
    let Some([b_cpu, a_cpu]) = cpus_of_two_shards(core.shards) else {
        eprintln!("no two CPUs of two shards to pin to: locality cannot be checked here");
        return;
    };
    let step = Barrier::new(2);
    // Each thread pins itself and reports whether it could, the shard the
    // core then picks for it and (A) the connection it found; the asserts
    // come after the steps, so that a failing thread leaves none stuck.
    let (a, b) = std::thread::scope(|s| {
        // A and B run on CPUs of two shards. A leases connection 1 and
        // returns it first; B leases connection 2 and returns it last. A
        // global LIFO list would now hand A connection 2; A's own shard
        // hands it connection 1.
        let a = s.spawn(|| {
            let pinned = pin_to(a_cpu);
            let shard = core.own_shard();
            let mine = lease(&core, "a", None, 1);
            step.wait();
            core.release(mine, true);
            step.wait();
            step.wait();
            let again = lease(&core, "a", None, 99);
            let found = core.item(&again).id;
            core.release(again, true);
            step.wait();
            (pinned, shard, found)
        });
        let b = s.spawn(|| {
            let pinned = pin_to(b_cpu);
            let shard = core.own_shard();
            let mine = lease(&core, "a", None, 2);
            step.wait();
            step.wait();
            core.release(mine, true);
            step.wait();
            step.wait();
            (pinned, shard)
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    let ((a_pinned, a_shard, found), (b_pinned, b_shard)) = (a, b);
    if !(a_pinned && b_pinned) {
        eprintln!("pinning refused: locality cannot be checked here");
        return;
    }
    let mask = core.shards - 1;
    assert_eq!(a_shard, a_cpu & mask, "A's shard is its CPU's");
    assert_eq!(b_shard, b_cpu & mask, "B's shard is its CPU's");
    assert_eq!(found, 1, "A's own shard first");
    assert_eq!(core.route_stats(&"a").idle, 2);
}

#[test]
#[cfg(all(target_os = "linux", not(miri)))]
fn lax_thread_finds_its_own_connection_first() {
    thread_finds_its_own_connection_first::<super::Sharded>();
}

#[test]
#[cfg(all(target_os = "linux", not(miri)))]
fn strict_thread_finds_its_own_connection_first() {
    thread_finds_its_own_connection_first::<super::Fair>();
}

#[test]
#[cfg(all(target_os = "linux", not(miri)))]
fn offlock_thread_finds_its_own_connection_first() {
    thread_finds_its_own_connection_first::<super::Segmented>();
}

/// `Strict` and `Offlock` count a queued request in every shard: a
/// connection returned to a shard other than 0 (where the count is kept for
/// the stats) is handed to the request, not left idle with the request
/// waiting for a kick that never comes.
#[cfg(all(target_os = "linux", not(miri)))]
fn return_to_any_shard_is_handed_to_the_waiter<F: super::Flavor>() {
    use crate::Waiting;
    use std::sync::Barrier;
    let core = super::Engine::<&'static str, Conn, F>::new(Limits::new(1, 1), Arc::new(|_| {}));
    let Some([first, second]) = cpus_of_two_shards(core.shards) else {
        eprintln!("no two CPUs of two shards to pin to: cannot be checked here");
        return;
    };
    let mask = core.shards - 1;
    let cpu = if first & mask != 0 { first } else { second };
    let step = Barrier::new(2);
    let (pinned, shard, served) = std::thread::scope(|s| {
        let holder = s.spawn(|| {
            let pinned = pin_to(cpu);
            let held = lease(&core, "a", None, 1);
            step.wait();
            step.wait();
            let shard = core.own_shard();
            core.release(held, true);
            step.wait();
            (pinned, shard)
        });
        step.wait();
        let mut waiter = match core.acquire(&"a", None, Wait::Queue, Waker::noop()) {
            Acquire::Queued(waiter) => waiter,
            other => panic!("expected to queue, got {other:?}"),
        };
        step.wait();
        step.wait();
        let served = match waiter.try_take() {
            Some(Grant::Conn(held)) => Some(core.item(&held).id),
            Some(other) => panic!("expected the connection, got {other:?}"),
            None => None,
        };
        let (pinned, shard) = holder.join().unwrap();
        (pinned, shard, served)
    });
    if !pinned {
        eprintln!("pinning refused: cannot be checked here");
        return;
    }
    assert_ne!(shard, 0, "returned to another shard than 0");
    assert_eq!(served, Some(1), "handed to the queued request");
    let stats = core.route_stats(&"a");
    assert_eq!((stats.pending, stats.idle), (0, 0));
}

#[test]
#[cfg(all(target_os = "linux", not(miri)))]
fn strict_return_to_any_shard_is_handed_to_the_waiter() {
    return_to_any_shard_is_handed_to_the_waiter::<super::Fair>();
}

#[test]
#[cfg(all(target_os = "linux", not(miri)))]
fn offlock_return_to_any_shard_is_handed_to_the_waiter() {
    return_to_any_shard_is_handed_to_the_waiter::<super::Segmented>();
}

#[test]
fn offlock_total_line_serves_routes_in_the_order_they_blocked() {
    use crate::offlock::OfflockCore;
    use crate::Waiting;
    let sink = Arc::new(Mutex::new(Vec::new()));
    let log = sink.clone();
    let disposer: Disposer<Conn> = Arc::new(move |conn: Conn| log.lock().unwrap().push(conn.id));
    let core: OfflockCore<&'static str, Conn> = OfflockCore::new(Limits::new(1, 1), disposer);
    let held = lease(&core, "a", None, 1);
    let queue = |route| match core.acquire(&route, None, Wait::Queue, Waker::noop()) {
        Acquire::Queued(waiter) => waiter,
        Acquire::Ready(grant) => panic!("must queue, got {grant:?}"),
    };
    let (mut b, mut c) = (queue("b"), queue("c"));
    // A newcomer of a fourth route defers to the routes in the queue.
    let mut d = queue("d");
    core.release(held, false);
    assert_eq!(*sink.lock().unwrap(), [1]);
    let Some(Grant::Connect(permit)) = b.try_take() else {
        panic!("B blocked first: the freed unit is its");
    };
    assert!(c.try_take().is_none() && d.try_take().is_none());
    core.connect_failed(permit);
    let Some(Grant::Connect(permit)) = c.try_take() else {
        panic!("C blocked next");
    };
    assert!(d.try_take().is_none());
    core.connect_failed(permit);
    let Some(Grant::Connect(permit)) = d.try_take() else {
        panic!("then D");
    };
    core.connect_failed(permit);
    assert_eq!(core.stats().total.allocated(), 0);
}

#[test]
fn offlock_route_blocked_by_the_total_keeps_its_returns() {
    use crate::offlock::OfflockCore;
    use crate::Waiting;
    let sink = Arc::new(Mutex::new(Vec::new()));
    let log = sink.clone();
    let disposer: Disposer<Conn> = Arc::new(move |conn: Conn| log.lock().unwrap().push(conn.id));
    // The total binds before the route's own cap.
    let core: OfflockCore<&'static str, Conn> = OfflockCore::new(Limits::new(2, 4), disposer);
    let (first, second) = (lease(&core, "a", None, 1), lease(&core, "a", None, 2));
    let mut waiter = match core.acquire(&"a", None, Wait::Queue, Waker::noop()) {
        Acquire::Queued(waiter) => waiter,
        Acquire::Ready(grant) => panic!("must queue, got {grant:?}"),
    };
    core.release(first, true);
    let Some(Grant::Conn(third)) = waiter.try_take() else {
        panic!("the return is handed to the request");
    };
    assert_eq!(core.item(&third).id, 1);
    // The route's request was served by its own connection: the next
    // returns go idle, none is closed to make room for its own route.
    core.release(second, true);
    core.release(third, true);
    assert!(sink.lock().unwrap().is_empty(), "closed: {:?}", sink.lock());
    let stats = core.route_stats(&"a");
    assert_eq!(
        (stats.idle, stats.created, stats.closed),
        (2, 2, 0),
        "{stats}"
    );
    // Nothing waits for the total any more: another route's request that
    // will not wait gets an idle connection closed for it at once.
    let grant = match core.acquire(&"b", None, Wait::Never, Waker::noop()) {
        Acquire::Ready(grant) => grant,
        Acquire::Queued(mut waiter) => waiter.try_take().expect("answered at once"),
    };
    let Grant::Connect(permit) = grant else {
        panic!("room made for the other route, got {grant:?}");
    };
    assert_eq!(sink.lock().unwrap().len(), 1);
    core.connect_failed(permit);
}

/// A waker that counts its wake-ups.
struct CountWakes(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn lax_core(max: usize) -> crate::lax::LaxCore<&'static str, Conn> {
    crate::lax::LaxCore::new(Limits::new(max, max), Arc::new(|_| {}))
}

/// A `lax_core(1)` whose only connection (id 1) was leased on route "a",
/// then returned past a request of "a" queued meanwhile with `waker`: the
/// core, and that request.
fn lax_waiter_behind_a_return(
    waker: &Waker,
) -> (crate::lax::LaxCore<&'static str, Conn>, LaxWaiter) {
    let core = lax_core(1);
    let held = lease(&core, "a", None, 1);
    let Acquire::Queued(waiter) = core.acquire(&"a", None, Wait::Queue, waker) else {
        panic!("the only connection is leased: the request queues");
    };
    core.release(held, true);
    (core, waiter)
}

#[test]
fn lax_waiter_is_woken_to_take_a_return_itself() {
    let wakes = Arc::new(CountWakes(Default::default()));
    let waker = Waker::from(wakes.clone());
    let (core, mut waiter) = lax_waiter_behind_a_return(&waker);
    // Not handed over: the return went idle and the waiter was woken.
    assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(crate::Waiting::try_take(&mut waiter).is_none());
    assert_eq!(core.route_stats(&"a").idle, 1);
    // A newcomer is faster: it barges in, and its return wakes nobody, as
    // the waiter has not registered again.
    let barged = lease(&core, "a", None, 99);
    assert_eq!(core.item(&barged).id, 1);
    core.release(barged, true);
    assert_eq!(wakes.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The waiter registers, finds no grant, and takes the connection itself.
    crate::Waiting::register(&waiter, &waker);
    let Some(Grant::Conn(mine)) = core.retry(&mut waiter) else {
        panic!("the waiter takes the idle connection");
    };
    assert_eq!(core.item(&mine).id, 1);
    let stats = core.route_stats(&"a");
    assert_eq!((stats.pending, stats.leased, stats.idle), (0, 1, 0));
    core.release(mine, true);
    // With nobody waiting any more, the flags are down: a return is a plain
    // push again.
    assert_eq!(core.route_stats(&"a").idle, 1);
}

/// How many times `wakes` was woken.
fn wakes_of(wakes: &CountWakes) -> usize {
    wakes.0.load(std::sync::atomic::Ordering::SeqCst)
}

#[test]
fn lax_returns_wake_nobody_while_a_woken_waiter_has_yet_to_look() {
    let wakes = Arc::new(CountWakes(Default::default()));
    let waker = Waker::from(wakes.clone());
    let (core, mut waiter) = lax_waiter_behind_a_return(&waker);
    assert_eq!(wakes_of(&wakes), 1, "woken to take the return");
    // Back on its feet (registered again) but before it looks, a newcomer
    // barges in and gives the connection back: the waiter will find it,
    // so nobody is woken for it.
    crate::Waiting::register(&waiter, &waker);
    let barged = lease(&core, "a", None, 99);
    core.release(barged, true);
    assert_eq!(wakes_of(&wakes), 1, "the return spared its wake-up");
    // The waiter looks while another newcomer holds the connection, and
    // finds nothing: the next return wakes it again.
    let barged = lease(&core, "a", None, 99);
    assert!(core.retry(&mut waiter).is_none());
    crate::Waiting::register(&waiter, &waker);
    core.release(barged, true);
    assert_eq!(wakes_of(&wakes), 2, "a return after the look wakes it");
    let Some(Grant::Conn(mine)) = core.retry(&mut waiter) else {
        panic!("the waiter takes the idle connection");
    };
    assert_eq!(core.route_stats(&"a").pending, 0);
    core.release(mine, true);
}

#[test]
fn lax_request_woken_after_one_gave_up_unlooked() {
    // A waits and is woken to take a return, but gives up before it looks.
    let (core, a) = lax_waiter_behind_a_return(Waker::noop());
    assert!(core.cancel(a, true).is_none());
    // A newcomer takes the connection; B queues behind it.
    let barged = lease(&core, "a", None, 99);
    let wakes = Arc::new(CountWakes(Default::default()));
    let waker = Waker::from(wakes.clone());
    let Acquire::Queued(mut b) = core.acquire(&"a", None, Wait::Queue, &waker) else {
        panic!("the only connection is leased: B queues");
    };
    // The return must not take A's unfinished wake-up for B's: B is woken.
    core.release(barged, true);
    assert_eq!(wakes_of(&wakes), 1, "B is woken to take the return");
    let Some(Grant::Conn(mine)) = core.retry(&mut b) else {
        panic!("B takes the idle connection");
    };
    core.release(mine, true);
    assert_eq!(core.route_stats(&"a").idle, 1);
}

type LaxWaiter = <crate::lax::LaxCore<&'static str, Conn> as Core<&'static str, Conn>>::Waiter;

/// Newcomers lease route "a"'s one connection and give it back until
/// `waiter`, which never looks itself, is handed it: how many got it first,
/// and the connection.
fn overtaken_until_handed(
    core: &crate::lax::LaxCore<&'static str, Conn>,
    waiter: &mut LaxWaiter,
) -> (usize, Held) {
    let mut overtaken = 0;
    loop {
        match crate::Waiting::try_take(waiter) {
            Some(Grant::Conn(held)) => return (overtaken, held),
            Some(other) => panic!("handed the connection, got {other:?}"),
            None => {}
        }
        match core.acquire(&"a", None, Wait::Never, Waker::noop()) {
            Acquire::Ready(Grant::Conn(held)) => {
                overtaken += 1;
                core.release(held, true);
            }
            other => panic!("the newcomer barges in while the waiter competes: {other:?}"),
        }
        assert!(overtaken < crate::Lax::PASS_LIMIT, "the waiter starves");
    }
}

#[test]
fn lax_oldest_waiter_gets_the_return_after_pass_limit_went_by() {
    let (core, mut waiter) = lax_waiter_behind_a_return(Waker::noop());
    // Newcomers overtake the waiter, which never gets to look, until
    // `PASS_LIMIT` returns (the first one included) have gone by it.
    let (overtaken, mine) = overtaken_until_handed(&core, &mut waiter);
    assert_eq!(overtaken, crate::Lax::PASS_LIMIT - 1);
    assert_eq!(core.item(&mine).id, 1);
    // While it holds it, a newcomer finds nothing.
    let newcomer = core.acquire(&"a", None, Wait::Never, Waker::noop());
    assert!(matches!(newcomer, Acquire::Queued(_)), "{newcomer:?}");
    core.release(mine, true);
}

#[test]
fn lax_pass_count_restarts_when_the_oldest_serves_itself() {
    let core = lax_core(1);
    let held = lease(&core, "a", None, 1);
    let queue = || match core.acquire(&"a", None, Wait::Queue, Waker::noop()) {
        Acquire::Queued(waiter) => waiter,
        other => panic!("the only connection is leased: the request queues, got {other:?}"),
    };
    let (mut first, mut second) = (queue(), queue());
    // A few returns go by the first request, the oldest, which is woken for
    // each; then it takes the connection itself.
    core.release(held, true);
    for _ in 0..10 {
        let barged = lease(&core, "a", None, 99);
        core.release(barged, true);
    }
    let Some(Grant::Conn(mine)) = core.retry(&mut first) else {
        panic!("the oldest request takes the idle connection");
    };
    // The second request, now the oldest, has the whole limit before it is
    // handed a return: the first one's passes are not held against it.
    core.release(mine, true);
    let (overtaken, last) = overtaken_until_handed(&core, &mut second);
    assert_eq!(overtaken, crate::Lax::PASS_LIMIT - 1);
    core.release(last, true);
}

#[test]
fn lax_connection_a_waiter_was_woken_for_is_not_closed_for_a_younger_route() {
    // One unit of capacity. A's request waits; the return goes idle and A is
    // woken to take it. B's request, on another route and younger, comes
    // before A has looked: it must not have that connection closed to make
    // room for itself, or A finds nothing, and nobody wakes A again.
    let (core, mut a) = lax_waiter_behind_a_return(Waker::noop());
    assert_eq!(core.route_stats(&"a").idle, 1, "returned to idle, A woken");
    let Acquire::Queued(mut b) = core.acquire(&"b", None, Wait::Queue, Waker::noop()) else {
        panic!("the total is used up: B queues");
    };
    assert!(
        crate::Waiting::try_take(&mut b).is_none(),
        "B waits its turn"
    );
    // As a woken request looks: its grant, else an idle connection.
    let looked = crate::Waiting::try_take(&mut a).or_else(|| core.retry(&mut a));
    let Some(Grant::Conn(mine)) = looked else {
        panic!("A gets the connection it was woken for, got {looked:?}");
    };
    assert_eq!(core.item(&mine).id, 1);
    // A's return goes to B: A's connection is closed to make room.
    core.release(mine, true);
    assert!(matches!(
        crate::Waiting::try_take(&mut b),
        Some(Grant::Connect(_))
    ));
}

/// Leases each of `routes` new routes once (in `state`, if given) under a
/// total of 4 and gives the connection back, so every route past the fourth
/// has an idle connection of another route closed to make room; returns how
/// many entries of the idle (or stateful) index cross-route reclaim looked
/// at.
fn reclaim_for_new_routes<F: super::Flavor>(routes: u32, state: Option<&State>) -> usize {
    let disposed = Arc::new(Mutex::new(Vec::new()));
    let sink = disposed.clone();
    let disposer: Disposer<Conn> = Arc::new(move |conn: Conn| sink.lock().unwrap().push(conn.id));
    let core = super::Engine::<u32, Conn, F>::new(Limits::new(4, 1), disposer);
    for route in 0..routes {
        let grant = match core.acquire(&route, state, Wait::Queue, Waker::noop()) {
            Acquire::Ready(grant) => grant,
            Acquire::Queued(mut waiter) => crate::Waiting::try_take(&mut waiter)
                .expect("served at once: an idle connection of another route is closed"),
        };
        let Grant::Connect(permit) = grant else {
            panic!("route {route}: expected capacity, got {grant:?}");
        };
        let conn = Conn {
            id: route,
            state: permit.state().cloned(),
        };
        let held = core.connected(permit, conn).expect("open core");
        core.release(held, true);
    }
    let closed: Vec<u32> = disposed.lock().unwrap().clone();
    if state.is_none() || <F::Serializers as super::Serializing>::STATEFUL_INDEX {
        assert!(
            closed.iter().copied().eq(0..routes - 4),
            "the oldest idle connection goes first"
        );
    } else {
        // The serializer looks for stateful ones route by route, in no
        // particular order.
        let distinct: std::collections::HashSet<u32> = closed.iter().copied().collect();
        assert_eq!(
            (closed.len(), distinct.len()),
            (routes as usize - 4, closed.len())
        );
    }
    let total = core.stats().total;
    assert_eq!((total.idle, total.leased, total.pending), (4, 0, 0));
    core.reclaim_looks
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Cross-route reclaim looks at a bounded number of routes per request,
/// however many routes the pool has seen (O(1) amortized, not a scan), for
/// stateless and stateful connections.
fn reclaim_looks_at_few_routes<F: super::Flavor>() {
    let routes = if cfg!(miri) { 16 } else { 2_000 };
    let alice = State::new("alice");
    for state in [None, Some(&alice)] {
        let looks = reclaim_for_new_routes::<F>(routes, state);
        assert!(
            looks <= 3 * routes as usize,
            "{looks} looks to make room for {routes} new routes ({state:?})"
        );
    }
}

/// Leases each of `routes` routes once under a total of 4 and gives the
/// connection back, then closes every idle connection.
fn use_and_empty<F: super::Flavor>(
    core: &super::Engine<u32, Conn, F>,
    routes: std::ops::Range<u32>,
) {
    for route in routes {
        let held = match core.acquire(&route, None, Wait::Queue, Waker::noop()) {
            Acquire::Ready(Grant::Conn(held)) => held,
            Acquire::Ready(Grant::Connect(permit)) => core
                .connected(
                    permit,
                    Conn {
                        id: route,
                        state: None,
                    },
                )
                .expect("open"),
            Acquire::Queued(mut waiter) => match crate::Waiting::try_take(&mut waiter) {
                Some(Grant::Connect(permit)) => core
                    .connected(
                        permit,
                        Conn {
                            id: route,
                            state: None,
                        },
                    )
                    .expect("open"),
                other => panic!("room is made at once, got {other:?}"),
            },
            other => panic!("a lease, got {other:?}"),
        };
        core.release(held, true);
    }
    core.evict_idle(Arc::new(|_: &Conn| true));
}

fn unused_routes_are_removed<F: super::Flavor>() {
    let routes = if cfg!(miri) { 20 } else { 2_000 };
    let disposer: Disposer<Conn> = Arc::new(|_| {});
    let core = super::Engine::<u32, Conn, F>::new(Limits::new(4, 1), disposer);
    core.set_route_max(&7, 3);
    use_and_empty(&core, 0..routes);
    assert_eq!(core.table.len(), routes as usize);
    // One sweep stamps the round; a route is removed once a full period
    // went by since it emptied.
    core.sweep_routes();
    assert_eq!(core.table.len(), routes as usize, "not a full period yet");
    core.sweep_routes();
    core.sweep_routes();
    assert_eq!(core.table.len(), 0, "every unused route is removed");
    let stats = core.stats();
    assert!(stats.routes.is_empty());
    assert_eq!(stats.total.created, u64::from(routes), "{stats:?}");
    assert_eq!(stats.total.closed, u64::from(routes), "{stats:?}");
    assert_eq!(core.route_stats(&7).max, 3, "a cap set at run time is kept");
    // Routes come back as new, their ids reused, stale index entries
    // skipped; the total cap still makes room across routes.
    use_and_empty(&core, 0..8);
    assert_eq!(core.table.len(), 8);
    assert_eq!(core.route_stats(&7).max, 3);
    assert_eq!(core.stats().total.created, u64::from(routes) + 8);
    assert!(
        core.table.iter().all(|entry| entry.route.id < 8),
        "lowest ids first"
    );
}

/// With forgetting off, every route stays.
fn routes_stay_when_forgetting_is_off<F: super::Flavor>() {
    let disposer: Disposer<Conn> = Arc::new(|_| {});
    let limits = Limits::new(4, 1).with_forget_routes(false);
    let core = super::Engine::<u32, Conn, F>::new(limits, disposer);
    let routes = if cfg!(miri) { 8 } else { 100 };
    use_and_empty(&core, 0..routes);
    for _ in 0..4 {
        assert_eq!(core.sweep_routes(), 0);
    }
    assert_eq!(core.table.len(), routes as usize);
    assert_eq!(core.stats().routes.len(), routes as usize);
}

/// A route with a connection (leased or idle), or a request waiting, stays
/// however many sweeps go by; once it lets go, it goes.
fn routes_in_use_stay<F: super::Flavor>() {
    let disposer: Disposer<Conn> = Arc::new(|_| {});
    let core = super::Engine::<&'static str, Conn, F>::new(Limits::new(2, 1), disposer);
    let leased = lease(&core, "a", None, 1);
    let idle = lease(&core, "b", None, 2);
    core.release(idle, true);
    let Acquire::Queued(waiter) = core.acquire(&"a", None, Wait::Queue, Waker::noop()) else {
        panic!("route a is at its cap: the request queues");
    };
    for _ in 0..4 {
        core.sweep_routes();
    }
    assert_eq!(core.table.len(), 2, "both routes are in use");
    assert!(core.cancel(waiter, false).is_none());
    core.release(leased, true);
    core.evict_idle(Arc::new(|_: &Conn| true));
    for _ in 0..3 {
        core.sweep_routes();
    }
    assert_eq!(core.table.len(), 0, "both routes let go");
    assert_eq!(core.stats().total.created, 2);
}

/// One step of [`removal_keeps_the_books`].
#[derive(Clone, Debug)]
enum RouteOp {
    /// Lease on route `route` without waiting (a hit, a new connection, or
    /// nothing when the caps are reached).
    Lease(u8),
    /// Give back the `pick`-th leased connection, for reuse or not.
    Release { pick: usize, reuse: bool },
    /// Close every idle connection.
    EvictAll,
    /// Run a sweep.
    Sweep,
}

fn route_op() -> impl proptest::strategy::Strategy<Value = RouteOp> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0u8..6).prop_map(RouteOp::Lease),
        3 => (any::<usize>(), any::<bool>())
            .prop_map(|(pick, reuse)| RouteOp::Release { pick, reuse }),
        1 => Just(RouteOp::EvictAll),
        2 => Just(RouteOp::Sweep),
    ]
}

/// Random leases, returns, evictions and sweeps over six routes under a
/// total of 3: after every step the totals add up (every connection made is
/// leased, idle or closed), every route holding a connection is in the
/// table, and no route is over its cap; at the end, with everything given
/// back and closed, two sweeps remove every route, and the next lease of a
/// route works.
fn removal_keeps_the_books<F: super::Flavor>(ops: &[RouteOp]) {
    let disposer: Disposer<Conn> = Arc::new(|_| {});
    let core = super::Engine::<u8, Conn, F>::new(Limits::new(3, 2), disposer);
    let mut held: Vec<(u8, Held)> = Vec::new();
    let mut next = 0;
    for op in ops {
        match *op {
            RouteOp::Lease(route) => {
                let grant = match core.acquire(&route, None, Wait::Never, Waker::noop()) {
                    Acquire::Ready(grant) => grant,
                    Acquire::Queued(mut waiter) => {
                        crate::Waiting::try_take(&mut waiter).expect("answered at once")
                    }
                };
                match grant {
                    Grant::Conn(conn) => held.push((route, conn)),
                    Grant::Connect(permit) => {
                        next += 1;
                        let conn = Conn {
                            id: next,
                            state: None,
                        };
                        held.push((route, core.connected(permit, conn).expect("open")));
                    }
                    Grant::Busy => {}
                    Grant::Closed => panic!("a removed route answered Closed"),
                }
            }
            RouteOp::Release { pick, reuse } => {
                if !held.is_empty() {
                    let (_, conn) = held.swap_remove(pick % held.len());
                    core.release(conn, reuse);
                }
            }
            RouteOp::EvictAll => core.evict_idle(Arc::new(|_: &Conn| true)),
            RouteOp::Sweep => {
                core.sweep_routes();
            }
        }
        let stats = core.stats();
        let total = stats.total;
        assert_eq!(total.leased, held.len(), "{stats:?}");
        assert_eq!(
            total.created,
            total.closed + (total.leased + total.idle) as u64,
            "{stats:?}"
        );
        for (route, _) in &held {
            let route_stats = core.route_stats(route);
            assert!(
                route_stats.leased > 0,
                "route {route} holds a lease: {stats:?}"
            );
            assert!(route_stats.allocated() <= 2, "route {route}: {route_stats}");
        }
    }
    for (_, conn) in held {
        core.release(conn, true);
    }
    core.evict_idle(Arc::new(|_: &Conn| true));
    core.sweep_routes();
    core.sweep_routes();
    assert_eq!(core.table.len(), 0, "{:?}", core.stats());
    let total = core.stats().total;
    assert_eq!((total.created, total.closed), (next as u64, next as u64));
    let Acquire::Ready(Grant::Connect(permit)) = core.acquire(&5, None, Wait::Never, Waker::noop())
    else {
        panic!("a route back after its removal connects");
    };
    let again = core
        .connected(permit, Conn { id: 0, state: None })
        .expect("open");
    core.release(again, true);
    assert_eq!(core.route_stats(&5).idle, 1);
}

fn removal_keeps_the_books_everywhere<F: super::Flavor>() {
    use proptest::prelude::*;
    let config = ProptestConfig {
        cases: if cfg!(miri) { 2 } else { 256 },
        // No regression file: the failing case is printed (and miri's
        // isolation has no working directory to write one in).
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let steps = if cfg!(miri) { 1..20 } else { 1..60 };
    proptest!(config, |(ops in proptest::collection::vec(route_op(), steps.clone()))| {
        removal_keeps_the_books::<F>(&ops);
    });
}

/// One `#[test]` per flavor (`strict::f`, `lax::f`, `offlock::f`) for each
/// named generic test function.
macro_rules! for_each_flavor {
    ($($test:ident),+ $(,)?) => {
        for_each_flavor!(@flavor strict, Fair; $($test),+);
        for_each_flavor!(@flavor lax, Sharded; $($test),+);
        for_each_flavor!(@flavor offlock, Segmented; $($test),+);
    };
    (@flavor $module:ident, $flavor:ident; $($test:ident),+) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test::<crate::engine::$flavor>();
                }
            )+
        }
    };
}

for_each_flavor!(
    acquire_now_serves_or_queues_nothing,
    reclaim_looks_at_few_routes,
    unused_routes_are_removed,
    routes_in_use_stay,
    routes_stay_when_forgetting_is_off,
    removal_keeps_the_books_everywhere
);
