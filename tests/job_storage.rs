//! Where a job's closure is stored (`src/job.rs`): in the job itself when it
//! fits in one pointer-sized word, else in a box. Every path a job can take
//! (run from the outside queue, from a bounded queue and from a worker's own
//! deque, refused and handed back inside the error, handed back by
//! `shutdown_now` and run or dropped there, panicking, made for a batch
//! whose iterator then panics) is taken here by a closure of each shape:
//!
//! | shape        | captures                          | stored   |
//! |--------------|-----------------------------------|----------|
//! | `nothing`    | nothing (zero-sized)              | in place |
//! | `one_arc`    | an `Arc` (a pointer)              | in place |
//! | `padded`     | a `u32` and a `bool` (3 bytes of padding) | in place |
//! | `large`      | an `Arc` and three `u64`s         | boxed    |
//! | `over_aligned` | a zero-sized value aligned to 16 | boxed    |
//!
//! Each closure counts its run in a per-test tally, so a job run twice, never
//! run, or read back from the wrong bytes shows up as a wrong count; those
//! that capture an `Arc` witness show, by its count, that what they captured
//! was dropped exactly once. Small enough for Miri, which `scripts/miri`
//! runs this file under.

mod support;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;

use support::{probe_until_closed, quiet_deliberate_panics, Gate, DELIBERATE, HANG};
use weft::{Builder, Handle, SubmitErrorKind, ThreadPool};

/// The shapes, in the order of a tally's counters.
const SHAPES: usize = 5;

/// Runs counted per shape, one tally per test (tests run in parallel). A
/// closure that captures nothing can only reach a `static`.
struct Tally([AtomicUsize; SHAPES]);

impl Tally {
    const fn new() -> Tally {
        Tally([const { AtomicUsize::new(0) }; SHAPES])
    }
}

static TALLIES: [Tally; 6] = [const { Tally::new() }; 6];

/// What `padded` adds to its counter each run: its `u32` plus its `bool`,
/// so that wrong bytes read back change the count.
const PADDED_TAG: u32 = 40;
const PADDED_RUN: usize = PADDED_TAG as usize + 1;

/// The `u64`s `large` carries and checks when it runs.
const LARGE_DATA: [u64; 3] = [0x0123_4567, 0x89ab_cdef, u64::MAX];

/// A zero-sized value that must be boxed: it is aligned beyond a pointer.
#[derive(Clone, Copy)]
#[repr(align(16))]
struct Aligned16;

fn nothing<const T: usize>() -> impl FnOnce() + Send + 'static {
    || {
        TALLIES[T].0[0].fetch_add(1, Ordering::SeqCst);
    }
}

fn one_arc<const T: usize>(witness: &Arc<()>) -> impl FnOnce() + Send + 'static {
    let witness = Arc::clone(witness);
    move || {
        let _captured = &witness;
        TALLIES[T].0[1].fetch_add(1, Ordering::SeqCst);
    }
}

fn padded<const T: usize>() -> impl FnOnce() + Send + 'static {
    let (tag, flag) = (PADDED_TAG, true);
    move || {
        TALLIES[T].0[2].fetch_add(tag as usize + usize::from(flag), Ordering::SeqCst);
    }
}

fn large<const T: usize>(witness: &Arc<()>) -> impl FnOnce() + Send + 'static {
    let (witness, data) = (Arc::clone(witness), LARGE_DATA);
    move || {
        let _captured = &witness;
        assert_eq!(data, LARGE_DATA, "a boxed job's captures changed");
        TALLIES[T].0[3].fetch_add(1, Ordering::SeqCst);
    }
}

fn over_aligned<const T: usize>() -> impl FnOnce() + Send + 'static {
    let aligned = Aligned16;
    move || {
        let aligned = aligned;
        assert_eq!(&aligned as *const Aligned16 as usize % 16, 0);
        TALLIES[T].0[4].fetch_add(1, Ordering::SeqCst);
    }
}

