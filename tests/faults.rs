//! Faults a service meets in production, over real loopback sockets, under
//! every policy: a backend that restarts under load (the circuit breaker),
//! settings at their extremes, and the order in which a failed connect
//! answers requests and frees its capacity.
//!
//! Linux only, as the other loopback suites.

#![cfg(target_os = "linux")]

use leasehold_testkit::for_each_policy;

use leasehold_testkit::wait;

use leasehold::{Builder, Error, Policy, Pool, Strict, TcpConnector};
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

type TcpPool<P> = Pool<TcpConnector, P>;

fn tcp_pool<P: Policy>(
    configure: impl FnOnce(Builder<TcpConnector, P>) -> Builder<TcpConnector, P>,
) -> TcpPool<P> {
    configure(Pool::builder(TcpConnector::new()).policy::<P>())
        .build()
        .unwrap()
}

/// The tests that measure recovery run one at a time, so that each has the
/// machine's cores to itself.
static ALONE: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// A backend that restarts
// ---------------------------------------------------------------------------

/// A line-echo server on a fixed loopback port that can go down (its
/// listener closed, every connection shut down: connects are refused) and
/// come back on the same port.
struct Restartable {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Restartable {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut server = Self {
            addr: listener.local_addr().unwrap(),
            conns: Arc::default(),
            acceptor: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let stopping = Arc::new(AtomicBool::new(false));
        let (stop, conns) = (stopping.clone(), self.conns.clone());
        let acceptor = thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_nodelay(true);
                let end = stream.try_clone().unwrap();
                conns
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(end);
                thread::spawn(move || echo_lines(stream));
            }
        });
        self.acceptor = Some((stopping, acceptor));
    }

    /// Stops accepting (connects are refused from now on) and closes every
    /// connection.
    fn down(&mut self) {
        let (stopping, acceptor) = self.acceptor.take().expect("up");
        stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the blocking accept
        acceptor.join().unwrap();
        let ends: Vec<TcpStream> =
            std::mem::take(&mut *self.conns.lock().unwrap_or_else(PoisonError::into_inner));
        for end in ends {
            let _ = end.shutdown(Shutdown::Both);
        }
    }

    /// Writes a byte nobody asked for on every connection.
    fn poke(&self) {
        let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        for mut end in conns.iter() {
            let _ = end.write_all(b"!");
        }
    }

    /// Listens on the same port again; returns when connects succeed.
    fn up(&mut self) -> Instant {
        let listener = TcpListener::bind(self.addr).expect("the same port again");
        let at = Instant::now();
        self.serve(listener);
        at
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        if self.acceptor.is_some() {
            self.down();
        }
    }
}

fn echo_lines(stream: TcpStream) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if writer.write_all(line.as_bytes()).is_err() {
                    return;
                }
            }
        }
    }
}

/// One request of the load: when it started and ended, and whether it got
/// a connection and a reply on it.
#[derive(Clone, Copy, Debug)]
struct Outcome {
    started: Instant,
    ended: Instant,
    ok: bool,
}

fn round_trip(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(b"ping\n")?;
    let mut reply = [0u8; 5];
    std::io::Read::read_exact(stream, &mut reply)?;
    if &reply == b"ping\n" {
        Ok(())
    } else {
        Err(std::io::Error::other("a wrong reply"))
    }
}

/// One request: a lease (blocking or async) and a round trip on it; a
/// connection that fails the round trip is discarded.
fn request<P: Policy>(pool: &TcpPool<P>, addr: &SocketAddr, blocking: bool) -> bool {
    let lease = if blocking {
        pool.lease(addr)
    } else {
        futures::executor::block_on(pool.lease_async(addr))
    };
    let Ok(mut lease) = lease else {
        return false;
    };
    match round_trip(&mut lease) {
        Ok(()) => true,
        Err(_) => {
            lease.discard();
            false
        }
    }
}

