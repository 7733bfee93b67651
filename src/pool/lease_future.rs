//! [`LeaseFuture`]: leasing without blocking a thread, on any executor.

use crate::connector::Connector;
use crate::error::Error;
use crate::pool::Lease;
use crate::pool::Pool;
use crate::reactor::alarm::Alarm;
use crate::reactor::LoopCommand;
use crate::shared::Request;
use leasehold_policies::{Policy, Strict};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// A lease on its way: the future of
/// [`Pool::lease_async`](crate::Pool::lease_async).
///
/// * **Any executor.** It needs nothing from the runtime but the `Waker` it
///   is polled with: tokio (either flavour), smol, `futures::executor`, a
///   hand-written `block_on`. Its deadline (the acquire timeout) is kept by
///   the pool's event loop, which wakes it when the deadline passes even if
///   the executor has no timers and nothing else happens in the pool.
/// * **Same queues as blocking callers.** Async and blocking requests wait
///   in the same policy queues under the same rules: a `Strict` route
///   serves them in one FIFO order, whichever kind they are.
/// * **Cancel-safe.** Dropping it at any point — before its first poll,
///   while queued, while a connection is being handed to it, after the
///   hand-off but before it is polled again — loses nothing: a connection
///   it was given goes to the next waiter or to idle, capacity goes back,
///   its place in the queue is withdrawn.
/// * `Send` when the connector's routes and connections are, so it can be
///   spawned on a multi-threaded runtime (and so can the [`Lease`] it
///   resolves to, held across `.await`). One compiler limitation: with a
///   route type that borrows (`&'static str`), rustc cannot yet prove a
///   spawned `async` block that holds the future or a lease across an
///   `.await` to be `Send` ("implementation of `Eq` is not general
///   enough", rust-lang/rust#100013). Owned routes (`SocketAddr`, `String`,
///   `Arc<str>`, integers) are not affected.
///
/// Polling it again after it resolved is a logic error; it then stays
/// pending.
#[must_use = "futures do nothing unless polled"]
pub struct LeaseFuture<'a, 'r, C: Connector, P: Policy = Strict> {
    /// What the lease will borrow.
    pool: &'a Pool<C, P>,
    /// Borrows the route (and state) only while the future lives, so the
    /// lease outlives a temporary route.
    request: Request<'r, C, P>,
    /// The event loop's wake-up for the instant the request waits until.
    alarm: Option<Arc<Alarm>>,
}

impl<'a: 'r, 'r, C: Connector, P: Policy> LeaseFuture<'a, 'r, C, P> {
    pub(crate) fn new(pool: &'a Pool<C, P>, request: Request<'r, C, P>) -> Self {
        Self {
            pool,
            request,
            alarm: None,
        }
    }

    /// Makes sure the event loop wakes `waker` at `at`.
    fn arm(&mut self, at: Instant, waker: &Waker) {
        match &self.alarm {
            Some(alarm) if alarm.at == at => alarm.register(waker),
            _ => {
                let alarm = Arc::new(Alarm::new(at, waker));
                let command = LoopCommand::Alarm(Arc::downgrade(&alarm));
                if self.pool.shared().set_alarm(command, at).is_err() {
                    // The loop stopped: the pool is shut down, and the
                    // request is answered `Closed` when polled again.
                    waker.wake_by_ref();
                }
                self.alarm = Some(alarm);
            }
        }
    }
}

impl<'a: 'r, 'r, C: Connector, P: Policy> Future for LeaseFuture<'a, 'r, C, P> {
    type Output = Result<Lease<'a, C, P>, Error>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.request.poll(cx.waker()) {
            Poll::Ready(result) => {
                this.alarm = None;
                Poll::Ready(result.map(|held| Lease::new(this.pool, held)))
            }
            Poll::Pending => {
                if let Some(at) = this.request.wake_at() {
                    this.arm(at, cx.waker());
                }
                Poll::Pending
            }
        }
    }
}

impl<C: Connector, P: Policy> fmt::Debug for LeaseFuture<'_, '_, C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseFuture")
            .field("request", &self.request)
            .field("alarm", &self.alarm)
            .finish()
    }
}
