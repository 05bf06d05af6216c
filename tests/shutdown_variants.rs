//! `shutdown_now` (refuse new jobs, let running ones finish, join the
//! workers, hand back what never started) and `shutdown_timeout` (a graceful
//! shutdown with a deadline; on timeout the workers are detached and keep
//! draining).
//!
//! To end a pool while its workers are held at a [`Gate`], the ending call
//! runs on another thread; the test learns that the queue is closed by
//! probing it through a `Handle` ([`probe_until_closed`]), and only then opens
//! the gate. Probes accepted before the close are ordinary no-op jobs.

mod support;

use std::error::Error;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use support::*;
use weft::{
    Builder, Handle, Job, JoinError, JoinHandle, ShutdownTimedOut, SubmitErrorKind, ThreadPool,
};

/// Holds every worker of `pool` (`workers` of them) at `gate`; returns once
/// all are held. Each held job sets `finished` when it returns.
fn hold_workers(pool: &ThreadPool, workers: usize, gate: &Arc<Gate>, finished: &Arc<AtomicUsize>) {
    let meet = Rendezvous::new(workers + 1);
    for _ in 0..workers {
        let (gate, finished, meet) = (Arc::clone(gate), Arc::clone(finished), Arc::clone(&meet));
        pool.execute(move || {
            assert!(meet.meet());
            gate.pass();
            finished.fetch_add(1, Ordering::SeqCst);
        });
    }
    assert!(meet.meet(), "every worker holds a job");
}

/// What a `shutdown_now` on another thread saw when it returned.
struct Ended {
    unstarted: Vec<Job>,
    /// Held jobs that had finished when `shutdown_now` returned.
    finished_at_return: usize,
    /// Workers stopped when it returned.
    stops_at_return: usize,
    /// Jobs accepted by the probing (among `unstarted`).
    probes: usize,
}

/// Ends `pool`, whose workers are all held at `gate`, with `shutdown_now` on
/// another thread; opens the gate once the queue is closed.
fn shutdown_now_while_held(
    pool: ThreadPool,
    gate: &Gate,
    finished: &AtomicUsize,
    lifecycle: &Lifecycle,
) -> Ended {
    let handle = pool.handle();
    let stops = lifecycle.stop_counter();
    thread::scope(|scope| {
        let ending = scope.spawn(move || {
            let unstarted = pool.shutdown_now();
            (
                unstarted,
                finished.load(Ordering::SeqCst),
                stops.load(Ordering::SeqCst),
            )
        });
        let probes = probe_until_closed(&handle);
        gate.open();
        let (unstarted, finished_at_return, stops_at_return) = ending.join().unwrap();
        Ended {
            unstarted,
            finished_at_return,
            stops_at_return,
            probes,
        }
    })
}

/// A pool of `workers` threads, all held at a gate, with `queued` spawned
/// jobs (`handles[i]` yields `i`) behind them, ended by `shutdown_now`.
/// Returns the handed-back jobs and the handles.
fn handed_back_spawns(workers: usize, queued: usize) -> (Vec<Job>, Vec<JoinHandle<usize>>) {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(workers))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, workers, &gate, &finished);
    let handles: Vec<_> = (0..queued).map(|i| pool.spawn(move || i)).collect();
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    assert_eq!(ended.unstarted.len(), queued + ended.probes);
    for handle in &handles {
        assert!(!handle.is_finished(), "handed back, not yet run or dropped");
    }
    (ended.unstarted, handles)
}

// ---------------------------------------------------------------------------
// shutdown_now
// ---------------------------------------------------------------------------

#[test]
fn shutdown_now_hands_back_unstarted_jobs_oldest_first() {
    const QUEUED: usize = 10;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, 1, &gate, &finished);
    let order = Arc::new(Mutex::new(Vec::new()));
    let ran_on = Arc::new(Mutex::new(Vec::new()));
    for id in 0..QUEUED {
        let (order, ran_on) = (Arc::clone(&order), Arc::clone(&ran_on));
        pool.execute(move || {
            order.lock().unwrap().push(id);
            ran_on.lock().unwrap().push(thread::current().id());
        });
    }
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    assert_eq!(
        ended.finished_at_return, 1,
        "the running job finished first"
    );
    assert_eq!(ended.stops_at_return, 1, "the worker was joined");
    assert_eq!(ended.unstarted.len(), QUEUED + ended.probes);
    assert!(order.lock().unwrap().is_empty(), "none ran in the pool");

    for job in ended.unstarted {
        job.run();
    }
    assert_eq!(*order.lock().unwrap(), (0..QUEUED).collect::<Vec<_>>());
    let me = thread::current().id();
    assert!(
        ran_on.lock().unwrap().iter().all(|&t| t == me),
        "Job::run runs the job on the caller"
    );
}

