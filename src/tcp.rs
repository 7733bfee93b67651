//! Plain TCP connections: a [`Connector`] whose routes are socket addresses
//! and whose connections are blocking [`std::net::TcpStream`]s.
//!
//! # How it works
//!
//! [`TcpConnector::connect`] starts a non-blocking connect and hands back a
//! [`TcpHandshake`], which waits for the socket to become writable. When it
//! does, the handshake asks the kernel how the connect went (`SO_ERROR`,
//! then `getpeername`); once connected it puts the socket back into
//! blocking mode, applies the connector's settings and hands over a
//! `std::net::TcpStream` on a *duplicate* descriptor. The handshake keeps
//! the descriptor it registered until it is dropped, so that the driver's
//! `deregister` takes exactly that registration out of the poller (see
//! [`Handshake`]'s contract). Giving the caller the registered descriptor
//! itself would leave the handshake nothing to deregister with but a bare
//! number, which names another file once the stream is closed.
//!
//! An idle connection's health is read with [`probe`]: one non-blocking
//! `recv` with `MSG_PEEK`, which tells a quiet socket from one the peer has
//! closed, reset or written to, without consuming anything.

use crate::connector::probe;
use crate::connector::{Connector, Handshake, Progress, Watched};
use arc_swap::ArcSwap;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use socket2::{SockRef, TcpKeepalive};
use std::fmt;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

/// Resolves `"host:port"` (or `"[v6]:port"`, or a literal address) to the
/// first socket address the system resolver gives, for use as a
/// [`TcpConnector`] route.
///
/// This **blocks** while the name is looked up (DNS, `/etc/hosts`…): call
/// it off any event loop, e.g. when the configuration is loaded, and
/// re-resolve on your own schedule if addresses change.
///
/// # Errors
/// The string is not `host:port`, the lookup failed, or it found no
/// address (`InvalidInput`).
///
/// # Examples
/// ```
/// let addr = leasehold::resolve("127.0.0.1:5432")?;
/// assert_eq!(addr.port(), 5432);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn resolve(host_port: &str) -> io::Result<SocketAddr> {
    host_port.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{host_port:?} resolved to no address"),
        )
    })
}

/// Opens TCP connections to socket addresses without blocking the thread
/// that drives the connects.
///
/// Routes are resolved [`SocketAddr`]s, not host names: name resolution
/// blocks, so it is the caller's job, done off the event loop (see
/// [`resolve`]). Each route is one address; a host with several addresses
/// is several routes, or one chosen by the caller.
///
/// The pool lends out a plain, **blocking** [`std::net::TcpStream`] with
/// these settings applied:
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`nodelay`](Self::nodelay) | `true` | `TCP_NODELAY`: send small writes at once (no Nagle delay) |
/// | [`keepalive`](Self::keepalive) | `None` | `SO_KEEPALIVE` with this idle time before the first probe; `None` leaves it off |
/// | [`read_timeout`](Self::read_timeout) | `None` | `SO_RCVTIMEO`; `None` blocks without limit |
/// | [`write_timeout`](Self::write_timeout) | `None` | `SO_SNDTIMEO`; `None` blocks without limit |
///
/// A connection the pool is done with is closed gracefully (a FIN is sent
/// first, see [`Connector::close`]); while idle it is watched through a
/// duplicate of its socket, and [`is_alive`](Connector::is_alive) peeks at
/// it without blocking.
///
/// # Changing the settings of a running pool
///
/// Clones of a connector share its settings, and the `set_*` methods
/// ([`set_nodelay`](Self::set_nodelay), [`set_keepalive`](Self::set_keepalive),
/// [`set_read_timeout`](Self::set_read_timeout),
/// [`set_write_timeout`](Self::set_write_timeout)) replace them for every
/// clone at once, the one a pool holds included: connections opened from
/// then on get the new settings; those already open keep theirs. Connects
/// read the settings without a lock. The builder-style methods
/// ([`nodelay`](Self::nodelay)…) make a connector of its own instead,
/// which shares nothing with the clones of the one it was made from.
///
/// # Examples
/// ```no_run
/// use std::io::Write;
/// use std::time::Duration;
/// use leasehold::{Pool, Strict, TcpConnector};
///
/// let connector = TcpConnector::new()
///     .keepalive(Some(Duration::from_secs(60)))
///     .read_timeout(Some(Duration::from_secs(5)));
/// let pool: Pool<TcpConnector, Strict> = Pool::builder(connector).build()?;
/// let route = leasehold::resolve("db.internal:5432")?;
/// let mut lease = pool.lease(&route)?;
/// lease.write_all(b"ping\n")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// ```
/// use std::time::Duration;
/// use leasehold::{Pool, TcpConnector};
///
/// let connector = TcpConnector::new();
/// let pool = Pool::builder(connector.clone()).build()?;
/// // Later, while the pool runs: its connects from now on use 2 s.
/// connector.set_read_timeout(Some(Duration::from_secs(2)));
/// # drop(pool);
/// # Ok::<(), leasehold::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct TcpConnector {
    /// Shared by clones, replaced whole by the setters.
    settings: Arc<ArcSwap<TcpSettings>>,
}

