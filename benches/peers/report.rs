//! Medians, spreads and ratios, written as a Markdown table and an SVG chart.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::pools::{is_weft, ROSTER};
use crate::system::Machine;
use crate::workloads::{Metric, Workload};

/// Worker counts every workload runs with.
pub const WORKERS: [usize; 2] = [1, 2];

/// Every sample, by metric, worker count and pool.
#[derive(Default)]
pub struct Results {
    samples: BTreeMap<(Metric, usize, &'static str), Vec<f64>>,
    /// How each pool waited or got its result, by workload.
    how: BTreeMap<(Workload, &'static str), &'static str>,
}

impl Results {
    /// Adds one repetition's value.
    pub fn record(&mut self, metric: Metric, workers: usize, pool: &'static str, value: f64) {
        self.samples
            .entry((metric, workers, pool))
            .or_default()
            .push(value);
    }

    /// Notes how `pool` waits or gets results back in `workload`.
    pub fn note_how(&mut self, workload: Workload, pool: &'static str, how: &'static str) {
        self.how.insert((workload, pool), how);
    }

    fn summary(&self, metric: Metric, workers: usize, pool: &str) -> Option<Summary> {
        let (_, values) = self
            .samples
            .iter()
            .find(|((m, w, p), _)| *m == metric && *w == workers && *p == pool)?;
        Summary::of(values)
    }

    fn has(&self, metric: Metric) -> bool {
        self.samples.keys().any(|(m, _, _)| *m == metric)
    }

    /// The best of weft's ways in (plain, batch, scope) by median: the
    /// summary compares what a user of weft can get with what a user of each
    /// peer can get (the peers' own variants compete the same way).
    fn best_weft(&self, metric: Metric, workers: usize) -> Option<(&'static str, Summary)> {
        ROSTER
            .iter()
            .map(|(name, _)| *name)
            .filter(|name| is_weft(name))
            .filter_map(|name| Some((name, self.summary(metric, workers, name)?)))
            .reduce(|best, next| {
                if better(metric, next.1, best.1) {
                    next
                } else {
                    best
                }
            })
    }

    /// The best peer (not weft, not inline) by median.
    fn best_peer(&self, metric: Metric, workers: usize) -> Option<(&'static str, Summary)> {
        peers()
            .filter(|name| *name != "inline")
            .filter_map(|name| Some((name, self.summary(metric, workers, name)?)))
            .reduce(|best, next| {
                if better(metric, next.1, best.1) {
                    next
                } else {
                    best
                }
            })
    }
}

/// Every pool but weft's own variants, in table order.
/// Whether `a` beats `b` on `metric`.
fn better(metric: Metric, a: Summary, b: Summary) -> bool {
    if metric.higher_is_better() {
        a.median > b.median
    } else {
        a.median < b.median
    }
}

fn peers() -> impl Iterator<Item = &'static str> {
    ROSTER
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| !is_weft(name))
}

/// Median and 10th–90th percentile range of one set of repetitions.
#[derive(Clone, Copy)]
struct Summary {
    median: f64,
    p10: f64,
    p90: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            median: percentile(&sorted, 0.5),
            p10: percentile(&sorted, 0.1),
            p90: percentile(&sorted, 0.9),
        })
    }
}

/// Linear interpolation between the closest ranks.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (sorted.len() - 1) as f64 * q;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64)
}

/// Three significant digits, no exponent.
fn num(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else if magnitude >= 0.01 {
        format!("{value:.3}")
    } else if magnitude == 0.0 {
        "0".to_string()
    } else {
        format!("{value:.4}")
    }
}

fn ratio(weft: f64, peer: f64) -> String {
    if peer > 0.0 && weft.is_finite() {
        format!("{:.2}×", weft / peer)
    } else {
        "—".to_string()
    }
}

/// What the run was: for the report's header.
pub struct RunInfo {
    /// The machine.
    pub machine: Machine,
    /// The command that produced it.
    pub command: String,
    /// Full, quick, filtered.
    pub mode: String,
    /// Wall time of the whole run.
    pub took: String,
    /// Load averages at the start and the end.
    pub load_start: String,
    /// See `load_start`.
    pub load_end: String,
}

