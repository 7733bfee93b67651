//! The connection a [`TlsConnector`](super::TlsConnector) lends out: a
//! blocking stream that reads and writes plaintext.
//!
//! # Implementation details
//!
//! The rustls state sits behind a mutex that the stream's reads and writes
//! take (uncontended: a lease has one holder); the socket beside it. The pool's
//! event loop takes it too, with `try_lock`, only while the connection is
//! idle and its socket turned readable: TLS 1.3 servers send session
//! tickets after the handshake, and a server closing an idle connection
//! sends `close_notify`, so the loop must decrypt what arrived to tell a
//! ticket (keep the connection) from a close or stray application data
//! (evict it). Its check holds the session weakly and never waits for the
//! lock; a taken lock means a lease has the connection.

use super::SettingsGeneration;
use crate::connector::probe;
use crate::connector::Liveness;
use crate::nonblocking::{Nonblocking, Now};
use rustls::pki_types::CertificateDer;
use rustls::{ClientConnection, HandshakeKind, ProtocolVersion};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A TLS connection over a blocking TCP stream: reads and writes are in
/// plaintext, with the [`TcpConnector`](crate::TcpConnector)'s socket
/// settings (timeouts, nodelay, keepalive) applied.
///
/// A read returns `Ok(0)` once the server has sent `close_notify`; a server
/// that closes without it makes the read fail with `UnexpectedEof`.
pub struct TlsStream {
    session: Arc<Session>,
    /// The connector's settings it was opened under.
    opened_under: SettingsGeneration,
}

/// The socket and, behind the lock the event loop's check shares, the
/// rustls state.
pub(super) struct Session {
    tcp: TcpStream,
    tls: Mutex<ClientConnection>,
}

impl TlsStream {
    pub(super) fn new(
        tls: ClientConnection,
        tcp: TcpStream,
        opened_under: SettingsGeneration,
    ) -> Self {
        Self {
            session: Arc::new(Session {
                tcp,
                tls: Mutex::new(tls),
            }),
            opened_under,
        }
    }

    /// The generation of the connector's settings it was opened under.
    pub(super) fn opened_under(&self) -> SettingsGeneration {
        self.opened_under
    }

    fn tls(&self) -> MutexGuard<'_, ClientConnection> {
        self.session.tls()
    }

    /// The rustls state and the socket, for an operation on both.
    fn parts(&self) -> (MutexGuard<'_, ClientConnection>, &TcpStream) {
        (self.session.tls(), &self.session.tcp)
    }

    /// Whether the handshake was a full one or resumed a session.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.tls().handshake_kind()
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.tls().alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The TLS version in use.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.tls().protocol_version()
    }

    /// The server's certificate chain, end entity first.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.tls().peer_certificates().map(<[_]>::to_vec)
    }

    /// The server's socket address.
    ///
    /// # Errors
    /// The socket's error (it is not connected any more…).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.session.tcp.peer_addr()
    }

    /// What the connection's socket and session say now, without blocking:
    /// what arrived is decrypted; session tickets keep it alive.
    pub(super) fn liveness(&self) -> Liveness {
        let (mut tls, tcp) = self.parts();
        liveness(&mut tls, tcp)
    }

    /// Whether what TLS has already received (no read from the socket)
    /// leaves the connection unfit: decrypted bytes nobody read, the
    /// server's `close_notify`, or records that do not decrypt. The lease
    /// giving it back holds no lock on it; the event loop's idle check may,
    /// for as long as a peek.
    pub(super) fn has_broken(&self) -> bool {
        match self.tls().process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }

    /// The idle check the event loop runs (see the module docs).
    pub(super) fn idle_check(&self) -> impl Fn() -> Liveness + Send + Sync + 'static {
        let session: Weak<Session> = Arc::downgrade(&self.session);
        move || {
            let Some(session) = session.upgrade() else {
                return Liveness::Quiet; // being closed
            };
            let liveness = match session.tls.try_lock() {
                Ok(mut tls) => liveness(&mut tls, &session.tcp),
                Err(std::sync::TryLockError::Poisoned(e)) => {
                    liveness(&mut e.into_inner(), &session.tcp)
                }
                // A lease is using it.
                Err(std::sync::TryLockError::WouldBlock) => Liveness::Quiet,
            };
            liveness
        }
    }

    /// A duplicate of the socket, for the event loop to watch.
    pub(super) fn duplicate_socket(&self) -> io::Result<TcpStream> {
        self.session.tcp.try_clone()
    }

    /// Sends `close_notify` and a FIN without waiting for the server: what
    /// does not fit the socket's buffer at once is dropped.
    pub(super) fn close(self) {
        let (mut tls, tcp) = self.parts();
        tls.send_close_notify();
        let _ = send_records(&mut tls, tcp);
        let _ = tcp.shutdown(Shutdown::Write);
    }
}

