//! The connect circuit breaker: a route whose connects keep failing is
//! probed, not hammered, and is back in use as soon as one probe succeeds.
//!
//! A route is *closed* (used freely) until a connect to it fails. Connects
//! that were in flight together fail together and count as one *step*: a
//! failure counts only if its connect started after the last counted one.
//! Two steps in a row, with no success between them, make the route *open*
//! (down). While it is open:
//!
//! * at most one connect to it, the *probe*, is in flight; the first
//!   request that needs a connect once the spacing since the last step has
//!   passed starts it;
//! * a request that needs a connect while the probe is in flight waits for
//!   the probe (bounded by its acquire timeout): the probe's connection
//!   goes to the first of them, the others connect at once after it;
//! * a request that needs a connect during the spacing fails at once with
//!   [`Error::Down`], which carries the last cause;
//! * a failed probe is another step, and the spacing doubles, from
//!   `initial` up to `max` (defaults 10 ms and 100 ms: a dead route costs
//!   about ten connects a second, and a returning one is found within about
//!   `max`).
//!
//! Any success closes the route at once. So a route whose connects succeed
//! every now and then — say one in two — is never down for longer than one
//! probe, and its failed connects fail only the requests waiting on them.
//! Idle connections of an open route are still leased, and other routes are
//! not touched. A failure for want of local resources (`EMFILE`, `ENFILE`,
//! `ENOBUFS`, `ENOMEM`) is this process's, not the route's: it fails the
//! requests waiting on that connect but is not a step.

use super::bind::Failure;
use crate::error::Error;
use leasehold_policies::RouteKey;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A route that has failed since its last success.
struct Circuit {
    /// Counted failures in a row.
    steps: u32,
    /// When the last failure happened, counted or not: a request that
    /// waited since before it is answered with it.
    last_at: Instant,
    /// When the last counted failure happened: a connect started before it
    /// was in flight with it.
    failed_at: Instant,
    last: Failure,
    /// A probe connect is in flight.
    probing: bool,
    /// While open: when the next probe may start (`None`: never, the
    /// spacing overflowed the clock).
    probe_at: Option<Instant>,
}

impl Circuit {
    fn is_open(&self) -> bool {
        self.steps >= 2
    }
}

/// The circuits, and when to forget stale ones.
struct Circuits<K> {
    by_route: HashMap<K, Circuit>,
    /// How many circuits make the next new one forget the stale ones
    /// (twice as many as were left the last time, so that forgetting costs
    /// amortized constant time per failure).
    prune_at: usize,
}

/// Below this many circuits none is forgotten.
const PRUNE_FIRST: usize = 256;

/// What a request that needs a new connection does.
#[derive(Debug)]
pub(crate) enum Admit {
    /// Connect: the route is not down.
    Connect,
    /// Connect, as the route's probe.
    Probe,
    /// Wait for the probe in flight.
    Wait,
    /// Fail at once: the route is down and rests.
    Refuse(Error),
}

/// A circuit whose route has not failed for this long, and is not being
/// probed, is forgotten once the table grows: the route is closed again,
/// and one more failure reopens it.
const FORGET_AFTER: Duration = Duration::from_secs(60);

/// The circuits of every route that failed since its last success.
pub(crate) struct Breaker<K> {
    initial: Duration,
    max: Duration,
    circuits: Mutex<Circuits<K>>,
    /// Routes with a circuit: zero lets the connect path skip the lock.
    routes: AtomicUsize,
}

