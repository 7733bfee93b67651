//! [`RedisPoolError`]: why a [`RedisPool`](crate::RedisPool) lent no
//! connection. It keeps the pool's [`leasehold::Error`] and converts into
//! a [`RedisError`] (so `?` works in functions returning
//! [`RedisResult`](redis::RedisResult)) and into an `io::Error`.

use redis::{ErrorKind, RedisError};
use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why a [`RedisPool`](crate::RedisPool) lent no connection: no
/// connection within the acquire timeout, a connect that failed (refused,
/// timed out, `AUTH` refused…), a route resting after failed connects, a
/// pool that was shut down. [`pool_error`](Self::pool_error) tells them
/// apart; [`kind`](Self::kind) sorts them as `io::Error`s are sorted.
///
/// # Examples
/// ```no_run
/// # fn run() -> redis::RedisResult<()> {
/// let pool = leasehold_redis::RedisPool::open("redis://:wrong@127.0.0.1:6379")?;
/// match pool.get() {
///     Ok(_conn) => {}
///     Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
///         eprintln!("check the password: {e}"); // "... AUTH refused by ...: WRONGPASS ..."
///     }
///     Err(e) => return Err(e.into()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RedisPoolError {
    error: leasehold::Error,
    kind: io::ErrorKind,
}

impl RedisPoolError {
    /// The pool's error.
    pub fn pool_error(&self) -> &leasehold::Error {
        &self.error
    }

    /// The pool's error, taken out.
    pub fn into_pool_error(self) -> leasehold::Error {
        self.error
    }

    /// What kind of failure it is, as the pool's error converted to an
    /// `io::Error` says: `TimedOut` (acquire or connect timeout),
    /// `ConnectionRefused`, `PermissionDenied` (`AUTH` refused, or a
    /// password missing), `InvalidInput` (a database the server does not
    /// have), `NotConnected` (the pool was shut down)…
    pub fn kind(&self) -> io::ErrorKind {
        self.kind
    }

    /// Whether no connection became free, or none could be opened, in
    /// time.
    pub fn is_timeout(&self) -> bool {
        self.kind == io::ErrorKind::TimedOut
    }
}

impl From<leasehold::Error> for RedisPoolError {
    fn from(error: leasehold::Error) -> Self {
        // The pool sorts its errors into kinds as it turns them into
        // `io::Error`s, with itself inside.
        let io = io::Error::from(error);
        let kind = io.kind();
        let error = io
            .into_inner()
            .and_then(|inner| inner.downcast::<leasehold::Error>().ok())
            .expect("leasehold's io::Error holds its error");
        Self {
            error: *error,
            kind,
        }
    }
}

impl fmt::Display for RedisPoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for RedisPoolError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&self.error)
    }
}

/// An `io::Error` of the same [`kind`](RedisPoolError::kind), with the
/// pool's error inside.
impl From<RedisPoolError> for io::Error {
    fn from(error: RedisPoolError) -> Self {
        io::Error::new(error.kind, error.error)
    }
}

/// A [`RedisError`]: of kind
/// [`AuthenticationFailed`](ErrorKind::AuthenticationFailed) for a refused
/// `AUTH` (or a missing password), of kind
/// [`InvalidClientConfig`](ErrorKind::InvalidClientConfig) for a database
/// the server does not have, and otherwise an I/O error of the same `io`
/// kind (so [`RedisError::is_timeout`] and
/// [`RedisError::is_connection_refusal`] answer as expected). The text is
/// the pool's error's.
impl From<RedisPoolError> for RedisError {
    fn from(error: RedisPoolError) -> Self {
        let text = error.to_string();
        match error.kind {
            io::ErrorKind::PermissionDenied => RedisError::from((
                ErrorKind::AuthenticationFailed,
                "the server refused the connection's AUTH",
                text,
            )),
            io::ErrorKind::InvalidInput => RedisError::from((
                ErrorKind::InvalidClientConfig,
                "the server refused the connection's settings",
                text,
            )),
            _ => RedisError::from(io::Error::from(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: io::ErrorKind, why: &str) -> RedisPoolError {
        RedisPoolError::from(leasehold::Error::Connect {
            route: "RedisRoute(redis://127.0.0.1:6379/0)".to_owned(),
            source: io::Error::new(kind, why.to_owned()),
        })
    }

    #[test]
    fn a_refused_auth_becomes_an_authentication_failure_that_names_the_cause() {
        let err = refused(io::ErrorKind::PermissionDenied, "AUTH refused: WRONGPASS");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let redis = RedisError::from(err);
        assert_eq!(redis.kind(), ErrorKind::AuthenticationFailed);
        assert!(redis.to_string().contains("WRONGPASS"), "{redis}");
    }

    #[test]
    fn timeouts_and_refusals_stay_recognisable() {
        let timeout = RedisPoolError::from(leasehold::Error::ConnectTimeout {
            route: "r".to_owned(),
            source: io::Error::new(io::ErrorKind::TimedOut, "slow"),
        });
        assert!(timeout.is_timeout());
        assert!(RedisError::from(timeout).is_timeout());
        let refusal = RedisPoolError::from(leasehold::Error::Refused {
            route: "r".to_owned(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        });
        assert!(RedisError::from(refusal).is_connection_refusal());
        let closed = io::Error::from(RedisPoolError::from(leasehold::Error::Closed));
        assert_eq!(closed.kind(), io::ErrorKind::NotConnected);
    }
}
