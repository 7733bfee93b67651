//! What a pool costs per request on real loopback servers, with the CPU of
//! leasehold's own event loop (the `leasehold-reactor` thread) counted
//! apart, beside r2d2 and bb8, which run no such thread.
//!
//! Backends, each on 127.0.0.1:
//!
//! * HTTP/1.1 keep-alive `GET /` to the embedded server of the tests
//!   (`leasehold_testkit::http`, in this process, a thread per connection);
//! * Redis `GET key` of a 100-byte value, spoken in RESP over the
//!   connection, to a `redis-server` this bench starts on a free port and
//!   kills at the end. Without `redis-server` on `PATH` the Redis table is
//!   skipped, with a line that says so.
//!
//! Pools, each with at most 8 connections to the one route, warmed to 8
//! open connections before timing, every read and write bounded by a 5 s
//! socket timeout:
//!
//! * `leasehold Strict, threads`: `Pool<TcpConnector, Strict>::lease` on
//!   OS threads;
//! * `leasehold Strict, tasks`: the same pool through `lease_async`, on a
//!   tokio multi-thread runtime with 2 worker threads;
//! * `r2d2, threads` and `bb8, tasks` (same runtime shape), over a
//!   `std::net::TcpStream` with `TCP_NODELAY`, with their per-checkout
//!   health check off.
//!
//! Every connection is a blocking `std::net::TcpStream`, so the async rows
//! do their request's write and read blocking, inside the task: a loopback
//! reply takes microseconds, and both async pools pay the same.
//!
//! With 1, 8 and 64 workers (threads or tasks), each worker loops: lease,
//! one request, read the full response, give the connection back. After a
//! 0.3 s warm-up the bench times a window of 2 s (`LOOP_COST_SECS` sets
//! another, in seconds). `LOOP_COST_ROUNDS=N` measures every row N times,
//! each round through all rows in turn, and reports each column's median:
//! on a small shared machine one round of a row can land on a lucky or an
//! unlucky placement of client and server threads on the cores (one worker
//! especially), so compare pools over several rounds. On a virtual
//! machine, a reply that wakes a thread on an idle core can cost ten times
//! one served on a busy core; `taskset -c 0 cargo bench --bench loop_cost`
//! puts every thread of the bench, and the Redis server it starts, on one
//! core, which takes that out of the comparison (and parallelism with it).
//!
//! ```text
//! cargo bench --bench loop_cost            # both backends
//! cargo bench --bench loop_cost -- redis   # one backend: http or redis
//! LOOP_COST_SECS=5 LOOP_COST_ROUNDS=3 cargo bench --bench loop_cost
//! ```
//!
//! # Columns
//!
//! * `requests/s`: requests completed in the window, per second;
//! * `p99 µs`: 99th percentile of a request's time, lease to return
//!   (requests that start and end in the window);
//! * `loop CPU µs/req`: CPU time of the `leasehold-reactor` thread in the
//!   window (first field of `/proc/self/task/<tid>/schedstat`, ns), per
//!   request; `–` for the peers, which have no event loop;
//! * `loop runs/req`: how many times the event loop thread was put on a
//!   CPU in the window (third field of the same `schedstat`: about its
//!   wake-ups), per request;
//! * `process CPU µs/req`: the whole process's CPU time in the window
//!   (`CLOCK_PROCESS_CPUTIME_ID`: every thread, the pool's, the workers',
//!   the runtime's), per request, less the threads of the embedded HTTP
//!   server (`http-*`), so that the HTTP and Redis tables both count the
//!   client side only.
//!
//! Under the tables, leasehold's requests/s over the better of r2d2 and
//! bb8 at each worker count, and like for like (threads over r2d2, tasks
//! over bb8). A line above them names the machine, its
//! load average and the date: timings from a shared machine are only
//! comparable within one run.

use leasehold_testkit::http;

use leasehold_testkit::bench::report;
use leasehold_testkit::machine;

use hdrhistogram::Histogram;
use leasehold::{Pool, Strict, TcpConnector};
use std::fmt::Write as _;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Connections per pool, all to the one route.
const POOL_SIZE: usize = 8;

/// Workers (threads or tasks) per row.
const WORKER_COUNTS: [usize; 3] = [1, 8, 64];

/// Untimed running before each window.
const WARM_UP: Duration = Duration::from_millis(300);

