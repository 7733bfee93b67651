//! Configuration: the [`Builder`] and its documented defaults.

use crate::connector::Connector;
use crate::error::ConfigError;
use crate::hooks::{Hook, Hooks};
use leasehold_policies::unstable::Limits;
use leasehold_policies::{Policy, Reuse, Strict};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// The sweep period when no idle timeout or lifetime sets a shorter one:
/// a route unused for about this long (at most twice it) is forgotten.
pub(crate) const ROUTE_SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// Default for [`Builder::max_total`].
pub const DEFAULT_MAX_TOTAL: usize = 25;
/// Default for [`Builder::max_per_route`].
pub const DEFAULT_MAX_PER_ROUTE: usize = 5;

/// Default for the first rest of a down route ([`Builder::connect_backoff`]).
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_millis(10);
/// Default for the longest rest between two probes of a down route
/// ([`Builder::connect_backoff`]).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_millis(100);
/// Default for [`Builder::shutdown_grace`].
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Default for [`Builder::acquire_timeout`], as bb8's and HikariCP's.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// The pool's name unless [`Builder::name`] gives another.
const DEFAULT_NAME: &str = "leasehold";

/// How often the pool records its figures into the `metrics` facade
/// (feature `metrics`), unless `Builder::metrics_every` says otherwise.
pub const DEFAULT_METRICS_EVERY: Duration = Duration::from_secs(1);

/// Default for [`Builder::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings of one route that differ from the pool's: a slow downstream
/// may get longer connects, a flaky one shorter idle times. Each one left
/// unset follows the pool's ([`Builder::idle_timeout`],
/// [`Builder::max_lifetime`], [`Builder::connect_timeout`]); `Duration::MAX`
/// means no limit for that route. Given with [`Builder::route_settings`]
/// and changed on a running pool with
/// [`Pool::set_route_settings`](crate::Pool::set_route_settings).
///
/// ```
/// use std::time::Duration;
/// use leasehold::RouteSettings;
/// let slow = RouteSettings::new()
///     .connect_timeout(Duration::from_secs(30))
///     .max_lifetime(Duration::from_secs(600));
/// assert_eq!(slow.idle_timeout, None, "the pool's");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteSettings {
    /// Closes the route's connections idle for longer.
    pub idle_timeout: Option<Duration>,
    /// Retires the route's connections once they are this old (up to 5 %
    /// sooner for those opened under it, jittered as the pool's lifetime).
    pub max_lifetime: Option<Duration>,
    /// Bounds the route's connects, handshakes included.
    pub connect_timeout: Option<Duration>,
}

impl RouteSettings {
    /// Every setting the pool's.
    pub fn new() -> Self {
        Self::default()
    }

    /// See [`RouteSettings::idle_timeout`](#structfield.idle_timeout).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// See [`RouteSettings::max_lifetime`](#structfield.max_lifetime).
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_lifetime = Some(lifetime);
        self
    }

    /// See [`RouteSettings::connect_timeout`](#structfield.connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Rejects a zero duration, as the pool's settings do.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            ("idle_timeout (route)", self.idle_timeout),
            ("max_lifetime (route)", self.max_lifetime),
            ("connect_timeout (route)", self.connect_timeout),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        Ok(())
    }
}

/// The settings a pool runs with, validated.
#[derive(Clone, Debug)]
pub(crate) struct Config<K> {
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) disposal: Disposal,
    pub(crate) patience: Option<Duration>,
    pub(crate) max_connecting: Option<usize>,
    pub(crate) min_idle: Vec<(K, usize)>,
    pub(crate) min_idle_per_route: usize,
    pub(crate) route_settings: Vec<(K, RouteSettings)>,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) validate_after: Option<Duration>,
    pub(crate) leak_threshold: Option<Duration>,
    pub(crate) backoff: (Duration, Duration),
    pub(crate) shutdown_grace: Duration,
    pub(crate) sample_every: u32,
    pub(crate) name: String,
    pub(crate) health_every: Option<Duration>,
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) metrics_every: Option<Duration>,
}

