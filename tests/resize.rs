//! `set_num_threads`: growing starts workers at once; shrinking lets surplus
//! workers retire only when idle or between jobs, never mid-job; retired
//! workers run `on_thread_stop`; indices are never reused; resizes racing
//! submissions and `wait_idle` lose nothing.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, ThreadId};

use support::*;
use weft::{BuildError, Builder, Handle, ThreadPool};

/// The index `i` of the default worker name `weft-{i}` of this thread.
fn worker_index() -> usize {
    thread_name()
        .and_then(|name| name.strip_prefix("weft-")?.parse().ok())
        .expect("runs on a weft worker with its default name")
}

/// Runs `n` jobs that must all be running at once, and returns the name and
/// id of the thread each ran on: proof that at least `n` workers serve.
fn meet_on_workers(pool: &ThreadPool, n: usize) -> Vec<(String, ThreadId)> {
    let meet = Rendezvous::new(n);
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let meet = Arc::clone(&meet);
            pool.spawn(move || {
                assert!(meet.meet(), "{n} jobs never ran at once");
                (thread_name().unwrap(), thread::current().id())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// The distinct threads that ran `jobs` jobs one after another.
fn threads_serving(pool: &ThreadPool, jobs: usize) -> HashSet<ThreadId> {
    (0..jobs)
        .map(|_| pool.spawn(|| thread::current().id()))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect()
}

#[test]
fn zero_threads_is_an_error_and_keeps_the_size() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let err = pool.set_num_threads(0).expect_err("a pool needs a worker");
    assert!(matches!(err, BuildError::ZeroThreads), "got {err:?}");
    assert_eq!(pool.num_threads(), 2);
    assert_eq!(meet_on_workers(&pool, 2).len(), 2, "both still serve");
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (2, 2));
}

#[test]
fn setting_the_same_size_changes_nothing() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(3))
        .build()
        .unwrap();
    pool.set_num_threads(3).unwrap();
    assert_eq!(pool.num_threads(), 3);
    assert_eq!(meet_on_workers(&pool, 3).len(), 3);
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (3, 3));
}

#[test]
fn growing_starts_new_workers_at_once() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    assert_eq!(lifecycle.next_start(), 0);
    pool.set_num_threads(4).unwrap();
    assert_eq!(pool.num_threads(), 4, "reported at once");
    let started: BTreeSet<usize> = (0..3).map(|_| lifecycle.next_start()).collect();
    assert_eq!(started, BTreeSet::from([1, 2, 3]));

    let met = meet_on_workers(&pool, 4);
    let names: BTreeSet<&str> = met.iter().map(|(name, _)| name.as_str()).collect();
    let ids: HashSet<ThreadId> = met.iter().map(|&(_, id)| id).collect();
    assert_eq!(
        names,
        BTreeSet::from(["weft-0", "weft-1", "weft-2", "weft-3"])
    );
    assert_eq!(ids.len(), 4, "four distinct threads");
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (4, 4));
}

#[test]
fn shrinking_retires_idle_workers_on_their_own_thread() {
    let (stop_tx, stop_rx) = mpsc::channel();
    let stop_tx = Mutex::new(stop_tx);
    let pool = Builder::new()
        .num_threads(4)
        .on_thread_stop(move |index| {
            let on_own_thread = thread_name() == Some(format!("weft-{index}"));
            stop_tx
                .lock()
                .unwrap()
                .send((index, on_own_thread))
                .unwrap();
        })
        .build()
        .unwrap();
    assert_eq!(meet_on_workers(&pool, 4).len(), 4);
    pool.set_num_threads(2).unwrap();
    assert_eq!(pool.num_threads(), 2);
    let retired: Vec<(usize, bool)> = (0..2)
        .map(|_| {
            stop_rx
                .recv_timeout(HANG)
                .expect("idle surplus workers retire")
        })
        .collect();
    assert!(retired.iter().all(|&(_, own)| own), "{retired:?}");
    let retired: BTreeSet<usize> = retired.iter().map(|&(index, _)| index).collect();
    assert_eq!(retired.len(), 2);

    // Exactly the two others still serve.
    let met = meet_on_workers(&pool, 2);
    for (name, _) in &met {
        let index: usize = name.strip_prefix("weft-").unwrap().parse().unwrap();
        assert!(
            !retired.contains(&index),
            "retired worker {index} ran a job"
        );
    }
    let survivors = threads_serving(&pool, 50);
    assert!(survivors.len() <= 2, "{} threads served", survivors.len());
    assert!(stop_rx.try_recv().is_err(), "no third worker retired");
    pool.shutdown();
    assert_eq!(
        stop_rx.try_iter().count(),
        2,
        "the survivors stop at shutdown"
    );
}

