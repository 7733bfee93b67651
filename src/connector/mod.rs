//! How the pool opens and closes connections.
//!
//! A [`Connector`] starts a connection and either has it at once
//! ([`Progress::Ready`] — an in-memory connector, which then pays nothing for
//! readiness machinery) or hands back a [`Handshake`]: a state machine that
//! is a `mio` event source and advances when its socket is ready, so one
//! event loop can drive many connects at once without blocking anyone.
//!
//! The pool calls [`Connector::connect`] on the thread of the request that
//! needs a connection (it must not block); a pending handshake goes to the
//! pool's event loop, which drives it under the connect timeout while the
//! request waits for it or for a returned connection, whichever comes
//! first.

#[cfg(unix)]
mod setup;

#[cfg(unix)]
pub use setup::{Setup, SetupHandshake, WithSetup, MAX_SETUP_ANSWER};

use leasehold_policies::RouteKey;
use mio::event::Source;
#[cfg(test)]
use mio::{Events, Poll};
use mio::{Interest, Token};
use std::io;
#[cfg(test)]
use std::time::{Duration, Instant};

/// Opens and closes connections for a pool.
///
/// # Errors
/// Connect failures are `io::Error`s; the pool tells them apart by kind:
/// `ConnectionRefused` becomes [`Error::Refused`](crate::Error::Refused),
/// `TimedOut` [`Error::ConnectTimeout`](crate::Error::ConnectTimeout), the
/// rest [`Error::Connect`](crate::Error::Connect).
pub trait Connector: Send + Sync + 'static {
    /// What connections are keyed by.
    type Route: RouteKey;
    /// An open connection.
    type Conn: Send + 'static;
    /// An in-progress connect; use [`Never`] if connects complete at once.
    type Handshake: Handshake<Conn = Self::Conn>;

    /// Starts connecting to `route`. Must not block on the network: return
    /// [`Progress::Pending`] with a handshake that waits for readiness.
    fn connect(&self, route: &Self::Route) -> io::Result<Progress<Self::Conn, Self::Handshake>>;

    /// Closes a connection the pool is done with (graceful close, TLS
    /// `close_notify`…). The default drops it.
    fn close(&self, conn: Self::Conn) {
        drop(conn);
    }

    /// Closes a connection at once, without the graceful steps of
    /// [`close`](Self::close) (no TLS `close_notify`, no waiting on the
    /// peer). The pool calls it on the thread that gave the connection up
    /// when background disposal is behind (its queue is full), so that a
    /// graceful close never runs there; it must not block.
    ///
    /// The default drops the connection, which for a socket closes its file
    /// descriptor.
    fn abort(&self, conn: Self::Conn) {
        drop(conn);
    }

    /// What the pool's event loop watches of the connection: a duplicate
    /// of its socket, and how to tell what readiness on it means. When the
    /// peer closes or resets the connection, the loop hears of it at once,
    /// leased or idle (on Linux and Android; elsewhere as for bytes);
    /// bytes nobody asked for, or that a holder left unread, it hears of
    /// once the connection has been idle for 50–100 ms. An idle connection
    /// found so is evicted before anyone leases it; a leased one is closed
    /// when it is given back. The holder's own traffic never reaches the
    /// loop. The pool asks once, when the connection is opened, and drops
    /// the [`Watched`] (duplicate and check) before it closes the
    /// connection.
    ///
    /// [`Watched::socket`] peeks at the socket, which suits protocols where
    /// an idle connection receives nothing; a protocol that may receive
    /// bytes that are not a request's (TLS session tickets, say) supplies
    /// its own check with [`Watched::with_check`].
    ///
    /// The default, `None`, leaves the connection unwatched (an in-memory
    /// connection has no socket).
    #[cfg(unix)]
    fn watch(&self, conn: &Self::Conn) -> Option<Watched> {
        let _ = conn;
        None
    }

    /// Whether a connection its holder gives back is unfit for reuse
    /// (r2d2's `has_broken`): a response left half read, an error the
    /// connection recorded, a protocol state the next holder cannot pick
    /// up. Called at every return that would keep the connection, on the
    /// thread that gives it back (the holder's, or the event loop's for a
    /// new connection no request took), so it must be cheap and must not
    /// block; `true` (or a panic) closes it instead, counted in
    /// [`Health::broken`](crate::Health::broken).
    ///
    /// The default keeps every connection: `TcpConnector` knows nothing of
    /// the protocol, and `TlsConnector` says broken when decrypted bytes
    /// were left unread or the server sent `close_notify`.
    fn has_broken(&self, conn: &mut Self::Conn) -> bool {
        let _ = conn;
        false
    }

    /// A cheap liveness check, run when a connection is leased after being
    /// idle longer than the pool's
    /// [`validate_after_inactivity`](crate::Builder::validate_after_inactivity);
    /// `false` closes it and the lease takes another. It must not block.
    ///
    /// The default says every connection is alive.
    fn is_alive(&self, conn: &mut Self::Conn) -> bool {
        let _ = conn;
        true
    }

    /// This connector with a protocol's opening exchange after each
    /// connect (Redis `AUTH`/`SELECT`, a Postgres startup message…): the
    /// pool's event loop sends [`Setup::request`]
    /// once the transport is up and lends the connection out only when
    /// [`Setup::response`] finds the answer
    /// complete, all under the connect timeout. See
    /// [`WithSetup`].
    ///
    /// ```no_run
    /// # use leasehold::{Setup, Connector, Pool, TcpConnector};
    /// # use std::{io, net::SocketAddr};
    /// # struct Auth;
    /// # impl Setup<SocketAddr> for Auth {
    /// #     fn request(&self, _: &SocketAddr) -> Vec<u8> { b"AUTH secret\r\n".to_vec() }
    /// #     fn response(&self, _: &SocketAddr, got: &[u8]) -> io::Result<Option<usize>> {
    /// #         Ok(got.ends_with(b"\r\n").then_some(got.len()))
    /// #     }
    /// # }
    /// let pool = Pool::builder(TcpConnector::new().with_setup(Auth)).build()?;
    /// # Ok::<(), leasehold::ConfigError>(())
    /// ```
    #[cfg(unix)]
    fn with_setup<S>(self, setup: S) -> WithSetup<Self, S>
    where
        Self: Sized,
        Self::Conn: crate::Nonblocking,
        S: crate::Setup<Self::Route>,
    {
        WithSetup::new(self, setup)
    }
}

