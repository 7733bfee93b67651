//! A command queue from many threads to a consumer (a pool's event loop),
//! with a close that loses nothing.
//!
//! [`Mailbox::push`] never blocks: it queues the item, or — once the mailbox
//! is closed — hands it back, and the caller deals with it itself (a pool
//! gives a queued connect's capacity back). The consumer takes items with
//! [`Mailbox::pop`] while it runs, and when it stops calls
//! [`Mailbox::close_and_drain`], which refuses every later push and hands it
//! every item still queued. An item given to `push` therefore ends in
//! exactly one place — popped by the consumer, drained at the close, or
//! handed back to its pusher — and is never stranded in the queue after the
//! consumer is gone.
//!
//! The mailbox wakes nobody: a consumer that sleeps (in `mio::Poll::poll`,
//! say) is woken by the pusher after a successful push, with whatever the
//! consumer sleeps on.
//!
//! How it works: [the design notes](crate::implementation#the-mailbox).

use crate::sync::{AtomicUsize, Backoff, Fifo, Ordering};
use std::fmt;

/// `state`: the mailbox is closed.
const CLOSED: usize = 1;
/// `state`: one push in flight (the count lives above the flag).
const PUSHER: usize = 2;

/// An unbounded queue of commands from any number of threads to a consumer,
/// with a close that hands the consumer everything queued and every later
/// pusher its item back.
///
/// It spawns nothing and wakes nobody: the consumer is a thread the caller
/// owns, woken by the caller after a successful [`push`](Self::push).
///
/// ```
/// use leasehold_policies::unstable::Mailbox;
///
/// let mailbox = Mailbox::new();
/// mailbox.push("connect a").unwrap();
/// mailbox.push("connect b").unwrap();
/// // The consumer's turn.
/// assert_eq!(mailbox.pop(), Some("connect a"));
/// // The consumer stops: what it did not take is drained, not lost.
/// let mut abandoned = Vec::new();
/// mailbox.close_and_drain(|command| abandoned.push(command));
/// assert_eq!(abandoned, ["connect b"]);
/// // Closed: the item comes back, and the pusher deals with it.
/// assert_eq!(mailbox.push("connect c"), Err("connect c"));
/// ```
pub struct Mailbox<T> {
    items: Fifo<T>,
    /// `CLOSED | pushes in flight × PUSHER`; see the module docs.
    state: AtomicUsize,
}

impl<T> Mailbox<T> {
    /// An open, empty mailbox.
    pub fn new() -> Self {
        Self {
            items: Fifo::new(),
            state: AtomicUsize::new(0),
        }
    }

    /// Queues `item` for the consumer. Never blocks, and wakes nobody.
    ///
    /// # Errors
    /// Gives `item` back when the mailbox is closed: the consumer will not
    /// take it, and the caller deals with it. A push racing
    /// [`close_and_drain`](Self::close_and_drain) is either queued (and
    /// drained) or given back — never both, never neither.
    pub fn push(&self, item: T) -> Result<(), T> {
        // Announce first, then look: see the module docs.
        let entered = self.state.fetch_add(PUSHER, Ordering::AcqRel);
        let pushed = if entered & CLOSED != 0 {
            Err(item)
        } else {
            self.items.push(item);
            Ok(())
        };
        // Leave only once the item is queued: a closer waiting for this
        // push acquires the item with this value.
        self.state.fetch_sub(PUSHER, Ordering::AcqRel);
        pushed
    }

    /// Takes the oldest queued item, if any (the consumer's side; any
    /// thread may call it).
    pub fn pop(&self) -> Option<T> {
        self.items.pop()
    }