/// The Markdown report.
pub fn markdown(results: &Results, run: &RunInfo) -> String {
    let m = &run.machine;
    let mut out = String::new();
    let _ = writeln!(out, "# weft and its peers\n");
    let _ = writeln!(
        out,
        "- Machine: {} CPUs, {}, {}\n- Toolchain: {}; weft at {}\n- Peers: {}\n- Run: {}, {}, \
         took {}; load average (1, 5, 15 min) {} at the start, {} at the end\n- Command: `{}`\n",
        m.cpus,
        m.cpu_model,
        m.kernel,
        m.rustc,
        m.commit,
        m.peers,
        m.date,
        run.mode,
        run.took,
        run.load_start,
        run.load_end,
        run.command
    );
    let _ = writeln!(
        out,
        "All pools run in one process, one at a time, their order rotated every \
         repetition (W8 and memory: one process per pool). Each cell is the median over \
         the repetitions with the 10th–90th percentile range in brackets. `weft ÷` is \
         weft's median divided by that pool's: for times, CPU and memory below 1 means weft \
         is better; for the efficiencies (W4, W6) above 1 means weft is better. The goals are \
         those of issue 5; nothing here is asserted.\n"
    );

    summary_table(&mut out, results);
    for metric in Metric::ALL {
        if results.has(metric) {
            metric_table(&mut out, results, metric);
        }
    }
    out.push_str(NOTES);
    out
}

/// How to read what the tables cannot say.
const NOTES: &str = "## Notes

- **How each pool waits.** `how` names the call: the pool's own wait (`wait_idle`, `join`), a \
scope, or, for pools that have no wait, a count-down latch that every job decrements (`latch`). \
For W3 it names how the result comes back: a join handle, `install`, `evaluate`, or a channel.
- **Rotation.** Within a repetition every pool runs once, in an order rotated by one each \
repetition, after one unrecorded warm-up run each; pools pause 2 ms between runs so one pool's \
workers going to sleep do not overlap the next measurement.
- **inline** runs each job on the caller as it is submitted: about a third of a nanosecond for \
an empty job. No pool that hands a job to another thread comes near it; for the efficiencies it \
is serial, so it shows how much of a CPU the caller itself got (about 1 / workers at best).
- **Efficiencies with 2 workers** cannot reach 1 on a 2-CPU machine that also runs the caller and \
other work; compare them across pools, not with 1.
- **W8** sums the CPU time of every live thread of the process (`se.sum_exec_runtime` in \
`/proc/self/task/*/sched`, sub-microsecond; `utime` + `stime` in `/proc/self/stat` count in \
10 ms ticks, too coarse for a 1 ms goal). It includes the measuring thread itself, reading those \
files and sleeping; the inline row is that floor.
- **Memory.** The queued jobs are empty closures, which are zero-sized: no pool allocates them, \
so the figure is the queue's own cost per entry.
";

fn summary_table(out: &mut String, results: &Results) {
    let _ = writeln!(out, "## Summary: weft against the best peer\n");
    let _ = writeln!(
        out,
        "| metric | workers | weft | best peer | weft ÷ best | goal | met |\n\
         |---|---:|---:|---|---:|---|---|"
    );
    for metric in Metric::ALL {
        for workers in WORKERS {
            let Some((weft_name, weft)) = results.best_weft(metric, workers) else {
                continue;
            };
            let (best_name, best) = match results.best_peer(metric, workers) {
                Some((name, best)) => (name, Some(best)),
                None => ("—", None),
            };
            let (goal, met) = goal(
                results,
                metric,
                workers,
                weft.median,
                best.map(|b| b.median),
            );
            let _ = writeln!(
                out,
                "| {} | {} | {} {} | {} {} | {} | {} | {} |",
                metric.id(),
                workers,
                weft_name,
                num(weft.median),
                best_name,
                best.map_or(String::new(), |b| num(b.median)),
                best.map_or("—".to_string(), |b| ratio(weft.median, b.median)),
                goal,
                met
            );
        }
    }
    let _ = writeln!(out);
}

