//! A proptest state machine for the operations that wait: requests that
//! queue (`lease_async` polled by hand, so one thread can hold many
//! waiting requests), cancellation (dropping a queued request), eviction
//! (`close_idle`), route-cap changes and a shutdown in the middle, beside
//! `try_lease`, return, discard and state changes, for every policy.
//!
//! Which waiter gets which connection is the policy's business; what every
//! policy must keep is checked after every step, once every queued request
//! has been polled again:
//!
//! * caps (invariant 1) and exclusivity (2), as in the exact model;
//! * conservation (3 and 6): the connector's live connections are exactly
//!   the leased and idle ones, every lease is one the test holds, and the
//!   pool counts exactly the requests still queued — a cancelled request,
//!   even one handed a connection before it was dropped, leaves nothing
//!   behind;
//! * no lost wake-up (4, 8, 9): a request still queued has no idle
//!   connection on its route and no capacity it could use, neither on its
//!   route nor (through closing another route's idle connection) in the
//!   total;
//! * state isolation (7): every lease carries the state it asked for;
//! * fairness (10): under `Strict` and `Offlock`, a request is never served
//!   while an older one for the same route and state stays queued;
//! * shutdown: every queued request fails with `Closed` at its next poll,
//!   later requests too, and at the end every connection is closed.
//!
//! Failing cases shrink to a short operation list; regressions are kept in
//! `proptest_waiting.proptest-regressions`.

use leasehold_testkit::model;

use leasehold::{Error, Lax, Lease, LeaseFuture, Offlock, Policy, Pool, Reuse, State, Strict};
use model::{cases, disposal_caught_up, Config, Mock};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

const ROUTES: usize = 2;
static ROUTE_KEYS: [u8; ROUTES] = [0, 1];

#[derive(Clone, Debug)]
enum Op {
    TryLease {
        route: usize,
        state: usize,
    },
    /// A request that queues when it cannot be served at once.
    Lease {
        route: usize,
        state: usize,
    },
    Release {
        pick: usize,
    },
    Discard {
        pick: usize,
    },
    SetState {
        pick: usize,
        state: usize,
    },
    /// Drops a queued request.
    Cancel {
        pick: usize,
    },
    /// `close_idle(0)`: every idle connection.
    Evict,
    SetRouteMax {
        route: usize,
        max: usize,
    },
    Shutdown,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let route = 0..ROUTES;
    let state = prop_oneof![2 => Just(0usize), 1 => Just(1), 1 => Just(2)];
    prop_oneof![
        3 => (route.clone(), state.clone()).prop_map(|(route, state)| Op::TryLease { route, state }),
        4 => (route.clone(), state.clone()).prop_map(|(route, state)| Op::Lease { route, state }),
        5 => (0usize..4).prop_map(|pick| Op::Release { pick }),
        1 => (0usize..4).prop_map(|pick| Op::Discard { pick }),
        1 => (0usize..4, state).prop_map(|(pick, state)| Op::SetState { pick, state }),
        2 => (0usize..4).prop_map(|pick| Op::Cancel { pick }),
        1 => Just(Op::Evict),
        1 => (route, 1usize..=3).prop_map(|(route, max)| Op::SetRouteMax { route, max }),
        1 => Just(Op::Shutdown),
    ]
}

fn config_strategy() -> impl Strategy<Value = Config> {
    (
        1usize..=3,
        1usize..=2,
        prop_oneof![3 => Just(Reuse::Lifo), 1 => Just(Reuse::Fifo)],
    )
        .prop_map(|(max_total, max_per_route, reuse)| Config {
            max_total,
            max_per_route,
            route2_max: None,
            max_idle: None,
            reuse,
        })
}

struct Held<'p, P: Policy> {
    lease: Lease<'p, Mock, P>,
    state: usize,
}

struct Queued<'p, P: Policy> {
    future: LeaseFuture<'p, 'p, Mock, P>,
    route: usize,
    state: usize,
    /// Order of arrival.
    seq: usize,
}

struct Run<'p, P: Policy> {
    cfg: &'p Config,
    pool: &'p Pool<Mock, P>,
    connector: &'p Mock,
    states: &'p [State],
    held: Vec<Held<'p, P>>,
    queued: Vec<Queued<'p, P>>,
    arrivals: usize,
    shut_down: bool,
    /// Whether the policy serves a route's requests in order (not `Lax`).
    fair: bool,
    /// Per route: how far over its cap it may be (after a lowered cap).
    over_cap: [usize; ROUTES],
    trace: Vec<String>,
}

