//! The `futures-io` traits (`AsyncRead`, `AsyncWrite`) on [`AsyncStream`]
//! and on a lease of one, on async-io's reactor: one per process, on a
//! thread of its own, so the stream works under any executor (smol,
//! `futures::executor`, async-std, a hand-written `block_on`). The socket's
//! duplicate is registered once and stays in blocking mode; every
//! operation passes `MSG_DONTWAIT`.

use super::AsyncStream;
use crate::connector::Connector;
use crate::nonblocking::Nonblocking;
use crate::pool::Leased;
use crate::pool::Pool;
use futures_io::{AsyncRead, AsyncWrite};
use leasehold_policies::Policy;
use std::borrow::Borrow;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

impl<S: Nonblocking> AsyncStream<S> {
    /// Runs `op` on the connection until it does not say `WouldBlock`,
    /// waiting on async-io's reactor for the socket to turn writable
    /// (`write`) or readable in between.
    fn poll_futures<R>(
        &mut self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&mut S) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if self.async_io.is_none() {
            self.async_io = Some(async_io::Async::new_nonblocking(self.duplicate()?)?);
        }
        let registration = self.async_io.as_ref().expect("registered above");
        loop {
            match op(&mut self.io) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
            // Ready once an event arrived since this task last waited.
            if write {
                ready!(registration.poll_writable(cx))?;
            } else {
                ready!(registration.poll_readable(cx))?;
            }
        }
    }
}

impl<S: Nonblocking + Unpin> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_futures(cx, false, |io| io.try_read(buf))
    }
}

impl<S: Nonblocking + Unpin> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_futures(cx, true, |io| io.try_write(buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_futures(cx, true, Nonblocking::try_flush)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_futures(cx, true, Nonblocking::try_shutdown)
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
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
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

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut **self.get_mut()).poll_close(cx)
    }
}
