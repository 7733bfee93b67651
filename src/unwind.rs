//! User code run on the pool's threads (a connector, a check, a waker):
//! a panic in it is caught where it is called, logged, and turned into the
//! outcome the pool would see of a failure there, so that it never takes
//! the event loop down.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::Waker;

/// Runs `f`; a panic is logged with `what` (what was running) and gives
/// `None`.
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(panic) => {
            tracing::error!(panic = %message(&*panic), "leasehold: {what} panicked");
            None
        }
    }
}

/// The text a panic carries, if it is a string.
pub(crate) fn message(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "a panic without a message"
    }
}

/// Wakes a waiting request's task; an executor's waker that panics loses
/// that wake-up, not the thread that gave it.
pub(crate) fn wake_task(waker: &Waker) {
    guarded("a task's waker", || waker.wake_by_ref());
}
