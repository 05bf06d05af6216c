//! Property test of the ledger (`DESIGN.md`, "The ledger") over random
//! operation sequences.
//!
//! A scenario is a pool size, an optional queue capacity, one to three
//! submitting threads (the owner plus up to two helpers holding `Handle`s)
//! and a few phases of operations. Submitters use every way in: `execute`,
//! `try_execute` and `execute_timeout` (which may come back `Full` or
//! `TimedOut` on a bounded queue, with the job inside), `spawn`, whose
//! handles are joined later, by `join` or as a `Future`, and `execute_batch`
//! of up to four jobs (on the pool, or on a `Handle`, where a shutdown may
//! refuse the batch part-way). Jobs complete, panic or sleep briefly, and may
//! submit up to two children through `Handle::current()` in any of those ways
//! (the children a job submits by batch go in one `execute_batch` call),
//! joining the children they spawned before they end (so workers join their
//! own pool's jobs). The owner may also call `wait_idle` while helpers keep
//! submitting, join its handles, or resize the pool (`set_num_threads`, 0
//! included, which must be refused).
//! And it may run a scoped batch: one `pool.scope` call whose jobs
//! (`Scope::execute`, or `Scope::spawn` with the handle joined or dropped)
//! borrow slots of a `Vec` in the calling frame, split with `split_at_mut`;
//! they may start children through the scope they captured, run a scope of
//! their own on their worker, and panic; the closure may panic too. After
//! `scope` returns or panics, every started job has run once and finished,
//! written each of its slots exactly once (the slots of jobs never started
//! are untouched), and had its returned value (which borrows the caller's
//! frame) dropped; `scope` panicked exactly when the closure did (with the
//! closure's own payload) or a job's panic went unjoined; joined panics came
//! back as `Err(is_panic)`. Scoped jobs count in the pool's counters.
//! Every phase but the last ends with all threads quiet and a `wait_idle`
//! whose counters must be exact. In the last phase the owner ends the pool at
//! a random point while the helpers still submit: `shutdown`, `drop`,
//! `shutdown_now` (then runs or drops each handed-back job), or
//! `shutdown_timeout` with a zero deadline (which may time out, leaving the
//! workers to drain detached) or a generous one (which must not).
//!
//! Each job has a ledger entry: accepted, refused (and returned), or handed
//! back; runs in the pool; runs outside it; whether its body finished; how
//! often its closure was dropped; and how a join of its handle ended. In the
//! end each job must have run exactly once in the pool, or been handed back
//! (then it ran 0 times in the pool, and once if the owner ran it), or been
//! refused with a reason its call allows and come back unrun. A batch is
//! checked job by job the same way, and a refused batch must hand back
//! exactly the jobs it did not accept, a suffix of the batch, in order (each
//! job that came back is identified by its ledger entry when it is run or
//! dropped). Violations are
//! recorded rather than asserted where they are found, because an assertion
//! inside a job would just be caught by the pool.
//!
//! Cases: 256 by default (about a second), or `PROPTEST_CASES`.

#![cfg(not(loom))]

mod support;

use std::any::Any;
use std::cell::Cell;
use std::collections::HashSet;
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;
use support::block_on;
use weft::{
    BuildError, Builder, Handle, Job, JoinError, JoinHandle, Scope, ScopedJoinHandle, SubmitError,
    SubmitErrorKind, ThreadPool,
};

/// Marker carried by every panic a job raises on purpose.
const DELIBERATE: &str = "deliberate ledger panic";

/// What `scope` panics with when a scoped job's panic was never joined.
const SCOPE_PANIC: &str = "a scoped job panicked";

/// `Entry::parent` of a job submitted by a test thread.
const NO_PARENT: usize = usize::MAX;

/// A case running longer than this is a hang: the watchdog aborts the process
/// with the scenario rather than letting the test run stall.
const HANG: Duration = Duration::from_secs(120);

/// The non-zero timeout of `execute_timeout`: short, so that a full queue
/// makes it time out now and then.
const SHORT: Duration = Duration::from_micros(300);

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

/// How a test thread (owner or helper) submits a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `execute`: waits while a bounded queue is full.
    Execute,
    /// `try_execute`: `Full` on a full bounded queue.
    TryExecute,
    /// `execute_timeout` with a zero or a [`SHORT`] timeout: `TimedOut` on a
    /// bounded queue that stays full.
    ExecuteTimeout { zero: bool },
    /// `spawn`; the handle is joined later, by `join` or as a future.
    Spawn { as_future: bool },
}

/// How a running job submits a child, through `Handle::current()`. From
/// inside the pool a submission is never `Full` and never times out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChildVia {
    Execute,
    TryExecute,
    /// `execute_timeout` with a zero timeout.
    ExecuteTimeout,
    /// `spawn`; the parent joins it before its own body ends.
    SpawnJoin,
    /// `spawn`; the handle is dropped at once (detached).
    SpawnDetach,
    /// `execute_batch`: the job's children of this kind go in one batch,
    /// submitted after its other children.
    Batch,
}

#[derive(Clone, Debug)]
struct JobSpec {
    kind: Kind,
    /// Children this job submits through `Handle::current()` when it runs.
    children: Vec<(Kind, ChildVia)>,
}

/// How a scoped job is started: by the scope's closure, or by a scoped job
/// through the scope it captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScopedVia {
    /// `Scope::execute`: a panic is nobody's to join, so the scope panics.
    Execute,
    /// `Scope::spawn`; whoever started it joins the handle (the closure
    /// before it returns, a job before its body ends), so a panic is the
    /// joiner's.
    SpawnJoin,
    /// `Scope::spawn`; the handle is dropped at once, unjoined: a panic makes
    /// the scope panic.
    SpawnDrop,
}

/// A job of a scoped batch. It starts its children through the scope it
/// captured, writes its own slots of the batch (borrowed from the frame that
/// called `scope`; a `Slow` job sleeps first), may run a scope of its own on
/// its worker (over slots of its own frame), joins the children it spawned
/// to join, and then panics if its kind is `Panic`.
#[derive(Clone, Debug)]
struct ScopedJob {
    via: ScopedVia,
    kind: Kind,
    /// Slots of the batch it writes, each exactly once.
    slots: usize,
    /// Started through the captured scope; never joined by the scope's
    /// closure (`SpawnJoin` ones are joined by this job).
    children: Vec<ScopedJob>,
    /// A nested `pool.scope`, run by this job on its worker (which helps
    /// while it waits). Its outcome is checked there and does not propagate.
    inner: Option<Box<ScopeBatch>>,
}

impl ScopedJob {
    fn panics(&self) -> bool {
        self.kind == Kind::Panic
    }

    /// Slots of this job and its children: a contiguous run of the batch.
    fn slot_count(&self) -> usize {
        self.slots
            + self
                .children
                .iter()
                .map(ScopedJob::slot_count)
                .sum::<usize>()
    }

    /// This job and its children (not the jobs of its inner scope).
    fn job_count(&self) -> usize {
        1 + self
            .children
            .iter()
            .map(ScopedJob::job_count)
            .sum::<usize>()
    }

    /// Jobs of this subtree that return a value (do not panic).
    fn value_count(&self) -> usize {
        usize::from(!self.panics())
            + self
                .children
                .iter()
                .map(ScopedJob::value_count)
                .sum::<usize>()
    }

