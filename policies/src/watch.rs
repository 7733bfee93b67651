//! [`IdleMark`]: the state word an event loop and a connection's
//! leaseholders share, so that a connection the peer closed while it was
//! idle is evicted, and never leased, without a lock and without losing an
//! edge-triggered readiness event that arrived while it was leased.
//!
//! The word has three bits. `LEASED` is set by the lease and cleared by the
//! return. `EVENT` is set by the event loop when readiness arrives while the
//! connection is leased (it does not probe then: the holder is using the
//! socket); the return that clears `LEASED` sees it and probes the socket
//! itself. `DEAD` is set by the event loop, only from a word without
//! `LEASED`, after a probe found the socket unfit; a lease never takes a
//! word with `DEAD`. Every change is a compare-and-swap or a `fetch_and` on
//! the one word, so "the loop marks it dead" and "a lease takes it"
//! exclude each other, and readiness is never ignored by both sides.
//!
//! The probe (a non-blocking peek at the socket, in `leasehold`) is passed
//! in: this crate does no I/O. The protocol is model-checked in
//! `loom-tests/tests/watch.rs`.

use crate::sync::{AtomicU8, Ordering};
use std::fmt;

const LEASED: u8 = 1;
const EVENT: u8 = 2;
const DEAD: u8 = 4;

/// The shared state of a watched connection; see the module docs.
pub struct IdleMark {
    word: AtomicU8,
}

impl IdleMark {
    /// A mark for a connection that starts out leased (a new connection is
    /// handed to the request that opened it).
    pub fn leased() -> Self {
        Self {
            word: AtomicU8::new(LEASED),
        }
    }

    /// A lease takes the connection: `false` if the event loop found it
    /// dead (the caller closes it instead).
    #[inline]
    pub fn lease(&self) -> bool {
        let mut now = self.word.load(Ordering::Acquire);
        loop {
            if now & DEAD != 0 {
                return false;
            }
            match self
                .word
                .compare_exchange_weak(now, LEASED, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    /// The lease gives the connection back. If readiness arrived while it
    /// was leased, `fit` (a probe: is the socket quiet?) decides; otherwise
    /// it is not called. `false`: close it instead of keeping it.
    #[inline]
    pub fn release(&self, fit: impl FnOnce() -> bool) -> bool {
        let before = self.word.fetch_and(!(LEASED | EVENT), Ordering::AcqRel);
        before & EVENT == 0 || fit()
    }

    /// The event loop saw readiness. While leased, it notes the event for
    /// the return; while idle, it asks `quiet` (a probe) and marks the
    /// connection dead if not. Returns `true` when it marked it dead (the
    /// loop then evicts it).
    pub fn readiness(&self, quiet: impl Fn() -> bool) -> bool {
        let mut now = self.word.load(Ordering::Acquire);
        loop {
            if now & DEAD != 0 {
                return false;
            }
            let next = if now & LEASED != 0 {
                now | EVENT
            } else if quiet() {
                return false;
            } else {
                DEAD
            };
            match self
                .word
                .compare_exchange(now, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == DEAD,
                // Leased or returned meanwhile: look again.
                Err(actual) => now = actual,
            }
        }
    }

    /// Whether the event loop marked it dead.
    pub fn is_dead(&self) -> bool {
        self.word.load(Ordering::Acquire) & DEAD != 0
    }
}

impl fmt::Debug for IdleMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("IdleMark")
            .field("leased", &(word & LEASED != 0))
            .field("event", &(word & EVENT != 0))
            .field("dead", &(word & DEAD != 0))
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;

    #[test]
    fn an_event_while_leased_is_probed_on_return() {
        let mark = IdleMark::leased();
        assert!(!mark.readiness(|| panic!("no probe while leased")));
        assert!(!mark.release(|| false), "the return probes and refuses");
        let mark = IdleMark::leased();
        assert!(mark.release(|| panic!("no event: no probe")));
    }

    #[test]
    fn a_dead_idle_connection_is_never_leased() {
        let mark = IdleMark::leased();
        assert!(mark.release(|| true));
        assert!(!mark.readiness(|| true), "quiet: spurious event");
        assert!(mark.readiness(|| false));
        assert!(mark.is_dead());
        assert!(!mark.lease());
        assert!(!mark.readiness(|| false), "marked once");
    }
}
