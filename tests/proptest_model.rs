//! Model-based property tests of `Pool<MockConnector<u8>, P>` for every
//! policy: a sequential reference model, and a threaded property.
//!
//! * `sequential_ops_match_reference_model` drives the real pool with random
//!   operation sequences from a single thread (only `try_lease*`, which
//!   never waits, so every run is deterministic) and replays each operation
//!   on the reference model of `leasehold_testkit::model`, which checks the
//!   invariants after every step (see there).
//! * `threads_conserve_connections` runs 2–4 threads with random lease /
//!   hold / release / discard scripts against one pool and checks exclusivity
//!   and state isolation while they run, and exact counts at the end.
//! * `queued_request_reclaims_idle_connection_of_another_route` pins down a
//!   lost wake-up the threaded property found (a request queued for total
//!   capacity was not woken when a connection went idle on another route;
//!   fixed in the policy by the route word's `TOTAL_WAIT` flag).

use leasehold_testkit::model;

use leasehold::{Lax, Offlock, Policy, Pool, Reuse, State, Strict};
use model::{
    cases, disposal_caught_up, route_key, run_sequential, state_token, Config, Mock, Op, HOLDERS,
    ROUTES, STATES,
};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError};
use std::collections::HashSet;
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

fn config_strategy() -> impl Strategy<Value = Config> {
    (
        1usize..=4,
        1usize..=3,
        prop::option::weighted(0.3, 1usize..=3),
        prop_oneof![3 => Just(Reuse::Lifo), 1 => Just(Reuse::Fifo)],
    )
        .prop_flat_map(|(max_total, max_per_route, route2_max, reuse)| {
            (
                Just(max_total),
                Just(max_per_route),
                Just(route2_max),
                prop::option::weighted(0.5, 1..=max_total),
                Just(reuse),
            )
        })
        .prop_map(
            |(max_total, max_per_route, route2_max, max_idle, reuse)| Config {
                max_total,
                max_per_route,
                route2_max,
                max_idle,
                reuse,
            },
        )
}

/// Route 0 most often, so several connections of one route (and state) are
/// idle together and the reuse order shows.
fn route_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0), 2 => Just(1), 1 => Just(2)]
}

/// Stateless requests half the time, so idle connections get reused often.
fn state_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![2 => Just(0), 1 => Just(1), 1 => Just(2)]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..HOLDERS, route_strategy(), state_strategy())
            .prop_map(|(holder, route, state)| Op::TryLease { holder, route, state }),
        5 => (0..HOLDERS, 0usize..4).prop_map(|(holder, pick)| Op::Release { holder, pick }),
        1 => (0..HOLDERS, 0usize..4).prop_map(|(holder, pick)| Op::Discard { holder, pick }),
        1 => (0..HOLDERS, 0usize..4, state_strategy())
            .prop_map(|(holder, pick, state)| Op::SetState { holder, pick, state }),
        1 => (0..ROUTES, 1usize..=3).prop_map(|(route, max)| Op::SetRouteMax { route, max }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(256),
        // Regressions go next to this file, in `proptest_model.proptest-regressions`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn sequential_ops_match_reference_model(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        run_sequential::<Strict>(&cfg, &ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn sequential_ops_match_reference_model_offlock(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        run_sequential::<Offlock>(&cfg, &ops).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn sequential_ops_match_reference_model_lax(
        cfg in config_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        run_sequential::<Lax>(&cfg, &ops).map_err(TestCaseError::fail)?;
    }

}

// ---------------------------------------------------------------------------
// The multi-threaded property
// ---------------------------------------------------------------------------

/// How a thread ends one lease.
#[derive(Clone, Copy, Debug)]
enum End {
    Release,
    Discard,
    /// Sets the lease's state to state `i`, then returns it.
    Restate(usize),
}

/// One lease a thread takes, holds for `hold` yields, and ends.
#[derive(Clone, Copy, Debug)]
struct Step {
    route: usize,
    state: usize,
    hold: u8,
    end: End,
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let end = prop_oneof![
        4 => Just(End::Release),
        1 => Just(End::Discard),
        1 => (0..STATES).prop_map(End::Restate),
    ];
    (0..ROUTES, state_strategy(), 0u8..4, end).prop_map(|(route, state, hold, end)| Step {
        route,
        state,
        hold,
        end,
    })
}

/// The blocking wait each lease may take: far more than any step needs, so
/// a timeout means a request was left waiting while it could be served.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one thread's script. Holds at most one lease at a time, so threads
/// can never deadlock each other: every lease must be served.
fn run_script<P: Policy>(
    pool: &Pool<Mock, P>,
    barrier: &Barrier,
    in_use: &Mutex<HashSet<u64>>,
    script: &[Step],
) -> Result<(), String> {
    barrier.wait();
    for (i, step) in script.iter().enumerate() {
        let key = route_key(step.route);
        let started = Instant::now();
        let result = match state_token(step.state) {
            None => pool.lease(&key),
            Some(token) => pool.lease_with_state(&key, &token),
        };
        let mut lease = result.map_err(|e| {
            format!(
                "step {i} {step:?}: lease failed after {:?}: {e}",
                started.elapsed()
            )
        })?;
        let id = lease.id();
        if !in_use.lock().unwrap().insert(id) {
            return Err(format!(
                "invariant 2 (exclusivity) violated: step {i} {step:?} got connection {id}, \
                 which another lease holds"
            ));
        }
        if lease.state() != state_token(step.state).as_ref() || *lease.route() != key {
            return Err(format!(
                "invariant 7 (state isolation) violated: step {i} {step:?} got {lease:?} in \
                 state {:?}",
                lease.state()
            ));
        }
        for _ in 0..step.hold {
            thread::yield_now();
        }
        // Out of the set before it goes back, so whoever gets it next can
        // put it in.
        in_use.lock().unwrap().remove(&id);
        match step.end {
            End::Release => drop(lease),
            End::Discard => lease.discard(),
            End::Restate(state) => {
                lease.set_state(state_token(state));
                drop(lease);
            }
        }
    }
    Ok(())
}