    /// Whether a job of this subtree panics with nobody to join it. A
    /// `SpawnJoin` child is always joined: its parent joins it before its
    /// own body ends, panicking or not.
    fn unjoined_panic(&self) -> bool {
        (self.panics() && self.via != ScopedVia::SpawnJoin)
            || self.children.iter().any(ScopedJob::unjoined_panic)
    }
}

/// One `pool.scope` call over a batch of slots owned by the calling frame.
#[derive(Clone, Debug)]
struct ScopeBatch {
    jobs: Vec<ScopedJob>,
    /// The closure panics just before starting `jobs[at]` (at `jobs.len()`:
    /// after starting them all, before joining any).
    closure_panics: Option<Index>,
}

impl ScopeBatch {
    /// Where the closure panics, if it does: the jobs it starts before.
    fn stop(&self) -> Option<usize> {
        self.closure_panics.map(|at| at.index(self.jobs.len() + 1))
    }

    /// The top-level jobs the closure starts.
    fn started(&self) -> &[ScopedJob] {
        &self.jobs[..self.stop().unwrap_or(self.jobs.len())]
    }
}

/// What a helper thread does: one submission, or one `execute_batch` call
/// on its `Handle`.
#[derive(Clone, Debug)]
enum HelperOp {
    Submit(JobSpec, Via),
    Batch(Vec<JobSpec>),
}

#[derive(Clone, Debug)]
enum OwnerOp {
    Submit(JobSpec, Via),
    /// `execute_batch`: on the pool while it lives (it must accept it all),
    /// then on the owner's `Handle` (it must refuse it all).
    Batch(Vec<JobSpec>),
    /// `pool.scope` over a batch of the owner's stack data.
    Scope(ScopeBatch),
    /// `wait_idle` while helpers may still be submitting.
    WaitIdle,
    /// Joins every handle the owner holds.
    JoinSpawned,
    /// `set_num_threads(n)`; `n == 0` must be refused.
    Resize(usize),
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    Shutdown,
    Drop,
    /// `shutdown_now`; handed-back job `i` is run if bit `i % 64` of the mask
    /// is set, and dropped otherwise.
    ShutdownNow {
        run_mask: u64,
    },
    /// `shutdown_timeout`, with a zero deadline (it may time out) or a
    /// generous one (it must not).
    ShutdownTimeout {
        zero: bool,
    },
}

#[derive(Clone, Debug)]
struct Phase {
    owner: Vec<OwnerOp>,
    /// One list per helper thread.
    helpers: Vec<Vec<HelperOp>>,
}

#[derive(Clone, Debug)]
struct Scenario {
    pool_threads: usize,
    /// `queue_capacity`, if bounded.
    capacity: Option<usize>,
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
                        OwnerOp::Submit(spec, _) => cost(spec),
                        OwnerOp::Batch(specs) => specs.iter().map(cost).sum(),
                        OwnerOp::Scope(_)
                        | OwnerOp::WaitIdle
                        | OwnerOp::JoinSpawned
                        | OwnerOp::Resize(_) => 0,
                    })
                    .sum();
                let helpers: usize = phase
                    .helpers
                    .iter()
                    .flatten()
                    .map(|op| match op {
                        HelperOp::Submit(spec, _) => cost(spec),
                        HelperOp::Batch(specs) => specs.iter().map(cost).sum(),
                    })
                    .sum();
                owner + helpers
            })
            .sum()
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![4 => Just(Kind::Quick), 2 => Just(Kind::Panic), 2 => Just(Kind::Slow)]
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![
        4 => Just(Via::Execute),
        2 => Just(Via::TryExecute),
        2 => any::<bool>().prop_map(|zero| Via::ExecuteTimeout { zero }),
        3 => any::<bool>().prop_map(|as_future| Via::Spawn { as_future }),
    ]
}

fn child_via() -> impl Strategy<Value = ChildVia> {
    prop_oneof![
        3 => Just(ChildVia::Execute),
        1 => Just(ChildVia::TryExecute),
        1 => Just(ChildVia::ExecuteTimeout),
        3 => Just(ChildVia::SpawnJoin),
        1 => Just(ChildVia::SpawnDetach),
        2 => Just(ChildVia::Batch),
    ]
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (kind(), prop::collection::vec((kind(), child_via()), 0..=2))
        .prop_map(|(kind, children)| JobSpec { kind, children })
}

/// The jobs of one `execute_batch` call (empty batches included).
fn batch() -> impl Strategy<Value = Vec<JobSpec>> {
    prop::collection::vec(job_spec(), 0..=4)
}

fn helper_op() -> impl Strategy<Value = HelperOp> {
    prop_oneof![
        8 => (job_spec(), via()).prop_map(|(spec, via)| HelperOp::Submit(spec, via)),
        2 => batch().prop_map(HelperOp::Batch),
    ]
}

fn scoped_via() -> impl Strategy<Value = ScopedVia> {
    prop_oneof![
        3 => Just(ScopedVia::Execute),
        2 => Just(ScopedVia::SpawnJoin),
        1 => Just(ScopedVia::SpawnDrop),
    ]
}

/// A scoped job; at `depth > 0` it may have children (leaves) and an inner
/// scope one level shallower.
fn scoped_job(depth: u32) -> BoxedStrategy<ScopedJob> {
    let leaf = (scoped_via(), kind(), 1..=2usize);
    if depth == 0 {
        return leaf
            .prop_map(|(via, kind, slots)| ScopedJob {
                via,
                kind,
                slots,
                children: Vec::new(),
                inner: None,
            })
            .boxed();
    }
    (
        leaf,
        prop::collection::vec(scoped_job(0), 0..=2),
        prop::option::weighted(0.2, scope_batch(depth - 1).prop_map(Box::new)),
    )
        .prop_map(|((via, kind, slots), children, inner)| ScopedJob {
            via,
            kind,
            slots,
            children,
            inner,
        })
        .boxed()
}

fn scope_batch(depth: u32) -> BoxedStrategy<ScopeBatch> {
    (
        prop::collection::vec(scoped_job(depth), 0..=4),
        prop::option::weighted(0.15, any::<Index>()),
    )
        .prop_map(|(jobs, closure_panics)| ScopeBatch {
            jobs,
            closure_panics,
        })
        .boxed()
}

fn owner_op() -> impl Strategy<Value = OwnerOp> {
    prop_oneof![
        10 => (job_spec(), via()).prop_map(|(spec, via)| OwnerOp::Submit(spec, via)),
        2 => batch().prop_map(OwnerOp::Batch),
        2 => scope_batch(1).prop_map(OwnerOp::Scope),
        2 => Just(OwnerOp::WaitIdle),
        1 => Just(OwnerOp::JoinSpawned),
        1 => (0..=4usize).prop_map(OwnerOp::Resize),
    ]
}

