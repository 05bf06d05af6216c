//! Fuzz target `ops`: random operation sequences against a real pool, checked
//! against the ledger (DESIGN.md, "The ledger") with a record per job.
//!
//! One input is a small program: how to build the pool (by which builder
//! constructor, 1–3 workers, an unbounded or a bounded queue of capacity
//! 1–4, the stack size, which hooks and panic handler, whether those panic), 0–2 submitter threads that hold `Handle`s,
//! up to 64 operations run by the owner thread, and one terminal operation
//! placed anywhere in the sequence. The operations submit jobs by every route
//! (`execute`, `try_execute`, `execute_timeout` with tiny timeouts, `spawn`;
//! on the pool, through handles, from submitter threads, in bursts, and from
//! inside jobs, including jobs that spawn children and join them), join or
//! await or detach `JoinHandle`s, fill a bounded queue while every worker is
//! held (`Probe`), resize the pool (`set_num_threads`), wait for idleness,
//! read the metrics, and run scoped batches (`Scope`: one `pool.scope` call
//! whose jobs borrow slots of the owner's stack, start children through the
//! scope they captured, run a scope of their own on their worker, and panic
//! or not, joined or not). The terminal is `shutdown`, `drop`,
//! `shutdown_now` (the handed-back jobs are then run or dropped) or
//! `shutdown_timeout` (tiny or generous), performed by the owner, by a
//! submitter thread while the owner goes on, or from inside one of the
//! pool's own jobs. Operations after the
//! terminal still submit through handles, so submissions race the shutdown.
//!
//! Every job gets a record (`Rec`): its status as its submitter saw it
//! (pending / accepted / rejected, and why), how often it ran (in the pool,
//! or through `Job::run` by whoever called `shutdown_now`), whether it
//! finished, how often its closure was dropped unrun (a guard inside the
//! closure counts that, and tells a drop by the `shutdown_now` caller from a
//! drop anywhere else), and what its `JoinHandle` said. The checks:
//!
//! * accepted → ran exactly once in the pool, or (after `shutdown_now`) was
//!   handed back: never ran in the pool, and ran exactly once if its caller
//!   ran it, or was dropped exactly once by that caller; the number of
//!   handed-back jobs matches;
//! * rejected → it never ran, was not dropped by the pool, and dropping what
//!   `into_inner` returned is what drops it; `ShutDown` only once shutdown
//!   began, `Full` only from `try_execute` and `TimedOut` only from
//!   `execute_timeout`, both only on a bounded queue and never for a
//!   submission from one of the pool's own workers;
//! * with every worker held and the queue still (`Probe`), `try_execute` and
//!   `execute_timeout` accept exactly while fewer than `capacity` jobs wait,
//!   and `queued_count` is exact;
//! * a `JoinHandle` gives the job's own value, or its deliberate panic, or
//!   (only after `shutdown_now`, for a handed-back job) a cancellation;
//!   every handle resolves (a hang is the watchdog's);
//! * a job runs at most once, never after it was rejected, never starts or
//!   is still running after `shutdown` / `drop` / `shutdown_now` / a
//!   `shutdown_timeout` that returned `Ok` (one that timed out excepted:
//!   then the detached workers must still finish every accepted job and
//!   exit). A shutdown from inside a job may leave running exactly the jobs
//!   suspended beneath the caller on its stack, the jobs inside a join on
//!   one of those, and the jobs beneath such a joiner on its stack, and so
//!   on (`Ctx::suspended_under`); all of them must finish once the input
//!   has settled;
//! * `wait_idle` / a successful `wait_idle_timeout` returns only once every
//!   job accepted before the call (and every child those accepted) finished;
//!   at a quiescent point the counters are exact, and after a shrink the
//!   surplus workers retire;
//! * when `scope` returns or panics, every job started in it (by its
//!   closure or by a scoped job) has run exactly once and finished, having
//!   written each of its borrowed slots exactly once (the slots of jobs
//!   never started are untouched), and every value a job returned has been
//!   dropped; `scope` resumed the closure's own panic if the closure
//!   panicked, else panicked with its own message exactly when a job's
//!   panic went unjoined, else returned the closure's value; a joined
//!   panic comes back as `Err(is_panic)` with its payload. Scoped jobs
//!   count in `completed_count` / `panic_count`, never in the panic
//!   handler's calls;
//! * every error met is an `Error + Send + Sync` that displays (one message
//!   per `SubmitErrorKind`; a `SubmitError`'s `Debug` names its kind without
//!   `F: Debug`); a panic's `JoinError` gives its payload by `into_panic` or
//!   `try_into_panic`, a cancellation's `try_into_panic` gives the error
//!   back; a `ShutdownTimedOut` counts no more jobs than were unfinished;
//! * when a shutdown returns, every worker ran its start and stop hooks and
//!   has exited (a thread-local's destructor counts exits), except, after a
//!   shutdown from inside a job, the workers running the jobs it may leave
//!   running (its own among them), which must exit later; worker indices are
//!   never reused.
//!
//! A failed check is a panic that is not one of the deliberate job panics, so
//! libFuzzer's panic hook aborts the process there (a crash), after this
//! target's hook has printed the decoded input. A hang becomes a crash through
//! the watchdog thread (see `start_watchdog`); every wait in this file that
//! depends on the pool is unbounded on purpose, so that a lost job or a lost
//! wake-up shows up as a hang.
//!
//! Job panics are deliberate and caught by the pool (`catch_unwind`), which
//! needs unwinding: cargo-fuzz builds with `panic=unwind` (it sets no
//! `-Cpanic`), but libfuzzer-sys installs a panic hook that aborts on *every*
//! panic, caught or not. `init` wraps that hook: panics whose payload is one
//! of this file's marker types return quietly and unwind; anything else goes
//! on to libFuzzer's hook and aborts. So do the two panics a scope is
//! expected to raise (its closure's `ClosurePanic`, and its own "a scoped
//! job panicked"), which `run_scope` catches and checks.

#![no_main]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use weft::{
    BuildError, Builder, Handle, Job, JoinError, JoinHandle, Scope, ScopedJoinHandle,
    ShutdownTimedOut, SubmitError, SubmitErrorKind, ThreadPool,
};

/// Operations per input (longer inputs are truncated).
const MAX_OPS: usize = 64;
/// Jobs a scope's closure starts, and children a scoped job starts.
const MAX_SCOPED: usize = 3;
const MAX_CHILDREN: usize = 2;
/// Jobs per `Burst`.
const MAX_BURST: u8 = 4;
/// Longest sleep in a job or a `Pause`, in microseconds.
const MAX_SLEEP_US: u8 = 50;
/// The most workers a pool is ever set to (by the builder or a resize).
const MAX_THREADS: usize = 3;
/// The deadline of a "generous" `shutdown_timeout`: longer than the watchdog's
/// limit, so a shutdown that cannot finish shows up as a hang.
const GENEROUS: Duration = Duration::from_secs(60);
/// Worker threads are named `{WORKER_PREFIX}{i}`; jobs check it.
const WORKER_PREFIX: &str = "fuzz-worker-";
/// Default hang limit for one input; `WEFT_FUZZ_HANG_SECS` overrides it.
const DEFAULT_HANG_SECS: u64 = 10;

// ---------------------------------------------------------------------------
// The input language

#[derive(Arbitrary, Debug, Clone)]
struct Input {
    /// Worker threads: `1 + threads % 3`.
    threads: u8,
    /// Queue capacity: `capacity % 5`, where 0 means unbounded.
    capacity: u8,
    /// Submitter threads: `submitters % 3`.
    submitters: u8,
    handler: HandlerMode,
    /// `on_thread_start` / `on_thread_stop` panic after recording.
    hooks_panic: bool,
    /// How the builder is made: `Builder::new()`, `ThreadPool::builder()`
    /// or `Builder::default()` (`builder % 3`); and the workers' stack size
    /// (`builder / 3 % 4`): the platform's, or 2, 3 or 4 MiB.
    builder: u8,
    ops: Vec<Op>,
    /// The terminal runs before `ops[terminal_at % (ops.len() + 1)]`.
    terminal_at: u8,
    terminal: Terminal,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum HandlerMode {
    /// No panic handler: the pool drops the payload itself.
    None,
    /// Counts each panic, then drops the payload.
    Count,
    /// Counts, drops the payload, then panics itself.
    CountThenPanic,
}

/// How a job is submitted.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Execute,
    TryExecute,
    /// `execute_timeout` with a timeout of `us` microseconds.
    ExecuteTimeout(u8),
    /// `spawn`. The owner and the submitter threads keep the `JoinHandle`;
    /// a job's `Children` drop theirs at once (detached).
    Spawn,
    /// `execute_batch`: a batch of one job; a `Burst`'s jobs, or a job's
    /// `Children`, go in one batch. On a `Handle`, a shutdown may refuse the
    /// batch part-way: the jobs not accepted come back, in order.
    Batch,
}

/// What a job does when it runs.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Ok,
    Panic,
    /// Panics with a payload whose `Drop` panics too. (Spawned, it becomes
    /// `Panic`: a joiner would have to drop the payload.)
    PanicBomb,
    Yield,
    /// Sleeps `us % (MAX_SLEEP_US + 1)` microseconds.
    Sleep(u8),
    /// Sleeps `us` microseconds: only the leaves of `SpawnJoin`.
    #[arbitrary(skip)]
    LongSleep(u8),
    /// Submits `n % 3` children by `via` through `Handle::current()` and does
    /// not wait for them; children of a job with `depth % 2 == 1` have
    /// children themselves, one level down (so at most 1 + 2 + 4 jobs). With
    /// `then_panic` the parent panics after submitting (its children must
    /// still run) and one leaf child panics.
    Children {
        n: u8,
        depth: u8,
        then_panic: bool,
        via: Via,
    },
    /// Spawns `n % 3` children through `Handle::current()` and joins them
    /// oldest first (on a worker, a join runs queued jobs while it waits,
    /// newest first: so a younger sibling may run while an older one waits
    /// in the queue), or with `detach` drops their handles; nesting and
    /// `then_panic` as `Children`, but the leaves sleep `leaf_us` µs (up to
    /// 255: the window in which a `shutdown_now` can take an older sibling
    /// from under a waiting parent).
    SpawnJoin {
        n: u8,
        depth: u8,
        then_panic: bool,
        detach: bool,
        leaf_us: u8,
    },
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    /// The owner submits on the pool (after the terminal: on its handle).
    Owner { via: Via, kind: Kind },
    /// The owner submits through its handle.
    OwnerHandle { via: Via, kind: Kind },
    /// A submitter thread (`sub % submitters`) submits through its handle,
    /// asynchronously to the owner. Without submitters: the owner's handle.
    Submit { sub: u8, via: Via, kind: Kind },
    /// `n % (MAX_BURST + 1)` submissions back to back, as `Submit` (by
    /// `Via::Batch`: one batch of that many jobs).
    Burst {
        sub: u8,
        n: u8,
        via: Via,
        kind: Kind,
    },
    /// Takes one of the owner's `JoinHandle`s (`which % len`) and resolves it.
    Join { which: u8, how: JoinHow },
    /// Bounded queue only: holds every worker in a gate job, then submits
    /// `capacity + 1 + extra % 3` jobs with `try_execute` (alternating with
    /// `execute_timeout(timeout_us µs)` if given) and checks that exactly the
    /// free slots were accepted.
    Probe { extra: u8, timeout_us: Option<u8> },
    /// `set_num_threads(n % 4)` (0 must fail). With `settle` the owner waits
    /// for the pool to reach its new size (started / retired workers).
    Resize { n: u8, settle: bool },
    /// `pool.wait_idle()`. With `quiesce` the submitters are parked first
    /// (a barrier), so the counters can be checked exactly.
    WaitIdle { quiesce: bool },
    /// `pool.wait_idle_timeout(us µs)`.
    WaitIdleTimeout(u8),
    /// Reads every metric and checks what a snapshot can promise.
    Metrics,
    /// The owner sleeps `us % (MAX_SLEEP_US + 1)` microseconds.
    Pause(u8),
    /// `pool.scope` over slots of a `Vec` on the owner's stack (skipped after
    /// the terminal: `scope` borrows the pool). The closure starts `jobs`
    /// (the first `MAX_SCOPED`), each lent its own run of slots, then joins
    /// the `SpawnJoin` ones, oldest first (with `newest_first`, newest
    /// first). With `closure_panic: Some(at)` it panics instead just before
    /// starting job `at % (jobs + 1)` (at `jobs`: before joining any).
    Scope {
        jobs: Vec<ScopedJob>,
        closure_panic: Option<u8>,
        newest_first: bool,
    },
}

