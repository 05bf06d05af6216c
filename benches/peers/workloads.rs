//! The workloads: one function each, generic over [`Pool`], plus what they
//! measure ([`Metric`]) and how often ([`Plan`]).

use std::hint::{black_box, spin_loop};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::pools::{tree_size, Pool};
use crate::system;

/// Empty jobs in a burst (W1, W2, W8) and from all producers together (W7).
pub const BURST_JOBS: usize = 100_000;
/// The busy-spin of a short job (W4).
pub const SHORT_WORK: Duration = Duration::from_micros(5);
/// Fan-out/fan-in (W4): batches, each waited for before the next.
pub const FAN_OUT_BATCHES: usize = 100;
/// Fan-out/fan-in (W4): jobs per batch.
pub const FAN_OUT_JOBS: usize = 64;
/// Depth of the job tree (W5): `2^17 - 1` = 131 071 jobs.
pub const TREE_DEPTH: u32 = 16;
/// Unbalanced (W6): batches.
pub const UNBALANCED_BATCHES: usize = 20;
/// Unbalanced (W6): jobs per batch.
pub const UNBALANCED_JOBS: usize = 256;
/// Unbalanced (W6): every this many jobs, one is long.
pub const LONG_EVERY: usize = 32;
/// Unbalanced (W6): the busy-spin of the common job.
pub const UNBALANCED_SHORT: Duration = Duration::from_micros(2);
/// Unbalanced (W6): the busy-spin of the occasional long job.
pub const UNBALANCED_LONG: Duration = Duration::from_micros(100);
/// External producers submitting at once (W7).
pub const PRODUCERS: usize = 2;
/// Idle time before each cold round trip (W3).
pub const COLD_IDLE: Duration = Duration::from_millis(1);
/// Jobs queued behind blocked workers (memory).
pub const QUEUED_JOBS: usize = 1_000_000;

/// A workload, as the filter argument names it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Workload {
    /// W1 and W2 (one run measures both).
    Burst,
    /// W3, hot and cold.
    RoundTrip,
    /// W4.
    FanOut,
    /// W5.
    Tree,
    /// W6.
    Unbalanced,
    /// W7.
    Producers,
    /// W8, in a child process per pool.
    Idle,
    /// Peak memory of queued jobs, in a child process per pool.
    Memory,
}

impl Workload {
    /// Every workload, in run order.
    pub const ALL: [Workload; 8] = [
        Workload::Burst,
        Workload::RoundTrip,
        Workload::FanOut,
        Workload::Tree,
        Workload::Unbalanced,
        Workload::Producers,
        Workload::Idle,
        Workload::Memory,
    ];

    /// Parses a filter argument: `W1`…`W8` (either case) or `memory`.
    pub fn parse(arg: &str) -> Option<Workload> {
        Some(match arg.to_ascii_lowercase().as_str() {
            "w1" | "w2" => Workload::Burst,
            "w3" => Workload::RoundTrip,
            "w4" => Workload::FanOut,
            "w5" => Workload::Tree,
            "w6" => Workload::Unbalanced,
            "w7" => Workload::Producers,
            "w8" => Workload::Idle,
            "mem" | "memory" => Workload::Memory,
            _ => return None,
        })
    }

    /// The name a child process is given.
    pub fn id(self) -> &'static str {
        match self {
            Workload::Burst => "W1",
            Workload::RoundTrip => "W3",
            Workload::FanOut => "W4",
            Workload::Tree => "W5",
            Workload::Unbalanced => "W6",
            Workload::Producers => "W7",
            Workload::Idle => "W8",
            Workload::Memory => "memory",
        }
    }

    /// Whether it is a set of jobs waited for as a whole, which scopes fit.
    pub fn has_fan_in(self) -> bool {
        matches!(
            self,
            Workload::Burst | Workload::FanOut | Workload::Tree | Workload::Unbalanced
        )
    }

    /// Whether each pool runs it in a process of its own.
    pub fn in_child(self) -> bool {
        matches!(self, Workload::Idle | Workload::Memory)
    }
}

