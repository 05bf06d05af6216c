//! Submission through a `Handle` racing the owner's shutdown (`submit`
//! against `close` in `src/queue.rs`). The race explored is a push and the
//! closing of the queue contending for the same lock: each job must end up
//! either accepted and run exactly once before shutdown returns, or refused
//! with kind `ShutDown` and handed back unrun — never both, never neither.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, pool_pushing};
use crate::sync::Arc;
use crate::{Handle, SubmitErrorKind};

/// Where each job ran: `in_pool[id]` counts runs on a worker,
/// `by_caller[id]` runs of the handed-back closure on the caller thread.
#[derive(Default)]
struct Runs {
    in_pool: [AtomicUsize; 2],
    by_caller: [AtomicUsize; 2],
}

/// One worker; a caller thread submits jobs 0 and 1 through a `Handle` while
/// the owner shuts the pool down. Each closure carries its id and records
/// whether it runs on a worker or, handed back by `into_inner`, on the
/// caller, so the model can tell which job came back.
#[test]
fn handle_submission_racing_shutdown_runs_or_returns_each_job() {
    submission_racing_shutdown(6, false);
}

/// The scenario of [`handle_submission_racing_shutdown_runs_or_returns_each_job`];
/// with `lock_free`, the caller pushes without the pool lock
/// (`lock_free.rs`).
pub(super) fn submission_racing_shutdown(bound: usize, lock_free: bool) {
    model(bound, move || {
        let pool = pool_pushing(1, lock_free);
        let runs = Arc::new(Runs::default());

        let handle = pool.handle();
        let caller_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            let mut accepted = [true; 2];
            for (id, accepted) in accepted.iter_mut().enumerate() {
                let runs = Arc::clone(&caller_runs);
                let job = move || {
                    let ran = match Handle::current() {
                        Some(_) => &runs.in_pool[id],
                        None => &runs.by_caller[id],
                    };
                    ran.fetch_add(1, Ordering::Relaxed);
                };
                if let Err(err) = handle.execute(job) {
                    assert_eq!(
                        err.kind(),
                        SubmitErrorKind::ShutDown,
                        "ledger rule 2: a refusal after shutdown must say ShutDown"
                    );
                    *accepted = false;
                    // The caller's choice: run the handed-back job here.
                    (err.into_inner())();
                }
            }
            accepted
        });

        pool.shutdown();
        // Snapshot before joining the caller: an accepted job must already
        // have run when shutdown returns.
        let in_pool_at_shutdown = [0, 1].map(|id| runs.in_pool[id].load(Ordering::Relaxed));
        let accepted = caller.join().unwrap();

        for id in 0..2 {
            let in_pool = runs.in_pool[id].load(Ordering::Relaxed);
            let by_caller = runs.by_caller[id].load(Ordering::Relaxed);
            assert_eq!(
                in_pool_at_shutdown[id], in_pool,
                "ledger rule 3 broken: job {id} ran in the pool after shutdown returned"
            );
            if accepted[id] {
                assert_eq!(
                    (in_pool, by_caller),
                    (1, 0),
                    "ledger rule 1 broken: accepted job {id} did not run exactly once in the pool before shutdown returned"
                );
            } else {
                assert_eq!(
                    (in_pool, by_caller),
                    (0, 1),
                    "ledger rule 2 broken: refused job {id} ran in the pool, or the error did not hand back job {id}"
                );
            }
        }
        assert!(
            accepted[0] || !accepted[1],
            "a closed pool accepted job 1 after refusing job 0"
        );
    });
}