/// What an idle connection's socket says when the pool looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Nothing to read and no error: the connection looks usable.
    Quiet,
    /// The peer closed its side (end of stream, or a protocol's own close).
    Closed,
    /// Bytes arrived that nobody asked for; an idle connection should
    /// have none, so the protocol state is unknown.
    Data,
    /// The socket reports an error (a reset, a timeout…).
    Failed,
}

impl Liveness {
    /// Whether the connection may be lent out: only when quiet.
    pub fn is_alive(self) -> bool {
        self == Liveness::Quiet
    }
}

/// A connection as the pool's event loop watches it (see
/// [`Connector::watch`]): a duplicate of its socket, registered for closes
/// (and, while the connection is idle, for bytes), and the check run when
/// it turns readable while idle.
#[cfg(unix)]
pub struct Watched {
    fd: std::os::fd::OwnedFd,
    check: Option<IdleCheck>,
}

#[cfg(unix)]
type IdleCheck = Box<dyn Fn() -> Liveness + Send + Sync>;

#[cfg(unix)]
impl Watched {
    /// Watches `fd` and peeks at it (one non-blocking `recv` with
    /// `MSG_PEEK`, consuming nothing) when it turns readable: any byte, end
    /// of stream or error makes the connection unfit.
    pub fn socket(fd: std::os::fd::OwnedFd) -> Self {
        Self { fd, check: None }
    }

    /// Watches `fd` and runs `check` when it turns readable while the
    /// connection is idle, and before the loop watches an idle connection
    /// for bytes.
    ///
    /// `check` runs on the event loop's thread and must not block; the
    /// connection may be leased again while it runs,
    /// so a check that reads the connection's own state must not wait for
    /// a lock a lease holds (use `try_lock`, and answer
    /// [`Liveness::Quiet`] when it is taken: a lease has it). It should
    /// hold the connection's state weakly, so that it keeps nothing alive.
    pub fn with_check(
        fd: std::os::fd::OwnedFd,
        check: impl Fn() -> Liveness + Send + Sync + 'static,
    ) -> Self {
        Self {
            fd,
            check: Some(Box::new(check)),
        }
    }

    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }

    /// What the socket says now. A check that panics finds the connection
    /// unfit.
    pub(crate) fn check(&self) -> Liveness {
        match &self.check {
            Some(check) => crate::unwind::guarded("an idle connection's check", check)
                .unwrap_or(Liveness::Failed),
            None => probe(self.fd()),
        }
    }
}

