//! A worker that takes an outside job moves a batch of the next ones into
//! its own deque (`Shared::take_batch` in `src/queue.rs`), and runs them
//! from there without the pool lock, mirroring its tally for the counters
//! (`Local::unrecorded`). The races explored: the batch against the other
//! worker going to sleep (a job moved into a busy worker's deque must still
//! reach the idle one: a loom deadlock otherwise), against `shutdown_now`
//! (each job runs once or comes back), and the counters' getters against
//! jobs run but not yet recorded (exact once idle, never counted twice).
//!
//! The pools push outside jobs without the lock and batch them, both off in
//! the other models (`Builder::push_without_lock`,
//! `Builder::batch_outside_jobs`).

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, ThreadPool};

fn batching_pool(threads: usize) -> ThreadPool {
    Builder::new()
        .num_threads(threads)
        .push_without_lock(true)
        .batch_outside_jobs(true)
        .build()
        .unwrap()
}

/// Two workers; main submits jobs 0, 1 and 2 from outside. Job 0 blocks
/// until job 1 has run. A worker that takes job 0 with jobs 1 and 2 queued
/// moves job 1 into its own deque (its share of two between two workers),
/// then blocks in job 0: only the other worker, which may be asleep, can
/// run job 1, by stealing it. Then `wait_idle`: every job ran once, and
/// the counters, which include the tally mirrored from the deque, are
/// exact.
///
/// Bound 1 (566 executions). Bound 2 explores 3.3 M executions in about
/// 220 s, too long for CI; bound 1 already reaches the batch in the busy
/// worker's deque: with thieves that skip the deques planted, it deadlocks.
#[test]
fn a_batch_in_a_busy_workers_deque_reaches_the_other_worker() {
    model(1, || {
        let pool = batching_pool(2);
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        let job_1_ran = Arc::new(Mailbox::new());

        let (job_runs, ran) = (Arc::clone(&runs), Arc::clone(&job_1_ran));
        pool.execute(move || {
            // Deadlocks if job 1 sits in this worker's deque unseen.
            ran.take();
            job_runs[0].fetch_add(1, Ordering::Relaxed);
        });
        let (job_runs, ran) = (Arc::clone(&runs), Arc::clone(&job_1_ran));
        pool.execute(move || {
            job_runs[1].fetch_add(1, Ordering::Relaxed);
            ran.put(());
        });
        let job_runs = Arc::clone(&runs);
        pool.execute(move || {
            job_runs[2].fetch_add(1, Ordering::Relaxed);
        });

        pool.wait_idle();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: job {job} did not run exactly once"
            );
        }
        assert_eq!(
            pool.completed_count(),
            3,
            "ledger rule 6 broken: counters not exact at idle"
        );
        assert_eq!(pool.queued_count(), 0);
        assert_eq!(pool.active_count(), 0);
        pool.shutdown();
    });
}

/// One worker; main submits jobs 0 and 1 from outside, then calls
/// `shutdown_now`. The worker may have moved job 1 into its own deque with
/// job 0, and be running them from there without the pool lock,
/// while `shutdown_now` drains the deques: each job must run exactly once
/// or come back exactly once, and once `shutdown_now` has returned the
/// counters must count exactly the jobs that ran.
#[test]
fn shutdown_now_racing_a_batch_runs_or_hands_back_each_job() {
    model(3, || {
        let pool = batching_pool(1);
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());

        for job in 0..2 {
            let job_runs = Arc::clone(&runs);
            pool.execute(move || {
                job_runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        let completed_before = pool.completed_count();
        let handed_back = pool.shutdown_now();

        let ran: Vec<usize> = runs
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .collect();
        let ran_total: usize = ran.iter().sum();
        assert!(
            ran.iter().all(|&count| count <= 1),
            "ledger rule 1 broken: a job ran twice: {ran:?}"
        );
        assert_eq!(
            ran_total + handed_back.len(),
            2,
            "ledger rule 1 broken: a job neither ran nor came back ({ran:?}, {} back)",
            handed_back.len()
        );
        assert!(
            completed_before <= ran_total,
            "a job was counted twice before it was recorded"
        );
        for job in handed_back {
            job.run();
        }
        let rerun: usize = runs.iter().map(|count| count.load(Ordering::Relaxed)).sum();
        assert_eq!(rerun, 2, "a handed-back job was one that had already run");
    });
}
