//! [`RedisConnector`]: the leasehold connector of Redis connections. It
//! opens the route's transport (TCP, or TLS for `rediss://`), runs the
//! opening exchange (`AUTH`/`HELLO`/`SELECT`) as a leasehold set-up step on
//! the pool's event loop, and lends out [`RedisConnection`]s. Closing,
//! idle watching and the liveness check are the transport's; the check at
//! each return adds the connection's own state (see
//! [`RedisConnection`]).

use crate::connection::RedisConnection;
use crate::route::RedisRoute;
use crate::setup::RedisSetup;
use crate::transport::{TransportConnector, TransportHandshake};
#[cfg(feature = "tls")]
use leasehold::tls::TlsConnector;
use leasehold::{Connector, Handshake, Progress, SetupHandshake, TcpConnector, Watched, WithSetup};
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io;

/// Opens Redis connections for a leasehold [`Pool`](leasehold::Pool),
/// whose routes are [`RedisRoute`]s.
///
/// A connect is a non-blocking TCP connect, the TLS handshake for a
/// `rediss://` route, then `AUTH` (with the route's user and password),
/// `HELLO 3` (for RESP3) and `SELECT` (for a database other than 0), sent
/// together: all of it on the pool's event loop, under the pool's connect
/// timeout. A server that refuses them fails the connect at once, and the
/// waiting requests get the reason: a wrong password is an error of kind
/// `PermissionDenied` naming `WRONGPASS`, a database the server does not
/// have one of kind `InvalidInput`.
///
/// # Examples
/// ```no_run
/// use leasehold::Pool;
/// use leasehold_redis::{RedisConnector, RedisRoute};
///
/// let route = RedisRoute::parse("redis://127.0.0.1:6379/0")?;
/// let pool = Pool::builder(RedisConnector::new()).max_per_route(16).build()?;
/// let mut conn = pool.lease(&route)?;
/// let pong: String = redis::cmd("PING").query(&mut *conn)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisConnector {
    inner: WithSetup<TransportConnector, RedisSetup>,
}

impl RedisConnector {
    /// A connector with leasehold's default TCP settings (`TCP_NODELAY`, no
    /// socket timeouts) and, for `rediss://` routes, its default TLS
    /// settings (the Mozilla roots), made on the first TLS connect.
    pub fn new() -> Self {
        Self::from_transports(TransportConnector::default())
    }

    fn from_transports(transports: TransportConnector) -> Self {
        Self {
            inner: transports.with_setup(RedisSetup),
        }
    }

    fn transports(&self) -> TransportConnector {
        self.inner.get_ref().clone()
    }

    /// The TCP settings (keepalive, socket read and write timeouts…) of
    /// new connections; for `rediss://` routes too unless a TLS connector
    /// is given with [`tls`](Self::tls), which has its own.
    ///
    /// A socket read timeout bounds each blocking call's wait for a reply
    /// (the call fails with `TimedOut` and the connection is closed when
    /// given back); async calls are bounded by the caller, e.g. with
    /// `tokio::time::timeout`.
    #[must_use]
    pub fn tcp(self, tcp: TcpConnector) -> Self {
        let mut transports = self.transports();
        transports.tcp = tcp;
        #[cfg(feature = "tls")]
        if let crate::transport::TlsChoice::Lazy(_) = transports.tls {
            // The default TLS connector takes the new TCP settings.
            transports.tls = crate::transport::TlsChoice::default();
        }
        Self::from_transports(transports)
    }

    /// The TLS connector for `rediss://` routes: trust anchors (a private
    /// CA), crypto provider, client identities; see [`leasehold::tls`].
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(self, tls: TlsConnector) -> Self {
        let mut transports = self.transports();
        transports.tls = crate::transport::TlsChoice::Given(tls);
        Self::from_transports(transports)
    }
}

impl Default for RedisConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let transports = self.inner.get_ref();
        let mut debug = f.debug_struct("RedisConnector");
        debug.field("tcp", &transports.tcp);
        #[cfg(feature = "tls")]
        debug.field("tls", &transports.tls);
        debug.finish()
    }
}

impl Connector for RedisConnector {
    type Route = RedisRoute;
    type Conn = RedisConnection;
    type Handshake = RedisHandshake;

    /// Starts the transport's connect; the rest follows on the event loop.
    ///
    /// # Errors
    /// The connect failed at once, or a `rediss://` route's TLS settings
    /// could not be made.
    fn connect(&self, route: &RedisRoute) -> io::Result<Progress<RedisConnection, RedisHandshake>> {
        let db = route.db();
        Ok(match self.inner.connect(route)? {
            Progress::Ready(stream) => Progress::Ready(RedisConnection::new(stream, db)),
            Progress::Pending(inner) => Progress::Pending(RedisHandshake { inner, db }),
        })
    }

    /// The transport's graceful close (a FIN; `close_notify` first for TLS).
    fn close(&self, conn: RedisConnection) {
        self.inner.close(conn.into_stream());
    }

    fn abort(&self, conn: RedisConnection) {
        self.inner.abort(conn.into_stream());
    }

    /// The transport's watch: an idle connection the server closes, or
    /// that receives bytes, is evicted by the pool's event loop.
    fn watch(&self, conn: &RedisConnection) -> Option<Watched> {
        self.inner.watch(conn.stream())
    }

    /// Broken after an I/O error or an unreadable reply, with a request
    /// cut short or bytes left unread, or with session state a command
    /// left behind (see [`RedisConnection`]); for TLS, also when decrypted
    /// bytes wait or the server sent `close_notify`.
    fn has_broken(&self, conn: &mut RedisConnection) -> bool {
        conn.is_unfit() || self.inner.has_broken(conn.stream_mut())
    }

    /// The transport's check, without blocking: alive unless the server
    /// closed the connection or sent bytes nobody asked for.
    fn is_alive(&self, conn: &mut RedisConnection) -> bool {
        !conn.is_unfit() && self.inner.is_alive(conn.stream_mut())
    }
}

/// The connect of a [`RedisConnector`]: the transport's, then the opening
/// exchange; it hands over a [`RedisConnection`].
pub struct RedisHandshake {
    inner: SetupHandshake<TransportHandshake, RedisSetup, RedisRoute>,
    db: i64,
}

impl Source for RedisHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl Handshake for RedisHandshake {
    type Conn = RedisConnection;

    fn interest(&self) -> Interest {
        self.inner.interest()
    }

    fn stage(&self) -> &'static str {
        self.inner.stage()
    }

    fn advance(&mut self) -> io::Result<Option<RedisConnection>> {
        let db = self.db;
        Ok(self
            .inner
            .advance()?
            .map(|stream| RedisConnection::new(stream, db)))
    }
}

impl fmt::Debug for RedisHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisHandshake")
            .field("inner", &self.inner)
            .finish()
    }
}
