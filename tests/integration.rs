//! Integration tests of weft's public API with real threads.
//!
//! Every test checks one promise of the contract (`DESIGN.md`, "The ledger"
//! and "Re-entrancy"). Synchronisation between a test and the pool's jobs goes
//! through channels, gates and rendezvous, never through sleeps; the only
//! timeouts are [`HANG`], which turn a deadlock into a failure instead of a
//! stuck test run and are never reached when the pool behaves.
//!
//! These tests also run in the loom CI job (`RUSTFLAGS="--cfg loom"`), where
//! the library they link still uses std's primitives.

use std::any::Any;
use std::collections::{BTreeMap, HashSet};
use std::error::Error;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex, Once};
use std::thread::{self, ThreadId};
use std::time::Duration;

use weft::{BuildError, Builder, Handle, SubmitError, SubmitErrorKind, ThreadPool};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// How long any wait in these tests may take before it is declared a hang.
/// Only reached when the pool deadlocks; a passing run never waits this long.
const HANG: Duration = Duration::from_secs(60);

/// Marker carried by every panic these tests raise on purpose.
const DELIBERATE: &str = "deliberate test panic";

/// A panic payload that is not a string, raised on purpose.
#[derive(Debug, PartialEq)]
struct DeliberatePayload(u32);

/// A panic payload whose destructor panics too, raised on purpose.
struct PanickingDropPayload;

impl Drop for PanickingDropPayload {
    fn drop(&mut self) {
        panic!("{DELIBERATE}: payload destructor");
    }
}

fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Whether a panic was raised on purpose by a test here (directly, or by weft
/// refusing a misuse that a test commits on purpose).
fn is_deliberate(payload: &(dyn Any + Send)) -> bool {
    if payload.is::<DeliberatePayload>() || payload.is::<PanickingDropPayload>() {
        return true;
    }
    payload_text(payload).is_some_and(|text| {
        text.contains(DELIBERATE)
            || text.starts_with("weft::ThreadPool::new(0)")
            || text.contains("called from inside one of the pool's own jobs")
    })
}

/// Installs, once per process, a panic hook that keeps this file's deliberate
/// panics off stderr and forwards every other panic to the default hook. The
/// hook is process-global and tests run in parallel, so it filters by payload
/// rather than being swapped in and out around a test.
fn quiet_deliberate_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !is_deliberate(info.payload()) {
                default_hook(info);
            }
        }));
    });
}

/// A closed gate jobs can block on until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Blocks until the gate is open; panics after [`HANG`].
    fn pass(&self) {
        let (open, timeout) = self
            .opened
            .wait_timeout_while(self.open.lock().unwrap(), HANG, |open| !*open)
            .unwrap();
        assert!(*open && !timeout.timed_out(), "gate never opened");
    }
}

/// A meeting point for `n` parties: each returns only once all `n` arrived,
/// which proves `n` threads were running at the same moment.
struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    parties: usize,
}

impl Rendezvous {
    fn new(parties: usize) -> Rendezvous {
        Rendezvous {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            parties,
        }
    }

    /// Returns whether all parties met (false after [`HANG`]).
    fn meet(&self) -> bool {
        let mut arrived = self.arrived.lock().unwrap();
        *arrived += 1;
        self.all_here.notify_all();
        let (arrived, _) = self
            .all_here
            .wait_timeout_while(arrived, HANG, |arrived| *arrived < self.parties)
            .unwrap();
        *arrived >= self.parties
    }
}

/// Per-job run counters.
fn run_counters(jobs: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..jobs).map(|_| AtomicUsize::new(0)).collect())
}

fn snapshot(counters: &[AtomicUsize]) -> Vec<usize> {
    counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

/// A job that counts its own run in `runs[id]`.
fn counting_job(runs: &Arc<Vec<AtomicUsize>>, id: usize) -> impl FnOnce() + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs[id].fetch_add(1, Ordering::SeqCst);
    }
}

/// Start/stop hook counters for a builder.
#[derive(Clone, Default)]
struct Lifecycle {
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
}

impl Lifecycle {
    fn install(&self, builder: Builder) -> Builder {
        let starts = Arc::clone(&self.starts);
        let stops = Arc::clone(&self.stops);
        builder
            .on_thread_start(move |_| {
                starts.fetch_add(1, Ordering::SeqCst);
            })
            .on_thread_stop(move |_| {
                stops.fetch_add(1, Ordering::SeqCst);
            })
    }

    fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }

    fn stops(&self) -> usize {
        self.stops.load(Ordering::SeqCst)
    }
}

fn thread_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

/// A pool of `threads` workers named `{prefix}-{i}`.
fn named_pool(threads: usize, prefix: &'static str) -> ThreadPool {
    Builder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("{prefix}-{i}"))
        .build()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

#[test]
fn build_with_zero_threads_is_a_zero_threads_error() {
    let lifecycle = Lifecycle::default();
    let result = lifecycle.install(Builder::new().num_threads(0)).build();
    let err = result.expect_err("a pool of zero threads must not build");
    assert!(matches!(err, BuildError::ZeroThreads), "got {err:?}");
    assert!(err.source().is_none());
    assert!(
        err.to_string().contains("thread"),
        "unhelpful message: {err}"
    );
    assert_eq!(lifecycle.starts(), 0);
}

#[test]
fn new_with_zero_threads_panics() {
    quiet_deliberate_panics();
    let payload = panic::catch_unwind(|| ThreadPool::new(0)).expect_err("new(0) must panic");
    let text = payload_text(&*payload).expect("a string panic message");
    assert!(text.contains("thread"), "unhelpful panic message: {text}");
}

/// Stack sizes the OS refuses here: one it cannot map (`EAGAIN`) and one it
/// rejects outright (`EINVAL`). With a uniform size the first spawn fails, so
/// no worker starts; the test still checks that starts == stops.
#[test]
fn refused_thread_is_a_spawn_error_carrying_the_io_error() {
    for stack_size in [1usize << 45, usize::MAX] {
        let lifecycle = Lifecycle::default();
        let builder = Builder::new().num_threads(3).stack_size(stack_size);
        let result = lifecycle.install(builder).build();
        let err = result.expect_err("the OS must refuse this stack size");
        let BuildError::Spawn(io_err) = &err else {
            panic!("expected BuildError::Spawn for stack {stack_size:#x}, got {err:?}");
        };
        let source = err.source().expect("a spawn error has a source");
        let source_io = source
            .downcast_ref::<io::Error>()
            .expect("the source is the io::Error");
        assert_eq!(source_io.kind(), io_err.kind());
        assert!(
            err.to_string().contains(&io_err.to_string()),
            "the message should include the OS error: {err}"
        );
        assert_eq!(
            lifecycle.starts(),
            lifecycle.stops(),
            "every started worker must be stopped and joined"
        );
    }
}

/// The OS refuses a thread part-way through `build`: workers started before
/// the refusal must have been stopped and joined when the error comes back.
///
/// The refusal is arranged by capping this process's address space so that
/// only a couple of 1 GiB stacks fit. The cap is process-wide, so the test
/// re-runs itself in a child process and checks the child's verdict.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn spawn_refused_mid_build_joins_the_workers_already_started() {
    const NAME: &str = "spawn_refused_mid_build_joins_the_workers_already_started";
    const IN_CHILD: &str = "WEFT_TEST_CAPPED_ADDRESS_SPACE";
    const STACK: usize = 1 << 30;
    const THREADS: usize = 8;

    if std::env::var_os(IN_CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(IN_CHILD, "1")
            .output()
            .expect("re-running the test binary");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "the capped child run failed ({}):\n{stdout}\n{stderr}",
            out.status
        );
        return;
    }

    let headroom = 2 * STACK + STACK / 2;
    cap_address_space(mapped_bytes() + headroom);
    let lifecycle = Lifecycle::default();
    let builder = Builder::new().num_threads(THREADS).stack_size(STACK);
    let result = lifecycle.install(builder).build();
    let err = result.expect_err("the capped address space holds fewer than 8 stacks");
    assert!(matches!(err, BuildError::Spawn(_)), "got {err:?}");
    let started = lifecycle.starts();
    assert!(
        (1..THREADS).contains(&started),
        "expected the refusal after at least one worker, {started} started"
    );
    assert_eq!(
        lifecycle.stops(),
        started,
        "every started worker was joined"
    );
    println!("{started} workers started, stopped and joined before the refusal");
}

