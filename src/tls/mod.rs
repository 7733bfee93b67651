//! TLS on rustls: a [`TlsConnector`] that wraps the [`TcpConnector`], and
//! what keys and carries its connections.
//!
//! The connect runs on the pool's event loop from the first byte to the
//! last: a non-blocking TCP connect, then the client handshake driven by
//! readiness ([`TlsHandshake`]), all under the pool's connect timeout. The
//! pool lends out a [`TlsStream`] that reads and writes plaintext.
//!
//! # Secure by default
//!
//! | setting | default |
//! |---|---|
//! | certificate and host-name verification | on, always (no switch to turn them off) |
//! | trust anchors | the Mozilla roots of `webpki-roots`; [`root_certificates`](TlsBuilder::root_certificates) replaces them |
//! | crypto provider | the process default if the application installed one, else ring; [`crypto_provider`](TlsBuilder::crypto_provider) takes another (aws-lc-rs…) |
//! | protocol versions | TLS 1.3 and 1.2 |
//! | SNI | the route's server name |
//! | ALPN | none offered; [`alpn_protocols`](TlsBuilder::alpn_protocols) |
//! | session resumption | on: 256 sessions per client identity; [`session_cache`](TlsBuilder::session_cache) |
//! | client certificate | none; per route with [`TlsConnector::client_identity`] |
//!
//! # Route identity
//!
//! A [`TlsRoute`] is the address, the server name and the client identity
//! together, so connections are only ever reused by requests that would
//! have authenticated the same way. Each identity has its own session
//! cache too: a session resumed under another client's certificate would
//! carry that client's authentication.
//!
//! # Idle connections
//!
//! A TLS 1.3 server sends session tickets after the handshake; an idle
//! connection may receive them while it sits in the pool. The event loop
//! decrypts what an idle connection receives ([`Watched::with_check`]):
//! tickets keep it, `close_notify`, end of stream or application data evict
//! it. Disposal sends `close_notify` and a FIN, off the callers' threads.

mod handshake;
mod route;
mod stream;

/// The provider a connector uses unless told otherwise: the process's
/// default if the application installed one, else ring.
fn default_provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(ring_provider)
}

/// ring's provider. rustls deprecates it (since 0.23.48) because ring has
/// no post-quantum key exchange; it stays the fallback here for its build
/// time (docs/design.md), and an application that wants the post-quantum
/// exchange installs aws-lc-rs as the process default or passes it to
/// [`TlsBuilder::crypto_provider`].
#[allow(deprecated)]
pub(crate) fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub use handshake::TlsHandshake;
pub use route::{ClientIdentity, TlsRoute};
pub use stream::TlsStream;

use crate::connector::{Connector, Progress, Watched};
use crate::tcp::TcpConnector;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The default number of TLS sessions remembered per client identity.
pub const DEFAULT_SESSION_CACHE: usize = 256;

/// Opens TLS connections: TCP through a [`TcpConnector`], then a rustls
/// client handshake, both driven by the pool's event loop.
///
/// Built with [`TlsConnector::builder`]; see the [module docs](self) for the
/// defaults, which verify every certificate against the Mozilla roots.
///
/// # Examples
/// ```no_run
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use leasehold::tls::{TlsConnector, TlsRoute};
/// use leasehold::{Pool, Strict, TcpConnector};
///
/// let connector = TlsConnector::builder()
///     .tcp(TcpConnector::new().read_timeout(Some(Duration::from_secs(5))))
///     .alpn_protocols([b"http/1.1".to_vec()])
///     .build()?;
/// let pool: Pool<TlsConnector, Strict> = Pool::builder(connector)
///     .connect_timeout(Duration::from_secs(2)) // TCP and TLS together
///     .build()?;
/// let route = TlsRoute::resolve("example.com:443")?;
/// let mut lease = pool.lease(&route)?;
/// lease.write_all(b"HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TlsConnector {
    tcp: TcpConnector,
    settings: Arc<TlsSettings>,
    /// The configuration of routes without a client identity.
    anonymous: Arc<ClientConfig>,
    /// Tells this connector's identities from another's.
    id: u64,
}

/// What every configuration of a connector shares.
struct TlsSettings {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    session_cache: usize,
}

impl TlsSettings {
    /// A client configuration, with `identity` presented if asked for and
    /// a session cache of its own.
    fn config(
        &self,
        identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    ) -> Result<ClientConfig, rustls::Error> {
        let builder = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots.clone());
        let mut config = match identity {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key)?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = self.alpn.clone();
        config.resumption = match self.session_cache {
            0 => Resumption::disabled(),
            sessions => Resumption::in_memory_sessions(sessions),
        };
        Ok(config)
    }
}

impl TlsConnector {
    /// A connector with the secure defaults (see the [module docs](self)):
    /// `TlsConnector::builder().build()`.
    ///
    /// # Errors
    /// As [`TlsBuilder::build`]: only a process-default crypto provider
    /// that offers no usable cipher suite fails.
    pub fn new() -> Result<TlsConnector, rustls::Error> {
        Self::builder().build()
    }

    /// A builder with the secure defaults (see the [module docs](self)).
    pub fn builder() -> TlsBuilder {
        TlsBuilder {
            tcp: TcpConnector::new(),
            provider: None,
            roots: None,
            alpn: Vec::new(),
            session_cache: DEFAULT_SESSION_CACHE,
        }
    }