fn phase(helpers: usize) -> impl Strategy<Value = Phase> {
    (
        prop::collection::vec(owner_op(), 0..10),
        prop::collection::vec(prop::collection::vec(helper_op(), 0..10), helpers),
    )
        .prop_map(|(owner, helpers)| Phase { owner, helpers })
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![
        Just(Ending::Shutdown),
        Just(Ending::Drop),
        any::<u64>().prop_map(|run_mask| Ending::ShutdownNow { run_mask }),
        any::<bool>().prop_map(|zero| Ending::ShutdownTimeout { zero }),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (1..=3usize, 0..=2usize)
        .prop_flat_map(|(pool_threads, helpers)| {
            (
                Just(pool_threads),
                prop::option::of(1..=3usize),
                any::<bool>(),
                prop::collection::vec(phase(helpers), 1..=3),
                any::<Index>(),
                ending(),
            )
        })
        .prop_map(
            |(pool_threads, capacity, panic_handler, phases, end_at, ending)| Scenario {
                pool_threads,
                capacity,
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

/// `Entry::join`: how a join of the job's handle ended.
const JOIN_NONE: u8 = 0;
const JOIN_OK: u8 = 1;
const JOIN_PANIC: u8 = 2;
const JOIN_CANCELLED: u8 = 3;

#[derive(Default)]
struct Entry {
    /// The job that submitted this one, or [`NO_PARENT`].
    parent: AtomicUsize,
    panics: AtomicBool,
    /// Submitted by `spawn`: a panic goes to its handle, not the handler.
    spawned: AtomicBool,
    /// Its submission returned `Ok`.
    accepted: AtomicBool,
    /// Its submission returned `Err` and the closure came back out of it.
    returned: AtomicBool,
    /// It came back from `shutdown_now` (seen when the owner ran or dropped
    /// it).
    handed_back: AtomicBool,
    pool_runs: AtomicUsize,
    /// Runs by a caller that got it back (refused, or handed back).
    outside_runs: AtomicUsize,
    /// Its body ended (normally or by unwinding) after running.
    finished: AtomicBool,
    /// Times its closure was dropped (run or not): must end up exactly 1.
    drops: AtomicUsize,
    /// How a join of its handle ended (`JOIN_*`).
    join: AtomicU8,
    /// That join was made on a worker of the pool.
    joined_inside: AtomicBool,
}

struct Ledger {
    entries: Vec<Entry>,
    next_id: AtomicUsize,
    /// Set by the owner just before it ends the pool.
    ending_begun: AtomicBool,
    /// Scoped jobs that started running (they have no entries: a scoped
    /// batch checks its own jobs), and those of them that panicked. Both
    /// count in the pool's counters.
    scoped_runs: AtomicUsize,
    scoped_panics: AtomicUsize,
    /// Numbers the scopes, so that each closure's panic payload is its own.
    scopes: AtomicUsize,
    violations: Mutex<Vec<String>>,
}

/// A job's body: returns its id, which is also the value a spawned job's
/// handle yields.
type Body = Box<dyn FnOnce() -> usize + Send + 'static>;
type BoxedJob = Box<dyn FnOnce() + Send + 'static>;

/// An `execute`d job is the body with its value dropped.
fn as_job(body: Body) -> BoxedJob {
    Box::new(move || {
        body();
    })
}

/// A refused submission: why, and the job that came back.
type Refused = (SubmitErrorKind, BoxedJob);

fn refused_job(err: SubmitError<BoxedJob>) -> Refused {
    (err.kind(), err.into_inner())
}

fn refused_spawn(err: SubmitError<Body>) -> Refused {
    (err.kind(), as_job(err.into_inner()))
}

/// Which refusal other than `ShutDown` a submission may get.
#[derive(Clone, Copy, PartialEq, Eq)]
enum MayRefuse {
    Never,
    Full,
    TimedOut,
}

/// What to do with a job that comes back refused.
#[derive(Clone, Copy)]
enum OnRefusal {
    /// Run it on this (non-pool) thread: it must still run once, here.
    CallHere,
    /// Drop it unrun (inside a pool job, where running it would look like a
    /// pool run).
    Drop,
}

thread_local! {
    /// Set while the owner runs or drops the jobs `shutdown_now` handed back,
    /// so that each of them can record that it was handed back.
    static HANDLING_HANDED_BACK: Cell<bool> = const { Cell::new(false) };
}

fn handling_handed_back() -> bool {
    HANDLING_HANDED_BACK.with(Cell::get)
}

impl Ledger {
    fn new(capacity: usize) -> Ledger {
        Ledger {
            entries: (0..capacity).map(|_| Entry::default()).collect(),
            next_id: AtomicUsize::new(0),
            ending_begun: AtomicBool::new(false),
            scoped_runs: AtomicUsize::new(0),
            scoped_panics: AtomicUsize::new(0),
            scopes: AtomicUsize::new(0),
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
        result: Result<(), Refused>,
        may_refuse: MayRefuse,
        on_refusal: OnRefusal,
    ) {
        let entry = self.entry(id);
        match result {
            Ok(()) => entry.accepted.store(true, SeqCst),
            Err((kind, job)) => {
                let allowed = match kind {
                    // A refusal happens after `close`, which the owner only
                    // calls after setting `ending_begun`.
                    SubmitErrorKind::ShutDown => self.ending_begun.load(SeqCst),
                    SubmitErrorKind::Full => may_refuse == MayRefuse::Full,
                    SubmitErrorKind::TimedOut => may_refuse == MayRefuse::TimedOut,
                };
                if !allowed {
                    self.violation(format!(
                        "job {id} refused as {kind:?} (ending begun: {})",
                        self.ending_begun.load(SeqCst)
                    ));
                }
                entry.returned.store(true, SeqCst);
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

    /// Records how joining job `id` ended and checks it against the job.
    fn record_join(&self, id: usize, result: Result<usize, JoinError>, inside: bool) {
        let entry = self.entry(id);
        let outcome = match result {
            Ok(value) => {
                if value != id {
                    self.violation(format!("job {id} joined with job {value}'s value"));
                }
                if entry.panics.load(SeqCst) {
                    self.violation(format!("panicking job {id} joined Ok"));
                }
                JOIN_OK
            }
            Err(err) if err.is_panic() => {
                if !entry.panics.load(SeqCst) {
                    self.violation(format!("job {id} joined as a panic but never panics"));
                }
                let payload = err.into_panic();
                if !payload_text(&*payload).is_some_and(|t| t.contains(DELIBERATE)) {
                    self.violation(format!("job {id} joined with a foreign panic payload"));
                }
                JOIN_PANIC
            }
            Err(err) => {
                if !err.is_cancelled() {
                    self.violation(format!("job {id}: a JoinError neither panic nor cancel"));
                }
                JOIN_CANCELLED
            }
        };
        if entry.join.swap(outcome, SeqCst) != JOIN_NONE {
            self.violation(format!("job {id} was joined twice"));
        }
        entry.joined_inside.store(inside, SeqCst);
    }
}

/// Owned by each job's closure: notes when the body ends (its drop runs at
/// the end of the body or while it unwinds) and when the closure is dropped
/// without running, which is allowed only after it was refused or handed
/// back.
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
        } else if handling_handed_back() {
            entry.handed_back.store(true, SeqCst);
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
    children: Vec<(Kind, ChildVia)>,
    parent: usize,
    spawned: bool,
) -> (usize, Body) {
    let id = ledger.next_id.fetch_add(1, SeqCst);
    assert!(id < ledger.entries.len(), "ledger capacity miscounted");
    let entry = ledger.entry(id);
    entry.parent.store(parent, SeqCst);
    entry.panics.store(kind == Kind::Panic, SeqCst);
    entry.spawned.store(spawned, SeqCst);
    let token = Token {
        ledger: Arc::clone(ledger),
        id,
    };
    let body = move || {
        let token = token;
        let ledger = &token.ledger;
        let entry = ledger.entry(token.id);
        let pool = Handle::current();
        match pool {
            Some(_) => entry.pool_runs.fetch_add(1, SeqCst),
            None => {
                if handling_handed_back() {
                    entry.handed_back.store(true, SeqCst);
                }
                entry.outside_runs.fetch_add(1, SeqCst)
            }
        };
        if let Some(pool) = pool {
            submit_children(ledger, &pool, token.id, children);
        }
        match kind {
            Kind::Quick => {}
            Kind::Slow => thread::sleep(Duration::from_micros(200)),
            Kind::Panic => panic!("{DELIBERATE} (job {})", token.id),
        }
        token.id
    };
    (id, Box::new(body))
}

/// A running job submits its children to its own pool, then joins the ones
/// it spawned to join. Nothing submitted from inside may be `Full` or time
/// out; only a shutdown may refuse it.
fn submit_children(
    ledger: &Arc<Ledger>,
    pool: &Handle,
    parent: usize,
    children: Vec<(Kind, ChildVia)>,
) {
    let mut joins = Vec::new();
    let mut batch = Vec::new();
    for (kind, via) in children {
        if via == ChildVia::Batch {
            batch.push(JobSpec {
                kind,
                children: Vec::new(),
            });
            continue;
        }
        let spawned = matches!(via, ChildVia::SpawnJoin | ChildVia::SpawnDetach);
        let (id, body) = new_job(ledger, kind, Vec::new(), parent, spawned);
        let result = match via {
            ChildVia::Execute => pool.execute(as_job(body)).map_err(refused_job),
            ChildVia::TryExecute => pool.try_execute(as_job(body)).map_err(refused_job),
            ChildVia::ExecuteTimeout => pool
                .execute_timeout(as_job(body), Duration::ZERO)
                .map_err(refused_job),
            ChildVia::SpawnJoin | ChildVia::SpawnDetach => match pool.spawn(body) {
                Ok(handle) => {
                    if via == ChildVia::SpawnJoin {
                        joins.push((id, handle));
                    }
                    Ok(())
                }
                Err(err) => Err(refused_spawn(err)),
            },
            ChildVia::Batch => unreachable!("batched children are submitted together"),
        };
        ledger.record_submission(id, result, MayRefuse::Never, OnRefusal::Drop);
    }
    if !batch.is_empty() {
        let submitter = Submitter::Handle(pool);
        submit_batch(ledger, submitter, &batch, parent, OnRefusal::Drop);
    }
    for (id, handle) in joins {
        ledger.record_join(id, handle.join(), true);
    }
}

/// A handle held by a test thread, to be joined later.
struct Held {
    id: usize,
    handle: JoinHandle<usize>,
    as_future: bool,
}

fn join_all(ledger: &Ledger, held: &mut Vec<Held>) {
    for Held {
        id,
        handle,
        as_future,
    } in held.drain(..)
    {
        let result = if as_future {
            block_on(handle)
        } else {
            handle.join()
        };
        ledger.record_join(id, result, false);
    }
}

/// The owner submits through the pool while it lives, then through a handle.
enum Submitter<'a> {
    Pool(&'a ThreadPool),
    Handle(&'a Handle),
}

impl Submitter<'_> {
    fn execute(&self, job: BoxedJob) -> Result<(), SubmitError<BoxedJob>> {
        match self {
            Submitter::Pool(pool) => {
                pool.execute(job);
                Ok(())
            }
            Submitter::Handle(handle) => handle.execute(job),
        }
    }

    fn try_execute(&self, job: BoxedJob) -> Result<(), SubmitError<BoxedJob>> {
        match self {
            Submitter::Pool(pool) => pool.try_execute(job),
            Submitter::Handle(handle) => handle.try_execute(job),
        }
    }

    fn execute_timeout(
        &self,
        job: BoxedJob,
        timeout: Duration,
    ) -> Result<(), SubmitError<BoxedJob>> {
        match self {
            Submitter::Pool(pool) => pool.execute_timeout(job, timeout),
            Submitter::Handle(handle) => handle.execute_timeout(job, timeout),
        }
    }

    fn execute_batch(&self, jobs: Vec<BoxedJob>) -> Result<(), SubmitError<Vec<BoxedJob>>> {
        match self {
            Submitter::Pool(pool) => {
                pool.execute_batch(jobs);
                Ok(())
            }
            Submitter::Handle(handle) => handle.execute_batch(jobs),
        }
    }

    fn spawn(&self, body: Body) -> Result<JoinHandle<usize>, SubmitError<Body>> {
        match self {
            Submitter::Pool(pool) => Ok(pool.spawn(body)),
            Submitter::Handle(handle) => handle.spawn(body),
        }
    }
}

/// Submits a top-level job from a test thread; returns whether it was
/// accepted. A refused job is run here.
fn submit_from_outside(
    ledger: &Arc<Ledger>,
    submitter: Submitter<'_>,
    spec: &JobSpec,
    via: Via,
    bounded: bool,
    held: &mut Vec<Held>,
) -> bool {
    let spawned = matches!(via, Via::Spawn { .. });
    let (id, body) = new_job(ledger, spec.kind, spec.children.clone(), NO_PARENT, spawned);
    let may_refuse = match via {
        Via::TryExecute if bounded => MayRefuse::Full,
        Via::ExecuteTimeout { .. } if bounded => MayRefuse::TimedOut,
        _ => MayRefuse::Never,
    };
    let result = match via {
        Via::Execute => submitter.execute(as_job(body)).map_err(refused_job),
        Via::TryExecute => submitter.try_execute(as_job(body)).map_err(refused_job),
        Via::ExecuteTimeout { zero } => {
            let timeout = if zero { Duration::ZERO } else { SHORT };
            submitter
                .execute_timeout(as_job(body), timeout)
                .map_err(refused_job)
        }
        Via::Spawn { as_future } => match submitter.spawn(body) {
            Ok(handle) => {
                held.push(Held {
                    id,
                    handle,
                    as_future,
                });
                Ok(())
            }
            Err(err) => Err(refused_spawn(err)),
        },
    };
    let accepted = result.is_ok();
    ledger.record_submission(id, result, may_refuse, OnRefusal::CallHere);
    accepted
}

/// Submits `specs` as one `execute_batch` call; returns how many of its
/// jobs were accepted. Each job is recorded as a single submission would be
/// (only a shutdown may refuse one). A refusal must hand back exactly the
/// jobs not accepted, a suffix of the batch, in order: each job that came
/// back is run or dropped (as `on_refusal` says) on its own, and must turn
/// out to be the job expected at its place (its token's drop, at the end of
/// its run or when dropped unrun, is counted on its own ledger entry).
fn submit_batch(
    ledger: &Arc<Ledger>,
    submitter: Submitter<'_>,
    specs: &[JobSpec],
    parent: usize,
    on_refusal: OnRefusal,
) -> usize {
    let (ids, jobs): (Vec<usize>, Vec<BoxedJob>) = specs
        .iter()
        .map(|spec| {
            let (id, body) = new_job(ledger, spec.kind, spec.children.clone(), parent, false);
            (id, as_job(body))
        })
        .unzip();
    let (kind, rest) = match submitter.execute_batch(jobs) {
        Ok(()) => {
            for &id in &ids {
                ledger.record_submission(id, Ok(()), MayRefuse::Never, on_refusal);
            }
            return ids.len();
        }
        Err(err) => (err.kind(), err.into_inner()),
    };
    if rest.is_empty() || rest.len() > ids.len() {
        ledger.violation(format!(
            "a batch of {} jobs {ids:?} was refused as {kind:?} with {} jobs inside",
            ids.len(),
            rest.len()
        ));
    }
    let accepted = ids.len().saturating_sub(rest.len());
    for &id in &ids[..accepted] {
        ledger.record_submission(id, Ok(()), MayRefuse::Never, on_refusal);
    }
    for (at, job) in rest.into_iter().enumerate() {
        let Some(&id) = ids.get(accepted + at) else {
            // Miscounted (reported above): nobody's job to run.
            std::mem::forget(job);
            continue;
        };
        let entry = ledger.entry(id);
        let drops_before = entry.drops.load(SeqCst);
        ledger.record_submission(id, Err((kind, job)), MayRefuse::Never, on_refusal);
        if drops_before != 0 || entry.drops.load(SeqCst) != 1 {
            ledger.violation(format!(
                "batch {ids:?} refused as {kind:?}: the job handed back at place {} of the \
                 refused {} is not job {id} (its drops went {drops_before} -> {})",
                accepted + at,
                ids.len() - accepted,
                entry.drops.load(SeqCst)
            ));
        }
    }
    accepted
}

// ---------------------------------------------------------------------------
// Scoped batches
// ---------------------------------------------------------------------------

/// What one scoped job did, as seen by the checks after its scope.
#[derive(Default)]
struct Track {
    runs: AtomicUsize,
    /// Its body got to the end (just before a deliberate panic).
    finished: AtomicBool,
}

/// What the jobs of one batch share, borrowed from the frame that called
/// `scope`.
struct Batch<'a> {
    ledger: &'a Ledger,
    pool: &'a ThreadPool,
    /// One per job of the batch, in pre-order (a job, then its children's
    /// subtrees), so a subtree's tracks are contiguous.
    tracks: &'a [Track],
    /// Values the batch's jobs returned that have been dropped.
    values_dropped: &'a AtomicUsize,
}

/// What a scoped job returns (a `SpawnJoin` job's joiner gets it): its
/// track, and a borrow of the calling frame's counter, which it bumps when
/// dropped. A value may borrow from the scope, so it must be dropped before
/// `scope` returns, by its joiner or, unjoined, by the pool.
struct ScopedValue<'a> {
    track: usize,
    dropped: &'a AtomicUsize,
}

impl Drop for ScopedValue<'_> {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

/// A scoped job's handle kept for joining, with the job's index and spec.
type ToJoin<'scope, 'env> = (
    usize,
    &'env ScopedJob,
    ScopedJoinHandle<'scope, ScopedValue<'env>>,
);

/// Runs `batch` in one `pool.scope` call over slots owned by this frame, then
/// checks that the scope kept its promises (`std::thread::scope`'s):
/// - it returned only after every job started in it (by the closure or by
///   a scoped job) ran once and finished, each having written its slots
///   exactly once, and the slots of jobs never started are untouched;
/// - every value a job returned was dropped before it returned;
/// - it returned the closure's value if nothing went wrong, panicked with
///   the closure's own payload if the closure panicked, and otherwise
///   panicked with its own message exactly when a job's panic was not
///   joined (joins themselves are checked where they happen).
///
/// `who` names the caller in violations.
fn run_batch(ledger: &Ledger, pool: &ThreadPool, batch: &ScopeBatch, who: &str) {
    let jobs: usize = batch.jobs.iter().map(ScopedJob::job_count).sum();
    let tracks: Vec<Track> = (0..jobs).map(|_| Track::default()).collect();
    let mut slots = vec![0_u32; batch.jobs.iter().map(ScopedJob::slot_count).sum()];
    let values_dropped = AtomicUsize::new(0);
    let env = Batch {
        ledger,
        pool,
        tracks: &tracks,
        values_dropped: &values_dropped,
    };
    let stop = batch.stop();
    let closure_payload = format!(
        "{DELIBERATE} (closure of scope {})",
        ledger.scopes.fetch_add(1, SeqCst)
    );

    let mut rest: &mut [u32] = &mut slots;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            let mut joins = Vec::new();
            let mut track = 0;
            for (i, job) in batch.jobs.iter().enumerate() {
                if stop == Some(i) {
                    panic::panic_any(closure_payload.clone());
                }
                let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(job.slot_count());
                rest = tail;
                joins.extend(start_scoped(s, &env, job, track, chunk));
                track += job.job_count();
            }
            if stop == Some(batch.jobs.len()) {
                panic::panic_any(closure_payload.clone());
            }
            join_scoped(&env, joins, who)
        })
    }));

    let started = batch.started();
    // First what makes `scope` sound: nothing of the batch is still running,
    // and no value is still to be dropped. Jobs never started are the tail
    // of the pre-order, and so are their slots.
    let ran: usize = started.iter().map(ScopedJob::job_count).sum();
    let values: usize = started.iter().map(ScopedJob::value_count).sum();
    let dropped = values_dropped.load(SeqCst);
    let unfinished = tracks[..ran]
        .iter()
        .position(|track| !track.finished.load(SeqCst));
    if unfinished.is_some() || dropped < values {
        // A job (or a value) may still touch this frame, and the scope it
        // captured, once they are gone: recording this and going on would be
        // a use after free.
        let job = unfinished.map_or("every job had finished".to_owned(), |index| {
            format!("scoped job {index} had not finished")
        });
        abort_case(&format!(
            "{who}: when scope returned, {job}, and {dropped} of the {values} values its \
             jobs returned had been dropped"
        ));
    }
    for (index, track) in tracks.iter().enumerate() {
        let (runs, finished) = (track.runs.load(SeqCst), track.finished.load(SeqCst));
        let should_run = index < ran;
        if runs != usize::from(should_run) || finished != should_run {
            ledger.violation(format!(
                "{who}: when scope returned, scoped job {index} had run {runs} times \
                 (finished: {finished}); it was {}started",
                if should_run { "" } else { "never " }
            ));
        }
    }
    let written: usize = started.iter().map(ScopedJob::slot_count).sum();
    for (index, &writes) in slots.iter().enumerate() {
        let expected = u32::from(index < written);
        if writes != expected {
            ledger.violation(format!(
                "{who}: when scope returned, slot {index} had been written {writes} times, \
                 not {expected}"
            ));
        }
    }
    if dropped != values {
        ledger.violation(format!(
            "{who}: when scope returned, {dropped} of the {values} values its jobs returned \
             had been dropped"
        ));
    }

    let expected_joins = started
        .iter()
        .filter(|job| job.via == ScopedVia::SpawnJoin)
        .count();
    let unjoined_panic = started.iter().any(ScopedJob::unjoined_panic);
    match (&outcome, stop.is_some(), unjoined_panic) {
        (Err(payload), true, _) => {
            if payload_text(&**payload) != Some(closure_payload.as_str()) {
                ledger.violation(format!(
                    "{who}: the closure panicked, but scope panicked with {:?}",
                    payload_text(&**payload)
                ));
            }
        }
        (Err(payload), false, true) => {
            if payload_text(&**payload) != Some(SCOPE_PANIC) {
                ledger.violation(format!(
                    "{who}: scope panicked with {:?} for an unjoined panic",
                    payload_text(&**payload)
                ));
            }
        }
        (Ok(joined), false, false) => {
            if *joined != expected_joins {
                ledger.violation(format!(
                    "{who}: scope returned {joined}, but its closure joined {expected_joins}"
                ));
            }
        }
        (Ok(_), ..) => ledger.violation(format!(
            "{who}: scope returned normally, but its closure panicked ({}) or a scoped job's \
             panic went unjoined ({unjoined_panic})",
            stop.is_some()
        )),
        (Err(payload), false, false) => ledger.violation(format!(
            "{who}: scope panicked ({:?}) with no closure panic and every job panic joined",
            payload_text(&**payload)
        )),
    }
}

