//! Dropping a pool stops and joins its event loop and its closer, after the
//! closer has closed everything: no thread is left behind, no file
//! descriptor (the poller, its waker) open, no connection unclosed.
//! (A test binary of its own: it counts the process's threads and fds.)

use leasehold::mock::MockConnector;
use leasehold::{Lax, Offlock, Policy, Pool, Strict};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |tasks| tasks.count())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |fds| fds.count())
}

fn leaves_nothing_behind<P: Policy>() {
    let (threads_before, fds_before) = (threads(), fds());
    let connector = MockConnector::<()>::new();
    let pool: Pool<_, P> = Pool::builder(connector.clone())
        .policy::<P>()
        .build()
        .unwrap();
    assert_eq!(threads(), threads_before + 2, "an event loop and a closer");
    assert!(fds() > fds_before, "the event loop's poller is open");
    let leases: Vec<_> = (0..5).map(|_| pool.lease(&()).unwrap()).collect();
    drop(leases);
    pool.lease(&()).unwrap().discard();
    drop(pool);
    // `join` returns once a thread has run to its end, but the kernel may
    // list the task in /proc for a moment more: give it up to 5 s (a leaked
    // thread stays listed, and still fails this).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while threads() > threads_before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(threads(), threads_before, "both threads are joined");
    assert_eq!(fds(), fds_before, "the poller and its waker are closed");
    assert_eq!(connector.live(), 0);
    assert_eq!(connector.closed_by_pool(), 5);
}

#[test]
fn dropping_the_pool_joins_its_threads_and_closes_its_fds() {
    if threads() == 0 {
        eprintln!("no /proc/self/task here: cannot count threads");
        return;
    }
    leaves_nothing_behind::<Strict>();
    leaves_nothing_behind::<Lax>();
    leaves_nothing_behind::<Offlock>();
}
