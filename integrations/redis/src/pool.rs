//! [`RedisPool`]: a leasehold pool of Redis connections and the route its
//! leases go to, so that the common case (one server, one database) needs
//! neither, and [`RedisLease`] / [`OwnedRedisLease`], the leases it lends
//! out, which the redis crate's `query` and `query_async` take as they are.
//!
//! A lease that fails is a [`RedisPoolError`], which `?` turns into a
//! [`RedisError`] in functions returning [`RedisResult`].

use crate::connection::RedisConnection;
use crate::connector::RedisConnector;
use crate::error::RedisPoolError;
use crate::route::RedisRoute;
use leasehold::{Builder, Lease, OwnedLease, Policy, Pool, Strict};
use redis::{RedisError, RedisResult};
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::{Deref, DerefMut};

/// A pool of connections to one Redis server and database (a
/// [`RedisRoute`]), on a leasehold [`Pool`] with policy `P`.
///
/// Cloning it is cheap and shares the pool. Everything the pool offers
/// (stats, other routes, `shutdown`) is on [`pool`](Self::pool).
///
/// # Examples
/// ```no_run
/// # async fn run() -> redis::RedisResult<()> {
/// let pool = leasehold_redis::RedisPool::open("redis://127.0.0.1:6379/0")?;
///
/// let mut conn = pool.get()?; // blocking
/// redis::cmd("SET").arg("greeting").arg("hello").exec(&mut conn)?;
/// drop(conn);
///
/// let mut conn = pool.get_async().await?; // async (the `tokio` feature)
/// let greeting: String = redis::cmd("GET").arg("greeting").query_async(&mut conn).await?;
/// assert_eq!(greeting, "hello");
/// # Ok(())
/// # }
/// ```
pub struct RedisPool<P: Policy = Strict> {
    pool: Pool<RedisConnector, P>,
    route: RedisRoute,
}

impl RedisPool {
    /// A pool with leasehold's defaults (the [`Strict`] policy, up to 5
    /// connections, 30 s to wait for one, 10 s to connect) for the server
    /// and database of `url` (see [`RedisRoute::parse`], which blocks to
    /// resolve a host name). Connections open when first needed.
    ///
    /// # Errors
    /// The URL is not valid, or its host does not resolve.
    pub fn open(url: &str) -> RedisResult<Self> {
        Self::build(url, |builder| builder)
    }
}

impl<P: Policy> RedisPool<P> {
    /// A pool for the server and database of `url`, configured by
    /// `configure` on a builder with a default [`RedisConnector`]:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use leasehold::Lax;
    /// use leasehold_redis::RedisPool;
    ///
    /// let pool = RedisPool::build("redis://127.0.0.1:6379", |pool| {
    ///     pool.max_per_route(16)
    ///         .acquire_timeout(Duration::from_millis(200))
    ///         .policy::<Lax>()
    /// })?;
    /// # Ok::<(), redis::RedisError>(())
    /// ```
    ///
    /// # Errors
    /// The URL is not valid, its host does not resolve, or the settings
    /// are not (a zero maximum…).
    pub fn build(
        url: &str,
        configure: impl FnOnce(Builder<RedisConnector>) -> Builder<RedisConnector, P>,
    ) -> RedisResult<Self> {
        let route = RedisRoute::parse(url)?;
        let pool = configure(Pool::builder(RedisConnector::new()))
            .build()
            .map_err(|e| RedisError::from(io::Error::from(e)))?;
        Ok(Self { pool, route })
    }

    /// A pool that lends out connections to `route` from `pool` (one with
    /// a [`RedisConnector`] of custom TCP or TLS settings, say).
    pub fn from_parts(pool: Pool<RedisConnector, P>, route: RedisRoute) -> Self {
        Self { pool, route }
    }

