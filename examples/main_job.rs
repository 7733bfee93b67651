//! The main job: HTTP/1.1 keep-alive requests to a loopback server through
//! the pool, for every policy, against a new TCP connection per request.
//!
//! An embedded server (std threads, requests parsed with `httparse`) answers
//! each request after `--latency-us` and closes keep-alive connections idle
//! for `--idle-close-ms`. For each mode, N client threads send `GET`
//! requests for `--seconds`; then the load pauses long enough for the server
//! to close every idle connection (the pool's event loop sees each close and
//! evicts the connection before anyone leases it), and runs again for the
//! same time. Every request and every lease wait is recorded in an HDR
//! histogram; the table shows what a user of a pool cares about:
//! requests/s, request latency, how long leases waited, how many
//! connections were opened, how many went stale and were evicted, and how
//! many requests failed or timed out (zero, or the pool has a bug).
//!
//! A keep-alive client cannot avoid one race: the server may close an idle
//! connection just as the client sends on it. Like HTTP clients do, a
//! request that fails on a reused connection before any response arrives
//! is retried once on another; the table counts those retries.
//!
//! ```text
//! cargo run --release --example main_job -- [--threads N] [--pool P] [--seconds S]
//!     [--latency-us U] [--idle-close-ms M]
//! ```
//!
//! Defaults: 8 threads, pool of 4, 1 s of load twice per mode, no server
//! latency, idle close after 500 ms.

#[path = "../tests/support/http.rs"]
mod http;

use hdrhistogram::Histogram;
use leasehold::{Policy, Pool, TcpConnector};
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// How long a lease may wait before it counts as a timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

const USAGE: &str = "\
usage: main_job [--threads N] [--pool P] [--seconds S] [--latency-us U] [--idle-close-ms M]
  --threads N        client threads (default 8)
  --pool P           pool size: max connections to the server (default 4)
  --seconds S        load time per phase, two phases per mode (default 1)
  --latency-us U     server think time per response, in µs (default 0)
  --idle-close-ms M  the server closes connections idle this long (default 500)";

