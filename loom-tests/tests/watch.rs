//! Loom models of [`IdleMark`], the word an event loop and a connection's
//! leaseholders share so that a connection the peer closed is evicted, and
//! never leased, without a lock.
//!
//! The socket is a loom atomic flag, `closed`, that the peer sets; a probe
//! reads it. The event loop learns of the close by an edge (it calls
//! `readiness` once, after the close), as with edge-triggered epoll: if
//! that one call ignores the event, nothing will repeat it. Each model
//! checks, over every interleaving:
//!
//! * a holder never has a connection the loop marked dead;
//! * at the end, a closed connection is never left idle and unmarked: it
//!   is marked dead (the loop evicts it), or the return refused it.
//!
//! Bugs they catch: a loop that notes the event with a plain store instead
//! of a compare-and-swap (the return clears the bits in between, the event
//! is lost and the dead connection stays idle); a return that clears
//! `LEASED` without looking at `EVENT`; a loop that marks dead while leased.
//!
//! Built only with `--cfg leasehold_loom`; `loom-tests/run.sh watch` runs
//! them alone.

#![cfg(leasehold_loom)]

use leasehold_policies::IdleMark;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

/// The end of one execution: whether the connection was kept (idle, not
/// refused by its return) and whether it is marked dead.
fn check_end(mark: &IdleMark, kept_idle: bool, closed: bool) {
    if closed && kept_idle {
        assert!(mark.is_dead(), "a closed connection is idle and unmarked");
    }
}

/// A lease and return race the peer's close and the loop's one event.
///
/// Catches: a loop that notes the event with a plain store (a return
/// clears it in between and the dead connection stays idle), and a return
/// that clears `LEASED` without looking at `EVENT`.
#[test]
fn watch_close_while_leased_or_idle_is_never_lost() {
    loom::model(|| {
        let mark = Arc::new(IdleMark::leased());
        let closed = Arc::new(AtomicBool::new(false));
        // Start idle.
        assert!(mark.release(|| unreachable!()));
        let holder = {
            let (mark, closed) = (mark.clone(), closed.clone());
            thread::spawn(move || {
                if !mark.lease() {
                    return true; // not taken: still idle (and dead)
                }
                assert!(!mark.is_dead(), "leased a dead connection");
                mark.release(|| !closed.load(Ordering::Acquire))
            })
        };
        closed.store(true, Ordering::Release);
        mark.readiness(|| !closed.load(Ordering::Acquire));
        let kept = holder.join().unwrap();
        check_end(&mark, kept, true);
    });
}

/// Two lease-and-return cycles on two threads against the close: the
/// holders exclude each other through the mark, as the pool's core would
/// make them.
///
/// Catches: an event noted during one holder's lease that the other
/// holder's lease-and-return wipes out before anyone probes.
#[test]
fn watch_two_holders_and_a_close() {
    loom::model(|| {
        let mark = Arc::new(IdleMark::leased());
        let closed = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(AtomicBool::new(false));
        assert!(mark.release(|| unreachable!()));
        let holders: Vec<_> = (0..2)
            .map(|_| {
                let (mark, closed, taken) = (mark.clone(), closed.clone(), taken.clone());
                thread::spawn(move || {
                    // The pool's core hands a connection to one holder at a
                    // time; model that with a flag.
                    if taken.swap(true, Ordering::AcqRel) {
                        return true;
                    }
                    let kept = if mark.lease() {
                        assert!(!mark.is_dead(), "leased a dead connection");
                        mark.release(|| !closed.load(Ordering::Acquire))
                    } else {
                        true
                    };
                    taken.store(false, Ordering::Release);
                    kept
                })
            })
            .collect();
        closed.store(true, Ordering::Release);
        mark.readiness(|| !closed.load(Ordering::Acquire));
        let kept = holders.into_iter().all(|h| h.join().unwrap());
        check_end(&mark, kept, true);
    });
}

/// A spurious event (the socket is quiet) never marks a connection dead,
/// whoever holds it.
///
/// Catches: a loop that marks dead without probing, or marks a leased
/// connection dead (its holder would then have it evicted under it).
#[test]
fn watch_spurious_event_keeps_the_connection() {
    loom::model(|| {
        let mark = Arc::new(IdleMark::leased());
        let holder = {
            let mark = mark.clone();
            thread::spawn(move || {
                assert!(mark.release(|| true));
                assert!(mark.lease());
                assert!(mark.release(|| true));
            })
        };
        assert!(!mark.readiness(|| true));
        holder.join().unwrap();
        assert!(!mark.is_dead());
        assert!(mark.lease());
    });
}
