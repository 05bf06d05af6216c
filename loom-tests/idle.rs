//! Idleness tracking (`finish` against `wait_idle` in `src/queue.rs`). The
//! race explored is `wait_idle` checking "nothing queued, nothing running"
//! while workers pop and finish jobs and while new jobs are pushed: it must
//! return only at a moment of true idleness, with the counters already exact
//! for every job submitted before it, and must never miss the notification
//! of the job that made the pool idle.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, pool_pushing};
use crate::sync::{Arc, Duration};
use crate::{Builder, Handle, ThreadPool};

/// Asserts what `wait_idle` promises for `runs`, all submitted before it:
/// each ran once, the counters account for all of them, nothing is left.
fn assert_idle_after(pool: &ThreadPool, runs: &[AtomicUsize]) {
    for (job, count) in runs.iter().enumerate() {
        assert_eq!(
            count.load(Ordering::Relaxed),
            1,
            "wait_idle returned before job {job}, submitted before it, had run"
        );
    }
    assert_eq!(
        (pool.completed_count(), pool.panic_count()),
        (runs.len(), 0),
        "ledger rule 6 broken: counters not exact when wait_idle returned"
    );
    assert_eq!(
        (pool.queued_count(), pool.active_count()),
        (0, 0),
        "wait_idle returned while a job was queued or running"
    );
}

/// Two workers, two jobs submitted by the owner, then `wait_idle` at once:
/// it can find both queued, one or both running, or all done.
#[test]
fn wait_idle_returns_only_at_idle() {
    model(4, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        pool.wait_idle();
        assert_idle_after(&pool, &runs[..]);
        pool.shutdown();
    });
}

/// Two workers; job 0 submits job 1 through `Handle::current()`. A parent
/// finishing and its child starting must never look idle in between, so
/// `wait_idle` covers the child too.
#[test]
fn wait_idle_waits_for_jobs_submitted_by_jobs() {
    model(4, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let parent_runs = Arc::clone(&runs);
        pool.execute(move || {
            let child_runs = Arc::clone(&parent_runs);
            let accepted = Handle::current()
                .expect("a job runs on a worker")
                .execute(move || {
                    child_runs[1].fetch_add(1, Ordering::Relaxed);
                })
                .is_ok();
            // Count the parent only if the child was accepted, so a refusal
            // shows up as a missing run rather than being swallowed.
            if accepted {
                parent_runs[0].fetch_add(1, Ordering::Relaxed);
            }
        });
        pool.wait_idle();
        assert_idle_after(&pool, &runs[..]);
        pool.shutdown();
    });
}

/// One worker; the owner submits job 0 and calls `wait_idle` while a caller
/// thread submits job 1 through a `Handle`. `wait_idle` must not hang, and
/// must cover job 0; once the caller is joined, a second `wait_idle` covers
/// both.
#[test]
fn wait_idle_racing_a_handle_submission_never_hangs() {
    wait_idle_racing_a_submission(5, false);
}

/// The scenario of [`wait_idle_racing_a_handle_submission_never_hangs`];
/// with `lock_free`, both submitters push without the pool lock
/// (`lock_free.rs`).
pub(super) fn wait_idle_racing_a_submission(bound: usize, lock_free: bool) {
    model(bound, move || {
        let pool = pool_pushing(1, lock_free);
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());

        let handle = pool.handle();
        let caller_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            handle
                .execute(move || {
                    caller_runs[1].fetch_add(1, Ordering::Relaxed);
                })
                .is_ok()
        });
        let owner_runs = Arc::clone(&runs);
        pool.execute(move || {
            owner_runs[0].fetch_add(1, Ordering::Relaxed);
        });

        pool.wait_idle();
        assert_eq!(
            runs[0].load(Ordering::Relaxed),
            1,
            "wait_idle returned before job 0, submitted before it, had run"
        );
        assert!(
            pool.completed_count() >= 1,
            "ledger rule 6 broken: wait_idle returned before job 0 was counted"
        );

        assert!(caller.join().unwrap(), "a live pool refused a Handle's job");
        pool.wait_idle();
        assert_idle_after(&pool, &runs[..]);
        pool.shutdown();
    });
}

/// As [`wait_idle_returns_only_at_idle`], through `wait_idle_timeout`. loom
/// has no clock and its `wait_timeout` never times out, so this explores
/// the timed loop as an untimed wait; the timeout is far longer than any
/// model run so the real-time deadline check never fires either.
#[test]
fn wait_idle_timeout_returns_true_only_at_idle() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            });
        }
        assert!(
            pool.wait_idle_timeout(Duration::from_secs(3600)),
            "wait_idle_timeout gave up although no clock can run out under loom"
        );
        assert_idle_after(&pool, &runs[..]);
        pool.shutdown();
    });
}
