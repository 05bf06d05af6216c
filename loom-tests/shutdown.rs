//! The graceful shutdown protocol (`src/shutdown.rs`): close, drain, join.
//! The race explored is `close` landing while jobs are still queued, while
//! they run, and while workers are asleep: shutdown must neither drop a
//! queued job nor leave a sleeping worker behind, and must return only after
//! every job has finished and every worker has exited.

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::model;
use crate::sync::Arc;
use crate::Builder;

/// Two workers; three jobs are submitted and shutdown is issued at once, so
/// it can find them queued, running or done. After it returns: each job ran
/// once, its closure has been dropped, and each worker ran its stop hook.
#[test]
fn shutdown_drains_queued_and_running_jobs_and_joins_workers() {
    model(4, || {
        let stopped: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let stop_hook = Arc::clone(&stopped);
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |index| {
                stop_hook[index].fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        for job in 0..3 {
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