#[derive(Clone, Copy, Debug)]
struct Args {
    threads: usize,
    pool: usize,
    run: Duration,
    latency: Duration,
    idle_close: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 8,
        pool: 4,
        run: Duration::from_secs(1),
        latency: Duration::ZERO,
        idle_close: Duration::from_millis(500),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: expected {what}, got {value:?}");
        let whole = || value.parse::<u64>().map_err(|_| bad("a whole number"));
        match flag.as_str() {
            "--threads" => args.threads = whole()? as usize,
            "--pool" => args.pool = whole()? as usize,
            "--seconds" => {
                let secs: f64 = value.parse().map_err(|_| bad("a number of seconds"))?;
                args.run = Duration::try_from_secs_f64(secs)
                    .map_err(|_| bad("a non-negative number of seconds"))?;
            }
            "--latency-us" => args.latency = Duration::from_micros(whole()?),
            "--idle-close-ms" => args.idle_close = Duration::from_millis(whole()?),
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.threads == 0 || args.pool == 0 {
        return Err("--threads and --pool must be at least 1".into());
    }
    if args.run.is_zero() || args.idle_close.is_zero() {
        return Err("--seconds and --idle-close-ms must be greater than 0".into());
    }
    Ok(args)
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 1 min, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What the client threads of one mode did.
struct Tally {
    requests: u64,
    retried: u64,
    failed: u64,
    timeouts: u64,
    latency: Histogram<u64>,
    waits: Option<Histogram<u64>>,
}

impl Tally {
    fn new(pooled: bool) -> Self {
        Self {
            requests: 0,
            retried: 0,
            failed: 0,
            timeouts: 0,
            latency: new_histogram(),
            waits: pooled.then(new_histogram),
        }
    }

    fn add(&mut self, other: &Tally) {
        self.requests += other.requests;
        self.retried += other.retried;
        self.failed += other.failed;
        self.timeouts += other.timeouts;
        self.latency.add(&other.latency).expect("same bounds");
        if let (Some(mine), Some(theirs)) = (&mut self.waits, &other.waits) {
            mine.add(theirs).expect("same bounds");
        }
    }
}

/// One row of the report.
struct Row {
    mode: &'static str,
    busy: Duration,
    tally: Tally,
    created: u64,
    stale: u64,
}

/// Runs `request` on `threads` threads until `run` has passed, twice, with a
/// quiet pause between the phases.
fn load(args: Args, pooled: bool, request: &(dyn Fn(&mut Tally) + Sync)) -> (Tally, Duration) {
    let mut total = Tally::new(pooled);
    let mut busy = Duration::ZERO;
    for phase in 0..2 {
        if phase == 1 {
            // Long enough for the server to close every idle connection.
            thread::sleep(args.idle_close * 2);
        }
        let start = Barrier::new(args.threads + 1);
        let (tallies, elapsed) = thread::scope(|scope| {
            let handles: Vec<_> = (0..args.threads)
                .map(|_| {
                    let start = &start;
                    scope.spawn(move || {
                        let mut mine = Tally::new(pooled);
                        start.wait();
                        let until = Instant::now() + args.run;
                        while Instant::now() < until {
                            request(&mut mine);
                        }
                        mine
                    })
                })
                .collect();
            let began = Instant::now();
            start.wait();
            let tallies: Vec<Tally> = handles
                .into_iter()
                .map(|h| h.join().expect("client thread panicked"))
                .collect();
            (tallies, began.elapsed())
        });
        for tally in &tallies {
            total.add(tally);
        }
        busy += elapsed;
    }
    (total, busy)
}

fn pooled<P: Policy>(args: Args, addr: SocketAddr) -> Row {
    let pool: Pool<TcpConnector, P> = Pool::builder(TcpConnector::new())
        .max_total(args.pool)
        .max_per_route(args.pool)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("valid pool config");
    let request = |tally: &mut Tally| {
        let asked = Instant::now();
        let mut leased = Duration::ZERO;
        for attempt in 0..2 {
            let mut conn = match pool.lease(&addr) {
                Ok(conn) => conn,
                Err(e) if e.is_capacity() => {
                    tally.timeouts += 1;
                    return;
                }
                Err(e) => {
                    eprintln!("lease failed: {e}");
                    tally.failed += 1;
                    return;
                }
            };
            if attempt == 0 {
                leased = asked.elapsed();
            }
            let reused = conn.created() < asked;
            match http::get(&mut *conn, "/") {
                Ok(response) if response.status == 200 => {
                    tally.requests += 1;
                    tally.latency.saturating_record(nanos(asked.elapsed()));
                    if let Some(waits) = &mut tally.waits {
                        waits.saturating_record(nanos(leased).max(1));
                    }
                    return;
                }
                Err(e) if reused && attempt == 0 && e.kind() != io::ErrorKind::InvalidData => {
                    // The server closed it as we sent: retry on another.
                    conn.discard();
                    tally.retried += 1;
                }
                other => {
                    eprintln!(
                        "request failed: {other:?} local {:?} age {:?} reused {reused} attempt {attempt}",
                        conn.local_addr(),
                        conn.created().elapsed()
                    );
                    conn.discard();
                    tally.failed += 1;
                    return;
                }
            }
        }
    };
    let (tally, busy) = load(args, true, &request);
    Row {
        mode: P::NAME,
        busy,
        tally,
        created: pool.stats().total.created,
        stale: pool.health().stale,
    }
}

fn unpooled(args: Args, addr: SocketAddr) -> Row {
    let request = |tally: &mut Tally| {
        let asked = Instant::now();
        let result = TcpStream::connect(addr).and_then(|mut stream| {
            stream.set_nodelay(true)?;
            http::get(&mut stream, "/")
        });
        match result {
            Ok(response) if response.status == 200 => {
                tally.requests += 1;
                tally.latency.saturating_record(nanos(asked.elapsed()));
            }
            _ => tally.failed += 1,
        }
    };
    let (tally, busy) = load(args, false, &request);
    let created = tally.requests + tally.failed;
    Row {
        mode: "new connection per request",
        busy,
        tally,
        created,
        stale: 0,
    }
}

/// Nanoseconds, human-readable.
fn ns(value: u64) -> String {
    match value {
        0..=999 => format!("{value} ns"),
        1_000..=999_999 => format!("{:.1} µs", value as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", value as f64 / 1e6),
        _ => format!("{:.2} s", value as f64 / 1e9),
    }
}

fn print_report(rows: &[Row]) {
    let headers = [
        "mode",
        "requests/s",
        "latency p50",
        "latency p99",
        "lease wait p99",
        "conns created",
        "stale evicted",
        "retried",
        "failed",
        "timeouts",
    ];
    let table: Vec<[String; 10]> = rows
        .iter()
        .map(|r| {
            let t = &r.tally;
            [
                r.mode.to_string(),
                format!("{:.0}", t.requests as f64 / r.busy.as_secs_f64()),
                ns(t.latency.value_at_quantile(0.50)),
                ns(t.latency.value_at_quantile(0.99)),
                t.waits
                    .as_ref()
                    .map_or("-".into(), |w| ns(w.value_at_quantile(0.99))),
                r.created.to_string(),
                r.stale.to_string(),
                t.retried.to_string(),
                t.failed.to_string(),
                t.timeouts.to_string(),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(w - cell.chars().count());
            // Text left-aligned, numbers right-aligned.
            if i == 0 {
                out.push_str(&format!("{cell}{pad}  "));
            } else {
                out.push_str(&format!("{pad}{cell}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&headers);
    line(&widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in &table {
        line(&row.each_ref().map(String::as_str));
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("error: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if message.is_empty() { 0 } else { 2 });
        }
    };
    let config = http::ServerConfig::default()
        .latency(args.latency)
        .idle_close(args.idle_close);
    let server = match http::Server::start(config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot start the loopback server: {e}");
            return ExitCode::FAILURE;
        }
    };
    let addr = server.addr();
    println!(
        "leasehold main job: {} client threads send HTTP/1.1 GETs to a loopback server at {addr}\n\
         (response latency {:?}, closes connections idle for {:?}), {:?} of load, a pause\n\
         while the server closes every idle connection, then {:?} more; pooled runs use\n\
         a pool of {} keep-alive connections.\n",
        args.threads, args.latency, args.idle_close, args.run, args.run, args.pool
    );
    let rows = vec![
        pooled::<leasehold::Strict>(args, addr),
        pooled::<leasehold::Lax>(args, addr),
        pooled::<leasehold::Offlock>(args, addr),
        unpooled(args, addr),
    ];
    print_report(&rows);
    let pooled_best = rows[..3]
        .iter()
        .map(|r| r.tally.requests as f64 / r.busy.as_secs_f64())
        .fold(0.0, f64::max);
    let unpooled_rate = rows[3].tally.requests as f64 / rows[3].busy.as_secs_f64();
    println!(
        "\nbest pooled / new connection per request: {:.1}x requests/s; server accepted {} connections, \
         closed {} idle ones.",
        pooled_best / unpooled_rate.max(1.0),
        server.accepted(),
        server.idle_closed()
    );
    let failed: u64 = rows.iter().map(|r| r.tally.failed + r.tally.timeouts).sum();
    if failed > 0 {
        println!("{failed} request(s) failed or timed out: that is a bug.");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
