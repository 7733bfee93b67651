//! [`LeaseMark`]: the state word an event loop and a connection's
//! leaseholders share, so that the loop looks at a connection's traffic
//! only while it is idle, and a connection the peer closed is never lent
//! out again once the loop has seen the close, without a lock.
//!
//! The loop is taken to hear of every close or error on the socket (end
//! of stream, a reset), and of bytes arriving only while the connection is
//! *armed*. The word holds four bits and a lease count:
//!
//! * `LEASED`, set by the lease and cleared by the return; each lease adds
//!   one to the count;
//! * `ARMED`, set and cleared only by the loop, which keeps its
//!   registration in step: readiness while the connection is leased and
//!   armed is the holder's traffic, so the loop unarms it and narrows its
//!   registration to closes (the holder's responses wake it no more); a
//!   connection the loop finds idle at two of its looks a period apart,
//!   with the same lease count, is registered for bytes again, probed, and
//!   armed, unless it was leased in between;
//! * `DOOMED`, set by the loop when a close or an error arrives while the
//!   connection is leased (and unarmed: an armed one is unarmed first, and
//!   the narrower registration reports the close again); the return sees
//!   it and closes the connection;
//! * `DEAD`, set by the loop only on an idle word, after a probe found the
//!   socket unfit; a lease never takes a dead connection.
//!
//! Every change is a compare-and-swap or a `fetch_and` on the one word, so
//! a closed connection ends marked dead (the loop evicts it) or refused by
//! its return, whatever the interleaving; bytes that arrive while it is
//! idle and armed mark it dead.
//!
//! The probe (a non-blocking peek at the socket, in `leasehold`) is passed
//! in: this crate does no I/O. The protocol is model-checked in
//! `loom-tests/tests/watch.rs`.

use crate::sync::{AtomicU32, Ordering};
use std::fmt;

const LEASED: u32 = 1;
const ARMED: u32 = 2;
const DEAD: u32 = 4;
const DOOMED: u32 = 8;
/// One lease in the count, which takes the bits above the flags.
const ONE_LEASE: u32 = 16;

/// The shared state of a watched connection; see the module docs.
pub struct LeaseMark {
    word: AtomicU32,
}

/// What the event loop makes of readiness on a socket it is registered
/// for ([`LeaseMark::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEvent {
    /// Nothing to do: the socket is quiet, or the connection is already
    /// marked.
    Quiet,
    /// The idle connection is marked dead: evict it.
    Dead,
    /// The connection is leased and now unarmed: narrow the registration
    /// to closes.
    Leased,
    /// A close or an error while leased: the return closes it.
    Doomed,
}

/// What came of arming an idle connection ([`LeaseMark::arm`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arming {
    /// Armed: keep watching it.
    Armed,
    /// The probe found it unfit and it is marked dead: evict it.
    Dead,
    /// Leased (or marked) meanwhile: stop watching it and try later.
    Busy,
}

impl LeaseMark {
    /// A mark for a connection that starts out leased (a new connection is
    /// handed to the request that opened it) and unarmed.
    pub fn leased() -> Self {
        Self {
            word: AtomicU32::new(LEASED | ONE_LEASE),
        }
    }

