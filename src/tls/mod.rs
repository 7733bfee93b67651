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
//!
//! # Changing a running connector
//!
//! Clones of a connector share its settings, so the one a pool holds can
//! be changed through a clone kept aside: the trust anchors
//! ([`set_root_certificates`](TlsConnector::set_root_certificates)), ALPN
//! ([`set_alpn_protocols`](TlsConnector::set_alpn_protocols)), a client
//! identity's certificate
//! ([`rotate_identity`](TlsConnector::rotate_identity)) and the TCP
//! settings (the `set_*` methods of [`TlsConnector::tcp`]). Connects read
//! them without a lock: each starts with the settings in force when it
//! begins. Connections already open keep the settings they were opened
//! with and stay in the pool, unless
//! [`retire_existing`](TlsConnector::retire_existing) asks for them to be
//! closed.
//!
//! # Implementation details
//!
//! The settings (roots, ALPN, the configuration of routes without an
//! identity) are one value behind an [`ArcSwap`]; each identity keeps the
//! certificate it presents, and the configuration built for it, behind one
//! too. A change builds the new value, swaps it in and then raises the
//! connector's *generation*; a connect reads the generation first, then
//! the settings, and its connection records that generation (and the TCP
//! settings' own). A connect racing a change may thus record an older
//! generation than the settings it used, never a newer one, so retiring
//! the connections of old generations never spares one with old settings.
//! An identity's configuration built under older roots or ALPN is rebuilt
//! by the first connect that finds it so, and swapped in only if no
//! rotation replaced it meanwhile. Changes are serialized by a mutex that
//! connects never take.

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
use route::Presented;
pub use route::{ClientIdentity, TlsRoute};
pub use stream::TlsStream;

use crate::connector::{Connector, Progress, Watched};
use crate::tcp::TcpConnector;
use arc_swap::ArcSwap;
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, ClientConnection, ConfigBuilder, RootCertStore, WantsVerifier};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The default number of TLS sessions remembered per client identity.
pub const DEFAULT_SESSION_CACHE: usize = 256;

/// Opens TLS connections: TCP through a [`TcpConnector`], then a rustls
/// client handshake, both driven by the pool's event loop.
///
/// Built with [`TlsConnector::builder`]; see the [module docs](self) for the
/// defaults, which verify every certificate against the Mozilla roots.
/// Clones share the settings, which can be changed while a pool runs (see
/// [Changing a running connector](self#changing-a-running-connector)).
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
    /// Shares its settings with the clones of this connector.
    tcp: TcpConnector,
    shared: Arc<TlsShared>,
}

/// What clones of a connector share.
struct TlsShared {
    /// Tells this connector's identities from another's.
    id: u64,
    base: ConfigBase,
    settings: ArcSwap<TlsSettings>,
    /// Raised after every change: of the settings, or of an identity.
    generation: AtomicU64,
    /// Connections opened under a lower generation are retired.
    retired_below: AtomicU64,
    /// Connections opened under TCP settings of a lower generation are
    /// retired.
    tcp_retired_below: AtomicU64,
    /// Held while a change is made, so that changes and generations go in
    /// the same order; connects never take it.
    changing: Mutex<()>,
}

/// The settings of one generation.
struct TlsSettings {
    roots: Arc<RootCertStore>,
    alpn: Vec<Vec<u8>>,
    /// The configuration of routes without a client identity.
    anonymous: Arc<ClientConfig>,
    /// The connector's generation these settings came in with.
    generation: u64,
}

/// The generations of a connector's settings a connection was opened
/// under: the TLS connector's and its TCP connector's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SettingsGeneration {
    tls: u64,
    tcp: u64,
}

/// What every client configuration of a connector starts from.
struct ConfigBase {
    /// The provider and protocol versions.
    versions: ConfigBuilder<ClientConfig, WantsVerifier>,
    /// Sessions remembered per configuration; 0: no resumption.
    session_cache: usize,
}

impl ConfigBase {
    /// Settings trusting `roots` and offering `alpn`, in `generation`.
    fn settings(
        &self,
        roots: Arc<RootCertStore>,
        alpn: Vec<Vec<u8>>,
        generation: u64,
    ) -> TlsSettings {
        let anonymous = self
            .versions
            .clone()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        TlsSettings {
            anonymous: Arc::new(self.finish(anonymous, &alpn)),
            roots,
            alpn,
            generation,
        }
    }