/// One measured quantity: a row of the report.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Metric {
    Burst,
    Submit,
    HotP50,
    HotP99,
    ColdP50,
    ColdP99,
    FanOut,
    Tree,
    Unbalanced,
    Producers,
    Idle,
    Memory,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 12] = [
        Metric::Burst,
        Metric::Submit,
        Metric::HotP50,
        Metric::HotP99,
        Metric::ColdP50,
        Metric::ColdP99,
        Metric::FanOut,
        Metric::Tree,
        Metric::Unbalanced,
        Metric::Producers,
        Metric::Idle,
        Metric::Memory,
    ];

    /// Short name, as in the issue.
    pub fn id(self) -> &'static str {
        match self {
            Metric::Burst => "W1 burst",
            Metric::Submit => "W2 submit",
            Metric::HotP50 => "W3 hot p50",
            Metric::HotP99 => "W3 hot p99",
            Metric::ColdP50 => "W3 cold p50",
            Metric::ColdP99 => "W3 cold p99",
            Metric::FanOut => "W4 fan-out",
            Metric::Tree => "W5 internal spawn",
            Metric::Unbalanced => "W6 unbalanced",
            Metric::Producers => "W7 producers",
            Metric::Idle => "W8 idle",
            Metric::Memory => "memory",
        }
    }

    /// What exactly is measured.
    pub fn definition(self) -> String {
        match self {
            Metric::Burst => format!(
                "{BURST_JOBS} empty jobs submitted from outside, then waited for; wall time"
            ),
            Metric::Submit => format!(
                "in the W1 run, the time until the {BURST_JOBS}th submission returned \
                 (workers already consuming)"
            ),
            Metric::HotP50 | Metric::HotP99 => "one job submitted and its result waited for, \
                 back to back; percentile within a repetition"
                .to_string(),
            Metric::ColdP50 | Metric::ColdP99 => format!(
                "as hot, but after {} ms of idleness before each round trip",
                COLD_IDLE.as_millis()
            ),
            Metric::FanOut => format!(
                "{FAN_OUT_BATCHES} batches of {FAN_OUT_JOBS} jobs busy-spinning {} µs, \
                 each batch waited for before the next; efficiency = (total work / workers) \
                 / wall time",
                SHORT_WORK.as_micros()
            ),
            Metric::Tree => format!(
                "a binary tree of {} jobs, every inner job submitting its two children from \
                 inside the pool; wall time",
                tree_size(TREE_DEPTH)
            ),
            Metric::Unbalanced => format!(
                "{UNBALANCED_BATCHES} batches of {UNBALANCED_JOBS} jobs spinning {} µs, every \
                 {LONG_EVERY}th spinning {} µs instead; efficiency as W4",
                UNBALANCED_SHORT.as_micros(),
                UNBALANCED_LONG.as_micros()
            ),
            Metric::Producers => format!(
                "{PRODUCERS} threads outside the pool submitting {} empty jobs each at once, \
                 then waited for; wall time",
                BURST_JOBS / PRODUCERS
            ),
            Metric::Idle => "CPU time of the whole process (its own process, one pool) during \
                 the idle time right after a W1 burst; Linux only"
                .to_string(),
            Metric::Memory => format!(
                "peak resident memory (VmHWM) added by {QUEUED_JOBS} empty jobs queued \
                 behind workers blocked on a gate, per job (own process per pool); Linux only"
            ),
        }
    }

    /// The unit of its values.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Burst | Metric::Submit | Metric::Tree | Metric::Producers => "ms",
            Metric::HotP50 | Metric::HotP99 | Metric::ColdP50 | Metric::ColdP99 => "µs",
            Metric::FanOut | Metric::Unbalanced => "efficiency",
            Metric::Idle => "ms CPU per idle s",
            Metric::Memory => "bytes per queued job",
        }
    }

    /// The workload that measures it.
    pub fn workload(self) -> Workload {
        match self {
            Metric::Burst | Metric::Submit => Workload::Burst,
            Metric::HotP50 | Metric::HotP99 | Metric::ColdP50 | Metric::ColdP99 => {
                Workload::RoundTrip
            }
            Metric::FanOut => Workload::FanOut,
            Metric::Tree => Workload::Tree,
            Metric::Unbalanced => Workload::Unbalanced,
            Metric::Producers => Workload::Producers,
            Metric::Idle => Workload::Idle,
            Metric::Memory => Workload::Memory,
        }
    }

    /// Efficiencies: higher is better. Everything else: lower is better.
    pub fn higher_is_better(self) -> bool {
        matches!(self, Metric::FanOut | Metric::Unbalanced)
    }
}

/// How many repetitions, and how many samples within one.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// The ~1-minute smoke run.
    pub quick: bool,
}