#[cfg(unix)]
/// Peeks at one byte of `fd` without blocking (`MSG_PEEK | MSG_DONTWAIT`,
/// so it works on blocking sockets too) and without consuming anything.
///
/// A pending socket error is reported, and cleared by the kernel, as
/// [`Liveness::Failed`]; the next probe then sees what is left, typically
/// [`Liveness::Closed`].
pub(crate) fn probe(fd: std::os::fd::BorrowedFd<'_>) -> Liveness {
    let socket = socket2::SockRef::from(&fd);
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    loop {
        match socket.recv_with_flags(&mut buf, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
            Ok(0) => return Liveness::Closed,
            Ok(_) => return Liveness::Data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Liveness::Quiet,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Liveness::Failed,
        }
    }
}

#[cfg(unix)]
impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched")
            .field("fd", &self.fd)
            .field("check", &if self.check.is_some() { "own" } else { "peek" })
            .finish()
    }
}

/// The result of starting a connect.
#[derive(Debug)]
pub enum Progress<C, H> {
    /// Connected already.
    Ready(C),
    /// Connecting: advance `H` on readiness.
    Pending(H),
}

impl<C, H: Handshake<Conn = C>> Progress<C, H> {
    /// The same connect, its connection passed through `map` once it is
    /// made: at once if it is ready, when the handshake completes if not
    /// (on the pool's event loop, within the connect timeout). A connector
    /// that wraps another's connections (in a protocol's state, say) keeps
    /// the other's handshake and adds only this last step; an error from
    /// `map` fails the connect.
    ///
    /// ```
    /// use leasehold::{Connector, MapHandshake, Progress, TcpConnector};
    /// use std::io;
    /// use std::net::{SocketAddr, TcpStream};
    ///
    /// /// A TCP connection and the requests it carried.
    /// struct Counted { stream: TcpStream, requests: u64 }
    ///
    /// struct CountedConnector(TcpConnector);
    ///
    /// impl Connector for CountedConnector {
    ///     type Route = SocketAddr;
    ///     type Conn = Counted;
    ///     type Handshake = MapHandshake<<TcpConnector as Connector>::Handshake, Counted>;
    ///
    ///     fn connect(&self, addr: &SocketAddr) -> io::Result<Progress<Counted, Self::Handshake>> {
    ///         self.0.connect(addr)?.map(|stream| Ok(Counted { stream, requests: 0 }))
    ///     }
    /// }
    /// ```
    ///
    /// # Errors
    /// `map`'s error, when the connection was ready.
    pub fn map<T: 'static>(
        self,
        mut map: impl FnMut(C) -> io::Result<T> + Send + 'static,
    ) -> io::Result<Progress<T, MapHandshake<H, T>>> {
        Ok(match self {
            Progress::Ready(conn) => Progress::Ready(map(conn)?),
            Progress::Pending(handshake) => Progress::Pending(MapHandshake {
                inner: handshake,
                map: Box::new(map),
            }),
        })
    }
}

/// A handshake whose connection goes through a function once `H` has made
/// it: what [`Progress::map`] returns for a connect in progress. Readiness,
/// stages and errors are `H`'s.
pub struct MapHandshake<H: Handshake, T> {
    inner: H,
    /// Boxed so that the type can be named; a function without state
    /// (such as a constructor) allocates nothing.
    map: Box<dyn FnMut(H::Conn) -> io::Result<T> + Send>,
}

impl<H: Handshake, T> MapHandshake<H, T> {
    /// The handshake under the map.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }
}

impl<H: Handshake + std::fmt::Debug, T> std::fmt::Debug for MapHandshake<H, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapHandshake")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<H: Handshake, T> Source for MapHandshake<H, T> {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.inner.reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.inner.deregister(registry)
    }
}

