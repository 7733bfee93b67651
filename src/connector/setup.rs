//! A protocol's opening exchange added to a connector: [`Setup`] says what
//! to send once the transport is up (Redis `AUTH`/`SELECT`/`HELLO`, a
//! Postgres startup message) and when the answer is complete;
//! [`WithSetup`] runs it on the pool's event loop, as part of the connect
//! and under the same connect timeout, so a connection is only lent out
//! once it is ready for requests. Closing, watching and the checks stay the
//! wrapped connector's.
//!
//! # Registration
//!
//! While the wrapped connector's handshake runs, its own registration
//! carries the readiness. Once it has handed the connection over, the
//! exchange waits on that registration while the interest stays the same
//! (it watches the same socket); when the interest changes, it registers a
//! duplicate of the connection's socket instead, since a handshake that
//! has handed over may refuse to re-register. The duplicate is
//! deregistered and closed with the exchange, never the connection's own
//! descriptor.

#[cfg(unix)]
use crate::connector::Watched;
use crate::connector::{Connector, Handshake, Progress};
use crate::nonblocking::Nonblocking;
use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// The most an answer may take before the connect fails: a peer that never
/// completes one would otherwise fill memory until the connect timeout.
pub const MAX_SETUP_ANSWER: usize = 1 << 20;

/// A protocol's opening exchange, run on each new connection before it is
/// lent out (see [`Connector::with_setup`]).
///
/// # Examples
/// A line protocol that greets with `HELLO <db>` and expects `OK`:
/// ```
/// use std::io;
/// use std::net::SocketAddr;
/// use leasehold::Setup;
///
/// struct Hello(u32);
///
/// impl Setup<SocketAddr> for Hello {
///     fn request(&self, _route: &SocketAddr) -> Vec<u8> {
///         format!("HELLO {}\r\n", self.0).into_bytes()
///     }
///     fn response(&self, _route: &SocketAddr, received: &[u8]) -> io::Result<Option<usize>> {
///         let Some(end) = received.windows(2).position(|w| w == b"\r\n") else {
///             return Ok(None); // the line is not complete yet
///         };
///         match &received[..end] {
///             b"OK" => Ok(Some(end + 2)),
///             other => Err(io::Error::new(
///                 io::ErrorKind::PermissionDenied,
///                 String::from_utf8_lossy(other).into_owned(),
///             )),
///         }
///     }
/// }
/// ```
pub trait Setup<R>: Send + Sync + 'static {
    /// What to send once the transport is up; empty for a protocol whose
    /// server speaks first (a greeting), which then only reads.
    fn request(&self, route: &R) -> Vec<u8>;

    /// Reads the answer received so far (everything since the connect,
    /// each call seeing more): `Ok(Some(n))` once it is complete in the
    /// first `n` bytes, `Ok(None)` to wait for more. It runs on the pool's
    /// event loop and must not block.
    ///
    /// # Errors
    /// The answer refuses the connection (a wrong password, an unknown
    /// database) or is not the protocol's: the connect fails with this
    /// error, as a refused TCP connect would (the waiting requests get it
    /// at once, the route backs off).
    fn response(&self, route: &R, received: &[u8]) -> io::Result<Option<usize>>;

    /// What the exchange is, named in the error of a connect that runs out
    /// of time during it. The default says "protocol set-up".
    fn stage(&self) -> &'static str {
        "protocol set-up"
    }
}

/// A connector with a protocol set-up step: see [`Connector::with_setup`].
pub struct WithSetup<C, S> {
    inner: C,
    setup: Arc<S>,
}

impl<C, S> WithSetup<C, S> {
    pub(crate) fn new(inner: C, setup: S) -> Self {
        Self {
            inner,
            setup: Arc::new(setup),
        }
    }

    /// The wrapped connector.
    pub fn get_ref(&self) -> &C {
        &self.inner
    }

    /// The set-up step.
    pub fn setup(&self) -> &S {
        &self.setup
    }
}

impl<C: Clone, S> Clone for WithSetup<C, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            setup: Arc::clone(&self.setup),
        }
    }
}

impl<C: fmt::Debug, S> fmt::Debug for WithSetup<C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WithSetup")
            .field("inner", &self.inner)
            .field("setup", &std::any::type_name::<S>())
            .finish()
    }
}

impl<C, S> Connector for WithSetup<C, S>
where
    C: Connector,
    C::Conn: Nonblocking,
    S: Setup<C::Route>,
{
    type Route = C::Route;
    type Conn = C::Conn;
    type Handshake = SetupHandshake<C::Handshake, S, C::Route>;

    fn connect(&self, route: &C::Route) -> io::Result<Progress<C::Conn, Self::Handshake>> {
        let (inner, conn) = match self.inner.connect(route)? {
            Progress::Ready(conn) => (None, Some(conn)),
            Progress::Pending(handshake) => (Some(handshake), None),
        };
        let mut handshake = SetupHandshake {
            setup: Arc::clone(&self.setup),
            route: route.clone(),
            inner,
            exchange: None,
            duplicate: None,
        };
        if let Some(conn) = conn {
            handshake.start(conn);
        }
        Ok(Progress::Pending(handshake))
    }

    fn close(&self, conn: C::Conn) {
        self.inner.close(conn);
    }

    fn abort(&self, conn: C::Conn) {
        self.inner.abort(conn);
    }

    #[cfg(unix)]
    fn watch(&self, conn: &C::Conn) -> Option<Watched> {
        self.inner.watch(conn)
    }

    fn has_broken(&self, conn: &mut C::Conn) -> bool {
        self.inner.has_broken(conn)
    }

    fn is_alive(&self, conn: &mut C::Conn) -> bool {
        self.inner.is_alive(conn)
    }
}