/// Four workers are held mid-job when the pool shrinks to one. Nobody is
/// interrupted: every held job finishes, then three workers retire (each
/// only after its job finished), and the queue behind them is still served.
#[test]
fn shrinking_never_interrupts_a_running_job() {
    const WORKERS: usize = 4;
    let finished: Arc<Vec<AtomicBool>> =
        Arc::new((0..WORKERS).map(|_| AtomicBool::new(false)).collect());
    let (stop_tx, stop_rx) = mpsc::channel();
    let stop_tx = Mutex::new(stop_tx);
    let seen = Arc::clone(&finished);
    let pool = Builder::new()
        .num_threads(WORKERS)
        .on_thread_stop(move |index| {
            let job_done = seen[index].load(Ordering::SeqCst);
            stop_tx.lock().unwrap().send((index, job_done)).unwrap();
        })
        .build()
        .unwrap();
    let gate = Gate::new();
    let meet = Rendezvous::new(WORKERS + 1);
    for _ in 0..WORKERS {
        let (gate, meet, finished) = (Arc::clone(&gate), Arc::clone(&meet), Arc::clone(&finished));
        pool.execute(move || {
            assert!(meet.meet());
            gate.pass();
            finished[worker_index()].store(true, Ordering::SeqCst);
        });
    }
    assert!(meet.meet(), "every worker holds a job");
    let runs = run_counters(20);
    for id in 0..20 {
        pool.execute(counting_job(&runs, id));
    }

    pool.set_num_threads(1).unwrap();
    assert_eq!(pool.num_threads(), 1, "reported at once");
    assert_eq!(pool.active_count(), WORKERS, "no job was interrupted");
    assert!(stop_rx.try_recv().is_err(), "no worker retires mid-job");

    gate.open();
    let retired: Vec<(usize, bool)> = (0..WORKERS - 1)
        .map(|_| stop_rx.recv_timeout(HANG).expect("surplus workers retire"))
        .collect();
    for &(index, job_done) in &retired {
        assert!(job_done, "worker {index} retired before its job finished");
    }
    pool.wait_idle();
    assert!(finished.iter().all(|f| f.load(Ordering::SeqCst)));
    assert_eq!(snapshot(&runs), [1; 20], "the queue was still served");
    assert_eq!(pool.completed_count(), WORKERS + 20);
    assert_eq!(threads_serving(&pool, 20).len(), 1, "one worker left");
    pool.shutdown();
    assert_eq!(stop_rx.try_iter().count(), 1);
}

/// Children a held job queued on its own worker are not stranded when that
/// worker retires.
#[test]
fn a_retiring_workers_queued_children_still_run() {
    const CHILDREN: usize = 5;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let gate = Gate::new();
    let both_running = Rendezvous::new(2);
    let meet = Rendezvous::new(3);
    let runs = run_counters(2 * CHILDREN);
    for parent in 0..2 {
        let (gate, both_running, meet, runs) = (
            Arc::clone(&gate),
            Arc::clone(&both_running),
            Arc::clone(&meet),
            Arc::clone(&runs),
        );
        pool.execute(move || {
            // Both workers are busy before either queues children, so no
            // idle worker can steal them: they stay in their own deques.
            assert!(both_running.meet());
            let handle = Handle::current().unwrap();
            for child in 0..CHILDREN {
                handle
                    .execute(counting_job(&runs, parent * CHILDREN + child))
                    .unwrap();
            }
            assert!(meet.meet());
            gate.pass();
        });
    }
    assert!(
        meet.meet(),
        "both parents queued their children and are held"
    );
    assert_eq!(pool.queued_count(), 2 * CHILDREN);
    pool.set_num_threads(1).unwrap();
    gate.open();
    assert_eq!(lifecycle.next_stops(1).len(), 1);
    pool.wait_idle();
    assert_eq!(snapshot(&runs), [1; 2 * CHILDREN]);
    assert_eq!(pool.completed_count(), 2 + 2 * CHILDREN);
}

#[test]
fn regrowing_after_a_shrink_continues_the_numbering() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(3))
        .build()
        .unwrap();
    pool.set_num_threads(1).unwrap();
    let retired = lifecycle.next_stops(2);
    let survivor = (0..3).find(|i| !retired.contains(i)).unwrap();

    pool.set_num_threads(3).unwrap();
    assert_eq!(pool.num_threads(), 3);
    let names: BTreeSet<String> = meet_on_workers(&pool, 3)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let expected: BTreeSet<String> = [survivor, 3, 4]
        .iter()
        .map(|i| format!("weft-{i}"))
        .collect();
    assert_eq!(names, expected, "new workers get new indices");
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (5, 5));
}