    /// Closes the mailbox: every later push gives its item back. Items
    /// already queued stay queued; a push in flight may still queue one.
    /// Calling it again does nothing.
    ///
    /// To be sure to see every item accepted before the close, use
    /// [`close_and_drain`](Self::close_and_drain).
    pub fn close(&self) {
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// Closes the mailbox, waits until no push is in flight, and hands
    /// `drain` every item still queued, oldest first. Afterwards, every item
    /// any push accepted has been popped or drained; every later push gives
    /// its item back.
    ///
    /// The wait is a spin: a push is in flight for a few instructions only.
    /// `drain` may push to this mailbox (the item comes back). If `drain`
    /// panics, the items not yet drained stay queued: a later
    /// `close_and_drain` or [`pop`](Self::pop) takes them, or they are
    /// dropped with the mailbox.
    pub fn close_and_drain(&self, mut drain: impl FnMut(T)) {
        let mut state = self.state.fetch_or(CLOSED, Ordering::AcqRel);
        // Every push that did not see `CLOSED` is counted in `state` until
        // it has queued its item: see the module docs. Its thread may have
        // been preempted meanwhile.
        let backoff = Backoff::new();
        while state >= PUSHER {
            backoff.snooze();
            state = self.state.load(Ordering::Acquire);
        }
        while let Some(item) = self.items.pop() {
            drain(item);
        }
    }

    /// Whether the mailbox is closed.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    /// How many items are queued (a snapshot, for reports).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is queued (a snapshot, for reports).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Mailbox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load(Ordering::Relaxed);
        f.debug_struct("Mailbox")
            .field("queued", &self.items.len())
            .field("pushing", &(state / PUSHER))
            .field("closed", &(state & CLOSED != 0))
            .finish()
    }
}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    #[test]
    fn pops_in_push_order() {
        let mailbox = Mailbox::new();
        assert!(mailbox.is_empty());
        for item in 0..3 {
            mailbox.push(item).unwrap();
        }
        assert_eq!(mailbox.len(), 3);
        assert_eq!(
            std::iter::from_fn(|| mailbox.pop()).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        assert_eq!(mailbox.pop(), None);
    }

    #[test]
    fn a_push_after_close_gives_the_item_back() {
        let mailbox = Mailbox::new();
        mailbox.push(1).unwrap();
        mailbox.close();
        assert!(mailbox.is_closed());
        assert_eq!(mailbox.push(2), Err(2));
        // What was queued before the close is still the consumer's.
        assert_eq!(mailbox.pop(), Some(1));
        assert_eq!(mailbox.pop(), None);
    }

    #[test]
    fn close_and_drain_takes_everything_queued() {
        let mailbox = Mailbox::new();
        for item in 0..4 {
            mailbox.push(item).unwrap();
        }
        assert_eq!(mailbox.pop(), Some(0));
        let mut drained = Vec::new();
        mailbox.close_and_drain(|item| drained.push(item));
        assert_eq!(drained, [1, 2, 3]);
        assert_eq!(mailbox.push(4), Err(4));
        assert!(mailbox.is_empty());
        let debug = format!("{mailbox:?}");
        assert_eq!(debug, "Mailbox { queued: 0, pushing: 0, closed: true }");
        // Again: nothing more to drain.
        mailbox.close_and_drain(|item| panic!("drained {item} twice"));
    }

    #[test]
    fn a_push_from_the_drain_comes_back() {
        let mailbox = Mailbox::new();
        mailbox.push(1).unwrap();
        let mut back = Vec::new();
        mailbox.close_and_drain(|item| back.push(mailbox.push(item + 10)));
        assert_eq!(back, [Err(11)]);
    }

    #[test]
    fn concurrent_pushes_pops_and_close_keep_each_item_once() {
        let per_thread = if cfg!(miri) { 20 } else { 2_000 };
        let mailbox = Arc::new(Mailbox::new());
        let handed_back = Arc::new(Mutex::new(Vec::new()));
        let start = Arc::new(Barrier::new(4));
        let pushers: Vec<_> = (0..3u32)
            .map(|t| {
                let (mailbox, handed_back, start) =
                    (mailbox.clone(), handed_back.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    for i in 0..per_thread {
                        if let Err(item) = mailbox.push(t * per_thread + i) {
                            handed_back.lock().unwrap().push(item);
                        }
                    }
                })
            })
            .collect();
        // The consumer pops a while, then closes while the pushers may still
        // be pushing.
        start.wait();
        let mut taken = Vec::new();
        for _ in 0..per_thread {
            taken.extend(mailbox.pop());
        }
        mailbox.close_and_drain(|item| taken.push(item));
        for pusher in pushers {
            pusher.join().unwrap();
        }
        // Each pusher's accepted items reach the consumer in its order.
        for t in 0..3 {
            let mine: Vec<_> = taken
                .iter()
                .filter(|&&item| item / per_thread == t)
                .collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "out of order");
        }
        taken.extend(handed_back.lock().unwrap().iter());
        taken.sort_unstable();
        assert_eq!(taken, (0..3 * per_thread).collect::<Vec<_>>());
        assert!(mailbox.is_empty());
    }
}
