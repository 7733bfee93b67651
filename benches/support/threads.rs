//! Timing work spread over threads, for `iter_custom`.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// Runs `work(state, share)` on one thread per element of `states`; the
/// threads share `iters` iterations and start together. Returns the wall
/// time from the first thread's start to the last thread's end (at least a
/// nanosecond, as criterion rejects zero) and what each thread's `work`
/// returned, in the order of `states`.
///
/// A thread's state is made before the clock starts, so whatever it
/// allocates (a histogram, say) is not timed.
pub(crate) fn timed<S: Send, R: Send>(
    states: Vec<S>,
    iters: u64,
    work: impl Fn(S, u64) -> R + Sync,
) -> (Duration, Vec<R>) {
    let threads = states.len() as u64;
    assert!(threads > 0, "at least one thread");
    let barrier = Barrier::new(states.len());
    let results: Vec<(Instant, Instant, R)> = thread::scope(|scope| {
        let workers: Vec<_> = states
            .into_iter()
            .zip(0..)
            .map(|(state, t)| {
                let share = iters / threads + u64::from(t < iters % threads);
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let result = work(state, share);
                    (start, Instant::now(), result)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect()
    });
    let start = results.iter().map(|r| r.0).min().expect("threads > 0");
    let end = results.iter().map(|r| r.1).max().expect("threads > 0");
    let took = end.duration_since(start).max(Duration::from_nanos(1));
    (took, results.into_iter().map(|r| r.2).collect())
}
