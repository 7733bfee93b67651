//! Loom model checks of the engine's hand-off protocols, through the
//! public API of `leasehold-policies` only.
//!
//! Built only with `--cfg leasehold_loom` (see `loom-tests/run.sh`), which
//! swaps the atomics, `Arc`, `Mutex`, `UnsafeCell` and queues of the policies
//! crate for loom's, so loom explores every interleaving (up to
//! `LOOM_MAX_PREEMPTIONS`) of the threads below and checks every access to
//! shared cells for data races.
//!
//! Every model uses `max_total = max_per_route = 1`, so there is exactly one
//! unit of capacity to fight over, and one route (`ROUTE`), except the
//! cross-route models, which add `OTHER`. A waiting thread parks until its
//! waker unparks it: if a grant is never published, or published without a
//! wake-up, every thread ends up blocked and loom reports a deadlock — that
//! is how a lost wake-up shows. (Model 1 polls instead, to check the grant's
//! memory ordering; see there.)
//!
//! Run with `loom-tests/run.sh [filter] [--nocapture]`; with `--nocapture`
//! each model prints how many executions loom explored and which outcomes
//! they reached.
//!
//! Bookkeeping that is not part of the protocol (which items were disposed,
//! which outcomes a model reached) uses `std` primitives, so that it adds no
//! scheduling points to the state space loom explores.

mod support;

use leasehold_loom_tests::Tally;
use leasehold_policies::unstable::{Acquire, Core, Grant, Wait, Waiting};
use loom::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

pub(crate) use support::Conn;
use support::*;

use super::{TestCore, MAX_AHEAD, REUSE};

/// Model 1 — release → waiter hand-off.
///
/// B is queued (A waits until B counts itself as waiting, then returns the
/// connection for reuse), so A's release races B's `Enqueue` command through
/// the serializer. B must get the very connection A returned, as `Conn`,
/// woken exactly once, and nothing may be disposed.
///
/// B polls its waiter with `yield_now` instead of parking, and its waker
/// only counts: loom's `unpark` would hand B the granter's causality and
/// hide an ordering bug in the grant's publication, which this way shows as
/// a causality violation on the grant cell. A grant never published makes B
/// spin until loom's branch limit; one published without a wake-up leaves
/// the wake count at 0.
///
/// Catches: a return that misses the waiter count and parks the connection
/// on the idle list while B waits; a serializer that drops or never runs a
/// command submitted while another thread drains; a grant cell written
/// without release/acquire ordering on the node state (loom flags B's read
/// of the cell); a missing or doubled wake-up; a hand-off that opens new
/// capacity instead of reusing the returned connection (B gets `Connect`);
/// waiter/idle counts left wrong after the hand-off.
#[test]
fn release_hands_off_to_waiter() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();

        let a = {
            let core = core.clone();
            thread::spawn(move || {
                until_someone_waits(&core);
                core.release(held, true);
            })
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || {
                let (wakes, waker) = counting_waker();
                let mut waiter =
                    expect_queued(core.acquire(&ROUTE, None, Wait::Queue, &waker), "B");
                let (grant, handed) = loop {
                    if let Some(grant) = waiter.try_take() {
                        break (grant, true);
                    }
                    // `Lax` wakes B to take the connection itself.
                    if let Some(grant) = core.retry(&mut waiter) {
                        break (grant, false);
                    }
                    thread::yield_now();
                };
                reuse_the_connection(&core, grant, "B");
                (wakes, handed)
            })
        };
        a.join().unwrap();
        let (wakes, handed) = b.join().unwrap();

        // Taking it itself, B may have been quicker than the wake-up.
        let wakes = wakes.0.load(Ordering::Relaxed);
        assert!(wakes == 1 || (!handed && wakes == 0), "B is woken once");
        assert_quiet(&core, 1, 0);
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
        seen.note(false);
    });
    tally.report_runs("release -> waiter");
}

