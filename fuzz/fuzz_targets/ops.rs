//! Fuzz target `ops`: random operation sequences against a real pool, checked
//! against the ledger (DESIGN.md, "The ledger") with a record per job.
//!
//! One input is a small program: how to build the pool (1–3 workers, which
//! hooks and panic handler, whether those panic), 0–2 submitter threads that
//! hold `Handle`s, up to 64 operations run by the owner thread (submitting on
//! the pool, through handles, from submitter threads, in bursts; waiting for
//! idleness; reading the metrics), and one terminal operation placed anywhere
//! in the sequence: `shutdown`, `drop`, a drop from inside one of the pool's
//! own jobs, or a drop on a submitter thread while the owner keeps submitting.
//! Operations after the terminal still submit through handles, so some
//! submissions race the shutdown and some are refused.
//!
//! Every job gets a record (`Rec`): its status as its submitter saw it
//! (pending / accepted / rejected), how often it ran, whether it finished, and
//! how often it was dropped without running (a guard inside the closure
//! counts that). The checks:
//!
//! * a job runs at most once, never after it was rejected, never after
//!   `shutdown`/`drop` returned, and is never still running then;
//! * a rejected job has kind `ShutDown`, only happens once shutdown began,
//!   comes back from `into_inner` unrun, and dropping what `into_inner`
//!   returned is what drops that job (so it is the very closure submitted);
//! * a submission that starts after shutdown returned is refused;
//! * `wait_idle` / a successful `wait_idle_timeout` returns only once every
//!   job accepted before the call (and every child those accepted) finished;
//!   at a quiescent point (submitters parked) the counters are exact:
//!   `completed_count` = accepted non-panicking jobs, `panic_count` = accepted
//!   panicking jobs, nothing queued or running, the panic handler saw each;
//! * when shutdown returns, every job accepted so far finished and every
//!   worker ran its start and stop hooks and has exited (a thread-local's
//!   destructor counts exits); after a drop from inside a job the remaining
//!   worker exits soon after that job;
//! * at the end: every accepted job ran exactly once and was never dropped,
//!   every rejected job never ran and was dropped once, nothing is pending.
//!
//! A failed check is a panic that is not one of the deliberate job panics, so
//! libFuzzer's panic hook aborts the process there (a crash), after this
//! target's hook has printed the decoded input. A hang becomes a crash through
//! the watchdog thread (see `watchdog`).
//!
//! Job panics are deliberate and caught by the pool (`catch_unwind`), which
//! needs unwinding: cargo-fuzz builds with `panic=unwind` (it sets no
//! `-Cpanic`), but libfuzzer-sys installs a panic hook that aborts on *every*
//! panic, caught or not. `init` wraps that hook: panics whose payload is one
//! of this file's marker types return quietly and unwind into the pool;
//! anything else goes on to libFuzzer's hook and aborts.

#![no_main]

use std::any::Any;
use std::cell::RefCell;
use std::panic;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weft::{Builder, Handle, SubmitError, SubmitErrorKind, ThreadPool};

/// Operations per input (longer inputs are truncated).
const MAX_OPS: usize = 64;
/// Jobs per `Burst`.
const MAX_BURST: u8 = 4;
/// Longest sleep in a job or a `Pause`, in microseconds.
const MAX_SLEEP_US: u8 = 50;
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
    /// Submitter threads: `submitters % 3`.
    submitters: u8,
    handler: HandlerMode,
    /// `on_thread_start` / `on_thread_stop` panic after recording.
    hooks_panic: bool,
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

