//! The workers' sleep/wake protocol (`next_job` against `submit` in
//! `src/queue.rs`). The race explored is a submission landing while a worker
//! is deciding to sleep: either the worker sees the job, or the submitter
//! sees the sleeper and notifies it. Nothing here calls `shutdown` or
//! `wait_idle` before the job's effect is observed, so no other notification
//! can rescue a lost one: a lost wake-up is a loom deadlock.

use loom::thread;

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::Builder;

/// One worker, idle or on its way to sleep; a caller thread submits a job
/// through a `Handle`; the main thread waits (on a mailbox of its own) for
/// the job to have run.
#[test]
fn submit_racing_sleep_is_never_lost() {
    submit_racing_an_idle_worker(20, false, false);
}

/// The scenario of [`submit_racing_sleep_is_never_lost`]; with `spin`, the
/// worker spins before it sleeps (`spin.rs`); with `lock_free`, the caller
/// pushes without the pool lock (`lock_free.rs`).
pub(super) fn submit_racing_an_idle_worker(bound: usize, spin: bool, lock_free: bool) {
    model(bound, move || {
        let pool = Builder::new()
            .num_threads(1)
            .spin_before_sleep(spin)
            .push_without_lock(lock_free)
            .build()
            .unwrap();
        let ran = Arc::new(Mailbox::new());

        let handle = pool.handle();
        let job_ran = Arc::clone(&ran);
        let caller = thread::spawn(move || handle.execute(move || job_ran.put(())).is_ok());

        // Deadlocks if the submission did not wake the sleeping worker (or,
        // spinning, the worker slept without looking again).
        ran.take();
        assert!(caller.join().unwrap(), "a live pool refused a Handle's job");
        pool.shutdown();
    });
}

/// Two workers; job 0 occupies one of them until job 1 has run, so job 1
/// must wake the other, sleeping worker: the pool may not rely on the busy
/// worker to drain the queue later.
#[test]
fn submit_wakes_the_idle_worker_while_the_other_is_busy() {
    idle_worker_is_reached_while_the_other_is_busy(4, false, false);
}

/// The scenario of [`submit_wakes_the_idle_worker_while_the_other_is_busy`];
/// with `spin`, idle workers spin before they sleep (`spin.rs`); with
/// `lock_free`, jobs are pushed without the pool lock (`lock_free.rs`).
pub(super) fn idle_worker_is_reached_while_the_other_is_busy(
    bound: usize,
    spin: bool,
    lock_free: bool,
) {
    model(bound, move || {
        let pool = Builder::new()
            .num_threads(2)
            .spin_before_sleep(spin)
            .push_without_lock(lock_free)
            .build()
            .unwrap();
        let second_ran = Arc::new(Mailbox::new());
        let first_done = Arc::new(Mailbox::new());

        let (wait_for_second, done) = (Arc::clone(&second_ran), Arc::clone(&first_done));
        pool.execute(move || {
            wait_for_second.take();
            done.put(());
        });
        let second = Arc::clone(&second_ran);
        pool.execute(move || second.put(()));

        // Deadlocks if job 1 sat in the queue beside a sleeping worker.
        first_done.take();
        pool.shutdown();
    });
}
