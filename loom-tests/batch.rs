//! Batch submission (`submit_batch` in `src/queue.rs`): several jobs pushed
//! under one lock. The races explored: the batch landing while workers go
//! to sleep (it must wake as many as it needs, not one), a batch larger than
//! the room in a bounded queue (it must wait for space and push the rest),
//! and a batch racing a shutdown (it must be accepted as a prefix, the rest
//! handed back unrun, nothing lost or run twice).

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, pool_pushing, Mailbox};
use crate::sync::Arc;
use crate::{Builder, SubmitErrorKind};

/// Two workers, asleep or on their way; the owner submits a batch of two
/// jobs, and job 0 holds its worker until job 1 has run, so the batch must
/// wake both sleepers.
#[test]
fn batch_wakes_every_worker_it_needs() {
    batch_wakes_the_workers_it_needs(3, false);
}

/// The scenario of [`batch_wakes_every_worker_it_needs`]; with `lock_free`,
/// the batch is pushed without the pool lock (`lock_free.rs`).
pub(super) fn batch_wakes_the_workers_it_needs(bound: usize, lock_free: bool) {
    model(bound, move || {
        let pool = pool_pushing(2, lock_free);
        let second_ran = Arc::new(Mailbox::new());
        let first_done = Arc::new(Mailbox::new());

        let (wait_for_second, done) = (Arc::clone(&second_ran), Arc::clone(&first_done));
        let second = Arc::clone(&second_ran);
        let jobs: [Box<dyn FnOnce() + Send>; 2] = [
            Box::new(move || {
                wait_for_second.take();
                done.put(());
            }),
            Box::new(move || second.put(())),
        ];
        pool.execute_batch(jobs);

        // Deadlocks if the batch woke one sleeper and left job 1 queued
        // beside the other.
        first_done.take();
        pool.shutdown();
    });
}

/// One worker, a queue of capacity one, a batch of two: the batch fills the
/// queue, waits for the worker to take a job, then pushes the second. Each
/// job runs exactly once.
#[test]
fn batch_larger_than_the_room_waits_and_runs_each_job_once() {
    model(4, || {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(1)
            .build()
            .unwrap();
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        pool.execute_batch((0..2).map(|job| {
            let runs = Arc::clone(&runs);
            move || {
                runs[job].fetch_add(1, Ordering::Relaxed);
            }
        }));
        pool.shutdown();
        for (job, count) in runs.iter().enumerate() {
            assert_eq!(
                count.load(Ordering::Relaxed),
                1,
                "ledger rule 1 broken: batched job {job} did not run exactly once"
            );
        }
    });
}

/// One worker; a caller thread submits a batch of two through a `Handle`
/// while the owner shuts down. The accepted jobs are a prefix of the batch
/// and each ran exactly once; the rest came back unrun, in order.
#[test]
fn batch_racing_shutdown_is_accepted_as_a_prefix_and_the_rest_handed_back() {
    batch_racing_shutdown(4, false);
}

/// The scenario of
/// [`batch_racing_shutdown_is_accepted_as_a_prefix_and_the_rest_handed_back`];
/// with `lock_free`, the batch is pushed without the pool lock
/// (`lock_free.rs`).
pub(super) fn batch_racing_shutdown(bound: usize, lock_free: bool) {
    model(bound, move || {
        let pool = pool_pushing(1, lock_free);
        let runs: Arc<[AtomicUsize; 2]> = Arc::new(Default::default());
        let handle = pool.handle();
        let caller_runs = Arc::clone(&runs);
        let caller = thread::spawn(move || {
            let jobs = (0..2).map(move |job| {
                let runs = Arc::clone(&caller_runs);
                move || {
                    runs[job].fetch_add(1, Ordering::Relaxed);
                }
            });
            match handle.execute_batch(jobs) {
                Ok(()) => 0,
                Err(refused) => {
                    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
                    refused.into_inner().len()
                }
            }
        });
        pool.shutdown();
        let returned = caller.join().unwrap();
        let accepted = 2 - returned;
        for (job, count) in runs.iter().enumerate() {
            let expected = usize::from(job < accepted);
            assert_eq!(
                count.load(Ordering::Relaxed),
                expected,
                "ledger rules 1-2 broken: batched job {job} ran {} times with {accepted} accepted",
                count.load(Ordering::Relaxed)
            );
        }
    });
}