impl<'p, P: Policy> Run<'p, P> {
    fn fail(&self, what: String) -> TestCaseError {
        TestCaseError::fail(format!(
            "{what}\n  ops:\n    {}\n  config: {:?}\n  stats: {:?}",
            self.trace.join("\n    "),
            self.cfg,
            self.pool.stats()
        ))
    }

    fn state(&self, state: usize) -> Option<&'p State> {
        state.checked_sub(1).map(|i| &self.states[i])
    }

    /// Takes an outcome: a lease to hold, or an error that must be one the
    /// situation allows.
    fn outcome(
        &mut self,
        result: Result<Lease<'p, Mock, P>, Error>,
        route: usize,
        state: usize,
    ) -> Result<(), TestCaseError> {
        match result {
            Ok(lease) => {
                if self.shut_down {
                    return Err(self.fail("a lease after the shutdown".into()));
                }
                if *lease.route() != ROUTE_KEYS[route] || lease.state() != self.state(state) {
                    return Err(self.fail(format!(
                        "invariant 7 (state isolation) violated: asked for route {route} state \
                         {state:?}, got {:?} in {:?}",
                        lease.route(),
                        lease.state()
                    )));
                }
                self.held.push(Held { lease, state });
                Ok(())
            }
            Err(Error::Closed) if self.shut_down => Ok(()),
            Err(Error::Exhausted(_)) if !self.shut_down => Ok(()),
            Err(e) => Err(self.fail(format!("unexpected error: {e}"))),
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.trace.push(format!("{op:?}"));
        match *op {
            Op::TryLease { route, state } => {
                let result = match self.state(state) {
                    None => self.pool.try_lease(&ROUTE_KEYS[route]),
                    Some(s) => self.pool.try_lease_with_state(&ROUTE_KEYS[route], s),
                };
                self.outcome(result, route, state)?;
            }
            Op::Lease { route, state } => {
                let future = match self.state(state) {
                    None => self.pool.lease_async(&ROUTE_KEYS[route]),
                    Some(s) => self.pool.lease_async_with_state(&ROUTE_KEYS[route], s),
                };
                self.arrivals += 1;
                self.queued.push(Queued {
                    future,
                    route,
                    state,
                    seq: self.arrivals,
                });
            }
            Op::Release { .. } | Op::Discard { .. } | Op::SetState { .. }
                if self.held.is_empty() => {}
            Op::Release { pick } => drop(self.held.remove(pick % self.held.len())),
            Op::Discard { pick } => self.held.remove(pick % self.held.len()).lease.discard(),
            Op::SetState { pick, state } => {
                let i = pick % self.held.len();
                let token = self.state(state).cloned();
                self.held[i].lease.set_state(token);
                self.held[i].state = state;
            }
            Op::Cancel { pick } => {
                if !self.queued.is_empty() {
                    let i = pick % self.queued.len();
                    drop(self.queued.remove(i));
                }
            }
            Op::Evict => self.pool.close_idle(Duration::ZERO),
            Op::SetRouteMax { route, max } => {
                // Leases outstanding may keep the route over a lowered cap.
                let allocated = self.pool.route_stats(&ROUTE_KEYS[route]).allocated();
                self.over_cap[route] = self.over_cap[route].max(allocated);
                self.pool.set_route_max(&ROUTE_KEYS[route], max).unwrap();
            }
            Op::Shutdown => {
                self.pool.shutdown();
                self.shut_down = true;
            }
        }
        self.poll_queued()?;
        self.check()
    }

    /// Polls every queued request once, oldest first.
    fn poll_queued(&mut self) -> Result<(), TestCaseError> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut still = Vec::new();
        let mut served = Vec::new();
        for mut queued in std::mem::take(&mut self.queued) {
            match Pin::new(&mut queued.future).poll(&mut cx) {
                Poll::Pending => still.push(queued),
                Poll::Ready(result) => {
                    served.push((result, queued.route, queued.state, queued.seq))
                }
            }
        }
        self.queued = still;
        for (result, route, state, seq) in served {
            let older = self
                .queued
                .iter()
                .find(|q| q.route == route && q.state == state && q.seq < seq)
                .map(|q| q.seq);
            if let (Some(older), Ok(_), true) = (older, &result, self.fair) {
                return Err(self.fail(format!(
                    "invariant 10 (fairness) violated: request #{seq} served while #{older} \
                     (same route and state) waits"
                )));
            }
            self.outcome(result, route, state)?;
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        disposal_caught_up(self.pool, self.connector).map_err(|e| self.fail(e))?;
        let total = self.pool.stats().total;
        let routes: Vec<_> = ROUTE_KEYS
            .iter()
            .map(|r| self.pool.route_stats(r))
            .collect();
        // Invariant 1.
        if total.allocated() > self.cfg.max_total {
            return Err(self.fail(format!("invariant 1 (caps) violated: total {total}")));
        }
        for (r, stats) in routes.iter().enumerate() {
            if stats.allocated() > stats.max.max(self.over_cap[r]) {
                return Err(self.fail(format!("invariant 1 (caps) violated: route {r}: {stats}")));
            }
            self.over_cap[r] = if stats.allocated() > stats.max {
                stats.allocated()
            } else {
                0
            };
        }
        // Invariant 2.
        let mut ids = HashSet::new();
        for held in &self.held {
            if !ids.insert(held.lease.id()) {
                return Err(self.fail(format!(
                    "invariant 2 (exclusivity) violated: connection {} leased twice",
                    held.lease.id()
                )));
            }
        }
        // Invariants 3 and 6.
        let live = usize::try_from(self.connector.live()).unwrap();
        if total.leased != self.held.len()
            || live != total.leased + total.idle
            || total.pending != self.queued.len()
            || total.connecting != 0
        {
            return Err(self.fail(format!(
                "invariant 3/6 (conservation) violated: {total}, {} held, {} queued, {live} live \
                 connections",
                self.held.len(),
                self.queued.len()
            )));
        }
        // Invariants 4, 8, 9.
        for queued in &self.queued {
            let route = &routes[queued.route];
            let route_room = route.allocated() < route.max;
            let total_room = total.allocated() < self.cfg.max_total || total.idle > 0;
            if route.idle > 0 || (route_room && total_room) {
                return Err(self.fail(format!(
                    "invariant 4 (no lost wake-up) violated: request #{} for route {} state {} \
                     waits while route {} and the pool {total} could serve it",
                    queued.seq, queued.route, queued.state, route
                )));
            }
        }
        if self.shut_down && (total.idle != 0 || !self.queued.is_empty()) {
            return Err(self.fail(format!(
                "after the shutdown: {total}, {} queued",
                self.queued.len()
            )));
        }
        Ok(())
    }

    /// Gives everything back and shuts down: every connection is closed.
    fn finish(mut self) -> Result<(), TestCaseError> {
        self.held.clear();
        self.queued.clear();
        self.pool.shutdown();
        disposal_caught_up(self.pool, self.connector).map_err(|e| self.fail(e))?;
        if self.connector.live() != 0 || self.pool.stats().total.allocated() != 0 {
            return Err(self.fail(format!(
                "invariant 3 (conservation) violated at the end: {} live connections",
                self.connector.live()
            )));
        }
        Ok(())
    }
}

fn run<P: Policy>(cfg: &Config, ops: &[Op], fair: bool) -> Result<(), TestCaseError> {
    let states: Vec<State> = vec![State::from("a"), State::from("b")];
    let connector = Mock::new();
    let pool = cfg.build::<P>(&connector, None);
    let mut run = Run {
        cfg,
        pool: &pool,
        connector: &connector,
        states: &states,
        held: Vec::new(),
        queued: Vec::new(),
        arrivals: 0,
        shut_down: false,
        fair,
        over_cap: [0; ROUTES],
        trace: Vec::new(),
    };
    for op in ops {
        run.apply(op)?;
    }
    run.finish()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(256),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn strict_waiting_requests_keep_the_invariants(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..50),
    ) {
        run::<Strict>(&cfg, &ops, true)?;
    }

    #[test]
    fn lax_waiting_requests_keep_the_invariants(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..50),
    ) {
        run::<Lax>(&cfg, &ops, false)?;
    }

    #[test]
    fn offlock_waiting_requests_keep_the_invariants(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..50),
    ) {
        run::<Offlock>(&cfg, &ops, true)?;
    }
}
