//! Results of spawned jobs: the one-shot slot between a job and its
//! [`JoinHandle`], and joining without starving the pool.
//!
//! # Protocol
//!
//! A `spawn` allocates one [`Slot`] shared by the job's [`Promise`] (moved
//! into the job) and the [`JoinHandle`]. Everything in the slot is guarded by
//! its mutex:
//!
//! | field         | written by                                   | read by                         |
//! |---------------|----------------------------------------------|---------------------------------|
//! | `result`      | the promise, once (fulfil, or cancel on drop) | `join` / `poll`, which take it  |
//! | `resolved`    | the promise, with `result`                   | `join`, `poll`, `is_finished`   |
//! | `handed_back` | `shutdown_now`, under the pool lock too      | a joining pool worker           |
//! | `waker`       | `poll`                                       | the promise, which wakes it     |
//! | `helper`      | a joining pool worker, before it sleeps      | the promise, which wakes it     |
//!
//! A scoped job's slot also knows its scope (`Slot::scope`, set once at
//! creation): whichever of the promise and the handle drops the slot last
//! reports a panic still in it, one nobody joined, to the scope
//! (`scope.rs`).
//! **Blocking join** (outside the pool): wait on the slot's condvar until
//! `resolved`. The promise resolves under the lock, then notifies, so the
//! check-then-wait cannot miss it. Before it locks, the joiner waits
//! awake for a bounded time (`sleep.rs`), watching `Slot::progress`, a hint
//! the job stores as it starts and the promise as it resolves: while the
//! pool leaves a CPU free it yields until the hint says resolved, and
//! otherwise it spins briefly while the job runs or a worker is spinning
//! awake. The hint decides nothing: the joiner then locks and checks
//! `resolved` exactly as before, so the wait only delays the check, and a
//! joiner that saw the result there never sleeps and is never notified.
//! Proven by `loom-tests/spin.rs`
//! (`outside_joiner_waiting_awake_on_its_job_gets_its_result`).
//!
//! A promise dropped unrun (a handed-back job that is discarded) resolves to
//! a cancelled [`JoinError`]: every handle resolves, one way or the other.
//!
//! **Future.** `poll` stores the task's waker under the slot lock if not
//! resolved; the promise takes the waker under the same lock when it
//! resolves and wakes it after unlocking. Either `poll` sees `resolved`, or
//! its waker is in the slot before the promise looks. Proven by
//! `loom-tests/join.rs` (`poll_racing_completion_is_never_lost`).
//!
//! **Helping join** (on a worker of the job's own pool): a worker that
//! blocked on the slot could starve the pool (a 1-worker pool joining its own
//! child would wait forever, the child queued behind it). So it runs queued
//! jobs while it waits (its own newest first: usually the child it joins,
//! which keeps recursive spawn-and-join one stack frame per level; see
//! `queue.rs`), and sleeps only when the queue is empty, on the
//! *pool's* `work_ready` condvar, woken by either a new job or the slot
//! resolving. Under the pool lock it checks the slot and, if unresolved,
//! registers the pool in `helper`; the promise, after resolving, takes
//! `helper` and notifies `work_ready` *while holding the pool lock*. Either
//! the check saw `resolved`, or the joiner was asleep before the notifier
//! could take the pool lock: no lost wake-up. Lock order is always pool, then
//! slot; the promise never holds both. Proven by `loom-tests/join.rs`
//! (`one_worker_joins_its_own_child`, `join_racing_completion_returns_the_result`).
//!
//! A job of its own deque the joiner takes without the pool lock, as the
//! worker loop does, and counts in the worker's tally
//! (`Shared::help_once`, `worker::help_from_own_deque`): the worker is
//! counted running while its job joins, so the pool is not idle before the
//! worker records them. Recursive spawn-and-join on two workers went from
//! 171 to 75 ns a node (one worker: 146 to 127); through the pool lock,
//! taken twice per helped job, two workers were slower than one. Proven by
//! `jobs_a_joiner_runs_from_its_own_deque_are_counted_before_the_pool_is_idle`
//! (`loom-tests/local.rs`).
//!
//! **Handed back.** `shutdown_now` marks each handed-back spawned job's slot
//! under the pool lock, then wakes all workers. A pool worker joining such a
//! job resolves at once as cancelled, since the pool will never run it; a
//! join outside the pool waits until the [`Job`](crate::Job) is run or
//! dropped. Proven by `loom-tests/shutdown_now.rs`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use crate::error::Exclusive;
use crate::job::Payload;
use crate::queue::Shared;
use crate::scope::ScopeData;
use crate::sleep;
use crate::sync::{self, Arc, AtomicUsize, Condvar, Mutex, MutexGuard, Ordering};
use crate::worker;

