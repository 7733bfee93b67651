//! The pool's own threads (the event loop, the closer and its helpers),
//! joined with a deadline.
//!
//! Dropping the pool's last handle waits for its threads, but may happen
//! on one of them (a connection that carries the last handle is closed by
//! the closer), and must not wait past the shutdown grace for a thread
//! stuck in a connector's code. A [`PoolThread`] therefore knows when its
//! thread has run to its end without blocking on it: the thread holds the
//! sending side of a channel, dropped as its body returns or unwinds, and
//! [`PoolThread::join_by`] waits on the receiving side with a timeout. A
//! thread that is the caller, or is still running at the deadline, is
//! detached: it ends on its own.

use std::convert::Infallible;
use std::fmt;
use std::io;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// A thread of the pool, and word of its end.
pub(crate) struct PoolThread {
    handle: JoinHandle<()>,
    /// Disconnected once the thread's body has returned (or unwound).
    running: mpsc::Receiver<Infallible>,
}

/// How [`PoolThread::join_by`] left a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// It ran to its end and was joined.
    Joined,
    /// It is the calling thread: it goes on, detached, and ends on its own.
    Caller,
    /// It was still running at the deadline: detached.
    Late,
}

impl PoolThread {
    /// Starts a thread named `name` running `body`.
    pub(crate) fn spawn(name: &str, body: impl FnOnce() + Send + 'static) -> io::Result<Self> {
        let (running, ended) = mpsc::channel::<Infallible>();
        let handle = thread::Builder::new().name(name.into()).spawn(move || {
            // Dropped when `body` returns or unwinds: the joiner hears it.
            let _running = running;
            body();
        })?;
        Ok(Self {
            handle,
            running: ended,
        })
    }

    /// Waits for the thread to end, until `deadline` (`None`: as long as it
    /// takes), and joins it. Never joins the calling thread: a pool dropped
    /// on its own thread leaves that thread to end on its own.
    pub(crate) fn join_by(self, deadline: Option<Instant>) -> Ended {
        if self.handle.thread().id() == thread::current().id() {
            return Ended::Caller;
        }
        let ended = match deadline {
            None => self.running.recv().is_err(),
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                matches!(
                    self.running.recv_timeout(left),
                    Err(RecvTimeoutError::Disconnected)
                )
            }
        };
        if !ended {
            return Ended::Late;
        }
        // It has returned (or unwound): this takes no longer than the
        // thread's exit. A panic there was reported on that thread already.
        let _ = self.handle.join();
        Ended::Joined
    }
}

impl fmt::Debug for PoolThread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolThread")
            .field("name", &self.handle.thread().name())
            .field("finished", &self.handle.is_finished())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn joins_a_thread_that_ended() {
        let thread = PoolThread::spawn("leasehold-test", || {}).unwrap();
        assert!(format!("{thread:?}").contains("leasehold-test"));
        assert_eq!(thread.join_by(None), Ended::Joined);
    }

    #[test]
    fn joins_a_thread_that_panicked() {
        let thread = PoolThread::spawn("leasehold-test", || panic!("a panicking body")).unwrap();
        assert_eq!(thread.join_by(None), Ended::Joined);
    }

    #[test]
    fn leaves_a_thread_running_past_the_deadline() {
        let (release, gate) = mpsc::channel::<()>();
        let thread = PoolThread::spawn("leasehold-test", move || {
            let _ = gate.recv_timeout(Duration::from_secs(10));
        })
        .unwrap();
        let deadline = Instant::now() + Duration::from_millis(10);
        assert_eq!(thread.join_by(Some(deadline)), Ended::Late);
        drop(release);
    }

    #[test]
    fn never_joins_the_calling_thread() {
        let (handing, handed) = mpsc::channel::<PoolThread>();
        let (answer, answered) = mpsc::channel();
        let thread = PoolThread::spawn("leasehold-test", move || {
            let me = handed.recv().unwrap();
            answer.send(me.join_by(None)).unwrap();
        })
        .unwrap();
        handing.send(thread).unwrap();
        assert_eq!(answered.recv().unwrap(), Ended::Caller);
    }
}
