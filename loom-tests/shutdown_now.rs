//! Immediate shutdown (`shutdown::now`, `close_and_take_queue` in
//! `src/queue.rs`) and handed-back spawned jobs (`src/join.rs`, "Handed
//! back"). The races explored:
//!
//! - `shutdown_now` taking the queue while workers pop and run from it:
//!   each accepted job is run exactly once in the pool or handed back,
//!   never both, never neither; nothing runs in the pool after it returns;
//! - a handed-back spawned job dropped while a thread outside the pool is
//!   blocked joining it: the join resolves as cancelled;
//! - a pool worker joining (and helping) a job that `shutdown_now` hands
//!   back: the join resolves at once as cancelled, so `shutdown_now`, which
//!   waits for that worker, cannot deadlock.
//!
//! To make "queued while `shutdown_now` runs" certain rather than merely
//! possible, two models use a bounded queue as a probe: a thread outside the
//! pool submits to the full queue and waits; no job can leave the queue
//! while the only worker is held, so that submission returns only when
//! `shutdown_now` closes the queue, and only then does the thread release the
//! worker.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, Mailbox};
use crate::sync::Arc;
use crate::{Builder, Handle, Job, SubmitErrorKind};

/// Where each job ran: `in_pool[id]` counts runs on a worker,
/// `by_caller[id]` runs outside the pool (a handed-back job run by the
/// caller).
#[derive(Default)]
struct Runs {
    in_pool: [AtomicUsize; 3],
    by_caller: [AtomicUsize; 3],
}

impl Runs {
    /// Records a run of job `id` on whichever side this thread is.
    fn record(&self, id: usize) {
        let ran = match Handle::current() {
            Some(_) => &self.in_pool[id],
            None => &self.by_caller[id],
        };
        ran.fetch_add(1, Ordering::Relaxed);
    }

    /// `(in_pool, by_caller)` for job `id`.
    fn counts(&self, id: usize) -> (usize, usize) {
        (
            self.in_pool[id].load(Ordering::Relaxed),
            self.by_caller[id].load(Ordering::Relaxed),
        )
    }
}

/// Two workers; jobs 0 and 1 are `execute`d and job 2 is `spawn`ed, then
/// `shutdown_now` is issued at once, so it can find each job queued,
/// running or done. Afterwards the caller runs every handed-back job. Each
/// job must have run exactly once, in the pool or by the caller; nothing ran
/// in the pool after `shutdown_now` returned; and the spawned job's handle
/// resolves with its value either way.
#[test]
fn shutdown_now_runs_or_hands_back_each_job() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let runs = Arc::new(Runs::default());
        for id in 0..2 {
            let runs = Arc::clone(&runs);
            pool.execute(move || runs.record(id));
        }
        let spawned_runs = Arc::clone(&runs);
        let spawned = pool.spawn(move || {
            spawned_runs.record(2);
            2_usize
        });

        let handed_back: Vec<Job> = pool.shutdown_now();
        let in_pool_at_return = [0, 1, 2].map(|id| runs.in_pool[id].load(Ordering::Relaxed));
        let count = handed_back.len();
        for job in handed_back {
            job.run();
        }

        for (id, at_return) in in_pool_at_return.into_iter().enumerate() {
            let (in_pool, by_caller) = runs.counts(id);
            assert_eq!(
                in_pool, at_return,
                "ledger rule 3 broken: job {id} ran in the pool after shutdown_now returned"
            );
            assert_eq!(
                in_pool + by_caller,
                1,
                "ledger rule 1 broken: job {id} ran {in_pool} times in the pool and was handed back and run {by_caller} times"
            );
        }
        let by_caller: usize = (0..3).map(|id| runs.counts(id).1).sum();
        assert_eq!(
            count, by_caller,
            "the jobs shutdown_now handed back are not the ones that did not run in the pool"
        );
        assert_eq!(
            spawned.join().ok(),
            Some(2),
            "a spawned job's handle did not resolve with its value, run in the pool or handed back"
        );
    });
}

/// One worker, capacity 1. A blocker holds the worker, the spawned target
/// fills the queue, and a caller thread blocks joining the target. A probe
/// thread's submission waits on the full queue until `shutdown_now` closes
/// it, then releases the blocker. The target is therefore handed back; the
/// owner drops it unrun, and the blocked join must resolve as cancelled.
#[test]
fn dropped_handed_back_job_cancels_its_blocked_joiner() {
    model(4, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let target_runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Mailbox::new());

        let job_gate = Arc::clone(&gate);
        pool.execute(move || job_gate.take());
        // Accepted once the blocker has been popped: the queue is now full.
        let runs = Arc::clone(&target_runs);
        let target = pool.spawn(move || {
            runs.fetch_add(1, Ordering::Relaxed);
        });

        let joiner = thread::spawn(move || target.join().err().map(|err| err.is_cancelled()));
        let handle = pool.handle();
        let probe = thread::spawn(move || {
            let refused = handle.execute(|| {}).err().map(|err| err.kind());
            gate.put(());
            refused
        });

        let handed_back = pool.shutdown_now();
        assert_eq!(
            handed_back.len(),
            1,
            "the queued target was not handed back"
        );
        drop(handed_back);
        // Deadlocks if dropping the handed-back job did not resolve the
        // handle, or did not wake its blocked joiner.
        assert_eq!(
            joiner.join().unwrap(),
            Some(true),
            "a dropped handed-back job's handle did not resolve as cancelled"
        );
        assert_eq!(
            probe.join().unwrap(),
            Some(SubmitErrorKind::ShutDown),
            "a submitter blocked on a full queue was not refused by shutdown_now"
        );
        assert_eq!(
            target_runs.load(Ordering::Relaxed),
            0,
            "a handed-back job ran in the pool"
        );
    });
}