/// What a job does when it runs.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Ok,
    Panic,
    /// Panics with a payload whose `Drop` panics too.
    PanicBomb,
    Yield,
    /// Sleeps `us % (MAX_SLEEP_US + 1)` microseconds.
    Sleep(u8),
    /// Submits `n % 3` children through `Handle::current()`; children of a
    /// job with `depth % 2 == 1` have children themselves, one level down (so
    /// at most 1 + 2 + 4 jobs). With `then_panic` the parent panics after
    /// submitting (its children must still run) and one leaf child panics.
    Children {
        n: u8,
        depth: u8,
        then_panic: bool,
    },
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    /// Owner: `pool.execute` (after the terminal: through the owner's handle).
    Execute(Kind),
    /// Owner: `handle.execute` on its own handle.
    OwnerHandle(Kind),
    /// A submitter thread (`sub % submitters`) submits through its handle.
    Submit { sub: u8, kind: Kind },
    /// A submitter submits `n % (MAX_BURST + 1)` jobs back to back.
    Burst { sub: u8, n: u8, kind: Kind },
    /// `pool.wait_idle()`. With `quiesce` the submitters are parked first
    /// (a barrier), so the counters can be checked exactly.
    WaitIdle { quiesce: bool },
    /// `pool.wait_idle_timeout(us µs)`.
    WaitIdleTimeout(u8),
    /// Reads every metric and checks what a snapshot can promise.
    Metrics,
    /// The owner sleeps `us % (MAX_SLEEP_US + 1)` microseconds.
    Pause(u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Terminal {
    /// The owner calls `pool.shutdown()`.
    Shutdown,
    /// The owner drops the pool.
    Drop,
    /// A job of the pool takes the pool out of a shared slot and drops it.
    DropInJob { sleep_first: bool },
    /// The pool is sent to a submitter thread, which drops it while the owner
    /// carries on. Without submitters this is `Drop`.
    DropOnSubmitter { sub: u8 },
}

// ---------------------------------------------------------------------------
// Panic payloads that are deliberate (the hook lets them unwind quietly)

/// The payload of every deliberate panic.
struct Deliberate;

/// A deliberate panic payload whose destructor panics (with `Deliberate`).
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
    /// The submitter's verdict, stored after the submission call returned.
    status: AtomicU8,
    runs: AtomicU32,
    /// Set at the very end of the job's body (before a deliberate panic).
    finished: AtomicBool,
    /// Times the closure was dropped without having run.
    dropped_unrun: AtomicU32,
}

/// Shared by the owner, the submitters, the jobs and the hooks of one input.
struct Ctx {
    threads: usize,
    handler: HandlerMode,
    recs: Mutex<Vec<Arc<Rec>>>,
    /// Set just before the pool is shut down / dropped.
    shutdown_started: AtomicBool,
    /// Set just after shutdown / drop returned.
    shutdown_done: AtomicBool,
    /// Calls of the panic handler.
    handled_panics: AtomicUsize,
    /// `on_thread_start` / `on_thread_stop` calls, and worker threads gone
    /// (a thread-local's destructor, after the worker's body returned).
    started: AtomicUsize,
    stopped: AtomicUsize,
    exited: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ctx {
    fn new_rec(&self, parent: Option<usize>, kind: Kind) -> Arc<Rec> {
        let mut recs = lock(&self.recs);
        let rec = Arc::new(Rec {
            id: recs.len(),
            parent,
            panics: kind_panics(kind),
            status: AtomicU8::new(PENDING),
            runs: AtomicU32::new(0),
            finished: AtomicBool::new(false),
            dropped_unrun: AtomicU32::new(0),
        });
        recs.push(Arc::clone(&rec));
        rec
    }

    /// The ids of the jobs accepted so far.
    fn accepted_now(&self) -> Vec<bool> {
        lock(&self.recs)
            .iter()
            .map(|r| r.status.load(SeqCst) == ACCEPTED)
            .collect()
    }

    /// Every job in `before`, and every accepted descendant of one, has run
    /// exactly once and finished. (A child is accepted before its parent
    /// finishes, so it was accepted before the moment being checked too.)
    fn check_finished(&self, before: &[bool], exempt: Option<usize>, what: &str) {
        let recs = lock(&self.recs);
        let mut covered = vec![false; recs.len()];
        for r in recs.iter() {
            let by_parent =
                r.parent.is_some_and(|p| covered[p]) && r.status.load(SeqCst) == ACCEPTED;
            covered[r.id] =
                (before.get(r.id).copied().unwrap_or(false) || by_parent) && Some(r.id) != exempt;
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
                    "accepted job {} was dropped",
                    r.id
                );
            }
        }
    }

    /// At a quiescent idle moment, with the pool still alive: the counters
    /// are exact.
    fn check_exact(&self, pool: &ThreadPool) {
        let (mut ok, mut panicked) = (0, 0);
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
                    } else {
                        ok += 1;
                    }
                }
                REJECTED => panic!("job {} was rejected by a live pool", r.id),
                _ => panic!(
                    "job {}: its submission is pending at a quiescent point",
                    r.id
                ),
            }
        }
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
                panicked,
                "the panic handler did not see every panic"
            );
        }
    }

    /// Jobs that have started running so far.
    fn ran(&self) -> usize {
        lock(&self.recs)
            .iter()
            .filter(|r| r.runs.load(SeqCst) > 0)
            .count()
    }

    /// Right after shutdown / drop returned (`exempt`: the job that dropped
    /// the pool, still running by necessity).
    fn after_shutdown(&self, exempt: Option<usize>) {
        self.shutdown_done.store(true, SeqCst);
        self.check_finished(&self.accepted_now(), exempt, "after shutdown");
        let n = self.threads;
        let gone = if exempt.is_some() { n - 1 } else { n };
        assert_eq!(
            self.started.load(SeqCst),
            n,
            "after shutdown: not every worker started"
        );
        assert!(
            self.stopped.load(SeqCst) >= gone,
            "after shutdown: a worker did not stop"
        );
        assert!(
            self.exited.load(SeqCst) >= gone,
            "after shutdown: a worker was not joined"
        );
    }

    /// At the very end, when no submission is in flight.
    fn check_final(&self) {
        let mut panicked = 0;
        for r in lock(&self.recs).iter() {
            let (runs, dropped) = (r.runs.load(SeqCst), r.dropped_unrun.load(SeqCst));
            match r.status.load(SeqCst) {
                ACCEPTED => {
                    assert!(
                        runs == 1 && r.finished.load(SeqCst) && dropped == 0,
                        "accepted job {} ran {runs} times, dropped unrun {dropped} times",
                        r.id
                    );
                    panicked += usize::from(r.panics);
                }
                REJECTED => assert!(
                    runs == 0 && dropped == 1,
                    "rejected job {} ran {runs} times, dropped {dropped} times",
                    r.id
                ),
                _ => panic!("job {}: its submission never returned", r.id),
            }
        }
        let n = self.threads;
        assert_eq!(self.started.load(SeqCst), n, "on_thread_start calls");
        assert_eq!(self.stopped.load(SeqCst), n, "on_thread_stop calls");
        assert_eq!(self.exited.load(SeqCst), n, "worker threads exited");
        if self.handler != HandlerMode::None {
            assert_eq!(
                self.handled_panics.load(SeqCst),
                panicked,
                "panic handler calls"
            );
        }
    }
}

