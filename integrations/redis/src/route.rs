//! Where a pooled Redis connection goes and how it opens: a [`RedisRoute`]
//! is a parsed `redis://` or `rediss://` URL, with its host name resolved
//! once, so that connects never wait on DNS.
//!
//! A route carries the credentials, the database and the protocol as well
//! as the address: the pool keys connections by route, so a connection
//! authenticated as one user, or switched to one database, is only ever
//! lent to requests for that same route, and one pool can serve several
//! servers, users and databases side by side.

#[cfg(feature = "tls")]
use leasehold::tls::TlsRoute;
use percent_encoding::percent_decode_str;
use redis::{ErrorKind, ProtocolVersion, RedisError, RedisResult};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

/// The port of a URL that names none.
pub const DEFAULT_PORT: u16 = 6379;

/// A Redis server, and how to open a connection to it: the pool's route
/// for [`RedisConnector`](crate::RedisConnector).
///
/// Parsed from a URL (see [`parse`](Self::parse)); the password never
/// shows in its `Debug` or `Display` text, which the pool's errors quote.
///
/// # Examples
/// ```
/// use leasehold_redis::RedisRoute;
///
/// let route = RedisRoute::parse("redis://app:s3cret@127.0.0.1:6380/2")?;
/// assert_eq!(route.addr().port(), 6380);
/// assert_eq!(route.db(), 2);
/// assert_eq!(route.username(), Some("app"));
/// assert_eq!(route.to_string(), "redis://app:***@127.0.0.1:6380/2");
/// # Ok::<(), redis::RedisError>(())
/// ```
///
/// Cloning one is cheap (a reference count), and so is hashing it (a
/// fingerprint taken when it is made), which the pool does at each lease.
#[derive(Clone)]
pub struct RedisRoute {
    parts: Arc<RouteParts>,
    /// A hash of `parts`.
    fingerprint: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct RouteParts {
    host: String,
    transport: RouteTransport,
    db: i64,
    username: Option<String>,
    password: Option<String>,
    /// RESP3 (`HELLO 3`) or RESP2; `ProtocolVersion` has no `Hash`.
    resp3: bool,
}

/// How the bytes travel.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub(crate) enum RouteTransport {
    Tcp(SocketAddr),
    #[cfg(feature = "tls")]
    Tls(TlsRoute),
}

impl RedisRoute {
    /// Parses a URL of the form
    /// `redis://[[user]:password@]host[:port][/db][?protocol=resp3]`, or
    /// `rediss://…` for TLS (the `tls` feature), `valkey://` and
    /// `valkeys://` alike; `host` is a name, an IPv4 address or a bracketed
    /// IPv6 one, the port defaults to 6379 and the database to 0. User
    /// name and password are percent-decoded. `protocol=resp3` (or `3`)
    /// opens each connection with `HELLO 3`; other query parameters are
    /// ignored, as the redis crate ignores those it does not know.
    ///
    /// This **blocks** while a host name is resolved (DNS, `/etc/hosts`):
    /// call it when the configuration is loaded, not on a request's path.
    /// The first address the resolver gives is the route's; to follow
    /// address changes, parse again and lease from the new route.
    ///
    /// # Errors
    /// [`InvalidClientConfig`](ErrorKind::InvalidClientConfig) for a URL
    /// that is not one of these, a Unix socket URL (leasehold pools TCP
    /// connections), `rediss://` without the `tls` feature or with
    /// `#insecure` (certificates are always verified); an I/O error when
    /// the host name does not resolve.
    pub fn parse(url: &str) -> RedisResult<Self> {
        let parsed = url::Url::parse(url).map_err(|e| invalid("not a URL", e.to_string()))?;
        let tls = match parsed.scheme() {
            "redis" | "valkey" => false,
            "rediss" | "valkeys" => true,
            "unix" | "redis+unix" | "valkey+unix" => {
                return Err(invalid(
                    "Unix sockets are not supported: leasehold pools TCP connections",
                    url_without_password(&parsed),
                ))
            }
            other => {
                return Err(invalid(
                    "not a redis:// or rediss:// URL",
                    format!("scheme {other:?}"),
                ))
            }
        };
        let port = parsed.port().unwrap_or(DEFAULT_PORT);
        let (host, ip) = match parsed.host() {
            Some(url::Host::Domain(name)) => (name.to_owned(), None),
            Some(url::Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
            Some(url::Host::Ipv6(ip)) => (ip.to_string(), Some(IpAddr::V6(ip))),
            None => {
                return Err(invalid(
                    "the URL names no host",
                    url_without_password(&parsed),
                ))
            }
        };
        let addr = match ip {
            Some(ip) => SocketAddr::new(ip, port),
            None => leasehold::resolve(&format!("{host}:{port}"))?,
        };
        if let Some(fragment) = parsed.fragment() {
            return Err(invalid(
                "URL fragments are not supported (TLS certificates are always verified)",
                format!("#{fragment}"),
            ));
        }
        let transport = if tls {
            tls_transport(addr, &host)?
        } else {
            RouteTransport::Tcp(addr)
        };
        let db = match parsed.path().trim_matches('/') {
            "" => 0,
            db => db
                .parse::<i64>()
                .map_err(|_| invalid("the database is not a number", db.to_owned()))?,
        };
        let username = match parsed.username() {
            "" => None,
            name => Some(decode(name, "user name")?),
        };
        let password = parsed
            .password()
            .map(|password| decode(password, "password"))
            .transpose()?;
        let mut protocol = ProtocolVersion::RESP2;
        for (key, value) in parsed.query_pairs() {
            if key == "protocol" {
                protocol = match &*value {
                    "resp3" | "3" => ProtocolVersion::RESP3,
                    "resp2" | "2" => ProtocolVersion::RESP2,
                    other => {
                        return Err(invalid("protocol must be resp2 or resp3", other.to_owned()))
                    }
                };
            }
        }
        Ok(Self::new(RouteParts {
            host,
            transport,
            db,
            username,
            password,
            resp3: protocol == ProtocolVersion::RESP3,
        }))
    }

    fn new(parts: RouteParts) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        parts.hash(&mut hasher);
        Self {
            fingerprint: hasher.finish(),
            parts: Arc::new(parts),
        }
    }