impl<K: RouteKey> Breaker<K> {
    /// `initial` zero turns the breaker off: every request connects.
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            circuits: Mutex::new(Circuits {
                by_route: HashMap::new(),
                prune_at: PRUNE_FIRST,
            }),
            routes: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuits<K>> {
        self.circuits.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a request that needs a new connection to `route`, and has
    /// waited since `since`, does now.
    pub(crate) fn admit(&self, route: &K, now: Instant, since: Instant) -> Admit {
        if self.routes.load(Ordering::Acquire) == 0 {
            return Admit::Connect;
        }
        let mut circuits = self.lock();
        let Some(circuit) = circuits.by_route.get_mut(route) else {
            return Admit::Connect;
        };
        if since <= circuit.last_at {
            // It waited through that failure (queued for the capacity the
            // failed connect gave back): that failure is its answer.
            return Admit::Refuse(circuit.last.error());
        }
        if !circuit.is_open() {
            return Admit::Connect;
        }
        if circuit.probing {
            return Admit::Wait;
        }
        match circuit.probe_at {
            Some(at) if at <= now => {
                circuit.probing = true;
                Admit::Probe
            }
            at => Admit::Refuse(Error::Down {
                route: circuit.last.route.clone(),
                failures: circuit.steps,
                retry_in: at.map(|at| at - now),
                source: circuit.last.io_error(),
            }),
        }
    }

    /// A connect to `route` that started at `started` failed (`probe`: it
    /// was the route's probe).
    pub(crate) fn failed(
        &self,
        route: &K,
        failure: &Failure,
        started: Instant,
        probe: bool,
        now: Instant,
    ) {
        if self.initial.is_zero() || failure.is_local() {
            if probe {
                self.probe_ended(route);
            }
            return;
        }
        let mut circuits = self.lock();
        if circuits.by_route.len() >= circuits.prune_at && !circuits.by_route.contains_key(route) {
            let before = circuits.by_route.len();
            circuits.by_route.retain(|_, circuit| {
                circuit.probing || now.saturating_duration_since(circuit.last_at) < FORGET_AFTER
            });
            self.routes
                .fetch_sub(before - circuits.by_route.len(), Ordering::AcqRel);
            circuits.prune_at = (2 * circuits.by_route.len()).max(PRUNE_FIRST);
        }
        let circuit = circuits.by_route.entry(route.clone()).or_insert_with(|| {
            self.routes.fetch_add(1, Ordering::AcqRel);
            Circuit {
                steps: 0,
                last_at: now,
                failed_at: started,
                last: failure.clone(),
                probing: false,
                probe_at: None,
            }
        });
        if probe {
            circuit.probing = false;
        }
        circuit.last = failure.clone();
        circuit.last_at = now;
        if circuit.steps > 0 && started < circuit.failed_at {
            // In flight with the failure already counted.
            return;
        }
        circuit.steps = circuit.steps.saturating_add(1);
        circuit.failed_at = now;
        if circuit.is_open() {
            let doublings = (circuit.steps - 2).min(20);
            let spacing = self.initial.saturating_mul(1 << doublings).min(self.max);
            circuit.probe_at = now.checked_add(spacing);
            if circuit.steps == 2 {
                tracing::warn!(
                    route = ?route, cause = %failure.error(), next_probe_in = ?spacing,
                    "leasehold: route down after failed connects"
                );
            } else {
                tracing::debug!(
                    route = ?route, failures = circuit.steps, next_probe_in = ?spacing,
                    "leasehold: route still down"
                );
            }
        }
    }

    /// Whether a probe of `route` is in flight.
    pub(crate) fn probing(&self, route: &K) -> bool {
        self.routes.load(Ordering::Acquire) != 0
            && self
                .lock()
                .by_route
                .get(route)
                .is_some_and(|circuit| circuit.probing)
    }

    /// A probe ended without an outcome for the route (abandoned, or it
    /// failed for a local reason): the next request may probe.
    pub(crate) fn probe_ended(&self, route: &K) {
        if self.routes.load(Ordering::Acquire) == 0 {
            return;
        }
        if let Some(circuit) = self.lock().by_route.get_mut(route) {
            circuit.probing = false;
        }
    }

    /// A connect to `route` succeeded: its circuit closes. Returns whether
    /// the route was down (requests may be waiting for its probe).
    pub(crate) fn succeeded(&self, route: &K) -> bool {
        if self.routes.load(Ordering::Acquire) == 0 {
            return false;
        }
        match self.lock().by_route.remove(route) {
            Some(circuit) => {
                self.routes.fetch_sub(1, Ordering::AcqRel);
                let was_down = circuit.is_open();
                if was_down {
                    tracing::info!(route = ?route, "leasehold: route up again");
                }
                was_down
            }
            None => false,
        }
    }
}

impl<K> fmt::Debug for Breaker<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
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
        let error = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        Failure::new("\"a\"".into(), &error)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// The answer to a request that arrives at `at` (just after it).
    fn admit(breaker: &Breaker<&'static str>, route: &&'static str, at: Instant) -> Admit {
        let arrived = at + Duration::from_nanos(1);
        breaker.admit(route, arrived, arrived)
    }

