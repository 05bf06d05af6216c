//! Shutdown from inside the pool (`src/shutdown.rs`, "Shutdown from inside
//! the pool"). The race explored is a job that owns the last reference to
//! its own pool dropping it while other accepted jobs are queued or running:
//! the dropping worker must help drain the queue, join every *other* worker,
//! detach itself instead of joining itself, and then exit on its own.
//!
//! The owner hands the pool to the dropping job through a mailbox, so the
//! job is the last owner in every interleaving. The job reports what it saw
//! when `drop` returned through a second mailbox, and the model's main
//! thread asserts on that report. The detached worker is never joined; loom
//! runs every thread to completion and reports a deadlock if it never exits.

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, ThreadPool};

/// What the dropping job saw right after `drop(pool)` returned.
#[derive(Debug, PartialEq)]
struct AfterDrop {
    /// Run count of each other job.
    runs: [usize; 2],
    /// Workers that had run their stop hook.
    stopped: usize,
}

/// Builds a `workers`-thread pool, queues the dropping job first and two
/// counting jobs behind it, hands the pool over, and returns the dropping
/// job's report.
fn drop_from_inside(workers: usize) -> AfterDrop {
    let stopped = Arc::new(AtomicUsize::new(0));
    let stop_hook = Arc::clone(&stopped);
    let pool = Builder::new()
        .num_threads(workers)
        .on_thread_stop(move |_| {
            stop_hook.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
    let handover: Arc<Mailbox<ThreadPool>> = Arc::new(Mailbox::new());
    let report: Arc<Mailbox<AfterDrop>> = Arc::new(Mailbox::new());

    let (job_handover, job_report, job_runs) = (
        Arc::clone(&handover),
        Arc::clone(&report),
        Arc::clone(&runs),
    );
    pool.execute(move || {
        drop(job_handover.take());
        job_report.put(AfterDrop {
            runs: [0, 1].map(|job| job_runs[job].load(Ordering::Relaxed)),
            stopped: stopped.load(Ordering::Relaxed),
        });
    });
    for job in 0..2 {
        let runs = Arc::clone(&runs);
        pool.execute(move || {
            runs[job].fetch_add(1, Ordering::Relaxed);
        });
    }
    handover.put(pool);
    report.take()
}

/// One worker: the dropping job's own worker is the only one left to run
/// the two jobs queued behind it, so `drop` must run them itself.
#[test]
fn drop_from_inside_a_job_does_not_deadlock() {
    model(20, || {
        let seen = drop_from_inside(1);
        assert_eq!(
            seen,
            AfterDrop {
                runs: [1, 1],
                stopped: 0
            },
            "ledger rule 3 broken: drop from inside a job returned before every other job had run exactly once"
        );
    });
}

/// Two workers: `drop` from inside a job must drain the queue together with
/// the other worker and join it (its stop hook has run), but not its own.
#[test]
fn drop_from_inside_a_job_joins_the_other_worker() {
    model(4, || {
        let seen = drop_from_inside(2);
        assert_eq!(
            seen,
            AfterDrop {
                runs: [1, 1],
                stopped: 1
            },
            "ledger rule 3 broken: drop from inside a job returned before every other job ran once and the other worker was joined"
        );
    });
}
