//! Property test of the ledger (`DESIGN.md`, "The ledger") over random
//! operation sequences.
//!
//! A scenario is a pool size, one to three submitting threads (the owner plus
//! up to two helpers holding `Handle`s) and a few phases of operations. Jobs
//! complete, panic or sleep briefly, and may submit up to two children through
//! `Handle::current()`. Every phase but the last ends with all threads quiet
//! and a `wait_idle` whose counters must be exact; the owner may also call
//! `wait_idle` while helpers keep submitting. In the last phase the owner shuts
//! the pool down or drops it at a random point while the helpers still submit.
//!
//! Each job has a ledger entry: accepted or handed back, runs in the pool,
//! runs outside it, whether its body finished, and how often its closure was
//! dropped. Violations are recorded rather than asserted where they are found,
//! because an assertion inside a job would just be caught by the pool.
//!
//! Cases: 64 by default, or `PROPTEST_CASES`.

#![cfg(not(loom))]

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use weft::{Builder, Handle, SubmitError, SubmitErrorKind, ThreadPool};

/// Marker carried by every panic a job raises on purpose.
const DELIBERATE: &str = "deliberate ledger panic";

/// `Entry::parent` of a job submitted by a test thread.
const NO_PARENT: usize = usize::MAX;

/// A case running longer than this is a hang: the watchdog aborts the process
/// with the scenario rather than letting the test run stall.
const HANG: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Quick,
    Panic,
    /// Sleeps briefly, so that jobs are still queued or running when other
    /// operations happen. The sleep only makes races likelier.
    Slow,
}

#[derive(Clone, Debug)]
struct JobSpec {
    kind: Kind,
    /// Children this job submits through `Handle::current()` when it runs.
    children: Vec<Kind>,
}

#[derive(Clone, Debug)]
enum OwnerOp {
    Submit(JobSpec),
    /// `wait_idle` while helpers may still be submitting.
    WaitIdle,
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    Shutdown,
    Drop,
}

#[derive(Clone, Debug)]
struct Phase {
    owner: Vec<OwnerOp>,
    /// One list per helper thread.
    helpers: Vec<Vec<JobSpec>>,
}

#[derive(Clone, Debug)]
struct Scenario {
    pool_threads: usize,
    panic_handler: bool,
    phases: Vec<Phase>,
    /// Where in the last phase's owner ops the owner ends the pool.
    end_at: Index,
    ending: Ending,
}

impl Scenario {
    /// The most jobs the scenario can create (each top-level job plus its
    /// children).
    fn max_jobs(&self) -> usize {
        let cost = |spec: &JobSpec| 1 + spec.children.len();
        self.phases
            .iter()
            .map(|phase| {
                let owner: usize = phase
                    .owner
                    .iter()
                    .map(|op| match op {
                        OwnerOp::Submit(spec) => cost(spec),
                        OwnerOp::WaitIdle => 0,
                    })
                    .sum();
                let helpers: usize = phase.helpers.iter().flatten().map(cost).sum();
                owner + helpers
            })
            .sum()
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![4 => Just(Kind::Quick), 2 => Just(Kind::Panic), 2 => Just(Kind::Slow)]
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (kind(), prop::collection::vec(kind(), 0..=2))
        .prop_map(|(kind, children)| JobSpec { kind, children })
}

fn owner_op() -> impl Strategy<Value = OwnerOp> {
    prop_oneof![5 => job_spec().prop_map(OwnerOp::Submit), 1 => Just(OwnerOp::WaitIdle)]
}

fn phase(helpers: usize) -> impl Strategy<Value = Phase> {
    (
        prop::collection::vec(owner_op(), 0..10),
        prop::collection::vec(prop::collection::vec(job_spec(), 0..10), helpers),
    )
        .prop_map(|(owner, helpers)| Phase { owner, helpers })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=3usize, 0..=2usize)
        .prop_flat_map(|(pool_threads, helpers)| {
            (
                Just(pool_threads),
                any::<bool>(),
                prop::collection::vec(phase(helpers), 1..=3),
                any::<Index>(),
                prop_oneof![Just(Ending::Shutdown), Just(Ending::Drop)],
            )
        })
        .prop_map(
            |(pool_threads, panic_handler, phases, end_at, ending)| Scenario {
                pool_threads,
                panic_handler,
                phases,
                end_at,
                ending,
            },
        )
}

