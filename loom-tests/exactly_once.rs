//! The queue protocol's first ledger rule: every accepted job runs exactly
//! once. The race explored is two workers popping from one queue while
//! submissions (from the owner and from a `Handle` on another thread) push
//! into it: no job may be popped twice, skipped, or left behind.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, pool_pushing};
use crate::sync::Arc;
use crate::Builder;

/// Two workers, three jobs submitted back to back by the owner, then a
/// graceful shutdown.
#[test]
fn every_accepted_job_runs_exactly_once() {
    model(4, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
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
                "ledger rule 1 broken: accepted job {job} did not run exactly once"
            );
        }
    });
}

/// Two workers; the owner and a caller thread (through a `Handle`) submit
/// concurrently, so pushes race each other as well as the workers' pops.
#[test]
fn concurrent_submitters_each_job_runs_exactly_once() {
    concurrent_submitters(3, false);
}

/// The scenario of [`concurrent_submitters_each_job_runs_exactly_once`];
/// with `lock_free`, both submitters push without the pool lock
/// (`lock_free.rs`).
pub(super) fn concurrent_submitters(bound: usize, lock_free: bool) {
    model(bound, move || {
        let pool = pool_pushing(2, lock_free);
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());

        let handle = pool.handle();
        let caller_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            handle
                .execute(move || {
                    caller_runs[2].fetch_add(1, Ordering::Relaxed);
                })
                .is_ok()
        });
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        // Join the caller before shutting down, so its job must be accepted.
        let accepted = caller.join().unwrap();
        assert!(accepted, "a live pool refused a Handle's job");
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
