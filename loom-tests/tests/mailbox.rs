//! Loom models of [`Mailbox`], the command queue from a pool's threads to
//! its event loop: a push that announces itself before it looks at the close
//! flag and hands the item back once closed, the consumer's pops, and the
//! consumer's close that waits for the pushes in flight and drains.
//!
//! Pushers record the ids handed back to them; the consumer records the ids
//! it pops and the ids it drains. Each id pushed must end in exactly one of
//! the three records: one in none was lost in the queue after the consumer
//! was gone (a connect whose capacity is never given back), one in two was
//! run twice. A closer that waits for a push that never leaves spins
//! forever, and loom stops the model ("exceeded maximum number of
//! branches").
//!
//! Bookkeeping (the records, the tallies) uses `std` primitives, so that it
//! adds no scheduling points to the state space loom explores.
//!
//! Built only with `--cfg leasehold_loom`; the models' names start with
//! `mailbox_`, so `loom-tests/run.sh mailbox` runs them alone.

#![cfg(leasehold_loom)]

use leasehold_loom_tests::Tally;
use leasehold_policies::unstable::Mailbox;
use loom::sync::Arc;
use loom::thread::{self, JoinHandle};
use std::sync::Mutex;

/// Ids, in the order they were recorded.
type Record = std::sync::Arc<Mutex<Vec<u32>>>;

fn ids(record: &Record) -> Vec<u32> {
    record.lock().unwrap().clone()
}

/// One execution's mailbox and the records of where each id ended.
#[derive(Default)]
struct Harness {
    mailbox: Arc<Mailbox<u32>>,
    popped: Record,
    drained: Record,
    handed_back: Record,
}

impl Harness {
    /// Pushes `id`; one handed back is recorded in `handed_back`. Returns
    /// whether it was queued.
    fn push(&self, id: u32) -> bool {
        match self.mailbox.push(id) {
            Ok(()) => true,
            Err(back) => {
                assert_eq!(back, id, "handed back another item");
                self.handed_back.lock().unwrap().push(back);
                false
            }
        }
    }

    /// [`push`](Self::push) of each of `ids`, in order, on a thread of its
    /// own.
    fn spawn_pusher(&self, ids: &'static [u32]) -> JoinHandle<()> {
        let pusher = Self {
            mailbox: self.mailbox.clone(),
            popped: self.popped.clone(),
            drained: self.drained.clone(),
            handed_back: self.handed_back.clone(),
        };
        thread::spawn(move || {
            for &id in ids {
                pusher.push(id);
            }
        })
    }

    /// The consumer's turn: one pop, recorded if it took something.
    fn pop(&self) {
        if let Some(id) = self.mailbox.pop() {
            self.popped.lock().unwrap().push(id);
        }
    }

    /// The consumer stops: close, wait for pushes in flight, drain into
    /// `drained`. Then checks the close holds: a push after it is handed
    /// back, and nothing more is queued (a second close-and-drain, which
    /// also spins forever if the refused push did not leave).
    fn close_and_drain(&self) {
        self.mailbox
            .close_and_drain(|id| self.drained.lock().unwrap().push(id));
        assert!(self.mailbox.is_closed());
        assert_eq!(self.mailbox.push(99), Err(99), "queued after the close");
        self.mailbox
            .close_and_drain(|id| panic!("{id} queued after the close and drain"));
    }

    /// Every id in `0..n` is in exactly one record.
    fn assert_each_once(&self, n: u32) {
        let (popped, drained, back) = (
            ids(&self.popped),
            ids(&self.drained),
            ids(&self.handed_back),
        );
        let mut all = [popped.as_slice(), &drained, &back].concat();
        all.sort_unstable();
        assert_eq!(
            all,
            (0..n).collect::<Vec<_>>(),
            "each item exactly once (popped: {popped:?}, drained: {drained:?}, handed back: {back:?})"
        );
    }
}