// ---------------------------------------------------------------------------
// The ledger
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Entry {
    /// The job that submitted this one, or [`NO_PARENT`].
    parent: AtomicUsize,
    panics: AtomicBool,
    /// Its submission returned `Ok`.
    accepted: AtomicBool,
    /// Its submission returned `Err` and the closure came back out of it.
    returned: AtomicBool,
    pool_runs: AtomicUsize,
    /// Runs by a caller that got it handed back.
    outside_runs: AtomicUsize,
    /// Its body ended (normally or by unwinding) after running.
    finished: AtomicBool,
    /// Times its closure was dropped (run or not): must end up exactly 1.
    drops: AtomicUsize,
}

struct Ledger {
    entries: Vec<Entry>,
    next_id: AtomicUsize,
    /// Set by the owner just before it shuts the pool down or drops it.
    ending_begun: AtomicBool,
    violations: Mutex<Vec<String>>,
}

type BoxedJob = Box<dyn FnOnce() + Send + 'static>;

/// What to do with a job that comes back refused.
#[derive(Clone, Copy)]
enum OnRefusal {
    /// Run it on this (non-pool) thread: it must still run once, here.
    CallHere,
    /// Drop it unrun (inside a pool job, where running it would look like a
    /// pool run).
    Drop,
}

impl Ledger {
    fn new(capacity: usize) -> Ledger {
        Ledger {
            entries: (0..capacity).map(|_| Entry::default()).collect(),
            next_id: AtomicUsize::new(0),
            ending_begun: AtomicBool::new(false),
            violations: Mutex::new(Vec::new()),
        }
    }

    fn violation(&self, message: String) {
        self.violations.lock().unwrap().push(message);
    }

    fn created(&self) -> usize {
        self.next_id.load(SeqCst).min(self.entries.len())
    }

    fn entry(&self, id: usize) -> &Entry {
        &self.entries[id]
    }

    fn total_pool_runs(&self) -> usize {
        (0..self.created())
            .map(|id| self.entry(id).pool_runs.load(SeqCst))
            .sum()
    }

    /// Records the outcome of submitting job `id` and, if it was refused,
    /// checks that the refusal is allowed and that the job came back unrun.
    fn record_submission(
        &self,
        id: usize,
        result: Result<(), SubmitError<BoxedJob>>,
        on_refusal: OnRefusal,
    ) {
        let entry = self.entry(id);
        match result {
            Ok(()) => entry.accepted.store(true, SeqCst),
            Err(err) => {
                if err.kind() != SubmitErrorKind::ShutDown {
                    self.violation(format!("job {id} refused as {:?}", err.kind()));
                }
                // A refusal happens after `close`, which the owner only calls
                // after setting `ending_begun`.
                if !self.ending_begun.load(SeqCst) {
                    self.violation(format!("job {id} refused before shutdown began"));
                }
                entry.returned.store(true, SeqCst);
                let job = err.into_inner();
                if entry.pool_runs.load(SeqCst) != 0 {
                    self.violation(format!("refused job {id} ran in the pool"));
                }
                match on_refusal {
                    OnRefusal::CallHere => {
                        // A panicking job panics here too; that is its business.
                        let _ = panic::catch_unwind(AssertUnwindSafe(job));
                    }
                    OnRefusal::Drop => drop(job),
                }
            }
        }
    }
}

/// Owned by each job's closure: notes when the body ends (its drop runs at
/// the end of the body or while it unwinds) and when the closure is dropped
/// without running, which is allowed only after it was handed back.
struct Token {
    ledger: Arc<Ledger>,
    id: usize,
}

impl Drop for Token {
    fn drop(&mut self) {
        let entry = self.ledger.entry(self.id);
        let ran = entry.pool_runs.load(SeqCst) + entry.outside_runs.load(SeqCst) > 0;
        if ran {
            entry.finished.store(true, SeqCst);
        } else if !entry.returned.load(SeqCst) {
            self.ledger.violation(format!(
                "job {} was dropped without running and without being handed back",
                self.id
            ));
        }
        entry.drops.fetch_add(1, SeqCst);
    }
}

