//! The main job: HTTP/1.1 keep-alive requests to a loopback server through
//! the pool, for every policy, against a new TCP connection per request —
//! or, with `--tls`, the same over TLS against a new TLS connection per
//! request.
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
//! With `--tls`, start-up makes a CA of its own and a certificate for
//! `localhost` it issues (rcgen, `leasehold_testkit::pki`), and the server
//! speaks TLS (1.3, rustls with ring). The pooled rows go through a
//! `Pool<TlsConnector, P>` whose connector trusts only that CA (route
//! `TlsRoute::new(addr, "localhost")`, verification on, session resumption
//! at its default). The unpooled baselines open a new TCP connection and a
//! rustls client connection per request, without the pool, and close it
//! with `close_notify`: one does a full handshake every time (resumption
//! off), the other resumes a session from an earlier request (one client
//! configuration, with its session cache, shared by all requests), which
//! shows what pooling saves over resumption too. Two more columns count the
//! TLS handshakes the server saw in each mode, full and resumed.
//!
//! ```text
//! cargo run --release -p leasehold-main-job -- [--threads N] [--pool P] [--seconds S]
//!     [--latency-us U] [--idle-close-ms M] [--tls] [--svg PATH]
//! ```
//!
//! At the end, a running `Strict` pool is changed under load: its total
//! cap lowered and raised, paused and resumed, drained (`changes.rs`);
//! with `--tls` its client certificate is also rotated against a server
//! that requires and verifies one, and the old connections retired.
//!
//! After the table, each pool's sizing advice from its own figures
//! (`Pool::sizing`); `--svg` also plots how long the leases that waited
//! waited, per policy, from the pools' wait-time histograms.
//!
//! Defaults: 8 threads, pool of 4, 1 s of load twice per mode, no server
//! latency, idle close after 500 ms, plain TCP.
//!
//! The header names the machine the figures come from: its CPU count, CPU
//! model and 1-minute load average, as far as it says.

mod changes;

use hdrhistogram::Histogram;
use leasehold::{Connector, Policy, Pool, Strict, TcpConnector};
use leasehold_testkit::machine::Machine;
use leasehold_testkit::{http, pki};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

/// How long a lease may wait before it counts as a timeout.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

const USAGE: &str = "\
usage: main_job [--threads N] [--pool P] [--seconds S] [--latency-us U] [--idle-close-ms M] [--tls] [--svg PATH]
  --threads N        client threads (default 8)
  --pool P           pool size: max connections to the server (default 4)
  --seconds S        load time per phase, two phases per mode (default 1)
  --latency-us U     server think time per response, in µs (default 0)
  --idle-close-ms M  the server closes connections idle this long (default 500)
  --tls              HTTP over TLS: a CA and a certificate for localhost made at
                     start-up; pooled through TlsConnector, against a full or a
                     resumed handshake per request; counts the server's handshakes
  --svg PATH         plot the pools' wait times (the leases that waited) to PATH";