/// The one-shot rendezvous between a spawned job and its handle.
pub(crate) struct Slot<T> {
    state: Mutex<SlotState<T>>,
    /// A blocking `join` waits here for `resolved`.
    resolved: Condvar,
    /// How far the job is ([`QUEUED`], [`RUNNING`], [`RESOLVED`]): a hint
    /// for a joiner outside the pool deciding whether to keep spinning or
    /// yielding. Written only when `hinted`.
    progress: AtomicUsize,
    /// Whether the pool's joiners wait awake, spinning or yielding, before
    /// they lock (always, except in loom models that did not ask for it: a
    /// store is one more step to explore).
    hinted: bool,
    /// For a scoped job: the scope told, when the slot goes away, that it
    /// held a panic nobody joined (see `scope.rs`).
    scope: Option<Arc<ScopeData>>,
}

struct SlotState<T> {
    /// The job's result, until a `join` or `poll` takes it.
    result: Option<Result<T, JoinError>>,
    /// Set once, with `result`; never cleared.
    resolved: bool,
    /// Set by `shutdown_now` when the job is handed back unstarted.
    handed_back: bool,
    /// A blocking `join` is waiting on `Slot::resolved`.
    joiner_blocked: bool,
    /// The waker of the task that last polled the handle.
    waker: Option<Waker>,
    /// The pool whose worker is helping while it joins this slot.
    helper: Option<Arc<Shared>>,
}

/// [`Slot::progress`]: the job has not started.
const QUEUED: usize = 0;
/// [`Slot::progress`]: the job is running.
const RUNNING: usize = 1;
/// [`Slot::progress`]: the slot is resolved.
const RESOLVED: usize = 2;

impl<T> Slot<T> {
    fn new(scope: Option<Arc<ScopeData>>, hinted: bool) -> Slot<T> {
        Slot {
            state: Mutex::new(SlotState {
                result: None,
                resolved: false,
                handed_back: false,
                joiner_blocked: false,
                waker: None,
                helper: None,
            }),
            resolved: Condvar::new(),
            progress: AtomicUsize::new(QUEUED),
            hinted,
            scope,
        }
    }

    fn publish_progress(&self, progress: usize) {
        if self.hinted {
            // Relaxed: pairs with the `Relaxed` load of `worth_spinning`; a
            // hint, the slot's lock orders the result.
            self.progress.store(progress, Ordering::Relaxed);
        }
    }

    /// Whether a joiner outside the pool should keep spinning: its job is
    /// running, or queued while some worker of `pool` spins awake.
    fn worth_spinning(&self, pool: &Shared) -> bool {
        // Relaxed: pairs with the `Relaxed` stores of `publish_progress`.
        match self.progress.load(Ordering::Relaxed) {
            RUNNING => true,
            QUEUED => pool.worker_spinning(),
            _ => false,
        }
    }

    /// Whether the progress hint says the job is resolved: for a joiner
    /// outside the pool deciding whether to keep yielding.
    fn resolved_hint(&self) -> bool {
        // Relaxed: pairs with the `Relaxed` stores of `publish_progress`; a
        // hint, the joiner takes the result under the slot's lock.
        self.progress.load(Ordering::Relaxed) == RESOLVED
    }

    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        sync::lock(&self.state)
    }

    fn resolve(&self, result: Result<T, JoinError>) {
        let mut state = self.lock();
        debug_assert!(!state.resolved, "a job's result was delivered twice");
        state.result = Some(result);
        state.resolved = true;
        let waker = state.waker.take();
        let helper = state.helper.take();
        let blocked = state.joiner_blocked;
        // Under the lock, after the result: a joiner that sees it still
        // locks to take the result.
        self.publish_progress(RESOLVED);
        drop(state);
        if blocked {
            self.resolved.notify_all();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
        if let Some(pool) = helper {
            pool.wake_helping_joiners();
        }
    }

    /// For a helping joiner, called with the pool lock held: whether to stop
    /// sleeping; if not, registers `pool` to be woken on resolution.
    pub(crate) fn ready_or_register(&self, pool: &Arc<Shared>) -> bool {
        let mut state = self.lock();
        if state.resolved || state.handed_back {
            return true;
        }
        state.helper = Some(Arc::clone(pool));
        false
    }
}

impl<T> Drop for Slot<T> {
    /// The last of the promise and the handle is going away. A scoped job's
    /// panic still in the slot was never joined: its scope must panic.
    fn drop(&mut self) {
        if let Some(scope) = self.scope.take() {
            let unjoined_panic = matches!(&self.lock().result, Some(Err(err)) if err.is_panic());
            if unjoined_panic {
                scope.report_unjoined_panic();
            }
        }
    }
}

