//! The pool's public face: leasing (blocking, bounded by the acquire
//! timeout), stats, run-time control and shutdown.
//!
//! A [`Pool`] is a handle to state shared with the other handles and with
//! the pool's event loop ([`Shared`]); the last handle dropped shuts the
//! pool down, stops the event loop and the closer, and joins both threads
//! within the shutdown grace (never the thread it is dropped on). Its
//! leases (`lease`) and lease futures (`lease_future`) are part of it.

mod lease;
mod lease_future;

pub use lease::{Lease, Leased, OwnedLease};
pub use lease_future::LeaseFuture;

use crate::config::{Builder, Config, RouteSettings};
use crate::connector::Connector;
use crate::error::{ConfigError, Error, Undrained};
use crate::figures::{Figures, Health, SizingReport};
use crate::hooks::Hooks;
use crate::reactor::pool_thread::PoolThread;
use crate::reactor::{self, dispose::DisposalService, Reactor};
use crate::shared::Request;
use crate::shared::{disposal, CoreOf, Shared};
use leasehold_policies::unstable::{Core, Limits, Wait};
use leasehold_policies::{InvalidLimits, Policy, PoolStats, State, Stats, Strict};
use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Owns the pool's threads: dropped with the last handle, it shuts the pool
/// down and waits for them, within the shutdown grace.
struct Life<C: Connector, P: Policy> {
    shared: Arc<Shared<C, P>>,
    reactor: Mutex<Option<PoolThread>>,
}

impl<C: Connector, P: Policy> Drop for Life<C, P> {
    fn drop(&mut self) {
        let shared = &self.shared;
        let deadline = shared.start_grace();
        // Closes idle connections, and wakes nobody: a waiter borrows the
        // pool, so none can be left. Then the threads finish.
        shared.shut_down();
        let reactor = self
            .reactor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(reactor) = reactor {
            // Dropped on the event loop's own thread, or that thread is
            // stuck in a connector's code past the grace: it is left to end
            // on its own, and what it retires meanwhile is still closed.
            reactor.join_by(deadline);
        }
        shared.stop_disposal();
    }
}

/// A connection pool over connector `C`, with concurrency policy `P`.
///
/// Cloning a `Pool` is cheap and gives another handle to the same pool; a
/// [`Lease`] borrows the handle it came from, an [`OwnedLease`] holds one.
/// The pool shuts down when the last handle is dropped.
///
/// # Shutdown
///
/// Dropping the last handle shuts the pool down (as
/// [`shutdown`](Self::shutdown) does), stops its event loop, and closes
/// every connection left, waiting at most the
/// [shutdown grace](Builder::shutdown_grace) (5 s unless set): with
/// background disposal, the disposal thread and up to 8 short-lived helper
/// threads close connections gracefully side by side
/// ([`Connector::close`]); once the grace is over, the connections not yet
/// started are aborted ([`Connector::abort`]) and the drop returns. A close
/// still under way then is left to finish on its own thread, which ends
/// after it. Nothing is dropped unclosed and, closes under way aside, no
/// thread or descriptor of the pool outlives the drop.
///
/// The last handle may be dropped on any thread, the pool's own included
/// (a connection or a connect that carries a handle): the pool never waits
/// for the thread it is dropped on, which finishes its work and ends.
/// A [`Connector::close`] or [`Connector::abort`] that panics is caught and
/// logged; the connection is dropped, and the closer goes on.
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
    shared: Arc<Shared<C, P>>,
    life: Arc<Life<C, P>>,
}

impl<C: Connector, P: Policy> Clone for Pool<C, P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            life: self.life.clone(),
        }
    }
}

impl<C: Connector> Pool<C> {
    /// Starts configuring a pool over `connector` under the default policy,
    /// [`Strict`]; [`Builder::policy`] picks another. See [`Builder`] for
    /// the settings and their defaults.
    ///
    /// ```
    /// use leasehold::{Pool, TcpConnector};
    ///
    /// let pool = Pool::builder(TcpConnector::new()).build()?;
    /// # drop(pool);
    /// # Ok::<(), leasehold::ConfigError>(())
    /// ```
    pub fn builder(connector: C) -> Builder<C> {
        Builder::new(connector)
    }
}

