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

use crate::fifo::Tickets;
use crossbeam_utils::Backoff;
use leasehold::mock::MockConnector;
use std::thread;
use std::time::{Duration, Instant};

/// `size` permits, granted in ticket order, the oldest waiters awake.
pub(crate) struct AwakeTickets {
    tickets: Tickets,
    /// How many of the oldest waiting tickets spin instead of parking.
    heads: u64,
    /// How long an awake head spins before it parks after all.
    spin: Duration,
    /// How many times a request that finds no free permit yields before
    /// it takes a ticket.
    defer: u32,
}

impl AwakeTickets {
    /// `size` permits (see [`Tickets::new`]) with `heads` awake waiters
    /// spinning up to `spin` each, and `defer` yields before a ticket.
    pub(crate) fn new(
        connector: &MockConnector,
        size: usize,
        heads: u64,
        spin: Duration,
        defer: u32,
    ) -> Self {
        Self {
            tickets: Tickets::new(connector, size),
            heads,
            spin,
            defer,
        }
    }

    /// Waits for a permit, runs `f`, and gives the permit back.
    pub(crate) fn with_permit<R>(&self, f: impl FnOnce() -> R) -> R {
        self.acquire();
        let result = f();
        // The one ticket this permit lets go: awake unless it spun past
        // its bound.
        self.tickets.wake(self.tickets.give_back());
        result
    }

    fn acquire(&self) {
        let tickets = &self.tickets;
        for _ in 0..self.defer {
            if tickets.free() {
                break;
            }
            thread::yield_now();
        }
        let ticket = tickets.take();
        if ticket < tickets.open_below() {
            return;
        }
        let mut spun = false;
        loop {
            let open_below = tickets.open_below();
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
            // Parked until admitted, or, before it has spun, until it is
            // among the awake heads.
            let admitted = tickets.park_until(ticket, || {
                let open_below = tickets.open_below();
                if ticket < open_below {
                    Some(true)
                } else if !spun && ticket < open_below + self.heads {
                    Some(false)
                } else {
                    None
                }
            });
            if admitted {
                break;
            }
        }
        // Admitted: the ticket `heads` behind this one is now among the
        // awake heads. Wake it while this permit's hold goes on.
        tickets.wake(ticket + self.heads);
    }

    /// Spins until `ticket` may go (true) or `spin` has passed (false).
    fn spin_for(&self, ticket: u64) -> bool {
        let backoff = Backoff::new();
        let start = Instant::now();
        loop {
            if ticket < self.tickets.open_below() {
                return true;
            }
            if backoff.is_completed() && start.elapsed() >= self.spin {
                return false;
            }
            backoff.snooze();
        }
    }
}
