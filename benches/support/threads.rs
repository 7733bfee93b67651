//! Timing work spread over threads, for `iter_custom`.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `work(thread, share)` on `threads` threads, which share `iters`
/// iterations and start together. Returns the wall time from the first
/// thread's start to the last thread's end (at least a nanosecond, as
/// criterion rejects zero).
pub(crate) fn timed(threads: usize, iters: u64, work: impl Fn(u64, u64) + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    let spans: Vec<(Instant, Instant)> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads as u64)
            .map(|t| {
                let share = iters / threads as u64 + u64::from(t < iters % threads as u64);
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(t, share);
                    (start, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    let start = spans.iter().map(|s| s.0).min().expect("threads > 0");
    let end = spans.iter().map(|s| s.1).max().expect("threads > 0");
    end.duration_since(start).max(Duration::from_nanos(1))
}
