//! A bounded queue (`Builder::queue_capacity`): `execute`/`spawn` wait while
//! it is full, `try_execute` refuses with `Full` and `execute_timeout` with
//! `TimedOut`, each handing the job back unrun; a worker of the same pool is
//! never made to wait; blocked submitters get `ShutDown` and their job back
//! when the pool shuts down.
//!
//! A full queue is made with real threads: one worker held at a [`Gate`]
//! while the queue is filled, so it cannot drain until the test opens it. The
//! only timing assertion is that a call *returned* `TimedOut`.

mod support;

use std::error::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use support::*;
use weft::{BuildError, Builder, Handle, SubmitError, SubmitErrorKind, ThreadPool};

/// A pool of `workers` threads, each held at `gate`, with `capacity` jobs
/// queued behind them: the queue is full until the gate opens. The queued
/// jobs count their runs in `queued_runs`.
struct FullPool {
    pool: ThreadPool,
    gate: Arc<Gate>,
    queued_runs: Arc<Vec<AtomicUsize>>,
}

impl FullPool {
    fn new(workers: usize, capacity: usize) -> FullPool {
        let pool = Builder::new()
            .num_threads(workers)
            .queue_capacity(capacity)
            .build()
            .unwrap();
        let gate = Gate::new();
        let (started_tx, started_rx) = mpsc::channel();
        for _ in 0..workers {
            let (gate, started) = (Arc::clone(&gate), started_tx.clone());
            pool.execute(move || {
                started.send(()).unwrap();
                gate.pass();
            });
            // Wait for each to start, so the queue is empty again before
            // the next one (the queue may hold only `capacity`).
            started_rx.recv_timeout(HANG).unwrap();
        }
        let queued_runs = run_counters(capacity);
        for id in 0..capacity {
            pool.try_execute(counting_job(&queued_runs, id))
                .expect("room for `capacity` jobs");
        }
        assert_eq!(pool.queued_count(), capacity);
        assert_eq!(pool.active_count(), workers);
        FullPool {
            pool,
            gate,
            queued_runs,
        }
    }

    /// Opens the gate and waits until everything ran; returns the pool.
    fn drain(self) -> ThreadPool {
        self.gate.open();
        self.pool.wait_idle();
        assert!(snapshot(&self.queued_runs).iter().all(|&n| n == 1));
        self.pool
    }
}

/// A job whose runs are counted and which owns the only other reference to
/// the returned witness, so a test can tell it is the very closure handed
/// back.
fn witnessed_job() -> (impl FnOnce() + Send + 'static, Arc<()>, Arc<AtomicUsize>) {
    let witness = Arc::new(());
    let runs = Arc::new(AtomicUsize::new(0));
    let (keep, job_runs) = (Arc::clone(&witness), Arc::clone(&runs));
    let job = move || {
        let _keep = &keep;
        job_runs.fetch_add(1, Ordering::SeqCst);
    };
    (job, witness, runs)
}

/// The job inside `err` is the witnessed one, unrun; running it here works.
fn assert_handed_back<F: FnOnce()>(
    err: SubmitError<F>,
    kind: SubmitErrorKind,
    witness: &Arc<()>,
    runs: &AtomicUsize,
) {
    assert_eq!(err.kind(), kind);
    assert_eq!(Arc::strong_count(witness), 2, "the closure is in the error");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "it never ran");
    err.into_inner()();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(Arc::strong_count(witness), 1);
}

// ---------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------

#[test]
fn zero_capacity_is_a_build_error() {
    let lifecycle = Lifecycle::new();
    let err = lifecycle
        .install(Builder::new().num_threads(2).queue_capacity(0))
        .build()
        .expect_err("a queue of capacity zero must not build");
    assert!(matches!(err, BuildError::ZeroCapacity), "got {err:?}");
    assert!(err.source().is_none());
    assert!(err.to_string().contains("capacity"), "{err}");
    assert!(format!("{err:?}").contains("ZeroCapacity"));
    assert_eq!(lifecycle.starts(), 0, "no worker was started");

    let builder = Builder::new().queue_capacity(5);
    assert!(format!("{builder:?}").contains("queue_capacity: Some(5)"));
}

// ---------------------------------------------------------------------------
// try_execute
// ---------------------------------------------------------------------------