/// What a [`TcpConnector`] applies to the sockets it opens.
#[derive(Clone, Debug)]
pub(crate) struct TcpSettings {
    nodelay: bool,
    keepalive: Option<Duration>,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    /// How many times the settings were replaced on a shared connector;
    /// a connection opened under a lower number has older settings.
    generation: u64,
}

impl TcpSettings {
    /// The settings themselves, without the generation.
    fn values(&self) -> (bool, Option<Duration>, Option<Duration>, Option<Duration>) {
        (
            self.nodelay,
            self.keepalive,
            self.read_timeout,
            self.write_timeout,
        )
    }
}

/// Equal when the settings in force now are (whatever their generation).
impl PartialEq for TcpConnector {
    fn eq(&self, other: &Self) -> bool {
        self.settings.load().values() == other.settings.load().values()
    }
}

impl Eq for TcpConnector {}

impl fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = self.settings.load();
        f.debug_struct("TcpConnector")
            .field("nodelay", &settings.nodelay)
            .field("keepalive", &settings.keepalive)
            .field("read_timeout", &settings.read_timeout)
            .field("write_timeout", &settings.write_timeout)
            .field("generation", &settings.generation)
            .finish()
    }
}

impl Default for TcpConnector {
    fn default() -> Self {
        Self::new()
    }
}

/// The longest keepalive idle time Linux takes (`MAX_TCP_KEEPIDLE`).
const MAX_KEEPALIVE_IDLE_SECS: u64 = 32_767;

impl TcpConnector {
    /// A connector with the default settings (see the table above).
    pub fn new() -> Self {
        Self::with_settings(TcpSettings {
            nodelay: true,
            keepalive: None,
            read_timeout: None,
            write_timeout: None,
            generation: 0,
        })
    }

    fn with_settings(settings: TcpSettings) -> Self {
        TcpConnector {
            settings: Arc::new(ArcSwap::from_pointee(settings)),
        }
    }

    /// A connector of its own with the settings of this one, changed.
    fn changed(&self, change: impl FnOnce(&mut TcpSettings)) -> Self {
        let mut settings = TcpSettings::clone(&self.settings.load());
        change(&mut settings);
        Self::with_settings(settings)
    }

    /// Replaces the settings of this connector and its clones with changed
    /// ones, in the next generation.
    fn replace(&self, change: impl Fn(&mut TcpSettings)) {
        self.settings.rcu(|current| {
            let mut next = TcpSettings::clone(current);
            change(&mut next);
            next.generation += 1;
            next
        });
    }

    /// The generation of the settings in force now.
    #[cfg(feature = "tls")]
    pub(crate) fn generation(&self) -> u64 {
        self.settings.load().generation
    }

    /// A connector of its own (shared with no clone of this one) that sets
    /// `TCP_NODELAY` on new connections (default `true`).
    pub fn nodelay(self, nodelay: bool) -> Self {
        self.changed(|s| s.nodelay = nodelay)
    }