/// Shapes whose size and alignment decide where they are stored; checked
/// here so that a change to a capture cannot quietly move a shape to the
/// other storage.
#[test]
fn shapes_are_the_sizes_this_file_claims() {
    let witness = Arc::new(());
    let word = std::mem::size_of::<usize>();
    assert_eq!(size_of_val(&nothing::<0>()), 0);
    assert_eq!(size_of_val(&one_arc::<0>(&witness)), word);
    assert_eq!(size_of_val(&padded::<0>()), 8);
    assert!(size_of_val(&large::<0>(&witness)) > word);
    assert_eq!(align_of_val(&over_aligned::<0>()), 16);
}

fn size_of_val<T>(_: &T) -> usize {
    std::mem::size_of::<T>()
}

fn align_of_val<T>(_: &T) -> usize {
    std::mem::align_of::<T>()
}

/// The runs each shape counted in tally `T`.
fn runs<const T: usize>() -> [usize; SHAPES] {
    std::array::from_fn(|shape| TALLIES[T].0[shape].load(Ordering::SeqCst))
}

/// Submits one job of every shape through `handle`.
fn execute_every_shape<const T: usize>(handle: &Handle, witness: &Arc<()>) {
    handle.execute(nothing::<T>()).unwrap();
    handle.execute(one_arc::<T>(witness)).unwrap();
    handle.execute(padded::<T>()).unwrap();
    handle.execute(large::<T>(witness)).unwrap();
    handle.execute(over_aligned::<T>()).unwrap();
}

#[test]
fn jobs_of_every_shape_run_once_from_every_queue() {
    const T: usize = 0;
    let witness = Arc::new(());
    // Unbounded: the lock-free outside queue. Bounded: the locked one.
    let unbounded = ThreadPool::new(2);
    let bounded = Builder::new()
        .num_threads(2)
        .queue_capacity(16)
        .build()
        .unwrap();
    for pool in [&unbounded, &bounded] {
        execute_every_shape::<T>(&pool.handle(), &witness);
        // From a worker: onto its own deque.
        let inside = Arc::clone(&witness);
        pool.execute(move || {
            let handle = Handle::current().expect("on a worker");
            execute_every_shape::<T>(&handle, &inside);
        });
        pool.wait_idle();
    }
    drop((unbounded, bounded));
    assert_eq!(runs::<T>(), [4, 4, 4 * PADDED_RUN, 4, 4]);
    assert_eq!(Arc::strong_count(&witness), 1, "every capture was dropped");
}

#[test]
fn refused_jobs_of_every_shape_come_back_whole() {
    const T: usize = 1;
    let witness = Arc::new(());
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    pool.shutdown();

    fn take_back<F>(refused: Result<(), weft::SubmitError<F>>) -> F {
        let err = refused.expect_err("a shut-down pool refuses");
        assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
        err.into_inner()
    }
    let refused_nothing = take_back(handle.execute(nothing::<T>()));
    let refused_one_arc = take_back(handle.execute(one_arc::<T>(&witness)));
    let refused_padded = take_back(handle.execute(padded::<T>()));
    let refused_large = take_back(handle.execute(large::<T>(&witness)));
    let refused_aligned = take_back(handle.execute(over_aligned::<T>()));
    let refused_batch =
        take_back(handle.execute_batch([large::<T>(&witness), large::<T>(&witness)]));
    assert_eq!(runs::<T>(), [0; SHAPES], "nothing ran in the pool");
    assert_eq!(
        Arc::strong_count(&witness),
        5,
        "the captures are in the errors"
    );

    refused_nothing();
    refused_one_arc();
    refused_padded();
    refused_large();
    refused_aligned();
    assert_eq!(refused_batch.len(), 2);
    for job in refused_batch {
        job();
    }
    assert_eq!(runs::<T>(), [1, 1, PADDED_RUN, 3, 1]);
    assert_eq!(Arc::strong_count(&witness), 1, "every capture was dropped");
}