/// Creates job `id` of `kind` with a fresh ledger entry.
fn new_job(
    ledger: &Arc<Ledger>,
    kind: Kind,
    children: Vec<Kind>,
    parent: usize,
) -> (usize, BoxedJob) {
    let id = ledger.next_id.fetch_add(1, SeqCst);
    assert!(id < ledger.entries.len(), "ledger capacity miscounted");
    let entry = ledger.entry(id);
    entry.parent.store(parent, SeqCst);
    entry.panics.store(kind == Kind::Panic, SeqCst);
    let token = Token {
        ledger: Arc::clone(ledger),
        id,
    };
    let job = move || {
        let token = token;
        let ledger = &token.ledger;
        let entry = ledger.entry(token.id);
        let pool = Handle::current();
        match pool {
            Some(_) => entry.pool_runs.fetch_add(1, SeqCst),
            None => entry.outside_runs.fetch_add(1, SeqCst),
        };
        if let Some(pool) = pool {
            for child in children {
                let (child_id, child_job) = new_job(ledger, child, Vec::new(), token.id);
                let result = pool.execute(child_job);
                ledger.record_submission(child_id, result, OnRefusal::Drop);
            }
        }
        match kind {
            Kind::Quick => {}
            Kind::Slow => thread::sleep(Duration::from_micros(200)),
            Kind::Panic => panic!("{DELIBERATE} (job {})", token.id),
        }
    };
    (id, Box::new(job))
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// `wait_idle`, then: every job accepted before the call (and every child
/// such a job submitted) ran exactly once and finished, and the counters
/// cover at least those jobs and at most the runs recorded. When `quiet`
/// (no thread is submitting), every job so far is covered and the counters
/// must be exact.
/// `handled` counts the panic handler's calls, if one is installed.
fn wait_idle_and_check(
    ledger: &Ledger,
    pool: &ThreadPool,
    handled: Option<&AtomicUsize>,
    quiet: bool,
) {
    let accepted_before: Vec<bool> = (0..ledger.created())
        .map(|id| ledger.entry(id).accepted.load(SeqCst))
        .collect();
    pool.wait_idle();
    let completed = pool.completed_count();
    let panicked = pool.panic_count();
    let handler_calls = handled.map(|calls| calls.load(SeqCst));
    let total_runs = ledger.total_pool_runs();

    let was_accepted_before = |id: usize| accepted_before.get(id).copied().unwrap_or(false);
    let mut covered = 0;
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let parent = entry.parent.load(SeqCst);
        let is_covered = quiet
            || was_accepted_before(id)
            || (parent != NO_PARENT && was_accepted_before(parent));
        if !is_covered {
            continue;
        }
        covered += 1;
        let runs = entry.pool_runs.load(SeqCst);
        let accepted = entry.accepted.load(SeqCst);
        let finished = entry.finished.load(SeqCst);
        if !accepted || runs != 1 || !finished {
            ledger.violation(format!(
                "after wait_idle: job {id} (parent {parent:#x}) accepted={accepted} \
                 pool_runs={runs} finished={finished}"
            ));
        }
    }
    if completed + panicked < covered {
        ledger.violation(format!(
            "after wait_idle: completed {completed} + panicked {panicked} < {covered} jobs finished"
        ));
    }
    if completed + panicked > total_runs {
        ledger.violation(format!(
            "after wait_idle: completed {completed} + panicked {panicked} > {total_runs} runs"
        ));
    }
    if quiet {
        let panicking_runs: usize = (0..ledger.created())
            .filter(|&id| ledger.entry(id).panics.load(SeqCst))
            .map(|id| ledger.entry(id).pool_runs.load(SeqCst))
            .sum();
        if panicked != panicking_runs || completed != total_runs - panicking_runs {
            ledger.violation(format!(
                "idle counters inexact: completed {completed}, panicked {panicked}; \
                 ran {total_runs} of which {panicking_runs} panicking"
            ));
        }
        if pool.queued_count() != 0 || pool.active_count() != 0 {
            ledger.violation("idle pool reports queued or active jobs".to_owned());
        }
        if handler_calls.is_some_and(|calls| calls != panicked) {
            ledger.violation(format!(
                "panic handler called {handler_calls:?} times for {panicked} panics"
            ));
        }
    }
}