/// A child submitted by a running job (queued in that worker's own deque) is
/// handed back just like jobs submitted from outside. `shutdown_now` promises
/// every unstarted job, in no particular order; an earlier doc promised
/// "oldest first", which the per-worker deques do not keep.
#[test]
fn shutdown_now_hands_back_children_and_outside_jobs_alike() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let record = |name: &'static str| {
        let order = Arc::clone(&order);
        move || order.lock().unwrap().push(name)
    };
    let (step, gate) = (Gate::new(), Gate::new());
    let (child_queued_tx, child_queued_rx) = mpsc::channel();
    let finished = Arc::new(AtomicUsize::new(0));
    {
        let (step, gate, finished) = (Arc::clone(&step), Arc::clone(&gate), Arc::clone(&finished));
        let child = record("child");
        pool.execute(move || {
            step.pass();
            Handle::current().unwrap().execute(child).unwrap();
            child_queued_tx.send(()).unwrap();
            gate.pass();
            finished.fetch_add(1, Ordering::SeqCst);
        });
    }
    pool.execute(record("first"));
    step.open();
    child_queued_rx.recv_timeout(HANG).unwrap();
    pool.execute(record("last"));

    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    assert_eq!(ended.unstarted.len(), 3 + ended.probes);
    for job in ended.unstarted {
        job.run();
    }
    // `shutdown_now` promises every unstarted job, not an order.
    let mut ran = order.lock().unwrap().clone();
    ran.sort_unstable();
    assert_eq!(ran, ["child", "first", "last"]);
}

#[test]
fn shutdown_now_waits_for_every_running_job_and_joins_every_worker() {
    const WORKERS: usize = 3;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(WORKERS))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, WORKERS, &gate, &finished);
    let runs = run_counters(20);
    for id in 0..20 {
        pool.execute(counting_job(&runs, id));
    }
    let handle = pool.handle();
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    assert_eq!(ended.finished_at_return, WORKERS);
    assert_eq!(ended.stops_at_return, WORKERS);
    assert_eq!(ended.unstarted.len(), 20 + ended.probes);
    assert_eq!(snapshot(&runs), [0; 20], "nothing queued ran in the pool");

    let refused = handle.execute(|| ()).map_err(|e| e.kind());
    assert_eq!(refused, Err(SubmitErrorKind::ShutDown));

    // Jobs are `Send`: they can be run on any thread.
    thread::spawn(move || ended.unstarted.into_iter().for_each(Job::run))
        .join()
        .unwrap();
    assert_eq!(snapshot(&runs), [1; 20]);
}

#[test]
fn shutdown_now_of_an_idle_pool_returns_nothing_and_joins() {
    for threads in [1, 4] {
        let lifecycle = Lifecycle::new();
        let pool = lifecycle
            .install(Builder::new().num_threads(threads))
            .build()
            .unwrap();
        for _ in 0..threads {
            lifecycle.next_start();
        }
        let handle = pool.handle();
        let unstarted = pool.shutdown_now();
        assert!(unstarted.is_empty());
        assert_eq!(lifecycle.stops(), threads, "joined when it returns");
        assert!(handle.execute(|| ()).is_err());
    }
}

#[test]
fn dropping_handed_back_jobs_discards_them_unrun() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, 1, &gate, &finished);
    let witness = Arc::new(());
    let runs = Arc::new(AtomicUsize::new(0));
    for _ in 0..5 {
        let (keep, runs) = (Arc::clone(&witness), Arc::clone(&runs));
        pool.execute(move || {
            let _keep = &keep;
            runs.fetch_add(1, Ordering::SeqCst);
        });
    }
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    assert_eq!(
        Arc::strong_count(&witness),
        6,
        "the jobs are handed back whole"
    );
    let text = format!("{:?}", ended.unstarted[0]);
    assert!(text.starts_with("Job"), "{text}");
    drop(ended.unstarted);
    assert_eq!(Arc::strong_count(&witness), 1, "dropped with the Vec");
    assert_eq!(runs.load(Ordering::SeqCst), 0, "and never run");
}

