//! Loom model 17, of the `Lax` core alone: the time bound on how long the
//! oldest request of a route may be passed by returns
//! (`Lax::STARVE_AFTER`).
//!
//! The engine's clock is global to the process, and so is `Lax`'s pass
//! limit, which this binary raises so that only time can end the passing:
//! the model lives apart from the shared ones. Built only with
//! `--cfg leasehold_loom` (`loom-tests/run.sh`).

#![cfg(leasehold_loom)]

use leasehold_loom_tests::Tally;
use leasehold_policies::unstable::Core;
use leasehold_policies::unstable::{set_loom_clock, set_loom_pass_limit};
use leasehold_policies::Lax;

/// The core the model checks.
type TestCore = leasehold_policies::unstable::LaxCore<u8, support::Conn>;

/// The reuse order of the core the model builds.
const REUSE: leasehold_policies::Reuse = leasehold_policies::Reuse::Lifo;

/// More returns than any execution makes: the count never hands a return
/// over, only time does.
const PASS_LIMIT: usize = 1000;

// The helpers of the shared models (`models/support.rs`, without the
// models of `models/mod.rs`); this model needs only some of them.
mod models {
    use super::{TestCore, REUSE};

    #[allow(dead_code)]
    pub(crate) mod support;
}

use models::support::{self, assert_quiet, barge_c, disposed_ids, leased_core, queue_b};
use std::time::Duration;

/// One execution of the newcomer-vs-waiter race (as model 11) with a
/// clock: B queues behind A's lease at the clock's 0, the clock moves to
/// `waited`, then A gives the connection back while C, a newcomer that
/// will not wait, asks for it once. B must end with it; returns whether C
/// got it ahead of B.
fn race_after(waited: Duration) -> bool {
    set_loom_clock(0);
    let (core, disposed, held) = leased_core();
    let (b, served) = queue_b(&core);
    set_loom_clock(u64::try_from(waited.as_nanos()).expect("a short wait"));
    let c = barge_c(&core, served, 1);
    core.release(held, true);
    b.join().unwrap();
    let ahead = c.join().unwrap();

    assert_quiet(&core, 1, 0);
    assert!(disposed_ids(&disposed).is_empty(), "nothing is disposed");
    ahead > 0
}

/// Model 17 — a return while the oldest request has waited the bound.
///
/// B queued at 0 and the clock reads `STARVE_AFTER` when A gives the
/// connection back: the return is handed to B, and C, however it is
/// scheduled, never gets the connection ahead of B. Beside it, the same
/// race a little under the bound reaches both outcomes, so the model would
/// see C ahead if the bound let it.
///
/// Catches: a return that counts its pass without looking at the time
/// (shown: C gets ahead); a serializer that does not record when the head
/// of the queue it looks at queued (shown: C gets ahead).
#[test]
fn returns_go_to_a_request_that_waited_the_bound() {
    set_loom_pass_limit(PASS_LIMIT);
    loom::model(|| assert!(!race_after(Lax::STARVE_AFTER), "C got ahead of B"));

    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    let under = Lax::STARVE_AFTER - Duration::from_micros(1);
    loom::model(move || seen.note(race_after(under)));
    tally.assert_both("a return under the bound", ["B first", "C ahead"]);
}
