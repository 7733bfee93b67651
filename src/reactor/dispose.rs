//! The event loop's closer: where connections the pool is done with are
//! closed — inline, or on a disposal thread that works beside the event
//! loop, so that a slow close (TLS `close_notify`, a peer that does not
//! answer, a user connector that blocks) never sits on a lease path and
//! never stalls the loop either.
//!
//! The disposal thread is the worker of a [`DisposalQueue`] (the hand-over
//! protocol lives in `leasehold-policies`, where loom checks it): it takes
//! connections from a bounded lock-free queue and parks when it is empty.
//! Everything the loop retires (stale, idle-timed-out, expired
//! connections) goes there, as do returns the pool will not keep. When the
//! queue is full the connection is aborted on the caller's thread
//! ([`Connector::abort`]: closed at once, without the graceful steps), so a
//! graceful close never runs there and a connection is never dropped
//! unclosed. Dropping the pool stops the thread after it has closed
//! everything queued, and joins it: no thread is left behind.

use crate::connector::Connector;
use leasehold_policies::{DisposalQueue, PushError};
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// How the pool closes connections it is done with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Disposal {
    /// On the thread that gave the connection up (a return, a discard, an
    /// eviction done for a lease). Nothing extra runs, but a slow close
    /// delays that thread.
    Inline,
    /// On a disposal thread owned by the pool, with a queue of `queue`
    /// connections; when it is full, the connection is aborted
    /// ([`Connector::abort`]) on the thread that gave it up.
    Background {
        /// How many connections may wait to be closed.
        queue: usize,
    },
}

impl Default for Disposal {
    /// `Background` with a queue of 1024.
    fn default() -> Self {
        Self::Background { queue: 1024 }
    }
}

/// The disposal thread and the queue it works on.
struct Background<C: Connector> {
    queue: Arc<DisposalQueue<C::Conn>>,
    /// Taken and joined on stop.
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Closes connections, inline or through the disposal thread.
pub(crate) struct Disposer<C: Connector> {
    connector: Arc<C>,
    background: Option<Background<C>>,
}

impl<C: Connector> Disposer<C> {
    pub(crate) fn new(connector: Arc<C>, disposal: Disposal) -> io::Result<Self> {
        let Disposal::Background { queue } = disposal else {
            return Ok(Self {
                connector,
                background: None,
            });
        };
        let queue = Arc::new(DisposalQueue::new(queue));
        let (worker, closer) = (queue.clone(), connector.clone());
        let thread = thread::Builder::new()
            .name("leasehold-dispose".into())
            .spawn(move || worker.run(|conn| closer.close(conn)))?;
        Ok(Self {
            connector,
            background: Some(Background {
                queue,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Closes `conn`: in the background if there is room, else aborts it
    /// here.
    pub(crate) fn dispose(&self, conn: C::Conn) {
        let Some(background) = &self.background else {
            return self.connector.close(conn);
        };
        match background.queue.push(conn) {
            Ok(()) => {}
            // The documented rule: never a graceful close on this thread.
            Err(PushError::Full(conn)) => self.connector.abort(conn),
            // Only while the pool is dropped, whose dropper waits for the
            // disposal thread's graceful closes anyway.
            Err(refused) => self.connector.close(refused.into_inner()),
        }
    }

    /// Stops the disposal thread once it has closed everything queued.
    pub(crate) fn stop(&self) {
        let Some(background) = &self.background else {
            return;
        };
        let thread = background
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(thread) = thread {
            background.queue.stop();
            // A panicking connector panicked on that thread already; the
            // pool is being dropped, so there is no one left to tell.
            let _ = thread.join();
        }
    }
}

impl<C: Connector> fmt::Debug for Disposer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.background.as_ref().map(|background| &background.queue);
        f.debug_struct("Disposer").field("queue", &queue).finish()
    }
}
