//! Backpressure on a bounded queue (`submit` and `take` in `src/queue.rs`,
//! "Backpressure"). The races explored:
//!
//! - a submitter blocked on a full queue while the worker pops: every pop
//!   must wake a blocked submitter, or it waits beside free space forever;
//! - a job submitting children while the queue is full: an own-worker
//!   submission is accepted past the capacity and never waits, since the
//!   only thread that could make room is the one that would be waiting.
//!
//! A gate job holds the only worker until the main thread opens it, so the
//! queue is provably full at the moments that matter. Under loom the clock
//! is frozen and `wait_timeout` never times out (`src/sync.rs`): an
//! `execute_timeout` with a non-zero timeout is modelled as an untimed wait,
//! one with a zero timeout as already expired. A submitter that is woken and
//! then runs out of time (and so passes its wake-up on) cannot be reached
//! under loom; the real-thread tests in `tests/` cover it.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, Mailbox};
use crate::sync::{Arc, Duration};
use crate::{Builder, Handle, SubmitErrorKind};

/// Where each job ran: `in_pool[id]` counts runs on a worker,
/// `by_caller[id]` runs of a handed-back closure outside the pool.
#[derive(Default)]
struct Runs {
    in_pool: [AtomicUsize; 5],
    by_caller: [AtomicUsize; 5],
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

impl Runs {
    /// `(in_pool, by_caller)` for job `id`.
    fn counts(&self, id: usize) -> (usize, usize) {
        (
            self.in_pool[id].load(Ordering::Relaxed),
            self.by_caller[id].load(Ordering::Relaxed),
        )
    }
}

/// One worker, capacity 1. Job 0 holds the worker until the gate opens;
/// job 1 fills the queue (the owner's `execute` may itself wait for job 0 to
/// be popped). While the queue is full, `try_execute` is refused with `Full`
/// and job 3 inside it, and `execute_timeout` with a zero timeout with
/// `TimedOut` and job 4 inside it. A caller thread then submits job 2 with
/// `execute_timeout` (an untimed wait under loom), which waits while job 1
/// is queued; the owner opens the gate. The caller must be woken when the
/// worker pops job 1, and every accepted job must run exactly once.
#[test]
fn blocked_submitter_is_woken_when_space_frees() {
    model(4, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let runs = Arc::new(Runs::default());
        let gate = Arc::new(Mailbox::new());

        let (job_gate, first) = (Arc::clone(&gate), record(&runs, 0));
        pool.execute(move || {
            job_gate.take();
            first();
        });
        // Accepted only once job 0 has been popped: from here on the queue
        // holds job 1 and the worker is held by job 0.
        pool.execute(record(&runs, 1));
        let full = pool
            .try_execute(record(&runs, 3))
            .expect_err("a full queue accepted try_execute");
        assert_eq!(full.kind(), SubmitErrorKind::Full, "wrong refusal kind");
        (full.into_inner())();
        let late = pool
            .execute_timeout(record(&runs, 4), Duration::ZERO)
            .expect_err("a full queue accepted execute_timeout with no time left");
        assert_eq!(late.kind(), SubmitErrorKind::TimedOut, "wrong refusal kind");
        (late.into_inner())();

        let handle = pool.handle();
        let late = record(&runs, 2);
        let caller = thread::spawn(move || {
            handle
                .execute_timeout(late, Duration::from_secs(3600))
                .is_ok()
        });
        gate.put(());
        // Deadlocks if popping job 1 did not wake the blocked caller.
        assert!(
            caller.join().unwrap(),
            "a live pool refused a blocked submitter's job"
        );
        pool.shutdown();

        for id in 0..3 {
            assert_eq!(
                runs.counts(id),
                (1, 0),
                "ledger rule 1 broken: accepted job {id} did not run exactly once in the pool"
            );
        }
        for id in 3..5 {
            assert_eq!(
                runs.counts(id),
                (0, 1),
                "ledger rule 2 broken: refused job {id} ran in the pool or was not handed back"
            );
        }
    });
}

/// One worker, capacity 1. The parent job waits at the gate until the owner
/// has queued job 1, so the queue is full; the parent then submits child 2
/// with `execute` and child 3 with `try_execute` through
/// `Handle::current()`. Both must be accepted past the capacity without
/// waiting (the parent's worker is the only one that could make room), and
/// every job must run exactly once.
#[test]
fn own_worker_submits_past_capacity_without_blocking() {
    model(6, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let runs = Arc::new(Runs::default());
        let gate = Arc::new(Mailbox::new());
        let submitted = Arc::new(Mailbox::new());

        let (job_gate, job_submitted, parent, children) = (
            Arc::clone(&gate),
            Arc::clone(&submitted),
            record(&runs, 0),
            [2, 3].map(|id| record(&runs, id)),
        );
        pool.execute(move || {
            job_gate.take();
            let here = Handle::current().expect("a job runs on a worker");
            let [waiting, trying] = children;
            let kinds = [
                here.execute(waiting).err().map(|err| err.kind()),
                here.try_execute(trying).err().map(|err| err.kind()),
            ];
            job_submitted.put(kinds);
            parent();
        });
        pool.execute(record(&runs, 1));
        gate.put(());
        // Deadlocks if a child's submission waited for room that only the
        // parent's own worker could make.
        assert_eq!(
            submitted.take(),
            [None, None],
            "an own-worker submission to a full queue was refused ([execute, try_execute])"
        );
        pool.shutdown();

        for id in 0..4 {
            assert_eq!(
                runs.counts(id),
                (1, 0),
                "ledger rule 1 broken: job {id} did not run exactly once in the pool"
            );
        }
    });
}