/// This process's mapped address space (`VmSize`), in bytes.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn mapped_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("VmSize:"))
        .expect("VmSize in /proc/self/status");
    let kib: usize = line.trim().trim_end_matches("kB").trim().parse().unwrap();
    kib * 1024
}

/// Caps this process's address space (`RLIMIT_AS`) at `bytes`.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn cap_address_space(bytes: usize) {
    use std::os::raw::{c_int, c_ulong};

    /// `struct rlimit` on 64-bit Linux.
    #[repr(C)]
    struct RLimit {
        current: c_ulong,
        maximum: c_ulong,
    }
    const RLIMIT_AS: c_int = 9;
    extern "C" {
        fn setrlimit(resource: c_int, limit: *const RLimit) -> c_int;
    }
    let limit = RLimit {
        current: bytes as c_ulong,
        maximum: bytes as c_ulong,
    };
    // SAFETY: `setrlimit` only reads the `struct rlimit` behind the pointer,
    // which is a valid, properly laid out local for the whole call.
    let rc = unsafe { setrlimit(RLIMIT_AS, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", io::Error::last_os_error());
}

/// A name hook that panics part-way through `build` unwinds out of it; the
/// workers started before must still have been shut down and joined.
#[test]
fn panicking_thread_name_hook_during_build_leaks_no_worker() {
    quiet_deliberate_panics();
    let lifecycle = Lifecycle::default();
    let builder = Builder::new().num_threads(4).thread_name(|index| {
        if index == 2 {
            panic!("{DELIBERATE}: no name for worker 2");
        }
        format!("named-{index}")
    });
    let builder = lifecycle.install(builder);
    let payload = panic::catch_unwind(AssertUnwindSafe(|| builder.build()))
        .expect_err("the hook's panic propagates out of build");
    assert!(payload_text(&*payload).is_some_and(|t| t.contains(DELIBERATE)));
    assert_eq!(lifecycle.starts(), 2, "workers 0 and 1 started");
    assert_eq!(lifecycle.stops(), 2, "and both were stopped and joined");
}

/// Regression: `Builder::build` once sized its worker list with
/// `Vec::with_capacity(num_threads)`, so an absurd `num_threads` panicked with
/// "capacity overflow" before a single spawn was attempted, instead of
/// returning the `BuildError::Spawn` the OS refusal gives. (With this stack
/// size the very first spawn is refused, so no thread is started.)
#[test]
fn absurd_thread_count_is_a_build_error_not_a_panic() {
    let built = panic::catch_unwind(|| {
        Builder::new()
            .num_threads(usize::MAX)
            .stack_size(1 << 45)
            .build()
            .map(drop)
    });
    let result = built.unwrap_or_else(|payload| {
        panic!(
            "Builder::build panicked instead of returning a BuildError: {:?}",
            payload_text(&*payload)
        )
    });
    assert!(
        matches!(result, Err(BuildError::Spawn(_))),
        "got {result:?}"
    );
}

#[test]
fn builder_defaults_to_available_parallelism() {
    let expected = thread::available_parallelism().map_or(1, |n| n.get());
    for pool in [
        Builder::new().build().unwrap(),
        Builder::default().build().unwrap(),
        ThreadPool::builder().build().unwrap(),
    ] {
        assert_eq!(pool.num_threads(), expected);
    }
}

#[test]
fn new_and_builder_start_the_requested_number_of_workers() {
    for threads in [1, 2, 5] {
        let pool = ThreadPool::new(threads);
        assert_eq!(pool.num_threads(), threads);

        let lifecycle = Lifecycle::default();
        let pool = lifecycle
            .install(Builder::new().num_threads(threads))
            .build()
            .unwrap();
        assert_eq!(pool.num_threads(), threads);
        pool.shutdown();
        assert_eq!(lifecycle.starts(), threads);
        assert_eq!(lifecycle.stops(), threads);
    }
}

#[test]
fn workers_are_named_weft_index_by_default() {
    let names = Arc::new(Mutex::new(BTreeMap::new()));
    let recorder = Arc::clone(&names);
    let pool = Builder::new()
        .num_threads(3)
        .on_thread_start(move |index| {
            recorder.lock().unwrap().insert(index, thread_name());
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.execute(move || tx.send(thread_name()).unwrap());
    let job_name = rx.recv_timeout(HANG).unwrap().expect("workers are named");
    pool.shutdown();

    let names = names.lock().unwrap().clone();
    let expected: BTreeMap<usize, Option<String>> =
        (0..3).map(|i| (i, Some(format!("weft-{i}")))).collect();
    assert_eq!(names, expected);
    assert!(
        expected
            .values()
            .any(|name| name.as_deref() == Some(&job_name)),
        "job ran on {job_name:?}"
    );
}

#[test]
fn custom_thread_name_is_used_for_every_worker() {
    let names = Arc::new(Mutex::new(BTreeMap::new()));
    let recorder = Arc::clone(&names);
    let pool = Builder::new()
        .num_threads(3)
        .thread_name(|index| format!("custom-pool-{index}"))
        .on_thread_start(move |index| {
            recorder.lock().unwrap().insert(index, thread_name());
        })
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    for _ in 0..30 {
        let seen = Arc::clone(&seen);
        pool.execute(move || {
            seen.lock().unwrap().insert(thread_name());
        });
    }
    pool.shutdown();

    let names = names.lock().unwrap().clone();
    let expected: BTreeMap<usize, Option<String>> = (0..3)
        .map(|i| (i, Some(format!("custom-pool-{i}"))))
        .collect();
    assert_eq!(names, expected);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    for name in seen.iter() {
        assert!(
            expected.values().any(|n| n == name),
            "a job ran on an unexpected thread {name:?}"
        );
    }
}

#[test]
fn single_worker_job_sees_its_custom_name() {
    let pool = Builder::new()
        .num_threads(1)
        .thread_name(|index| format!("solo-{index}"))
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.execute(move || tx.send(thread_name()).unwrap());
    assert_eq!(rx.recv_timeout(HANG).unwrap().as_deref(), Some("solo-0"));
}

/// A job needing far more stack than a default thread has (2 MiB) runs when
/// the pool asks for a large stack; on Linux the mapping holding the job's
/// stack frame is also measured.
#[test]
fn stack_size_is_honoured() {
    const STACK: usize = 48 << 20;
    let pool = Builder::new()
        .num_threads(1)
        .stack_size(STACK)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    pool.execute(move || {
        let big = [7u8; 8 << 20];
        let big = std::hint::black_box(big);
        let sum: usize = big.iter().step_by(4096).map(|&b| usize::from(b)).sum();
        let local = 0u8;
        let frame = std::hint::black_box(&local) as *const u8 as usize;
        tx.send((sum, stack_mapping_len(frame))).unwrap();
    });
    let (sum, mapping) = rx.recv_timeout(HANG).expect("the stack-hungry job ran");
    assert_eq!(sum, 7 * (8 << 20) / 4096);
    if let Some(len) = mapping {
        // The mapping is the stack less its guard page(s); a neighbouring
        // mapping may merge into it, so only a lower bound is meaningful.
        assert!(
            len >= STACK - (1 << 20),
            "worker stack mapping is {len} bytes, asked for {STACK}"
        );
    }
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 1);
}

/// The length of the memory mapping containing `addr` (Linux only).
fn stack_mapping_len(addr: usize) -> Option<usize> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|line| {
        let range = line.split_whitespace().next()?;
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (start <= addr && addr < end).then_some(end - start)
    })
}

#[test]
fn start_and_stop_hooks_run_once_per_worker_on_that_worker() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let (start_log, stop_log) = (Arc::clone(&started), Arc::clone(&stopped));
    let pool = Builder::new()
        .num_threads(4)
        .thread_name(|i| format!("hooked-{i}"))
        .on_thread_start(move |i| start_log.lock().unwrap().push((i, thread_name())))
        .on_thread_stop(move |i| stop_log.lock().unwrap().push((i, thread_name())))
        .build()
        .unwrap();
    pool.shutdown();

    let expected: Vec<(usize, Option<String>)> =
        (0..4).map(|i| (i, Some(format!("hooked-{i}")))).collect();
    for log in [started, stopped] {
        let mut log = log.lock().unwrap().clone();
        log.sort();
        assert_eq!(log, expected);
    }
}