/// Model 2 — cancel vs hand-off.
///
/// B is queued and withdraws (as on a timeout) while A returns the connection
/// for reuse (A starts once B is counted as waiting, or has queued and
/// perhaps already withdrawn). Whichever wins the waiter node's CAS, nothing
/// may be lost: if the hand-off won, `cancel` gives B the grant and B returns
/// it; either way the connection ends idle, no request is counted, and a
/// fresh request gets it at once as `Conn`.
///
/// Catches: a grant written into a cancelled node and never taken back (the
/// connection leaks: idle 0, leased 1, and the fresh request queues); both
/// sides accounting for the request leaving the queue (waiter count
/// underflows) or neither (`pending` stays 1 and newcomers defer to a ghost);
/// the granter reading the cell while the request takes from it (loom flags
/// the race); a cancelled node blocking the hand-off.
#[test]
fn cancel_races_hand_off() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        let queued = Arc::new(AtomicBool::new(false));

        let a = {
            let (core, queued) = (core.clone(), queued.clone());
            thread::spawn(move || {
                while core.route_stats(&ROUTE).pending == 0 && !queued.load(Relaxed) {
                    thread::yield_now();
                }
                core.release(held, true);
            })
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || {
                let waiter = expect_queued(core.acquire(&ROUTE, None, Wait::Queue, &waker()), "B");
                queued.store(true, Relaxed);
                match core.cancel(waiter, true) {
                    None => false,
                    Some(Grant::Conn(held)) => {
                        assert_eq!(core.item(&held).id, 1);
                        core.release(held, true);
                        true
                    }
                    Some(other) => panic!("a cancelled request got {other:?}"),
                }
            })
        };
        a.join().unwrap();
        let handed_off = b.join().unwrap();
        seen.note(handed_off);

        assert_quiet(&core, 1, 0);
        // A request served before it withdrew did not time out.
        let timeouts = core.route_stats(&ROUTE).timeouts;
        assert_eq!(timeouts, u64::from(!handed_off), "timeouts");
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");

        // The connection is really idle and reachable on the hot path.
        match core.acquire(&ROUTE, None, Wait::Queue, &waker()) {
            Acquire::Ready(grant) => reuse_the_connection(&core, grant, "a fresh request"),
            Acquire::Queued(_) => panic!("a fresh request must not queue for an idle connection"),
        }
        assert_quiet(&core, 1, 0);
    });
    tally.assert_both("cancel vs hand-off", ["cancel won", "hand-off won"]);
}

/// Model 3 — return vs enqueue: no lost wake-up.
///
/// B's acquisition races A's return, with no ordering between them: B may
/// take the connection from the idle list on the hot path, or queue before,
/// during or after the return. In every interleaving B must get the
/// connection; it never waits while the connection sits idle.
///
/// Catches the classic lost wake-up: A reads "no waiters" and pushes the
/// connection on the idle list while B, having seen "no idle connection",
/// counts itself and queues — if neither re-checks the other with a
/// read-modify-write on the shared word, the connection stays idle and B
/// parks forever (loom: deadlock). Also a newcomer taking a connection a
/// waiter is owed, and idle/waiter counts left wrong.
#[test]
fn return_races_enqueue() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        let queued = release_races_acquire(&core, held, true, |core, grant| {
            reuse_the_connection(core, grant, "B")
        });
        seen.note(queued);

        assert_quiet(&core, 1, 0);
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    });
    tally.assert_both("return vs enqueue", ["hot path", "queued"]);
}

/// Model 4 — freed capacity vs waiter.
///
/// A closes its connection (`reuse = false`) while B asks for one. B must get
/// capacity to open a new connection (`Connect`), whether it queued first or
/// came after; the old connection is disposed exactly once, and the new one
/// is counted like any other.
///
/// Catches: freed capacity that nobody hands to the queued request (B parks
/// forever: the close-side re-check of the waiter count is missing or not a
/// read-modify-write); a slot handed out before it is back on the free list,
/// or capacity released before the slot is (double use of a slot, caught by
/// loom on the slot cell, or B spinning forever); a disposal twice or never;
/// caps exceeded (allocated 2).
#[test]
fn discard_frees_capacity_for_waiter() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        let queued = release_races_acquire(&core, held, false, |core, grant| {
            let permit = match grant {
                Grant::Connect(permit) => permit,
                other => panic!("B must get capacity, got {other:?}"),
            };
            let held = core
                .connected(permit, Conn::new(2))
                .expect("the core is open");
            core.release(held, true);
        });
        seen.note(queued);

        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 1, 0);
        let stats = core.route_stats(&ROUTE);
        assert_eq!((stats.created, stats.closed), (2, 1), "{stats}");
    });
    tally.assert_both("discard vs waiter", ["hot path", "queued"]);
}