/// Starts `job` (at `track`) in `s`, borrowing `slots` (its subtree's);
/// returns its handle if it is to be joined.
fn start_scoped<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    env: &'env Batch<'env>,
    job: &'env ScopedJob,
    track: usize,
    slots: &'env mut [u32],
) -> Option<ToJoin<'scope, 'env>> {
    let body = move || {
        // Moved, not reborrowed: the job and its children keep the borrow.
        let slots = slots;
        scoped_body(s, env, job, track, slots)
    };
    match job.via {
        ScopedVia::Execute => {
            s.execute(move || drop(body()));
            None
        }
        ScopedVia::SpawnJoin => Some((track, job, s.spawn(body))),
        ScopedVia::SpawnDrop => {
            drop(s.spawn(body));
            None
        }
    }
}

/// The body of a scoped job: starts its children through the captured
/// scope, writes its own slots, runs its inner scope, joins the children it
/// spawned to join, then returns its value or panics.
fn scoped_body<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    env: &'env Batch<'env>,
    job: &'env ScopedJob,
    track: usize,
    slots: &'env mut [u32],
) -> ScopedValue<'env> {
    let ledger = env.ledger;
    ledger.scoped_runs.fetch_add(1, SeqCst);
    let me = &env.tracks[track];
    if me.runs.fetch_add(1, SeqCst) != 0 {
        ledger.violation(format!("scoped job {track} ran twice"));
    }
    if Handle::current().is_none() {
        ledger.violation(format!("scoped job {track} runs outside the pool"));
    }
    let (mine, mut rest) = slots.split_at_mut(job.slots);
    let mut joins = Vec::new();
    let mut child_track = track + 1;
    for child in &job.children {
        let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(child.slot_count());
        rest = tail;
        joins.extend(start_scoped(s, env, child, child_track, chunk));
        child_track += child.job_count();
    }
    if job.kind == Kind::Slow {
        thread::sleep(Duration::from_micros(200));
    }
    for slot in mine.iter_mut() {
        if *slot != 0 {
            ledger.violation(format!("scoped job {track} found its slot written"));
        }
        *slot += 1;
    }
    if let Some(inner) = &job.inner {
        run_batch(ledger, env.pool, inner, "a scope inside a scoped job");
    }
    join_scoped(env, joins, "a scoped job");
    me.finished.store(true, SeqCst);
    if job.panics() {
        ledger.scoped_panics.fetch_add(1, SeqCst);
        panic!("{DELIBERATE} (scoped job {track})");
    }
    ScopedValue {
        track,
        dropped: env.values_dropped,
    }
}

