//! A lock-free, high-concurrency connection pool with selectable concurrency
//! policies, for latency-critical services.
//!
//! A [`Pool<C, P>`](Pool) keeps connections made by a [`Connector`] `C`,
//! keyed by route, under per-route and total caps, and lends them out as
//! [`Lease`]s that go back to the pool when dropped. The policy `P` decides
//! who gets which connection; it is a type parameter, so the choice costs
//! nothing at run time:
//!
//! | policy | promise | sweet spot |
//! |---|---|---|
//! | [`Strict`] (default) | exact per-route and total caps; per-route FIFO waiters with direct hand-off; freed capacity goes to the oldest waiting request of any route | fairness, predictable tail latency |
//! | [`Lax`] | exact caps; idle connections in per-CPU shards with work stealing; barging allowed, and waiters compete for returns rather than being handed them; newcomers take at most `Lax::PASS_LIMIT` (32) connections ahead of the oldest waiter | one hot route, raw throughput |
//! | [`Offlock`] | exact caps; each route has its own idle connections, FIFO waiters, counters and serializer; routes share only the total cap, served round-robin when it binds; graceful closes never on the caller's thread | many routes, one slow route must not hurt the others |
//!
//! ```
//! use std::net::TcpListener;
//! use std::time::Duration;
//! use leasehold::{Pool, TcpConnector};
//!
//! let backend = TcpListener::bind("127.0.0.1:0")?;
//! let addr = backend.local_addr()?;
//! let pool = Pool::builder(TcpConnector::new())
//!     .max_total(50)
//!     .max_per_route(20)
//!     .acquire_timeout(Duration::from_millis(500))
//!     .build()?;
//! let lease = pool.lease(&addr)?;
//! drop(lease);
//! assert_eq!(pool.route_stats(&addr).idle, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The concurrency core lives in the [`leasehold_policies`] crate, which
//! knows nothing of I/O (its policies and stats are re-exported here); this
//! crate opens, hands out and closes connections on top of it.

#![forbid(unsafe_code)]

#[cfg(all(unix, any(feature = "tokio", feature = "async-io")))]
mod async_stream;
#[cfg(unix)]
mod blocking;
mod config;
mod connect;
mod connector;
mod entry;
mod error;
mod figures;
mod hooks;
#[cfg(any(test, feature = "test-util"))]
pub mod mock;
#[cfg(unix)]
mod nonblocking;
mod pool;
mod reactor;
mod shared;
#[cfg(unix)]
mod tcp;
#[cfg(all(unix, feature = "tls"))]
pub mod tls;
mod unwind;

#[cfg(all(unix, any(feature = "tokio", feature = "async-io")))]
pub use async_stream::{AsyncConnector, AsyncStream};
#[cfg(unix)]
pub use blocking::{BlockingConnector, BlockingHandshake, DEFAULT_CONNECT_THREADS};
pub use config::{
    Builder, Disposal, RouteSettings, DEFAULT_ACQUIRE_TIMEOUT, DEFAULT_BACKOFF_INITIAL,
    DEFAULT_BACKOFF_MAX, DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_PER_ROUTE, DEFAULT_MAX_TOTAL,
    DEFAULT_METRICS_EVERY, DEFAULT_SHUTDOWN_GRACE,
};
#[cfg(unix)]
pub use connector::Watched;
pub use connector::{Connector, Handshake, Liveness, MapHandshake, Never, Progress};
#[cfg(unix)]
pub use connector::{Setup, SetupHandshake, WithSetup, MAX_SETUP_ANSWER};
pub use error::{ConfigError, Error, TlsError, Unavailable, Undrained};
pub use figures::{Figures, Health, Histogram, Sizing, SizingReport, DEFAULT_SAMPLE_EVERY};
pub use leasehold_policies::unstable::MAX_CAPACITY;
pub use leasehold_policies::{
    InvalidLimits, Lax, Offlock, Policy, PoolStats, Reuse, RouteKey, State, Stats, Strict,
};
/// The mio crate a [`Handshake`] is a source of (its `event::Source`,
/// `Interest`, `Registry` and `Token`), at the version the pool drives.
pub use mio;
#[cfg(unix)]
pub use nonblocking::Nonblocking;
pub use pool::Pool;
pub use pool::{Lease, LeaseFuture, Leased, OwnedLease};
/// The rustls crate the [`tls`] module is built on, for naming its types
/// (certificates, keys, root stores, crypto providers) at the same version.
#[cfg(all(unix, feature = "tls"))]
pub use rustls;
#[cfg(unix)]
pub use tcp::{resolve, TcpConnector, TcpHandshake};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

/// The code people write first (docs/first-code.md), compiled and run as
/// doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/first-code.md")]
pub struct FirstCodeDoctests;
