//! Scoped jobs (`src/scope.rs`): jobs that borrow the caller's data. The
//! races explored:
//!
//! - the scope's owner waiting for `pending == 0` (blocking on `all_done`
//!   outside the pool) while the last jobs finish on two workers
//!   (`wait_blocking` against `job_done`);
//! - the last job's completion against everything it borrowed: its closure,
//!   what the closure captured, and the result of a `spawn` whose handle was
//!   dropped (the job thread drops it, if it lets go of the slot last);
//! - a scoped job's panic, unjoined (`execute`, or `spawn` with the handle
//!   dropped, reported from `Slot::drop`), joined, or the closure's own;
//! - a scope owned by a worker of the same pool: it must run its own jobs
//!   while it waits on a 1-worker pool, and when the other worker runs the
//!   last one it must sleep on the pool's condvar and be woken by that job's
//!   completion (`sleep_while_joining` against `job_done`'s
//!   `wake_helping_joiners`), also after a new job of the scope woke it and
//!   it went back to sleep (re-registering, with the pool lock held while it
//!   takes the scope's).
//!
//! **Borrowed data is a loom cell.** Each model's borrowed values are
//! [`Borrowed`] cells owned by the model's stack frame: scoped jobs write
//! them, and the main thread reads them after `scope` returns (or unwinds).
//! Only the scope's protocol orders that read after the writes. If a job
//! could give back its share of `pending` before it let go of a borrow, or
//! `scope` could return before `pending == 0`, loom explores both orders of
//! the read and the write: read second, it reports a causality violation at
//! the read; read first, the read sees the initial value and the model's
//! assertion fails. (The write, coming second, makes loom panic inside the
//! job too, but the pool catches that panic: the failure must surface on the
//! main thread, and it does.) Every pool is shut down before the model's
//! frame ends, so the cells outlive every job even when the protocol is
//! broken.
//!
//! **What loom cannot see.** The scope's state outlives the last job's
//! notification because that job's `Member` owns an `Arc` of it until it has
//! notified. loom checks that every `Arc` is released by the end of each
//! execution (a leaked `Member` or slot is reported), but it cannot see a
//! use after free of memory that is not a loom object; that half rests on
//! the `Arc` by construction (and on the Miri runs of `tests/scope.rs`,
//! which would flag such a use on the schedules they happen to take).

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use loom::cell::UnsafeCell;

use super::{model, silence_deliberate_panics, DeliberatePanic, Mailbox};
use crate::Builder;

/// The message of the panic `scope` raises for a scoped job's unjoined panic.
const SCOPE_PANIC: &str = "a scoped job panicked";

/// A value on the model's stack that scoped jobs borrow. Every access goes
/// through loom's `UnsafeCell`, which checks that each write happens before
/// every later read or write (and the reverse).
pub(super) struct Borrowed(UnsafeCell<usize>);

// SAFETY: the cell is only reached through `read` and `write`, i.e. loom's
// `with` / `with_mut`, which check the access against every other access
// before handing out the pointer and panic on a concurrent one; and loom runs
// one thread at a time, so the raw accesses below never overlap even when a
// planted bug makes them concurrent in the model.
unsafe impl Sync for Borrowed {}

impl Borrowed {
    pub(super) fn new() -> Borrowed {
        Borrowed(UnsafeCell::new(0))
    }

    pub(super) fn write(&self, value: usize) {
        // SAFETY: see the `Sync` impl: loom has checked this access.
        self.0.with_mut(|cell| unsafe { *cell = value });
    }

    pub(super) fn read(&self) -> usize {
        // SAFETY: see the `Sync` impl: loom has checked this access.
        self.0.with(|cell| unsafe { *cell })
    }
}

/// Writes `value` into a borrowed cell when dropped: a captured value or a
/// result that still borrows the scope's environment as it goes away.
struct WritesOnDrop<'env> {
    cell: &'env Borrowed,
    value: usize,
}

impl Drop for WritesOnDrop<'_> {
    fn drop(&mut self) {
        self.cell.write(self.value);
    }
}

/// Installs, once, a panic hook that stays quiet for `scope`'s own "a scoped
/// job panicked" as well as for [`DeliberatePanic`] payloads (the models
/// provoke both on purpose), forwarding every other panic to the previous
/// hook. `WEFT_LOOM_SHOW_PANICS` shows them all, as in `mod.rs`.
fn silence_provoked_panics() {
    static INSTALL: Once = Once::new();
    silence_deliberate_panics();
    if std::env::var_os("WEFT_LOOM_SHOW_PANICS").is_some() {
        return;
    }
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if text(info.payload()) != Some(SCOPE_PANIC) {
                previous(info);
            }
        }));
    });
}