/// Joins scoped handles, oldest first, checking each result against its
/// job; returns how many it joined.
fn join_scoped(env: &Batch<'_>, joins: Vec<ToJoin<'_, '_>>, who: &str) -> usize {
    let count = joins.len();
    for (track, job, handle) in joins {
        // `is_finished` first: the job sets `finished` before its result, so
        // once the result is there, so is `finished`.
        if handle.is_finished() && !env.tracks[track].finished.load(SeqCst) {
            env.ledger.violation(format!(
                "{who}: scoped job {track}'s handle is finished, but the job is not"
            ));
        }
        match handle.join() {
            Ok(value) => {
                if value.track != track || job.panics() {
                    env.ledger.violation(format!(
                        "{who}: scoped job {track} ({:?}) joined Ok with job {}'s value",
                        job.kind, value.track
                    ));
                }
            }
            Err(err) => {
                let deliberate = err.is_panic()
                    && payload_text(&*err.into_panic()).is_some_and(|t| t.contains(DELIBERATE));
                if !deliberate || !job.panics() {
                    env.ledger.violation(format!(
                        "{who}: scoped job {track} ({:?}) joined as an error that is not its \
                         own panic",
                        job.kind
                    ));
                }
            }
        }
    }
    count
}

// ---------------------------------------------------------------------------
// Workers
// ---------------------------------------------------------------------------

