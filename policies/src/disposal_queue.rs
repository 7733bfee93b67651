//! The hand-over protocol of a pool's disposal thread: a bounded queue from
//! the threads that give items up to one worker thread that closes them.
//!
//! [`DisposalQueue::push`] never blocks and never closes anything itself:
//! it queues the item, or hands it back (the queue is full, or stopped) so
//! that the caller closes it. The worker is a thread the caller owns, which
//! calls [`DisposalQueue::run`]: it closes what it finds and parks when the
//! queue is empty; [`DisposalQueue::stop`] makes `run` return once everything
//! queued is closed. Other threads may [`take`](DisposalQueue::take) queued
//! items beside the worker (to close several at once, or to abort what is
//! left at a deadline). An item given to `push` is therefore closed exactly
//! once — by the worker, by a thread that took it, or by the caller it was
//! handed back to — and never lost in the queue.
//!
//! How it works: [the design notes](crate::implementation#the-disposal-queue).

use crate::sync::thread::{self, Thread};
use crate::sync::{AtomicUsize, BoundedFifo, OnceLock, Ordering};
use std::fmt;

/// `state`: [`DisposalQueue::stop`] was called.
const STOPPED: usize = 1;
/// `state`: a worker registered its thread handle.
const WORKER: usize = 2;
/// `state`: one push in flight (the count lives above the flags).
const PUSHER: usize = 4;

/// A bounded queue of items to close, and the protocol between the threads
/// that push them and the one worker thread that closes them.
///
/// The worker is a thread the caller owns: the queue spawns nothing. No
/// `push` blocks or closes anything; when it cannot queue an item it gives it
/// back in a [`PushError`], and the caller closes it.
///
/// ```
/// use leasehold_policies::unstable::DisposalQueue;
/// use std::sync::Arc;
/// use std::thread;
///
/// let queue = Arc::new(DisposalQueue::new(64));
/// let worker = {
///     let queue = queue.clone();
///     thread::spawn(move || {
///         let mut closed = Vec::new();
///         queue.run(|conn: String| closed.push(conn));
///         closed
///     })
/// };
/// if let Err(refused) = queue.push("conn 1".to_string()) {
///     // Full or stopped: close it here.
///     drop(refused.into_inner());
/// }
/// queue.stop();
/// assert_eq!(worker.join().unwrap(), ["conn 1"]);
/// ```
pub struct DisposalQueue<T> {
    items: BoundedFifo<T>,
    /// `STOPPED | WORKER | pushes in flight × PUSHER`; see the module docs.
    state: AtomicUsize,
    /// The worker's thread, set once by [`DisposalQueue::run`] before it
    /// raises `WORKER`.
    worker: OnceLock<Thread>,
}

impl<T> DisposalQueue<T> {
    /// A queue that holds up to `capacity` items (at least 1), with no
    /// worker yet.
    pub fn new(capacity: usize) -> Self {
        Self {
            items: BoundedFifo::new(capacity),
            state: AtomicUsize::new(0),
            worker: OnceLock::new(),
        }
    }

    /// Hands `item` to the worker, and wakes it. Never blocks.
    ///
    /// An item pushed before a worker runs waits for it.
    ///
    /// # Errors
    /// Gives `item` back for the caller to close: [`PushError::Full`] when
    /// the queue is full, [`PushError::Stopped`] after [`stop`](Self::stop)
    /// (or while it runs: then the item is either queued and closed by the
    /// worker, or given back — never both, never neither).
    pub fn push(&self, item: T) -> Result<(), PushError<T>> {
        let entered = self.state.fetch_add(PUSHER, Ordering::AcqRel);
        let pushed = if entered & STOPPED != 0 {
            Err(PushError::Stopped(item))
        } else {
            self.items.push(item).map_err(PushError::Full)
        };
        let left = self.state.fetch_sub(PUSHER, Ordering::AcqRel);
        // The worker must see the item, or may be waiting for this push to
        // leave before it stops: wake it. Without `WORKER` in `left`, the
        // worker registers after this point and drains before it parks.
        if left & WORKER != 0 {
            self.wake_worker();
        }
        pushed
    }

    /// Asks the worker to return from [`run`](Self::run) once it has closed
    /// every item queued; later pushes are given back. Does not wait for
    /// the worker: join its thread for that. Calling it again does nothing.
    pub fn stop(&self) {
        if self.state.fetch_or(STOPPED, Ordering::AcqRel) & WORKER != 0 {
            self.wake_worker();
        }
    }

    /// Makes the calling thread the worker: closes every item queued, with
    /// `close`, parking while the queue is empty, until [`stop`](Self::stop)
    /// was called and every item pushed before it is closed.
    ///
    /// If `close` panics, the panic ends `run`; the items still queued are
    /// dropped with the queue, and pushes keep queueing until it is full.
    ///
    /// # Panics
    /// If `run` was called before (a queue has one worker, once).
    pub fn run(&self, mut close: impl FnMut(T)) {
        assert!(
            self.worker.set(thread::current()).is_ok(),
            "DisposalQueue::run called twice: a queue has one worker"
        );
        self.state.fetch_or(WORKER, Ordering::AcqRel);
        loop {
            // Read before draining: see the module docs.
            let state = self.state.load(Ordering::Acquire);
            let mut closed_any = false;
            while let Some(item) = self.items.pop() {
                close(item);
                closed_any = true;
            }
            if state & STOPPED != 0 && state < PUSHER {
                return;
            }
            // `close` is the caller's code, which may park this thread
            // itself (a lock, a channel) and use up a wake-up meant for this
            // loop: after closing anything, look at `state` again instead.
            if closed_any {
                continue;
            }
            // Every push after the load above unparks this thread after it
            // left; an unpark since the drain makes the park return at once.
            thread::park();
        }
    }

