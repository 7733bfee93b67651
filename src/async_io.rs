//! Async reads and writes on pooled connections, for tokio (the `tokio`
//! feature).
//!
//! [`AsyncConnector`] wraps a connector whose connections can be driven
//! without blocking ([`Nonblocking`]: [`TcpConnector`](crate::TcpConnector)'s
//! and [`TlsConnector`](crate::tls::TlsConnector)'s) and lends out an
//! [`AsyncStream`], which implements tokio's `AsyncRead` and `AsyncWrite`;
//! so does a lease of one. Connecting (TCP, then the TLS handshake) stays
//! on the pool's event loop under its connect timeout, and the loop keeps
//! watching the connection while it is idle, as for blocking connections.
//!
//! # Registration
//!
//! A stream registers a duplicate of its socket with the reactor of the
//! runtime that first polls it, and keeps that registration while it sits
//! idle in the pool, so a service on one runtime pays for it once per
//! connection, not per lease (a connection holds three descriptors then:
//! its own, the event loop's and the reactor's). Polled from another
//! runtime (a test's own runtime, say), it moves there first.

#[cfg(unix)]
use crate::connector::Watched;
use crate::connector::{Connector, Handshake, Progress};
use crate::lease::Leased;
use crate::nonblocking::Nonblocking;
use crate::pool::Pool;
use leasehold_policies::Policy;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::borrow::Borrow;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::{self, Handle};

/// A connector whose connections implement tokio's `AsyncRead` and
/// `AsyncWrite`: it connects through the connector it wraps and lends out
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
    type Handshake = AsyncHandshake<C::Handshake>;

    fn connect(&self, route: &C::Route) -> io::Result<Progress<Self::Conn, Self::Handshake>> {
        Ok(match self.inner.connect(route)? {
            Progress::Ready(conn) => Progress::Ready(AsyncStream::new(conn)),
            Progress::Pending(handshake) => Progress::Pending(AsyncHandshake { inner: handshake }),
        })
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

/// The connect of an [`AsyncConnector`]: the wrapped connector's, whose
/// connection it hands over as an [`AsyncStream`].
#[derive(Debug)]
pub struct AsyncHandshake<H> {
    inner: H,
}

impl<H: Source> Source for AsyncHandshake<H> {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl<H> Handshake for AsyncHandshake<H>
where
    H: Handshake,
    H::Conn: Nonblocking,
{
    type Conn = AsyncStream<H::Conn>;

    fn interest(&self) -> Interest {
        self.inner.interest()
    }

    fn stage(&self) -> &'static str {
        self.inner.stage()
    }

    fn advance(&mut self) -> io::Result<Option<Self::Conn>> {
        Ok(self.inner.advance()?.map(AsyncStream::new))
    }
}

/// A connection that tokio tasks read and write with `.await`
/// (`AsyncRead` and `AsyncWrite`), lent out by an [`AsyncConnector`].
///
/// A duplicate of its socket joins the reactor of the runtime that polls
/// it (see [`AsyncConnector`]), and the socket is non-blocking from then
/// on; polling it outside a tokio runtime, or in one built without I/O
/// (`enable_io`), fails with an error saying so. The connection's
/// [`socket`](Nonblocking::socket) must be a stream socket (TCP or Unix).
pub struct AsyncStream<S> {
    /// Declared before `io`, so that it leaves the reactor before the
    /// socket closes.
    registration: Option<Registration>,
    io: S,
}

/// A socket's place in one runtime's reactor: a duplicate of the
/// connection's socket, which tokio owns and so can neither outlive nor
/// close early.
struct Registration {
    runtime: runtime::Id,
    socket: tokio::net::TcpStream,
}

impl<S: Nonblocking> AsyncStream<S> {
    /// A stream over `io`, which joins a reactor when first polled.
    pub fn new(io: S) -> Self {
        Self {
            registration: None,
            io,
        }
    }

    /// The connection under the stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// The connection under the stream, for what the stream does not
    /// offer; reading or writing it directly may block.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The connection, out of the reactor it had joined.
    pub fn into_inner(mut self) -> S {
        self.registration = None;
        self.io
    }

    /// The reactor registration for the current runtime, made or moved
    /// there if need be, and the connection.
    fn parts(&mut self) -> io::Result<(&tokio::net::TcpStream, &mut S)> {
        let handle = Handle::try_current().map_err(|e| {
            io::Error::other(format!(
                "a leasehold AsyncStream was polled outside tokio: {e}"
            ))
        })?;
        let runtime = handle.id();
        if !matches!(&self.registration, Some(r) if r.runtime == runtime) {
            // Out of the old reactor first.
            self.registration = None;
            let socket = std::net::TcpStream::from(self.io.socket().try_clone_to_owned()?);
            // The mode belongs to the socket, so the connection's own
            // descriptor turns non-blocking too; its operations never
            // depended on the mode.
            socket.set_nonblocking(true)?;
            let socket = crate::unwind::guarded("registering with tokio", || {
                let _context = handle.enter();
                tokio::net::TcpStream::from_std(socket)
            })
            .unwrap_or_else(|| {
                Err(io::Error::other(
                    "the tokio runtime has no I/O driver (build it with `enable_io` or `enable_all`)",
                ))
            })?;
            self.registration = Some(Registration { runtime, socket });
        }
        let registration = self.registration.as_ref().expect("registered above");
        Ok((&registration.socket, &mut self.io))
    }

    /// Runs `op` on the connection once the socket is ready for writing
    /// (`write`) or reading, and again after each `WouldBlock`.
    fn poll_io<R>(
        &mut self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&mut S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        let (socket, io) = self.parts()?;
        let interest = if write {
            tokio::io::Interest::WRITABLE
        } else {
            tokio::io::Interest::READABLE
        };
        loop {
            if write {
                ready!(socket.poll_write_ready(cx))?;
            } else {
                ready!(socket.poll_read_ready(cx))?;
            }
            // A `WouldBlock` clears the readiness: wait again.
            match socket.try_io(interest, || op(io)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

impl<S: Nonblocking + Unpin> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        let n = ready!(self
            .get_mut()
            .poll_io(cx, false, |io| io.try_read(unfilled)))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: Nonblocking + Unpin> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_io(cx, true, |io| io.try_write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_io(cx, true, Nonblocking::try_flush)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_io(cx, true, Nonblocking::try_shutdown)
    }
}

impl<S: fmt::Debug> fmt::Debug for AsyncStream<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncStream")
            .field("io", &self.io)
            .field("runtime", &self.registration.as_ref().map(|r| r.runtime))
            .finish()
    }
}

/// A lease of an async connection reads like the connection.
impl<C, P, H> AsyncRead for Leased<C, P, H>
where
    C: Connector,
    C::Conn: AsyncRead + Unpin,
    P: Policy,
    H: Borrow<Pool<C, P>> + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_read(cx, buf)
    }
}

/// A lease of an async connection writes like the connection.
impl<C, P, H> AsyncWrite for Leased<C, P, H>
where
    C: Connector,
    C::Conn: AsyncWrite + Unpin,
    P: Policy,
    H: Borrow<Pool<C, P>> + Unpin,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut **self.get_mut()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_shutdown(cx)
    }
}
