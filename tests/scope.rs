//! Scoped jobs: borrowing, completion, panics, nesting and helping.
//!
//! Sizes are small on purpose: these tests also run under Miri, which checks
//! the lifetime erasure in `src/scope.rs` and the result slots for undefined
//! behaviour. The few sleeps only make races likelier (a job still running
//! when the scope starts waiting); no assertion depends on their length.

mod support;

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use weft::{Builder, ThreadPool};

/// Runs `f`, which must panic, and returns its payload's text.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = panic::catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    text(&*payload)
}

fn text(payload: &(dyn std::any::Any + Send)) -> String {
    support::payload_text(payload)
        .unwrap_or_default()
        .to_owned()
}

/// Sums `data` by splitting it in halves, each half a scoped job, down to
/// small pieces: a scope nested in every level of scoped jobs.
fn tree_sum(pool: &ThreadPool, data: &[u64]) -> u64 {
    if data.len() <= 4 {
        return data.iter().sum();
    }
    let (left, right) = data.split_at(data.len() / 2);
    pool.scope(|s| {
        let left = s.spawn(|| tree_sum(pool, left));
        let right = s.spawn(|| tree_sum(pool, right));
        left.join().unwrap() + right.join().unwrap()
    })
}

#[test]
fn jobs_mutate_borrowed_chunks_in_place() {
    let pool = ThreadPool::new(2);
    let mut data: Vec<u32> = (0..200).collect();
    pool.scope(|s| {
        for chunk in data.chunks_mut(7) {
            s.execute(move || chunk.iter_mut().for_each(|x| *x = *x * 3 + 1));
        }
    });
    assert!(data.iter().enumerate().all(|(i, &x)| x == i as u32 * 3 + 1));
}

#[test]
fn spawned_jobs_return_values_computed_from_borrowed_data() {
    let pool = ThreadPool::new(2);
    let words = [String::from("alpha"), String::from("be"), String::from("c")];
    let lengths: Vec<usize> = pool.scope(|s| {
        let handles: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(lengths, [5, 2, 1]);
    // The words are still ours.
    assert_eq!(words.concat(), "alphabec");
}

#[test]
fn scope_returns_the_closures_value() {
    let pool = ThreadPool::new(1);
    assert_eq!(pool.scope(|_| 7), 7);
    let owned = pool.scope(|s| {
        s.execute(|| {});
        String::from("done")
    });
    assert_eq!(owned, "done");
}

#[test]
fn scope_waits_for_jobs_nobody_joins() {
    let pool = ThreadPool::new(2);
    let finished = AtomicUsize::new(0);
    pool.scope(|s| {
        for i in 0..6 {
            let finished = &finished;
            s.execute(move || {
                if i % 2 == 0 {
                    thread::sleep(Duration::from_millis(5));
                }
                finished.fetch_add(1, SeqCst);
            });
        }
        // Spawned, handle dropped at once: still waited for.
        drop(s.spawn(|| {
            thread::sleep(Duration::from_millis(5));
            finished.fetch_add(1, SeqCst)
        }));
    });
    assert_eq!(finished.load(SeqCst), 7);
}

#[test]
fn scope_waits_for_jobs_started_by_its_jobs() {
    let pool = ThreadPool::new(2);
    let hits = Mutex::new(Vec::new());
    pool.scope(|s| {
        for i in 0..3 {
            let hits = &hits;
            s.execute(move || {
                for j in 0..3 {
                    s.execute(move || {
                        thread::sleep(Duration::from_millis(1));
                        hits.lock().unwrap().push(i * 10 + j);
                    });
                }
            });
        }
    });
    let mut hits = hits.into_inner().unwrap();
    hits.sort_unstable();
    assert_eq!(hits, [0, 1, 2, 10, 11, 12, 20, 21, 22]);
}

#[test]
fn an_empty_scope_returns_at_once() {
    let pool = ThreadPool::new(1);
    pool.scope(|_| {});
    assert_eq!(pool.completed_count(), 0);
}

#[test]
fn unjoined_results_are_dropped_before_scope_returns() {
    struct Tally<'a>(&'a AtomicUsize);
    impl Drop for Tally<'_> {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }
    let pool = ThreadPool::new(2);
    let dropped = AtomicUsize::new(0);
    pool.scope(|s| {
        for _ in 0..4 {
            // Dropped before the job finishes (the job drops the result) or
            // after it (the handle drops it).
            drop(s.spawn(|| Tally(&dropped)));
        }
        let kept = s.spawn(|| Tally(&dropped));
        thread::sleep(Duration::from_millis(2));
        drop(kept);
    });
    assert_eq!(dropped.load(SeqCst), 5);
}

#[test]
fn an_unjoined_panic_makes_scope_panic_after_every_job() {
    let pool = ThreadPool::new(2);
    let finished = AtomicUsize::new(0);
    let message = panic_message(|| {
        pool.scope(|s| {
            s.execute(|| panic!("scoped failure"));
            for _ in 0..4 {
                s.execute(|| {
                    thread::sleep(Duration::from_millis(2));
                    finished.fetch_add(1, SeqCst);
                });
            }
        })
    });
    assert_eq!(message, "a scoped job panicked");
    assert_eq!(finished.load(SeqCst), 4);
    pool.wait_idle();
    assert_eq!(pool.panic_count(), 1);
    assert_eq!(pool.completed_count(), 4);
}

#[test]
fn a_spawned_panic_whose_handle_is_dropped_makes_scope_panic() {
    let pool = ThreadPool::new(1);
    let message = panic_message(|| {
        pool.scope(|s| {
            let handle = s.spawn(|| -> u8 { panic!("nobody looks") });
            drop(handle);
        })
    });
    assert_eq!(message, "a scoped job panicked");
}

#[test]
fn a_joined_panic_is_the_joiners_to_handle() {
    let pool = ThreadPool::new(2);
    let outcome = pool.scope(|s| {
        let failed = s.spawn(|| -> u8 { panic!("handled") });
        let err = failed.join().unwrap_err();
        assert!(err.is_panic());
        text(&*err.into_panic())
    });
    assert_eq!(outcome, "handled");
    pool.wait_idle();
    assert_eq!(pool.panic_count(), 1);
}

#[test]
fn scoped_panics_do_not_reach_the_panic_handler() {
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&handled);
    let pool = Builder::new()
        .num_threads(1)
        .panic_handler(move |_| {
            seen.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        pool.scope(|s| s.execute(|| panic!("belongs to the scope")));
    }));
    assert!(result.is_err());
    pool.execute(|| panic!("belongs to the handler"));
    pool.wait_idle();
    assert_eq!(handled.load(SeqCst), 1);
    assert_eq!(pool.panic_count(), 2);
}

