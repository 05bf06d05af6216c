//! Scoped jobs: jobs that borrow the caller's data, run on the pool.
//!
//! # Protocol
//!
//! [`ThreadPool::scope`] creates one [`ScopeData`], shared (by `Arc`) by the
//! scope and by every job started in it. It holds:
//!
//! | field           | written by                                        | read by                          |
//! |-----------------|---------------------------------------------------|----------------------------------|
//! | `pending` (atomic) | `+1` when a job is made, `-1` when it is finished | the scope's owner, waiting for 0 |
//! | `panicked`      | a scoped job's unjoined panic                     | the scope's owner, after 0       |
//! | `owner_blocked` | the owner, before it waits on `all_done`          | the job that takes `pending` to 0, to notify |
//! | `helper`        | the owner on a pool worker, before it sleeps      | the job that takes `pending` to 0, to wake it |
//!
//! All but `pending` sit behind the scope's mutex. `pending` is an atomic
//! counter, as an `Arc`'s is: a job is made and finished without the lock,
//! and only the job that takes the count to 0 locks, to wake the owner. (The
//! count may reach 0 and rise again while the closure still runs; such a
//! job then finds nobody waiting.) An increment needs no ordering: it is
//! made by the closure or by a job that still counts, so the count cannot
//! reach 0 meanwhile. Every decrement is `Release`, and all of them (with
//! the increments) are read-modify-writes of one atomic, so each heads a
//! release sequence that runs through every later one: an owner's
//! `Acquire` load that reads 0 synchronizes with every decrement, and sees
//! everything every job did. (The job that reaches 0 needs nothing of the
//! others: it only locks and wakes.)
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
//! **The scope's state outlives the final decrement.** The last job notifies
//! the owner *after* unlocking, and the owner may then see `pending == 0`
//! and return at once. The notification is still safe because the `Member`
//! owns an `Arc<ScopeData>` until it has notified: the mutex and condvar
//! are never on the owner's stack. (`std::thread::scope` once kept this
//! state behind a reference and unparked a freed thread handle; Miri found
//! it.)
//!
//! **Waiting.** The owner runs the closure (catching a panic), then waits for
//! `pending == 0`: outside the pool it blocks on `all_done`, setting
//! `owner_blocked` and then reading `pending` under the lock. The last job
//! decrements, then locks to read the flag. If it locks after the owner, it
//! sees the flag (the owner's `wait` released the lock as it slept); if
//! before, its decrement happens before the owner's read, which sees 0. On a worker of the same pool
//! it helps instead, as a helping join does (`join.rs`): it runs queued jobs
//! and sleeps only in `Shared::sleep_while_joining`, after registering the
//! pool in `helper` under both locks (pool, then scope); the last job takes
//! `helper` and wakes the pool's joiners. So nested scopes on a one-worker
//! pool finish.
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

use crate::job::{self, Job, Outcome, Payload, Spawn, Task};
use crate::join::{JoinError, JoinHandle, Promise};
use crate::queue::{Shared, WhenFull};
use crate::sync::{self, Arc, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};
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
    state: Mutex<ScopeState>,
    /// The owner, outside the pool, waits here for `pending == 0`.
    all_done: Condvar,
}

struct ScopeState {
    /// A job panicked and nobody joined it.
    panicked: bool,
    /// The owner is waiting on `all_done`.
    owner_blocked: bool,
    /// The pool whose worker owns the scope and sleeps while helping.
    helper: Option<Arc<Shared>>,
}

