//! `spawn` and `JoinHandle`: results, panics, detaching, the `Future` impl,
//! and joining from inside the pool (`DESIGN.md`, "Re-entrancy": a join on a
//! worker of the same pool runs queued jobs while it waits).
//!
//! Cancellation (a spawned job handed back by `shutdown_now`) is tested in
//! `shutdown_variants.rs`; a `spawn` on a full bounded queue in
//! `backpressure.rs`.

mod support;

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;

use support::*;
use weft::{Builder, Handle, JoinError, JoinHandle, SubmitErrorKind, ThreadPool};

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

#[test]
fn spawn_returns_each_jobs_value_through_join() {
    let pool = ThreadPool::new(3);
    let handles: Vec<JoinHandle<(u64, Option<String>)>> = (0..50u64)
        .map(|i| pool.spawn(move || (i * i, thread_name())))
        .collect();
    for (i, handle) in (0u64..).zip(handles) {
        let (square, ran_on) = handle.join().expect("the job returned");
        assert_eq!(square, i * i);
        assert!(
            ran_on.as_deref().is_some_and(|n| n.starts_with("weft-")),
            "spawned job {i} ran on {ran_on:?}, not on a worker"
        );
    }
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 50);
    assert_eq!(pool.panic_count(), 0);
}

/// The value is moved out of the job, not cloned: a non-`Clone`, non-`Copy`
/// value that owns the only other reference to `witness` comes back whole.
#[test]
fn join_moves_the_value_out_of_the_job() {
    let pool = ThreadPool::new(1);
    let witness = Arc::new(());
    let inside = Arc::clone(&witness);
    let value = pool.spawn(move || vec![inside]).join().unwrap();
    assert_eq!(Arc::strong_count(&witness), 2);
    drop(value);
    assert_eq!(Arc::strong_count(&witness), 1, "nothing kept a copy");
}

#[test]
fn join_waits_for_a_running_job_and_is_finished_tracks_it() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    let handle = pool.spawn(move || {
        started_tx.send(()).unwrap();
        blocked.pass();
        "done"
    });
    started_rx.recv_timeout(HANG).unwrap();
    assert!(!handle.is_finished(), "the job is held at the gate");
    let text = format!("{handle:?}");
    assert!(
        text.starts_with("JoinHandle") && text.contains("false"),
        "{text}"
    );

    thread::scope(|scope| {
        let joiner = scope.spawn(move || handle.join());
        gate.open();
        assert_eq!(joiner.join().unwrap().unwrap(), "done");
    });

    // A handle that is finished before anyone joins it.
    let finished = pool.spawn(|| 7);
    pool.wait_idle(); // the result is delivered before the job counts as done
    assert!(finished.is_finished());
    assert!(format!("{finished:?}").contains("true"));
    assert_eq!(finished.join().unwrap(), 7);
}

#[test]
fn spawned_jobs_count_as_completed() {
    let pool = ThreadPool::new(2);
    for i in 0..20 {
        pool.spawn(move || i); // detached: the job still runs and counts
    }
    let joined: Vec<_> = (0..10).map(|i| pool.spawn(move || i)).collect();
    for (i, handle) in joined.into_iter().enumerate() {
        assert_eq!(handle.join().unwrap(), i);
    }
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 30);
    assert_eq!(pool.panic_count(), 0);
}

// ---------------------------------------------------------------------------
// Panics
// ---------------------------------------------------------------------------

#[test]
fn spawned_panic_reaches_join_with_its_payload() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(2);

    let literal = pool.spawn(|| -> u8 { panic!("deliberate test panic: literal") });
    let formatted = pool.spawn(|| -> u8 { panic!("{DELIBERATE}: formatted {}", 42) });
    let custom = pool.spawn(|| -> u8 { panic::panic_any(DeliberatePayload(9)) });

    let err = literal.join().expect_err("the job panicked");
    assert!(err.is_panic() && !err.is_cancelled());
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"deliberate test panic: literal")
    );

    let err = formatted.join().expect_err("the job panicked");
    assert!(err.is_panic());
    let payload = err.try_into_panic().expect("a panic, not a cancellation");
    assert_eq!(
        payload.downcast_ref::<String>().map(String::as_str),
        Some("deliberate test panic: formatted 42")
    );

    let err = custom.join().expect_err("the job panicked");
    assert!(err.is_panic());
    let payload = err.into_panic();
    assert_eq!(
        payload.downcast_ref::<DeliberatePayload>(),
        Some(&DeliberatePayload(9))
    );

    // The payload can be resumed, as with std's JoinHandle.
    let err = pool
        .spawn(|| panic::panic_any(DeliberatePayload(10)))
        .join()
        .unwrap_err();
    let resumed = panic::catch_unwind(AssertUnwindSafe(|| {
        panic::resume_unwind(err.into_panic());
    }))
    .expect_err("resume_unwind panics");
    assert_eq!(
        resumed.downcast_ref::<DeliberatePayload>(),
        Some(&DeliberatePayload(10))
    );

    pool.wait_idle();
    assert_eq!(pool.panic_count(), 4);
    assert_eq!(pool.completed_count(), 0);
}