    /// What an identity presents under `settings`: `chain` and `key`, in a
    /// configuration with a session cache of its own.
    ///
    /// # Errors
    /// The key cannot be read, or does not match the certificate.
    fn presented(
        &self,
        settings: &TlsSettings,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Presented, rustls::Error> {
        let config = self
            .versions
            .clone()
            .with_root_certificates(settings.roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())?;
        Ok(Presented {
            chain,
            key,
            config: Arc::new(self.finish(config, &settings.alpn)),
            built_with: settings.generation,
        })
    }

    /// `config` with the connector's ALPN and session cache.
    fn finish(&self, mut config: ClientConfig, alpn: &[Vec<u8>]) -> ClientConfig {
        config.alpn_protocols = alpn.to_vec();
        config.resumption = match self.session_cache {
            0 => Resumption::disabled(),
            sessions => Resumption::in_memory_sessions(sessions),
        };
        config
    }
}

impl TlsShared {
    /// Makes a change under the lock, then raises the generation: `change`
    /// gets the generation its result belongs to.
    fn change<T>(&self, change: impl FnOnce(u64) -> T) -> T {
        let _changing = self.changing.lock().unwrap_or_else(PoisonError::into_inner);
        let next = self.generation.load(Ordering::Relaxed) + 1;
        let done = change(next);
        // Release: a connect that reads this generation reads what
        // `change` stored too.
        self.generation.store(next, Ordering::Release);
        done
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
        let settings = self.shared.settings.load();
        let presented = self.shared.base.presented(&settings, chain, key)?;
        Ok(ClientIdentity::new(self.shared.id, presented))
    }

    /// The TCP settings connections are made with. Its `set_*` methods
    /// (such as [`TcpConnector::set_read_timeout`]) change them for this
    /// connector and its clones.
    pub fn tcp(&self) -> &TcpConnector {
        &self.tcp
    }

    /// Replaces the trust anchors server certificates are verified
    /// against, for the connects this connector and its clones (a running
    /// pool's included) start from now on. Open connections keep the
    /// verification they passed; see
    /// [`retire_existing`](Self::retire_existing).
    ///
    /// Sessions remembered for resumption are forgotten: a session
    /// resumed skips the certificate check the new roots would make.
    ///
    /// ```
    /// use leasehold::rustls::RootCertStore;
    /// use leasehold::tls::TlsConnector;
    /// use leasehold::Pool;
    ///
    /// let connector = TlsConnector::new()?;
    /// let pool = Pool::builder(connector.clone()).build()?;
    /// // Later: trust a private CA only (its certificate added here).
    /// connector.set_root_certificates(RootCertStore::empty());
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_root_certificates(&self, roots: RootCertStore) {
        let roots = Arc::new(roots);
        let shared = &self.shared;
        shared.change(|generation| {
            let alpn = shared.settings.load().alpn.clone();
            let settings = shared.base.settings(roots, alpn, generation);
            shared.settings.store(Arc::new(settings));
        });
    }

    /// Replaces the protocols offered by ALPN (as
    /// [`TlsBuilder::alpn_protocols`]), for the connects this connector and
    /// its clones start from now on. Open connections keep the protocol
    /// they agreed on; see [`retire_existing`](Self::retire_existing).
    ///
    /// ```
    /// use leasehold::tls::TlsConnector;
    ///
    /// let connector = TlsConnector::builder()
    ///     .alpn_protocols([&b"http/1.1"[..]])
    ///     .build()?;
    /// connector.set_alpn_protocols([&b"h2"[..], &b"http/1.1"[..]]);
    /// assert!(format!("{connector:?}").contains(r#"alpn: ["h2", "http/1.1"]"#));
    /// # Ok::<(), leasehold::rustls::Error>(())
    /// ```
    pub fn set_alpn_protocols<P: Into<Vec<u8>>>(&self, protocols: impl IntoIterator<Item = P>) {
        let alpn: Vec<Vec<u8>> = protocols.into_iter().map(Into::into).collect();
        let shared = &self.shared;
        shared.change(|generation| {
            let roots = shared.settings.load().roots.clone();
            let settings = shared.base.settings(roots, alpn, generation);
            shared.settings.store(Arc::new(settings));
        });
    }

