//! Each worker's own deque (`src/local.rs`): the owner pushes and pops
//! without the pool lock, other workers steal and `shutdown_now` drains with
//! it. The races explored: an owner's push against another worker going to
//! sleep (a lost wake-up is a loom deadlock: the owner is blocked until the
//! pushed job has run), against `shutdown_now` (each accepted job runs or
//! comes back, and pushes after it are refused), and a worker running its own jobs
//! without the lock against `wait_idle` (the counters must be exact once
//! idle).

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, Handle};

/// Two workers. Job 0 pushes job 1 to its own worker's deque, then blocks
/// until job 1 has run, so only the other worker can run it, and that
/// worker may be on its way to sleep: the push must wake it.
#[test]
fn local_push_wakes_a_worker_going_to_sleep() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let child_ran = Arc::new(Mailbox::new());
        let parent_done = Arc::new(Mailbox::new());

        let (ran, done) = (Arc::clone(&child_ran), Arc::clone(&parent_done));
        pool.execute(move || {
            let child_ran = Arc::clone(&ran);
            Handle::current()
                .expect("on a worker")
                .execute(move || child_ran.put(()))
                .expect("the pool is open");
            // Deadlocks if the push did not wake the sleeping worker.
            ran.take();
            done.put(());
        });
        parent_done.take();
        pool.shutdown();
    });
}

/// One worker. Its job pushes children to its own deque, yielding between
/// pushes, until one is refused, while the main thread calls
/// `shutdown_now`: every accepted child is then either handed back or run,
/// exactly once, and once `shutdown_now` has closed the deque a push is
/// refused (else the job would push for ever, and loom would stop it at its
/// branch limit).
#[test]
fn shutdown_now_racing_local_pushes_hands_back_or_runs_each_and_refuses_the_rest() {
    model(3, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let started = Arc::new(Mailbox::new());
        let accepted = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));

        let (job_started, job_accepted, job_ran) = (
            Arc::clone(&started),
            Arc::clone(&accepted),
            Arc::clone(&ran),
        );
        pool.execute(move || {
            job_started.put(());
            let handle = Handle::current().expect("on a worker");
            loop {
                let child_ran = Arc::clone(&job_ran);
                let pushed = handle.execute(move || {
                    child_ran.fetch_add(1, Ordering::Relaxed);
                });
                if pushed.is_err() {
                    break;
                }
                job_accepted.fetch_add(1, Ordering::Relaxed);
                loom::thread::yield_now();
            }
        });
        // The parent is running: `shutdown_now` cannot hand it back.
        started.take();
        let handed_back = pool.shutdown_now();
        // `shutdown_now` joined the worker: the parent and every child that
        // ran have finished.
        assert_eq!(
            handed_back.len() + ran.load(Ordering::Relaxed),
            accepted.load(Ordering::Relaxed),
            "an accepted child must run or come back, exactly once"
        );
    });
}

/// One worker runs a job that pushes two children (one panics) and then
/// runs them from its own deque without the pool lock, while the main
/// thread waits for idleness: once `wait_idle` returns, every job has been
/// counted, and nothing is queued or running.
#[test]
fn jobs_run_from_the_own_deque_are_counted_before_the_pool_is_idle() {
    super::silence_deliberate_panics();
    model(4, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let ran = Arc::new(AtomicUsize::new(0));

        let job_ran = Arc::clone(&ran);
        pool.execute(move || {
            let handle = Handle::current().expect("on a worker");
            let child_ran = Arc::clone(&job_ran);
            handle
                .execute(move || {
                    child_ran.fetch_add(1, Ordering::Relaxed);
                })
                .expect("the pool is open");
            handle
                .execute(|| std::panic::panic_any(super::DeliberatePanic))
                .expect("the pool is open");
        });
        pool.wait_idle();
        assert_eq!(ran.load(Ordering::Relaxed), 1, "a child did not run");
        assert_two_completed_one_panicked_at_idle(&pool);
        pool.shutdown();
    });
}

/// One worker. Job 0 spawns two children on its own deque, one returning a
/// value and one panicking, and joins both: the join helps by running them
/// from the deque without the pool lock (`help_from_own_deque`), counting
/// them in the worker's tally. `wait_idle` must then see all three jobs
/// counted (two completed, one panicked) and nothing queued or running.
#[test]
fn jobs_a_joiner_runs_from_its_own_deque_are_counted_before_the_pool_is_idle() {
    super::silence_deliberate_panics();
    model(4, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let joined = Arc::new(AtomicUsize::new(0));

        let parent_joined = Arc::clone(&joined);
        pool.execute(move || {
            let handle = Handle::current().expect("on a worker");
            let value = handle.spawn(|| 7_usize).expect("the pool is open");
            let panicking = handle
                .spawn(|| std::panic::panic_any(super::DeliberatePanic))
                .expect("the pool is open");
            if panicking.join().is_err_and(|err| err.is_panic()) && value.join().ok() == Some(7) {
                parent_joined.store(1, Ordering::Relaxed);
            }
        });
        pool.wait_idle();
        assert_eq!(
            joined.load(Ordering::Relaxed),
            1,
            "the joins did not return the children's outcomes"
        );
        assert_two_completed_one_panicked_at_idle(&pool);
        pool.shutdown();
    });
}

/// The counters once `wait_idle` returned in the two models above: a parent
/// and a child completed, a child panicked, nothing queued or running.
fn assert_two_completed_one_panicked_at_idle(pool: &crate::ThreadPool) {
    assert_eq!(pool.completed_count(), 2, "completed jobs not all counted");
    assert_eq!(pool.panic_count(), 1, "the panicked job not counted");
    assert_eq!(pool.queued_count(), 0);
    assert_eq!(pool.active_count(), 0);
}

/// One worker, a queue bounded to one job. Job 0 submits a child (to its
/// own deque, past the capacity, so the queue is full) while the main thread
/// submits job 1, waiting for room if it finds the queue full. The worker
/// must take the child with the lock, which notifies the waiting submitter;
/// taking it without the lock (as an unbounded pool's worker does) would
/// leave main waiting for good.
#[test]
fn own_jobs_of_a_bounded_pool_are_taken_with_the_lock_to_free_room() {
    model(3, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let ran = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));

        let (job_ran, child_accepted) = (Arc::clone(&ran), Arc::clone(&accepted));
        pool.execute(move || {
            let child_ran = Arc::clone(&job_ran);
            // Refused if main has already shut the pool down.
            let pushed = Handle::current().expect("on a worker").execute(move || {
                child_ran.fetch_add(1, Ordering::Relaxed);
            });
            child_accepted.store(usize::from(pushed.is_ok()), Ordering::Relaxed);
        });
        let job_ran = Arc::clone(&ran);
        // Blocks while the child fills the queue.
        pool.execute(move || {
            job_ran.fetch_add(1, Ordering::Relaxed);
        });
        pool.shutdown();
        assert_eq!(
            ran.load(Ordering::Relaxed),
            1 + accepted.load(Ordering::Relaxed),
            "an accepted job did not run"
        );
    });
}
