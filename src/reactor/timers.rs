//! The event loop's timers: a min-heap of deadlines.
//!
//! Few timers are live at once (one per connect in flight, one per periodic
//! duty, one per lease watched for leaks), so a binary heap beats a wheel
//! here: O(log n) to add, O(1) to find the next deadline, exact expiry.
//! A timer that no longer matters (its connect finished) is not removed; it
//! fires and finds nothing to do.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

struct TimerEntry<T> {
    at: Instant,
    seq: u64,
    timer: T,
}

impl<T> PartialEq for TimerEntry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl<T> Eq for TimerEntry<T> {}

impl<T> PartialOrd for TimerEntry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for TimerEntry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Timers carrying a `T` each, fired in deadline order (ties in the order
/// they were set).
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<TimerEntry<T>>>,
    seq: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
            seq: 0,
        }
    }

    pub(crate) fn set(&mut self, at: Instant, timer: T) {
        self.seq += 1;
        self.heap.push(Reverse(TimerEntry {
            at,
            seq: self.seq,
            timer,
        }));
    }

    /// How long until the next deadline (zero if one has passed), or `None`
    /// if no timer is set.
    pub(crate) fn next_in(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(next)| next.at.saturating_duration_since(now))
    }

    /// Takes the next timer due by `now`.
    /// Drops the timers `keep` refuses (ones nobody waits for any more).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.heap.retain(|Reverse(entry)| keep(&entry.timer));
    }

    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<T> {
        if self.heap.peek()?.0.at > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry.timer)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_in_deadline_order_then_insertion_order() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        timers.set(t0 + Duration::from_millis(20), "late");
        timers.set(t0 + Duration::from_millis(10), "early");
        timers.set(t0 + Duration::from_millis(10), "early too");
        assert_eq!(timers.next_in(t0), Some(Duration::from_millis(10)));
        assert_eq!(timers.pop_due(t0), None);
        let later = t0 + Duration::from_millis(15);
        assert_eq!(timers.pop_due(later), Some("early"));
        assert_eq!(timers.pop_due(later), Some("early too"));
        assert_eq!(timers.pop_due(later), None);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(1)), Some("late"));
        assert_eq!(timers.next_in(t0), None);
    }

    #[test]
    fn retain_drops_what_it_refuses_and_keeps_the_order() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        for (ms, name) in [(30, "c"), (10, "a"), (20, "dead"), (40, "d")] {
            timers.set(t0 + Duration::from_millis(ms), name);
        }
        timers.retain(|name| *name != "dead");
        assert_eq!(timers.len(), 3);
        let end = t0 + Duration::from_secs(1);
        let order: Vec<_> = std::iter::from_fn(|| timers.pop_due(end)).collect();
        assert_eq!(order, ["a", "c", "d"]);
    }
}