    #[test]
    fn a_request_that_waited_through_a_failure_is_answered_with_it() {
        let breaker = Breaker::new(ms(10), ms(100));
        let t0 = Instant::now();
        breaker.failed(&"a", &refused(), t0, false, t0 + ms(5));
        // Queued since t0, it gets the capacity the failure gave back.
        match breaker.admit(&"a", t0 + ms(6), t0) {
            Admit::Refuse(Error::Refused { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("expected the failure, got {other:?}"),
        }
        assert!(matches!(admit(&breaker, &"a", t0 + ms(6)), Admit::Connect));
    }

    #[test]
    fn opens_on_the_second_step_and_probes_one_at_a_time() {
        let breaker = Breaker::new(ms(10), ms(25));
        let t0 = Instant::now();
        breaker.failed(&"a", &refused(), t0, false, t0);
        assert!(
            matches!(admit(&breaker, &"a", t0), Admit::Connect),
            "one step: not down"
        );
        let t1 = t0 + ms(1);
        breaker.failed(&"a", &refused(), t1, false, t1);
        match admit(&breaker, &"a", t1) {
            Admit::Refuse(Error::Down {
                failures: 2,
                retry_in: Some(retry_in),
                source,
                ..
            }) => {
                assert!(retry_in > ms(9) && retry_in <= ms(10), "{retry_in:?}");
                assert_eq!(source.raw_os_error(), Some(libc::ECONNREFUSED));
            }
            other => panic!("expected a rest, got {other:?}"),
        }
        assert!(
            matches!(admit(&breaker, &"b", t1), Admit::Connect),
            "other routes untouched"
        );
        let t2 = t1 + ms(10);
        assert!(matches!(admit(&breaker, &"a", t2), Admit::Probe));
        assert!(
            matches!(admit(&breaker, &"a", t2), Admit::Wait),
            "one probe"
        );
        breaker.failed(&"a", &refused(), t2, true, t2);
        // The spacing doubles, capped at max.
        assert!(matches!(
            admit(&breaker, &"a", t2 + ms(19)),
            Admit::Refuse(_)
        ));
        assert!(matches!(admit(&breaker, &"a", t2 + ms(20)), Admit::Probe));
        let t3 = t2 + ms(20);
        breaker.failed(&"a", &refused(), t3, true, t3);
        assert!(matches!(
            admit(&breaker, &"a", t3 + ms(24)),
            Admit::Refuse(_)
        ));
        assert!(matches!(admit(&breaker, &"a", t3 + ms(25)), Admit::Probe));
        assert!(breaker.succeeded(&"a"), "it was down");
        assert!(matches!(admit(&breaker, &"a", t3), Admit::Connect));
        assert!(!breaker.succeeded(&"a"));
    }

    #[test]
    fn connects_in_flight_together_count_once() {
        let breaker = Breaker::new(ms(10), ms(100));
        let t0 = Instant::now();
        // Eight connects started at t0 fail one after another.
        for i in 0..8 {
            let now = t0 + ms(i + 1);
            breaker.failed(&"a", &refused(), t0, false, now);
        }
        assert!(matches!(admit(&breaker, &"a", t0 + ms(9)), Admit::Connect));
        // One started after the first failure is a second step.
        breaker.failed(&"a", &refused(), t0 + ms(9), false, t0 + ms(9));
        assert!(matches!(
            admit(&breaker, &"a", t0 + ms(9)),
            Admit::Refuse(Error::Down { failures: 2, .. })
        ));
    }

    #[test]
    fn a_success_between_failures_keeps_the_route_up() {
        let breaker = Breaker::new(ms(10), ms(100));
        let mut now = Instant::now();
        for _ in 0..100 {
            breaker.failed(&"a", &refused(), now, false, now);
            now += ms(1);
            breaker.succeeded(&"a");
            assert!(matches!(admit(&breaker, &"a", now), Admit::Connect));
        }
    }

    #[test]
    fn local_exhaustion_is_not_a_step() {
        let breaker = Breaker::new(ms(10), ms(100));
        let emfile = Failure::new(
            "\"a\"".into(),
            &std::io::Error::from_raw_os_error(libc::EMFILE),
        );
        let now = Instant::now();
        for i in 0..10 {
            breaker.failed(&"a", &emfile, now + ms(i), false, now + ms(i));
        }
        assert!(matches!(
            admit(&breaker, &"a", now + ms(10)),
            Admit::Connect
        ));
    }

    #[test]
    fn an_overflowing_spacing_rests_without_panicking() {
        let breaker = Breaker::new(Duration::MAX, Duration::MAX);
        let t0 = Instant::now();
        breaker.failed(&"a", &refused(), t0, false, t0);
        breaker.failed(&"a", &refused(), t0, false, t0 + ms(1));
        assert!(matches!(
            admit(&breaker, &"a", t0 + ms(2)),
            Admit::Refuse(Error::Down { retry_in: None, .. })
        ));
    }

    #[test]
    fn stale_circuits_are_forgotten_as_the_table_grows() {
        let breaker: Breaker<u32> = Breaker::new(ms(10), ms(100));
        let t0 = Instant::now();
        let down = |route: u32, at: Instant| {
            breaker.failed(&route, &refused(), at, false, at);
            breaker.failed(&route, &refused(), at + ms(1), false, at + ms(1));
        };
        for route in 0..PRUNE_FIRST as u32 {
            down(route, t0);
        }
        let later = t0 + FORGET_AFTER + ms(2);
        down(PRUNE_FIRST as u32, later);
        let arrived = later + ms(2);
        assert!(matches!(
            breaker.admit(&0, arrived, arrived),
            Admit::Connect
        ));
        assert!(matches!(
            breaker.admit(&(PRUNE_FIRST as u32), arrived, arrived),
            Admit::Refuse(Error::Down { .. })
        ));
        assert_eq!(breaker.routes.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn off_when_initial_is_zero() {
        let breaker = Breaker::new(Duration::ZERO, Duration::ZERO);
        let now = Instant::now();
        for i in 0..5 {
            breaker.failed(&"a", &refused(), now + ms(i), false, now + ms(i));
        }
        assert!(matches!(admit(&breaker, &"a", now + ms(5)), Admit::Connect));
    }
}
