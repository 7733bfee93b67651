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
    Exhausted(Box<Unavailable>),
    /// No connection became available within the acquire timeout.
    Timeout(Box<Unavailable>),
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
    /// The TLS handshake failed: the server's certificate was not trusted
    /// or not for the route's host name, the server does not speak TLS…
    /// (see [`TlsError`]).
    Tls {
        /// The route, as its `Debug` text.
        route: String,
        /// What went wrong.
        source: TlsError,
    },
    /// Opening a connection failed for another reason.
    Connect {
        /// The route, as its `Debug` text.
        route: String,
        /// The error the connector reported.
        source: io::Error,
    },
    /// The route is down: its connects kept failing, and the request was
    /// answered at once without a connect of its own, while the route
    /// rests between probes (see
    /// [`connect_backoff`](crate::Builder::connect_backoff)). Idle
    /// connections of the route are still leased.
    Down {
        /// The route, as its `Debug` text.
        route: String,
        /// Counted connect failures in a row (connects that failed together
        /// count once).
        failures: u32,
        /// When the next probe may start; `None` if never (the rest
        /// overflows the clock).
        retry_in: Option<Duration>,
        /// The last connect's error, with its OS error code where it had
        /// one ([`io::Error::raw_os_error`]).
        source: io::Error,
    },
    /// The pool was shut down.
    Closed,
}

/// What the pool looked like when a request could not be served.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Unavailable {
    /// The route, as its `Debug` text.
    pub route: String,
    /// How long the request waited.
    pub waited: Duration,
    /// The route's stats at that moment.
    pub stats: Stats,
    /// The pool's totals at that moment.
    pub total: Stats,
}

impl Unavailable {
    pub(crate) fn new(route: String, waited: Duration, stats: Stats, total: Stats) -> Box<Self> {
        Box::new(Self {
            route,
            waited,
            stats,
            total,
        })
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "route {}: route {}; pool {}",
            self.route, self.stats, self.total
        )
    }
}

impl Error {
    pub(crate) fn from_connect(route: String, source: io::Error) -> Self {
        if let Some(tls) = TlsError::of(&source) {
            return Self::Tls {
                route,
                source: tls.clone(),
            };
        }
        match source.kind() {
            io::ErrorKind::ConnectionRefused => Self::Refused { route, source },
            io::ErrorKind::TimedOut => Self::ConnectTimeout { route, source },
            _ => Self::Connect { route, source },
        }
    }

    /// Whether the error came from the pool's limits (exhausted or timed out
    /// waiting) rather than from the network or a shutdown.
    pub fn is_capacity(&self) -> bool {
        matches!(self, Self::Exhausted(_) | Self::Timeout(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted(at) => write!(f, "pool exhausted for {at}"),
            Self::Timeout(at) => write!(
                f,
                "timed out after {:?} waiting for a connection to {at}",
                at.waited
            ),
            Self::ConnectTimeout { route, source } => {
                write!(f, "connect to route {route} timed out: {source}")
            }
            Self::Refused { route, source } => {
                write!(f, "connection to route {route} refused: {source}")
            }
            Self::Tls { route, source } => {
                write!(f, "TLS handshake with route {route} failed: {source}")
            }
            Self::Connect { route, source } => {
                write!(f, "connect to route {route} failed: {source}")
            }
            Self::Down {
                route,
                failures,
                retry_in,
                source,
            } => {
                write!(
                    f,
                    "route {route} is down after {failures} failed connects in a row ({source}); "
                )?;
                match retry_in {
                    Some(wait) => write!(f, "next probe in {wait:?}"),
                    None => f.write_str("no further probe"),
                }
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
            | Self::Connect { source, .. }
            | Self::Down { source, .. } => Some(source),
            Self::Tls { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why a TLS handshake failed, inside [`Error::Tls`].
///
/// Each variant names a cause a caller may act on differently: a
/// certificate problem is a configuration or an attack, a plaintext server
/// a wrong port, an alert a server that refused this client. The text is
/// the TLS library's own account of it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The server's certificate does not chain to a trusted root (an
    /// unknown or self-signed issuer, a bad signature).
    UntrustedCertificate(String),
    /// The certificate is valid, but not for the route's host name.
    NameMismatch(String),
    /// The certificate has expired (or is not valid yet: the clocks
    /// disagree).
    CertificateExpired(String),
    /// The certificate was refused for another reason (revoked, malformed,
    /// not meant for servers…).
    BadCertificate(String),
    /// The server answered, but not in TLS: it speaks plaintext on this
    /// port.
    NotTls(String),
    /// The server closed the connection before the handshake was done.
    ClosedDuringHandshake,
    /// The server ended the handshake with an alert (it refused this
    /// client, its certificate, or its offer).
    AlertReceived(String),
    /// The handshake failed in another way (no protocol version or cipher
    /// in common, a protocol violation…).
    Handshake(String),
}

impl TlsError {
    /// The `TlsError` an `io::Error` from a TLS connector carries, if any.
    pub fn of(error: &io::Error) -> Option<&TlsError> {
        error.get_ref()?.downcast_ref()
    }

    /// An `io::Error` carrying this one (what a connector returns).
    #[cfg(feature = "tls")]
    pub(crate) fn into_io(self) -> io::Error {
        let kind = match self {
            Self::ClosedDuringHandshake => io::ErrorKind::UnexpectedEof,
            _ => io::ErrorKind::InvalidData,
        };
        io::Error::new(kind, self)
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UntrustedCertificate(why) => {
                write!(f, "the server's certificate is not trusted: {why}")
            }
            Self::NameMismatch(why) => {
                write!(f, "the server's certificate is not for this host: {why}")
            }
            Self::CertificateExpired(why) => {
                write!(f, "the server's certificate is out of date: {why}")
            }
            Self::BadCertificate(why) => {
                write!(f, "the server's certificate was refused: {why}")
            }
            Self::NotTls(why) => write!(f, "the server does not speak TLS: {why}"),
            Self::ClosedDuringHandshake => {
                f.write_str("the server closed the connection during the handshake")
            }
            Self::AlertReceived(alert) => {
                write!(f, "the server ended the handshake with alert {alert}")
            }
            Self::Handshake(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// A pool configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity limits are inconsistent.
    Limits(InvalidLimits),
    /// A timeout was zero; leave it unset for no limit.
    ZeroTimeout(&'static str),
    /// Inline disposal was asked of a policy (named) that closes
    /// connections off the callers' threads only.
    InlineDisposal(&'static str),
    /// [`Disposal::Background`](crate::Disposal::Background) was asked
    /// for with a queue of 0: it must hold at least one connection.
    ZeroDisposalQueue,
    /// The disposal thread could not be started (the system's error).
    Thread(String),
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
            Self::InlineDisposal(policy) => write!(
                f,
                "the {policy} policy closes connections off the callers' threads: \
                 inline disposal is not available"
            ),
            Self::ZeroDisposalQueue => {
                f.write_str("the disposal queue must hold at least one connection")
            }
            Self::Thread(error) => write!(f, "could not start the disposal thread: {error}"),
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Limits(invalid) => Some(invalid),
            Self::ZeroTimeout(_)
            | Self::InlineDisposal(_)
            | Self::ZeroDisposalQueue
            | Self::Thread(_) => None,
        }
    }
}

impl From<InvalidLimits> for ConfigError {
    fn from(invalid: InvalidLimits) -> Self {
        Self::Limits(invalid)
    }
}
