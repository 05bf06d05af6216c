//! weft against its peers on the workloads of issue 5.
//!
//! ```text
//! cargo bench --bench peers                  # full run, about 10 minutes
//! cargo bench --bench peers -- --quick       # smoke run, about 1 minute
//! cargo bench --bench peers -- W1 W5 memory  # only these workloads (W1 and W2 are one run)
//! ```
//!
//! Every pool runs in this one process, one at a time, their order rotated
//! each repetition; W8 (idle CPU) and memory run each pool in a process of its
//! own (this binary again, with a hidden `--child` argument) so that nothing
//! else is in it. A full run writes `benches/results/peers.md` and
//! `benches/results/peers.svg`; a quick or filtered run writes
//! `peers-partial.md` and `peers-partial.svg` beside them. The table is also
//! printed. Timings are reported, never asserted.

#[cfg(not(loom))]
#[path = "peers/pools.rs"]
mod pools;
#[cfg(not(loom))]
#[path = "peers/report.rs"]
mod report;
#[cfg(not(loom))]
#[path = "peers/system.rs"]
mod system;
#[cfg(not(loom))]
#[path = "peers/workloads.rs"]
mod workloads;

/// The peers are not built under `--cfg loom` (see Cargo.toml): nothing to
/// measure there.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
fn main() {
    driver::main();
}

#[cfg(not(loom))]
mod driver {
    use std::env;
    use std::fs;
    use std::io::Write;
    use std::path::Path;
    use std::process::{self, Command};
    use std::thread;
    use std::time::{Duration, Instant};

    use crate::pools::ROSTER;
    use crate::report::{self, Results, RunInfo, WORKERS};
    use crate::system::{self, Machine};
    use crate::workloads::{Contender, Metric, Plan, Workload};

    const USAGE: &str = "usage: cargo bench --bench peers -- [--quick] [W1 … W8 | memory]…";

    /// Where the report goes.
    const RESULTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/results");

    /// Pause between two pools' runs, so that one pool's workers going to
    /// sleep do not overlap the next pool's measurement.
    const SETTLE: Duration = Duration::from_millis(2);

    /// The command line.
    struct Args {
        plan: Plan,
        /// Workloads to run; empty means all.
        only: Vec<Workload>,
        /// Set in a child process: run one pool's workload and print the values.
        child: Option<Child>,
    }

    /// What a child process runs.
    struct Child {
        workload: Workload,
        pool: String,
        workers: usize,
    }

    impl Args {
        fn parse(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
            let mut parsed = Args {
                plan: Plan { quick: false },
                only: Vec::new(),
                child: None,
            };
            while let Some(arg) = args.next() {
                match arg.as_str() {
                    // Passed by `cargo bench` to every bench target.
                    "--bench" => {}
                    "--quick" => parsed.plan.quick = true,
                    "-h" | "--help" => {
                        println!("{USAGE}");
                        process::exit(0);
                    }
                    "--child" => {
                        let mut next = || args.next().ok_or("--child needs three values");
                        let workload = next()?;
                        let pool = next()?;
                        let workers = next()?;
                        parsed.child = Some(Child {
                            workload: Workload::parse(&workload)
                                .ok_or(format!("unknown workload {workload}"))?,
                            pool,
                            workers: workers.parse().map_err(|_| "workers is a number")?,
                        });
                    }
                    other => parsed
                        .only
                        .push(Workload::parse(other).ok_or(format!("unknown argument {other}"))?),
                }
            }
            Ok(parsed)
        }

        fn selected(&self) -> Vec<Workload> {
            Workload::ALL
                .into_iter()
                .filter(|w| self.only.is_empty() || self.only.contains(w))
                .collect()
        }

        /// The `cargo bench` command that gives these arguments.
        fn command(&self) -> String {
            let mut extra: Vec<&str> = Vec::new();
            if self.plan.quick {
                extra.push("--quick");
            }
            extra.extend(self.selected_if_filtered().iter().map(|w| w.id()));
            if extra.is_empty() {
                "cargo bench --bench peers".to_string()
            } else {
                format!("cargo bench --bench peers -- {}", extra.join(" "))
            }
        }

        fn selected_if_filtered(&self) -> Vec<Workload> {
            if self.only.is_empty() {
                Vec::new()
            } else {
                self.selected()
            }
        }
    }

