//! Alarms: the event loop's timers lent to async requests, so that a
//! request's deadline passes on time on any executor, even one without
//! timers of its own.
//!
//! A waiting [`LeaseFuture`](crate::LeaseFuture) that has a deadline (or a
//! patience) sends the loop an [`Alarm`] for that instant and keeps it; the
//! loop keeps only a weak reference in its timer heap and wakes the task's
//! latest waker when the instant comes. A future that is answered or
//! dropped first just drops its alarm: the loop's timer then fires on
//! nothing. The loop fires a timer only once its instant has passed, so the
//! woken future finds its deadline reached.

use atomic_waker::AtomicWaker;
use std::fmt;
use std::task::Waker;
use std::time::Instant;

/// A wake-up at an instant, for one task.
pub(crate) struct Alarm {
    pub(crate) at: Instant,
    waker: AtomicWaker,
}

impl Alarm {
    pub(crate) fn new(at: Instant, waker: &Waker) -> Self {
        let slot = AtomicWaker::new();
        slot.register(waker);
        Self { at, waker: slot }
    }

    /// The task was polled again, perhaps with another waker.
    pub(crate) fn register(&self, waker: &Waker) {
        self.waker.register(waker);
    }

    /// The instant has come.
    pub(crate) fn ring(&self) {
        if let Some(waker) = self.waker.take() {
            crate::unwind::wake_task(&waker);
        }
    }
}

impl fmt::Debug for Alarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Alarm").field("at", &self.at).finish()
    }
}