impl<C: Connector, P: Policy> Pool<C, P> {
    pub(crate) fn from_parts(
        connector: C,
        limits: Limits<C::Route>,
        config: Config<C::Route>,
        hooks: Hooks<C::Conn>,
    ) -> std::io::Result<Self> {
        let connector = Arc::new(connector);
        let disposer = Arc::new(DisposalService::new(connector.clone(), config.disposal)?);
        let (poll, remote) = reactor::channel::<C>()?;
        let remote = Arc::new(remote);
        let core =
            <CoreOf<C, P> as Core<_, _>>::new(limits, disposal(disposer.clone(), remote.clone()));
        let shared = Arc::new(Shared::new(
            core, connector, disposer, config, hooks, remote,
        ));
        let looper = Reactor::new(shared.clone(), poll);
        let reactor = match PoolThread::spawn("leasehold-reactor", move || looper.run()) {
            Ok(handle) => handle,
            Err(e) => {
                shared.stop_disposal();
                return Err(e);
            }
        };
        let life = Arc::new(Life {
            shared: shared.clone(),
            reactor: Mutex::new(Some(reactor)),
        });
        Ok(Self { shared, life })
    }

    /// Leases a connection to `route` that carries no state, waiting at most
    /// the acquire timeout.
    ///
    /// When nothing is idle and no capacity is free, the calling thread
    /// steps aside before it queues: it yields and asks again, up to 16
    /// times (a few microseconds where no other thread is ready to run).
    /// Where threads outnumber cores, a holder preempted mid-lease may run
    /// and give its connection back, which this call then takes without
    /// sleeping; with `Strict`, this keeps a FIFO hand-off from turning
    /// every lease into a sleep and a wake-up. A call that has not queued
    /// never takes a connection a queued request is waiting for. The
    /// acquire timeout counts from that first miss.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the wait runs out, a connect error when a new
    /// connection fails, [`Error::Closed`] after shutdown.
    #[track_caller]
    pub fn lease(&self, route: &C::Route) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, None, Wait::Queue, Location::caller())
    }

    /// [`lease`](Self::lease), as an [`OwnedLease`]: it holds a handle to
    /// the pool instead of borrowing this one, so it can be stored or moved
    /// into a spawned task.
    ///
    /// ```
    /// use leasehold::{mock::MockConnector, OwnedLease, Pool};
    ///
    /// let pool = Pool::builder(MockConnector::<u32>::new()).build()?;
    /// let lease: OwnedLease<MockConnector<u32>> = pool.lease_owned(&1)?;
    /// std::thread::spawn(move || drop(lease)).join().unwrap();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`lease`](Self::lease).
    #[track_caller]
    pub fn lease_owned(&self, route: &C::Route) -> Result<OwnedLease<C, P>, Error> {
        self.lease(route).map(Lease::into_owned)
    }

    /// Leases a connection to `route` in `state` (for example, authenticated
    /// as one user): it never gets a connection in another state or none.
    ///
    /// # Errors
    /// As [`lease`](Self::lease).
    #[track_caller]
    pub fn lease_with_state(
        &self,
        route: &C::Route,
        state: &State,
    ) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, Some(state), Wait::Queue, Location::caller())
    }

    /// Leases a connection only if one is idle or capacity is free without
    /// waiting behind anyone; otherwise fails at once with
    /// [`Error::Exhausted`]. Opening a new connection may still take the
    /// connect time.
    ///
    /// # Errors
    /// [`Error::Exhausted`], a connect error, or [`Error::Closed`].
    #[track_caller]
    pub fn try_lease(&self, route: &C::Route) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, None, Wait::Never, Location::caller())
    }

    /// [`try_lease`](Self::try_lease) for a connection in `state`.
    ///
    /// # Errors
    /// As [`try_lease`](Self::try_lease).
    #[track_caller]
    pub fn try_lease_with_state(
        &self,
        route: &C::Route,
        state: &State,
    ) -> Result<Lease<'_, C, P>, Error> {
        self.acquire(route, Some(state), Wait::Never, Location::caller())
    }

    /// Leases a connection to `route` that carries no state, without
    /// blocking a thread: the future resolves when a connection is leased,
    /// and fails as [`lease`](Self::lease) does. It works on any executor,
    /// its deadline is kept by the pool's event loop, and dropping it at
    /// any point loses nothing ([`LeaseFuture`]).
    ///
    /// ```
    /// use leasehold::{mock::MockConnector, Pool};
    ///
    /// let pool: Pool<MockConnector<&str>> = Pool::builder(MockConnector::new()).build()?;
    /// // Any executor will do; this one comes with the `futures` crate.
    /// let lease = futures::executor::block_on(pool.lease_async(&"db"))?;
    /// assert_eq!(lease.route(), &"db");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn lease_async<'a: 'r, 'r>(&'a self, route: &'r C::Route) -> LeaseFuture<'a, 'r, C, P> {
        let shared = self.shared();
        let at = Location::caller();
        let request = Request::new(shared, route, None, Wait::Queue, at, shared.sample());
        LeaseFuture::new(self, request)
    }

    /// [`lease_async`](Self::lease_async), resolving to an [`OwnedLease`]
    /// (`'static`: it can move into a spawned task). The future borrows the
    /// pool while it waits.
    ///
    /// # Errors
    /// As [`lease`](Self::lease).
    #[track_caller]
    pub fn lease_owned_async<'r>(
        &'r self,
        route: &'r C::Route,
    ) -> impl Future<Output = Result<OwnedLease<C, P>, Error>> + 'r {
        let lease = self.lease_async(route);
        async move { lease.await.map(Lease::into_owned) }
    }

    /// [`lease_async`](Self::lease_async) for a connection in `state`.
    #[track_caller]
    pub fn lease_async_with_state<'a: 'r, 'r>(
        &'a self,
        route: &'r C::Route,
        state: &'r State,
    ) -> LeaseFuture<'a, 'r, C, P> {
        let at = Location::caller();
        let shared = self.shared();
        let asked = shared.sample();
        let request = Request::new(shared, route, Some(state), Wait::Queue, at, asked);
        LeaseFuture::new(self, request)
    }

    /// Gauges and counters of the pool and of every route it has seen.
    ///
    /// Each gauge is read with its own atomic load, so a read taken while
    /// the pool is busy may mix moments; none of them lags an answer given
    /// to the reader, though: a request answered with a connect error finds
    /// that connect's capacity freed already (`connecting` no longer counts
    /// it), and one answered with a lease finds it counted as leased. Only
    /// connects that other requests started may still be counted until they
    /// end.
    pub fn stats(&self) -> PoolStats<C::Route> {
        self.shared.stats()
    }

    /// The stats of one route (all zero, with the cap it would get, if the
    /// pool has not seen it yet).
    pub fn route_stats(&self, route: &C::Route) -> Stats {
        self.shared.route_stats(route)
    }

    /// What the pool recorded of its work, every route together: how
    /// leases were served and how long they waited, hold and connect
    /// times, timeouts and refusals, with the gauges of [`stats`](Self::stats)
    /// and the closes of [`health`](Self::health). See [`Figures`] for what
    /// each figure counts and [`Builder::sample_every`] for what is sampled.
    pub fn figures(&self) -> Figures {
        self.shared().figures_total()
    }

    /// [`figures`](Self::figures) for one route, since its figures began
    /// (they are let go while the route has no connection and no request,
    /// and start over when it comes back). Closes are counted pool-wide
    /// only: `health` reads zero here.
    pub fn route_figures(&self, route: &C::Route) -> Figures {
        self.shared().route_figures(route)
    }

    /// Sizing advice by Little's law for the pool and each route, over the
    /// window since the previous call (or since the pool started): the
    /// arrival rate, mean and p99 hold times, the connections they keep
    /// busy, the cap and a recommendation, and the waits and timeouts that
    /// say a cap is too tight. See [`Sizing`](crate::Sizing).
    ///
    /// ```
    /// # use leasehold::{mock::MockConnector, Pool};
    /// let pool = Pool::builder(MockConnector::<u32>::new()).build()?;
    /// drop(pool.lease(&1)?);
    /// let report = pool.sizing();
    /// println!("{report}");
    /// assert_eq!(report.total.leases, 1);
    /// assert_eq!(pool.sizing().total.leases, 0, "a new window");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sizing(&self) -> SizingReport<C::Route> {
        self.shared().sizing()
    }

    /// Records the pool's figures into the `metrics` facade now (the event
    /// loop does it every [`metrics_every`](Builder::metrics_every)), under
    /// the OpenTelemetry names for connection pools where there is one:
    /// gauges set, counters set to the running totals, histograms given
    /// the values recorded since the last export (each at its bucket's
    /// midpoint).
    ///
    #[doc = include_str!("../figures/metric_names.md")]
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        crate::reactor::LoopHost::export_metrics(self.shared());
    }

    /// Changes the cap of one route while the pool runs; the route keeps it
    /// from then on, whatever [`set_max_per_route`](Self::set_max_per_route)
    /// sets later.
    ///
    /// Every cap change works alike: once the call returns, the pool opens
    /// no connection while the count is at or over the new cap. Lowering
    /// a cap closes idle connections over it at once and leased ones as
    /// they come back (nothing leased is taken away, so until then the
    /// count may stay above it); raising one serves the waiting requests
    /// it lets through at once. A cap above [`MAX_CAPACITY`](crate::MAX_CAPACITY)
    /// is that.
    ///
    /// # Errors
    /// [`ConfigError::Limits`] if `max` is 0; nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # use leasehold::{mock::MockConnector, Pool};
    /// let pool: Pool<_> = Pool::builder(MockConnector::new()).max_per_route(2).build()?;
    /// pool.set_route_max(&(), 8)?;
    /// assert_eq!(pool.route_stats(&()).max, 8);
    /// assert!(pool.set_route_max(&(), 0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_route_max(&self, route: &C::Route, max: usize) -> Result<(), ConfigError> {
        if max == 0 {
            return Err(InvalidLimits::ZeroPerRoute(Some(format!("{route:?}"))).into());
        }
        self.shared.set_route_max(route, max);
        Ok(())
    }

    /// Changes [`max_per_route`](Builder::max_per_route) while the pool
    /// runs: the cap of every route without one of its own (given with
    /// [`route_max`](Builder::route_max) or
    /// [`set_route_max`](Self::set_route_max)), now and for routes first
    /// used later. As [`set_route_max`](Self::set_route_max) for each.
    ///
    /// # Errors
    /// [`ConfigError::Limits`] if `max` is 0; nothing changes then.
    pub fn set_max_per_route(&self, max: usize) -> Result<(), ConfigError> {
        if max == 0 {
            return Err(InvalidLimits::ZeroPerRoute(None).into());
        }
        self.shared.set_max_per_route(max);
        Ok(())
    }

    /// Changes [`max_total`](Builder::max_total) while the pool runs, as
    /// [`set_route_max`](Self::set_route_max) does a route's cap: lowered,
    /// idle connections over it close at once (of any route) and returned
    /// ones while the pool is over it; raised, requests that waited for
    /// total capacity are served at once.
    ///
    /// # Errors
    /// [`ConfigError::Limits`] if `max` is 0 or above
    /// [`MAX_CAPACITY`](crate::MAX_CAPACITY); nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # use leasehold::{mock::MockConnector, Pool};
    /// let pool: Pool<_> = Pool::builder(MockConnector::<()>::new()).max_total(4).build()?;
    /// pool.set_max_total(40)?;
    /// assert_eq!(pool.stats().total.max, 40);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_total(&self, max: usize) -> Result<(), ConfigError> {
        Limits::<()>::new(max, 1).validate()?;
        self.shared.set_max_total(max);
        Ok(())
    }

    /// Changes [`max_idle`](Builder::max_idle) while the pool runs: idle
    /// connections over it are closed at once (off this thread), and from
    /// then on a return that would exceed it is closed. A pool built
    /// without an idle cap below `max_total` starts counting its idle
    /// connections then (a return at that very instant may stay uncounted
    /// until its connection is next leased), and the count costs every
    /// return and idle hit a read-modify-write from then on. Above
    /// `max_total`, the total binds first.
    ///
    /// # Examples
    /// ```
    /// # use leasehold::{mock::MockConnector, Pool};
    /// let pool: Pool<_> = Pool::builder(MockConnector::new()).build()?;
    /// let leases: Vec<_> = (0..3).map(|_| pool.lease(&())).collect::<Result<_, _>>()?;
    /// drop(leases);
    /// pool.set_max_idle(1);
    /// assert_eq!(pool.stats().total.idle, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_max_idle(&self, max: usize) {
        self.shared.set_max_idle(max);
    }

    /// Gives `route` its own idle timeout, lifetime and connect timeout
    /// while the pool runs (see [`RouteSettings`]; all unset: the pool's
    /// again), replacing what it had. Connects started from now on use the
    /// new connect timeout. The lifetime applies to the route's open
    /// connections too, counted from their opening: a leased one at its
    /// return, an idle one at the event loop's next sweep (within a
    /// second), as does the idle timeout.
    ///
    /// # Errors
    /// [`ConfigError::ZeroTimeout`] if a duration is zero (`Duration::MAX`
    /// means no limit); nothing changes then.
    ///
    /// # Examples
    /// ```
    /// # use std::time::Duration;
    /// # use leasehold::{mock::MockConnector, Pool, RouteSettings};
    /// let pool: Pool<_> = Pool::builder(MockConnector::new()).build()?;
    /// let slow = RouteSettings::new().connect_timeout(Duration::from_secs(30));
    /// pool.set_route_settings(&(), slow)?;
    /// assert_eq!(pool.route_settings(&()), slow);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_route_settings(
        &self,
        route: &C::Route,
        settings: RouteSettings,
    ) -> Result<(), ConfigError> {
        settings.validate()?;
        self.shared.set_route_settings(route.clone(), settings);
        Ok(())
    }

    /// The settings `route` has of its own (all unset if none).
    pub fn route_settings(&self, route: &C::Route) -> RouteSettings {
        self.shared.route_settings(route)
    }

    /// Pauses the pool: new leases wait (each within its
    /// [`acquire_timeout`](Builder::acquire_timeout); `try_lease` fails at
    /// once with [`Error::Exhausted`]) until [`resume`](Self::resume), while
    /// leased connections are used and returned as usual. For a failover or
    /// a deploy: pause, switch, resume. [`PoolStats::paused`] reports it,
    /// and the waiting leases count in `pending`. Returns whether the pool
    /// was running.
    ///
    /// # Examples
    /// ```
    /// # use leasehold::{mock::MockConnector, Error, Pool};
    /// let pool: Pool<_> = Pool::builder(MockConnector::new()).build()?;
    /// pool.pause();
    /// assert!(pool.stats().paused);
    /// assert!(matches!(pool.try_lease(&()), Err(Error::Exhausted(_))));
    /// pool.resume();
    /// assert!(pool.try_lease(&()).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pause(&self) -> bool {
        self.shared.pause()
    }

    /// Lets the leases a [`pause`](Self::pause) holds go on at once, and new
    /// ones through; returns whether the pool was paused.
    pub fn resume(&self) -> bool {
        self.shared.resume()
    }

    /// Drains the pool: pauses it, waits up to `timeout` until nothing is
    /// leased, then closes every idle connection (off this thread) and
    /// returns. The pool stays paused: [`resume`](Self::resume) to use it
    /// again (it opens connections anew), or [`shutdown`](Self::shutdown).
    ///
    /// # Errors
    /// [`Undrained`] if leases were still out when `timeout` ran out:
    /// nothing was closed then, and the pool stays paused.
    pub fn drain(&self, timeout: Duration) -> Result<(), Undrained> {
        self.shared.pause();
        let started = std::time::Instant::now();
        let deadline = started.checked_add(timeout);
        let mut nap = Duration::from_micros(50);
        loop {
            let total = self.shared.stats().total;
            if total.leased == 0 && total.connecting == 0 {
                break;
            }
            let now = std::time::Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                return Err(Undrained {
                    leased: total.leased,
                    waited: now - started,
                });
            }
            let left = deadline.map_or(nap, |deadline| deadline - now);
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(Duration::from_millis(5));
        }
        self.shared.close_all_idle();
        Ok(())
    }

    /// Shuts the pool down: every waiting request fails with
    /// [`Error::Closed`], idle connections are closed, leased ones are closed
    /// when they come back, and new requests fail with `Closed`.
    ///
    /// It does not wait: the connections are closed off this thread, as
    /// [`disposal`](Builder::disposal) says (with `Inline`, the idle ones on
    /// this thread). Dropping the last handle afterwards waits for the
    /// closes still under way, within the
    /// [shutdown grace](Builder::shutdown_grace), and aborts what is left
    /// then (see [Shutdown](Self#shutdown)).
    pub fn shutdown(&self) {
        self.shared.shut_down();
    }

    /// Closes idle connections that have been idle for at least `idle`.
    ///
    /// Idle time is measured from the connection's return when the pool
    /// reads the clock on returns — when an
    /// [`idle_timeout`](Builder::idle_timeout),
    /// [`max_lifetime`](Builder::max_lifetime) or
    /// [`validate_after_inactivity`](Builder::validate_after_inactivity) is
    /// set — and from its opening otherwise (a return then costs no clock
    /// read).
    pub fn close_idle(&self, idle: Duration) {
        self.shared.close_idle(idle);
    }

    /// Closes idle connections past their [`max_lifetime`](Builder::max_lifetime)
    /// now, rather than at the event loop's next sweep.
    pub fn close_expired(&self) {
        self.shared.close_expired();
    }

    /// Counts of the connections the pool closed on its own, and why.
    pub fn health(&self) -> Health {
        self.shared.health()
    }

    /// Whether [`shutdown`](Self::shutdown) was called.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    fn acquire(
        &self,
        route: &C::Route,
        state: Option<&State>,
        mode: Wait,
        at: &'static Location<'static>,
    ) -> Result<Lease<'_, C, P>, Error> {
        let held = self.shared.acquire(route, state, mode, at)?;
        Ok(Lease::new(self, held))
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Shared<C, P> {
        &self.shared
    }
}

impl<C: Connector, P: Policy> fmt::Debug for Pool<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("policy", &P::NAME)
            .field("config", reactor::LoopHost::config(&*self.shared))
            .field("stats", &self.stats().total)
            .finish()
    }
}

impl<C: Connector, P: Policy> Builder<C, P> {
    /// Validates the settings and builds the pool.
    ///
    /// # Errors
    /// [`ConfigError`] if a cap is zero, `max_idle` exceeds `max_total`, a
    /// timeout is zero, the disposal queue holds no connection, the policy
    /// refuses inline disposal and it was asked for, or the disposal thread
    /// cannot be started.
    pub fn build(self) -> Result<Pool<C, P>, ConfigError> {
        let (connector, limits, config, hooks) = self.into_parts()?;
        Pool::from_parts(connector, limits, config, hooks)
            .map_err(|e| ConfigError::Thread(e.to_string()))
    }
}
