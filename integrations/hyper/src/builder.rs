//! Configuring a [`Client`]: the pool (any leasehold setting, and the
//! policy), the TCP and TLS connectors, hyper's HTTP/1 options and how long
//! host names stay resolved.

use crate::client::Client;
use crate::connection::ClientConnector;
use crate::endpoint::EndpointConnector;
use crate::resolve::Resolver;
use hyper::client::conn::http1;
use leasehold::tls::TlsConnector;
use leasehold::{Policy, Pool, Strict, TcpConnector};
use std::fmt;
use std::io;
use std::time::Duration;

/// The pool's builder, as [`ClientBuilder::pool`] hands it over.
pub type PoolBuilder<P = Strict> = leasehold::Builder<ClientConnector, P>;

/// How long a connection may sit idle in the pool before it is closed,
/// unless [`ClientBuilder::pool`] sets another `idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a host name's addresses are used before it is looked up again.
pub const DEFAULT_RESOLVE_TTL: Duration = Duration::from_secs(30);

/// The pool's setup step as [`ClientBuilder::pool`] composes it.
type ConfigurePool<P> = Box<dyn FnOnce(PoolBuilder) -> PoolBuilder<P> + Send>;

/// Configures a [`Client`]; every setting has a default.
///
/// | setting | default |
/// |---|---|
/// | [`pool`](Self::pool) | leasehold's defaults (`Strict`, 5 connections per host, 25 in all, 30 s acquire and 10 s connect timeouts), idle connections closed after [`DEFAULT_IDLE_TIMEOUT`] |
/// | [`tcp`](Self::tcp) | [`TcpConnector::new`] (`TCP_NODELAY` on) |
/// | [`tls`](Self::tls) | a [`TlsConnector`] with its secure defaults (Mozilla roots), offering `http/1.1` by ALPN |
/// | [`http1`](Self::http1) | hyper's defaults |
/// | [`resolve_ttl`](Self::resolve_ttl) | [`DEFAULT_RESOLVE_TTL`] |
///
/// ```
/// use leasehold::Lax;
/// use std::time::Duration;
///
/// let client = leasehold_hyper::Client::builder()
///     .pool(|pool| {
///         pool.max_per_route(32)
///             .max_total(128)
///             .acquire_timeout(Duration::from_secs(2))
///             .policy::<Lax>()
///     })
///     .http1(|http1| {
///         http1.title_case_headers(true);
///     })
///     .build()?;
/// # drop(client);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use]
pub struct ClientBuilder<P: Policy = Strict> {
    tcp: TcpConnector,
    tls: Option<TlsConnector>,
    pool: ConfigurePool<P>,
    http1: http1::Builder,
    resolve_ttl: Duration,
}

impl ClientBuilder {
    pub(crate) fn new() -> Self {
        Self {
            tcp: TcpConnector::new(),
            tls: None,
            pool: Box::new(|pool| pool),
            http1: http1::Builder::new(),
            resolve_ttl: DEFAULT_RESOLVE_TTL,
        }
    }
}

impl<P: Policy> ClientBuilder<P> {
    /// Configures the pool: `configure` gets the pool's builder, with the
    /// settings made so far, and returns it (any leasehold setting; a
    /// different policy with [`policy`](leasehold::Builder::policy)).
    /// Routes are [`Endpoint`](crate::Endpoint)s: one per server address,
    /// plain or TLS, so `max_per_route` caps the connections to one host
    /// (at one address).
    pub fn pool<Q: Policy>(
        self,
        configure: impl FnOnce(PoolBuilder<P>) -> PoolBuilder<Q> + Send + 'static,
    ) -> ClientBuilder<Q> {
        let before = self.pool;
        ClientBuilder {
            tcp: self.tcp,
            tls: self.tls,
            pool: Box::new(move |pool| configure(before(pool))),
            http1: self.http1,
            resolve_ttl: self.resolve_ttl,
        }
    }

    /// The settings of plain connections (timeouts, nodelay, keepalive).
    /// TLS connections take theirs from the [`tls`](Self::tls) connector.
    pub fn tcp(mut self, tcp: TcpConnector) -> Self {
        self.tcp = tcp;
        self
    }

    /// The connector of `https` connections: its trust anchors, client
    /// identities, ALPN (offer `http/1.1`, or nothing: this client speaks
    /// HTTP/1.1 only), TCP settings.
    pub fn tls(mut self, tls: TlsConnector) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Sets hyper's HTTP/1 options (header case, buffer sizes, lenient
    /// parsing…) on the builder every connection is made with.
    pub fn http1(mut self, configure: impl FnOnce(&mut http1::Builder)) -> Self {
        configure(&mut self.http1);
        self
    }

    /// How long a host name's addresses are reused before the name is
    /// looked up again; zero looks it up for every request. IP literals
    /// are never looked up.
    pub fn resolve_ttl(mut self, ttl: Duration) -> Self {
        self.resolve_ttl = ttl;
        self
    }

    /// Builds the client and starts its pool.
    ///
    /// # Errors
    /// An invalid pool setting (`InvalidInput`), the default TLS settings
    /// refused by the crypto provider, or the pool's threads not starting.
    pub fn build(self) -> io::Result<Client<P>> {
        let tls = match self.tls {
            Some(tls) => tls,
            None => TlsConnector::builder()
                .alpn_protocols([b"http/1.1".to_vec()])
                .build()
                .map_err(io::Error::other)?,
        };
        let connector = ClientConnector::new(EndpointConnector::new(self.tcp, tls), self.http1);
        let pool = Pool::builder(connector).idle_timeout(DEFAULT_IDLE_TIMEOUT);
        let pool = (self.pool)(pool).build()?;
        Ok(Client::from_parts(pool, Resolver::new(self.resolve_ttl)))
    }
}

impl<P: Policy> fmt::Debug for ClientBuilder<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("tcp", &self.tcp)
            .field("tls", &self.tls)
            .field("http1", &self.http1)
            .field("resolve_ttl", &self.resolve_ttl)
            .finish_non_exhaustive()
    }
}