/// An `execute`d job run through `Job::run` is a plain call: its panic
/// reaches the caller.
#[test]
fn running_a_handed_back_panicking_job_panics_on_the_caller() {
    quiet_deliberate_panics();
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, 1, &gate, &finished);
    pool.execute(|| panic::panic_any(DeliberatePayload(3)));
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    let mut jobs = ended.unstarted.into_iter();
    let first = jobs.next().expect("the panicking job is handed back");
    let payload = panic::catch_unwind(AssertUnwindSafe(|| first.run()))
        .expect_err("the job's panic propagates from Job::run");
    assert_eq!(
        payload.downcast_ref::<DeliberatePayload>(),
        Some(&DeliberatePayload(3))
    );
    jobs.for_each(Job::run); // the probes
}

// ---------------------------------------------------------------------------
// Handed-back spawned jobs and their JoinHandles
// ---------------------------------------------------------------------------

/// A thread already blocked in `join` on a handed-back spawned job gets the
/// value once the caller runs the job.
#[test]
fn handed_back_spawned_job_resolves_its_handle_when_run() {
    let (unstarted, mut handles) = handed_back_spawns(1, 3);
    let awaited = handles.pop().unwrap();
    thread::scope(|scope| {
        let joiners: Vec<_> = handles
            .into_iter()
            .map(|handle| scope.spawn(move || handle.join()))
            .collect();
        let awaiter = scope.spawn(move || block_on(awaited));
        for job in unstarted {
            job.run();
        }
        for (i, joiner) in joiners.into_iter().enumerate() {
            assert_eq!(joiner.join().unwrap().unwrap(), i);
        }
        assert_eq!(awaiter.join().unwrap().unwrap(), 2);
    });
}

/// Dropping a handed-back spawned job resolves its handle as cancelled, for
/// a blocked `join`, a later `join`, and a pending future alike.
#[test]
fn dropped_handed_back_spawned_job_resolves_as_cancelled() {
    quiet_deliberate_panics();
    let (unstarted, mut handles) = handed_back_spawns(2, 3);
    let later = handles.pop().unwrap();
    let awaited = handles.pop().unwrap();
    let blocked = handles.pop().unwrap();
    thread::scope(|scope| {
        let joiner = scope.spawn(move || blocked.join());
        let awaiter = scope.spawn(move || block_on(awaited));
        drop(unstarted);
        for err in [
            joiner.join().unwrap().unwrap_err(),
            awaiter.join().unwrap().unwrap_err(),
        ] {
            assert!(err.is_cancelled() && !err.is_panic());
        }
    });
    assert!(later.is_finished(), "a cancelled job counts as finished");
    let err = later.join().unwrap_err();
    assert_cancelled_error(err);
}

/// Everything a cancelled `JoinError` promises: its kind, its text, that
/// `try_into_panic` gives it back and that `into_panic` panics.
fn assert_cancelled_error(err: JoinError) {
    assert!(err.is_cancelled());
    assert!(!err.is_panic());
    let display = err.to_string();
    assert!(display.contains("cancelled"), "{display}");
    let debug = format!("{err:?}");
    assert!(debug.contains("Cancelled"), "{debug}");
    let boxed: Box<dyn Error + Send + Sync> = Box::new(err);
    let err = *boxed.downcast::<JoinError>().unwrap();

    let err = err.try_into_panic().expect_err("there is no payload");
    assert!(err.is_cancelled(), "try_into_panic gives the error back");

    let payload = panic::catch_unwind(AssertUnwindSafe(move || err.into_panic()))
        .expect_err("into_panic on a cancellation panics");
    let text = payload_text(&*payload).unwrap_or_default();
    assert!(text.contains("cancelled"), "{text}");
}

/// A handed-back spawned job that panics when run here: `Job::run` returns
/// normally and the panic goes to the handle.
#[test]
fn handed_back_spawned_panic_goes_to_the_handle_not_the_caller() {
    quiet_deliberate_panics();
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, 1, &gate, &finished);
    let handle = pool.spawn(|| -> u8 { panic!("{DELIBERATE}: run by the caller") });
    let via_handle = pool.handle().spawn(|| 8u8).expect("the pool is running");
    let ended = shutdown_now_while_held(pool, &gate, &finished, &lifecycle);
    for job in ended.unstarted {
        job.run(); // must not panic
    }
    let err = handle.join().unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        payload_text(&*err.into_panic()),
        Some("deliberate test panic: run by the caller")
    );
    assert_eq!(via_handle.join().unwrap(), 8);
}

