//! Resizing under load: the owner grows and shrinks the pool while two
//! submitters feed it jobs that spawn and join children. Retiring workers
//! must finish their job first and lose nothing; new workers must pick up
//! work; the counters must be exact at idle (ledger rules 1, 3, 6).

use std::sync::atomic::{AtomicUsize, Ordering};

use shuttle::thread;

use super::{assert_exact_when_idle, check, Ledger, Scheduler};
use crate::sync::Arc;
use crate::{Builder, Handle};

/// Jobs each outside submitter sends; each spawns and joins one child.
const PER_SUBMITTER: usize = 10;

/// Ids: `0..20` from the submitters, `20..40` their children.
const JOBS: usize = 4 * PER_SUBMITTER;

/// The sizes the owner sets, in order, while the jobs run.
const SIZES: [usize; 5] = [1, 4, 2, 3, 1];

/// Starts with four workers; while two submitters send 10 jobs each, every
/// one of which spawns a child through `Handle::current()` and joins it,
/// the owner resizes to 1, 4, 2, 3 and 1 workers. After joining the
/// submitters and `wait_idle`: every job ran exactly once, every join got
/// its child's value, the counters are exact and `num_threads` is 1; after
/// `shutdown`, every worker that ever started has stopped.
fn resizing_while_jobs_run_loses_nothing() {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let joined = Arc::new(AtomicUsize::new(0));
    let (on_start, on_stop) = (Arc::clone(&starts), Arc::clone(&stops));
    let pool = Builder::new()
        .num_threads(4)
        .on_thread_start(move |_| {
            on_start.fetch_add(1, Ordering::Relaxed);
        })
        .on_thread_stop(move |_| {
            on_stop.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let ledger = Arc::new(Ledger::new(JOBS));
    let submitters: Vec<_> = (0..2)
        .map(|submitter| {
            let handle = pool.handle();
            let ledger = Arc::clone(&ledger);
            let joined = Arc::clone(&joined);
            thread::spawn(move || {
                for id in submitter * PER_SUBMITTER..(submitter + 1) * PER_SUBMITTER {
                    let child = 2 * PER_SUBMITTER + id;
                    let job_ledger = Arc::clone(&ledger);
                    let job_joined = Arc::clone(&joined);
                    handle
                        .execute(move || {
                            job_ledger.record_run(id);
                            let here = Handle::current().expect("a job runs on a worker");
                            let child_ledger = Arc::clone(&job_ledger);
                            let spawned = here
                                .spawn(move || {
                                    child_ledger.record_run(child);
                                    child
                                })
                                .unwrap_or_else(|_| panic!("a live pool refused a worker's spawn"));
                            job_ledger.accept(child);
                            if spawned.join().ok() == Some(child) {
                                job_joined.fetch_add(1, Ordering::Relaxed);
                            }
                        })
                        .unwrap_or_else(|_| panic!("a live pool refused job {id}"));
                    ledger.accept(id);
                }
            })
        })
        .collect();
    for size in SIZES {
        pool.set_num_threads(size).unwrap();
        assert_eq!(pool.num_threads(), size);
    }
    for submitter in submitters {
        submitter.join().unwrap();
    }
    pool.wait_idle();
    ledger.assert_all_ran_once_in_pool();
    assert_eq!(
        joined.load(Ordering::Relaxed),
        2 * PER_SUBMITTER,
        "a parent's join did not return its child's value"
    );
    assert_exact_when_idle(&pool, JOBS, 0);
    assert_eq!(pool.num_threads(), SIZES[SIZES.len() - 1]);
    pool.shutdown();
    let (started, stopped) = (
        starts.load(Ordering::Relaxed),
        stops.load(Ordering::Relaxed),
    );
    assert!(
        started >= 4,
        "only {started} workers started; the pool began with 4"
    );
    assert_eq!(
        stopped, started,
        "ledger rule 3 broken: {started} workers started, {stopped} stopped by the time shutdown returned"
    );
}

#[test]
fn resizing_while_jobs_run_loses_nothing_random() {
    check(
        "resizing_while_jobs_run_loses_nothing",
        Scheduler::Random,
        30_000,
        resizing_while_jobs_run_loses_nothing,
    );
}

#[test]
fn resizing_while_jobs_run_loses_nothing_pct() {
    check(
        "resizing_while_jobs_run_loses_nothing",
        Scheduler::Pct { depth: 3 },
        30_000,
        resizing_while_jobs_run_loses_nothing,
    );
}