    /// The same route with `change` made to its parts.
    fn changed(&self, change: impl FnOnce(&mut RouteParts)) -> Self {
        let mut parts = RouteParts::clone(&self.parts);
        change(&mut parts);
        Self::new(parts)
    }

    /// The same server and credentials, with database `db`.
    #[must_use]
    pub fn with_db(self, db: i64) -> Self {
        self.changed(|parts| parts.db = db)
    }

    /// The same server and database, with this user name (`None`: the
    /// default user) and password (`None`: no `AUTH`).
    #[must_use]
    pub fn with_credentials(self, username: Option<&str>, password: Option<&str>) -> Self {
        self.changed(|parts| {
            parts.username = username.map(str::to_owned);
            parts.password = password.map(str::to_owned);
        })
    }

    /// The same route, opened with `HELLO 3` (RESP3) or without (RESP2).
    #[must_use]
    pub fn with_protocol(self, protocol: ProtocolVersion) -> Self {
        self.changed(|parts| parts.resp3 = protocol == ProtocolVersion::RESP3)
    }

    /// The server's socket address (the resolved host).
    pub fn addr(&self) -> SocketAddr {
        match &self.parts.transport {
            RouteTransport::Tcp(addr) => *addr,
            #[cfg(feature = "tls")]
            RouteTransport::Tls(route) => route.addr(),
        }
    }

    /// The host as the URL named it.
    pub fn host(&self) -> &str {
        &self.parts.host
    }

    /// Whether connections use TLS (`rediss://`).
    pub fn is_tls(&self) -> bool {
        !matches!(self.parts.transport, RouteTransport::Tcp(_))
    }

    /// The TLS route (address, server name, client identity) of a
    /// `rediss://` route.
    #[cfg(feature = "tls")]
    pub fn tls_route(&self) -> Option<&TlsRoute> {
        match &self.parts.transport {
            RouteTransport::Tls(route) => Some(route),
            RouteTransport::Tcp(_) => None,
        }
    }

    /// The same `rediss://` route with a TLS client identity for servers
    /// that ask for a client certificate (see
    /// [`TlsConnector::client_identity`](leasehold::tls::TlsConnector::client_identity));
    /// a plain `redis://` route is returned unchanged.
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls_identity(self, identity: leasehold::tls::ClientIdentity) -> Self {
        self.changed(|parts| {
            if let RouteTransport::Tls(route) = &parts.transport {
                parts.transport = RouteTransport::Tls(route.clone().with_identity(identity));
            }
        })
    }

    /// The database each connection selects.
    pub fn db(&self) -> i64 {
        self.parts.db
    }

    /// The user connections authenticate as, if not the default user.
    pub fn username(&self) -> Option<&str> {
        self.parts.username.as_deref()
    }

    /// Whether connections authenticate (`AUTH`) with a password.
    pub fn has_password(&self) -> bool {
        self.parts.password.is_some()
    }

    pub(crate) fn password(&self) -> Option<&str> {
        self.parts.password.as_deref()
    }

    /// The protocol connections speak.
    pub fn protocol(&self) -> ProtocolVersion {
        if self.parts.resp3 {
            ProtocolVersion::RESP3
        } else {
            ProtocolVersion::RESP2
        }
    }

    pub(crate) fn transport(&self) -> &RouteTransport {
        &self.parts.transport
    }
}

#[cfg(feature = "tls")]
fn tls_transport(addr: SocketAddr, host: &str) -> RedisResult<RouteTransport> {
    let route = TlsRoute::new(addr, host)
        .map_err(|e| invalid("not a TLS server name", format!("{host:?}: {e}")))?;
    Ok(RouteTransport::Tls(route))
}