/// Model 5 — shutdown vs waiter.
///
/// B asks for a connection while A returns the leased one and the main
/// thread shuts the core down. B must be answered: `Closed`, or the
/// connection if it was served before the shutdown — and then its return
/// disposes of it. Once everyone is done, every connection created has been
/// disposed exactly once and nothing is counted.
///
/// Catches: a request queued just after shutdown answered the others and
/// never answered itself (B parks forever); a connection returned to the
/// idle list just as the route closes and never drained (disposed 0 times,
/// idle 1 after shutdown); a connection drained both by the returning thread
/// and by the shutdown (disposed twice); counts left non-zero; and B given
/// `Connect` — new capacity freed by the shutdown closing A's returned
/// connection, handed out on the hot path or by the serializer before the
/// `Shutdown` command lands — so that the pool would open a connection after
/// it was shut down (a bug this model found, fixed in `strict`).
#[test]
fn shutdown_races_waiter() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();

        let a = {
            let core = core.clone();
            thread::spawn(move || core.release(held, true))
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || match acquire_and_wait(&core) {
                (Grant::Closed, _) => false,
                (Grant::Conn(held), _) => {
                    assert_eq!(core.item(&held).id, 1);
                    core.release(held, true);
                    true
                }
                (other, queued) => {
                    panic!("B must get Closed or the connection, got {other:?} (queued: {queued})")
                }
            })
        };
        core.shutdown();
        a.join().unwrap();
        seen.note(b.join().unwrap());

        assert!(core.is_closed());
        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 0, 0);
        let stats = core.route_stats(&ROUTE);
        assert_eq!((stats.created, stats.closed), (1, 1), "{stats}");
        assert!(matches!(
            core.acquire(&ROUTE, None, Wait::Queue, &waker()),
            Acquire::Ready(Grant::Closed)
        ));
    });
    tally.assert_both("shutdown vs waiter", ["closed", "served"]);
}

/// Model 6 — an idle connection of another route vs a request blocked by the
/// total cap.
///
/// The only connection is leased on `OTHER`; B asks for one on `ROUTE`, which
/// has room of its own but the pool is full, while A returns `OTHER`'s
/// connection for reuse (a stateless return to a route without waiters: the
/// lock-free path). The strict policy promises that a request blocked by the
/// total cap gets a connection of another route closed to make room: B must
/// get `Connect`, and A's connection is disposed of exactly once.
///
/// Catches a lost wake-up across routes: A checks only its own route's
/// waiter count, finds none and leaves the connection idle; B's request was
/// looked at before the connection went idle and found nothing to reclaim;
/// nobody looks again, and B waits (here: parks forever) with an idle
/// connection in the pool. Also a reclaim that closes the victim twice or
/// moves its slot without its capacity (counts off, or caps exceeded).
#[test]
fn idle_on_other_route_is_reclaimed_for_waiter() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core_on(OTHER);

        // The pool is full and A's connection belongs to another route: B
        // always queues.
        return_races_blocked_request(&core, held);

        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 1, 0);
        let other = core.route_stats(&OTHER);
        assert_eq!(other.allocated(), 0, "{other}");
        assert_eq!((other.created, other.closed), (1, 1), "{other}");
        seen.note(false);
    });
    tally.report_runs("other route's idle vs waiter");
}