fn kind_panics(kind: Kind) -> bool {
    match kind {
        Kind::Panic | Kind::PanicBomb => true,
        Kind::Children { then_panic, .. } => then_panic,
        Kind::Ok | Kind::Yield | Kind::Sleep(_) => false,
    }
}

fn sleep_us(us: u8) {
    let us = us % (MAX_SLEEP_US + 1);
    if us > 0 {
        thread::sleep(Duration::from_micros(us.into()));
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
            self.rec.dropped_unrun.fetch_add(1, SeqCst);
        }
    }
}

fn make_job(ctx: &Arc<Ctx>, rec: &Arc<Rec>, kind: Kind) -> impl FnOnce() + Send + 'static {
    let ctx = Arc::clone(ctx);
    let guard = Unrun {
        rec: Arc::clone(rec),
        armed: true,
    };
    move || {
        let mut guard = guard;
        guard.armed = false;
        run_job(&ctx, &guard.rec, kind);
    }
}

fn run_job(ctx: &Arc<Ctx>, rec: &Rec, kind: Kind) {
    let id = rec.id;
    assert_eq!(rec.runs.fetch_add(1, SeqCst), 0, "job {id} ran twice");
    assert_ne!(
        rec.status.load(SeqCst),
        REJECTED,
        "job {id} ran after it was rejected"
    );
    assert!(
        !ctx.shutdown_done.load(SeqCst),
        "job {id} started after shutdown returned"
    );
    let name = thread::current().name().map(str::to_owned);
    assert!(
        name.as_deref()
            .is_some_and(|n| n.starts_with(WORKER_PREFIX)),
        "job {id} runs on {name:?}, not on a worker"
    );
    let handle = Handle::current().expect("Handle::current() is None inside a job");
    match kind {
        Kind::Ok | Kind::Panic | Kind::PanicBomb => {}
        Kind::Yield => (0..3).for_each(|_| thread::yield_now()),
        Kind::Sleep(us) => sleep_us(us),
        Kind::Children {
            n,
            depth,
            then_panic,
        } => {
            let (n, depth) = (n % 3, depth % 2);
            for j in 0..n {
                let child = if depth > 0 {
                    Kind::Children {
                        n,
                        depth: depth - 1,
                        then_panic: then_panic && j == 0,
                    }
                } else if then_panic && j == 1 {
                    Kind::Panic
                } else {
                    Kind::Yield
                };
                submit_handle(ctx, &handle, Some(id), child, "child");
            }
        }
    }
    drop(handle);
    assert!(
        !ctx.shutdown_done.load(SeqCst),
        "job {id} was still running after shutdown returned"
    );
    rec.finished.store(true, SeqCst);
    match kind {
        Kind::Panic
        | Kind::Children {
            then_panic: true, ..
        } => panic::panic_any(Deliberate),
        Kind::PanicBomb => panic::panic_any(Bomb),
        _ => {}
    }
}

