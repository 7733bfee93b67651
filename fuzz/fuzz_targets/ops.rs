//! Differential fuzzing against the reference model: the input decodes
//! (with `arbitrary`) into a pool configuration and a sequence of
//! operations by several logical holders (non-blocking leases with and
//! without a state, returns, discards, state changes, route-cap changes),
//! interleaved on one thread. Each sequence drives every policy, and the
//! model of `leasehold_testkit::model` (the same one the proptest properties
//! use) predicts after every step the outcome of each lease, the connection
//! ids handed out, the per-route stats and the connector's counts; the caps,
//! exclusivity, conservation, no-lost-capacity and state isolation are
//! checked after every step, and a shutdown at the end must close
//! everything. A mismatch panics with the operations that led to it.

#![no_main]

use arbitrary::{Arbitrary, Result, Unstructured};
use leasehold::{Lax, Offlock, Reuse, Strict};
use leasehold_testkit::model::{run_sequential, Config, Op, HOLDERS, ROUTES, STATES};
use libfuzzer_sys::fuzz_target;

/// The most operations one input drives (longer inputs are cut).
const MAX_OPS: usize = 80;

struct Input {
    cfg: Config,
    ops: Vec<Op>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?}", self.cfg, self.ops)
    }
}

fn config(u: &mut Unstructured<'_>) -> Result<Config> {
    let max_total = u.int_in_range(1..=4)?;
    let max_per_route = u.int_in_range(1..=3)?;
    let route2_max = if u.ratio(1, 3)? {
        Some(u.int_in_range(1..=3)?)
    } else {
        None
    };
    let max_idle = if u.arbitrary()? {
        Some(u.int_in_range(1..=max_total)?)
    } else {
        None
    };
    let reuse = if u.ratio(1, 4)? {
        Reuse::Fifo
    } else {
        Reuse::Lifo
    };
    Ok(Config {
        max_total,
        max_per_route,
        route2_max,
        max_idle,
        reuse,
    })
}

fn op(u: &mut Unstructured<'_>) -> Result<Op> {
    let holder = u.choose_index(HOLDERS)?;
    let pick = u.int_in_range(0..=3)?;
    Ok(match u.int_in_range(0..=11)? {
        0..=3 => Op::TryLease {
            holder,
            route: u.choose_index(ROUTES)?,
            state: u.choose_index(STATES)?,
        },
        4..=8 => Op::Release { holder, pick },
        9 => Op::Discard { holder, pick },
        10 => Op::SetState {
            holder,
            pick,
            state: u.choose_index(STATES)?,
        },
        _ => Op::SetRouteMax {
            route: u.choose_index(ROUTES)?,
            max: u.int_in_range(1..=3)?,
        },
    })
}

impl<'a> Arbitrary<'a> for Input {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let cfg = config(u)?;
        let mut ops = Vec::new();
        while ops.len() < MAX_OPS && !u.is_empty() {
            ops.push(op(u)?);
        }
        Ok(Input { cfg, ops })
    }
}

fuzz_target!(|input: Input| {
    for result in [
        run_sequential::<Strict>(&input.cfg, &input.ops),
        run_sequential::<Lax>(&input.cfg, &input.ops),
        run_sequential::<Offlock>(&input.cfg, &input.ops),
    ] {
        if let Err(mismatch) = result {
            panic!("the pool left the model:\n{mismatch}");
        }
    }
});