/// How a scoped job is started: by the scope's closure, or by a scoped job
/// through the scope it captured. (One byte of input, as is `ScopedKind`:
/// see their `Arbitrary` impls.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopedVia {
    /// `Scope::execute`: a panic is nobody's to join, so the scope panics.
    Execute,
    /// `Scope::spawn`; whoever started it joins the handle (the closure
    /// before it returns, a scoped job before its body ends).
    SpawnJoin,
    /// `Scope::spawn`; the handle is dropped at once, unjoined.
    SpawnDrop,
}

/// What a scoped job does besides writing its slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScopedKind {
    Ok,
    Panic,
    /// A `Bomb` panic, for `Execute` (spawned: a plain panic; its joiner, or
    /// whoever drops its handle, would drop the payload).
    PanicBomb,
    Yield,
    /// Sleeps `us % (MAX_SLEEP_US + 1)` µs before writing its slots.
    Sleep(u8),
}

// A derived enum takes four bytes of input for its variant; an input holds a
// scoped batch of up to 9 jobs, so these take one.
impl<'a> Arbitrary<'a> for ScopedVia {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u8::arbitrary(u)? % 3 {
            0 => ScopedVia::Execute,
            1 => ScopedVia::SpawnJoin,
            _ => ScopedVia::SpawnDrop,
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

impl<'a> Arbitrary<'a> for ScopedKind {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let byte = u8::arbitrary(u)?;
        Ok(match byte % 5 {
            0 => ScopedKind::Ok,
            1 => ScopedKind::Panic,
            2 => ScopedKind::PanicBomb,
            3 => ScopedKind::Yield,
            _ => ScopedKind::Sleep(byte / 5),
        })
    }

    fn size_hint(_depth: usize) -> (usize, Option<usize>) {
        (1, Some(1))
    }
}

/// A scoped job without children: writes `1 + slots % 3` slots.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct ScopedLeaf {
    via: ScopedVia,
    kind: ScopedKind,
    slots: u8,
}

/// A scoped job started by a scope's closure. It starts its first
/// `MAX_CHILDREN` children through the scope it captured, writes its slots,
/// may run a scope of its own on its worker (`nested`: only in the owner's
/// scope), may submit a plain job through `Handle::current()` (detached),
/// joins its `SpawnJoin` children, and panics last if its kind says so.
#[derive(Arbitrary, Debug, Clone)]
struct ScopedJob {
    job: ScopedLeaf,
    children: Vec<ScopedLeaf>,
    nested: Option<Nested>,
    submit: Option<(Via, Kind)>,
}

/// A scope run by a scoped job on its worker, which helps while it waits:
/// the owner's batch again (its first `1 + n % len` jobs, nothing nested),
/// over slots of the job's own frame; the closure panics as in `Op::Scope`.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Nested {
    n: u8,
    closure_panic: Option<u8>,
}

/// How the owner resolves a `JoinHandle` it holds.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum JoinHow {
    /// `JoinHandle::join`.
    Join,
    /// `.await`, driven by a minimal executor that parks the thread; with
    /// `noop_first` it is first polled once with a waker that does nothing.
    Await { noop_first: bool },
    /// Drops the handle: the job still runs (the final check sees it did).
    Detach,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Terminal {
    how: How,
    place: Place,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// `pool.shutdown()`.
    Shutdown,
    /// `drop(pool)`.
    Drop,
    /// `pool.shutdown_now()`; handed-back job `i` is run with `Job::run` if
    /// bit `i % 8` of `run_mask` is set, else dropped.
    ShutdownNow { run_mask: u8 },
    /// `pool.shutdown_timeout`: `us` microseconds, or with `generous`
    /// `GENEROUS`.
    ShutdownTimeout { us: u8, generous: bool },
}

/// Which thread performs the terminal.
#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// The owner.
    Owner,
    /// A job of the pool, which takes the pool out of a shared slot.
    InJob { sleep_first: bool },
    /// A submitter thread (`sub % submitters`), while the owner carries on.
    /// Without submitters this is `Owner`.
    OnSubmitter { sub: u8 },
}

// ---------------------------------------------------------------------------
// Panic payloads that are deliberate (the hook lets them unwind quietly)

/// The payload of every deliberate panic.
struct Deliberate;

/// A deliberate panic payload whose destructor panics (with `Deliberate`).
/// A zero-sized type: forgetting one leaks nothing.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        // Never dropped during an unwind: the pool drops payloads normally.
        if !thread::panicking() {
            panic::panic_any(Deliberate);
        }
    }
}

fn is_deliberate(payload: &(dyn Any + Send)) -> bool {
    payload.is::<Deliberate>() || payload.is::<Bomb>()
}

/// The payload of a scope closure's deliberate panic: the scope's number, so
/// that the panic `scope` resumes can be told to be that very one.
struct ClosurePanic(usize);

/// What `scope` panics with when a scoped job's panic was never joined.
const SCOPE_PANIC: &str = "a scoped job panicked";

/// A panic `run_scope` expects from a scope (it catches and checks each).
fn is_scope_panic(payload: &(dyn Any + Send)) -> bool {
    payload.is::<ClosurePanic>() || payload.downcast_ref::<&str>() == Some(&SCOPE_PANIC)
}

// ---------------------------------------------------------------------------
// The ledger

const PENDING: u8 = 0;
const ACCEPTED: u8 = 1;
const REJECTED: u8 = 2;

/// Everything known about one job.
struct Rec {
    id: usize,
    /// The job that submitted this one, if a job did.
    parent: Option<usize>,
    /// It ends in a deliberate panic (counted by `panic_count`).
    panics: bool,
    /// Submitted with `spawn`: its panic goes to its `JoinHandle`, not to the
    /// panic handler.
    spawned: bool,
    /// The submitter's verdict, stored after the submission call returned.
    status: AtomicU8,
    /// Why it was rejected (`kind_code`), once `status` is `REJECTED`.
    rejected_as: AtomicU8,
    /// Runs of its body, wherever they happened.
    runs: AtomicU32,
    /// Of those, runs through `Job::run` by the caller of `shutdown_now`.
    caller_runs: AtomicU32,
    /// Set at the very end of the job's body (before a deliberate panic).
    finished: AtomicBool,
    /// Times the closure was dropped without having run, other than by the
    /// caller of `shutdown_now` dropping a handed-back job.
    dropped_unrun: AtomicU32,
    /// Times the caller of `shutdown_now` dropped it, handed back.
    caller_dropped: AtomicU32,
    /// A join on a pool worker returned "cancelled" for it.
    cancelled_inside: AtomicBool,
    /// A join outside the pool returned "cancelled" for it.
    cancelled_outside: AtomicBool,
    /// The job beneath this one on its worker's stack when it started in the
    /// pool (a join on a worker runs other jobs nested above the joining
    /// one); `NONE`: it started at the bottom.
    below: AtomicUsize,
    /// The child whose `join` this job is inside, else `NONE`.
    joining: AtomicUsize,
    /// A shutdown from inside the pool returned while this job was suspended
    /// beneath the caller, or waiting (through joins) on such a job: it may
    /// finish only afterwards (`Ctx::suspended_under`).
    suspended: AtomicBool,
}

/// No job, in `Rec::below` / `Rec::joining`.
const NONE: usize = usize::MAX;

impl Rec {
    /// The job beneath this one on its worker's stack.
    fn below(&self) -> Option<usize> {
        Some(self.below.load(SeqCst)).filter(|&id| id != NONE)
    }

    /// Runs inside the pool.
    fn pool_runs(&self) -> u32 {
        self.runs.load(SeqCst) - self.caller_runs.load(SeqCst)
    }
}

fn kind_code(kind: SubmitErrorKind) -> u8 {
    match kind {
        SubmitErrorKind::Full => 1,
        SubmitErrorKind::ShutDown => 2,
        SubmitErrorKind::TimedOut => 3,
    }
}

/// Shared by the owner, the submitters, the jobs and the hooks of one input.
/// (It holds nothing of the pool: the hooks the pool owns point here, so a
/// `Handle` in here would be a reference cycle, a leak per input.)
struct Ctx {
    /// The queue's capacity; `None`: unbounded.
    capacity: Option<usize>,
    handler: HandlerMode,
    recs: Mutex<Vec<Arc<Rec>>>,
    /// Set just before the pool is shut down / dropped.
    shutdown_started: AtomicBool,
    /// Set just before `shutdown_now` is called (with `shutdown_started`).
    shutdown_now_started: AtomicBool,
    /// Set just after the shutdown call returned.
    shutdown_done: AtomicBool,
    /// Set (before `shutdown_done`) when `shutdown_timeout` timed out: the
    /// detached workers still run the queued jobs.
    draining: AtomicBool,
    /// Jobs `shutdown_now` handed back.
    handed_back: AtomicUsize,
    /// Calls of the panic handler.
    handled_panics: AtomicUsize,
    /// `on_thread_start` / `on_thread_stop` calls, and worker threads gone
    /// (a thread-local's destructor, after the worker's body returned).
    started: AtomicUsize,
    stopped: AtomicUsize,
    exited: AtomicUsize,
    /// Worker indices whose start hook ran (none may start twice).
    indices: Mutex<Vec<usize>>,
    /// The largest size the pool was set to: at least that many workers
    /// must have started by the time a shutdown returns.
    max_target: AtomicUsize,
    /// Scoped jobs that started, and those that panicked (they have no
    /// `Rec`: each scope checks its own jobs). Both count in the pool's
    /// counters; none reaches the panic handler.
    scoped_ran: AtomicUsize,
    scoped_panicked: AtomicUsize,
    /// Scopes run so far (numbers each closure's `ClosurePanic`).
    scopes: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn micros(us: u8) -> Duration {
    Duration::from_micros(us.into())
}

fn sleep_us(us: u8) {
    let us = us % (MAX_SLEEP_US + 1);
    if us > 0 {
        thread::sleep(micros(us));
    }
}

/// Sleeps a little in a wait loop whose bound is the watchdog's.
fn spin() {
    thread::sleep(Duration::from_micros(20));
}

impl Ctx {
    fn new_rec(&self, parent: Option<usize>, kind: Kind, spawned: bool) -> Arc<Rec> {
        let mut recs = lock(&self.recs);
        let rec = Arc::new(Rec {
            id: recs.len(),
            parent,
            panics: kind_panics(kind),
            spawned,
            status: AtomicU8::new(PENDING),
            rejected_as: AtomicU8::new(0),
            runs: AtomicU32::new(0),
            caller_runs: AtomicU32::new(0),
            finished: AtomicBool::new(false),
            dropped_unrun: AtomicU32::new(0),
            caller_dropped: AtomicU32::new(0),
            cancelled_inside: AtomicBool::new(false),
            cancelled_outside: AtomicBool::new(false),
            below: AtomicUsize::new(NONE),
            joining: AtomicUsize::new(NONE),
            suspended: AtomicBool::new(false),
        });
        recs.push(Arc::clone(&rec));
        rec
    }

    fn rec(&self, id: usize) -> Arc<Rec> {
        Arc::clone(&lock(&self.recs)[id])
    }

    /// Which jobs are accepted so far, by id.
    fn accepted_now(&self) -> Vec<bool> {
        lock(&self.recs)
            .iter()
            .map(|r| r.status.load(SeqCst) == ACCEPTED)
            .collect()
    }

    /// Every job in `before`, and every accepted descendant of one, has run
    /// exactly once and finished; `exempt` jobs (by id: those a shutdown from
    /// inside the pool may leave running, see `suspended_under`) are skipped.
    /// (A child is accepted before its parent finishes, so it was accepted
    /// before the moment being checked too.)
    fn check_finished(&self, before: &[bool], exempt: &[bool], what: &str) {
        let recs = lock(&self.recs);
        let mut covered = vec![false; recs.len()];
        for r in recs.iter() {
            let by_parent =
                r.parent.is_some_and(|p| covered[p]) && r.status.load(SeqCst) == ACCEPTED;
            covered[r.id] = (before.get(r.id).copied().unwrap_or(false) || by_parent)
                && !exempt.get(r.id).copied().unwrap_or(false);
            if covered[r.id] {
                assert!(
                    r.finished.load(SeqCst) && r.runs.load(SeqCst) == 1,
                    "{what}: accepted job {} has not run to completion (runs = {})",
                    r.id,
                    r.runs.load(SeqCst)
                );
                assert_eq!(
                    r.dropped_unrun.load(SeqCst),
                    0,
                    "{what}: accepted job {} was dropped",
                    r.id
                );
            }
        }
    }