#[test]
fn on_thread_start_runs_before_the_worker_takes_a_job() {
    let started = Arc::new(AtomicUsize::new(0));
    let flag = Arc::clone(&started);
    let pool = Builder::new()
        .num_threads(1)
        .on_thread_start(move |_| {
            flag.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let seen = Arc::clone(&started);
    pool.execute(move || tx.send(seen.load(Ordering::SeqCst)).unwrap());
    assert_eq!(rx.recv_timeout(HANG).unwrap(), 1);
}

#[test]
fn a_start_hook_that_joins_its_own_child_has_it_counted_running() {
    // The hook runs on the worker before it is counted running, so its join
    // must help through the pool lock, which counts the child running;
    // helping from the own deque without the lock would run the child while
    // the pool looks idle. `wait_idle`, called while the child runs, must
    // wait for it.
    let (started, go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let child_done = Arc::new(AtomicBool::new(false));
    let hook = {
        let (started, go, child_done) = (started.clone(), go.clone(), child_done.clone());
        move |_| {
            let (started, go, child_done) = (started.clone(), go.clone(), child_done.clone());
            let handle = Handle::current().expect("the hook runs on the worker");
            let child = handle
                .spawn(move || {
                    started.wait();
                    go.wait();
                    child_done.store(true, Ordering::SeqCst);
                })
                .expect("the pool is open");
            child.join().unwrap();
        }
    };
    let pool = Builder::new()
        .num_threads(1)
        .on_thread_start(hook)
        .build()
        .unwrap();
    started.wait();
    go.wait();
    pool.wait_idle();
    assert!(
        child_done.load(Ordering::SeqCst),
        "wait_idle returned while the child ran"
    );
    assert_eq!(pool.completed_count(), 1);
}

// ---------------------------------------------------------------------------
// Running jobs
// ---------------------------------------------------------------------------

#[test]
fn execute_runs_every_job_exactly_once() {
    const JOBS: usize = 1000;
    let pool = ThreadPool::new(4);
    let runs = run_counters(JOBS);
    for id in 0..JOBS {
        pool.execute(counting_job(&runs, id));
    }
    pool.wait_idle();
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
    assert_eq!(pool.completed_count(), JOBS);
    assert_eq!(pool.panic_count(), 0);
    assert_eq!(pool.queued_count(), 0);
    assert_eq!(pool.active_count(), 0);
}

#[test]
fn jobs_run_on_the_pool_not_on_the_caller() {
    let pool = Builder::new()
        .num_threads(2)
        .thread_name(|i| format!("elsewhere-{i}"))
        .build()
        .unwrap();
    let caller = thread::current().id();
    let (tx, rx) = mpsc::channel();
    for _ in 0..10 {
        let tx = tx.clone();
        pool.execute(move || tx.send((thread::current().id(), thread_name())).unwrap());
    }
    drop(tx);
    pool.shutdown();
    let ran: Vec<(ThreadId, Option<String>)> = rx.iter().collect();
    assert_eq!(ran.len(), 10);
    for (id, name) in ran {
        assert_ne!(id, caller);
        assert!(name.is_some_and(|n| n.starts_with("elsewhere-")));
    }
}

#[test]
fn panicking_job_is_caught_counted_and_handed_to_the_panic_handler() {
    quiet_deliberate_panics();
    let (payload_tx, payload_rx) = mpsc::channel::<Box<dyn Any + Send>>();
    let pool = Builder::new()
        .num_threads(1)
        .panic_handler(move |payload| payload_tx.send(payload).unwrap())
        .build()
        .unwrap();
    let (ran_tx, ran_rx) = mpsc::channel();

    let tx = ran_tx.clone();
    pool.execute(move || tx.send(thread::current().id()).unwrap());
    pool.execute(|| panic!("{DELIBERATE}: first"));
    pool.execute(|| panic::panic_any(DeliberatePayload(7)));
    for _ in 0..10 {
        let tx = ran_tx.clone();
        pool.execute(move || tx.send(thread::current().id()).unwrap());
    }
    pool.wait_idle();

    assert_eq!(pool.panic_count(), 2);
    assert_eq!(pool.completed_count(), 11);
    assert_eq!(pool.num_threads(), 1);
    let workers: HashSet<ThreadId> = ran_rx.try_iter().collect();
    assert_eq!(workers.len(), 1, "the one worker kept serving after panics");

    let payloads: Vec<Box<dyn Any + Send>> = payload_rx.try_iter().collect();
    assert_eq!(payloads.len(), 2, "one payload per panicking job");
    let texts: Vec<Option<&str>> = payloads.iter().map(|p| payload_text(&**p)).collect();
    assert!(
        texts.contains(&Some(&*format!("{DELIBERATE}: first"))),
        "{texts:?}"
    );
    assert!(payloads
        .iter()
        .any(|p| p.downcast_ref::<DeliberatePayload>() == Some(&DeliberatePayload(7))));
}

#[test]
fn panicking_job_without_a_handler_is_counted_and_the_worker_keeps_serving() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(1);
    let runs = run_counters(20);
    for id in 0..20 {
        if id % 4 == 0 {
            pool.execute(|| panic!("{DELIBERATE}: no handler"));
        } else {
            pool.execute(counting_job(&runs, id));
        }
    }
    pool.wait_idle();
    let runs = snapshot(&runs);
    for (id, n) in runs.iter().enumerate() {
        assert_eq!(*n, usize::from(id % 4 != 0), "job {id}");
    }
    assert_eq!(pool.panic_count(), 5);
    assert_eq!(pool.completed_count(), 15);
}

#[test]
fn panicking_panic_handler_loses_no_job_and_keeps_the_worker() {
    quiet_deliberate_panics();
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    let pool = Builder::new()
        .num_threads(1)
        .panic_handler(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("{DELIBERATE}: in the panic handler");
        })
        .build()
        .unwrap();
    let runs = run_counters(12);
    for id in 0..12 {
        if id % 3 == 0 {
            pool.execute(|| panic!("{DELIBERATE}: job"));
        } else {
            pool.execute(counting_job(&runs, id));
        }
    }
    pool.wait_idle();
    for (id, n) in snapshot(&runs).into_iter().enumerate() {
        assert_eq!(n, usize::from(id % 3 != 0), "job {id}");
    }
    assert_eq!(handled.load(Ordering::SeqCst), 4);
    assert_eq!(pool.panic_count(), 4);
    assert_eq!(pool.completed_count(), 8);
}

#[test]
fn panic_payload_whose_destructor_panics_is_contained() {
    quiet_deliberate_panics();
    for with_handler in [false, true] {
        let mut builder = Builder::new().num_threads(1);
        if with_handler {
            builder = builder.panic_handler(drop);
        }
        let pool = builder.build().unwrap();
        let runs = run_counters(3);
        pool.execute(counting_job(&runs, 0));
        pool.execute(|| panic::panic_any(PanickingDropPayload));
        pool.execute(counting_job(&runs, 1));
        pool.execute(|| panic::panic_any(PanickingDropPayload));
        pool.execute(counting_job(&runs, 2));
        pool.wait_idle();
        assert_eq!(snapshot(&runs), [1, 1, 1], "handler: {with_handler}");
        assert_eq!(pool.panic_count(), 2);
        assert_eq!(pool.completed_count(), 3);
    }
}

#[test]
fn panicking_on_thread_start_keeps_every_worker_serving() {
    quiet_deliberate_panics();
    const THREADS: usize = 3;
    let pool = Builder::new()
        .num_threads(THREADS)
        .on_thread_start(|index| panic!("{DELIBERATE}: start hook {index}"))
        .build()
        .unwrap();
    // All three jobs can meet only if all three workers are alive.
    let meeting = Arc::new(Rendezvous::new(THREADS));
    let (tx, rx) = mpsc::channel();
    for _ in 0..THREADS {
        let (meeting, tx) = (Arc::clone(&meeting), tx.clone());
        pool.execute(move || tx.send((meeting.meet(), thread::current().id())).unwrap());
    }
    drop(tx);
    pool.wait_idle();
    let met: Vec<(bool, ThreadId)> = rx.iter().collect();
    assert_eq!(met.len(), THREADS);
    assert!(met.iter().all(|(ok, _)| *ok), "not every worker was alive");
    let distinct: HashSet<ThreadId> = met.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), THREADS);
    assert_eq!(pool.completed_count(), THREADS);
    assert_eq!(pool.panic_count(), 0, "a hook's panic is not a job's");
}