/// Right after `shutdown`/`drop` returned: every accepted job has finished,
/// and every worker has stopped.
fn check_at_end(ledger: &Ledger, stops: usize, pool_threads: usize) {
    if stops != pool_threads {
        ledger.violation(format!(
            "{stops} of {pool_threads} workers stopped when the pool's end returned"
        ));
    }
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let runs = entry.pool_runs.load(SeqCst);
        if (entry.accepted.load(SeqCst) || runs > 0) && (runs != 1 || !entry.finished.load(SeqCst))
        {
            ledger.violation(format!(
                "at the end: job {id} pool_runs={runs} finished={}",
                entry.finished.load(SeqCst)
            ));
        }
    }
}

/// After every thread is done: each job was accepted and ran once in the
/// pool, or was handed back and never ran there; each closure was dropped
/// exactly once; nothing ran after the pool's end returned.
fn final_check(ledger: &Ledger, runs_at_end: usize) {
    let total = ledger.total_pool_runs();
    if total != runs_at_end {
        ledger.violation(format!(
            "{} job runs happened after the pool's end returned",
            total - runs_at_end
        ));
    }
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let accepted = entry.accepted.load(SeqCst);
        let returned = entry.returned.load(SeqCst);
        let runs = entry.pool_runs.load(SeqCst);
        let outside = entry.outside_runs.load(SeqCst);
        let drops = entry.drops.load(SeqCst);
        let finished = entry.finished.load(SeqCst);
        let ok = match (accepted, returned) {
            (true, false) => runs == 1 && outside == 0 && finished,
            (false, true) => runs == 0 && outside <= 1,
            _ => false,
        };
        if !ok || drops != 1 {
            ledger.violation(format!(
                "job {id}: accepted={accepted} returned={returned} pool_runs={runs} \
                 outside_runs={outside} finished={finished} drops={drops}"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Running a scenario
// ---------------------------------------------------------------------------

fn run(scenario: &Scenario) -> Vec<String> {
    let ledger = Arc::new(Ledger::new(scenario.max_jobs()));
    let stops = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));

    let stop_count = Arc::clone(&stops);
    let mut builder = Builder::new()
        .num_threads(scenario.pool_threads)
        .on_thread_stop(move |_| {
            stop_count.fetch_add(1, SeqCst);
        });
    if scenario.panic_handler {
        let (handled, ledger) = (Arc::clone(&handled), Arc::clone(&ledger));
        builder = builder.panic_handler(move |payload: Box<dyn Any + Send>| {
            if !payload_text(&*payload).is_some_and(|t| t.contains(DELIBERATE)) {
                ledger.violation("the panic handler got a foreign payload".to_owned());
            }
            handled.fetch_add(1, SeqCst);
        });
    }
    let handled = scenario.panic_handler.then_some(&*handled);
    let pool = builder.build().expect("pool builds");
    let handle = pool.handle();

    let helpers = scenario.phases[0].helpers.len();
    let barrier = Barrier::new(helpers + 1);
    let last_phase = scenario.phases.len() - 1;

    let runs_at_end = thread::scope(|scope| {
        for helper in 0..helpers {
            let (handle, ledger, barrier) = (handle.clone(), &ledger, &barrier);
            scope.spawn(move || {
                for (index, phase) in scenario.phases.iter().enumerate() {
                    barrier.wait(); // phase starts
                    for spec in &phase.helpers[helper] {
                        let (id, job) =
                            new_job(ledger, spec.kind, spec.children.clone(), NO_PARENT);
                        let result = handle.execute(job);
                        ledger.record_submission(id, result, OnRefusal::CallHere);
                    }
                    if index != last_phase {
                        barrier.wait(); // phase ends: the owner checks
                    }
                }
            });
        }

        let mut pool = Some(pool);
        let mut runs_at_end = None;
        for (index, phase) in scenario.phases.iter().enumerate() {
            barrier.wait();
            let end_at =
                (index == last_phase).then(|| scenario.end_at.index(phase.owner.len() + 1));
            for (at, op) in phase.owner.iter().enumerate() {
                if end_at == Some(at) {
                    runs_at_end = Some(end_pool(&ledger, pool.take().unwrap(), scenario, &stops));
                }
                match (op, &pool) {
                    (OwnerOp::Submit(spec), Some(live)) => {
                        let (id, job) =
                            new_job(&ledger, spec.kind, spec.children.clone(), NO_PARENT);
                        live.execute(job);
                        ledger.record_submission(id, Ok(()), OnRefusal::CallHere);
                    }
                    (OwnerOp::Submit(spec), None) => {
                        let (id, job) =
                            new_job(&ledger, spec.kind, spec.children.clone(), NO_PARENT);
                        let result = handle.execute(job);
                        if result.is_ok() {
                            ledger.violation(format!(
                                "job {id} accepted after the pool's end returned"
                            ));
                        }
                        ledger.record_submission(id, result, OnRefusal::CallHere);
                    }
                    (OwnerOp::WaitIdle, Some(live)) => {
                        wait_idle_and_check(&ledger, live, handled, false)
                    }
                    (OwnerOp::WaitIdle, None) => {}
                }
            }
            if index != last_phase {
                barrier.wait();
                let live = pool.as_ref().unwrap();
                wait_idle_and_check(&ledger, live, handled, true);
            } else if let Some(live) = pool.take() {
                // The end was placed after the last op.
                runs_at_end = Some(end_pool(&ledger, live, scenario, &stops));
            }
        }
        runs_at_end.expect("the pool was ended")
    });
    // The scope has joined the helpers: every submission is recorded.
    final_check(&ledger, runs_at_end);
    drop(handle);
    let violations = std::mem::take(&mut *ledger.violations.lock().unwrap());
    violations
}

/// Shuts the pool down or drops it, checks the ledger at that moment, and
/// returns the number of pool runs then.
fn end_pool(ledger: &Ledger, pool: ThreadPool, scenario: &Scenario, stops: &AtomicUsize) -> usize {
    ledger.ending_begun.store(true, SeqCst);
    match scenario.ending {
        Ending::Shutdown => pool.shutdown(),
        Ending::Drop => drop(pool),
    }
    check_at_end(ledger, stops.load(SeqCst), scenario.pool_threads);
    ledger.total_pool_runs()
}

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Installs, once, a panic hook that keeps the jobs' deliberate panics off
/// stderr and forwards every other panic to the default hook.
fn quiet_deliberate_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !payload_text(info.payload()).is_some_and(|t| t.contains(DELIBERATE)) {
                default_hook(info);
            }
        }));
    });
}

