//! Resizing (`set_num_threads`, `set_target` and the retire check in
//! `next_job`, `src/queue.rs`). The race explored is a grow and a shrink
//! landing while a `Handle` submits from another thread and workers pop,
//! sleep and retire, followed by a shutdown that may find a surplus worker
//! still retiring: every accepted job runs exactly once (a retiring worker
//! takes none of them with it), a refused one comes back, `num_threads`
//! reports the size set, and shutdown joins every worker ever started. A
//! second model checks a shrink on its own: a surplus worker retires while
//! idle, without waiting for more work or for shutdown, and a job its last
//! job submitted (held in its own deque) still runs.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::count::Count;
use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, Handle, SubmitErrorKind};

/// Where each job ran: on a worker, or handed back to the caller.
#[derive(Default)]
struct Runs {
    in_pool: [AtomicUsize; 2],
    by_caller: [AtomicUsize; 2],
}

/// A job that records in `runs` where it ran, under `id`.
fn record(runs: &Arc<Runs>, id: usize) -> impl FnOnce() + Send + 'static {
    let runs = Arc::clone(runs);
    move || {
        let ran = match Handle::current() {
            Some(_) => &runs.in_pool[id],
            None => &runs.by_caller[id],
        };
        ran.fetch_add(1, Ordering::Relaxed);
    }
}

/// A 1-worker pool: the owner submits job 0, grows the pool to 2 and
/// shrinks it back to 1 (so job 0 may be queued, running on the worker that
/// turns surplus, or done), while a caller thread submits job 1 through a
/// `Handle`; the owner then shuts down without waiting for the caller, so
/// that submission also races the close. Each job is accepted and runs
/// exactly once in the pool before shutdown returns, or (job 1 only) is
/// refused with `ShutDown` and comes back unrun; `num_threads` reports each
/// size set; both workers are joined (their stop hooks ran).
#[test]
fn resize_racing_submissions_and_shutdown_runs_each_job_once() {
    model(3, || {
        let stopped = Arc::new(AtomicUsize::new(0));
        let stop_hook = Arc::clone(&stopped);
        let pool = Builder::new()
            .num_threads(1)
            .on_thread_stop(move |_| {
                stop_hook.fetch_add(1, Ordering::Relaxed);
            })
            .build()
            .unwrap();
        let runs = Arc::new(Runs::default());

        let (handle, late) = (pool.handle(), record(&runs, 1));
        let caller = thread::spawn(move || match handle.execute(late) {
            Ok(()) => true,
            Err(err) => {
                assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
                (err.into_inner())();
                false
            }
        });
        pool.execute(record(&runs, 0));

        pool.set_num_threads(2).unwrap();
        assert_eq!(
            pool.num_threads(),
            2,
            "num_threads must report the size set"
        );
        pool.set_num_threads(1).unwrap();
        assert_eq!(
            pool.num_threads(),
            1,
            "num_threads must report the size set"
        );
        pool.shutdown();
        let in_pool_at_shutdown = [0, 1].map(|id| runs.in_pool[id].load(Ordering::Relaxed));
        let accepted = [true, caller.join().unwrap()];

        for (id, at_shutdown) in in_pool_at_shutdown.into_iter().enumerate() {
            let counts = (
                runs.in_pool[id].load(Ordering::Relaxed),
                runs.by_caller[id].load(Ordering::Relaxed),
            );
            assert_eq!(
                counts.0, at_shutdown,
                "ledger rule 3 broken: job {id} ran in the pool after shutdown returned"
            );
            let expected = if accepted[id] { (1, 0) } else { (0, 1) };
            assert_eq!(
                counts, expected,
                "ledger broken for job {id} (accepted: {}): (runs in pool, runs by caller)",
                accepted[id]
            );
        }
        assert_eq!(
            stopped.load(Ordering::Relaxed),
            2,
            "ledger rule 3 broken: shutdown returned before every worker ever started had exited"
        );
    });
}

/// Two workers; a parent job submits a child through `Handle::current()`
/// (into its worker's own deque) while the owner shrinks the pool to one
/// worker. Before any shutdown, the child must run (whichever worker retires,
/// the job it held is not lost and the remaining worker is woken for it) and
/// one worker must retire (the shrink wakes an idle surplus worker; nothing
/// else would). Shutdown then joins both workers.
#[test]
fn shrink_retires_an_idle_worker_and_loses_none_of_its_jobs() {
    model(4, || {
        let stopped = Arc::new(Count::new());
        let stop_hook = Arc::clone(&stopped);
        let pool = Builder::new()
            .num_threads(2)
            .on_thread_stop(move |_| stop_hook.bump())
            .build()
            .unwrap();
        let child_ran = Arc::new(Mailbox::new());

        let ran = Arc::clone(&child_ran);
        pool.execute(move || {
            let here = Handle::current().expect("a job runs on a worker");
            // Refused only after shutdown, which waits below for the child.
            let _ = here.execute(move || ran.put(()));
        });
        pool.set_num_threads(1).unwrap();
        assert_eq!(
            pool.num_threads(),
            1,
            "num_threads must report the size set"
        );

        // Deadlocks if the child was stranded in a retired worker's deque, or
        // left beside a sleeping worker.
        child_ran.take();
        // Deadlocks if the surplus worker was not woken to retire.
        stopped.wait_for(1);
        pool.shutdown();
        assert_eq!(
            stopped.get(),
            2,
            "ledger rule 3 broken: shutdown returned before every worker had exited"
        );
    });
}
