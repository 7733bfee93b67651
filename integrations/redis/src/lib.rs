//! Redis connections pooled by [`leasehold`], for the
//! [`redis`] crate's commands, blocking and async.
//!
//! ```no_run
//! use redis::Commands;
//!
//! let pool = leasehold_redis::RedisPool::open("redis://127.0.0.1:6379/0")?;
//! let mut conn = pool.get()?;
//! let _: () = conn.set("greeting", "hello")?;
//! let greeting: String = conn.get("greeting")?;
//! # Ok::<(), redis::RedisError>(())
//! ```
//!
//! With the `tokio` feature, `pool.get_async().await?` leases without
//! blocking, and the lease runs `query_async(&mut conn)` and
//! `redis::AsyncCommands`.
//!
//! # What it does
//!
//! * **Routes from URLs.** A [`RedisRoute`] is a parsed
//!   `redis://[[user]:password@]host[:port][/db][?protocol=resp3]` (or
//!   `rediss://` for TLS, with the `tls` feature), its host name resolved
//!   once when parsed; connects never wait on DNS.
//! * **Connects off the caller's thread.** [`RedisConnector`] opens the
//!   TCP (and TLS) connection and runs `AUTH`, `HELLO 3` and `SELECT`,
//!   pipelined, on the pool's event loop under the connect timeout. A
//!   wrong password fails the waiting requests at once with the server's
//!   reason (`WRONGPASS…`, an `io::Error` of kind `PermissionDenied`).
//! * **Connections that speak the redis crate's traits.**
//!   [`RedisConnection`] implements `redis::ConnectionLike` and, with
//!   `tokio`, `redis::aio::ConnectionLike`: one request at a time,
//!   replies read through a buffer the connection keeps, no background
//!   task per connection.
//! * **No `discard()` to remember.** At every return the pool asks the
//!   connection whether the next holder can use it: after an I/O error,
//!   a request cut short (an async call whose future was dropped, a
//!   timeout around it), unread bytes, or a command whose effect outlives
//!   the request (`MULTI` without `EXEC`, `WATCH`, `SELECT`, `SUBSCRIBE`,
//!   `CLIENT …`; the table is in the `session` module's source), it is
//!   closed instead of being lent out again.
//! * **Stale connections leave by themselves.** The pool's event loop
//!   watches idle connections: one the server closed (a restart, a
//!   `timeout` in redis.conf, `CLIENT KILL`) is evicted before anyone
//!   leases it.
//!
//! # Comparison with similar crates
//!
//! | | leasehold-redis | deadpool-redis | bb8-redis | r2d2 + redis |
//! |---|---|---|---|---|
//! | blocking and async from one pool | yes | async | async | blocking |
//! | check at each checkout (default) | none: the event loop evicts closed idle connections | `UNWATCH` + `PING` | `PING` | `PING` |
//! | connection | one request at a time, no task | multiplexed, a task per connection | multiplexed, a task per connection | blocking |
//! | a cancelled request | its connection is closed when given back | the connection's task drops the late reply | the connection's task drops the late reply | (blocking) |
//! | waiters | FIFO (`Strict`), or leasehold's other policies | FIFO | unordered: a waiter can starve | unordered (a condition variable) |
//!
//! # Performance
//!
//! `benches/redis_peers.rs` runs a `GET` of a 100-byte value through each
//! pool against one loopback `redis-server`, at 1, 8 and 64 workers. With
//! the peers' default checkout checks, leasehold-redis serves about twice
//! their requests per second (their `PING` is a second round trip per
//! request); with those checks turned off, it is ahead at 1 worker and
//! level at 8 and 64, where the server and the kernel's loopback take most
//! of the time. Run it on your machine for figures.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `tls` | yes | `rediss://` routes over leasehold's rustls connector |
//! | `tokio` | no | `redis::aio::ConnectionLike` on connections and leases; `get_async` |
//!
//! Unix-socket URLs (`redis+unix://`) are not supported: leasehold pools TCP
//! connections. Neither are cluster and sentinel set-ups, nor pub/sub on a
//! pooled connection (a subscribed connection is closed when given back).

#![forbid(unsafe_code)]

mod connection;
mod connector;
mod error;
mod pool;
mod resp;
mod route;
mod session;
mod setup;
mod transport;

pub use connection::RedisConnection;
pub use connector::{RedisConnector, RedisHandshake};
pub use error::RedisPoolError;
pub use pool::{OwnedRedisLease, RedisLease, RedisPool};
pub use route::{RedisRoute, DEFAULT_PORT};

/// The redis crate this one implements the traits of, for naming its
/// types at the same version.
pub use redis;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct RedisReadmeDoctests;
