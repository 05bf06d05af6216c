//! Scoped jobs: jobs that borrow the caller's data, run on the pool.
//!
//! # Protocol
//!
//! [`ThreadPool::scope`](crate::ThreadPool::scope) creates one
//! [`ScopeData`], owned by the scope (and shared, by `Arc`, with the result
//! slots of its `spawn`s). It holds:
//!
//! | field              | written by                                        | read by                          |
//! |--------------------|---------------------------------------------------|----------------------------------|
//! | `pending` (atomic) | `+1` when a job is made, `-1` when it is finished | the scope's owner, waiting for 0 |
//! | `panicked` (mutex) | a scoped job's unjoined panic                     | the scope's owner, after 0       |
//!
//! `pending` is an atomic counter, as an `Arc`'s is: a job is made and
//! finished without a lock, and only the job that takes the count to 0
//! locks, the *pool's* lock, to wake the owner. (The count may reach 0 and
//! rise again while the closure still runs; such a job then wakes nobody,
//! or wakes a joiner for nothing.) An increment needs no ordering: it is
//! made by the closure or by a job that still counts, so the count cannot
//! reach 0 meanwhile. Every decrement is `Release`, and all of them (with
//! the increments) are read-modify-writes of one atomic, so each heads a
//! release sequence that runs through every later one: an owner's
//! `Acquire` load that reads 0 synchronizes with every decrement, and sees
//! everything every job did. (The job that reaches 0 needs nothing of the
//! others: it only wakes.)
//!
//! **A job counts until it has let go of everything borrowed.** Each job
//! carries a [`Member`], its share of `pending`, as its *last* field. When a
//! worker runs the job it first runs the closure, stores the result in the
//! handle's slot and drops its reference to that slot (dropping the result if
//! the handle is already gone), and only then drops the `Member`, which
//! decrements `pending`. A job dropped unrun (it cannot be: see below) still
//! drops its closure before its `Member`. So when `pending` reaches 0, no job
//! of the scope touches borrowed data again.
//!
//! **Lifetimes.** A job's [`Member`] reaches the scope's state and the
//! pool by pointer, not by `Arc` (an `Arc` cloned and dropped per job
//! bounced its count between the workers). Its decrement of `pending` is
//! its last use of the scope's state: until then its share keeps `pending`
//! above 0, and the owner lets the state go only after reading 0. The job
//! that takes the count to 0 then wakes the owner through the pool alone,
//! never through the scope's state, which may be gone by then (the owner
//! may have read 0 and returned). (`std::thread::scope` once woke its owner
//! through state the owner had already freed; Miri found it.) The pool
//! outlives the wake: a scoped job is run, and its member dropped, only on
//! a worker of the scope's pool (a plain one, or one helping in a join or a
//! scope), and a worker holds an `Arc` of the pool until it exits. (A job
//! is never dropped unrun: see below. If it were, it would be on the thread
//! that submitted it, while the scope still borrows the pool.)
//!
//! **Waiting.** The owner runs the closure (catching a panic), then waits for
//! `pending == 0`. Outside the pool it blocks on the pool's `scope_done`
//! condvar (`Shared::wait_for_scope`), counted in `blocked_scope_owners`,
//! after reading `pending` under the pool lock (first yielding for a
//! bounded time while it watches `pending`, if the pool leaves a CPU free:
//! `sleep.rs`); on a worker of the same
//! pool it helps instead, as a helping join does (`join.rs`): it runs
//! queued jobs and sleeps only in `Shared::sleep_while_joining`, counted in
//! `parked_joiners`, after reading `pending` under the pool lock. The last
//! job decrements, then takes the pool lock to wake both kinds of waiter
//! (`Shared::wake_scope_owners`). If it locks after the owner, the owner
//! is asleep and counted; if before, its decrement happens before the
//! owner's read, which sees 0. So nested scopes on a one-worker pool
//! finish.
//!
//! **Panics.** A scoped `execute` that panics, or a scoped `spawn` whose
//! panic is still in its slot when the slot is dropped (nobody joined it),
//! sets `panicked`. The scope reads it after `pending == 0`, when every
//! slot is gone, and panics; a panic of the closure itself is resumed
//! instead, as in `std::thread::scope`.
//!
//! **Never handed back.** `scope` borrows the pool and `shutdown_now` takes
//! it by value, so no scoped job can be in the queue when jobs are handed
//! back; and nothing else closes a live pool's queue.
//!
//! Proven by `loom-tests/scope.rs`; the lifetime erasure in
//! [`Scope::submit`] is exercised under Miri by `tests/scope.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::mem;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::job::{self, Job, Moved, Outcome, Payload, Spawn, Task};
use crate::join::{JoinError, JoinHandle, Promise};
use crate::queue::{Shared, WhenFull};
use crate::sync::{self, Arc, AtomicUsize, Mutex, Ordering};
use crate::worker;

