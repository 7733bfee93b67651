//! The pool: acquisition (blocking, bounded by the acquire timeout),
//! connecting on a permit, stats and shutdown.
//!
//! Everything about *who* gets a connection is the policy core's business;
//! this module turns its grants into leases: it opens a connection when the
//! core grants capacity, parks the thread while a request is queued, and
//! gives up at the deadline without losing what the core may hand over at
//! the last moment.

use crate::config::{Builder, Config};
use crate::connector::{connect_blocking, Connector};
use crate::dispose::Disposer;
use crate::error::{Error, Unavailable};
use crate::lease::Lease;
use leasehold_policies::{
    self as policies, Acquire, Core, Grant, Held, Item, Limits, Permit, Policy, PoolStats, State,
    Stats, Strict, Wait, Waiting,
};
use std::fmt;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// A pooled connection with what the pool knows about it.
pub(crate) struct Entry<C> {
    pub(crate) conn: C,
    pub(crate) state: Option<State>,
    pub(crate) created: Instant,
}

impl<C: Send + 'static> Item for Entry<C> {
    fn state(&self) -> Option<&State> {
        self.state.as_ref()
    }
}

pub(crate) type CoreOf<C, P> =
    <P as Policy>::Core<<C as Connector>::Route, Entry<<C as Connector>::Conn>>;

pub(crate) struct Inner<C: Connector, P: Policy> {
    pub(crate) core: CoreOf<C, P>,
    connector: Arc<C>,
    disposer: Arc<Disposer<C>>,
    config: Config,
}

impl<C: Connector, P: Policy> Drop for Inner<C, P> {
    fn drop(&mut self) {
        // Closes idle connections, and wakes nobody: a waiter borrows the
        // pool, so none can be left. Then the disposal thread finishes.
        self.core.shutdown();
        self.disposer.stop();
    }
}

/// A connection pool over connector `C`, with concurrency policy `P`.
///
/// Cloning a `Pool` is cheap and gives another handle to the same pool;
/// leases borrow the handle they came from. The pool shuts down when the
/// last handle is dropped.
///
/// ```
/// use leasehold::{mock::MockConnector, Pool};
/// use std::io::Write;
///
/// let pool: Pool<MockConnector> = Pool::builder(MockConnector::new()).build()?;
/// let mut conn = pool.lease(&())?;     // blocks at most acquire_timeout
/// conn.write_all(b"PING\r\n")?;       // a Lease derefs to the connection
/// drop(conn);                          // back to the pool
/// assert_eq!(pool.stats().total.idle, 1);
/// let conn = pool.lease(&())?;
/// conn.discard();                      // close it instead of returning it
/// assert_eq!(pool.stats().total.idle, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pool<C: Connector, P: Policy = Strict> {
    inner: Arc<Inner<C, P>>,
}

impl<C: Connector, P: Policy> Clone for Pool<C, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// Wakes this thread: made once per thread, cloned only into the node of
    /// a request that has to wait.
    static THREAD_WAKER: Waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
}

impl<C: Connector, P: Policy> Pool<C, P> {
    /// Starts configuring a pool over `connector`. See [`Builder`] for the
    /// settings and their defaults.
    pub fn builder(connector: C) -> Builder<C, P> {
        Builder::new(connector)
    }

    pub(crate) fn from_parts(
        connector: C,
        limits: Limits<C::Route>,
        config: Config,
    ) -> std::io::Result<Self> {
        let connector = Arc::new(connector);
        let disposer = Arc::new(Disposer::new(connector.clone(), config.disposal)?);
        let closer = disposer.clone();
        let dispose: policies::Disposer<Entry<C::Conn>> =
            Arc::new(move |entry: Entry<C::Conn>| closer.dispose(entry.conn));
        Ok(Self {
            inner: Arc::new(Inner {
                core: <CoreOf<C, P> as Core<_, _>>::new(limits, dispose),
                connector,
                disposer,
                config,
            }),
        })
    }

