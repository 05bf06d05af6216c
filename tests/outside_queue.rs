//! The lock-free outside queue (`src/injector.rs`) with real threads, sized
//! so that jobs span several of its blocks (127 jobs each): blocks are
//! installed by racing submitters, freed by the workers behind them, and
//! handed back across block boundaries by `shutdown_now`. Small enough for
//! Miri, which `scripts/miri` runs it under.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use weft::{SubmitErrorKind, ThreadPool};

/// Jobs per submitter: a little over two blocks' worth between them.
const PER_SUBMITTER: usize = 150;

fn counters(n: usize) -> Arc<Vec<AtomicUsize>> {
    Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect())
}

fn assert_each_ran_once(runs: &[AtomicUsize]) {
    for (job, count) in runs.iter().enumerate() {
        assert_eq!(
            count.load(Ordering::Relaxed),
            1,
            "job {job} ran a wrong number of times"
        );
    }
}

#[test]
fn jobs_from_racing_submitters_across_blocks_each_run_once() {
    let pool = ThreadPool::new(2);
    let runs = counters(2 * PER_SUBMITTER);
    let submitters: Vec<_> = (0..2)
        .map(|submitter| {
            let handle = pool.handle();
            let runs = Arc::clone(&runs);
            thread::spawn(move || {
                for i in 0..PER_SUBMITTER {
                    let job = submitter * PER_SUBMITTER + i;
                    let runs = Arc::clone(&runs);
                    handle
                        .execute(move || {
                            runs[job].fetch_add(1, Ordering::Relaxed);
                        })
                        .expect("a live pool refused a job");
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    pool.wait_idle();
    assert_each_ran_once(&runs);
    assert_eq!(pool.completed_count(), 2 * PER_SUBMITTER);
    assert_eq!(pool.queued_count(), 0);
    pool.shutdown();
}

#[test]
fn shutdown_now_hands_back_every_queued_job_across_blocks() {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    // Holds the only worker, so every job below stays queued.
    pool.execute(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
    });
    started.recv().unwrap();
    let runs = counters(2 * PER_SUBMITTER);
    for job in 0..2 * PER_SUBMITTER {
        let runs = Arc::clone(&runs);
        pool.execute(move || {
            runs[job].fetch_add(1, Ordering::Relaxed);
        });
    }
    assert_eq!(pool.queued_count(), 2 * PER_SUBMITTER);

    let shutting_down = thread::spawn(move || pool.shutdown_now());
    // Once a submission is refused, the queue is closed and taken; only
    // then is the worker let go, so none of the queued jobs can start.
    loop {
        match handle.execute(|| {}) {
            Err(refused) if refused.kind() == SubmitErrorKind::ShutDown => break,
            Err(refused) => panic!("unexpected refusal: {refused}"),
            Ok(()) => thread::yield_now(),
        }
    }
    release.send(()).unwrap();
    let handed_back = shutting_down.join().unwrap();

    // The probes accepted before the close may be among them; they are
    // empty closures.
    assert!(handed_back.len() >= 2 * PER_SUBMITTER);
    for job in handed_back {
        job.run();
    }
    assert_each_ran_once(&runs);
}

/// A batch claims as many slots per compare-and-swap as fit in the current
/// block. Started part-way into a block (after one single job), a batch
/// longer than a block must stop each claim at the block's end and go on in
/// the next: every job runs once.
#[test]
fn a_batch_started_mid_block_is_split_at_block_ends() {
    let pool = ThreadPool::new(1);
    let (started_tx, started) = mpsc::channel();
    let (release, gate) = mpsc::channel::<()>();
    // Holds the only worker, so the batch is claimed into a queue that
    // nobody pops meanwhile, from the second slot of a block on.
    pool.execute(move || {
        started_tx.send(()).unwrap();
        gate.recv().unwrap();
    });
    started.recv().unwrap();
    let runs = counters(1 + PER_SUBMITTER + 1);
    let first = Arc::clone(&runs);
    pool.execute(move || {
        first[0].fetch_add(1, Ordering::Relaxed);
    });
    pool.execute_batch((1..runs.len()).map(|job| {
        let runs = Arc::clone(&runs);
        move || {
            runs[job].fetch_add(1, Ordering::Relaxed);
        }
    }));
    assert_eq!(pool.queued_count(), runs.len());
    release.send(()).unwrap();
    pool.wait_idle();
    assert_each_ran_once(&runs);
    pool.shutdown();
}