#[test]
fn try_execute_on_a_full_queue_is_full_with_the_job_back() {
    let full = FullPool::new(1, 2);
    let (job, witness, runs) = witnessed_job();
    let err = full.pool.try_execute(job).expect_err("the queue is full");
    assert!(err.to_string().contains("full"), "{err}");
    assert!(format!("{err:?}").contains("Full"), "{err:?}");
    assert_handed_back(err, SubmitErrorKind::Full, &witness, &runs);

    // The same through a Handle, from another thread.
    let handle = full.pool.handle();
    let (job, witness, runs) = witnessed_job();
    let err = thread::spawn(move || handle.try_execute(job).unwrap_err())
        .join()
        .unwrap();
    assert_handed_back(err, SubmitErrorKind::Full, &witness, &runs);

    assert_eq!(full.pool.queued_count(), 2, "nothing was added");
    let pool = full.drain();
    assert_eq!(pool.completed_count(), 3);

    // Room again: accepted.
    let (job, _witness, runs) = witnessed_job();
    pool.try_execute(job).expect("room after draining");
    pool.wait_idle();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The capacity bounds jobs *waiting*: running jobs do not take a place.
#[test]
fn capacity_counts_waiting_jobs_not_running_ones() {
    let full = FullPool::new(3, 2);
    assert_eq!(full.pool.active_count(), 3);
    assert_eq!(full.pool.queued_count(), 2);
    let err = full.pool.try_execute(|| ()).unwrap_err();
    assert_eq!(err.kind(), SubmitErrorKind::Full);
    let pool = full.drain();
    assert_eq!(pool.completed_count(), 5);
}

#[test]
fn an_unbounded_queue_is_never_full() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    pool.execute(move || {
        started_tx.send(()).unwrap();
        blocked.pass();
    });
    started_rx.recv_timeout(HANG).unwrap();
    let runs = run_counters(1000);
    let handle = pool.handle();
    for id in 0..1000 {
        if id % 2 == 0 {
            pool.try_execute(counting_job(&runs, id)).unwrap();
        } else {
            handle
                .execute_timeout(counting_job(&runs, id), Duration::ZERO)
                .unwrap();
        }
    }
    assert_eq!(pool.queued_count(), 1000);
    gate.open();
    pool.wait_idle();
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
}

// ---------------------------------------------------------------------------
// execute_timeout
// ---------------------------------------------------------------------------

#[test]
fn execute_timeout_on_a_full_queue_times_out_with_the_job_back() {
    let full = FullPool::new(1, 1);
    for timeout in [Duration::ZERO, Duration::from_millis(20)] {
        let (job, witness, runs) = witnessed_job();
        let err = full
            .pool
            .execute_timeout(job, timeout)
            .expect_err("the queue stays full while the worker is held");
        assert!(err.to_string().contains("timeout"), "{err}");
        assert!(format!("{err:?}").contains("TimedOut"), "{err:?}");
        assert_handed_back(err, SubmitErrorKind::TimedOut, &witness, &runs);

        let handle = full.pool.handle();
        let (job, witness, runs) = witnessed_job();
        let err = thread::spawn(move || handle.execute_timeout(job, timeout).unwrap_err())
            .join()
            .unwrap();
        assert_handed_back(err, SubmitErrorKind::TimedOut, &witness, &runs);
    }
    assert_eq!(full.pool.queued_count(), 1);
    let pool = full.drain();
    assert_eq!(pool.completed_count(), 2);
}

#[test]
fn execute_timeout_with_room_is_accepted_even_with_a_zero_timeout() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let runs = run_counters(20);
    for id in 0..20 {
        // One at a time, so there is always room.
        pool.execute_timeout(counting_job(&runs, id), Duration::ZERO)
            .expect("room in the queue");
        pool.wait_idle();
    }
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
}

/// A timeout longer than the wait is not hit: the call returns `Ok` once a
/// place frees up. `Duration::MAX` (too long to add to `Instant::now()`)
/// waits like `execute`.
#[test]
fn execute_timeout_waits_for_room_within_its_timeout() {
    for timeout in [HANG, Duration::MAX] {
        let full = FullPool::new(1, 1);
        let pool = &full.pool;
        let (job, _witness, runs) = witnessed_job();
        thread::scope(|scope| {
            let gate = &full.gate;
            let submitter = scope.spawn(move || {
                let result = pool.execute_timeout(job, timeout).map_err(|e| e.kind());
                (result, gate.is_open())
            });
            full.gate.open();
            let (result, gate_was_open) = submitter.join().unwrap();
            assert_eq!(result, Ok(()), "{timeout:?}");
            assert!(gate_was_open, "accepted only once the worker could drain");
        });
        let pool = full.drain();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(pool.completed_count(), 3);
    }
}

// ---------------------------------------------------------------------------
// execute and spawn wait while full
// ---------------------------------------------------------------------------

