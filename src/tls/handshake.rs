//! The TLS connect as a readiness-driven state machine: a non-blocking TCP
//! connect, then the rustls client handshake on the same non-blocking
//! socket, advanced by the pool's event loop on each readiness event (the
//! shape of rustls's mio client example, inside the loop's connect jobs).
//! The pool's connect timeout runs from the first step to the last, so it
//! covers both.

use super::stream::TlsStream;
use super::SettingsGeneration;
use crate::connector::Handshake;
use crate::error::TlsError;
use crate::tcp::TcpHandshake;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use rustls::{CertificateError, ClientConnection, InvalidMessage};
use std::fmt;
use std::io;

/// A TLS connect in progress, made by
/// [`TlsConnector::connect`](crate::Connector::connect).
///
/// It waits for the TCP connect, then shakes hands; [`advance`] yields the
/// [`TlsStream`], on a duplicate of the descriptor it registered (see
/// [`Handshake`]'s contract), in blocking mode with the TCP settings
/// applied.
///
/// [`advance`]: Handshake::advance
pub struct TlsHandshake {
    tcp: TcpHandshake,
    /// Taken at the hand-over.
    tls: Option<ClientConnection>,
    /// Whether the TCP connect is done.
    connected: bool,
    /// The connector's settings it started under.
    opened_under: SettingsGeneration,
}

impl TlsHandshake {
    pub(super) fn new(
        tcp: TcpHandshake,
        tls: ClientConnection,
        opened_under: SettingsGeneration,
    ) -> Self {
        Self {
            tcp,
            tls: Some(tls),
            connected: false,
            opened_under,
        }
    }

    /// Reads and writes what the handshake needs until the socket has no
    /// more to give: `Ok(true)` once the handshake is done.
    fn shake(&mut self) -> io::Result<bool> {
        let Some(tls) = self.tls.as_mut() else {
            return Err(handed_over());
        };
        let socket = self.tcp.stream();
        loop {
            while tls.wants_write() {
                match tls.write_tls(socket) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if !tls.is_handshaking() {
                // Done once the last flight is on its way.
                return Ok(!tls.wants_write());
            }
            if !tls.wants_read() {
                return Ok(false); // waits for writability
            }
            match tls.read_tls(socket) {
                Ok(0) => return Err(TlsError::ClosedDuringHandshake.into_io()),
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        // Tell the server why, if the socket takes it now.
                        while tls.wants_write() && tls.write_tls(socket).is_ok_and(|n| n > 0) {}
                        return Err(failure(e).into_io());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

fn handed_over() -> io::Error {
    io::Error::other("the TLS handshake has already handed its connection over")
}

/// What a rustls error during the handshake means to the caller.
fn failure(error: rustls::Error) -> TlsError {
    let why = error.to_string();
    match error {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                TlsError::UntrustedCertificate(why)
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                TlsError::NameMismatch(why)
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => TlsError::CertificateExpired(why),
            _ => TlsError::BadCertificate(why),
        },
        rustls::Error::InvalidMessage(
            InvalidMessage::InvalidContentType | InvalidMessage::UnknownProtocolVersion,
        ) => TlsError::NotTls(why),
        rustls::Error::AlertReceived(alert) => TlsError::AlertReceived(format!("{alert:?}")),
        _ => TlsError::Handshake(why),
    }
}

impl Source for TlsHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.tcp.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.tcp.reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.tcp.deregister(registry)
    }
}

impl Handshake for TlsHandshake {
    type Conn = TlsStream;

    fn interest(&self) -> Interest {
        match &self.tls {
            Some(tls) if self.connected => match (tls.wants_read(), tls.wants_write()) {
                (true, true) => Interest::READABLE | Interest::WRITABLE,
                (false, true) => Interest::WRITABLE,
                _ => Interest::READABLE,
            },
            _ => Interest::WRITABLE,
        }
    }

    fn stage(&self) -> &'static str {
        if self.connected {
            "TLS handshake"
        } else {
            "TCP connect"
        }
    }

    /// Connects, then shakes hands.
    ///
    /// # Errors
    /// The TCP connect failed (`ConnectionRefused`…), or the handshake did:
    /// the error then carries a [`TlsError`] (see [`TlsError::of`]).
    fn advance(&mut self) -> io::Result<Option<TlsStream>> {
        if !self.connected {
            if self.tls.is_none() {
                return Err(handed_over());
            }
            if !self.tcp.connected()? {
                return Ok(None);
            }
            self.connected = true;
        }
        if !self.shake()? {
            return Ok(None);
        }
        let tcp = self.tcp.hand_over()?;
        let tls = self.tls.take().ok_or_else(handed_over)?;
        tracing::trace!(kind = ?tls.handshake_kind(), "tls connected");
        Ok(Some(TlsStream::new(tls, tcp, self.opened_under)))
    }
}

impl fmt::Debug for TlsHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsHandshake")
            .field("stage", &self.stage())
            .field("handed_over", &self.tls.is_none())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::AlertDescription;

    #[test]
    fn rustls_errors_map_to_what_the_caller_can_act_on() {
        let cert = |e| failure(rustls::Error::InvalidCertificate(e));
        assert!(matches!(
            cert(CertificateError::UnknownIssuer),
            TlsError::UntrustedCertificate(_)
        ));
        assert!(matches!(
            cert(CertificateError::BadSignature),
            TlsError::UntrustedCertificate(_)
        ));
        assert!(matches!(
            cert(CertificateError::NotValidForName),
            TlsError::NameMismatch(_)
        ));
        assert!(matches!(
            cert(CertificateError::Expired),
            TlsError::CertificateExpired(_)
        ));
        assert!(matches!(
            cert(CertificateError::NotValidYet),
            TlsError::CertificateExpired(_)
        ));
        assert!(matches!(
            cert(CertificateError::Revoked),
            TlsError::BadCertificate(_)
        ));
        assert_eq!(
            failure(rustls::Error::InvalidMessage(
                InvalidMessage::InvalidContentType
            )),
            TlsError::NotTls("received corrupt message of type InvalidContentType".into())
        );
        assert_eq!(
            failure(rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            TlsError::AlertReceived("CertificateRequired".into())
        );
        assert!(matches!(
            failure(rustls::Error::DecryptError),
            TlsError::Handshake(_)
        ));
    }

    #[test]
    fn the_io_error_carries_the_tls_error() {
        let error = TlsError::NameMismatch("b.test".into()).into_io();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(
            TlsError::of(&error),
            Some(&TlsError::NameMismatch("b.test".into()))
        );
        let closed = TlsError::ClosedDuringHandshake.into_io();
        assert_eq!(closed.kind(), io::ErrorKind::UnexpectedEof);
        assert_eq!(TlsError::of(&io::Error::other("plain")), None);
    }
}