/// Eight threads send requests through a pool with the default breaker
/// while the server goes down for a second and comes back on its port.
/// Once it is back, requests fail for at most about one probe spacing
/// (100 ms by default), the first success comes within that plus a connect,
/// and no request that starts after the first success fails.
fn recovers_right_after_a_restart<P: Policy>(blocking: bool) {
    let _alone = ALONE.lock().unwrap_or_else(PoisonError::into_inner);
    let mut server = Restartable::start();
    let addr = server.addr;
    let pool: TcpPool<P> = tcp_pool(|b| {
        b.max_total(8)
            .max_per_route(8)
            .acquire_timeout(Duration::from_secs(2))
    });
    let stop = AtomicBool::new(false);
    let outcomes = Mutex::new(Vec::new());
    let (down_at, up_at) = thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let ok = request(&pool, &addr, blocking);
                    mine.push(Outcome {
                        started,
                        ended: Instant::now(),
                        ok,
                    });
                    if !ok {
                        // A client pacing its retries; keeps the log small.
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                outcomes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend(mine);
            });
        }
        thread::sleep(Duration::from_millis(300));
        server.down();
        // Requests that start from here on find the server down.
        let down_at = Instant::now();
        thread::sleep(Duration::from_secs(1));
        let up_at = server.up();
        thread::sleep(Duration::from_millis(1200));
        stop.store(true, Ordering::Relaxed);
        (down_at, up_at)
    });
    let outcomes = outcomes.into_inner().unwrap();
    let before = outcomes
        .iter()
        .filter(|o| o.ended < down_at && o.ok)
        .count();
    assert!(before > 0, "the load ran before the outage");
    let during = outcomes
        .iter()
        .filter(|o| o.started > down_at && o.ended < up_at && !o.ok)
        .count();
    assert!(during > 0, "requests failed while the server was down");
    let first_ok = outcomes
        .iter()
        .filter(|o| o.ok && o.started > down_at)
        .map(|o| o.ended)
        .min()
        .expect("a request succeeded after the restart");
    let recovery = first_ok.saturating_duration_since(up_at);
    let late_failures: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.ok && o.started > first_ok)
        .collect();
    let failed_after_up = outcomes
        .iter()
        .filter(|o| !o.ok && o.ended > up_at)
        .map(|o| o.ended - up_at)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} {}: first success {recovery:?} after the restart, last failure \
         {failed_after_up:?} after it, {} connect failures in all",
        P::NAME,
        if blocking { "blocking" } else { "async" },
        pool.health().connect_failures,
    );
    assert!(
        late_failures.is_empty(),
        "{} requests started after the first success at {recovery:?} failed",
        late_failures.len()
    );
    // One probe spacing (100 ms) plus a loopback connect, with room for a
    // loaded machine's scheduling; without the breaker's probes the first
    // success came seconds after the return.
    assert!(
        recovery < Duration::from_millis(600),
        "first success {recovery:?} after the server came back"
    );
    assert!(
        failed_after_up < Duration::from_millis(600),
        "requests failed until {failed_after_up:?} after the server came back"
    );
    // A dead route costs about ten connects a second, not one per request.
    assert!(
        pool.health().connect_failures < 60,
        "{} connects failed in a 1 s outage",
        pool.health().connect_failures
    );
}

// ---------------------------------------------------------------------------
// Settings at their extremes
// ---------------------------------------------------------------------------

/// Runs `body` on its own thread and fails the test if it has not ended
/// within 20 s: a hang is a failure, not a stuck test run.
fn without_hanging(what: &str, body: impl FnOnce() + Send + 'static) {
    let (done, ended) = std::sync::mpsc::channel();
    let worker = thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match ended.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => worker.join().unwrap(),
        Err(_) if worker.is_finished() => {
            if let Err(panic) = worker.join() {
                std::panic::resume_unwind(panic);
            }
        }
        Err(_) => panic!("{what}: hung"),
    }
}