    /// At a quiescent idle moment, with the pool still alive: the counters
    /// are exact.
    fn check_exact(&self, pool: &ThreadPool) {
        let (mut ok, mut panicked, mut handled) = (0, 0, 0);
        for r in lock(&self.recs).iter() {
            match r.status.load(SeqCst) {
                ACCEPTED => {
                    assert!(
                        r.finished.load(SeqCst) && r.runs.load(SeqCst) == 1,
                        "idle, but accepted job {} ran {} times (finished: {})",
                        r.id,
                        r.runs.load(SeqCst),
                        r.finished.load(SeqCst)
                    );
                    assert_eq!(
                        r.dropped_unrun.load(SeqCst),
                        0,
                        "accepted job {} was dropped",
                        r.id
                    );
                    if r.panics {
                        panicked += 1;
                        handled += usize::from(!r.spawned);
                    } else {
                        ok += 1;
                    }
                }
                REJECTED => assert_ne!(
                    r.rejected_as.load(SeqCst),
                    kind_code(SubmitErrorKind::ShutDown),
                    "job {} was refused as shut down by a live pool",
                    r.id
                ),
                _ => panic!(
                    "job {}: its submission is pending at a quiescent point",
                    r.id
                ),
            }
        }
        // Every scope has returned (only the owner runs them, and a scoped
        // job's nested scope returns before that job ends).
        let scoped_panicked = self.scoped_panicked.load(SeqCst);
        ok += self.scoped_ran.load(SeqCst) - scoped_panicked;
        panicked += scoped_panicked;
        assert_eq!(pool.queued_count(), 0, "idle, but jobs are queued");
        assert_eq!(pool.active_count(), 0, "idle, but jobs are running");
        assert_eq!(
            pool.completed_count(),
            ok,
            "completed_count is not exact when idle"
        );
        assert_eq!(
            pool.panic_count(),
            panicked,
            "panic_count is not exact when idle"
        );
        if self.handler != HandlerMode::None {
            assert_eq!(
                self.handled_panics.load(SeqCst),
                handled,
                "the panic handler did not see every panic of an executed job"
            );
        }
    }

    /// Jobs that have started running so far, scoped ones included.
    fn ran(&self) -> usize {
        let scoped = self.scoped_ran.load(SeqCst);
        lock(&self.recs)
            .iter()
            .filter(|r| r.runs.load(SeqCst) > 0)
            .count()
            + scoped
    }

    /// Workers started and not stopped (by the hooks).
    fn live_workers(&self) -> usize {
        // Read `stopped` first: a worker stops only after it started.
        let stopped = self.stopped.load(SeqCst);
        self.started.load(SeqCst) - stopped
    }

    /// Every worker that started has stopped and exited, except `kept` (the
    /// workers whose stacks hold jobs a shutdown from inside the pool left
    /// suspended: `kept_workers`).
    ///
    /// With `kept > 1` some worker other than the caller's is asleep in a
    /// join on a job suspended beneath the caller, so the shutdown detached
    /// the workers instead of joining them: the others have left the pool
    /// but may still be running their stop hook or thread-local destructors.
    /// They must finish that without waiting for the caller (which is still
    /// inside its job), so this waits for them (unbounded: a hang is the
    /// watchdog's). Otherwise the shutdown joined them: they are gone now.
    fn check_workers_gone(&self, kept: usize, what: &str) {
        let started = self.started.load(SeqCst);
        let gone = started.saturating_sub(kept);
        assert!(
            started >= self.max_target.load(SeqCst),
            "{what}: only {started} workers ever started"
        );
        if kept > 1 {
            while self.stopped.load(SeqCst) < gone || self.exited.load(SeqCst) < gone {
                spin();
            }
        }
        assert!(
            self.stopped.load(SeqCst) >= gone,
            "{what}: a worker did not stop"
        );
        assert!(
            self.exited.load(SeqCst) >= gone,
            "{what}: a worker was not joined"
        );
    }

    /// The jobs a shutdown called with `stack` (the ids of the jobs on the
    /// calling thread, outermost first; empty outside the pool) may leave
    /// running when it returns, by id, each marked `suspended`: the jobs on
    /// `stack`, which cannot finish before the call returns; every job inside
    /// a `join` on one of those, which cannot finish either; and every job
    /// beneath such a joiner on its worker's stack, and so on. Every other
    /// started job must have finished. Called right after the shutdown
    /// returned and before `shutdown_done` is set, so that a job which
    /// finishes later and sees `shutdown_done` also sees its mark. (The set
    /// is stable while the caller is still inside its job: a join on a job
    /// that cannot finish cannot return, and no job starts after a shutdown
    /// returned.)
    fn suspended_under(&self, stack: &[usize]) -> Vec<bool> {
        let recs = lock(&self.recs);
        let mut held = vec![false; recs.len()];
        for &id in stack {
            held[id] = true;
        }
        let mut grew = !stack.is_empty();
        while grew {
            grew = false;
            for r in recs.iter() {
                let joining = r.joining.load(SeqCst);
                if held[r.id] || joining == NONE || !held[joining] {
                    continue;
                }
                let mut next = Some(r.id);
                while let Some(id) = next {
                    held[id] = true;
                    next = recs[id].below();
                }
                grew = true;
            }
        }
        for r in recs.iter().filter(|r| held[r.id]) {
            r.suspended.store(true, SeqCst);
        }
        held
    }

    /// The workers running the jobs in `held` (`suspended_under`): one per
    /// job at the bottom of a stack, since `held` holds every job beneath
    /// each of its jobs.
    fn kept_workers(&self, held: &[bool]) -> usize {
        lock(&self.recs)
            .iter()
            .filter(|r| held.get(r.id).copied().unwrap_or(false) && r.below().is_none())
            .count()
    }

    /// Right after `shutdown` / `drop` / a `shutdown_timeout` that did not
    /// time out returned, called on a thread whose job stack was `stack`.
    fn after_shutdown(&self, stack: &[usize]) {
        let held = self.suspended_under(stack);
        self.shutdown_done.store(true, SeqCst);
        self.check_finished(&self.accepted_now(), &held, "after shutdown");
        self.check_workers_gone(self.kept_workers(&held), "after shutdown");
    }

    /// Right after `shutdown_now` returned `handed` jobs: nothing runs in the
    /// pool any more (but what `suspended_under(stack)` allows), and every
    /// accepted job that never ran is one of them.
    fn after_shutdown_now(&self, stack: &[usize], handed: usize) {
        let held = self.suspended_under(stack);
        self.shutdown_done.store(true, SeqCst);
        let (mut unstarted, mut in_flight) = (0, 0);
        for r in lock(&self.recs).iter() {
            if r.runs.load(SeqCst) > 0 {
                assert!(
                    r.finished.load(SeqCst) || held.get(r.id).copied().unwrap_or(false),
                    "after shutdown_now: job {} is still running",
                    r.id
                );
                continue;
            }
            match r.status.load(SeqCst) {
                ACCEPTED => {
                    assert_eq!(
                        r.dropped_unrun.load(SeqCst),
                        0,
                        "after shutdown_now: accepted job {} was dropped, not handed back",
                        r.id
                    );
                    unstarted += 1;
                }
                PENDING => in_flight += 1,
                _ => {}
            }
        }
        assert!(
            unstarted <= handed && handed <= unstarted + in_flight,
            "shutdown_now handed back {handed} jobs, but {unstarted} accepted jobs never ran \
             (and {in_flight} submissions are in flight)"
        );
        self.check_workers_gone(self.kept_workers(&held), "after shutdown_now");
    }

    /// After a `shutdown_timeout` that timed out: the detached workers must
    /// still finish every accepted job and exit (`keep`: the calling worker,
    /// which cannot exit while it waits). Unbounded: a hang is the watchdog's.
    fn wait_drained(&self, keep: usize) {
        loop {
            // A handed-back job that was dropped never finishes; one the
            // pool dropped is the final check's to report.
            let all_finished = lock(&self.recs).iter().all(|r| {
                r.status.load(SeqCst) != ACCEPTED
                    || r.finished.load(SeqCst)
                    || r.caller_dropped.load(SeqCst) > 0
                    || r.dropped_unrun.load(SeqCst) > 0
            });
            if all_finished && self.exited.load(SeqCst) + keep >= self.started.load(SeqCst) {
                return;
            }
            spin();
        }
    }

    /// Waits until the workers the hooks count alive are `target`: started
    /// ones have run their start hook and surplus ones have retired.
    /// Unbounded: a shrink that never completes is a hang.
    fn wait_settled(&self, target: usize) {
        while self.live_workers() != target {
            spin();
        }
    }

    /// At the very end, when no submission is in flight and every worker has
    /// exited.
    fn check_final(&self) {
        let mut handled = 0;
        let mut taken_back = 0;
        let now = self.shutdown_now_started.load(SeqCst);
        for r in lock(&self.recs).iter() {
            let id = r.id;
            let (runs, in_pool) = (r.runs.load(SeqCst), r.pool_runs());
            let (by_caller, dropped, caller_dropped) = (
                r.caller_runs.load(SeqCst),
                r.dropped_unrun.load(SeqCst),
                r.caller_dropped.load(SeqCst),
            );
            taken_back += by_caller + caller_dropped;
            let cancelled = r.cancelled_inside.load(SeqCst) || r.cancelled_outside.load(SeqCst);
            match r.status.load(SeqCst) {
                ACCEPTED if in_pool == 1 => {
                    assert!(
                        r.finished.load(SeqCst)
                            && by_caller == 0
                            && dropped == 0
                            && caller_dropped == 0
                            && !cancelled,
                        "accepted job {id} ran in the pool, but also: ran {by_caller} times \
                         by the caller, dropped {dropped} + {caller_dropped} times, \
                         cancelled: {cancelled}"
                    );
                    handled += usize::from(r.panics && !r.spawned);
                }
                ACCEPTED => {
                    assert!(
                        in_pool == 0 && now,
                        "accepted job {id} ran {in_pool} times in the pool"
                    );
                    assert_eq!(dropped, 0, "accepted job {id} was dropped, not handed back");
                    assert!(
                        (by_caller == 1 && r.finished.load(SeqCst) && caller_dropped == 0)
                            || (by_caller == 0 && caller_dropped == 1),
                        "handed-back job {id}: ran {by_caller} times by the caller, \
                         dropped {caller_dropped} times"
                    );
                    assert!(
                        !r.cancelled_outside.load(SeqCst) || caller_dropped == 1,
                        "job {id} was run, but a join outside the pool said it was cancelled"
                    );
                }
                REJECTED => assert!(
                    runs == 0 && dropped == 1 && caller_dropped == 0,
                    "rejected job {id} ran {runs} times, dropped {dropped} + {caller_dropped} times"
                ),
                _ => panic!("job {id}: its submission never returned"),
            }
        }
        assert_eq!(
            taken_back as usize,
            self.handed_back.load(SeqCst),
            "the jobs run or dropped by the caller are not the jobs shutdown_now handed back"
        );
        let started = self.started.load(SeqCst);
        assert_eq!(self.stopped.load(SeqCst), started, "on_thread_stop calls");
        assert_eq!(self.exited.load(SeqCst), started, "worker threads exited");
        if self.handler != HandlerMode::None {
            assert_eq!(
                self.handled_panics.load(SeqCst),
                handled,
                "panic handler calls"
            );
        }
    }
}

fn kind_panics(kind: Kind) -> bool {
    match kind {
        Kind::Panic | Kind::PanicBomb => true,
        Kind::Children { then_panic, .. } | Kind::SpawnJoin { then_panic, .. } => then_panic,
        Kind::Ok | Kind::Yield | Kind::Sleep(_) | Kind::LongSleep(_) => false,
    }
}

/// A spawned job's result is dropped by whoever joins it, so it never panics
/// with a `Bomb`.
fn spawnable(kind: Kind) -> Kind {
    match kind {
        Kind::PanicBomb => Kind::Panic,
        other => other,
    }
}

// ---------------------------------------------------------------------------
// Per-thread bookkeeping

thread_local! {
    /// The ids of the jobs running on this thread, outermost first: a join
    /// on a worker runs other jobs nested inside the joining one.
    static JOB_STACK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// Set just before this thread calls `Job::run` on a handed-back job;
    /// the job's body takes (clears) it.
    static BY_CALLER: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread drops handed-back jobs.
    static DROPPING_HANDED_BACK: Cell<bool> = const { Cell::new(false) };
    /// The id of the last job body that started on this thread.
    static LAST_STARTED: Cell<Option<usize>> = const { Cell::new(None) };
    /// The handle a handed-back job run by the caller submits its children
    /// through when `Handle::current()` is `None`.
    static CALLER_HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
    /// Set on each worker by its start hook; its destructor counts the exit.
    static EXIT: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

struct ExitGuard(Arc<Ctx>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.exited.fetch_add(1, SeqCst);
    }
}

// ---------------------------------------------------------------------------
// Jobs

/// Lives inside a job's closure: dropped while still armed means the closure
/// was dropped without running.
struct Unrun {
    rec: Arc<Rec>,
    armed: bool,
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if self.armed {
            if DROPPING_HANDED_BACK.with(Cell::get) {
                self.rec.caller_dropped.fetch_add(1, SeqCst);
            } else {
                self.rec.dropped_unrun.fetch_add(1, SeqCst);
            }
        }
    }
}

