//! Scoped jobs: borrowing, completion, panics, nesting and helping.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use weft::{Builder, ThreadPool};

#[test]
fn jobs_mutate_borrowed_chunks_in_place() {
    let pool = ThreadPool::new(2);
    let mut data: Vec<u32> = (0..1000).collect();
    pool.scope(|s| {
        for chunk in data.chunks_mut(37) {
            s.execute(move || chunk.iter_mut().for_each(|x| *x = *x * 3 + 1));
        }
    });
    assert!(data.iter().enumerate().all(|(i, &x)| x == i as u32 * 3 + 1));
}