    /// A client identity: `chain` (the client's certificate first) and its
    /// private key, presented to servers that ask for a client
    /// certificate on routes made [`with_identity`](TlsRoute::with_identity).
    ///
    /// The identity belongs to this connector (and its clones): a route
    /// carrying it connects with this connector's roots and settings, and
    /// a pool over another connector refuses it.
    ///
    /// # Errors
    /// The key cannot be read, or does not match the certificate.
    pub fn client_identity(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<ClientIdentity, rustls::Error> {
        let config = self.settings.config(Some((chain, key)))?;
        Ok(ClientIdentity::new(self.id, config))
    }

    /// The TCP settings connections are made with.
    pub fn tcp(&self) -> &TcpConnector {
        &self.tcp
    }
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("tcp", &self.tcp)
            .field("roots", &self.settings.roots.len())
            .field(
                "alpn",
                &self
                    .settings
                    .alpn
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
            )
            .field("session_cache", &self.settings.session_cache)
            .finish()
    }
}

/// Configures a [`TlsConnector`]; every setting has a secure default.
#[must_use]
pub struct TlsBuilder {
    tcp: TcpConnector,
    provider: Option<Arc<CryptoProvider>>,
    roots: Option<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    session_cache: usize,
}

impl TlsBuilder {
    /// The TCP settings (timeouts, nodelay, keepalive) of the socket under
    /// each TLS connection (default [`TcpConnector::new`]).
    pub fn tcp(mut self, tcp: TcpConnector) -> Self {
        self.tcp = tcp;
        self
    }

    /// The trust anchors server certificates are verified against, in
    /// place of the Mozilla roots of `webpki-roots` (a private CA, say).
    pub fn root_certificates(mut self, roots: RootCertStore) -> Self {
        self.roots = Some(roots);
        self
    }

    /// The crypto provider (e.g. `rustls::crypto::aws_lc_rs::default_provider()`
    /// from a rustls built with its `aws_lc_rs` feature, for its
    /// post-quantum key exchange). Default: the process's default provider
    /// if the application installed one
    /// (`CryptoProvider::install_default`), else ring.
    pub fn crypto_provider(mut self, provider: Arc<CryptoProvider>) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The protocols offered by ALPN, most preferred first (default: none,
    /// and no ALPN extension is sent). A server that agrees on none of them
    /// fails the handshake.
    pub fn alpn_protocols<P: Into<Vec<u8>>>(
        mut self,
        protocols: impl IntoIterator<Item = P>,
    ) -> Self {
        self.alpn = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// How many sessions each client identity remembers for resumption
    /// (default [`DEFAULT_SESSION_CACHE`]); `0` turns resumption off, so
    /// every connect does a full handshake.
    pub fn session_cache(mut self, sessions: usize) -> Self {
        self.session_cache = sessions;
        self
    }

    /// Builds the connector.
    ///
    /// # Errors
    /// The crypto provider supports none of the protocol versions.
    pub fn build(self) -> Result<TlsConnector, rustls::Error> {
        static IDS: AtomicU64 = AtomicU64::new(1);
        let roots = self
            .roots
            .unwrap_or_else(|| webpki_roots::TLS_SERVER_ROOTS.iter().cloned().collect());
        let settings = TlsSettings {
            provider: self.provider.unwrap_or_else(default_provider),
            roots: Arc::new(roots),
            alpn: self.alpn,
            session_cache: self.session_cache,
        };
        Ok(TlsConnector {
            tcp: self.tcp,
            anonymous: Arc::new(settings.config(None)?),
            settings: Arc::new(settings),
            id: IDS.fetch_add(1, Ordering::Relaxed),
        })
    }
}

impl fmt::Debug for TlsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsBuilder")
            .field("tcp", &self.tcp)
            .field("custom_provider", &self.provider.is_some())
            .field("roots", &self.roots.as_ref().map(RootCertStore::len))
            .field("alpn", &self.alpn.len())
            .field("session_cache", &self.session_cache)
            .finish()
    }
}

impl Connector for TlsConnector {
    type Route = TlsRoute;
    type Conn = TlsStream;
    type Handshake = TlsHandshake;

    /// Starts a non-blocking TCP connect; the handshake follows on the
    /// event loop.
    ///
    /// # Errors
    /// The connect failed at once, or the route's identity was made by
    /// another connector (`InvalidInput`).
    fn connect(&self, route: &TlsRoute) -> io::Result<Progress<TlsStream, TlsHandshake>> {
        let config = match route.identity() {
            None => self.anonymous.clone(),
            Some(identity) => identity.config_for(self.id).cloned().ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{identity:?} was made by another TlsConnector"),
                )
            })?,
        };
        let tls = ClientConnection::new(config, route.server_name().clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tcp = self.tcp.start(route.addr())?;
        Ok(Progress::Pending(TlsHandshake::new(tcp, tls)))
    }

    /// Sends `close_notify`, then a FIN; does not wait for the server.
    fn close(&self, conn: TlsStream) {
        conn.close();
    }

    /// Closes the socket at once, without `close_notify`.
    fn abort(&self, conn: TlsStream) {
        drop(conn);
    }

    /// A duplicate of the socket, and a check that decrypts what an idle
    /// connection receives (see the [module docs](self)).
    fn watch(&self, conn: &TlsStream) -> Option<Watched> {
        let dup = conn.duplicate_socket().ok()?;
        Some(Watched::with_check(dup.into(), conn.idle_check()))
    }

    /// Broken when decrypted bytes were left unread (a response half
    /// read), the server sent `close_notify`, or what arrived does not
    /// decrypt; it reads nothing from the socket.
    fn has_broken(&self, conn: &mut TlsStream) -> bool {
        conn.has_broken()
    }

    /// Decrypts what arrived without blocking: alive unless the server
    /// closed it, it failed, or application data is waiting.
    fn is_alive(&self, conn: &mut TlsStream) -> bool {
        conn.liveness().is_alive()
    }
}