/// The issue's goal for `metric`, and whether weft's median meets it now.
fn goal(
    results: &Results,
    metric: Metric,
    workers: usize,
    weft: f64,
    best: Option<f64>,
) -> (String, &'static str) {
    let yes_no = |met: bool| if met { "yes" } else { "not yet" };
    match metric {
        Metric::Idle => ("< 1 ms CPU per idle s".to_string(), yes_no(weft < 1.0)),
        Metric::Memory => {
            let threadpool = results.summary(metric, workers, "threadpool");
            (
                "≤ threadpool".to_string(),
                threadpool.map_or("—", |t| yes_no(weft <= t.median)),
            )
        }
        _ => {
            let Some(best) = best else {
                return ("—".to_string(), "—");
            };
            let beat_by = matches!(
                metric,
                Metric::Burst | Metric::HotP50 | Metric::HotP99 | Metric::Tree | Metric::Producers
            );
            if metric.higher_is_better() {
                ("≥ 1× best".to_string(), yes_no(weft >= best))
            } else if metric == Metric::Burst {
                let inline = results.summary(metric, workers, "inline");
                let within_inline = inline.is_none_or(|i| weft <= 3.0 * i.median);
                let text = match inline {
                    Some(i) => format!("≤ 0.8× best, ≤ 3× inline (now {})", ratio(weft, i.median)),
                    None => "≤ 0.8× best, ≤ 3× inline".to_string(),
                };
                (text, yes_no(weft <= 0.8 * best && within_inline))
            } else if beat_by {
                ("≤ 0.8× best".to_string(), yes_no(weft <= 0.8 * best))
            } else {
                ("≤ 1× best".to_string(), yes_no(weft <= best))
            }
        }
    }
}

