//! Helpers shared by the integration tests of the spawn, backpressure,
//! shutdown and resize APIs (`results.rs`, `backpressure.rs`,
//! `shutdown_variants.rs`, `resize.rs`).
//!
//! The same rules as `integration.rs`: synchronisation between a test and the
//! pool's jobs goes through gates, rendezvous and channels, never through
//! sleeps; the only timeouts are [`HANG`], which turn a deadlock into a
//! failure and are never reached when the pool behaves.
//!
//! Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

use std::any::Any;
use std::future::Future;
use std::panic;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, Once};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use weft::{Builder, Handle, SubmitErrorKind};

/// How long any wait in these tests may take before it is declared a hang.
/// Only reached when the pool deadlocks; a passing run never waits this long.
pub const HANG: Duration = Duration::from_secs(60);

/// Marker carried by every panic these tests raise on purpose.
pub const DELIBERATE: &str = "deliberate test panic";

/// A panic payload that is not a string, raised on purpose.
#[derive(Debug, PartialEq)]
pub struct DeliberatePayload(pub u32);

pub fn payload_text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Whether a panic was raised on purpose by a test (directly, or by weft
/// refusing a misuse that a test commits on purpose).
fn is_deliberate(payload: &(dyn Any + Send)) -> bool {
    if payload.is::<DeliberatePayload>() {
        return true;
    }
    payload_text(payload).is_some_and(|text| {
        text.contains(DELIBERATE)
            || text.contains("into_panic called on a cancelled")
            || text.contains("polled again after it returned")
    })
}

/// Installs, once per process, a panic hook that keeps deliberate panics off
/// stderr and forwards every other panic to the default hook. The hook is
/// process-global and tests run in parallel, so it filters by payload rather
/// than being swapped in and out around a test.
pub fn quiet_deliberate_panics() {
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
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }

    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    pub fn is_open(&self) -> bool {
        *self.open.lock().unwrap()
    }

    /// Blocks until the gate is open; panics after [`HANG`].
    pub fn pass(&self) {
        let (open, timeout) = self
            .opened
            .wait_timeout_while(self.open.lock().unwrap(), HANG, |open| !*open)
            .unwrap();
        assert!(*open && !timeout.timed_out(), "gate never opened");
    }
}

/// A meeting point for `n` parties: each returns only once all `n` arrived,
/// which proves `n` threads were running at the same moment.
pub struct Rendezvous {
    arrived: Mutex<usize>,
    all_here: Condvar,
    parties: usize,
}

impl Rendezvous {
    pub fn new(parties: usize) -> Arc<Rendezvous> {
        Arc::new(Rendezvous {
            arrived: Mutex::new(0),
            all_here: Condvar::new(),
            parties,
        })
    }

    /// Returns whether all parties met (false after [`HANG`]).
    pub fn meet(&self) -> bool {
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
pub fn run_counters(jobs: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..jobs).map(|_| AtomicUsize::new(0)).collect())
}

pub fn snapshot(counters: &[AtomicUsize]) -> Vec<usize> {
    counters.iter().map(|c| c.load(Ordering::SeqCst)).collect()
}

/// A job that counts its own run in `runs[id]`.
pub fn counting_job(runs: &Arc<Vec<AtomicUsize>>, id: usize) -> impl FnOnce() + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        runs[id].fetch_add(1, Ordering::SeqCst);
    }
}

pub fn thread_name() -> Option<String> {
    thread::current().name().map(str::to_owned)
}

/// Start/stop hooks that report each worker's index on a channel, and count.
pub struct Lifecycle {
    starts: Arc<AtomicUsize>,
    stops: Arc<AtomicUsize>,
    started: mpsc::Receiver<usize>,
    stopped: mpsc::Receiver<usize>,
    start_tx: mpsc::Sender<usize>,
    stop_tx: mpsc::Sender<usize>,
}

impl Lifecycle {
    pub fn new() -> Lifecycle {
        let (start_tx, started) = mpsc::channel();
        let (stop_tx, stopped) = mpsc::channel();
        Lifecycle {
            starts: Arc::default(),
            stops: Arc::default(),
            started,
            stopped,
            start_tx,
            stop_tx,
        }
    }

    pub fn install(&self, builder: Builder) -> Builder {
        let (starts, start_tx) = (Arc::clone(&self.starts), Mutex::new(self.start_tx.clone()));
        let (stops, stop_tx) = (Arc::clone(&self.stops), Mutex::new(self.stop_tx.clone()));
        builder
            .on_thread_start(move |index| {
                starts.fetch_add(1, Ordering::SeqCst);
                let _ = start_tx.lock().unwrap().send(index);
            })
            .on_thread_stop(move |index| {
                stops.fetch_add(1, Ordering::SeqCst);
                let _ = stop_tx.lock().unwrap().send(index);
            })
    }

    pub fn starts(&self) -> usize {
        self.starts.load(Ordering::SeqCst)
    }