impl<K: PartialEq> Config<K> {
    /// How often the event loop looks for idle connections past their idle
    /// timeout or lifetime: a tenth of the shorter, between 5 ms and 1 s.
    pub(crate) fn sweep_period(&self) -> Option<Duration> {
        let shortest = match (self.idle_timeout, self.max_lifetime) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        Some((shortest / 10).clamp(Duration::from_millis(5), Duration::from_secs(1)))
    }

    /// How often the event loop sweeps: idle connections past their time
    /// (with an idle timeout or a lifetime) and unused routes (always).
    pub(crate) fn route_sweep_period(&self) -> Duration {
        self.sweep_period().unwrap_or(ROUTE_SWEEP_PERIOD)
    }

    /// Whether any route keeps warm connections.
    pub(crate) fn warms(&self) -> bool {
        self.min_idle_per_route > 0 || !self.min_idle.is_empty()
    }

    /// The `min_idle` of `route`.
    pub(crate) fn min_idle(&self, route: &K) -> usize {
        self.min_idle
            .iter()
            .rev()
            .find(|(k, _)| k == route)
            .map_or(self.min_idle_per_route, |(_, n)| *n)
    }

    /// Whether a return must read the clock (idle time or lifetime matter).
    pub(crate) fn clock_on_release(&self) -> bool {
        self.idle_timeout.is_some() || self.max_lifetime.is_some() || self.validate_after.is_some()
    }
}

/// Builds a [`Pool`](crate::Pool).
///
/// | setting | default |
/// |---|---|
/// | [`max_total`](Self::max_total) | 25 |
/// | [`max_per_route`](Self::max_per_route) | 5 |
/// | [`max_idle`](Self::max_idle) | `max_total` (no separate cap) |
/// | [`acquire_timeout`](Self::acquire_timeout) | 30 s; `Duration::MAX` waits until served |
/// | [`connect_timeout`](Self::connect_timeout) | 10 s, the TCP connect and any handshake together; `Duration::MAX` lets the connector take as long as it takes |
/// | [`reuse`](Self::reuse) | [`Reuse::Lifo`] |
/// | [`disposal`](Self::disposal) | [`Disposal::Background`], queue of 1024 |
/// | [`patience`](Self::patience) | none: a request that may open a connection starts it at once |
/// | [`max_connecting`](Self::max_connecting) | none: one connect per request that misses (within the caps) |
/// | [`min_idle`](Self::min_idle), [`min_idle_per_route`](Self::min_idle_per_route) | 0: no warm connections |
/// | [`idle_timeout`](Self::idle_timeout) | none: idle connections are kept until the peer closes them |
/// | [`max_lifetime`](Self::max_lifetime) | none: connections are never retired for age |
/// | [`route_settings`](Self::route_settings) | none: every route has the pool's idle timeout, lifetime and connect timeout |
/// | [`validate_after_inactivity`](Self::validate_after_inactivity), [`validate_on_lease`](Self::validate_on_lease) | none: no liveness check on lease |
/// | [`on_create`](Self::on_create), [`on_check_out`](Self::on_check_out) | none |
/// | [`leak_detection`](Self::leak_detection) | none: long leases are not reported |
/// | [`sample_every`](Self::sample_every) | [`DEFAULT_SAMPLE_EVERY`](crate::DEFAULT_SAMPLE_EVERY): one lease in 32 per thread has its hit and hold timed |
/// | [`name`](Self::name) | `"leasehold"` |
/// | [`health_log`](Self::health_log) | none: no periodic health line |
/// | `metrics_every` (feature `metrics`) | [`DEFAULT_METRICS_EVERY`]: 1 s |
/// | [`connect_backoff`](Self::connect_backoff) | a down route is probed 10 ms after it went down, then at most every 100 ms |
/// | [`shutdown_grace`](Self::shutdown_grace) | 5 s: graceful closes at the drop, then aborts |
///
/// ```
/// use std::time::Duration;
/// use leasehold::{mock::MockConnector, Pool, Strict};
///
/// let pool: Pool<MockConnector<&str>, Strict> = Pool::builder(MockConnector::new())
///     .max_total(50)
///     .max_per_route(20)
///     .route_max("reports", 2)
///     .acquire_timeout(Duration::from_millis(500))
///     .build()?;
/// assert_eq!(pool.route_stats(&"reports").max, 2);
/// # Ok::<(), leasehold::ConfigError>(())
/// ```
pub struct Builder<C: Connector, P = Strict> {
    settings: BuilderSettings<C>,
    _policy: PhantomData<fn() -> P>,
}

