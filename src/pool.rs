//! The pool's owner ([`ThreadPool`]) and its cloneable submitter ([`Handle`]).

use std::fmt;
use std::mem;

use crate::builder::Builder;
use crate::error::SubmitError;
use crate::queue::Shared;
use crate::shutdown;
use crate::sync::{Arc, Duration, JoinHandle};
use crate::worker;

/// A fixed-size pool of worker threads running submitted jobs.
///
/// Every job the pool accepts runs exactly once; a panicking job is caught,
/// counted and handed to the [panic handler](Builder::panic_handler), and the
/// worker keeps serving. Dropping the pool is a graceful [`shutdown`]: it
/// waits for every accepted job and joins every worker.
///
/// [`shutdown`]: ThreadPool::shutdown
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft::ThreadPool;
///
/// let pool = ThreadPool::new(4);
/// let sum = Arc::new(AtomicUsize::new(0));
/// for i in 1..=100 {
///     let sum = Arc::clone(&sum);
///     pool.execute(move || {
///         sum.fetch_add(i, Ordering::Relaxed);
///     });
/// }
/// pool.wait_idle();
/// assert_eq!(sum.load(Ordering::Relaxed), 5050);
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// One handle per started worker; emptied by shutdown.
    workers: Vec<JoinHandle<()>>,
}

impl ThreadPool {
    /// A pool of `num_threads` workers with default settings.
    ///
    /// # Panics
    ///
    /// If `num_threads` is 0 or the operating system refuses a thread. Use
    /// [`ThreadPool::builder`] to get these as a [`BuildError`](crate::BuildError).
    pub fn new(num_threads: usize) -> ThreadPool {
        match Builder::new().num_threads(num_threads).build() {
            Ok(pool) => pool,
            Err(err) => panic!("weft::ThreadPool::new({num_threads}): {err}"),
        }
    }

    /// A [`Builder`] for a pool with custom settings; the same as
    /// [`Builder::new`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_parts(shared: Arc<Shared>, workers: Vec<JoinHandle<()>>) -> ThreadPool {
        ThreadPool { shared, workers }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(crate) fn push_worker(&mut self, worker: JoinHandle<()>) {
        self.workers.push(worker);
    }

    /// Runs `job` on a worker.
    ///
    /// The job is accepted before this returns and will run exactly once,
    /// even if the pool is shut down right after.
    pub fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        if self.shared.submit(job).is_err() {
            // Only shutdown closes the queue, and shutdown consumes the pool.
            unreachable!("a live ThreadPool's queue is never closed");
        }
    }

    /// A cloneable, `Send + Sync` submitter for this pool that does not keep
    /// it alive: once the pool is shut down, its submissions are refused with
    /// the job handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let handle = pool.handle();
    /// std::thread::spawn(move || handle.execute(|| println!("from another thread")).unwrap())
    ///     .join()
    ///     .unwrap();
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Blocks until no job is queued or running.
    ///
    /// Jobs submitted concurrently (through a [`Handle`]) may keep the pool
    /// busy; this returns at a moment when it was idle, and the counters
    /// ([`completed_count`](Self::completed_count),
    /// [`panic_count`](Self::panic_count)) are exact at that moment.
    ///
    /// # Panics
    ///
    /// If called from inside one of this pool's own jobs: the pool cannot
    /// become idle while the caller's job is running, so this would wait for
    /// itself forever.
    pub fn wait_idle(&self) {
        self.refuse_wait_from_inside("wait_idle");
        self.shared.wait_idle();
    }

    /// Like [`wait_idle`](Self::wait_idle), but gives up after `timeout`.
    /// Returns `true` if the pool became idle.
    ///
    /// # Panics
    ///
    /// If called from inside one of this pool's own jobs (it could only ever
    /// time out).
    pub fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        self.refuse_wait_from_inside("wait_idle_timeout");
        self.shared.wait_idle_timeout(timeout)
    }

    fn refuse_wait_from_inside(&self, call: &str) {
        if worker::is_worker_of(&self.shared) {
            panic!(
                "weft: ThreadPool::{call} called from inside one of the pool's own jobs; \
                 the pool cannot become idle while this job runs, so it would wait forever"
            );
        }
    }

    /// Shuts the pool down gracefully: refuses new jobs (a [`Handle`]'s
    /// submissions come back as [`SubmitErrorKind::ShutDown`]), runs every job
    /// already accepted, and joins every worker. Dropping the pool does the
    /// same.
    ///
    /// Called from inside one of the pool's own jobs, it helps drain the
    /// queue, joins the other workers, and lets its own worker exit once the
    /// current job returns (a thread cannot join itself).
    ///
    /// [`SubmitErrorKind::ShutDown`]: crate::SubmitErrorKind::ShutDown
    pub fn shutdown(self) {
        drop(self);
    }

    /// The number of worker threads.
    pub fn num_threads(&self) -> usize {
        self.workers.len()
    }

    /// Jobs accepted but not yet started. A snapshot: other threads may change
    /// it at once.
    pub fn queued_count(&self) -> usize {
        self.shared.queued_count()
    }

    /// Jobs running now. A snapshot.
    pub fn active_count(&self) -> usize {
        self.shared.active_count()
    }

    /// Jobs that have returned normally so far.
    pub fn completed_count(&self) -> usize {
        self.shared.completed_count()
    }

    /// Jobs that have panicked so far. Once the pool is idle,
    /// `completed_count() + panic_count()` is the number of jobs that ran.
    pub fn panic_count(&self) -> usize {
        self.shared.panic_count()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        shutdown::graceful(&self.shared, mem::take(&mut self.workers));
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("num_threads", &self.num_threads())
            .field("queued", &self.queued_count())
            .field("active", &self.active_count())
            .finish_non_exhaustive()
    }
}

/// A cloneable submitter for a [`ThreadPool`], usable from any thread.
///
/// A handle does not keep its pool running: after the pool is shut down,
/// [`execute`](Handle::execute) returns the job inside a [`SubmitError`] of
/// kind [`ShutDown`](crate::SubmitErrorKind::ShutDown).
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

impl Handle {
    /// The pool whose worker is running the caller, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// assert!(weft::Handle::current().is_none());
    /// pool.execute(|| {
    ///     let handle = weft::Handle::current().expect("on a worker");
    ///     handle.execute(|| println!("a child job")).unwrap();
    /// });
    /// ```
    pub fn current() -> Option<Handle> {
        worker::current_pool().map(|shared| Handle { shared })
    }

    /// Submits `job` to the pool.
    ///
    /// # Errors
    ///
    /// [`SubmitErrorKind::ShutDown`](crate::SubmitErrorKind::ShutDown) once
    /// the pool has been shut down; the job is inside the error, unrun.
    pub fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.submit(job)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}
