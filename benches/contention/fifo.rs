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
//!
//! [`Tickets`], its counters and parking slots, is shared with `awake.rs`.

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

/// `size` permits handed out by ticket, and the threads parked for them.
pub(crate) struct Tickets {
    size: u64,
    /// The next ticket to issue.
    issued: CachePadded<AtomicU64>,
    /// Permits given back so far.
    released: CachePadded<AtomicU64>,
    /// The thread parked for ticket `t`, at `t % SLOTS`.
    parked: Box<[Parked]>,
}

impl Tickets {
    /// `size` permits. Opens (and closes) `size` connections from
    /// `connector`, as the pools do when warmed, so the bench's checks hold
    /// for the designs too.
    pub(crate) fn new(connector: &MockConnector, size: usize) -> Self {
        (0..size).for_each(|_| drop(connect(connector)));
        Self {
            size: size as u64,
            issued: CachePadded::new(AtomicU64::new(0)),
            released: CachePadded::new(AtomicU64::new(0)),
            parked: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The next ticket.
    pub(crate) fn take(&self) -> u64 {
        self.issued.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether a ticket taken now would go at once: a permit is free and
    /// no ticket waits.
    pub(crate) fn free(&self) -> bool {
        self.issued.load(Ordering::SeqCst) < self.open_below()
    }

    /// Permits given back so far, plus `size`: tickets below it may go.
    pub(crate) fn open_below(&self) -> u64 {
        self.released.load(Ordering::SeqCst) + self.size
    }

    /// Gives a permit back; returns the one ticket it lets go.
    pub(crate) fn give_back(&self) -> u64 {
        let released = self.released.fetch_add(1, Ordering::SeqCst) + 1;
        released + self.size - 1
    }

    /// Parks this thread, registered for `ticket`, until `done` says so.
    /// Registered before each look; `give_back` advances `released` before
    /// its caller takes the slot's lock in [`Tickets::wake`]: either the
    /// look sees the change or the waker sees this thread.
    pub(crate) fn park_until<R>(&self, ticket: u64, mut done: impl FnMut() -> Option<R>) -> R {
        let slot = &self.parked[(ticket % SLOTS) as usize];
        *slot.lock().expect("not poisoned") = Some((ticket, thread::current()));
        let result = loop {
            if let Some(result) = done() {
                break result;
            }
            assert!(
                ticket < self.open_below() + SLOTS,
                "more than {SLOTS} threads wait on one ticket semaphore"
            );
            thread::park();
        };
        let mut parked = slot.lock().expect("not poisoned");
        // Only ours to clear: a later ticket's thread may have registered
        // here since, were the slots to wrap around.
        if parked.as_ref().is_some_and(|(t, _)| *t == ticket) {
            *parked = None;
        }
        result
    }

    /// Unparks the thread waiting for `ticket`, if it is parked.
    pub(crate) fn wake(&self, ticket: u64) {
        let parked = self.parked[(ticket % SLOTS) as usize]
            .lock()
            .expect("not poisoned");
        if let Some((t, thread)) = parked.as_ref() {
            if *t == ticket {
                thread.unpark();
            }
        }
    }
}

/// `size` permits, granted in ticket order.
pub(crate) struct FifoTickets(Tickets);

impl FifoTickets {
    /// `size` permits (see [`Tickets::new`]).
    pub(crate) fn new(connector: &MockConnector, size: usize) -> Self {
        Self(Tickets::new(connector, size))
    }

    /// Waits for a permit, runs `f`, and gives the permit back.
    pub(crate) fn with_permit<R>(&self, f: impl FnOnce() -> R) -> R {
        let tickets = &self.0;
        let ticket = tickets.take();
        if ticket >= tickets.open_below() {
            tickets.park_until(ticket, || (ticket < tickets.open_below()).then_some(()));
        }
        let result = f();
        tickets.wake(tickets.give_back());
        result
    }
}
