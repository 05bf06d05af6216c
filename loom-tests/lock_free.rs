//! Submissions that push without the pool lock (`src/injector.rs`), through
//! the pool: the scenarios of the submission, wake-up, shutdown and
//! idleness models, re-run with `Builder::push_without_lock(true)`, which is
//! how an unbounded pool's outside submitters always push outside the
//! models.
//!
//! A lock-free push is six atomic steps where a locked one is two, so these
//! runs explore many more interleavings per job; their preemption bounds are
//! lower than those of the locked runs of the same scenarios (each bound is
//! below, and in the catalogue in `README.md`). What they add: a worker
//! going to sleep against a push it cannot see under the lock (the
//! read-modify-write handshake on the injector's tail), a close against a
//! push that claimed its slot but has not written it, and a pop that finds
//! a slot claimed but unwritten.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{batch, exactly_once, handle, idle, model, pool_pushing, wakeup, Mailbox};
use crate::sync::Arc;

/// `wakeup.rs`: one worker going to sleep while a caller pushes without the
/// lock; the job must still reach it. Bound 5 (unbounded for the locked run;
/// here bound 6 takes about a minute).
#[test]
fn lock_free_submit_racing_sleep_is_never_lost() {
    wakeup::submit_racing_an_idle_worker(5, false, true);
}

/// As above, with the worker spinning before it sleeps (`spin.rs`). Bound 4.
#[test]
fn lock_free_submit_racing_a_spinning_worker_is_never_lost() {
    wakeup::submit_racing_an_idle_worker(4, true, true);
}

/// `wakeup.rs`: job 0 holds one worker until job 1 ran, so job 1, pushed
/// without the lock, must wake the other. Bound 2 (4 for the locked run).
#[test]
fn lock_free_submit_wakes_the_idle_worker_while_the_other_is_busy() {
    wakeup::idle_worker_is_reached_while_the_other_is_busy(2, false, true);
}

/// `handle.rs`: a caller's pushes race the owner's shutdown; each job runs
/// once in the pool or comes back refused. Bound 3 (6 for the locked run).
#[test]
fn lock_free_submission_racing_shutdown_runs_or_returns_each_job() {
    handle::submission_racing_shutdown(3, true);
}

/// `exactly_once.rs`: the owner and a caller push concurrently while two
/// workers pop; the third job crosses into a second block. Bound 1 (3 for
/// the locked run; here bound 2 runs for minutes). Pushers racing across a
/// block boundary are explored at bound 2 in `injector.rs`.
#[test]
fn lock_free_concurrent_submitters_each_job_runs_exactly_once() {
    exactly_once::concurrent_submitters(1, true);
}

/// `batch.rs`: a caller's batch, pushed without the lock, races shutdown.
/// Bound 3 (4 for the locked run).
#[test]
fn lock_free_batch_racing_shutdown_is_accepted_as_a_prefix() {
    batch::batch_racing_shutdown(3, true);
}

/// `batch.rs`: a batch of two pushed without the lock wakes both sleeping
/// workers it needs. Bound 2 (3 for the locked run).
#[test]
fn lock_free_batch_wakes_every_worker_it_needs() {
    batch::batch_wakes_the_workers_it_needs(2, true);
}

/// `idle.rs`: `wait_idle` racing a caller's push never hangs and covers what
/// was pushed before it. Bound 2 (5 for the locked run; here bound 3 takes
/// about 45 s).
#[test]
fn lock_free_wait_idle_racing_a_submission_never_hangs() {
    idle::wait_idle_racing_a_submission(2, true);
}

/// A push that claimed its slot before a graceful shutdown closed the queue
/// and writes it after: the pool is closed but not empty, so both workers may
/// go to sleep over the claimed slot, and a wake-up sized to the one pushed
/// job reaches only one of them. The other must still be woken to see the
/// queue closed and empty, or `shutdown` never returns. Two workers, a
/// caller pushing one job, the owner shutting down. Bound 3; 2 is the least
/// that reaches the bug (the owner preempted so that the caller claims
/// first, the caller between its claim and its write), and found it at once
/// when the pusher woke one sleeper per job.
///
/// Found at larger sizes by shuttle (`drop_racing_submitters_...` in
/// `shuttle-tests/shutdown.rs`) once the injector stopped spinning under the
/// checkers; in production the window is a pusher descheduled for longer
/// than the injector's spin.
#[test]
fn lock_free_push_finishing_after_close_wakes_every_sleeper() {
    model(3, || {
        let pool = pool_pushing(2, true);
        let runs = Arc::new(AtomicUsize::new(0));

        let handle = pool.handle();
        let job_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            let job = move || {
                job_runs.fetch_add(1, Ordering::Relaxed);
            };
            match handle.execute(job) {
                Ok(()) => true,
                // Refused: the caller's choice is to drop it unrun.
                Err(_) => false,
            }
        });

        pool.shutdown();
        let ran_at_shutdown = runs.load(Ordering::Relaxed);
        let accepted = caller.join().unwrap();
        assert_eq!(
            ran_at_shutdown,
            usize::from(accepted),
            "ledger rules 1 and 3: an accepted job runs once before shutdown returns, a refused one never"
        );
    });
}

/// A job that owns the last reference to its one-worker pool drops it while
/// a handle's lock-free push has claimed its slot but not yet written it.
/// The dropping worker is the only one left to run that job: it must wait
/// for the write and run the job itself, not sleep until the queue empties
/// (nobody else would empty it, and the pusher wakes no idle waiter).
#[test]
fn drop_from_inside_racing_a_lock_free_push_runs_the_job() {
    model(3, || {
        let pool = pool_pushing(1, true);
        let runs = Arc::new(AtomicUsize::new(0));
        let handover: Arc<Mailbox<crate::ThreadPool>> = Arc::new(Mailbox::new());
        let report: Arc<Mailbox<usize>> = Arc::new(Mailbox::new());

        let (job_handover, job_report, job_runs) = (
            Arc::clone(&handover),
            Arc::clone(&report),
            Arc::clone(&runs),
        );
        pool.execute(move || {
            drop(job_handover.take());
            job_report.put(job_runs.load(Ordering::Relaxed));
        });

        let handle = pool.handle();
        let job_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            let job = move || {
                job_runs.fetch_add(1, Ordering::Relaxed);
            };
            handle.execute(job).is_ok()
        });
        handover.put(pool);

        let ran_at_drop = report.take();
        let accepted = caller.join().unwrap();
        assert_eq!(
            ran_at_drop,
            usize::from(accepted),
            "ledger rule 3: drop from inside a job returned before an accepted job had run"
        );
    });
}
