//! The main job: many threads leasing from a small pool, for every policy.
//!
//! Each of N threads loops for S seconds: lease a connection to one route
//! (blocking `lease`), hold it for a short spin of work, give it back. The
//! time spent inside `lease` (the acquire wait) is recorded in an HDR
//! histogram per thread; the histograms are merged per policy and printed as
//! a table with throughput, wait percentiles and the pool's stats at the end.
//!
//! For now the connections are [`MockConnector`]s (in memory, instant
//! connect), so this measures the pool itself, not a network.
//!
//! ```text
//! cargo run --release --example main_job -- [--threads N] [--pool P] [--seconds S] [--hold-us U]
//! ```
//!
//! Defaults: 8 threads, pool of 4, 2 seconds per policy, 2 µs hold.

use hdrhistogram::Histogram;
use leasehold::mock::MockConnector;
use leasehold::{Policy, Pool};
use std::process::ExitCode;
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// Runs `$f::<P>(args…)` for every policy, in order, collecting the results
/// in a `Vec`. A new policy is one more line here.
macro_rules! for_each_policy {
    ($f:ident($($arg:expr),* $(,)?)) => {
        vec![
            $f::<leasehold::Strict>($($arg),*),
            $f::<leasehold::Lax>($($arg),*),
            $f::<leasehold::Offlock>($($arg),*),
        ]
    };
}

/// How long a lease may wait before it counts as a timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

const USAGE: &str = "\
usage: main_job [--threads N] [--pool P] [--seconds S] [--hold-us U]
  --threads N   worker threads (default 8)
  --pool P      pool size: max connections, all on one route (default 4)
  --seconds S   run time per policy, fractions allowed (default 2)
  --hold-us U   how long each lease is held, spinning, in µs (default 2)";