/// Holds the workers of a `Probe` until the owner opens it.
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = lock(&self.open);
        while !*open {
            open = self.opened.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn open(&self) {
        *lock(&self.open) = true;
        self.opened.notify_all();
    }
}

fn make_job(
    ctx: &Arc<Ctx>,
    rec: &Arc<Rec>,
    kind: Kind,
    gate: Option<Arc<Gate>>,
) -> impl FnOnce() + Send + 'static {
    let ctx = Arc::clone(ctx);
    let guard = Unrun {
        rec: Arc::clone(rec),
        armed: true,
    };
    move || {
        let mut guard = guard;
        guard.armed = false;
        run_job(&ctx, &guard.rec, kind, gate.as_deref());
    }
}

fn make_spawned(
    ctx: &Arc<Ctx>,
    rec: &Arc<Rec>,
    kind: Kind,
) -> impl FnOnce() -> usize + Send + 'static {
    let ctx = Arc::clone(ctx);
    let guard = Unrun {
        rec: Arc::clone(rec),
        armed: true,
    };
    move || {
        let mut guard = guard;
        guard.armed = false;
        run_job(&ctx, &guard.rec, kind, None);
        guard.rec.id
    }
}

fn run_job(ctx: &Arc<Ctx>, rec: &Rec, kind: Kind, gate: Option<&Gate>) {
    let id = rec.id;
    let by_caller = BY_CALLER.with(|c| c.replace(false));
    LAST_STARTED.with(|l| l.set(Some(id)));
    assert_eq!(rec.runs.fetch_add(1, SeqCst), 0, "job {id} ran twice");
    if by_caller {
        rec.caller_runs.fetch_add(1, SeqCst);
    }
    assert_ne!(
        rec.status.load(SeqCst),
        REJECTED,
        "job {id} ran after it was rejected"
    );
    let handle = if by_caller {
        assert!(
            ctx.shutdown_now_started.load(SeqCst),
            "Job::run ran job {id}, but shutdown_now was never called"
        );
        Handle::current()
            .or_else(|| CALLER_HANDLE.with(|h| h.borrow().clone()))
            .expect("the caller of shutdown_now has a handle")
    } else {
        assert!(
            !ctx.shutdown_done.load(SeqCst) || ctx.draining.load(SeqCst),
            "job {id} started after shutdown returned"
        );
        let name = thread::current().name().map(str::to_owned);
        assert!(
            name.as_deref()
                .is_some_and(|n| n.starts_with(WORKER_PREFIX)),
            "job {id} runs on {name:?}, not on a worker"
        );
        Handle::current().expect("Handle::current() is None inside a job")
    };
    JOB_STACK.with(|s| {
        let mut stack = s.borrow_mut();
        if !by_caller {
            rec.below
                .store(stack.last().copied().unwrap_or(NONE), SeqCst);
        }
        stack.push(id);
    });
    if let Some(gate) = gate {
        gate.wait();
    }
    job_body(ctx, id, kind, &handle);
    JOB_STACK.with(|s| s.borrow_mut().pop());
    drop(handle);
    // `shutdown_done` first: it is set after the `suspended` marks.
    if !by_caller && ctx.shutdown_done.load(SeqCst) && !ctx.draining.load(SeqCst) {
        assert!(
            rec.suspended.load(SeqCst),
            "job {id} was still running after shutdown returned"
        );
    }
    rec.finished.store(true, SeqCst);
    match kind {
        Kind::Panic
        | Kind::Children {
            then_panic: true, ..
        }
        | Kind::SpawnJoin {
            then_panic: true, ..
        } => panic::panic_any(Deliberate),
        Kind::PanicBomb => panic::panic_any(Bomb),
        _ => {}
    }
}

/// The child of a `Children` / `SpawnJoin` job number `j`: one level down,
/// or a leaf (one of which panics with `then_panic`).
fn child_kind(kind: Kind, j: u8) -> Kind {
    let leaf = |then_panic: bool| {
        if then_panic && j == 1 {
            Kind::Panic
        } else if let Kind::SpawnJoin { leaf_us, .. } = kind {
            Kind::LongSleep(leaf_us)
        } else {
            Kind::Yield
        }
    };
    match kind {
        Kind::Children {
            n,
            depth,
            then_panic,
            via,
        } => match depth % 2 {
            0 => leaf(then_panic),
            _ => Kind::Children {
                n,
                depth: 0,
                then_panic: then_panic && j == 0,
                via,
            },
        },
        Kind::SpawnJoin {
            n,
            depth,
            then_panic,
            detach,
            leaf_us,
        } => match depth % 2 {
            0 => leaf(then_panic),
            _ => Kind::SpawnJoin {
                n,
                depth: 0,
                then_panic: then_panic && j == 0,
                detach,
                leaf_us,
            },
        },
        _ => unreachable!("only jobs with children have children"),
    }
}

