//! A fourth reference design: [`AwakeTickets`], the FIFO ticket semaphore
//! of `fifo.rs` with its head kept awake and the step aside of our blocking
//! leases. The oldest `heads` waiting tickets wait by spinning
//! (`Backoff::snooze`: a few spins, then `sched_yield`) for at most `spin`
//! before they park; only the tickets behind them park. A return still
//! admits exactly the next ticket, in order, but that ticket's thread is
//! running, so the hand-over costs a cache-line transfer instead of a
//! wake-up. When a ticket is admitted, its thread wakes the ticket that has
//! just become the last of the awake heads, so that wake-up overlaps the
//! current holds instead of sitting between a return and the next lease.
//! Before it takes a ticket, a request that finds no permit free yields up
//! to `defer` times, taking one as soon as a permit is free and no ticket
//! waits.
//!
//! It answers whether keeping the head awake is worth porting to the
//! pools' FIFO hand-off: with `FIFO_AWAKE_HEADS=0` the same design runs
//! with every waiter parked, and `FIFO_AWAKE_DEFER=0` without the step
//! aside (`benches/README.md` has the comparison).

use crossbeam_utils::{Backoff, CachePadded};
use leasehold::mock::MockConnector;
use leasehold_testkit::bench::baseline::connect;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How many tickets may wait at once: one per thread, so as many threads.
const SLOTS: u64 = 1024;

/// The thread parked for a ticket, with the ticket.
type Parked = Mutex<Option<(u64, Thread)>>;

/// `size` permits, granted in ticket order, the oldest waiters awake.
pub(crate) struct AwakeTickets {
    size: u64,
    /// How many of the oldest waiting tickets spin instead of parking.
    heads: u64,
    /// How long an awake head spins before it parks after all.
    spin: Duration,
    /// How many times a request that finds no free permit yields before
    /// it takes a ticket.
    defer: u32,
    /// The next ticket to issue.
    issued: CachePadded<AtomicU64>,
    /// Permits given back so far.
    released: CachePadded<AtomicU64>,
    /// The thread parked for ticket `t`, at `t % SLOTS`.
    parked: Box<[Parked]>,
}

impl AwakeTickets {
    /// `size` permits with `heads` awake waiters spinning up to `spin`
    /// each. Opens (and closes) `size` connections from `connector`, as the
    /// pools do when warmed, so the bench's checks hold for it too.
    pub(crate) fn new(
        connector: &MockConnector,
        size: usize,
        heads: u64,
        spin: Duration,
        defer: u32,
    ) -> Self {
        (0..size).for_each(|_| drop(connect(connector)));
        Self {
            size: size as u64,
            heads,
            spin,
            defer,
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
        for _ in 0..self.defer {
            if self.issued.load(Ordering::SeqCst) < self.open_below() {
                break;
            }
            thread::yield_now();
        }
        let ticket = self.issued.fetch_add(1, Ordering::SeqCst);
        if ticket < self.open_below() {
            return;
        }
        let mut spun = false;
        loop {
            let open_below = self.open_below();
            if ticket < open_below {
                break;
            }
            // One of the oldest waiters: spin (once per wait) rather than
            // sleep, so the permit finds this thread running.
            if !spun && ticket < open_below + self.heads {
                spun = true;
                if self.spin_for(ticket) {
                    break;
                }
            }
            if self.park_for(ticket, spun) {
                break;
            }
        }
        // Admitted: the ticket `heads` behind this one is now among the
        // awake heads. Wake it while this permit's hold goes on.
        self.wake(ticket + self.heads);
    }

    /// Spins until `ticket` may go (true) or `spin` has passed (false).
    fn spin_for(&self, ticket: u64) -> bool {
        let backoff = Backoff::new();
        let start = Instant::now();
        loop {
            if ticket < self.open_below() {
                return true;
            }
            if backoff.is_completed() && start.elapsed() >= self.spin {
                return false;
            }
            backoff.snooze();
        }
    }

    /// Parks until woken; true when `ticket` may go. A thread that has not
    /// spun yet comes back (false) as soon as it is among the awake heads.
    fn park_for(&self, ticket: u64, spun: bool) -> bool {
        let slot = &self.parked[(ticket % SLOTS) as usize];
        // Registered before the look below; `release` and `wake` advance
        // `released` before they take the slot's lock: either the look sees
        // the change or the waker sees this thread.
        *slot.lock().expect("not poisoned") = Some((ticket, thread::current()));
        let admitted = loop {
            let open_below = self.open_below();
            if ticket < open_below {
                break true;
            }
            if !spun && ticket < open_below + self.heads {
                break false;
            }
            assert!(
                ticket < open_below + SLOTS,
                "more than {SLOTS} threads wait on one AwakeTickets"
            );
            thread::park();
        };
        let mut parked = slot.lock().expect("not poisoned");
        // Only ours to clear: a later ticket's thread may have registered
        // here since, were the slots to wrap around.
        if parked.as_ref().is_some_and(|(t, _)| *t == ticket) {
            *parked = None;
        }
        admitted
    }

    /// Unparks the thread waiting for `ticket`, if it is parked.
    fn wake(&self, ticket: u64) {
        let parked = self.parked[(ticket % SLOTS) as usize]
            .lock()
            .expect("not poisoned");
        if let Some((t, thread)) = parked.as_ref() {
            if *t == ticket {
                thread.unpark();
            }
        }
    }

    fn release(&self) {
        let released = self.released.fetch_add(1, Ordering::SeqCst) + 1;
        // The one ticket this permit lets go: awake unless it spun past
        // its bound.
        self.wake(released + self.size - 1);
    }
}
