//! Errors: what went wrong, with what the pool looked like at the time.

use leasehold_policies::{InvalidLimits, Stats};
use std::fmt;
use std::io;
use std::time::Duration;

/// Why a lease could not be had.
///
/// Pool exhaustion, a wait that timed out, a connect that timed out and a
/// refused connection are different variants, so a caller can react to each
/// (shed load, retry elsewhere, mark a backend down). In a function that
/// returns `io::Result`, `?` turns one into an `io::Error` of the matching
/// kind:
///
/// ```
/// use leasehold::{mock::MockConnector, Pool};
///
/// fn serve(pool: &Pool<MockConnector<u32>>) -> std::io::Result<()> {
///     let conn = pool.lease(&1)?;
///     drop(conn);
///     Ok(())
/// }
/// # let pool: Pool<MockConnector<u32>> = Pool::builder(MockConnector::new()).build().unwrap();
/// # serve(&pool).unwrap();
/// ```
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
    /// The route and how full it was: `127.0.0.1:6379 (4/4 leased, 12
    /// waiting)`, with the connects under way if any, and `pool full` when
    /// the route was below its cap (the pool's total cap was the limit).
    /// The full stats are in the fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Stats {
            leased,
            pending,
            connecting,
            max,
            ..
        } = self.stats;
        write!(f, "{} ({leased}/{max} leased", self.route)?;
        if connecting > 0 {
            write!(f, ", {connecting} connecting")?;
        }
        write!(f, ", {pending} waiting")?;
        if leased + connecting < max {
            write!(
                f,
                "; pool full, {}/{} leased",
                self.total.leased, self.total.max
            )?;
        }
        f.write_str(")")
    }
}

/// A wait in the unit that reads best: `850 µs`, `500 ms`, `2.5 s`, `90 s`.
struct Concise(Duration);

impl fmt::Display for Concise {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d < Duration::from_millis(1) {
            write!(f, "{} µs", d.as_micros())
        } else if d < Duration::from_secs(1) {
            write!(f, "{} ms", d.as_millis())
        } else if d < Duration::from_secs(10) {
            write!(f, "{:.1} s", d.as_secs_f64())
        } else {
            write!(f, "{} s", d.as_secs())
        }
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
            Self::Exhausted(at) => write!(f, "no connection free for {at}"),
            Self::Timeout(at) => {
                write!(f, "timed out after {} waiting for {at}", Concise(at.waited))
            }
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

/// For `?` in functions that return `io::Result`: the kind says what
/// happened (`ResourceBusy` for [`Error::Exhausted`], `TimedOut` for both
/// timeouts, `ConnectionRefused`, `InvalidData` for a failed TLS
/// handshake, the cause's own kind for [`Error::Connect`] and
/// [`Error::Down`], `NotConnected` for a pool that is shut down), and the
/// pool's error stays inside ([`io::Error::get_ref`], then `downcast_ref`).
impl From<Error> for io::Error {
    fn from(error: Error) -> Self {
        let kind = match &error {
            Error::Exhausted(_) => io::ErrorKind::ResourceBusy,
            Error::Timeout(_) | Error::ConnectTimeout { .. } => io::ErrorKind::TimedOut,
            Error::Refused { .. } => io::ErrorKind::ConnectionRefused,
            Error::Tls { .. } => io::ErrorKind::InvalidData,
            Error::Connect { source, .. } | Error::Down { source, .. } => source.kind(),
            Error::Closed => io::ErrorKind::NotConnected,
        };
        io::Error::new(kind, error)
    }
}

/// A configuration error as an `io::Error` of kind `InvalidInput`, so that
/// `Pool::builder(..).build()?` works in a function returning
/// `io::Result`.
impl From<ConfigError> for io::Error {
    fn from(error: ConfigError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
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

/// [`Pool::drain`](crate::Pool::drain) ran out of time with connections
/// still leased; the pool stays paused and nothing was closed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Undrained {
    /// Connections leased when the time ran out.
    pub leased: usize,
    /// How long the drain waited.
    pub waited: Duration,
}

impl fmt::Display for Undrained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool not drained after {:?}: {} connections still leased",
            self.waited, self.leased
        )
    }
}

impl std::error::Error for Undrained {}

impl From<Undrained> for io::Error {
    fn from(error: Undrained) -> Self {
        io::Error::new(io::ErrorKind::TimedOut, error)
    }
}

/// A pool configuration that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The capacity limits are inconsistent.
    Limits(InvalidLimits),
    /// A timeout was zero; `Duration::MAX` (or, for an optional one,
    /// leaving it unset) means no limit.
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
                    "{name} must be greater than zero (Duration::MAX for no limit)"
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(leased: usize, pending: usize, max: usize) -> Stats {
        let mut stats = Stats::default();
        (stats.leased, stats.pending, stats.max) = (leased, pending, max);
        stats
    }

    #[test]
    fn a_timeout_reads_in_one_line() {
        let at = Unavailable::new(
            "127.0.0.1:6379".into(),
            Duration::from_nanos(500_575_295),
            stats(4, 12, 4),
            stats(4, 12, 25),
        );
        let timeout = Error::Timeout(at.clone()).to_string();
        assert_eq!(
            timeout,
            "timed out after 500 ms waiting for 127.0.0.1:6379 (4/4 leased, 12 waiting)"
        );
        let full = Unavailable::new(
            "b".into(),
            Duration::from_secs(12),
            stats(1, 3, 5),
            stats(25, 3, 25),
        );
        assert_eq!(
            Error::Timeout(full).to_string(),
            "timed out after 12 s waiting for b (1/5 leased, 3 waiting; pool full, 25/25 leased)"
        );
        assert_eq!(Concise(Duration::from_micros(850)).to_string(), "850 µs");
        assert_eq!(Concise(Duration::from_millis(2500)).to_string(), "2.5 s");
    }

    #[test]
    fn io_errors_keep_the_kind_and_the_pool_error() {
        let at = Unavailable::new("r".into(), Duration::ZERO, stats(1, 0, 1), stats(1, 0, 1));
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let cases = [
            (Error::Exhausted(at.clone()), io::ErrorKind::ResourceBusy),
            (Error::Timeout(at), io::ErrorKind::TimedOut),
            (
                Error::from_connect("r".into(), refused),
                io::ErrorKind::ConnectionRefused,
            ),
            (
                Error::from_connect("r".into(), reset),
                io::ErrorKind::ConnectionReset,
            ),
            (Error::Closed, io::ErrorKind::NotConnected),
        ];
        for (error, kind) in cases {
            let text = error.to_string();
            let io = io::Error::from(error);
            assert_eq!(io.kind(), kind, "{text}");
            assert_eq!(io.to_string(), text);
            let inner = io.get_ref().and_then(|e| e.downcast_ref::<Error>());
            assert!(inner.is_some(), "the pool's error is inside: {text}");
        }
    }

    /// `?` turns a pool error into an `io::Error` in an `io::Result` function.
    #[test]
    fn question_mark_converts() {
        fn lease() -> Result<(), Error> {
            Err(Error::Closed)
        }
        fn service() -> io::Result<()> {
            lease()?;
            Ok(())
        }
        assert_eq!(service().unwrap_err().kind(), io::ErrorKind::NotConnected);
    }

    /// So does a configuration error, from `build()?`.
    #[test]
    fn question_mark_converts_a_configuration_error() {
        fn service() -> io::Result<()> {
            crate::Pool::builder(crate::mock::MockConnector::<u8>::new())
                .max_total(0)
                .build()?;
            Ok(())
        }
        let err = service().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<ConfigError>());
        assert!(inner.is_some(), "{err}");
    }
}
