//! Panicking jobs and exact counters: with a third of the jobs panicking
//! (some of them spawned, some submitted by other jobs), no job is lost, no
//! worker dies, and once `wait_idle` returns the counters are exact (ledger
//! rules 1, 4, 6).

use std::sync::atomic::{AtomicUsize, Ordering};

use shuttle::thread;

use super::{assert_exact_when_idle, check, deliberate_panic, Ledger, Scheduler};
use crate::sync::Arc;
use crate::{Builder, Handle};

/// Jobs each outside submitter sends; each submits one child.
const PER_SUBMITTER: usize = 8;

/// Ids: `0..16` from the submitters, `16..32` their children, then the
/// owner's `32..40` (the owner's are spawned and joined).
const JOBS: usize = 4 * PER_SUBMITTER + 8;

/// Whether job `id` panics: every third one.
fn panics(id: usize) -> bool {
    id % 3 == 1
}

/// Job `id`: records its run, submits child `child` (if any) through
/// `Handle::current()`, then panics if [`panics`] says so.
fn job(ledger: &Arc<Ledger>, id: usize, child: Option<usize>) -> impl FnOnce() + Send + 'static {
    let ledger = Arc::clone(ledger);
    move || {
        ledger.record_run(id);
        if let Some(child) = child {
            let here = Handle::current().expect("a job runs on a worker");
            let child_ledger = Arc::clone(&ledger);
            here.execute(job(&child_ledger, child, None))
                .unwrap_or_else(|_| panic!("a live pool refused a worker's job"));
            ledger.accept(child);
        }
        if panics(id) {
            deliberate_panic();
        }
    }
}

/// Four workers with a panic handler; two submitters send 8 jobs each,
/// each of which submits a child, and the owner spawns 8 jobs and joins
/// them (a panicking one's join must report the panic). After joining the
/// submitters and `wait_idle`: every job ran exactly once; the counters are
/// exactly (completed, panicked, 0 queued, 0 active) for the jobs that
/// returned and panicked; the handler saw every `execute`d job's panic
/// once; the pool still has four workers, all of which stop at `shutdown`.
fn panicking_jobs_lose_nothing_and_count_exactly() {
    let handled = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let (on_panic, on_stop) = (Arc::clone(&handled), Arc::clone(&stops));
    let pool = Builder::new()
        .num_threads(4)
        .panic_handler(move |_| {
            on_panic.fetch_add(1, Ordering::Relaxed);
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
            thread::spawn(move || {
                for id in submitter * PER_SUBMITTER..(submitter + 1) * PER_SUBMITTER {
                    let child = 2 * PER_SUBMITTER + id;
                    handle
                        .execute(job(&ledger, id, Some(child)))
                        .unwrap_or_else(|_| panic!("a live pool refused job {id}"));
                    ledger.accept(id);
                }
            })
        })
        .collect();
    let spawned: Vec<_> = (4 * PER_SUBMITTER..JOBS)
        .map(|id| {
            let run = job(&ledger, id, None);
            ledger.accept(id);
            (
                id,
                pool.spawn(move || {
                    run();
                    id
                }),
            )
        })
        .collect();
    for (id, handle) in spawned {
        match handle.join() {
            Ok(value) => {
                assert!(!panics(id), "job {id} panicked, but its join returned");
                assert_eq!(value, id);
            }
            Err(err) => assert!(
                panics(id) && err.is_panic(),
                "job {id}'s join failed wrongly: {err:?}"
            ),
        }
    }
    for submitter in submitters {
        submitter.join().unwrap();
    }
    pool.wait_idle();
    ledger.assert_all_ran_once_in_pool();
    let panicked = (0..JOBS).filter(|&id| panics(id)).count();
    // The handler receives the panics of `execute`d jobs; a spawned job's
    // goes to its join.
    let executed_panicked = (0..4 * PER_SUBMITTER).filter(|&id| panics(id)).count();
    assert_exact_when_idle(&pool, JOBS - panicked, panicked);
    assert_eq!(
        handled.load(Ordering::Relaxed),
        executed_panicked,
        "the panic handler did not see every executed job's panic exactly once"
    );
    assert_eq!(
        pool.num_threads(),
        4,
        "ledger rule 4 broken: panics shrank the pool"
    );
    pool.shutdown();
    assert_eq!(
        stops.load(Ordering::Relaxed),
        4,
        "ledger rules 3, 4 broken: not every worker stopped by the time shutdown returned (one died of a panic, or was not joined)"
    );
}

#[test]
fn panicking_jobs_lose_nothing_and_count_exactly_random() {
    check(
        "panicking_jobs_lose_nothing_and_count_exactly",
        Scheduler::Random,
        30_000,
        panicking_jobs_lose_nothing_and_count_exactly,
    );
}

#[test]
fn panicking_jobs_lose_nothing_and_count_exactly_pct() {
    check(
        "panicking_jobs_lose_nothing_and_count_exactly",
        Scheduler::Pct { depth: 2 },
        30_000,
        panicking_jobs_lose_nothing_and_count_exactly,
    );
}
