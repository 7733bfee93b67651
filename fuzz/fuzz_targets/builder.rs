//! Fuzzes the builder and a short life of the pool it builds.
//!
//! Random settings must build exactly when they are valid (and fail with the
//! matching `ConfigError` otherwise); a pool that builds is then driven with
//! a random sequence of non-blocking leases, returns, discards, state
//! changes, cap changes and a shutdown, checking the caps after every step
//! and that every connection opened is closed in the end (at shutdown with
//! inline disposal; once the pool is dropped, which joins the disposal
//! thread, with background disposal). Every policy is driven (the input
//! picks one); `Offlock` must refuse inline disposal.

#![no_main]

use arbitrary::Arbitrary;
use leasehold::mock::MockConnector;
use leasehold::{
    ConfigError, Disposal, Error, Lax, Lease, Offlock, Policy, Pool, Reuse, State, Strict,
};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Settings {
    max_total: u16,
    max_per_route: u8,
    overrides: Vec<(u8, u8)>,
    max_idle: Option<u16>,
    acquire_timeout_us: Option<u16>,
    connect_timeout_us: Option<u16>,
    fifo: bool,
    inline_disposal: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    TryLease { route: u8, state: Option<u8> },
    Return { pick: u8 },
    Discard { pick: u8 },
    SetState { pick: u8, state: Option<u8> },
    SetRouteMax { route: u8, max: u8 },
    Shutdown,
}

#[derive(Arbitrary, Debug)]
struct Input {
    policy: u8,
    settings: Settings,
    ops: Vec<Op>,
}

fn state(token: Option<u8>) -> Option<State> {
    token.map(|t| State::new(format!("user{}", t % 3)))
}

fuzz_target!(|input: Input| match input.policy % 3 {
    0 => drive::<Strict>(&input),
    1 => drive::<Lax>(&input),
    _ => drive::<Offlock>(&input),
});

/// A timeout from a fuzzed byte: zero (refused), 1–3 µs, or
/// `Duration::MAX` (no deadline).
fn timeout(us: u16) -> Duration {
    match us % 5 {
        4 => Duration::MAX,
        us => Duration::from_micros(u64::from(us)),
    }
}

fn drive<P: Policy>(input: &Input) {
    let s = &input.settings;
    let connector = MockConnector::<u8>::new();
    let mut builder = Pool::builder(connector.clone())
        .policy::<P>()
        .max_total(usize::from(s.max_total % 64))
        .max_per_route(usize::from(s.max_per_route % 8))
        .reuse(if s.fifo { Reuse::Fifo } else { Reuse::Lifo })
        .disposal(if s.inline_disposal {
            Disposal::Inline
        } else {
            Disposal::default()
        });
    for &(route, max) in s.overrides.iter().take(4) {
        builder = builder.route_max(route % 4, usize::from(max % 8));
    }
    if let Some(idle) = s.max_idle {
        builder = builder.max_idle(usize::from(idle % 80));
    }
    if let Some(us) = s.acquire_timeout_us {
        builder = builder.acquire_timeout(timeout(us));
    }
    if let Some(us) = s.connect_timeout_us {
        builder = builder.connect_timeout(timeout(us));
    }
    let max_total = usize::from(s.max_total % 64);
    let valid = max_total > 0
        && s.max_per_route % 8 > 0
        // A later override of the same route replaces the earlier one.
        && (0..4u8).all(|route| {
            s.overrides
                .iter()
                .take(4)
                .rev()
                .find(|&&(r, _)| r % 4 == route)
                .is_none_or(|&(_, max)| max % 8 > 0)
        })
        && s.max_idle.is_none_or(|idle| usize::from(idle % 80) <= max_total)
        && s.acquire_timeout_us.is_none_or(|us| !timeout(us).is_zero())
        && s.connect_timeout_us.is_none_or(|us| !timeout(us).is_zero())
        && !(P::DISPOSES_OFF_THREAD && s.inline_disposal);
    let pool = match builder.build() {
        Ok(pool) => {
            assert!(valid, "invalid settings built: {s:?}");
            pool
        }
        Err(error) => {
            assert!(!valid, "valid settings refused: {s:?}: {error}");
            assert!(matches!(
                error,
                ConfigError::Limits(_)
                    | ConfigError::ZeroTimeout(_)
                    | ConfigError::InlineDisposal(_)
            ));
            return;
        }
    };
    let mut leases: Vec<Lease<'_, MockConnector<u8>, P>> = Vec::new();
    for op in input.ops.iter().take(256) {
        match op {
            Op::TryLease {
                route,
                state: token,
            } => {
                let wanted = state(*token);
                let result = match &wanted {
                    Some(state) => pool.try_lease_with_state(&(route % 4), state),
                    None => pool.try_lease(&(route % 4)),
                };
                match result {
                    Ok(lease) => {
                        assert_eq!(lease.state(), wanted.as_ref(), "state isolation");
                        leases.push(lease);
                    }
                    Err(Error::Exhausted(_) | Error::Closed) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            }
            Op::Return { pick } if !leases.is_empty() => {
                drop(leases.swap_remove(usize::from(*pick) % leases.len()));
            }
            Op::Discard { pick } if !leases.is_empty() => {
                leases
                    .swap_remove(usize::from(*pick) % leases.len())
                    .discard();
            }
            Op::SetState { pick, state: token } if !leases.is_empty() => {
                let at = usize::from(*pick) % leases.len();
                leases[at].set_state(state(*token));
            }
            Op::SetRouteMax { route, max } => {
                pool.set_route_max(&(route % 4), usize::from(max % 8).max(1))
                    .expect("a cap of at least 1");
            }
            Op::Shutdown => pool.shutdown(),
            _ => {}
        }
        let stats = pool.stats();
        assert!(stats.total.allocated() <= max_total, "total cap: {stats:?}");
        assert_eq!(stats.total.leased, leases.len(), "leased gauge: {stats:?}");
        let ids: std::collections::HashSet<u64> = leases.iter().map(|l| l.id()).collect();
        assert_eq!(ids.len(), leases.len(), "a connection leased twice");
    }
    pool.shutdown();
    drop(leases);
    if s.inline_disposal {
        assert_eq!(connector.live(), 0, "every connection closed at shutdown");
    }
    // Dropping the pool joins the disposal thread, which closes the rest.
    drop(pool);
    assert_eq!(
        connector.live(),
        0,
        "every connection closed after shutdown"
    );
}
