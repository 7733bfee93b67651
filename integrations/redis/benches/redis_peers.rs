//! Redis `GET` of a 100-byte value through each pool, against one
//! `redis-server` this bench starts on a free loopback port: requests per
//! second and latency percentiles (lease + `GET` + return, per request) at
//! 1, 8 and 64 workers, in one process and one run.
//!
//! | row | form | connection |
//! |---|---|---|
//! | leasehold-redis | threads (`get`) and tokio tasks (`get_async`) | `RedisConnection` |
//! | r2d2 | threads | the redis crate's `Connection` (its `r2d2` feature) |
//! | bb8-redis | tokio tasks | the redis crate's `MultiplexedConnection` |
//! | deadpool-redis | tokio tasks | the redis crate's `MultiplexedConnection` |
//!
//! Every pool has its default settings but the size, which is the number
//! of workers capped at 16. By default r2d2 and bb8 send a `PING` before
//! each checkout and deadpool-redis an `UNWATCH` and a `PING`; each of them
//! also runs with that check off (r2d2 and bb8: `test_on_check_out(false)`;
//! deadpool: a manager whose recycle does nothing), since leasehold checks
//! nothing at lease time (its event loop watches idle connections).
//! Tasks run on a tokio multi-thread runtime with its default worker
//! count (one per core).
//!
//! ```text
//! cargo bench -p leasehold-redis --bench redis_peers              # 0.7 s per cell, median of 7 rounds (3 min)
//! cargo bench -p leasehold-redis --bench redis_peers -- --quick   # 0.5 s per cell, 1 round (< 1 min)
//! ```
//!
//! `REDIS_PEERS_QUICK=1` is the same as `--quick`. `--workers N` runs one
//! worker count, `--only TEXT` the rows whose pool, form and check contain
//! `TEXT` (`--only "leasehold-redis tasks"`), for profiling one row.
//! Without `redis-server` on `PATH` the bench says so and exits.

use hdrhistogram::Histogram;
use leasehold_redis::RedisPool;
use leasehold_testkit::redis_server::RedisProcess;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const WORKER_COUNTS: [usize; 3] = [1, 8, 64];
/// The largest pool size.
const MAX_POOL: usize = 16;
const KEY: &str = "bench:key";
const VALUE_LEN: usize = 100;

/// Where a measurement stands; workers read it after each request.
const WARMING: u8 = 0;
const MEASURING: u8 = 1;
const STOPPED: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PoolRow {
    LeaseholdThreads,
    LeaseholdTasks,
    R2d2,
    R2d2Unchecked,
    Bb8,
    Bb8Unchecked,
    Deadpool,
    DeadpoolUnchecked,
}

impl PoolRow {
    const ALL: [PoolRow; 8] = [
        PoolRow::LeaseholdThreads,
        PoolRow::LeaseholdTasks,
        PoolRow::R2d2,
        PoolRow::R2d2Unchecked,
        PoolRow::Bb8,
        PoolRow::Bb8Unchecked,
        PoolRow::Deadpool,
        PoolRow::DeadpoolUnchecked,
    ];

    fn name(self) -> &'static str {
        match self {
            PoolRow::LeaseholdThreads | PoolRow::LeaseholdTasks => "leasehold-redis",
            PoolRow::R2d2 | PoolRow::R2d2Unchecked => "r2d2 + redis",
            PoolRow::Bb8 | PoolRow::Bb8Unchecked => "bb8-redis",
            PoolRow::Deadpool | PoolRow::DeadpoolUnchecked => "deadpool-redis",
        }
    }

    fn form(self) -> &'static str {
        match self {
            PoolRow::LeaseholdThreads | PoolRow::R2d2 | PoolRow::R2d2Unchecked => "threads",
            _ => "tasks",
        }
    }

    fn check(self) -> &'static str {
        match self {
            PoolRow::LeaseholdThreads | PoolRow::LeaseholdTasks => "none (event loop)",
            PoolRow::R2d2 | PoolRow::Bb8 => "PING (default)",
            PoolRow::Deadpool => "UNWATCH+PING (default)",
            PoolRow::R2d2Unchecked | PoolRow::Bb8Unchecked | PoolRow::DeadpoolUnchecked => "off",
        }
    }

    /// What `--only` matches against.
    fn label(self) -> String {
        format!("{} {} {}", self.name(), self.form(), self.check())
    }

    fn is_leasehold(self) -> bool {
        matches!(self, PoolRow::LeaseholdThreads | PoolRow::LeaseholdTasks)
    }
}

