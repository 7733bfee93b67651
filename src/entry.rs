//! A pooled connection with what the pool knows about it: its route and
//! state, its age and expiry, how long it has been idle, its idle watch,
//! its lease counter for leak detection and its route's figures.

use crate::figures::{ConnTally, Health};
use crate::reactor::Watch;
use leasehold_policies::unstable::Item;
use leasehold_policies::State;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

pub(crate) struct Entry<R, C> {
    /// `None` only once a lease has detached it (the entry is on its way
    /// out of the pool then).
    pub(crate) conn: Option<C>,
    pub(crate) state: Option<State>,
    pub(crate) route: R,
    pub(crate) created: Instant,
    /// Past this, the connection is closed instead of reused (max lifetime,
    /// jittered per connection).
    pub(crate) expires: Option<Instant>,
    /// The pool's count of route-settings changes when `expires` was
    /// worked out: a return that finds another count works it out again.
    pub(crate) settings_seen: u64,
    /// When it was last returned (kept only when a timer needs it).
    pub(crate) idle_since: Instant,
    /// Never leased yet (the `on_create` hook is due).
    pub(crate) fresh: bool,
    /// The event loop's watch on its socket.
    pub(crate) watch: Option<Arc<Watch>>,
    /// Leak detection: odd while leased; each lease and return adds one.
    pub(crate) leases: Option<Arc<AtomicU64>>,
    /// Its route's figures (`None` when the pool records none).
    pub(crate) figures: Option<ConnTally>,
    /// When its current lease began, if that lease is timed.
    pub(crate) held_since: Option<Instant>,
}

impl<R: Send + 'static, C: Send + 'static> Item for Entry<R, C> {
    fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
}

/// The counters behind [`Health`].
#[derive(Debug, Default)]
pub(crate) struct CloseCounters {
    pub(crate) stale: AtomicU64,
    pub(crate) idle: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) leaks: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl CloseCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Health {
        let read = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        Health {
            stale: read(&self.stale),
            idle: read(&self.idle),
            expired: read(&self.expired),
            invalid: read(&self.invalid),
            broken: read(&self.broken),
            connect_failures: read(&self.connect_failures),
            leaks: read(&self.leaks),
            rejected: read(&self.rejected),
        }
    }
}