    /// A connector of its own that turns TCP keepalive on, with `idle` as
    /// the time a connection is silent before the kernel starts probing it
    /// (default `None`: off; the probe interval and count stay the
    /// system's). The kernel counts in whole seconds, so `idle` is rounded
    /// up, to one second at least, and at most 32 767 s (Linux's limit).
    pub fn keepalive(self, idle: Option<Duration>) -> Self {
        self.changed(|s| s.keepalive = idle)
    }

    /// A connector of its own whose connections' reads may block `timeout`
    /// before they fail with `WouldBlock`/`TimedOut` (default `None`:
    /// without limit).
    ///
    /// # Panics
    /// If `timeout` is `Some(Duration::ZERO)`, which the standard library
    /// rejects too; use `None` for no limit.
    pub fn read_timeout(self, timeout: Option<Duration>) -> Self {
        assert_ne!(timeout, Some(Duration::ZERO), "a zero read timeout");
        self.changed(|s| s.read_timeout = timeout)
    }

    /// A connector of its own whose connections' writes may block
    /// `timeout` before they fail with `WouldBlock`/`TimedOut` (default
    /// `None`: without limit).
    ///
    /// # Panics
    /// If `timeout` is `Some(Duration::ZERO)`, which the standard library
    /// rejects too; use `None` for no limit.
    pub fn write_timeout(self, timeout: Option<Duration>) -> Self {
        assert_ne!(timeout, Some(Duration::ZERO), "a zero write timeout");
        self.changed(|s| s.write_timeout = timeout)
    }

    /// Sets `TCP_NODELAY` on the connections this connector and its clones
    /// open from now on (a running pool's included); open ones keep theirs.
    ///
    /// ```
    /// let connector = leasehold::TcpConnector::new();
    /// let the_pools = connector.clone();
    /// connector.set_nodelay(false);
    /// assert_eq!(the_pools, leasehold::TcpConnector::new().nodelay(false));
    /// ```
    pub fn set_nodelay(&self, nodelay: bool) {
        self.replace(|s| s.nodelay = nodelay);
    }

    /// Sets the keepalive idle time (as [`keepalive`](Self::keepalive)) of
    /// the connections this connector and its clones open from now on; open
    /// ones keep theirs.
    pub fn set_keepalive(&self, idle: Option<Duration>) {
        self.replace(|s| s.keepalive = idle);
    }

    /// Sets the read timeout (as [`read_timeout`](Self::read_timeout)) of
    /// the connections this connector and its clones open from now on; open
    /// ones keep theirs.
    ///
    /// # Panics
    /// If `timeout` is `Some(Duration::ZERO)`; use `None` for no limit.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) {
        assert_ne!(timeout, Some(Duration::ZERO), "a zero read timeout");
        self.replace(|s| s.read_timeout = timeout);
    }

    /// Sets the write timeout (as [`write_timeout`](Self::write_timeout))
    /// of the connections this connector and its clones open from now on;
    /// open ones keep theirs.
    ///
    /// # Panics
    /// If `timeout` is `Some(Duration::ZERO)`; use `None` for no limit.
    pub fn set_write_timeout(&self, timeout: Option<Duration>) {
        assert_ne!(timeout, Some(Duration::ZERO), "a zero write timeout");
        self.replace(|s| s.write_timeout = timeout);
    }
}

impl TcpSettings {
    /// Puts a freshly connected socket in blocking mode with the settings
    /// applied.
    fn configure(&self, socket: &socket2::Socket) -> io::Result<()> {
        socket.set_nonblocking(false)?;
        socket.set_tcp_nodelay(self.nodelay)?;
        if let Some(idle) = self.keepalive {
            let secs = idle
                .as_secs()
                .saturating_add(u64::from(idle.subsec_nanos() > 0))
                .clamp(1, MAX_KEEPALIVE_IDLE_SECS);
            let params = TcpKeepalive::new().with_time(Duration::from_secs(secs));
            socket.set_tcp_keepalive(&params)?;
        }
        // socket2, unlike std, reads a zero `timeval` as "no limit"; a
        // timeout under a microsecond must not turn into that.
        let at_least_a_microsecond = |t: Duration| t.max(Duration::from_micros(1));
        socket.set_read_timeout(self.read_timeout.map(at_least_a_microsecond))?;
        socket.set_write_timeout(self.write_timeout.map(at_least_a_microsecond))?;
        Ok(())
    }
}

