//! The connection a [`TlsConnector`](super::TlsConnector) lends out: a
//! blocking stream that reads and writes plaintext.
//!
//! # Implementation details
//!
//! The rustls session and its socket sit behind a mutex that the stream's
//! reads and writes take (uncontended: a lease has one holder). The pool's
//! event loop takes it too, with `try_lock`, only while the connection is
//! idle and its socket turned readable: TLS 1.3 servers send session
//! tickets after the handshake, and a server closing an idle connection
//! sends `close_notify`, so the loop must decrypt what arrived to tell a
//! ticket (keep the connection) from a close or stray application data
//! (evict it). Its check holds the session weakly and never waits for the
//! lock; a taken lock means a lease has the connection.

use crate::connector::Liveness;
use crate::tcp::probe;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConnection, HandshakeKind, ProtocolVersion};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

/// A TLS connection over a blocking TCP stream: reads and writes are in
/// plaintext, with the [`TcpConnector`](crate::TcpConnector)'s socket
/// settings (timeouts, nodelay, keepalive) applied.
///
/// A read returns `Ok(0)` once the server has sent `close_notify`; a server
/// that closes without it makes the read fail with `UnexpectedEof`.
pub struct TlsStream {
    session: Arc<Mutex<Session>>,
}

pub(super) struct Session {
    tls: ClientConnection,
    tcp: TcpStream,
}

impl TlsStream {
    pub(super) fn new(tls: ClientConnection, tcp: TcpStream) -> Self {
        Self {
            session: Arc::new(Mutex::new(Session { tls, tcp })),
        }
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the handshake was a full one or resumed a session.
    pub fn handshake_kind(&self) -> Option<HandshakeKind> {
        self.session().tls.handshake_kind()
    }

    /// The protocol agreed by ALPN, if any.
    pub fn alpn_protocol(&self) -> Option<Vec<u8>> {
        self.session().tls.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// The TLS version in use.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.session().tls.protocol_version()
    }

    /// The server's certificate chain, end entity first.
    pub fn peer_certificates(&self) -> Option<Vec<CertificateDer<'static>>> {
        self.session().tls.peer_certificates().map(<[_]>::to_vec)
    }

    /// The server's socket address.
    ///
    /// # Errors
    /// The socket's error (it is not connected any more…).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.session().tcp.peer_addr()
    }

    /// What the connection's socket and session say now, without blocking:
    /// what arrived is decrypted; session tickets keep it alive.
    pub(super) fn liveness(&self) -> Liveness {
        self.session().liveness()
    }

    /// See [`Session::has_broken`]. The lease giving it back holds no lock
    /// on it; the event loop's idle check may, for as long as a peek.
    pub(super) fn has_broken(&self) -> bool {
        self.session().has_broken()
    }

    /// The idle check the event loop runs (see the module docs).
    pub(super) fn idle_check(&self) -> impl Fn() -> Liveness + Send + Sync + 'static {
        let session: Weak<Mutex<Session>> = Arc::downgrade(&self.session);
        move || {
            let Some(session) = session.upgrade() else {
                return Liveness::Quiet; // being closed
            };
            let liveness = match session.try_lock() {
                Ok(mut session) => session.liveness(),
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner().liveness(),
                // A lease is using it.
                Err(std::sync::TryLockError::WouldBlock) => Liveness::Quiet,
            };
            liveness
        }
    }

    /// A duplicate of the socket, for the event loop to watch.
    pub(super) fn duplicate_socket(&self) -> io::Result<TcpStream> {
        self.session().tcp.try_clone()
    }

    /// Sends `close_notify` and a FIN without waiting for the server: what
    /// does not fit the socket's buffer at once is dropped.
    pub(super) fn close(self) {
        let mut session = self.session();
        let Session { tls, tcp } = &mut *session;
        tls.send_close_notify();
        if tcp.set_nonblocking(true).is_ok() {
            while tls.wants_write() {
                match tls.write_tls(tcp) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
        let _ = tcp.shutdown(Shutdown::Write);
    }
}

impl Session {
    /// Whether what TLS has already received (no read from the socket)
    /// leaves the connection unfit: decrypted bytes nobody read, the
    /// server's `close_notify`, or records that do not decrypt.
    fn has_broken(&mut self) -> bool {
        match self.tls.process_new_packets() {
            Ok(state) => state.plaintext_bytes_to_read() > 0 || state.peer_has_closed(),
            Err(_) => true,
        }
    }

    fn liveness(&mut self) -> Liveness {
        loop {
            let state = match self.tls.process_new_packets() {
                Ok(state) => state,
                Err(_) => return Liveness::Failed,
            };
            if state.plaintext_bytes_to_read() > 0 {
                return Liveness::Data;
            }
            if state.peer_has_closed() {
                return Liveness::Closed;
            }
            // Peek first (without blocking): the socket stays blocking for
            // the lease holders, and a read only follows when bytes are
            // there, so it returns at once. Nobody else reads it meanwhile:
            // this runs under the session's lock.
            match probe(self.tcp.as_fd()) {
                Liveness::Quiet => return Liveness::Quiet,
                Liveness::Data => {}
                other => return other,
            }
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => return Liveness::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Liveness::Failed,
            }
        }
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut session = self.session();
        let Session { tls, tcp } = &mut *session;
        rustls::Stream::new(tls, tcp).read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut session = self.session();
        let Session { tls, tcp } = &mut *session;
        rustls::Stream::new(tls, tcp).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        let mut session = self.session();
        let Session { tls, tcp } = &mut *session;
        rustls::Stream::new(tls, tcp).flush()
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let session = self.session();
        f.debug_struct("TlsStream")
            .field("peer", &session.tcp.peer_addr().ok())
            .field("version", &session.tls.protocol_version())
            .field("handshake", &session.tls.handshake_kind())
            .finish()
    }
}