#[derive(Clone, Copy, Debug)]
struct Args {
    threads: usize,
    pool: usize,
    run: Duration,
    latency: Duration,
    idle_close: Duration,
    tls: bool,
    /// Where to plot the wait times.
    svg: Option<&'static str>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 8,
        pool: 4,
        run: Duration::from_secs(1),
        latency: Duration::ZERO,
        idle_close: Duration::from_millis(500),
        tls: false,
        svg: None,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        if flag == "--tls" {
            args.tls = true;
            continue;
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
            // Leaked: one path for the whole run keeps `Args` `Copy`.
            "--svg" => args.svg = Some(Box::leak(value.into_boxed_str())),
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
    /// The TLS handshakes the server saw in this mode (`--tls` only).
    handshakes: Option<Handshakes>,
    /// The pool's sizing advice over the run (pooled modes only).
    sizing: Option<leasehold::Sizing>,
    /// How long its leases waited that did not find a connection idle
    /// (pooled modes only).
    waits: Option<leasehold::Histogram>,
}

/// TLS handshakes the server completed.
#[derive(Clone, Copy)]
struct Handshakes {
    full: u64,
    resumed: u64,
}

impl Handshakes {
    fn seen_by(server: &http::Server) -> Self {
        Self {
            full: server.full_handshakes(),
            resumed: server.resumed_handshakes(),
        }
    }
}

/// Runs one mode, recording the handshakes the server saw meanwhile.
fn counting_handshakes(server: &http::Server, mode: impl FnOnce() -> Row) -> Row {
    let before = Handshakes::seen_by(server);
    let mut row = mode();
    let after = Handshakes::seen_by(server);
    row.handshakes = Some(Handshakes {
        full: after.full - before.full,
        resumed: after.resumed - before.resumed,
    });
    row
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

/// Requests through a `Pool<C, P>` to `route`.
fn pooled<C, P>(args: Args, connector: C, route: &C::Route) -> Row
where
    C: Connector + Sync,
    C::Conn: Read + Write + fmt::Debug,
    P: Policy,
{
    let pool: Pool<C, P> = Pool::builder(connector)
        .policy::<P>()
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
            let mut conn = match pool.lease(route) {
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
                        "request failed: {other:?} on {:?} age {:?} reused {reused} attempt {attempt}",
                        *conn,
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
        handshakes: None,
        sizing: Some(pool.sizing().total),
        waits: {
            let figures = pool.figures();
            let mut waits = figures.wait_queued;
            waits.merge(&figures.wait_connect);
            Some(waits)
        },
    }
}

/// A `Strict` pool of `size` for the part that changes a running pool.
fn changing_pool<C: Connector>(size: usize, connector: C) -> Pool<C, Strict> {
    Pool::builder(connector)
        .max_total(size)
        .max_per_route(4 * size)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_timeout(Duration::from_secs(1))
        .build()
        .expect("valid pool config")
}

/// One `GET /` through `pool`, retried once on another connection if a
/// reused one was closed by the server as it was sent.
fn pooled_get<C, P>(pool: &Pool<C, P>, route: &C::Route) -> Result<(), String>
where
    C: Connector,
    C::Conn: Read + Write,
    P: Policy,
{
    let asked = Instant::now();
    for attempt in 0..2 {
        let mut conn = pool.lease(route).map_err(|e| e.to_string())?;
        let reused = conn.created() < asked;
        match http::get(&mut *conn, "/") {
            Ok(response) if response.status == 200 => return Ok(()),
            Err(e) if reused && attempt == 0 && e.kind() != io::ErrorKind::InvalidData => {
                conn.discard();
            }
            other => {
                conn.discard();
                return Err(format!("{other:?}"));
            }
        }
    }
    Err("failed twice".to_owned())
}

/// Requests each on a connection of its own, which `exchange` opens, uses
/// and closes.
fn unpooled(
    args: Args,
    mode: &'static str,
    exchange: &(dyn Fn() -> io::Result<http::Response> + Sync),
) -> Row {
    let request = |tally: &mut Tally| {
        let asked = Instant::now();
        match exchange() {
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
        mode,
        busy,
        tally,
        created,
        stale: 0,
        handshakes: None,
        sizing: None,
        waits: None,
    }
}

/// A new TCP connection per request, closed by dropping it.
fn tcp_exchange(addr: SocketAddr) -> io::Result<http::Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    http::get(&mut stream, "/")
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
    let mut headers = vec![
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
    let tls = rows.iter().any(|r| r.handshakes.is_some());
    if tls {
        headers.extend(["TLS full", "TLS resumed"]);
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let t = &r.tally;
            let mut cells = vec![
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
            ];
            if tls {
                let (full, resumed) = r.handshakes.map_or(("-".into(), "-".into()), |h| {
                    (h.full.to_string(), h.resumed.to_string())
                });
                cells.extend([full, resumed]);
            }
            cells
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
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
    let rules: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    line(&rules.iter().map(String::as_str).collect::<Vec<_>>());
    for row in &table {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

/// What each pool's figures say of its size (Little's law, over the run).
fn print_sizing(rows: &[Row]) {
    println!("\nsizing from the pools' own figures (Little's law over the run, pauses included):");
    for row in rows {
        if let Some(sizing) = &row.sizing {
            println!("  {}: {sizing}", row.mode);
        }
    }
}

/// Plots, per pooled mode, how the waits of the leases that did not find
/// a connection idle spread: the share of them in each bucket of the
/// pool's wait-time histogram, on a log scale of time.
fn plot_waits(path: &str, rows: &[Row]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let share =
        |waits: &leasehold::Histogram, n: u64| 100.0 * n as f64 / waits.count().max(1) as f64;
    let top = rows
        .iter()
        .filter_map(|row| row.waits.as_ref())
        .flat_map(|waits| waits.buckets().map(|(_, n)| share(waits, n)))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, (860, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "How long leases waited that found no idle connection",
            ("sans-serif", 18),
        )
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d((0.05f64..1e6).log_scale(), 0f64..top * 1.15)?;
    chart
        .configure_mesh()
        .x_desc("wait (µs, upper bound of the histogram's bucket)")
        .y_desc("% of those leases")
        .x_label_formatter(&|x| format!("{x}"))
        .draw()?;
    let colors = [RED, BLUE, GREEN];
    for (row, color) in rows.iter().filter(|r| r.waits.is_some()).zip(colors) {
        let Some(waits) = &row.waits else { continue };
        let points: Vec<(f64, f64)> = waits
            .buckets()
            .filter(|(bound, _)| *bound < Duration::from_secs(1))
            .map(|(bound, n)| (bound.as_secs_f64() * 1e6, share(waits, n)))
            .collect();
        let style = ShapeStyle::from(&color).stroke_width(2);
        let label = format!(
            "{} ({} waited, p99 {})",
            row.mode,
            waits.count(),
            waits
                .quantile(0.99)
                .map_or("-".into(), |p99| ns(p99.as_nanos() as u64))
        );
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Requests/s of a row.
fn rate(row: &Row) -> f64 {
    row.tally.requests as f64 / row.busy.as_secs_f64()
}

/// The best requests/s of the pooled rows (the first three).
fn best_pooled(rows: &[Row]) -> f64 {
    rows[..3].iter().map(rate).fold(0.0, f64::max)
}

/// Starts the loopback server, or says why it could not.
fn start_server(config: http::ServerConfig) -> Option<http::Server> {
    match http::Server::start(config) {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!("error: cannot start the loopback server: {e}");
            None
        }
    }
}

/// The exit status: failure when any request failed or timed out, in the
/// table or (`changed`) while the running pool was changed.
fn verdict(rows: &[Row], changed: u64) -> ExitCode {
    let failed: u64 = rows
        .iter()
        .map(|r| r.tally.failed + r.tally.timeouts)
        .sum::<u64>()
        + changed;
    if failed > 0 {
        println!("{failed} request(s) failed or timed out: that is a bug.");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
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
    if args.tls {
        tls_job(args, config)
    } else {
        tcp_job(args, config)
    }
}

/// The job over plain TCP.
fn tcp_job(args: Args, config: http::ServerConfig) -> ExitCode {
    let Some(server) = start_server(config) else {
        return ExitCode::FAILURE;
    };
    let addr = server.addr();
    println!(
        "leasehold main job: {} client threads send HTTP/1.1 GETs to a loopback server at {addr}\n\
         (response latency {:?}, closes connections idle for {:?}), {:?} of load, a pause\n\
         while the server closes every idle connection, then {:?} more; pooled runs use\n\
         a pool of {} keep-alive connections.\n\
         machine: {}\n",
        args.threads,
        args.latency,
        args.idle_close,
        args.run,
        args.run,
        args.pool,
        Machine::now()
    );
    let tcp = TcpConnector::new;
    let rows = vec![
        pooled::<_, leasehold::Strict>(args, tcp(), &addr),
        pooled::<_, leasehold::Lax>(args, tcp(), &addr),
        pooled::<_, leasehold::Offlock>(args, tcp(), &addr),
        unpooled(args, "new connection per request", &|| tcp_exchange(addr)),
    ];
    print_report(&rows);
    print_sizing(&rows);
    if let Some(path) = args.svg {
        match plot_waits(path, &rows) {
            Ok(()) => println!("\nwait times plotted to {path}"),
            Err(e) => eprintln!("error: cannot plot to {path}: {e}"),
        }
    }
    println!(
        "\nbest pooled / new connection per request: {:.1}x requests/s; server accepted {} connections, \
         closed {} idle ones.",
        best_pooled(&rows) / rate(&rows[3]).max(1.0),
        server.accepted(),
        server.idle_closed()
    );
    let pool = changing_pool(args.pool, TcpConnector::new());
    let failed =
        changes::resize_pause_drain(&pool, args.pool, args.threads, &|| pooled_get(&pool, &addr));
    verdict(&rows, failed)
}

/// The job over TLS (`--tls`).
fn tls_job(args: Args, config: http::ServerConfig) -> ExitCode {
    use leasehold::tls::{TlsConnector, TlsRoute};

    // A CA of our own, and the server's certificate from it.
    let ca = pki::Authority::new("leasehold main job CA");
    let cert = ca.server(&["localhost"], pki::Validity::Current);
    let Some(server) = start_server(config.tls(pki::server_config(&cert, None))) else {
        return ExitCode::FAILURE;
    };
    let addr = server.addr();
    println!(
        "leasehold main job over TLS: {} client threads send HTTP/1.1 GETs to a loopback TLS server\n\
         at {addr} (response latency {:?}, closes connections idle for {:?} with close_notify),\n\
         {:?} of load, a pause while the server closes every idle connection, then {:?} more;\n\
         pooled runs use a Pool<TlsConnector, _> of {} keep-alive connections. The server's\n\
         certificate for localhost comes from a CA made at start-up, the only one the clients\n\
         trust; every handshake verifies it. Unpooled runs open a new TCP connection and TLS\n\
         session per request (rustls without the pool), doing a full handshake each time, or\n\
         resuming a session an earlier request was given.\n\
         machine: {}\n",
        args.threads,
        args.latency,
        args.idle_close,
        args.run,
        args.run,
        args.pool,
        Machine::now()
    );
    let connector = || {
        TlsConnector::builder()
            .root_certificates(ca.roots())
            .build()
            .expect("a TLS connector")
    };
    let route = TlsRoute::new(addr, "localhost").expect("a valid server name");
    // One configuration per unpooled mode, shared by all its requests: the
    // second keeps sessions for resumption, the first keeps none.
    let full = pki::client_config(ca.roots(), 0);
    let resumed = pki::client_config(ca.roots(), 256);
    let exchange = |config: &std::sync::Arc<leasehold::rustls::ClientConfig>| {
        let mut client = http::connect_tls(addr, "localhost", config)?;
        let response = http::get(&mut client, "/");
        http::close_tls(client);
        response
    };
    let rows = vec![
        counting_handshakes(&server, || {
            pooled::<_, leasehold::Strict>(args, connector(), &route)
        }),
        counting_handshakes(&server, || {
            pooled::<_, leasehold::Lax>(args, connector(), &route)
        }),
        counting_handshakes(&server, || {
            pooled::<_, leasehold::Offlock>(args, connector(), &route)
        }),
        counting_handshakes(&server, || {
            unpooled(args, "new connection per request, full handshake", &|| {
                exchange(&full)
            })
        }),
        counting_handshakes(&server, || {
            unpooled(args, "new connection per request, resumed session", &|| {
                exchange(&resumed)
            })
        }),
    ];
    print_report(&rows);
    print_sizing(&rows);
    if let Some(path) = args.svg {
        match plot_waits(path, &rows) {
            Ok(()) => println!("\nwait times plotted to {path}"),
            Err(e) => eprintln!("error: cannot plot to {path}: {e}"),
        }
    }
    let best = best_pooled(&rows);
    println!(
        "\nbest pooled / new connection per request: {:.1}x requests/s against a full handshake,\n\
         {:.1}x against a resumed one; server accepted {} connections, closed {} idle ones,\n\
         completed {} full and {} resumed TLS handshakes ({} failed).",
        best / rate(&rows[3]).max(1.0),
        best / rate(&rows[4]).max(1.0),
        server.accepted(),
        server.idle_closed(),
        server.full_handshakes(),
        server.resumed_handshakes(),
        server.failed_handshakes()
    );
    let pool = changing_pool(args.pool, connector());
    let mut failed = changes::resize_pause_drain(&pool, args.pool, args.threads, &|| {
        pooled_get(&pool, &route)
    });
    failed += rotation(&ca, &cert, args.threads);
    verdict(&rows, failed)
}

/// A client certificate rotated under load against a server that requires
/// and verifies one, the old connections retired.
fn rotation(ca: &pki::Authority, cert: &pki::Certified, threads: usize) -> u64 {
    use leasehold::tls::{TlsConnector, TlsRoute};
    use leasehold_testkit::tls_echo::{ping, EchoServer};

    let (old, new) = (ca.client("old"), ca.client("new"));
    let server = EchoServer::requiring_clients(cert, ca, &[(&old, "old"), (&new, "new")]);
    let connector = TlsConnector::builder()
        .root_certificates(ca.roots())
        .build()
        .expect("a TLS connector");
    let identity = connector
        .client_identity(old.chain.clone(), old.key.clone_key())
        .expect("a client identity");
    let route = TlsRoute::new(server.addr, "localhost")
        .expect("a valid server name")
        .with_identity(identity.clone());
    let pool: Pool<TlsConnector, Strict> = Pool::builder(connector.clone())
        .max_total(4)
        .max_per_route(4)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // Idle connections made with the old certificate are not lent again.
        .on_check_out(connector.refuse_retired())
        .build()
        .expect("valid pool config");
    let rotate = || {
        connector
            .rotate_identity(&identity, new.chain.clone(), new.key.clone_key())
            .expect("the new certificate");
        connector.retire_existing();
    };
    let request = || {
        let mut lease = pool.lease(&route).map_err(|e| e.to_string())?;
        let reply = ping(&mut *lease).map_err(|e| e.to_string())?;
        Ok(reply.trim_end().rsplit(' ').next().unwrap_or("").to_owned())
    };
    changes::rotate_certificate(threads, &rotate, &request, &|name| {
        server.seen.clients_named(name)
    })
}