/// The window unless `LOOP_COST_SECS` says otherwise.
const DEFAULT_WINDOW: Duration = Duration::from_secs(2);

/// Bound on every socket read and write, and on every lease.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a started `redis-server` has to accept a connection.
const SERVER_START: Duration = Duration::from_secs(5);

/// Worker threads of the tokio runtime of the async rows.
const RUNTIME_WORKERS: usize = 2;

/// `comm` of the event loop thread: `leasehold-reactor`, cut to the 15
/// bytes the kernel keeps.
const REACTOR_COMM: &str = "leasehold-react";

/// Prefix of the embedded HTTP server's thread names.
const HTTP_SERVER_COMM: &str = "http-";

/// The Redis key every request reads, and the length of its value.
const REDIS_KEY: &str = "key";
const REDIS_VALUE_LEN: usize = 100;

/// `GET key` in RESP.
const REDIS_GET: &[u8] = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";

/// What one request is, on an open connection to its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Http,
    Redis,
}

impl Backend {
    /// Sends one request on `stream` and reads its whole response.
    ///
    /// # Panics
    /// On an I/O error (a 5 s timeout included) or an unexpected response.
    fn request(self, stream: &mut TcpStream) {
        match self {
            Backend::Http => {
                let response = http::get(stream, "/").expect("HTTP GET on a pooled connection");
                assert_eq!(response.status, 200, "HTTP status");
            }
            Backend::Redis => redis_get(stream),
        }
    }

    fn title(self) -> &'static str {
        match self {
            Backend::Http => "HTTP/1.1 keep-alive GET (embedded loopback server, 2-byte body)",
            Backend::Redis => "Redis GET of a 100-byte value (loopback redis-server)",
        }
    }

    fn filter_name(self) -> &'static str {
        match self {
            Backend::Http => "http",
            Backend::Redis => "redis",
        }
    }
}

/// The pools compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    LeaseholdThreads,
    LeaseholdTasks,
    R2d2Threads,
    Bb8Tasks,
}

impl PoolKind {
    const ALL: [PoolKind; 4] = [
        PoolKind::LeaseholdThreads,
        PoolKind::LeaseholdTasks,
        PoolKind::R2d2Threads,
        PoolKind::Bb8Tasks,
    ];

    fn name(self) -> &'static str {
        match self {
            PoolKind::LeaseholdThreads => "leasehold Strict, threads",
            PoolKind::LeaseholdTasks => "leasehold Strict, tasks",
            PoolKind::R2d2Threads => "r2d2, threads",
            PoolKind::Bb8Tasks => "bb8, tasks",
        }
    }
}

/// Where the workers are: warming up, in the timed window, or told to stop.
#[derive(Debug)]
struct Phase(AtomicU8);

const WARMING: u8 = 0;
const TIMED: u8 = 1;
const STOPPED: u8 = 2;

impl Phase {
    fn new() -> Self {
        Phase(AtomicU8::new(WARMING))
    }

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, phase: u8) {
        self.0.store(phase, Ordering::Release);
    }
}

/// One worker's tally: requests completed in the window, and the times of
/// those that also started in it.
#[derive(Debug)]
struct Tally {
    completed: u64,
    latencies: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            completed: 0,
            // 1 ns to 60 s, 3 significant digits.
            latencies: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .expect("valid histogram bounds"),
        }
    }

    /// Counts a request that started in `before` and ended in `after`.
    fn note(&mut self, before: u8, after: u8, took: Duration) {
        if after == TIMED {
            self.completed += 1;
            if before == TIMED {
                let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
                self.latencies.saturating_record(ns.max(1));
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.completed += other.completed;
        self.latencies
            .add(&other.latencies)
            .expect("histograms of the same bounds");
    }
}

/// A blocking worker: `one` request after another until the phase says
/// stop.
fn worker_on_thread(phase: &Phase, mut one: impl FnMut()) -> Tally {
    let mut tally = Tally::new();
    loop {
        let before = phase.get();
        if before == STOPPED {
            return tally;
        }
        let start = Instant::now();
        one();
        tally.note(before, phase.get(), start.elapsed());
    }
}

/// An async worker: as [`worker_on_thread`], awaiting each request.
async fn worker_on_task<F, Fut>(phase: Arc<Phase>, mut one: F) -> Tally
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tally = Tally::new();
    loop {
        let before = phase.get();
        if before == STOPPED {
            return tally;
        }
        let start = Instant::now();
        one().await;
        tally.note(before, phase.get(), start.elapsed());
    }
}