/// One cell: a contender at a worker count.
#[derive(Clone, Copy, Debug)]
struct Cell {
    contender: PoolRow,
    workers: usize,
    rate: f64,
    p50_us: f64,
    p99_us: f64,
    /// The fewest requests one worker completed, over the mean: near 1
    /// when workers are served alike, 0 when one starved.
    fairness: f64,
}

struct BenchSettings {
    warmup: Duration,
    window: Duration,
    rounds: usize,
}

/// The value after `--name` on the command line.
fn option(name: &str) -> Option<String> {
    let mut args = std::env::args();
    args.find(|a| a == name)?;
    args.next()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var_os("REDIS_PEERS_QUICK").is_some_and(|v| v != "0");
    let worker_counts: Vec<usize> = match option("--workers") {
        Some(n) => vec![n.parse().expect("--workers takes a number")],
        None => WORKER_COUNTS.to_vec(),
    };
    let only = option("--only");
    let contenders: Vec<PoolRow> = PoolRow::ALL
        .into_iter()
        .filter(|c| {
            only.as_ref()
                .is_none_or(|only| c.label().contains(only.as_str()))
        })
        .collect();
    let settings = if quick {
        BenchSettings {
            warmup: Duration::from_millis(200),
            window: Duration::from_millis(500),
            rounds: 1,
        }
    } else {
        BenchSettings {
            warmup: Duration::from_millis(300),
            window: Duration::from_millis(700),
            rounds: 7,
        }
    };
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let url = server.url("/0");
    let mut setup = server.direct("");
    redis::cmd("SET")
        .arg(KEY)
        .arg(vec![b'v'; VALUE_LEN])
        .exec(&mut setup)
        .expect("SET the value");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");

    // Each round runs every cell once, starting one cell further along
    // than the round before, so that a change in the machine's load
    // (other processes, the host) falls on every pool alike; each cell's
    // figure is then the median over the rounds.
    let order: Vec<(usize, PoolRow)> = worker_counts
        .iter()
        .flat_map(|&workers| {
            contenders
                .iter()
                .map(move |&contender| (workers, contender))
        })
        .collect();
    let mut rounds = Vec::new();
    for round in 0..settings.rounds {
        let mut cells = vec![None; order.len()];
        for step in 0..order.len() {
            let at = (step + round) % order.len();
            let (workers, contender) = order[at];
            eprintln!(
                "round {}/{}: {} {} ({}), {workers} workers",
                round + 1,
                settings.rounds,
                contender.name(),
                contender.form(),
                contender.check()
            );
            cells[at] = Some(measure(contender, workers, &url, &runtime, &settings));
        }
        rounds.push(
            cells
                .into_iter()
                .map(|cell| cell.expect("measured"))
                .collect::<Vec<Cell>>(),
        );
    }
    let cells: Vec<Cell> = (0..rounds[0].len())
        .map(|i| median(rounds.iter().map(|round| round[i]).collect()))
        .collect();
    print!("{}", table(&cells, &worker_counts, &settings, quick));
}

/// The cell with the median rate of `runs`, its latencies with it.
fn median(mut runs: Vec<Cell>) -> Cell {
    runs.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    runs[runs.len() / 2]
}