/// A worker blocked in `join` on a child that `shutdown_now` hands back gets
/// `Cancelled` at once, so `shutdown_now` (which waits for that worker's job)
/// returns. The child is then the caller's to run.
///
/// The parent spawns the child, then a second job that holds the worker;
/// joining the child, the parent helps by running the newer job first, and
/// is inside it, inside `join`, when `shutdown_now` takes the child.
#[test]
fn worker_joining_a_handed_back_job_is_cancelled_at_once() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let gate = Gate::new();
    let child_runs = Arc::new(AtomicUsize::new(0));
    let (holding_tx, holding_rx) = mpsc::channel();
    let parent_done = Arc::new(AtomicUsize::new(0));
    let parent = {
        let (gate, child_runs, parent_done) = (
            Arc::clone(&gate),
            Arc::clone(&child_runs),
            Arc::clone(&parent_done),
        );
        pool.spawn(move || {
            let pool = Handle::current().unwrap();
            let child = pool
                .spawn(move || child_runs.fetch_add(1, Ordering::SeqCst))
                .unwrap();
            let _holder = pool
                .spawn(move || {
                    holding_tx.send(()).unwrap();
                    gate.pass();
                })
                .unwrap();
            let joined = child.join();
            parent_done.fetch_add(1, Ordering::SeqCst);
            joined.map(|_| ())
        })
    };
    holding_rx
        .recv_timeout(HANG)
        .expect("the parent runs the holder while it joins");

    let ended = shutdown_now_while_held(pool, &gate, &parent_done, &lifecycle);
    assert_eq!(ended.finished_at_return, 1, "the parent returned first");
    assert_eq!(ended.stops_at_return, 1);
    let err = parent
        .join()
        .expect("the parent itself ran")
        .expect_err("its child was handed back");
    assert!(err.is_cancelled(), "{err:?}");
    assert_eq!(child_runs.load(Ordering::SeqCst), 0);

    assert_eq!(ended.unstarted.len(), 1 + ended.probes, "the child");
    ended.unstarted.into_iter().for_each(Job::run);
    assert_eq!(child_runs.load(Ordering::SeqCst), 1, "run by the caller");
}

/// `shutdown_now` from inside one of the pool's own jobs: the other workers
/// are joined, the queue handed back to that job, and its own worker exits
/// after the job. Each queued job ran in the pool or was handed back.
#[test]
fn shutdown_now_from_inside_a_job() {
    const QUEUED: usize = 30;
    for threads in [1, 3] {
        let lifecycle = Lifecycle::new();
        let pool = lifecycle
            .install(Builder::new().num_threads(threads))
            .build()
            .unwrap();
        let slot = Arc::new(Mutex::new(Some(pool)));
        let go = Gate::new();
        let runs = run_counters(QUEUED);
        let (report_tx, report_rx) = mpsc::channel();
        let stops = lifecycle.stop_counter();
        {
            let guard = slot.lock().unwrap();
            let pool = guard.as_ref().unwrap();
            let (own_slot, go) = (Arc::clone(&slot), Arc::clone(&go));
            pool.execute(move || {
                go.pass();
                let pool = own_slot.lock().unwrap().take().expect("taken once");
                let unstarted = pool.shutdown_now();
                let stops_at_return = stops.load(Ordering::SeqCst);
                let refused = Handle::current()
                    .expect("still on a worker")
                    .execute(|| ())
                    .map_err(|e| e.kind());
                report_tx
                    .send((unstarted, stops_at_return, refused))
                    .unwrap();
            });
            for id in 0..QUEUED {
                pool.execute(counting_job(&runs, id));
            }
        }
        go.open();
        let (unstarted, stops_at_return, refused) = report_rx
            .recv_timeout(HANG)
            .expect("shutdown_now from inside must not deadlock");
        assert_eq!(stops_at_return, threads - 1, "the others were joined");
        assert_eq!(refused, Err(SubmitErrorKind::ShutDown));
        let ran_in_pool = snapshot(&runs).iter().filter(|&&n| n == 1).count();
        assert!(snapshot(&runs).iter().all(|&n| n <= 1));
        assert_eq!(ran_in_pool + unstarted.len(), QUEUED, "{threads} threads");
        if threads == 1 {
            assert_eq!(unstarted.len(), QUEUED, "the only worker was busy");
        }
        unstarted.into_iter().for_each(Job::run);
        assert_eq!(snapshot(&runs), [1; QUEUED]);
        assert_eq!(
            lifecycle.next_stops(threads),
            (0..threads).collect::<Vec<_>>()
        );
    }
}