#[test]
fn panicking_on_thread_stop_still_runs_every_job_and_joins() {
    quiet_deliberate_panics();
    let stops = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&stops);
    let pool = Builder::new()
        .num_threads(2)
        .on_thread_stop(move |index| {
            counter.fetch_add(1, Ordering::SeqCst);
            panic!("{DELIBERATE}: stop hook {index}");
        })
        .build()
        .unwrap();
    let runs = run_counters(50);
    for id in 0..50 {
        pool.execute(counting_job(&runs, id));
    }
    pool.shutdown();
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
    assert_eq!(stops.load(Ordering::SeqCst), 2);
}

#[test]
fn many_panics_on_many_workers_keep_counters_exact() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(3);
    let runs = run_counters(300);
    let mut panicking = 0;
    for id in 0..300 {
        if id % 7 == 3 {
            panicking += 1;
            pool.execute(|| panic!("{DELIBERATE}: one of many"));
        } else {
            pool.execute(counting_job(&runs, id));
        }
    }
    pool.wait_idle();
    assert_eq!(pool.panic_count(), panicking);
    assert_eq!(pool.completed_count(), 300 - panicking);
    assert_eq!(
        snapshot(&runs).iter().sum::<usize>(),
        300 - panicking,
        "every non-panicking job ran once"
    );
}

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

#[test]
fn handles_submit_from_other_threads() {
    const PER_THREAD: usize = 200;
    let pool = ThreadPool::new(3);
    let runs = run_counters(3 * PER_THREAD);
    let handle = pool.handle();
    thread::scope(|scope| {
        for t in 0..3 {
            let handle = handle.clone();
            let runs = &runs;
            scope.spawn(move || {
                for i in 0..PER_THREAD {
                    handle
                        .execute(counting_job(runs, t * PER_THREAD + i))
                        .expect("a live pool accepts");
                }
            });
        }
    });
    pool.wait_idle();
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
    assert_eq!(pool.completed_count(), 3 * PER_THREAD);
}

/// The job handed back is the very closure submitted (it owns the only other
/// reference to `witness`), it never ran in the pool, and it still runs once
/// when the caller calls it.
fn assert_handed_back_after_end(end: fn(ThreadPool)) {
    let pool = ThreadPool::new(2);
    let handle = pool.handle();
    let other_handle = handle.clone();
    end(pool);

    let witness = Arc::new(());
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    let (w, log) = (Arc::clone(&witness), Arc::clone(&ran_on));
    let err = handle
        .execute(move || {
            let _keep = &w;
            log.lock().unwrap().push(thread::current().id());
        })
        .expect_err("a shut-down pool refuses");
    assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
    assert_eq!(
        Arc::strong_count(&witness),
        2,
        "the closure is inside the error"
    );
    assert!(
        ran_on.lock().unwrap().is_empty(),
        "it never ran in the pool"
    );

    let job = err.into_inner();
    job();
    assert_eq!(*ran_on.lock().unwrap(), [thread::current().id()]);
    assert_eq!(Arc::strong_count(&witness), 1, "the closure was consumed");

    // Any clone, from any thread, is refused the same way.
    let refused = thread::spawn(move || other_handle.execute(|| ()).map_err(|e| e.kind()))
        .join()
        .unwrap();
    assert_eq!(refused, Err(SubmitErrorKind::ShutDown));
}

#[test]
fn handle_after_shutdown_hands_the_job_back() {
    assert_handed_back_after_end(ThreadPool::shutdown);
}

#[test]
fn handle_after_drop_hands_the_job_back() {
    assert_handed_back_after_end(drop);
}

#[test]
fn handle_does_not_keep_the_pool_alive() {
    let lifecycle = Lifecycle::default();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let handle = pool.handle();
    drop(pool);
    assert_eq!(lifecycle.stops(), 2, "workers joined despite a live handle");
    assert!(handle.execute(|| ()).is_err());
}

#[test]
fn handle_current_is_none_outside_any_pool() {
    assert!(Handle::current().is_none());
    let on_plain_thread = thread::spawn(|| Handle::current().is_none())
        .join()
        .unwrap();
    assert!(on_plain_thread);
    let pool = ThreadPool::new(1);
    assert!(
        Handle::current().is_none(),
        "owning a pool does not make the caller a worker"
    );
    drop(pool);
}

#[test]
fn handle_current_inside_a_job_submits_to_that_same_pool() {
    let pool_a = named_pool(2, "pool-a");
    let pool_b = named_pool(1, "pool-b");
    let (tx, rx) = mpsc::channel();
    for (pool, tag) in [(&pool_a, "a"), (&pool_b, "b")] {
        let tx = tx.clone();
        pool.execute(move || {
            let handle = Handle::current().expect("a job runs on a worker");
            let parent = thread_name();
            let child_tx = tx.clone();
            handle
                .execute(move || {
                    let again = Handle::current().is_some();
                    child_tx.send((tag, parent, thread_name(), again)).unwrap();
                })
                .expect("the running pool accepts");
        });
    }
    drop(tx);
    pool_a.wait_idle();
    pool_b.wait_idle();
    let mut children: Vec<_> = rx.try_iter().collect();
    children.sort();
    assert_eq!(children.len(), 2, "each child ran once: {children:?}");
    for (tag, parent, child, again) in children {
        let prefix = format!("pool-{tag}-");
        assert!(parent.is_some_and(|p| p.starts_with(&prefix)));
        assert!(
            child.is_some_and(|c| c.starts_with(&prefix)),
            "a child submitted through Handle::current ran on its parent's pool"
        );
        assert!(again, "Handle::current is Some in the child too");
    }
    assert_eq!(pool_a.completed_count(), 2);
    assert_eq!(pool_b.completed_count(), 2);
}

#[test]
fn a_job_submitting_to_another_pool_runs_its_child_there() {
    // A job of pool A submits to pool B's handle: the child goes to B, not
    // to the A worker's own deque (which holds only A's jobs). The job
    // first submits a child of its own to A, so that its worker has an own
    // deque that B's child could wrongly land in.
    let pool_a = named_pool(1, "pool-a");
    let pool_b = named_pool(1, "pool-b");
    let (tx, rx) = mpsc::channel();
    let to_b = pool_b.handle();
    pool_a.execute(move || {
        Handle::current()
            .expect("on a worker")
            .execute(|| {})
            .expect("pool A is open");
        to_b.execute(move || tx.send(thread_name()).unwrap())
            .expect("pool B is open");
    });
    pool_a.wait_idle();
    pool_b.wait_idle();
    let child = rx.try_recv().expect("the child ran before pool B was idle");
    assert!(
        child.as_deref().is_some_and(|c| c.starts_with("pool-b-")),
        "a child submitted to pool B ran on {child:?}"
    );
    assert_eq!(pool_a.completed_count(), 2);
    assert_eq!(pool_b.completed_count(), 1);
}

#[test]
fn handles_cloned_on_a_worker_keep_their_own_pool() {
    // On a worker, `clone` and `handle()` share the worker's hub only when
    // the handle is for the worker's own pool: a clone of pool B's handle
    // made on a worker of pool A still submits to B, and a clone of A's
    // current handle to A.
    let pool_a = named_pool(1, "pool-a");
    let pool_b = Arc::new(named_pool(1, "pool-b"));
    let (tx, rx) = mpsc::channel::<(&str, Option<String>)>();
    let to_b = pool_b.handle();
    let b = Arc::clone(&pool_b);
    pool_a.execute(move || {
        let report = |which: &'static str| {
            let tx = tx.clone();
            move || tx.send((which, thread_name())).unwrap()
        };
        to_b.clone().execute(report("clone of B's handle")).unwrap();
        b.handle()
            .execute(report("B's handle() made on A"))
            .unwrap();
        let current = Handle::current().expect("on a worker of A");
        current
            .clone()
            .execute(report("clone of A's current handle"))
            .unwrap();
    });
    pool_a.wait_idle();
    pool_b.wait_idle();
    drop(pool_a);
    let mut ran: Vec<_> = rx.try_iter().collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            ("B's handle() made on A", Some("pool-b-0".to_owned())),
            ("clone of A's current handle", Some("pool-a-0".to_owned())),
            ("clone of B's handle", Some("pool-b-0".to_owned())),
        ]
    );
}

#[test]
fn a_handle_made_on_a_worker_outlives_the_worker() {
    // The handle (and a clone made off the pool) keeps the pool's state
    // alive after every worker has exited: submitting then refuses the job
    // and hands it back.
    let pool = ThreadPool::new(2);
    let (tx, rx) = mpsc::channel();
    pool.execute(move || tx.send(Handle::current().expect("on a worker")).unwrap());
    let escaped = rx.recv().unwrap();
    pool.shutdown();
    let cloned = escaped.clone();
    drop(escaped);
    let ran = Arc::new(AtomicUsize::new(0));
    let job = {
        let ran = Arc::clone(&ran);
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };
    let refused = cloned.execute(job).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    refused.into_inner()();
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the job came back unrun");
}

