//! Error types. Each hands back what the caller gave: a rejected job travels
//! inside its [`SubmitError`], never dropped.

use std::error::Error;
use std::fmt;
use std::io;

/// Why a pool could not be built (or resized).
///
/// When building fails part-way, every worker already started has been shut
/// down and joined before this error is returned: no thread leaks.
#[derive(Debug)]
pub enum BuildError {
    /// `num_threads(0)` (or `set_num_threads(0)`): a pool needs at least
    /// one worker.
    ZeroThreads,
    /// `queue_capacity(0)`: a bounded queue must hold at least one job.
    ZeroCapacity,
    /// The operating system refused to start a worker thread.
    Spawn(io::Error),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroThreads => f.write_str("a thread pool needs at least one thread"),
            BuildError::ZeroCapacity => {
                f.write_str("a bounded queue needs a capacity of at least one job")
            }
            BuildError::Spawn(err) => write!(f, "failed to spawn a worker thread: {err}"),
        }
    }
}

impl Error for BuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BuildError::ZeroThreads | BuildError::ZeroCapacity => None,
            BuildError::Spawn(err) => Some(err),
        }
    }
}

/// Why a job was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubmitErrorKind {
    /// The queue was at its capacity (`try_execute`).
    Full,
    /// The pool was shut down; it accepts no new jobs.
    ShutDown,
    /// The queue stayed full for the whole timeout (`execute_timeout`).
    TimedOut,
}

/// A rejected job, handed back with the reason it was rejected.
///
/// `SubmitError<F>` is `Send` and `Sync` whenever `F: Send`, so it fits in a
/// `Box<dyn Error + Send + Sync>`; the job inside can only be reached by
/// value, through [`into_inner`].
///
/// The job never ran and never will in the pool; [`into_inner`] returns it so
/// the caller can run it elsewhere, retry, or drop it deliberately.
///
/// [`into_inner`]: SubmitError::into_inner
///
/// # Examples
///
/// ```
/// use weft::{SubmitErrorKind, ThreadPool};
///
/// let pool = ThreadPool::new(1);
/// let handle = pool.handle();
/// pool.shutdown();
///
/// let err = handle.execute(|| println!("never runs")).unwrap_err();
/// assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
/// let job = err.into_inner();
/// job(); // runs on this thread, the caller's choice
/// ```
pub struct SubmitError<F> {
    kind: SubmitErrorKind,
    job: Exclusive<F>,
}

/// Owns a value that is only ever reached by value or through `&mut`, which
/// makes sharing `&Exclusive<T>` between threads harmless: through a shared
/// reference nothing of `T` can be touched. It lets an error that carries a
/// job be `Sync` (as `Box<dyn Error + Send + Sync>` requires) when the job is
/// merely `Send`, the usual bound for a closure handed to another thread.
pub(crate) struct Exclusive<T>(T);

impl<T> Exclusive<T> {
    pub(crate) fn new(value: T) -> Self {
        Exclusive(value)
    }

    pub(crate) fn into_inner(self) -> T {
        self.0
    }
}

// SAFETY: `Sync` promises that `&Exclusive<T>` may be used from several
// threads at once. `Exclusive` has no method taking `&self` and its field is
// private, so a shared reference grants no access to the `T` inside; moving
// the `T` out needs ownership, which `Send` (below, through the auto impl:
// `Exclusive<T>: Send` iff `T: Send`) governs.
unsafe impl<T: Send> Sync for Exclusive<T> {}

impl<F> SubmitError<F> {
    pub(crate) fn new(kind: SubmitErrorKind, job: F) -> Self {
        SubmitError {
            kind,
            job: Exclusive::new(job),
        }
    }

    /// Why the job was rejected.
    pub fn kind(&self) -> SubmitErrorKind {
        self.kind
    }

    /// Takes back the job that was rejected.
    pub fn into_inner(self) -> F {
        self.job.into_inner()
    }
}

impl<F> fmt::Debug for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            SubmitErrorKind::Full => "job rejected: the pool's queue is full",
            SubmitErrorKind::ShutDown => "job rejected: the pool has been shut down",
            SubmitErrorKind::TimedOut => {
                "job rejected: the pool's queue stayed full until the timeout"
            }
        })
    }
}

impl<F> Error for SubmitError<F> {}

/// A [`shutdown_timeout`](crate::ThreadPool::shutdown_timeout) whose deadline
/// passed before every job finished.
///
/// Nothing was dropped: the workers were detached and keep draining the queue
/// in the background; they exit when it is empty.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let pool = weft::ThreadPool::new(1);
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// pool.execute(move || { let _ = rx.recv(); }); // busy until released
/// pool.execute(|| ());
/// let late = pool.shutdown_timeout(Duration::ZERO).unwrap_err();
/// assert_eq!(late.queued() + late.running(), 2);
/// tx.send(()).unwrap(); // the detached worker finishes both jobs
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownTimedOut {
    pub(crate) queued: usize,
    pub(crate) running: usize,
}

impl ShutdownTimedOut {
    /// Jobs still waiting in the queue at the deadline.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Jobs still running at the deadline.
    pub fn running(&self) -> usize {
        self.running
    }
}

impl fmt::Display for ShutdownTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shutdown timed out with {} job(s) queued and {} running; \
             the workers keep draining them in the background",
            self.queued, self.running
        )
    }
}

impl Error for ShutdownTimedOut {}
