//! The results of `benches/contention.rs`: one [`Row`] per pool and
//! scenario, printed as tables by the bench and kept as CSV for the
//! `bench_report` tool (`tools/bench-report`), which turns them into
//! `benches/README.md`'s table and plot.
//!
//! The CSV starts with `#` lines naming when and where it was measured, then
//! a header and one line per row.

use crate::machine;
use std::fmt::Write as _;
use std::io;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// Where the bench leaves its CSV, under the target directory.
pub const CSV: &str = "bench-report/contention.csv";

/// Whose pool it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// One of our policies.
    Ours,
    /// A pool people use instead.
    Peer,
    /// A reference design written for the bench.
    Baseline,
    /// No pool: the work alone, the most the machine completes.
    Ceiling,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Peer => "peer",
            Side::Baseline => "baseline",
            Side::Ceiling => "ceiling",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Side::Ours, Side::Peer, Side::Baseline, Side::Ceiling]
            .into_iter()
            .find(|side| side.as_str() == s)
    }
}

/// One pool in one scenario.
#[derive(Clone, Debug)]
pub struct Row {
    /// The pool's name.
    pub pool: String,
    /// Whose pool it is.
    pub side: Side,
    /// Its size: the connections it may hold.
    pub size: usize,
    /// The threads (or tasks) cycling on it.
    pub workers: usize,
    /// Time each cycle holds its connection.
    pub hold_ns: u64,
    /// Millions of cycles per second in the median measured batch.
    pub mops: f64,
    /// Median acquire latency over the sampled acquires.
    pub p50_ns: u64,
    /// The 99th percentile of the same.
    pub p99_ns: u64,
    /// The 99.9th percentile of the same.
    pub p999_ns: u64,
    /// The longest sampled acquire.
    pub max_ns: u64,
}

/// "0ns", "1us": the hold in group names and tables.
pub fn hold_label(ns: u64) -> String {
    if ns % 1000 == 0 && ns > 0 {
        format!("{}us", ns / 1000)
    } else {
        format!("{ns}ns")
    }
}

/// Nanoseconds as microseconds with two decimals.
pub fn micros(ns: u64) -> String {
    format!("{:.2}", ns as f64 / 1000.0)
}

/// The scenarios of `rows` in first-seen order, as (hold, size, workers).
pub fn scenarios(rows: &[Row]) -> Vec<(u64, usize, usize)> {
    let mut seen = Vec::new();
    for row in rows {
        let key = (row.hold_ns, row.size, row.workers);
        if !seen.contains(&key) {
            seen.push(key);
        }
    }
    seen
}

/// The pools of `rows` in first-seen order.
pub fn pools(rows: &[Row]) -> Vec<(&str, Side)> {
    let mut seen: Vec<(&str, Side)> = Vec::new();
    for row in rows {
        if !seen.iter().any(|&(name, _)| name == row.pool) {
            seen.push((&row.pool, row.side));
        }
    }
    seen
}

/// The row of `pool` in a scenario.
pub fn find<'a>(
    rows: &'a [Row],
    pool: &str,
    (hold, size, workers): (u64, usize, usize),
) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.pool == pool && (r.hold_ns, r.size, r.workers) == (hold, size, workers))
}

/// The fastest peer in a scenario.
pub fn best_peer(rows: &[Row], scenario: (u64, usize, usize)) -> Option<&Row> {
    rows.iter()
        .filter(|r| r.side == Side::Peer && (r.hold_ns, r.size, r.workers) == scenario)
        .max_by(|a, b| a.mops.total_cmp(&b.mops))
}

/// Prints every row, then ours ÷ the best peer and ÷ `hikari_bag`.
pub fn print(rows: &[Row], ops: u64) {
    println!();
    println!(
        "contention: {ops} cycles per batch; Mops/s of the median measured batch; \
         acquire latency in µs over every 16th acquire"
    );
    println!(
        "{:<6} {:<12} {:<14} {:>8} {:>9} {:>9} {:>9} {:>10}",
        "hold", "pool/workers", "pool", "Mops/s", "p50", "p99", "p99.9", "max"
    );
    for scenario in scenarios(rows) {
        for (pool, _) in pools(rows) {
            let Some(r) = find(rows, pool, scenario) else {
                continue;
            };
            println!(
                "{:<6} {:<12} {:<14} {:>8.2} {:>9} {:>9} {:>9} {:>10}",
                hold_label(r.hold_ns),
                format!("{}/{}", r.size, r.workers),
                r.pool,
                r.mops,
                micros(r.p50_ns),
                micros(r.p99_ns),
                micros(r.p999_ns),
                micros(r.max_ns),
            );
        }
    }

    let ours: Vec<&str> = pools(rows)
        .into_iter()
        .filter(|p| p.1 == Side::Ours)
        .map(|p| p.0)
        .collect();
    println!();
    println!("ours ÷ the best peer in the same scenario (throughput; p99 as peer's ÷ ours)");
    for scenario in scenarios(rows) {
        let Some(peer) = best_peer(rows, scenario) else {
            continue;
        };
        let mut line = format!(
            "{:<6} {:<12} best peer {:<9}",
            hold_label(scenario.0),
            format!("{}/{}", scenario.1, scenario.2),
            peer.pool
        );
        for policy in &ours {
            if let Some(r) = find(rows, policy, scenario) {
                let _ = write!(
                    line,
                    "  {policy} {:.2}x (p99 {:.2}x)",
                    r.mops / peer.mops,
                    peer.p99_ns as f64 / r.p99_ns as f64
                );
            }
        }
        println!("{line}");
    }
}