/// A scope in which jobs may borrow anything that outlives it; made by
/// [`ThreadPool::scope`](crate::ThreadPool::scope).
///
/// `'scope` is the lifetime of the scope itself: jobs and their handles
/// cannot outlive it. `'env` is the lifetime of what the jobs borrow, which
/// outlives the scope.
pub struct Scope<'scope, 'env: 'scope> {
    data: Arc<ScopeData>,
    pool: &'scope Arc<Shared>,
    // Invariant in both lifetimes, as std's scoped-thread `Scope` is: a
    // scope must not be usable as one with a longer `'scope` or `'env`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

/// An owned permission to join a scoped job; made by [`Scope::spawn`].
///
/// It cannot leave its scope. Dropping it unjoined is allowed: the job still
/// runs, and if it panics, the scope panics after all its jobs are done.
pub struct ScopedJoinHandle<'scope, T> {
    handle: JoinHandle<T>,
    scope: PhantomData<&'scope ()>,
}

/// The state a scope shares with its jobs. See the module docs.
pub(crate) struct ScopeData {
    /// Jobs made in the scope that have not yet let go of what they borrow.
    pending: AtomicUsize,
    /// A job panicked and nobody joined it.
    panicked: Mutex<bool>,
}

impl ScopeData {
    fn new() -> ScopeData {
        ScopeData {
            pending: AtomicUsize::new(0),
            panicked: Mutex::new(false),
        }
    }

    /// Records that a job's panic will never be joined.
    pub(crate) fn report_unjoined_panic(&self) {
        *sync::lock(&self.panicked) = true;
    }

    fn panicked(&self) -> bool {
        *sync::lock(&self.panicked)
    }

    /// Whether every job of the scope has let go of what it borrows.
    fn is_done(&self) -> bool {
        // Acquire: pairs with the `Release` decrements in `Member::drop`.
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Waits until every job of the scope is done, running `pool`'s queued
    /// jobs meanwhile, on `pool`'s worker `index`.
    fn wait_helping(&self, pool: &Shared, index: usize) {
        loop {
            if self.is_done() {
                return;
            }
            // Through the pool lock, not `help_once`: taking the own deque's
            // jobs without it would save about as much here as in a join,
            // but its extra atomic reads multiplied the executions of
            // `helping_scope_owner_woken_by_a_new_job_sleeps_again` by 2.4
            // (1.6 M to 3.9 M, 128 to 297 s), past what CI can spend.
            if let Some(job) = pool.try_next_job(index) {
                pool.run(job);
                continue;
            }
            // Checked under the pool lock, which the last job takes to wake
            // parked joiners (module docs).
            pool.sleep_while_joining(index, || self.is_done());
        }
    }
}

/// A scoped job's share of its scope's `pending` count, given back when
/// dropped. Always the last field of a scoped job, so it is dropped after
/// everything the job borrows.
///
/// It reaches its scope's state and its pool by pointer, not by `Arc`:
/// cloning and dropping an `Arc` for every job would bounce one shared
/// count between the workers, twice per job. Why both stay alive for as
/// long as the member uses them is in the module docs ("Lifetimes").
struct Member {
    data: NonNull<ScopeData>,
    pool: NonNull<Shared>,
}

// SAFETY: a `Member` only reads through its pointers, to a `ScopeData` and
// a `Shared`, which are `Sync`, and both stay alive while it uses them on
// whatever thread drops it (module docs, "Lifetimes"); sending it is sending
// two shared references.
unsafe impl Send for Member {}

impl Member {
    fn join(data: &ScopeData, pool: &Shared) -> Member {
        // Relaxed: made by the closure or by a job that still counts, so the
        // count cannot reach 0 meanwhile (module docs).
        data.pending.fetch_add(1, Ordering::Relaxed);
        Member {
            data: NonNull::from(data),
            pool: NonNull::from(pool),
        }
    }

    fn data(&self) -> &ScopeData {
        // SAFETY: the owner lets the scope's state go only once `pending`
        // reads 0, and this member's share stays in `pending` until `drop`
        // takes it out, as its last use of the state (module docs).
        unsafe { self.data.as_ref() }
    }