/// The pool's worker threads, counted through its hooks: the name hook is
/// called (on the spawning thread) for every worker before it is spawned, so
/// a worker is known even before it has run its start hook.
#[derive(Default)]
struct Workers {
    counts: Mutex<WorkerCounts>,
    changed: Condvar,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WorkerCounts {
    /// Distinct worker indices named (indices are never reused).
    named: usize,
    started: usize,
    stopped: usize,
}

impl Workers {
    fn update(&self, change: impl FnOnce(&mut WorkerCounts)) {
        change(&mut self.counts.lock().unwrap());
        self.changed.notify_all();
    }

    fn counts(&self) -> WorkerCounts {
        *self.counts.lock().unwrap()
    }

    /// Waits until every worker ever named has started and stopped (after a
    /// timed-out `shutdown_timeout`, the detached workers drain on their
    /// own); false after [`HANG`].
    fn wait_all_stopped(&self) -> bool {
        let all_stopped = |c: &mut WorkerCounts| c.named == c.started && c.started == c.stopped;
        let (mut counts, timeout) = self
            .changed
            .wait_timeout_while(self.counts.lock().unwrap(), HANG, |c| !all_stopped(c))
            .unwrap();
        all_stopped(&mut counts) && !timeout.timed_out()
    }
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

/// `wait_idle`, then: every job accepted before the call (and every child
/// such a job submitted) ran exactly once and finished, and the counters
/// cover at least those jobs and at most the runs recorded. When `quiet`
/// (no thread is submitting), every job so far is covered and the counters
/// must be exact, the panic handler must have seen exactly the panics of
/// `execute`d jobs (a spawned job's panic goes to its handle), and the pool
/// must report the size it was last set to.
/// `handled` counts the panic handler's calls, if one is installed.
fn wait_idle_and_check(
    ledger: &Ledger,
    pool: &ThreadPool,
    handled: Option<&AtomicUsize>,
    quiet: Option<usize>,
) {
    let accepted_before: Vec<bool> = (0..ledger.created())
        .map(|id| ledger.entry(id).accepted.load(SeqCst))
        .collect();
    pool.wait_idle();
    let completed = pool.completed_count();
    let panicked = pool.panic_count();
    let handler_calls = handled.map(|calls| calls.load(SeqCst));
    let total_runs = ledger.total_pool_runs();
    // Only the owner runs scopes, and each has returned (so its jobs have
    // all finished) before the owner got here.
    let scoped_runs = ledger.scoped_runs.load(SeqCst);
    let scoped_panics = ledger.scoped_panics.load(SeqCst);

    let was_accepted_before = |id: usize| accepted_before.get(id).copied().unwrap_or(false);
    let mut covered = scoped_runs;
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let parent = entry.parent.load(SeqCst);
        let is_covered = quiet.is_some()
            || was_accepted_before(id)
            || (parent != NO_PARENT && was_accepted_before(parent));
        if !is_covered || entry.returned.load(SeqCst) {
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
    if completed + panicked > total_runs + scoped_runs {
        ledger.violation(format!(
            "after wait_idle: completed {completed} + panicked {panicked} > {total_runs} runs \
             + {scoped_runs} scoped runs"
        ));
    }
    if let Some(size) = quiet {
        let panicking = |id: &usize| ledger.entry(*id).panics.load(SeqCst);
        let runs = |id: usize| ledger.entry(id).pool_runs.load(SeqCst);
        let panicking_runs: usize = (0..ledger.created()).filter(panicking).map(runs).sum();
        let handled_runs: usize = (0..ledger.created())
            .filter(panicking)
            .filter(|&id| !ledger.entry(id).spawned.load(SeqCst))
            .map(runs)
            .sum();
        // A scoped job's panic goes to the scope, never to the handler.
        if panicked != panicking_runs + scoped_panics
            || completed != total_runs - panicking_runs + scoped_runs - scoped_panics
        {
            ledger.violation(format!(
                "idle counters inexact: completed {completed}, panicked {panicked}; \
                 ran {total_runs} of which {panicking_runs} panicking, and {scoped_runs} \
                 scoped jobs of which {scoped_panics} panicking"
            ));
        }
        if pool.queued_count() != 0 || pool.active_count() != 0 {
            ledger.violation("idle pool reports queued or active jobs".to_owned());
        }
        if handler_calls.is_some_and(|calls| calls != handled_runs) {
            ledger.violation(format!(
                "panic handler called {handler_calls:?} times for {handled_runs} panics \
                 of executed jobs ({panicked} panics in all)"
            ));
        }
        if pool.num_threads() != size {
            ledger.violation(format!(
                "num_threads() is {} but the pool was set to {size}",
                pool.num_threads()
            ));
        }
    }
}

/// Right after the pool's end returned (unless a `shutdown_timeout` timed
/// out): every worker ever started has stopped, and every job that ran in
/// the pool ran once and has finished; an accepted job that has not run must
/// have been handed back (checked once the owner has dealt with those).
fn check_at_end(ledger: &Ledger, workers: &Workers, may_hand_back: bool) {
    let counts = workers.counts();
    if counts.named != counts.started || counts.started != counts.stopped {
        ledger.violation(format!(
            "not every worker had stopped when the pool's end returned: {counts:?}"
        ));
    }
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let runs = entry.pool_runs.load(SeqCst);
        let accepted = entry.accepted.load(SeqCst);
        let finished = entry.finished.load(SeqCst);
        let ok = match runs {
            0 => !accepted || may_hand_back,
            1 => finished,
            _ => false,
        };
        if !ok {
            ledger.violation(format!(
                "at the end: job {id} accepted={accepted} pool_runs={runs} finished={finished}"
            ));
        }
    }
}

/// After every thread is done: each job was accepted and ran once in the
/// pool, or was accepted and handed back (never ran there, and ran once
/// outside if the owner ran it), or was refused and came back; each closure
/// was dropped exactly once; each join saw what happened to its job; and,
/// unless a `shutdown_timeout` timed out, nothing ran after the pool's end
/// returned.
fn final_check(ledger: &Ledger, runs_at_end: Option<usize>) {
    let total = ledger.total_pool_runs();
    if let Some(runs_at_end) = runs_at_end {
        if total != runs_at_end {
            ledger.violation(format!(
                "{} job runs happened after the pool's end returned",
                total - runs_at_end
            ));
        }
    }
    for id in 0..ledger.created() {
        let entry = ledger.entry(id);
        let accepted = entry.accepted.load(SeqCst);
        let returned = entry.returned.load(SeqCst);
        let handed_back = entry.handed_back.load(SeqCst);
        let runs = entry.pool_runs.load(SeqCst);
        let outside = entry.outside_runs.load(SeqCst);
        let drops = entry.drops.load(SeqCst);
        let finished = entry.finished.load(SeqCst);
        let ok = match (accepted, returned, handed_back) {
            (true, false, false) => runs == 1 && outside == 0 && finished,
            (true, false, true) => runs == 0 && outside <= 1,
            (false, true, false) => runs == 0 && outside <= 1,
            _ => false,
        };
        let join = entry.join.load(SeqCst);
        let join_ok = match join {
            JOIN_NONE => true,
            JOIN_OK | JOIN_PANIC => runs + outside == 1,
            _ => handed_back && runs == 0 && (entry.joined_inside.load(SeqCst) || outside == 0),
        };
        if !ok || drops != 1 || !join_ok {
            ledger.violation(format!(
                "job {id}: accepted={accepted} returned={returned} handed_back={handed_back} \
                 pool_runs={runs} outside_runs={outside} finished={finished} drops={drops} \
                 join={join} (0 none, 1 ok, 2 panic, 3 cancelled)"
            ));
        }
    }
}

// ---------------------------------------------------------------------------
// Running a scenario
// ---------------------------------------------------------------------------

fn run(scenario: &Scenario) -> Vec<String> {
    let ledger = Arc::new(Ledger::new(scenario.max_jobs()));
    let workers = Arc::new(Workers::default());
    let handled = Arc::new(AtomicUsize::new(0));
    let bounded = scenario.capacity.is_some();

    let (on_name, on_start, on_stop) = (
        Arc::clone(&workers),
        Arc::clone(&workers),
        Arc::clone(&workers),
    );
    let named = Mutex::new(HashSet::new());
    let mut builder = Builder::new()
        .num_threads(scenario.pool_threads)
        .thread_name(move |index| {
            if named.lock().unwrap().insert(index) {
                on_name.update(|c| c.named += 1);
            }
            format!("weft-{index}")
        })
        .on_thread_start(move |_| on_start.update(|c| c.started += 1))
        .on_thread_stop(move |_| on_stop.update(|c| c.stopped += 1));
    if let Some(capacity) = scenario.capacity {
        builder = builder.queue_capacity(capacity);
    }
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
                let mut held = Vec::new();
                for (index, phase) in scenario.phases.iter().enumerate() {
                    barrier.wait(); // phase starts
                    for op in &phase.helpers[helper] {
                        let submitter = Submitter::Handle(&handle);
                        match op {
                            HelperOp::Submit(spec, via) => {
                                let held = &mut held;
                                submit_from_outside(ledger, submitter, spec, *via, bounded, held);
                            }
                            HelperOp::Batch(specs) => {
                                let on_refusal = OnRefusal::CallHere;
                                submit_batch(ledger, submitter, specs, NO_PARENT, on_refusal);
                            }
                        }
                    }
                    // In the last phase this may wait for the owner to run
                    // or drop a job that shutdown_now handed back.
                    join_all(ledger, &mut held);
                    if index != last_phase {
                        barrier.wait(); // phase ends: the owner checks
                    }
                }
            });
        }

        let mut pool = Some(pool);
        let mut size = scenario.pool_threads;
        let mut held = Vec::new();
        let mut runs_at_end = None;
        for (index, phase) in scenario.phases.iter().enumerate() {
            barrier.wait();
            let end_at =
                (index == last_phase).then(|| scenario.end_at.index(phase.owner.len() + 1));
            for (at, op) in phase.owner.iter().enumerate() {
                if end_at == Some(at) {
                    let live = pool.take().unwrap();
                    runs_at_end = Some(end_pool(&ledger, live, scenario, &workers));
                }
                match (op, &pool) {
                    (OwnerOp::Submit(spec, via), Some(live)) => {
                        let submitter = Submitter::Pool(live);
                        submit_from_outside(&ledger, submitter, spec, *via, bounded, &mut held);
                    }
                    (OwnerOp::Submit(spec, via), None) => {
                        let submitter = Submitter::Handle(&handle);
                        if submit_from_outside(&ledger, submitter, spec, *via, bounded, &mut held) {
                            ledger.violation("a job was accepted after the pool's end".to_owned());
                        }
                    }
                    (OwnerOp::Batch(specs), Some(live)) => {
                        let submitter = Submitter::Pool(live);
                        submit_batch(&ledger, submitter, specs, NO_PARENT, OnRefusal::CallHere);
                    }
                    (OwnerOp::Batch(specs), None) => {
                        let submitter = Submitter::Handle(&handle);
                        let on_refusal = OnRefusal::CallHere;
                        if submit_batch(&ledger, submitter, specs, NO_PARENT, on_refusal) != 0 {
                            ledger.violation(
                                "a batch's job was accepted after the pool's end".to_owned(),
                            );
                        }
                    }
                    (OwnerOp::Scope(batch), Some(live)) => {
                        run_batch(&ledger, live, batch, "the owner's scope")
                    }
                    (OwnerOp::WaitIdle, Some(live)) => {
                        wait_idle_and_check(&ledger, live, handled, None)
                    }
                    (OwnerOp::JoinSpawned, _) => join_all(&ledger, &mut held),
                    (OwnerOp::Resize(n), Some(live)) => {
                        match live.set_num_threads(*n) {
                            Ok(()) if *n > 0 => size = *n,
                            Err(BuildError::ZeroThreads) if *n == 0 => {}
                            other => ledger.violation(format!("set_num_threads({n}): {other:?}")),
                        }
                        if live.num_threads() != size {
                            ledger.violation(format!(
                                "num_threads() is {} right after setting {size}",
                                live.num_threads()
                            ));
                        }
                    }
                    (OwnerOp::Scope(_) | OwnerOp::WaitIdle | OwnerOp::Resize(_), None) => {}
                }
            }
            if index != last_phase {
                barrier.wait();
                let live = pool.as_ref().unwrap();
                wait_idle_and_check(&ledger, live, handled, Some(size));
            } else if let Some(live) = pool.take() {
                // The end was placed after the last op.
                runs_at_end = Some(end_pool(&ledger, live, scenario, &workers));
            }
        }
        join_all(&ledger, &mut held);
        runs_at_end.expect("the pool was ended")
    });
    // The scope has joined the helpers: every submission and join is
    // recorded. After a timed-out shutdown_timeout the detached workers may
    // still be draining; wait for them.
    if !workers.wait_all_stopped() {
        ledger.violation(format!(
            "the workers never all stopped: {:?}",
            workers.counts()
        ));
    }
    final_check(&ledger, runs_at_end);
    drop(handle);
    let violations = std::mem::take(&mut *ledger.violations.lock().unwrap());
    violations
}