/// The job's side of a [`Slot`]. Resolves the handle exactly once: with the
/// job's result, or, if dropped unrun, as cancelled.
pub(crate) struct Promise<T> {
    slot: Option<Arc<Slot<T>>>,
}

impl<T> Promise<T> {
    /// A connected promise and handle for a job of `pool`.
    pub(crate) fn new(pool: &Arc<Shared>) -> (Promise<T>, JoinHandle<T>) {
        Promise::connect(pool, Slot::new(None, pool.config.spins()))
    }

    /// A connected promise and handle for a job of `scope`: if the job
    /// panics and the handle is dropped unjoined, the scope is told.
    pub(crate) fn new_scoped(
        pool: &Arc<Shared>,
        scope: Arc<ScopeData>,
    ) -> (Promise<T>, JoinHandle<T>) {
        Promise::connect(pool, Slot::new(Some(scope), pool.config.spins()))
    }

    fn connect(pool: &Arc<Shared>, slot: Slot<T>) -> (Promise<T>, JoinHandle<T>) {
        let slot = Arc::new(slot);
        let handle = JoinHandle {
            slot: Arc::clone(&slot),
            pool: Arc::clone(pool),
        };
        (Promise { slot: Some(slot) }, handle)
    }

    /// Disconnects from the slot without resolving it: for a job that was
    /// refused, whose handle is dropped unseen.
    pub(crate) fn forget(mut self) {
        self.slot = None;
    }

    /// Tells a spinning joiner that the job has started.
    pub(crate) fn started(&self) {
        if let Some(slot) = &self.slot {
            slot.publish_progress(RUNNING);
        }
    }

    pub(crate) fn fulfil(mut self, result: Result<T, JoinError>) {
        if let Some(slot) = self.slot.take() {
            slot.resolve(result);
        }
    }

    /// Called by `shutdown_now` with the pool lock held.
    pub(crate) fn mark_handed_back(&self) {
        if let Some(slot) = &self.slot {
            let mut state = slot.lock();
            state.handed_back = true;
            // The joiner (if any) is woken by shutdown_now's notify_all once
            // the pool lock is released; drop our reference to the pool now.
            state.helper = None;
        }
    }
}

impl<T> Drop for Promise<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.resolve(Err(JoinError::cancelled()));
        }
    }
}

/// An owned permission to wait for a spawned job's result.
///
/// [`join`](JoinHandle::join) blocks for it; `.await` waits for it without
/// blocking (no particular async runtime is needed). Dropping the handle
/// detaches the job: it still runs, and its result is dropped.
///
/// Joining on a worker of the job's own pool runs other queued jobs while it
/// waits, so a pool, even of one thread, can spawn and join its own children.
///
/// # Examples
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.spawn(|| 6 * 7);
/// assert_eq!(answer.join().unwrap(), 42);
///
/// let oops = pool.spawn(|| -> u8 { panic!("no result") });
/// let err = oops.join().unwrap_err();
/// assert!(err.is_panic());
/// ```
///
/// As a `Future`, under any executor; here a minimal one that parks the
/// thread until the handle's waker fires:
///
/// ```
/// use std::future::Future;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use std::thread::{self, Thread};
///
/// struct Unpark(Thread);
/// impl Wake for Unpark {
///     fn wake(self: Arc<Self>) {
///         self.0.unpark();
///     }
/// }
///
/// fn block_on<F: Future>(future: F) -> F::Output {
///     let mut future = std::pin::pin!(future);
///     let waker = Waker::from(Arc::new(Unpark(thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     loop {
///         match future.as_mut().poll(&mut cx) {
///             Poll::Ready(output) => return output,
///             Poll::Pending => thread::park(),
///         }
///     }
/// }
///
/// let pool = weft::ThreadPool::new(2);
/// let greeting = pool.spawn(|| String::from("hello"));
/// assert_eq!(block_on(async { greeting.await.unwrap() }), "hello");
/// ```
pub struct JoinHandle<T> {
    slot: Arc<Slot<T>>,
    /// The pool the job was submitted to, to help it while joining.
    pool: Arc<Shared>,
}

impl<T> JoinHandle<T> {
    /// Waits for the job and returns its result.
    ///
    /// On a worker of the same pool, runs other queued jobs while it waits.
    /// Elsewhere, while the pool has fewer workers than the machine has
    /// CPUs, the caller stays awake, yielding its CPU, for up to 2 ms before
    /// it sleeps, as [`ThreadPool::wait_idle`](crate::ThreadPool::wait_idle)
    /// does: the job's worker may share that CPU, and a sleeping caller
    /// takes microseconds to wake. A wait that lasts longer costs that much
    /// CPU once.
    ///
    /// # Errors
    ///
    /// A [`JoinError`] that [`is_panic`](JoinError::is_panic) if the job
    /// panicked (the payload is inside), or that
    /// [`is_cancelled`](JoinError::is_cancelled) if it never ran: it was
    /// handed back by `shutdown_now` and dropped (or, when joined from a
    /// worker of the same pool, merely handed back).
    ///
    /// # Panics
    ///
    /// If the handle was already polled to completion as a `Future`.
    pub fn join(self) -> Result<T, JoinError> {
        match worker::index_in(&self.pool) {
            Some(index) => self.join_helping(index),
            None => self.join_blocking(),
        }
    }