    /// Tells the scope about a panic nobody will join, and drops its payload.
    fn report_panic(&self, payload: Payload) {
        self.data().report_unjoined_panic();
        job::drop_guarded(payload);
    }
}

impl Drop for Member {
    /// The last step of a job: it has let go of everything it borrowed.
    fn drop(&mut self) {
        // Release: pairs with the owner's `Acquire` load in `is_done`, which
        // synchronizes with every decrement through their release sequence
        // (module docs).
        let before = self.data().pending.fetch_sub(1, Ordering::Release);
        debug_assert!(before > 0, "a scoped job finished twice");
        if before == 1 {
            // From here on the scope's state may be gone (its owner may have
            // read 0 and returned); only the pool is touched.
            // SAFETY: this runs on a worker of the pool, which holds an `Arc`
            // of it until it exits (module docs, "Lifetimes").
            unsafe { self.pool.as_ref() }.wake_scope_owners();
        }
    }
}

/// A scoped `execute`: its panic goes to the scope.
struct ScopedExecute<F> {
    f: F,
    member: Member,
}

impl<F: FnOnce() + Send> Task for ScopedExecute<F> {
    fn run_in_pool(task: Moved<Self>) -> Outcome {
        let ScopedExecute { f, member } = task.into_inner();
        let outcome = match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => Outcome::Completed,
            Err(payload) => {
                member.report_panic(payload);
                Outcome::PanickedIntoHandle
            }
        };
        drop(member);
        outcome
    }

    fn run_here(task: Moved<Self>) {
        Self::run_in_pool(task);
    }
}

/// A scoped `spawn`: its result (or panic) goes to the slot its
/// [`ScopedJoinHandle`] shares, which tells the scope about a panic nobody
/// joined.
struct ScopedSpawn<F, T> {
    spawn: Spawn<F, T>,
    member: Member,
}

