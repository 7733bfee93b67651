//! Turns the results of `cargo bench --bench contention` into `benches/README.md`'s
//! benchmark tables and the scaling plot.
//!
//! ```text
//! cargo bench --bench contention          # writes target/bench-report/contention.csv
//! cargo run -p leasehold-bench-report     # reads it; writes the three below
//! ```
//!
//! Run it from the repository root: the paths below, and the target
//! directory's (`CARGO_TARGET_DIR`, or `target`), are relative to the
//! current directory.
//!
//! * `benches/results/contention.csv`: the bench's CSV, kept beside the
//!   plot so both stay with the date and machine they were measured on;
//! * `benches/results/contention.svg`: cycles per second against workers
//!   for pool 8 with no hold, one line per pool, both axes logarithmic;
//! * `benches/README.md` between `<!-- contention:begin -->` and
//!   `<!-- contention:end -->`: Mops/s and p99 acquire latency per pool and
//!   scenario, ours ÷ the best peer, and how much of its peak each pool keeps
//!   at 256 workers.
//!
//! Path arguments read other CSVs instead of the target directory's. With
//! several (full runs of the bench, each saved from the target directory),
//! every cell is the median of the runs: the row of the run with the median
//! throughput, its latencies with it. On a machine whose speed drifts from
//! minute to minute (a shared VM), one run can have a few cells the noise
//! hit; the median of three does not.

use leasehold_testkit::bench::report;

use plotters::prelude::*;
use report::{Measured, Row, Side};
use std::error::Error;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const RESULTS: &str = "benches/results";
/// Where the tables go, between the markers.
const README: &str = "benches/README.md";
const BEGIN: &str = "<!-- contention:begin -->";
const END: &str = "<!-- contention:end -->";

/// Line colours, in the order the pools first appear (ours first).
const COLORS: [RGBColor; 10] = [
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(227, 119, 194),
];

/// Pool size and hold of the scaling curve.
const SCALING_POOL: usize = 8;

fn main() -> Result<(), Box<dyn Error>> {
    let mut sources: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if sources.is_empty() {
        sources.push(report::target_dir().join(report::CSV));
    }
    let mut runs = Vec::new();
    for source in &sources {
        let csv = std::fs::read_to_string(source).map_err(|e| {
            format!(
                "{}: {e} (run `cargo bench --bench contention` first)",
                source.display()
            )
        })?;
        let run = report::load(&csv).map_err(|e| format!("{}: {e}", source.display()))?;
        if run.1.is_empty() {
            return Err(format!("{}: no results", source.display()).into());
        }
        runs.push(run);
    }
    // One CSV is taken as it is: it may be a median already (`# runs: 3`),
    // which a median of one would count as one run.
    let (measured, rows) = if runs.len() == 1 {
        runs.remove(0)
    } else {
        report::median_of(runs)?
    };
    let csv = report::to_csv(&measured, &rows);

    let results = Path::new(RESULTS);
    std::fs::create_dir_all(results)?;
    std::fs::write(results.join("contention.csv"), &csv)?;
    let svg = results.join("contention.svg");
    plot(&measured, &rows, &svg)?;

    let markdown = tables(&measured, &rows);
    let readme = std::fs::read_to_string(README)?;
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        return Err(format!("{README} has no {BEGIN} … {END} section").into());
    };
    let updated = format!("{}{BEGIN}\n{markdown}{}", &readme[..begin], &readme[end..]);
    std::fs::write(README, updated)?;
    println!(
        "{} rows measured {} on {}: wrote {}, {} and {README}",
        rows.len(),
        measured.date,
        measured.machine,
        results.join("contention.csv").display(),
        svg.display()
    );
    Ok(())
}

/// The scaling rows of one pool: (workers, Mops/s), by workers.
fn curve<'a>(rows: &'a [Row], pool: &str) -> Vec<&'a Row> {
    let mut points: Vec<&Row> = rows
        .iter()
        .filter(|r| r.pool == pool && r.hold_ns == 0 && r.size == SCALING_POOL)
        .collect();
    points.sort_by_key(|r| r.workers);
    points
}

