//! Fuzz target `config`: every way to construct a pool, and every setting,
//! against what DESIGN.md promises for it; the operations on a built pool
//! are `ops`'s, this target checks the doors into it.
//!
//! One input is up to four pool lifetimes, one after the other. Each builds
//! a pool by `ThreadPool::new(n)` (0 must panic, naming the call) or by a
//! builder (`Builder::new()`, `ThreadPool::builder()` or `Builder::default()`,
//! which must all start out the same) with any mix of `num_threads` (0, or
//! left at its default), `queue_capacity` (0, or unbounded), `thread_name`,
//! `stack_size` (large, or so large that the OS must refuse the thread),
//! `on_thread_start` / `on_thread_stop` and `panic_handler`. A refused build
//! must give the right `BuildError` (`ZeroThreads`, `ZeroCapacity`, `Spawn`
//! carrying an `io::Error` as its source) and leave no thread behind. A built
//! pool then runs a few jobs, executed or spawned, panicking or not; they
//! check their worker's name and stack, `Handle::current()`, and that
//! `wait_idle` / `wait_idle_timeout` from inside the pool panic (a scoped job
//! borrows the pool to try). The pool ends by `shutdown`, `drop`,
//! `shutdown_now` (handed-back jobs run by `Job::run` or dropped, a dropped
//! spawned job's handle cancelled, and `into_panic` on that panics) or a
//! generous `shutdown_timeout`, after which every accepted job ran once (or
//! was handed back), the counters add up, the panic handler saw exactly the
//! executed jobs' panics, the hooks ran once per worker and every worker has
//! exited.
//!
//! Failures abort as in `ops` (libFuzzer's panic hook); deliberate panics and
//! the panics a check expects from weft unwind quietly; a watchdog turns a
//! hang into a crash (`WEFT_FUZZ_HANG_SECS`, default 10 s).

#![no_main]

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::error::Error;
use std::hint::black_box;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use weft::{BuildError, Builder, Handle, JoinHandle, ThreadPool};

/// Pool lifetimes per input.
const MAX_LIVES: usize = 4;
/// Jobs per pool.
const MAX_JOBS: u8 = 6;
/// Default hang limit for one input; `WEFT_FUZZ_HANG_SECS` overrides it.
const DEFAULT_HANG_SECS: u64 = 10;
/// A stack no OS can give (half the address space): the spawn must fail.
const REFUSED_STACK: usize = usize::MAX / 2;
/// The platform's default for a Rust thread is 2 MiB; the large stacks asked
/// for here are at least twice that, and a job uses three quarters of its
/// stack, so a stack size the pool ignored would overflow (a crash).
const MIB: usize = 1 << 20;

// ---------------------------------------------------------------------------
// The input language

#[derive(Arbitrary, Debug, Clone)]
struct Input {
    lives: Vec<Life>,
}

