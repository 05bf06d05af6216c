//! The job queue, the workers' sleep/wake protocol and idleness tracking.
//!
//! # Protocol
//!
//! All pool state lives in one [`State`] behind one mutex. Every transition
//! happens with the lock held, so each check-then-act below is atomic:
//!
//! | event                 | under the lock                                   | then                                        |
//! |-----------------------|--------------------------------------------------|---------------------------------------------|
//! | `submit`              | refuse if `closed`; push the job                 | `notify_one(work_ready)` if a worker sleeps |
//! | worker takes a job    | pop; `running += 1`                              | run it without the lock                     |
//! | worker finds nothing  | exit if `closed`; else `sleeping_workers += 1`   | `wait(work_ready)`, re-check after waking   |
//! | job finished          | `running -= 1`; count it completed or panicked   | `notify_all(became_idle)` if idle and awaited |
//! | `close`               | `closed = true`                                  | `notify_all(work_ready)`                    |
//! | `wait_idle`           | return if `queue` empty and `running == 0`       | else `wait(became_idle)`, re-check          |
//!
//! **No lost wake-up.** A worker decides to sleep only after seeing an empty
//! queue *with the lock held*, and `Condvar::wait` releases that lock
//! atomically with going to sleep. A submitter pushes with the lock held, so
//! it either pushes before the worker looked (the worker sees the job) or
//! after the worker is registered in `sleeping_workers` and waiting (the
//! submitter sees the count and notifies). A notification that lands on a
//! worker that another notification already woke costs only parallelism,
//! never a job: every worker drains the queue before it sleeps again.
//! Proven by `loom-tests/wakeup.rs` (`submit_racing_sleep_is_never_lost`).
//!
//! **No lost job.** A job leaves the queue only by being popped by a worker,
//! which runs it; `closed` only stops new pushes, and workers exit only when
//! the queue is both closed and empty. Proven by `loom-tests/exactly_once.rs`
//! and `loom-tests/shutdown.rs`.
//!
//! **Idleness.** `running` and the queue length change under the same lock,
//! and a job is counted completed or panicked in the same critical section
//! that decrements `running`, so a `wait_idle` that returns sees exact
//! counters. Proven by `loom-tests/idle.rs`.

use std::collections::VecDeque;

use crate::builder::Config;
use crate::error::{SubmitError, SubmitErrorKind};
use crate::job::{self, Job, Outcome};
use crate::sync::{self, Condvar, Duration, Instant, Mutex, MutexGuard};

/// State shared by the pool, its handles and its workers.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Workers wait here for a job or for the queue to close.
    work_ready: Condvar,
    /// `wait_idle` callers wait here for "nothing queued, nothing running".
    became_idle: Condvar,
    /// The builder's hooks and thread settings, fixed at build time.
    pub(crate) config: Config,
}

/// Everything that changes, guarded by [`Shared::state`].
struct State {
    /// Accepted jobs that no worker has taken yet, oldest first.
    queue: VecDeque<Job>,
    /// Jobs taken from the queue whose run (and panic handler) has not ended.
    running: usize,
    /// Set once by `close`; from then on every submission is refused.
    closed: bool,
    /// Workers blocked in `work_ready.wait` (including any already notified
    /// but not yet re-locked): a submitter notifies only when this is non-zero.
    sleeping_workers: usize,
    /// Callers blocked in `became_idle.wait`: a finishing job notifies only
    /// when this is non-zero, sparing a syscall per job otherwise.
    idle_waiters: usize,
    /// Jobs that returned normally.
    completed: usize,
    /// Jobs that panicked.
    panicked: usize,
}

impl State {
    fn is_idle(&self) -> bool {
        self.queue.is_empty() && self.running == 0
    }
}

