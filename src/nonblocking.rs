//! Non-blocking I/O on the blocking connections the pool lends out, for the
//! code that drives them by readiness instead: the async adapters
//! ([`AsyncStream`](crate::AsyncStream)) and the set-up step that runs on
//! the event loop ([`Setup`](crate::Setup)).
//!
//! A [`TcpStream`] stays in blocking mode for its blocking holders; the
//! non-blocking operations pass `MSG_DONTWAIT` to each `recv` and `send`
//! instead of switching the socket's mode, which its duplicates share.

use rustix::net::{RecvFlags, SendFlags};
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsFd, BorrowedFd};

/// A connection that can be read and written without blocking: each
/// operation does what it can at once and fails with
/// [`WouldBlock`](io::ErrorKind::WouldBlock) where it would have waited,
/// after which the caller waits for its [`socket`](Self::socket) to turn
/// readable (after a read) or writable (after a write, flush or shutdown).
///
/// Implemented for [`TcpStream`] and [`TlsStream`](crate::tls::TlsStream);
/// a protocol's own connection type implements it by forwarding to the
/// stream it wraps.
pub trait Nonblocking: Send + 'static {
    /// The socket whose readiness the operations wait for.
    fn socket(&self) -> BorrowedFd<'_>;

    /// Reads what is there into `buf`: `Ok(0)` at the end of the stream.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is there yet; the connection's errors.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Writes as much of `buf` as fits at once.
    ///
    /// # Errors
    /// `WouldBlock` when nothing fits yet; the connection's errors.
    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// Sends what earlier writes left buffered (TLS records).
    ///
    /// # Errors
    /// `WouldBlock` while some is left; the connection's errors.
    fn try_flush(&mut self) -> io::Result<()>;

    /// Ends the sending side (TLS `close_notify`, then a FIN), so the peer
    /// reads the end of the stream.
    ///
    /// # Errors
    /// `WouldBlock` while the closing records are not all out; the
    /// connection's errors.
    fn try_shutdown(&mut self) -> io::Result<()>;

    /// Whether a read that returns less than asked has drained the socket,
    /// and a write that takes less than offered has filled it, so that
    /// the next operation can wait for readiness without trying first:
    /// true for a plain socket, false (the default) where a layer between
    /// buffers on its own (TLS records).
    fn drains(&self) -> bool {
        false
    }
}

/// Retries `op` while it is interrupted by a signal.
pub(crate) fn uninterrupted<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// One `recv` that does not block, whatever the socket's mode.
pub(crate) fn recv_now(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    uninterrupted(|| Ok(rustix::net::recv(fd, &mut *buf, RecvFlags::DONTWAIT)?.0))
}

/// One `send` that does not block, whatever the socket's mode, and that
/// fails with `BrokenPipe` rather than raising `SIGPIPE`.
pub(crate) fn send_now(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
    // Elsewhere a Rust program ignores SIGPIPE from its start.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let flags = SendFlags::DONTWAIT;
    uninterrupted(|| Ok(rustix::net::send(fd, buf, flags)?))
}

/// A socket read and written without blocking, as `std::io` sees it (what
/// rustls reads records from and writes them to).
#[cfg(feature = "tls")]
pub(crate) struct Now<'a>(pub(crate) BorrowedFd<'a>);

#[cfg(feature = "tls")]
impl io::Read for Now<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.0, buf)
    }
}

#[cfg(feature = "tls")]
impl io::Write for Now<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_now(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Nonblocking for TcpStream {
    fn socket(&self) -> BorrowedFd<'_> {
        self.as_fd()
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        recv_now(self.as_fd(), buf)
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_now(self.as_fd(), buf)
    }

    fn try_flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn drains(&self) -> bool {
        true
    }

    fn try_shutdown(&mut self) -> io::Result<()> {
        match self.shutdown(std::net::Shutdown::Write) {
            // The peer is gone already: nothing is left to end.
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[test]
    fn a_blocking_stream_reads_and_writes_without_blocking_and_stays_blocking() {
        let (mut client, mut server) = pair();
        let mut buf = [0; 8];
        let err = client.try_read(&mut buf).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(!SockRef::from(&client).nonblocking().unwrap());

        assert_eq!(client.try_write(b"ping").unwrap(), 4);
        client.try_flush().unwrap();
        server.read_exact(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"ping");

        server.write_all(b"pong").unwrap();
        let mut got = Vec::new();
        while got.len() < 4 {
            match client.try_read(&mut buf) {
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, b"pong");

        client.try_shutdown().unwrap();
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).unwrap(), 0);
    }

    #[test]
    fn a_full_send_buffer_says_would_block() {
        let (mut client, _server) = pair();
        let chunk = vec![0u8; 1 << 16];
        let mut sent = 0usize;
        let err = loop {
            match client.try_write(&chunk) {
                Ok(n) => sent += n,
                Err(e) => break e,
            }
            assert!(
                sent < 1 << 30,
                "the socket took a gigabyte without a reader"
            );
        };
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    }

    #[test]
    fn writing_to_a_reset_peer_fails_without_a_signal() {
        let (mut client, server) = pair();
        SockRef::from(&server)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(server);
        let err = loop {
            match client.try_write(b"x") {
                Ok(_) => std::thread::yield_now(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
            ),
            "{err:?}"
        );
    }
}