    /// Leases a connection, waiting up to the acquire timeout for one, and
    /// opening one if none is idle and the pool has room.
    ///
    /// # Errors
    /// No connection within the acquire timeout, a failed connect
    /// (refused, `AUTH` refused…), a pool that was shut down: see
    /// [`RedisPoolError`].
    #[track_caller]
    pub fn get(&self) -> Result<RedisLease<'_, P>, RedisPoolError> {
        self.pool
            .lease(&self.route)
            .map(|lease| RedisLease { lease })
            .map_err(RedisPoolError::from)
    }

    /// [`get`](Self::get), as a lease that holds a handle to the pool (so
    /// it can move into another thread or a spawned task).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned(&self) -> Result<OwnedRedisLease<P>, RedisPoolError> {
        self.pool
            .lease_owned(&self.route)
            .map(|lease| OwnedRedisLease { lease })
            .map_err(RedisPoolError::from)
    }

    /// Leases a connection without blocking a thread; see
    /// [`Pool::lease_async`]. Dropping the future at any point loses
    /// nothing.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_async(
        &self,
    ) -> impl Future<Output = Result<RedisLease<'_, P>, RedisPoolError>> + Send + '_ {
        let lease = self.pool.lease_async(&self.route);
        async move {
            lease
                .await
                .map(|lease| RedisLease { lease })
                .map_err(RedisPoolError::from)
        }
    }

    /// [`get_async`](Self::get_async), as a lease that holds a handle to
    /// the pool (`'static`: it can move into a spawned task).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    #[track_caller]
    pub fn get_owned_async(
        &self,
    ) -> impl Future<Output = Result<OwnedRedisLease<P>, RedisPoolError>> + Send + '_ {
        let lease = self.pool.lease_async(&self.route);
        async move {
            lease
                .await
                .map(|lease| OwnedRedisLease {
                    lease: lease.into_owned(),
                })
                .map_err(RedisPoolError::from)
        }
    }

    /// The leasehold pool: stats, health, other routes, shutdown.
    pub fn pool(&self) -> &Pool<RedisConnector, P> {
        &self.pool
    }

    /// The route [`get`](Self::get) leases connections to.
    pub fn route(&self) -> &RedisRoute {
        &self.route
    }
}

impl<P: Policy> Clone for RedisPool<P> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            route: self.route.clone(),
        }
    }
}

impl<P: Policy> fmt::Debug for RedisPool<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPool")
            .field("route", &self.route)
            .field("pool", &self.pool)
            .finish()
    }
}

macro_rules! lease_type {
    ($(#[$doc:meta])* $name:ident<$($lt:lifetime,)? P>, $inner:ty) => {
        $(#[$doc])*
        pub struct $name<$($lt,)? P: Policy = Strict> {
            lease: $inner,
        }

        impl<$($lt,)? P: Policy> $name<$($lt,)? P> {
            /// Closes the connection instead of returning it to the pool.
            /// Rarely needed: a connection left in a state the next holder
            /// cannot use is closed anyway when the lease is dropped.
            pub fn discard(self) {
                self.lease.discard();
            }

            /// The leasehold lease (for its route, state, `detach`…).
            pub fn into_inner(self) -> $inner {
                self.lease
            }
        }

        impl<$($lt,)? P: Policy> Deref for $name<$($lt,)? P> {
            type Target = RedisConnection;

            fn deref(&self) -> &RedisConnection {
                &self.lease
            }
        }

        impl<$($lt,)? P: Policy> DerefMut for $name<$($lt,)? P> {
            fn deref_mut(&mut self) -> &mut RedisConnection {
                &mut self.lease
            }
        }

        #[cfg(feature = "tokio")]
        impl<$($lt,)? P: Policy> redis::aio::ConnectionLike for $name<$($lt,)? P> {
            fn req_packed_command<'c>(
                &'c mut self,
                cmd: &'c redis::Cmd,
            ) -> redis::RedisFuture<'c, redis::Value> {
                redis::aio::ConnectionLike::req_packed_command(&mut *self.lease, cmd)
            }

            fn req_packed_commands<'c>(
                &'c mut self,
                pipeline: &'c redis::Pipeline,
                offset: usize,
                count: usize,
            ) -> redis::RedisFuture<'c, Vec<redis::Value>> {
                redis::aio::ConnectionLike::req_packed_commands(
                    &mut *self.lease,
                    pipeline,
                    offset,
                    count,
                )
            }

            fn get_db(&self) -> i64 {
                redis::aio::ConnectionLike::get_db(&*self.lease)
            }
        }

        impl<$($lt,)? P: Policy> fmt::Debug for $name<$($lt,)? P> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&*self.lease).finish()
            }
        }
    };
}

lease_type!(
    /// A Redis connection on loan from a [`RedisPool`], borrowing it; back
    /// to the pool when dropped (or closed, if it is not fit for the next
    /// holder: see [`RedisConnection`]).
    ///
    /// It dereferences to the [`RedisConnection`], and implements the
    /// redis crate's `ConnectionLike` (through that) and, with the `tokio`
    /// feature, `aio::ConnectionLike`, so `query(&mut lease)` and
    /// `query_async(&mut lease)` both work.
    RedisLease<'a, P>,
    Lease<'a, RedisConnector, P>
);

lease_type!(
    /// A [`RedisLease`] that holds a handle to its pool instead of
    /// borrowing one: it is `'static`, so it can be stored or moved into a
    /// spawned task.
    OwnedRedisLease<P>,
    OwnedLease<RedisConnector, P>
);
