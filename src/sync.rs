//! The synchronization shim: the one file that names `std::sync`, `std::thread`
//! or `loom`.
//!
//! Every lock, condition variable, atomic, `Arc`, thread and thread-local the
//! pool uses is imported from here. In the library's own test build with
//! `--cfg loom` (`cfg(all(loom, test))`) these are loom's model-checked
//! versions, so the models in `loom-tests/` explore the very code that ships;
//! in every other build (including integration tests and doctests compiled
//! with `--cfg loom`) they are std's.
//!
//! Time goes through here too. loom has no clock: under loom
//! [`Condvar::wait_timeout`] behaves like `wait` (it never times out) and
//! [`Instant`] is frozen, so a timed call is modelled as its untimed
//! counterpart (or, with a zero timeout, as already expired) and the timeout
//! paths are tested with real threads in `tests/`.

#[cfg(all(loom, test))]
mod imp {
    // Renamed so that nothing outside the shim names an `UnsafeCell`
    // (`scripts/check-shim`); the std twin below has the same API.
    #[allow(clippy::unsafe_removed_from_name)]
    pub(crate) use loom::cell::UnsafeCell as RawCell;
    pub(crate) use loom::hint::spin_loop;
    pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use loom::thread::{yield_now, Builder as ThreadBuilder, JoinHandle, ThreadId};
    pub(crate) use loom::thread_local;

    pub(crate) fn current_thread_id() -> ThreadId {
        loom::thread::current().id()
    }
}

#[cfg(not(all(loom, test)))]
mod imp {
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread::{yield_now, Builder as ThreadBuilder, JoinHandle, ThreadId};
    pub(crate) use std::thread_local;

    pub(crate) fn current_thread_id() -> ThreadId {
        std::thread::current().id()
    }

    /// `std::cell::UnsafeCell` with loom's access API: the pointer is only
    /// lent to a closure, so under loom every access is tracked and two
    /// accesses not ordered by happens-before are reported as a race.
    pub(crate) struct RawCell<T>(std::cell::UnsafeCell<T>);

    impl<T> RawCell<T> {
        pub(crate) const fn new(value: T) -> RawCell<T> {
            RawCell(std::cell::UnsafeCell::new(value))
        }

        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub(crate) use imp::*;

/// Whether this is the crate's own loom test build, the one the models run
/// in. Code outside the shim reads this to shrink a bound for the models
/// (see `sleep.rs`) without naming loom; outside it, it is a constant
/// `false` and the branches fold away.
pub(crate) const MODEL_CHECKED: bool = cfg!(all(loom, test));

// Not synchronization primitives, but they name `std::thread`; they are the
// same under loom.
pub(crate) use std::thread::{available_parallelism, panicking};
pub(crate) use std::time::Duration;

#[cfg(not(all(loom, test)))]
pub(crate) use std::time::Instant;

/// Under loom, a clock that never moves.
///
/// loom has no notion of time and replays each schedule expecting the same
/// choices; a real clock read in a model would make a deadline pass in one
/// replay and not in another. Frozen time makes every timed call
/// deterministic: a zero timeout has already expired, any other never does
/// (and loom's `wait_timeout` never times out either).
#[cfg(all(loom, test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(Duration);

#[cfg(all(loom, test))]
impl Instant {
    pub(crate) fn now() -> Instant {
        Instant(Duration::ZERO)
    }

    pub(crate) fn checked_add(&self, duration: Duration) -> Option<Instant> {
        self.0.checked_add(duration).map(Instant)
    }

    pub(crate) fn checked_duration_since(&self, earlier: Instant) -> Option<Duration> {
        self.0.checked_sub(earlier.0)
    }
}

/// Aligns `T` to its own cache-line pair (128 bytes: adjacent-line
/// prefetchers pull lines in pairs), so that a hot atomic written by one
/// thread does not slow down another thread's unrelated accesses.
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// Locks `mutex`, ignoring poison.
///
/// weft never runs user code while holding one of its locks, so a poisoned
/// lock can only mean a panic inside weft's own bookkeeping; the state is
/// still consistent at every unlock point, and refusing to continue would turn
/// one bug into a hung pool.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Blocks on `condvar`, ignoring poison (see [`lock`]).
pub(crate) fn wait<'a, T>(condvar: &Condvar, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    condvar
        .wait(guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Blocks on `condvar` for at most `timeout`, ignoring poison (see [`lock`]).
///
/// Under loom this waits for a notification like [`wait`]: loom has no clock.
/// Callers re-check their condition and their deadline after every return, so
/// the model explores the notified path and real-thread tests cover expiry.
pub(crate) fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}
