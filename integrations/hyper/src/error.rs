//! What can go wrong with a request, from its URI to the last byte of its
//! response body.

use std::error::Error as StdError;
use std::fmt;
use std::io;

/// Why a request, or the reading of its response body, failed.
///
/// In a function that returns `io::Result`, `?` turns one into an
/// `io::Error` of the matching kind (`InvalidInput` for a URI the client
/// cannot send, the pool's kinds for connection failures, the socket's
/// own for a failed exchange).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// The request's URI cannot be sent: it is not absolute, its scheme is
    /// neither `http` nor `https`, or its host is no valid server name.
    Uri {
        /// The URI, as the request had it.
        uri: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The request could not be built (a URI that does not parse).
    Request(http::Error),
    /// Looking the host name up failed, or found no address.
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No connection could be had: the pool's wait ran out, connecting
    /// failed (refused, timed out, a TLS handshake that failed), or the
    /// pool was shut down.
    Connect(leasehold::Error),
    /// The HTTP exchange failed: the connection broke, the response was
    /// malformed, the request body failed… The connection was closed.
    Http(hyper::Error),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uri { uri, reason } => write!(f, "cannot send a request to {uri:?}: {reason}"),
            Self::Request(e) => write!(f, "invalid request: {e}"),
            Self::Resolve { host, source } => write!(f, "resolving {host:?} failed: {source}"),
            Self::Connect(e) => write!(f, "no connection: {e}"),
            Self::Http(e) => write!(f, "HTTP exchange failed: {e}"),
        }
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Uri { .. } => None,
            Self::Request(e) => Some(e),
            Self::Resolve { source, .. } => Some(source),
            Self::Connect(e) => Some(e),
            Self::Http(e) => Some(e),
        }
    }
}

impl From<leasehold::Error> for ClientError {
    fn from(e: leasehold::Error) -> Self {
        Self::Connect(e)
    }
}

impl From<hyper::Error> for ClientError {
    fn from(e: hyper::Error) -> Self {
        Self::Http(e)
    }
}

impl From<ClientError> for io::Error {
    fn from(e: ClientError) -> Self {
        let kind = match e {
            // The pool's own conversion picks the kind.
            ClientError::Connect(inner) => return io::Error::from(inner),
            ClientError::Uri { .. } | ClientError::Request(_) => io::ErrorKind::InvalidInput,
            ClientError::Resolve { ref source, .. } => source.kind(),
            ClientError::Http(ref inner) => http_kind(inner),
        };
        io::Error::new(kind, e)
    }
}

/// The kind of the socket error under a hyper error, if there is one.
fn http_kind(e: &hyper::Error) -> io::ErrorKind {
    let mut cause = e.source();
    while let Some(inner) = cause {
        if let Some(io) = inner.downcast_ref::<io::Error>() {
            return io.kind();
        }
        cause = inner.source();
    }
    if e.is_timeout() {
        io::ErrorKind::TimedOut
    } else if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        io::ErrorKind::UnexpectedEof
    } else if e.is_parse() || e.is_parse_status() {
        io::ErrorKind::InvalidData
    } else {
        io::ErrorKind::Other
    }
}
