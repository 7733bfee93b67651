//! The end state every cancellation test checks: nothing lost.

use crate::wait::eventually;
use leasehold::mock::MockConnector;
use leasehold::{Policy, Pool, RouteKey};

/// No request waits, nothing is leased or connecting, and every live
/// connection is idle.
pub(crate) fn settled<R: RouteKey, P: Policy>(
    connector: &MockConnector<R>,
    pool: &Pool<MockConnector<R>, P>,
) {
    let total = pool.stats().total;
    assert_eq!(
        (total.leased, total.pending, total.connecting),
        (0, 0, 0),
        "{total:?}"
    );
    eventually("closed connections are dropped", || {
        connector.live() == total.idle as u64
    });
}
