//! A panic at the job boundary (`Shared::run` in `src/queue.rs`, `job.rs`).
//! The race explored is a job panicking on one worker while other jobs are
//! popped, run and counted on the other, and while `wait_idle` watches the
//! counters: a panic must lose no job, kill no worker, leave `running`
//! balanced, and be counted and handed to the panic handler exactly once.

use std::panic;

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, silence_deliberate_panics, DeliberatePanic};
use crate::sync::Arc;
use crate::Builder;

/// Calls of each user callback, counted by the callback itself.
#[derive(Default)]
struct Calls {
    started: AtomicUsize,
    stopped: AtomicUsize,
    panic_handler: AtomicUsize,
}

/// Two workers; jobs 0 and 2 return normally, job 1 panics. After
/// `wait_idle`: every job ran once, `completed_count() == 2`,
/// `panic_count() == 1`, the panic handler ran once. After shutdown: both
/// workers ran their stop hook, so neither was killed by the panic.
#[test]
fn panicking_job_loses_no_job_and_counts_exactly() {
    silence_deliberate_panics();
    model(3, || {
        let calls = Arc::new(Calls::default());
        let (stop, handler) = (Arc::clone(&calls), Arc::clone(&calls));
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |_| {
                stop.stopped.fetch_add(1, Ordering::Relaxed);
            })
            .panic_handler(move |payload| {
                // Count only the expected payload: an assertion here would be
                // swallowed, a wrong count is not.
                if payload.is::<DeliberatePanic>() {
                    handler.panic_handler.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
        for job in 0..3 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
                if job == 1 {
                    panic::panic_any(DeliberatePanic);
                }
            });
        }

        pool.wait_idle();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 4 broken: job {job} did not run exactly once beside a panicking job"
            );
        }
        assert_eq!(
            (pool.completed_count(), pool.panic_count()),
            (2, 1),
            "ledger rule 6 broken: counters not exact at idle after a panic"
        );
        assert_eq!(
            calls.panic_handler.load(Ordering::Relaxed),
            1,
            "the panic handler must run exactly once per panicking job"
        );

        pool.shutdown();
        assert_eq!(
            calls.stopped.load(Ordering::Relaxed),
            2,
            "ledger rule 4 broken: a panic shrank the pool (a worker did not exit normally)"
        );
    });
}

/// One worker whose `on_thread_start`, `panic_handler` and `on_thread_stop`
/// all panic; job 0 panics, job 1 returns normally. The hooks' panics are
/// swallowed: job 1 still runs, the counters are exact, each hook ran once.
#[test]
fn panicking_hooks_lose_no_job() {
    silence_deliberate_panics();
    model(20, || {
        let calls = Arc::new(Calls::default());
        let (start, stop, handler) = (Arc::clone(&calls), Arc::clone(&calls), Arc::clone(&calls));
        let pool = Builder::new()
            .num_threads(1)
            .on_thread_start(move |_| {
                start.started.fetch_add(1, Ordering::Relaxed);
                panic::panic_any(DeliberatePanic);
            })
            .on_thread_stop(move |_| {
                stop.stopped.fetch_add(1, Ordering::Relaxed);
                panic::panic_any(DeliberatePanic);
            })
            .panic_handler(move |_| {
                handler.panic_handler.fetch_add(1, Ordering::Relaxed);
                panic::panic_any(DeliberatePanic);
            })
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        for job in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
                if job == 0 {
                    panic::panic_any(DeliberatePanic);
                }
            });
        }

        pool.wait_idle();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 4 broken: job {job} was lost to a panicking hook"
            );
        }
        assert_eq!(
            (pool.completed_count(), pool.panic_count()),
            (1, 1),
            "ledger rule 6 broken: counters not exact after a panicking panic handler"
        );

        pool.shutdown();
        let hooks = [&calls.started, &calls.panic_handler, &calls.stopped]
            .map(|count| count.load(Ordering::Relaxed));
        assert_eq!(
            hooks,
            [1, 1, 1],
            "each hook must run exactly once ([start, panic handler, stop]) even when it panics"
        );
    });
}
