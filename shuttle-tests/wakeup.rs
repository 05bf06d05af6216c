//! No lost wake-up, over many rounds: a submitter that waits for each job
//! before sending the next keeps catching the worker on its way to sleep,
//! so every round races a submission against the worker's last check
//! before `wait` (ledger rule 5). The waits go through shuttle channels, independent of
//! every notification inside the pool: a wake-up the pool loses is not
//! rescued by a later submission or by shutdown, it is a deadlock that
//! shuttle reports.

use shuttle::sync::mpsc;
use shuttle::thread;

use super::{check, Ledger, Scheduler};
use crate::sync::Arc;
use crate::ThreadPool;

/// Rounds: submit one job, wait for it.
const ROUNDS: usize = 32;

/// `thread::yield_now` calls the submitter makes before round `round`'s
/// submission. A worker that finds the queue empty spins for about 130
/// scheduling steps (`sleep.rs`) and sees any push made meanwhile; only
/// then does it register as a sleeper and wait. Delays spread over 120–280
/// steps land the push before, inside and after that last check, where a
/// lost wake-up would happen.
fn delay(round: usize) -> usize {
    120 + (round * 29) % 160
}

/// One worker, so no other sleeper can be woken instead; the owner runs 32
/// rounds of "wait a while, submit a job through a `Handle` (the lock-free
/// path of an outside submitter), then block on a channel until that job
/// has sent on it". The worker goes to sleep between rounds, racing the
/// next submission. Then every job ran exactly once.
fn every_submission_wakes_the_sleeping_worker() {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    let ledger = Arc::new(Ledger::new(ROUNDS));
    let (done, finished) = mpsc::channel();
    for id in 0..ROUNDS {
        for _ in 0..delay(id) {
            thread::yield_now();
        }
        let job_ledger = Arc::clone(&ledger);
        let done = done.clone();
        handle
            .execute(move || {
                job_ledger.record_run(id);
                done.send(id).unwrap();
            })
            .unwrap_or_else(|_| panic!("a live pool refused job {id}"));
        ledger.accept(id);
        // Deadlocks if the worker slept through the submission.
        assert_eq!(finished.recv().unwrap(), id);
    }
    ledger.assert_all_ran_once_in_pool();
    pool.shutdown();
}

#[test]
fn every_submission_wakes_the_sleeping_worker_random() {
    check(
        "every_submission_wakes_the_sleeping_worker",
        Scheduler::Random,
        9_000,
        every_submission_wakes_the_sleeping_worker,
    );
}

#[test]
fn every_submission_wakes_the_sleeping_worker_pct() {
    check(
        "every_submission_wakes_the_sleeping_worker",
        Scheduler::Pct { depth: 3 },
        3_000,
        every_submission_wakes_the_sleeping_worker,
    );
}
