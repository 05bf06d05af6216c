//! A guided tour of weft: run it with `cargo run --example tour`.
//!
//! Each step prints what the pool did and which promise of the ledger it
//! shows. The numbers are checked with `assert!` as well as printed, so if
//! the tour finishes, every claim it made held on this run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use weft::{BuildError, Builder, Handle, SubmitErrorKind, ThreadPool};

fn main() {
    // Deliberate panics below are caught by the pool; keep their messages
    // short instead of printing a backtrace for each.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or("?");
        eprintln!("    (a job panicked: {msg:?}; the pool catches it)");
    }));

    step("1. Fan out, wait for idle");
    let pool = Builder::new()
        .num_threads(4)
        .thread_name(|i| format!("tour-{i}"))
        .build()
        .expect("four threads");
    let started = Instant::now();
    let hits = Arc::new(AtomicUsize::new(0));
    let names = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    for _ in 0..1_000 {
        let hits = Arc::clone(&hits);
        let names = Arc::clone(&names);
        pool.execute(move || {
            hits.fetch_add(1, Ordering::Relaxed);
            let me = std::thread::current().name().unwrap_or("?").to_owned();
            names.lock().unwrap().insert(me);
        });
    }
    pool.wait_idle();
    let ran = hits.load(Ordering::Relaxed);
    println!(
        "    1000 jobs submitted, {ran} ran, on threads {:?}, in {:?}",
        names.lock().unwrap(),
        started.elapsed()
    );
    println!("    -> every accepted job runs exactly once.");
    assert_eq!(ran, 1_000);

    step("2. A panicking job loses nothing");
    let before = pool.completed_count();
    pool.execute(|| panic!("on purpose"));
    for _ in 0..10 {
        let hits = Arc::clone(&hits);
        pool.execute(move || {
            hits.fetch_add(1, Ordering::Relaxed);
        });
    }
    pool.wait_idle();
    println!(
        "    completed {} more, panicked {}, still {} threads",
        pool.completed_count() - before,
        pool.panic_count(),
        pool.num_threads()
    );
    println!("    -> the panic was caught and counted; the pool did not shrink.");
    assert_eq!(pool.completed_count() - before, 10);
    assert_eq!(pool.panic_count(), 1);

    step("3. Jobs that submit jobs, through Handle::current()");
    let (tx, rx) = mpsc::channel();
    pool.execute(move || {
        let handle = Handle::current().expect("running on a worker");
        for child in 0..3 {
            let tx = tx.clone();
            handle.execute(move || tx.send(child).unwrap()).unwrap();
        }
    });
    let mut children: Vec<i32> = rx.iter().take(3).collect();
    children.sort();
    println!("    children reported {children:?}");
    assert_eq!(children, [0, 1, 2]);

    step("4. Scoped jobs borrow the caller's data");
    let mut readings: Vec<u32> = (0..10_000).collect();
    let offset = 7; // borrowed, not moved, by every job
    pool.scope(|s| {
        for chunk in readings.chunks_mut(1_000) {
            s.execute(move || chunk.iter_mut().for_each(|r| *r = *r * 2 + offset));
        }
    });
    let checked = readings
        .iter()
        .enumerate()
        .all(|(i, &r)| r == i as u32 * 2 + offset);
    println!("    10 jobs transformed 10000 readings in place, all correct: {checked}");
    println!("    -> scope returned only after every job it started had finished.");
    assert!(checked);

    step("5. Shutdown drains the queue, then refuses new work");
    let handle = pool.handle();
    let slow_done = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let slow_done = Arc::clone(&slow_done);
        pool.execute(move || {
            std::thread::sleep(Duration::from_millis(5));
            slow_done.fetch_add(1, Ordering::Relaxed);
        });
    }
    println!("    queued before shutdown: {}", pool.queued_count());
    pool.shutdown();
    println!(
        "    after shutdown returned: {} of 8 slow jobs had finished",
        slow_done.load(Ordering::Relaxed)
    );
    assert_eq!(slow_done.load(Ordering::Relaxed), 8);
    let refused = handle
        .execute(|| println!("    ...the refused job, running on the caller's thread"))
        .expect_err("the pool is shut down");
    assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
    println!("    a late submission was refused: {refused}");
    println!("    -> the closure came back inside the error, unrun; run it here:");
    refused.into_inner()();

    step("6. Bad input is an error, not a crash");
    match Builder::new().num_threads(0).build() {
        Err(BuildError::ZeroThreads) => println!("    num_threads(0): {}", BuildError::ZeroThreads),
        other => panic!("expected ZeroThreads, got {other:?}"),
    }
    match Builder::new().num_threads(2).stack_size(usize::MAX).build() {
        Err(err @ BuildError::Spawn(_)) => println!("    stack_size(usize::MAX): {err}"),
        other => panic!("expected a spawn error, got {other:?}"),
    }

    step("7. A job may drop its own pool");
    let slot = Arc::new(Mutex::new(Some(ThreadPool::new(2))));
    let (tx, rx) = mpsc::channel();
    {
        let guard = slot.lock().unwrap();
        let pool = guard.as_ref().unwrap();
        for i in 0..5 {
            let tx = tx.clone();
            pool.execute(move || tx.send(i).unwrap());
        }
        let slot = Arc::clone(&slot);
        pool.execute(move || {
            let pool = slot.lock().unwrap().take();
            drop(pool); // shuts down from inside: helps drain, joins the others
            tx.send(99).unwrap();
        });
    }
    let mut seen: Vec<i32> = rx.iter().collect();
    seen.sort();
    println!("    jobs seen: {seen:?}");
    println!("    -> no deadlock; every other job ran before the drop returned.");
    assert_eq!(seen, [0, 1, 2, 3, 4, 99]);

    println!("\nTour finished: every claim above was checked with assert!.");
}

fn step(title: &str) {
    println!("\n{title}");
}
