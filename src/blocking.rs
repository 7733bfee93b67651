//! A connector for drivers whose connect blocks: [`BlockingConnector`]
//! runs a blocking `connect(&route)` on a small set of threads of its own,
//! never on a caller's thread nor on the event loop, and reports back to
//! the loop through a socket pair, so the pool's rules hold as for any
//! connector: the connect timeout (the connect is abandoned, and the
//! connection it produces later is dropped), errors by kind, panics turned
//! into connect errors.
//!
//! # Implementation details
//!
//! Each connect is a job in a queue that `threads` workers take from. The
//! job's result goes into a slot shared with its [`BlockingHandshake`],
//! then one byte goes down the socket pair whose other end the handshake
//! registered, which wakes the loop. A handshake dropped first (timed out,
//! or the pool shut down) marks the slot abandoned: a worker skips the job
//! if it has not started it, and drops the connection if it has. Workers
//! end when the connector (every clone of it) is dropped; one blocked in a
//! connect ends when that connect returns.

use crate::connector::{Connector, Handshake, Progress};
use leasehold_policies::RouteKey;
use mio::event::Source;
use mio::{Interest, Registry, Token};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;

/// Default for [`BlockingConnector::threads`]: connects that may run at
/// once.
pub const DEFAULT_CONNECT_THREADS: usize = 4;

/// The blocking connect a [`BlockingConnector`] runs.
type ConnectFn<R, T> = dyn Fn(&R) -> io::Result<T> + Send + Sync;

/// A connector for a driver whose connect blocks (a database client's
/// `connect`, a library that only offers blocking I/O): each connect runs
/// on one of a few threads the connector owns, under the pool's connect
/// timeout, and the pool lends out what it returns.
///
/// Connections are closed by dropping them; nothing watches them while
/// idle, so a pool of them wants an
/// [`idle_timeout`](crate::Builder::idle_timeout) or an
/// [`on_check_out`](crate::Builder::on_check_out) check where the server
/// may close idle connections.
///
/// # Examples
/// ```
/// use std::net::{SocketAddr, TcpListener, TcpStream};
/// use leasehold::{BlockingConnector, Pool};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let connector = BlockingConnector::new(|addr: &SocketAddr| TcpStream::connect(addr));
/// let pool = Pool::builder(connector).build()?;
/// let conn = pool.lease(&listener.local_addr()?)?;
/// assert_eq!(conn.peer_addr()?, listener.local_addr()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct BlockingConnector<R, T> {
    connect: Arc<ConnectFn<R, T>>,
    workers: Arc<Workers>,
}

impl<R: RouteKey, T: Send + 'static> BlockingConnector<R, T> {
    /// Runs `connect` for each new connection, on up to
    /// [`DEFAULT_CONNECT_THREADS`] threads at once.
    pub fn new(connect: impl Fn(&R) -> io::Result<T> + Send + Sync + 'static) -> Self {
        Self {
            connect: Arc::new(connect),
            workers: Arc::new(Workers::new(DEFAULT_CONNECT_THREADS)),
        }
    }

    /// How many connects may run at once (default
    /// [`DEFAULT_CONNECT_THREADS`], at least 1); more wait in a queue,
    /// their time counting against the connect timeout.
    pub fn threads(mut self, threads: usize) -> Self {
        self.workers = Arc::new(Workers::new(threads.max(1)));
        self
    }
}

impl<R, T> Clone for BlockingConnector<R, T> {
    fn clone(&self) -> Self {
        Self {
            connect: Arc::clone(&self.connect),
            workers: Arc::clone(&self.workers),
        }
    }
}

impl<R, T> fmt::Debug for BlockingConnector<R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.workers.queue();
        f.debug_struct("BlockingConnector")
            .field("threads", &self.workers.threads)
            .field("started", &queue.started)
            .field("queued", &queue.jobs.len())
            .finish()
    }
}

impl<R: RouteKey, T: Send + 'static> Connector for BlockingConnector<R, T> {
    type Route = R;
    type Conn = T;
    type Handshake = BlockingHandshake<T>;

    fn connect(&self, route: &R) -> io::Result<Progress<T, BlockingHandshake<T>>> {
        let (wake, listen) = UnixStream::pair()?;
        listen.set_nonblocking(true)?;
        let slot = Arc::new(Mutex::new(ResultCell::Waiting));
        let connect = Arc::clone(&self.connect);
        let route = route.clone();
        let job_slot = Arc::clone(&slot);
        let job: ThreadTask = Box::new(move || run(&*connect, &route, &job_slot, wake));
        self.workers.submit(job)?;
        Ok(Progress::Pending(BlockingHandshake {
            slot,
            listen: mio::net::UnixStream::from_std(listen),
        }))
    }
}

