//! Errors: what went wrong, with what the pool looked like at the time.

use leasehold_policies::{InvalidLimits, Stats};
use std::fmt;
use std::io;
use std::time::Duration;

/// Why a lease could not be had.
///
/// Pool exhaustion, a wait that timed out, a connect that timed out and a
/// refused connection are different variants, so a caller can react to each
/// (shed load, retry elsewhere, mark a backend down).
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// `try_lease` found no idle connection and no free capacity (or
    /// requests queued before it).
    Exhausted {
        /// The route, as its `Debug` text.
        route: String,
        /// The route's stats when it failed.
        stats: Stats,
        /// The pool's totals when it failed.
        total: Stats,
    },
    /// No connection became available within the acquire timeout.
    Timeout {
        /// The route, as its `Debug` text.
        route: String,
        /// How long the request waited.
        waited: Duration,
        /// The route's stats when it gave up.
        stats: Stats,
        /// The pool's totals when it gave up.
        total: Stats,
    },
    /// Opening a connection took longer than the connect timeout.
    ConnectTimeout {
        /// The route, as its `Debug` text.
        route: String,
        /// The error the connector reported.
        source: io::Error,
    },
    /// The server refused the connection.
    Refused {
        /// The route, as its `Debug` text.
        route: String,
        /// The error the connector reported.
        source: io::Error,
    },
    /// Opening a connection failed for another reason.
    Connect {
        /// The route, as its `Debug` text.
        route: String,
        /// The error the connector reported.
        source: io::Error,
    },
    /// The pool was shut down.
    Closed,
}

impl Error {
    pub(crate) fn from_connect(route: String, source: io::Error) -> Self {
        match source.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused { route, source },
            io::ErrorKind::TimedOut => Self::ConnectTimeout { route, source },
            _ => Self::Connect { route, source },
        }
    }

    /// Whether the error came from the pool's limits (exhausted or timed out
    /// waiting) rather than from the network or a shutdown.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::Exhausted { .. } | Self::Timeout { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted {
                route,
                stats,
                total,
            } => write!(
                f,
                "pool exhausted for route {route}: route {stats}; pool {total}"
            ),
            Self::Timeout {
                route,
                waited,
                stats,
                total,
            } => write!(
                f,
                "timed out after {waited:?} waiting for a connection to route {route}: route {stats}; pool {total}"
            ),
            Self::ConnectTimeout { route, source } => {
                write!(f, "connect to route {route} timed out: {source}")
            }
            Self::Refused { route, source } => {
                write!(f, "connection to route {route} refused: {source}")
            }
            Self::Connect { route, source } => {
                write!(f, "connect to route {route} failed: {source}")
            }
            Self::Closed => f.write_str("the pool is shut down"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ConnectTimeout { source, .. }
            | Self::Refused { source, .. }
            | Self::Connect { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A pool configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity limits are inconsistent.
    Limits(InvalidLimits),
    /// A timeout was zero; leave it unset for no limit.
    ZeroTimeout(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Limits(invalid) => write!(f, "invalid pool limits: {invalid}"),
            Self::ZeroTimeout(name) => {
                write!(
                    f,
                    "{name} must be greater than zero (leave it unset for no limit)"
                )
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Limits(invalid) => Some(invalid),
            Self::ZeroTimeout(_) => None,
        }
    }
}

impl From<InvalidLimits> for ConfigError {
    fn from(invalid: InvalidLimits) -> Self {
        Self::Limits(invalid)
    }
}