/// Shrinking while every worker is busy, then growing back before any has
/// retired: no thread is started (the busy ones are enough), and only the
/// surplus over the final size retires.
#[test]
fn growing_back_before_the_surplus_retired_starts_nothing() {
    const WORKERS: usize = 4;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(WORKERS))
        .build()
        .unwrap();
    let gate = Gate::new();
    let meet = Rendezvous::new(WORKERS + 1);
    for _ in 0..WORKERS {
        let (gate, meet) = (Arc::clone(&gate), Arc::clone(&meet));
        pool.execute(move || {
            assert!(meet.meet());
            gate.pass();
        });
    }
    assert!(meet.meet());
    pool.set_num_threads(1).unwrap();
    pool.set_num_threads(2).unwrap();
    assert_eq!(pool.num_threads(), 2);
    assert_eq!(lifecycle.starts(), WORKERS, "no new thread was needed");
    gate.open();
    assert_eq!(lifecycle.next_stops(2).len(), 2);
    assert_eq!(meet_on_workers(&pool, 2).len(), 2, "two still serve");
    assert_eq!(lifecycle.stops(), 2, "only the surplus retired");
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (WORKERS, WORKERS));
}

/// A job resizes its own pool: growing and shrinking from inside neither
/// deadlocks nor loses the job or those after it.
#[test]
fn resizing_from_inside_a_job() {
    let lifecycle = Lifecycle::new();
    let pool = Arc::new(
        lifecycle
            .install(Builder::new().num_threads(2))
            .build()
            .unwrap(),
    );
    let inner = Arc::clone(&pool);
    let sizes = pool
        .spawn(move || {
            inner.set_num_threads(4).unwrap();
            let grown = inner.num_threads();
            inner.set_num_threads(1).unwrap();
            (grown, inner.num_threads())
        })
        .join()
        .unwrap();
    assert_eq!(sizes, (4, 1));
    assert_eq!(lifecycle.next_stops(3).len(), 3);
    let runs = run_counters(30);
    for id in 0..30 {
        pool.execute(counting_job(&runs, id));
    }
    pool.wait_idle();
    assert_eq!(snapshot(&runs), [1; 30]);
    let pool = Arc::into_inner(pool).expect("the job dropped its reference");
    pool.shutdown();
    assert_eq!((lifecycle.starts(), lifecycle.stops()), (4, 4));
}

/// One thread resizes up and down while two submit (`execute` and `spawn`)
/// and the owner waits for idleness in between: every job runs exactly once,
/// `wait_idle` returns with exact counters, and every worker ever started is
/// stopped by shutdown.
#[test]
fn resizes_racing_submissions_and_wait_idle_lose_nothing() {
    const PER_SUBMITTER: usize = 400;
    const RESIZES: usize = 200;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let runs = run_counters(2 * PER_SUBMITTER);
    let spawned_sum = AtomicUsize::new(0);
    thread::scope(|scope| {
        let pool = &pool;
        scope.spawn(move || {
            for i in 0..RESIZES {
                pool.set_num_threads(1 + i % 4).unwrap();
                thread::yield_now();
            }
            pool.set_num_threads(3).unwrap();
        });
        let handle = pool.handle();
        let runs_ref = &runs;
        scope.spawn(move || {
            for id in 0..PER_SUBMITTER {
                handle.execute(counting_job(runs_ref, id)).unwrap();
            }
        });
        let spawned_sum = &spawned_sum;
        scope.spawn(move || {
            let handles: Vec<_> = (PER_SUBMITTER..2 * PER_SUBMITTER)
                .map(|id| {
                    let job = counting_job(runs_ref, id);
                    pool.spawn(move || {
                        job();
                        id
                    })
                })
                .collect();
            let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
            spawned_sum.store(sum, Ordering::SeqCst);
        });
        for _ in 0..5 {
            // Submissions go on, so the counters are bracketed: every job
            // that had run before the call has completed when it returns,
            // and no job completes without having run.
            let ran_before: usize = snapshot(&runs).iter().sum();
            pool.wait_idle();
            let completed = pool.completed_count();
            let ran_after = snapshot(&runs);
            assert!(ran_after.iter().all(|&n| n <= 1), "a job ran twice");
            let ran_after: usize = ran_after.iter().sum();
            assert!(
                ran_before <= completed && completed <= ran_after,
                "ran {ran_before} before wait_idle, {completed} completed, {ran_after} ran after"
            );
        }
    });
    pool.wait_idle();
    assert_eq!(snapshot(&runs), vec![1; 2 * PER_SUBMITTER]);
    assert_eq!(pool.completed_count(), 2 * PER_SUBMITTER);
    assert_eq!(
        spawned_sum.load(Ordering::SeqCst),
        (PER_SUBMITTER..2 * PER_SUBMITTER).sum::<usize>()
    );
    assert_eq!(pool.num_threads(), 3);
    assert_eq!(meet_on_workers(&pool, 3).len(), 3);
    pool.shutdown();
    assert_eq!(
        lifecycle.starts(),
        lifecycle.stops(),
        "every worker stopped"
    );
}