/// What a [`Builder`] has been told, whatever the policy.
struct BuilderSettings<C: Connector> {
    connector: C,
    max_total: usize,
    max_per_route: usize,
    per_route: Vec<(C::Route, usize)>,
    max_idle: Option<usize>,
    acquire_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    reuse: Reuse,
    forget_unused_routes: bool,
    disposal: Disposal,
    patience: Option<Duration>,
    max_connecting: Option<usize>,
    min_idle: Vec<(C::Route, usize)>,
    min_idle_per_route: usize,
    route_settings: Vec<(C::Route, RouteSettings)>,
    idle_timeout: Option<Duration>,
    max_lifetime: Option<Duration>,
    validate_after: Option<Duration>,
    leak_threshold: Option<Duration>,
    backoff: (Duration, Duration),
    shutdown_grace: Duration,
    sample_every: u32,
    name: String,
    health_every: Option<Duration>,
    metrics_every: Option<Duration>,
    on_create: Option<Hook<C::Conn>>,
    on_check_out: Option<Hook<C::Conn>>,
    validate_on_lease: bool,
}

impl<C: Connector, P: Policy> Builder<C, P> {
    pub(crate) fn new(connector: C) -> Self {
        Self {
            settings: BuilderSettings {
                connector,
                max_total: DEFAULT_MAX_TOTAL,
                max_per_route: DEFAULT_MAX_PER_ROUTE,
                per_route: Vec::new(),
                max_idle: None,
                acquire_timeout: Some(DEFAULT_ACQUIRE_TIMEOUT),
                connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
                reuse: Reuse::Lifo,
                forget_unused_routes: true,
                disposal: Disposal::default(),
                patience: None,
                max_connecting: None,
                min_idle: Vec::new(),
                min_idle_per_route: 0,
                route_settings: Vec::new(),
                idle_timeout: None,
                max_lifetime: None,
                validate_after: None,
                leak_threshold: None,
                backoff: (DEFAULT_BACKOFF_INITIAL, DEFAULT_BACKOFF_MAX),
                shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
                sample_every: crate::figures::DEFAULT_SAMPLE_EVERY,
                name: DEFAULT_NAME.to_owned(),
                health_every: None,
                metrics_every: cfg!(feature = "metrics").then_some(DEFAULT_METRICS_EVERY),
                on_create: None,
                on_check_out: None,
                validate_on_lease: false,
            },
            _policy: PhantomData,
        }
    }

    /// Switches the pool being built to the policy `Q` (the default is
    /// [`Strict`]); the settings made so far are kept.
    ///
    /// ```
    /// use leasehold::{mock::MockConnector, Lax, Pool};
    ///
    /// let pool = Pool::builder(MockConnector::<u32>::new()).policy::<Lax>().build()?;
    /// let _: &Pool<MockConnector<u32>, Lax> = &pool;
    /// # Ok::<(), leasehold::ConfigError>(())
    /// ```
    pub fn policy<Q: Policy>(self) -> Builder<C, Q> {
        Builder {
            settings: self.settings,
            _policy: PhantomData,
        }
    }

    /// The most connections open at once, over all routes.
    pub fn max_total(mut self, max: usize) -> Self {
        self.settings.max_total = max;
        self
    }

    /// The most connections open at once to one route, unless the route has
    /// its own [`route_max`](Self::route_max).
    pub fn max_per_route(mut self, max: usize) -> Self {
        self.settings.max_per_route = max;
        self
    }

    /// The most connections open at once to `route`. Called again for the
    /// same route, the later value replaces the earlier.
    pub fn route_max(mut self, route: C::Route, max: usize) -> Self {
        self.settings.per_route.push((route, max));
        self
    }

