//! Loom model of [`Capped`]: a count and its cap in one word, the cap
//! changed while others take and give back units.
//!
//! One unit of a cap of 2 is taken; A takes another while B lowers the
//! cap to 1. A take is ordered against the change: either A's take came
//! first, and B's change saw a count of 2, or it came after and found the
//! count at the new cap, and failed. Over every interleaving, A never takes
//! a unit that B's change did not see.
//!
//! Bug it catches: a take that reads the cap once and then adds to the
//! count (what keeping them in two atomics amounts to), shown by editing
//! `Capped::try_take` to take the cap from its first load only: A reads
//! cap 2, B lowers it and sees a count of 1, A's add then succeeds over
//! the new cap, and the model fails.
//!
//! Built only with `--cfg leasehold_loom`; `loom-tests/run.sh capped` runs
//! it alone.

#![cfg(leasehold_loom)]

use leasehold_loom_tests::Tally;
use leasehold_policies::unstable::Capped;
use loom::sync::Arc;
use loom::thread;

#[test]
fn cap_change_is_ordered_against_takes() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let capped = Arc::new(Capped::new(2));
        assert!(capped.try_take());
        let a = {
            let capped = capped.clone();
            thread::spawn(move || capped.try_take())
        };
        let b = {
            let capped = capped.clone();
            thread::spawn(move || capped.set_cap(1))
        };
        let took = a.join().unwrap();
        let count_at_change = b.join().unwrap();
        assert_eq!(capped.count(), 1 + usize::from(took));
        assert_eq!(capped.cap(), 1);
        assert_eq!(
            count_at_change,
            1 + usize::from(took),
            "A's take and B's change were not ordered"
        );
        seen.note(took);
    });
    tally.assert_both("cap change vs take", ["refused", "took"]);
}
