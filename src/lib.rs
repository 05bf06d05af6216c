//! weft: a thread pool whose guarantees are model-checked.
//!
//! Every lock, condition variable, `Arc`, thread and thread-local in this
//! crate goes through one shim (`src/sync.rs`). With `--cfg loom` the crate's
//! own test build swaps them for [loom]'s, and the models in `loom-tests/`
//! explore every interleaving of the code that ships, checking the *ledger*:
//!
//! 1. A job the pool **accepted** runs **exactly once** on a worker.
//! 2. A job the pool **rejected** never runs there and comes back inside the
//!    [`SubmitError`] ([`SubmitError::into_inner`]).
//! 3. When [`ThreadPool::shutdown`] (or `drop`) returns, every accepted job
//!    has finished and every worker has been joined.
//! 4. A panicking job loses no other job, does not shrink the pool and does
//!    not poison it.
//! 5. No interleaving of the public operations deadlocks or loses a wake-up;
//!    misuse that would deadlock (such as [`ThreadPool::wait_idle`] from
//!    inside the pool) panics with a message instead.
//! 6. Once the pool is idle, `completed_count() + panic_count()` equals the
//!    number of jobs that ran.
//!
//! # Examples
//!
//! ```
//! use std::sync::mpsc;
//! use weft::ThreadPool;
//!
//! let pool = ThreadPool::new(4);
//! let (tx, rx) = mpsc::channel();
//! for i in 0..8 {
//!     let tx = tx.clone();
//!     pool.execute(move || tx.send(i * i).unwrap());
//! }
//! drop(tx);
//! pool.shutdown(); // waits for all eight jobs
//! let mut squares: Vec<i32> = rx.iter().collect();
//! squares.sort();
//! assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
//! ```
//!
//! To run the models yourself: `RUSTFLAGS="--cfg loom" cargo test`. Larger
//! scenarios (four workers, dozens of jobs) run under [shuttle]'s randomized
//! schedulers with `scripts/shuttle`.
//!
//! [loom]: https://docs.rs/loom
//! [shuttle]: https://docs.rs/shuttle

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod builder;
#[cfg(doctest)]
mod compile_fail;
mod error;
mod hub;
mod injector;
mod job;
mod join;
mod local;
mod pool;
mod queue;
mod scope;
mod shutdown;
mod sleep;
mod spin_lock;
mod sync;
mod worker;

pub use builder::Builder;
pub use error::{BuildError, ShutdownTimedOut, SubmitError, SubmitErrorKind};
pub use job::Job;
pub use join::{JoinError, JoinHandle};
pub use pool::{Handle, ThreadPool};
pub use scope::{Scope, ScopedJoinHandle};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(all(loom, test))]
#[path = "../loom-tests/mod.rs"]
mod loom_tests;

#[cfg(all(shuttle, test))]
#[path = "../shuttle-tests/mod.rs"]
mod shuttle_tests;
