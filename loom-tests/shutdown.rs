//! The graceful shutdown protocol (`src/shutdown.rs`): close, drain, join.
//! The race explored is `close` landing while jobs are still queued, while
//! they run, and while workers are asleep: shutdown must neither drop a
//! queued job nor leave a sleeping worker behind, and must return only after
//! every job has finished and every worker has exited.

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::Builder;

/// Two workers; job 0 blocks until the first worker has run its stop hook,
/// which can only happen after `close`, so shutdown is always issued while
/// job 0 runs on one worker and jobs 1 and 2 are queued, running on the
/// other worker, or done. After shutdown returns: each job ran once, every
/// job's closure has been dropped, each worker ran its stop hook once, and
/// the pool's state is gone.
#[test]
fn shutdown_drains_queued_and_running_jobs_and_joins_workers() {
    model(5, || {
        let stopped: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let stops = AtomicUsize::new(0);
        let first_stop = Arc::new(Mailbox::new());
        let (stop_hook, release) = (Arc::clone(&stopped), Arc::clone(&first_stop));
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |index| {
                stop_hook[index].fetch_add(1, Ordering::Relaxed);
                // The worker blocked in job 0 cannot stop first: the first
                // stop is the other worker's, and it releases job 0.
                if stops.fetch_add(1, Ordering::Relaxed) == 0 {
                    release.put(());
                }
            })
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        for job in 0..3 {
            let (runs, first_stop) = (Arc::clone(&runs), Arc::clone(&first_stop));
            pool.execute(move || {
                if job == 0 {
                    first_stop.take();
                }
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        pool.shutdown();

        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 3 broken: job {job} had not run exactly once when shutdown returned"
            );
        }
        assert_eq!(
            Arc::strong_count(&runs),
            1,
            "ledger rule 3 broken: a job's closure was still alive after shutdown returned"
        );
        for (worker, count) in stopped.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 3 broken: worker {worker} had not exited when shutdown returned"
            );
        }
        // The hook closure is owned by the pool's state, which the last
        // worker releases as it exits: nothing of the pool is left.
        assert_eq!(
            Arc::strong_count(&stopped),
            1,
            "ledger rule 3 broken: the pool's state outlived shutdown"
        );
    });
}

/// Two workers and no jobs: shutdown can find both asleep, one asleep and
/// one still starting, or both starting. Every one of them must be woken to
/// see the closed queue, or joining it hangs.
#[test]
fn shutdown_wakes_every_sleeping_worker() {
    model(20, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        pool.shutdown();
    });
}