/// Ends the pool as the scenario says, checks the ledger at that moment, and
/// deals with any handed-back jobs. Returns the number of pool runs when the
/// end returned, or `None` if a `shutdown_timeout` timed out (the detached
/// workers keep running jobs).
fn end_pool(
    ledger: &Ledger,
    pool: ThreadPool,
    scenario: &Scenario,
    workers: &Workers,
) -> Option<usize> {
    ledger.ending_begun.store(true, SeqCst);
    let mut handed_back = None;
    let mut drained = true;
    match scenario.ending {
        Ending::Shutdown => pool.shutdown(),
        Ending::Drop => drop(pool),
        Ending::ShutdownNow { run_mask } => handed_back = Some((pool.shutdown_now(), run_mask)),
        Ending::ShutdownTimeout { zero } => {
            let timeout = if zero { Duration::ZERO } else { HANG };
            if let Err(err) = pool.shutdown_timeout(timeout) {
                if !zero {
                    ledger.violation(format!("shutdown_timeout({timeout:?}) failed: {err}"));
                }
                drained = false;
            }
        }
    }
    let runs_at_end = drained.then(|| {
        check_at_end(ledger, workers, handed_back.is_some());
        ledger.total_pool_runs()
    });
    if let Some((jobs, run_mask)) = handed_back {
        handle_handed_back(ledger, jobs, run_mask);
    }
    runs_at_end
}