/// A spawned job's panic belongs to its `JoinHandle`: it is counted in
/// `panic_count`, but the pool's panic handler never sees it (while it does
/// see an `execute`d job's panic).
#[test]
fn spawned_panic_is_counted_but_skips_the_panic_handler() {
    quiet_deliberate_panics();
    let (handled_tx, handled_rx) = mpsc::channel();
    let handled_tx = Mutex::new(handled_tx);
    let pool = Builder::new()
        .num_threads(2)
        .panic_handler(move |payload| {
            let text = payload_text(&*payload).map(str::to_owned);
            handled_tx.lock().unwrap().send(text).unwrap();
        })
        .build()
        .unwrap();

    let spawned: Vec<_> = (0..5)
        .map(|i| pool.spawn(move || -> () { panic!("{DELIBERATE}: spawned {i}") }))
        .collect();
    // Detached panicking spawns are counted too, and also skip the handler.
    for i in 0..3 {
        drop(pool.spawn(move || -> () { panic!("{DELIBERATE}: detached {i}") }));
    }
    pool.execute(|| panic!("{DELIBERATE}: executed"));
    for handle in spawned {
        assert!(handle.join().unwrap_err().is_panic());
    }
    // The handler runs before the job counts as finished, so after
    // `wait_idle` every call it will ever get has happened.
    pool.wait_idle();
    assert_eq!(pool.panic_count(), 9);
    assert_eq!(pool.completed_count(), 0);
    let handled: Vec<_> = handled_rx.try_iter().collect();
    assert_eq!(
        handled,
        [Some(format!("{DELIBERATE}: executed"))],
        "only the executed job's panic reaches the handler"
    );

    // The workers survived every panic.
    assert_eq!(pool.spawn(|| 5).join().unwrap(), 5);
}

#[test]
fn join_error_of_a_panic_displays_its_message() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(1);

    let err = pool
        .spawn(|| panic!("{DELIBERATE}: shown"))
        .join()
        .unwrap_err();
    let display = err.to_string();
    assert!(display.contains("panicked"), "{display}");
    assert!(
        display.contains("deliberate test panic: shown"),
        "{display}"
    );
    let debug = format!("{err:?}");
    assert!(debug.contains("Panic"), "{debug}");
    assert!(debug.contains("deliberate test panic: shown"), "{debug}");

    // A payload that is not a string still displays.
    let err = pool
        .spawn(|| panic::panic_any(DeliberatePayload(1)))
        .join()
        .unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert!(format!("{err:?}").contains("Panic"), "{err:?}");

    // It is a std error, and boxes as one.
    let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(err);
    assert!(boxed.source().is_none());
    assert!(boxed.downcast_ref::<JoinError>().unwrap().is_panic());
}

// ---------------------------------------------------------------------------
// Detaching
// ---------------------------------------------------------------------------

/// Dropping a handle, whether its job is queued or running, detaches the job:
/// it still runs, exactly once.
#[test]
fn dropping_a_join_handle_detaches_the_job() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let (ran_tx, ran_rx) = mpsc::channel();

    let (blocked, tx) = (Arc::clone(&gate), ran_tx.clone());
    let running = pool.spawn(move || {
        started_tx.send(()).unwrap();
        blocked.pass();
        tx.send("running").unwrap();
    });
    started_rx.recv_timeout(HANG).unwrap();
    let tx = ran_tx.clone();
    let queued = pool.spawn(move || tx.send("queued").unwrap());
    assert_eq!(pool.queued_count(), 1);
    drop(running);
    drop(queued);
    drop(ran_tx);

    gate.open();
    let ran: Vec<_> = (0..2).map(|_| ran_rx.recv_timeout(HANG).unwrap()).collect();
    assert_eq!(ran, ["running", "queued"]);
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 2);
    assert!(ran_rx.try_recv().is_err(), "each ran once");
}