    pub fn main() {
        let args = match Args::parse(env::args().skip(1)) {
            Ok(args) => args,
            Err(message) => {
                eprintln!("{message}\n{USAGE}");
                process::exit(2);
            }
        };
        if let Some(child) = &args.child {
            run_child(child, args.plan);
            return;
        }

        let machine = Machine::read();
        let load_start = system::load_average();
        eprintln!("load average at the start: {load_start}");
        let started = Instant::now();
        let mut results = Results::default();
        let workloads = args.selected();
        for workers in WORKERS {
            let contenders: Vec<Box<dyn Contender>> =
                ROSTER.iter().map(|(_, build)| build(workers)).collect();
            for &workload in workloads.iter().filter(|w| !w.in_child()) {
                run_in_process(&mut results, args.plan, workload, workers, &contenders);
            }
            drop(contenders);
            for &workload in workloads.iter().filter(|w| w.in_child()) {
                run_in_children(&mut results, args.plan, workload, workers);
            }
        }

        let mode = match (args.plan.quick, args.only.is_empty()) {
            (false, true) => "full run".to_string(),
            (quick, _) => {
                let mut mode = if quick { "quick run" } else { "full run" }.to_string();
                if !args.only.is_empty() {
                    let ids: Vec<&str> = workloads.iter().map(|w| w.id()).collect();
                    mode.push_str(&format!(" of {} only", ids.join(", ")));
                }
                mode
            }
        };
        let run = RunInfo {
            machine,
            command: args.command(),
            mode,
            took: minutes_seconds(started.elapsed()),
            load_start,
            load_end: system::load_average(),
        };
        let markdown = report::markdown(&results, &run);
        println!("{markdown}");
        let stem = if args.plan.quick || !args.only.is_empty() {
            "peers-partial"
        } else {
            "peers"
        };
        write_result(&format!("{stem}.md"), &markdown);
        write_result(&format!("{stem}.svg"), &report::svg(&results, &run));
    }

    /// Runs `workload` on every contender that takes part, rotating their
    /// order each repetition, after one unrecorded warm-up run each.
    fn run_in_process(
        results: &mut Results,
        plan: Plan,
        workload: Workload,
        workers: usize,
        contenders: &[Box<dyn Contender>],
    ) {
        let started = Instant::now();
        let runners: Vec<&dyn Contender> = contenders
            .iter()
            .map(|c| c.as_ref())
            .filter(|c| c.runs(workload))
            .collect();
        for contender in &runners {
            results.note_how(workload, contender.name(), contender.how(workload));
            thread::sleep(SETTLE);
            contender.run(workload, plan, workers);
        }
        let repetitions = plan.repetitions(workload);
        for repetition in 0..repetitions {
            for turn in 0..runners.len() {
                let contender = runners[(repetition + turn) % runners.len()];
                thread::sleep(SETTLE);
                for (metric, value) in contender.run(workload, plan, workers) {
                    results.record(metric, workers, contender.name(), value);
                }
            }
        }
        progress(workload, workers, repetitions, started);
    }

    /// Runs `workload` for each pool in a child process of its own.
    fn run_in_children(results: &mut Results, plan: Plan, workload: Workload, workers: usize) {
        if !cfg!(target_os = "linux") {
            eprintln!("{}: Linux only, skipped", workload.id());
            return;
        }
        let started = Instant::now();
        let exe = env::current_exe().expect("the path of this benchmark");
        for (name, _) in ROSTER {
            let mut child = Command::new(&exe);
            child.args(["--child", workload.id(), name, &workers.to_string()]);
            if plan.quick {
                child.arg("--quick");
            }
            let output = child.output().expect("a child process starts");
            if !output.status.success() {
                eprintln!(
                    "{} in a child for {name} failed: {}",
                    workload.id(),
                    output.status
                );
                continue;
            }
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                if let Some((metric, value)) = line.split_once('|') {
                    let metric = Metric::ALL
                        .into_iter()
                        .find(|m| m.id() == metric)
                        .expect("a metric the child knows");
                    results.record(metric, workers, name, value.parse().expect("a number"));
                }
            }
        }
        progress(workload, workers, plan.repetitions(workload), started);
    }

    /// In a child: builds one pool, runs its repetitions of `workload`, and
    /// prints each value as `metric id|value`.
    fn run_child(child: &Child, plan: Plan) {
        let (_, build) = ROSTER
            .iter()
            .find(|(name, _)| *name == child.pool)
            .unwrap_or_else(|| panic!("no pool named {}", child.pool));
        let contender = build(child.workers);
        if contender.runs(child.workload) {
            let mut stdout = std::io::stdout().lock();
            for _ in 0..plan.repetitions(child.workload) {
                for (metric, value) in contender.run(child.workload, plan, child.workers) {
                    writeln!(stdout, "{}|{value}", metric.id()).unwrap();
                }
            }
            stdout.flush().unwrap();
        }
        if child.workload == Workload::Memory {
            // Its workers are still blocked on the gate: leave without
            // dropping the pool.
            process::exit(0);
        }
    }

    fn progress(workload: Workload, workers: usize, repetitions: usize, started: Instant) {
        let plural = if workers == 1 { "" } else { "s" };
        eprintln!(
            "{}, {workers} worker{plural}: {repetitions}× in {:.1} s (load {})",
            workload.id(),
            started.elapsed().as_secs_f64(),
            system::load_average()
        );
    }

    fn minutes_seconds(elapsed: Duration) -> String {
        let secs = elapsed.as_secs();
        format!("{} min {:02} s", secs / 60, secs % 60)
    }

    fn write_result(file: &str, contents: &str) {
        let path = Path::new(RESULTS_DIR).join(file);
        fs::create_dir_all(RESULTS_DIR).expect("the results directory can be created");
        fs::write(&path, contents).expect("the results can be written");
        eprintln!("wrote {}", path.display());
    }
}
