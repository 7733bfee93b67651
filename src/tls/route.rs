//! What a TLS connection is keyed by: the address it goes to, the name it
//! authenticates the server as, and the identity it authenticates the
//! client as.
//!
//! Two connections are interchangeable only when all three agree: a
//! connection verified for host A must never serve a request for host B at
//! the same address, and one opened with client certificate X never serves
//! a request that asked for Y, or for none.

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, InvalidDnsNameError, PrivateKeyDer, ServerName};
use rustls::ClientConfig;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// A TLS route: a server address, the host name its certificate must be
/// valid for (also sent as SNI), and the client identity to present, if
/// any.
///
/// Its `Debug` text, which errors and logs show, reads
/// `tls://name@address` (plus `as client #n` with an identity).
///
/// # Examples
/// ```
/// use leasehold::tls::TlsRoute;
///
/// let route = TlsRoute::new("127.0.0.1:8443".parse()?, "api.internal")?;
/// assert_eq!(format!("{route:?}"), "tls://api.internal@127.0.0.1:8443");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsRoute {
    addr: SocketAddr,
    server_name: ServerName<'static>,
    identity: Option<ClientIdentity>,
}

impl TlsRoute {
    /// A route to `addr` for the server named `server_name` (a DNS name,
    /// or an IP address literal for a certificate issued to the address),
    /// with no client certificate.
    ///
    /// # Errors
    /// `server_name` is neither a valid DNS name nor an IP address.
    pub fn new(addr: SocketAddr, server_name: &str) -> Result<Self, InvalidDnsNameError> {
        Ok(Self {
            addr,
            server_name: ServerName::try_from(server_name.to_owned())?,
            identity: None,
        })
    }

    /// Resolves `"host:port"` (see [`resolve`](crate::resolve)) and names
    /// the server `host`. This **blocks** while the name is looked up.
    ///
    /// # Errors
    /// The string is not `host:port`, the lookup failed, or `host` is not
    /// a valid server name (`InvalidInput`).
    pub fn resolve(host_port: &str) -> io::Result<Self> {
        let addr = crate::resolve(host_port)?;
        let host = host_port
            .rsplit_once(':')
            .map(|(host, _)| host.trim_start_matches('[').trim_end_matches(']'))
            .unwrap_or(host_port);
        Self::new(addr, host).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }

    /// The same route, presenting `identity` (made by
    /// [`TlsConnector::client_identity`](super::TlsConnector::client_identity))
    /// to servers that ask for a client certificate.
    pub fn with_identity(mut self, identity: ClientIdentity) -> Self {
        self.identity = Some(identity);
        self
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The name the server's certificate is checked against, sent as SNI.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// The client identity presented, if any.
    pub fn identity(&self) -> Option<&ClientIdentity> {
        self.identity.as_ref()
    }
}

/// `"host:port".parse()`, as [`TlsRoute::resolve`]: it **blocks** while
/// the name is looked up.
impl std::str::FromStr for TlsRoute {
    type Err = io::Error;

    fn from_str(host_port: &str) -> io::Result<Self> {
        Self::resolve(host_port)
    }
}

/// `TlsRoute::try_from("host:port")`, as [`TlsRoute::resolve`]: it
/// **blocks** while the name is looked up.
impl TryFrom<&str> for TlsRoute {
    type Error = io::Error;

    fn try_from(host_port: &str) -> io::Result<Self> {
        Self::resolve(host_port)
    }
}

impl fmt::Debug for TlsRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls://{}@{}", self.server_name.to_str(), self.addr)?;
        if let Some(identity) = &self.identity {
            write!(f, " as client #{}", identity.inner.id)?;
        }
        Ok(())
    }
}

