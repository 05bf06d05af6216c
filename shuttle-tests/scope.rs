//! Nested scopes: scoped jobs open scopes of their own on the same pool,
//! borrowing the caller's stack, while an outside submitter keeps the
//! workers busy. Every scope must return only after all of its jobs (and
//! theirs) have finished, each exactly once (ledger rules 1, 3, 6).

use std::sync::atomic::{AtomicUsize, Ordering};

use shuttle::thread;

use super::{assert_exact_when_idle, check, Ledger, Scheduler};
use crate::sync::Arc;
use crate::ThreadPool;

/// Scoped jobs the outer scope starts; each opens an inner scope.
const OUTER: usize = 4;

/// Jobs each inner scope starts.
const INNER: usize = 6;

/// Jobs an outside submitter sends meanwhile.
const OUTSIDE: usize = 8;

/// Four workers. The owner opens a scope of 4 jobs; each opens an inner
/// scope on the same pool with 6 jobs (half `execute`d, half `spawn`ed and
/// joined inside the inner scope) that count their runs in an array on the
/// owner's stack. Meanwhile a submitter sends 8 plain jobs. When the outer
/// scope returns, every scoped job has run exactly once; after `wait_idle`
/// the counters count all 36 jobs exactly.
fn nested_scopes_finish_every_scoped_job() {
    let pool = ThreadPool::new(4);
    let outside = Arc::new(Ledger::new(OUTSIDE));
    let handle = pool.handle();
    let submitter_ledger = Arc::clone(&outside);
    let submitter = thread::spawn(move || {
        for id in 0..OUTSIDE {
            let ledger = Arc::clone(&submitter_ledger);
            handle
                .execute(move || ledger.record_run(id))
                .unwrap_or_else(|_| panic!("a live pool refused job {id}"));
            submitter_ledger.accept(id);
        }
    });

    let runs: [[AtomicUsize; INNER]; OUTER] = Default::default();
    let inner_returned = AtomicUsize::new(0);
    pool.scope(|outer| {
        for row in &runs {
            let (pool, inner_returned) = (&pool, &inner_returned);
            outer.execute(move || {
                let joined = pool.scope(|inner| {
                    let mut handles = Vec::new();
                    for (column, count) in row.iter().enumerate() {
                        if column % 2 == 0 {
                            inner.execute(move || {
                                count.fetch_add(1, Ordering::Relaxed);
                            });
                        } else {
                            handles
                                .push(inner.spawn(move || count.fetch_add(1, Ordering::Relaxed)));
                        }
                    }
                    let spawned = handles.len();
                    for handle in handles {
                        handle.join().expect("a scoped job failed");
                    }
                    spawned
                });
                if joined == INNER / 2 {
                    inner_returned.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    for (outer, row) in runs.iter().enumerate() {
        for (inner, count) in row.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: scoped job ({outer}, {inner}) ran a wrong number of times by the time the outer scope returned"
            );
        }
    }
    assert_eq!(
        inner_returned.load(Ordering::Relaxed),
        OUTER,
        "an inner scope had not returned (with every join) when the outer scope did"
    );
    submitter.join().unwrap();
    pool.wait_idle();
    outside.assert_all_ran_once_in_pool();
    assert_exact_when_idle(&pool, OUTER + OUTER * INNER + OUTSIDE, 0);
    pool.shutdown();
}

#[test]
fn nested_scopes_finish_every_scoped_job_random() {
    check(
        "nested_scopes_finish_every_scoped_job",
        Scheduler::Random,
        30_000,
        nested_scopes_finish_every_scoped_job,
    );
}

#[test]
fn nested_scopes_finish_every_scoped_job_pct() {
    check(
        "nested_scopes_finish_every_scoped_job",
        Scheduler::Pct { depth: 3 },
        30_000,
        nested_scopes_finish_every_scoped_job,
    );
}