// ---------------------------------------------------------------------------
// shutdown_timeout
// ---------------------------------------------------------------------------

#[test]
fn shutdown_timeout_that_drains_in_time_is_ok() {
    const JOBS: usize = 200;
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let runs = run_counters(JOBS);
    for id in 0..JOBS {
        pool.execute(counting_job(&runs, id));
    }
    let handle = pool.handle();
    pool.shutdown_timeout(HANG)
        .expect("200 tiny jobs drain long before the deadline");
    assert_eq!(snapshot(&runs), [1; JOBS], "every job ran once");
    assert_eq!(lifecycle.stops(), 2, "every worker was joined");
    assert!(handle.execute(|| ()).is_err());
}

#[test]
fn shutdown_timeout_waits_for_a_running_job() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(2))
        .build()
        .unwrap();
    let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
    hold_workers(&pool, 2, &gate, &finished);
    let runs = run_counters(10);
    for id in 0..10 {
        pool.execute(counting_job(&runs, id));
    }
    let handle = pool.handle();
    let stops = lifecycle.stop_counter();
    thread::scope(|scope| {
        let ending = scope.spawn(|| {
            let result = pool.shutdown_timeout(HANG);
            (
                result,
                finished.load(Ordering::SeqCst),
                stops.load(Ordering::SeqCst),
            )
        });
        // Probes accepted before the close are no-op jobs; they run too.
        probe_until_closed(&handle);
        gate.open();
        let (result, finished_at_return, stops_at_return) = ending.join().unwrap();
        assert_eq!(result, Ok(()));
        assert_eq!(finished_at_return, 2);
        assert_eq!(stops_at_return, 2);
    });
    assert_eq!(snapshot(&runs), [1; 10]);
}

/// The deadline passes while the workers are held: the error reports what
/// was queued and running then; nothing is dropped, and once the gate opens
/// the detached workers run every job and exit.
#[test]
fn shutdown_timeout_that_times_out_reports_and_keeps_draining() {
    const QUEUED: usize = 5;
    for (workers, timeout) in [(1, Duration::ZERO), (2, Duration::from_millis(20))] {
        let lifecycle = Lifecycle::new();
        let pool = lifecycle
            .install(Builder::new().num_threads(workers))
            .build()
            .unwrap();
        let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
        hold_workers(&pool, workers, &gate, &finished);
        let (ran_tx, ran_rx) = mpsc::channel();
        let witness = Arc::new(());
        for id in 0..QUEUED {
            let (ran_tx, keep) = (ran_tx.clone(), Arc::clone(&witness));
            pool.execute(move || {
                let _keep = &keep;
                ran_tx.send(id).unwrap();
            });
        }
        drop(ran_tx);
        let handle = pool.handle();

        let err: ShutdownTimedOut = pool
            .shutdown_timeout(timeout)
            .expect_err("the workers are held past the deadline");
        assert_eq!(err.queued(), QUEUED);
        assert_eq!(err.running(), workers);
        let text = err.to_string();
        assert!(
            text.contains(&QUEUED.to_string()) && text.contains(&workers.to_string()),
            "{text}"
        );
        assert!(text.contains("timed out"), "{text}");
        let debug = format!("{err:?}");
        assert!(debug.contains("ShutdownTimedOut"), "{debug}");
        assert_eq!(err.clone(), err);
        let boxed: Box<dyn Error + Send + Sync> = Box::new(err);
        assert!(boxed.source().is_none());

        assert_eq!(
            handle.execute(|| ()).map_err(|e| e.kind()),
            Err(SubmitErrorKind::ShutDown),
            "the queue is closed even though the workers are not joined"
        );
        assert_eq!(Arc::strong_count(&witness), 1 + QUEUED, "nothing dropped");
        assert_eq!(finished.load(Ordering::SeqCst), 0);

        gate.open();
        let mut ran: Vec<usize> = ran_rx.iter().collect(); // until every job is gone
        ran.sort_unstable();
        assert_eq!(ran, (0..QUEUED).collect::<Vec<_>>(), "each ran once");
        assert_eq!(
            lifecycle.next_stops(workers),
            (0..workers).collect::<Vec<_>>()
        );
        assert_eq!(finished.load(Ordering::SeqCst), workers);
        assert_eq!(Arc::strong_count(&witness), 1);
    }
}