#[test]
fn handles_moving_between_a_worker_and_other_threads_keep_one_count() {
    // A worker counts its own handles without atomics and every other
    // thread atomically (`src/hub.rs`). Here handles cross between the two
    // both ways: one made on the worker is dropped outside, one cloned
    // outside is dropped on the worker, and the last one outlives the
    // worker. Each keeps submitting to the pool while it lives, and the
    // pool's state is freed once, after the last one (Miri runs this test
    // and reports a leak or a use after free).
    let pool = ThreadPool::new(1);
    let (to_caller, from_worker) = mpsc::channel::<Handle>();
    let (to_worker, from_caller) = mpsc::channel::<Handle>();
    let ran = Arc::new(AtomicUsize::new(0));
    let count_run = {
        let ran = Arc::clone(&ran);
        move || {
            ran.fetch_add(1, Ordering::SeqCst);
        }
    };
    let job = {
        let count_run = count_run.clone();
        move || {
            let current = Handle::current().expect("on a worker");
            to_caller.send(current.clone()).unwrap();
            // Cloned by the caller, dropped here after one submission.
            let from_outside = from_caller.recv().unwrap();
            from_outside.execute(count_run.clone()).unwrap();
            drop(from_outside);
            current.execute(count_run).unwrap();
        }
    };
    pool.execute(job);
    let made_on_worker = from_worker.recv().unwrap();
    to_worker.send(made_on_worker.clone()).unwrap();
    made_on_worker.execute(count_run.clone()).unwrap();
    pool.wait_idle();
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    let last = made_on_worker.clone();
    drop(made_on_worker);
    pool.shutdown();
    let refused = last.execute(count_run).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    drop(refused);
    assert_eq!(ran.load(Ordering::SeqCst), 3, "the refused job did not run");
}

/// Sets its flag when dropped: owned by a pool's state (through a hook),
/// it tells when the state is freed.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A pool of `threads` workers whose state, once freed, sets `freed`: its
/// start hook owns a [`SetOnDrop`].
fn pool_whose_state_sets(freed: &Arc<AtomicBool>, threads: usize) -> ThreadPool {
    let owned_by_state = SetOnDrop(Arc::clone(freed));
    Builder::new()
        .num_threads(threads)
        .on_thread_start(move |_| {
            let _ = &owned_by_state;
        })
        .build()
        .unwrap()
}

#[test]
fn the_pools_state_is_freed_once_the_last_handle_is_gone() {
    // Every reference to the pool's state is counted on a hub: the workers'
    // own (a plain count for the worker, atomic elsewhere), or a handle's
    // own. Handles made on a worker cross to another thread and back, one
    // made off the pool is dropped on a worker, and several clones live on
    // another thread at once. The state (here, the start hook it owns) must
    // outlive the last handle and be freed when it goes: a hub never
    // retired or never freed leaks it, which no other test would notice.
    let freed = Arc::new(AtomicBool::new(false));
    let pool = pool_whose_state_sets(&freed, 2);
    let (to_caller, from_worker) = mpsc::channel::<Handle>();
    let (to_worker, from_caller) = mpsc::channel::<Handle>();
    pool.execute(move || {
        let current = Handle::current().expect("on a worker");
        to_caller.send(current.clone()).unwrap();
        drop(current);
        // Made off the pool, with a hub of its own; dropped here.
        drop(from_caller.recv().unwrap());
    });
    to_worker.send(pool.handle()).unwrap();
    let made_on_worker = from_worker.recv().unwrap();
    let clones: Vec<Handle> = (0..4).map(|_| made_on_worker.clone()).collect();
    pool.wait_idle();
    pool.shutdown();
    drop(clones);
    assert!(
        !freed.load(Ordering::SeqCst),
        "the state was freed while a handle still held it"
    );
    let refused = made_on_worker.execute(|| {}).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    drop(made_on_worker);
    assert!(
        freed.load(Ordering::SeqCst),
        "the state outlived every handle: a hub leaked"
    );
}

#[test]
fn a_handle_a_worker_drops_after_it_exits_frees_the_pools_state() {
    // A job keeps its worker's `Handle::current()` in a thread-local of its
    // own; the worker drops it only once it has exited and released its
    // hub, when the thread's locals are torn down. By then the worker no
    // longer owns the hub, so that drop must be counted as any other
    // thread's and, being the last, free the hub and the pool's state. A
    // thread that still took itself for the owner would count it in the
    // owner's plain count, already folded in, and the state would leak.
    thread_local! {
        static KEPT: std::cell::RefCell<Option<Handle>> = const { std::cell::RefCell::new(None) };
    }
    let freed = Arc::new(AtomicBool::new(false));
    let pool = pool_whose_state_sets(&freed, 1);
    pool.execute(|| KEPT.with(|kept| *kept.borrow_mut() = Handle::current()));
    pool.wait_idle();
    // Joins the worker: its thread-locals are gone when this returns.
    pool.shutdown();
    assert!(
        freed.load(Ordering::SeqCst),
        "the state outlived the worker's last handle: its hub leaked"
    );
}

// ---------------------------------------------------------------------------
// Re-entrancy
// ---------------------------------------------------------------------------

/// `wait_idle` (or `wait_idle_timeout`) from inside one of the pool's own
/// jobs would wait for itself; it panics instead, naming the call.
fn assert_wait_from_inside_panics(call: &'static str, wait: fn(&ThreadPool)) {
    quiet_deliberate_panics();
    let (message_tx, message_rx) = mpsc::channel();
    let pool = Arc::new(
        Builder::new()
            .num_threads(1)
            .panic_handler(move |payload| {
                let text = payload_text(&*payload).map(str::to_owned);
                message_tx.send(text).unwrap();
            })
            .build()
            .unwrap(),
    );
    let inner = Arc::clone(&pool);
    pool.execute(move || wait(&inner));
    let message = message_rx
        .recv_timeout(HANG)
        .expect("the misuse must panic, not hang")
        .expect("a string panic message");
    assert!(
        message.contains(call),
        "message does not name {call}: {message}"
    );
    assert!(
        message.contains("inside"),
        "message does not explain the misuse: {message}"
    );
    pool.wait_idle();
    assert_eq!(pool.panic_count(), 1);
    assert_eq!(pool.completed_count(), 0);

    // The worker survived the refused call.
    let (tx, rx) = mpsc::channel();
    pool.execute(move || tx.send(()).unwrap());
    rx.recv_timeout(HANG).expect("the worker keeps serving");
}

#[test]
fn wait_idle_from_inside_the_pool_panics_naming_the_misuse() {
    assert_wait_from_inside_panics("wait_idle", ThreadPool::wait_idle);
}

#[test]
fn wait_idle_timeout_from_inside_the_pool_panics_naming_the_misuse() {
    assert_wait_from_inside_panics("wait_idle_timeout", |pool| {
        pool.wait_idle_timeout(Duration::from_secs(1));
    });
}

#[test]
fn wait_idle_on_another_pool_from_a_job_is_allowed() {
    let outer = ThreadPool::new(1);
    let inner = Arc::new(ThreadPool::new(2));
    let runs = run_counters(10);
    for id in 0..10 {
        inner.execute(counting_job(&runs, id));
    }
    let (tx, rx) = mpsc::channel();
    let waited_on = Arc::clone(&inner);
    let seen = Arc::clone(&runs);
    outer.execute(move || {
        waited_on.wait_idle();
        tx.send(snapshot(&seen)).unwrap();
    });
    let seen = rx
        .recv_timeout(HANG)
        .expect("waiting on another pool works");
    assert!(seen.iter().all(|&n| n == 1));
    outer.wait_idle();
    assert_eq!(outer.completed_count(), 1);
}

#[test]
fn execute_through_a_shared_pool_from_inside_its_own_job() {
    let pool = Arc::new(ThreadPool::new(1));
    let runs = run_counters(2);
    let (inner, child_runs) = (Arc::clone(&pool), Arc::clone(&runs));
    pool.execute(move || {
        child_runs[0].fetch_add(1, Ordering::SeqCst);
        inner.execute(counting_job(&child_runs, 1));
    });
    // The child is accepted before its parent finishes, so idleness covers it.
    pool.wait_idle();
    assert_eq!(snapshot(&runs), [1, 1]);
    assert_eq!(pool.completed_count(), 2);
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    Drop,
    Shutdown,
}