fn measure(
    contender: PoolRow,
    workers: usize,
    url: &str,
    runtime: &tokio::runtime::Runtime,
    settings: &BenchSettings,
) -> Cell {
    let size = workers.min(MAX_POOL);
    let phase = Arc::new(AtomicU8::new(WARMING));
    let (histogram, per_worker) = match contender {
        PoolRow::LeaseholdThreads => {
            let pool = RedisPool::build(url, |b| b.max_per_route(size)).expect("pool");
            threads(workers, &phase, settings, || {
                let mut conn = pool.get().expect("lease");
                check(redis::cmd("GET").arg(KEY).query(&mut conn));
            })
        }
        PoolRow::R2d2 | PoolRow::R2d2Unchecked => {
            let client = redis::Client::open(url).expect("client");
            let pool = r2d2::Pool::builder()
                .max_size(u32::try_from(size).expect("small"))
                .test_on_check_out(contender == PoolRow::R2d2)
                .build(client)
                .expect("r2d2 pool");
            threads(workers, &phase, settings, || {
                let mut conn = pool.get().expect("lease");
                check(redis::cmd("GET").arg(KEY).query(&mut *conn));
            })
        }
        PoolRow::LeaseholdTasks => {
            let pool = RedisPool::build(url, |b| b.max_per_route(size)).expect("pool");
            tasks(runtime, workers, &phase, settings, move || {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.get_async().await.expect("lease");
                    check(redis::cmd("GET").arg(KEY).query_async(&mut conn).await);
                }
            })
        }
        PoolRow::Bb8 | PoolRow::Bb8Unchecked => {
            let manager = bb8_redis::RedisConnectionManager::new(url).expect("manager");
            let pool = runtime
                .block_on(
                    bb8::Pool::builder()
                        .max_size(u32::try_from(size).expect("small"))
                        .test_on_check_out(contender == PoolRow::Bb8)
                        .build(manager),
                )
                .expect("bb8 pool");
            tasks(runtime, workers, &phase, settings, move || {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.get().await.expect("lease");
                    check(redis::cmd("GET").arg(KEY).query_async(&mut *conn).await);
                }
            })
        }
        PoolRow::Deadpool => {
            let pool = deadpool_redis::Config::from_url(url)
                .builder()
                .expect("config")
                .max_size(size)
                .runtime(deadpool_redis::Runtime::Tokio1)
                .build()
                .expect("deadpool pool");
            tasks(runtime, workers, &phase, settings, move || {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.get().await.expect("lease");
                    check(redis::cmd("GET").arg(KEY).query_async(&mut conn).await);
                }
            })
        }
        PoolRow::DeadpoolUnchecked => {
            let client = redis::Client::open(url).expect("client");
            let pool: deadpool::managed::Pool<Unchecked> =
                deadpool::managed::Pool::builder(Unchecked(client))
                    .max_size(size)
                    .runtime(deadpool::Runtime::Tokio1)
                    .build()
                    .expect("deadpool pool");
            tasks(runtime, workers, &phase, settings, move || {
                let pool = pool.clone();
                async move {
                    let mut conn = pool.get().await.expect("lease");
                    check(redis::cmd("GET").arg(KEY).query_async(&mut *conn).await);
                }
            })
        }
    };
    let window = settings.window.as_secs_f64();
    let requests = histogram.len();
    let fewest = per_worker.iter().copied().min().unwrap_or(0);
    Cell {
        contender,
        workers,
        fairness: fewest as f64 * workers as f64 / requests.max(1) as f64,
        rate: requests as f64 / window,
        p50_us: histogram.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: histogram.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

/// deadpool with the redis crate's multiplexed connection and a recycle
/// that checks nothing.
struct Unchecked(redis::Client);

impl deadpool::managed::Manager for Unchecked {
    type Type = redis::aio::MultiplexedConnection;
    type Error = redis::RedisError;

    async fn create(&self) -> Result<Self::Type, Self::Error> {
        self.0.get_multiplexed_async_connection().await
    }

    async fn recycle(
        &self,
        _: &mut Self::Type,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Self::Error> {
        Ok(())
    }
}

/// Every reply must be the value, so that no pool gets away with less.
fn check(reply: redis::RedisResult<Vec<u8>>) {
    let value = reply.expect("GET");
    assert_eq!(value.len(), VALUE_LEN, "the GET reply");
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

/// Runs the phases: warm-up, then the measured window, then stop.
fn run_phases(phase: &AtomicU8, settings: &BenchSettings) {
    thread::sleep(settings.warmup);
    phase.store(MEASURING, Ordering::SeqCst);
    thread::sleep(settings.window);
    phase.store(STOPPED, Ordering::SeqCst);
}

/// `workers` threads, each repeating `request` until stopped.
fn threads(
    workers: usize,
    phase: &Arc<AtomicU8>,
    settings: &BenchSettings,
    request: impl Fn() + Sync,
) -> (Histogram<u64>, Vec<u64>) {
    thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let phase = phase.clone();
                let request = &request;
                scope.spawn(move || {
                    let mut latencies = histogram();
                    loop {
                        let started = Instant::now();
                        request();
                        let took = started.elapsed();
                        match phase.load(Ordering::Relaxed) {
                            MEASURING => record(&mut latencies, took),
                            STOPPED => return latencies,
                            _ => {}
                        }
                    }
                })
            })
            .collect();
        run_phases(phase, settings);
        merge(handles.into_iter().map(|h| h.join().expect("worker")))
    })
}

