//! `execute_batch` on the pool and on a `Handle`: every job of a batch is
//! accepted and runs exactly once, a bounded queue makes the batch wait (not
//! from inside the pool), a batch refused part-way by a shutdown hands back
//! exactly the jobs it did not accept, and a batch wakes enough workers.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;

use support::{counting_job, run_counters, snapshot, Gate, Rendezvous, HANG};
use weft::{Builder, Handle, SubmitErrorKind, ThreadPool};

#[test]
fn every_job_of_a_batch_runs_exactly_once() {
    let pool = ThreadPool::new(2);
    let runs = run_counters(1000);
    pool.execute_batch((0..1000).map(|id| counting_job(&runs, id)));
    pool.wait_idle();
    assert_eq!(snapshot(&runs), vec![1; 1000]);
    assert_eq!(pool.completed_count(), 1000);
}

#[test]
fn an_empty_batch_is_accepted() {
    let pool = ThreadPool::new(1);
    pool.execute_batch(Vec::<fn()>::new());
    pool.handle().execute_batch(Vec::<fn()>::new()).unwrap();
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 0);
}

#[test]
fn a_batch_waits_for_room_in_a_bounded_queue() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(2)
        .build()
        .unwrap();
    let gate = Gate::new();
    let blocker = Arc::clone(&gate);
    pool.execute(move || blocker.pass());
    let runs = run_counters(10);
    thread::scope(|s| {
        let submitter = s.spawn(|| pool.execute_batch((0..10).map(|id| counting_job(&runs, id))));
        // The worker is held and the queue holds 2: the batch cannot finish
        // until the gate opens.
        while pool.queued_count() < 2 {
            thread::yield_now();
        }
        assert!(
            !submitter.is_finished(),
            "a batch of 10 was accepted into a queue of 2 behind a held worker"
        );
        gate.open();
        submitter.join().unwrap();
    });
    pool.wait_idle();
    assert_eq!(snapshot(&runs), vec![1; 10]);
}

#[test]
fn a_batch_from_inside_the_pool_is_accepted_past_the_capacity() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let runs = run_counters(8);
    let inner = Arc::clone(&runs);
    let (tx, rx) = mpsc::channel();
    pool.execute(move || {
        let handle = Handle::current().expect("on a worker");
        // One worker, capacity one: waiting for room here would deadlock.
        let accepted = handle.execute_batch((0..8).map(|id| counting_job(&inner, id)));
        tx.send(accepted.is_ok()).unwrap();
    });
    assert!(rx.recv_timeout(HANG).unwrap());
    pool.wait_idle();
    assert_eq!(snapshot(&runs), vec![1; 8]);
}

#[test]
fn a_batch_after_shutdown_comes_back_whole_and_in_order() {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    pool.shutdown();
    let ids = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..5)
        .map(|id| {
            let ids = Arc::clone(&ids);
            move || {
                ids.fetch_add(id, SeqCst);
            }
        })
        .collect();
    let refused = handle.execute_batch(jobs).unwrap_err();
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    let jobs = refused.into_inner();
    assert_eq!(jobs.len(), 5);
    for (id, job) in jobs.into_iter().enumerate() {
        let before = ids.load(SeqCst);
        job();
        assert_eq!(
            ids.load(SeqCst) - before,
            id,
            "the jobs came back out of order"
        );
    }
}

#[test]
fn a_batch_racing_shutdown_accepts_a_prefix_and_returns_the_rest() {
    for _ in 0..50 {
        let pool = Builder::new()
            .num_threads(1)
            .queue_capacity(4)
            .build()
            .unwrap();
        let handle = pool.handle();
        let runs = run_counters(64);
        let submitter = {
            let runs = Arc::clone(&runs);
            thread::spawn(move || handle.execute_batch((0..64).map(|id| counting_job(&runs, id))))
        };
        pool.shutdown();
        let returned = match submitter.join().unwrap() {
            Ok(()) => Vec::new(),
            Err(refused) => {
                assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
                refused.into_inner()
            }
        };
        // Accepted jobs ran in the pool; the refused ones are exactly the
        // rest, in order, unrun.
        let ran = snapshot(&runs);
        let accepted = 64 - returned.len();
        assert_eq!(ran[..accepted], vec![1; accepted][..]);
        assert_eq!(ran[accepted..], vec![0; returned.len()][..]);
        for job in returned {
            job();
        }
        assert_eq!(snapshot(&runs), vec![1; 64]);
    }
}

#[test]
fn a_batch_wakes_as_many_workers_as_it_needs() {
    // Job 0 holds its worker until job 1 has run beside it: the batch must
    // reach the second worker.
    let pool = ThreadPool::new(2);
    let meet = Rendezvous::new(2);
    let (tx, rx) = mpsc::channel();
    pool.execute_batch((0..2).map(|_| {
        let meet = Arc::clone(&meet);
        let tx = tx.clone();
        move || tx.send(meet.meet()).unwrap()
    }));
    assert!(
        rx.recv_timeout(HANG).unwrap(),
        "the two jobs never ran at once"
    );
    assert!(rx.recv_timeout(HANG).unwrap());
}

#[test]
fn a_panicking_job_in_a_batch_loses_no_other() {
    support::quiet_deliberate_panics();
    let pool = ThreadPool::new(2);
    let runs = run_counters(10);
    let jobs: Vec<Box<dyn FnOnce() + Send>> = (0..10)
        .map(|id| -> Box<dyn FnOnce() + Send> {
            if id == 3 {
                Box::new(|| panic!("{}", support::DELIBERATE))
            } else {
                Box::new(counting_job(&runs, id))
            }
        })
        .collect();
    pool.execute_batch(jobs);
    pool.wait_idle();
    let mut expected = vec![1; 10];
    expected[3] = 0;
    assert_eq!(snapshot(&runs), expected);
    assert_eq!(pool.panic_count(), 1);
    assert_eq!(pool.completed_count(), 9);
}