/// One pool, from construction to its end.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Life {
    ctor: Ctor,
    /// `jobs % (MAX_JOBS + 1)` jobs; job `i` panics if bit `i` of `panics` is
    /// set, and is spawned (its handle joined) if bit `i` of `spawned` is.
    jobs: u8,
    panics: u8,
    spawned: u8,
    /// Before the end: `wait_idle` and the exact counters.
    settle: bool,
    /// A scoped job tries `wait_idle` / `wait_idle_timeout` from inside.
    misuse: bool,
    end: End,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Ctor {
    /// `ThreadPool::new(threads % 4)`.
    New {
        threads: u8,
    },
    Built(Settings),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Settings {
    /// `Builder::new()`, `ThreadPool::builder()`, `Builder::default()`.
    start: u8,
    /// `num_threads(n % 4)`, or the default (available parallelism).
    threads: Option<u8>,
    /// `queue_capacity(c % 4)`, or unbounded.
    capacity: Option<u8>,
    /// `thread_name(|i| "cfg-{i}")`; else the default `weft-{i}`.
    named: bool,
    stack: Stack,
    /// `on_thread_start` / `on_thread_stop`, which record each worker.
    hooks: bool,
    /// A `panic_handler` that counts.
    handler: bool,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Stack {
    Platform,
    /// `(4 + mib % 5)` MiB; a job uses three quarters of it.
    Large {
        mib: u8,
    },
    /// `REFUSED_STACK`: the build fails with `BuildError::Spawn`.
    Refused,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum End {
    Shutdown,
    Drop,
    /// Handed-back job `i` is run if bit `i` of `run_mask` is set, else dropped.
    ShutdownNow {
        run_mask: u8,
    },
    /// A deadline longer than the watchdog's limit: it must return `Ok`.
    ShutdownTimeout,
}

// ---------------------------------------------------------------------------
// Panics

/// The payload of every deliberate panic.
struct Deliberate;

thread_local! {
    /// Set around a call that must panic: the hook lets that panic unwind.
    static EXPECTING_PANIC: Cell<bool> = const { Cell::new(false) };
    /// Set while the caller of `shutdown_now` runs a handed-back job.
    static BY_CALLER: Cell<bool> = const { Cell::new(false) };
    /// On a worker: counts the thread's exit when the thread ends.
    static EXIT: RefCell<Option<ExitGuard>> = const { RefCell::new(None) };
}

/// Runs `f`, which must panic with a message containing `needle`.
fn expect_panic(what: &str, needle: &str, f: impl FnOnce()) {
    EXPECTING_PANIC.with(|e| e.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(f));
    EXPECTING_PANIC.with(|e| e.set(false));
    let payload = match outcome {
        Ok(()) => panic!("{what} returned instead of panicking"),
        Err(payload) => payload,
    };
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains(needle),
        "{what} panicked with {message:?}, which does not name `{needle}`"
    );
}

// ---------------------------------------------------------------------------
// What one pool's life records

#[derive(Default)]
struct Ctx {
    /// Indices seen by `on_thread_start` / `on_thread_stop`.
    started: Mutex<Vec<usize>>,
    stopped: Mutex<Vec<usize>>,
    /// Worker threads that registered an exit guard, and that exited.
    registered: AtomicUsize,
    exited: AtomicUsize,
    handled: AtomicUsize,
    /// Per job: runs (in the pool or by `Job::run`), and whether in the pool.
    runs: Mutex<Vec<usize>>,
    in_pool: Mutex<Vec<bool>>,
    /// Per job: its closure was dropped unrun.
    dropped: Mutex<Vec<bool>>,
    scoped_ran: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct ExitGuard(Arc<Ctx>);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.0.exited.fetch_add(1, SeqCst);
    }
}

/// Registers this worker thread's exit with `ctx`, once per thread.
fn register_exit(ctx: &Arc<Ctx>) {
    EXIT.with(|e| {
        let mut e = e.borrow_mut();
        if e.as_ref().is_none_or(|g| !Arc::ptr_eq(&g.0, ctx)) {
            ctx.registered.fetch_add(1, SeqCst);
            *e = Some(ExitGuard(Arc::clone(ctx)));
        }
    });
}

/// Drops a job's closure unrun: counts that.
struct Unrun {
    ctx: Arc<Ctx>,
    id: usize,
    armed: bool,
}

impl Drop for Unrun {
    fn drop(&mut self) {
        if self.armed {
            let mut dropped = lock(&self.ctx.dropped);
            assert!(!dropped[self.id], "job {} dropped twice", self.id);
            dropped[self.id] = true;
        }
    }
}

/// Uses `bytes` of this thread's stack, in 16 KiB frames.
#[inline(never)]
fn use_stack(bytes: usize) -> usize {
    let mut frame = [0_u8; 16 << 10];
    black_box(&mut frame);
    let below = if bytes > frame.len() {
        use_stack(bytes - frame.len())
    } else {
        0
    };
    black_box(&frame)[below % frame.len()] as usize + below
}

/// What a job checks about the thread it runs on.
#[derive(Clone)]
struct Expect {
    prefix: &'static str,
    stack_use: usize,
}

fn job_body(ctx: &Arc<Ctx>, id: usize, panics: bool, expect: &Expect) -> usize {
    let by_caller = BY_CALLER.with(Cell::get);
    {
        let mut runs = lock(&ctx.runs);
        runs[id] += 1;
        assert_eq!(runs[id], 1, "job {id} ran twice");
        lock(&ctx.in_pool)[id] = !by_caller;
    }
    if by_caller {
        if panics {
            panic::panic_any(Deliberate);
        }
        return id;
    }
    register_exit(ctx);
    let name = thread::current()
        .name()
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        name.starts_with(expect.prefix) && name[expect.prefix.len()..].parse::<usize>().is_ok(),
        "job {id} runs on thread {name:?}, not a `{}N` worker",
        expect.prefix
    );
    assert!(
        Handle::current().is_some(),
        "Handle::current() is None on a worker"
    );
    if expect.stack_use > 0 {
        black_box(use_stack(expect.stack_use));
    }
    if panics {
        panic::panic_any(Deliberate);
    }
    id
}

// ---------------------------------------------------------------------------
// One life

