//! Randomized schedule tests of weft at sizes loom cannot reach, compiled
//! into the crate's own test build under `cfg(all(shuttle, test))`. The
//! catalogue (property, workers and jobs, scheduler, schedules, time), how
//! to replay a failure and the mutations each test catches are in
//! `README.md` beside this file.
//!
//! loom proves small scenarios exhaustively; these sample schedules of big
//! ones (four workers, dozens of jobs, two outside submitters, jobs that
//! submit, spawn and join their own children) with shuttle's random and PCT
//! schedulers. `src/sync.rs` hands the pool shuttle's locks, condvars,
//! atomics and threads, so every one of their operations is a point where
//! the scheduler may switch threads.
//!
//! Conventions shared by every test:
//!
//! - A test builds its own pool inside the closure, shuts it down (or drops
//!   it) and joins every thread it started before the closure returns.
//! - Assertions run on the test's main thread or a submitter thread, never
//!   inside a job: the pool catches a job's panic, so an assertion there
//!   would only be counted, not reported.
//! - Run counters are std atomics used with `Relaxed`. Shuttle runs one
//!   thread at a time and models no weak memory, so they need no ordering;
//!   being std's, they add no scheduling points, and the schedule is spent
//!   on the pool's own synchronization.

mod idle;
// The loom models' mailbox, written against the shim like these tests.
#[path = "../loom-tests/mailbox.rs"]
mod mailbox;
mod resize;
mod scope;
mod shutdown;
mod submit;
mod wakeup;

use std::env;
use std::hash::{BuildHasher, RandomState};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Instant as WallClock;

use shuttle::scheduler::{
    PctScheduler, RandomScheduler, ReplayScheduler, Scheduler as ShuttleScheduler,
};
use shuttle::{Config, FailurePersistence, Runner};

use crate::sync::Arc;
use crate::Handle;
use mailbox::Mailbox;

/// Which of shuttle's schedulers drives a test.
#[derive(Clone, Copy, Debug)]
enum Scheduler {
    /// Picks a runnable thread uniformly at random at every step.
    Random,
    /// Probabilistic concurrency testing: random thread priorities, with
    /// `depth - 1` random points where the running thread's priority drops.
    /// Finds any bug that needs at most `depth - 1` ordering constraints with
    /// a probability bounded below, however long the schedule.
    Pct { depth: usize },
}

impl Scheduler {
    /// The name used in the summary line and the README.
    fn label(self) -> String {
        match self {
            Scheduler::Random => "random".to_owned(),
            Scheduler::Pct { depth } => format!("pct{depth}"),
        }
    }
}

/// Runs `f` under `scheduler` for `default_iterations` schedules (or
/// `WEFT_SHUTTLE_ITERATIONS`), then prints one summary line:
///
/// `shuttle: <test> <scheduler> <schedules> schedules <seconds>s`
///
/// Before running it prints the seed (`WEFT_SHUTTLE_SEED` fixes it, so a
/// failing run can be repeated schedule for schedule). On a failure shuttle
/// prints the failing schedule; `WEFT_SHUTTLE_REPLAY=<schedule>` then runs
/// that one schedule instead (filter the run down to the failing test).
fn check<F>(test: &str, scheduler: Scheduler, default_iterations: usize, f: F)
where
    F: Fn() + Send + Sync + 'static,
{
    silence_deliberate_panics();
    let label = scheduler.label();
    if let Some(schedule) = env::var_os("WEFT_SHUTTLE_REPLAY") {
        let schedule = schedule
            .into_string()
            .expect("WEFT_SHUTTLE_REPLAY is not UTF-8");
        // Shuttle prints the schedule wrapped over several lines between
        // quotes; accept it pasted as printed.
        let schedule: String = schedule
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '"')
            .collect();
        eprintln!("shuttle: {test} replaying one schedule");
        run(ReplayScheduler::new_from_encoded(&schedule), f);
        return;
    }
    let iterations = env_number("WEFT_SHUTTLE_ITERATIONS").unwrap_or(default_iterations as u64);
    let iterations = usize::try_from(iterations).expect("WEFT_SHUTTLE_ITERATIONS too large");
    // Seeded here rather than by shuttle, so that the seed is printed
    // before the run: a failure can be repeated even if its schedule string
    // is lost.
    let seed = env_number("WEFT_SHUTTLE_SEED").unwrap_or_else(|| RandomState::new().hash_one(test));
    eprintln!("shuttle: {test} {label} seed {seed} (WEFT_SHUTTLE_SEED={seed} repeats this run)");
    let started = WallClock::now();
    let explored = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&explored);
    let counted = move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    };
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| match scheduler {
        Scheduler::Random => run(RandomScheduler::new_from_seed(seed, iterations), counted),
        Scheduler::Pct { depth } => run(
            PctScheduler::new_from_seed(seed, depth, iterations),
            counted,
        ),
    }));
    let seconds = started.elapsed().as_secs_f64();
    match outcome {
        Ok(schedules) => println!("shuttle: {test} {label} {schedules} schedules {seconds:.1}s"),
        Err(failure) => {
            eprintln!(
                "shuttle: {test} {label} FAILED in schedule {} after {seconds:.1}s (seed {seed})",
                explored.load(Ordering::Relaxed)
            );
            panic::resume_unwind(failure);
        }
    }
}