// ---------------------------------------------------------------------------
// Handle::spawn
// ---------------------------------------------------------------------------

#[test]
fn handle_spawn_from_another_thread_returns_a_join_handle() {
    let pool = ThreadPool::new(2);
    let handle = pool.handle();
    let results = thread::spawn(move || {
        let handles: Vec<_> = (0..10)
            .map(|i| handle.spawn(move || i + 100).expect("the pool is running"))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    })
    .join()
    .unwrap();
    assert_eq!(results, (100..110).collect::<Vec<_>>());
}

/// After shutdown, `Handle::spawn` hands back the very closure (it owns the
/// only other reference to `witness`), unrun; calling it yields the value.
#[test]
fn handle_spawn_after_shutdown_returns_the_closure() {
    for end in [ThreadPool::shutdown as fn(ThreadPool), drop] {
        let pool = ThreadPool::new(2);
        let handle = pool.handle();
        end(pool);

        let witness = Arc::new(());
        let runs = Arc::new(AtomicUsize::new(0));
        let (keep, job_runs) = (Arc::clone(&witness), Arc::clone(&runs));
        let err = handle
            .spawn(move || {
                let _keep = &keep;
                job_runs.fetch_add(1, Ordering::SeqCst);
                thread::current().id()
            })
            .expect_err("a shut-down pool refuses");
        assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
        assert!(err.to_string().contains("shut down"), "{err}");
        assert_eq!(
            Arc::strong_count(&witness),
            2,
            "the closure is in the error"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 0, "it never ran");

        let job = err.into_inner();
        assert_eq!(job(), thread::current().id(), "it runs where we call it");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(Arc::strong_count(&witness), 1, "the closure was consumed");
    }
}

// ---------------------------------------------------------------------------
// The Future impl
// ---------------------------------------------------------------------------

#[test]
fn join_handle_as_a_future_resolves_without_a_runtime() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(2);
    let values: Vec<_> = (0..20u32).map(|i| pool.spawn(move || i * 3)).collect();
    for (i, handle) in (0u32..).zip(values) {
        assert_eq!(block_on(handle).unwrap(), i * 3);
    }

    let err = block_on(pool.spawn(|| -> u32 { panic!("{DELIBERATE}: awaited") })).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(
        payload_text(&*err.into_panic()),
        Some("deliberate test panic: awaited")
    );

    // Inside an `async` block, as `.await`.
    let (a, b) = (pool.spawn(|| 20), pool.spawn(|| 22));
    let sum = block_on(async move { a.await.unwrap() + b.await.unwrap() });
    assert_eq!(sum, 42);
}

/// A future that is pending while its job runs is woken when the job
/// finishes, and only then is it re-polled (the executor ignores spurious
/// unparks, so a lost wake-up would hang).
#[test]
fn future_pending_on_a_running_job_is_woken_when_it_finishes() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    let handle = pool.spawn(move || {
        started_tx.send(()).unwrap();
        blocked.pass();
        11
    });
    started_rx.recv_timeout(HANG).unwrap();

    thread::scope(|scope| {
        let waiter = scope.spawn(move || block_on_counting(handle));
        gate.open();
        let (result, polls) = waiter.join().unwrap();
        assert_eq!(result.unwrap(), 11);
        assert!((1..=2).contains(&polls), "polled {polls} times");
    });
}