/// Every `Duration` setting at `Duration::MAX`, one at a time and all
/// together: a pool that works, waits, connects through its event loop,
/// fails a refused connect and rests a down route, without a panic on any
/// thread and without a hang.
fn every_duration_setting_at_max<P: Policy>() {
    type Setting<P> = fn(Builder<TcpConnector, P>) -> Builder<TcpConnector, P>;
    let max = Duration::MAX;
    let settings: [(&str, Setting<P>); 8] = [
        ("acquire_timeout", |b| b.acquire_timeout(Duration::MAX)),
        ("connect_timeout", |b| b.connect_timeout(Duration::MAX)),
        ("idle_timeout", |b| b.idle_timeout(Duration::MAX)),
        ("max_lifetime", |b| b.max_lifetime(Duration::MAX)),
        ("validate_after_inactivity", |b| {
            b.validate_after_inactivity(Duration::MAX)
        }),
        ("leak_detection", |b| b.leak_detection(Duration::MAX)),
        ("patience", |b| b.patience(Duration::MAX)),
        ("connect_backoff", |b| {
            b.connect_backoff(Duration::MAX, Duration::MAX)
        }),
    ];
    let server = Arc::new(Restartable::start());
    let connector = TcpConnector::new()
        .keepalive(Some(max))
        .read_timeout(Some(max))
        .write_timeout(Some(max));
    type Case<P> = (
        String,
        Box<dyn Fn(Builder<TcpConnector, P>) -> Builder<TcpConnector, P> + Send>,
    );
    let mut cases: Vec<Case<P>> = settings
        .iter()
        .map(|&(name, set)| (name.to_string(), Box::new(set) as _))
        .collect();
    cases.push((
        "all together".into(),
        Box::new(move |b| settings.iter().fold(b, |b, (_, set)| set(b))),
    ));
    for (name, set) in cases {
        let (server, connector) = (server.clone(), connector.clone());
        without_hanging(&name.clone(), move || {
            let pool: TcpPool<P> = set(Pool::builder(connector).policy::<P>().max_per_route(1))
                .build()
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let addr = server.addr;
            let mut lease = pool.lease(&addr).unwrap();
            round_trip(&mut lease).unwrap();
            // A second request waits for the route's only connection.
            thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let mut lease = pool.lease(&addr).expect("served by the return");
                    round_trip(&mut lease).unwrap();
                });
                wait::eventually("the second request waits", || {
                    pool.route_stats(&addr).pending == 1
                });
                drop(lease);
                waiter.join().unwrap();
            });
            // A connect through the event loop, from an async request.
            pool.lease(&addr).unwrap().discard();
            let mut lease = futures::executor::block_on(pool.lease_async(&addr)).unwrap();
            round_trip(&mut lease).unwrap();
            drop(lease);
            // A refused route fails, and rests once down.
            let refusing = closed_port();
            for _ in 0..3 {
                let err = pool.lease(&refusing).unwrap_err();
                assert!(
                    matches!(err, Error::Refused { .. } | Error::Down { .. }),
                    "{name}: {err}"
                );
            }
            pool.close_idle(Duration::MAX);
            pool.close_expired();
            assert!(
                pool.try_lease(&addr).is_ok(),
                "{name}: the pool still works"
            );
        });
    }
}

/// Zero is refused where it would mean "fail at once" and means "off"
/// where that is the setting's natural floor.
#[test]
fn every_duration_setting_at_zero() {
    type Setting = fn(Builder<TcpConnector, Strict>) -> Builder<TcpConnector, Strict>;
    let zero = Duration::ZERO;
    let refused: [(&str, Setting); 6] = [
        ("acquire_timeout", |b| b.acquire_timeout(Duration::ZERO)),
        ("connect_timeout", |b| b.connect_timeout(Duration::ZERO)),
        ("idle_timeout", |b| b.idle_timeout(Duration::ZERO)),
        ("max_lifetime", |b| b.max_lifetime(Duration::ZERO)),
        ("validate_after_inactivity", |b| {
            b.validate_after_inactivity(Duration::ZERO)
        }),
        ("leak_detection", |b| b.leak_detection(Duration::ZERO)),
    ];
    for (name, set) in refused {
        match set(Pool::builder(TcpConnector::new())).build() {
            Err(leasehold::ConfigError::ZeroTimeout(named)) => assert_eq!(named, name),
            other => panic!("{name} at zero: {other:?}"),
        }
    }
    let server = Restartable::start();
    let pool: TcpPool<Strict> = Pool::builder(TcpConnector::new().keepalive(Some(zero)))
        .patience(zero)
        .connect_backoff(zero, zero)
        .build()
        .unwrap();
    let mut lease = pool.lease(&server.addr).unwrap();
    round_trip(&mut lease).unwrap();
    drop(lease);
    // No breaker: every request makes a real connect.
    let refusing = closed_port();
    for failures in 1..=4 {
        let err = pool.lease(&refusing).unwrap_err();
        assert!(matches!(err, Error::Refused { .. }), "{err}");
        assert_eq!(pool.health().connect_failures, failures);
    }
}

// ---------------------------------------------------------------------------
// Panics in user code on the pool's threads
// ---------------------------------------------------------------------------

/// Where [`Flaky`] panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Nowhere,
    /// `Handshake::interest`, on the event loop.
    Interest,
    /// The handshake's `Drop`, on the event loop.
    DropHandshake,
    /// `Connector::watch`, on the event loop.
    Watch,
    /// The idle check of `Watched::with_check`, on the event loop.
    Check,
}

/// A `TcpConnector` whose parts panic where the test says.
#[derive(Clone)]
struct Flaky {
    tcp: TcpConnector,
    part: Arc<Mutex<Part>>,
}

impl Flaky {
    fn panics_in(&self, part: Part) -> bool {
        *self.part.lock().unwrap_or_else(PoisonError::into_inner) == part
    }
}