#[test]
fn the_closures_panic_is_resumed_after_its_jobs_finish() {
    let pool = ThreadPool::new(2);
    let finished = AtomicBool::new(false);
    let message = panic_message(|| {
        pool.scope(|s| {
            s.execute(|| {
                thread::sleep(Duration::from_millis(10));
                finished.store(true, SeqCst);
            });
            panic!("the closure's own");
        })
    });
    assert_eq!(message, "the closure's own");
    assert!(
        finished.load(SeqCst),
        "scope unwound before its job finished"
    );
}

#[test]
fn the_closures_panic_wins_over_an_unjoined_job_panic() {
    let pool = ThreadPool::new(1);
    let message = panic_message(|| {
        pool.scope(|s| {
            s.execute(|| panic!("the job's"));
            panic!("the closure's");
        })
    });
    assert_eq!(message, "the closure's");
}

/// A result whose `Drop` panics, used by the two tests below.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("result dropped");
    }
}

#[test]
fn a_result_that_panics_on_drop_in_the_job_makes_scope_panic() {
    // The handle is dropped while the job is held at a gate, so the job
    // drops the result last, on its worker: an unjoined panic of the scope.
    let pool = ThreadPool::new(1);
    let gate = support::Gate::new();
    let message = panic_message(|| {
        pool.scope(|s| {
            let handle = s.spawn(|| {
                gate.pass();
                Bomb
            });
            drop(handle);
            gate.open();
        })
    });
    assert_eq!(message, "a scoped job panicked");
    pool.execute(|| {});
    pool.wait_idle();
}

#[test]
fn a_result_that_panics_on_drop_in_the_closure_is_the_closures_panic() {
    // The job has let go of its slot first (`wait_idle`, from outside the
    // pool, returns only after that), so dropping the handle drops the
    // result in the scope's closure, which panics there; `scope` resumes that
    // panic. (`is_finished` would not do: the job still holds the slot for a
    // moment after resolving it.)
    let pool = ThreadPool::new(1);
    let message = panic_message(|| {
        pool.scope(|s| {
            let handle = s.spawn(|| Bomb);
            pool.wait_idle();
            drop(handle);
        })
    });
    assert_eq!(message, "result dropped");
    pool.execute(|| {});
    pool.wait_idle();
}

#[test]
fn nested_scopes_finish_on_a_one_thread_pool() {
    let pool = ThreadPool::new(1);
    let data: Vec<u64> = (1..=64).collect();
    assert_eq!(tree_sum(&pool, &data), 64 * 65 / 2);
}

#[test]
fn nested_scopes_finish_on_a_two_thread_pool() {
    let pool = ThreadPool::new(2);
    let data: Vec<u64> = (1..=100).collect();
    assert_eq!(tree_sum(&pool, &data), 5050);
}

