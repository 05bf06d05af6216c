//! The synchronization shim: the one file that names `std::sync`, `std::thread`,
//! `loom` or `shuttle`.
//!
//! Every lock, condition variable, atomic, `Arc`, thread and thread-local the
//! pool uses is imported from here. The crate's own test build can swap them
//! for a checker's versions, so the checker drives the very code that ships:
//!
//! - with `--cfg loom` (`cfg(all(loom, test))`), loom's model-checked ones,
//!   explored exhaustively by the models in `loom-tests/`;
//! - with `--cfg shuttle` (`cfg(all(shuttle, test))`), shuttle's, whose
//!   randomized schedulers drive the larger scenarios in `shuttle-tests/`.
//!
//! Every other build (including integration tests and doctests compiled with
//! either flag) gets std's.
//!
//! Time goes through here too. Neither checker has a clock: under both,
//! [`Condvar::wait_timeout`] behaves like `wait` (it never times out) and
//! [`Instant`] is frozen, so a timed call is modelled as its untimed
//! counterpart (or, with a zero timeout, as already expired) and the timeout
//! paths are tested with real threads in `tests/`.

#[cfg(all(loom, shuttle, test))]
compile_error!(
    "the loom and shuttle test builds are separate: pass only one of --cfg loom, --cfg shuttle"
);

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

#[cfg(all(shuttle, test))]
mod imp {
    // shuttle has no `UnsafeCell` with loom's access API (and checks no data
    // races: it runs one thread at a time), so cells are std's twin below.
    pub(crate) use super::std_cell::RawCell;
    // Unlike `std::hint::spin_loop`, this one yields to shuttle's scheduler,
    // so a spinner waiting for another thread cannot burn its whole budget
    // in a schedule where that thread never runs.
    pub(crate) use shuttle::hint::spin_loop;
    pub(crate) use shuttle::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use shuttle::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use shuttle::thread::{yield_now, Builder as ThreadBuilder, JoinHandle, ThreadId};
    pub(crate) use shuttle::thread_local;

    pub(crate) fn current_thread_id() -> ThreadId {
        shuttle::thread::current().id()
    }
}

#[cfg(not(any(all(loom, test), all(shuttle, test))))]
mod imp {
    pub(crate) use super::std_cell::RawCell;
    pub(crate) use std::hint::spin_loop;
    pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
    pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    pub(crate) use std::thread::{yield_now, Builder as ThreadBuilder, JoinHandle, ThreadId};
    pub(crate) use std::thread_local;

    pub(crate) fn current_thread_id() -> ThreadId {
        std::thread::current().id()
    }
}

#[cfg(not(all(loom, test)))]
mod std_cell {
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
///
/// The shuttle build deliberately sees `false`: its tests exist to run the
/// real sizes (blocks of 127 slots, the full spin budget, spinning and
/// lock-free pushes on in every pool), which loom cannot reach. Shuttle
/// only samples schedules, so a longer loop costs steps, not a blow-up of
/// the state space, and every spin is a yield to its scheduler.
pub(crate) const MODEL_CHECKED: bool = cfg!(all(loom, test));

/// Whether a checker (loom or shuttle) picks the schedule. A bounded spin
/// that waits for another thread to finish a step is cut to nothing under
/// either (see `injector.rs`): each spin would only be a yield to the
/// checker, which then almost always lets the other thread finish first,
/// and the path taken when the spin runs out would go unexplored.
pub(crate) const SCHEDULE_CHOSEN_BY_CHECKER: bool = cfg!(any(all(loom, test), all(shuttle, test)));

/// Declares a thread-local `Cell` holding a `Copy` value with no destructor:
/// `cell_thread_local! { static NAME: T = INIT; }`, read with
/// `NAME.with(Cell::get)`.
///
/// std's is initialised at compile time (`const { }`): with nothing to
/// initialise lazily and nothing to destroy, reaching it is one load relative
/// to the thread pointer, with no state to check, and it never fails, even
/// while the thread's other locals are being destroyed. loom's and shuttle's
/// `thread_local!` take no `const { }`, so theirs is initialised on first use.
macro_rules! cell_thread_local {
    ($(#[$attr:meta])* static $name:ident: $t:ty = $init:expr;) => {
        #[cfg(not(any(all(loom, test), all(shuttle, test))))]
        std::thread_local! {
            $(#[$attr])*
            static $name: std::cell::Cell<$t> = const { std::cell::Cell::new($init) };
        }
        #[cfg(all(loom, test))]
        loom::thread_local! {
            $(#[$attr])*
            static $name: std::cell::Cell<$t> = std::cell::Cell::new($init);
        }
        #[cfg(all(shuttle, test))]
        shuttle::thread_local! {
            $(#[$attr])*
            static $name: std::cell::Cell<$t> = std::cell::Cell::new($init);
        }
    };
}
pub(crate) use cell_thread_local;

// Not synchronization primitives, but they name `std::thread`; they are the
// same under loom and shuttle.
pub(crate) use std::thread::{available_parallelism, panicking};
pub(crate) use std::time::Duration;

#[cfg(not(any(all(loom, test), all(shuttle, test))))]
pub(crate) use std::time::Instant;

/// Under loom or shuttle, a clock that never moves.
///
/// Neither checker has a notion of time, and both replay a schedule
/// expecting the same choices; a real clock read in a model would make a
/// deadline pass in one replay and not in another. Frozen time makes every
/// timed call deterministic: a zero timeout has already expired, any other
/// never does (and neither checker's `wait_timeout` ever times out).
#[cfg(any(all(loom, test), all(shuttle, test)))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Instant(Duration);

#[cfg(any(all(loom, test), all(shuttle, test)))]
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
/// Under loom and shuttle this waits for a notification like [`wait`]:
/// neither has a clock (both implement `wait_timeout` as `wait`). Callers
/// re-check their condition and their deadline after every return, so the
/// checkers explore the notified path and real-thread tests cover expiry.
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
