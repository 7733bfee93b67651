//! HTTP/1.1 clients side by side: leasehold-hyper, hyper-util's legacy
//! `Client` (hyper's own pool) and reqwest, each sending `GET`s from 1, 8
//! and 64 tokio tasks to the same loopback keep-alive server (the server
//! of the root crate's tests: a thread per connection, a 2-byte body), in
//! the same process and run.
//!
//! Each task sends a request, reads the body to its end and sends the
//! next, for a fixed time. Every client may open as many connections as
//! there are tasks. The clients take turns, many short rounds each, in an
//! order that changes every round, so that a burst of load from elsewhere
//! on the machine hits them alike; requests/s is the median round's, the
//! latencies come from all rounds together. The CPU time the client side
//! spent per request (every thread of the process but the server's: the
//! runtime's workers, the pool's threads) is counted too, on Linux: it
//! says less about the machine's other load than requests/s does, though
//! a busy machine still inflates it (caches, context switches). The
//! result is a markdown table on stdout.
//!
//! ```text
//! cargo bench -p leasehold-hyper --bench http_peers                    # ~35 s
//! HTTP_PEERS_QUICK=1 cargo bench -p leasehold-hyper --bench http_peers  # ~5 s
//! ```
//!
//! `--quick` as an argument does the same as `HTTP_PEERS_QUICK=1`;
//! `HTTP_PEERS_ONLY=reqwest` (a comma-separated list of the names in the
//! table) leaves the other clients out, and `HTTP_PEERS_TASKS=8` the other
//! task counts, for a profile of one.

use leasehold_testkit::http;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::time::{Duration, Instant};

/// Concurrent tasks in each row.
const TASKS: [usize; 3] = [1, 8, 64];

/// The task counts to run: [`TASKS`], or those `HTTP_PEERS_TASKS` lists.
fn task_counts() -> Vec<usize> {
    match std::env::var("HTTP_PEERS_TASKS") {
        Ok(list) => list
            .split(',')
            .map(|n| n.trim().parse().expect("HTTP_PEERS_TASKS: numbers"))
            .collect(),
        Err(_) => TASKS.to_vec(),
    }
}

/// How long each measurement and each warm-up lasts, and how many rounds.
struct Plan {
    measure: Duration,
    warm_up: Duration,
    rounds: usize,
}

impl Plan {
    fn from_env() -> Self {
        let quick = std::env::var_os("HTTP_PEERS_QUICK").is_some_and(|v| v != "0")
            || std::env::args().any(|arg| arg == "--quick");
        if quick {
            Self {
                measure: Duration::from_millis(200),
                warm_up: Duration::from_millis(50),
                rounds: 2,
            }
        } else {
            Self {
                measure: Duration::from_millis(300),
                warm_up: Duration::from_millis(50),
                rounds: 10,
            }
        }
    }
}

/// One of the clients under test, ready to send `GET`s.
#[derive(Clone)]
enum Peer {
    Leasehold(leasehold_hyper::Client),
    HyperUtil(hyper_util::client::legacy::Client<HttpConnector, Empty<Bytes>>),
    Reqwest(reqwest::Client),
}

impl Peer {
    fn name(&self) -> &'static str {
        match self {
            Self::Leasehold(_) => "leasehold-hyper",
            Self::HyperUtil(_) => "hyper-util legacy",
            Self::Reqwest(_) => "reqwest",
        }
    }

    /// Each client as its users would set it up for this load: as many
    /// connections as tasks, `TCP_NODELAY` on.
    fn all(max_tasks: usize) -> Vec<Peer> {
        let leasehold = leasehold_hyper::Client::builder()
            .pool(move |pool| pool.max_per_route(max_tasks).max_total(max_tasks))
            .build()
            .expect("leasehold-hyper client");
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let hyper_util =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
        let reqwest = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .expect("reqwest client");
        let only = std::env::var("HTTP_PEERS_ONLY").unwrap_or_default();
        let mut peers = vec![
            Peer::Leasehold(leasehold),
            Peer::HyperUtil(hyper_util),
            Peer::Reqwest(reqwest),
        ];
        if !only.is_empty() {
            peers.retain(|peer| only.split(',').any(|name| name.trim() == peer.name()));
        }
        peers
    }

    /// One `GET`, its body read to the end; the body's length.
    async fn get(&self, uri: &Uri, url: &reqwest::Url) -> usize {
        match self {
            Self::Leasehold(client) => {
                let response = client.get(uri.clone()).await.expect("leasehold-hyper GET");
                let body = response.into_body().collect().await.expect("body");
                body.to_bytes().len()
            }
            Self::HyperUtil(client) => {
                let response = client.get(uri.clone()).await.expect("hyper-util GET");
                let body = response.into_body().collect().await.expect("body");
                body.to_bytes().len()
            }
            Self::Reqwest(client) => {
                let response = client.get(url.clone()).send().await.expect("reqwest GET");
                response.bytes().await.expect("body").len()
            }
        }
    }
}

/// What one client did in one round at one concurrency.
struct Measured {
    requests: u64,
    elapsed: Duration,
    latencies: Histogram<u64>,
}