impl TcpConnector {
    /// Starts a non-blocking connect to `addr`, under the settings in force
    /// now.
    pub(crate) fn start(&self, addr: SocketAddr) -> io::Result<TcpHandshake> {
        let settings = self.settings.load_full();
        let stream = mio::net::TcpStream::connect(addr)?;
        tracing::trace!(%addr, "tcp connect started");
        Ok(TcpHandshake {
            stream,
            handed_over: false,
            settings,
        })
    }
}

impl Connector for TcpConnector {
    type Route = SocketAddr;
    type Conn = TcpStream;
    type Handshake = TcpHandshake;

    /// Starts a non-blocking connect to `route`.
    ///
    /// # Errors
    /// The connect failed at once (no socket available, `EADDRNOTAVAIL`,
    /// no route to the network…); a refusal usually comes later, from the
    /// handshake.
    fn connect(&self, route: &SocketAddr) -> io::Result<Progress<TcpStream, TcpHandshake>> {
        self.start(*route).map(Progress::Pending)
    }

    /// Sends a FIN (`shutdown(Write)`), so the peer reads end-of-stream,
    /// then closes the socket. Does not wait for the peer.
    fn close(&self, conn: TcpStream) {
        // The peer may be gone already; there is nothing left to do then.
        let _ = conn.shutdown(Shutdown::Write);
        drop(conn);
    }

    /// Closes the socket at once (drops it).
    fn abort(&self, conn: TcpStream) {
        drop(conn);
    }

    /// A duplicate of the stream's descriptor; `None` if the process is out
    /// of descriptors.
    fn watch(&self, conn: &TcpStream) -> Option<Watched> {
        conn.try_clone()
            .ok()
            .map(|dup| Watched::socket(OwnedFd::from(dup)))
    }

    /// Peeks at the socket without blocking or consuming anything: alive
    /// only if there is nothing to read and no error (not closed or reset by
    /// the peer, no unexpected bytes).
    fn is_alive(&self, conn: &mut TcpStream) -> bool {
        probe(conn.as_fd()).is_alive()
    }
}

/// A TCP connect in progress, made by [`TcpConnector::connect`].
///
/// It is a `mio` source that waits for writability; [`advance`] yields the
/// connected, configured [`TcpStream`], on a duplicate of the descriptor
/// the handshake registered. The handshake keeps its own descriptor, only
/// so that `deregister` can take it out of the poller, and closes it when
/// dropped; after the hand-over [`advance`] and `register` fail.
///
/// [`advance`]: Handshake::advance
#[derive(Debug)]
pub struct TcpHandshake {
    /// The connecting socket, in the poller while the driver has it there.
    stream: mio::net::TcpStream,
    /// Whether `advance` has given a connection out already.
    handed_over: bool,
    /// The connector's settings when the connect started.
    settings: Arc<TcpSettings>,
}

fn handed_over() -> io::Error {
    io::Error::other("the TCP handshake has already handed its connection over")
}

impl Source for TcpHandshake {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        if self.handed_over {
            return Err(handed_over());
        }
        self.stream.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        if self.handed_over {
            return Err(handed_over());
        }
        self.stream.reregister(registry, token, interest)
    }

    /// Takes the handshake's descriptor out of the poller, before or after
    /// the hand-over alike.
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.stream.deregister(registry)
    }
}

impl Handshake for TcpHandshake {
    type Conn = TcpStream;

    fn interest(&self) -> Interest {
        Interest::WRITABLE
    }

