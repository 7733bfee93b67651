//! Loom models of the slot arena's growth: new connections claim slots no
//! one used before (a CAS on the count of slots made, never past the cap)
//! and allocate their segment on first use (a `OnceLock`); a closed
//! connection's slot goes to the free list and is reused before a fresh one
//! is made. Under loom the first segment holds two slots, so these models
//! cross a segment boundary with three connections. Built only with
//! `--cfg leasehold_loom` (`loom-tests/run.sh arena`).

#![cfg(leasehold_loom)]

use leasehold_policies::unstable::{Core, Grant, Held, Item, Limits, StrictCore};
use leasehold_policies::State;
use loom::sync::Arc;
use loom::thread;
use std::sync::Mutex;

/// A connection stand-in: an id to follow it through the core.
#[derive(Debug)]
struct Conn(u32);

impl Item for Conn {
    fn state(&self) -> Option<&State> {
        None
    }
}

type TestCore = StrictCore<u8, Conn>;

const ROUTE: u8 = 0;

/// A core allowing `max` connections on `ROUTE`, whose disposer records
/// the ids it closes.
fn core(max: usize) -> (Arc<TestCore>, std::sync::Arc<Mutex<Vec<u32>>>) {
    let closed = std::sync::Arc::new(Mutex::new(Vec::new()));
    let log = closed.clone();
    let core = TestCore::new(
        Limits::new(max, max),
        std::sync::Arc::new(move |conn: Conn| log.lock().unwrap().push(conn.0)),
    );
    (Arc::new(core), closed)
}

/// Opens connection `id` on `ROUTE`, which must have capacity for it.
fn open(core: &TestCore, id: u32) -> Held {
    match core.acquire_now(&ROUTE, None) {
        Some(Grant::Connect(permit)) => core.connected(permit, Conn(id)).expect("open"),
        other => panic!("connection {id} must be opened, got {other:?}"),
    }
}

/// Two threads open a connection each while two are held: both claim a
/// fresh slot of the same new segment (the second, slots 2 and 3), which
/// one of them allocates while the other waits for it. Each must get a slot of its
/// own, holding its own connection, and every connection must be idle once
/// given back.
#[test]
fn racing_connects_allocate_a_segment_once() {
    loom::model(|| {
        let (core, closed) = core(4);
        let held: Vec<Held> = (1..=2).map(|id| open(&core, id)).collect();
        let openers: Vec<_> = (3..=4)
            .map(|id| {
                let core = core.clone();
                thread::spawn(move || {
                    let held = open(&core, id);
                    assert_eq!(core.item(&held).0, id, "a slot of its own");
                    held
                })
            })
            .collect();
        let mut held: Vec<Held> = held
            .into_iter()
            .chain(openers.into_iter().map(|t| t.join().unwrap()))
            .collect();
        let mut ids: Vec<u32> = held.iter().map(|h| core.item(h).0).collect();
        ids.sort_unstable();
        assert_eq!(ids, [1, 2, 3, 4], "every connection in a slot of its own");
        for h in held.drain(..) {
            core.release(h, true);
        }
        let stats = core.route_stats(&ROUTE);
        assert_eq!((stats.idle, stats.leased), (4, 0), "{stats}");
        assert!(closed.lock().unwrap().is_empty(), "nothing closed");
    });
}

/// At the cap, one thread closes its connection while another opens one:
/// the opener gets capacity only once the closed slot is on the free list,
/// and must reuse it (the arena makes no slot past the cap), holding its
/// own connection.
#[test]
fn a_connect_at_the_cap_reuses_the_freed_slot() {
    loom::model(|| {
        let (core, closed) = core(3);
        let first = open(&core, 1);
        let second = open(&core, 2);
        let third = open(&core, 3);
        let closer = {
            let core = core.clone();
            thread::spawn(move || core.release(second, false))
        };
        let opener = {
            let core = core.clone();
            thread::spawn(move || match core.acquire_now(&ROUTE, None) {
                Some(Grant::Connect(permit)) => {
                    let held = core.connected(permit, Conn(4)).expect("open");
                    assert_eq!(core.item(&held).0, 4, "a slot of its own");
                    Some(held)
                }
                // At the cap: nothing was freed yet.
                None => None,
                Some(other) => panic!("expected a connect or nothing, got {other:?}"),
            })
        };
        closer.join().unwrap();
        let fourth = opener.join().unwrap();
        assert_eq!(*closed.lock().unwrap(), [2]);
        assert_eq!(core.item(&first).0, 1);
        assert_eq!(core.item(&third).0, 3);
        let leased = 2 + usize::from(fourth.is_some());
        assert_eq!(core.route_stats(&ROUTE).leased, leased);
        for held in [Some(first), Some(third), fourth].into_iter().flatten() {
            core.release(held, true);
        }
        assert_eq!(core.route_stats(&ROUTE).idle, leased);
    });
}