impl<H: Handshake, T: 'static> Handshake for MapHandshake<H, T> {
    type Conn = T;

    fn interest(&self) -> Interest {
        self.inner.interest()
    }

    fn stage(&self) -> &'static str {
        self.inner.stage()
    }

    fn advance(&mut self) -> io::Result<Option<T>> {
        self.inner.advance()?.map(&mut self.map).transpose()
    }
}

/// An in-progress connect, driven by readiness events on its source.
///
/// # Driving a handshake
/// The driver registers the handshake with a poller for
/// [`interest`](Self::interest), calls [`advance`](Self::advance) once and
/// then after each readiness event, and reregisters whenever `interest`
/// changes. When `advance` returns `Ok(Some(conn))` or an error, the driver
/// deregisters the handshake, then drops it; it calls nothing else on it.
///
/// So `deregister` comes *after* the connection has been handed over, and
/// must still take out of the poller what `register` put in. A handshake
/// whose connection uses the socket it registered (a TCP stream, say)
/// should hand over a duplicate descriptor and keep the registered one
/// until it is dropped: a registration left behind would have the poller
/// report the connection's readiness, under a token that by then means
/// something else, for as long as the socket lives.
pub trait Handshake: Source + Send + 'static {
    /// The connection it produces.
    type Conn;

    /// The readiness it waits for next.
    fn interest(&self) -> Interest;

    /// What it is doing now ("TCP connect", "TLS handshake"…), named in
    /// the error of a connect that runs out of time. The default says
    /// "connect".
    fn stage(&self) -> &'static str {
        "connect"
    }

    /// Makes progress after a readiness event (or spuriously): `Ok(Some)`
    /// when connected, `Ok(None)` to wait for readiness again.
    ///
    /// # Errors
    /// The connect failed.
    fn advance(&mut self) -> io::Result<Option<Self::Conn>>;
}

/// The handshake of connectors whose connects complete at once (producing
/// `C`): it cannot be constructed.
pub struct Never<C> {
    never: std::convert::Infallible,
    _conn: std::marker::PhantomData<fn() -> C>,
}

impl<C> std::fmt::Debug for Never<C> {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.never {}
    }
}

impl<C> Source for Never<C> {
    fn register(&mut self, _: &mio::Registry, _: Token, _: Interest) -> io::Result<()> {
        match self.never {}
    }
    fn reregister(&mut self, _: &mio::Registry, _: Token, _: Interest) -> io::Result<()> {
        match self.never {}
    }
    fn deregister(&mut self, _: &mio::Registry) -> io::Result<()> {
        match self.never {}
    }
}

impl<C: 'static> Handshake for Never<C> {
    type Conn = C;
    fn interest(&self) -> Interest {
        match self.never {}
    }
    fn advance(&mut self) -> io::Result<Option<C>> {
        match self.never {}
    }
}

/// Connects on the calling thread, waiting for readiness with a private
/// poller until `timeout` (none: no limit). For tests of connectors.
#[cfg(test)]
pub(crate) fn connect_blocking<C: Connector>(
    connector: &C,
    route: &C::Route,
    timeout: Option<Duration>,
) -> io::Result<C::Conn> {
    let mut handshake = match connector.connect(route)? {
        Progress::Ready(conn) => return Ok(conn),
        Progress::Pending(handshake) => handshake,
    };
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4);
    let mut interest = handshake.interest();
    poll.registry()
        .register(&mut handshake, Token(0), interest)?;
    let result = loop {
        match handshake.advance() {
            Ok(Some(conn)) => break Ok(conn),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        let wait = match deadline {
            None => None,
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                }
                Some(left)
            }
        };
        if let Err(e) = poll.poll(&mut events, wait) {
            if e.kind() != io::ErrorKind::Interrupted {
                break Err(e);
            }
        }
        let next = handshake.interest();
        if next != interest {
            interest = next;
            if let Err(e) = poll
                .registry()
                .reregister(&mut handshake, Token(0), interest)
            {
                break Err(e);
            }
        }
    };
    // After `advance` is done, before the handshake is dropped: see `Handshake`.
    let _ = poll.registry().deregister(&mut handshake);
    result
}

/// The error of a connect whose connector panicked.
pub(crate) fn connector_panicked() -> std::io::Error {
    std::io::Error::other("the connector panicked while connecting")
}