    fn join_blocking(self) -> Result<T, JoinError> {
        if self.slot.hinted {
            if self.pool.cpu_free() {
                // The job's worker may share this thread's CPU: yield it
                // (`sleep.rs`).
                sleep::YieldBudget::new().yield_while(|| !self.slot.resolved_hint());
            } else {
                sleep::spin_while(|| self.slot.worth_spinning(&self.pool));
            }
        }
        let mut state = self.slot.lock();
        while !state.resolved {
            state.joiner_blocked = true;
            state = sync::wait(&self.slot.resolved, state);
        }
        take_result(&mut state)
    }

    fn join_helping(self, index: usize) -> Result<T, JoinError> {
        loop {
            {
                let mut state = self.slot.lock();
                if state.resolved {
                    return take_result(&mut state);
                }
                if state.handed_back {
                    return Err(JoinError::cancelled());
                }
            }
            if self.pool.help_once(index) {
                continue;
            }
            self.pool
                .sleep_while_joining(index, || self.slot.ready_or_register(&self.pool));
        }
    }

    /// Whether the job has finished (or was cancelled), so that `join` would
    /// not block.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// let job = pool.spawn(|| 1 + 1);
    /// pool.wait_idle();
    /// assert!(job.is_finished());
    /// assert_eq!(job.join().unwrap(), 2);
    /// ```
    pub fn is_finished(&self) -> bool {
        self.slot.lock().resolved
    }
}

fn take_result<T>(state: &mut SlotState<T>) -> Result<T, JoinError> {
    state
        .result
        .take()
        .expect("JoinHandle polled again after it returned Poll::Ready")
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        if state.resolved {
            return Poll::Ready(take_result(&mut state));
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Why a spawned job produced no value: it panicked, or it was cancelled
/// (handed back by `shutdown_now` and never run).
///
/// `Send + Sync` whatever the payload; the payload is reached by value
/// through [`into_panic`](JoinError::into_panic).
///
/// # Examples
///
/// ```
/// let pool = weft::ThreadPool::new(1);
/// let job = pool.spawn(|| -> u32 { panic!("bad input") });
/// let err = job.join().unwrap_err();
/// assert!(err.is_panic() && !err.is_cancelled());
/// assert_eq!(err.to_string(), "job panicked: bad input");
/// let payload = err.into_panic(); // or std::panic::resume_unwind(payload)
/// assert_eq!(payload.downcast_ref::<&str>(), Some(&"bad input"));
/// ```
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    Panic {
        payload: Exclusive<Payload>,
        /// The payload's text, if it was a string, for `Display`.
        message: Option<String>,
    },
    Cancelled,
}

impl JoinError {
    pub(crate) fn panic(payload: Payload) -> JoinError {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned());
        JoinError {
            repr: Repr::Panic {
                payload: Exclusive::new(payload),
                message,
            },
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    /// Whether the job panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic { .. })
    }

    /// Whether the job was cancelled: handed back by `shutdown_now` and never
    /// run in the pool.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The job's panic payload, to inspect or to resume with
    /// [`std::panic::resume_unwind`].
    ///
    /// # Panics
    ///
    /// If the error is a cancellation. Use
    /// [`try_into_panic`](JoinError::try_into_panic) to avoid that.
    pub fn into_panic(self) -> Box<dyn std::any::Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(_) => panic!("JoinError::into_panic called on a cancelled job's error"),
        }
    }

    /// The job's panic payload, or the error back if it was a cancellation.
    ///
    /// # Errors
    ///
    /// Returns `self` if the job was cancelled rather than panicking.
    pub fn try_into_panic(self) -> Result<Box<dyn std::any::Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic { payload, .. } => Ok(payload.into_inner()),
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic { message, .. } => f
                .debug_struct("JoinError::Panic")
                .field("message", message)
                .finish_non_exhaustive(),
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic {
                message: Some(message),
                ..
            } => write!(f, "job panicked: {message}"),
            Repr::Panic { message: None, .. } => f.write_str("job panicked"),
            Repr::Cancelled => f.write_str("job was cancelled: it was handed back unrun"),
        }
    }
}

impl std::error::Error for JoinError {}