fn metric_table(out: &mut String, results: &Results, metric: Metric) {
    let direction = if metric.higher_is_better() {
        "higher is better"
    } else {
        "lower is better"
    };
    let _ = writeln!(
        out,
        "## {} ({}, {})\n\n{}.\n",
        metric.id(),
        metric.unit(),
        direction,
        metric.definition()
    );
    let workload = metric.workload();
    let show_how = results.how.keys().any(|(w, _)| *w == workload);
    let _ = if show_how {
        writeln!(
            out,
            "| pool | how | 1 worker | weft ÷ | 2 workers | weft ÷ |\n|---|---|---:|---:|---:|---:|"
        )
    } else {
        writeln!(
            out,
            "| pool | 1 worker | weft ÷ | 2 workers | weft ÷ |\n|---|---:|---:|---:|---:|"
        )
    };
    for (name, _) in ROSTER {
        let cells: Vec<Option<Summary>> = WORKERS
            .iter()
            .map(|&workers| results.summary(metric, workers, name))
            .collect();
        if cells.iter().all(Option::is_none) {
            continue;
        }
        let mut row = format!("| {name} |");
        if show_how {
            let how = results.how.get(&(workload, *name)).copied().unwrap_or("");
            let _ = write!(row, " {how} |");
        }
        for (cell, workers) in cells.iter().zip(WORKERS) {
            let weft = results.summary(metric, workers, "weft");
            match cell {
                Some(s) => {
                    let _ = write!(row, " {} [{}–{}] |", num(s.median), num(s.p10), num(s.p90));
                    let shown = match weft {
                        Some(w) if *name != "weft" => ratio(w.median, s.median),
                        _ => String::new(),
                    };
                    let _ = write!(row, " {shown} |");
                }
                None => row.push_str(" — | |"),
            }
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out);
}

/// Colours of the peers in the chart, in roster order.
const PEER_COLOURS: [&str; 7] = [
    "#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#7f7f7f",
];

/// The SVG chart: for every metric and worker count, one dot per peer at
/// weft's median divided by the peer's, on a log scale. Efficiencies are
/// inverted (peer ÷ weft) so that left of 1 is always better for weft.
/// Each row uses weft's best way in for that workload, named in its label.
pub fn svg(results: &Results, run: &RunInfo) -> String {
    struct Row {
        label: String,
        dots: Vec<(usize, f64)>,
    }
    let peer_names: Vec<&str> = peers().collect();
    let mut rows = Vec::new();
    for metric in Metric::ALL {
        for workers in WORKERS {
            let Some((weft_name, weft)) = results.best_weft(metric, workers) else {
                continue;
            };
            let dots = peer_names
                .iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let peer = results.summary(metric, workers, name)?.median;
                    let cost = if metric.higher_is_better() {
                        peer / weft.median
                    } else {
                        weft.median / peer
                    };
                    (cost.is_finite() && cost > 0.0).then_some((i, cost.log2()))
                })
                .collect();
            let plural = if workers == 1 { "" } else { "s" };
            rows.push(Row {
                label: format!("{} · {workers} worker{plural} · {weft_name}", metric.id()),
                dots,
            });
        }
    }

    // A symmetric log2 axis wide enough for every peer's dot (inline, far
    // off for most workloads, may sit at the edge), from ¼× to 64×.
    let widest = rows
        .iter()
        .flat_map(|row| row.dots.iter())
        .filter(|(peer, _)| peer_names[*peer] != "inline")
        .map(|(_, x)| x.abs())
        .fold(2.0_f64, f64::max);
    let span = widest.ceil().min(6.0);
    let (left, right, top, row_height) = (230.0, 930.0, 110.0, 22.0);
    let width = 960.0;
    let height = top + row_height * rows.len() as f64 + 60.0;
    let x_of = |log2: f64| left + (log2.clamp(-span, span) + span) / (2.0 * span) * (right - left);

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="100%" height="100%" fill="#ffffff"/>
<text x="20" y="24" font-size="16" font-weight="bold">weft ÷ peer, medians (left of 1×: weft is better; efficiencies inverted)</text>
<text x="20" y="44" fill="#555">{}</text>"##,
        escape(&format!(
            "{} CPUs, {}, {}; {}; {}; {}",
            run.machine.cpus,
            run.machine.cpu_model,
            run.machine.kernel,
            run.machine.rustc,
            run.machine.date,
            run.mode
        ))
    );
    for (i, name) in peer_names.iter().enumerate() {
        let x = 20.0 + 130.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<circle cx="{}" cy="68" r="5" fill="{}"/><text x="{}" y="72">{}</text>"#,
            x + 5.0,
            PEER_COLOURS[i % PEER_COLOURS.len()],
            x + 14.0,
            escape(name)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="20" y="92" fill="#555">Hollow dots are off the scale, drawn at its edge. Dashed line: the 0.8× goal.</text>"##
    );

    let bottom = top + row_height * rows.len() as f64;
    for (i, row) in rows.iter().enumerate() {
        let y = top + row_height * i as f64;
        if (i / 2) % 2 == 0 {
            let _ = writeln!(
                out,
                r##"<rect x="0" y="{y}" width="{width}" height="{}" fill="#f3f3f3"/>"##,
                row_height
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 10.0,
            y + row_height / 2.0 + 4.0,
            escape(&row.label)
        );
    }
    for step in -(span as i32)..=(span as i32) {
        let x = x_of(f64::from(step));
        let label = if step >= 0 {
            format!("{}×", 1u64 << step)
        } else {
            format!("1/{}×", 1u64 << -step)
        };
        let stroke = if step == 0 { "#000" } else { "#ccc" };
        let _ = writeln!(
            out,
            r#"<line x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="{stroke}"/><text x="{x}" y="{}" text-anchor="middle">{label}</text>"#,
            bottom + 18.0
        );
    }
    let goal_x = x_of(0.8_f64.log2());
    let _ = writeln!(
        out,
        r##"<line x1="{goal_x}" y1="{top}" x2="{goal_x}" y2="{bottom}" stroke="#000" stroke-dasharray="4 3"/>"##
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + row_height * i as f64 + row_height / 2.0;
        for &(peer, log2) in &row.dots {
            // Spread the peers a little vertically so equal ratios stay visible.
            let dy = (peer as f64 - (peer_names.len() as f64 - 1.0) / 2.0) * 2.5;
            let colour = PEER_COLOURS[peer % PEER_COLOURS.len()];
            let fill = if log2.abs() > span { "none" } else { colour };
            let _ = writeln!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4.5" fill="{fill}" stroke="{colour}" stroke-width="1.5" fill-opacity="0.85"><title>{}: {:.2}×</title></circle>"#,
                x_of(log2),
                y + dy,
                escape(peer_names[peer]),
                log2.exp2()
            );
        }
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">weft's median ÷ the peer's (log scale)</text>"##,
        (left + right) / 2.0,
        bottom + 40.0
    );
    out.push_str("</svg>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