/// Model 7 — freed total capacity vs a request withdrawing.
///
/// The only connection is leased on `OTHER`; B's request on `ROUTE` is
/// blocked by the total cap and withdraws (as on a timeout) while A closes
/// `OTHER`'s connection (`reuse = false`), freeing the unit B waits for.
/// Whoever wins, the unit must not be lost: if B was served first, `cancel`
/// hands it the permit and B gives it back; else the core keeps it (`Offlock`:
/// the credit its total line reserved for `ROUTE` goes back to the total).
/// Afterwards nothing is counted and a request on a third route opens a
/// connection at once.
///
/// Catches: a unit of the total reserved for a route whose request has gone
/// and never given back (the third route's request queues: total stuck at
/// 1); a permit granted into a cancelled node and dropped; a route left in
/// the total line, so newcomers elsewhere keep deferring to it.
#[test]
fn freed_total_races_cancel() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core_on(OTHER);
        let queued = Arc::new(AtomicBool::new(false));

        let a = {
            let (core, queued) = (core.clone(), queued.clone());
            thread::spawn(move || {
                while !queued.load(Relaxed) {
                    thread::yield_now();
                }
                core.release(held, false);
            })
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || {
                let waiter = expect_queued(core.acquire(&ROUTE, None, Wait::Queue, &waker()), "B");
                queued.store(true, Relaxed);
                match core.cancel(waiter, true) {
                    None => false,
                    Some(Grant::Connect(permit)) => {
                        core.connect_failed(permit);
                        true
                    }
                    Some(other) => panic!("B could only be given capacity, got {other:?}"),
                }
            })
        };
        a.join().unwrap();
        seen.note(b.join().unwrap());

        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 0, 0);
        let third = 3u8;
        let permit = expect_connect(core.acquire(&third, None, Wait::Queue, &waker()));
        core.connect_failed(permit);
        assert_eq!(core.stats().total.allocated(), 0);
    });
    tally.assert_both("freed total vs cancel", ["cancel won", "served first"]);
}

/// Model 8 — re-registration vs hand-off (an async task that moved).
///
/// B queued on one thread with a waker that nobody acts on (the task's old
/// waker); the task is then polled on another thread, which registers its
/// own waker, looks for the grant, and parks if there is none — while A
/// returns the connection. B must always be woken with the connection.
///
/// Catches the lost wake-up of waker re-registration: a granter that wakes
/// the waker it read before publishing the grant (B registers after that
/// read, looks before the publication, parks, and nobody wakes the new
/// waker: loom reports a deadlock); a request that looks before it
/// registers; a register that drops the new waker when a wake is in
/// progress.
#[test]
fn reregistration_races_hand_off() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        let (stale, stale_waker) = counting_waker();
        let waiter = expect_queued(core.acquire(&ROUTE, None, Wait::Queue, &stale_waker), "B");

        let a = {
            let core = core.clone();
            thread::spawn(move || core.release(held, true))
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || {
                waiter.register(&waker());
                reuse_the_connection(&core, wait(&core, waiter), "B");
            })
        };
        a.join().unwrap();
        b.join().unwrap();
        // The old waker was woken only if the grant came before the move.
        seen.note(stale.0.load(Ordering::Relaxed) == 0);

        assert_quiet(&core, 1, 0);
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    });
    tally.assert_both(
        "re-registration vs hand-off",
        ["old waker woken", "new waker woken"],
    );
}

/// Model 9 — a request dropped after the hand-off, before it looked.
///
/// B and C are queued, in that order; A returns the connection while B is
/// dropped (a cancelled future: `cancel`, and whatever it was granted goes
/// back with `release`, as `leasehold`'s request does on drop) and C parks.
/// Whether the connection reached B before or after it withdrew, C must be
/// woken with it, and nothing may be disposed.
///
/// Catches a connection stranded in a dropped request's node (C parks
/// forever: loom reports a deadlock), a drop that releases the connection
/// without waking the next waiter, and counts left wrong by a withdrawal
/// racing a hand-off.
#[test]
fn dropped_request_passes_hand_off_on() {
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        // Nobody waits on the dropped request, so its waker must not unpark
        // a thread: a hand-off may still wake it, and loom cannot take an
        // unpark aimed at a thread that has gone on to `join`.
        let (_, nobody) = counting_waker();
        let dropped = expect_queued(
            core.acquire(&ROUTE, None, Wait::Queue, &nobody),
            "the dropped request",
        );

        let a = {
            let core = core.clone();
            thread::spawn(move || core.release(held, true))
        };
        // C asks (after B was queued), and waits if queued. Not on the main
        // thread, which joins the others: `Lax` may wake a request that has
        // just served itself, and loom cannot take an unpark aimed at a
        // thread in `join`. B is dropped on the main thread, which never
        // waits.
        let c = {
            let core = core.clone();
            thread::spawn(move || {
                let (grant, _) = acquire_and_wait(&core);
                reuse_the_connection(&core, grant, "C");
            })
        };
        match core.cancel(dropped, false) {
            None => {}
            Some(Grant::Conn(held)) => core.release(held, true),
            Some(other) => panic!("a queued request got {other:?}"),
        }
        a.join().unwrap();
        c.join().unwrap();

        assert_quiet(&core, 1, 0);
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    });
}

