//! The end states tests check once every request has returned: nothing
//! waiting, leased or connecting; for the cancellation tests, also nothing
//! lost.
//!
//! A request is answered before the thread that answered it has finished
//! its bookkeeping (a grant is published, then the waiter uncounted; a
//! failed connect wakes its waiters, then gives its permit back), so the
//! gauges are waited for, not read once: a count that never comes back to
//! zero still fails.

use crate::wait::{eventually, settle};
use leasehold::mock::MockConnector;
use leasehold::{Connector, Policy, Pool, RouteKey, Stats};
use std::time::Duration;

/// Waits (up to 10 s) until no request waits and nothing is leased or
/// connecting, and returns the pool's totals then.
pub fn quiet<C: Connector, P: Policy>(pool: &Pool<C, P>) -> Stats {
    settle("the pool to go quiet", Duration::from_secs(10), || {
        let total = pool.stats().total;
        if (total.leased, total.pending, total.connecting) == (0, 0, 0) {
            Ok(total)
        } else {
            Err(total)
        }
    })
}

/// [`quiet`], and every live connection is idle.
pub fn settled<R: RouteKey, P: Policy>(
    connector: &MockConnector<R>,
    pool: &Pool<MockConnector<R>, P>,
) {
    let total = quiet(pool);
    eventually("closed connections are dropped", || {
        connector.live() == total.idle as u64
    });
}