/// Puts a pool of `threads` workers in a shared slot, queues jobs on both
/// sides of one that takes the pool out of the slot and ends it, and checks
/// that the call returns (no deadlock), that every other accepted job has run
/// exactly once by then, and that the other workers were joined; the calling
/// worker exits after its job.
fn end_pool_from_inside_a_job(threads: usize, ending: Ending) {
    const BEFORE: usize = 20;
    const AFTER: usize = 20;
    const ENDER: usize = BEFORE;
    let (stop_tx, stop_rx) = mpsc::channel();
    let stops = Arc::new(AtomicUsize::new(0));
    let stop_count = Arc::clone(&stops);
    let pool = Builder::new()
        .num_threads(threads)
        .on_thread_stop(move |index| {
            stop_count.fetch_add(1, Ordering::SeqCst);
            stop_tx.send(index).unwrap();
        })
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(Some(pool)));
    let runs = run_counters(BEFORE + 1 + AFTER);
    let (done_tx, done_rx) = mpsc::channel();

    {
        // Hold the slot while submitting, so every job is accepted before the
        // ending job can take the pool.
        let guard = slot.lock().unwrap();
        let pool = guard.as_ref().unwrap();
        for id in 0..BEFORE {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                if id % 5 == 0 {
                    // Makes it likely that other workers are mid-job when
                    // the pool is ended. Not needed for correctness.
                    thread::sleep(Duration::from_millis(2));
                }
                runs[id].fetch_add(1, Ordering::SeqCst);
            });
        }
        let (own_slot, own_runs, own_stops) =
            (Arc::clone(&slot), Arc::clone(&runs), Arc::clone(&stops));
        pool.execute(move || {
            own_runs[ENDER].fetch_add(1, Ordering::SeqCst);
            let pool = own_slot.lock().unwrap().take().expect("taken once");
            match ending {
                Ending::Drop => drop(pool),
                Ending::Shutdown => pool.shutdown(),
            }
            let refused = Handle::current()
                .expect("still on a worker")
                .execute(|| ())
                .map_err(|e| e.kind());
            done_tx
                .send((
                    snapshot(&own_runs),
                    own_stops.load(Ordering::SeqCst),
                    refused,
                ))
                .unwrap();
        });
        for id in BEFORE + 1..BEFORE + 1 + AFTER {
            pool.execute(counting_job(&runs, id));
        }
    }

    let (at_return, stops_at_return, refused) = done_rx
        .recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("ending a {threads}-thread pool from its own job deadlocked"));
    assert!(
        at_return.iter().all(|&n| n == 1),
        "when the call returned, not every accepted job had run exactly once: {at_return:?}"
    );
    assert_eq!(
        stops_at_return,
        threads - 1,
        "every other worker is joined when the call returns"
    );
    assert_eq!(refused, Err(SubmitErrorKind::ShutDown));

    // The calling worker exits after its job.
    let mut stopped: Vec<usize> = (0..threads)
        .map(|_| stop_rx.recv_timeout(HANG).expect("every worker exits"))
        .collect();
    stopped.sort_unstable();
    assert_eq!(stopped, (0..threads).collect::<Vec<_>>());
    assert!(snapshot(&runs).iter().all(|&n| n == 1), "nothing ran twice");
    assert!(slot.lock().unwrap().is_none());
}

#[test]
fn drop_from_inside_a_job_of_a_single_thread_pool() {
    end_pool_from_inside_a_job(1, Ending::Drop);
}

#[test]
fn drop_from_inside_a_job_of_a_three_thread_pool() {
    end_pool_from_inside_a_job(3, Ending::Drop);
}

#[test]
fn shutdown_from_inside_a_job_of_a_single_thread_pool() {
    end_pool_from_inside_a_job(1, Ending::Shutdown);
}

#[test]
fn shutdown_from_inside_a_job_of_a_three_thread_pool() {
    end_pool_from_inside_a_job(3, Ending::Shutdown);
}

/// A job drops its own pool while another thread keeps submitting through
/// a `Handle`: every submission is either accepted and run exactly once, or
/// refused with the job handed back unrun, and once refused it stays so.
#[test]
fn drop_from_inside_while_a_handle_submits_concurrently() {
    let pool = ThreadPool::new(2);
    let handle = pool.handle();
    let slot = Arc::new(Mutex::new(Some(pool)));
    let (dropped_tx, dropped_rx) = mpsc::channel();

    thread::scope(|scope| {
        // Submits until refused; returns each accepted job's run counter,
        // and the refused job's runs in the pool (before and after it is
        // called here).
        let submitter = scope.spawn(|| {
            let mut accepted = Vec::new();
            loop {
                let runs = Arc::new(AtomicUsize::new(0));
                let job_runs = Arc::clone(&runs);
                let job = move || {
                    job_runs.fetch_add(1, Ordering::SeqCst);
                };
                match handle.execute(job) {
                    Ok(()) => accepted.push(runs),
                    Err(err) => {
                        assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
                        let job = err.into_inner();
                        let before = runs.load(Ordering::SeqCst);
                        job();
                        assert!(handle.execute(|| ()).is_err(), "refused stays refused");
                        return (accepted, before, runs.load(Ordering::SeqCst));
                    }
                }
            }
        });

        let ender_slot = Arc::clone(&slot);
        slot.lock().unwrap().as_ref().unwrap().execute(move || {
            // Lets the submitter get going first; not needed for correctness.
            thread::sleep(Duration::from_millis(2));
            drop(ender_slot.lock().unwrap().take());
            dropped_tx.send(()).unwrap();
        });
        dropped_rx
            .recv_timeout(HANG)
            .expect("dropping the pool from its own job deadlocked");

        let (accepted, refused_before, refused_after) = submitter.join().unwrap();
        assert_eq!(refused_before, 0, "the refused job never ran in the pool");
        assert_eq!(refused_after, 1, "it ran once when called here");
        for (i, runs) in accepted.iter().enumerate() {
            assert_eq!(runs.load(Ordering::SeqCst), 1, "accepted job {i}");
        }
    });
}

/// The last reference to a pool is owned by one of its jobs, which panics:
/// the pool is dropped on its own worker while that worker unwinds.
#[test]
fn job_owning_the_last_reference_panics() {
    quiet_deliberate_panics();
    for threads in [1, 2] {
        let (stop_tx, stop_rx) = mpsc::channel();
        let pool = Arc::new(
            Builder::new()
                .num_threads(threads)
                .on_thread_stop(move |index| stop_tx.send(index).unwrap())
                .build()
                .unwrap(),
        );
        let runs = run_counters(10);
        let gate = Arc::new(Gate::default());
        let owner = Arc::clone(&pool);
        let gate_in_job = Arc::clone(&gate);
        pool.execute(move || {
            let _pool = owner;
            gate_in_job.pass();
            panic!("{DELIBERATE}: while owning the pool");
        });
        for id in 0..10 {
            pool.execute(counting_job(&runs, id));
        }
        drop(pool);
        gate.open();
        for _ in 0..threads {
            stop_rx.recv_timeout(HANG).expect("every worker exits");
        }
        assert!(snapshot(&runs).iter().all(|&n| n == 1), "{threads} threads");
    }
}