    /// Takes one queued item, on any thread: for threads that close beside
    /// the worker, or to abort what is left when time runs out. The item
    /// is the caller's to close; `None` when the queue is empty.
    ///
    /// Each item is taken once, by the worker or by one `take`: the worker
    /// closes what it finds and returns from [`run`](Self::run) on the same
    /// terms whether or not others take items too.
    pub fn take(&self) -> Option<T> {
        self.items.pop()
    }

    /// How many items are queued (a snapshot).
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is queued (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn wake_worker(&self) {
        if let Some(worker) = self.worker.get() {
            worker.unpark();
        }
    }
}

impl<T> fmt::Debug for DisposalQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.load(Ordering::Relaxed);
        f.debug_struct("DisposalQueue")
            .field("queued", &self.items.len())
            .field("pushing", &(state / PUSHER))
            .field("worker", &(state & WORKER != 0))
            .field("stopped", &(state & STOPPED != 0))
            .finish()
    }
}

/// Why [`DisposalQueue::push`] gave an item back: the caller closes it.
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError<T> {
    /// The queue is full: the worker is behind.
    Full(T),
    /// [`DisposalQueue::stop`] was called: the worker is finishing or gone.
    Stopped(T),
}

impl<T> PushError<T> {
    /// The item given back.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(item) | Self::Stopped(item) => item,
        }
    }
}

impl<T> fmt::Debug for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Stopped(_) => f.write_str("Stopped(..)"),
        }
    }
}

impl<T> fmt::Display for PushError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the disposal queue is full"),
            Self::Stopped(_) => f.write_str("the disposal queue is stopped"),
        }
    }
}

impl<T> std::error::Error for PushError<T> {}

#[cfg(all(test, not(leasehold_loom)))]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A worker thread on `queue` that records what it closes.
    fn worker(queue: &Arc<DisposalQueue<u32>>) -> std::thread::JoinHandle<Vec<u32>> {
        let queue = queue.clone();
        std::thread::spawn(move || {
            let mut closed = Vec::new();
            queue.run(|item| closed.push(item));
            closed
        })
    }

    #[test]
    fn full_queue_gives_the_item_back() {
        let queue = DisposalQueue::new(1);
        assert!(queue.push(1).is_ok());
        let refused = queue.push(2).unwrap_err();
        assert!(matches!(refused, PushError::Full(2)), "{refused:?}");
        assert_eq!(refused.into_inner(), 2);
        assert_eq!(refused.to_string(), "the disposal queue is full");
    }

    #[test]
    fn items_pushed_before_the_worker_runs_are_closed() {
        let queue = Arc::new(DisposalQueue::new(4));
        queue.push(1).unwrap();
        queue.push(2).unwrap();
        queue.stop();
        assert!(matches!(queue.push(3), Err(PushError::Stopped(3))));
        assert_eq!(worker(&queue).join().unwrap(), [1, 2]);
    }

    #[test]
    fn the_worker_closes_everything_pushed_before_stop() {
        let queue = Arc::new(DisposalQueue::new(64));
        let worker = worker(&queue);
        for item in 0..10 {
            queue.push(item).unwrap();
        }
        queue.stop();
        assert_eq!(worker.join().unwrap(), (0..10).collect::<Vec<_>>());
        assert!(format!("{queue:?}").contains("stopped: true"), "{queue:?}");
    }

    #[test]
    fn concurrent_pushes_and_stop_close_each_item_once() {
        let per_thread = if cfg!(miri) { 20 } else { 2_000 };
        let queue = Arc::new(DisposalQueue::new(8));
        let worker = worker(&queue);
        let handed_back = Arc::new(Mutex::new(Vec::new()));
        let pushers: Vec<_> = (0..3u32)
            .map(|t| {
                let (queue, handed_back) = (queue.clone(), handed_back.clone());
                std::thread::spawn(move || {
                    for i in 0..per_thread {
                        if let Err(refused) = queue.push(t * per_thread + i) {
                            handed_back.lock().unwrap().push(refused.into_inner());
                        }
                    }
                })
            })
            .collect();
        // Stop while the pushers may still be pushing.
        queue.stop();
        let mut all = worker.join().unwrap();
        for pusher in pushers {
            pusher.join().unwrap();
        }
        all.extend(handed_back.lock().unwrap().iter());
        all.sort_unstable();
        assert_eq!(all, (0..3 * per_thread).collect::<Vec<_>>());
    }

    #[test]
    fn take_hands_queued_items_to_any_thread() {
        let queue = Arc::new(DisposalQueue::new(4));
        assert!(queue.is_empty());
        for item in 0..3 {
            queue.push(item).unwrap();
        }
        assert_eq!(queue.len(), 3);
        let taker = {
            let queue = queue.clone();
            std::thread::spawn(move || queue.take())
        };
        assert_eq!(taker.join().unwrap(), Some(0));
        queue.stop();
        assert_eq!(worker(&queue).join().unwrap(), [1, 2]);
        assert_eq!(queue.take(), None);
    }

    #[test]
    #[should_panic(expected = "one worker")]
    fn a_second_worker_panics() {
        let queue = DisposalQueue::<u32>::new(1);
        queue.stop();
        queue.run(drop);
        queue.run(drop);
    }
}
