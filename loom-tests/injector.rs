//! The lock-free outside queue (`src/injector.rs`) on its own: pushers
//! claiming slots with a CAS while the consumer pops, across block
//! boundaries (blocks hold two slots under loom), and a close racing a push.
//! The pool-level half of its protocol (a worker going to sleep against a
//! lock-free submitter) is modelled through the pool by `wakeup.rs` and
//! `spin.rs`, whose submissions from a caller thread take the lock-free
//! path.
//!
//! Every job is an `Execute` closure that bumps its own counter, so a job
//! lost, run twice or read torn shows up as a wrong count; a slot read
//! before it is written is a loom causality violation on its cell.

use loom::thread;

use super::model;
use crate::injector::{Injector, Pop};
use crate::job::{Execute, TypedJob};
use crate::sync::{Arc, AtomicUsize, Ordering};

/// A job that adds one to `counts[index]` when run.
fn counting_job(
    counts: &Arc<[AtomicUsize; 5]>,
    index: usize,
) -> TypedJob<Execute<impl FnOnce() + Send + 'static>> {
    let counts = Arc::clone(counts);
    TypedJob::new(Execute(move || {
        counts[index].fetch_add(1, Ordering::Relaxed);
    }))
}

fn new_counts() -> Arc<[AtomicUsize; 5]> {
    Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)))
}

/// Starts a thread that pushes the jobs `indices` into the queue. A job the
/// queue refuses is handed back, and the pusher runs it; the thread returns
/// how many were refused.
fn spawn_pusher(
    queue: &Arc<Injector>,
    counts: &Arc<[AtomicUsize; 5]>,
    indices: std::ops::Range<usize>,
) -> thread::JoinHandle<usize> {
    let queue = Arc::clone(queue);
    let counts = Arc::clone(counts);
    thread::spawn(move || {
        let mut refused = 0;
        for index in indices {
            if let Err(job) = queue.push(counting_job(&counts, index), TypedJob::into_job) {
                job.into_job().run();
                refused += 1;
            }
        }
        refused
    })
}

/// Joins a pusher of a queue that was never closed.
fn join_open_pusher(pusher: thread::JoinHandle<usize>) {
    assert_eq!(pusher.join().unwrap(), 0, "an open queue refused a push");
}

/// Checks that jobs `0..n` each ran exactly once and that `popped` says `n`.
fn assert_first_ran_once(counts: &[AtomicUsize; 5], popped: usize, n: usize) {
    assert_eq!(popped, n, "jobs were lost or duplicated");
    for (index, count) in counts.iter().enumerate().take(n) {
        let runs = count.load(Ordering::Relaxed);
        assert_eq!(runs, 1, "job {index} ran {runs} times");
    }
}

/// Pops (as the only consumer) `attempts` times while the pushers may still
/// run, running what comes out; a bounded number of tries rather than a spin,
/// which would unroll into more branches than loom allows. Returns how many
/// jobs came out.
fn pop_concurrently(queue: &Injector, attempts: usize) -> usize {
    let mut popped = 0;
    for _ in 0..attempts {
        // SAFETY: the calling thread is the model's only consumer.
        match unsafe { queue.pop() } {
            Pop::Job(job) => {
                job.run();
                popped += 1;
            }
            // Empty: nothing claimed yet; Pending: claimed, not yet written.
            Pop::Pending | Pop::Empty => {}
        }
    }
    popped
}

/// Once the pushers are joined: pops and runs everything left, which must be
/// ready (no `Pending`); returns how many.
fn drain_after_join(queue: &Injector) -> usize {
    let mut popped = 0;
    loop {
        // SAFETY: the pushers are joined; the calling thread is the only
        // consumer.
        match unsafe { queue.pop() } {
            Pop::Job(job) => {
                job.run();
                popped += 1;
            }
            Pop::Pending => panic!("a joined pusher left its slot unwritten"),
            Pop::Empty => return popped,
        }
    }
}

/// Two pushers, two jobs each, so the four jobs fill two blocks and the
/// pushers race for the last slot of the first (which installs the next
/// block) while the consumer pops behind them. Every job comes out exactly
/// once, and the queue is empty afterwards.
#[test]
fn concurrent_pushes_across_blocks_come_out_exactly_once() {
    model(2, || {
        let queue = Arc::new(Injector::new());
        let counts = new_counts();
        let pushers = [
            spawn_pusher(&queue, &counts, 0..2),
            spawn_pusher(&queue, &counts, 2..4),
        ];
        let early = pop_concurrently(&queue, 3);
        for pusher in pushers {
            join_open_pusher(pusher);
        }
        assert_first_ran_once(&counts, early + drain_after_join(&queue), 4);
        // SAFETY: the pushers are joined; this thread is the only consumer.
        assert_eq!(unsafe { queue.len() }, 0);
    });
}

/// One pusher crosses a block boundary (three jobs into two-slot blocks)
/// while the consumer pops; then the queue is dropped with nothing left.
#[test]
fn a_lone_pusher_and_the_consumer_cross_a_block_boundary() {
    model(3, || {
        let queue = Arc::new(Injector::new());
        let counts = new_counts();
        let pusher = spawn_pusher(&queue, &counts, 0..3);
        let early = pop_concurrently(&queue, 3);
        join_open_pusher(pusher);
        assert_first_ran_once(&counts, early + drain_after_join(&queue), 3);
    });
}

/// A close races two pushes. Each job is either refused (and handed back to
/// its pusher, who runs it) or accepted and then found by the draining
/// consumer: never both, never neither. The drain waits out a claimed but
/// unwritten slot (`Pending`) rather than stopping at it.
#[test]
fn close_racing_pushes_keeps_or_refuses_each_job() {
    model(3, || {
        let queue = Arc::new(Injector::new());
        let counts = new_counts();
        let pusher = spawn_pusher(&queue, &counts, 0..2);
        queue.close();
        let mut drained = 0;
        loop {
            // SAFETY: the calling thread is the model's only consumer.
            match unsafe { queue.pop() } {
                Pop::Job(job) => {
                    job.run();
                    drained += 1;
                }
                Pop::Pending => thread::yield_now(),
                Pop::Empty => break,
            }
        }
        let refused = pusher.join().unwrap();
        // The close came before the drain's every look at `tail`, so the
        // drain saw each claim made before it, and none can come after.
        // SAFETY: the pusher is joined; this thread is the only consumer.
        let after = unsafe { queue.pop() };
        assert!(
            matches!(after, Pop::Empty),
            "a job was accepted after the drain"
        );
        assert_first_ran_once(&counts, drained + refused, 2);
        // Nothing is accepted once closed.
        let late = queue.push(counting_job(&counts, 4), TypedJob::into_job);
        assert!(late.is_err(), "a closed queue accepted a push");
    });
}