/// What the joining job saw.
#[derive(Debug, PartialEq)]
enum Joined {
    /// `Handle::spawn` refused the target, for this reason.
    Refused(SubmitErrorKind),
    /// `join` returned the target's value.
    Value(usize),
    /// `join` returned an error (cancelled: `true`).
    Failed { cancelled: bool },
}

/// Spawns `target` through `here` and joins it from the calling job.
fn spawn_and_join(here: &Handle, target: impl FnOnce() -> usize + Send + 'static) -> Joined {
    match here.spawn(target) {
        Err(err) => Joined::Refused(err.kind()),
        Ok(handle) => match handle.join() {
            Ok(value) => Joined::Value(value),
            Err(err) => Joined::Failed {
                cancelled: err.is_cancelled(),
            },
        },
    }
}

/// One worker, capacity 1. The joiner job spawns the target (into its own
/// deque) and then a blocker, and joins the target: helping takes the
/// newest job first, so the worker runs the blocker, nested in the join,
/// while the target stays queued. A probe thread, as above, releases the
/// blocker only after `shutdown_now` has closed the queue, so the target is
/// handed back under a worker that is joining it. That join must resolve at
/// once as cancelled (or `shutdown_now`, which waits for the worker, would
/// deadlock); the caller then runs the target exactly once.
#[test]
fn worker_joining_a_handed_back_job_is_cancelled() {
    model(5, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let runs = Arc::new(Runs::default());
        let gate = Arc::new(Mailbox::new());
        let armed = Arc::new(Mailbox::new());
        let report = Arc::new(Mailbox::new());

        let (job_runs, job_gate, job_armed, job_report) = (
            Arc::clone(&runs),
            Arc::clone(&gate),
            Arc::clone(&armed),
            Arc::clone(&report),
        );
        pool.execute(move || {
            let here = Handle::current().expect("a job runs on a worker");
            let target = here
                .spawn(move || {
                    job_runs.record(0);
                    0_usize
                })
                .expect("a live pool refused a worker's spawn");
            // Runs nested in the join below: the worker is held and the
            // target stays queued until the gate opens.
            here.execute(move || {
                job_armed.put(());
                job_gate.take();
            })
            .expect("a live pool refused a worker's job");
            job_report.put(match target.join() {
                Ok(value) => Joined::Value(value),
                Err(err) => Joined::Failed {
                    cancelled: err.is_cancelled(),
                },
            });
        });
        // The blocker runs inside the join; the target is queued and the
        // queue is full.
        armed.take();
        let handle = pool.handle();
        let probe = thread::spawn(move || {
            let refused = handle.execute(|| {}).err().map(|err| err.kind());
            gate.put(());
            refused
        });

        // Deadlocks if the worker kept waiting for the handed-back target.
        let handed_back = pool.shutdown_now();
        assert_eq!(
            report.take(),
            Joined::Failed { cancelled: true },
            "a pool worker joining a handed-back job was not cancelled"
        );
        assert_eq!(
            handed_back.len(),
            1,
            "the queued target was not handed back"
        );
        for job in handed_back {
            job.run();
        }
        assert_eq!(
            runs.counts(0),
            (0, 1),
            "ledger rule 1 broken: the handed-back target did not run exactly once, outside the pool"
        );
        assert_eq!(
            probe.join().unwrap(),
            Some(SubmitErrorKind::ShutDown),
            "a submitter blocked on a full queue was not refused by shutdown_now"
        );
    });
}

/// One worker; the running job spawns a target and joins it (helping) while
/// the owner calls `shutdown_now`, so the queue can be taken before the
/// spawn (refused), between the spawn and the worker taking the target
/// (handed back: the join must be cancelled, even if the worker had already
/// checked the slot and was about to sleep), or after (the join gets the
/// value). In every case the target runs exactly once or never, matching
/// what the join saw, and `shutdown_now` returns.
#[test]
fn shutdown_now_racing_a_helping_join() {
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let runs = Arc::new(Runs::default());
        let started = Arc::new(Mailbox::new());
        let report = Arc::new(Mailbox::new());

        let (job_runs, job_started, job_report) =
            (Arc::clone(&runs), Arc::clone(&started), Arc::clone(&report));
        pool.execute(move || {
            let here = Handle::current().expect("a job runs on a worker");
            job_started.put(());
            job_report.put(spawn_and_join(&here, move || {
                job_runs.record(0);
                0
            }));
        });
        started.take();

        // Deadlocks if the worker slept through the hand-back.
        let handed_back = pool.shutdown_now();
        let seen = report.take();
        let count = handed_back.len();
        for job in handed_back {
            job.run();
        }
        let expected = match &seen {
            Joined::Refused(SubmitErrorKind::ShutDown) => (0, (0, 0)),
            Joined::Value(0) => (0, (1, 0)),
            Joined::Failed { cancelled: true } => (1, (0, 1)),
            other => panic!("the joining job saw {other:?}"),
        };
        assert_eq!(
            (count, runs.counts(0)),
            expected,
            "the join saw {seen:?}, but (handed back, (runs in pool, runs by caller)) disagree",
        );
    });
}
