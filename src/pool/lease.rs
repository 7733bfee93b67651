//! [`Lease`] and [`OwnedLease`]: a connection on loan from the pool,
//! returned when dropped; the first borrows the pool handle, the second
//! holds one of its own.

use crate::connector::Connector;
use crate::pool::Pool;
use crate::shared::EntryOf;
use leasehold_policies::unstable::Held;
use leasehold_policies::{Policy, State, Strict};
use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

/// A leased connection that borrows the pool handle it came from
/// ([`Pool::lease`], [`Pool::lease_async`]); see [`Leased`].
pub type Lease<'a, C, P = Strict> = Leased<C, P, &'a Pool<C, P>>;

/// A leased connection that holds a handle to its pool, so it is `'static`
/// (it can be stored, or moved into a spawned task): from
/// [`Pool::lease_owned`] or [`Lease::into_owned`]; see [`Leased`]. The
/// pool is not shut down by dropping its other handles while one is out;
/// if it holds the last one, dropping it shuts the pool down, which may
/// block for up to the [shutdown grace](crate::Builder::shutdown_grace).
pub type OwnedLease<C, P = Strict> = Leased<C, P, Pool<C, P>>;

/// A leased connection. Dereferences to the connection; goes back to the
/// pool when dropped. `H` is how it reaches its pool: borrowed in a
/// [`Lease`], owned in an [`OwnedLease`].
///
/// * [`discard`](Self::discard) closes it instead (its state is unknown, the
///   peer misbehaved…).
/// * A lease dropped while its thread panics is discarded too: whatever the
///   holder was doing with the connection was cut short.
/// * It is `Send` when the connection is, so it can move to another
///   thread.
pub struct Leased<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> {
    pool: H,
    /// The right to the connection, which stays where the policy keeps it
    /// (leasing and returning copy nothing); `None` once given back.
    held: Option<Held>,
    _pool: PhantomData<fn() -> Pool<C, P>>,
    /// Ties `Send` and `Sync` to the connection's: a `&Leased` hands out
    /// `&C::Conn`, so sharing one across threads needs `C::Conn: Sync`.
    _conn: PhantomData<C::Conn>,
}

impl<'a, C: Connector, P: Policy> Lease<'a, C, P> {
    /// The same lease, holding a handle to the pool of its own instead of
    /// borrowing one (a clone of the handle: no connection moves).
    pub fn into_owned(mut self) -> OwnedLease<C, P> {
        Leased::new(Pool::clone(self.pool), self.held.take())
    }
}

impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> Leased<C, P, H> {
    pub(crate) fn new(pool: H, held: impl Into<Option<Held>>) -> Self {
        Self {
            pool,
            held: held.into(),
            _pool: PhantomData,
            _conn: PhantomData,
        }
    }

    #[inline]
    fn pool(&self) -> &Pool<C, P> {
        self.pool.borrow()
    }

    #[inline]
    fn entry(&self) -> &EntryOf<C> {
        let held = self
            .held
            .as_ref()
            .expect("a live lease holds its connection");
        self.pool().shared().item(held)
    }

    #[inline]
    fn entry_mut(&mut self) -> &mut EntryOf<C> {
        let held = self
            .held
            .as_mut()
            .expect("a live lease holds its connection");
        self.pool.borrow().shared().item_mut(held)
    }

    #[inline]
    fn conn(&self) -> &C::Conn {
        let conn = self.entry().conn.as_ref();
        conn.expect("a live lease's connection is in place")
    }

    #[inline]
    fn conn_mut(&mut self) -> &mut C::Conn {
        let conn = self.entry_mut().conn.as_mut();
        conn.expect("a live lease's connection is in place")
    }

    /// Takes the connection out of the pool for good: the caller owns it
    /// and closes it; the pool stops watching it (its registration with
    /// the event loop is removed here), counts it as closed and gives its
    /// capacity to the next request.
    ///
    /// ```
    /// use leasehold::{mock::MockConnector, Pool};
    ///
    /// let pool = Pool::builder(MockConnector::<u32>::new()).build()?;
    /// let conn = pool.lease(&1)?.detach();
    /// assert_eq!(pool.route_stats(&1).leased, 0);
    /// drop(conn);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn detach(mut self) -> C::Conn {
        if let Some(watch) = &self.entry().watch {
            // The caller's descriptor would keep the registration alive.
            watch.unregister(self.pool().shared().registry());
        }
        let conn = self.entry_mut().conn.take();
        let conn = conn.expect("a live lease's connection is in place");
        self.discard();
        conn
    }

    /// Closes the connection instead of returning it; its capacity goes to
    /// the next request.
    pub fn discard(mut self) {
        if let Some(held) = self.held.take() {
            self.pool().shared().give_back(held, false);
        }
    }

    /// The connection's state token.
    pub fn state(&self) -> Option<&State> {
        self.entry().state.as_ref()
    }

    /// Sets the connection's state token (for example, once it has
    /// authenticated as a user): from then on only leases asking for that
    /// state get it.
    pub fn set_state(&mut self, state: Option<State>) {
        self.entry_mut().state = state;
    }

    /// When the connection was opened.
    pub fn created(&self) -> Instant {
        self.entry().created
    }

    /// The route the connection goes to.
    pub fn route(&self) -> &C::Route {
        &self.entry().route
    }
}

impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> Deref for Leased<C, P, H> {
    type Target = C::Conn;
    fn deref(&self) -> &C::Conn {
        self.conn()
    }
}

impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> DerefMut for Leased<C, P, H> {
    fn deref_mut(&mut self) -> &mut C::Conn {
        self.conn_mut()
    }
}

/// Reads from the connection, so a lease goes where a reader does.
impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> std::io::Read for Leased<C, P, H>
where
    C::Conn: std::io::Read,
{
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.conn_mut().read(buf)
    }

    fn read_vectored(&mut self, bufs: &mut [std::io::IoSliceMut<'_>]) -> std::io::Result<usize> {
        self.conn_mut().read_vectored(bufs)
    }
}

/// Writes to the connection, so a lease goes where a writer does.
impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> std::io::Write for Leased<C, P, H>
where
    C::Conn: std::io::Write,
{
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.conn_mut().write(buf)
    }

    fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        self.conn_mut().write_vectored(bufs)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.conn_mut().flush()
    }
}

impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> Drop for Leased<C, P, H> {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let reuse = !std::thread::panicking();
            self.pool().shared().give_back(held, reuse);
        }
    }
}

impl<C: Connector, P: Policy, H: Borrow<Pool<C, P>>> fmt::Debug for Leased<C, P, H>
where
    C::Conn: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("conn", self.conn())
            .field("state", &self.entry().state)
            .finish()
    }
}
