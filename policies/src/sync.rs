//! The synchronization vocabulary of the crate, swapped for loom's under
//! `cfg(leasehold_loom)`.
//!
//! Algorithm code imports atomics, `Arc`, `Mutex`, `OnceLock`, `UnsafeCell`,
//! the queues and parking (`thread`) from here and never names `std`,
//! `crossbeam` or `loom` itself, so the same code is what runs in production
//! and what loom model-checks.
//!
//! `UnsafeCell` follows loom's closure API (`with` / `with_mut`) in both
//! builds, so that every access to shared interior state is visible to loom's
//! causality checker.

#[cfg(not(leasehold_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use std::sync::{Arc, Mutex, OnceLock};

    /// Parking and waking threads.
    pub(crate) mod thread {
        pub(crate) use std::thread::{current, park, Thread};
    }

    /// A 128-bit atomic (cmpxchg16b on x86_64, casp/ldxp on aarch64).
    pub(crate) use portable_atomic::AtomicU128;

    /// A slot for the waker of one task, safe to re-register from any
    /// thread while another wakes it.
    pub(crate) use atomic_waker::AtomicWaker;

    /// A spin-loop hint; loom turns it into a yield so its scheduler moves on.
    #[inline]
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
    }

    /// Exponential backoff for a thread that lost a CAS to another core
    /// (`spin`: at most 64 hints at a time), or that waits for a peer to
    /// finish a step it has announced (`snooze`: spins, then yields the
    /// thread, so that a preempted peer gets to run).
    pub(crate) use crossbeam_utils::Backoff;

    /// Where the calling thread runs, to pick its shard: the CPU it is on
    /// where the OS says so without a syscall (Linux's `sched_getcpu`, read
    /// from the rseq area or the vDSO), else its [`thread_slot`]. Two threads
    /// running at once are then on two shards, whichever threads they are;
    /// a thread moved to another CPU steals its connection back, once.
    #[inline]
    pub(crate) fn locality() -> usize {
        #[cfg(all(target_os = "linux", not(miri)))]
        {
            // SAFETY: `sched_getcpu` has no preconditions; it returns -1 if
            // the CPU cannot be told.
            let cpu = unsafe { libc::sched_getcpu() };
            if let Ok(cpu) = usize::try_from(cpu) {
                return cpu;
            }
        }
        thread_slot()
    }

    /// Nanoseconds on the monotonic clock since the first reading in this
    /// process: instants the engine keeps in atomics and compares (how long
    /// the oldest request of a `Lax` route has waited).
    #[cfg(not(test))]
    pub(crate) fn clock_nanos() -> u64 {
        static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
        let epoch = *EPOCH.get_or_init(std::time::Instant::now);
        // 584 years of nanoseconds fit; the last value stays free for
        // "no instant".
        u64::try_from(epoch.elapsed().as_nanos()).map_or(u64::MAX - 1, |n| n.min(u64::MAX - 1))
    }

    /// This crate's unit tests see a clock that does not move, as the loom
    /// models do unless one sets it: what they check of `Lax` would
    /// otherwise depend on how fast the machine runs them (under miri,
    /// a millisecond passes between two steps). The time bound is checked
    /// by loom model 17 and by the pool's tests on the real clock.
    #[cfg(test)]
    pub(crate) fn clock_nanos() -> u64 {
        0
    }

    /// A number for the calling thread, handed out in order of first use,
    /// so threads spread over shards.
    #[inline]
    pub(crate) fn thread_slot() -> usize {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        SLOT.with(|slot| *slot)
    }

    /// `std::cell::UnsafeCell` with loom's closure API.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            Self(std::cell::UnsafeCell::new(value))
        }

        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    /// Unbounded MPMC FIFO (commands to the serializer, the mailbox).
    #[derive(Debug)]
    pub(crate) struct Fifo<T>(crossbeam_queue::SegQueue<T>);

    impl<T> Fifo<T> {
        pub(crate) fn new() -> Self {
            Self(crossbeam_queue::SegQueue::new())
        }
        #[inline]
        pub(crate) fn push(&self, value: T) {
            self.0.push(value);
        }
        #[inline]
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.pop()
        }
        /// How many values are queued (a snapshot).
        pub(crate) fn len(&self) -> usize {
            self.0.len()
        }
    }

    /// Bounded MPMC FIFO that never allocates after construction.
    #[derive(Debug)]
    pub(crate) struct BoundedFifo<T>(crossbeam_queue::ArrayQueue<T>);

    impl<T> BoundedFifo<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self(crossbeam_queue::ArrayQueue::new(capacity.max(1)))
        }
        /// Gives the value back when the queue is full.
        #[inline]
        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            self.0.push(value)
        }
        #[inline]
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.pop()
        }
        /// How many values are queued (a snapshot).
        pub(crate) fn len(&self) -> usize {
            self.0.len()
        }
    }
}