fn run_threads<P: Policy>(cfg: &Config, scripts: &[Vec<Step>]) -> Result<(), TestCaseError> {
    let connector = Mock::new();
    let pool = cfg.build::<P>(&connector, Some(ACQUIRE_TIMEOUT));
    let barrier = Barrier::new(scripts.len());
    let in_use = Mutex::new(HashSet::new());
    let results: Vec<Result<(), String>> = thread::scope(|s| {
        let handles: Vec<_> = scripts
            .iter()
            .map(|script| {
                let (pool, barrier, in_use) = (&pool, &barrier, &in_use);
                s.spawn(move || run_script(pool, barrier, in_use, script))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    for (t, result) in results.iter().enumerate() {
        if let Err(e) = result {
            return Err(TestCaseError::fail(format!(
                "thread {t}: {e}\n  pool: {:?}",
                pool.stats()
            )));
        }
    }
    let stats = pool.stats();
    let total = stats.total;
    prop_assert_eq!(
        (total.leased, total.pending, total.connecting),
        (0, 0, 0),
        "pool at rest: {:?}",
        stats
    );
    prop_assert!(total.allocated() <= cfg.max_total, "caps: {:?}", stats);
    disposal_caught_up(&pool, &connector).map_err(TestCaseError::fail)?;
    for (route, route_stats) in &stats.routes {
        prop_assert!(
            route_stats.allocated() <= route_stats.max,
            "route {} over its cap: {:?}",
            route,
            stats
        );
    }
    prop_assert_eq!(
        connector.live(),
        total.idle as u64,
        "conservation: {:?}",
        stats
    );
    prop_assert_eq!(total.created, connector.opened());
    prop_assert_eq!(total.closed, connector.dropped());
    pool.shutdown();
    disposal_caught_up(&pool, &connector).map_err(TestCaseError::fail)?;
    let total = pool.stats().total;
    prop_assert_eq!(connector.live(), 0);
    prop_assert_eq!(total.created, total.closed);
    prop_assert_eq!(total.allocated(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(32),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        // A failing case may wait out ACQUIRE_TIMEOUT: bound the shrinking.
        max_shrink_time: 60_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn threads_conserve_connections(
        cfg in config_strategy(),
        scripts in prop::collection::vec(prop::collection::vec(step_strategy(), 1..12), 2..=4),
    ) {
        run_threads::<Strict>(&cfg, &scripts)?;
    }

    #[test]
    fn threads_conserve_connections_lax(
        cfg in config_strategy(),
        scripts in prop::collection::vec(prop::collection::vec(step_strategy(), 1..12), 2..=4),
    ) {
        run_threads::<Lax>(&cfg, &scripts)?;
    }

    #[test]
    fn threads_conserve_connections_offlock(
        cfg in config_strategy(),
        scripts in prop::collection::vec(prop::collection::vec(step_strategy(), 1..12), 2..=4),
    ) {
        run_threads::<Offlock>(&cfg, &scripts)?;
    }
}

// ---------------------------------------------------------------------------
// Regression: found by `threads_conserve_connections`
// ---------------------------------------------------------------------------

/// A request queued because the total was full must get a connection that
/// goes idle on *another* route afterwards (closed to make room for it),
/// not wait for some unrelated pool activity or its timeout.
///
/// Minimal sequence: `max_total(1)`; A leases route 2; B leases route 0
/// and queues (total full, nothing idle to reclaim yet); A returns its
/// connection (stateless, route 2 has no waiters: the lock-free return
/// path). Without the policy's `TOTAL_WAIT` flag B waited out its whole
/// acquire timeout with the idle route-2 connection sitting in the pool.
/// Both a stateless and a stateful B are tried.
#[test]
fn queued_request_reclaims_idle_connection_of_another_route() {
    for state in [None, Some(State::from("a"))] {
        let connector = Mock::new();
        let pool: Pool<Mock, Strict> = Pool::builder(connector.clone())
            .max_total(1)
            .max_per_route(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .build()
            .unwrap();
        let held = pool.lease(&2).unwrap();
        thread::scope(|s| {
            let waiter = s.spawn(|| {
                let started = Instant::now();
                let result = match &state {
                    None => pool.lease(&0),
                    Some(token) => pool.lease_with_state(&0, token),
                };
                result.map(|lease| (lease.id(), started.elapsed()))
            });
            let deadline = Instant::now() + Duration::from_secs(2);
            while pool.route_stats(&0).pending == 0 {
                assert!(Instant::now() < deadline, "the waiter never queued");
                thread::yield_now();
            }
            // Let its request be looked at (and found blocked) and park.
            thread::sleep(Duration::from_millis(100));
            drop(held);
            let (id, waited) = waiter
                .join()
                .unwrap()
                .expect("the idle route-2 connection is reclaimed for the waiter");
            assert_eq!(id, 1, "a new connection, opened after closing the idle one");
            assert!(waited < Duration::from_secs(2), "waited {waited:?}");
        });
        // Route 2's connection was closed (on the disposal thread: wait for
        // it); route 0's is idle.
        disposal_caught_up(&pool, &connector).unwrap();
        assert_eq!((connector.opened(), connector.live()), (2, 1));
        assert_eq!(pool.route_stats(&2).closed, 1);
        assert_eq!(pool.route_stats(&0).idle, 1);
    }
}