/// Polled by hand: `Pending` while the job is held, a wake when it
/// finishes, then `Ready`. When the handle is polled with a new waker, the
/// new one is woken.
#[test]
fn polling_by_hand_registers_the_latest_waker() {
    let pool = ThreadPool::new(1);
    let gate = Gate::new();
    let blocked = Arc::clone(&gate);
    let mut handle = pool.spawn(move || {
        blocked.pass();
        "value"
    });

    let first = CountingWaker::new();
    let second = CountingWaker::new();
    let first_waker = Waker::from(Arc::clone(&first));
    let second_waker = Waker::from(Arc::clone(&second));

    let poll = |handle: &mut JoinHandle<&'static str>, waker: &Waker| {
        Pin::new(handle).poll(&mut Context::from_waker(waker))
    };
    assert!(poll(&mut handle, &first_waker).is_pending());
    assert!(poll(&mut handle, &first_waker).is_pending());
    assert!(poll(&mut handle, &second_waker).is_pending());
    gate.open();
    second.wait_for_wakes(1);
    match poll(&mut handle, &second_waker) {
        Poll::Ready(result) => assert_eq!(result.unwrap(), "value"),
        Poll::Pending => panic!("woken, but still pending"),
    }
    assert_eq!(second.wakes(), 1, "woken once");
}

/// A handle already polled to completion has given its result away: polling
/// or joining it again panics (documented under `JoinHandle::join`).
#[test]
fn handle_polled_to_completion_panics_when_joined_or_polled_again() {
    quiet_deliberate_panics();
    let pool = ThreadPool::new(1);
    for join_after in [true, false] {
        let mut handle = pool.spawn(|| 1);
        pool.wait_idle();
        let waker = Waker::from(CountingWaker::new());
        let mut cx = Context::from_waker(&waker);
        assert!(matches!(
            Pin::new(&mut handle).poll(&mut cx),
            Poll::Ready(Ok(1))
        ));
        let again = panic::catch_unwind(AssertUnwindSafe(|| {
            if join_after {
                let _ = handle.join();
            } else {
                let _ = Pin::new(&mut handle).poll(&mut cx);
            }
        }));
        let payload = again.expect_err("the result was already taken");
        let text = payload_text(&*payload).unwrap_or_default();
        assert!(text.contains("polled again"), "{text}");
    }
}

// ---------------------------------------------------------------------------
// Joining from inside the pool
// ---------------------------------------------------------------------------

/// Naive parallel Fibonacci: every call above the base case spawns both
/// halves on the current pool and joins them, so the workers join their own
/// children all the way down.
fn fib(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let pool = Handle::current().expect("fib runs on a worker");
    let a = pool.spawn(move || fib(n - 1)).expect("the pool is running");
    let b = pool.spawn(move || fib(n - 2)).expect("the pool is running");
    a.join().unwrap() + b.join().unwrap()
}

fn fib_serial(n: u64) -> u64 {
    (0..n).fold((0, 1), |(a, b), _| (b, a + b)).0
}

/// How many jobs `fib(n)` spawns, counting itself.
fn fib_jobs(n: u64) -> usize {
    if n < 2 {
        1
    } else {
        1 + fib_jobs(n - 1) + fib_jobs(n - 2)
    }
}

#[test]
fn parallel_fib_joins_its_own_children_on_1_2_and_4_threads() {
    // 1219 jobs; under Miri, 67 (nested helping joins all the same, at a
    // cost Miri can afford on every seed).
    const N: u64 = if cfg!(miri) { 8 } else { 14 };
    for threads in [1, 2, 4] {
        let pool = ThreadPool::new(threads);
        let result = pool.spawn(|| fib(N)).join().unwrap();
        assert_eq!(result, fib_serial(N), "{threads} threads");
        pool.wait_idle();
        assert_eq!(pool.completed_count(), fib_jobs(N), "{threads} threads");
    }
}

/// A binary tree of depth `depth` whose node `i` (heap numbering) is worth
/// `i`; each node spawns its two subtrees through the pool it runs on, via a
/// shared `ThreadPool` this time, and joins them.
fn tree_sum(pool: &Arc<ThreadPool>, node: u64, depth: u32) -> u64 {
    if depth == 0 {
        return node;
    }
    let spawn_child = |child: u64| {
        let inner = Arc::clone(pool);
        pool.spawn(move || tree_sum(&inner, child, depth - 1))
    };
    let (left, right) = (spawn_child(2 * node), spawn_child(2 * node + 1));
    node + left.join().unwrap() + right.join().unwrap()
}

