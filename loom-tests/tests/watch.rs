//! Loom models of [`LeaseMark`], the word an event loop and a connection's
//! leaseholders share so that the loop watches a connection's traffic only
//! while it is idle, and a connection the peer closed is never lent out
//! again once the loop has seen the close.
//!
//! The socket is two loom atomic flags, `closed` and `bytes` (stray bytes),
//! that the peer sets; a probe reads them. The loop learns of them as
//! edge-triggered epoll tells it: of a close always (both registrations
//! watch closes), once after it happens, and once more after it narrows the
//! registration of a leased connection (a narrowed registration reports a
//! pending close again); of bytes only if its registration watched bytes
//! when they came. Each model checks, over every interleaving:
//!
//! * a holder never has a connection the loop marked dead;
//! * at the end, a closed connection is never left idle and unmarked: it
//!   is marked dead (the loop evicts it), or its return refused it;
//! * at the end, an idle connection with stray bytes is marked dead or
//!   unarmed (the loop probes it before it arms it again): armed means the
//!   loop vouches for it;
//! * all of this also with a check that answers quiet while a holder has
//!   the connection, as `Watched::with_check` allows.
//!
//! Bugs they catch: a return that clears `LEASED` with a load and a store
//! (it wipes out a `DOOMED` the loop set in between, and the closed
//! connection is kept; or it brings back an `ARMED` the loop cleared, and
//! the loop no longer watching its bytes vouches for it), shown by editing
//! `LeaseMark::release` so; a loop that dooms a leased connection without
//! a compare-and-swap (the return in between keeps it); a loop that takes
//! a quiet probe at its word without looking at the mark again.
//!
//! Built only with `--cfg leasehold_loom`; `loom-tests/run.sh watch` runs
//! them alone.

#![cfg(leasehold_loom)]

use leasehold_policies::unstable::{Arming, LeaseMark, WatchEvent};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

/// The peer's side of the socket.
#[derive(Default)]
struct Socket {
    closed: AtomicBool,
    bytes: AtomicBool,
}

impl Socket {
    fn quiet(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.bytes.load(Ordering::Acquire)
    }
}

/// An idle mark after its opener's lease, armed by the loop if `armed`.
fn idle(armed: bool) -> LeaseMark {
    let mark = LeaseMark::leased();
    assert!(mark.release());
    if armed {
        assert_eq!(mark.arm(1, || true), Arming::Armed);
    }
    mark
}

/// One lease and return, with `holding` raised while the holder has the
/// connection: whether the connection is idle and kept at the end (not
/// taken, or taken and given back unrefused).
fn lease_and_return(mark: &LeaseMark, holding: &AtomicBool) -> bool {
    if !mark.lease() {
        return true; // not taken: still idle (and dead)
    }
    holding.store(true, Ordering::Release);
    assert!(!mark.is_dead(), "leased a dead connection");
    holding.store(false, Ordering::Release);
    mark.release()
}

/// The loop's handling of a close: one readiness after it, and one more
/// each time it narrows the registration; `check` is the connection's.
fn loop_sees_close(mark: &LeaseMark, check: impl Fn() -> bool) {
    while mark.readiness(&check) == WatchEvent::Leased {}
}

/// The end of an execution with a close: a connection still idle (kept)
/// is marked dead.
fn closed_end(mark: &LeaseMark, kept: bool) {
    if kept {
        assert!(mark.is_dead(), "a closed connection is idle and unmarked");
    }
}

/// A lease and return race the peer's close and the loop's events, from an
/// armed and from an unarmed idle connection.
///
/// Catches: a return that clears `LEASED` with a load and a store (the
/// loop dooms the connection in between, the return keeps it).
#[test]
fn watch_close_while_leased_or_idle_is_never_lost() {
    for armed in [true, false] {
        loom::model(move || {
            let mark = Arc::new(idle(armed));
            let socket = Arc::new(Socket::default());
            let holder = {
                let mark = mark.clone();
                thread::spawn(move || lease_and_return(&mark, &AtomicBool::new(false)))
            };
            socket.closed.store(true, Ordering::Release);
            loop_sees_close(&mark, || socket.quiet());
            closed_end(&mark, holder.join().unwrap());
        });
    }
}

