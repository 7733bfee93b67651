//! A third reference design for the contention bench: [`FifoTickets`], the
//! least work a pool can do and still serve waiting threads in the order
//! they came. A ticket semaphore: each lease takes a ticket, ticket `t` may
//! go once `t < released + size`, and a waiting ticket's thread parks; each
//! return admits exactly the next ticket and wakes its thread. It hands
//! over no connections and keeps no queue, so once threads queue, a cycle
//! is one wake-up and one sleep and nothing else. Once every request queues
//! (the convoy), that bounds what any FIFO hand-off (`Strict`, `Offlock`)
//! can reach on OS threads, whatever its data structures. It is not a bound
//! outside the convoy: it does nothing to stay out of it (a lease of ours
//! steps aside, yielding its thread up to 16 times, before it queues), so
//! it falls in where ours do not.

use crossbeam_utils::CachePadded;
use leasehold::mock::MockConnector;
use leasehold_testkit::bench::baseline::connect;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::{self, Thread};

/// How many tickets may wait at once: one per thread, so as many threads.
const SLOTS: u64 = 1024;

/// The thread parked for a ticket, with the ticket.
type Parked = Mutex<Option<(u64, Thread)>>;

/// `size` permits, granted in ticket order.
pub(crate) struct FifoTickets {
    size: u64,
    /// The next ticket to issue.
    issued: CachePadded<AtomicU64>,
    /// Permits given back so far.
    released: CachePadded<AtomicU64>,
    /// The thread parked for ticket `t`, at `t % SLOTS`.
    parked: Box<[Parked]>,
}

impl FifoTickets {
    /// `size` permits. Opens (and closes) `size` connections from
    /// `connector`, as the pools do when warmed, so the bench's checks hold
    /// for it too.
    pub(crate) fn new(connector: &MockConnector, size: usize) -> Self {
        (0..size).for_each(|_| drop(connect(connector)));
        Self {
            size: size as u64,
            issued: CachePadded::new(AtomicU64::new(0)),
            released: CachePadded::new(AtomicU64::new(0)),
            parked: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Waits for a permit, runs `f`, and gives the permit back.
    pub(crate) fn with_permit<R>(&self, f: impl FnOnce() -> R) -> R {
        self.acquire();
        let result = f();
        self.release();
        result
    }

    /// Permits given back so far, plus `size`: tickets below it may go.
    fn open_below(&self) -> u64 {
        self.released.load(Ordering::SeqCst) + self.size
    }

    fn acquire(&self) {
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst);
        if ticket < self.open_below() {
            return;
        }
        let slot = &self.parked[(ticket % SLOTS) as usize];
        // Registered before the look below, and `release` advances
        // `released` before it takes the slot's lock: either the look sees
        // the permit or the releaser sees this thread.
        *slot.lock().expect("not poisoned") = Some((ticket, thread::current()));
        loop {
            let open_below = self.open_below();
            if ticket < open_below {
                break;
            }
            assert!(
                ticket < open_below + SLOTS,
                "more than {SLOTS} threads wait on one FifoTickets"
            );
            thread::park();
        }
        let mut parked = slot.lock().expect("not poisoned");
        // Only ours to clear: a later ticket's thread may have registered
        // here since, were the slots to wrap around.
        if parked.as_ref().is_some_and(|(t, _)| *t == ticket) {
            *parked = None;
        }
    }

    fn release(&self) {
        let released = self.released.fetch_add(1, Ordering::SeqCst) + 1;
        // The one ticket this permit lets go.
        let next = released + self.size - 1;
        let parked = self.parked[(next % SLOTS) as usize]
            .lock()
            .expect("not poisoned");
        if let Some((ticket, thread)) = parked.as_ref() {
            if *ticket == next {
                thread.unpark();
            }
        }
    }
}