/// `execute`, `spawn`, `Handle::execute` and `Handle::spawn` on a full queue
/// return only after a place freed up (so after the gate opened), and their
/// jobs then run once.
#[test]
fn execute_and_spawn_wait_while_the_queue_is_full() {
    let full = FullPool::new(1, 1);
    let handle = full.pool.handle();
    let runs = run_counters(4);
    thread::scope(|scope| {
        let (pool, gate) = (&full.pool, &full.gate);
        let job = counting_job(&runs, 0);
        let by_execute = scope.spawn(move || {
            pool.execute(job);
            gate.is_open()
        });
        let job = counting_job(&runs, 1);
        let by_spawn = scope.spawn(move || {
            let joined = pool.spawn(move || {
                job();
                "spawned"
            });
            (gate.is_open(), joined.join().unwrap())
        });
        let (h, job) = (handle.clone(), counting_job(&runs, 2));
        let by_handle = scope.spawn(move || {
            h.execute(job).unwrap();
            gate.is_open()
        });
        let (h, job) = (handle.clone(), counting_job(&runs, 3));
        let by_handle_spawn = scope.spawn(move || {
            let joined = h.spawn(job).unwrap();
            (gate.is_open(), joined.join().unwrap())
        });

        full.gate.open();
        assert!(by_execute.join().unwrap(), "execute returned while full");
        assert_eq!(by_spawn.join().unwrap(), (true, "spawned"));
        assert!(
            by_handle.join().unwrap(),
            "Handle::execute returned while full"
        );
        assert_eq!(by_handle_spawn.join().unwrap(), (true, ()));
    });
    let pool = full.drain();
    assert_eq!(snapshot(&runs), [1; 4]);
    assert_eq!(pool.completed_count(), 6);
    assert!(pool.queued_count() == 0 && pool.active_count() == 0);
}

// ---------------------------------------------------------------------------
// Submissions from inside the pool
// ---------------------------------------------------------------------------

/// A job on a worker submits many children into a queue that is already
/// full: every kind of submission is accepted past the capacity at once.
#[test]
fn submissions_from_a_worker_are_accepted_past_capacity() {
    const CHILDREN: usize = 5;
    // Worker 0 will run the submitting job; worker 1 is held at the gate.
    let pool = Arc::new(
        Builder::new()
            .num_threads(2)
            .queue_capacity(1)
            .build()
            .unwrap(),
    );
    let gate = Gate::new();
    let go = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (report_tx, report_rx) = mpsc::channel();
    let runs = run_counters(5 * CHILDREN);

    let (blocked, started) = (Arc::clone(&gate), started_tx.clone());
    pool.execute(move || {
        started.send(()).unwrap();
        blocked.pass();
    });
    started_rx.recv_timeout(HANG).unwrap();
    let (own_pool, children, go_in) = (Arc::clone(&pool), Arc::clone(&runs), Arc::clone(&go));
    pool.execute(move || {
        started_tx.send(()).unwrap();
        go_in.pass();
        let handle = Handle::current().unwrap();
        let mut refused = Vec::new();
        let mut joins = Vec::new();
        for i in 0..CHILDREN {
            let job = |k: usize| counting_job(&children, k * CHILDREN + i);
            if let Err(e) = handle.try_execute(job(0)) {
                refused.push(e.kind());
            }
            if let Err(e) = handle.execute_timeout(job(1), Duration::ZERO) {
                refused.push(e.kind());
            }
            if let Err(e) = own_pool.try_execute(job(2)) {
                refused.push(e.kind());
            }
            own_pool.execute(job(3));
            // Spawned children stay queued (the worker does not join them
            // here), so they occupy the queue too.
            joins.push(handle.spawn(job(4)).expect("accepted"));
        }
        let queued = own_pool.queued_count();
        report_tx.send((refused, queued)).unwrap();
        drop(joins); // detached: they still run
    });
    started_rx.recv_timeout(HANG).unwrap();
    // Both workers are busy; fill the queue from outside.
    pool.try_execute(|| ()).expect("one place");
    assert_eq!(
        pool.try_execute(|| ()).unwrap_err().kind(),
        SubmitErrorKind::Full,
        "the queue is full before the job submits"
    );
    go.open();
    let (refused, queued) = report_rx
        .recv_timeout(HANG)
        .expect("a worker's submissions never wait");
    assert_eq!(refused, [], "a worker's submission was refused");
    assert_eq!(queued, 1 + 5 * CHILDREN, "accepted past the capacity");
    assert!(!gate.is_open());
    gate.open();
    pool.wait_idle();
    assert!(snapshot(&runs).iter().all(|&n| n == 1));
    assert_eq!(pool.completed_count(), 3 + 5 * CHILDREN);
}