#[derive(Clone, Copy, Debug)]
struct Args {
    threads: usize,
    pool: usize,
    run: Duration,
    hold: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 8,
        pool: 4,
        run: Duration::from_secs(2),
        hold: Duration::from_micros(2),
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |what: &str| format!("{flag}: expected {what}, got {value:?}");
        match flag.as_str() {
            "--threads" => {
                args.threads = value.parse().map_err(|_| bad("a whole number"))?;
            }
            "--pool" => {
                args.pool = value.parse().map_err(|_| bad("a whole number"))?;
            }
            "--seconds" => {
                let secs: f64 = value.parse().map_err(|_| bad("a number of seconds"))?;
                args.run = Duration::try_from_secs_f64(secs)
                    .map_err(|_| bad("a non-negative number of seconds"))?;
            }
            "--hold-us" => {
                args.hold =
                    Duration::from_micros(value.parse().map_err(|_| bad("a whole number"))?);
            }
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if args.threads == 0 || args.pool == 0 {
        return Err("--threads and --pool must be at least 1".into());
    }
    if args.run.is_zero() {
        return Err("--seconds must be greater than 0".into());
    }
    Ok(args)
}

/// What one thread did.
struct Worker {
    waits: Histogram<u64>,
    leases: u64,
    errors: u64,
}

/// One row of the report.
struct Row {
    policy: &'static str,
    elapsed: Duration,
    leases: u64,
    errors: u64,
    per_thread: (u64, u64),
    waits: Histogram<u64>,
    stats: leasehold::Stats,
}

fn new_histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 1 min, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Busy work standing in for using the connection.
fn hold_for(hold: Duration) {
    let start = Instant::now();
    while start.elapsed() < hold {
        std::hint::spin_loop();
    }
}

/// Waits for the start, then cycles until the deadline (set by the main
/// thread before it releases the start barrier).
fn worker<P: Policy>(
    pool: &Pool<MockConnector, P>,
    args: Args,
    start: &Barrier,
    deadline: &OnceLock<Instant>,
) -> Worker {
    let mut me = Worker {
        waits: new_histogram(),
        leases: 0,
        errors: 0,
    };
    start.wait();
    let until = *deadline
        .get()
        .expect("the deadline is set before the start");
    while Instant::now() < until {
        let asked = Instant::now();
        match pool.lease(&()) {
            Ok(mut conn) => {
                let waited = asked.elapsed();
                me.waits
                    .saturating_record(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
                conn.touch();
                hold_for(args.hold);
                drop(conn);
                me.leases += 1;
            }
            Err(_) => me.errors += 1,
        }
    }
    me
}

fn run<P: Policy>(args: Args) -> Row {
    let pool: Pool<MockConnector, P> = Pool::builder(MockConnector::new())
        .max_total(args.pool)
        .max_per_route(args.pool)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .build()
        .expect("valid pool config");
    let start = Barrier::new(args.threads + 1);
    let deadline = OnceLock::new();
    let (workers, elapsed) = thread::scope(|scope| {
        let handles: Vec<_> = (0..args.threads)
            .map(|_| {
                let (pool, start, deadline) = (&pool, &start, &deadline);
                scope.spawn(move || worker(pool, args, start, deadline))
            })
            .collect();
        // Every thread is spawned: the clock starts now, and the workers
        // together at the barrier.
        let began = Instant::now();
        deadline.set(began + args.run).expect("set once");
        start.wait();
        let workers: Vec<Worker> = handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .collect();
        (workers, began.elapsed())
    });

    let mut waits = new_histogram();
    let (mut leases, mut errors) = (0, 0);
    let (mut fewest, mut most) = (u64::MAX, 0);
    for w in &workers {
        waits.add(&w.waits).expect("same histogram bounds");
        leases += w.leases;
        errors += w.errors;
        fewest = fewest.min(w.leases);
        most = most.max(w.leases);
    }
    Row {
        policy: P::NAME,
        elapsed,
        leases,
        errors,
        per_thread: (fewest, most),
        waits,
        stats: pool.stats().total,
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

/// A count with thousands separators.
fn count(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn print_report(args: Args, rows: &[Row]) {
    let headers = [
        "policy",
        "threads",
        "pool",
        "leases/s",
        "wait p50",
        "wait p99",
        "wait max",
        "per thread min..max",
        "created",
        "closed",
        "timeouts",
        "idle",
        "leased",
    ];
    let table: Vec<[String; 13]> = rows
        .iter()
        .map(|r| {
            let rate = r.leases as f64 / r.elapsed.as_secs_f64();
            [
                r.policy.to_string(),
                args.threads.to_string(),
                args.pool.to_string(),
                count(rate as u64),
                ns(r.waits.value_at_quantile(0.50)),
                ns(r.waits.value_at_quantile(0.99)),
                ns(r.waits.max()),
                format!("{}..{}", count(r.per_thread.0), count(r.per_thread.1)),
                r.stats.created.to_string(),
                r.stats.closed.to_string(),
                r.stats.timeouts.to_string(),
                r.stats.idle.to_string(),
                r.stats.leased.to_string(),
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
            let pad = w - cell.chars().count();
            // Text left-aligned, numbers right-aligned.
            if i == 0 {
                out.push_str(&format!("{cell}{}  ", " ".repeat(pad)));
            } else {
                out.push_str(&format!("{}{cell}  ", " ".repeat(pad)));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&headers);
    line(&widths.map(|w| "-".repeat(w)).each_ref().map(String::as_str));
    for row in &table {
        line(&row.each_ref().map(String::as_str));
    }
    for r in rows {
        if r.errors > 0 {
            println!(
                "note: {} lease(s) failed under {} (acquire timeout {:?})",
                r.errors, r.policy, ACQUIRE_TIMEOUT
            );
        }
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
    println!(
        "leasehold main job: {} threads share a pool of {} mock connection(s) on one route,\n\
         looping lease -> hold ~{:?} (spin) -> return for {:?} per policy.\n\
         'wait' is the time spent inside pool.lease() (acquire timeout {:?});\n\
         stats are the pool's totals after the run.\n",
        args.threads, args.pool, args.hold, args.run, ACQUIRE_TIMEOUT
    );
    let rows = for_each_policy!(run(args));
    print_report(args, &rows);
    ExitCode::SUCCESS
}
