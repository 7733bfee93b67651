//! The synchronization vocabulary of the crate, swapped for loom's under
//! `cfg(leasehold_loom)`.
//!
//! Algorithm code imports atomics, `Arc`, `Mutex`, `UnsafeCell` and the
//! queues from here and never names `std`, `crossbeam` or `loom` itself, so
//! the same code is what runs in production and what loom model-checks.
//!
//! `UnsafeCell` follows loom's closure API (`with` / `with_mut`) in both
//! builds, so that every access to shared interior state is visible to loom's
//! causality checker.

#[cfg(not(leasehold_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Mutex};

    /// A spin-loop hint; loom turns it into a yield so its scheduler moves on.
    #[inline]
    pub(crate) fn spin_hint() {
        std::hint::spin_loop();
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

    /// Unbounded MPMC FIFO (used for commands to the serializer).
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
    }

    /// A shared pointer that is read on the hot path and replaced rarely:
    /// `arc_swap::ArcSwap`.
    #[derive(Debug)]
    pub(crate) struct Swap<T>(arc_swap::ArcSwap<T>);

    /// A read guard of a [`Swap`].
    pub(crate) struct SwapGuard<T>(arc_swap::Guard<Arc<T>>);

    impl<T> std::ops::Deref for SwapGuard<T> {
        type Target = T;
        #[inline]
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> Swap<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(arc_swap::ArcSwap::from_pointee(value))
        }
        #[inline]
        pub(crate) fn load(&self) -> SwapGuard<T> {
            SwapGuard(self.0.load())
        }
        /// Replaces the value with `f(current)`, retrying if it changed
        /// meanwhile; `f` returns `None` to leave it as it is.
        pub(crate) fn update(&self, mut f: impl FnMut(&T) -> Option<T>) {
            let mut current = self.0.load_full();
            loop {
                let Some(next) = f(&current) else { return };
                let previous = self.0.compare_and_swap(&current, Arc::new(next));
                if Arc::ptr_eq(&previous, &current) {
                    return;
                }
                current = arc_swap::Guard::into_inner(previous);
            }
        }
    }
}

#[cfg(leasehold_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    #[inline]
    pub(crate) fn spin_hint() {
        loom::thread::yield_now();
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
    }

    /// A loom-visible stand-in for `ArrayQueue`.
    #[derive(Debug)]
    pub(crate) struct BoundedFifo<T>(Mutex<VecDeque<T>>, usize);

    impl<T> BoundedFifo<T> {
        pub(crate) fn new(capacity: usize) -> Self {
            Self(Mutex::new(VecDeque::new()), capacity.max(1))
        }
        pub(crate) fn push(&self, value: T) -> Result<(), T> {
            let mut q = self.0.lock().unwrap();
            if q.len() == self.1 {
                return Err(value);
            }
            q.push_back(value);
            Ok(())
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }
    }
    /// A loom-visible stand-in for `ArcSwap`.
    #[derive(Debug)]
    pub(crate) struct Swap<T>(Mutex<Arc<T>>);

    pub(crate) struct SwapGuard<T>(Arc<T>);

    impl<T> std::ops::Deref for SwapGuard<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    impl<T> Swap<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(Mutex::new(Arc::new(value)))
        }
        pub(crate) fn load(&self) -> SwapGuard<T> {
            SwapGuard(self.0.lock().unwrap().clone())
        }
        pub(crate) fn update(&self, mut f: impl FnMut(&T) -> Option<T>) {
            let mut current = self.0.lock().unwrap();
            if let Some(next) = f(&current) {
                *current = Arc::new(next);
            }
        }
    }
}

pub(crate) use imp::*;