/// Runs `f` under `scheduler`, printing a failing schedule for
/// `WEFT_SHUTTLE_REPLAY` (or `shuttle::replay`); returns how many schedules
/// ran.
fn run<S, F>(scheduler: S, f: F) -> usize
where
    S: ShuttleScheduler + 'static,
    F: Fn() + Send + Sync + 'static,
{
    let mut config = Config::new();
    config.failure_persistence = FailurePersistence::Print;
    // Every shuttle thread runs on a stack of this size. Shuttle's default
    // (60 KiB) overflows in an unoptimized build when a job panics: the
    // unwinder and the panic hook run on top of the worker loop and a
    // helping join (SIGSEGV, no message).
    config.stack_size = 1 << 20;
    // Its warning that every ordering runs as `SeqCst` is in README.md, with
    // the kinds of bug that therefore slip through.
    config.silence_warnings = true;
    Runner::new(scheduler, config).run(f)
}

/// The value of the environment variable `name` as a number, if it is set.
fn env_number(name: &str) -> Option<u64> {
    let value = env::var(name).ok()?;
    match value.trim().parse() {
        Ok(number) => Some(number),
        Err(err) => panic!("{name}={value:?} is not a number: {err}"),
    }
}

/// The payload of every panic a test provokes on purpose.
struct DeliberatePanic;

/// Panics with [`DeliberatePanic`], which the panic hook keeps quiet.
fn deliberate_panic() -> ! {
    panic::panic_any(DeliberatePanic)
}

/// Installs, once per test binary, a panic hook that stays quiet for
/// [`DeliberatePanic`] payloads and forwards every other panic to the hook
/// it replaces.
///
/// Shuttle installs its own hook (it prints the failing schedule) the first
/// time a test runs, and announces every panic as a failure, even one the
/// pool catches. So shuttle's is installed first, with an empty run, and
/// ours goes in front of it. Set `WEFT_SHUTTLE_SHOW_PANICS` to see the
/// deliberate panics too.
fn silence_deliberate_panics() {
    static INSTALL: Once = Once::new();
    if env::var_os("WEFT_SHUTTLE_SHOW_PANICS").is_some() {
        return;
    }
    INSTALL.call_once(|| {
        shuttle::check_random(|| {}, 1);
        let shuttle_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<DeliberatePanic>() {
                shuttle_hook(info);
            }
        }));
    });
}

/// What became of each job of a test, by id: accepted or refused when it
/// was submitted, and where it ran. [`Ledger::assert_balanced`] checks
/// ledger rules 1 and 2 over all of them.
struct Ledger {
    accepted: Vec<AtomicUsize>,
    refused: Vec<AtomicUsize>,
    in_pool: Vec<AtomicUsize>,
    by_caller: Vec<AtomicUsize>,
}

