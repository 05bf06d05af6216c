//! Graceful shutdown: close, drain, join.
//!
//! # Protocol
//!
//! 1. `close` the queue: from here on every submission is refused with
//!    [`SubmitErrorKind::ShutDown`](crate::SubmitErrorKind::ShutDown) and
//!    its job handed back, and every sleeping worker is woken.
//! 2. Workers keep taking jobs until the queue is empty; a worker that finds
//!    it closed and empty exits. Nothing is dropped: a job leaves the queue
//!    only by being run.
//! 3. Join every worker. When that returns, every accepted job has finished
//!    and no thread of the pool is left.
//!
//! **Shutdown from inside the pool.** A job may own the last reference to
//! its own pool and drop it. That worker cannot join itself, so it instead
//! helps drain the queue (a 1-worker pool has no one else to do it), joins
//! every *other* worker, and detaches its own thread, which exits as soon as
//! the job that called shutdown returns (the queue is closed and empty by
//! then). The ledger holds when the call returns: every other accepted job
//! has finished. Proven by `loom-tests/reentrancy.rs`
//! (`drop_from_inside_a_job_does_not_deadlock`).

use crate::queue::Shared;
use crate::sync::{self, Arc, JoinHandle};
use crate::worker;

/// Shuts the pool down gracefully; see the module docs.
pub(crate) fn graceful(shared: &Arc<Shared>, workers: Vec<JoinHandle<()>>) {
    shared.close();
    let me = sync::current_thread_id();
    if worker::is_worker_of(shared) {
        while let Some(job) = shared.try_next_job() {
            shared.run(job);
        }
    }
    for handle in workers {
        if handle.thread().id() == me {
            // Our own thread: dropping the handle detaches it. It exits
            // after the job we are running returns.
            continue;
        }
        // Workers catch every panic of user code, so a worker that ended by
        // panicking is a bug in weft; do not unwind out of a `Drop` over it.
        let joined = handle.join();
        debug_assert!(
            joined.is_ok() || sync::panicking(),
            "a weft worker thread panicked"
        );
    }
}