impl<F, T> Task for ScopedSpawn<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run_in_pool(task: Moved<Self>) -> Outcome {
        let ScopedSpawn { spawn, member } = task.into_inner();
        // Only dropping a result whose handle is gone can unwind here.
        let panicked = match panic::catch_unwind(AssertUnwindSafe(|| spawn.run_and_fulfil())) {
            Ok(panicked) => panicked,
            Err(payload) => {
                member.report_panic(payload);
                true
            }
        };
        drop(member);
        if panicked {
            Outcome::PanickedIntoHandle
        } else {
            Outcome::Completed
        }
    }

    fn run_here(task: Moved<Self>) {
        Self::run_in_pool(task);
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Runs `job` on a worker of the pool; `job` may borrow anything that
    /// outlives the scope.
    ///
    /// If `job` panics, the panic is caught, counted in the pool's
    /// `panic_count`, and [`ThreadPool::scope`](crate::ThreadPool::scope)
    /// panics once all of its jobs are done. (The pool's panic handler is not
    /// called: the panic belongs to the scope.) Scoped jobs count in
    /// `completed_count` and `panic_count` like any other, but the worker
    /// records a job just *after* the scope stops waiting for it, so read the
    /// counters after [`wait_idle`](crate::ThreadPool::wait_idle), not right
    /// after `scope` returns.
    ///
    /// Waits for room if the pool's queue is bounded and full, except on a
    /// worker of the same pool.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let mut halves = [vec![1, 2], vec![3, 4]];
    /// pool.scope(|s| {
    ///     for half in &mut halves {
    ///         s.execute(move || half.iter_mut().for_each(|x| *x *= 10));
    ///     }
    /// });
    /// assert_eq!(halves, [vec![10, 20], vec![30, 40]]);
    /// ```
    pub fn execute<F>(&'scope self, job: F)
    where
        F: FnOnce() + Send + 'scope,
    {
        let member = Member::join(&self.data, self.pool);
        self.submit(ScopedExecute { f: job, member });
    }

    /// Runs `job` on a worker of the pool and returns a handle to its result;
    /// `job` may borrow anything that outlives the scope.
    ///
    /// Joining the handle on a worker of the same pool runs other queued jobs
    /// while it waits. A panic that is joined is the joiner's to handle; if
    /// the handle is dropped unjoined, [`ThreadPool::scope`](crate::ThreadPool::scope)
    /// panics once all of its jobs are done.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let words = ["thread", "pool", "scope"];
    /// let total = pool.scope(|s| {
    ///     let lengths: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
    ///     lengths.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    /// });
    /// assert_eq!(total, 15);
    /// ```
    pub fn spawn<F, T>(&'scope self, job: F) -> ScopedJoinHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let member = Member::join(&self.data, self.pool);
        let (promise, handle) = Promise::new_scoped(self.pool, Arc::clone(&self.data));
        self.submit(ScopedSpawn {
            spawn: Spawn { f: job, promise },
            member,
        });
        ScopedJoinHandle {
            handle,
            scope: PhantomData,
        }
    }

    /// Queues a scoped job, erasing its lifetime.
    fn submit<J: Task + 'scope>(&'scope self, job: J) {
        // Why erasing `'scope` is sound. The job may borrow data that lives
        // only for `'scope`, so it must not be used after `'scope` ends. It
        // is not:
        // - it holds a `Member` of this scope, which it drops only after
        //   dropping everything else it owns (run or not: see the module
        //   docs), and `ThreadPool::scope` does not return or unwind until
        //   every `Member` has been dropped (`pending == 0`);
        // - it is never handed out as a `Job`: `shutdown_now` needs the pool
        //   by value, and the pool is borrowed for the whole scope.
        // SAFETY: the job is run or dropped before `'scope` ends (above),
        // which is `new_unchecked`'s contract.
        let job = unsafe { Job::new_unchecked(job) };
        if self.pool.submit_job(job, WhenFull::Wait).is_err() {
            // Dropping the refused job releases its `Member`, so the scope
            // still completes.
            unreachable!("a pool borrowed by a scope is never shut down");
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let panicked = self.data.panicked();
        f.debug_struct("Scope")
            .field("pending", &self.data.pending.load(Ordering::Relaxed))
            .field("panicked", &panicked)
            .finish_non_exhaustive()
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the job and returns its result.
    ///
    /// On a worker of the same pool, runs other queued jobs while it waits.
    ///
    /// # Errors
    ///
    /// A [`JoinError`] that [`is_panic`](JoinError::is_panic) if the job
    /// panicked; the payload is inside. Once joined, the panic no longer
    /// makes the scope panic.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// let input = vec![3, 1, 2];
    /// pool.scope(|s| {
    ///     let sorted = s.spawn(|| {
    ///         let mut v = input.clone();
    ///         v.sort();
    ///         v
    ///     });
    ///     let failed = s.spawn(|| -> u8 { panic!("handled below") });
    ///     assert_eq!(sorted.join().unwrap(), [1, 2, 3]);
    ///     assert!(failed.join().unwrap_err().is_panic());
    /// });
    /// ```
    pub fn join(self) -> Result<T, JoinError> {
        self.handle.join()
    }

    /// Whether the job has finished, so that `join` would not block.
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Runs a scope on `pool`: the body of [`ThreadPool::scope`](crate::ThreadPool::scope).
pub(crate) fn run<'env, F, R>(pool: &Arc<Shared>, f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    // The scope's state is dropped when `run_and_wait` returns, before any
    // unwind starts here, so the unwind touches no synchronization object.
    // (Under loom every model thread runs on one OS thread: a thread switch
    // inside an unwind would make every lock another model thread released
    // meanwhile count as poisoned.)
    match run_and_wait(pool, f) {
        (Err(payload), _) => panic::resume_unwind(payload),
        (Ok(_), true) => panic!("a scoped job panicked"),
        (Ok(value), false) => value,
    }
}

/// Runs the closure and waits for every job of the scope; returns the
/// closure's result (or its panic) and whether a job panicked unjoined.
fn run_and_wait<'env, F, R>(pool: &Arc<Shared>, f: F) -> (Result<R, Payload>, bool)
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        data: Arc::new(ScopeData::new()),
        pool,
        scope: PhantomData,
        env: PhantomData,
    };
    let result = panic::catch_unwind(AssertUnwindSafe(|| f(&scope)));
    {
        // Unwinding past this point while a job still borrows the caller's
        // data would be unsound. Nothing below is expected to unwind (jobs
        // run while helping have their panics caught), but if it does, abort.
        let abort = AbortOnUnwind;
        match worker::index_in(pool) {
            Some(index) => scope.data.wait_helping(pool, index),
            None => pool.wait_for_scope(|| scope.data.is_done()),
        }
        mem::forget(abort);
    }
    let panicked = scope.data.panicked();
    (result, panicked)
}

/// Aborts the process if dropped, which only happens while unwinding.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        eprintln!(
            "weft: a scope's wait unwound while its jobs may still borrow the caller's data; \
             aborting"
        );
        std::process::abort();
    }
}