impl Ledger {
    fn new(jobs: usize) -> Ledger {
        let counters = || (0..jobs).map(|_| AtomicUsize::new(0)).collect();
        Ledger {
            accepted: counters(),
            refused: counters(),
            in_pool: counters(),
            by_caller: counters(),
        }
    }

    fn jobs(&self) -> usize {
        self.accepted.len()
    }

    /// Records that the pool accepted job `id`.
    fn accept(&self, id: usize) {
        self.accepted[id].fetch_add(1, Ordering::Relaxed);
    }

    /// Records that the pool refused job `id` (and handed it back).
    fn refuse(&self, id: usize) {
        self.refused[id].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a run of job `id` on whichever side this thread is: a worker
    /// of some pool, or a caller running a handed-back job.
    fn record_run(&self, id: usize) {
        let ran = match Handle::current() {
            Some(_) => &self.in_pool[id],
            None => &self.by_caller[id],
        };
        ran.fetch_add(1, Ordering::Relaxed);
    }

    fn load(counters: &[AtomicUsize], id: usize) -> usize {
        counters[id].load(Ordering::Relaxed)
    }

    /// Runs of every job on workers so far.
    fn runs_in_pool(&self) -> usize {
        (0..self.jobs())
            .map(|id| Ledger::load(&self.in_pool, id))
            .sum()
    }

    /// Runs of handed-back jobs by callers so far.
    fn runs_by_caller(&self) -> usize {
        (0..self.jobs())
            .map(|id| Ledger::load(&self.by_caller, id))
            .sum()
    }

    /// Jobs the pool accepted.
    fn accepted_count(&self) -> usize {
        (0..self.jobs())
            .filter(|&id| Ledger::load(&self.accepted, id) == 1)
            .count()
    }

    /// Every job was submitted once and either accepted, and then ran
    /// exactly once (in the pool, or by a caller after being handed back),
    /// or refused, and then never ran.
    fn assert_balanced(&self) {
        for id in 0..self.jobs() {
            let accepted = Ledger::load(&self.accepted, id);
            let refused = Ledger::load(&self.refused, id);
            let in_pool = Ledger::load(&self.in_pool, id);
            let by_caller = Ledger::load(&self.by_caller, id);
            assert_eq!(
                accepted + refused,
                1,
                "job {id} was accepted {accepted} times and refused {refused} times (test bug?)"
            );
            if accepted == 1 {
                assert_eq!(
                    in_pool + by_caller,
                    1,
                    "ledger rule 1 broken: accepted job {id} ran {in_pool} times in the pool and was handed back and run {by_caller} times"
                );
            } else {
                assert_eq!(
                    (in_pool, by_caller),
                    (0, 0),
                    "ledger rule 2 broken: refused job {id} ran anyway"
                );
            }
        }
    }

    /// Every job was accepted and ran exactly once, on a worker.
    fn assert_all_ran_once_in_pool(&self) {
        self.assert_balanced();
        for id in 0..self.jobs() {
            assert_eq!(
                Ledger::load(&self.accepted, id),
                1,
                "job {id} was refused by a live pool"
            );
            assert_eq!(
                Ledger::load(&self.in_pool, id),
                1,
                "ledger rule 1 broken: job {id} did not run exactly once in the pool"
            );
        }
    }
}

/// The pool's counters, read together once it is idle.
#[derive(Debug, PartialEq, Eq)]
struct Counters {
    completed: usize,
    panicked: usize,
    queued: usize,
    active: usize,
}

impl Counters {
    fn of(pool: &crate::ThreadPool) -> Counters {
        Counters {
            completed: pool.completed_count(),
            panicked: pool.panic_count(),
            queued: pool.queued_count(),
            active: pool.active_count(),
        }
    }
}

/// Ledger rule 6: once `pool` is idle, its counters are exact: `completed`
/// and `panicked` jobs, none queued, none running.
fn assert_exact_when_idle(pool: &crate::ThreadPool, completed: usize, panicked: usize) {
    assert_eq!(
        Counters::of(pool),
        Counters {
            completed,
            panicked,
            queued: 0,
            active: 0
        },
        "ledger rule 6 broken: the idle pool's counters are not exact"
    );
}