/// Records the verdict of a submission and checks what it implies.
fn settle<F>(
    ctx: &Ctx,
    rec: &Rec,
    result: Result<(), SubmitError<F>>,
    after_done: bool,
    who: &str,
) {
    let id = rec.id;
    match result {
        Ok(()) => {
            assert!(
                !after_done,
                "{who}: job {id} accepted after shutdown returned"
            );
            rec.status.store(ACCEPTED, SeqCst);
        }
        Err(err) => {
            assert_eq!(
                err.kind(),
                SubmitErrorKind::ShutDown,
                "{who}: job {id}: {err}"
            );
            assert!(
                ctx.shutdown_started.load(SeqCst),
                "{who}: job {id} rejected before shutdown began"
            );
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
    }
}

fn submit_handle(ctx: &Arc<Ctx>, handle: &Handle, parent: Option<usize>, kind: Kind, who: &str) {
    let rec = ctx.new_rec(parent, kind);
    let job = make_job(ctx, &rec, kind);
    let after_done = ctx.shutdown_done.load(SeqCst);
    let result = handle.execute(job);
    settle(ctx, &rec, result, after_done, who);
}

fn submit_pool(ctx: &Arc<Ctx>, pool: &ThreadPool, kind: Kind) {
    let rec = ctx.new_rec(None, kind);
    pool.execute(make_job(ctx, &rec, kind));
    rec.status.store(ACCEPTED, SeqCst);
}

/// Shuts `pool` down by `how` on this thread and checks the ledger at once.
fn shut_down(ctx: &Ctx, pool: ThreadPool, how: Terminal) {
    ctx.shutdown_started.store(true, SeqCst);
    match how {
        Terminal::Shutdown => pool.shutdown(),
        _ => drop(pool),
    }
    ctx.after_shutdown(None);
}

/// The pool, parked where a job can take it.
struct Slot {
    pool: Mutex<Option<ThreadPool>>,
    filled: Condvar,
    /// Set when the dropping job has finished.
    done: Mutex<bool>,
    done_cv: Condvar,
}

fn dropper_job(
    ctx: &Arc<Ctx>,
    slot: &Arc<Slot>,
    rec: &Arc<Rec>,
    sleep_first: bool,
) -> impl FnOnce() + Send + 'static {
    let (ctx, slot) = (Arc::clone(ctx), Arc::clone(slot));
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
            "the dropping job ran twice"
        );
        if sleep_first {
            thread::sleep(Duration::from_micros(20));
        }
        let pool = {
            let mut parked = lock(&slot.pool);
            loop {
                if let Some(pool) = parked.take() {
                    break pool;
                }
                parked = slot.filled.wait(parked).unwrap_or_else(|e| e.into_inner());
            }
        };
        ctx.shutdown_started.store(true, SeqCst);
        drop(pool);
        ctx.after_shutdown(Some(rec.id));
        // This worker still serves a (now closed) pool: a submission from
        // here must be refused and handed back.
        if let Some(handle) = Handle::current() {
            submit_handle(
                &ctx,
                &handle,
                Some(rec.id),
                Kind::Ok,
                "after a drop in a job",
            );
        }
        rec.finished.store(true, SeqCst);
        *lock(&slot.done) = true;
        slot.done_cv.notify_all();
    }
}

