//! Shutdown: graceful, immediate (`shutdown_now`) and with a deadline.
//!
//! # Protocol
//!
//! 1. Close the queue: from here on every submission is refused with
//!    [`SubmitErrorKind::ShutDown`](crate::SubmitErrorKind::ShutDown) and its
//!    job handed back; every sleeping worker and blocked submitter is woken.
//!    `shutdown_now` also takes every queued job, in the same critical
//!    section, and marks the spawned ones handed back.
//! 2. Workers keep taking jobs until the queue is empty; a worker that finds
//!    it closed and empty exits. Nothing is dropped: a job leaves the queue
//!    only by being run or handed back.
//! 3. Join every worker. When that returns, every job that was not handed
//!    back has finished and no thread of the pool is left.
//!    `shutdown_timeout` first waits, with its deadline, for every worker to
//!    have exited; if the deadline passes it detaches the workers instead,
//!    and they finish draining on their own.
//!
//! **Shutdown from inside the pool.** A job may own the last reference to
//! its own pool and drop it. That worker cannot join itself, so it instead
//! helps drain the queue (a 1-worker pool has no one else to do it; a job
//! whose lock-free submitter claimed its slot before the close is waited
//! for and run too, since its pusher wakes no one who waits for idleness,
//! `loom-tests/lock_free.rs`), joins
//! every *other* worker, and detaches its own thread, which exits as soon as
//! the job that called shutdown returns (the queue is closed and empty by
//! then). The ledger holds when the call returns: every other accepted job
//! has finished. Proven by `loom-tests/reentrancy.rs`.
//!
//! One case cannot be waited for. A worker that joins runs queued jobs
//! while it waits, so the job calling shutdown may itself run nested above
//! another job X on its worker's stack; X cannot finish before shutdown
//! returns, and another worker joining X would wait forever, as would a
//! shutdown joining that worker. So from inside the pool, shutdown waits
//! until the queue is empty and every other worker has exited *or is asleep
//! in a join*; if any is, it detaches the workers instead of joining them
//! (they exit once the jobs they wait on finish). Only jobs waiting, through
//! joins, on the caller's own stack are left running.
//!
//! From inside the pool, `shutdown_timeout` also reports a timeout while any
//! accepted job is still queued: the caller's worker will run it after the
//! call returns, which must not be mistaken for "everything finished".

use crate::error::ShutdownTimedOut;
use crate::job::Job;
use crate::queue::{Settled, Shared};
use crate::sync::{self, Instant, JoinHandle};
use crate::worker;

/// `shutdown` and `drop`: close, drain, join.
pub(crate) fn graceful(shared: &Shared, workers: Vec<JoinHandle<()>>) {
    shared.close();
    finish(shared, workers, None).expect("an untimed shutdown cannot time out");
}

/// `shutdown_now`: close and take the queue, then wait for running jobs.
pub(crate) fn now(shared: &Shared, workers: Vec<JoinHandle<()>>) -> Vec<Job> {
    let unstarted = shared.close_and_take_queue();
    finish(shared, workers, None).expect("an untimed shutdown cannot time out");
    unstarted
}

/// `shutdown_timeout`: close, drain and join, unless `deadline` passes first.
pub(crate) fn with_deadline(
    shared: &Shared,
    workers: Vec<JoinHandle<()>>,
    deadline: Option<Instant>,
) -> Result<(), ShutdownTimedOut> {
    shared.close();
    finish(shared, workers, deadline)
}

/// After the queue is closed: help drain it if the caller is one of the
/// pool's workers, wait for the other workers to settle, then join them, or
/// (on timeout, or when some are parked on a job beneath the caller) detach
/// them by dropping their handles.
fn finish(
    shared: &Shared,
    workers: Vec<JoinHandle<()>>,
    deadline: Option<Instant>,
) -> Result<(), ShutdownTimedOut> {
    let caller_is_worker = help_drain(shared, deadline);
    match shared.wait_workers_settled(deadline, caller_is_worker) {
        Ok(Settled::AllExited) => {
            join_all_but_self(workers);
            Ok(())
        }
        Ok(Settled::SomeParkedInJoin) => Ok(()),
        Err(left) => Err(ShutdownTimedOut {
            queued: left.queued,
            running: left.running,
        }),
    }
}

/// On a worker of this pool, runs queued jobs here until the queue is empty
/// (or `deadline` passes), including those still being written by their
/// submitters: the caller's own worker is busy running the caller and
/// cannot. Returns whether the caller is such a worker.
fn help_drain(shared: &Shared, deadline: Option<Instant>) -> bool {
    let Some(index) = worker::index_in(shared) else {
        return false;
    };
    while deadline.is_none_or(|deadline| Instant::now() < deadline) {
        match shared.next_job_after_close(index) {
            Some(job) => shared.run(job),
            None => break,
        }
    }
    true
}

/// Joins every worker except the calling thread, whose handle is dropped
/// (detaching it): it exits after the job it is running returns.
fn join_all_but_self(workers: Vec<JoinHandle<()>>) {
    let me = sync::current_thread_id();
    for handle in workers {
        if handle.thread().id() == me {
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