/// The connect of a [`WithSetup`]: the wrapped connector's handshake, then
/// the exchange on the connection it produced.
pub struct SetupHandshake<H: Handshake, S, R> {
    setup: Arc<S>,
    route: R,
    /// The wrapped handshake; kept after the hand-over while its
    /// registration carries the exchange's readiness.
    inner: Option<H>,
    exchange: Option<Exchange<H::Conn>>,
    /// The duplicate of the connection's socket registered in the inner
    /// handshake's place, once the interest changed.
    duplicate: Option<OwnedFd>,
}

/// The exchange under way.
struct Exchange<C> {
    conn: C,
    request: Vec<u8>,
    sent: usize,
    received: Vec<u8>,
}

impl<H, S, R> SetupHandshake<H, S, R>
where
    H: Handshake,
    H::Conn: Nonblocking,
    S: Setup<R>,
{
    fn start(&mut self, conn: H::Conn) {
        self.exchange = Some(Exchange {
            conn,
            request: self.setup.request(&self.route),
            sent: 0,
            received: Vec::new(),
        });
    }

    /// Sends and reads what the socket allows: the connection once the
    /// answer is complete.
    fn exchange(&mut self) -> io::Result<Option<H::Conn>> {
        let Some(exchange) = self.exchange.as_mut() else {
            return Err(io::Error::other(
                "the set-up has handed its connection over",
            ));
        };
        while exchange.sent < exchange.request.len() {
            match exchange.conn.try_write(&exchange.request[exchange.sent..]) {
                Ok(n) => exchange.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        match exchange.conn.try_flush() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            other => other?,
        }
        let mut chunk = [0; 4096];
        loop {
            if let Some(used) = self.setup.response(&self.route, &exchange.received)? {
                if used != exchange.received.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{} bytes arrived after the {} answer",
                            exchange.received.len().saturating_sub(used),
                            self.setup.stage()
                        ),
                    ));
                }
                let exchange = self.exchange.take().expect("under way");
                return Ok(Some(exchange.conn));
            }
            match exchange.conn.try_read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "the server closed the connection during {}",
                            self.setup.stage()
                        ),
                    ))
                }
                Ok(n) => {
                    exchange.received.extend_from_slice(&chunk[..n]);
                    if exchange.received.len() > MAX_SETUP_ANSWER {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!(
                                "the {} answer passed {MAX_SETUP_ANSWER} bytes",
                                self.setup.stage()
                            ),
                        ));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) => return Err(e),
            }
        }
    }
}

impl<H: Handshake, S, R> Source for SetupHandshake<H, S, R>
where
    H::Conn: Nonblocking,
{
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match (&mut self.inner, &self.exchange) {
            (Some(inner), _) => inner.register(registry, token, interest),
            // A connection the wrapped connector had at once.
            (None, Some(exchange)) => {
                let duplicate = exchange.conn.socket().try_clone_to_owned()?;
                registry.register(&mut SourceFd(&duplicate.as_raw_fd()), token, interest)?;
                self.duplicate = Some(duplicate);
                Ok(())
            }
            (None, None) => Err(io::Error::other(
                "the set-up has handed its connection over",
            )),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        if let Some(duplicate) = &self.duplicate {
            return registry.reregister(&mut SourceFd(&duplicate.as_raw_fd()), token, interest);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Err(io::Error::other("the set-up has nothing registered"));
        };
        let Some(exchange) = &self.exchange else {
            return inner.reregister(registry, token, interest);
        };
        // The wrapped handshake is done: the duplicate takes its place.
        let duplicate = exchange.conn.socket().try_clone_to_owned()?;
        inner.deregister(registry)?;
        registry.register(&mut SourceFd(&duplicate.as_raw_fd()), token, interest)?;
        self.duplicate = Some(duplicate);
        Ok(())
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match (&self.duplicate, &mut self.inner) {
            (Some(duplicate), _) => registry.deregister(&mut SourceFd(&duplicate.as_raw_fd())),
            (None, Some(inner)) => inner.deregister(registry),
            (None, None) => Ok(()),
        }
    }
}

impl<H, S, R> Handshake for SetupHandshake<H, S, R>
where
    H: Handshake,
    H::Conn: Nonblocking,
    S: Setup<R>,
    R: Send + 'static,
{
    type Conn = H::Conn;

    fn interest(&self) -> Interest {
        match (&self.exchange, &self.inner) {
            (Some(exchange), _) if exchange.sent < exchange.request.len() => Interest::WRITABLE,
            (Some(_), _) => Interest::READABLE,
            (None, Some(inner)) => inner.interest(),
            (None, None) => Interest::READABLE,
        }
    }

    fn stage(&self) -> &'static str {
        match (&self.exchange, &self.inner) {
            (None, Some(inner)) => inner.stage(),
            _ => self.setup.stage(),
        }
    }

    fn advance(&mut self) -> io::Result<Option<H::Conn>> {
        if self.exchange.is_none() {
            let Some(inner) = self.inner.as_mut() else {
                return Err(io::Error::other(
                    "the set-up has handed its connection over",
                ));
            };
            match inner.advance()? {
                Some(conn) => self.start(conn),
                None => return Ok(None),
            }
        }
        self.exchange()
    }
}

impl<H: Handshake + fmt::Debug, S, R: fmt::Debug> fmt::Debug for SetupHandshake<H, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupHandshake")
            .field("route", &self.route)
            .field("inner", &self.inner)
            .field(
                "exchange",
                &self
                    .exchange
                    .as_ref()
                    .map(|e| (e.sent, e.request.len(), e.received.len())),
            )
            .finish()
    }
}