/// Two lease-and-return cycles on two threads against the close: the
/// holders exclude each other through a flag, as the pool's core would
/// make them.
///
/// Catches: a close seen during one holder's lease that the other holder's
/// lease-and-return wipes out before the connection is refused.
#[test]
fn watch_two_holders_and_a_close() {
    loom::model(|| {
        let mark = Arc::new(idle(true));
        let socket = Arc::new(Socket::default());
        let taken = Arc::new(AtomicBool::new(false));
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let (mark, taken) = (mark.clone(), taken.clone());
                thread::spawn(move || {
                    if taken.swap(true, Ordering::AcqRel) {
                        return true;
                    }
                    let kept = lease_and_return(&mark, &AtomicBool::new(false));
                    taken.store(false, Ordering::Release);
                    kept
                })
            })
            .collect();
        socket.closed.store(true, Ordering::Release);
        loop_sees_close(&mark, || socket.quiet());
        closed_end(&mark, holders.into_iter().all(|h| h.join().unwrap()));
    });
}

/// The loop arms an idle connection while a holder may lease it and the
/// peer writes stray bytes: an armed connection left idle with bytes is
/// always marked dead.
///
/// Catches: a return that clears `LEASED` with a load and a store (it
/// brings back an `ARMED` the loop cleared while narrowing, so the loop
/// vouches for a connection whose bytes it no longer hears of).
#[test]
fn watch_arming_races_a_lease_and_stray_bytes() {
    loom::model(|| {
        let mark = Arc::new(idle(false));
        let socket = Arc::new(Socket::default());
        let event_loop = {
            let (mark, socket) = (mark.clone(), socket.clone());
            thread::spawn(move || {
                // Registered for bytes from here on, unless narrowed again.
                let mut bytes_watched = false;
                if let Some(leases) = mark.idle_leases() {
                    bytes_watched = mark.arm(leases, || socket.quiet()) == Arming::Armed;
                }
                while !socket.bytes.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                if bytes_watched && mark.readiness(|| socket.quiet()) == WatchEvent::Leased {
                    // Narrowed to closes: the bytes go unheard from here.
                }
            })
        };
        let holder = {
            let mark = mark.clone();
            thread::spawn(move || lease_and_return(&mark, &AtomicBool::new(false)))
        };
        socket.bytes.store(true, Ordering::Release);
        event_loop.join().unwrap();
        assert!(holder.join().unwrap(), "no close: the return keeps it");
        // Marking dead clears every other bit: an armed mark is alive.
        assert!(!mark.is_armed(), "armed, idle, with stray bytes, unmarked");
    });
}

/// The close races a holder whose connection's check answers quiet while
/// the holder has it (as a TLS check does when it finds the session
/// locked, which `Watched::with_check` allows), from an armed and from an
/// unarmed idle connection.
///
/// Catches: a loop that takes a quiet probe at its word without looking
/// at the mark again (the lease that overtook the probe hides the close:
/// an armed connection keeps it for good).
#[test]
fn watch_close_behind_a_check_that_defers_to_the_holder() {
    for armed in [true, false] {
        loom::model(move || {
            let mark = Arc::new(idle(armed));
            let socket = Arc::new(Socket::default());
            let holding = Arc::new(AtomicBool::new(false));
            let holder = {
                let (mark, holding) = (mark.clone(), holding.clone());
                thread::spawn(move || lease_and_return(&mark, &holding))
            };
            socket.closed.store(true, Ordering::Release);
            loop_sees_close(&mark, || holding.load(Ordering::Acquire) || socket.quiet());
            closed_end(&mark, holder.join().unwrap());
        });
    }
}

/// A spurious event (the socket is quiet) never marks a connection dead or
/// dooms it unarmed, whoever holds it.
///
/// Catches: a loop that marks dead without probing, or marks a leased
/// connection dead (its holder would then have it evicted under it).
#[test]
fn watch_spurious_event_keeps_the_connection() {
    loom::model(|| {
        let mark = Arc::new(idle(true));
        let holder = {
            let mark = mark.clone();
            thread::spawn(move || {
                assert!(mark.lease());
                mark.release()
            })
        };
        let seen = mark.readiness(|| true);
        let kept = holder.join().unwrap();
        assert_ne!(seen, WatchEvent::Dead);
        assert_ne!(seen, WatchEvent::Doomed, "armed: traffic first");
        assert!(kept);
        assert!(!mark.is_dead());
        assert!(mark.lease());
    });
}
