//! Async reads and writes on pooled connections: tokio's `AsyncRead` and
//! `AsyncWrite` (the `tokio` feature, in `tokio_rt`), and the `futures-io`
//! traits on async-io's reactor, for smol and any other executor (the
//! `async-io` feature, in `futures_rt`).
//!
//! [`AsyncConnector`] wraps a connector whose connections can be driven
//! without blocking ([`Nonblocking`]: [`TcpConnector`](crate::TcpConnector)'s
//! and [`TlsConnector`](crate::tls::TlsConnector)'s) and lends out an
//! [`AsyncStream`], which implements those traits; so does a lease of one.
//! Connecting (TCP, then the TLS handshake) stays on the pool's event loop
//! under its connect timeout, and the loop keeps watching the connection
//! while it is idle, as for blocking connections.
//!
//! # Registration
//!
//! A stream registers a duplicate of its socket with a reactor the first
//! time it is polled through that reactor's traits, and keeps the
//! registration while it sits idle in the pool, so a service pays for it
//! once per connection, not per lease (a connection holds three
//! descriptors then: its own, the event loop's and the reactor's). A tokio
//! stream polled from another runtime (a test's own runtime, say) moves
//! there first; async-io has one reactor per process.

#[cfg(unix)]
use crate::connector::Watched;
use crate::connector::{Connector, MapHandshake, Progress};
use crate::nonblocking::Nonblocking;
use std::fmt;
use std::io;

#[cfg(feature = "async-io")]
mod futures_rt;
#[cfg(feature = "tokio")]
mod tokio_rt;

/// A connector whose connections implement tokio's `AsyncRead` and
/// `AsyncWrite` (feature `tokio`) or the `futures-io` traits (feature
/// `async-io`): it connects through the connector it wraps and lends out
/// each connection as an [`AsyncStream`] over it. Everything else (closing,
/// watching, checks) is the wrapped connector's.
///
/// # Examples
/// ```no_run
/// # async fn run() -> std::io::Result<()> {
/// use leasehold::{AsyncConnector, Pool, TcpConnector};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let pool = Pool::builder(AsyncConnector::new(TcpConnector::new())).build()?;
/// let mut conn = pool.lease_async(&"127.0.0.1:6379".parse().unwrap()).await?;
/// conn.write_all(b"PING\r\n").await?;
/// let mut reply = [0; 7];
/// conn.read_exact(&mut reply).await?;
/// assert_eq!(&reply, b"+PONG\r\n");
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct AsyncConnector<C> {
    inner: C,
}

impl<C> AsyncConnector<C> {
    /// Lends out `inner`'s connections as [`AsyncStream`]s.
    pub fn new(inner: C) -> Self {
        Self { inner }
    }

    /// The wrapped connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C> Connector for AsyncConnector<C>
where
    C: Connector,
    C::Conn: Nonblocking,
{
    type Route = C::Route;
    type Conn = AsyncStream<C::Conn>;
    type Handshake = MapHandshake<C::Handshake, AsyncStream<C::Conn>>;

    fn connect(&self, route: &C::Route) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        self.inner
            .connect(route)?
            .map(|conn| Ok(AsyncStream::new(conn)))
    }

    fn close(&self, conn: Self::Conn) {
        self.inner.close(conn.into_inner());
    }

    fn abort(&self, conn: Self::Conn) {
        self.inner.abort(conn.into_inner());
    }

    #[cfg(unix)]
    fn watch(&self, conn: &Self::Conn) -> Option<Watched> {
        self.inner.watch(&conn.io)
    }

    fn has_broken(&self, conn: &mut Self::Conn) -> bool {
        self.inner.has_broken(&mut conn.io)
    }

    fn is_alive(&self, conn: &mut Self::Conn) -> bool {
        self.inner.is_alive(&mut conn.io)
    }
}

/// A connection that tasks read and write with `.await`, lent out by an
/// [`AsyncConnector`]: tokio's `AsyncRead` and `AsyncWrite` with the
/// `tokio` feature, `futures_io::AsyncRead` and `AsyncWrite` on async-io's
/// reactor with the `async-io` feature.
///
/// A duplicate of its socket joins the reactor it is polled through, the
/// first time, and stays registered while the connection idles in the pool
/// (once per connection, not per lease); a tokio stream polled from
/// another runtime moves there. Polled through tokio's traits outside a tokio
/// runtime, or in one built without I/O (`enable_io`), it fails with an
/// error saying so. The connection's [`socket`](Nonblocking::socket) must
/// be a stream socket (TCP or Unix).
pub struct AsyncStream<S> {
    /// Declared before `io`, so that they leave their reactors before the
    /// socket closes.
    #[cfg(feature = "tokio")]
    tokio: Option<tokio_rt::Registration>,
    #[cfg(feature = "async-io")]
    async_io: Option<async_io::Async<std::net::TcpStream>>,
    io: S,
}

impl<S: Nonblocking> AsyncStream<S> {
    /// A stream over `io`, which joins a reactor when first polled.
    pub fn new(io: S) -> Self {
        Self {
            #[cfg(feature = "tokio")]
            tokio: None,
            #[cfg(feature = "async-io")]
            async_io: None,
            io,
        }
    }

    /// The connection under the stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The connection under the stream, for what the stream does not
    /// offer.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The connection, out of the reactors it had joined.
    pub fn into_inner(self) -> S {
        let Self { io, .. } = self;
        io
    }

    /// A duplicate of the connection's socket, for a reactor to own.
    fn duplicate(&self) -> io::Result<std::net::TcpStream> {
        Ok(std::net::TcpStream::from(
            self.io.socket().try_clone_to_owned()?,
        ))
    }
}

impl<S: fmt::Debug> fmt::Debug for AsyncStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("AsyncStream");
        out.field("io", &self.io);
        #[cfg(feature = "tokio")]
        out.field(
            "tokio",
            &self.tokio.as_ref().map(tokio_rt::Registration::runtime),
        );
        #[cfg(feature = "async-io")]
        out.field("async_io", &self.async_io.is_some());
        out.finish()
    }
}
