//! The result slot between a spawned job and its `JoinHandle`, and joining
//! without starving the pool (`src/join.rs`). The races explored:
//!
//! - the job resolving its slot while a thread outside the pool checks it
//!   and blocks on it (`join_blocking` against `Slot::resolve`), also while
//!   a graceful shutdown runs;
//! - the handle being dropped while the job runs (detach);
//! - `Future::poll` registering a waker while the job resolves, including a
//!   task that moved and polls again with a different waker;
//! - a worker joining its own child: it must help (run the child itself) on a
//!   1-worker pool, and when the other worker took the child it must sleep on
//!   the pool's condvar and be woken by the child's completion
//!   (`sleep_while_joining` against `wake_helping_joiners`).
//!
//! A result is observed only through the pool's own join or poll, and no
//! model shuts down before that observation unless the race with shutdown is
//! the point; no other notification can rescue a lost one, so a lost wake-up
//! is a loom deadlock.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use super::{model, Mailbox};
use crate::sync::{self, Arc, Condvar, Mutex};
use crate::{Builder, Handle};

/// A job's result that counts its own drops, so a model can tell a value
/// delivered exactly once (one drop, by whoever received it) from one that
/// was duplicated or leaked.
struct Counted {
    value: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// One worker; the main thread spawns a job and joins it at once, so the
/// join can find the slot empty (and block), or already resolved. The value
/// arrives exactly once: `join` returns it, and it is dropped exactly once,
/// by the receiver.
#[test]
fn join_racing_completion_returns_the_result() {
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let job_drops = Arc::clone(&drops);
        let handle = pool.spawn(move || Counted {
            value: 42,
            drops: job_drops,
        });

        // Deadlocks if the resolution's notification fell between the
        // joiner's check and its wait.
        let result = handle.join().expect("the job returned normally");
        assert_eq!(result.value, 42, "join returned the wrong value");
        assert_eq!(
            drops.load(Ordering::Relaxed),
            0,
            "the result was dropped before the joiner received it"
        );
        drop(result);
        pool.shutdown();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the result was not dropped exactly once"
        );
        assert_eq!(
            Arc::strong_count(&drops),
            1,
            "a copy of the result outlived the pool"
        );
    });
}

/// One worker; a caller thread joins the handle while the job runs and the
/// owner shuts the pool down gracefully. Shutdown runs every accepted job, so
/// the join must still return the value, whichever of the job's completion,
/// the close and the joiner's wait comes first.
#[test]
fn join_on_another_thread_racing_shutdown_returns_the_result() {
    model(5, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let handle = pool.spawn(|| 42_usize);
        let joiner = thread::spawn(move || handle.join().ok());
        pool.shutdown();
        assert_eq!(
            joiner.join().unwrap(),
            Some(42),
            "a join racing a graceful shutdown lost the result"
        );
    });
}

/// One worker; the main thread drops the `JoinHandle` while the job may be
/// queued, running or done. Detaching must not cancel the job: it runs
/// exactly once, its result is dropped exactly once (by the slot), and
/// nothing leaks (loom reports a leaked `Arc`).
#[test]
fn dropped_handle_detaches_the_job() {
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let runs = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (job_runs, job_drops) = (Arc::clone(&runs), Arc::clone(&drops));
        let handle = pool.spawn(move || {
            job_runs.fetch_add(1, Ordering::Relaxed);
            Counted {
                value: 7,
                drops: job_drops,
            }
        });
        drop(handle);
        pool.shutdown();
        assert_eq!(
            runs.load(Ordering::Relaxed),
            1,
            "ledger rule 1 broken: a detached job did not run exactly once"
        );
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "a detached job's result was not dropped exactly once"
        );
    });
}

/// A waker built on loom's `Mutex` and `Condvar`, independent of every
/// wake-up inside the pool: `wait` blocks until `wake` has been called (and
/// consumes that call), so a lost wake is a loom deadlock.
struct WakeFlag {
    woken: Mutex<bool>,
    raised: Condvar,
}

impl WakeFlag {
    fn new() -> std::sync::Arc<WakeFlag> {
        std::sync::Arc::new(WakeFlag {
            woken: Mutex::new(false),
            raised: Condvar::new(),
        })
    }

    /// Blocks until woken, then lowers the flag for the next wait.
    fn wait(&self) {
        let mut woken = sync::lock(&self.woken);
        while !*woken {
            woken = sync::wait(&self.raised, woken);
        }
        *woken = false;
    }
}

impl Wake for WakeFlag {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        *sync::lock(&self.woken) = true;
        self.raised.notify_one();
    }
}

/// One worker; the main thread polls the `JoinHandle` as a `Future` while
/// the job runs. A first poll registers one waker; if it is `Pending` the
/// task "moves" and polls with a second waker, then sleeps on that waker
/// alone until the handle is `Ready`. The slot must wake the waker of the
/// latest poll, after the result is visible: a stale or early wake-up is a
/// loom deadlock.
#[test]
fn poll_racing_completion_is_never_lost() {
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let mut handle = pool.spawn(|| 42_usize);

        let first = WakeFlag::new();
        let first_waker = Waker::from(std::sync::Arc::clone(&first));
        let result = match Pin::new(&mut handle).poll(&mut Context::from_waker(&first_waker)) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                let second = WakeFlag::new();
                let second_waker = Waker::from(std::sync::Arc::clone(&second));
                let mut cx = Context::from_waker(&second_waker);
                loop {
                    match Pin::new(&mut handle).poll(&mut cx) {
                        Poll::Ready(result) => break result,
                        // Deadlocks if the slot woke the first waker, or
                        // woke before the result was stored.
                        Poll::Pending => second.wait(),
                    }
                }
            }
        };
        assert_eq!(result.ok(), Some(42), "the polled handle lost the result");
        assert!(
            handle.is_finished(),
            "a handle that returned Ready must report finished"
        );
        drop(handle);
        pool.shutdown();
    });
}