/// Model 10 — a waiter woken to compete vs a newcomer.
///
/// B and C ask for the connection, in either order, while A (the main
/// thread) holds it; A returns it once one of them is queued. Under `Lax`
/// the return goes idle and the queued request is woken without a grant to
/// take it itself, while the other may barge in and take it first; under
/// `Strict` and `Offlock` it is handed to the oldest request. Every request
/// must end with the connection, used once each and returned, whoever wins.
/// (B and C run on threads of their own, as C does in model 9.)
///
/// Catches, for the competing protocol: a return that goes idle with
/// nobody woken (a request parks forever: loom reports a deadlock); a woken
/// request that registers its waker after it looks, or looks with a plain
/// load that misses the push (the same); a request that took the
/// connection itself but stays counted as waiting (`pending` is left at 1);
/// a newcomer's return, after it overtook the waiter, that wakes nobody.
#[test]
fn woken_waiter_races_newcomer() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let ask = |name: char| {
            let (core, order) = (core.clone(), order.clone());
            thread::spawn(move || {
                let (grant, _) = acquire_and_wait(&core);
                order.lock().unwrap().push(name);
                reuse_the_connection(&core, grant, "a request");
            })
        };
        let (b, c) = (ask('B'), ask('C'));
        // A, on the main thread (which never waits, see model 9).
        until_someone_waits(&core);
        core.release(held, true);
        b.join().unwrap();
        c.join().unwrap();
        seen.note(order.lock().unwrap()[0] == 'C');

        assert_quiet(&core, 1, 0);
        assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    });
    tally.assert_both("woken waiter vs newcomer", ["B first", "C first"]);
}

/// Model 11 — a newcomer overtakes a queued request a bounded number of
/// times, however late the serializer runs.
///
/// B queues while A (the main thread) holds the connection; then A gives
/// the connection back while C, a newcomer that will not wait, asks for it
/// twice and gives back what it gets. (B's request is made on the main
/// thread, then waited for on B's own.) Under `Lax` a return goes idle for
/// B to compete for until `PASS_LIMIT` returns (1 under loom) went by, and
/// is then handed to B, so C gets the connection ahead of B at most once;
/// under `Strict` and `Offlock`, never. B must end with the connection
/// either way.
///
/// Catches: a limit counted by the serializer rather than by the returning
/// thread (with the thread that drains it preempted, C's returns go idle
/// uncounted and C overtakes again); a request that counts as queued before
/// returns count themselves against it (its `CONTEND` raised only when the
/// serializer applies it); a pass count reset while B is still the oldest.
#[test]
fn newcomer_overtakes_a_waiter_a_bounded_number_of_times() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let ahead = newcomer_races_a_waiter(2);
        // Written so that it holds for a MAX_AHEAD of 0 without comparing
        // an unsigned number against its minimum.
        assert_eq!(
            ahead.saturating_sub(MAX_AHEAD),
            0,
            "C overtook B {ahead} times"
        );
        seen.note(ahead > 0);
    });
    if MAX_AHEAD != 0 {
        tally.assert_both("newcomer vs waiter", ["B first", "C ahead"]);
    } else {
        tally.report_runs("newcomer vs waiter");
    }
}