/// Runs or drops each job `shutdown_now` handed back, as the mask says, and
/// checks that exactly those jobs record having been handed back.
fn handle_handed_back(ledger: &Ledger, jobs: Vec<Job>, run_mask: u64) {
    let count = jobs.len();
    let mut ran = 0;
    HANDLING_HANDED_BACK.with(|flag| flag.set(true));
    for (i, job) in jobs.into_iter().enumerate() {
        if run_mask >> (i % 64) & 1 == 1 {
            ran += 1;
            // An executed job's panic reaches us; a spawned one's its handle.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
        } else {
            drop(job);
        }
    }
    HANDLING_HANDED_BACK.with(|flag| flag.set(false));
    let marked: Vec<usize> = (0..ledger.created())
        .filter(|&id| ledger.entry(id).handed_back.load(SeqCst))
        .collect();
    let marked_ran = marked
        .iter()
        .filter(|&&id| ledger.entry(id).outside_runs.load(SeqCst) == 1)
        .count();
    if marked.len() != count || marked_ran != ran {
        ledger.violation(format!(
            "shutdown_now handed back {count} jobs (ran {ran}), but {} jobs record being \
             handed back ({marked_ran} ran)",
            marked.len()
        ));
    }
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
            // A scope's own panic is always caught and checked by
            // `run_batch`.
            let quiet = payload_text(info.payload())
                .is_some_and(|t| t.contains(DELIBERATE) || t == SCOPE_PANIC);
            if !quiet {
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
                    // Not `eprintln!`: this thread inherits the test's
                    // output capture, which the abort would lose.
                    let _ = writeln!(
                        std::io::stderr(),
                        "ledger case hung for over {HANG:?}:\n{scenario}"
                    );
                    std::process::abort();
                }
            }
        });
    });
}

/// For a violation after which the case cannot safely go on: aborts the
/// process with the message and the running scenario (no shrinking).
fn abort_case(message: &str) -> ! {
    let scenario = CURRENT_CASE
        .lock()
        .map(|case| case.as_ref().map(|(_, scenario)| scenario.clone()))
        .unwrap_or_default()
        .unwrap_or_default();
    // Not `eprintln!`: the test harness captures it, and the abort would
    // lose it.
    let _ = writeln!(
        std::io::stderr(),
        "ledger violation, unsafe to go on: {message}\nin the case:\n{scenario}"
    );
    std::process::abort();
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
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
        support::case_passed("ledger_holds_for_random_operation_sequences", &PASSED, cases());
    }
}

/// Cases of the property test that passed so far (`support::case_passed`).
static PASSED: AtomicUsize = AtomicUsize::new(0);