    /// Replaces the certificate chain and key `identity` presents, for the
    /// connects this connector and its clones start from now on.
    ///
    /// The identity stays the same, so routes carrying it stay the same
    /// routes: their pooled connections go on serving them (they
    /// authenticated with the old certificate) unless
    /// [`retire_existing`](Self::retire_existing) closes them, and new
    /// connections present the new certificate. The identity's sessions
    /// are forgotten: a resumed session would carry the old
    /// certificate's authentication.
    ///
    /// ```no_run
    /// use leasehold::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    /// use leasehold::tls::{TlsConnector, TlsRoute};
    /// use leasehold::Pool;
    ///
    /// # fn load(_: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) { unimplemented!() }
    /// let connector = TlsConnector::new()?;
    /// let (chain, key) = load("client-2025");
    /// let identity = connector.client_identity(chain, key)?;
    /// let route = TlsRoute::resolve("api.internal:443")?.with_identity(identity.clone());
    /// let pool = Pool::builder(connector.clone())
    ///     .on_check_out(connector.refuse_retired())
    ///     .build()?;
    /// # let _ = pool.lease(&route)?;
    /// // Renewed: new connects present the new certificate, and no
    /// // request is served on a connection made with the old one.
    /// let (chain, key) = load("client-2026");
    /// connector.rotate_identity(&identity, chain, key)?;
    /// connector.retire_existing();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// The key cannot be read or does not match the certificate, or
    /// `identity` was made by another connector
    /// ([`rustls::Error::General`]); the identity then presents what it
    /// did before.
    pub fn rotate_identity(
        &self,
        identity: &ClientIdentity,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<(), rustls::Error> {
        let presented = identity
            .presented_by(self.shared.id)
            .ok_or_else(|| another_connectors(identity))?;
        let shared = &self.shared;
        // Built outside the lock: under roots or ALPN replaced meanwhile,
        // it is rebuilt by the first connect, as any identity is.
        let next = shared.base.presented(&shared.settings.load(), chain, key)?;
        shared.change(|_| presented.store(Arc::new(next)));
        Ok(())
    }

    /// Retires the connections opened under settings older than the
    /// current ones (of this connector and its clones: roots, ALPN, client
    /// identities, TCP settings): a pool closes each when it is given back
    /// instead of keeping it ([`Connector::has_broken`], counted in
    /// [`Health::broken`](crate::Health::broken)), and
    /// [`is_alive`](Connector::is_alive) finds it dead.
    ///
    /// Connections opened under the current settings are kept, and so are
    /// those of connects already under way with them.
    ///
    /// A retired connection idle in a pool is closed by the first lease
    /// that would take it only if the pool checks it at check-out: build the
    /// pool with `.on_check_out(connector.refuse_retired())` (see
    /// [`refuse_retired`](Self::refuse_retired)) or with
    /// [`validate_on_lease`](crate::Builder::validate_on_lease). Else it
    /// serves one more lease, then closes when given back (or at its idle
    /// timeout).
    ///
    /// ```
    /// use leasehold::tls::TlsConnector;
    ///
    /// let connector = TlsConnector::new()?;
    /// connector.set_alpn_protocols([&b"h2"[..]]);
    /// connector.retire_existing(); // connections that offered no ALPN go
    /// # Ok::<(), leasehold::rustls::Error>(())
    /// ```
    pub fn retire_existing(&self) {
        let shared = &self.shared;
        let generation = shared.generation.load(Ordering::Acquire);
        shared.retired_below.fetch_max(generation, Ordering::AcqRel);
        shared
            .tcp_retired_below
            .fetch_max(self.tcp.generation(), Ordering::AcqRel);
    }

    /// Whether `conn` was opened under settings that
    /// [`retire_existing`](Self::retire_existing) retired.
    pub fn is_retired(&self, conn: &TlsStream) -> bool {
        let opened = conn.opened_under();
        opened.tls < self.shared.retired_below.load(Ordering::Acquire)
            || opened.tcp < self.shared.tcp_retired_below.load(Ordering::Acquire)
    }

    /// A check-out hook ([`Builder::on_check_out`](crate::Builder::on_check_out))
    /// that refuses retired connections, so that no lease gets one: the
    /// pool closes it and the lease takes another connection. It costs two
    /// atomic loads a lease.
    ///
    /// ```
    /// use leasehold::tls::TlsConnector;
    /// use leasehold::Pool;
    ///
    /// let connector = TlsConnector::new()?;
    /// let pool = Pool::builder(connector.clone())
    ///     .on_check_out(connector.refuse_retired())
    ///     .build()?;
    /// # drop(pool);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn refuse_retired(
        &self,
    ) -> impl Fn(&mut TlsStream) -> io::Result<()> + Send + Sync + 'static {
        let connector = self.clone();
        move |conn| {
            if connector.is_retired(conn) {
                Err(io::Error::other(
                    "opened under connector settings since retired",
                ))
            } else {
                Ok(())
            }
        }
    }