/// Ends a one-worker pool held at a gate, with two jobs of every shape
/// queued behind the held one (tally `T`), by `shutdown_now`; returns the
/// jobs it handed back (the probes that proved it closed among them).
fn hand_back_every_shape<const T: usize>(witness: &Arc<()>) -> Vec<weft::Job> {
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    let gate = Gate::new();
    let held = Arc::clone(&gate);
    let (started, job_started) = mpsc::channel();
    pool.execute(move || {
        started.send(()).unwrap();
        held.pass();
    });
    // Held before `shutdown_now`, which would otherwise hand it back too.
    job_started.recv_timeout(HANG).unwrap();
    for _ in 0..2 {
        execute_every_shape::<T>(&handle, witness);
    }
    thread::scope(|scope| {
        let ending = scope.spawn(move || pool.shutdown_now());
        let probes = probe_until_closed(&handle);
        gate.open();
        let unstarted = ending.join().unwrap();
        assert_eq!(unstarted.len(), 2 * SHAPES + probes);
        unstarted
    })
}

#[test]
fn handed_back_jobs_of_every_shape_run_once() {
    const T: usize = 2;
    let witness = Arc::new(());
    let unstarted = hand_back_every_shape::<T>(&witness);
    assert_eq!(runs::<T>(), [0; SHAPES], "nothing ran in the pool");
    assert_eq!(Arc::strong_count(&witness), 5, "the unrun jobs hold theirs");
    for job in unstarted {
        job.run();
    }
    assert_eq!(runs::<T>(), [2, 2, 2 * PADDED_RUN, 2, 2]);
    assert_eq!(Arc::strong_count(&witness), 1, "every capture was dropped");
}

#[test]
fn handed_back_jobs_of_every_shape_dropped_unrun_drop_their_captures() {
    const T: usize = 4;
    let witness = Arc::new(());
    let unstarted = hand_back_every_shape::<T>(&witness);
    assert_eq!(Arc::strong_count(&witness), 5, "the unrun jobs hold theirs");
    drop(unstarted);
    assert_eq!(runs::<T>(), [0; SHAPES], "dropping runs nothing");
    assert_eq!(Arc::strong_count(&witness), 1, "every capture was dropped");
}

#[test]
fn panicking_jobs_of_every_shape_drop_their_captures() {
    const T: usize = 3;
    quiet_deliberate_panics();
    let witness = Arc::new(());
    let pool = ThreadPool::new(1);
    let in_place = Arc::clone(&witness);
    pool.execute(move || {
        let _captured = &in_place;
        panic!("{DELIBERATE}: in place");
    });
    let (boxed, data) = (Arc::clone(&witness), LARGE_DATA);
    pool.execute(move || {
        let _captured = (&boxed, data);
        panic!("{DELIBERATE}: boxed");
    });
    execute_every_shape::<T>(&pool.handle(), &witness);
    pool.wait_idle();
    assert_eq!(pool.panic_count(), 2);
    assert_eq!(
        runs::<T>(),
        [1, 1, PADDED_RUN, 1, 1],
        "later jobs still ran"
    );
    drop(pool);
    assert_eq!(Arc::strong_count(&witness), 1, "every capture was dropped");
}

/// Submits a batch of `jobs` whose iterator panics at the first `None`,
/// after making the jobs before it; checks that the panic came through.
fn execute_batch_panicking_at_none<F>(pool: &ThreadPool, jobs: Vec<Option<F>>)
where
    F: FnOnce() + Send + 'static,
{
    let unwound = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.execute_batch(jobs.into_iter().map(|job| match job {
            Some(job) => job,
            None => panic!("{DELIBERATE}: the batch's iterator"),
        }))
    }));
    assert!(unwound.is_err(), "the iterator's panic reaches the caller");
}

#[test]
fn a_batch_whose_iterator_panics_drops_the_jobs_it_made() {
    const T: usize = 5;
    quiet_deliberate_panics();
    let witness = Arc::new(());
    let pool = ThreadPool::new(1);
    // A batch is made before any of it is queued: jobs made before the
    // iterator panics, boxed in the first batch and in place in the second,
    // are dropped unrun.
    execute_batch_panicking_at_none(
        &pool,
        vec![Some(large::<T>(&witness)), Some(large::<T>(&witness)), None],
    );
    execute_batch_panicking_at_none(&pool, vec![Some(one_arc::<T>(&witness)), None]);
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 0, "nothing was queued");
    assert_eq!(runs::<T>(), [0; SHAPES]);
    assert_eq!(Arc::strong_count(&witness), 1, "the jobs made were dropped");
}
