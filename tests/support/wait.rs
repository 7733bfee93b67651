//! Waiting for something another thread does, with a bound: for "the other
//! thread is now queued" and "the disposal thread has closed it".

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every millisecond until it holds; panics with `what` after
/// 10 s.
pub(crate) fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never happened: {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}