impl Session {
    fn tls(&self) -> MutexGuard<'_, ClientConnection> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What an idle connection says now: what arrived is read (without
/// blocking) and decrypted until the socket has nothing more.
fn liveness(tls: &mut ClientConnection, tcp: &TcpStream) -> Liveness {
    loop {
        let state = match tls.process_new_packets() {
            Ok(state) => state,
            Err(_) => return Liveness::Failed,
        };
        if state.plaintext_bytes_to_read() > 0 {
            return Liveness::Data;
        }
        if state.peer_has_closed() {
            return Liveness::Closed;
        }
        // Peek first: a read only follows when bytes are there. Nobody
        // else reads the socket meanwhile: this runs under the session's
        // lock.
        match probe(tcp.as_fd()) {
            Liveness::Quiet => return Liveness::Quiet,
            Liveness::Data => {}
            other => return other,
        }
        match tls.read_tls(&mut Now(tcp.as_fd())) {
            Ok(0) => return Liveness::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Quiet,
            Err(_) => return Liveness::Failed,
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (mut tls, mut tcp) = self.parts();
        rustls::Stream::new(&mut *tls, &mut tcp).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (mut tls, mut tcp) = self.parts();
        rustls::Stream::new(&mut *tls, &mut tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let (mut tls, mut tcp) = self.parts();
        rustls::Stream::new(&mut *tls, &mut tcp).flush()
    }
}

/// Reads and writes without blocking (for the async adapters and set-up
/// steps): records go through `MSG_DONTWAIT` calls on the socket, which
/// stays in blocking mode for blocking holders.
impl Nonblocking for TlsStream {
    fn socket(&self) -> BorrowedFd<'_> {
        self.session.tcp.as_fd()
    }

    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (mut tls, tcp) = self.parts();
        loop {
            match tls.reader().read(buf) {
                // Plaintext, or the end after `close_notify`.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The end of the stream without `close_notify`.
                Err(e) => return Err(e),
            }
            // Nothing decrypted is waiting: take more records in.
            tls.read_tls(&mut Now(tcp.as_fd()))?;
            tls.process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            // A key update or alert to answer goes out when it can; what
            // does not fit now leaves with the next write or flush.
            match send_records(&mut tls, tcp) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
    }

    fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (mut tls, tcp) = self.parts();
        // Records from earlier writes go first; a full socket is no reason
        // to refuse plaintext while rustls has room to buffer it.
        match send_records(&mut tls, tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        let taken = tls.writer().write(buf)?;
        if taken == 0 && !buf.is_empty() {
            // rustls's buffer is full and the socket takes nothing.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match send_records(&mut tls, tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(taken),
        }
    }

    fn try_flush(&mut self) -> io::Result<()> {
        let (mut tls, tcp) = self.parts();
        tls.writer().flush()?;
        send_records(&mut tls, tcp)
    }

    fn try_shutdown(&mut self) -> io::Result<()> {
        let (mut tls, tcp) = self.parts();
        if !tls.wants_write() {
            // Sent once: a retry after `WouldBlock` only flushes.
            tls.send_close_notify();
        }
        send_records(&mut tls, tcp)?;
        match tcp.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            other => other,
        }
    }
}

/// Sends the records rustls holds until none is left (`Ok`) or the socket
/// takes no more (`WouldBlock`).
fn send_records(tls: &mut ClientConnection, tcp: &TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(&mut Now(tcp.as_fd()))?;
    }
    Ok(())
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tls = self.tls();
        f.debug_struct("TlsStream")
            .field("peer", &self.session.tcp.peer_addr().ok())
            .field("version", &tls.protocol_version())
            .field("handshake", &tls.handshake_kind())
            .field("opened_under", &self.opened_under)
            .finish()
    }
}