/// Model 13 — a return vs a request of the same route blocked by the total
/// cap.
///
/// The only unit of the total is `ROUTE`'s connection, leased; `ROUTE` has
/// room of its own (its cap is 2), so B's request on it (made on the main
/// thread, as in model 11) is blocked by the total cap: under `Offlock` its
/// route joins the total line, which finds nothing idle to close for it.
/// Then A returns the connection for reuse while C's request on `OTHER`, a
/// route new to the pool, tries the hot path once (`acquire_now`, which
/// finds the total reached): registering the route kicks the total line,
/// which so runs beside the route's serializer taking A's return. B must
/// get that very connection: closing it to make room for a new one of the
/// same route would cost a reconnect for nothing. Nothing may be disposed,
/// one connection is ever created, and nothing is left waiting for the
/// total: a request on `OTHER` then gets the idle connection closed for it.
///
/// Catches: a total line that takes the blocked route's own returned
/// connection — idle for an instant between its return and the route's
/// serializer handing it over — closes it and grants B a `Connect`; a route
/// left in the total line once its request was served by its own
/// connection, whose idle connections the line then neither closes for
/// another route nor lets that route have (the last request is not served);
/// a lost hand-off (B parks forever: loom reports a deadlock).
#[test]
fn return_to_a_route_blocked_by_the_total_is_not_closed() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core_with(ROUTE, 2);
        let (b, _) = queue_b(&core);

        let a = {
            let core = core.clone();
            thread::spawn(move || core.release(held, true))
        };
        let c = {
            let core = core.clone();
            thread::spawn(move || core.acquire_now(&OTHER, None))
        };
        a.join().unwrap();
        b.join().unwrap();
        let c = c.join().unwrap();

        let stats = core.route_stats(&ROUTE);
        assert_eq!(disposed_ids(&disposed), [], "nothing is disposed: {stats}");
        assert_eq!((stats.created, stats.closed), (1, 0), "{stats}");
        assert!(c.is_none(), "C must get nothing, got {c:?}");
        assert_quiet(&core, 1, 0);
        // Queued under the policies that serve it through the serializer,
        // which it then runs itself.
        let grant = match core.acquire(&OTHER, None, Wait::Queue, &waker()) {
            Acquire::Ready(grant) => grant,
            Acquire::Queued(mut waiter) => waiter.try_take().expect("served at once"),
        };
        match grant {
            Grant::Connect(permit) => core.connect_failed(permit),
            other => panic!("the other route's request must get capacity, got {other:?}"),
        }
        assert_eq!(disposed_ids(&disposed), [1], "closed for the other route");
        seen.note(false);
    });
    tally.report_runs("return vs same route blocked by the total");
}

/// Model 14 — a stale entry of the idle index vs a return.
///
/// `OTHER`'s only connection went idle once, so its shard is listed in the
/// idle index, and was leased again: the entry is stale. B asks on `ROUTE`,
/// blocked by the total cap, while A returns `OTHER`'s connection. The
/// reclaimer may find the shard empty and drop its entry just as A's push
/// makes it non-empty: then either A's push finds `LISTED` down and lists
/// the shard again, or the reclaimer's CAS fails and it takes the
/// connection. B must get `Connect`, and A's connection is disposed of
/// exactly once. (A may return to another shard than the listed one, a
/// thread's shard being its own: then A lists that shard and the stale
/// entry is dropped.)
///
/// Catches: a reclaimer that lowers `LISTED` without checking, in the same
/// CAS, that the shard is still empty (A's push found the flag up and added
/// no entry, the connection sits idle where no look finds it, and B parks
/// forever: loom reports a deadlock); a push that lists its shard without
/// reading its word again after adding the entry (the same, as in model 6);
/// a stale entry that stops the look, or is kept forever.
#[test]
fn stale_index_entry_races_return() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core_on(OTHER);
        core.release(held, true);
        let held = match core.acquire(&OTHER, None, Wait::Queue, &waker()) {
            Acquire::Ready(Grant::Conn(held)) => held,
            other => panic!("the idle connection is a hit, got {other:?}"),
        };

        return_races_blocked_request(&core, held);

        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 1, 0);
        let other = core.route_stats(&OTHER);
        assert_eq!(other.allocated(), 0, "{other}");
        seen.note(false);
    });
    tally.report_runs("stale index entry vs return");
}