/// A client certificate and its key, as one [`TlsConnector`](super::TlsConnector)
/// presents them; made by
/// [`TlsConnector::client_identity`](super::TlsConnector::client_identity).
///
/// Identities are compared by who made them, not by their bytes: clones of
/// one identity share connections; two identities made from the same
/// certificate do not (nor do their TLS sessions), which errs on the side
/// of isolation.
///
/// The certificate an identity presents can be replaced
/// ([`TlsConnector::rotate_identity`](super::TlsConnector::rotate_identity)):
/// the identity stays the same, and so do the routes that carry it.
#[derive(Clone)]
pub struct ClientIdentity {
    inner: Arc<Identity>,
}

struct Identity {
    /// Unique among identities (for `Debug` and hashing).
    id: u64,
    /// The connector that made it.
    connector: u64,
    /// What it presents now, replaced whole by a rotation.
    presented: ArcSwap<Presented>,
}

/// A certificate chain and key, and the connector's configuration that
/// presents them (with a session cache of its own).
pub(super) struct Presented {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
    pub(super) config: Arc<ClientConfig>,
    /// The generation of the connector's settings (roots, ALPN) `config`
    /// was built with.
    pub(super) built_with: u64,
}

impl ClientIdentity {
    pub(super) fn new(connector: u64, presented: Presented) -> Self {
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            inner: Arc::new(Identity {
                id: IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                connector,
                presented: ArcSwap::from_pointee(presented),
            }),
        }
    }

    /// What the identity presents, if `connector` made it.
    pub(super) fn presented_by(&self, connector: u64) -> Option<&ArcSwap<Presented>> {
        (self.inner.connector == connector).then_some(&self.inner.presented)
    }
}

impl PartialEq for ClientIdentity {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for ClientIdentity {}

impl Hash for ClientIdentity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientIdentity(#{})", self.inner.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_names_the_server_by_its_host() {
        let v6 = TlsRoute::resolve("[::1]:8443").unwrap();
        assert_eq!(v6.server_name().to_str(), "::1");
        assert_eq!(v6.addr(), "[::1]:8443".parse().unwrap());
        let v4 = TlsRoute::resolve("127.0.0.1:443").unwrap();
        assert_eq!(format!("{v4:?}"), "tls://127.0.0.1@127.0.0.1:443");
        assert!(TlsRoute::resolve("no-port").is_err());
    }

    #[test]
    fn routes_parse_from_host_and_port() {
        let parsed: TlsRoute = "localhost:8443".parse().unwrap();
        let tried = TlsRoute::try_from("localhost:8443").unwrap();
        assert_eq!(parsed, tried);
        assert_eq!(parsed.addr.port(), 8443);
        assert_eq!(
            format!("{parsed:?}"),
            format!("tls://localhost@{}", parsed.addr)
        );
        assert!("no port".parse::<TlsRoute>().is_err());
    }

    #[test]
    fn routes_differ_by_name_and_identity() {
        let addr: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let a = TlsRoute::new(addr, "a.test").unwrap();
        let b = TlsRoute::new(addr, "b.test").unwrap();
        assert_ne!(a, b);
        let config = |seed: u64| {
            let provider = crate::tls::ring_provider();
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
            let presented = Presented {
                chain: Vec::new(),
                key: PrivateKeyDer::Pkcs8(Vec::new().into()),
                config: Arc::new(config),
                built_with: 0,
            };
            ClientIdentity::new(seed, presented)
        };
        let (x, y) = (config(1), config(1));
        assert_ne!(
            a.clone().with_identity(x.clone()),
            a.clone().with_identity(y)
        );
        assert_eq!(
            a.clone().with_identity(x.clone()),
            a.clone().with_identity(x.clone())
        );
        assert_ne!(a.clone().with_identity(x.clone()), a);
        assert!(x.presented_by(1).is_some());
        assert!(x.presented_by(2).is_none());
        let shown = format!("{:?}", a.with_identity(x));
        assert!(
            shown.starts_with("tls://a.test@127.0.0.1:443 as client #"),
            "{shown}"
        );
    }
}