/// The civil date (UTC) of a Unix time, as YYYY-MM-DD.
pub fn date(unix_secs: u64) -> String {
    // Howard Hinnant's days-to-civil.
    let z = (unix_secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The CPU model and core count, as far as this machine says.
fn machine() -> String {
    let model = machine::cpu_model().unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = machine::cpus().unwrap_or(0);
    format!("{model}, {cores} cores, {}", std::env::consts::OS)
}

/// The target directory cargo builds into.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

/// What the `#` lines of a CSV say.
#[derive(Debug, Default)]
pub struct Measured {
    /// When, as YYYY-MM-DD (UTC).
    pub date: String,
    /// The CPU model, core count and OS.
    pub machine: String,
    /// Cycles per batch.
    pub ops: u64,
    /// Full runs of the bench the rows are the median of (1: one run).
    pub runs: usize,
}

const HEADER: &str = "pool,side,size,workers,hold_ns,mops,p50_ns,p99_ns,p999_ns,max_ns";

/// Writes `rows` as CSV to the target directory; returns the path.
pub fn save(rows: &[Row], ops: u64) -> io::Result<PathBuf> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let measured = Measured {
        date: date(now),
        machine: machine(),
        ops,
        runs: 1,
    };
    let path = target_dir().join(CSV);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, to_csv(&measured, rows))?;
    Ok(path)
}

/// `rows` as CSV, after `#` lines saying what `measured` says.
pub fn to_csv(measured: &Measured, rows: &[Row]) -> String {
    let mut csv = String::new();
    let _ = writeln!(csv, "# date: {}", measured.date);
    let _ = writeln!(csv, "# machine: {}", measured.machine);
    let _ = writeln!(csv, "# ops: {}", measured.ops);
    if measured.runs > 1 {
        let _ = writeln!(csv, "# runs: {}", measured.runs);
    }
    let _ = writeln!(csv, "{HEADER}");
    for r in rows {
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{:.4},{},{},{},{}",
            r.pool,
            r.side.as_str(),
            r.size,
            r.workers,
            r.hold_ns,
            r.mops,
            r.p50_ns,
            r.p99_ns,
            r.p999_ns,
            r.max_ns
        );
    }
    csv
}

/// Reads a CSV written by [`save`].
pub fn load(text: &str) -> Result<(Measured, Vec<Row>), String> {
    let mut measured = Measured {
        runs: 1,
        ..Measured::default()
    };
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let bad = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        if let Some(comment) = line.strip_prefix("# ") {
            let (key, value) = comment.split_once(": ").ok_or_else(|| bad("no key"))?;
            match key {
                "date" => measured.date = value.into(),
                "machine" => measured.machine = value.into(),
                "ops" => measured.ops = value.parse().map_err(|_| bad("ops"))?,
                "runs" => measured.runs = value.parse().map_err(|_| bad("runs"))?,
                _ => {}
            }
            continue;
        }
        if line == HEADER || line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != HEADER.split(',').count() {
            return Err(bad("wrong number of fields"));
        }
        let int = |i: usize| f[i].parse::<u64>().map_err(|_| bad("not a number"));
        rows.push(Row {
            pool: f[0].into(),
            side: Side::parse(f[1]).ok_or_else(|| bad("unknown side"))?,
            size: int(2)? as usize,
            workers: int(3)? as usize,
            hold_ns: int(4)?,
            mops: f[5].parse().map_err(|_| bad("not a number"))?,
            p50_ns: int(6)?,
            p99_ns: int(7)?,
            p999_ns: int(8)?,
            max_ns: int(9)?,
        });
    }
    Ok((measured, rows))
}

/// The median of several full runs, cell by cell: for each pool and
/// scenario, the row of the run whose throughput is the median (the lower
/// of the two middle ones for an even count), its latencies with it, so
/// that one run the machine's noise hit does not make a cell. The runs must
/// come from one machine and batch size; the date is the last run's.
pub fn median_of(runs: Vec<(Measured, Vec<Row>)>) -> Result<(Measured, Vec<Row>), String> {
    let count = runs.len();
    let mut runs = runs.into_iter();
    let (first, rows) = runs.next().ok_or("no runs")?;
    let mut cells: Vec<Vec<Row>> = rows.into_iter().map(|row| vec![row]).collect();
    let mut date = first.date.clone();
    for (measured, rows) in runs {
        if (measured.machine.as_str(), measured.ops) != (first.machine.as_str(), first.ops) {
            return Err(format!(
                "runs differ: {} with {} cycles per batch against {} with {}",
                measured.machine, measured.ops, first.machine, first.ops
            ));
        }
        date = measured.date;
        for row in rows {
            let key = (row.hold_ns, row.size, row.workers);
            match cells.iter_mut().find(|cell| {
                let c = &cell[0];
                c.pool == row.pool && (c.hold_ns, c.size, c.workers) == key
            }) {
                Some(cell) => cell.push(row),
                None => cells.push(vec![row]),
            }
        }
    }
    let rows = cells
        .into_iter()
        .map(|mut cell| {
            cell.sort_by(|a, b| a.mops.total_cmp(&b.mops));
            cell.swap_remove((cell.len() - 1) / 2)
        })
        .collect();
    let measured = Measured {
        date,
        runs: count,
        ..first
    };
    Ok((measured, rows))
}