fn job_body(ctx: &Arc<Ctx>, id: usize, kind: Kind, handle: &Handle) {
    match kind {
        Kind::Ok | Kind::Panic | Kind::PanicBomb => {}
        Kind::Yield => (0..3).for_each(|_| thread::yield_now()),
        Kind::Sleep(us) => sleep_us(us),
        Kind::LongSleep(us) => thread::sleep(micros(us)),
        Kind::Children {
            n, via: Via::Batch, ..
        } => {
            let kinds: Vec<Kind> = (0..n % 3).map(|j| child_kind(kind, j)).collect();
            submit_batch(ctx, Target::Handle(handle), Some(id), &kinds, "child batch");
        }
        Kind::Children { n, via, .. } => {
            for j in 0..n % 3 {
                // A child's JoinHandle is dropped at once: detached.
                let child = child_kind(kind, j);
                drop(submit(
                    ctx,
                    Target::Handle(handle),
                    Some(id),
                    via,
                    child,
                    "child",
                ));
            }
        }
        Kind::SpawnJoin { n, detach, .. } => {
            let children: Vec<_> = (0..n % 3)
                .filter_map(|j| {
                    let child = child_kind(kind, j);
                    submit(
                        ctx,
                        Target::Handle(handle),
                        Some(id),
                        Via::Spawn,
                        child,
                        "spawned child",
                    )
                })
                .collect();
            if !detach {
                let on_worker = Handle::current().is_some();
                let me = ctx.rec(id);
                for (rec, child) in children {
                    me.joining.store(rec.id, SeqCst);
                    let result = child.join();
                    me.joining.store(NONE, SeqCst);
                    check_result(ctx, &rec, result, on_worker, "a parent's join");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Submission

/// Where a submission goes.
#[derive(Clone, Copy)]
enum Target<'a> {
    Pool(&'a ThreadPool),
    Handle(&'a Handle),
}

/// An accepted spawn and its handle.
type Spawned = (Arc<Rec>, JoinHandle<usize>);

/// Submits a new job of `kind` by `via` and records the verdict. Returns the
/// `JoinHandle` of an accepted spawn.
fn submit(
    ctx: &Arc<Ctx>,
    target: Target<'_>,
    parent: Option<usize>,
    via: Via,
    kind: Kind,
    who: &str,
) -> Option<Spawned> {
    // On one of the pool's own workers (there is only one pool), a bounded
    // queue must never refuse or make the submitter wait.
    let from_worker = Handle::current().is_some();
    let after_done = ctx.shutdown_done.load(SeqCst);
    if via == Via::Batch {
        submit_batch(ctx, target, parent, &[kind], who);
        None
    } else if via == Via::Spawn {
        let kind = spawnable(kind);
        let rec = ctx.new_rec(parent, kind, true);
        let job = make_spawned(ctx, &rec, kind);
        let result = match target {
            Target::Pool(pool) => Ok(pool.spawn(job)),
            Target::Handle(handle) => handle.spawn(job),
        };
        match result {
            Ok(joiner) => {
                accept(&rec, after_done, who);
                Some((rec, joiner))
            }
            Err(err) => {
                reject(ctx, &rec, err, via, from_worker, who);
                None
            }
        }
    } else {
        let rec = ctx.new_rec(parent, kind, false);
        let job = make_job(ctx, &rec, kind, None);
        let result = match (target, via) {
            (Target::Pool(pool), Via::Execute) => {
                pool.execute(job);
                Ok(())
            }
            (Target::Pool(pool), Via::TryExecute) => pool.try_execute(job),
            (Target::Pool(pool), Via::ExecuteTimeout(us)) => pool.execute_timeout(job, micros(us)),
            (Target::Handle(handle), Via::Execute) => handle.execute(job),
            (Target::Handle(handle), Via::TryExecute) => handle.try_execute(job),
            (Target::Handle(handle), Via::ExecuteTimeout(us)) => {
                handle.execute_timeout(job, micros(us))
            }
            (_, Via::Spawn | Via::Batch) => unreachable!("handled above"),
        };
        match result {
            Ok(()) => accept(&rec, after_done, who),
            Err(err) => reject(ctx, &rec, err, via, from_worker, who),
        }
        None
    }
}

/// Submits one job per `kinds` by one `execute_batch` call and records each
/// verdict. Only a shutdown may refuse a batch (it waits for room in a
/// bounded queue, and never from one of the pool's own workers), and then it
/// must hand back exactly the jobs it did not accept: a non-empty suffix of
/// the batch, in order, each the very closure submitted (dropping the one
/// at place `i` must disarm the guard of the `i`-th refused job), unrun and
/// undropped; the jobs before it were accepted (and the ledger checks them
/// as any accepted job).
fn submit_batch(
    ctx: &Arc<Ctx>,
    target: Target<'_>,
    parent: Option<usize>,
    kinds: &[Kind],
    who: &str,
) {
    let after_done = ctx.shutdown_done.load(SeqCst);
    let recs: Vec<Arc<Rec>> = kinds
        .iter()
        .map(|&kind| ctx.new_rec(parent, kind, false))
        .collect();
    let jobs: Vec<_> = recs
        .iter()
        .zip(kinds)
        .map(|(rec, &kind)| make_job(ctx, rec, kind, None))
        .collect();
    let result = match target {
        Target::Pool(pool) => {
            pool.execute_batch(jobs);
            Ok(())
        }
        Target::Handle(handle) => handle.execute_batch(jobs),
    };
    let err = match result {
        Ok(()) => {
            for rec in &recs {
                accept(rec, after_done, who);
            }
            return;
        }
        Err(err) => err,
    };
    let ids: Vec<usize> = recs.iter().map(|rec| rec.id).collect();
    let kind = err.kind();
    assert_eq!(
        kind,
        SubmitErrorKind::ShutDown,
        "{who}: batch {ids:?} refused: {err}"
    );
    assert!(
        ctx.shutdown_started.load(SeqCst),
        "{who}: batch {ids:?} refused as shut down before shutdown began"
    );
    check_submit_error(&err, who);
    let rest = err.into_inner();
    assert!(
        !rest.is_empty() && rest.len() <= recs.len(),
        "{who}: batch {ids:?} refused with {} jobs inside",
        rest.len()
    );
    let accepted = recs.len() - rest.len();
    for rec in &recs[..accepted] {
        accept(rec, after_done, who);
    }
    for (at, (rec, job)) in recs[accepted..].iter().zip(rest).enumerate() {
        let id = rec.id;
        rec.rejected_as.store(kind_code(kind), SeqCst);
        rec.status.store(REJECTED, SeqCst);
        assert_eq!(rec.runs.load(SeqCst), 0, "{who}: rejected job {id} ran");
        assert_eq!(
            rec.dropped_unrun.load(SeqCst),
            0,
            "{who}: rejected job {id} was dropped by the pool"
        );
        drop(job);
        assert_eq!(
            rec.dropped_unrun.load(SeqCst),
            1,
            "{who}: batch {ids:?} refused after {accepted} jobs: the job handed back at \
             place {at} is not job {id}"
        );
    }
}

fn accept(rec: &Rec, after_done: bool, who: &str) {
    assert!(
        !after_done,
        "{who}: job {} accepted after shutdown returned",
        rec.id
    );
    rec.status.store(ACCEPTED, SeqCst);
}

/// Checks a refusal against the ledger: a reason the call may give, the job
/// handed back unrun and undropped, and it is the very closure submitted.
fn reject<F: Send + 'static>(
    ctx: &Ctx,
    rec: &Rec,
    err: SubmitError<F>,
    via: Via,
    from_worker: bool,
    who: &str,
) {
    let id = rec.id;
    let kind = err.kind();
    check_submit_error(&err, who);
    match kind {
        SubmitErrorKind::ShutDown => assert!(
            ctx.shutdown_started.load(SeqCst),
            "{who}: job {id} refused as shut down before shutdown began"
        ),
        SubmitErrorKind::Full | SubmitErrorKind::TimedOut => {
            let expected = match kind {
                SubmitErrorKind::Full => via == Via::TryExecute,
                _ => matches!(via, Via::ExecuteTimeout(_)),
            };
            assert!(expected, "{who}: job {id}, submitted by {via:?}: {err}");
            assert!(
                ctx.capacity.is_some(),
                "{who}: job {id}: {err}, but the queue is unbounded"
            );
            assert!(
                !from_worker,
                "{who}: job {id}: {err}, but it was submitted from one of the pool's own \
                 workers (accepted past the capacity)"
            );
        }
    }
    rec.rejected_as.store(kind_code(kind), SeqCst);
    rec.status.store(REJECTED, SeqCst);
    let job = err.into_inner();
    assert_eq!(rec.runs.load(SeqCst), 0, "{who}: rejected job {id} ran");
    assert_eq!(
        rec.dropped_unrun.load(SeqCst),
        0,
        "{who}: rejected job {id} was dropped by the pool"
    );
    drop(job);
    assert_eq!(
        rec.dropped_unrun.load(SeqCst),
        1,
        "{who}: into_inner did not give back job {id}"
    );
}

/// What every error type promises (DESIGN.md, "Error types"): `Debug`
/// without `F: Debug` (the jobs here are closures), naming the kind;
/// `Display`, one message per kind; `std::error::Error`, and `Send + Sync`
/// for a `Send` job, so it fits in a `Box<dyn Error + Send + Sync>`.
fn check_submit_error<F: Send + 'static>(err: &SubmitError<F>, who: &str) {
    let kind = err.kind();
    let debug = format!("{err:?}");
    assert!(
        debug.contains(&format!("{kind:?}")),
        "{who}: SubmitError's Debug does not name its kind {kind:?}: {debug}"
    );
    let as_error: &(dyn std::error::Error + Send + Sync + 'static) = err;
    let shown = as_error.to_string();
    assert!(!shown.is_empty(), "{who}: SubmitError displays as nothing");
    let mut messages = lock(&SUBMIT_MESSAGES);
    let known = messages
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, m)| m.clone());
    match known {
        Some(message) => assert_eq!(
            shown, message,
            "{who}: SubmitError's Display for {kind:?} changed between errors"
        ),
        None => {
            assert!(
                messages.iter().all(|(_, m)| *m != shown),
                "{who}: SubmitError displays {kind:?} as another kind: {shown}"
            );
            messages.push((kind, shown));
        }
    }
}

/// The `Display` of each `SubmitErrorKind` seen so far (for the whole
/// process): one message per kind, and different kinds differ.
static SUBMIT_MESSAGES: Mutex<Vec<(SubmitErrorKind, String)>> = Mutex::new(Vec::new());

/// `JoinError`'s `Debug`, `Display` and `Error`, whatever it says.
fn check_join_error_traits(err: &JoinError, who: &str) {
    let as_error: &(dyn std::error::Error + Send + Sync + 'static) = err;
    assert!(
        !as_error.to_string().is_empty() && !format!("{err:?}").is_empty(),
        "{who}: a JoinError that displays as nothing"
    );
}

// ---------------------------------------------------------------------------
// Joining

/// Checks what a `JoinHandle` said about its job. `on_worker`: joined on one
/// of the pool's workers (which resolves as cancelled as soon as the job is
/// handed back, rather than when the caller runs or drops it).
fn check_result(
    ctx: &Ctx,
    rec: &Rec,
    result: Result<usize, JoinError>,
    on_worker: bool,
    who: &str,
) {
    let id = rec.id;
    match result {
        Ok(value) => {
            assert_eq!(
                value, id,
                "{who}: job {id}'s handle returned job {value}'s value"
            );
            assert!(
                !rec.panics,
                "{who}: job {id} panicked, but its handle says Ok"
            );
            assert!(
                rec.finished.load(SeqCst),
                "{who}: job {id} is Ok but unfinished"
            );
        }
        Err(err) if err.is_panic() => {
            check_join_error_traits(&err, who);
            assert!(
                !err.is_cancelled(),
                "{who}: job {id}'s JoinError is both a panic and a cancellation"
            );
            assert!(
                rec.panics,
                "{who}: job {id} did not panic, but its handle says: {err}"
            );
            assert!(
                rec.runs.load(SeqCst) == 1,
                "{who}: job {id} panicked without running"
            );
            // Both ways out of a panic's JoinError, by the job's parity.
            let payload = if id.is_multiple_of(2) {
                err.into_panic()
            } else {
                match err.try_into_panic() {
                    Ok(payload) => payload,
                    Err(err) => panic!("{who}: job {id}: try_into_panic of a panic failed: {err}"),
                }
            };
            assert!(
                payload.is::<Deliberate>(),
                "{who}: job {id}'s handle carries a foreign panic payload"
            );
        }
        Err(err) => {
            check_join_error_traits(&err, who);
            assert!(
                err.is_cancelled(),
                "{who}: job {id}: a JoinError neither panic nor cancelled"
            );
            // A cancellation carries no payload: try_into_panic gives the
            // error back, still a cancellation.
            let err = match err.try_into_panic() {
                Ok(_) => panic!("{who}: job {id}: try_into_panic of a cancellation gave a payload"),
                Err(err) => err,
            };
            assert!(
                err.is_cancelled() && !err.is_panic(),
                "{who}: job {id}: try_into_panic changed a cancellation into {err:?}"
            );
            assert!(
                ctx.shutdown_now_started.load(SeqCst),
                "{who}: job {id} was cancelled, but shutdown_now was never called"
            );
            if on_worker {
                rec.cancelled_inside.store(true, SeqCst);
            } else {
                assert_eq!(
                    rec.runs.load(SeqCst),
                    0,
                    "{who}: job {id} ran, but its handle says it was cancelled"
                );
                rec.cancelled_outside.store(true, SeqCst);
            }
        }
    }
}

/// Resolves one of the owner's (or a submitter's) handles, outside the pool.
fn join_outside(ctx: &Ctx, rec: &Rec, joiner: JoinHandle<usize>, how: JoinHow, who: &str) {
    assert!(
        !format!("{joiner:?}").is_empty(),
        "{who}: JoinHandle's Debug"
    );
    if joiner.is_finished() {
        assert!(
            rec.finished.load(SeqCst) || ctx.shutdown_now_started.load(SeqCst),
            "{who}: job {}'s handle is finished, but the job is not",
            rec.id
        );
    }
    let result = match how {
        JoinHow::Join => joiner.join(),
        JoinHow::Await { noop_first } => {
            let mut joiner = pin!(joiner);
            let ready = if noop_first {
                match joiner
                    .as_mut()
                    .poll(&mut Context::from_waker(Waker::noop()))
                {
                    Poll::Ready(result) => Some(result),
                    Poll::Pending => None,
                }
            } else {
                None
            };
            ready.unwrap_or_else(|| block_on(joiner))
        }
        JoinHow::Detach => return,
    };
    check_result(ctx, rec, result, false, who);
}

/// Wakes a parked thread.
struct Unparker(thread::Thread);

impl Wake for Unparker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives `future` to completion on this thread, parking while it is pending
/// (a lost wake-up parks forever: the watchdog's).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(Unparker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}

// ---------------------------------------------------------------------------
// Scoped batches

impl ScopedLeaf {
    fn slot_count(&self) -> usize {
        1 + usize::from(self.slots % 3)
    }

    /// Its kind as run: a spawned job's `Bomb` would be dropped by its
    /// joiner, or by whoever drops its handle (racing the job), so it panics
    /// plainly instead.
    fn kind(&self) -> ScopedKind {
        match (self.kind, self.via) {
            (ScopedKind::PanicBomb, ScopedVia::SpawnJoin | ScopedVia::SpawnDrop) => {
                ScopedKind::Panic
            }
            (kind, _) => kind,
        }
    }

    fn panics(&self) -> bool {
        matches!(self.kind, ScopedKind::Panic | ScopedKind::PanicBomb)
    }

    /// As a job with no children, nothing nested and nothing submitted.
    fn alone(self) -> ScopedJob {
        ScopedJob {
            job: self,
            children: Vec::new(),
            nested: None,
            submit: None,
        }
    }
}

impl ScopedJob {
    fn children(&self) -> &[ScopedLeaf] {
        &self.children[..self.children.len().min(MAX_CHILDREN)]
    }

    /// Its slots and its children's: a contiguous run of the batch, its own
    /// first.
    fn slot_count(&self) -> usize {
        self.job.slot_count()
            + self
                .children()
                .iter()
                .map(ScopedLeaf::slot_count)
                .sum::<usize>()
    }

    /// It and its children: a contiguous run of the batch's tracks, itself
    /// first.
    fn job_count(&self) -> usize {
        1 + self.children().len()
    }

    /// Jobs of it and its children that return a value (do not panic).
    fn value_count(&self) -> usize {
        std::iter::once(&self.job)
            .chain(self.children())
            .filter(|leaf| !leaf.panics())
            .count()
    }

    /// A job of it or its children panics with nobody to join it. (It
    /// joins its `SpawnJoin` children before its body ends, panicking or
    /// not.)
    fn unjoined_panic(&self) -> bool {
        std::iter::once(&self.job)
            .chain(self.children())
            .any(|leaf| leaf.panics() && leaf.via != ScopedVia::SpawnJoin)
    }
}

/// One `scope` call as run: the jobs its closure starts, where the closure
/// panics (before starting `jobs[stop]`, or at `jobs.len()` after starting
/// them all), the order it joins in, and whether its jobs run nested scopes.
#[derive(Clone, Copy)]
struct Plan<'a> {
    jobs: &'a [ScopedJob],
    stop: Option<usize>,
    newest_first: bool,
    nest: bool,
}

/// What the jobs of one scope share, borrowed from the frame that called
/// `scope`.
struct Batch<'a> {
    ctx: &'a Arc<Ctx>,
    pool: &'a ThreadPool,
    plan: Plan<'a>,
    /// One per job, in order: a job, then its children.
    tracks: &'a [Track],
    /// Values returned by the batch's jobs that have been dropped.
    values_dropped: &'a AtomicUsize,
}

/// What one scoped job did, as the checks see it.
#[derive(Default)]
struct Track {
    runs: AtomicU32,
    /// Its body got to the end (just before a deliberate panic).
    finished: AtomicBool,
}

/// What a scoped job returns: its track, and a borrow of the calling frame's
/// counter, bumped when the value is dropped. A value may borrow from the
/// scope, so it must be dropped before `scope` returns: by its joiner or,
/// unjoined, by the pool.
struct ScopedValue<'a> {
    track: usize,
    dropped: &'a AtomicUsize,
}

impl Drop for ScopedValue<'_> {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, SeqCst);
    }
}

/// A scoped handle to join: the job's track, whether it panics, the handle.
type ToJoin<'scope, 'env> = (usize, bool, ScopedJoinHandle<'scope, ScopedValue<'env>>);

