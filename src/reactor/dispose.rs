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
//! unclosed. A close or abort that panics is caught and logged, and its
//! connection dropped: the closer goes on with the next.
//!
//! # Shutdown
//!
//! When the pool's last handle is dropped, the shutdown grace starts
//! ([`DisposalService::start_grace`]) and the idle connections join the queue.
//! [`DisposalService::stop`] then stops the queue and starts up to
//! [`SHUTDOWN_HELPERS`] short-lived threads that take queued connections
//! and close them beside the disposal thread, and waits for all of them
//! until the grace is over. What is still queued then is aborted on the
//! dropping thread, and any close after it (a closer coming back from a
//! slow one) becomes an abort. A close under way at the deadline cannot be
//! cut short: its thread is left to finish it, and ends on its own. A pool
//! dropped on the disposal thread itself (a connection that carries the
//! last handle) never waits for that thread: it drains the queue after the
//! close it is in, and ends.

use crate::config::Disposal;
use crate::connector::Connector;
use crate::reactor::pool_thread::{Ended, PoolThread};
use leasehold_policies::unstable::{DisposalQueue, PushError};
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// The most helper threads [`DisposalService::stop`] starts to close queued
/// connections beside the disposal thread.
pub(crate) const SHUTDOWN_HELPERS: usize = 8;

/// Closes or aborts one connection at a time, catching the connector's
/// panics, and turns closes into aborts once the shutdown grace is over.
struct Closer<C: Connector> {
    connector: Arc<C>,
    /// Set when the last handle is dropped: when the grace ends (`None`
    /// inside: never).
    grace_ends: OnceLock<Option<Instant>>,
}

impl<C: Connector> Closer<C> {
    /// Closes `conn` gracefully, or aborts it if the grace is over.
    fn close(&self, conn: C::Conn) {
        if self.grace_over() {
            return self.abort(conn);
        }
        let connector = &self.connector;
        if catch_unwind(AssertUnwindSafe(|| connector.close(conn))).is_err() {
            tracing::error!("leasehold: Connector::close panicked; its connection was dropped");
        }
    }

    /// Closes `conn` at once.
    fn abort(&self, conn: C::Conn) {
        let connector = &self.connector;
        if catch_unwind(AssertUnwindSafe(|| connector.abort(conn))).is_err() {
            tracing::error!("leasehold: Connector::abort panicked; its connection was dropped");
        }
    }

    /// When the grace ends, once it has started; `None`: not started, or
    /// no end.
    fn deadline(&self) -> Option<Instant> {
        self.grace_ends.get().copied().flatten()
    }

    /// Whether the grace has started and is over. Reads the clock only
    /// during shutdown.
    fn grace_over(&self) -> bool {
        matches!(self.grace_ends.get(), Some(Some(end)) if Instant::now() >= *end)
    }
}

/// The disposal thread and the queue it works on.
struct Background<C: Connector> {
    queue: Arc<DisposalQueue<C::Conn>>,
    /// Taken on stop.
    thread: Mutex<Option<PoolThread>>,
}

/// Closes connections, inline or through the disposal thread.
pub(crate) struct DisposalService<C: Connector> {
    closer: Arc<Closer<C>>,
    background: Option<Background<C>>,
}

impl<C: Connector> DisposalService<C> {
    pub(crate) fn new(connector: Arc<C>, disposal: Disposal) -> io::Result<Self> {
        let closer = Arc::new(Closer {
            connector,
            grace_ends: OnceLock::new(),
        });
        let Disposal::Background { queue } = disposal else {
            return Ok(Self {
                closer,
                background: None,
            });
        };
        let queue = Arc::new(DisposalQueue::new(queue));
        let (worker, closing) = (queue.clone(), closer.clone());
        let thread = PoolThread::spawn("leasehold-dispose", move || {
            worker.run(|conn| closing.close(conn));
        })?;
        Ok(Self {
            closer,
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
            return self.closer.close(conn);
        };
        match background.queue.push(conn) {
            Ok(()) => {}
            // The documented rule: never a graceful close on this thread.
            Err(PushError::Full(conn)) => self.closer.abort(conn),
            // Only once the pool's last handle is gone: on a thread of the
            // pool still finishing its work, within the grace.
            Err(refused) => self.closer.close(refused.into_inner()),
        }
    }

    /// Starts the shutdown grace, which ends at `deadline` (`None`: never):
    /// from then on, a close that would start later is an abort. Only the
    /// first call counts.
    pub(crate) fn start_grace(&self, deadline: Option<Instant>) {
        let _ = self.closer.grace_ends.set(deadline);
    }

    /// Stops the disposal thread once everything queued is closed, closing
    /// side by side with helper threads, and waits for them until the grace
    /// ends; then aborts what is still queued. See the module docs.
    pub(crate) fn stop(&self) {
        let Some(background) = &self.background else {
            return;
        };
        let worker = background
            .thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let Some(worker) = worker else {
            return;
        };
        background.queue.stop();
        let deadline = self.closer.deadline();
        let helpers = (0..background.queue.len().min(SHUTDOWN_HELPERS))
            .map_while(|_| self.spawn_helper(&background.queue))
            .collect::<Vec<_>>();
        let mut late = 0;
        for thread in helpers.into_iter().chain([worker]) {
            if thread.join_by(deadline) == Ended::Late {
                late += 1;
            }
        }
        if late > 0 {
            let mut aborted = 0;
            while let Some(conn) = background.queue.take() {
                self.closer.abort(conn);
                aborted += 1;
            }
            tracing::warn!(
                closing = late,
                aborted,
                "leasehold: the shutdown grace ended with connections still closing; \
                 the rest were aborted"
            );
        }
    }

    /// A thread that closes queued connections until none is left.
    fn spawn_helper(&self, queue: &Arc<DisposalQueue<C::Conn>>) -> Option<PoolThread> {
        let (queue, closer) = (queue.clone(), self.closer.clone());
        let spawned = PoolThread::spawn("leasehold-dispose", move || {
            while let Some(conn) = queue.take() {
                closer.close(conn);
            }
        });
        match spawned {
            Ok(thread) => Some(thread),
            // The disposal thread closes them all then.
            Err(e) => {
                tracing::debug!(error = %e, "leasehold: no helper thread for the closes");
                None
            }
        }
    }
}

impl<C: Connector> fmt::Debug for DisposalService<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.background.as_ref().map(|background| &background.queue);
        f.debug_struct("DisposalService")
            .field("queue", &queue)
            .field("grace_ends", &self.closer.grace_ends.get())
            .finish()
    }
}
