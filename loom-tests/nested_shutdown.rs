//! Shutdown from a job that runs *nested* in a helping join
//! (`src/shutdown.rs`, the paragraph on jobs beneath the caller, and
//! `parked_joiners` in `src/queue.rs`).
//!
//! Worker A runs W, which spawns X, waits on a mailbox until X has started
//! (so X runs on worker B), then joins X. X spawns D and joins it, so B runs
//! D nested above X. D drops the pool. X cannot finish before D returns, so
//! a shutdown that joined A (asleep joining X) would deadlock; one that
//! returned while A's join had already been resolved but A was still
//! counted as parked would return with W running for no reason. The model
//! checks the first (a deadlock is a loom failure) and that every job ran
//! exactly once; the detached workers must still exit on their own.

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, Handle, ThreadPool};

/// Two workers; W joins X on the other worker, X joins D nested above it,
/// D drops the pool. W's result reaches the main thread: 2.
#[test]
fn drop_nested_above_a_joined_job_does_not_deadlock() {
    model(2, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let slot: Arc<Mailbox<ThreadPool>> = Arc::new(Mailbox::new());
        let x_started = Arc::new(Mailbox::new());
        let result = Arc::new(Mailbox::new());
        let runs = Arc::new([
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        ]);

        let (w_slot, w_started, w_result, w_runs) = (
            Arc::clone(&slot),
            Arc::clone(&x_started),
            Arc::clone(&result),
            Arc::clone(&runs),
        );
        pool.execute(move || {
            w_runs[0].fetch_add(1, Ordering::Relaxed);
            let handle = Handle::current().expect("W runs on a worker");
            let x_handle = handle.clone();
            let x_runs = Arc::clone(&w_runs);
            let x = handle
                .spawn(move || {
                    x_runs[1].fetch_add(1, Ordering::Relaxed);
                    w_started.put(());
                    let d_runs = Arc::clone(&x_runs);
                    let d = x_handle
                        .spawn(move || {
                            d_runs[2].fetch_add(1, Ordering::Relaxed);
                            drop(w_slot.take());
                            1
                        })
                        .expect("the pool is live until D runs");
                    d.join().expect("D ran") + 1
                })
                .expect("the pool is live");
            // Not a join: only the other worker can take X meanwhile.
            x_started.take();
            w_result.put(x.join().expect("X ran"));
        });
        slot.put(pool);

        // Deadlocks if D's shutdown waited for worker A.
        assert_eq!(result.take(), 2, "W did not get X's value");
        for (job, count) in ["W", "X", "D"].iter().zip(runs.iter()) {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: job {job} did not run exactly once"
            );
        }
    });
}
