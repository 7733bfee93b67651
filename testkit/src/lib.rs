//! What leasehold's integration tests, benchmarks, examples, tools and fuzz
//! targets share, as one crate they depend on.
//!
//! Most modules need only leasehold (with `test-util`); the `tls` feature
//! adds the loopback HTTP peer, the certificates and the TLS line server,
//! and the `redis` feature a connection to the Redis test server made
//! without a pool.
//!
//! The crate links the leasehold that the crate using it links: an
//! integration test, benchmark or example of leasehold itself gets one copy
//! of it, so the types here are the ones it tests. Unit tests inside
//! leasehold's `src/` see a second copy and cannot use this crate.

pub mod alloc_audit;
pub mod bench;
pub mod fds;
mod for_each_policy;
pub mod greeting;
#[cfg(feature = "tls")]
pub mod http;
pub mod machine;
pub mod model;
#[cfg(feature = "tls")]
pub mod pki;
pub mod redis_server;
pub mod settled;
#[cfg(feature = "tls")]
pub mod tls_echo;
pub mod wait;

/// What the exported macros name through `$crate`.
#[doc(hidden)]
pub mod __private {
    pub use leasehold;
}
