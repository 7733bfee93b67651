//! Timing work spread over threads, for `iter_custom`.
//!
//! The threads of a batch take their cycles from a shared count in chunks,
//! as they run, rather than each doing a fixed share. With fixed shares
//! and more threads than cores, a thread that got a core ran its share to
//! the end before the next one started (256 threads on 2 cores: 512
//! cycles, done in 30–70 µs, against the scheduler's slice of
//! milliseconds), so a batch timed 256 thread starts and exits in turn,
//! with rarely more than two threads alive, instead of a pool under 256
//! threads. Taking chunks, every thread stays alive and runnable until the
//! batch is done, as in HikariCP's JMH benchmark, where each thread loops
//! for the length of the measurement; threads are preempted, holding
//! connections or not, as in a service with more threads than cores.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Cycles a thread takes at a time: few enough claims that the shared
/// count costs under 1 % of the fastest pool's cycle.
const CHUNK: u64 = 256;

/// Where the threads of a batch wait until every one of them is there.
///
/// Each sleeps (parks) until the opener wakes it; the opener wakes them
/// all, one system call each, rather than the chain of hand-offs of a
/// `std::sync::Barrier`, whose waiters each wait for the one before to
/// release its mutex (256 threads on 2 cores took 11 ms to start that way).
/// Both sides make a fixed number of system calls per thread, as starting
/// and ending the thread does (see `benches/syscalls.sh`).
struct Gate {
    /// How many threads the gate waits for.
    threads: usize,
    arrived: AtomicUsize,
    open: AtomicBool,
    opener: thread::Thread,
}

impl Gate {
    /// A gate for `threads` threads, opened by the calling thread.
    fn new(threads: usize) -> Self {
        Self {
            threads,
            arrived: AtomicUsize::new(0),
            open: AtomicBool::new(false),
            opener: thread::current(),
        }
    }

    /// Counts the calling thread in (waking the opener if it is the last),
    /// then sleeps until the gate opens.
    fn pass(&self) {
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            self.opener.unpark();
        }
        while !self.open.load(Ordering::Acquire) {
            thread::park();
        }
    }

    /// Waits for every thread to arrive, then opens the gate and wakes
    /// each of `waiting`; returns when it opened.
    fn open_for<'a>(&self, waiting: impl Iterator<Item = &'a thread::Thread>) -> Instant {
        while self.arrived.load(Ordering::Acquire) < self.threads {
            thread::park();
        }
        let now = Instant::now();
        self.open.store(true, Ordering::Release);
        waiting.for_each(thread::Thread::unpark);
        now
    }
}

/// Runs `iters` iterations of `work` on one thread per element of
/// `states`: each thread calls `work(&mut state, n)` for chunks of `n`
/// iterations it takes from the shared count, until none are left. Returns
/// the wall time from the gate's opening to the end of the last chunk (at
/// least a nanosecond, as criterion rejects zero) and the states, in order.
///
/// A thread's state is made before the clock starts, so whatever it
/// allocates (a histogram, say) is not timed.
pub(crate) fn timed<S: Send>(
    states: Vec<S>,
    iters: u64,
    work: impl Fn(&mut S, u64) + Sync,
) -> (Duration, Vec<S>) {
    let threads = states.len();
    assert!(threads > 0, "at least one thread");
    let gate = Gate::new(threads);
    let left = AtomicU64::new(iters);
    let (opened, results): (Instant, Vec<(Option<Instant>, S)>) = thread::scope(|scope| {
        let workers: Vec<_> = states
            .into_iter()
            .map(|mut state| {
                let (gate, left, work) = (&gate, &left, &work);
                scope.spawn(move || {
                    gate.pass();
                    let mut end = None;
                    loop {
                        let before = left
                            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                                (n > 0).then(|| n.saturating_sub(CHUNK))
                            })
                            .unwrap_or(0);
                        if before == 0 {
                            return (end, state);
                        }
                        work(&mut state, before.min(CHUNK));
                        end = Some(Instant::now());
                    }
                })
            })
            .collect();
        let opened = gate.open_for(workers.iter().map(|w| w.thread()));
        let results = workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect();
        (opened, results)
    });
    let end = results
        .iter()
        .filter_map(|r| r.0)
        .max()
        .expect("some thread ran a chunk");
    let took = end.duration_since(opened).max(Duration::from_nanos(1));
    (took, results.into_iter().map(|r| r.1).collect())
}
