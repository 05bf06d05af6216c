//! Shutdown from inside a job racing a helping join on another worker
//! (`wait_workers_settled` and `sleep_while_joining` in `src/queue.rs`). The
//! race explored: the in-job shutdown runs the other worker's child itself
//! (helping to drain the queue) while that worker, joining the child, parks;
//! the child's completion wakes it. It must then be waited for and joined
//! like any running worker: only a joiner whose job is suspended beneath the
//! shutting-down job on its own stack can never finish, and only such a one
//! may be left behind.
//!
//! This failed on `c002953`, where a woken joiner still counted in
//! `parked_joiners` until it re-took the lock: the in-job shutdown settled
//! with `SomeParkedInJoin` and returned before the joiner's job had finished
//! (ledger rule 3: "the ledger still holds when that call returns"). Fixed
//! in `09b41d0` (`unpark_joiners` in `wake_helping_joiners`).

use loom::sync::atomic::{AtomicUsize, Ordering};

use super::{model, Mailbox};
use crate::sync::{self, Arc, Mutex, ThreadId};
use crate::{Builder, Handle, ThreadPool};

/// Two workers. Job B spawns a child and joins it, then counts itself done;
/// job A takes the last owner of the pool from a mailbox and drops it. Unless
/// A runs nested inside B's join on B's own thread (then B is suspended
/// beneath A and cannot finish first), B must have finished when A's drop
/// returns.
#[test]
fn drop_from_inside_waits_for_a_joiner_whose_child_is_done() {
    model(4, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let b_done = Arc::new(AtomicUsize::new(0));
        let b_thread: Arc<Mutex<Option<ThreadId>>> = Arc::new(Mutex::new(None));
        let handover: Arc<Mailbox<ThreadPool>> = Arc::new(Mailbox::new());
        let report: Arc<Mailbox<(usize, bool)>> = Arc::new(Mailbox::new());

        let (done, thread) = (Arc::clone(&b_done), Arc::clone(&b_thread));
        pool.execute(move || {
            *sync::lock(&thread) = Some(sync::current_thread_id());
            let here = Handle::current().expect("a job runs on a worker");
            // Refused if the queue is already closed; then there is no join.
            if let Ok(child) = here.spawn(|| ()) {
                let _ = child.join();
            }
            done.fetch_add(1, Ordering::Relaxed);
        });
        let (done, thread, job_handover, job_report) = (
            Arc::clone(&b_done),
            Arc::clone(&b_thread),
            Arc::clone(&handover),
            Arc::clone(&report),
        );
        pool.execute(move || {
            drop(job_handover.take());
            let nested_in_b = *sync::lock(&thread) == Some(sync::current_thread_id());
            job_report.put((done.load(Ordering::Relaxed), nested_in_b));
        });
        handover.put(pool);

        let (b_done_at_return, nested_in_b) = report.take();
        if !nested_in_b {
            assert_eq!(
                b_done_at_return, 1,
                "ledger rule 3 broken: drop from inside a job returned while another worker's job, whose child had finished, was still running"
            );
        }
    });
}

/// Two workers. Job P spawns child C and joins it; C takes the last owner of
/// the pool and drops it. A handle submits job J meanwhile. When the other
/// worker steals C, P's worker parks in its join (C cannot finish before
/// the drop returns), and J's push may wake it without resolving anything:
/// it must then stop counting as parked, since it goes on to run J, and the
/// drop must wait for J. A joiner that stayed counted as parked would let
/// the drop settle with `SomeParkedInJoin` while J runs.
#[test]
fn drop_from_inside_waits_for_a_joiner_woken_by_a_push() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let j_runs = Arc::new(AtomicUsize::new(0));
        let handover: Arc<Mailbox<ThreadPool>> = Arc::new(Mailbox::new());
        let report: Arc<Mailbox<usize>> = Arc::new(Mailbox::new());

        let (runs, job_handover, job_report) = (
            Arc::clone(&j_runs),
            Arc::clone(&handover),
            Arc::clone(&report),
        );
        pool.execute(move || {
            let here = Handle::current().expect("a job runs on a worker");
            // The pool is open until C drops it, and C is this job's child.
            let child = here
                .spawn(move || {
                    drop(job_handover.take());
                    job_report.put(runs.load(Ordering::Relaxed));
                })
                .unwrap();
            let _ = child.join();
        });
        let handle = pool.handle();
        handover.put(pool);
        let runs = Arc::clone(&j_runs);
        let accepted = handle
            .execute(move || {
                runs.fetch_add(1, Ordering::Relaxed);
            })
            .is_ok();

        let j_runs_at_return = report.take();
        assert_eq!(
            j_runs_at_return,
            usize::from(accepted),
            "ledger rule 3 broken: drop from inside a job returned while an accepted job was still running"
        );
    });
}