/// A job on a 1-thread pool submits a child through `Handle::current()` only
/// after the owner's shutdown has begun: the child is refused, handed back,
/// and never runs in the pool; everything accepted before still runs.
#[test]
fn child_submitted_after_shutdown_began_is_handed_back() {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    let gate = Arc::new(Gate::default());
    let child_runs = Arc::new(AtomicUsize::new(0));
    let (result_tx, result_rx) = mpsc::channel();
    {
        let (gate, child_runs) = (Arc::clone(&gate), Arc::clone(&child_runs));
        pool.execute(move || {
            gate.pass();
            let child = {
                let child_runs = Arc::clone(&child_runs);
                move || {
                    child_runs.fetch_add(1, Ordering::SeqCst);
                }
            };
            let outcome = match Handle::current().unwrap().execute(child) {
                Ok(()) => Ok(()),
                Err(err) => {
                    let kind = err.kind();
                    let child = err.into_inner();
                    let before = child_runs.load(Ordering::SeqCst);
                    child(); // the handed-back closure, run by the parent
                    Err((kind, before, child_runs.load(Ordering::SeqCst)))
                }
            };
            result_tx.send(outcome).unwrap();
        });
    }

    thread::scope(|scope| {
        let shutting_down = scope.spawn(move || pool.shutdown());
        // Probe until the queue is closed; probes accepted before that are
        // ordinary jobs and run.
        let probes = Arc::new(AtomicUsize::new(0));
        let mut accepted = 0;
        loop {
            let probe_runs = Arc::clone(&probes);
            match handle.execute(move || {
                probe_runs.fetch_add(1, Ordering::SeqCst);
            }) {
                Ok(()) => accepted += 1,
                Err(err) => {
                    assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
                    break;
                }
            }
            thread::yield_now();
        }
        gate.open();
        shutting_down.join().unwrap();
        assert_eq!(probes.load(Ordering::SeqCst), accepted);
    });

    let outcome = result_rx
        .try_recv()
        .expect("the parent ran before shutdown returned");
    assert_eq!(
        outcome,
        Err((SubmitErrorKind::ShutDown, 0, 1)),
        "refused, unrun in the pool, then run once by its parent"
    );
    assert_eq!(child_runs.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------
// Waiting and counters
// ---------------------------------------------------------------------------

#[test]
fn wait_idle_timeout_is_false_while_a_job_is_blocked_and_true_once_idle() {
    let pool = ThreadPool::new(1);
    assert!(
        pool.wait_idle_timeout(Duration::ZERO),
        "a fresh pool is idle"
    );

    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    pool.execute(move || {
        started_tx.send(()).unwrap();
        blocked.pass();
    });
    // Queued or running, the job keeps the pool busy until the gate opens.
    assert!(!pool.wait_idle_timeout(Duration::ZERO));
    started_rx.recv_timeout(HANG).unwrap();
    assert!(!pool.wait_idle_timeout(Duration::ZERO));
    assert!(!pool.wait_idle_timeout(Duration::from_millis(20)));
    assert_eq!(pool.active_count(), 1);
    assert_eq!(pool.completed_count(), 0);

    gate.open();
    assert!(pool.wait_idle_timeout(HANG));
    assert_eq!(pool.completed_count(), 1);
    assert_eq!(pool.active_count(), 0);
    assert!(pool.wait_idle_timeout(Duration::ZERO));
}

/// A timeout too long to add to `Instant::now()` waits like `wait_idle`.
#[test]
fn wait_idle_timeout_with_the_longest_duration_waits_until_idle() {
    let pool = ThreadPool::new(2);
    assert!(pool.wait_idle_timeout(Duration::MAX));

    let gate = Arc::new(Gate::default());
    let blocked = Arc::clone(&gate);
    pool.execute(move || blocked.pass());
    thread::scope(|scope| {
        let waiter = scope.spawn(|| pool.wait_idle_timeout(Duration::MAX));
        // Makes it likely the waiter is asleep before the job ends; the
        // result does not depend on it.
        thread::sleep(Duration::from_millis(5));
        gate.open();
        assert!(waiter.join().unwrap());
    });
    assert_eq!(pool.completed_count(), 1);
}

/// The scheduling state (`R`, `S`, ...) of thread `tid` of this process.
#[cfg(target_os = "linux")]
fn thread_state(tid: &str) -> char {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
    // After the command name, which may itself hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.trim_start().chars().next().unwrap()
}

/// Runs `wait` on a thread of its own, then `drive`, which gets a function
/// that samples that thread's state from `/proc` until it is seen asleep in
/// five samples in a row, and must end by letting `wait` return. A waiter
/// that never sleeps again turns this into a hang, which [`HANG`] fails.
#[cfg(target_os = "linux")]
fn with_waiter(wait: impl FnOnce() + Send, drive: impl FnOnce(&dyn Fn())) {
    let (tid_tx, tid_rx) = mpsc::channel();
    thread::scope(|scope| {
        let waiter = scope.spawn(move || {
            let me = std::fs::read_link("/proc/thread-self").unwrap();
            let tid = me.file_name().unwrap().to_str().unwrap().to_owned();
            tid_tx.send(tid).unwrap();
            wait();
        });
        let tid = tid_rx.recv_timeout(HANG).unwrap();
        let until_asleep = || {
            let deadline = std::time::Instant::now() + HANG;
            let mut asleep_in_a_row = 0;
            while asleep_in_a_row < 5 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the waiter kept its thread awake while the pool stayed busy"
                );
                asleep_in_a_row = if thread_state(&tid) == 'S' {
                    asleep_in_a_row + 1
                } else {
                    0
                };
                thread::sleep(Duration::from_millis(1));
            }
        };
        drive(&until_asleep);
        waiter.join().unwrap();
    });
}

/// [`with_waiter`] for a `wait` that waits on a job blocked on `gate`:
/// opens the gate once the waiter is seen asleep.
#[cfg(target_os = "linux")]
fn open_once_asleep(gate: &Gate, wait: impl FnOnce() + Send) {
    with_waiter(wait, |until_asleep| {
        until_asleep();
        gate.open();
    });
}

/// `wait_idle` on a pool that stays busy yields for a bounded time and
/// then sleeps: it must not burn a CPU for the rest of the wait.
#[cfg(target_os = "linux")]
#[test]
fn wait_idle_on_a_busy_pool_ends_up_asleep() {
    let pool = ThreadPool::new(1);
    let gate = Arc::new(Gate::default());
    let blocked = Arc::clone(&gate);
    pool.execute(move || blocked.pass());
    open_once_asleep(&gate, || pool.wait_idle());
    assert_eq!(pool.completed_count(), 1);
}

/// A `wait_idle` caller woken, once its yield budget is spent, by something
/// that does not end its wait (here a worker retiring) goes back to sleep.
/// Two workers, so that the caller yields only once one has retired, on a
/// machine with two CPUs or more (on one it never yields).
#[cfg(target_os = "linux")]
#[test]
fn wait_idle_woken_by_a_retiring_worker_goes_back_to_sleep() {
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let pool = Builder::new()
        .num_threads(2)
        .on_thread_stop(move |_| stopped_tx.send(()).unwrap())
        .build()
        .unwrap();
    let gate = Arc::new(Gate::default());
    let blocked = Arc::clone(&gate);
    pool.execute(move || blocked.pass());
    with_waiter(
        || pool.wait_idle(),
        |until_asleep| {
            until_asleep();
            pool.set_num_threads(1).unwrap();
            // The idle worker retires; it notifies the waiter before its
            // stop hook runs.
            stopped_rx.recv_timeout(HANG).unwrap();
            until_asleep();
            gate.open();
        },
    );
    assert_eq!(pool.completed_count(), 1);
}

/// A joiner outside the pool, waiting for a job that stays blocked, yields
/// for a bounded time and then sleeps too.
#[cfg(target_os = "linux")]
#[test]
fn joiner_outside_the_pool_waiting_on_a_blocked_job_ends_up_asleep() {
    let pool = ThreadPool::new(1);
    let gate = Arc::new(Gate::default());
    let blocked = Arc::clone(&gate);
    let handle = pool.spawn(move || {
        blocked.pass();
        7
    });
    let mut joined = None;
    open_once_asleep(&gate, || joined = Some(handle.join()));
    assert_eq!(joined.expect("the waiter ran").unwrap(), 7);
}

/// The owner of a scope, outside the pool, waiting for a job that stays
/// blocked, ends up asleep too.
#[cfg(target_os = "linux")]
#[test]
fn scope_owner_outside_the_pool_waiting_on_a_blocked_job_ends_up_asleep() {
    let pool = ThreadPool::new(1);
    let gate = Gate::default();
    let ran = AtomicBool::new(false);
    open_once_asleep(&gate, || {
        pool.scope(|s| {
            s.execute(|| {
                gate.pass();
                ran.store(true, Ordering::SeqCst);
            });
        });
    });
    // `scope` returns once its job has finished; the pool's counters are
    // exact only once `wait_idle` returns, so they are not read here.
    assert!(
        ran.load(Ordering::SeqCst),
        "scope returned before its job ended"
    );
}

