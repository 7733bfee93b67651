//! The gate of a paused pool: while it is closed, new requests wait here
//! (each within its acquire timeout) instead of asking the core, and
//! opening it wakes them all.
//!
//! The hit path reads one flag. A request that finds it raised takes a
//! ticket and leaves its waker under the gate's lock; the gate is opened
//! under the same lock before the wakers are taken out, so a request either
//! sees it open or is woken. Leased connections are not the gate's
//! business: they come back as usual and go idle (or to requests that had
//! queued in the core before the pause).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Waker;

/// Where requests wait while the pool is paused.
#[derive(Debug, Default)]
pub(crate) struct Gate {
    closed: AtomicBool,
    waiting: Mutex<Waiting>,
}

#[derive(Debug, Default)]
struct Waiting {
    /// The last ticket handed out.
    last: u64,
    wakers: HashMap<u64, Waker>,
}

impl Gate {
    /// Whether new requests must wait (one load, on the hit path).
    #[inline(always)]
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Makes new requests wait; whether it was open.
    pub(crate) fn close(&self) -> bool {
        let _waiting = self.lock();
        !self.closed.swap(true, Ordering::AcqRel)
    }

    /// Lets every request through, waking those that wait; whether it was
    /// closed.
    pub(crate) fn open(&self) -> bool {
        let (was_closed, wakers) = {
            let mut waiting = self.lock();
            let was_closed = self.closed.swap(false, Ordering::AcqRel);
            (was_closed, std::mem::take(&mut waiting.wakers))
        };
        for waker in wakers.into_values() {
            waker.wake();
        }
        was_closed
    }

    /// A request at the gate, with its ticket if it waited here before:
    /// `None` if the gate is open (its ticket is given up), else the ticket
    /// under which `waker` is kept until the gate opens.
    pub(crate) fn wait(&self, ticket: Option<u64>, waker: &Waker) -> Option<u64> {
        let mut waiting = self.lock();
        if !self.closed.load(Ordering::Acquire) {
            if let Some(ticket) = ticket {
                waiting.wakers.remove(&ticket);
            }
            return None;
        }
        let ticket = ticket.unwrap_or_else(|| {
            waiting.last += 1;
            waiting.last
        });
        match waiting.wakers.get_mut(&ticket) {
            Some(kept) if kept.will_wake(waker) => {}
            Some(kept) => kept.clone_from(waker),
            None => {
                waiting.wakers.insert(ticket, waker.clone());
            }
        }
        Some(ticket)
    }

    /// A request leaves the gate without going through (dropped, or out of
    /// time).
    pub(crate) fn leave(&self, ticket: u64) {
        self.lock().wakers.remove(&ticket);
    }

    /// How many requests wait at the gate.
    pub(crate) fn waiting(&self) -> usize {
        self.lock().wakers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // Nothing under the lock can panic halfway through a change.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_request_waits_while_closed_and_is_woken_once_by_the_opening() {
        let gate = Gate::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert_eq!(gate.wait(None, &waker), None, "open: straight through");
        assert!(gate.close());
        assert!(!gate.close(), "already closed");
        let ticket = gate.wait(None, &waker).expect("closed: a ticket");
        assert_eq!(gate.wait(Some(ticket), &waker), Some(ticket), "kept once");
        assert_eq!(gate.waiting(), 1);
        assert!(gate.open());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(gate.waiting(), 0);
        assert_eq!(gate.wait(Some(ticket), &waker), None);
    }

    #[test]
    fn a_request_that_leaves_is_not_woken() {
        let gate = Gate::default();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        gate.close();
        let ticket = gate.wait(None, &Waker::from(count.clone())).unwrap();
        gate.leave(ticket);
        gate.open();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }
}
