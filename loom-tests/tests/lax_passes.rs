//! Loom model 12, of the `Lax` core alone: returns that go by a request
//! woken to compete before it has looked.
//!
//! The shared models (`models/mod.rs`) run with a pass limit of 1, under
//! which the first return that goes by a request is the last: the next is
//! handed to the request. So no return there ever finds `NUDGED` raised
//! with passes left, and spares its kick. This binary sets the limit to 3
//! for its own process (the limit is global, so the model lives apart from
//! the shared ones). Built only with `--cfg leasehold_loom`
//! (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

use leasehold_loom_tests::Tally;

/// The core the model checks.
type TestCore = leasehold_policies::unstable::LaxCore<u8, support::Conn>;

/// The reuse order of the core the model builds.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Lifo;

/// Returns that may go idle past a waiting request before one is handed to
/// it: enough for a newcomer's return to go by a woken request, with the
/// first return also counted.
const PASS_LIMIT: usize = 3;

// The helpers of the shared models (`models/support.rs`, without the
// models of `models/mod.rs`); this model needs only some of them.
mod models {
    use super::{TestCore, REUSE};

    #[allow(dead_code)]
    pub(crate) mod support;
}

use models::support::{self, newcomer_races_a_waiter};

/// Model 12 — a newcomer's return while the request woken for an earlier
/// return has yet to look.
///
/// B queues while A (the main thread) holds the connection; A gives it
/// back, which goes idle and wakes B to take it. C, a newcomer that will
/// not wait, may barge in and lease the connection, and gives it back,
/// before or after B looks. A return that finds `NUDGED` up wakes nobody:
/// B must find that connection when it looks. A return after B looked
/// and found nothing must wake B again. B must end with the connection.
///
/// Catches: a look that reads a shard before it lowers `NUDGED`, or with a
/// plain load (C's push lands between: C spares its kick, B misses the
/// connection, and B parks forever: loom reports a deadlock); a return that
/// spares its kick while the flag is down; a flag left up after the last
/// look.
#[test]
fn return_goes_by_a_woken_request_before_it_looks() {
    leasehold_policies::unstable::set_loom_pass_limit(PASS_LIMIT);
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || seen.note(newcomer_races_a_waiter(1) > 0));
    tally.assert_both("return by a woken request", ["B first", "C ahead"]);
}