    /// The most idle connections kept over all routes; one returned beyond
    /// it is closed.
    pub fn max_idle(mut self, max: usize) -> Self {
        self.settings.max_idle = Some(max);
        self
    }

    /// How long [`Pool::lease`](crate::Pool::lease) waits for a connection before it fails with
    /// [`Error::Timeout`](crate::Error::Timeout). Default: 30 s;
    /// `Duration::MAX` waits until served.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.settings.acquire_timeout = Some(timeout);
        self
    }

    /// How long opening one connection (the TCP connect and any handshake)
    /// may take before it fails with
    /// [`Error::ConnectTimeout`](crate::Error::ConnectTimeout). Default:
    /// 10 s; `Duration::MAX` waits as long as the connector takes.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = Some(timeout);
        self
    }

    /// Whether the pool forgets a route that has had no connection and no
    /// request for a sweep period (1 s, or the idle sweep's period when an
    /// idle timeout or lifetime makes it shorter): on by default, so that a
    /// pool that meets many routes (a crawler, a client of many hosts) keeps
    /// memory in proportion to the routes in use. A forgotten route keeps
    /// its counters in the totals of [`Pool::stats`](crate::Pool::stats),
    /// and a cap set with [`Pool::set_route_max`](crate::Pool::set_route_max)
    /// for when it is used again.
    ///
    /// Off, the pool keeps every route it has seen, and the idle hit skips
    /// the epoch pin that makes forgetting safe: for pools with a fixed,
    /// small set of routes.
    pub fn forget_unused_routes(mut self, forget: bool) -> Self {
        self.settings.forget_unused_routes = forget;
        self
    }

    /// Which idle connection is reused first.
    pub fn reuse(mut self, reuse: Reuse) -> Self {
        self.settings.reuse = reuse;
        self
    }

    /// Where connections the pool is done with are closed: on a disposal
    /// thread the pool owns (the default), so that a slow close never delays
    /// a lease, or inline. Policies that promise closes off the callers'
    /// threads ([`Offlock`](crate::Offlock)) refuse inline disposal.
    pub fn disposal(mut self, disposal: Disposal) -> Self {
        self.settings.disposal = disposal;
        self
    }

    /// How long a request that may open a new connection first waits for
    /// one to be returned (the "hybrid" growth strategy): under a short
    /// burst, returns serve most requests and few connections are opened.
    /// A connect already in flight and not claimed by anyone is adopted
    /// instead of starting another either way. A request does not wait when
    /// none of its route's connections is leased: nothing could come back.
    pub fn patience(mut self, patience: Duration) -> Self {
        self.settings.patience = Some(patience).filter(|p| !p.is_zero());
        self
    }

    /// The most connects in flight at once to one route (per connection
    /// state). A request that misses while `n` are in flight does not start
    /// another: it waits for one of them or for a returned connection,
    /// whichever comes first; when a connect completes and requests are
    /// still waiting, the event loop starts the next. Under a burst against
    /// a slow backend this opens a handful of connections where one per miss
    /// would open dozens (the spike benchmark). 0 counts as 1.
    pub fn max_connecting(mut self, n: usize) -> Self {
        self.settings.max_connecting = Some(n);
        self
    }

    /// Keeps at least `n` idle connections to `route`, opened in the
    /// background at start-up and again after evictions (never beyond the
    /// caps). Called again for the same route, the later value wins.
    pub fn min_idle(mut self, route: C::Route, n: usize) -> Self {
        self.settings.min_idle.push((route, n));
        self
    }

    /// Gives `route` settings of its own (see [`RouteSettings`]); the last
    /// given for a route counts.
    pub fn route_settings(mut self, route: C::Route, settings: RouteSettings) -> Self {
        self.settings.route_settings.push((route, settings));
        self
    }

    /// Keeps at least `n` idle connections to every route the pool has seen
    /// (routes named in [`min_idle`](Self::min_idle) keep theirs).
    pub fn min_idle_per_route(mut self, n: usize) -> Self {
        self.settings.min_idle_per_route = n;
        self
    }

    /// Closes connections idle for longer than `timeout`. The event loop
    /// checks every tenth of the timeout (between 5 ms and 1 s), so a
    /// connection may stay idle up to that much longer.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = Some(timeout);
        self
    }

    /// Retires connections older than `lifetime`: idle ones are closed by
    /// the event loop, leased ones when they are returned. Each connection's
    /// lifetime is shortened by a random amount of up to 5 % so that
    /// connections opened together do not all expire together.
    pub fn max_lifetime(mut self, lifetime: Duration) -> Self {
        self.settings.max_lifetime = Some(lifetime);
        self
    }

    /// Runs the connector's liveness check
    /// ([`Connector::is_alive`]) on a connection
    /// about to be leased if it has been idle for longer than `after`.
    pub fn validate_after_inactivity(mut self, after: Duration) -> Self {
        self.settings.validate_after = Some(after);
        self
    }

    /// Runs the connector's liveness check on every lease, however short
    /// the connection's idle time (r2d2's `test_on_check_out`): one
    /// non-blocking peek per lease for TCP and TLS. A connection found dead
    /// is closed and the lease takes another.
    pub fn validate_on_lease(mut self) -> Self {
        self.settings.validate_on_lease = true;
        self
    }

    /// Runs `hook` on each new connection before its first lease, on the
    /// thread or task that leases it (deadpool's and bb8's post-create
    /// step: set a session variable, prepare statements). It should be
    /// short: an async lease runs it inside its `poll`. An error or a
    /// panic closes the connection, counted in
    /// [`Health::rejected`](crate::Health::rejected), and the lease takes
    /// another; the request itself does not fail. A protocol exchange that
    /// must run before the connection counts as connected belongs in the
    /// connector ([`Connector::with_setup`]), where it runs off the
    /// callers' threads and under the connect timeout.
    ///
    /// ```
    /// use leasehold::{mock::MockConnector, Pool};
    ///
    /// let pool = Pool::builder(MockConnector::<u8>::new())
    ///     .on_create(|conn| {
    ///         println!("new connection {}", conn.id());
    ///         Ok(())
    ///     })
    ///     .build()?;
    /// # drop(pool);
    /// # Ok::<(), leasehold::ConfigError>(())
    /// ```
    pub fn on_create(
        mut self,
        hook: impl Fn(&mut C::Conn) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.settings.on_create = Some(std::sync::Arc::new(hook));
        self
    }

    /// Runs `hook` on every connection about to be leased, after the pool's
    /// own checks, on the thread or task that leases it (r2d2's and bb8's
    /// `is_valid`, deadpool's `recycle`): a `PING`, a state reset. The
    /// rules of [`on_create`](Self::on_create) apply: keep it short; an
    /// error or a panic closes the connection and the lease takes another.
    pub fn on_check_out(
        mut self,
        hook: impl Fn(&mut C::Conn) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.settings.on_check_out = Some(std::sync::Arc::new(hook));
        self
    }

    /// Reports (through `tracing`, at `WARN`, with the location of the
    /// `lease` call) every lease held longer than `threshold`, and counts
    /// it in [`Health::leaks`](crate::Health::leaks).
    pub fn leak_detection(mut self, threshold: Duration) -> Self {
        self.settings.leak_threshold = Some(threshold);
        self
    }

    /// How the pool samples the figures it records
    /// ([`Pool::figures`](crate::Pool::figures)): one lease in `every`
    /// (rounded up to a power of two) per thread has its hit and its hold
    /// timed (two clock reads); every lease is counted, and every wait and
    /// connect timed, whatever the sampling. 1 times every lease; 0 records
    /// no figures at all.
    /// [`DEFAULT_SAMPLE_EVERY`](crate::DEFAULT_SAMPLE_EVERY) by default.
    pub fn sample_every(mut self, every: u32) -> Self {
        self.settings.sample_every = every;
        self
    }

    /// The pool's name, in its health line, its `tracing` events and its
    /// metrics (`db.client.connection.pool.name`); `"leasehold"` by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.settings.name = name.into();
        self
    }

    /// Logs the pool's state every `every` through `tracing` (target
    /// `leasehold::health`, at `INFO`), in one line: the gauges, the leases
    /// per second of the period, the share that waited and their p99 wait,
    /// the mean hold, timeouts, connects and closes, and the busiest routes.
    /// Off by default.
    ///
    /// ```text
    /// pool api: 3/25 leased, 2 idle, 0 waiting, 0 connecting; 1520 leases/s, 2% waited (p99 1.2 ms),
    /// hold mean 80.5 µs | 10.0.0.7:443 3/5 leased, 2 idle, 0 waiting, 0 connecting
    /// ```
    pub fn health_log(mut self, every: Duration) -> Self {
        self.settings.health_every = Some(every);
        self
    }

    /// How often the pool records its figures into the `metrics` facade
    /// (the `metrics` feature; see [`Pool::export_metrics`](crate::Pool::export_metrics) for the names).
    /// [`DEFAULT_METRICS_EVERY`] by default; `Duration::MAX` leaves it to
    /// [`Pool::export_metrics`](crate::Pool::export_metrics) calls.
    #[cfg(feature = "metrics")]
    pub fn metrics_every(mut self, every: Duration) -> Self {
        self.settings.metrics_every = Some(every);
        self
    }

    /// How a route whose connects keep failing is probed (a circuit
    /// breaker). Connects in flight together that fail count as one
    /// failure; two in a row with no success between them make the route
    /// *down*. While it is down, one probe connect at a time is made, the
    /// first `initial` after it went down, then spaced twice as far after
    /// each failed probe, up to `max`; requests that need a connect wait
    /// for a probe in flight, and fail at once with
    /// [`Error::Down`](crate::Error::Down) between probes. The first
    /// success ends it. Failures for want of local resources (`EMFILE`…)
    /// never make a route down. `initial` zero turns the breaker off (every
    /// request that needs a connect makes one); a spacing past what the
    /// clock can represent means no further probe.
    pub fn connect_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.settings.backoff = (initial, max);
        self
    }

    /// How long dropping the pool's last handle may wait for connections to
    /// close. Until `grace` has passed they are closed gracefully
    /// ([`Connector::close`]) — with background
    /// [`disposal`](Self::disposal), on up to 9 threads at once; then what
    /// is left is aborted ([`Connector::abort`])
    /// and the drop returns. A close under way at that moment is left to end
    /// on its own thread. Zero aborts everything left at once; a grace
    /// beyond what the clock can count (`Duration::MAX`) has no end: the
    /// drop waits for every close. See [Shutdown](crate::Pool#shutdown).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// The validated settings, taken apart for the pool to be built from
    /// ([`build`](Self::build)).
    #[allow(clippy::type_complexity)]
    pub(crate) fn into_parts(
        self,
    ) -> Result<(C, Limits<C::Route>, Config<C::Route>, Hooks<C::Conn>), ConfigError> {
        let mut limits = Limits::new(self.settings.max_total, self.settings.max_per_route)
            .with_max_idle(self.settings.max_idle.unwrap_or(self.settings.max_total))
            .with_reuse(self.settings.reuse)
            .with_forget_routes(self.settings.forget_unused_routes);
        for (route, max) in self.settings.per_route {
            limits = limits.with_route_max(route, max);
        }
        limits.validate()?;
        if self.settings.acquire_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTimeout("acquire_timeout"));
        }
        if self.settings.connect_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTimeout("connect_timeout"));
        }
        for (_, settings) in &self.settings.route_settings {
            settings.validate()?;
        }
        if self.settings.disposal == (Disposal::Background { queue: 0 }) {
            return Err(ConfigError::ZeroDisposalQueue);
        }
        if P::DISPOSES_OFF_THREAD && self.settings.disposal == Disposal::Inline {
            return Err(ConfigError::InlineDisposal(P::NAME));
        }
        for (name, value) in [
            ("idle_timeout", self.settings.idle_timeout),
            ("max_lifetime", self.settings.max_lifetime),
            ("validate_after_inactivity", self.settings.validate_after),
            ("leak_detection", self.settings.leak_threshold),
            ("health_log", self.settings.health_every),
            ("metrics_every", self.settings.metrics_every),
        ] {
            if value == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroTimeout(name));
            }
        }
        let config = Config {
            acquire_timeout: self.settings.acquire_timeout,
            connect_timeout: self.settings.connect_timeout,
            disposal: self.settings.disposal,
            patience: self.settings.patience,
            max_connecting: self.settings.max_connecting,
            min_idle: self.settings.min_idle,
            min_idle_per_route: self.settings.min_idle_per_route,
            route_settings: self.settings.route_settings,
            idle_timeout: self.settings.idle_timeout,
            max_lifetime: self.settings.max_lifetime,
            validate_after: if self.settings.validate_on_lease {
                Some(Duration::ZERO)
            } else {
                self.settings.validate_after
            },
            leak_threshold: self.settings.leak_threshold,
            backoff: self.settings.backoff,
            shutdown_grace: self.settings.shutdown_grace,
            sample_every: self.settings.sample_every,
            name: self.settings.name,
            health_every: self.settings.health_every,
            metrics_every: self.settings.metrics_every,
        };
        let hooks = Hooks {
            on_create: self.settings.on_create,
            on_check_out: self.settings.on_check_out,
        };
        Ok((self.settings.connector, limits, config, hooks))
    }
}