/// A panic payload's text, if it is a string.
fn text(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Two workers; the main thread owns the scope, outside the pool, so it
/// blocks on `all_done` while two `execute`d jobs finish, on one worker or
/// both. One job writes a borrowed cell; the other only captures a value
/// whose `Drop` writes another. `scope` must return after both writes, and
/// the last job's notification must reach the blocked owner (a lost one is a
/// loom deadlock: nothing else wakes it).
#[test]
fn scope_returns_only_after_every_job_let_go_of_its_borrows() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let written = Borrowed::new();
        let dropped = Borrowed::new();
        pool.scope(|s| {
            s.execute(|| written.write(1));
            let captured = WritesOnDrop {
                cell: &dropped,
                value: 2,
            };
            s.execute(move || {
                let _captured = captured;
            });
        });
        // Fails (a causality violation, or the initial value) if a job could
        // still be writing.
        assert_eq!(
            written.read(),
            1,
            "scope returned before a job's write to borrowed data"
        );
        assert_eq!(
            dropped.read(),
            2,
            "scope returned before a job dropped what it captured"
        );
        pool.shutdown();
    });
}

/// Two workers; the main thread owns the scope. A `spawn` whose result
/// borrows a cell (writing it when dropped) has its handle dropped at once,
/// while the job is queued, running or done: the result is dropped by
/// whichever of the job and the handle lets go of the slot last, the job
/// thread included, and must be gone before `scope` returns. A second
/// `spawn` writes a cell and is joined inside the scope: the join returns
/// its value, and the scope neither panics nor loses the count of it.
#[test]
fn unjoined_spawn_result_is_dropped_before_scope_returns() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let dropped = Borrowed::new();
        let written = Borrowed::new();
        let joined = pool.scope(|s| {
            drop(s.spawn(|| WritesOnDrop {
                cell: &dropped,
                value: 3,
            }));
            let handle = s.spawn(|| {
                written.write(4);
                5_usize
            });
            handle.join().ok()
        });
        assert_eq!(joined, Some(5), "a join inside a scope lost the result");
        assert_eq!(
            written.read(),
            4,
            "a joined scoped job's write is not visible after scope"
        );
        // Fails if the job thread could still be dropping the result.
        assert_eq!(
            dropped.read(),
            3,
            "scope returned before an unjoined job's result was dropped"
        );
        pool.shutdown();
    });
}

/// Two workers; an `execute`d job panics and another writes a borrowed cell.
/// Nobody can join an `execute`d job, so `scope` must panic with its own
/// message, and only once both jobs are done: the write is visible when the
/// main thread catches the panic.
#[test]
fn unjoined_execute_panic_makes_scope_panic_after_every_job() {
    silence_provoked_panics();
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let written = Borrowed::new();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.execute(|| panic::panic_any(DeliberatePanic));
                s.execute(|| written.write(1));
            });
        }));
        let payload = caught.expect_err("scope returned although a scoped job panicked unjoined");
        assert_eq!(
            text(&*payload),
            Some(SCOPE_PANIC),
            "scope panicked with the wrong payload"
        );
        assert_eq!(
            written.read(),
            1,
            "scope panicked before its other job had finished"
        );
        pool.shutdown();
    });
}

/// One worker; a job writes a borrowed cell, then a `spawn`ed job panics and
/// its handle is dropped at once, while the job is queued, running or done.
/// The slot, dropped by whichever of the job and the handle lets go last,
/// holds a panic nobody joined: it must tell the scope before the job gives
/// back its share of `pending`, so that `scope` panics once both jobs are
/// done. (The panicking job is the last one: a report that came after its
/// decrement could be missed.)
#[test]
fn unjoined_spawn_panic_makes_scope_panic_after_every_job() {
    silence_provoked_panics();
    model(7, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let written = Borrowed::new();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.execute(|| written.write(1));
                drop(s.spawn(|| -> usize { panic::panic_any(DeliberatePanic) }));
            });
        }));
        let payload =
            caught.expect_err("scope returned although a spawned job's panic was never joined");
        assert_eq!(
            text(&*payload),
            Some(SCOPE_PANIC),
            "scope panicked with the wrong payload"
        );
        assert_eq!(
            written.read(),
            1,
            "scope panicked before its other job had finished"
        );
        pool.shutdown();
    });
}

/// One worker; a job writes a borrowed cell, then a `spawn`ed job panics and
/// the main thread joins it inside the scope, blocking while it is queued or
/// running. The join returns the panic (the job's own payload); the panic is
/// then the joiner's, so `scope` returns normally, whichever of the job and
/// the joiner drops the slot last.
#[test]
fn joined_spawn_panic_is_the_joiners_and_scope_returns() {
    silence_provoked_panics();
    model(7, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let written = Borrowed::new();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.execute(|| written.write(1));
                let failed = s.spawn(|| -> usize { panic::panic_any(DeliberatePanic) });
                failed
                    .join()
                    .err()
                    .and_then(|err| err.try_into_panic().ok())
                    .is_some_and(|payload| payload.is::<DeliberatePanic>())
            })
        }));
        let joined_the_panic = caught.unwrap_or_else(|_| {
            panic!("scope panicked although its only panicking job was joined")
        });
        assert!(
            joined_the_panic,
            "join did not return the scoped job's panic payload"
        );
        assert_eq!(written.read(), 1, "scope returned before its other job");
        pool.shutdown();
    });
}

