//! `BlockingConnector`: a blocking driver's connect runs on the connector's
//! own threads (never the caller's), at most `threads` at once, under the
//! connect timeout (the late connection is dropped, not leaked), with
//! refusals and panics reported as connect errors, and the threads end
//! with the pool.

#![cfg(unix)]

use leasehold_testkit::wait;

use leasehold::{BlockingConnector, Error, Pool};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};
use wait::eventually;

const PATIENCE: Duration = Duration::from_secs(20);

/// The thread count check needs the process to itself.
static PROCESS: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    PROCESS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Threads of this process named `leasehold-conn…` (the kernel keeps 15
/// characters of a name).
#[cfg(target_os = "linux")]
fn connect_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "leasehold-conne")
        .count()
}

/// A connection that counts its drops.
#[derive(Debug)]
struct Counted {
    _stream: TcpStream,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_connect_runs_on_a_connect_thread_and_the_lease_works() {
    let _alone = alone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let connector = BlockingConnector::new({
        let ran_on = ran_on.clone();
        move |addr: &SocketAddr| {
            let name = thread::current().name().map(str::to_owned);
            ran_on.lock().unwrap().push(name);
            TcpStream::connect(addr)
        }
    });
    let pool = Pool::builder(connector).build().unwrap();
    for _ in 0..3 {
        let lease = pool.lease(&addr).unwrap();
        assert_eq!(lease.peer_addr().unwrap(), addr);
    }
    assert_eq!(
        *ran_on.lock().unwrap(),
        vec![Some("leasehold-connect".to_owned())],
        "one connect, reused, made on a connect thread"
    );
}

#[test]
fn a_slow_connect_times_out_and_its_late_connection_is_dropped() {
    let _alone = alone();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(AtomicUsize::new(0));
    let connector = BlockingConnector::new({
        let (drops, made) = (drops.clone(), made.clone());
        move |addr: &SocketAddr| {
            thread::sleep(Duration::from_millis(300));
            made.fetch_add(1, Ordering::SeqCst);
            Ok(Counted {
                _stream: TcpStream::connect(addr)?,
                drops: drops.clone(),
            })
        }
    });
    let pool = Pool::builder(connector)
        .connect_timeout(Duration::from_millis(50))
        .acquire_timeout(PATIENCE)
        .build()
        .unwrap();
    let started = Instant::now();
    let err = pool.lease(&addr).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err:?}");
    assert!(
        err.to_string().contains("blocking connect under way"),
        "{err}"
    );
    eventually("the late connection made and dropped", || {
        made.load(Ordering::SeqCst) == 1 && drops.load(Ordering::SeqCst) == 1
    });
    assert_eq!(pool.stats().total.leased + pool.stats().total.idle, 0);
}

#[test]
fn refusals_and_panics_are_connect_errors_and_the_threads_go_on() {
    let _alone = alone();
    let calls = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connector = BlockingConnector::new({
        let calls = calls.clone();
        move |addr: &SocketAddr| match calls.fetch_add(1, Ordering::SeqCst) {
            0 => Err(io::ErrorKind::ConnectionRefused.into()),
            1 => panic!("the driver panicked"),
            _ => TcpStream::connect(addr),
        }
    })
    .threads(1);
    let pool = Pool::builder(connector)
        // Retry a failed route at once: the test is about the errors.
        .connect_backoff(Duration::from_millis(1), Duration::from_millis(1))
        .build()
        .unwrap();
    let err = pool.lease(&addr).unwrap_err();
    assert!(matches!(err, Error::Refused { .. }), "{err:?}");
    thread::sleep(Duration::from_millis(5));
    let err = pool.lease(&addr).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    thread::sleep(Duration::from_millis(5));
    let lease = pool.lease(&addr).unwrap();
    assert_eq!(lease.peer_addr().unwrap(), addr);
}

#[cfg(target_os = "linux")]
#[test]
fn at_most_threads_connects_run_at_once_and_the_threads_end_with_the_pool() {
    let _alone = alone();
    eventually("no connect thread of earlier tests", || {
        connect_threads() == 0
    });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let connector = BlockingConnector::new({
        let (running, most) = (running.clone(), most.clone());
        move |addr: &SocketAddr| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            TcpStream::connect(addr)
        }
    })
    .threads(2);
    let pool = Pool::builder(connector)
        .max_per_route(6)
        .acquire_timeout(PATIENCE)
        .connect_timeout(PATIENCE)
        .build()
        .unwrap();
    thread::scope(|s| {
        let leases: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let lease = pool.lease(&addr).unwrap();
                    // Held until all six are out, so each made its own.
                    thread::sleep(Duration::from_millis(200));
                    drop(lease);
                })
            })
            .collect();
        for lease in leases {
            lease.join().unwrap();
        }
    });
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert_eq!(connect_threads(), 2);
    drop(pool);
    eventually("the connect threads to end", || connect_threads() == 0);
}