impl<C: Connector + fmt::Debug, P: Policy> fmt::Debug for Builder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("connector", &self.settings.connector)
            .field("policy", &P::NAME)
            .field("max_total", &self.settings.max_total)
            .field("max_per_route", &self.settings.max_per_route)
            .field("per_route", &self.settings.per_route)
            .field("max_idle", &self.settings.max_idle)
            .field("acquire_timeout", &self.settings.acquire_timeout)
            .field("connect_timeout", &self.settings.connect_timeout)
            .field("reuse", &self.settings.reuse)
            .field("forget_unused_routes", &self.settings.forget_unused_routes)
            .field("disposal", &self.settings.disposal)
            .field("patience", &self.settings.patience)
            .field("max_connecting", &self.settings.max_connecting)
            .field("min_idle", &self.settings.min_idle)
            .field("route_settings", &self.settings.route_settings)
            .field("min_idle_per_route", &self.settings.min_idle_per_route)
            .field("idle_timeout", &self.settings.idle_timeout)
            .field("max_lifetime", &self.settings.max_lifetime)
            .field("validate_after_inactivity", &self.settings.validate_after)
            .field("validate_on_lease", &self.settings.validate_on_lease)
            .field("on_create", &self.settings.on_create.is_some())
            .field("on_check_out", &self.settings.on_check_out.is_some())
            .field("leak_detection", &self.settings.leak_threshold)
            .field("connect_backoff", &self.settings.backoff)
            .field("shutdown_grace", &self.settings.shutdown_grace)
            .finish()
    }
}

/// How the pool closes connections it is done with.
///
/// Whichever is chosen, a [`Connector::close`] or [`Connector::abort`]
/// that panics is caught and logged (through `tracing`, at `ERROR`), and
/// its connection is dropped; the pool goes on closing the others.
///
/// # Shutdown
///
/// Dropping the pool's last handle closes every connection left, within
/// the [shutdown grace](crate::Builder::shutdown_grace): with `Background`,
/// the disposal thread and up to 8 short-lived helper threads close them
/// side by side; with `Inline`, the dropping thread closes them one after
/// another. Once the grace is over, the connections not yet started are
/// aborted and the drop returns; a close under way then is left to finish
/// on its thread.
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
        /// How many connections may wait to be closed: at least 1
        /// ([`Builder::build`](crate::Builder::build) refuses 0 with
        /// [`ConfigError::ZeroDisposalQueue`]).
        queue: usize,
    },
}

impl Default for Disposal {
    /// `Background` with a queue of 1024.
    fn default() -> Self {
        Self::Background { queue: 1024 }
    }
}