/// Model (a) — two pushes race the close: each item is drained or handed
/// back, exactly once.
///
/// Two threads push one item each while the consumer (the main thread)
/// closes and drains at once. A push whose announcement comes before the
/// close is drained; one after it is handed back.
///
/// Catches: a push that looks at `CLOSED` before it announces itself (it
/// sees the mailbox open, the closer finds no push in flight and drains,
/// then the item is queued: in no record); a closer that drains without
/// waiting for the pushes in flight, or decides it may stop from the word
/// as it was before its close (same); a push that queues after the close
/// instead of handing back, or does both (the id in no record, or in two);
/// a refused push that never leaves (the closer spins forever).
#[test]
fn mailbox_close_races_pushes() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let harness = Harness::default();
        let pushers = [harness.spawn_pusher(&[0]), harness.spawn_pusher(&[1])];
        harness.close_and_drain();
        for pusher in pushers {
            pusher.join().unwrap();
        }
        harness.assert_each_once(2);
        seen.note(!ids(&harness.handed_back).is_empty());
    });
    tally.assert_both("close vs pushes", ["all drained", "some handed back"]);
}

/// Model (b) — the consumer pops while a pusher pushes, then closes: nothing
/// lost, nothing twice, order kept.
///
/// One thread pushes 0 then 1; the consumer pops twice (taking what is
/// there, if anything), then closes and drains. What the consumer got,
/// popped then drained, must be the items the pusher had accepted, in push
/// order; what was handed back must be the rest (once a push sees the close,
/// every later one does).
///
/// Catches: a pop and a drain that both take an item (in two records); a
/// drain that does not wait for the push in flight, or a push that checks
/// the close before announcing itself (the item queued after the drain: in
/// no record); a close that can be un-seen (a push handed back, and a later
/// one accepted); a queue that reorders.
#[test]
fn mailbox_consumer_pops_then_closes() {
    let popped_some = std::sync::Arc::new(Tally::default());
    let handed_back_some = std::sync::Arc::new(Tally::default());
    let (seen_popped, seen_back) = (popped_some.clone(), handed_back_some.clone());
    loom::model(move || {
        let harness = Harness::default();
        let pusher = harness.spawn_pusher(&[0, 1]);
        harness.pop();
        harness.pop();
        harness.close_and_drain();
        pusher.join().unwrap();
        harness.assert_each_once(2);
        let got = [ids(&harness.popped), ids(&harness.drained)].concat();
        let back = ids(&harness.handed_back);
        assert_eq!(
            [got.as_slice(), &back].concat(),
            [0, 1],
            "accepted a prefix in order, handed back the rest (got: {got:?}, handed back: {back:?})"
        );
        seen_popped.note(!ids(&harness.popped).is_empty());
        seen_back.note(!back.is_empty());
    });
    popped_some.assert_both("pops then close", ["none popped", "some popped"]);
    handed_back_some.assert_both(
        "pops then close (pushes)",
        ["all accepted", "some handed back"],
    );
}

/// Model (c) — another thread pops while the consumer closes and drains,
/// and a push races both: the drain and the pop never take the same item,
/// and the push is never lost between them.
///
/// The mailbox holds item 0. One thread pushes item 1; another pops once;
/// the main thread closes and drains. (A pool has one consumer, but the
/// mailbox promises nothing less with two.)
///
/// Catches: a drain that takes an item without removing it from the queue,
/// or a pop that can take an item the drain took (in two records); a close
/// that stops waiting for the push when a pop empties the queue, instead
/// of when the push leaves (item 1 in no record).
#[test]
fn mailbox_pop_races_close_and_a_push() {
    let tally = std::sync::Arc::new(Tally::default());
    let seen = tally.clone();
    loom::model(move || {
        let harness = Harness::default();
        assert!(harness.push(0));
        let pusher = harness.spawn_pusher(&[1]);
        let popper = {
            let popper = Harness {
                mailbox: harness.mailbox.clone(),
                popped: harness.popped.clone(),
                ..Harness::default()
            };
            thread::spawn(move || popper.pop())
        };
        harness.close_and_drain();
        pusher.join().unwrap();
        popper.join().unwrap();
        harness.assert_each_once(2);
        seen.note(!ids(&harness.popped).is_empty());
    });
    tally.assert_both("pop vs close vs push", ["none popped", "one popped"]);
}