    fn stage(&self) -> &'static str {
        "TCP connect"
    }

    /// Checks how the connect went: `Ok(None)` while it is still under way,
    /// the stream once it is connected.
    ///
    /// # Errors
    /// The connect failed (`ConnectionRefused`, `TimedOut`,
    /// `HostUnreachable`…), configuring or duplicating the socket failed, or
    /// the connection was handed over already.
    fn advance(&mut self) -> io::Result<Option<TcpStream>> {
        if self.handed_over {
            return Err(handed_over());
        }
        if !self.connected()? {
            return Ok(None);
        }
        self.hand_over().map(Some)
    }
}

impl TcpHandshake {
    /// The generation of the settings the connection gets.
    #[cfg(feature = "tls")]
    pub(crate) fn generation(&self) -> u64 {
        self.settings.generation
    }

    /// Asks the kernel how the connect went: `Ok(false)` while it is still
    /// under way, `Ok(true)` once connected.
    ///
    /// # Errors
    /// The connect failed (`ConnectionRefused`, `TimedOut`,
    /// `HostUnreachable`…).
    pub(crate) fn connected(&mut self) -> io::Result<bool> {
        loop {
            match self.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) => return Err(e),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match self.stream.peer_addr() {
                Ok(_) => return Ok(true),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotConnected | io::ErrorKind::WouldBlock
                    ) =>
                {
                    return Ok(false)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The connected, still non-blocking socket the handshake registered,
    /// for a protocol that shakes hands over it before the hand-over.
    #[cfg(feature = "tls")]
    pub(crate) fn stream(&mut self) -> &mut mio::net::TcpStream {
        &mut self.stream
    }

    /// Puts the connected socket in blocking mode with the connector's
    /// settings and hands over a duplicate of it.
    ///
    /// # Errors
    /// Configuring or duplicating the socket failed.
    pub(crate) fn hand_over(&mut self) -> io::Result<TcpStream> {
        let socket = SockRef::from(&self.stream);
        // Blocking mode and the options belong to the socket, not to the
        // descriptor, so the duplicate has them too.
        self.settings.configure(&socket)?;
        let stream = TcpStream::from(socket.try_clone()?);
        self.handed_over = true;
        tracing::trace!(peer = ?stream.peer_addr().ok(), "tcp connected");
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{connect_blocking, Liveness};
    use mio::{Events, Poll};
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::time::Instant;

    const PATIENCE: Duration = Duration::from_secs(10);

    fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    /// A connection made through `connector`, and the server's end of it.
    fn pair(connector: &TcpConnector) -> (TcpStream, TcpStream) {
        let (listener, addr) = listener();
        let client = connect_blocking(connector, &addr, Some(PATIENCE)).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// Waits until `stream` has something to report (data, end of stream or
    /// an error), watching a duplicate of it with a poller.
    fn wait_readable(stream: &TcpStream) {
        let mut watched = mio::net::TcpStream::from_std(stream.try_clone().unwrap());
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut watched, Token(0), Interest::READABLE)
            .unwrap();
        let mut events = Events::with_capacity(1);
        let deadline = Instant::now() + PATIENCE;
        while events.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the socket never became readable");
            match poll.poll(&mut events, Some(left)) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => other.unwrap(),
            }
        }
    }

    /// What `probe` reports on the stream and on the connector's duplicate
    /// of it, checked to agree (peeking consumes nothing).
    fn liveness(connector: &TcpConnector, stream: &mut TcpStream) -> Liveness {
        let watched = connector.watch(stream).expect("a duplicate descriptor");
        let through_dup = watched.check();
        let direct = probe(stream.as_fd());
        assert_eq!(through_dup, direct, "the duplicate sees another state");
        assert_eq!(connector.is_alive(stream), direct.is_alive());
        direct
    }

    #[test]
    fn defaults_give_a_blocking_stream_with_nodelay_and_no_limits() {
        let connector = TcpConnector::default();
        assert_eq!(connector, TcpConnector::new());
        let (mut client, mut server) = pair(&connector);
        let socket = SockRef::from(&client);
        assert!(!socket.nonblocking().unwrap());
        assert!(client.nodelay().unwrap());
        assert!(!socket.keepalive().unwrap());
        assert_eq!(client.read_timeout().unwrap(), None);
        assert_eq!(client.write_timeout().unwrap(), None);

        client.write_all(b"ping").unwrap();
        let mut buf = [0; 4];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").unwrap();
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
    }

    /// No `TCP_NODELAY`, keepalive after 30 s, 2 s reads, 3 s writes: the
    /// settings the tests below set.
    fn has_the_settings_set(client: &TcpStream) {
        let socket = SockRef::from(client);
        assert!(!client.nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(30)
        );
        assert_eq!(client.read_timeout().unwrap(), Some(Duration::from_secs(2)));
        assert_eq!(
            client.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn settings_are_applied_to_the_stream() {
        let connector = TcpConnector::new()
            .nodelay(false)
            .keepalive(Some(Duration::from_secs(30)))
            // Whole seconds: the kernel keeps timeouts in clock ticks.
            .read_timeout(Some(Duration::from_secs(2)))
            .write_timeout(Some(Duration::from_secs(3)));
        let (client, _server) = pair(&connector);
        assert!(!SockRef::from(&client).nonblocking().unwrap());
        has_the_settings_set(&client);
    }

    #[test]
    fn setters_reach_every_clone_and_builder_methods_make_a_new_connector() {
        let connector = TcpConnector::new();
        let clone = connector.clone();
        let own = connector.clone().read_timeout(Some(Duration::from_secs(7)));
        connector.set_nodelay(false);
        connector.set_keepalive(Some(Duration::from_secs(30)));
        connector.set_read_timeout(Some(Duration::from_secs(2)));
        connector.set_write_timeout(Some(Duration::from_secs(3)));
        assert_eq!(clone, connector);
        assert_eq!(clone.settings.load().generation, 4);

        let (client, _server) = pair(&clone);
        has_the_settings_set(&client);

        assert_ne!(own, connector);
        let (client, _server) = pair(&own);
        assert!(client.nodelay().unwrap());
        assert!(!SockRef::from(&client).keepalive().unwrap());
        assert_eq!(client.read_timeout().unwrap(), Some(Duration::from_secs(7)));
        assert_eq!(client.write_timeout().unwrap(), None);
    }

    #[test]
    fn a_connect_keeps_the_settings_it_started_with() {
        let connector = TcpConnector::new();
        let (listener, addr) = listener();
        let Progress::Pending(mut handshake) = connector.connect(&addr).unwrap() else {
            panic!("a TCP connect completes through its handshake");
        };
        connector.set_nodelay(false);
        let deadline = Instant::now() + PATIENCE;
        let stream = loop {
            if let Some(stream) = handshake.advance().unwrap() {
                break stream;
            }
            assert!(Instant::now() < deadline, "the connect never completed");
            std::thread::yield_now();
        };
        let _server = listener.accept().unwrap();
        assert!(stream.nodelay().unwrap(), "the settings of its start");
        let (later, _server) = pair(&connector);
        assert!(!later.nodelay().unwrap());
    }

    #[test]
    fn a_running_pool_connects_with_the_settings_set_since() {
        use crate::{Pool, Strict};
        let connector = TcpConnector::new();
        let pool: Pool<TcpConnector, Strict> = Pool::builder(connector.clone()).build().unwrap();
        let (_listener, addr) = listener();
        let first = pool.lease(&addr).unwrap();
        connector.set_read_timeout(Some(Duration::from_secs(4)));
        let second = pool.lease(&addr).unwrap();
        assert_eq!(first.read_timeout().unwrap(), None, "open ones keep theirs");
        assert_eq!(second.read_timeout().unwrap(), Some(Duration::from_secs(4)));
        assert_eq!(pool.stats().total.created, 2);
    }

    #[test]
    fn keepalive_idle_rounds_up_to_whole_seconds() {
        for (idle, kernel) in [(1500, 2), (1, 1), (2000, 2)] {
            let connector = TcpConnector::new().keepalive(Some(Duration::from_millis(idle)));
            let (client, _server) = pair(&connector);
            let socket = SockRef::from(&client);
            assert!(socket.keepalive().unwrap());
            assert_eq!(
                socket.tcp_keepalive_time().unwrap(),
                Duration::from_secs(kernel),
                "idle {idle} ms"
            );
        }
    }

    #[test]
    fn a_read_timeout_under_a_microsecond_still_times_out() {
        let connector = TcpConnector::new().read_timeout(Some(Duration::from_nanos(1)));
        let (mut client, _server) = pair(&connector);
        // Not "no limit": the kernel keeps it as one clock tick.
        let kept = client.read_timeout().unwrap().expect("a read timeout");
        assert!(kept <= Duration::from_millis(10), "{kept:?}");
        let err = client.read(&mut [0; 1]).unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err:?}"
        );
    }

    #[test]
    #[should_panic(expected = "a zero read timeout")]
    fn a_zero_read_timeout_is_rejected() {
        let _ = TcpConnector::new().read_timeout(Some(Duration::ZERO));
    }

    #[test]
    #[should_panic(expected = "a zero write timeout")]
    fn a_zero_write_timeout_is_rejected() {
        let _ = TcpConnector::new().write_timeout(Some(Duration::ZERO));
    }

    #[test]
    fn a_closed_port_refuses() {
        let (listener, addr) = listener();
        drop(listener);
        let err = connect_blocking(&TcpConnector::new(), &addr, Some(PATIENCE)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    }

    #[test]
    fn the_pool_reports_a_refusal_and_lends_a_working_stream() {
        use crate::{Error, Pool, Strict};
        let pool: Pool<TcpConnector, Strict> = Pool::builder(TcpConnector::new()).build().unwrap();

        let (closed, refusing) = listener();
        drop(closed);
        let err = pool.lease(&refusing).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err:?}");

        let (listener, addr) = listener();
        let mut lease = pool.lease(&addr).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        lease.write_all(b"hi").unwrap();
        let mut buf = [0; 2];
        server.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
    }

    #[test]
    fn an_unusable_address_fails_at_once() {
        // TCP cannot connect to a multicast group: Linux says so in
        // `connect` itself, before any packet is sent.
        let addr: SocketAddr = "224.0.0.1:80".parse().unwrap();
        let err = TcpConnector::new().connect(&addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NetworkUnreachable, "{err:?}");
    }

    #[test]
    fn after_the_hand_over_the_handshake_only_deregisters() {
        let (listener, addr) = listener();
        let Progress::Pending(mut handshake) = TcpConnector::new().connect(&addr).unwrap() else {
            panic!("a TCP connect completes through its handshake");
        };
        assert_eq!(handshake.interest(), Interest::WRITABLE);
        let mut poll = Poll::new().unwrap();
        poll.registry()
            .register(&mut handshake, Token(7), Interest::WRITABLE)
            .unwrap();
        let mut events = Events::with_capacity(4);
        let deadline = Instant::now() + PATIENCE;
        let stream = loop {
            if let Some(stream) = handshake.advance().unwrap() {
                break stream;
            }
            assert!(Instant::now() < deadline, "the connect never completed");
            poll.poll(&mut events, Some(PATIENCE)).unwrap();
        };
        assert_eq!(stream.peer_addr().unwrap(), addr);

        let err = handshake.advance().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(poll
            .registry()
            .reregister(&mut handshake, Token(7), Interest::READABLE)
            .is_err());
        poll.registry().deregister(&mut handshake).unwrap();
        drop(handshake);

        // The stream lives on its own descriptor: closing the handshake's
        // left it working, and its readiness no longer reaches the poller.
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"x").unwrap();
        let mut byte = [0; 1];
        (&stream).read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"x");
        server.write_all(b"y").unwrap();
        wait_readable(&stream);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty(), "a stale registration: {events:?}");
    }

    #[test]
    fn probe_tells_quiet_data_and_closed_apart() {
        let connector = TcpConnector::new();
        let (mut client, mut server) = pair(&connector);
        assert_eq!(liveness(&connector, &mut client), Liveness::Quiet);

        server.write_all(b"!").unwrap();
        wait_readable(&client);
        assert_eq!(liveness(&connector, &mut client), Liveness::Data);
        // Peeking left the byte where it was.
        assert_eq!(liveness(&connector, &mut client), Liveness::Data);
        let mut byte = [0; 1];
        client.read_exact(&mut byte).unwrap();
        assert_eq!(&byte, b"!");
        assert_eq!(liveness(&connector, &mut client), Liveness::Quiet);

        drop(server);
        wait_readable(&client);
        assert_eq!(liveness(&connector, &mut client), Liveness::Closed);
        assert!(!Liveness::Closed.is_alive());
    }

    #[test]
    fn probe_reports_a_reset_once_then_sees_the_socket_closed() {
        let connector = TcpConnector::new();
        let (client, server) = pair(&connector);
        let watched = connector.watch(&client).unwrap();
        SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server); // sends a RST
        wait_readable(&client);
        // The pending ECONNRESET belongs to the socket, which the duplicate
        // shares: whichever descriptor peeks first takes it.
        assert_eq!(watched.check(), Liveness::Failed);
        assert_eq!(probe(client.as_fd()), Liveness::Closed);
        assert_eq!(watched.check(), Liveness::Closed);
    }

    #[test]
    fn close_and_abort_each_end_the_stream() {
        let connector = TcpConnector::new();
        type End = fn(&TcpConnector, TcpStream);
        let ends: [(&str, End); 2] = [("close", Connector::close), ("abort", Connector::abort)];
        for (name, end) in ends {
            let (client, mut server) = pair(&connector);
            end(&connector, client);
            let mut rest = Vec::new();
            assert_eq!(server.read_to_end(&mut rest).unwrap(), 0, "{name}");
        }
    }

    #[test]
    fn one_poller_drives_fifty_connects() {
        const CONNECTS: usize = 50;
        let (listener, addr) = listener();
        let connector = TcpConnector::new();
        let mut poll = Poll::new().unwrap();
        let mut handshakes: Vec<Option<TcpHandshake>> = (0..CONNECTS)
            .map(|i| {
                let Progress::Pending(mut handshake) = connector.connect(&addr).unwrap() else {
                    panic!("a TCP connect completes through its handshake");
                };
                let interest = handshake.interest();
                poll.registry()
                    .register(&mut handshake, Token(i), interest)
                    .unwrap();
                Some(handshake)
            })
            .collect();
        let mut streams = Vec::new();
        let mut advance = |i: usize, poll: &Poll, streams: &mut Vec<TcpStream>| {
            let Some(handshake) = handshakes[i].as_mut() else {
                return; // done already; a late event
            };
            if let Some(stream) = handshake.advance().unwrap() {
                poll.registry().deregister(handshake).unwrap();
                handshakes[i] = None;
                streams.push(stream);
            }
        };
        for i in 0..CONNECTS {
            advance(i, &poll, &mut streams);
        }
        let mut events = Events::with_capacity(16);
        let deadline = Instant::now() + PATIENCE;
        while streams.len() < CONNECTS {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "{} of {CONNECTS} connected", streams.len());
            poll.poll(&mut events, Some(left)).unwrap();
            for event in &events {
                advance(event.token().0, &poll, &mut streams);
            }
        }

        let mut clients: Vec<SocketAddr> =
            streams.iter().map(|s| s.local_addr().unwrap()).collect();
        let mut accepted: Vec<SocketAddr> = (0..CONNECTS)
            .map(|_| listener.accept().unwrap().1)
            .collect();
        clients.sort();
        accepted.sort();
        assert_eq!(clients, accepted);
    }

    #[test]
    fn resolve_reads_literal_addresses_and_rejects_junk() {
        assert_eq!(
            resolve("127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("[::1]:443").unwrap(),
            "[::1]:443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            resolve("no port here").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn everything_public_has_debug() {
        let connector = TcpConnector::new();
        assert!(format!("{connector:?}").contains("nodelay: true"));
        let (_listener, addr) = listener();
        let Progress::Pending(handshake) = connector.connect(&addr).unwrap() else {
            panic!("a TCP connect completes through its handshake");
        };
        assert!(format!("{handshake:?}").starts_with("TcpHandshake"));
    }
}