    /// Leases a connection to `route` that carries no state, waiting at most
    /// the acquire timeout.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the wait runs out, a connect error when a new
    /// connection fails, [`Error::Closed`] after shutdown.
    pub fn lease(&self, route: &C::Route) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, None, Wait::Queue)
    }

    /// Leases a connection to `route` in `state` (for example, authenticated
    /// as one user): it never gets a connection in another state or none.
    ///
    /// # Errors
    /// As [`lease`](Self::lease).
    pub fn lease_with_state(
        &self,
        route: &C::Route,
        state: &State,
    ) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, Some(state), Wait::Queue)
    }

    /// Leases a connection only if one is idle or capacity is free without
    /// waiting behind anyone; otherwise fails at once with
    /// [`Error::Exhausted`]. Opening a new connection may still take the
    /// connect time.
    ///
    /// # Errors
    /// [`Error::Exhausted`], a connect error, or [`Error::Closed`].
    pub fn try_lease(&self, route: &C::Route) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, None, Wait::Never)
    }

    /// [`try_lease`](Self::try_lease) for a connection in `state`.
    ///
    /// # Errors
    /// As [`try_lease`](Self::try_lease).
    pub fn try_lease_with_state(
        &self,
        route: &C::Route,
        state: &State,
    ) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, Some(state), Wait::Never)
    }

    /// Gauges and counters of the pool and of every route it has seen.
    pub fn stats(&self) -> PoolStats<C::Route> {
        self.inner.core.stats()
    }

    /// The stats of one route (all zero, with the cap it would get, if the
    /// pool has not seen it yet).
    pub fn route_stats(&self, route: &C::Route) -> Stats {
        self.inner.core.route_stats(route)
    }

    /// Changes the cap of one route while the pool runs. Lowering it closes
    /// idle connections over the new cap at once and leased ones as they
    /// return; raising it serves waiters the new cap lets through.
    ///
    /// # Panics
    /// If `max` is 0.
    pub fn set_route_max(&self, route: &C::Route, max: usize) {
        self.inner.core.set_route_max(route, max);
    }

    /// Shuts the pool down: every waiting request fails with
    /// [`Error::Closed`], idle connections are closed, leased ones are closed
    /// when they come back, and new requests fail with `Closed`.
    pub fn shutdown(&self) {
        self.inner.core.shutdown();
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.core.is_closed()
    }

    fn acquire(
        &self,
        route: &C::Route,
        state: Option<&State>,
        mode: Wait,
    ) -> Result<Lease<'_, C, P>, Error> {
        let acquired =
            THREAD_WAKER.with(|waker| self.inner.core.acquire(route, state, mode, waker));
        let grant = match acquired {
            Acquire::Ready(grant) => grant,
            Acquire::Queued(waiter) => self.wait(route, waiter, mode)?,
        };
        self.take(route, grant)
    }

    /// Parks until the request is served or its deadline passes.
    fn wait(
        &self,
        route: &C::Route,
        mut waiter: <CoreOf<C, P> as Core<C::Route, Entry<C::Conn>>>::Waiter,
        mode: Wait,
    ) -> Result<Grant, Error> {
        let started = Instant::now();
        // A `Wait::Never` request is answered promptly; it needs no deadline.
        let deadline = match mode {
            Wait::Queue => self.inner.config.acquire_timeout.map(|t| started + t),
            Wait::Never => None,
        };
        loop {
            if let Some(grant) = waiter.try_take() {
                return Ok(grant);
            }
            match deadline {
                None => thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return match self.inner.core.cancel(waiter, true) {
                            // Served at the last moment: take it.
                            Some(grant) => Ok(grant),
                            None => Err(self.timeout(route, now - started)),
                        };
                    }
                    thread::park_timeout(deadline - now);
                }
            }
        }
    }

    fn timeout(&self, route: &C::Route, waited: Duration) -> Error {
        Error::Timeout(self.unavailable(route, waited))
    }

    fn unavailable(&self, route: &C::Route, waited: Duration) -> Box<Unavailable> {
        Unavailable::new(
            format!("{route:?}"),
            waited,
            self.route_stats(route),
            self.stats().total,
        )
    }

    /// Turns a grant into a lease, connecting if it is a permit.
    fn take(&self, route: &C::Route, grant: Grant) -> Result<Lease<'_, C, P>, Error> {
        match grant {
            Grant::Conn(held) => Ok(Lease::new(self, held)),
            Grant::Connect(permit) => self
                .connect(route, permit)
                .map(|held| Lease::new(self, held)),
            Grant::Busy => Err(Error::Exhausted(self.unavailable(route, Duration::ZERO))),
            Grant::Closed => Err(Error::Closed),
        }
    }

    fn connect(&self, route: &C::Route, permit: Permit) -> Result<Held, Error> {
        // Gives the permit back if the connector panics.
        struct Guard<'a, C: Connector, P: Policy> {
            core: &'a CoreOf<C, P>,
            permit: Option<Permit>,
        }
        impl<C: Connector, P: Policy> Drop for Guard<'_, C, P> {
            fn drop(&mut self) {
                if let Some(permit) = self.permit.take() {
                    self.core.connect_failed(permit);
                }
            }
        }
        let mut guard = Guard::<C, P> {
            core: &self.inner.core,
            permit: Some(permit),
        };
        let result = connect_blocking(
            &*self.inner.connector,
            route,
            self.inner.config.connect_timeout,
        );
        let permit = guard.permit.take().expect("the permit is still held");
        match result {
            Ok(conn) => {
                let entry = Entry {
                    conn,
                    state: permit.state().cloned(),
                    created: Instant::now(),
                };
                self.inner.core.connected(permit, entry).map_err(|entry| {
                    self.inner.disposer.dispose(entry.conn);
                    Error::Closed
                })
            }
            Err(e) => {
                self.inner.core.connect_failed(permit);
                Err(Error::from_connect(format!("{route:?}"), e))
            }
        }
    }

    pub(crate) fn core(&self) -> &CoreOf<C, P> {
        &self.inner.core
    }
}

impl<C: Connector, P: Policy> fmt::Debug for Pool<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("policy", &P::NAME)
            .field("config", &self.inner.config)
            .field("stats", &self.stats().total)
            .finish()
    }
}