/// One worker; the scope's closure starts a job that panics and one that
/// writes a borrowed cell, then panics itself. `scope` must wait for both
/// jobs before it unwinds (the write, by the last job, is visible to the
/// catcher), and resume the closure's own payload, not its "a scoped job
/// panicked".
#[test]
fn closure_panic_is_resumed_after_every_job() {
    silence_provoked_panics();
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let written = Borrowed::new();
        let caught = panic::catch_unwind(AssertUnwindSafe(|| {
            pool.scope(|s| {
                s.execute(|| panic::panic_any(DeliberatePanic));
                s.execute(|| written.write(1));
                panic::panic_any(DeliberatePanic);
            });
        }));
        let payload = caught.expect_err("scope returned although its closure panicked");
        assert!(
            payload.is::<DeliberatePanic>(),
            "scope did not resume its closure's own panic (got {:?})",
            text(&*payload)
        );
        // Fails if scope unwound while the last job could still be writing.
        assert_eq!(
            written.read(),
            1,
            "scope unwound before its jobs had finished"
        );
        pool.shutdown();
    });
}

/// One worker. The main thread's scope spawns a job that opens a scope of
/// its own on the only worker, starts a job there and spawns and joins
/// another. Nothing but that worker can run the inner jobs: the join must
/// help (it runs its newest job, the spawned one), and then the inner
/// scope's wait must run the `execute`d job itself. Blocking instead is a
/// loom deadlock; only sleeping spins (`sleep_while_joining` returns at once
/// while a job is queued), which loom reports as exceeding its branch limit.
#[test]
fn nested_scope_on_one_worker_runs_its_own_jobs() {
    model(20, || {
        let pool = Builder::new().num_threads(1).build().unwrap();
        let executed = Borrowed::new();
        let spawned = Borrowed::new();
        let owner = &pool;
        let seen = pool.scope(|s| {
            let outer = s.spawn(|| {
                owner.scope(|inner| {
                    inner.execute(|| executed.write(1));
                    let child = inner.spawn(|| {
                        spawned.write(2);
                        3_usize
                    });
                    child.join().ok()
                })
            });
            outer.join().ok()
        });
        assert_eq!(
            seen,
            Some(Some(3)),
            "a scope on the only worker could not join its own job"
        );
        assert_eq!(
            (executed.read(), spawned.read()),
            (1, 2),
            "a nested scope returned before its jobs had run"
        );
        pool.shutdown();
    });
}

/// Two workers, with the inner scope's last job forced onto the other
/// worker. A job of the main thread's scope opens an inner scope on its
/// worker and starts a child, then a decoy, both on its own deque. Helping
/// takes its own newest job first (the decoy) and a thief the oldest (the
/// child), so the child always runs on the other worker, and the decoy, which
/// waits until the child has started, holds the owner until then. When the
/// decoy returns the owner finds the queue empty and, unless the child is
/// already done, sleeps on the pool's condvar, racing the child's completion:
/// `job_done` must wake the registered helper, under the pool lock, or the
/// owner sleeps for good.
#[test]
fn helping_scope_owner_is_woken_by_the_other_workers_last_job() {
    model(2, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let written = Borrowed::new();
        let child_started = Mailbox::new();
        let owner = &pool;
        pool.scope(|s| {
            s.execute(|| {
                owner.scope(|inner| {
                    inner.execute(|| {
                        child_started.put(());
                        written.write(1);
                    });
                    inner.execute(|| child_started.take());
                });
            });
        });
        assert_eq!(
            written.read(),
            1,
            "a helping scope returned before the other worker's job had finished"
        );
        pool.shutdown();
    });
}

/// Two workers; as above, but the child, on the other worker, starts one
/// more job of the inner scope (a grandchild) before it finishes. Its push
/// can wake the helping owner after it registered and slept; the owner may
/// run the grandchild, or find nothing, and sleep again, re-registering,
/// while the other worker's last job completes. The last job must wake the
/// helper whichever registration it sees, and must not hold the scope's lock
/// while it takes the pool's (the owner holds the pool's while it takes the
/// scope's, in `done_or_register`).
#[test]
fn helping_scope_owner_woken_by_a_new_job_sleeps_again() {
    model(3, || {
        let pool = Builder::new().num_threads(2).build().unwrap();
        let child = Borrowed::new();
        let grandchild = Borrowed::new();
        let child_started = Mailbox::new();
        let owner = &pool;
        pool.scope(|s| {
            s.execute(|| {
                owner.scope(|inner| {
                    inner.execute(|| {
                        child_started.put(());
                        inner.execute(|| grandchild.write(2));
                        child.write(1);
                    });
                    inner.execute(|| child_started.take());
                });
            });
        });
        assert_eq!(
            (child.read(), grandchild.read()),
            (1, 2),
            "a helping scope returned before its jobs on the other worker had finished"
        );
        pool.shutdown();
    });
}