/// Runs `plan` in one `pool.scope` call over slots of a `Vec` in this frame,
/// then checks `std::thread::scope`'s promises: when `scope` returns or
/// panics, every job started in it (by the closure or by a scoped job) has
/// run exactly once and finished, having written each of its slots exactly
/// once, the slots of jobs never started are untouched, and every value a
/// job returned has been dropped; `scope` panicked with the closure's own
/// payload if the closure panicked, else with its own message exactly when
/// a job's panic went unjoined, and else returned the closure's value.
fn run_scope(ctx: &Arc<Ctx>, pool: &ThreadPool, plan: Plan<'_>, who: &str) {
    let tracks: Vec<Track> = (0..plan.jobs.iter().map(ScopedJob::job_count).sum())
        .map(|_| Track::default())
        .collect();
    let mut slots = vec![0_u32; plan.jobs.iter().map(ScopedJob::slot_count).sum()];
    let values_dropped = AtomicUsize::new(0);
    let batch = Batch {
        ctx,
        pool,
        plan,
        tracks: &tracks,
        values_dropped: &values_dropped,
    };
    let serial = ctx.scopes.fetch_add(1, SeqCst);

    let mut rest: &mut [u32] = &mut slots;
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| {
            assert!(!format!("{s:?}").is_empty(), "{who}: Scope's Debug");
            let mut joins = Vec::new();
            let mut track = 0;
            for (i, job) in plan.jobs.iter().enumerate() {
                if plan.stop == Some(i) {
                    panic::panic_any(ClosurePanic(serial));
                }
                let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(job.slot_count());
                rest = tail;
                joins.extend(start_scoped(s, &batch, job.clone(), track, chunk));
                track += job.job_count();
            }
            if plan.stop == Some(plan.jobs.len()) {
                panic::panic_any(ClosurePanic(serial));
            }
            let joins_made = joins.len();
            join_scoped(&batch, joins, plan.newest_first, who);
            joins_made
        })
    }));

    // First what makes `scope` sound: nothing of the batch is still running,
    // and no value is still to be dropped. The jobs never started are the
    // tail of the batch, and so are their tracks and slots.
    let started = &plan.jobs[..plan.stop.unwrap_or(plan.jobs.len())];
    let ran: usize = started.iter().map(ScopedJob::job_count).sum();
    for (index, track) in tracks.iter().enumerate() {
        let should_run = index < ran;
        assert!(
            track.runs.load(SeqCst) == u32::from(should_run)
                && track.finished.load(SeqCst) == should_run,
            "{who}: when scope returned, scoped job {index} had run {} times (finished: {}); \
             it was {}started",
            track.runs.load(SeqCst),
            track.finished.load(SeqCst),
            if should_run { "" } else { "never " }
        );
    }
    let written: usize = started.iter().map(ScopedJob::slot_count).sum();
    for (index, &writes) in slots.iter().enumerate() {
        assert_eq!(
            writes,
            u32::from(index < written),
            "{who}: when scope returned, slot {index} had been written {writes} times"
        );
    }
    let values: usize = started.iter().map(ScopedJob::value_count).sum();
    assert_eq!(
        values_dropped.load(SeqCst),
        values,
        "{who}: when scope returned, not every value its jobs returned had been dropped"
    );

    let unjoined = started.iter().any(ScopedJob::unjoined_panic);
    match outcome {
        Ok(joined) => {
            assert!(
                plan.stop.is_none(),
                "{who}: scope returned normally, but its closure panicked"
            );
            assert!(
                !unjoined,
                "{who}: scope returned normally, but a scoped job's panic was never joined"
            );
            let expected = started
                .iter()
                .filter(|job| job.job.via == ScopedVia::SpawnJoin)
                .count();
            assert_eq!(joined, expected, "{who}: scope returned a foreign value");
        }
        Err(payload) => {
            if plan.stop.is_some() {
                assert!(
                    payload
                        .downcast_ref::<ClosurePanic>()
                        .is_some_and(|p| p.0 == serial),
                    "{who}: the closure panicked, but scope did not resume that panic"
                );
            } else {
                assert!(
                    unjoined,
                    "{who}: scope panicked, but the closure did not and every panic was joined"
                );
                assert_eq!(
                    payload.downcast_ref::<&str>(),
                    Some(&SCOPE_PANIC),
                    "{who}: scope's panic for an unjoined job panic"
                );
            }
        }
    }
}

/// Starts `job` (at `track`) in `s`, lending it `slots` (its own and its
/// children's); returns its handle if it is to be joined.
fn start_scoped<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    batch: &'env Batch<'env>,
    job: ScopedJob,
    track: usize,
    slots: &'env mut [u32],
) -> Option<ToJoin<'scope, 'env>> {
    let leaf = job.job;
    let body = move || {
        // Moved, not reborrowed: the job and its children keep the borrow.
        let slots = slots;
        scoped_body(s, batch, job, track, slots)
    };
    match leaf.via {
        ScopedVia::Execute => {
            s.execute(move || drop(body()));
            None
        }
        ScopedVia::SpawnJoin => Some((track, leaf.panics(), s.spawn(body))),
        ScopedVia::SpawnDrop => {
            drop(s.spawn(body));
            None
        }
    }
}

fn scoped_body<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    batch: &'env Batch<'env>,
    job: ScopedJob,
    track: usize,
    slots: &'env mut [u32],
) -> ScopedValue<'env> {
    let ctx = batch.ctx;
    ctx.scoped_ran.fetch_add(1, SeqCst);
    let me = &batch.tracks[track];
    assert_eq!(
        me.runs.fetch_add(1, SeqCst),
        0,
        "scoped job {track} ran twice"
    );
    assert!(
        thread::current()
            .name()
            .is_some_and(|n| n.starts_with(WORKER_PREFIX)),
        "scoped job {track} runs outside the pool"
    );
    let handle = Handle::current().expect("Handle::current() is None inside a scoped job");
    let (mine, mut rest) = slots.split_at_mut(job.job.slot_count());
    let mut joins = Vec::new();
    for (child_track, &child) in (track + 1..).zip(job.children()) {
        let (chunk, tail) = std::mem::take(&mut rest).split_at_mut(child.slot_count());
        rest = tail;
        joins.extend(start_scoped(s, batch, child.alone(), child_track, chunk));
    }
    match job.job.kind() {
        ScopedKind::Yield => (0..3).for_each(|_| thread::yield_now()),
        ScopedKind::Sleep(us) => sleep_us(us),
        ScopedKind::Ok | ScopedKind::Panic | ScopedKind::PanicBomb => {}
    }
    for slot in mine.iter_mut() {
        assert_eq!(*slot, 0, "scoped job {track} found its slot written");
        *slot += 1;
    }
    if let (Some(nested), true) = (job.nested, batch.plan.nest) {
        let all = batch.plan.jobs;
        let jobs = &all[..1 + usize::from(nested.n) % all.len()];
        let plan = Plan {
            jobs,
            stop: nested
                .closure_panic
                .map(|at| usize::from(at) % (jobs.len() + 1)),
            newest_first: !batch.plan.newest_first,
            nest: false,
        };
        run_scope(ctx, batch.pool, plan, "a scope in a scoped job");
    }
    if let Some((via, kind)) = job.submit {
        // From a worker: accepted even past a bounded queue's capacity.
        drop(submit(
            ctx,
            Target::Handle(&handle),
            None,
            via,
            kind,
            "a scoped job",
        ));
    }
    join_scoped(batch, joins, false, "a scoped job");
    me.finished.store(true, SeqCst);
    match job.job.kind() {
        ScopedKind::Panic => {
            ctx.scoped_panicked.fetch_add(1, SeqCst);
            panic::panic_any(Deliberate);
        }
        ScopedKind::PanicBomb => {
            ctx.scoped_panicked.fetch_add(1, SeqCst);
            panic::panic_any(Bomb);
        }
        _ => ScopedValue {
            track,
            dropped: batch.values_dropped,
        },
    }
}