/// The case currently running and when it started, for the watchdog.
static CURRENT_CASE: Mutex<Option<(Instant, String)>> = Mutex::new(None);

/// Starts, once, a thread that aborts the process with the running scenario
/// if a case takes longer than [`HANG`]: a deadlock must fail the run, not
/// stall it.
fn start_watchdog() {
    static START: Once = Once::new();
    START.call_once(|| {
        thread::spawn(|| loop {
            thread::sleep(Duration::from_secs(1));
            if let Some((started, scenario)) = &*CURRENT_CASE.lock().unwrap() {
                if started.elapsed() > HANG {
                    eprintln!("ledger case hung for over {HANG:?}:\n{scenario}");
                    std::process::abort();
                }
            }
        });
    });
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        // Failing seeds are kept here (relative to the package root, where
        // cargo runs tests) and replayed first on the next run.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/proptest-regressions/proptest_ledger.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn ledger_holds_for_random_operation_sequences(scenario in scenario()) {
        quiet_deliberate_panics();
        start_watchdog();
        *CURRENT_CASE.lock().unwrap() = Some((Instant::now(), format!("{scenario:#?}")));
        let violations = run(&scenario);
        *CURRENT_CASE.lock().unwrap() = None;
        prop_assert!(
            violations.is_empty(),
            "ledger violations:\n{}",
            violations.join("\n")
        );
    }
}
