//! The lock of each worker's own deque (`local.rs`).
//!
//! # Why not `Mutex`
//!
//! The owner takes its deque's lock twice per job it spawns and runs: once
//! to push, once to pop. Unlocking std's mutex is an atomic swap, a locked
//! instruction, so that the holder learns whether a waiter must be woken.
//! This lock has no sleeping waiters, so unlocking is a plain `Release`
//! store: one locked instruction per critical section instead of two.
//!
//! That is only sound because every critical section on a deque is short
//! and never waits: a push or pop of a `VecDeque`, a look at its length, or
//! `shutdown_now`'s drain. No user code runs inside, and no other lock is
//! taken (the lock order is pool, then deque). A thread that finds the lock
//! held spins a little and then yields its time slice until the holder,
//! which needs nothing from anyone to finish, stores the release.
//!
//! # Protocol
//!
//! `locked` is 0 when free and 1 when held. [`SpinLock::with`] sets it
//! with a compare-and-swap (`Acquire`) that succeeds only on 0, runs the
//! closure, and stores 0 (`Release`). The release store of one holder and
//! the acquiring swap of the next, which reads it, order their critical
//! sections, as a mutex's unlock and lock do: everything the first did
//! happens before everything the second does. `local.rs`'s no-lost-wake-up
//! argument rests on exactly that ordering.
//!
//! Proven by the models of `loom-tests/local.rs`, which drive the owner,
//! thieves, sleepers and `shutdown_now` through these locks; loom tracks
//! every access to the value (`RawCell`) and reports two accesses that are
//! not ordered. `loom-tests/README.md` lists the planted bugs they catch.

use crate::sync::{self, AtomicUsize, Ordering, RawCell};

/// `yield_now` after this many `spin_loop` hints in a row. A critical
/// section is a few dozen instructions, so a holder that is running
/// releases long before; one that is not (preempted, on a busy machine)
/// needs the waiter off the CPU.
const SPINS_BEFORE_YIELD: u32 = 64;

/// A lock for short critical sections that never block (see the module
/// docs).
pub(crate) struct SpinLock<T> {
    /// 0 free, 1 held.
    locked: AtomicUsize,
    value: RawCell<T>,
}

// SAFETY: the value is reached only through `with`, which lends it to one
// thread at a time (the one whose swap set `locked` from 0 to 1), so the
// lock may be shared between threads whenever the value may be sent to one.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicUsize::new(0),
            value: RawCell::new(value),
        }
    }

    /// Runs `f` on the value with the lock held.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.acquire();
        // Unlocks when dropped, also if `f` panics.
        let _held = Held(&self.locked);
        self.value.with_mut(|value| {
            // SAFETY: `acquire` set `locked` from 0 to 1 and only `Held`
            // sets it back, after `f` returns: no other thread is inside
            // `with`, so this is the only reference to the value. The last
            // holder's accesses happen before this one's (module docs).
            f(unsafe { &mut *value })
        })
    }

    #[inline]
    fn acquire(&self) {
        // Acquire: pairs with the `Release` store in `Held::drop` that this
        // swap reads, so the last holder's accesses happen before ours.
        if self
            .locked
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.acquire_contended();
        }
    }

    /// [`acquire`](Self::acquire) after a first swap failed: out of line,
    /// so that the uncontended lock, inlined at every call, stays short.
    #[cold]
    fn acquire_contended(&self) {
        let mut spins = 0;
        // Acquire: as in `acquire`.
        //
        // The waiter retries the swap itself rather than first waiting for
        // a plain load to read 0: a swap always reads the latest value,
        // while a relaxed load may keep reading an old 1, which loom
        // explores (and would report as a waiter spinning for ever). Waiters
        // are rare: only a thief, a sleeper's look or `shutdown_now` ever
        // meets the owner here.
        loop {
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                // Under loom and shuttle this yields to the checker.
                sync::spin_loop();
            } else {
                sync::yield_now();
            }
            if self
                .locked
                .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }
}

/// The holding of a [`SpinLock`]; dropping it unlocks.
struct Held<'a>(&'a AtomicUsize);

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release: pairs with the `Acquire` swap in `acquire` of the next
        // holder, which reads this store.
        self.0.store(0, Ordering::Release);
    }
}