    /// The configuration a connect to `route` uses under `settings`.
    fn config(&self, route: &TlsRoute, settings: &TlsSettings) -> io::Result<Arc<ClientConfig>> {
        let Some(identity) = route.identity() else {
            return Ok(settings.anonymous.clone());
        };
        let presented = identity.presented_by(self.shared.id).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, another_connectors(identity))
        })?;
        let current = presented.load();
        if current.built_with == settings.generation {
            return Ok(current.config.clone());
        }
        // Built under older roots or ALPN: rebuilt once, by whichever
        // connect gets here first.
        let rebuilt = self
            .shared
            .base
            .presented(settings, current.chain.clone(), current.key.clone_key())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let config = rebuilt.config.clone();
        // Only over what was read: a rotation since then stays.
        presented.compare_and_swap(&current, Arc::new(rebuilt));
        Ok(config)
    }
}

/// The error of an identity used with a connector that did not make it.
fn another_connectors(identity: &ClientIdentity) -> rustls::Error {
    rustls::Error::General(format!("{identity:?} was made by another TlsConnector"))
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = self.shared.settings.load();
        f.debug_struct("TlsConnector")
            .field("tcp", &self.tcp)
            .field("roots", &settings.roots.len())
            .field(
                "alpn",
                &settings
                    .alpn
                    .iter()
                    .map(|p| String::from_utf8_lossy(p))
                    .collect::<Vec<_>>(),
            )
            .field("session_cache", &self.shared.base.session_cache)
            .field(
                "generation",
                &self.shared.generation.load(Ordering::Relaxed),
            )
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
    /// each TLS connection (default [`TcpConnector::new`]). The connector
    /// shares them with `tcp` and its clones: their `set_*` methods change
    /// them for it too, as those of [`TlsConnector::tcp`] do.
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
        let provider = self.provider.unwrap_or_else(default_provider);
        let versions =
            ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
        let base = ConfigBase {
            versions,
            session_cache: self.session_cache,
        };
        let settings = base.settings(Arc::new(roots), self.alpn, 0);
        let shared = TlsShared {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            base,
            settings: ArcSwap::from_pointee(settings),
            generation: AtomicU64::new(0),
            retired_below: AtomicU64::new(0),
            tcp_retired_below: AtomicU64::new(0),
            changing: Mutex::new(()),
        };
        Ok(TlsConnector {
            tcp: self.tcp,
            shared: Arc::new(shared),
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
        // The generation first: the settings read next are as new at least.
        let generation = self.shared.generation.load(Ordering::Acquire);
        let config = self.config(route, &self.shared.settings.load())?;
        let tls = ClientConnection::new(config, route.server_name().clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tcp = self.tcp.start(route.addr())?;
        let opened_under = SettingsGeneration {
            tls: generation,
            tcp: tcp.generation(),
        };
        Ok(Progress::Pending(TlsHandshake::new(tcp, tls, opened_under)))
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

    /// Broken when it is retired (see [`TlsConnector::retire_existing`]),
    /// decrypted bytes were left unread (a response half read), the server
    /// sent `close_notify`, or what arrived does not decrypt; it reads
    /// nothing from the socket.
    fn has_broken(&self, conn: &mut TlsStream) -> bool {
        self.is_retired(conn) || conn.has_broken()
    }

    /// Dead when it is retired; else decrypts what arrived without
    /// blocking: alive unless the server closed it, it failed, or
    /// application data is waiting.
    fn is_alive(&self, conn: &mut TlsStream) -> bool {
        !self.is_retired(conn) && conn.liveness().is_alive()
    }
}