/// The markdown between the markers of `benches/README.md`.
fn tables(measured: &Measured, rows: &[Row]) -> String {
    let pools = report::pools(rows);
    let mut md = String::new();
    let _ = writeln!(
        md,
        "Measured {} on {} by `cargo bench --bench contention` ({} cycles per \
         batch, median of 10 batches{}; `cargo run -p leasehold-bench-report` wrote \
         this section and the plot). Each cell: millions of cycles per second, \
         then the p99 acquire latency in µs (every 16th acquire sampled). Ours, \
         r2d2 and the reference designs run on OS threads that cycle \
         without pause from the first batch to the last, a batch being the \
         time they take for their next cycles; deadpool, bb8 and qp, and our \
         `*_async` forms, on tokio tasks over a multi-thread runtime, spawned \
         for each batch.\n",
        measured.date,
        measured.machine,
        measured.ops,
        match measured.runs {
            1 => String::new(),
            n => format!(
                "; every cell the median of {n} full runs, the run with the median \
                 throughput, its latencies with it"
            ),
        }
    );
    for hold in hold_values(rows) {
        let _ = writeln!(
            md,
            "**Hold {}** (pool/workers):\n",
            report::hold_label(hold)
                .replace("us", " µs")
                .replace("ns", " ns")
        );
        let columns = pools.iter().map(|&(name, side)| match side {
            Side::Ours => format!("`{name}`"),
            _ => name.to_string(),
        });
        table_head(
            &mut md,
            std::iter::once("pool/workers".to_string()).chain(columns),
        );
        for scenario in report::scenarios(rows).into_iter().filter(|s| s.0 == hold) {
            let _ = write!(md, "| {}/{} |", scenario.1, scenario.2);
            for (name, _) in &pools {
                match report::find(rows, name, scenario) {
                    Some(r) => {
                        let _ = write!(md, " {:.2} · {} |", r.mops, report::micros(r.p99_ns));
                    }
                    None => md.push_str(" – |"),
                }
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md);
    }

    let ours: Vec<&str> = pools
        .iter()
        .filter(|p| p.1 == Side::Ours)
        .map(|p| p.0)
        .collect();
    let _ = writeln!(
        md,
        "Ours ÷ the fastest peer in the same scenario (throughput, then the \
         peer's p99 ÷ ours: above 1 is better for us on both):\n"
    );
    let columns = ours.iter().map(|policy| format!("`{policy}`"));
    table_head(
        &mut md,
        lead(&["hold", "pool/workers", "fastest peer"]).chain(columns),
    );
    for scenario in report::scenarios(rows) {
        let Some(peer) = report::best_peer(rows, scenario) else {
            continue;
        };
        row_head(
            &mut md,
            scenario,
            &format!("{} {:.2}", peer.pool, peer.mops),
        );
        for policy in &ours {
            match report::find(rows, policy, scenario) {
                Some(r) => {
                    let _ = write!(
                        md,
                        " {:.2}× · {} |",
                        r.mops / peer.mops,
                        ratio(peer.p99_ns as f64 / r.p99_ns.max(1) as f64)
                    );
                }
                None => md.push_str(" – |"),
            }
        }
        let _ = writeln!(md);
    }

    each_peer(&mut md, rows, &pools);

    let ceilings: Vec<_> = report::scenarios(rows)
        .into_iter()
        .filter(|&s| report::find(rows, "no_pool", s).is_some())
        .collect();
    if !ceilings.is_empty() {
        let _ = writeln!(
            md,
            "\nWith a hold, the share of the ceiling each pool reaches: \
             `no_pool` runs the same workers doing only the work, which is \
             what this machine completes (the 2 M/s of two cores at 1 µs, \
             less the timing loop's own cost).\n"
        );
        let shown: Vec<&str> = pools
            .iter()
            .filter(|p| p.1 != Side::Ceiling)
            .map(|p| p.0)
            .collect();
        let columns = shown.iter().map(|name| name.to_string());
        table_head(
            &mut md,
            lead(&["hold", "pool/workers", "ceiling Mops/s"]).chain(columns),
        );
        for scenario in ceilings {
            let Some(ceiling) = report::find(rows, "no_pool", scenario) else {
                continue;
            };
            row_head(&mut md, scenario, &format!("{:.2}", ceiling.mops));
            for name in &shown {
                match report::find(rows, name, scenario) {
                    Some(r) => {
                        let _ = write!(md, " {:.0} % |", 100.0 * r.mops / ceiling.mops);
                    }
                    None => md.push_str(" – |"),
                }
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(
        md,
        "\nScaling (pool {SCALING_POOL}, no hold, 1 to 256 workers): the share \
         of its own peak each pool keeps at its largest worker count.\n"
    );
    table_head(
        &mut md,
        lead(&[
            "pool",
            "peak Mops/s (workers)",
            "at the most workers",
            "kept",
        ]),
    );
    for (name, _) in &pools {
        let points = curve(rows, name);
        let (Some(peak), Some(last)) = (
            points.iter().max_by(|a, b| a.mops.total_cmp(&b.mops)),
            points.last(),
        ) else {
            continue;
        };
        let _ = writeln!(
            md,
            "| {name} | {:.2} ({}) | {:.2} ({}) | {:.0} % |",
            peak.mops,
            peak.workers,
            last.mops,
            last.workers,
            100.0 * last.mops / peak.mops
        );
    }
    // Relative to benches/README.md, where the section goes.
    let _ = writeln!(
        md,
        "\n![cycles per second against workers, pool {SCALING_POOL}, one line \
         per pool](results/contention.svg)\n"
    );
    md
}

/// Ours ÷ every peer and reference design, throughput: per cell the
/// lowest and highest ratio over our forms on threads, then over those on
/// tasks (`*_async`).
fn each_peer(md: &mut String, rows: &[Row], pools: &[(&str, Side)]) {
    let others: Vec<&str> = pools
        .iter()
        .filter(|p| matches!(p.1, Side::Peer | Side::Baseline))
        .map(|p| p.0)
        .collect();
    let (tasked, threaded): (Vec<&str>, Vec<&str>) = pools
        .iter()
        .filter(|p| p.1 == Side::Ours)
        .map(|p| p.0)
        .partition(|name| name.ends_with("_async"));
    let _ = writeln!(
        md,
        "\nOurs ÷ each peer and reference design (throughput). Each cell: the \
         lowest–highest ratio over {}, then over {}.\n",
        quoted(&threaded),
        quoted(&tasked)
    );
    let columns = others.iter().map(|name| format!("÷ {name}"));
    table_head(md, lead(&["hold", "pool/workers"]).chain(columns));
    for scenario in report::scenarios(rows) {
        let (hold, size, workers) = scenario;
        let _ = write!(md, "| {} | {size}/{workers} |", report::hold_label(hold));
        for other in &others {
            let Some(theirs) = report::find(rows, other, scenario) else {
                md.push_str(" – |");
                continue;
            };
            let span = |ours: &[&str]| {
                let ratios: Vec<f64> = ours
                    .iter()
                    .filter_map(|name| report::find(rows, name, scenario))
                    .map(|r| r.mops / theirs.mops)
                    .collect();
                if ratios.is_empty() {
                    return "–".to_string();
                }
                let low = ratio(ratios.iter().copied().fold(f64::INFINITY, f64::min));
                let high = ratio(ratios.iter().copied().fold(0.0, f64::max));
                if low == high {
                    low
                } else {
                    format!("{}–{high}", low.trim_end_matches('×'))
                }
            };
            let _ = write!(md, " {} · {} |", span(&threaded), span(&tasked));
        }
        let _ = writeln!(md);
    }
}

/// `a`, `b` and `c`, each in backticks.
fn quoted(names: &[&str]) -> String {
    let names: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// A markdown table's header row and its rule.
fn table_head(md: &mut String, columns: impl IntoIterator<Item = String>) {
    let mut count = 0;
    md.push('|');
    for column in columns {
        let _ = write!(md, " {column} |");
        count += 1;
    }
    let _ = writeln!(md, "\n|{}", "---|".repeat(count));
}

/// Fixed leading column names, for [`table_head`].
fn lead<'a>(names: &'a [&'a str]) -> impl Iterator<Item = String> + 'a {
    names.iter().map(|name| name.to_string())
}

/// The first three cells of a row: hold, pool/workers, and `reference`.
fn row_head(md: &mut String, (hold, size, workers): (u64, usize, usize), reference: &str) {
    let _ = write!(
        md,
        "| {} | {size}/{workers} | {reference} |",
        report::hold_label(hold)
    );
}

/// A ratio with two decimals, or three significant digits below 0.1.
fn ratio(x: f64) -> String {
    if x >= 0.1 {
        format!("{x:.2}×")
    } else {
        format!("{x:.1e}×")
    }
}

/// The holds measured, in order.
fn hold_values(rows: &[Row]) -> Vec<u64> {
    let mut holds: Vec<u64> = Vec::new();
    for r in rows {
        if !holds.contains(&r.hold_ns) {
            holds.push(r.hold_ns);
        }
    }
    holds
}

/// Draws the scaling curves into an SVG at `path`.
fn plot(measured: &Measured, rows: &[Row], path: &Path) -> Result<(), Box<dyn Error>> {
    let pools = report::pools(rows);
    let scaling: Vec<&Row> = rows
        .iter()
        .filter(|r| r.hold_ns == 0 && r.size == SCALING_POOL)
        .collect();
    let max_workers = scaling.iter().map(|r| r.workers).max().unwrap_or(1) as f64;
    let (low, high) = scaling.iter().fold((f64::MAX, 0f64), |(lo, hi), r| {
        (lo.min(r.mops), hi.max(r.mops))
    });
    if scaling.is_empty() {
        return Err("no scaling rows (pool 8, no hold) to plot".into());
    }

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "Lease + return, pool {SCALING_POOL}, no hold — {} on {}",
        measured.date, measured.machine
    );
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (1f64..max_workers).log_scale().base(2.0),
            (low * 0.7..high * 1.4).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("workers (threads; tasks for deadpool, bb8, qp)")
        .y_desc("million cycles per second")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .draw()?;

    // An async row shares its policy's colour and is dashed.
    let mut bases: Vec<&str> = Vec::new();
    for (name, side) in &pools {
        let base = name.strip_suffix("_async").unwrap_or(name);
        if !bases.contains(&base) {
            bases.push(base);
        }
        let points: Vec<(f64, f64)> = curve(rows, name)
            .iter()
            .map(|r| (r.workers as f64, r.mops))
            .collect();
        if points.is_empty() {
            continue;
        }
        let index = bases.iter().position(|b| *b == base).unwrap_or(0);
        let color = COLORS[index % COLORS.len()];
        let width = if *side == Side::Ours { 3 } else { 1 };
        let style = ShapeStyle::from(&color).stroke_width(width);
        let label = match side {
            Side::Ours => format!("{name} (ours)"),
            Side::Peer => name.to_string(),
            Side::Baseline => format!("{name} (reference)"),
            Side::Ceiling => format!("{name} (ceiling)"),
        };
        let series = if *name == base {
            chart.draw_series(LineSeries::new(points.iter().copied(), style))?
        } else {
            chart.draw_series(DashedLineSeries::new(points.iter().copied(), 8, 5, style))?
        };
        let dashed = *name != base;
        series.label(label).legend(move |(x, y)| {
            let end = if dashed { x + 10 } else { x + 20 };
            PathElement::new(vec![(x, y), (end, y)], style)
        });
        chart.draw_series(
            points
                .iter()
                .map(|&p| Circle::new(p, 3, ShapeStyle::from(&color).filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
