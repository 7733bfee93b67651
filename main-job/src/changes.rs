//! The end of the main job: a running pool changed under load. Its total
//! cap is lowered and raised, it is paused and resumed, then drained; with
//! `--tls`, its client certificate is rotated against a server that
//! verifies it, and the connections made with the old one are retired.
//! Each step prints what a user would check: connections open, requests
//! served and failed.

use leasehold::{Connector, Pool, Strict};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long the load runs after each change.
const STEP: Duration = Duration::from_millis(250);

/// Counts of the threads that keep the pool busy.
#[derive(Default)]
struct Crew {
    served: AtomicU64,
    failed: AtomicU64,
    stop: AtomicBool,
}

impl Crew {
    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

/// Runs `request` on `threads` threads until `steps` returns, then
/// returns how many requests failed.
fn under_load(
    threads: usize,
    request: &(dyn Fn() -> Result<(), String> + Sync),
    steps: impl FnOnce(&Crew),
) -> u64 {
    let crew = Crew::default();
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while !crew.stop.load(Ordering::SeqCst) {
                    match request() {
                        Ok(()) => crew.served.fetch_add(1, Ordering::SeqCst),
                        Err(e) => {
                            eprintln!("request failed: {e}");
                            crew.failed.fetch_add(1, Ordering::SeqCst)
                        }
                    };
                }
            });
        }
        steps(&crew);
        crew.stop.store(true, Ordering::SeqCst);
    });
    crew.failed.load(Ordering::SeqCst)
}

/// Connections open: opened and not closed yet.
fn open<C: Connector>(pool: &Pool<C, Strict>) -> u64 {
    let total = pool.stats().total;
    total.created - total.closed
}

/// Runs the load for [`STEP`], watching the connections open: the most
/// seen, and the requests per second.
fn step<C: Connector>(pool: &Pool<C, Strict>, crew: &Crew) -> (u64, f64) {
    let (before, started) = (crew.served(), Instant::now());
    let mut most = 0;
    while started.elapsed() < STEP {
        most = most.max(open(pool));
        thread::sleep(Duration::from_micros(200));
    }
    let rate = (crew.served() - before) as f64 / started.elapsed().as_secs_f64();
    (most, rate)
}

/// How long until the pool holds at most `cap` connections.
fn comes_down<C: Connector>(pool: &Pool<C, Strict>, cap: u64) -> Duration {
    let started = Instant::now();
    while open(pool) > cap && started.elapsed() < Duration::from_secs(5) {
        thread::yield_now();
    }
    started.elapsed()
}

/// Lowers and raises the total cap, pauses and resumes, then drains, while
/// `threads` threads send `request`; prints each step. Returns the
/// requests that failed.
pub(crate) fn resize_pause_drain<C: Connector>(
    pool: &Pool<C, Strict>,
    size: usize,
    threads: usize,
    request: &(dyn Fn() -> Result<(), String> + Sync),
) -> u64 {
    println!("\nchanging a running pool (Strict, {threads} threads sending requests throughout):");
    let failed = under_load(threads, request, |crew| {
        let (most, rate) = step(pool, crew);
        let label = |call: String| format!("  {call:<26}");
        println!(
            "{}{most} connections open, {rate:>7.0} requests/s",
            label(format!("max_total {size}"))
        );
        let lower = (size / 2).max(1);
        pool.set_max_total(lower).expect("a valid cap");
        let took = comes_down(pool, lower as u64);
        let (most, rate) = step(pool, crew);
        println!(
            "{}{most} open at most, {rate:>7.0} requests/s; down to the cap {took:.1?} \
             after the call (returned leases closed)",
            label(format!("set_max_total({lower})"))
        );
        let higher = size * 2;
        pool.set_max_total(higher).expect("a valid cap");
        let (most, rate) = step(pool, crew);
        println!(
            "{}{most} open at most, {rate:>7.0} requests/s",
            label(format!("set_max_total({higher})"))
        );
        pool.pause();
        thread::sleep(Duration::from_millis(20));
        let before = crew.served();
        thread::sleep(Duration::from_millis(100));
        let during = crew.served() - before;
        let waiting = pool.stats().total.pending;
        pool.resume();
        let (_, rate) = step(pool, crew);
        println!(
            "{}{during} requests served meanwhile, {waiting} leases waiting; \
             resume(): {rate:.0} requests/s",
            label("pause() for 100 ms".to_owned())
        );
        let was_open = open(pool);
        let started = Instant::now();
        let drained = pool.drain(Duration::from_secs(5));
        let took = started.elapsed();
        let closed = comes_down(pool, 0);
        println!(
            "{}{}, {was_open} connections closed (all gone {closed:.1?} later)",
            label("drain(5 s)".to_owned()),
            match drained {
                Ok(()) => format!("nothing leased after {took:.1?}"),
                Err(e) => format!("{e}"),
            }
        );
        pool.resume();
    });
    println!("  {failed} requests failed");
    failed
}

/// Rotates the client certificate of `route`'s identity while `threads`
/// threads send `request` (which tells the certificate the server saw),
/// retiring the connections made with the old one; prints what the server
/// saw. Returns the requests that failed, or began after the rotation and
/// were served with the old certificate.
pub(crate) fn rotate_certificate(
    threads: usize,
    rotate: &dyn Fn(),
    request: &(dyn Fn() -> Result<String, String> + Sync),
    server_saw: &dyn Fn(&str) -> usize,
) -> u64 {
    let rotated = AtomicBool::new(false);
    let stale = AtomicU64::new(0);
    let checked = |request: &(dyn Fn() -> Result<String, String> + Sync)| {
        let after = rotated.load(Ordering::SeqCst);
        let client = request()?;
        if after && client != "new" {
            stale.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    };
    let (mut before, mut after) = (0, 0);
    let failed = under_load(threads, &|| checked(request), |crew| {
        thread::sleep(STEP);
        before = crew.served();
        rotate();
        rotated.store(true, Ordering::SeqCst);
        thread::sleep(STEP);
        after = crew.served() - before;
    });
    let stale = stale.load(Ordering::SeqCst);
    println!(
        "\nclient certificate rotated under load (mutual TLS, the server verifies it; \
         Strict, {threads} threads):\n  {before} requests before, {after} after; \
         the server saw {} handshakes with the old certificate, {} with the new;\n  \
         requests begun after the rotation served with the old one: {stale}; failed: {failed}",
        server_saw("old"),
        server_saw("new"),
    );
    failed + stale
}
