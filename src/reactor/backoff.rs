//! Connect backoff: a route whose connects keep failing is given a rest.
//!
//! The first failure of a streak costs nothing extra: the waiting requests
//! fail with the cause and the next request tries again at once. From the
//! second consecutive failure on, the route rests for `initial`, then twice
//! that after the third, and so on up to `max`; while it rests, a request
//! that would open a connection fails at once with the last cause (noted as
//! backing off) instead of hammering a dead backend. Idle connections of the
//! route are still leased, and other routes are not touched. One success
//! ends the streak.

use super::bind::Failure;
use crate::error::Error;
use leasehold_policies::RouteKey;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Streak {
    failures: u32,
    until: Option<Instant>,
    /// When the last failure happened: requests waiting since before it
    /// fail with it at once.
    at: Instant,
    last: Failure,
}

/// The failure streaks of every route.
pub(crate) struct Backoff<K> {
    initial: Duration,
    max: Duration,
    streaks: Mutex<HashMap<K, Streak>>,
    /// Routes with a streak: zero lets the connect path skip the lock.
    routes: AtomicUsize,
}

impl<K: RouteKey> Backoff<K> {
    /// `initial` zero turns backoff off.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            streaks: Mutex::new(HashMap::new()),
            routes: AtomicUsize::new(0),
        }
    }

    /// The error to fail with if `route` rests now, or if its last connect
    /// failed after the request began waiting (`since`): a request that
    /// waited through a failure is answered with it, not sent to try again.
    pub(crate) fn check(&self, route: &K, now: Instant, since: Instant) -> Option<Error> {
        if self.routes.load(Ordering::Acquire) == 0 {
            return None;
        }
        let streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        let streak = streaks.get(route)?;
        if since <= streak.at {
            return Some(streak.last.error("failed while this request waited"));
        }
        let until = streak.until.filter(|until| *until > now)?;
        Some(streak.last.error(&format!(
            "{} consecutive failures; backing off for another {:?}",
            streak.failures,
            until - now
        )))
    }

    pub(crate) fn failed(&self, route: &K, failure: &Failure, now: Instant) {
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        let streak = streaks.entry(route.clone()).or_insert_with(|| {
            self.routes.fetch_add(1, Ordering::AcqRel);
            Streak {
                failures: 0,
                until: None,
                at: now,
                last: failure.clone(),
            }
        });
        streak.failures += 1;
        streak.at = now;
        streak.last = failure.clone();
        if streak.failures >= 2 && !self.initial.is_zero() {
            let doublings = (streak.failures - 2).min(20);
            let rest = self.initial.saturating_mul(1 << doublings).min(self.max);
            streak.until = Some(now + rest);
        }
    }

    pub(crate) fn succeeded(&self, route: &K) {
        if self.routes.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut streaks = self.streaks.lock().unwrap_or_else(|e| e.into_inner());
        if streaks.remove(route).is_some() {
            self.routes.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<K> fmt::Debug for Backoff<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backoff")
            .field("initial", &self.initial)
            .field("max", &self.max)
            .field("routes", &self.routes.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Failure {
        let error = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        Failure::new("\"a\"".into(), &error)
    }

    #[test]
    fn rests_from_the_second_failure_doubling_up_to_max() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(250));
        let t0 = Instant::now();
        // Requests that began after the failures.
        let later = t0 + Duration::from_nanos(1);
        backoff.failed(&"a", &refused(), t0);
        assert!(
            backoff.check(&"a", t0, later).is_none(),
            "one failure: no rest"
        );
        backoff.failed(&"a", &refused(), t0);
        let err = backoff.check(&"a", t0, later).expect("resting");
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert!(err.to_string().contains("backing off"), "{err}");
        assert!(backoff
            .check(&"a", t0 + Duration::from_millis(100), later)
            .is_none());
        assert!(
            backoff.check(&"b", t0, later).is_none(),
            "other routes untouched"
        );
        backoff.failed(&"a", &refused(), t0);
        assert!(backoff
            .check(&"a", t0 + Duration::from_millis(199), later)
            .is_some());
        backoff.failed(&"a", &refused(), t0);
        assert!(backoff
            .check(&"a", t0 + Duration::from_millis(249), later)
            .is_some());
        assert!(
            backoff
                .check(&"a", t0 + Duration::from_millis(250), later)
                .is_none(),
            "capped"
        );
        backoff.succeeded(&"a");
        backoff.failed(&"a", &refused(), t0);
        assert!(
            backoff.check(&"a", t0, later).is_none(),
            "a success ends the streak"
        );
    }
}