/// On a 1-thread pool with a 1-place queue, a job spawns more children than
/// fit and joins them all: the spawns never wait and the join runs them.
#[test]
fn single_worker_spawns_and_joins_past_capacity() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let sum = pool
        .spawn(|| {
            let handle = Handle::current().unwrap();
            let children: Vec<_> = (1..=20u32)
                .map(|i| handle.spawn(move || i).unwrap())
                .collect();
            children.into_iter().map(|c| c.join().unwrap()).sum::<u32>()
        })
        .join()
        .unwrap();
    assert_eq!(sum, 210);
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 21);
}

// ---------------------------------------------------------------------------
// Shutdown while submitters wait
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Ending {
    Shutdown,
    Drop,
    ShutdownNow,
    ShutdownTimeout,
}

/// What a blocked submitter got back.
#[derive(Debug, PartialEq)]
struct Refusal {
    kind: SubmitErrorKind,
    /// Runs of its job before it came back (in the pool, or anywhere).
    runs_before: usize,
    /// Runs of its job after the submitter ran what came back.
    runs_after: usize,
}

/// Submitters block on a full queue through every waiting call of a
/// `Handle` (`execute`, `execute_timeout` with a long timeout, `spawn`); the
/// owner ends the pool; each gets `ShutDown` with its own job back, unrun.
/// The gate holding the worker opens only after every submitter has its
/// answer, so none can have been let in by a freed place.
fn blocked_submitters_get_their_job_back(ending: Ending) {
    const CALLS: usize = 3;
    let FullPool {
        pool,
        gate,
        queued_runs,
    } = FullPool::new(1, 1);
    let handle = pool.handle();
    let runs = run_counters(CALLS);

    thread::scope(|scope| {
        let submitters: Vec<_> = (0..CALLS)
            .map(|call| {
                let (handle, runs) = (handle.clone(), &runs);
                scope.spawn(move || {
                    let job = counting_job(runs, call);
                    let (kind, job): (_, Box<dyn FnOnce()>) = match call {
                        0 => match handle.execute(job) {
                            Ok(()) => panic!("execute accepted while full"),
                            Err(e) => (e.kind(), Box::new(e.into_inner())),
                        },
                        1 => match handle.execute_timeout(job, HANG) {
                            Ok(()) => panic!("execute_timeout accepted while full"),
                            Err(e) => (e.kind(), Box::new(e.into_inner())),
                        },
                        _ => match handle.spawn(job) {
                            Ok(_) => panic!("spawn accepted while full"),
                            Err(e) => (e.kind(), Box::new(e.into_inner())),
                        },
                    };
                    let runs_before = runs[call].load(Ordering::SeqCst);
                    job();
                    Refusal {
                        kind,
                        runs_before,
                        runs_after: runs[call].load(Ordering::SeqCst),
                    }
                })
            })
            .collect();

        let ending_thread = scope.spawn(move || match ending {
            Ending::Shutdown => pool.shutdown(),
            Ending::Drop => drop(pool),
            Ending::ShutdownNow => {
                let unstarted = pool.shutdown_now();
                assert_eq!(unstarted.len(), 1, "the queued job is handed back");
                unstarted.into_iter().for_each(weft::Job::run);
            }
            Ending::ShutdownTimeout => {
                pool.shutdown_timeout(HANG)
                    .expect("drains once the gate opens");
            }
        });

        let refusals: Vec<Refusal> = submitters
            .into_iter()
            .map(|submitter| submitter.join().unwrap())
            .collect();
        gate.open();
        ending_thread.join().unwrap();
        for (call, refused) in refusals.iter().enumerate() {
            assert_eq!(
                *refused,
                Refusal {
                    kind: SubmitErrorKind::ShutDown,
                    runs_before: 0,
                    runs_after: 1,
                },
                "{ending:?}: blocked call {call}"
            );
        }
    });
    // The job queued before the end ran once: in the pool, or (after
    // shutdown_now) handed back and run by the ending thread.
    assert_eq!(snapshot(&queued_runs), [1], "{ending:?}");
}

#[test]
fn blocked_submitters_get_shut_down_and_their_job_on_shutdown() {
    blocked_submitters_get_their_job_back(Ending::Shutdown);
}

#[test]
fn blocked_submitters_get_shut_down_and_their_job_on_drop() {
    blocked_submitters_get_their_job_back(Ending::Drop);
}

#[test]
fn blocked_submitters_get_shut_down_and_their_job_on_shutdown_now() {
    blocked_submitters_get_their_job_back(Ending::ShutdownNow);
}

