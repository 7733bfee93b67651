//! One request on one pooled connection: the stream hyper reads and writes,
//! and the hyper connection that runs the exchange until the connection
//! can go back to the pool.
//!
//! # Implementation Details
//!
//! Each request leases a connection, wraps it in a [`PooledIo`] and starts
//! a fresh `hyper::client::conn::http1` connection over it. Nothing is
//! spawned: the future of the request, and then the response body as it
//! is read, poll the hyper connection themselves (through [`Exchange`],
//! which hides the request body's type), so the whole exchange runs on
//! the caller's task and each turn of it costs no wake-up of another task
//! (nor of the same one: see the `turns` module).
//!
//! The connection goes back to the pool in one way only:
//! [`Exchange::release`], once the response body has been read to its end
//! and hyper stands idle, waiting for the next request on the connection
//! ([`SendRequest::is_ready`]). Hyper only gets there when the exchange
//! ended cleanly and keep-alive holds: no `Connection: close` either way,
//! no HTTP/1.0 without keep-alive, no error, the request body handed over
//! to its end. Two more conditions keep the connection out even then: a
//! byte read past the response (`Parts::read_buf`), and a write hyper has
//! not flushed since (hyper counts a request body as sent once it is in
//! its buffer, so it may stand idle with bytes of it still waiting for the
//! socket). Anything else drops the [`PooledIo`], whose `Drop` discards
//! the connection: an error, a body dropped before its end, a request
//! future or body cancelled at any `.await`, a panic.

use crate::endpoint::EndpointConnector;
use hyper::body::Body;
use hyper::client::conn::http1::{Connection, Parts, SendRequest};
use hyper_util::rt::TokioIo;
use leasehold::{AsyncConnector, OwnedLease, Policy};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A lease of the client's pool.
pub(crate) type ClientLease<P> = OwnedLease<AsyncConnector<EndpointConnector>, P>;

/// The stream under one exchange: a pooled connection that is discarded
/// when dropped, and goes back to the pool only through
/// [`release`](Self::release).
pub(crate) struct PooledIo<P: Policy> {
    /// `None` once released.
    lease: Option<ClientLease<P>>,
    /// Whether bytes may wait in hyper's write buffer: a write came after
    /// the last completed flush. Hyper ends every flush of its buffer
    /// with one of the stream's, once the buffer is out, but may consider
    /// a request written (and itself idle) while its last bytes still
    /// wait there for the socket.
    unflushed: bool,
}

impl<P: Policy> PooledIo<P> {
    pub(crate) fn new(lease: ClientLease<P>) -> Self {
        Self {
            lease: Some(lease),
            unflushed: false,
        }
    }

    /// Gives the connection back to the pool for the next request, unless
    /// part of a request may still be unsent: then it is discarded.
    fn release(mut self) {
        if !self.unflushed {
            drop(self.lease.take());
        }
    }

    fn lease(&mut self) -> &mut ClientLease<P> {
        self.lease
            .as_mut()
            .expect("a PooledIo holds its lease until it is dropped")
    }
}

impl<P: Policy> Drop for PooledIo<P> {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            lease.discard();
        }
    }
}

impl<P: Policy> fmt::Debug for PooledIo<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledIo")
            .field("lease", &self.lease)
            .finish()
    }
}

impl<P: Policy> AsyncRead for PooledIo<P> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().lease()).poll_read(cx, buf)
    }
}

impl<P: Policy> AsyncWrite for PooledIo<P> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.unflushed = true;
        Pin::new(this.lease()).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let flushed = Pin::new(this.lease()).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            this.unflushed = false;
        }
        flushed
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().lease()).poll_shutdown(cx)
    }
}

/// The hyper connection of one exchange, whatever the request body's type.
pub(crate) trait Exchange: Send {
    /// Runs the connection: writes the request, reads the response into
    /// its body. `Ready` when hyper is done with the connection, which
    /// then cannot be reused; errors reach the response or its body.
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()>;

    /// Whether hyper waits for another request: the exchange is over and
    /// the connection may carry the next one.
    fn is_idle(&self) -> bool;

    /// Gives the connection back to the pool if hyper left no byte unread;
    /// otherwise discards it.
    fn release(self: Box<Self>);
}

/// An [`Exchange`] over hyper's HTTP/1 client connection, for requests
/// with bodies of type `B`.
pub(crate) struct Http1Exchange<P: Policy, B: Body + 'static> {
    pub(crate) sender: SendRequest<B>,
    pub(crate) conn: Connection<TokioIo<PooledIo<P>>, B>,
}

impl<P, B> Exchange for Http1Exchange<P, B>
where
    P: Policy,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.poll_without_shutdown(cx).map(drop)
    }

    fn is_idle(&self) -> bool {
        self.sender.is_ready()
    }

    fn release(self: Box<Self>) {
        let Self { sender, conn } = *self;
        let Parts { io, read_buf, .. } = conn.into_parts();
        drop(sender);
        if read_buf.is_empty() {
            io.into_inner().release();
        }
    }
}

/// Ends an exchange after the response body's last byte: gives the
/// connection back if hyper is ready for another request on it, closes it
/// if not.
pub(crate) fn finish(mut exchange: Box<dyn Exchange>, cx: &mut Context<'_>) {
    // Reading the last frame usually leaves hyper idle already; if not,
    // one more turn settles it, or shows it will not be.
    if exchange.is_idle() || (exchange.poll_drive(cx).is_pending() && exchange.is_idle()) {
        exchange.release();
    }
}
