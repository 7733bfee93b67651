//! Idle watching: the event loop's view of a pooled connection's socket.
//!
//! A connection whose connector hands out a duplicate of its socket
//! ([`Connector::watch`](crate::Connector::watch)) stays registered with the
//! event loop for readability from its first day to its last. What an event
//! means depends on who has the connection, which the [`Watch`] tracks in
//! one atomic word:
//!
//! * **leased**: the holder is using the socket (a response arriving is an
//!   event too), so the loop only notes that something happened (`EVENT`);
//!   the lease probes the socket when it gives the connection back, so a
//!   peer close seen while leased is not lost when the edge is;
//! * **idle**: the loop probes the socket without blocking (`MSG_PEEK`):
//!   end of stream, an error or bytes nobody asked for mark it `DEAD`, and
//!   the loop evicts it from the pool at once. A lease never takes a `DEAD`
//!   connection: it checks the mark as it takes one, and closes it instead.
//!
//! The two sides change the word with compare-and-swap only, so "the loop
//! saw it idle and marked it dead" and "a lease took it" exclude each other.

use std::fmt;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

const LEASED: u8 = 1;
const EVENT: u8 = 2;
const DEAD: u8 = 4;

use crate::tcp::{probe, Liveness};

/// One watched connection.
pub(crate) struct Watch {
    /// The event-loop token it is registered under.
    pub(crate) token: usize,
    state: AtomicU8,
    /// The duplicate socket; taken (and closed) before the connection is.
    fd: Mutex<Option<OwnedFd>>,
}

impl Watch {
    /// A watch for a connection that starts out leased.
    pub(crate) fn new(token: usize, fd: OwnedFd) -> Self {
        Self {
            token,
            state: AtomicU8::new(LEASED),
            fd: Mutex::new(Some(fd)),
        }
    }

    pub(crate) fn with_fd<R>(&self, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> R) -> Option<R> {
        let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner());
        fd.as_ref().map(|fd| f(fd.as_fd()))
    }

    /// A lease takes the connection. `false` if the loop found it dead: the
    /// caller closes it instead.
    #[inline]
    pub(crate) fn lease(&self) -> bool {
        let mut now = self.state.load(Ordering::Acquire);
        loop {
            if now & DEAD != 0 {
                return false;
            }
            match self.state.compare_exchange_weak(
                now,
                LEASED,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => now = actual,
            }
        }
    }

    /// The lease gives the connection back. `false` if the socket is not fit
    /// to be reused: the caller closes it instead.
    #[inline]
    pub(crate) fn release(&self) -> bool {
        let before = self.state.fetch_and(!(LEASED | EVENT), Ordering::AcqRel);
        if before & EVENT == 0 {
            return true;
        }
        // Something happened on the socket while it was leased: the edge is
        // gone, so look now.
        self.with_fd(probe).is_some_and(Liveness::is_alive)
    }

    /// The loop saw readiness. Returns `true` if the connection is idle and
    /// dead now (the loop then evicts it).
    pub(crate) fn readiness(&self) -> bool {
        let mut now = self.state.load(Ordering::Acquire);
        loop {
            if now & DEAD != 0 {
                return false;
            }
            if now & LEASED != 0 {
                match self.state.compare_exchange_weak(
                    now,
                    now | EVENT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return false,
                    Err(actual) => now = actual,
                }
                continue;
            }
            if self.with_fd(probe).is_none_or(Liveness::is_alive) {
                return false;
            }
            match self.state.compare_exchange(now, DEAD, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                // Leased meanwhile (or marked): start over.
                Err(actual) => now = actual,
            }
        }
    }

    /// Whether the loop marked it dead.
    pub(crate) fn is_dead(&self) -> bool {
        self.state.load(Ordering::Acquire) & DEAD != 0
    }

    /// Closes the duplicate socket: the connection is about to be closed.
    pub(crate) fn disarm(&self) {
        let fd = self.fd.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(fd);
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("token", &self.token)
            .field("state", &self.state.load(Ordering::Relaxed))
            .finish()
    }
}
