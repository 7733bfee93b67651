//! Where a request's connection goes, and the connector that opens it: one
//! leasehold connector for plain and TLS connections alike, so that one
//! pool (one event loop, one total cap, one set of stats) serves `http`
//! and `https` URIs together.
//!
//! [`EndpointConnector`] forwards each call to the [`TcpConnector`] or the
//! [`TlsConnector`] it holds, by the kind of [`Endpoint`]; its connections
//! ([`EndpointStream`]) and connects in progress ([`EndpointHandshake`]) are
//! the two connectors' own, in an enum.

use leasehold::tls::{TlsConnector, TlsHandshake, TlsRoute, TlsStream};
use leasehold::{Connector, Handshake, Nonblocking, Progress, TcpConnector, TcpHandshake, Watched};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::BorrowedFd;

/// A pool route of the client: a server address, reached in plaintext
/// (`http`) or over TLS (`https`, with the server name its certificate
/// must be valid for).
///
/// Its `Debug` text reads `tcp://127.0.0.1:8080` or
/// `tls://example.com@93.184.215.14:443`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Plain TCP to this address.
    Tcp(SocketAddr),
    /// TLS over TCP, as the route says.
    Tls(TlsRoute),
}

impl Endpoint {
    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Tcp(addr) => *addr,
            Self::Tls(route) => route.addr(),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Tls(route) => route.fmt(f),
        }
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(addr: SocketAddr) -> Self {
        Self::Tcp(addr)
    }
}

impl From<TlsRoute> for Endpoint {
    fn from(route: TlsRoute) -> Self {
        Self::Tls(route)
    }
}

/// Opens [`Endpoint`]s: plain ones through its [`TcpConnector`], TLS ones
/// through its [`TlsConnector`]. Closing, watching and the checks at
/// return are those of the connector that made the connection.
#[derive(Clone, Debug)]
pub struct EndpointConnector {
    tcp: TcpConnector,
    tls: TlsConnector,
}

impl EndpointConnector {
    /// Plain connections with `tcp`'s settings, TLS ones with `tls`'s
    /// (whose own TCP settings apply under TLS).
    pub fn new(tcp: TcpConnector, tls: TlsConnector) -> Self {
        Self { tcp, tls }
    }

    /// The connector of plain connections.
    pub fn tcp(&self) -> &TcpConnector {
        &self.tcp
    }

    /// The connector of TLS connections.
    pub fn tls(&self) -> &TlsConnector {
        &self.tls
    }
}

impl Connector for EndpointConnector {
    type Route = Endpoint;
    type Conn = EndpointStream;
    type Handshake = EndpointHandshake;

    fn connect(&self, route: &Endpoint) -> io::Result<Progress<EndpointStream, EndpointHandshake>> {
        Ok(match route {
            Endpoint::Tcp(addr) => match self.tcp.connect(addr)? {
                Progress::Ready(conn) => Progress::Ready(EndpointStream::Tcp(conn)),
                Progress::Pending(handshake) => {
                    Progress::Pending(EndpointHandshake::Tcp(handshake))
                }
            },
            Endpoint::Tls(route) => match self.tls.connect(route)? {
                Progress::Ready(conn) => Progress::Ready(EndpointStream::Tls(conn)),
                Progress::Pending(handshake) => {
                    Progress::Pending(EndpointHandshake::Tls(Box::new(handshake)))
                }
            },
        })
    }

    fn close(&self, conn: EndpointStream) {
        match conn {
            EndpointStream::Tcp(conn) => self.tcp.close(conn),
            EndpointStream::Tls(conn) => self.tls.close(conn),
        }
    }

    fn abort(&self, conn: EndpointStream) {
        match conn {
            EndpointStream::Tcp(conn) => self.tcp.abort(conn),
            EndpointStream::Tls(conn) => self.tls.abort(conn),
        }
    }

    fn watch(&self, conn: &EndpointStream) -> Option<Watched> {
        match conn {
            EndpointStream::Tcp(conn) => self.tcp.watch(conn),
            EndpointStream::Tls(conn) => self.tls.watch(conn),
        }
    }

    fn has_broken(&self, conn: &mut EndpointStream) -> bool {
        match conn {
            EndpointStream::Tcp(conn) => self.tcp.has_broken(conn),
            EndpointStream::Tls(conn) => self.tls.has_broken(conn),
        }
    }

    fn is_alive(&self, conn: &mut EndpointStream) -> bool {
        match conn {
            EndpointStream::Tcp(conn) => self.tcp.is_alive(conn),
            EndpointStream::Tls(conn) => self.tls.is_alive(conn),
        }
    }
}

/// A connection an [`EndpointConnector`] opened: plain TCP or TLS.
#[derive(Debug)]
pub enum EndpointStream {
    /// A plain TCP connection.
    Tcp(TcpStream),
    /// A TLS connection.
    Tls(TlsStream),
}

impl Nonblocking for EndpointStream {
    fn socket(&self) -> BorrowedFd<'_> {
        match self {
            Self::Tcp(conn) => conn.socket(),
            Self::Tls(conn) => conn.socket(),
        }
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(conn) => conn.try_read(buf),
            Self::Tls(conn) => conn.try_read(buf),
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(conn) => conn.try_write(buf),
            Self::Tls(conn) => conn.try_write(buf),
        }
    }

    fn try_flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(conn) => conn.try_flush(),
            Self::Tls(conn) => conn.try_flush(),
        }
    }

    fn try_shutdown(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(conn) => conn.try_shutdown(),
            Self::Tls(conn) => conn.try_shutdown(),
        }
    }

    fn drains(&self) -> bool {
        match self {
            Self::Tcp(conn) => conn.drains(),
            Self::Tls(conn) => conn.drains(),
        }
    }
}

/// A connect of an [`EndpointConnector`] in progress, driven by the pool's
/// event loop: a TCP connect, or a TCP connect and a TLS handshake.
#[derive(Debug)]
pub enum EndpointHandshake {
    /// Connecting a plain TCP connection.
    Tcp(TcpHandshake),
    /// Connecting, then shaking hands (boxed: a TLS session is large).
    Tls(Box<TlsHandshake>),
}

impl Source for EndpointHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Self::Tcp(handshake) => handshake.register(registry, token, interest),
            Self::Tls(handshake) => handshake.register(registry, token, interest),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Self::Tcp(handshake) => handshake.reregister(registry, token, interest),
            Self::Tls(handshake) => handshake.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Self::Tcp(handshake) => handshake.deregister(registry),
            Self::Tls(handshake) => handshake.deregister(registry),
        }
    }
}

impl Handshake for EndpointHandshake {
    type Conn = EndpointStream;

    fn interest(&self) -> Interest {
        match self {
            Self::Tcp(handshake) => handshake.interest(),
            Self::Tls(handshake) => handshake.interest(),
        }
    }

    fn stage(&self) -> &'static str {
        match self {
            Self::Tcp(handshake) => handshake.stage(),
            Self::Tls(handshake) => handshake.stage(),
        }
    }

    fn advance(&mut self) -> io::Result<Option<EndpointStream>> {
        Ok(match self {
            Self::Tcp(handshake) => handshake.advance()?.map(EndpointStream::Tcp),
            Self::Tls(handshake) => handshake.advance()?.map(EndpointStream::Tls),
        })
    }
}