#[test]
fn blocked_submitters_get_shut_down_and_their_job_on_shutdown_timeout() {
    blocked_submitters_get_their_job_back(Ending::ShutdownTimeout);
}

/// After the queue is closed, a refusal says `ShutDown` even while the queue
/// is still full (a timed-out `shutdown_timeout` left the workers draining):
/// waiting or retrying could never get the job in.
#[test]
fn a_closed_full_queue_refuses_with_shut_down_not_full() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let gate = Gate::new();
    let (ran_tx, ran_rx) = mpsc::channel();
    let (blocked, started) = (Arc::clone(&gate), ran_tx.clone());
    pool.execute(move || {
        started.send("held").unwrap();
        blocked.pass();
    });
    assert_eq!(ran_rx.recv_timeout(HANG).unwrap(), "held");
    pool.execute(move || ran_tx.send("queued").unwrap());
    let handle = pool.handle();

    let late = pool
        .shutdown_timeout(Duration::ZERO)
        .expect_err("the worker is held past the deadline");
    assert_eq!((late.queued(), late.running()), (1, 1));
    let kinds = [
        handle.try_execute(|| ()).unwrap_err().kind(),
        handle
            .execute_timeout(|| (), Duration::ZERO)
            .unwrap_err()
            .kind(),
        handle.execute_timeout(|| (), HANG).unwrap_err().kind(),
        handle.execute(|| ()).unwrap_err().kind(),
        handle.spawn(|| ()).unwrap_err().kind(),
    ];
    assert_eq!(kinds, [SubmitErrorKind::ShutDown; 5]);

    gate.open();
    // The detached worker still drains the queue, then drops the last sender.
    assert_eq!(ran_rx.recv_timeout(HANG).unwrap(), "queued");
    assert_eq!(
        ran_rx.recv_timeout(HANG),
        Err(mpsc::RecvTimeoutError::Disconnected),
        "nothing else ran, and the jobs were dropped"
    );
}

// ---------------------------------------------------------------------------
// Many submitters
// ---------------------------------------------------------------------------

/// Four threads hammer a 1-place queue with every kind of submission while
/// two workers drain it. Every accepted job runs exactly once, every refused
/// one comes back unrun with a kind its call allows, and every `execute`
/// eventually gets in (a lost "place freed" wake-up would hang it).
#[test]
fn many_submitters_on_a_tiny_queue_lose_nothing() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 300;
    let pool = Builder::new()
        .num_threads(2)
        .queue_capacity(1)
        .build()
        .unwrap();
    let runs = run_counters(THREADS * PER_THREAD);
    let handle = pool.handle();
    let accepted = thread::scope(|scope| {
        let submitters: Vec<_> = (0..THREADS)
            .map(|t| {
                let (handle, runs) = (handle.clone(), &runs);
                scope.spawn(move || {
                    let mut accepted = Vec::new();
                    for i in 0..PER_THREAD {
                        let id = t * PER_THREAD + i;
                        let job = counting_job(runs, id);
                        let result = match i % 4 {
                            0 => handle.execute(job).map_err(|e| (e.kind(), e.into_inner())),
                            1 => handle
                                .try_execute(job)
                                .map_err(|e| (e.kind(), e.into_inner())),
                            2 => handle
                                .execute_timeout(job, Duration::ZERO)
                                .map_err(|e| (e.kind(), e.into_inner())),
                            _ => handle
                                .execute_timeout(job, Duration::from_micros(50))
                                .map_err(|e| (e.kind(), e.into_inner())),
                        };
                        match result {
                            Ok(()) => accepted.push(id),
                            Err((kind, job)) => {
                                let allowed = match i % 4 {
                                    1 => SubmitErrorKind::Full,
                                    _ => SubmitErrorKind::TimedOut,
                                };
                                assert_eq!(kind, allowed, "submission {i} of thread {t}");
                                assert_eq!(runs[id].load(Ordering::SeqCst), 0);
                                drop(job);
                            }
                        }
                    }
                    accepted
                })
            })
            .collect();
        submitters
            .into_iter()
            .flat_map(|s| s.join().unwrap())
            .collect::<Vec<_>>()
    });
    pool.wait_idle();
    let runs = snapshot(&runs);
    for (id, &n) in runs.iter().enumerate() {
        let expected = usize::from(accepted.contains(&id));
        assert_eq!(n, expected, "job {id}");
    }
    assert_eq!(pool.completed_count(), accepted.len());
    assert!(
        accepted.len() >= THREADS * PER_THREAD / 4,
        "every execute got in"
    );
}