impl Plan {
    /// Repetitions of `workload` (for the child workloads: windows or runs
    /// per child process).
    pub fn repetitions(self, workload: Workload) -> usize {
        let (full, quick) = match workload {
            Workload::Burst => (100, 8),
            Workload::RoundTrip => (30, 3),
            Workload::FanOut => (60, 5),
            Workload::Tree => (80, 6),
            Workload::Unbalanced => (60, 5),
            Workload::Producers => (100, 8),
            Workload::Idle => (5, 1),
            Workload::Memory => (1, 1),
        };
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// Back-to-back round trips in one W3 repetition.
    pub fn hot_samples(self) -> usize {
        if self.quick {
            300
        } else {
            2_000
        }
    }

    /// Round trips after idleness in one W3 repetition.
    pub fn cold_samples(self) -> usize {
        if self.quick {
            50
        } else {
            200
        }
    }

    /// The idle window of W8.
    pub fn idle_window(self) -> Duration {
        if self.quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(1)
        }
    }
}

/// A pool as the driver sees it: any [`Pool`], behind a trait object so the
/// driver can hold them all in one list and rotate it.
pub trait Contender {
    /// The pool's name.
    fn name(&self) -> &'static str;
    /// How it waits for its jobs, or gets a result back, in `workload`.
    fn how(&self, workload: Workload) -> &'static str;
    /// Whether it takes part in `workload`.
    fn runs(&self, workload: Workload) -> bool;
    /// One repetition of `workload`.
    fn run(&self, workload: Workload, plan: Plan, workers: usize) -> Vec<(Metric, f64)>;
}

