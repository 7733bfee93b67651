//! The byte stream under a Redis connection, TCP or TLS as the route says,
//! and the connector that opens it: leasehold's [`TcpConnector`] for
//! `redis://` routes, its [`TlsConnector`] for `rediss://` ones, behind one
//! type so that one pool (and one `RedisPool` type) serves both.
//!
//! Unless the application gives its own, the TLS connector is built on the
//! first `rediss://` connect (with the Mozilla roots and the TCP settings
//! given), so a pool that only speaks plain TCP never builds one.

use crate::route::{RedisRoute, RouteTransport};
#[cfg(feature = "tls")]
use leasehold::tls::{TlsConnector, TlsHandshake, TlsStream};
use leasehold::{Connector, Handshake, Nonblocking, Progress, TcpConnector, TcpHandshake, Watched};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::BorrowedFd;
#[cfg(feature = "tls")]
use std::sync::{Arc, OnceLock};

/// An open connection's stream.
#[derive(Debug)]
pub(crate) enum RedisStream {
    Tcp(TcpStream),
    #[cfg(feature = "tls")]
    Tls(TlsStream),
}

impl RedisStream {
    pub(crate) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            RedisStream::Tcp(stream) => stream.peer_addr(),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.peer_addr(),
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, RedisStream::Tcp(_))
    }
}

/// Blocking reads (in the socket's mode: see `connection::wait`).
impl Read for RedisStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RedisStream::Tcp(stream) => stream.read(buf),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for RedisStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RedisStream::Tcp(stream) => stream.write(buf),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            RedisStream::Tcp(stream) => stream.flush(),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.flush(),
        }
    }
}

impl Nonblocking for RedisStream {
    fn socket(&self) -> BorrowedFd<'_> {
        match self {
            RedisStream::Tcp(stream) => stream.socket(),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.socket(),
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            RedisStream::Tcp(stream) => stream.try_read(buf),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.try_read(buf),
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RedisStream::Tcp(stream) => stream.try_write(buf),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.try_write(buf),
        }
    }

    fn try_flush(&mut self) -> io::Result<()> {
        match self {
            RedisStream::Tcp(stream) => Nonblocking::try_flush(stream),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.try_flush(),
        }
    }

    fn try_shutdown(&mut self) -> io::Result<()> {
        match self {
            RedisStream::Tcp(stream) => stream.try_shutdown(),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => stream.try_shutdown(),
        }
    }
}

/// Opens the stream a route asks for.
#[derive(Clone, Debug, Default)]
pub(crate) struct TransportConnector {
    pub(crate) tcp: TcpConnector,
    #[cfg(feature = "tls")]
    pub(crate) tls: TlsChoice,
}

/// The TLS connector: the application's, or the default one, made when
/// first needed and shared by the connector's clones (its error kept, so
/// each connect reports it).
#[cfg(feature = "tls")]
#[derive(Clone, Debug)]
pub(crate) enum TlsChoice {
    Given(TlsConnector),
    Lazy(Arc<OnceLock<Result<TlsConnector, String>>>),
}

#[cfg(feature = "tls")]
impl Default for TlsChoice {
    fn default() -> Self {
        TlsChoice::Lazy(Arc::default())
    }
}

#[cfg(feature = "tls")]
impl TransportConnector {
    /// The TLS connector, made now if it is the default and nobody made it
    /// yet.
    fn tls(&self) -> io::Result<&TlsConnector> {
        let cell = match &self.tls {
            TlsChoice::Given(tls) => return Ok(tls),
            TlsChoice::Lazy(cell) => cell,
        };
        cell.get_or_init(|| {
            TlsConnector::builder()
                .tcp(self.tcp.clone())
                .build()
                .map_err(|e| format!("the default TLS settings: {e}"))
        })
        .as_ref()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.clone()))
    }

    /// The TLS connector if one exists (a TLS stream exists only then).
    fn tls_made(&self) -> Option<&TlsConnector> {
        match &self.tls {
            TlsChoice::Given(tls) => Some(tls),
            TlsChoice::Lazy(cell) => cell.get().and_then(|made| made.as_ref().ok()),
        }
    }
}

impl Connector for TransportConnector {
    type Route = RedisRoute;
    type Conn = RedisStream;
    type Handshake = TransportHandshake;

    fn connect(&self, route: &RedisRoute) -> io::Result<Progress<RedisStream, TransportHandshake>> {
        Ok(match route.transport() {
            RouteTransport::Tcp(addr) => match self.tcp.connect(addr)? {
                Progress::Ready(stream) => Progress::Ready(RedisStream::Tcp(stream)),
                Progress::Pending(handshake) => {
                    Progress::Pending(TransportHandshake::Tcp(handshake))
                }
            },
            #[cfg(feature = "tls")]
            RouteTransport::Tls(tls_route) => match self.tls()?.connect(tls_route)? {
                Progress::Ready(stream) => Progress::Ready(RedisStream::Tls(stream)),
                Progress::Pending(handshake) => {
                    Progress::Pending(TransportHandshake::Tls(Box::new(handshake)))
                }
            },
        })
    }

    fn close(&self, conn: RedisStream) {
        match conn {
            RedisStream::Tcp(stream) => self.tcp.close(stream),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => match self.tls_made() {
                Some(tls) => tls.close(stream),
                None => drop(stream),
            },
        }
    }

    fn abort(&self, conn: RedisStream) {
        drop(conn);
    }

    fn watch(&self, conn: &RedisStream) -> Option<Watched> {
        match conn {
            RedisStream::Tcp(stream) => self.tcp.watch(stream),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => self.tls_made()?.watch(stream),
        }
    }

    fn has_broken(&self, conn: &mut RedisStream) -> bool {
        match conn {
            RedisStream::Tcp(stream) => self.tcp.has_broken(stream),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => self.tls_made().is_none_or(|tls| tls.has_broken(stream)),
        }
    }

    fn is_alive(&self, conn: &mut RedisStream) -> bool {
        match conn {
            RedisStream::Tcp(stream) => self.tcp.is_alive(stream),
            #[cfg(feature = "tls")]
            RedisStream::Tls(stream) => self.tls_made().is_some_and(|tls| tls.is_alive(stream)),
        }
    }
}

/// The transport's connect in progress.
#[derive(Debug)]
pub(crate) enum TransportHandshake {
    Tcp(TcpHandshake),
    /// Boxed: a TLS session is large beside a TCP connect.
    #[cfg(feature = "tls")]
    Tls(Box<TlsHandshake>),
}

impl Source for TransportHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            TransportHandshake::Tcp(h) => h.register(registry, token, interest),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.register(registry, token, interest),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            TransportHandshake::Tcp(h) => h.reregister(registry, token, interest),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            TransportHandshake::Tcp(h) => h.deregister(registry),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.deregister(registry),
        }
    }
}

impl Handshake for TransportHandshake {
    type Conn = RedisStream;

    fn interest(&self) -> Interest {
        match self {
            TransportHandshake::Tcp(h) => h.interest(),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.interest(),
        }
    }

    fn stage(&self) -> &'static str {
        match self {
            TransportHandshake::Tcp(h) => h.stage(),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.stage(),
        }
    }

    fn advance(&mut self) -> io::Result<Option<RedisStream>> {
        Ok(match self {
            TransportHandshake::Tcp(h) => h.advance()?.map(RedisStream::Tcp),
            #[cfg(feature = "tls")]
            TransportHandshake::Tls(h) => h.advance()?.map(RedisStream::Tls),
        })
    }
}
