//! An in-memory connector for tests, benchmarks and examples (cargo
//! feature `test-util`).
//!
//! [`MockConnector`] connects at once (no sockets, no readiness machinery),
//! counts every connection it opens, every one the pool closes (and how many
//! of those it aborted) and every one that is dropped, and can be told to
//! fail or to take a while. Its connections record the bytes written to them
//! and how often they were leased, so a test can assert reuse and
//! conservation exactly.

use crate::connector::{Connector, Never, Progress};
use leasehold_policies::RouteKey;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
struct MockCounters {
    next_id: AtomicU64,
    opened: AtomicU64,
    dropped: AtomicU64,
    closed_by_pool: AtomicU64,
    aborted: AtomicU64,
    failures_left: AtomicUsize,
    failure: Mutex<Option<io::ErrorKind>>,
    latency: Mutex<Duration>,
}

/// A connector of in-memory connections, for routes of type `R`.
///
/// ```
/// use leasehold::mock::MockConnector;
/// use leasehold::Pool;
///
/// let connector = MockConnector::<&str>::new();
/// let pool: Pool<_> = Pool::builder(connector.clone()).max_total(2).build()?;
/// let lease = pool.lease(&"backend")?;
/// assert_eq!(lease.route(), &"backend");
/// drop(lease);
/// assert_eq!(connector.opened(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct MockConnector<R = ()> {
    counters: Arc<MockCounters>,
    _route: PhantomData<fn() -> R>,
}

impl<R> Clone for MockConnector<R> {
    fn clone(&self) -> Self {
        Self {
            counters: self.counters.clone(),
            _route: PhantomData,
        }
    }
}

impl<R> Default for MockConnector<R> {
    fn default() -> Self {
        Self {
            counters: Arc::default(),
            _route: PhantomData,
        }
    }
}

impl<R> fmt::Debug for MockConnector<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConnector")
            .field("opened", &self.opened())
            .field("dropped", &self.dropped())
            .field("aborted", &self.aborted())
            .finish()
    }
}

impl<R> MockConnector<R> {
    /// A connector that connects at once and never fails.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the next `count` connects fail with `kind`.
    pub fn fail_next(&self, count: usize, kind: io::ErrorKind) {
        *self.counters.failure.lock().unwrap() = Some(kind);
        self.counters.failures_left.store(count, Ordering::SeqCst);
    }

    /// Makes every connect sleep `latency` before it succeeds (a slow
    /// backend; the sleep blocks the connecting thread).
    pub fn set_latency(&self, latency: Duration) {
        *self.counters.latency.lock().unwrap() = latency;
    }

    /// Connections opened so far.
    pub fn opened(&self) -> u64 {
        self.counters.opened.load(Ordering::SeqCst)
    }

    /// Connections dropped so far (closed by the pool or by their holder).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::SeqCst)
    }

    /// Connections the pool closed: through [`Connector::close`], or
    /// through [`Connector::abort`] (counted in [`aborted`](Self::aborted)
    /// as well).
    pub fn closed_by_pool(&self) -> u64 {
        self.counters.closed_by_pool.load(Ordering::SeqCst)
    }

    /// Connections the pool closed through [`Connector::abort`] (its
    /// disposal queue was full): a part of
    /// [`closed_by_pool`](Self::closed_by_pool).
    pub fn aborted(&self) -> u64 {
        self.counters.aborted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn live(&self) -> u64 {
        self.opened() - self.dropped()
    }
}

impl<R: RouteKey> Connector for MockConnector<R> {
    type Route = R;
    type Conn = MockConn<R>;
    type Handshake = Never<MockConn<R>>;

    fn connect(&self, route: &R) -> io::Result<Progress<MockConn<R>, Never<MockConn<R>>>> {
        let latency = *self.counters.latency.lock().unwrap();
        if !latency.is_zero() {
            std::thread::sleep(latency);
        }
        let failing = self
            .counters
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            let kind = self
                .counters
                .failure
                .lock()
                .unwrap()
                .unwrap_or(io::ErrorKind::Other);
            return Err(io::Error::new(kind, "mock connect failure"));
        }
        self.counters.opened.fetch_add(1, Ordering::SeqCst);
        Ok(Progress::Ready(MockConn {
            id: self.counters.next_id.fetch_add(1, Ordering::SeqCst),
            route: route.clone(),
            written: Vec::new(),
            leases: 0,
            counters: self.counters.clone(),
        }))
    }

    fn close(&self, conn: MockConn<R>) {
        self.counters.closed_by_pool.fetch_add(1, Ordering::SeqCst);
        drop(conn);
    }

    fn abort(&self, conn: MockConn<R>) {
        self.counters.aborted.fetch_add(1, Ordering::SeqCst);
        self.close(conn);
    }
}

/// A connection made by [`MockConnector`].
pub struct MockConn<R = ()> {
    id: u64,
    route: R,
    written: Vec<u8>,
    leases: u64,
    counters: Arc<MockCounters>,
}

impl<R> MockConn<R> {
    /// A number unique among this connector's connections.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The route it was opened for.
    pub fn route(&self) -> &R {
        &self.route
    }

    /// Everything written to it.
    pub fn written(&self) -> &[u8] {
        &self.written
    }

    /// A use counter the holder may bump (tests use it to see reuse).
    pub fn touch(&mut self) -> u64 {
        self.leases += 1;
        self.leases
    }
}

impl<R> io::Write for MockConn<R> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R> Drop for MockConn<R> {
    fn drop(&mut self) {
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl<R: fmt::Debug> fmt::Debug for MockConn<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConn")
            .field("id", &self.id)
            .field("route", &self.route)
            .finish_non_exhaustive()
    }
}
