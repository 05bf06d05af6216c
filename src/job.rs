//! A job: one boxed closure, run at most once, with its panic caught at the
//! job boundary and nowhere else.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};

/// A type-erased job as it sits in the queue.
pub(crate) struct Job(Box<dyn FnOnce() + Send + 'static>);

/// How a job ended.
pub(crate) enum Outcome {
    Completed,
    Panicked(Box<dyn Any + Send + 'static>),
}

impl Job {
    /// Erases an already boxed closure (no second allocation).
    pub(crate) fn from_box<F>(f: Box<F>) -> Job
    where
        F: FnOnce() + Send + 'static,
    {
        Job(f)
    }

    /// Runs the job, catching a panic so it cannot unwind into the worker.
    ///
    /// `AssertUnwindSafe` is sound here: after a panic nothing of the job is
    /// observed again (it was consumed), and the pool's own state is not
    /// borrowed by the job.
    pub(crate) fn run(self) -> Outcome {
        match panic::catch_unwind(AssertUnwindSafe(self.0)) {
            Ok(()) => Outcome::Completed,
            Err(payload) => Outcome::Panicked(payload),
        }
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
pub(crate) fn drop_guarded(payload: Box<dyn Any + Send + 'static>) {
    // A payload whose `Drop` panics would otherwise unwind into the worker
    // loop. If the second payload panics on drop as well, give up on it.
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}