/// Where a connect's result waits for its handshake.
enum ResultCell<T> {
    Waiting,
    Done(io::Result<T>),
    /// The handshake is gone: nobody will take a result.
    Abandoned,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One connect, on a worker: skipped if abandoned already, its connection
/// dropped if abandoned meanwhile.
fn run<R, T>(
    connect: &ConnectFn<R, T>,
    route: &R,
    slot: &Mutex<ResultCell<T>>,
    mut wake: UnixStream,
) {
    if matches!(*lock(slot), ResultCell::Abandoned) {
        return;
    }
    let result = crate::unwind::guarded("the blocking connect", || connect(route))
        .unwrap_or_else(|| Err(io::Error::other("the blocking connect panicked")));
    let mut slot = lock(slot);
    if matches!(*slot, ResultCell::Abandoned) {
        drop(slot);
        drop(result);
        return;
    }
    *slot = ResultCell::Done(result);
    drop(slot);
    // The handshake may be gone by now; then nobody listens.
    let _ = wake.write_all(&[1]);
}

/// A connect running on a [`BlockingConnector`]'s thread; the event loop
/// hears of its end through a socket pair.
pub struct BlockingHandshake<T> {
    slot: Arc<Mutex<ResultCell<T>>>,
    listen: mio::net::UnixStream,
}

impl<T> fmt::Debug for BlockingHandshake<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*lock(&self.slot) {
            ResultCell::Waiting => "waiting",
            ResultCell::Done(Ok(_)) => "connected",
            ResultCell::Done(Err(_)) => "failed",
            ResultCell::Abandoned => "abandoned",
        };
        f.debug_struct("BlockingHandshake")
            .field("state", &state)
            .finish()
    }
}

impl<T> Source for BlockingHandshake<T> {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.listen.register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.listen.reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.listen.deregister(registry)
    }
}

impl<T: Send + 'static> Handshake for BlockingHandshake<T> {
    type Conn = T;

    fn interest(&self) -> Interest {
        Interest::READABLE
    }

    fn stage(&self) -> &'static str {
        "blocking connect"
    }

    fn advance(&mut self) -> io::Result<Option<T>> {
        let mut slot = lock(&self.slot);
        match std::mem::replace(&mut *slot, ResultCell::Abandoned) {
            ResultCell::Done(result) => {
                drop(slot);
                // The wake-up byte is spent; there is no other.
                let _ = self.listen.read(&mut [0; 1]);
                result.map(Some)
            }
            ResultCell::Waiting => {
                *slot = ResultCell::Waiting;
                Ok(None)
            }
            ResultCell::Abandoned => Err(io::Error::other(
                "the blocking connect has handed its connection over",
            )),
        }
    }
}

impl<T> Drop for BlockingHandshake<T> {
    fn drop(&mut self) {
        // A result not taken (a timed-out connect that finished since) is
        // dropped here; one still to come is dropped by its worker.
        let _ = std::mem::replace(&mut *lock(&self.slot), ResultCell::Abandoned);
    }
}

type ThreadTask = Box<dyn FnOnce() + Send>;

/// The connect threads and their queue.
struct Workers {
    threads: usize,
    shared: Arc<(Mutex<Queue>, Condvar)>,
}

struct Queue {
    jobs: VecDeque<ThreadTask>,
    /// Threads started so far (they start as jobs arrive).
    started: usize,
    /// Threads waiting for a job.
    idle: usize,
    /// The connector is gone: threads end.
    closed: bool,
}

impl Workers {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            shared: Arc::new((
                Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    started: 0,
                    idle: 0,
                    closed: false,
                }),
                Condvar::new(),
            )),
        }
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        lock(&self.shared.0)
    }

    /// Queues `job`, starting a thread for it if none is idle and the cap
    /// allows.
    fn submit(&self, job: ThreadTask) -> io::Result<()> {
        let mut queue = self.queue();
        queue.jobs.push_back(job);
        if queue.idle == 0 && queue.started < self.threads {
            let shared = Arc::clone(&self.shared);
            thread::Builder::new()
                .name("leasehold-connect".into())
                .spawn(move || work(&shared))
                .inspect_err(|_| {
                    queue.jobs.pop_back();
                })?;
            queue.started += 1;
        } else {
            self.shared.1.notify_one();
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.queue().closed = true;
        self.shared.1.notify_all();
    }
}

/// A connect thread: runs jobs until the connector is gone.
fn work(shared: &(Mutex<Queue>, Condvar)) {
    let (queue, ready) = shared;
    let mut guard = lock(queue);
    loop {
        if let Some(job) = guard.jobs.pop_front() {
            drop(guard);
            job();
            guard = lock(queue);
            continue;
        }
        if guard.closed {
            guard.started -= 1;
            return;
        }
        guard.idle += 1;
        guard = ready.wait(guard).unwrap_or_else(PoisonError::into_inner);
        guard.idle -= 1;
    }
}
