//! Shutdown with a deadline (`shutdown::with_deadline` and the wait for the
//! workers in `src/queue.rs`). Under loom the clock is frozen and loom's
//! `wait_timeout` never times out (`src/sync.rs`), so a deadline is either
//! never reached (any non-zero timeout) or already passed (a zero timeout).
//! The races explored:
//!
//! - a deadline that is not reached: close, drain, wait on `became_idle`
//!   until every worker has exited, then join; the last worker's exit
//!   notification races the shutting-down thread's check-then-wait, and a
//!   lost one is a loom deadlock;
//! - a deadline that has already passed when the workers are waited for:
//!   the workers are detached, not stopped, so every job already accepted
//!   still runs exactly once, and every worker still exits.
//!
//! Timeouts that expire part-way through a wait are covered by the
//! real-thread tests in `tests/`.

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::count::Count;
use super::model;
use crate::sync::{Arc, Duration};
use crate::Builder;

/// Two workers, two jobs, then `shutdown_timeout` with a deadline no model
/// run reaches. It must return `Ok` only after both jobs ran exactly once
/// and both workers exited (their stop hooks ran).
#[test]
fn shutdown_timeout_drains_and_joins_like_shutdown() {
    model(3, || {
        let stopped = Arc::new(AtomicUsize::new(0));
        let stop_hook = Arc::clone(&stopped);
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |_| {
                stop_hook.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }

        // Deadlocks if the last worker's exit did not wake the waiter.
        let result = pool.shutdown_timeout(Duration::from_secs(3600));
        assert!(
            result.is_ok(),
            "shutdown_timeout timed out although the clock is frozen under loom"
        );
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 3 broken: job {job} had not run exactly once when shutdown_timeout returned Ok"
            );
        }
        assert_eq!(
            stopped.load(Ordering::Relaxed),
            2,
            "ledger rule 3 broken: a worker had not exited when shutdown_timeout returned Ok"
        );
    });
}

/// Two workers, two jobs, then `shutdown_timeout(Duration::ZERO)`: it
/// returns `Ok` only if both workers had already exited (then every job has
/// run), and otherwise times out, reporting no more jobs than were
/// submitted. Either way, with no further call on the pool, each job must
/// then run exactly once and both workers must exit: a timed-out shutdown
/// detaches the workers and drops nothing queued.
#[test]
fn expired_shutdown_timeout_detaches_and_drops_no_job() {
    model(3, || {
        let stopped = Arc::new(Count::new());
        let stop_hook = Arc::clone(&stopped);
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |_| stop_hook.bump())
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let finished = Arc::new(Count::new());
        for job in 0..2 {
            let (runs, finished) = (Arc::clone(&runs), Arc::clone(&finished));
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
                finished.bump();
            });
        }

        match pool.shutdown_timeout(Duration::ZERO) {
            Ok(()) => {
                assert_eq!(
                    (finished.get(), stopped.get()),
                    (2, 2),
                    "ledger rule 3 broken: shutdown_timeout returned Ok before every job ran and every worker exited"
                );
            }
            Err(late) => {
                assert!(
                    late.queued() + late.running() <= 2,
                    "a timed-out shutdown reported {} queued and {} running of 2 jobs",
                    late.queued(),
                    late.running()
                );
            }
        }
        // Deadlocks if the detached workers dropped a job or never exited.
        finished.wait_for(2);
        stopped.wait_for(2);
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: job {job} did not run exactly once after a timed-out shutdown"
            );
        }
    });
}
