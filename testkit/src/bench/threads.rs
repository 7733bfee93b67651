//! Timing work on threads that run without pause, for `iter_custom`.
//!
//! A crew of threads loops over the work from the first batch criterion
//! asks for to the last, as in HikariCP's JMH benchmark, where each thread
//! loops for the length of the measurement; a batch is the time the crew
//! takes for its next `ops` cycles. The threads never stop between batches,
//! so every batch sees the pool as a service with that many threads sees it
//! once it has run a while: with more threads than cores, threads are
//! preempted while they hold connections, and the waiters that leaves
//! queue up.
//!
//! Threads started afresh for each batch would not do: with 256 threads on
//! 2 cores a batch of 2^17 cycles lasts less than the scheduler takes to
//! give each thread one turn, so most threads run no cycle and the queues a
//! fair pool builds under preemption never form. [`steady`] is that
//! harness (`benches/contention.rs`); [`timed`], a fixed amount of work
//! shared by a few threads, is the other (`benches/routes.rs`, 8 threads,
//! each on its own route mix).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// Cycles a thread runs between two looks at the crew's counters: few
/// enough looks that they cost under 1 % of the fastest pool's cycle.
const CHUNK: u64 = 256;

/// How long the crew runs before the first batch, so that every thread has
/// had turns on a core (256 threads on 2 cores, one scheduler slice each:
/// about 100 ms).
const SETTLE: Duration = Duration::from_millis(150);

/// Where the threads wait until every one of them is there.
///
/// Each sleeps (parks) until the opener wakes it; the opener wakes them
/// all, one system call each, rather than the chain of hand-offs of a
/// `std::sync::Barrier`, whose waiters each wait for the one before to
/// release its mutex (256 threads on 2 cores took 11 ms to start that way).
struct Gate {
    /// How many threads the gate waits for.
    threads: usize,
    arrived: AtomicUsize,
    open: AtomicBool,
    opener: Thread,
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
    fn open_for<'a>(&self, waiting: impl Iterator<Item = &'a Thread>) -> Instant {
        while self.arrived.load(Ordering::Acquire) < self.threads {
            thread::park();
        }
        let now = Instant::now();
        self.open.store(true, Ordering::Release);
        waiting.for_each(Thread::unpark);
        now
    }
}

/// What the crew and the thread timing it share.
struct Crew {
    gate: Gate,
    /// Cycles completed, in whole chunks.
    done: AtomicU64,
    /// The count whose crossing the timer waits for (`u64::MAX`: none).
    mark: AtomicU64,
    /// When the mark was crossed, and the count just then.
    crossed: Mutex<Option<(Instant, u64)>>,
    /// Whether the workers time their acquires (not before the first batch
    /// is over: that one is criterion's warm-up).
    record: AtomicBool,
    stop: AtomicBool,
    timer: Thread,
}

impl Crew {
    fn new(threads: usize) -> Self {
        Self {
            gate: Gate::new(threads),
            done: AtomicU64::new(0),
            mark: AtomicU64::new(u64::MAX),
            crossed: Mutex::new(None),
            record: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            timer: thread::current(),
        }
    }

    /// A worker finished `n` cycles: counts them, and if that crosses the
    /// mark, notes when and wakes the timer.
    fn completed(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::AcqRel) + n;
        if done >= self.mark.load(Ordering::Acquire)
            && self.mark.swap(u64::MAX, Ordering::AcqRel) != u64::MAX
        {
            let now = Instant::now();
            *self.crossed.lock().expect("no worker panics holding it") = Some((now, done));
            self.timer.unpark();
        }
    }

    /// Waits until the count reaches `mark`; returns when, and the count.
    fn cross(&self, mark: u64) -> (Instant, u64) {
        *self.crossed.lock().expect("no worker panics holding it") = None;
        self.mark.store(mark, Ordering::Release);
        loop {
            if let Some(crossed) = self.crossed.lock().expect("unpoisoned").take() {
                return crossed;
            }
            thread::park();
        }
    }

    /// Times the crew's next `ops` cycles. The count moves by whole chunks,
    /// so the time is scaled to the cycles actually counted.
    fn batch(&self, ops: u64) -> Duration {
        let (start, from) = self.cross(self.done.load(Ordering::Acquire) + 1);
        let (end, to) = self.cross(from + ops);
        let took = end
            .duration_since(start)
            .mul_f64(ops as f64 / (to - from) as f64);
        took.max(Duration::from_nanos(1))
    }
}

/// Runs `work` on `threads` threads, without pause, while `measure` runs:
/// each thread makes its state with `state()` and calls `work(&mut state, n,
/// record)` for chunks of `n` cycles, `record` saying whether the cycles'
/// acquires are to be timed. `measure` is handed a clock that returns how
/// long the crew takes for its next `ops` cycles; the threads start at the
/// clock's first call (and run [`SETTLE`] before it times anything) and
/// stop when `measure` returns, so a `measure` that never calls it (a
/// filtered benchmark) starts none. Returns the states, in the threads'
/// order (none if no thread started).
pub fn steady<S: Send>(
    threads: usize,
    state: impl Fn() -> S,
    work: impl Fn(&mut S, u64, bool) + Sync,
    measure: impl FnOnce(&mut dyn FnMut(u64) -> Duration),
) -> Vec<S> {
    assert!(threads > 0, "at least one thread");
    let crew = &Crew::new(threads);
    let work = &work;
    thread::scope(|scope| {
        let mut workers = Vec::new();
        let mut clock = |ops: u64| {
            if workers.is_empty() {
                workers = (0..threads)
                    .map(|_| {
                        let mut state = state();
                        scope.spawn(move || {
                            crew.gate.pass();
                            while !crew.stop.load(Ordering::Acquire) {
                                work(&mut state, CHUNK, crew.record.load(Ordering::Relaxed));
                                crew.completed(CHUNK);
                            }
                            state
                        })
                    })
                    .collect();
                crew.gate.open_for(workers.iter().map(|w| w.thread()));
                thread::sleep(SETTLE);
            }
            let took = crew.batch(ops);
            crew.record.store(true, Ordering::Relaxed);
            took
        };
        measure(&mut clock);
        crew.stop.store(true, Ordering::Release);
        workers
            .into_iter()
            .map(|w| w.join().expect("worker panicked"))
            .collect()
    })
}

/// The fixed-work harness `benches/routes.rs` uses: runs `iters`
/// iterations of `work` on one thread per element of `states`: each thread
/// calls `work(&mut state, n)` for chunks of `n` iterations it takes from
/// the shared count, until none are left. Returns
/// the wall time from the gate's opening to the end of the last chunk (at
/// least a nanosecond, as criterion rejects zero) and the states, in order.
///
/// A thread's state is made before the clock starts, so whatever it
/// allocates (a histogram, say) is not timed.
pub fn timed<S: Send>(
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