/// Model 15 — a stale stateful entry vs a stateful return.
///
/// As model 14, with `OTHER`'s connection in a state: such connections are
/// kept by the serializer (under `Offlock`, by `OTHER`'s own, which the
/// total line asks to close one; it finds `OTHER` through the stateful
/// index, whose entry went stale when the connection was leased again). B
/// asks on `ROUTE` without state, blocked by the total cap, while A returns
/// `OTHER`'s connection. B must get `Connect`, and A's connection is
/// disposed of exactly once.
///
/// Catches: a route dropped from the stateful index while its serializer
/// counts a connection going idle (the unlisting must find the count 0 in
/// the same CAS; else A's return finds the route listed, adds nothing, and
/// B parks forever: loom reports a deadlock); a stateful connection that
/// goes idle after the total line raised `TOTAL_WAIT` without its route
/// kicking the line.
#[test]
fn stale_stateful_entry_races_return() {
    loom::model(move || {
        let (core, disposed) = core_with_route_max(1);
        let alice = leasehold_policies::State::new("alice");
        let lease_alice = || match core.acquire(&OTHER, Some(&alice), Wait::Queue, &waker()) {
            Acquire::Ready(grant) => grant,
            Acquire::Queued(waiter) => wait(&core, waiter),
        };
        let permit = match lease_alice() {
            Grant::Connect(permit) => permit,
            other => panic!("capacity for the first connection, got {other:?}"),
        };
        let conn = Conn {
            id: 1,
            state: Some(alice.clone()),
        };
        let held = core.connected(permit, conn).expect("the core is open");
        core.release(held, true);
        let held = match lease_alice() {
            Grant::Conn(held) => held,
            other => panic!("the idle connection in its state, got {other:?}"),
        };

        return_races_blocked_request(&core, held);

        assert_eq!(disposed_ids(&disposed), [1], "item 1 disposed exactly once");
        assert_quiet(&core, 1, 0);
        let other = core.route_stats(&OTHER);
        assert_eq!(other.allocated(), 0, "{other}");
    });
}

/// Model 16 — removing an unused route vs a newcomer on it.
///
/// `ROUTE` had one connection, closed since, and a sweep went by, so the
/// next removes it: A runs that sweep while B asks on `ROUTE`. Either B's
/// request comes first and holds the route (its reservation makes the
/// removal's seal fail, or its count in the word makes the removal's close
/// fail, and the removal gives the cap back), or the removal comes first and
/// B, finding the route closed (as a newcomer, or in the word its count
/// returns), looks it up again and registers it anew. Either way B gets
/// `Connect`, never `Closed`, its connection is on the route the table
/// holds, and the pool's counters add up: two connections created over the
/// route's lives, one closed, one idle.
///
/// Catches: a removal that does not seal the cap first (B reserves on the
/// route just before it is closed and removed, and its connection lands on
/// a route the table no longer holds: the route's stats show none); a
/// request that ignores `CLOSED` in the word its count returns (it queues
/// on a removed route: the serializer of every route finds no route for
/// its `Enqueue` and panics, and under `Offlock` nobody serves it, so loom
/// reports a deadlock); a newcomer answered `Closed` by a removed route.
#[test]
fn removal_races_newcomer() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core();
        core.release(held, false);
        core.sweep_routes();

        let a = {
            let core = core.clone();
            thread::spawn(move || core.sweep_routes())
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || connect_on_route(&core, false))
        };
        a.join().unwrap();
        b.join().unwrap();

        assert_eq!(disposed_ids(&disposed), [1]);
        assert_quiet(&core, 1, 0);
        let total = core.stats().total;
        assert_eq!((total.created, total.closed), (2, 1), "{total}");
        // Whether the removal came first.
        seen.note(core.route_stats(&ROUTE).created == 1);
    });
    tally.assert_both("removal vs newcomer", ["route kept", "route removed first"]);
}