/// `shutdown_timeout` from inside one of the pool's own jobs: like
/// `shutdown`, it helps drain the queue and waits for the *other* workers to
/// exit, then returns `Ok`. Its deadline (twice [`HANG`]) is far beyond the
/// report's [`HANG`], so a call that sleeps through the other workers' exit
/// and only wakes at its deadline fails here as a hang, not as a slow pass.
///
/// With two workers, the other one is held at a gate until the queue is
/// closed, so the caller is already waiting when that worker exits.
///
/// Regression: an exiting worker used to notify `became_idle` only when
/// `live_workers` dropped to 0, but a `shutdown_timeout` called from a worker
/// waits for `live_workers <= 1` (its own), so it slept through the last
/// other worker's exit until its deadline, and with `Duration::MAX` forever.
#[test]
fn shutdown_timeout_from_inside_a_job_is_ok_once_the_others_exit() {
    for threads in [1, 2] {
        let lifecycle = Lifecycle::new();
        let pool = lifecycle
            .install(Builder::new().num_threads(threads))
            .build()
            .unwrap();
        let (gate, finished) = (Gate::new(), Arc::new(AtomicUsize::new(0)));
        hold_workers(&pool, threads - 1, &gate, &finished);
        let runs = run_counters(10);
        let handle = pool.handle();
        let slot = Arc::new(Mutex::new(Some(pool)));
        let (report_tx, report_rx) = mpsc::channel();
        {
            let guard = slot.lock().unwrap();
            let pool = guard.as_ref().unwrap();
            let own_slot = Arc::clone(&slot);
            let finished = Arc::clone(&finished);
            let runs_seen = Arc::clone(&runs);
            pool.execute(move || {
                let pool = own_slot.lock().unwrap().take().expect("taken once");
                let result = pool.shutdown_timeout(HANG * 2);
                report_tx
                    .send((
                        result,
                        finished.load(Ordering::SeqCst),
                        snapshot(&runs_seen),
                    ))
                    .unwrap();
            });
            for id in 0..10 {
                pool.execute(counting_job(&runs, id));
            }
        }
        probe_until_closed(&handle);
        gate.open();
        let (result, finished_at_return, runs_at_return) =
            report_rx.recv_timeout(HANG).unwrap_or_else(|_| {
                panic!(
                    "{threads} threads: shutdown_timeout from inside did not return once \
                     the other workers had exited (it waits for its deadline)"
                )
            });
        assert_eq!(
            result,
            Ok(()),
            "{threads} threads: the pool drained in time"
        );
        assert_eq!(finished_at_return, threads - 1);
        assert_eq!(runs_at_return, [1; 10]);
        assert_eq!(
            lifecycle.next_stops(threads),
            (0..threads).collect::<Vec<_>>()
        );
    }
}

/// `shutdown_timeout` from inside a job whose deadline passes while the
/// caller is still helping to drain: the jobs it has not reached are still
/// queued, so the call reports a timeout with them, even though no other
/// worker is awake (there is none). They are not lost: the caller's worker
/// runs them once the job that called shutdown returns.
#[test]
fn shutdown_timeout_from_inside_that_runs_out_while_draining_reports_the_queue() {
    let lifecycle = Lifecycle::new();
    let pool = lifecycle
        .install(Builder::new().num_threads(1))
        .build()
        .unwrap();
    let runs = run_counters(3);
    let slot = Arc::new(Mutex::new(Some(pool)));
    let (report_tx, report_rx) = mpsc::channel();
    {
        let guard = slot.lock().unwrap();
        let pool = guard.as_ref().unwrap();
        let own_slot = Arc::clone(&slot);
        let runs_seen = Arc::clone(&runs);
        pool.execute(move || {
            let pool = own_slot.lock().unwrap().take().expect("taken once");
            let result = pool.shutdown_timeout(Duration::from_millis(10));
            report_tx.send((result, snapshot(&runs_seen))).unwrap();
        });
        // The caller runs this one while it drains; it outlasts the deadline
        // (by a sleep, so the deadline has passed when it returns).
        let slow = counting_job(&runs, 0);
        pool.execute(move || {
            thread::sleep(Duration::from_millis(50));
            slow();
        });
        for id in 1..3 {
            pool.execute(counting_job(&runs, id));
        }
    }
    let (result, runs_at_return) = report_rx.recv_timeout(HANG).expect("shutdown_timeout hung");
    assert_eq!(
        runs_at_return,
        [1, 0, 0],
        "the caller drains in order and stops at its deadline"
    );
    let err = result.expect_err("two accepted jobs were still queued at the deadline");
    assert_eq!(
        (err.queued(), err.running()),
        (2, 1),
        "the two jobs not reached, and the caller's own job"
    );
    assert_eq!(
        lifecycle.next_stops(1),
        [0],
        "the worker exits after running the rest"
    );
    assert_eq!(
        snapshot(&runs),
        [1, 1, 1],
        "ledger rule 1: every accepted job runs"
    );
}