#[test]
fn a_scope_inside_a_plain_job_helps_on_a_one_thread_pool() {
    let pool = Arc::new(ThreadPool::new(1));
    let inner = Arc::clone(&pool);
    let result = pool.spawn(move || {
        let mut cells = [0u8; 8];
        inner.scope(|s| {
            for (i, cell) in cells.iter_mut().enumerate() {
                s.execute(move || *cell = i as u8 + 1);
            }
            let sum = s.spawn(|| 40 + 2);
            assert_eq!(sum.join().unwrap(), 42);
        });
        cells.iter().map(|&c| u32::from(c)).sum::<u32>()
    });
    assert_eq!(result.join().unwrap(), 36);
    drop(pool);
}

#[test]
fn a_handle_can_be_joined_by_another_scoped_job() {
    let pool = ThreadPool::new(2);
    let doubled = pool.scope(|s| {
        let first = s.spawn(|| 21);
        let second = s.spawn(move || first.join().unwrap() * 2);
        second.join().unwrap()
    });
    assert_eq!(doubled, 42);
}

#[test]
fn is_finished_reports_a_finished_job() {
    let pool = ThreadPool::new(1);
    pool.scope(|s| {
        let handle = s.spawn(|| 5);
        while !handle.is_finished() {
            thread::yield_now();
        }
        assert_eq!(handle.join().unwrap(), 5);
    });
}

#[test]
fn a_full_bounded_queue_makes_scoped_submissions_wait() {
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let mut slots = [0u32; 6];
    pool.scope(|s| {
        for (i, slot) in slots.iter_mut().enumerate() {
            s.execute(move || {
                thread::sleep(Duration::from_millis(1));
                *slot = i as u32;
            });
        }
    });
    assert_eq!(slots, [0, 1, 2, 3, 4, 5]);
}

#[test]
fn scoped_jobs_on_a_worker_are_accepted_past_the_capacity() {
    // One worker, capacity one: a scoped job that starts more scoped jobs
    // than fit must not block on the queue only it can drain.
    let pool = Builder::new()
        .num_threads(1)
        .queue_capacity(1)
        .build()
        .unwrap();
    let count = AtomicUsize::new(0);
    pool.scope(|s| {
        s.execute(|| {
            for _ in 0..5 {
                s.execute(|| {
                    count.fetch_add(1, SeqCst);
                });
            }
        });
    });
    assert_eq!(count.load(SeqCst), 5);
}

#[test]
fn scoped_jobs_are_counted_like_any_other() {
    let pool = ThreadPool::new(2);
    pool.scope(|s| {
        for _ in 0..5 {
            s.execute(|| {});
        }
        let _ = s.spawn(|| 1).join();
    });
    pool.wait_idle();
    assert_eq!(pool.completed_count(), 6);
    assert_eq!(pool.panic_count(), 0);
}

#[test]
fn several_threads_can_run_scopes_on_one_pool_at_once() {
    let pool = ThreadPool::new(2);
    thread::scope(|outer| {
        for t in 0..3u32 {
            let pool = &pool;
            outer.spawn(move || {
                let mut values = [0u32; 5];
                pool.scope(|s| {
                    for (i, v) in values.iter_mut().enumerate() {
                        s.execute(move || *v = t * 100 + i as u32);
                    }
                });
                assert!(values
                    .iter()
                    .enumerate()
                    .all(|(i, &v)| v == t * 100 + i as u32));
            });
        }
    });
}

#[test]
fn a_scope_on_a_worker_of_another_pool_blocks_without_deadlock() {
    let outer = ThreadPool::new(1);
    let inner = Arc::new(ThreadPool::new(1));
    let inner_for_job = Arc::clone(&inner);
    let sum = outer.spawn(move || {
        let data = [1u32, 2, 3, 4];
        inner_for_job.scope(|s| {
            let halves: Vec<_> = data
                .chunks(2)
                .map(|half| s.spawn(move || half.iter().sum::<u32>()))
                .collect();
            halves.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
        })
    });
    assert_eq!(sum.join().unwrap(), 10);
}

#[test]
fn the_pool_can_be_shut_down_right_after_a_scope() {
    let pool = ThreadPool::new(2);
    let mut data = vec![1u8; 16];
    pool.scope(|s| {
        for byte in &mut data {
            s.execute(move || *byte += 1);
        }
    });
    pool.shutdown();
    assert!(data.iter().all(|&b| b == 2));
}

/// `Debug` of a scope and of a scoped handle names the type and shows the
/// scope's pending count and whether the job finished (read under the
/// scope's lock; printing must not wait for the jobs).
#[test]
fn scope_and_scoped_handle_debug_show_their_state() {
    let pool = ThreadPool::new(1);
    pool.scope(|scope| {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let handle = scope.spawn(move || gate.recv().unwrap());
        let scope_text = format!("{scope:?}");
        assert!(
            scope_text.starts_with("Scope {") && scope_text.contains("pending: 1"),
            "{scope_text}"
        );
        assert_eq!(
            format!("{handle:?}"),
            "ScopedJoinHandle { finished: false, .. }"
        );
        release.send(()).unwrap();
        handle.join().unwrap();
    });
    pool.shutdown();
}