/// CPU clocks read at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    process_ns: u64,
    http_server_ns: u64,
    reactor: Option<ThreadClock>,
}

impl CpuSample {
    fn take(reactor: Option<u32>) -> Self {
        CpuSample {
            process_ns: process_cpu_ns(),
            http_server_ns: threads_named(|comm| comm.starts_with(HTTP_SERVER_COMM))
                .into_iter()
                .filter_map(|tid| thread_clock(tid).map(|clock| clock.cpu_ns))
                .sum(),
            reactor: reactor.map(|tid| {
                thread_clock(tid).expect("the event loop thread ended during the window")
            }),
        }
    }
}

/// CPU time of the whole process, every thread that ever ran in it
/// included.
fn process_cpu_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` for the duration of the
    // call, and CLOCK_PROCESS_CPUTIME_ID is a clock every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut now) };
    assert_eq!(
        rc,
        0,
        "clock_gettime(CLOCK_PROCESS_CPUTIME_ID): {}",
        io::Error::last_os_error()
    );
    let secs = u64::try_from(now.tv_sec).expect("non-negative CPU time");
    let nanos = u64::try_from(now.tv_nsec).expect("non-negative CPU time");
    secs * 1_000_000_000 + nanos
}

/// The ids of this process's threads whose `comm` passes `wanted`.
fn threads_named(wanted: impl Fn(&str) -> bool) -> Vec<u32> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    let mut found = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read.
        if let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) {
            if wanted(comm.trim_end()) {
                found.push(tid);
            }
        }
    }
    found
}

/// A thread's `schedstat`: CPU time and the times it was put on a CPU.
#[derive(Debug, Clone, Copy)]
struct ThreadClock {
    cpu_ns: u64,
    runs: u64,
}

/// The clock of thread `tid` of this process, from the first and third
/// fields of its `schedstat`; `None` once the thread is gone.
fn thread_clock(tid: u32) -> Option<ThreadClock> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let fields: Vec<u64> = stat
        .split_whitespace()
        .map(|field| field.parse().expect("a number in schedstat"))
        .collect();
    match fields[..] {
        [cpu_ns, _, runs, ..] => Some(ThreadClock { cpu_ns, runs }),
        _ => panic!("schedstat of thread {tid} has fewer than 3 fields: {stat:?}"),
    }
}

/// The event loop thread of the one leasehold pool alive.
///
/// # Panics
/// Unless exactly one such thread exists.
fn reactor_thread() -> u32 {
    let found = threads_named(|comm| comm == REACTOR_COMM);
    match found[..] {
        [tid] => tid,
        _ => panic!(
            "expected one `{REACTOR_COMM}` thread, found {}",
            found.len()
        ),
    }
}

/// What one row measured: the columns of the table.
#[derive(Debug, Clone, Copy)]
struct Row {
    pool: PoolKind,
    workers: usize,
    requests_per_sec: f64,
    p99_us: f64,
    /// The event loop's CPU time per request, in µs; leasehold only.
    loop_cpu_us: Option<f64>,
    /// The event loop's runs per request; leasehold only.
    loop_runs: Option<f64>,
    process_cpu_us: f64,
}

impl Row {
    /// Each column's median over `rounds`, all of one pool and worker
    /// count.
    fn median(rounds: &[Row]) -> Row {
        fn median(mut values: Vec<f64>) -> f64 {
            values.sort_by(f64::total_cmp);
            let mid = values.len() / 2;
            if values.len() % 2 == 0 {
                (values[mid - 1] + values[mid]) / 2.0
            } else {
                values[mid]
            }
        }
        let column = |f: fn(&Row) -> f64| median(rounds.iter().map(f).collect());
        let optional = |f: fn(&Row) -> Option<f64>| {
            let values: Option<Vec<f64>> = rounds.iter().map(f).collect();
            values.map(median)
        };
        Row {
            pool: rounds[0].pool,
            workers: rounds[0].workers,
            requests_per_sec: column(|r| r.requests_per_sec),
            p99_us: column(|r| r.p99_us),
            loop_cpu_us: optional(|r| r.loop_cpu_us),
            loop_runs: optional(|r| r.loop_runs),
            process_cpu_us: column(|r| r.process_cpu_us),
        }
    }
}

/// Runs the warm-up and the window while the workers loop, then tells them
/// to stop. The CPU clocks are read right around the window.
fn time_window(
    phase: &Phase,
    window: Duration,
    reactor: Option<u32>,
) -> (Duration, CpuSample, CpuSample) {
    thread::sleep(WARM_UP);
    let start_cpu = CpuSample::take(reactor);
    let start = Instant::now();
    phase.set(TIMED);
    thread::sleep(window);
    phase.set(STOPPED);
    let took = start.elapsed();
    let end_cpu = CpuSample::take(reactor);
    (took, start_cpu, end_cpu)
}

fn row(
    pool: PoolKind,
    workers: usize,
    tally: Tally,
    window: Duration,
    (start, end): (CpuSample, CpuSample),
) -> Row {
    let server = end.http_server_ns.saturating_sub(start.http_server_ns);
    let requests = tally.completed.max(1) as f64;
    let per_request_us = |ns: u64| ns as f64 / 1_000.0 / requests;
    let event_loop = start.reactor.zip(end.reactor);
    Row {
        pool,
        workers,
        requests_per_sec: tally.completed as f64 / window.as_secs_f64(),
        p99_us: tally.latencies.value_at_quantile(0.99) as f64 / 1_000.0,
        loop_cpu_us: event_loop.map(|(a, b)| per_request_us(b.cpu_ns.saturating_sub(a.cpu_ns))),
        loop_runs: event_loop.map(|(a, b)| b.runs.saturating_sub(a.runs) as f64 / requests),
        process_cpu_us: per_request_us(
            end.process_ns
                .saturating_sub(start.process_ns)
                .saturating_sub(server),
        ),
    }
}

fn tcp_connector() -> TcpConnector {
    TcpConnector::new()
        .nodelay(true)
        .read_timeout(Some(IO_TIMEOUT))
        .write_timeout(Some(IO_TIMEOUT))
}

fn leasehold_pool() -> Pool<TcpConnector, Strict> {
    Pool::builder(tcp_connector())
        .max_total(POOL_SIZE)
        .max_per_route(POOL_SIZE)
        .acquire_timeout(IO_TIMEOUT)
        .build()
        .expect("valid leasehold config")
}

/// Fails unless the pool holds `POOL_SIZE` idle connections.
fn assert_warm(pool: &Pool<TcpConnector, Strict>) {
    let total = pool.stats().total;
    assert_eq!(
        (total.idle, total.leased),
        (POOL_SIZE, 0),
        "leasehold pool not warmed to {POOL_SIZE} idle connections"
    );
}

/// Checks that no event loop outlived its pool.
///
/// A joined thread leaves `/proc` a moment after the join returns (the
/// kernel wakes the joiner before it reaps the thread), so this looks again
/// for up to a second.
fn assert_reactor_gone() {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = threads_named(|comm| comm == REACTOR_COMM);
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} event loop thread(s) outlived their pool",
            left.len()
        );
        thread::sleep(Duration::from_millis(1));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKERS)
        .enable_time()
        .build()
        .expect("tokio runtime")
}

fn leasehold_threads(backend: Backend, addr: SocketAddr, workers: usize, window: Duration) -> Row {
    let pool = leasehold_pool();
    let held: Vec<_> = (0..POOL_SIZE)
        .map(|_| pool.lease(&addr).expect("warm-up lease"))
        .collect();
    drop(held);
    assert_warm(&pool);
    let reactor = reactor_thread();
    let phase = Phase::new();
    let (took, cpu, tally) = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    worker_on_thread(&phase, || {
                        let mut conn = pool.lease(&addr).expect("lease");
                        backend.request(&mut conn);
                    })
                })
            })
            .collect();
        let (took, start, end) = time_window(&phase, window, Some(reactor));
        let mut tally = Tally::new();
        for handle in handles {
            tally.merge(handle.join().expect("a worker thread panicked"));
        }
        (took, (start, end), tally)
    });
    drop(pool);
    assert_reactor_gone();
    row(PoolKind::LeaseholdThreads, workers, tally, took, cpu)
}

fn leasehold_tasks(backend: Backend, addr: SocketAddr, workers: usize, window: Duration) -> Row {
    let runtime = runtime();
    let pool = Arc::new(leasehold_pool());
    runtime.block_on(async {
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            held.push(pool.lease_async(&addr).await.expect("warm-up lease"));
        }
    });
    assert_warm(&pool);
    let reactor = reactor_thread();
    let phase = Arc::new(Phase::new());
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, phase) = (pool.clone(), phase.clone());
            runtime.spawn(async move {
                worker_on_task(phase, || async {
                    let mut conn = pool.lease_async(&addr).await.expect("lease");
                    backend.request(&mut conn);
                })
                .await
            })
        })
        .collect();
    let (took, start, end) = time_window(&phase, window, Some(reactor));
    let tally = join_tasks(&runtime, handles);
    runtime.shutdown_timeout(IO_TIMEOUT);
    drop(pool);
    assert_reactor_gone();
    row(PoolKind::LeaseholdTasks, workers, tally, took, (start, end))
}

fn join_tasks(
    runtime: &tokio::runtime::Runtime,
    handles: Vec<tokio::task::JoinHandle<Tally>>,
) -> Tally {
    runtime.block_on(async {
        let mut tally = Tally::new();
        for handle in handles {
            tally.merge(handle.await.expect("a worker task panicked"));
        }
        tally
    })
}

/// Opens a peer's connection as `TcpConnector` opens leasehold's.
fn peer_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(stream)
}

/// r2d2's and bb8's connections: a plain stream to one address.
#[derive(Debug)]
struct StreamManager(SocketAddr);

impl r2d2::ManageConnection for StreamManager {
    type Connection = TcpStream;
    type Error = io::Error;

    fn connect(&self) -> io::Result<TcpStream> {
        peer_connect(self.0)
    }

    fn is_valid(&self, _: &mut TcpStream) -> io::Result<()> {
        Ok(())
    }

    fn has_broken(&self, _: &mut TcpStream) -> bool {
        false
    }
}

impl bb8::ManageConnection for StreamManager {
    type Connection = TcpStream;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<TcpStream> {
        peer_connect(self.0)
    }

    async fn is_valid(&self, _: &mut TcpStream) -> io::Result<()> {
        Ok(())
    }

    fn has_broken(&self, _: &mut TcpStream) -> bool {
        false
    }
}

fn r2d2_threads(backend: Backend, addr: SocketAddr, workers: usize, window: Duration) -> Row {
    let size = u32::try_from(POOL_SIZE).expect("pool size fits u32");
    // `build` returns once `min_idle` connections are open.
    let pool = r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(size))
        .test_on_check_out(false)
        .connection_timeout(IO_TIMEOUT)
        .build(StreamManager(addr))
        .expect("valid r2d2 config");
    let held: Vec<_> = (0..POOL_SIZE)
        .map(|_| pool.get().expect("warm-up get"))
        .collect();
    drop(held);
    let phase = Phase::new();
    let (took, cpu, tally) = thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    worker_on_thread(&phase, || {
                        let mut conn = pool.get().expect("r2d2 get");
                        backend.request(&mut conn);
                    })
                })
            })
            .collect();
        let (took, start, end) = time_window(&phase, window, None);
        let mut tally = Tally::new();
        for handle in handles {
            tally.merge(handle.join().expect("a worker thread panicked"));
        }
        (took, (start, end), tally)
    });
    row(PoolKind::R2d2Threads, workers, tally, took, cpu)
}

fn bb8_tasks(backend: Backend, addr: SocketAddr, workers: usize, window: Duration) -> Row {
    let runtime = runtime();
    let pool = runtime.block_on(async {
        let pool = bb8::Pool::builder()
            .max_size(u32::try_from(POOL_SIZE).expect("pool size fits u32"))
            .test_on_check_out(false)
            .connection_timeout(IO_TIMEOUT)
            .build(StreamManager(addr))
            .await
            .expect("valid bb8 config");
        let mut held = Vec::with_capacity(POOL_SIZE);
        for _ in 0..POOL_SIZE {
            held.push(pool.get().await.expect("warm-up get"));
        }
        drop(held);
        pool
    });
    let phase = Arc::new(Phase::new());
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (pool, phase) = (pool.clone(), phase.clone());
            runtime.spawn(async move {
                worker_on_task(phase, || async {
                    let mut conn = pool.get().await.expect("bb8 get");
                    backend.request(&mut conn);
                })
                .await
            })
        })
        .collect();
    let (took, start, end) = time_window(&phase, window, None);
    let tally = join_tasks(&runtime, handles);
    drop(pool);
    runtime.shutdown_timeout(IO_TIMEOUT);
    row(PoolKind::Bb8Tasks, workers, tally, took, (start, end))
}

/// `GET key` on `stream`, reading the whole bulk reply.
///
/// # Panics
/// On an I/O error or a reply other than the 100-byte value.
fn redis_get(stream: &mut TcpStream) {
    stream.write_all(REDIS_GET).expect("send Redis GET");
    let mut reply = [0u8; 6 + REDIS_VALUE_LEN + 2];
    stream.read_exact(&mut reply).expect("read Redis reply");
    assert!(
        reply.starts_with(b"$100\r\n") && reply.ends_with(b"\r\n"),
        "unexpected Redis reply {:?}",
        String::from_utf8_lossy(&reply)
    );
}

/// A `redis-server` child on a free loopback port, killed when dropped
/// (on a panic too).
#[derive(Debug)]
struct RedisServer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` and stores the value; `Err` with the reason
    /// when there is no `redis-server` to start.
    ///
    /// # Panics
    /// If the server does not accept within 5 s, or the value is not
    /// stored.
    fn start() -> Result<Self, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free loopback port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::env::temp_dir().join(format!(
            "leasehold-loop-cost-redis-{}.log",
            std::process::id()
        ));
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    "redis-server is not on PATH (e.g. `apt-get install -y redis-server`)"
                        .to_owned()
                }
                _ => format!("redis-server could not be started: {e}"),
            })?;
        let mut server = RedisServer { child, addr, log };
        let mut conn = server.wait_until_accepting();
        server.set_value(&mut conn);
        Ok(server)
    }

    fn wait_until_accepting(&mut self) -> TcpStream {
        let deadline = Instant::now() + SERVER_START;
        loop {
            if let Some(status) = self.child.try_wait().expect("redis-server status") {
                panic!(
                    "redis-server exited ({status}) before accepting; log: {}",
                    self.log_text()
                );
            }
            // Nothing to wait on but the port: poll it.
            if let Ok(conn) = peer_connect(self.addr) {
                return conn;
            }
            if Instant::now() >= deadline {
                panic!(
                    "redis-server on {} did not accept within {SERVER_START:?}; log: {}",
                    self.addr,
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn set_value(&self, conn: &mut TcpStream) {
        let value = "v".repeat(REDIS_VALUE_LEN);
        let set = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{REDIS_KEY}\r\n${REDIS_VALUE_LEN}\r\n{value}\r\n",
            REDIS_KEY.len()
        );
        conn.write_all(set.as_bytes()).expect("send Redis SET");
        let mut reply = [0u8; 5];
        conn.read_exact(&mut reply).expect("read Redis SET reply");
        assert_eq!(&reply, b"+OK\r\n", "Redis SET reply");
        redis_get(conn);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(unreadable: {e})"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Every row of one backend: each worker count, each pool.
///
/// With several rounds, each round runs every row once, so that a change in
/// the machine's load falls on every pool alike; each column is then the
/// median over the rounds.
fn measure(backend: Backend, addr: SocketAddr, window: Duration, rounds: usize) -> Vec<Row> {
    let mut runs: Vec<Vec<Row>> = Vec::new();
    for _ in 0..rounds {
        let mut round = Vec::new();
        for workers in WORKER_COUNTS {
            for pool in PoolKind::ALL {
                round.push(match pool {
                    PoolKind::LeaseholdThreads => leasehold_threads(backend, addr, workers, window),
                    PoolKind::LeaseholdTasks => leasehold_tasks(backend, addr, workers, window),
                    PoolKind::R2d2Threads => r2d2_threads(backend, addr, workers, window),
                    PoolKind::Bb8Tasks => bb8_tasks(backend, addr, workers, window),
                });
            }
        }
        runs.push(round);
    }
    (0..runs[0].len())
        .map(|i| Row::median(&runs.iter().map(|round| round[i]).collect::<Vec<_>>()))
        .collect()
}

/// The markdown table of `rows`, with the ratios under it.
fn table(backend: Backend, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", backend.title());
    let _ = writeln!(
        out,
        "| pool | workers | requests/s | p99 µs | loop CPU µs/req | loop runs/req | process CPU µs/req |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let leasehold_only =
            |value: Option<f64>| value.map_or_else(|| "–".to_owned(), |v| format!("{v:.2}"));
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.1} | {} | {} | {:.2} |",
            row.pool.name(),
            row.workers,
            row.requests_per_sec,
            row.p99_us,
            leasehold_only(row.loop_cpu_us),
            leasehold_only(row.loop_runs),
            row.process_cpu_us,
        );
    }
    let _ = writeln!(
        out,
        "\nleasehold requests/s ÷ the better of r2d2 and bb8:\n"
    );
    for workers in WORKER_COUNTS {
        let at = |pool| {
            rows.iter()
                .find(|r| r.pool == pool && r.workers == workers)
                .map(|r| r.requests_per_sec)
        };
        let (Some(r2d2), Some(bb8)) = (at(PoolKind::R2d2Threads), at(PoolKind::Bb8Tasks)) else {
            continue;
        };
        let (best, best_name) = if r2d2 >= bb8 {
            (r2d2, "r2d2")
        } else {
            (bb8, "bb8")
        };
        let ratio = |pool, of: f64| {
            at(pool).map_or_else(|| "–".to_owned(), |rps| format!("{:.2}×", rps / of))
        };
        let _ = writeln!(
            out,
            "* {workers} worker(s): threads {}, tasks {} (of {best_name}, {best:.0}/s); \
             like for like: threads {} of r2d2, tasks {} of bb8",
            ratio(PoolKind::LeaseholdThreads, best),
            ratio(PoolKind::LeaseholdTasks, best),
            ratio(PoolKind::LeaseholdThreads, r2d2),
            ratio(PoolKind::LeaseholdTasks, bb8),
        );
    }
    out
}

/// The machine, its load and the date, for the line above the tables.
fn machine_line(window: Duration, rounds: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = machine::cpu_model().unwrap_or_else(|| "unknown CPU".to_owned());
    let online = cpuinfo
        .lines()
        .filter(|line| line.starts_with("processor"))
        .count();
    // Fewer under `taskset`.
    let usable = thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<_> = load.split_whitespace().take(3).collect();
    format!(
        "{model}, {online} cores, {usable} usable by this process; load average {} at start; {}; window {} s after {} s \
         warm-up; {}",
        load.join(" "),
        utc_now(),
        window.as_secs_f64(),
        WARM_UP.as_secs_f64(),
        match rounds {
            1 => "one round".to_owned(),
            n => format!("median of {n} rounds"),
        }
    )
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let rest = secs % 86_400;
    format!(
        "{} {:02}:{:02} UTC",
        report::date(secs),
        rest / 3_600,
        rest % 3_600 / 60
    )
}

/// The window: `LOOP_COST_SECS` seconds, or 2 s.
///
/// # Panics
/// If `LOOP_COST_SECS` is not a positive number.
fn window() -> Duration {
    match std::env::var("LOOP_COST_SECS") {
        Ok(secs) => secs
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or_else(|| {
                panic!("LOOP_COST_SECS={secs:?} is not a positive number of seconds")
            }),
        Err(_) => DEFAULT_WINDOW,
    }
}

/// Rounds per row: `LOOP_COST_ROUNDS`, or 1.
///
/// # Panics
/// If `LOOP_COST_ROUNDS` is not a positive whole number.
fn rounds() -> usize {
    match std::env::var("LOOP_COST_ROUNDS") {
        Ok(rounds) => rounds
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| {
                panic!("LOOP_COST_ROUNDS={rounds:?} is not a positive whole number")
            }),
        Err(_) => 1,
    }
}

fn main() {
    let window = window();
    let rounds = rounds();
    // `cargo bench` passes `--bench`; other words name the backends to run.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let wanted = |backend: Backend| {
        filters.is_empty()
            || filters
                .iter()
                .any(|f| backend.filter_name().contains(f.as_str()))
    };
    println!("## loop_cost\n\n{}\n", machine_line(window, rounds));
    if !wanted(Backend::Http) && !wanted(Backend::Redis) {
        println!("No backend matches {filters:?}: the backends are `http` and `redis`.");
    }
    if wanted(Backend::Http) {
        let server =
            http::Server::start(http::ServerConfig::default()).expect("start the HTTP server");
        let rows = measure(Backend::Http, server.addr(), window, rounds);
        server.shutdown();
        println!("{}", table(Backend::Http, &rows));
    }
    if wanted(Backend::Redis) {
        match RedisServer::start() {
            Ok(server) => {
                let rows = measure(Backend::Redis, server.addr, window, rounds);
                drop(server);
                println!("{}", table(Backend::Redis, &rows));
            }
            Err(why) => println!("Redis table skipped: {why}.\n"),
        }
    }
}
