//! tokio's `AsyncRead` and `AsyncWrite` on [`AsyncStream`] and on a lease
//! of one: the socket's duplicate lives in a `tokio::net::TcpStream` of the
//! runtime that polls it.

use super::AsyncStream;
use crate::connector::Connector;
use crate::nonblocking::Nonblocking;
use crate::pool::Leased;
use crate::pool::Pool;
use leasehold_policies::Policy;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::{self, Handle};

/// A socket's place in one runtime's reactor: a duplicate of the
/// connection's socket, which tokio owns and so can neither outlive nor
/// close early.
pub(super) struct Registration {
    runtime: runtime::Id,
    socket: tokio::net::TcpStream,
}

impl Registration {
    pub(super) fn runtime(&self) -> runtime::Id {
        self.runtime
    }
}

impl<S: Nonblocking> AsyncStream<S> {
    /// The reactor registration for the current runtime, made or moved
    /// there if need be, and the connection.
    fn tokio_parts(&mut self) -> io::Result<(&tokio::net::TcpStream, &mut S)> {
        let handle = Handle::try_current().map_err(|e| {
            io::Error::other(format!(
                "a leasehold AsyncStream was polled outside tokio: {e}"
            ))
        })?;
        let runtime = handle.id();
        if !matches!(&self.tokio, Some(r) if r.runtime == runtime) {
            // Out of the old reactor first.
            self.tokio = None;
            let socket = self.duplicate()?;
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
            self.tokio = Some(Registration { runtime, socket });
        }
        let registration = self.tokio.as_ref().expect("registered above");
        Ok((&registration.socket, &mut self.io))
    }

    /// Runs `op` on the connection once the socket is ready for writing
    /// (`write`) or reading, and again after each `WouldBlock`. `op` says
    /// with its value whether it found the socket exhausted (drained by a
    /// short read, filled by a short write): then the readiness is cleared
    /// at once, so the next operation waits for an event instead of making
    /// a system call that would only say `WouldBlock`.
    fn poll_tokio<R>(
        &mut self,
        cx: &mut Context<'_>,
        write: bool,
        mut op: impl FnMut(&mut S) -> io::Result<(R, bool)>,
    ) -> Poll<io::Result<R>> {
        let (socket, io) = self.tokio_parts()?;
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
            let mut exhausted = None;
            // A `WouldBlock` from the closure clears the readiness (unless
            // an event came since it was read), whether the operation said
            // it or found the socket exhausted.
            let result = socket.try_io(interest, || match op(io)? {
                (value, true) => {
                    exhausted = Some(value);
                    Err(io::ErrorKind::WouldBlock.into())
                }
                (value, false) => Ok(value),
            });
            if let Some(value) = exhausted {
                return Poll::Ready(Ok(value));
            }
            match result {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                result => return Poll::Ready(result),
            }
        }
    }
}

/// Room for reads into a buffer the caller left uninitialised (hyper's,
/// say): reading there directly would mean zeroing all of it first, which
/// costs more than copying what arrived.
const SCRATCH: usize = 16 * 1024;

thread_local! {
    static SCRATCH_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl<S: Nonblocking + Unpin> AsyncRead for AsyncStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wanted = buf.remaining();
        if wanted == 0 {
            return Poll::Ready(Ok(()));
        }
        let drains = this.io.drains();
        let read = |io: &mut S, into: &mut [u8]| {
            let n = io.try_read(into)?;
            Ok((n, drains && n > 0 && n < into.len()))
        };
        let initialized = buf.initialized().len() - buf.filled().len();
        if initialized >= wanted.min(SCRATCH) {
            // Already initialised: nothing is zeroed.
            let unfilled = buf.initialize_unfilled_to(initialized.min(wanted));
            let n = ready!(this.poll_tokio(cx, false, |io| read(io, unfilled)))?;
            buf.advance(n);
            return Poll::Ready(Ok(()));
        }
        SCRATCH_BUFFER.with_borrow_mut(|scratch| {
            if scratch.is_empty() {
                scratch.resize(SCRATCH, 0);
            }
            let room = &mut scratch[..wanted.min(SCRATCH)];
            let n = ready!(this.poll_tokio(cx, false, |io| read(io, room)))?;
            buf.put_slice(&room[..n]);
            Poll::Ready(Ok(()))
        })
    }
}

impl<S: Nonblocking + Unpin> AsyncWrite for AsyncStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let drains = this.io.drains();
        this.poll_tokio(cx, true, |io| {
            let n = io.try_write(buf)?;
            Ok((n, drains && n < buf.len()))
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_tokio(cx, true, |io| Ok((io.try_flush()?, false)))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut()
            .poll_tokio(cx, true, |io| Ok((io.try_shutdown()?, false)))
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