#[test]
fn tree_sum_joins_its_own_children_on_1_2_and_4_threads() {
    // 511 jobs; under Miri, 31 (see `parallel_fib_...` above).
    const DEPTH: u32 = if cfg!(miri) { 4 } else { 8 };
    let nodes = (1u64 << (DEPTH + 1)) - 1;
    for threads in [1, 2, 4] {
        let pool = Arc::new(ThreadPool::new(threads));
        let root = Arc::clone(&pool);
        let sum = pool
            .spawn(move || tree_sum(&root, 1, DEPTH))
            .join()
            .unwrap();
        assert_eq!(sum, nodes * (nodes + 1) / 2, "{threads} threads");
        pool.wait_idle();
        assert_eq!(pool.completed_count() as u64, nodes, "{threads} threads");
    }
}

/// The joining worker is the only one free: the other is held at a gate that
/// opens only after the join returned. The children can only have run on the
/// joiner itself, while it waited.
#[test]
fn a_joining_worker_runs_its_children_while_the_others_are_busy() {
    let pool = ThreadPool::new(2);
    let gate = Gate::new();
    let (started_tx, started_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    pool.execute(move || {
        started_tx.send(thread::current().id()).unwrap();
        blocked.pass();
    });
    let busy_worker = started_rx.recv_timeout(HANG).unwrap();

    let (done_tx, done_rx) = mpsc::channel();
    pool.execute(move || {
        let me = thread::current().id();
        let pool = Handle::current().unwrap();
        let children: Vec<_> = (0..10)
            .map(|i| pool.spawn(move || (i, thread::current().id())).unwrap())
            .collect();
        let ran: Vec<_> = children.into_iter().map(|c| c.join().unwrap()).collect();
        done_tx.send((me, ran)).unwrap();
    });
    let (joiner, ran) = done_rx
        .recv_timeout(HANG)
        .expect("the join must not wait for the busy worker");
    assert_ne!(joiner, busy_worker);
    for (i, (value, thread)) in ran.into_iter().enumerate() {
        assert_eq!(value, i);
        assert_eq!(thread, joiner, "child {i} ran on the joining worker");
    }
    assert!(!gate.is_open());
    gate.open();
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 12);
}

/// A join whose child is running on another worker (so there is nothing to
/// help with) sleeps, and is woken when the child finishes.
#[test]
fn a_joining_worker_sleeps_until_a_child_running_elsewhere_finishes() {
    let pool = ThreadPool::new(2);
    let gate = Gate::new();
    let (report_tx, report_rx) = mpsc::channel();
    let (result_tx, result_rx) = mpsc::channel();
    let blocked = Arc::clone(&gate);
    pool.execute(move || {
        let (started_tx, started_rx) = mpsc::channel();
        let child = Handle::current()
            .unwrap()
            .spawn(move || {
                started_tx.send(thread::current().id()).unwrap();
                blocked.pass();
                "child"
            })
            .unwrap();
        // This worker does not join until the idle one has taken the child,
        // so the join finds nothing queued to help with.
        let child_thread = started_rx
            .recv_timeout(HANG)
            .expect("the idle worker takes the child");
        report_tx
            .send((thread::current().id(), child_thread))
            .unwrap();
        result_tx.send(child.join().unwrap()).unwrap();
    });
    let (parent, child_thread) = report_rx.recv_timeout(HANG).unwrap();
    assert_ne!(parent, child_thread, "the child ran on the other worker");
    assert!(result_rx.try_recv().is_err(), "the child is still held");
    gate.open();
    assert_eq!(result_rx.recv_timeout(HANG).unwrap(), "child");
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 2);
}

/// Joining a job of another pool from a worker is a plain blocking join: it
/// does not run the other pool's jobs.
#[test]
fn join_on_a_worker_of_another_pool_blocks_without_helping() {
    let outer = Builder::new()
        .num_threads(1)
        .thread_name(|i| format!("outer-{i}"))
        .build()
        .unwrap();
    let inner = Arc::new(
        Builder::new()
            .num_threads(1)
            .thread_name(|i| format!("inner-{i}"))
            .build()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let other = Arc::clone(&inner);
    outer.execute(move || {
        let children: Vec<_> = (0..5)
            .map(|i| other.spawn(move || (i, thread_name())))
            .collect();
        let ran: Vec<_> = children.into_iter().map(|c| c.join().unwrap()).collect();
        tx.send(ran).unwrap();
    });
    let ran = rx.recv_timeout(HANG).unwrap();
    for (i, (value, name)) in ran.into_iter().enumerate() {
        assert_eq!(value, i);
        assert_eq!(name.as_deref(), Some("inner-0"), "ran on its own pool");
    }
}