/// Joins scoped handles (oldest first, or newest first), checking each
/// result against its job.
fn join_scoped(batch: &Batch<'_>, mut joins: Vec<ToJoin<'_, '_>>, newest_first: bool, who: &str) {
    if newest_first {
        joins.reverse();
    }
    for (track, panics, handle) in joins {
        assert!(
            !format!("{handle:?}").is_empty(),
            "{who}: ScopedJoinHandle's Debug"
        );
        // `is_finished` first: the job sets `finished` before its result, so
        // once the result is there, so is `finished`.
        assert!(
            !handle.is_finished() || batch.tracks[track].finished.load(SeqCst),
            "{who}: scoped job {track}'s handle is finished, but the job is not"
        );
        match handle.join() {
            Ok(value) => {
                assert_eq!(
                    value.track, track,
                    "{who}: scoped job {track} joined with job {}'s value",
                    value.track
                );
                assert!(!panics, "{who}: scoped job {track} panicked, but joined Ok");
            }
            Err(err) => {
                assert!(
                    err.is_panic(),
                    "{who}: scoped job {track}: a JoinError that is no panic"
                );
                assert!(panics, "{who}: scoped job {track} joined as a panic: {err}");
                assert!(
                    err.into_panic().is::<Deliberate>(),
                    "{who}: scoped job {track}'s handle carries a foreign panic payload"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Backpressure probe

/// Holds every worker in a gate job, so the queue stands still, then checks
/// that `try_execute` / `execute_timeout` accept exactly while fewer than
/// `capacity` jobs wait, and that `queued_count` is exact.
fn probe(
    ctx: &Arc<Ctx>,
    pool: &ThreadPool,
    subs: &[mpsc::Sender<Cmd>],
    target: usize,
    extra: u8,
    timeout_us: Option<u8>,
) {
    let Some(capacity) = ctx.capacity else {
        return;
    };
    // Submitters idle, and the pool exactly `target` workers strong (no
    // worker about to start, none about to retire).
    barrier(subs);
    ctx.wait_settled(target);
    let gate = Arc::new(Gate {
        open: Mutex::new(false),
        opened: Condvar::new(),
    });
    let mut gates: Vec<Arc<Rec>> = Vec::new();
    loop {
        let held = gates.iter().filter(|r| r.runs.load(SeqCst) > 0).count();
        // A gate blocks its thread, so each one held is a distinct worker.
        assert!(held <= target, "{held} gate jobs run on {target} workers");
        if held == target {
            break;
        }
        if held == gates.len() {
            // No gate is waiting in the queue: add one (without blocking, as
            // the queue may be full of jobs waiting behind the gates).
            let rec = ctx.new_rec(None, Kind::Ok, false);
            match pool.try_execute(make_job(ctx, &rec, Kind::Ok, Some(Arc::clone(&gate)))) {
                Ok(()) => {
                    accept(&rec, false, "probe gate");
                    gates.push(rec);
                }
                Err(err) => reject(ctx, &rec, err, Via::TryExecute, false, "probe gate"),
            }
        }
        spin();
    }
    // Every worker is held and nobody else submits: the queue is still.
    for i in 0..capacity + 1 + usize::from(extra % 3) {
        let queued = pool.queued_count();
        let rec = ctx.new_rec(None, Kind::Ok, false);
        let job = make_job(ctx, &rec, Kind::Ok, None);
        let (via, result) = match timeout_us {
            Some(us) if i % 2 == 1 => (
                Via::ExecuteTimeout(us),
                pool.execute_timeout(job, micros(us)),
            ),
            _ => (Via::TryExecute, pool.try_execute(job)),
        };
        match result {
            Ok(()) => {
                assert!(
                    queued < capacity,
                    "probe: {via:?} accepted job {} with {queued} of {capacity} slots taken",
                    rec.id
                );
                accept(&rec, false, "probe");
                assert_eq!(
                    pool.queued_count(),
                    queued + 1,
                    "probe: queued_count after accepting job {} into a still queue",
                    rec.id
                );
            }
            Err(err) => {
                assert!(
                    queued >= capacity,
                    "probe: {via:?} refused job {} ({err}) with {queued} of {capacity} slots taken",
                    rec.id
                );
                reject(ctx, &rec, err, via, false, "probe");
            }
        }
    }
    gate.open();
}

// ---------------------------------------------------------------------------
// Shutdown

/// Shuts `pool` down by `how` on this thread and checks the ledger at once.
/// `handle`: one of the pool's handles, for handed-back jobs run here.
/// `in_job`: this thread is a worker of the pool, inside one of its jobs.
fn shut_down(ctx: &Arc<Ctx>, pool: ThreadPool, how: How, handle: &Handle, in_job: bool) {
    let stack: Vec<usize> = JOB_STACK.with(|s| s.borrow().clone());
    if let How::ShutdownNow { .. } = how {
        ctx.shutdown_now_started.store(true, SeqCst);
    }
    ctx.shutdown_started.store(true, SeqCst);
    match how {
        How::Shutdown => {
            pool.shutdown();
            ctx.after_shutdown(&stack);
        }
        How::Drop => {
            drop(pool);
            ctx.after_shutdown(&stack);
        }
        How::ShutdownNow { run_mask } => {
            let jobs = pool.shutdown_now();
            ctx.after_shutdown_now(&stack, jobs.len());
            take_back(ctx, jobs, run_mask, handle);
        }
        How::ShutdownTimeout { us, generous } => {
            let timeout = if generous { GENEROUS } else { micros(us) };
            // `Ok`, even from inside a job: everything but the jobs
            // suspended beneath the caller has finished.
            let finished_before: Vec<bool> = lock(&ctx.recs)
                .iter()
                .map(|rec| rec.finished.load(SeqCst))
                .collect();
            let finished = match pool.shutdown_timeout(timeout) {
                Ok(()) => true,
                Err(late) => {
                    check_timed_out(ctx, &late, &finished_before);
                    false
                }
            };
            if finished {
                ctx.after_shutdown(&stack);
            } else {
                ctx.draining.store(true, SeqCst);
                ctx.shutdown_done.store(true, SeqCst);
                if !in_job {
                    // Inside a job this thread may be the only worker left
                    // to drain the queue: the owner waits instead.
                    ctx.wait_drained(0);
                    ctx.check_finished(&ctx.accepted_now(), &[], "after a late shutdown");
                    ctx.check_workers_gone(0, "after a late shutdown");
                }
            }
        }
    }
}

/// Checks a `ShutdownTimedOut`: what it counts (`queued() + running()`) is
/// among the jobs that had not finished when `shutdown_timeout` was called
/// or were submitted since, give or take one job per worker whose body has
/// ended but which the pool has not yet counted out; its `Display` gives
/// both numbers; it is an `Error`, `Clone` and `Eq`.
fn check_timed_out(ctx: &Ctx, late: &ShutdownTimedOut, finished_before: &[bool]) {
    let (queued, running) = (late.queued(), late.running());
    let recs = lock(&ctx.recs).len();
    let unfinished = recs - finished_before.iter().filter(|&&f| f).count();
    let slack = ctx.max_target.load(SeqCst);
    assert!(
        queued + running <= unfinished + slack,
        "shutdown_timeout timed out with {queued} queued and {running} running, but only \
         {unfinished} jobs were unfinished (or new) and {slack} workers at most"
    );
    let as_error: &(dyn std::error::Error + Send + Sync + 'static) = late;
    let shown = as_error.to_string();
    assert!(
        shown.contains(&queued.to_string()) && shown.contains(&running.to_string()),
        "ShutdownTimedOut's Display omits its counts: {shown}"
    );
    assert_eq!(&late.clone(), late, "ShutdownTimedOut's Clone");
    assert!(!format!("{late:?}").is_empty(), "ShutdownTimedOut's Debug");
}

/// Runs or drops each job `shutdown_now` handed back (bit `i % 8` of
/// `run_mask`), checking what `Job::run` does with each kind of job.
fn take_back(ctx: &Ctx, jobs: Vec<Job>, run_mask: u8, handle: &Handle) {
    ctx.handed_back.fetch_add(jobs.len(), SeqCst);
    CALLER_HANDLE.with(|h| *h.borrow_mut() = Some(handle.clone()));
    for (i, job) in jobs.into_iter().enumerate() {
        assert!(!format!("{job:?}").is_empty(), "a handed-back Job's Debug");
        if run_mask & (1 << (i % 8)) == 0 {
            DROPPING_HANDED_BACK.with(|d| d.set(true));
            drop(job);
            DROPPING_HANDED_BACK.with(|d| d.set(false));
            continue;
        }
        LAST_STARTED.with(|l| l.set(None));
        BY_CALLER.with(|c| c.set(true));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
        BY_CALLER.with(|c| c.set(false));
        let id = LAST_STARTED
            .with(Cell::take)
            .expect("Job::run returned without running a job");
        let rec = ctx.rec(id);
        assert_eq!(
            rec.caller_runs.load(SeqCst),
            1,
            "Job::run ran job {id}, which is not a handed-back job"
        );
        match outcome {
            Ok(()) => assert!(
                rec.spawned || !rec.panics,
                "handed-back job {id} panicked, but Job::run returned normally"
            ),
            Err(payload) => {
                assert!(
                    !rec.spawned,
                    "Job::run let spawned job {id}'s panic escape instead of giving it to its handle"
                );
                assert!(rec.panics, "Job::run panicked, but job {id} does not");
                assert!(is_deliberate(&*payload), "Job::run: a foreign panic");
                if payload.is::<Bomb>() {
                    std::mem::forget(payload); // its drop would panic; it is zero-sized
                }
            }
        }
    }
    CALLER_HANDLE.with(|h| h.borrow_mut().take());
}

/// The pool, parked where a job can take it.
struct Parking {
    pool: Mutex<Option<ThreadPool>>,
    filled: Condvar,
    /// Set when the job that shut the pool down has finished.
    done: Mutex<bool>,
    done_cv: Condvar,
}

fn shutdown_job(
    ctx: &Arc<Ctx>,
    parking: &Arc<Parking>,
    rec: &Arc<Rec>,
    how: How,
    sleep_first: bool,
) -> impl FnOnce() + Send + 'static {
    let (ctx, parking) = (Arc::clone(ctx), Arc::clone(parking));
    let guard = Unrun {
        rec: Arc::clone(rec),
        armed: true,
    };
    move || {
        let mut guard = guard;
        guard.armed = false;
        let rec = &guard.rec;
        assert_eq!(
            rec.runs.fetch_add(1, SeqCst),
            0,
            "the shutting-down job ran twice"
        );
        JOB_STACK.with(|s| {
            let mut stack = s.borrow_mut();
            rec.below
                .store(stack.last().copied().unwrap_or(NONE), SeqCst);
            stack.push(rec.id);
        });
        if sleep_first {
            thread::sleep(Duration::from_micros(20));
        }
        let pool = {
            let mut parked = lock(&parking.pool);
            loop {
                if let Some(pool) = parked.take() {
                    break pool;
                }
                parked = parking
                    .filled
                    .wait(parked)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        // This job may run nested in a join on its worker (above jobs that
        // other workers' jobs may be joining): the shutdown must not
        // deadlock, and `shut_down` checks what it may leave running.
        let handle = Handle::current().expect("the shutting-down job runs on a worker");
        shut_down(&ctx, pool, how, &handle, true);
        // This worker still serves a (now closed) pool: a submission from
        // here must be refused and handed back.
        let late = submit(
            &ctx,
            Target::Handle(&handle),
            Some(rec.id),
            Via::Execute,
            Kind::Ok,
            "after a shutdown in a job",
        );
        assert!(late.is_none());
        JOB_STACK.with(|s| s.borrow_mut().pop());
        rec.finished.store(true, SeqCst);
        *lock(&parking.done) = true;
        parking.done_cv.notify_all();
    }
}

// ---------------------------------------------------------------------------
// Submitter threads

enum Cmd {
    Submit(Via, Kind),
    Burst(u8, Via, Kind),
    Barrier(mpsc::Sender<()>),
    ShutDown(ThreadPool, How),
}

fn submitter(ctx: Arc<Ctx>, handle: Handle, rx: mpsc::Receiver<Cmd>) {
    let mut spawned = Vec::new();
    for cmd in rx {
        match cmd {
            Cmd::Submit(via, kind) => {
                spawned.extend(submit(
                    &ctx,
                    Target::Handle(&handle),
                    None,
                    via,
                    kind,
                    "submitter",
                ));
            }
            Cmd::Burst(n, Via::Batch, kind) => {
                let kinds = vec![kind; usize::from(n % (MAX_BURST + 1))];
                let target = Target::Handle(&handle);
                submit_batch(&ctx, target, None, &kinds, "submitter batch");
            }
            Cmd::Burst(n, via, kind) => {
                for _ in 0..n % (MAX_BURST + 1) {
                    spawned.extend(submit(
                        &ctx,
                        Target::Handle(&handle),
                        None,
                        via,
                        kind,
                        "submitter burst",
                    ));
                }
            }
            Cmd::Barrier(ack) => {
                let _ = ack.send(());
            }
            Cmd::ShutDown(pool, how) => shut_down(&ctx, pool, how, &handle, false),
        }
    }
    // Joined only once the owner is done: a join of a handed-back job waits
    // for whoever called shutdown_now to run or drop it.
    for (rec, joiner) in spawned {
        join_outside(&ctx, &rec, joiner, JoinHow::Join, "submitter");
    }
}

fn barrier(subs: &[mpsc::Sender<Cmd>]) {
    let (tx, rx) = mpsc::channel();
    for s in subs {
        s.send(Cmd::Barrier(tx.clone())).expect("submitter gone");
    }
    for _ in subs {
        rx.recv().expect("submitter gone");
    }
}

// ---------------------------------------------------------------------------
// One input

fn build(ctx: &Arc<Ctx>, threads: usize, hooks_panic: bool, how: u8) -> ThreadPool {
    let (c1, c2, c3) = (Arc::clone(ctx), Arc::clone(ctx), Arc::clone(ctx));
    let mut builder = match how % 3 {
        0 => Builder::new(),
        1 => ThreadPool::builder(),
        _ => Builder::default(),
    };
    if let stack @ 1.. = how / 3 % 4 {
        builder = builder.stack_size((1 + usize::from(stack)) << 20);
    }
    let mut builder = builder
        .num_threads(threads)
        .thread_name(|i| format!("{WORKER_PREFIX}{i}"))
        .on_thread_start(move |i| {
            {
                let mut indices = lock(&c1.indices);
                assert!(!indices.contains(&i), "worker index {i} started twice");
                indices.push(i);
            }
            c1.started.fetch_add(1, SeqCst);
            EXIT.with(|e| *e.borrow_mut() = Some(ExitGuard(Arc::clone(&c1))));
            if hooks_panic {
                panic::panic_any(Deliberate);
            }
        })
        .on_thread_stop(move |i| {
            assert!(
                lock(&c2.indices).contains(&i),
                "worker {i} stopped without starting"
            );
            c2.stopped.fetch_add(1, SeqCst);
            if hooks_panic {
                panic::panic_any(Deliberate);
            }
        });
    if let Some(capacity) = ctx.capacity {
        builder = builder.queue_capacity(capacity);
    }
    let mode = ctx.handler;
    if mode != HandlerMode::None {
        builder = builder.panic_handler(move |payload| {
            assert!(
                is_deliberate(&*payload),
                "the panic handler got a foreign payload"
            );
            c3.handled_panics.fetch_add(1, SeqCst);
            drop(payload); // a Bomb panics here; the pool must contain that
            if mode == HandlerMode::CountThenPanic {
                panic::panic_any(Deliberate);
            }
        });
    }
    builder.build().expect("building the pool failed")
}

fn run(input: &Input) {
    // The owner thread (libFuzzer's) outlives inputs.
    JOB_STACK.with(|s| s.borrow_mut().clear());

    let threads = 1 + usize::from(input.threads % 3);
    let capacity = match input.capacity % 5 {
        0 => None,
        c => Some(usize::from(c)),
    };
    let ctx = Arc::new(Ctx {
        capacity,
        handler: input.handler,
        recs: Mutex::new(Vec::new()),
        shutdown_started: AtomicBool::new(false),
        shutdown_now_started: AtomicBool::new(false),
        shutdown_done: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        handed_back: AtomicUsize::new(0),
        handled_panics: AtomicUsize::new(0),
        started: AtomicUsize::new(0),
        stopped: AtomicUsize::new(0),
        exited: AtomicUsize::new(0),
        indices: Mutex::new(Vec::new()),
        max_target: AtomicUsize::new(threads),
        scoped_ran: AtomicUsize::new(0),
        scoped_panicked: AtomicUsize::new(0),
        scopes: AtomicUsize::new(0),
    });
    let parking = Arc::new(Parking {
        pool: Mutex::new(None),
        filled: Condvar::new(),
        done: Mutex::new(false),
        done_cv: Condvar::new(),
    });
    let mut pool = Some(build(&ctx, threads, input.hooks_panic, input.builder));
    let owner_handle = pool.as_ref().unwrap().handle();
    let mut target = threads;

    let mut subs = Vec::new();
    let mut joins = Vec::new();
    for _ in 0..input.submitters % 3 {
        let (tx, rx) = mpsc::channel();
        let (c, h) = (Arc::clone(&ctx), owner_handle.clone());
        subs.push(tx);
        joins.push(thread::spawn(move || submitter(c, h, rx)));
    }
    let send = |sub: u8, cmd: Cmd| {
        subs[usize::from(sub) % subs.len()]
            .send(cmd)
            .expect("submitter gone")
    };

    let ops = &input.ops[..input.ops.len().min(MAX_OPS)];
    let terminal_at = usize::from(input.terminal_at) % (ops.len() + 1);
    let Terminal { how, place } = input.terminal;
    let mut last_counts = (0, 0);
    let mut in_job = false;
    let mut owned: Vec<Spawned> = Vec::new();

    for (i, op) in ops.iter().chain(std::iter::once(&Op::Metrics)).enumerate() {
        if i == terminal_at {
            let p = pool.take().expect("the pool is shut down once");
            if let How::ShutdownTimeout { .. } = how {
                // Detached workers are waited for by count: let any worker
                // a resize started register first.
                ctx.wait_settled(target);
            }
            match place {
                Place::OnSubmitter { sub } if !subs.is_empty() => send(sub, Cmd::ShutDown(p, how)),
                Place::Owner | Place::OnSubmitter { .. } => {
                    shut_down(&ctx, p, how, &owner_handle, false)
                }
                Place::InJob { sleep_first } => {
                    let rec = ctx.new_rec(None, Kind::Ok, false);
                    p.execute(shutdown_job(&ctx, &parking, &rec, how, sleep_first));
                    rec.status.store(ACCEPTED, SeqCst);
                    *lock(&parking.pool) = Some(p);
                    parking.filled.notify_all();
                    in_job = true;
                }
            }
        }
        if i == ops.len() {
            break; // the chained Metrics only gives the terminal a slot at the end
        }
        let on_pool = pool
            .as_ref()
            .map_or(Target::Handle(&owner_handle), Target::Pool);
        match (op.clone(), pool.as_ref()) {
            (Op::Owner { via, kind }, _) => {
                owned.extend(submit(&ctx, on_pool, None, via, kind, "owner"));
            }
            (Op::OwnerHandle { via, kind }, _) => {
                owned.extend(submit(
                    &ctx,
                    Target::Handle(&owner_handle),
                    None,
                    via,
                    kind,
                    "owner handle",
                ));
            }
            (Op::Submit { via, kind, .. }, _) if subs.is_empty() => {
                owned.extend(submit(
                    &ctx,
                    Target::Handle(&owner_handle),
                    None,
                    via,
                    kind,
                    "owner handle",
                ));
            }
            (Op::Submit { sub, via, kind }, _) => send(sub, Cmd::Submit(via, kind)),
            (Op::Burst { sub, n, via, kind }, _) if !subs.is_empty() => {
                send(sub, Cmd::Burst(n, via, kind))
            }
            (
                Op::Burst {
                    n,
                    via: Via::Batch,
                    kind,
                    ..
                },
                _,
            ) => {
                // Without submitters: the owner's handle, as for `Burst`.
                let kinds = vec![kind; usize::from(n % (MAX_BURST + 1))];
                let target = Target::Handle(&owner_handle);
                submit_batch(&ctx, target, None, &kinds, "owner batch");
            }
            (Op::Burst { n, via, kind, .. }, _) => {
                for _ in 0..n % (MAX_BURST + 1) {
                    owned.extend(submit(
                        &ctx,
                        Target::Handle(&owner_handle),
                        None,
                        via,
                        kind,
                        "owner burst",
                    ));
                }
            }
            (Op::Join { which, how }, _) => {
                if !owned.is_empty() {
                    let (rec, joiner) = owned.swap_remove(usize::from(which) % owned.len());
                    join_outside(&ctx, &rec, joiner, how, "owner");
                }
            }
            (Op::Probe { extra, timeout_us }, Some(p)) => {
                probe(&ctx, p, &subs, target, extra, timeout_us);
            }
            (Op::Resize { n, settle }, Some(p)) => {
                // One resize at a time: with a shrink still retiring workers
                // and a grow still starting them, the hooks' count of live
                // workers could not be trusted.
                ctx.wait_settled(target);
                let n = usize::from(n % 4);
                match p.set_num_threads(n) {
                    Ok(()) => {
                        assert!(n > 0, "set_num_threads(0) succeeded");
                        target = n;
                        ctx.max_target.fetch_max(n, SeqCst);
                    }
                    Err(err @ BuildError::ZeroThreads) => {
                        assert_eq!(n, 0, "set_num_threads({n})");
                        let as_error: &(dyn std::error::Error + Send + Sync + 'static) = &err;
                        assert!(
                            as_error.source().is_none() && !as_error.to_string().is_empty(),
                            "BuildError::ZeroThreads: no source, some message"
                        );
                    }
                    Err(err) => panic!("set_num_threads({n}): {err}"),
                }
                assert_eq!(p.num_threads(), target, "num_threads after a resize");
                if settle {
                    ctx.wait_settled(target);
                }
            }
            (Op::WaitIdle { quiesce }, Some(p)) => {
                if quiesce {
                    barrier(&subs);
                    p.wait_idle();
                    ctx.check_exact(p);
                    // Idle surplus workers retire.
                    ctx.wait_settled(target);
                } else {
                    let before = ctx.accepted_now();
                    p.wait_idle();
                    ctx.check_finished(&before, &[], "after wait_idle");
                }
            }
            (Op::WaitIdle { quiesce }, None) => {
                if quiesce {
                    barrier(&subs);
                }
            }
            (Op::WaitIdleTimeout(us), Some(p)) => {
                let before = ctx.accepted_now();
                if p.wait_idle_timeout(micros(us)) {
                    ctx.check_finished(&before, &[], "after wait_idle_timeout returned true");
                }
            }
            (Op::Metrics, Some(p)) => {
                assert!(
                    Handle::current().is_none(),
                    "Handle::current() outside the pool"
                );
                // Debug reads live state while jobs run: it must not block.
                assert!(
                    !format!("{p:?}").is_empty() && !format!("{owner_handle:?}").is_empty(),
                    "ThreadPool's / Handle's Debug"
                );
                assert_eq!(p.num_threads(), target, "num_threads");
                let counts = (p.completed_count(), p.panic_count());
                assert!(
                    counts.0 >= last_counts.0 && counts.1 >= last_counts.1,
                    "counters went backwards: {last_counts:?} -> {counts:?}"
                );
                last_counts = counts;
                // Read after the counters: a job counted there is no longer
                // active. A job can be taken (active) before its body starts,
                // at most one per worker; a join on a worker nests jobs, so
                // active jobs may outnumber the workers.
                let active = p.active_count();
                let _ = p.queued_count();
                let ran = ctx.ran();
                assert!(
                    counts.0 + counts.1 <= ran,
                    "counters {counts:?} exceed the {ran} jobs that started"
                );
                assert!(
                    counts.0 + counts.1 + active <= ran + MAX_THREADS,
                    "counters {counts:?} and {active} active exceed the {ran} jobs that started"
                );
            }
            (Op::Probe { .. } | Op::Resize { .. } | Op::WaitIdleTimeout(_) | Op::Metrics, None) => {
                assert!(
                    Handle::current().is_none(),
                    "Handle::current() outside the pool"
                );
            }
            (Op::Pause(us), _) => sleep_us(us),
            (
                Op::Scope {
                    jobs,
                    closure_panic,
                    newest_first,
                },
                Some(p),
            ) => {
                let jobs = &jobs[..jobs.len().min(MAX_SCOPED)];
                let plan = Plan {
                    jobs,
                    stop: closure_panic.map(|at| usize::from(at) % (jobs.len() + 1)),
                    newest_first,
                    nest: true,
                };
                run_scope(&ctx, p, plan, "the owner's scope");
            }
            (Op::Scope { .. }, None) => {}
        }
    }
    assert!(pool.is_none(), "the terminal always runs");

    drop(subs); // submitters finish their queues, join their handles, exit
    for j in joins {
        j.join().expect("a submitter thread panicked");
    }
    if in_job {
        let mut done = lock(&parking.done);
        while !*done {
            done = parking
                .done_cv
                .wait(done)
                .unwrap_or_else(|e| e.into_inner());
        }
    }
    // Every handle resolves, whatever happened to its job.
    for (rec, joiner) in owned {
        join_outside(&ctx, &rec, joiner, JoinHow::Join, "owner, at the end");
    }
    // After a shutdown inside a job, that worker was detached, and so were
    // the workers whose jobs were suspended under it (waiting, through joins,
    // on a job beneath the caller); after a late shutdown_timeout, all were.
    // Now that the input has settled, they must have finished every accepted
    // job and exited (`check_final`).
    ctx.wait_drained(0);
    assert!(
        lock(&parking.pool).is_none(),
        "the pool was left in its slot"
    );
    ctx.check_final();
}

// ---------------------------------------------------------------------------
// Watchdog and panic hook

/// The input as `run` interprets it (the raw fields are reduced modulo their
/// ranges), for crash reports.
fn describe(input: &Input) -> String {
    let ops = input.ops.len().min(MAX_OPS);
    let capacity = match input.capacity % 5 {
        0 => "unbounded".to_owned(),
        c => format!("capacity {c}"),
    };
    format!(
        "{} worker(s), {capacity}, builder {} with stack {}, {} submitter thread(s), {} ops, \
         terminal {:?} before op {}\n\
         {input:#?}",
        1 + input.threads % 3,
        ["Builder::new", "ThreadPool::builder", "Builder::default"][usize::from(input.builder % 3)],
        ["default", "2 MiB", "3 MiB", "4 MiB"][usize::from(input.builder / 3 % 4)],
        input.submitters % 3,
        ops,
        input.terminal,
        usize::from(input.terminal_at) % (ops + 1),
    )
}

/// The input being run and since when: read by the watchdog and the panic hook.
static CURRENT: Mutex<Option<(Instant, Input)>> = Mutex::new(None);

/// Set by the first failed check (or the watchdog) on its way to the abort.
/// A check failing on another thread meanwhile (often: the thread that
/// checked the ledger and a job that checked itself) would abort too, and a
/// second abort kills the process inside libFuzzer's crash handler, before it
/// has saved the input; so every later one waits for the first instead.
static FAILING: AtomicBool = AtomicBool::new(false);

/// For every failure but the first: waits (forever) for the first's abort.
fn first_failure() -> bool {
    if FAILING.swap(true, SeqCst) {
        loop {
            thread::park();
        }
    }
    true
}

/// One watchdog thread for the whole process: it polls `CURRENT` and aborts
/// (a crash libFuzzer records with the input) if one input has been running
/// longer than the limit. Inputs normally take milliseconds; the default
/// limit of 10 s leaves room for a loaded machine and sanitizer overhead.
fn start_watchdog() {
    let limit = std::env::var("WEFT_FUZZ_HANG_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::from_secs(DEFAULT_HANG_SECS), Duration::from_secs);
    let tick = (limit / 8).clamp(Duration::from_millis(10), Duration::from_millis(500));
    thread::Builder::new()
        .name("fuzz-watchdog".into())
        .spawn(move || loop {
            thread::sleep(tick);
            let current = lock(&CURRENT);
            if let Some((since, input)) = &*current {
                if since.elapsed() > limit && first_failure() {
                    eprintln!(
                        "\nweft-fuzz watchdog: one input has run for {:?} (limit {limit:?}): \
                         a hang or deadlock. The input: {}",
                        since.elapsed(),
                        describe(input)
                    );
                    std::process::abort();
                }
            }
        })
        .expect("cannot start the watchdog thread");
}

/// Lets deliberate panics unwind quietly; every other panic prints the
/// decoded input and goes on to libFuzzer's hook, which aborts.
fn install_panic_hook() {
    let libfuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if is_deliberate(info.payload()) || is_scope_panic(info.payload()) || !first_failure() {
            return;
        }
        if let Ok(current) = CURRENT.try_lock() {
            if let Some((_, input)) = &*current {
                eprintln!(
                    "\nweft-fuzz: a check failed. The input: {}",
                    describe(input)
                );
            }
        }
        libfuzzer_hook(info);
    }));
}

fuzz_target!(
    init: {
        install_panic_hook();
        start_watchdog();
    },
    |input: Input| {
        *lock(&CURRENT) = Some((Instant::now(), input.clone()));
        run(&input);
        *lock(&CURRENT) = None;
    }
);