/// The CPU time of every thread of the process except the server's
/// (named `http-…`), from `/proc/self/task/*/schedstat` (Linux); `None`
/// where that cannot be read.
fn client_cpu() -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if name.starts_with("http-") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// `tasks` tasks sending `GET`s through `peer` until `duration` is over.
async fn run(
    peer: &Peer,
    tasks: usize,
    duration: Duration,
    uri: &Uri,
    url: &reqwest::Url,
) -> Measured {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let peer = peer.clone();
            let uri = uri.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut latencies = histogram();
                let mut requests = 0;
                loop {
                    let sent = Instant::now();
                    if sent >= deadline {
                        break;
                    }
                    assert_eq!(peer.get(&uri, &url).await, 2);
                    let nanos = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                    latencies.saturating_record(nanos);
                    requests += 1;
                }
                (requests, latencies)
            })
        })
        .collect();
    let mut total = Measured {
        requests: 0,
        elapsed: Duration::ZERO,
        latencies: histogram(),
    };
    for handle in handles {
        let (requests, latencies) = handle.await.expect("a benchmark task");
        total.requests += requests;
        total.latencies.add(latencies).expect("same bounds");
    }
    total.elapsed = start.elapsed();
    total
}

/// Nanoseconds from 1 ns to a minute, three significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// One row of the table.
struct PeerRow {
    peer: &'static str,
    tasks: usize,
    rate: f64,
    p50: Duration,
    p99: Duration,
    /// Client CPU time per request.
    cpu: Option<Duration>,
    connections: u64,
}

/// What the rounds of one client at one concurrency add up to.
struct PeerTally {
    rates: Vec<f64>,
    latencies: Histogram<u64>,
    requests: u64,
    cpu: Option<Duration>,
    connections: u64,
}

fn main() {
    let plan = Plan::from_env();
    let server = http::Server::start(http::ServerConfig::default()).expect("loopback server");
    let uri: Uri = format!("http://{}/", server.addr()).parse().expect("uri");
    let url = reqwest::Url::parse(&uri.to_string()).expect("url");
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let task_counts = task_counts();
    let max_tasks = task_counts.iter().copied().max().unwrap_or(1);
    let peers = runtime.block_on(async { Peer::all(max_tasks) });
    let mut rows = Vec::new();
    for tasks in task_counts {
        let mut tallies: Vec<PeerTally> = peers
            .iter()
            .map(|_| PeerTally {
                rates: Vec::new(),
                latencies: histogram(),
                requests: 0,
                cpu: Some(Duration::ZERO),
                connections: 0,
            })
            .collect();
        for round in 0..plan.rounds {
            for turn in 0..peers.len() {
                let index = (turn + round + tasks) % peers.len();
                let peer = &peers[index];
                let accepted = server.accepted();
                runtime.block_on(run(peer, tasks, plan.warm_up, &uri, &url));
                let cpu = client_cpu();
                let measured = runtime.block_on(run(peer, tasks, plan.measure, &uri, &url));
                let cpu = client_cpu()
                    .zip(cpu)
                    .map(|(after, before)| after.saturating_sub(before));
                let tally = &mut tallies[index];
                let rate = measured.requests as f64 / measured.elapsed.as_secs_f64();
                tally.rates.push(rate);
                tally
                    .latencies
                    .add(&measured.latencies)
                    .expect("same bounds");
                tally.requests += measured.requests;
                tally.cpu = tally.cpu.zip(cpu).map(|(sum, cpu)| sum + cpu);
                tally.connections += server.accepted() - accepted;
            }
        }
        for (peer, mut tally) in peers.iter().zip(tallies) {
            tally.rates.sort_by(f64::total_cmp);
            let requests = u32::try_from(tally.requests.max(1)).unwrap_or(u32::MAX);
            rows.push(PeerRow {
                peer: peer.name(),
                tasks,
                rate: tally.rates[tally.rates.len() / 2],
                p50: Duration::from_nanos(tally.latencies.value_at_quantile(0.50)),
                p99: Duration::from_nanos(tally.latencies.value_at_quantile(0.99)),
                cpu: tally.cpu.map(|cpu| cpu / requests),
                connections: tally.connections,
            });
        }
    }
    print_table(&rows, &plan, workers);
    drop(peers);
    drop(runtime);
}

fn print_table(rows: &[PeerRow], plan: &Plan, workers: usize) {
    println!();
    println!(
        "HTTP/1.1 GET, 2-byte body, loopback; {} CPUs ({}), tokio multi-thread with {workers} workers; {} rounds of {:?} per cell",
        workers,
        cpu_model(),
        plan.rounds,
        plan.measure
    );
    println!();
    println!(
        "| client | tasks | requests/s | p50 | p99 | client CPU/request | vs best peer (req/s) | connections opened |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let best_peer = rows
            .iter()
            .filter(|other| other.tasks == row.tasks && other.peer != "leasehold-hyper")
            .map(|other| other.rate)
            .fold(0.0, f64::max);
        let versus = if row.peer == "leasehold-hyper" && best_peer > 0.0 {
            format!("{:.2}×", row.rate / best_peer)
        } else {
            String::new()
        };
        let cpu = row
            .cpu
            .map_or_else(|| "n/a".to_owned(), |cpu| format!("{:.1} µs", micros(cpu)));
        println!(
            "| {} | {} | {:.0} | {:.1} µs | {:.1} µs | {} | {} | {} |",
            row.peer,
            row.tasks,
            row.rate,
            micros(row.p50),
            micros(row.p99),
            cpu,
            versus,
            row.connections
        );
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The CPU's model name, from `/proc/cpuinfo` where there is one.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}