#[cfg(not(feature = "tls"))]
fn tls_transport(_: SocketAddr, _: &str) -> RedisResult<RouteTransport> {
    Err(RedisError::from((
        ErrorKind::InvalidClientConfig,
        "rediss:// needs leasehold-redis's `tls` feature",
    )))
}

fn decode(part: &str, what: &str) -> RedisResult<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| invalid("a URL part is not UTF-8 once decoded", what.to_owned()))
}

fn invalid(what: &'static str, detail: String) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, what, detail))
}

fn url_without_password(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

impl FromStr for RedisRoute {
    type Err = RedisError;

    /// See [`RedisRoute::parse`] (which blocks to resolve a host name).
    fn from_str(url: &str) -> RedisResult<Self> {
        Self::parse(url)
    }
}

impl TryFrom<&str> for RedisRoute {
    type Error = RedisError;

    /// See [`RedisRoute::parse`] (which blocks to resolve a host name).
    fn try_from(url: &str) -> RedisResult<Self> {
        Self::parse(url)
    }
}

impl PartialEq for RedisRoute {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.parts, &other.parts)
            || (self.fingerprint == other.fingerprint && self.parts == other.parts)
    }
}

impl Eq for RedisRoute {}

impl Hash for RedisRoute {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.fingerprint);
    }
}

/// The URL with the password masked and the resolved address in place of
/// a host name: `redis://user:***@10.0.0.5:6379/0`.
impl fmt::Display for RedisRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.is_tls() { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (&self.parts.username, &self.parts.password) {
            (None, None) => {}
            (user, password) => {
                f.write_str(user.as_deref().unwrap_or(""))?;
                if password.is_some() {
                    f.write_str(":***")?;
                }
                f.write_str("@")?;
            }
        }
        let addr = self.addr();
        if self.parts.host.parse::<IpAddr>().is_ok() {
            write!(f, "{addr}")?;
        } else {
            write!(f, "{}({addr})", self.parts.host)?;
        }
        write!(f, "/{}", self.parts.db)?;
        if self.parts.resp3 {
            f.write_str("?protocol=resp3")?;
        }
        Ok(())
    }
}

impl fmt::Debug for RedisRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisRoute({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses_and_prints_without_its_password() {
        let route = RedisRoute::parse("redis://us%40er:p%3Ass@127.0.0.1:7000/3").unwrap();
        assert_eq!(route.addr(), "127.0.0.1:7000".parse().unwrap());
        assert_eq!(route.username(), Some("us@er"));
        assert_eq!(route.password(), Some("p:ss"));
        assert_eq!(route.db(), 3);
        assert!(!route.is_tls());
        assert_eq!(route.to_string(), "redis://us@er:***@127.0.0.1:7000/3");
        assert!(!format!("{route:?}").contains("p:ss"));
    }

    #[test]
    fn defaults_and_a_password_without_a_user() {
        let route = RedisRoute::parse("redis://:secret@[::1]").unwrap();
        assert_eq!(route.addr(), "[::1]:6379".parse().unwrap());
        assert_eq!((route.username(), route.password()), (None, Some("secret")));
        assert_eq!(route.db(), 0);
        assert_eq!(route.protocol(), ProtocolVersion::RESP2);
        assert_eq!(route.to_string(), "redis://:***@[::1]:6379/0");
    }

    #[test]
    fn host_names_resolve_once_and_show_beside_the_address() {
        let route = RedisRoute::parse("redis://localhost:6390?protocol=resp3").unwrap();
        assert!(route.addr().ip().is_loopback());
        assert_eq!(route.protocol(), ProtocolVersion::RESP3);
        assert!(route.to_string().starts_with("redis://localhost("));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn rediss_routes_carry_the_server_name() {
        let route = RedisRoute::parse("rediss://127.0.0.1:6380").unwrap();
        assert!(route.is_tls());
        assert_eq!(route.tls_route().unwrap().addr().port(), 6380);
        assert!(RedisRoute::parse("rediss://127.0.0.1:6380/#insecure").is_err());
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, says) in [
            ("http://127.0.0.1", "scheme"),
            ("redis+unix:///tmp/redis.sock", "Unix"),
            ("redis://127.0.0.1/db", "database"),
            ("redis://127.0.0.1/?protocol=resp9", "resp9"),
            ("127.0.0.1:6379", "URL"),
        ] {
            let err = RedisRoute::parse(url).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidClientConfig, "{url}");
            assert!(err.to_string().contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn routes_differ_by_database_and_credentials() {
        let base = RedisRoute::parse("redis://127.0.0.1:6379").unwrap();
        assert_ne!(base, base.clone().with_db(1));
        assert_ne!(base, base.clone().with_credentials(None, Some("x")));
        assert_eq!(base, base.clone().with_db(0));
    }
}