impl<P: Pool> Contender for P {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn how(&self, workload: Workload) -> &'static str {
        match workload {
            Workload::RoundTrip => P::ROUND_TRIP,
            Workload::Idle | Workload::Memory => "",
            _ => P::COMPLETION.describe(),
        }
    }

    fn runs(&self, workload: Workload) -> bool {
        P::runs(workload)
    }

    fn run(&self, workload: Workload, plan: Plan, workers: usize) -> Vec<(Metric, f64)> {
        match workload {
            Workload::Burst => {
                let (total, submit) = burst(self, BURST_JOBS);
                vec![(Metric::Burst, ms(total)), (Metric::Submit, ms(submit))]
            }
            Workload::RoundTrip => {
                let (hot50, hot99) = round_trip(self, plan.hot_samples(), None);
                let (cold50, cold99) = round_trip(self, plan.cold_samples(), Some(COLD_IDLE));
                vec![
                    (Metric::HotP50, us(hot50)),
                    (Metric::HotP99, us(hot99)),
                    (Metric::ColdP50, us(cold50)),
                    (Metric::ColdP99, us(cold99)),
                ]
            }
            Workload::FanOut => vec![(Metric::FanOut, fan_out(self, workers))],
            Workload::Tree => vec![(Metric::Tree, ms(internal_spawn(self, TREE_DEPTH)))],
            Workload::Unbalanced => vec![(Metric::Unbalanced, unbalanced(self, workers))],
            Workload::Producers => vec![(Metric::Producers, ms(producers(self, PRODUCERS)))],
            Workload::Idle => vec![(Metric::Idle, idle_cpu(self, plan.idle_window()))],
            Workload::Memory => vec![(Metric::Memory, queued_memory(self, workers))],
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Busy-spins for `work` (by the clock, so a preempted job still ends on time).
fn spin(work: Duration) {
    let end = Instant::now() + work;
    while Instant::now() < end {
        spin_loop();
    }
}

/// W1 and W2: `jobs` empty jobs submitted from outside, then waited for.
/// Returns (until all had run, until all had been submitted).
pub fn burst<P: Pool>(pool: &P, jobs: usize) -> (Duration, Duration) {
    let start = Instant::now();
    let submitted = pool.fan_in((0..jobs).map(|_| || {}));
    (start.elapsed(), submitted - start)
}

/// W3: `samples` round trips of one job returning a value; each preceded by
/// `idle` of sleep if given. Returns the p50 and p99 round trip.
pub fn round_trip<P: Pool>(
    pool: &P,
    samples: usize,
    idle: Option<Duration>,
) -> (Duration, Duration) {
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        if let Some(idle) = idle {
            thread::sleep(idle);
        }
        let start = Instant::now();
        let answer = pool.round_trip(move || black_box(i));
        times.push(start.elapsed());
        assert_eq!(answer, i);
    }
    times.sort_unstable();
    (quantile(&times, 0.50), quantile(&times, 0.99))
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// W4: batches of short busy jobs, each batch waited for before the next.
/// Returns the efficiency (ideal / actual, ideal = total work / workers).
pub fn fan_out<P: Pool>(pool: &P, workers: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..FAN_OUT_BATCHES {
        pool.fan_in((0..FAN_OUT_JOBS).map(|_| || spin(SHORT_WORK)));
    }
    let work = SHORT_WORK * (FAN_OUT_BATCHES * FAN_OUT_JOBS) as u32;
    efficiency(work, workers, start.elapsed())
}

/// W6: like W4, but every [`LONG_EVERY`]th job is long.
pub fn unbalanced<P: Pool>(pool: &P, workers: usize) -> f64 {
    let work_of = |i: usize| {
        if i % LONG_EVERY == LONG_EVERY / 2 {
            UNBALANCED_LONG
        } else {
            UNBALANCED_SHORT
        }
    };
    let start = Instant::now();
    for _ in 0..UNBALANCED_BATCHES {
        pool.fan_in((0..UNBALANCED_JOBS).map(move |i| move || spin(work_of(i))));
    }
    let work: Duration =
        (0..UNBALANCED_JOBS).map(work_of).sum::<Duration>() * UNBALANCED_BATCHES as u32;
    efficiency(work, workers, start.elapsed())
}

fn efficiency(work: Duration, workers: usize, actual: Duration) -> f64 {
    (work.as_secs_f64() / workers as f64) / actual.as_secs_f64()
}

/// W5: a binary tree of jobs of the given depth, every inner job submitting
/// its two children from inside the pool. Returns the wall time.
pub fn internal_spawn<P: Pool>(pool: &P, depth: u32) -> Duration {
    let start = Instant::now();
    pool.tree(depth);
    start.elapsed()
}

/// W7: `producers` threads outside the pool submit [`BURST_JOBS`] empty jobs
/// between them, all at once; then the caller waits for the jobs. Returns the
/// time from the producers' start to the last job done.
pub fn producers<P: Pool>(pool: &P, producers: usize) -> Duration {
    let per_producer = BURST_JOBS / producers;
    pool.expect_jobs(per_producer * producers);
    let start_line = Barrier::new(producers + 1);
    thread::scope(|s| {
        let threads: Vec<_> = (0..producers)
            .map(|_| {
                s.spawn(|| {
                    start_line.wait();
                    for _ in 0..per_producer {
                        pool.execute_counted(|| {});
                    }
                })
            })
            .collect();
        start_line.wait();
        let start = Instant::now();
        for producer in threads {
            producer.join().unwrap();
        }
        pool.wait_all();
        start.elapsed()
    })
}

/// W8: a W1 burst, then `window` of idleness. Returns the CPU time the whole
/// process used during the window, in ms per idle second.
pub fn idle_cpu<P: Pool>(pool: &P, window: Duration) -> f64 {
    burst(pool, BURST_JOBS);
    let before = system::process_cpu_time();
    thread::sleep(window);
    let used = system::process_cpu_time() - before;
    ms(used) / window.as_secs_f64()
}

/// Memory: blocks every worker on a gate, queues [`QUEUED_JOBS`] empty jobs,
/// and returns the peak resident memory they added, in bytes per job. The
/// gate is left shut: the child process exits right after.
pub fn queued_memory<P: Pool>(pool: &P, workers: usize) -> f64 {
    let gate = Arc::new(Gate::default());
    for _ in 0..workers {
        let gate = Arc::clone(&gate);
        pool.execute(move || gate.enter_and_wait());
    }
    gate.wait_for_entered(workers);
    let before = system::status_kib("VmRSS").expect("VmRSS in /proc/self/status");
    for _ in 0..QUEUED_JOBS {
        pool.execute(|| {});
    }
    let peak = system::status_kib("VmHWM").expect("VmHWM in /proc/self/status");
    peak.saturating_sub(before) as f64 * 1024.0 / QUEUED_JOBS as f64
}

/// Holds the workers of the memory workload: each enters and waits.
#[derive(Default)]
struct Gate {
    /// Workers that have entered.
    entered: Mutex<usize>,
    /// Signalled on each entry.
    changed: Condvar,
}

impl Gate {
    fn enter_and_wait(&self) {
        let mut entered = self.entered.lock().unwrap();
        *entered += 1;
        self.changed.notify_all();
        // Never opened: the process exits with the workers still here.
        loop {
            entered = self.changed.wait(entered).unwrap();
        }
    }

    fn wait_for_entered(&self, workers: usize) {
        let mut entered = self.entered.lock().unwrap();
        while *entered < workers {
            entered = self.changed.wait(entered).unwrap();
        }
    }
}
