//! Idle workers spinning before they sleep (`src/sleep.rs`, used by
//! `next_job` in `src/queue.rs`), and a worker recording its finished job in
//! the same critical section that takes its next one.
//!
//! The last model is of a thread outside the pool joining a `JoinHandle`:
//! with spinning on, it first yields while the job's progress hint is not
//! resolved, as it does whenever the pool leaves a CPU free (`src/join.rs`,
//! `src/sleep.rs`).
//!
//! These models build their pools with `spin_before_sleep(true)`, so a
//! worker that finds the queue empty unlocks, watches `queued_hint` for one
//! round, re-locks and looks again before it registers as sleeping. The
//! races explored: a submission landing before, during or after that spin
//! (the submitter skips the notification while the worker is not yet
//! counted as sleeping, so the worker's re-check under the lock is all that
//! stands between the job and a lost wake-up), and `wait_idle` against the
//! merged finish-and-take. As in `wakeup.rs`, the job's effect is observed
//! through a mailbox of the model's own before anything else could rescue a
//! lost wake-up.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::scope::Borrowed;
use super::{model, wakeup};
use crate::sync::Arc;
use crate::Builder;

/// One spinning worker; a caller thread submits a job through a `Handle`
/// while the worker may be spinning, re-checking or asleep; the main thread
/// waits on its own mailbox for the job to have run (the scenario of
/// `wakeup.rs`, with spinning on).
#[test]
fn submit_racing_a_spinning_worker_is_never_lost() {
    wakeup::submit_racing_an_idle_worker(20, true, false);
}

/// Two spinning workers; job 0 occupies one until job 1 has run, so job 1
/// must reach the other, whether it is spinning, re-checking or asleep (the
/// scenario of `wakeup.rs`, with spinning on, at bound 3).
#[test]
fn submit_reaches_the_idle_worker_while_the_other_is_busy_when_spinning() {
    wakeup::idle_worker_is_reached_while_the_other_is_busy(3, true, false);
}

/// One spinning worker, two jobs, then `wait_idle`: the worker records job 0
/// and takes job 1 in one critical section, and records job 1 on its way to
/// spinning. `wait_idle` must return only when both have run, with exact
/// counters, and must be woken by that merged record.
#[test]
fn wait_idle_is_woken_by_a_worker_recording_its_job_as_it_takes_the_next() {
    model(6, || {
        let pool = Builder::new()
            .num_threads(1)
            .spin_before_sleep(true)
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        // Deadlocks if the merged record skipped the idle notification.
        pool.wait_idle();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 6 broken: job {job} had not run once when wait_idle returned"
            );
        }
        assert_eq!(pool.completed_count(), 2, "ledger rule 6 broken: counters");
        assert_eq!(pool.active_count() + pool.queued_count(), 0);
        pool.shutdown();
    });
}

/// One spinning worker, one job, and two threads in `wait_idle` at once
/// (main and a second thread): each may yield and see `idle_notices` move,
/// yield and run out of budget, or sleep, whichever the worker is doing
/// when the job ends. One notification must release both, and each must
/// return only once the job has run and is counted.
#[test]
fn two_yielding_idle_waiters_both_return_once_the_job_ran() {
    model(4, || {
        let pool = Arc::new(
            Builder::new()
                .num_threads(1)
                .spin_before_sleep(true)
                .build()
                .unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let job_runs = Arc::clone(&runs);
        pool.execute(move || {
            job_runs.fetch_add(1, Ordering::Relaxed);
        });
        let waiter = {
            let (pool, runs) = (Arc::clone(&pool), Arc::clone(&runs));
            thread::spawn(move || {
                // Deadlocks if this waiter slept through the notification.
                pool.wait_idle();
                (runs.load(Ordering::Relaxed), pool.completed_count())
            })
        };
        pool.wait_idle();
        let mine = (runs.load(Ordering::Relaxed), pool.completed_count());
        let theirs = waiter.join().unwrap();
        for (who, seen) in [("main", mine), ("the second waiter", theirs)] {
            assert_eq!(
                seen,
                (1, 1),
                "ledger rule 6 broken: wait_idle returned to {who} before the job had run and been counted"
            );
        }
        Arc::try_unwrap(pool)
            .unwrap_or_else(|_| panic!("the waiter has dropped its pool"))
            .shutdown();
    });
}

/// One spinning worker; the main thread owns a scope outside the pool, with
/// two `execute`d jobs that write borrowed cells. The owner may yield while
/// it watches the scope's count, find the count at 0 there, run out of
/// budget, or sleep on `scope_done`, whichever the worker is doing. `scope`
/// must return only after both writes (a read racing a write is a loom
/// causality failure), and the owner must never sleep through the last
/// job's notification.
#[test]
fn scope_owner_yielding_outside_the_pool_returns_after_every_write() {
    model(8, || {
        let pool = Builder::new()
            .num_threads(1)
            .spin_before_sleep(true)
            .build()
            .unwrap();
        let first = Borrowed::new();
        let second = Borrowed::new();
        // Deadlocks if the owner slept through the last job's notification.
        pool.scope(|s| {
            s.execute(|| first.write(1));
            s.execute(|| second.write(2));
        });
        assert_eq!(
            (first.read(), second.read()),
            (1, 2),
            "scope returned before its jobs' writes to borrowed data"
        );
        pool.shutdown();
    });
}

/// Two spinning workers and two jobs, then `shutdown`: each accepted job
/// runs exactly once and both workers exit, whichever of them spins, sleeps
/// or takes the jobs when `close` lands.
#[test]
fn spinning_workers_run_each_job_exactly_once_and_exit_on_shutdown() {
    model(3, || {
        let pool = Builder::new()
            .num_threads(2)
            .spin_before_sleep(true)
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        pool.shutdown();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: accepted job {job} did not run exactly once"
            );
        }
    });
}

/// One spinning worker; the main thread spawns a job and joins it from
/// outside the pool, so it yields while the job's progress hint is not
/// resolved (under loom the pool always leaves a CPU free: one yield), and
/// either sees the hint resolved or gives up and sleeps, whichever the
/// worker is doing. The yield only delays the joiner's check under the
/// slot lock: the value must come back exactly once, and the joiner must
/// never take a result that is not there yet or sleep through its
/// notification.
#[test]
fn outside_joiner_waiting_awake_on_its_job_gets_its_result() {
    model(20, || {
        let pool = Builder::new()
            .num_threads(1)
            .spin_before_sleep(true)
            .build()
            .unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let job_runs = Arc::clone(&runs);
        let handle = pool.spawn(move || job_runs.fetch_add(1, Ordering::Relaxed) + 42);
        // Deadlocks if the joiner slept through the resolution; panics in
        // `join` if it took the result before the job had delivered it.
        let value = handle.join().expect("the job returned normally");
        assert_eq!(
            value, 42,
            "ledger rule 1 broken: join returned the wrong value"
        );
        assert_eq!(
            runs.load(Ordering::Relaxed),
            1,
            "ledger rule 1 broken: the joined job did not run exactly once"
        );
        pool.shutdown();
    });
}