#[cfg(leasehold_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
    };
    pub(crate) use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    /// Parking and waking loom threads.
    pub(crate) mod thread {
        pub(crate) use loom::thread::{current, park, Thread};
    }

    /// loom's model of an atomic waker slot, with the `atomic-waker` API.
    #[derive(Debug)]
    pub(crate) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self(loom::future::AtomicWaker::new())
        }
        pub(crate) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }
        pub(crate) fn wake(&self) {
            self.0.wake();
        }
    }

    #[inline]
    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
    }

    /// No backoff under loom: its scheduler picks who runs next, and a
    /// spin would only add steps to explore.
    #[derive(Debug, Default)]
    pub(crate) struct Backoff;

    impl Backoff {
        pub(crate) fn new() -> Self {
            Self
        }

        pub(crate) fn spin(&self) {}

        /// A yield, so that loom runs the peer waited for.
        pub(crate) fn snooze(&self) {
            loom::thread::yield_now();
        }
    }

    /// A `std` atomic: it adds no scheduling point for loom to explore.
    static LOOM_CLOCK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

    /// Loom has no clock: the time is what a model set last
    /// ([`set_loom_clock`]), 0 unless set.
    pub(crate) fn clock_nanos() -> u64 {
        LOOM_CLOCK.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Loom builds only: sets the engine's clock for every core of this
    /// process. It is global, so a model that moves it lives in a test
    /// binary of its own.
    #[doc(hidden)]
    pub fn set_loom_clock(nanos: u64) {
        assert!(nanos < u64::MAX, "u64::MAX stands for no instant");
        LOOM_CLOCK.store(nanos, std::sync::atomic::Ordering::Relaxed);
    }

    /// Loom threads have no CPU: their slot stands for it.
    pub(crate) fn locality() -> usize {
        thread_slot()
    }

    /// Loom threads in order of first use (the main thread included),
    /// counted afresh in every execution so that executions replay.
    pub(crate) fn thread_slot() -> usize {
        loom::lazy_static! {
            static ref NEXT: AtomicUsize = AtomicUsize::new(0);
        }
        loom::thread_local! {
            static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        SLOT.with(|slot| *slot)
    }

    /// A loom-visible stand-in for `SegQueue`: linearizable FIFO.
    #[derive(Debug)]
    pub(crate) struct Fifo<T>(Mutex<VecDeque<T>>);

    impl<T> Fifo<T> {
        pub(crate) fn new() -> Self {
            Self(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, value: T) {
            self.0.lock().unwrap().push_back(value);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// A loom-visible stand-in for `ArrayQueue`, linearizable like it.
    ///
    /// Each operation is a read-modify-write of a loom atomic — where loom
    /// may switch threads, and through which it sees the operations
    /// synchronize — followed by the change itself under a `std` mutex,
    /// inside which no loom operation runs, so no loom thread is ever
    /// switched out holding it. A loom `Mutex` would not do: when a thread
    /// releases one, loom 0.7 marks every other thread whose next operation
    /// is on it runnable afresh, which erases an unpark that thread had
    /// pending (`rt::Mutex::release_lock`) — a wake-up a lock-free queue
    /// never loses, and the disposal models would report as a deadlock.
    #[derive(Debug)]
    pub(crate) struct BoundedFifo<T> {
        items: std::sync::Mutex<VecDeque<T>>,
        capacity: usize,
        order: AtomicUsize,
    }

    impl<T> BoundedFifo<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self {
                items: std::sync::Mutex::new(VecDeque::new()),
                capacity: capacity.max(1),
                order: AtomicUsize::new(0),
            }
        }
        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            self.order.fetch_add(1, Ordering::AcqRel);
            let mut items = self.items.lock().unwrap();
            if items.len() == self.capacity {
                return Err(value);
            }
            items.push_back(value);
            Ok(())
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.order.fetch_add(1, Ordering::AcqRel);
            self.items.lock().unwrap().pop_front()
        }
        pub(crate) fn len(&self) -> usize {
            self.order.load(Ordering::Acquire);
            self.items.lock().unwrap().len()
        }
    }

    /// A loom-visible stand-in for `std::sync::OnceLock` (loom has none):
    /// the value lives in a std `OnceLock`, and a loom flag publishes it, so
    /// loom decides by its memory model whether a reader sees it yet.
    /// `get_or_init` lets one thread claim the initialization (a loom flag)
    /// while the others yield until it is published, as std's would block.
    #[derive(Debug)]
    pub(crate) struct OnceLock<T> {
        value: std::sync::OnceLock<T>,
        published: AtomicBool,
        claimed: AtomicBool,
    }

    impl<T> OnceLock<T> {
        pub(crate) fn new() -> Self {
            Self {
                value: std::sync::OnceLock::new(),
                published: AtomicBool::new(false),
                claimed: AtomicBool::new(false),
            }
        }
        pub(crate) fn get_or_init(&self, init: impl FnOnce() -> T) -> &T {
            loop {
                if let Some(value) = self.get() {
                    return value;
                }
                if !self.claimed.swap(true, Ordering::AcqRel) {
                    let value = self.value.get_or_init(init);
                    self.published.store(true, Ordering::Release);
                    return value;
                }
                loom::thread::yield_now();
            }
        }
        /// The value, if set, read without a loom scheduling point: for a
        /// reader ordered after the setter by other means (which loom
        /// checks), such as `GrowArray`'s, whose places' own cells loom
        /// tracks from their creation.
        pub(crate) fn peek(&self) -> Option<&T> {
            self.value.get()
        }
        pub(crate) fn set(&self, value: T) -> Result<(), T> {
            self.value.set(value)?;
            self.published.store(true, Ordering::Release);
            Ok(())
        }
        pub(crate) fn get(&self) -> Option<&T> {
            if self.published.load(Ordering::Acquire) {
                self.value.get()
            } else {
                None
            }
        }
    }

    /// A loom-visible 128-bit atomic: loom has none, so a mutex stands in,
    /// which makes every operation linearizable (what the hardware gives a
    /// 128-bit read-modify-write).
    #[derive(Debug)]
    pub(crate) struct AtomicU128(Mutex<u128>);

    impl AtomicU128 {
        pub(crate) fn new(value: u128) -> Self {
            Self(Mutex::new(value))
        }
        pub(crate) fn load(&self, _: Ordering) -> u128 {
            *self.0.lock().unwrap()
        }
        pub(crate) fn compare_exchange_weak(
            &self,
            current: u128,
            new: u128,
            _: Ordering,
            _: Ordering,
        ) -> Result<u128, u128> {
            let mut value = self.0.lock().unwrap();
            if *value == current {
                *value = new;
                Ok(current)
            } else {
                Err(*value)
            }
        }
        fn update(&self, f: impl FnOnce(u128) -> u128) -> u128 {
            let mut value = self.0.lock().unwrap();
            let before = *value;
            *value = f(before);
            before
        }
        pub(crate) fn fetch_add(&self, n: u128, _: Ordering) -> u128 {
            self.update(|v| v.wrapping_add(n))
        }
        pub(crate) fn fetch_sub(&self, n: u128, _: Ordering) -> u128 {
            self.update(|v| v.wrapping_sub(n))
        }
        pub(crate) fn fetch_or(&self, n: u128, _: Ordering) -> u128 {
            self.update(|v| v | n)
        }
        pub(crate) fn fetch_and(&self, n: u128, _: Ordering) -> u128 {
            self.update(|v| v & n)
        }
    }
}

#[cfg(leasehold_loom)]
pub use imp::set_loom_clock;
pub(crate) use imp::*;