/// What a construction must give: a pool of `threads`, or this error.
enum Want {
    Pool {
        threads: usize,
        prefix: &'static str,
    },
    ZeroThreads,
    ZeroCapacity,
    /// Either (both zero: the order of the checks is not promised).
    ZeroEither,
    Spawn,
}

fn default_threads() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds the pool `settings` describe, or checks why it cannot be.
fn build(ctx: &Arc<Ctx>, s: &Settings) -> Option<(ThreadPool, usize, &'static str)> {
    let fresh = match s.start % 3 {
        0 => Builder::new(),
        1 => ThreadPool::builder(),
        _ => Builder::default(),
    };
    assert_eq!(
        format!("{fresh:?}"),
        format!("{:?}", Builder::new()),
        "ThreadPool::builder() / Builder::default() differ from Builder::new()"
    );
    let mut builder = fresh;
    let threads = s.threads.map(|n| usize::from(n % 4));
    if let Some(n) = threads {
        builder = builder.num_threads(n);
    }
    let capacity = s.capacity.map(|c| usize::from(c % 4));
    if let Some(c) = capacity {
        builder = builder.queue_capacity(c);
    }
    let prefix = if s.named {
        builder = builder.thread_name(|i| format!("cfg-{i}"));
        "cfg-"
    } else {
        "weft-"
    };
    match s.stack {
        Stack::Platform => {}
        Stack::Large { mib } => builder = builder.stack_size((4 + usize::from(mib % 5)) * MIB),
        Stack::Refused => builder = builder.stack_size(REFUSED_STACK),
    }
    if s.hooks {
        let (c1, c2) = (Arc::clone(ctx), Arc::clone(ctx));
        let named = s.named;
        builder = builder
            .on_thread_start(move |i| {
                register_exit(&c1);
                let name = thread::current().name().map(str::to_owned);
                assert_eq!(
                    name.as_deref(),
                    Some(&*format!("{}{i}", if named { "cfg-" } else { "weft-" })),
                    "on_thread_start({i}) runs on another thread"
                );
                let mut started = lock(&c1.started);
                assert!(!started.contains(&i), "worker {i} started twice");
                started.push(i);
            })
            .on_thread_stop(move |i| {
                assert!(
                    lock(&c2.started).contains(&i),
                    "worker {i} stopped without starting"
                );
                let mut stopped = lock(&c2.stopped);
                assert!(!stopped.contains(&i), "worker {i} stopped twice");
                stopped.push(i);
            });
    }
    if s.handler {
        let c = Arc::clone(ctx);
        builder = builder.panic_handler(move |payload: Box<dyn Any + Send>| {
            assert!(
                payload.is::<Deliberate>(),
                "the panic handler got a foreign payload"
            );
            c.handled.fetch_add(1, SeqCst);
        });
    }
    assert!(!format!("{builder:?}").is_empty(), "Builder's Debug");

    let want = match (threads, capacity, s.stack) {
        (Some(0), Some(0), _) => Want::ZeroEither,
        (Some(0), _, _) => Want::ZeroThreads,
        (_, Some(0), _) => Want::ZeroCapacity,
        (_, _, Stack::Refused) => Want::Spawn,
        (n, _, _) => Want::Pool {
            threads: n.unwrap_or_else(default_threads),
            prefix,
        },
    };
    match (builder.build(), want) {
        (Ok(pool), Want::Pool { threads, prefix }) => Some((pool, threads, prefix)),
        (Ok(pool), _) => {
            let n = pool.num_threads();
            panic!("build succeeded ({n} threads) for {s:?}, which it must refuse")
        }
        (Err(err), want) => {
            let as_error: &(dyn Error + Send + Sync + 'static) = &err;
            assert!(
                !as_error.to_string().is_empty() && !format!("{err:?}").is_empty(),
                "BuildError displays as nothing"
            );
            match (&err, want) {
                (BuildError::ZeroThreads, Want::ZeroThreads | Want::ZeroEither)
                | (BuildError::ZeroCapacity, Want::ZeroCapacity | Want::ZeroEither) => {
                    assert!(as_error.source().is_none(), "{err:?} has a source");
                }
                (BuildError::Spawn(io), Want::Spawn) => {
                    let source = as_error.source().expect("BuildError::Spawn has no source");
                    assert_eq!(
                        source.to_string(),
                        io.to_string(),
                        "BuildError::Spawn's source is not its io::Error"
                    );
                }
                (_, _) => panic!("build of {s:?} failed with the wrong error: {err:?}"),
            }
            // No thread leaks: whatever started was shut down and joined.
            let started = lock(&ctx.started).len();
            let stopped = lock(&ctx.stopped).len();
            assert_eq!(
                started, stopped,
                "a refused build left {started} started and {stopped} stopped workers"
            );
            let (reg, exited) = (ctx.registered.load(SeqCst), ctx.exited.load(SeqCst));
            assert_eq!(reg, exited, "a refused build left a worker thread running");
            None
        }
    }
}

fn live(life: &Life) {
    let ctx = Arc::new(Ctx::default());
    let (pool, threads, prefix, stack_use, hooks, handler) = match life.ctor {
        Ctor::New { threads } => {
            let n = usize::from(threads % 4);
            if n == 0 {
                expect_panic("ThreadPool::new(0)", "", || {
                    drop(ThreadPool::new(0));
                });
                return;
            }
            (ThreadPool::new(n), n, "weft-", 0, false, false)
        }
        Ctor::Built(s) => {
            let Some((pool, threads, prefix)) = build(&ctx, &s) else {
                return;
            };
            let stack_use = match s.stack {
                Stack::Large { mib } => (4 + usize::from(mib % 5)) * MIB * 3 / 4,
                _ => 0,
            };
            (pool, threads, prefix, stack_use, s.hooks, s.handler)
        }
    };
    assert_eq!(pool.num_threads(), threads, "num_threads after building");
    assert!(
        Handle::current().is_none(),
        "Handle::current() outside the pool"
    );
    assert!(!format!("{pool:?}").is_empty(), "ThreadPool's Debug");

    let jobs = usize::from(life.jobs % (MAX_JOBS + 1));
    *lock(&ctx.runs) = vec![0; jobs];
    *lock(&ctx.dropped) = vec![false; jobs];
    *lock(&ctx.in_pool) = vec![false; jobs];
    let expect = Expect { prefix, stack_use };
    let mut handles: Vec<(usize, bool, JoinHandle<usize>)> = Vec::new();
    let mut executed_panics = 0;
    for id in 0..jobs {
        let panics = life.panics & (1 << id) != 0;
        let guard = Unrun {
            ctx: Arc::clone(&ctx),
            id,
            armed: true,
        };
        let (c, e) = (Arc::clone(&ctx), expect.clone());
        // Only the first job uses the stack: it is slow.
        let e = Expect {
            stack_use: if id == 0 { e.stack_use } else { 0 },
            ..e
        };
        if life.spawned & (1 << id) != 0 {
            let h = pool.spawn(move || {
                let mut guard = guard;
                guard.armed = false;
                job_body(&c, id, panics, &e)
            });
            handles.push((id, panics, h));
        } else {
            executed_panics += usize::from(panics);
            pool.execute(move || {
                let mut guard = guard;
                guard.armed = false;
                job_body(&c, id, panics, &e);
            });
        }
    }
    if life.misuse {
        // A scoped job borrows the pool: waiting for the pool to be idle
        // from inside it must panic, naming the call, not hang.
        pool.scope(|s| {
            s.execute(|| {
                expect_panic("wait_idle inside the pool", "wait_idle", || {
                    pool.wait_idle()
                });
                expect_panic(
                    "wait_idle_timeout inside the pool",
                    "wait_idle_timeout",
                    || {
                        pool.wait_idle_timeout(Duration::ZERO);
                    },
                );
                ctx.scoped_ran.store(true, SeqCst);
            });
        });
        assert!(
            ctx.scoped_ran.load(SeqCst),
            "scope returned before its job ran"
        );
    }
    let scoped = usize::from(life.misuse);
    if life.settle {
        pool.wait_idle();
        let ran: usize = lock(&ctx.runs).iter().sum();
        assert_eq!(ran, jobs, "wait_idle returned with jobs not run");
        let panicked = (0..jobs).filter(|i| life.panics & (1 << i) != 0).count();
        assert_eq!(pool.panic_count(), panicked, "panic_count when idle");
        assert_eq!(
            pool.completed_count(),
            jobs - panicked + scoped,
            "completed_count when idle"
        );
        assert_eq!(
            pool.queued_count() + pool.active_count(),
            0,
            "idle, yet busy"
        );
        assert!(
            pool.wait_idle_timeout(Duration::ZERO),
            "idle, yet wait_idle_timeout(0) false"
        );
    }

    let mut handed_back = Vec::new();
    match life.end {
        End::Shutdown => pool.shutdown(),
        End::Drop => drop(pool),
        End::ShutdownTimeout => {
            let generous = Duration::from_secs(60);
            if let Err(late) = pool.shutdown_timeout(generous) {
                panic!("shutdown_timeout of {generous:?} timed out: {late}");
            }
        }
        End::ShutdownNow { run_mask } => {
            let jobs = pool.shutdown_now();
            for (i, job) in jobs.into_iter().enumerate() {
                handed_back.push(i);
                if run_mask & (1 << (i % 8)) != 0 {
                    // An executed job's panic comes through; a spawned one's
                    // goes to its handle.
                    BY_CALLER.with(|c| c.set(true));
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                    BY_CALLER.with(|c| c.set(false));
                } else {
                    drop(job);
                }
            }
        }
    }
    // Every job ran exactly once, or was handed back and dropped.
    let runs = lock(&ctx.runs).clone();
    let dropped = lock(&ctx.dropped).clone();
    let mut never_ran = 0;
    for id in 0..jobs {
        match (runs[id], dropped[id]) {
            (1, false) => {}
            (0, true) => never_ran += 1,
            (r, d) => panic!("after the end: job {id} ran {r} times, dropped unrun: {d}"),
        }
    }
    assert!(
        never_ran <= handed_back.len(),
        "{never_ran} jobs never ran, but only {} were handed back",
        handed_back.len()
    );
    for (id, panics, h) in handles {
        assert!(!format!("{h:?}").is_empty(), "JoinHandle's Debug");
        match h.join() {
            Ok(v) => assert!(v == id && !panics, "job {id} joined Ok({v})"),
            Err(err) if err.is_panic() => {
                assert!(panics, "job {id} joined as a panic: {err}");
                let payload = err.try_into_panic().expect("a panic without a payload");
                assert!(payload.is::<Deliberate>(), "job {id}: a foreign payload");
            }
            Err(err) => {
                assert!(err.is_cancelled(), "job {id}: neither panic nor cancelled");
                assert!(
                    dropped[id],
                    "job {id} is cancelled, but was not dropped unrun"
                );
                expect_panic("JoinError::into_panic of a cancellation", "cancel", || {
                    drop(err.into_panic());
                });
            }
        }
    }
    // The handler sees each panic of an executed job that ran in the pool,
    // and nothing else (a spawned job's panic is its handle's; Job::run lets
    // an executed job's panic through to its caller).
    let in_pool = lock(&ctx.in_pool).clone();
    let pool_panics = (0..jobs)
        .filter(|&i| life.panics & (1 << i) != 0 && life.spawned & (1 << i) == 0 && in_pool[i])
        .count();
    assert!(pool_panics <= executed_panics);
    if handler {
        assert_eq!(
            ctx.handled.load(SeqCst),
            pool_panics,
            "the panic handler's calls against the executed jobs that panicked in the pool"
        );
    }
    // Every worker ran both hooks and has exited.
    if hooks {
        let started = lock(&ctx.started).clone();
        let stopped = lock(&ctx.stopped).clone();
        assert_eq!(
            started.len(),
            threads,
            "on_thread_start ran {} times for {threads} workers",
            started.len()
        );
        let mut sorted = started.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..threads).collect::<Vec<_>>(), "worker indices");
        assert_eq!(stopped.len(), threads, "on_thread_stop after the end");
    }
    let (reg, exited) = (ctx.registered.load(SeqCst), ctx.exited.load(SeqCst));
    assert_eq!(reg, exited, "a worker thread outlived the pool's end");
}

fn run(input: &Input) {
    for life in input.lives.iter().take(MAX_LIVES) {
        live(life);
    }
}

// ---------------------------------------------------------------------------
// Watchdog and panic hook (as in `ops`)

static CURRENT: Mutex<Option<(Instant, Input)>> = Mutex::new(None);
static FAILING: AtomicBool = AtomicBool::new(false);

fn first_failure() -> bool {
    if FAILING.swap(true, SeqCst) {
        loop {
            thread::park();
        }
    }
    true
}

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
                         a hang or deadlock. The input: {input:#?}",
                        since.elapsed()
                    );
                    std::process::abort();
                }
            }
        })
        .expect("cannot start the watchdog thread");
}

fn install_panic_hook() {
    let libfuzzer_hook = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if info.payload().is::<Deliberate>() || EXPECTING_PANIC.with(Cell::get) || !first_failure()
        {
            return;
        }
        if let Ok(current) = CURRENT.try_lock() {
            if let Some((_, input)) = &*current {
                eprintln!("\nweft-fuzz: a check failed. The input: {input:#?}");
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
