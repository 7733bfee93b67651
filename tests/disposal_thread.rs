//! Dropping a pool stops and joins its disposal thread, after the thread
//! has closed everything: no thread is left behind, no connection unclosed.
//! (A test binary of its own: it counts the process's threads.)

use leasehold::mock::MockConnector;
use leasehold::{Lax, Policy, Pool, Strict};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

fn leaves_nothing_behind<P: Policy>() {
    let before = threads();
    let connector = MockConnector::<()>::new();
    let pool: Pool<_, P> = Pool::builder(connector.clone()).build().unwrap();
    assert_eq!(threads(), before + 1, "one disposal thread");
    let leases: Vec<_> = (0..5).map(|_| pool.lease(&()).unwrap()).collect();
    drop(leases);
    pool.lease(&()).unwrap().discard();
    drop(pool);
    assert_eq!(threads(), before, "the disposal thread is joined");
    assert_eq!(connector.live(), 0);
    assert_eq!(connector.closed_by_pool(), 5);
}

#[test]
fn dropping_the_pool_joins_the_disposal_thread() {
    if threads() == 0 {
        eprintln!("no /proc/self/task here: cannot count threads");
        return;
    }
    leaves_nothing_behind::<Strict>();
    leaves_nothing_behind::<Lax>();
}