// ---------------------------------------------------------------------------
// Submitter threads

enum Cmd {
    Submit(Kind),
    Burst(u8, Kind),
    Barrier(mpsc::Sender<()>),
    DropPool(ThreadPool),
}

fn submitter(ctx: Arc<Ctx>, handle: Handle, rx: mpsc::Receiver<Cmd>) {
    for cmd in rx {
        match cmd {
            Cmd::Submit(kind) => submit_handle(&ctx, &handle, None, kind, "submitter"),
            Cmd::Burst(n, kind) => {
                for _ in 0..n % (MAX_BURST + 1) {
                    submit_handle(&ctx, &handle, None, kind, "submitter burst");
                }
            }
            Cmd::Barrier(ack) => {
                let _ = ack.send(());
            }
            Cmd::DropPool(pool) => shut_down(&ctx, pool, Terminal::Drop),
        }
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
// Worker exit detection

struct ExitGuard(Arc<Ctx>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.exited.fetch_add(1, SeqCst);
    }
}

thread_local! {
    static EXIT: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

// ---------------------------------------------------------------------------
// One input

fn build(ctx: &Arc<Ctx>, hooks_panic: bool) -> ThreadPool {
    let n = ctx.threads;
    let (c1, c2, c3) = (Arc::clone(ctx), Arc::clone(ctx), Arc::clone(ctx));
    let mut builder = Builder::new()
        .num_threads(n)
        .thread_name(|i| format!("{WORKER_PREFIX}{i}"))
        .on_thread_start(move |i| {
            assert!(i < n, "worker index {i} out of range");
            c1.started.fetch_add(1, SeqCst);
            EXIT.with(|e| *e.borrow_mut() = Some(ExitGuard(Arc::clone(&c1))));
            if hooks_panic {
                panic::panic_any(Deliberate);
            }
        })
        .on_thread_stop(move |i| {
            assert!(i < n, "worker index {i} out of range");
            c2.stopped.fetch_add(1, SeqCst);
            if hooks_panic {
                panic::panic_any(Deliberate);
            }
        });
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
    let threads = 1 + usize::from(input.threads % 3);
    let ctx = Arc::new(Ctx {
        threads,
        handler: input.handler,
        recs: Mutex::new(Vec::new()),
        shutdown_started: AtomicBool::new(false),
        shutdown_done: AtomicBool::new(false),
        handled_panics: AtomicUsize::new(0),
        started: AtomicUsize::new(0),
        stopped: AtomicUsize::new(0),
        exited: AtomicUsize::new(0),
    });
    let slot = Arc::new(Slot {
        pool: Mutex::new(None),
        filled: Condvar::new(),
        done: Mutex::new(false),
        done_cv: Condvar::new(),
    });
    let mut pool = Some(build(&ctx, input.hooks_panic));
    let owner_handle = pool.as_ref().unwrap().handle();

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
    let mut last_counts = (0, 0);
    let mut dropped_in_job = false;

    for (i, op) in ops.iter().chain(std::iter::once(&Op::Metrics)).enumerate() {
        if i == terminal_at {
            let p = pool.take().expect("the pool is shut down once");
            match input.terminal {
                Terminal::DropOnSubmitter { sub } if !subs.is_empty() => {
                    send(sub, Cmd::DropPool(p))
                }
                how @ (Terminal::Shutdown | Terminal::Drop | Terminal::DropOnSubmitter { .. }) => {
                    shut_down(&ctx, p, how)
                }
                Terminal::DropInJob { sleep_first } => {
                    let rec = ctx.new_rec(None, Kind::Ok);
                    p.execute(dropper_job(&ctx, &slot, &rec, sleep_first));
                    rec.status.store(ACCEPTED, SeqCst);
                    *lock(&slot.pool) = Some(p);
                    slot.filled.notify_all();
                    dropped_in_job = true;
                }
            }
        }
        if i == ops.len() {
            break; // the chained Metrics only gives the terminal a slot at the end
        }
        match (*op, pool.as_ref()) {
            (Op::Execute(kind), Some(p)) => submit_pool(&ctx, p, kind),
            (Op::Execute(kind) | Op::OwnerHandle(kind), _) => {
                submit_handle(&ctx, &owner_handle, None, kind, "owner handle")
            }
            (Op::Submit { kind, .. }, _) if subs.is_empty() => {
                submit_handle(&ctx, &owner_handle, None, kind, "owner handle")
            }
            (Op::Submit { sub, kind }, _) => send(sub, Cmd::Submit(kind)),
            (Op::Burst { sub, n, kind }, _) if !subs.is_empty() => send(sub, Cmd::Burst(n, kind)),
            (Op::Burst { n, kind, .. }, _) => {
                for _ in 0..n % (MAX_BURST + 1) {
                    submit_handle(&ctx, &owner_handle, None, kind, "owner burst");
                }
            }
            (Op::WaitIdle { quiesce }, Some(p)) => {
                if quiesce {
                    barrier(&subs);
                    p.wait_idle();
                    ctx.check_exact(p);
                } else {
                    let before = ctx.accepted_now();
                    p.wait_idle();
                    ctx.check_finished(&before, None, "after wait_idle");
                }
            }
            (Op::WaitIdle { quiesce }, None) => {
                if quiesce {
                    barrier(&subs);
                }
            }
            (Op::WaitIdleTimeout(us), Some(p)) => {
                let before = ctx.accepted_now();
                if p.wait_idle_timeout(Duration::from_micros(us.into())) {
                    ctx.check_finished(&before, None, "after wait_idle_timeout returned true");
                }
            }
            (Op::Metrics, Some(p)) => {
                assert!(
                    Handle::current().is_none(),
                    "Handle::current() outside the pool"
                );
                assert_eq!(p.num_threads(), threads, "num_threads");
                let counts = (p.completed_count(), p.panic_count());
                assert!(
                    counts.0 >= last_counts.0 && counts.1 >= last_counts.1,
                    "counters went backwards: {last_counts:?} -> {counts:?}"
                );
                last_counts = counts;
                assert!(
                    p.active_count() <= threads,
                    "more jobs running than workers"
                );
                let _ = p.queued_count();
                let ran = ctx.ran();
                assert!(
                    counts.0 + counts.1 <= ran,
                    "counters {counts:?} exceed the {ran} jobs that started"
                );
            }
            (Op::WaitIdleTimeout(_) | Op::Metrics, None) => {
                assert!(
                    Handle::current().is_none(),
                    "Handle::current() outside the pool"
                );
            }
            (Op::Pause(us), _) => sleep_us(us),
        }
    }
    assert!(pool.is_none(), "the terminal always runs");

    drop(subs); // submitters finish their queues and exit
    for j in joins {
        j.join().expect("a submitter thread panicked");
    }
    if dropped_in_job {
        let mut done = lock(&slot.done);
        while !*done {
            done = slot.done_cv.wait(done).unwrap_or_else(|e| e.into_inner());
        }
        drop(done);
        // The worker that dropped its own pool was detached; it must still
        // exit once that job returned. (A hang here is the watchdog's.)
        while ctx.exited.load(SeqCst) < threads {
            thread::sleep(Duration::from_micros(50));
        }
    }
    assert!(lock(&slot.pool).is_none(), "the pool was left in its slot");
    ctx.check_final();
}

// ---------------------------------------------------------------------------
// Watchdog and panic hook

/// The input as `run` interprets it (the raw fields are reduced modulo their
/// ranges), for crash reports.
fn describe(input: &Input) -> String {
    let ops = input.ops.len().min(MAX_OPS);
    format!(
        "{} worker(s), {} submitter thread(s), {} ops, terminal {:?} before op {}\n{input:#?}",
        1 + input.threads % 3,
        input.submitters % 3,
        ops,
        input.terminal,
        usize::from(input.terminal_at) % (ops + 1),
    )
}

/// The input being run and since when: read by the watchdog and the panic hook.
static CURRENT: Mutex<Option<(Instant, Input)>> = Mutex::new(None);

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
                if since.elapsed() > limit {
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

/// Lets deliberate panics unwind quietly into the pool; every other panic
/// prints the decoded input and goes on to libFuzzer's hook, which aborts.
fn install_panic_hook() {
    let libfuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if is_deliberate(info.payload()) {
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