/// What a parent job saw when it joined its child.
#[derive(Debug, PartialEq)]
enum ChildJoin {
    /// `join` returned the child's value.
    Value(usize),
    /// `join` returned an error (cancelled: `true`).
    Failed { cancelled: bool },
    /// `Handle::spawn` refused the child.
    Refused,
}

/// Spawns, on a `workers`-thread pool, a parent job that spawns a child
/// through `Handle::current()` and joins it; the main thread joins the
/// parent. Returns what the parent saw and the child's run count.
fn parent_joins_child(workers: usize) -> (ChildJoin, usize) {
    let pool = Builder::new().num_threads(workers).build().unwrap();
    let child_runs = Arc::new(AtomicUsize::new(0));
    let runs = Arc::clone(&child_runs);
    let parent = pool.spawn(move || {
        let here = Handle::current().expect("a job runs on a worker");
        let child = here.spawn(move || {
            runs.fetch_add(1, Ordering::Relaxed);
            5_usize
        });
        match child {
            Err(_) => ChildJoin::Refused,
            Ok(child) => match child.join() {
                Ok(value) => ChildJoin::Value(value),
                Err(err) => ChildJoin::Failed {
                    cancelled: err.is_cancelled(),
                },
            },
        }
    });
    // Deadlocks if the parent's worker blocked instead of helping, or slept
    // through its child's completion.
    let seen = parent.join().expect("the parent returned normally");
    pool.shutdown();
    (seen, child_runs.load(Ordering::Relaxed))
}

/// One worker: the parent's join is the only thread that can run the child,
/// so it must take the child from the queue and run it while it waits.
#[test]
fn one_worker_joins_its_own_child() {
    model(20, || {
        let (seen, child_runs) = parent_joins_child(1);
        assert_eq!(
            seen,
            ChildJoin::Value(5),
            "a 1-worker pool's job could not join its own child"
        );
        assert_eq!(child_runs, 1, "the child did not run exactly once");
    });
}

/// Two workers: the other worker may steal the child, so the joining worker
/// finds the queue empty and sleeps on the pool's condvar; the child's
/// completion must wake it (`wake_helping_joiners` under the pool lock), or
/// the main thread's join of the parent deadlocks.
#[test]
fn helping_joiner_is_woken_by_the_other_workers_child() {
    model(3, || {
        let (seen, child_runs) = parent_joins_child(2);
        assert_eq!(
            seen,
            ChildJoin::Value(5),
            "a job could not join a child run by the other worker"
        );
        assert_eq!(child_runs, 1, "the child did not run exactly once");
    });
}

/// Two workers, with the child forced onto the other worker. The parent
/// spawns the child and then a decoy on its own deque. Helping takes its own
/// newest job first (the decoy) and a thief the oldest (the child), so the
/// child always runs on the other worker, and the decoy, which waits until
/// the child has started, typically holds the joiner nested in its join
/// until then. When the decoy returns, the joiner finds the queue empty and
/// sleeps on the pool's condvar, racing the child's completion:
/// `wake_helping_joiners` must take the pool lock so its notification cannot
/// fall between the joiner's check of the slot and its wait.
#[test]
fn helping_joiner_sleeps_until_the_other_worker_finishes_the_child() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let child_started = Arc::new(Mailbox::new());
        let parent = pool.spawn(move || {
            let here = Handle::current().expect("a job runs on a worker");
            let started = Arc::clone(&child_started);
            let child = here.spawn(move || {
                started.put(());
                5_usize
            });
            let decoy = here.execute(move || child_started.take());
            match (child, decoy) {
                (Ok(child), Ok(())) => child.join().ok(),
                _ => None,
            }
        });
        // Deadlocks if the joiner slept through its child's completion.
        assert_eq!(
            parent.join().expect("the parent returned normally"),
            Some(5),
            "a job could not join a child run by the other worker"
        );
        pool.shutdown();
    });
}

/// Two workers. The child blocks until a job from outside has run, so when
/// the other worker steals the child, only the joining worker can run that
/// job. The job may be queued (under the pool lock) between the joiner's
/// last look at the queue and its sleep, while no worker sleeps, so its
/// submitter notifies nobody: the joiner's check before it sleeps must see
/// the locked queues (`job_ready_synced` in `sleep_while_joining`), or it
/// sleeps beside a job nobody else can run and the model deadlocks.
#[test]
fn helping_joiner_runs_a_job_queued_as_it_goes_to_sleep() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let unblock: Arc<Mailbox<()>> = Arc::new(Mailbox::new());
        let child_unblock = Arc::clone(&unblock);
        let parent = pool.spawn(move || {
            let here = Handle::current().expect("a job runs on a worker");
            // The pool is open until the main thread has joined the parent.
            let child = here.spawn(move || child_unblock.take()).unwrap();
            child.join().is_ok()
        });
        pool.execute(move || unblock.put(()));
        assert!(
            parent.join().expect("the parent returned normally"),
            "the child's join failed"
        );
        pool.shutdown();
    });
}
