//! Waiting for something another thread does, with a bound: for "the other
//! thread is now queued" and "the disposal thread has closed it".

use std::fmt::Debug;
use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every millisecond until it holds; panics with `what` after
/// 10 s.
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    settle(what, Duration::from_secs(10), || {
        if cond() {
            Ok(())
        } else {
            Err("still false")
        }
    });
}

/// Polls `probe` every millisecond until it gives `Ok`, and returns what it
/// gave; once `limit` has passed, panics with `what` and the last `Err`.
pub fn settle<T, E: Debug>(
    what: &str,
    limit: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(done) => return done,
            Err(last) => assert!(
                start.elapsed() < limit,
                "never happened: {what} (last seen: {last:?})"
            ),
        }
        thread::sleep(Duration::from_millis(1));
    }
}
