//! Configuration: the [`Builder`] and its documented defaults.

use crate::connector::Connector;
use crate::dispose::Disposal;
use crate::error::ConfigError;
use crate::pool::Pool;
use leasehold_policies::{Limits, Policy, Reuse};
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// Default for [`Builder::max_total`].
pub const DEFAULT_MAX_TOTAL: usize = 25;
/// Default for [`Builder::max_per_route`].
pub const DEFAULT_MAX_PER_ROUTE: usize = 5;

/// The settings a pool runs with, validated.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) acquire_timeout: Option<Duration>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) disposal: Disposal,
}

/// Builds a [`Pool`].
///
/// | setting | default |
/// |---|---|
/// | [`max_total`](Self::max_total) | 25 |
/// | [`max_per_route`](Self::max_per_route) | 5 |
/// | [`max_idle`](Self::max_idle) | `max_total` (no separate cap) |
/// | [`acquire_timeout`](Self::acquire_timeout) | none: wait until served |
/// | [`connect_timeout`](Self::connect_timeout) | none: as long as the connector takes |
/// | [`reuse`](Self::reuse) | [`Reuse::Lifo`] |
/// | [`disposal`](Self::disposal) | [`Disposal::Background`], queue of 1024 |
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
pub struct Builder<C: Connector, P> {
    connector: C,
    max_total: usize,
    max_per_route: usize,
    per_route: Vec<(C::Route, usize)>,
    max_idle: Option<usize>,
    acquire_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    reuse: Reuse,
    disposal: Disposal,
    _policy: PhantomData<fn() -> P>,
}

impl<C: Connector, P: Policy> Builder<C, P> {
    pub(crate) fn new(connector: C) -> Self {
        Self {
            connector,
            max_total: DEFAULT_MAX_TOTAL,
            max_per_route: DEFAULT_MAX_PER_ROUTE,
            per_route: Vec::new(),
            max_idle: None,
            acquire_timeout: None,
            connect_timeout: None,
            reuse: Reuse::Lifo,
            disposal: Disposal::default(),
            _policy: PhantomData,
        }
    }

    /// The most connections open at once, over all routes.
    pub fn max_total(mut self, max: usize) -> Self {
        self.max_total = max;
        self
    }

    /// The most connections open at once to one route, unless the route has
    /// its own [`route_max`](Self::route_max).
    pub fn max_per_route(mut self, max: usize) -> Self {
        self.max_per_route = max;
        self
    }

    /// The most connections open at once to `route`. Called again for the
    /// same route, the later value replaces the earlier.
    pub fn route_max(mut self, route: C::Route, max: usize) -> Self {
        self.per_route.push((route, max));
        self
    }

    /// The most idle connections kept over all routes; one returned beyond
    /// it is closed.
    pub fn max_idle(mut self, max: usize) -> Self {
        self.max_idle = Some(max);
        self
    }

    /// How long [`Pool::lease`] waits for a connection before it fails with
    /// [`Error::Timeout`](crate::Error::Timeout).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// How long opening one connection may take before it fails with
    /// [`Error::ConnectTimeout`](crate::Error::ConnectTimeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Which idle connection is reused first.
    pub fn reuse(mut self, reuse: Reuse) -> Self {
        self.reuse = reuse;
        self
    }

    /// Where connections the pool is done with are closed: on a disposal
    /// thread the pool owns (the default), so that a slow close never delays
    /// a lease, or inline. Policies that promise closes off the callers'
    /// threads ([`Offlock`](crate::Offlock)) refuse inline disposal.
    pub fn disposal(mut self, disposal: Disposal) -> Self {
        self.disposal = disposal;
        self
    }

    /// Validates the settings and builds the pool.
    ///
    /// # Errors
    /// [`ConfigError`] if a cap is zero, `max_idle` exceeds `max_total`, a
    /// timeout is zero, the policy refuses inline disposal and it was asked
    /// for, or the disposal thread cannot be started.
    pub fn build(self) -> Result<Pool<C, P>, ConfigError> {
        let mut limits = Limits::new(self.max_total, self.max_per_route)
            .with_max_idle(self.max_idle.unwrap_or(self.max_total))
            .with_reuse(self.reuse);
        for (route, max) in self.per_route {
            limits = limits.with_route_max(route, max);
        }
        limits.validate()?;
        if self.acquire_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTimeout("acquire_timeout"));
        }
        if self.connect_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroTimeout("connect_timeout"));
        }
        if P::DISPOSES_OFF_THREAD && self.disposal == Disposal::Inline {
            return Err(ConfigError::InlineDisposal(P::NAME));
        }
        let config = Config {
            acquire_timeout: self.acquire_timeout,
            connect_timeout: self.connect_timeout,
            disposal: self.disposal,
        };
        Pool::from_parts(self.connector, limits, config)
            .map_err(|e| ConfigError::Thread(e.to_string()))
    }
}

impl<C: Connector + fmt::Debug, P: Policy> fmt::Debug for Builder<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("connector", &self.connector)
            .field("policy", &P::NAME)
            .field("max_total", &self.max_total)
            .field("max_per_route", &self.max_per_route)
            .field("per_route", &self.per_route)
            .field("max_idle", &self.max_idle)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("reuse", &self.reuse)
            .field("disposal", &self.disposal)
            .finish()
    }
}
