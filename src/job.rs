//! Jobs: a boxed task, run at most once, with user panics caught at the job
//! boundary and nowhere else.
//!
//! A job is either an `execute`d closure ([`Execute`]) or a `spawn`ed one
//! whose result goes to a [`JoinHandle`](crate::JoinHandle) ([`Spawn`]), or
//! one of those started in a scope (`scope.rs`). The queue holds them
//! type-erased as [`Job`]; the public [`Job`] handed back by `shutdown_now`
//! is the same value.

use std::any::Any;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};

use crate::join::Promise;

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How a job ended when a pool worker ran it.
pub(crate) enum Outcome {
    /// Returned normally.
    Completed,
    /// Panicked; the payload is for the pool's panic handler.
    Panicked(Payload),
    /// Panicked; the payload already went to the job's `JoinHandle` (or its
    /// scope).
    PanickedIntoHandle,
}

/// What the pool needs of a job, whatever its kind.
///
/// Not `'static`: a scoped job borrows from its scope, and `scope.rs` erases
/// that lifetime (the one `unsafe` conversion in the crate) before it is
/// queued.
pub(crate) trait Task: Send {
    /// Runs the job on a pool worker. May unwind; [`Job::run_in_pool`]
    /// catches it.
    fn run_in_pool(self: Box<Self>) -> Outcome;

    /// Runs the job on the thread that holds it after `shutdown_now`.
    fn run_here(self: Box<Self>);

    /// Records that `shutdown_now` handed this job back instead of running it
    /// (so a pool worker joining it can stop waiting).
    fn mark_handed_back(&self) {}
}

/// An `execute`d closure.
pub(crate) struct Execute<F>(pub(crate) F);

impl<F> Task for Execute<F>
where
    F: FnOnce() + Send + 'static,
{
    fn run_in_pool(self: Box<Self>) -> Outcome {
        (self.0)();
        Outcome::Completed
    }

    fn run_here(self: Box<Self>) {
        (self.0)();
    }
}

/// A `spawn`ed closure and the promise its `JoinHandle` waits on.
pub(crate) struct Spawn<F, T> {
    pub(crate) f: F,
    pub(crate) promise: Promise<T>,
}

impl<F, T> Spawn<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    /// Runs the closure and fulfils the promise; reports whether it panicked.
    pub(crate) fn run_and_fulfil(self) -> bool {
        let Spawn { f, promise } = self;
        promise.started();
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => {
                promise.fulfil(Ok(value));
                false
            }
            Err(payload) => {
                promise.fulfil(Err(crate::JoinError::panic(payload)));
                true
            }
        }
    }
}

impl<F, T> Task for Spawn<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run_in_pool(self: Box<Self>) -> Outcome {
        if self.run_and_fulfil() {
            Outcome::PanickedIntoHandle
        } else {
            Outcome::Completed
        }
    }

    fn run_here(self: Box<Self>) {
        self.run_and_fulfil();
    }

    fn mark_handed_back(&self) {
        self.promise.mark_handed_back();
    }
}

/// A job that was accepted but never started, handed back by
/// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now).
///
/// [`run`](Job::run) runs it on the calling thread. Dropping it instead
/// discards it: a job from `spawn` then resolves its
/// [`JoinHandle`](crate::JoinHandle) to a cancelled
/// [`JoinError`](crate::JoinError).
///
/// # Examples
///
/// ```
/// let pool = weft::ThreadPool::new(1);
/// let answer = pool.spawn(|| 42);
/// for i in 0..10 {
///     pool.execute(move || println!("job {i}"));
/// }
/// for job in pool.shutdown_now() {
///     job.run(); // whatever had not started runs here instead
/// }
/// // `answer` either ran in the pool or just now, above.
/// assert_eq!(answer.join().unwrap(), 42);
/// ```
pub struct Job(Box<dyn Task>);

impl Job {
    /// Erases an already boxed task (no second allocation).
    pub(crate) fn from_box<T: Task + 'static>(task: Box<T>) -> Job {
        Job(task)
    }

    /// Wraps a task that is already type-erased (a scoped job, see
    /// `scope.rs`).
    pub(crate) fn from_dyn(task: Box<dyn Task>) -> Job {
        Job(task)
    }

    /// Runs the job on the calling thread.
    ///
    /// A job from `execute` runs as a plain call: if it panics, the panic
    /// propagates to the caller. A job from `spawn` delivers its result, or
    /// its panic, to its `JoinHandle`, and this call returns normally.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// pool.execute(|| println!("may run in the pool or below"));
    /// for job in pool.shutdown_now() {
    ///     job.run();
    /// }
    /// ```
    pub fn run(self) {
        self.0.run_here();
    }

    /// Runs the job on a pool worker, catching any panic so it cannot unwind
    /// into the worker (including one from dropping what the job captured).
    pub(crate) fn run_in_pool(self) -> Outcome {
        match panic::catch_unwind(AssertUnwindSafe(|| self.0.run_in_pool())) {
            Ok(outcome) => outcome,
            Err(payload) => Outcome::Panicked(payload),
        }
    }

    pub(crate) fn mark_handed_back(&self) {
        self.0.mark_handed_back();
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// Runs a user callback (hook or panic handler), ignoring a panic from it.
///
/// The design promises that a panicking hook or panic handler neither kills a
/// worker nor loses a job, so its panic is swallowed here. Even dropping the
/// panic payload can panic; that is contained too.
pub(crate) fn call_guarded(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_guarded(payload);
    }
}

/// Drops a panic payload whose own destructor might panic.
pub(crate) fn drop_guarded(payload: Payload) {
    // A payload whose `Drop` panics would otherwise unwind into the worker
    // loop. If the second payload panics on drop as well, give up on it.
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
