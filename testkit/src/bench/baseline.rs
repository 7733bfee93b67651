//! Two reference designs, measured in the same runs as the pools:
//!
//! * [`MutexPool`], the textbook pool: idle connections in a `Mutex<Vec>`,
//!   waiters on a `Condvar`. What a pool costs when it is written the
//!   obvious way.
//! * [`HikariBag`], the idea behind HikariCP's `ConcurrentBag`: each thread
//!   remembers the connections it returned and first tries to claim one of
//!   those again with a CAS on the connection's state, then scans the shared
//!   list the same way, and only then waits. When a thread finds its own
//!   connection again a cycle is two atomic operations on a line nobody else
//!   touches, the fastest design there is for that case; the benchmark
//!   targets measure `Lax` against it.
//!
//! The bag is reduced to what the cycle exercises: no connection creation,
//! eviction or timeouts, and waiting on a `Condvar` where HikariCP hands a
//! returned connection to a waiter through a `SynchronousQueue` (after
//! yielding in a loop while anyone waits). Both hold [`MockConn`]s made by a
//! [`MockConnector`], the same objects the pools under test hold.

use leasehold::mock::{MockConn, MockConnector};
use leasehold::{Connector, Progress};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// A fresh mock connection from `connector` (the peers' managers in
/// `contention.rs` make theirs with it too).
pub fn connect(connector: &MockConnector) -> MockConn {
    match connector.connect(&()) {
        Ok(Progress::Ready(conn)) => conn,
        _ => unreachable!("the mock connects at once"),
    }
}

/// `n` fresh mock connections from `connector`.
fn connections(connector: &MockConnector, n: usize) -> impl Iterator<Item = MockConn> + '_ {
    (0..n).map(|_| connect(connector))
}

// ---------------------------------------------------------------------------
// Mutex<Vec> + Condvar

/// Idle connections in a `Mutex<Vec>`, waiters on a `Condvar`.
#[derive(Debug)]
pub struct MutexPool {
    idle: Mutex<Vec<MockConn>>,
    returned: Condvar,
}

/// A connection leased from a [`MutexPool`], returned on drop.
#[derive(Debug)]
pub struct MutexLease<'a> {
    pool: &'a MutexPool,
    conn: Option<MockConn>,
}

impl MutexPool {
    /// A pool holding `size` idle connections from `connector`.
    pub fn new(connector: &MockConnector, size: usize) -> Self {
        Self {
            idle: Mutex::new(connections(connector, size).collect()),
            returned: Condvar::new(),
        }
    }

    /// Waits for an idle connection.
    pub fn lease(&self) -> MutexLease<'_> {
        let mut idle = self.idle.lock().expect("not poisoned");
        loop {
            if let Some(conn) = idle.pop() {
                return MutexLease {
                    pool: self,
                    conn: Some(conn),
                };
            }
            idle = self.returned.wait(idle).expect("not poisoned");
        }
    }
}

impl Drop for MutexLease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.idle.lock().expect("not poisoned").push(conn);
            self.pool.returned.notify_one();
        }
    }
}

// ---------------------------------------------------------------------------
// HikariCP's ConcurrentBag, reduced

/// How many returned connections a thread remembers (HikariCP: 50).
const REMEMBERED: usize = 50;

thread_local! {
    /// The connections this thread returned, oldest first, as (bag, index).
    static RETURNED_HERE: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

/// Tells bags apart in [`RETURNED_HERE`].
static NEXT_BAG: AtomicUsize = AtomicUsize::new(0);

/// A fixed set of connections, each claimed by a CAS on its own flag.
#[derive(Debug)]
pub struct HikariBag {
    id: usize,
    entries: Vec<Entry>,
    /// Threads past their own list (HikariCP's `waiters`).
    waiters: AtomicUsize,
    lock: Mutex<()>,
    returned: Condvar,
}

#[derive(Debug)]
struct Entry {
    in_use: AtomicBool,
    conn: MockConn,
}

impl HikariBag {
    /// A bag of `size` idle connections from `connector`.
    pub fn new(connector: &MockConnector, size: usize) -> Self {
        let entries = connections(connector, size)
            .map(|conn| Entry {
                in_use: AtomicBool::new(false),
                conn,
            })
            .collect();
        Self {
            id: NEXT_BAG.fetch_add(1, Ordering::Relaxed),
            entries,
            waiters: AtomicUsize::new(0),
            lock: Mutex::new(()),
            returned: Condvar::new(),
        }
    }

    /// Claims a connection, runs `f` on it, and returns it.
    pub fn with_lease<R>(&self, f: impl FnOnce(&MockConn) -> R) -> R {
        let index = self.borrow();
        let result = f(&self.entries[index].conn);
        self.requite(index);
        result
    }

    fn claim(&self, index: usize) -> bool {
        // SeqCst: with `requite`'s store and the `waiters` counter, a waiter
        // either sees a returned connection or is seen and woken.
        self.entries[index]
            .in_use
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_ok()
    }

    fn scan(&self) -> Option<usize> {
        (0..self.entries.len()).find(|&index| self.claim(index))
    }

    fn borrow(&self) -> usize {
        // This thread's own returns first, newest first; like HikariCP, an
        // entry is forgotten once tried, claimed or not.
        let own = RETURNED_HERE.with_borrow_mut(|returned| {
            for at in (0..returned.len()).rev() {
                if returned[at].0 == self.id {
                    let (_, index) = returned.remove(at);
                    if self.claim(index) {
                        return Some(index);
                    }
                }
            }
            None
        });
        if let Some(index) = own {
            return index;
        }
        self.waiters.fetch_add(1, Ordering::SeqCst);
        let index = self.scan().unwrap_or_else(|| {
            // Scanning under the lock that `requite` takes before it
            // notifies means no return slips between a scan and the wait.
            let mut guard = self.lock.lock().expect("not poisoned");
            loop {
                if let Some(index) = self.scan() {
                    break index;
                }
                guard = self.returned.wait(guard).expect("not poisoned");
            }
        });
        self.waiters.fetch_sub(1, Ordering::SeqCst);
        index
    }

    fn requite(&self, index: usize) {
        self.entries[index].in_use.store(false, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            drop(self.lock.lock().expect("not poisoned"));
            self.returned.notify_one();
        }
        RETURNED_HERE.with_borrow_mut(|returned| {
            if returned.len() < REMEMBERED {
                returned.push((self.id, index));
            }
        });
    }
}