    pub fn stops(&self) -> usize {
        self.stops.load(Ordering::SeqCst)
    }

    /// The stop count itself, to read from other threads and jobs (the
    /// `Lifecycle` holds receivers, so it is not `Sync`).
    pub fn stop_counter(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.stops)
    }

    /// The index of the next worker to start; panics after [`HANG`].
    pub fn next_start(&self) -> usize {
        self.started
            .recv_timeout(HANG)
            .expect("a worker should have started")
    }

    /// The index of the next worker to stop; panics after [`HANG`].
    pub fn next_stop(&self) -> usize {
        self.stopped
            .recv_timeout(HANG)
            .expect("a worker should have stopped")
    }

    /// The indices of the next `n` workers to stop, sorted.
    pub fn next_stops(&self, n: usize) -> Vec<usize> {
        let mut stopped: Vec<usize> = (0..n).map(|_| self.next_stop()).collect();
        stopped.sort_unstable();
        stopped
    }
}

/// Submits no-op probes through `handle` until one is refused with
/// `ShutDown`, which proves the pool's queue is closed. Returns how many
/// probes were accepted before that (they are ordinary jobs: they run, or are
/// handed back by `shutdown_now`).
pub fn probe_until_closed(handle: &Handle) -> usize {
    let deadline = Instant::now() + HANG;
    let mut accepted = 0;
    loop {
        match handle.try_execute(|| ()) {
            Ok(()) => accepted += 1,
            Err(err) => {
                assert_eq!(err.kind(), SubmitErrorKind::ShutDown, "probe refused");
                return accepted;
            }
        }
        assert!(Instant::now() < deadline, "the pool never closed");
        thread::yield_now();
    }
}

// ---------------------------------------------------------------------------
// A minimal executor for `JoinHandle` as a `Future`
// ---------------------------------------------------------------------------

/// Wakes a parked thread. `woken` makes the executor re-poll only after a
/// real `wake`: a spurious unpark does not count, so a lost wake-up hangs
/// (and fails after [`HANG`]) instead of being papered over by re-polling.
struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
    wakes: AtomicUsize,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.woken.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Runs `future` to completion on this thread, parking between polls.
/// Returns its output and how many times it was polled.
pub fn block_on_counting<F: Future>(future: F) -> (F::Output, usize) {
    let mut future = pin!(future);
    let state = Arc::new(ThreadWaker {
        thread: thread::current(),
        woken: AtomicBool::new(false),
        wakes: AtomicUsize::new(0),
    });
    let waker = Waker::from(Arc::clone(&state));
    let mut cx = Context::from_waker(&waker);
    let deadline = Instant::now() + HANG;
    let mut polls = 0;
    loop {
        polls += 1;
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return (output, polls);
        }
        while !state.woken.swap(false, Ordering::SeqCst) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .expect("the future was never woken (lost wake-up?)");
            thread::park_timeout(left);
        }
    }
}

/// Runs `future` to completion on this thread, parking between polls.
pub fn block_on<F: Future>(future: F) -> F::Output {
    block_on_counting(future).0
}

/// A waker that counts its wakes, for polling by hand.
#[derive(Default)]
pub struct CountingWaker {
    wakes: Mutex<usize>,
    woke: Condvar,
}

impl CountingWaker {
    pub fn new() -> Arc<CountingWaker> {
        Arc::new(CountingWaker::default())
    }

    pub fn wakes(&self) -> usize {
        *self.wakes.lock().unwrap()
    }

    /// Blocks until woken at least `n` times in all; panics after [`HANG`].
    pub fn wait_for_wakes(&self, n: usize) {
        let (wakes, timeout) = self
            .woke
            .wait_timeout_while(self.wakes.lock().unwrap(), HANG, |wakes| *wakes < n)
            .unwrap();
        assert!(
            *wakes >= n && !timeout.timed_out(),
            "the waker was never woken"
        );
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *self.wakes.lock().unwrap() += 1;
        self.woke.notify_all();
    }
}

/// Counts one passing case of the property test `test` and, once all `cases`
/// have passed, records `proptest: <test>: <cases> cases passed` in the file
/// named by `WEFT_FIGURES` (if set), where `.ci/run` collects every
/// checker's figures for `scripts/verification-table`.
///
/// Call it at the end of a case's body, after its assertions. Regression
/// cases replayed first count too; the line is written once.
pub fn case_passed(test: &str, passed: &AtomicUsize, cases: u32) {
    if passed.fetch_add(1, Ordering::SeqCst) + 1 != cases as usize {
        return;
    }
    let Some(path) = std::env::var_os("WEFT_FIGURES") else {
        return;
    };
    let line = format!("proptest: {test}: {cases} cases passed\n");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        // One write in append mode: lines from parallel tests do not mix.
        let _ = std::io::Write::write_all(&mut file, line.as_bytes());
    }
}