impl ScopeData {
    fn new() -> ScopeData {
        ScopeData {
            pending: AtomicUsize::new(0),
            state: Mutex::new(ScopeState {
                panicked: false,
                owner_blocked: false,
                helper: None,
            }),
            all_done: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ScopeState> {
        sync::lock(&self.state)
    }

    /// Records that a job's panic will never be joined.
    pub(crate) fn report_unjoined_panic(&self) {
        self.lock().panicked = true;
    }

    /// The last step of a job: it has let go of everything it borrowed.
    fn job_done(&self) {
        // Release: pairs with the owner's `Acquire` load in `is_done`, which
        // synchronizes with every decrement through their release sequence
        // (module docs).
        let before = self.pending.fetch_sub(1, Ordering::Release);
        debug_assert!(before > 0, "a scoped job finished twice");
        if before > 1 {
            return;
        }
        // Locked after the decrement: an owner that read `pending` before it
        // has set its flag or registered by now (module docs).
        let mut state = self.lock();
        let blocked = state.owner_blocked;
        let helper = state.helper.take();
        drop(state);
        // `self` is kept alive by the caller's `Member`, whatever the owner
        // does once it sees `pending == 0`.
        if blocked {
            self.all_done.notify_all();
        }
        if let Some(pool) = helper {
            pool.wake_helping_joiners();
        }
    }

    /// Waits, blocking, until every job of the scope is done.
    /// Whether every job of the scope has let go of what it borrows.
    fn is_done(&self) -> bool {
        // Acquire: pairs with the `Release` decrements in `job_done`.
        self.pending.load(Ordering::Acquire) == 0
    }

    fn wait_blocking(&self) {
        let mut state = self.lock();
        loop {
            state.owner_blocked = true;
            // Read after the flag is set, under the lock (module docs).
            if self.is_done() {
                return;
            }
            state = sync::wait(&self.all_done, state);
        }
    }

    /// Waits until every job of the scope is done, running `pool`'s queued
    /// jobs meanwhile, on `pool`'s worker `index`.
    fn wait_helping(&self, pool: &Arc<Shared>, index: usize) {
        loop {
            if self.is_done() {
                return;
            }
            if let Some(job) = pool.try_next_job(index) {
                pool.run(job);
                continue;
            }
            pool.sleep_while_joining(index, || self.done_or_register(pool));
        }
    }

    /// For a helping owner, called with the pool lock held: whether to stop
    /// sleeping; if not, registers `pool` to be woken by the last job.
    fn done_or_register(&self, pool: &Arc<Shared>) -> bool {
        let mut state = self.lock();
        // Read under the scope lock, as in `wait_blocking`.
        if self.is_done() {
            return true;
        }
        state.helper = Some(Arc::clone(pool));
        false
    }
}

/// A scoped job's share of its scope's `pending` count, given back when
/// dropped. Always the last field of a scoped job, so it is dropped after
/// everything the job borrows.
struct Member(Arc<ScopeData>);

impl Member {
    fn join(data: &Arc<ScopeData>) -> Member {
        // Relaxed: made by the closure or by a job that still counts, so the
        // count cannot reach 0 meanwhile (module docs).
        data.pending.fetch_add(1, Ordering::Relaxed);
        Member(Arc::clone(data))
    }

    /// Tells the scope about a panic nobody will join, and drops its payload.
    fn report_panic(&self, payload: Payload) {
        self.0.report_unjoined_panic();
        job::drop_guarded(payload);
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.0.job_done();
    }
}

/// A scoped `execute`: its panic goes to the scope.
struct ScopedExecute<F> {
    f: F,
    member: Member,
}

impl<F: FnOnce() + Send> Task for ScopedExecute<F> {
    fn run_in_pool(self: Box<Self>) -> Outcome {
        let ScopedExecute { f, member } = *self;
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

    fn run_here(self: Box<Self>) {
        self.run_in_pool();
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
    fn run_in_pool(self: Box<Self>) -> Outcome {
        let ScopedSpawn { spawn, member } = *self;
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

    fn run_here(self: Box<Self>) {
        self.run_in_pool();
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
        let member = Member::join(&self.data);
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
        let member = Member::join(&self.data);
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
        let job: Box<dyn Task + 'scope> = Box::new(job);
        // Why erasing `'scope` is sound. The job may borrow data that lives
        // only for `'scope`, so it must not be used after `'scope` ends. It
        // is not:
        // - it holds a `Member` of this scope, which it drops only after
        //   dropping everything else it owns (run or not: see the module
        //   docs), and `ThreadPool::scope` does not return or unwind until
        //   every `Member` has been dropped (`pending == 0`);
        // - it is never handed out as a `Job`: `shutdown_now` needs the pool
        //   by value, and the pool is borrowed for the whole scope.
        // SAFETY: only the trait object's lifetime bound changes (same layout
        // and vtable), and the job is gone before `'scope` ends (above).
        let job = unsafe { mem::transmute::<Box<dyn Task + 'scope>, Box<dyn Task>>(job) };
        if self
            .pool
            .submit_job(Job::from_dyn(job), WhenFull::Wait)
            .is_err()
        {
            // Dropping the refused job releases its `Member`, so the scope
            // still completes.
            unreachable!("a pool borrowed by a scope is never shut down");
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let panicked = self.data.lock().panicked;
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
            None => scope.data.wait_blocking(),
        }
        mem::forget(abort);
    }
    let panicked = scope.data.lock().panicked;
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