impl Shared {
    pub(crate) fn new(config: Config) -> Shared {
        Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                running: 0,
                closed: false,
                sleeping_workers: 0,
                idle_waiters: 0,
                completed: 0,
                panicked: 0,
            }),
            work_ready: Condvar::new(),
            became_idle: Condvar::new(),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Accepts `f` into the queue, or hands it back if the pool is closed.
    pub(crate) fn submit<F>(&self, f: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        // Allocate outside the lock; keep the concrete type until the job is
        // accepted so a refused closure can be moved back out of its box.
        let boxed = Box::new(f);
        let mut state = self.lock();
        if state.closed {
            drop(state);
            return Err(SubmitError::new(SubmitErrorKind::ShutDown, *boxed));
        }
        state.queue.push_back(Job::from_box(boxed));
        let wake = state.sleeping_workers > 0;
        drop(state);
        if wake {
            self.work_ready.notify_one();
        }
        Ok(())
    }

    /// Blocks until there is a job to run (returned, already counted as
    /// running) or the queue is closed and drained (`None`: the worker exits).
    pub(crate) fn next_job(&self) -> Option<Job> {
        let mut state = self.lock();
        loop {
            if let Some(job) = state.queue.pop_front() {
                state.running += 1;
                return Some(job);
            }
            if state.closed {
                return None;
            }
            state.sleeping_workers += 1;
            state = sync::wait(&self.work_ready, state);
            state.sleeping_workers -= 1;
        }
    }

    /// Takes a queued job without blocking (used by a pool's own worker that
    /// shuts the pool down and helps drain it).
    pub(crate) fn try_next_job(&self) -> Option<Job> {
        let mut state = self.lock();
        let job = state.queue.pop_front()?;
        state.running += 1;
        Some(job)
    }

    /// Runs a job taken with [`next_job`](Self::next_job) or
    /// [`try_next_job`](Self::try_next_job), hands a panic to the panic
    /// handler, then records the outcome.
    pub(crate) fn run(&self, job: Job) {
        let panicked = match job.run() {
            Outcome::Completed => false,
            Outcome::Panicked(payload) => {
                match &self.config.panic_handler {
                    Some(handler) => job::call_guarded(|| handler(payload)),
                    None => job::drop_guarded(payload),
                }
                true
            }
        };
        self.finish(panicked);
    }

    fn finish(&self, panicked: bool) {
        let mut state = self.lock();
        debug_assert!(state.running > 0, "finishing a job that was not running");
        state.running -= 1;
        if panicked {
            state.panicked += 1;
        } else {
            state.completed += 1;
        }
        let wake = state.idle_waiters > 0 && state.is_idle();
        drop(state);
        if wake {
            self.became_idle.notify_all();
        }
    }

    /// Refuses every later submission and wakes all sleeping workers so they
    /// drain the queue and exit. Idempotent.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        drop(state);
        // Every sleeper must re-check: each of them has to observe `closed`
        // to exit, so one notification per sleeper is not enough to promise
        // under `notify_one`.
        self.work_ready.notify_all();
    }

    /// Blocks until nothing is queued and nothing is running.
    pub(crate) fn wait_idle(&self) {
        let mut state = self.lock();
        while !state.is_idle() {
            state.idle_waiters += 1;
            state = sync::wait(&self.became_idle, state);
            state.idle_waiters -= 1;
        }
    }

    /// Like [`wait_idle`](Self::wait_idle) but gives up at `timeout`;
    /// returns whether idleness was reached.
    pub(crate) fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.lock();
        while !state.is_idle() {
            let remaining = match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(remaining) if !remaining.is_zero() => remaining,
                    _ => return false,
                },
                // A timeout so long that the deadline overflows: wait as if
                // there were none.
                None => Duration::MAX,
            };
            state.idle_waiters += 1;
            state = sync::wait_timeout(&self.became_idle, state, remaining);
            state.idle_waiters -= 1;
        }
        true
    }

    pub(crate) fn queued_count(&self) -> usize {
        self.lock().queue.len()
    }

    pub(crate) fn active_count(&self) -> usize {
        self.lock().running
    }

    pub(crate) fn completed_count(&self) -> usize {
        self.lock().completed
    }

    pub(crate) fn panic_count(&self) -> usize {
        self.lock().panicked
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last reference goes away only after every worker has exited,
        // and workers exit only once the queue is closed and drained.
        debug_assert!(
            sync::panicking() || self.lock().queue.is_empty(),
            "a pool's state was dropped with jobs still queued"
        );
    }
}
