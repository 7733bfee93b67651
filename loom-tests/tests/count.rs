//! Loom models of [`CountSum`] and [`CountPart`]: the idle-hit count of a
//! route, kept by each connection for itself (its holder adds with a load
//! and a store) and summed for the route by anyone, while connections are
//! handed from holder to holder and closed.
//!
//! One connection's part goes from a first holder to a second (through a
//! lock, as the pool hands connections over with synchronization), each
//! adding one; the second closes it, or a second connection's part counts
//! beside it. A reader sums meanwhile. Each model checks, over every
//! interleaving:
//!
//! * no sum is more than was added, and a later sum is never smaller (a
//!   closing part's count is never in the sum twice, nor missing);
//! * once every holder is done, the sum is exact: no add was lost in the
//!   hand-over.
//!
//! Bugs they catch: a close that adds its count to the closed total and
//! takes the part out of the open ones under two separate locks (a sum in
//! between counts it twice), shown by editing `CountPart::drop` so (both
//! models fail); and two holders adding at once, which the single-writer
//! add does not allow (an add is lost), shown by a model that shares one
//! part between two threads.
//!
//! Built only with `--cfg leasehold_loom`; `loom-tests/run.sh count` runs
//! them alone.

#![cfg(leasehold_loom)]

use leasehold_policies::unstable::{CountPart, CountSum};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Waits for the part in `slot`, then takes it.
fn take(slot: &Mutex<Option<CountPart>>) -> CountPart {
    loop {
        if let Some(part) = slot.lock().unwrap().take() {
            return part;
        }
        thread::yield_now();
    }
}

#[test]
fn count_handed_over_then_closed_is_summed_once() {
    loom::model(|| {
        let sum = Arc::new(CountSum::new());
        let slot = Arc::new(Mutex::new(None));
        let first = {
            let (sum, slot) = (sum.clone(), slot.clone());
            thread::spawn(move || {
                let part = sum.open();
                part.add_one();
                *slot.lock().unwrap() = Some(part);
            })
        };
        let second = {
            let slot = slot.clone();
            thread::spawn(move || {
                let part = take(&slot);
                part.add_one();
                drop(part);
            })
        };
        let reader = {
            let sum = sum.clone();
            thread::spawn(move || {
                let before = sum.total();
                let after = sum.total();
                assert!(
                    before <= 2 && after <= 2,
                    "more than was added: {before}, {after}"
                );
                assert!(after >= before, "the sum went back: {before} then {after}");
            })
        };
        first.join().unwrap();
        second.join().unwrap();
        reader.join().unwrap();
        assert_eq!(sum.total(), 2, "an add was lost");
    });
}

#[test]
fn count_of_a_closing_part_beside_an_open_one() {
    loom::model(|| {
        let sum = Arc::new(CountSum::new());
        let kept = sum.open();
        kept.add_one();
        let closing = {
            let sum = sum.clone();
            thread::spawn(move || {
                let part = sum.open();
                part.add_one();
                part.add_one();
                drop(part);
            })
        };
        let before = sum.total();
        kept.add_one();
        let after = sum.total();
        assert!(
            before <= 3 && after <= 4,
            "more than was added: {before}, {after}"
        );
        assert!(
            after > before,
            "the sum missed an add: {before} then {after}"
        );
        closing.join().unwrap();
        assert_eq!(sum.total(), 4);
        drop(kept);
        assert_eq!(sum.total(), 4);
    });
}
