//! An HTTP/1.1 client on [hyper] 1.x whose connections, plain and TLS, live
//! in a [leasehold] pool.
//!
//! [`Client`] sends each request over a connection leased from one pool
//! for all hosts (keyed by [`Endpoint`]: the server's address, plain or
//! TLS with the host as server name), runs the exchange with
//! `hyper::client::conn::http1`, and gives the connection back once the
//! response body has been read to its end and the connection can carry
//! another request. The pool does the rest: caps per host and in all,
//! FIFO waiters, connects (TCP and TLS handshake) under a timeout off the
//! caller's thread, idle connections the server closed evicted before
//! anyone leases them.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use http_body_util::BodyExt;
//!
//! let client = leasehold_hyper::Client::new();
//! let response = client.get("http://127.0.0.1:8080/").await?;
//! println!("{}", response.status());
//! let body = response.into_body().collect().await?.to_bytes();
//! println!("{} bytes", body.len());
//! # Ok(())
//! # }
//! ```
//!
//! # When a connection goes back to the pool
//!
//! Only after a clean exchange: the response body read to its end, hyper
//! idle and ready for the next request on the connection (so neither side
//! said `Connection: close` and nothing failed), the request written and
//! flushed in full, and no byte received past the response. Everything
//! else closes the connection:
//!
//! * an error anywhere in the exchange;
//! * a response body dropped before its end;
//! * a request future or a body dropped midway — a timeout, a `select!`
//!   that took another branch, a task aborted — at any `.await`: the
//!   stream under hyper discards its lease when it is dropped, unless it
//!   was explicitly released;
//! * an upgrade (`101 Switching Protocols`, `CONNECT`), which this client
//!   does not hand over.
//!
//! A request whose reused connection turns out to be closed before the
//! request could be written (the server closed it while it sat idle) is
//! sent again on another connection; one that was written is never sent
//! twice. The pool's event loop evicts idle connections the server closes
//! as soon as the close arrives, so this is rare, and so is its
//! unfixable twin: a request written just as the close was on its way.
//!
//! # Implementation Details
//!
//! The pool holds hyper's HTTP/1 connection state together with the stream
//! ([`ClientConnection`]): [`ClientConnector`] starts it once, when the
//! stream is opened on the pool's event loop, and every request on the
//! connection reuses its buffers and channel. Nothing is spawned: the
//! request's future, and then its response body, poll the hyper connection
//! themselves, so the exchange runs on the caller's task (see the
//! `connection` module), with a waker of its own that keeps hyper's
//! internal wake-ups from rescheduling the task (the `turns` module).
//!
//! # Comparison with hyper-util's pool
//!
//! hyper-util's legacy `Client` pools hyper connections too, but each
//! keeps a spawned task that drives it, and requests reach it through a
//! channel, from a pool map behind a mutex; it caps how many connections
//! stay idle, not how many are open. Here the pool is lock-free, with
//! per-host and total caps, FIFO waiters, acquire and connect timeouts,
//! and closed idle connections evicted by an event loop, and a request
//! costs no task switch.
//!
//! # Performance
//!
//! `benches/http_peers.rs` measures requests/s, latency and client CPU
//! per request against hyper-util's `Client` and reqwest on one loopback
//! server, at 1, 8 and 64 concurrent tasks.
//!
//! # Name resolution
//!
//! IP literals are used as they are. Host names are looked up with
//! `tokio::net::lookup_host` (the system resolver, on tokio's blocking
//! threads) and their addresses cached for
//! [`resolve_ttl`](ClientBuilder::resolve_ttl); a host with several addresses
//! is tried address by address while connects fail.
//!
//! # Platforms
//!
//! Unix, like leasehold's TCP and TLS connectors.

#![forbid(unsafe_code)]

mod body;
mod builder;
mod client;
mod connection;
mod endpoint;
mod error;
mod resolve;
mod target;
mod turns;

pub use body::ResponseBody;
pub use builder::{ClientBuilder, PoolBuilder, DEFAULT_IDLE_TIMEOUT, DEFAULT_RESOLVE_TTL};
pub use client::{Client, ClientPool};
pub use connection::{ClientConnection, ClientConnector, ClientHandshake};
pub use endpoint::{Endpoint, EndpointConnector, EndpointHandshake, EndpointStream};
pub use error::ClientError;