#[test]
fn wait_idle_returns_at_once_on_an_idle_pool_and_waits_for_children() {
    let pool = ThreadPool::new(2);
    pool.wait_idle();
    let runs = run_counters(1 + 2 + 4);
    let tree = Arc::clone(&runs);
    pool.execute(move || {
        tree[0].fetch_add(1, Ordering::SeqCst);
        let handle = Handle::current().unwrap();
        for child in 1..=2 {
            let tree = Arc::clone(&tree);
            handle
                .execute(move || {
                    tree[child].fetch_add(1, Ordering::SeqCst);
                    for grandchild in [2 * child + 1, 2 * child + 2] {
                        Handle::current()
                            .unwrap()
                            .execute(counting_job(&tree, grandchild))
                            .unwrap();
                    }
                })
                .unwrap();
        }
    });
    pool.wait_idle();
    assert_eq!(snapshot(&runs), [1; 7]);
    assert_eq!(pool.completed_count(), 7);
}

#[test]
fn counters_are_exact_after_each_wait_idle() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(3);
    let (mut completed, mut panicked) = (0, 0);
    for round in 0..5usize {
        let jobs = 40 + round * 13;
        for i in 0..jobs {
            if (i + round) % 6 == 0 {
                panicked += 1;
                pool.execute(|| panic!("{DELIBERATE}: counted"));
            } else if i % 9 == 0 {
                // A job with one child: two completions.
                completed += 2;
                pool.execute(|| Handle::current().unwrap().execute(|| ()).unwrap());
            } else {
                completed += 1;
                pool.execute(|| ());
            }
        }
        pool.wait_idle();
        assert_eq!(pool.completed_count(), completed, "round {round}");
        assert_eq!(pool.panic_count(), panicked, "round {round}");
        assert_eq!(pool.queued_count(), 0);
        assert_eq!(pool.active_count(), 0);
    }
}

#[test]
fn queued_and_active_counts_reflect_blocked_jobs() {
    let pool = ThreadPool::new(2);
    let gate = Arc::new(Gate::default());
    let (started_tx, started_rx) = mpsc::channel();
    for _ in 0..2 {
        let (gate, started) = (Arc::clone(&gate), started_tx.clone());
        pool.execute(move || {
            started.send(()).unwrap();
            gate.pass();
        });
    }
    for _ in 0..2 {
        started_rx.recv_timeout(HANG).unwrap();
    }
    // Both workers are held at the gate, so these three must wait in line.
    for _ in 0..3 {
        pool.execute(|| ());
    }
    assert_eq!(pool.active_count(), 2);
    assert_eq!(pool.queued_count(), 3);
    assert_eq!(pool.completed_count(), 0);
    gate.open();
    pool.wait_idle();
    assert_eq!(pool.active_count(), 0);
    assert_eq!(pool.queued_count(), 0);
    assert_eq!(pool.completed_count(), 5);
}

// ---------------------------------------------------------------------------
// Shutdown
// ---------------------------------------------------------------------------

/// Ends a busy pool from the owner's thread and checks the ledger at the
/// moment the call returns: every accepted job ran once, every worker joined.
fn assert_graceful_end(end: fn(ThreadPool)) {
    const JOBS: usize = 200;
    let lifecycle = Lifecycle::default();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let runs = run_counters(JOBS);
    for id in 0..JOBS {
        let runs = Arc::clone(&runs);
        pool.execute(move || {
            if id % 50 == 0 {
                // Keeps jobs queued when the end begins; not for correctness.
                thread::sleep(Duration::from_millis(2));
            }
            runs[id].fetch_add(1, Ordering::SeqCst);
        });
    }
    end(pool);
    assert!(
        snapshot(&runs).iter().all(|&n| n == 1),
        "every accepted job ran exactly once"
    );
    assert_eq!(lifecycle.starts(), 2);
    assert_eq!(lifecycle.stops(), 2, "every worker was joined");
}

#[test]
fn shutdown_runs_every_accepted_job_and_joins_workers() {
    assert_graceful_end(ThreadPool::shutdown);
}

#[test]
fn drop_runs_every_accepted_job_and_joins_workers() {
    assert_graceful_end(drop);
}

#[test]
fn shutdown_of_an_idle_pool_joins_every_worker() {
    for threads in [1, 4] {
        let lifecycle = Lifecycle::default();
        let pool = lifecycle
            .install(Builder::new().num_threads(threads))
            .build()
            .unwrap();
        pool.shutdown();
        assert_eq!(lifecycle.stops(), threads);
    }
}

#[test]
fn shutdown_waits_for_a_running_job() {
    let lifecycle = Lifecycle::default();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let gate = Arc::new(Gate::default());
    let finished = Arc::new(AtomicUsize::new(0));
    let (started_tx, started_rx) = mpsc::channel();
    {
        let (gate, finished) = (Arc::clone(&gate), Arc::clone(&finished));
        pool.execute(move || {
            started_tx.send(()).unwrap();
            gate.pass();
            finished.fetch_add(1, Ordering::SeqCst);
        });
    }
    started_rx.recv_timeout(HANG).unwrap();
    thread::scope(|scope| {
        let shutting_down = scope.spawn(|| pool.shutdown());
        // Makes it likely shutdown is already waiting; not for correctness.
        thread::sleep(Duration::from_millis(5));
        gate.open();
        shutting_down.join().unwrap();
    });
    assert_eq!(finished.load(Ordering::SeqCst), 1);
    assert_eq!(lifecycle.stops(), 1);
}

// ---------------------------------------------------------------------------
// Formatting and error traits
// ---------------------------------------------------------------------------

#[test]
fn debug_output_names_each_type() {
    let builder = Builder::new().num_threads(3).stack_size(1 << 20);
    let text = format!("{builder:?}");
    assert!(text.starts_with("Builder"), "{text}");
    assert!(text.contains('3') && text.contains("1048576"), "{text}");

    let pool = builder.build().unwrap();
    let text = format!("{pool:?}");
    assert!(text.starts_with("ThreadPool"), "{text}");
    assert!(text.contains("num_threads: 3"), "{text}");

    let text = format!("{:?}", pool.handle());
    assert!(text.starts_with("Handle"), "{text}");
}

/// A closure type with no `Debug` impl.
fn refused_job() -> SubmitError<impl FnOnce() + Send + 'static> {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    pool.shutdown();
    let not_debug = vec![1, 2, 3];
    handle
        .execute(move || drop(not_debug))
        .expect_err("refused after shutdown")
}

#[test]
fn submit_error_formats_without_a_debug_job() {
    let err = refused_job();
    let debug = format!("{err:?}");
    assert!(debug.contains("SubmitError"), "{debug}");
    assert!(debug.contains("ShutDown"), "{debug}");
    let display = err.to_string();
    assert!(display.contains("shut down"), "{display}");
    assert_eq!(format!("{:?}", err.kind()), "ShutDown");
    assert!(err.source().is_none());
}

#[test]
fn build_errors_display_their_cause() {
    let zero = BuildError::ZeroThreads;
    assert!(zero.to_string().contains("at least one"), "{zero}");
    assert!(format!("{zero:?}").contains("ZeroThreads"));

    let os = io::Error::new(io::ErrorKind::OutOfMemory, "no room for a stack");
    let spawn = BuildError::Spawn(os);
    let text = spawn.to_string();
    assert!(
        text.contains("spawn") && text.contains("no room for a stack"),
        "{text}"
    );
    assert!(format!("{spawn:?}").contains("Spawn"));
    let source = spawn.source().unwrap().downcast_ref::<io::Error>().unwrap();
    assert_eq!(source.kind(), io::ErrorKind::OutOfMemory);
}

#[test]
fn errors_convert_into_boxed_std_errors() {
    fn build() -> Result<ThreadPool, Box<dyn Error + Send + Sync>> {
        Ok(Builder::new().num_threads(0).build()?)
    }
    fn submit() -> Result<(), Box<dyn Error + Send + Sync>> {
        let pool = ThreadPool::new(1);
        let handle = pool.handle();
        drop(pool);
        handle.execute(|| ())?;
        Ok(())
    }
    let err = build().expect_err("zero threads");
    assert!(err.downcast_ref::<BuildError>().is_some());
    let err = submit().expect_err("shut down");
    assert!(err.to_string().contains("shut down"), "{err}");
}

#[test]
fn submit_error_kinds_compare_and_copy() {
    let kinds = [
        SubmitErrorKind::Full,
        SubmitErrorKind::ShutDown,
        SubmitErrorKind::TimedOut,
    ];
    let set: HashSet<SubmitErrorKind> = kinds.iter().copied().collect();
    assert_eq!(set.len(), 3);
    let copy = kinds[1];
    assert_eq!(copy, SubmitErrorKind::ShutDown);
    assert_ne!(copy, SubmitErrorKind::Full);
}