/// Shutdown from inside a job joins every other worker: their stop hooks
/// have returned when it does. The hook is slow, so a shutdown that only
/// detached the other worker (as it may when that worker is parked in a
/// join, which it is not here) would return before the hook had finished.
#[test]
fn shutdown_from_inside_a_job_returns_after_the_other_workers_stop_hooks() {
    let stopped = Arc::new(AtomicUsize::new(0));
    let hook_stopped = Arc::clone(&stopped);
    let pool = Builder::new()
        .num_threads(2)
        .on_thread_stop(move |_| {
            thread::sleep(Duration::from_millis(50));
            hook_stopped.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let slot = Arc::new(Mutex::new(Some(pool)));
    let (report_tx, report_rx) = mpsc::channel();
    {
        let guard = slot.lock().unwrap();
        let own_slot = Arc::clone(&slot);
        let stopped = Arc::clone(&stopped);
        guard.as_ref().unwrap().execute(move || {
            let pool = own_slot.lock().unwrap().take().expect("taken once");
            pool.shutdown();
            report_tx.send(stopped.load(Ordering::SeqCst)).unwrap();
        });
    }
    let stopped_at_return = report_rx.recv_timeout(HANG).expect("shutdown hung");
    assert_eq!(
        stopped_at_return, 1,
        "ledger rule 3: shutdown from inside returned before the other worker had stopped"
    );
}

/// A drop from inside a job that runs *nested* in a helping join, while
/// another worker joins a job suspended beneath it on the same stack.
///
/// Worker A runs W, which spawns X and waits until worker B has stolen it,
/// then joins X (A parks: X is not queued). X spawns D and joins it, so B
/// runs D nested above X. D drops the pool. X cannot finish before D
/// returns, so A can never finish W's join before then: a shutdown that
/// joined A would deadlock. Shutdown from inside waits only until every other
/// worker has exited or is parked in a join, and then detaches them.
#[test]
fn drop_nested_above_a_job_another_worker_joins_does_not_deadlock() {
    let slot: Arc<Mutex<Option<ThreadPool>>> = Arc::new(Mutex::new(None));
    let pool = ThreadPool::new(2);
    let (x_started_tx, x_started_rx) = mpsc::channel::<()>();
    let (done_tx, done_rx) = mpsc::channel::<(&'static str, u32)>();
    {
        let slot = Arc::clone(&slot);
        let done_tx = done_tx.clone();
        pool.execute(move || {
            let handle = Handle::current().expect("on a worker");
            let x_handle = handle.clone();
            let x_done = done_tx.clone();
            let x = handle
                .spawn(move || {
                    x_started_tx.send(()).unwrap();
                    let d = x_handle
                        .spawn(move || {
                            let pool = slot.lock().unwrap().take();
                            drop(pool);
                            x_done.send(("d", 1)).unwrap();
                            1
                        })
                        .expect("the pool is live until D runs");
                    d.join().expect("D ran") + 1
                })
                .expect("the pool is live");
            // Wait (without joining) so that only the other worker can take X.
            x_started_rx.recv().unwrap();
            let value = x.join().expect("X ran");
            done_tx.send(("w", value)).unwrap();
        });
    }
    *slot.lock().unwrap() = Some(pool);
    let mut seen: Vec<_> = (0..2)
        .map(|_| {
            done_rx
                .recv_timeout(HANG)
                .expect("deadlock: a job never finished")
        })
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, [("d", 1), ("w", 2)]);
}