/// `workers` tokio tasks, each repeating the request `make` makes.
fn tasks<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    workers: usize,
    phase: &Arc<AtomicU8>,
    settings: &BenchSettings,
    make: F,
) -> (Histogram<u64>, Vec<u64>)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let phase = phase.clone();
            let make = make.clone();
            runtime.spawn(async move {
                let mut latencies = histogram();
                loop {
                    let started = Instant::now();
                    make().await;
                    let took = started.elapsed();
                    match phase.load(Ordering::Relaxed) {
                        MEASURING => record(&mut latencies, took),
                        STOPPED => return latencies,
                        _ => {}
                    }
                }
            })
        })
        .collect();
    run_phases(phase, settings);
    merge(
        handles
            .into_iter()
            .map(|h| runtime.block_on(h).expect("task")),
    )
}

fn record(latencies: &mut Histogram<u64>, took: Duration) {
    let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    latencies.saturating_record(nanos.max(1));
}

/// All workers' latencies, and how many requests each completed.
fn merge(parts: impl Iterator<Item = Histogram<u64>>) -> (Histogram<u64>, Vec<u64>) {
    let mut all = histogram();
    let mut per_worker = Vec::new();
    for part in parts {
        per_worker.push(part.len());
        all.add(part).expect("same bounds");
    }
    (all, per_worker)
}

fn table(cells: &[Cell], worker_counts: &[usize], settings: &BenchSettings, quick: bool) -> String {
    let mut out = String::new();
    let cpus = thread::available_parallelism().map_or(0, |n| n.get());
    out.push_str(&format!(
        "\n## Redis GET of a {VALUE_LEN}-byte value, loopback redis-server ({})\n\n",
        redis_version()
    ));
    out.push_str(&format!(
        "{} s per cell after {} s of warm-up, {}; {cpus} CPUs ({}); pool size = workers, at most {MAX_POOL}; tasks on a tokio multi-thread runtime with {cpus} workers\n\n",
        settings.window.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        if quick {
            "one round (quick)".to_owned()
        } else {
            format!("median of {} rounds", settings.rounds)
        },
        cpu_model(),
    ));
    out.push_str(
        "| workers | pool | form | check at checkout | req/s | p50 µs | p99 µs | slowest worker |\n",
    );
    out.push_str("|---:|---|---|---|---:|---:|---:|---:|\n");
    for cell in cells {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.2} |\n",
            cell.workers,
            cell.contender.name(),
            cell.contender.form(),
            cell.contender.check(),
            cell.rate,
            cell.p50_us,
            cell.p99_us,
            cell.fairness
        ));
    }
    out.push_str(
        "\nLatency is lease + GET + return, of the requests completed in the window; \"slowest worker\" is the fewest requests one worker completed over the mean (1: all served alike; near 0: a worker starved, and its wait shows in no percentile).\n\n",
    );
    for &workers in worker_counts {
        let at: Vec<&Cell> = cells.iter().filter(|c| c.workers == workers).collect();
        let best = |leasehold: bool| {
            at.iter()
                .filter(|c| c.contender.is_leasehold() == leasehold)
                .max_by(|a, b| a.rate.total_cmp(&b.rate))
        };
        let (Some(ours), Some(peer)) = (best(true), best(false)) else {
            continue;
        };
        out.push_str(&format!(
            "- {workers} workers: leasehold-redis ({}) {:.0} req/s, p99 {:.1} µs; best peer {} ({}, check {}) {:.0} req/s, p99 {:.1} µs: {:.2}× the rate\n",
            ours.contender.form(),
            ours.rate,
            ours.p99_us,
            peer.contender.name(),
            peer.contender.form(),
            peer.contender.check(),
            peer.rate,
            peer.p99_us,
            ours.rate / peer.rate
        ));
    }
    out
}

fn redis_version() -> String {
    std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| {
            text.split_whitespace()
                .find_map(|word| word.strip_prefix("v=").map(str::to_owned))
        })
        .map_or_else(|| "version unknown".to_owned(), |v| format!("v{v}"))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