struct FlakyHandshake {
    tcp: leasehold::TcpHandshake,
    interest_panics: bool,
    drop_panics: bool,
}

impl mio::event::Source for FlakyHandshake {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interest: mio::Interest,
    ) -> std::io::Result<()> {
        self.tcp.register(registry, token, interest)
    }
    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interest: mio::Interest,
    ) -> std::io::Result<()> {
        self.tcp.reregister(registry, token, interest)
    }
    fn deregister(&mut self, registry: &mio::Registry) -> std::io::Result<()> {
        self.tcp.deregister(registry)
    }
}

impl leasehold::Handshake for FlakyHandshake {
    type Conn = TcpStream;
    fn interest(&self) -> mio::Interest {
        assert!(!self.interest_panics, "a connector bug in interest()");
        self.tcp.interest()
    }
    fn advance(&mut self) -> std::io::Result<Option<TcpStream>> {
        self.tcp.advance()
    }
}

impl Drop for FlakyHandshake {
    fn drop(&mut self) {
        if self.drop_panics && !thread::panicking() {
            panic!("a connector bug in a handshake's drop");
        }
    }
}

impl leasehold::Connector for Flaky {
    type Route = SocketAddr;
    type Conn = TcpStream;
    type Handshake = FlakyHandshake;

    fn connect(
        &self,
        route: &SocketAddr,
    ) -> std::io::Result<leasehold::Progress<TcpStream, FlakyHandshake>> {
        Ok(match self.tcp.connect(route)? {
            leasehold::Progress::Ready(conn) => leasehold::Progress::Ready(conn),
            leasehold::Progress::Pending(tcp) => leasehold::Progress::Pending(FlakyHandshake {
                tcp,
                interest_panics: self.panics_in(Part::Interest),
                drop_panics: self.panics_in(Part::DropHandshake),
            }),
        })
    }

    fn watch(&self, conn: &TcpStream) -> Option<leasehold::Watched> {
        assert!(!self.panics_in(Part::Watch), "a connector bug in watch()");
        let fd = std::os::fd::AsFd::as_fd(conn).try_clone_to_owned().ok()?;
        if self.panics_in(Part::Check) {
            return Some(leasehold::Watched::with_check(fd, || {
                panic!("a connector bug in an idle check")
            }));
        }
        self.tcp.watch(conn)
    }
}

/// A panic in any part of a connector that runs on the event loop costs
/// at most that connect or that connection, never the loop: the pool goes
/// on connecting, watching and evicting.
fn panics_in_a_connector_do_not_stop_the_loop<P: Policy>() {
    let server = Restartable::start();
    let addr = server.addr;
    let flaky = Flaky {
        tcp: TcpConnector::new(),
        part: Arc::new(Mutex::new(Part::Nowhere)),
    };
    let switch = flaky.part.clone();
    let set = move |part| *switch.lock().unwrap_or_else(PoisonError::into_inner) = part;
    let pool: Pool<Flaky, P> = Pool::builder(flaky.clone())
        .policy::<P>()
        .acquire_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    without_hanging("a connector's panics", {
        let pool = pool.clone();
        move || {
            set(Part::Interest);
            let err = pool.lease(&addr).unwrap_err();
            assert!(err.to_string().contains("panicked"), "{err}");
            for part in [Part::DropHandshake, Part::Watch, Part::Nowhere] {
                set(part);
                let mut lease = pool.lease(&addr).unwrap();
                round_trip(&mut lease).unwrap();
                lease.discard();
            }
            // Idle connections whose check panics when they turn readable
            // are evicted as unfit.
            set(Part::Check);
            let leases: Vec<_> = (0..2).map(|_| pool.lease(&addr).unwrap()).collect();
            drop(leases);
            assert_eq!(pool.route_stats(&addr).idle, 2);
            wait::eventually("both are evicted", || {
                server.poke();
                pool.route_stats(&addr).idle == 0
            });
            set(Part::Nowhere);
            let mut lease = pool.lease(&addr).unwrap();
            round_trip(&mut lease).unwrap();
        }
    });
    assert!(!pool.is_closed());
}

/// A loopback port nobody listens on.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn restart_under_blocking_load<P: Policy>() {
    recovers_right_after_a_restart::<P>(true);
}

fn restart_under_async_load<P: Policy>() {
    recovers_right_after_a_restart::<P>(false);
}

for_each_policy!(
    restart_under_blocking_load,
    restart_under_async_load,
    every_duration_setting_at_max,
    panics_in_a_connector_do_not_stop_the_loop,
);