    /// A lease takes the connection: `false` if the loop found it dead
    /// (the caller closes it instead).
    #[inline]
    pub fn lease(&self) -> bool {
        let mut now = self.word.load(Ordering::Acquire);
        loop {
            if now & DEAD != 0 {
                return false;
            }
            let next = now.wrapping_add(ONE_LEASE) | LEASED;
            match self
                .word
                .compare_exchange_weak(now, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    /// The lease gives the connection back: `false` if the loop saw the
    /// peer close it, or an error on it, while it was leased (the caller
    /// closes it instead). It looks at nothing else.
    #[inline]
    pub fn release(&self) -> bool {
        self.word.fetch_and(!LEASED, Ordering::AcqRel) & DOOMED == 0
    }

    /// The event loop saw readiness on the socket: bytes or a close if the
    /// connection is armed, a close or an error if not. An idle connection
    /// is probed with `quiet` and marked dead if not; a leased one is
    /// unarmed, or doomed if it was unarmed already (see [`WatchEvent`]).
    pub fn readiness(&self, quiet: impl Fn() -> bool) -> WatchEvent {
        let mut now = self.word.load(Ordering::Acquire);
        loop {
            if now & (DEAD | DOOMED) != 0 {
                return WatchEvent::Quiet;
            }
            let (next, seen) = if now & LEASED == 0 {
                if quiet() {
                    // Quiet only counts if nobody leased it meanwhile: a
                    // check may answer quiet because a lease holds the
                    // connection, and the event would be lost.
                    (now, WatchEvent::Quiet)
                } else {
                    (DEAD, WatchEvent::Dead)
                }
            } else if now & ARMED != 0 {
                (now & !ARMED, WatchEvent::Leased)
            } else {
                (now | DOOMED, WatchEvent::Doomed)
            };
            match self
                .word
                .compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return seen,
                // Leased or returned meanwhile: look again.
                Err(actual) => now = actual,
            }
        }
    }

    /// How many leases the connection has had (wrapping) if it is idle,
    /// unarmed and alive; `None` otherwise. The loop arms a connection it
    /// found so at two looks a period apart with the same count: idle for
    /// at least that period.
    pub fn idle_leases(&self) -> Option<u32> {
        let now = self.word.load(Ordering::Acquire);
        (now & (LEASED | ARMED | DEAD | DOOMED) == 0).then_some(now / ONE_LEASE)
    }

    /// The loop has registered for bytes on the socket of a connection it
    /// found idle after `leases` leases: it probes it with `quiet` and arms
    /// it, or marks it dead, unless it was leased meanwhile.
    pub fn arm(&self, leases: u32, quiet: impl FnOnce() -> bool) -> Arming {
        let now = self.word.load(Ordering::Acquire);
        if now & (LEASED | ARMED | DEAD | DOOMED) != 0 || now / ONE_LEASE != leases {
            return Arming::Busy;
        }
        let (next, arming) = if quiet() {
            (now | ARMED, Arming::Armed)
        } else {
            (DEAD, Arming::Dead)
        };
        match self
            .word
            .compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => arming,
            Err(_) => Arming::Busy,
        }
    }

    /// Whether the event loop marked it dead.
    pub fn is_dead(&self) -> bool {
        self.word.load(Ordering::Acquire) & DEAD != 0
    }

    /// Whether the event loop is watching it.
    pub fn is_armed(&self) -> bool {
        self.word.load(Ordering::Acquire) & ARMED != 0
    }
}

impl fmt::Debug for LeaseMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("LeaseMark")
            .field("leased", &(word & LEASED != 0))
            .field("armed", &(word & ARMED != 0))
            .field("dead", &(word & DEAD != 0))
            .field("doomed", &(word & DOOMED != 0))
            .field("leases", &(word / ONE_LEASE))
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;

    /// An idle mark armed by the loop after its first lease.
    fn armed() -> LeaseMark {
        let mark = LeaseMark::leased();
        assert!(mark.release());
        assert_eq!(mark.idle_leases(), Some(1));
        assert_eq!(mark.arm(1, || true), Arming::Armed);
        assert_eq!(mark.idle_leases(), None, "armed");
        mark
    }

    #[test]
    fn traffic_while_leased_unarms_and_a_close_then_dooms() {
        let mark = armed();
        assert!(mark.lease());
        let probe = || panic!("no probe while leased");
        assert_eq!(mark.readiness(probe), WatchEvent::Leased);
        assert!(!mark.is_armed());
        assert_eq!(mark.readiness(probe), WatchEvent::Doomed);
        assert_eq!(mark.readiness(probe), WatchEvent::Quiet, "doomed once");
        assert!(!mark.release(), "the return refuses it");
    }

    #[test]
    fn a_probe_that_a_lease_overtakes_looks_again() {
        let mark = armed();
        // The check answers quiet because a lease took the connection (a
        // TLS check finds its session locked): the event is the holder's.
        let seen = mark.readiness(|| mark.lease());
        assert_eq!(seen, WatchEvent::Leased, "not lost as quiet");
        assert!(!mark.is_armed());
    }

    #[test]
    fn a_close_while_unarmed_and_idle_is_probed() {
        let mark = LeaseMark::leased();
        assert!(mark.release());
        assert_eq!(mark.readiness(|| true), WatchEvent::Quiet, "spurious");
        assert_eq!(mark.readiness(|| false), WatchEvent::Dead);
        assert!(!mark.lease());
    }

    #[test]
    fn arming_needs_a_quiet_idle_connection_with_the_same_leases() {
        let mark = LeaseMark::leased();
        assert_eq!(mark.idle_leases(), None, "leased");
        assert_eq!(mark.arm(1, || unreachable!()), Arming::Busy);
        assert!(mark.release());
        assert_eq!(mark.idle_leases(), Some(1));
        assert_eq!(mark.arm(0, || unreachable!()), Arming::Busy, "leased since");
        assert_eq!(mark.arm(1, || false), Arming::Dead);
        assert!(mark.is_dead());
        assert!(!mark.lease());
    }

    #[test]
    fn a_dead_idle_connection_is_never_leased() {
        let mark = armed();
        assert_eq!(mark.readiness(|| true), WatchEvent::Quiet, "spurious");
        assert!(mark.is_armed(), "still watched");
        assert_eq!(mark.readiness(|| false), WatchEvent::Dead);
        assert!(mark.is_dead());
        assert!(!mark.lease());
        assert_eq!(mark.readiness(|| false), WatchEvent::Quiet, "marked once");
    }

    #[test]
    fn the_lease_count_wraps() {
        let mark = LeaseMark {
            word: AtomicU32::new(!(LEASED | ARMED | DEAD | DOOMED)),
        };
        assert!(mark.lease());
        assert!(mark.release());
        assert_eq!(mark.idle_leases(), Some(0));
    }
}