/// Model 18 — raising the total cap vs a request it blocked.
///
/// The only unit of the total is leased (item 1, on `ROUTE`, whose own cap
/// is 2), so B's request on `ROUTE` is blocked by the total cap, while A
/// raises it to 2. Whether B asks before the raise (it queues, and the raise
/// must serve it) or after (capacity at once), B gets `Connect`; item 1
/// stays leased throughout, so nothing but the raise can serve B.
///
/// Catches: a raise that stores the new cap but leaves the requests queued
/// behind the old one where they are (shown by making `capacity_grew` do
/// nothing in both serializing strategies: B parks forever, and loom
/// reports a deadlock).
#[test]
fn raised_total_serves_blocked_request() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let (core, disposed, held) = leased_core_with(ROUTE, 2);
        let a = {
            let core = core.clone();
            thread::spawn(move || core.set_max_total(2))
        };
        let b = {
            let core = core.clone();
            thread::spawn(move || {
                let (grant, queued) = acquire_and_wait(&core);
                let permit = match grant {
                    Grant::Connect(permit) => permit,
                    other => panic!("B must get capacity, got {other:?}"),
                };
                let held = core.connected(permit, Conn::new(2)).expect("open");
                core.release(held, true);
                queued
            })
        };
        a.join().unwrap();
        seen.note(b.join().unwrap());
        core.release(held, true);
        assert!(disposed_ids(&disposed).is_empty());
        assert_quiet(&core, 2, 0);
        assert_eq!(core.stats().total.max, 2);
    });
    tally.assert_both(
        "raise vs blocked request",
        ["served at once", "queued, then served"],
    );
}

/// Model 19 — lowering the total cap vs two returns.
///
/// Two connections are leased under a total cap of 2; A and C return one
/// each (for reuse) while B lowers the cap to 1. Whatever the order, once
/// all are done at most one connection is left, idle, and every other was
/// disposed of exactly once: a return that finds the pool over its new cap
/// closes its connection, and the lowering closes idle ones that went
/// idle before it. Two returns that both find the pool over the cap both
/// close (the model reaches it): the pool falls below the new cap until
/// it opens a connection again, never above it.
///
/// Catches: a return that checks only its route's cap (shown by dropping
/// the total from `Engine::over_cap`: both returns after the lowering go
/// idle, and two are left); a lowering that leaves idle connections over
/// the cap to later returns (shown by removing its `Trim`: both returns
/// before it go idle, and two are left); a return that reads the cap only
/// before its push (the lowering's trim can look before the push lands and
/// find nothing: nothing is closed, and the model found this in the first
/// version). Not shown: the trim's read-modify-write of every shard
/// before it looks (removing it, the model still passes: loom's loads here
/// see the latest store); the C11 memory model needs it, as a return's
/// push and the trim's look are otherwise two stores and two loads of two
/// locations, which may both miss each other. Two preemptions: every
/// outcome and every bug above in 45 k executions (three took 776 k).
#[test]
fn lowered_total_closes_returns_over_it() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    // Three threads and the serializers' work: two preemptions reach every
    // outcome and every bug below in a tenth of the time of three.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(2);
    model.check(move || {
        let (core, disposed) = core_with_total(2);
        let lease = |id| {
            let permit = expect_connect(core.acquire(&ROUTE, None, Wait::Queue, &waker()));
            core.connected(permit, Conn::new(id)).expect("open")
        };
        let (first, second) = (lease(1), lease(2));
        let release = |held| {
            let core = core.clone();
            thread::spawn(move || core.release(held, true))
        };
        let a = release(first);
        let b = {
            let core = core.clone();
            thread::spawn(move || core.set_max_total(1))
        };
        let c = release(second);
        a.join().unwrap();
        b.join().unwrap();
        c.join().unwrap();
        let mut gone = disposed_ids(&disposed);
        gone.sort_unstable();
        gone.dedup();
        assert_eq!(
            gone.len(),
            disposed_ids(&disposed).len(),
            "closed twice: {gone:?}"
        );
        assert!(!gone.is_empty(), "nothing closed");
        assert_quiet(&core, 2 - gone.len(), 0);
        assert_eq!(core.stats().total.max, 1);
        seen.note(gone.len() == 2);
    });
    tally.assert_both("lowered total vs returns", ["one closed", "both closed"]);
}
