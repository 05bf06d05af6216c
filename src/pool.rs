//! The pool's owner ([`ThreadPool`]) and its cloneable submitter ([`Handle`]).

use std::fmt;

use crate::builder::{self, Builder};
use crate::error::{BuildError, ShutdownTimedOut, SubmitError};
use crate::hub::{self, Hub, HubRef};
use crate::job::{Execute, Job, Spawn, TypedJob};
use crate::join::{JoinHandle, Promise};
use crate::queue::{Shared, WhenFull};
use crate::scope::{self, Scope};
use crate::shutdown;
use crate::sync::{self, Arc, Duration, Instant, JoinHandle as Thread, Mutex};
use crate::worker;

/// A pool of worker threads running submitted jobs.
///
/// Every job the pool accepts runs exactly once (or is handed back by
/// [`shutdown_now`](ThreadPool::shutdown_now)); a panicking job is caught,
/// counted and handed to the [panic handler](Builder::panic_handler), and the
/// worker keeps serving. Dropping the pool is a graceful [`shutdown`]: it
/// waits for every accepted job and joins every worker.
///
/// [`shutdown`]: ThreadPool::shutdown
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use weft::ThreadPool;
///
/// let pool = ThreadPool::new(4);
/// let sum = Arc::new(AtomicUsize::new(0));
/// for i in 1..=100 {
///     let sum = Arc::clone(&sum);
///     pool.execute(move || {
///         sum.fetch_add(i, Ordering::Relaxed);
///     });
/// }
/// pool.wait_idle();
/// assert_eq!(sum.load(Ordering::Relaxed), 5050);
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
    /// One handle per started worker (retired ones included, joined at
    /// shutdown). `None` once a shutdown has taken them. The lock also
    /// serialises resizes.
    workers: Mutex<Option<Vec<Thread<()>>>>,
}

impl ThreadPool {
    /// A pool of `num_threads` workers with default settings.
    ///
    /// # Panics
    ///
    /// If `num_threads` is 0 or the operating system refuses a thread. Use
    /// [`ThreadPool::builder`] to get these as a [`BuildError`].
    pub fn new(num_threads: usize) -> ThreadPool {
        match Builder::new().num_threads(num_threads).build() {
            Ok(pool) => pool,
            Err(err) => panic!("weft::ThreadPool::new({num_threads}): {err}"),
        }
    }

    /// A [`Builder`] for a pool with custom settings; the same as
    /// [`Builder::new`].
    pub fn builder() -> Builder {
        Builder::new()
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> ThreadPool {
        ThreadPool {
            shared,
            workers: Mutex::new(Some(Vec::new())),
        }
    }

    /// Runs `job` on a worker.
    ///
    /// The job is accepted before this returns and will run exactly once,
    /// even if the pool is shut down right after. If the queue is bounded
    /// and full, this waits for room, except on a worker of this same pool,
    /// where the job is accepted past the capacity.
    pub fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        if self.handle_ref().execute(job).is_err() {
            // Only shutdown closes the queue, and shutdown consumes the pool.
            unreachable!("a live ThreadPool's queue is never closed");
        }
    }

    /// Runs every job of `jobs` on a worker, in submission order, like
    /// calling [`execute`](Self::execute) for each, but taking the queue's
    /// lock once for as many jobs as fit rather than once per job, and
    /// waking no more sleeping workers than it queued jobs.
    ///
    /// If the queue is bounded, waits for room as `execute` does (never on a
    /// worker of this same pool, whose submissions are accepted past the
    /// capacity). Jobs that need a box (those capturing more than a
    /// pointer's worth) are boxed before the lock is taken.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = weft::ThreadPool::new(2);
    /// let sum = Arc::new(AtomicUsize::new(0));
    /// pool.execute_batch((1..=100).map(|i| {
    ///     let sum = Arc::clone(&sum);
    ///     move || {
    ///         sum.fetch_add(i, Ordering::Relaxed);
    ///     }
    /// }));
    /// pool.wait_idle();
    /// assert_eq!(sum.load(Ordering::Relaxed), 5050);
    /// ```
    pub fn execute_batch<I, F>(&self, jobs: I)
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() + Send + 'static,
    {
        if self.handle_ref().execute_batch(jobs).is_err() {
            unreachable!("a live ThreadPool's queue is never closed");
        }
    }

    /// Runs `job` on a worker if the queue has room now.
    ///
    /// # Errors
    ///
    /// [`Full`](crate::SubmitErrorKind::Full), with the job inside, if the
    /// bounded queue is full (never on a worker of this same pool).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::Builder::new().queue_capacity(64).build()?;
    /// if let Err(full) = pool.try_execute(|| println!("work")) {
    ///     full.into_inner()(); // no room: do it ourselves
    /// }
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn try_execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.handle_ref().try_execute(job)
    }

    /// Runs `job` on a worker, waiting at most `timeout` for room in a full
    /// bounded queue.
    ///
    /// # Errors
    ///
    /// [`TimedOut`](crate::SubmitErrorKind::TimedOut), with the job inside,
    /// if the queue stayed full for the whole timeout.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = weft::Builder::new().queue_capacity(8).build()?;
    /// pool.execute_timeout(|| println!("work"), Duration::from_millis(10))
    ///     .unwrap_or_else(|late| late.into_inner()());
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn execute_timeout<F>(&self, job: F, timeout: Duration) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.handle_ref().execute_timeout(job, timeout)
    }

    /// Runs `job` on a worker and returns a [`JoinHandle`] to its result.
    ///
    /// Waits for room in a full bounded queue, like [`execute`](Self::execute).
    /// The job's panic, if any, reaches [`JoinHandle::join`] as a
    /// [`JoinError`](crate::JoinError) (not the pool's panic handler); it is
    /// still counted in [`panic_count`](Self::panic_count).
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let handles: Vec<_> = (0..4u64).map(|i| pool.spawn(move || i * i)).collect();
    /// let squares: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(squares, [0, 1, 4, 9]);
    /// ```
    pub fn spawn<F, T>(&self, job: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        match self.handle_ref().spawn(job) {
            Ok(handle) => handle,
            Err(_) => unreachable!("a live ThreadPool's queue is never closed"),
        }
    }

    /// Runs `f` with a [`Scope`] in which jobs may borrow the caller's data,
    /// and returns once every job started in it has finished.
    ///
    /// Follows [`std::thread::scope`], but the jobs run on this pool's
    /// workers instead of new threads:
    /// - `scope` returns only after every job started in it has finished,
    ///   including jobs started by those jobs;
    /// - a panic that was [joined](crate::ScopedJoinHandle::join) is the
    ///   joiner's to handle; any other panic of a scoped job makes `scope`
    ///   panic after all the jobs are done;
    /// - if `f` itself panics, `scope` waits for the jobs, then resumes that
    ///   panic.
    ///
    /// On a worker of this same pool, `scope` runs queued jobs while it
    /// waits, so scopes can nest even on a one-thread pool. Elsewhere it
    /// waits as [`wait_idle`](Self::wait_idle) does: awake, yielding, for up
    /// to 2 ms while the pool has fewer workers than the machine has CPUs,
    /// then asleep.
    ///
    /// # Panics
    ///
    /// If `f` panics, or if a scoped job panicked and was not joined.
    ///
    /// # Examples
    ///
    /// Doubling a vector in place, one chunk per job:
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(4);
    /// let mut data: Vec<u64> = (0..1000).collect();
    /// pool.scope(|s| {
    ///     for chunk in data.chunks_mut(100) {
    ///         s.execute(move || chunk.iter_mut().for_each(|x| *x *= 2));
    ///     }
    /// });
    /// assert_eq!(data[999], 1998);
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        scope::run(&self.shared, f)
    }

    /// A cloneable, `Send + Sync` submitter for this pool that does not keep
    /// it alive: once the pool is shut down, its submissions are refused with
    /// the job handed back.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let handle = pool.handle();
    /// std::thread::spawn(move || handle.execute(|| println!("from another thread")).unwrap())
    ///     .join()
    ///     .unwrap();
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            hub: Hub::for_pool(&self.shared),
        }
    }

    fn handle_ref(&self) -> HandleRef<'_> {
        HandleRef(&self.shared)
    }

    /// Blocks until no job is queued or running.
    ///
    /// Jobs submitted concurrently (through a [`Handle`]) may keep the pool
    /// busy; this returns at a moment when it was idle, and the counters
    /// ([`completed_count`](Self::completed_count),
    /// [`panic_count`](Self::panic_count)) are exact at that moment.
    ///
    /// While the pool has fewer workers than the machine has CPUs, the
    /// caller stays awake, yielding its CPU, for up to 2 ms before it
    /// sleeps: a thread woken from sleep on an idle CPU can take tens of
    /// microseconds to run again, longer than many batches of short jobs.
    /// A wait that lasts longer costs that much CPU once.
    ///
    /// # Panics
    ///
    /// If called from inside one of this pool's own jobs: the pool cannot
    /// become idle while the caller's job is running, so this would wait for
    /// itself forever.
    pub fn wait_idle(&self) {
        self.refuse_wait_from_inside("wait_idle");
        self.shared.wait_idle();
    }

    /// Like [`wait_idle`](Self::wait_idle), but gives up after `timeout`.
    /// Returns `true` if the pool became idle.
    ///
    /// # Panics
    ///
    /// If called from inside one of this pool's own jobs (it could only ever
    /// time out).
    pub fn wait_idle_timeout(&self, timeout: Duration) -> bool {
        self.refuse_wait_from_inside("wait_idle_timeout");
        self.shared
            .wait_idle_until(Instant::now().checked_add(timeout))
    }

    fn refuse_wait_from_inside(&self, call: &str) {
        if worker::is_worker_of(&self.shared) {
            panic!(
                "weft: ThreadPool::{call} called from inside one of the pool's own jobs; \
                 the pool cannot become idle while this job runs, so it would wait forever"
            );
        }
    }

    /// Sets the number of worker threads.
    ///
    /// Growing starts the new workers at once. Shrinking lets surplus workers
    /// retire as soon as they are idle or have finished their current job:
    /// never mid-job, and never below `num_threads`. [`num_threads`] reports
    /// the new size immediately.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] for 0 (the size is unchanged);
    /// [`BuildError::Spawn`] if the operating system refused a new thread
    /// (the pool keeps the workers it could start, and [`num_threads`]
    /// counts only those).
    ///
    /// [`num_threads`]: Self::num_threads
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// pool.set_num_threads(4)?;
    /// assert_eq!(pool.num_threads(), 4);
    /// pool.set_num_threads(2)?;
    /// assert_eq!(pool.num_threads(), 2);
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn set_num_threads(&self, num_threads: usize) -> Result<(), BuildError> {
        if num_threads == 0 {
            return Err(BuildError::ZeroThreads);
        }
        let mut workers = sync::lock(&self.workers);
        let workers = workers
            .as_mut()
            .expect("a live ThreadPool still owns its workers");
        let new = self.shared.set_target(num_threads);
        // Workers reserved but not started must be given back, whether a
        // spawn fails or the thread-name hook panics: shutdown waits for the
        // live count to drop, and a phantom worker would never exit.
        let mut reserved = Reservation {
            shared: &self.shared,
            unstarted: new.len(),
        };
        for index in new {
            let thread = builder::spawn_worker(&self.shared, index).map_err(BuildError::Spawn)?;
            workers.push(thread);
            reserved.unstarted -= 1;
        }
        Ok(())
    }

    /// Shuts the pool down gracefully: refuses new jobs (a [`Handle`]'s
    /// submissions come back as [`SubmitErrorKind::ShutDown`]), runs every job
    /// already accepted, and joins every worker. Dropping the pool does the
    /// same.
    ///
    /// Called from inside one of the pool's own jobs, it helps drain the
    /// queue, joins the other workers, and lets its own worker exit once the
    /// current job returns (a thread cannot join itself).
    ///
    /// [`SubmitErrorKind::ShutDown`]: crate::SubmitErrorKind::ShutDown
    pub fn shutdown(self) {
        drop(self);
    }

    /// Shuts the pool down without running what is still queued: refuses new
    /// jobs, lets running jobs finish, joins the workers, and returns every
    /// job that never started, in no particular order, except that the jobs
    /// submitted from outside the pool keep their submission order among
    /// themselves.
    ///
    /// The returned [`Job`]s are the caller's: [`Job::run`] runs one here;
    /// dropping one discards it (a spawned job's [`JoinHandle`] then resolves
    /// as cancelled). A pool worker blocked joining a job that is handed back
    /// stops waiting at once, with a cancelled error, so this never waits on
    /// a worker that waits on a job only the caller now holds.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// for i in 0..100 {
    ///     pool.execute(move || { let _ = i; });
    /// }
    /// let unstarted = pool.shutdown_now();
    /// println!("{} jobs never started", unstarted.len());
    /// for job in unstarted {
    ///     job.run(); // or drop it
    /// }
    /// ```
    pub fn shutdown_now(self) -> Vec<Job> {
        let workers = self.take_workers();
        shutdown::now(&self.shared, workers)
    }

    /// Shuts the pool down gracefully, but waits at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`ShutdownTimedOut`], reporting how many jobs were still queued and
    /// running, if the deadline passed first. Nothing is dropped then: the
    /// workers are detached and keep draining the queue in the background,
    /// exiting when it is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = weft::ThreadPool::new(2);
    /// pool.execute(|| println!("quick"));
    /// match pool.shutdown_timeout(Duration::from_secs(5)) {
    ///     Ok(()) => println!("all done"),
    ///     Err(late) => eprintln!("{late}"),
    /// }
    /// ```
    pub fn shutdown_timeout(self, timeout: Duration) -> Result<(), ShutdownTimedOut> {
        let deadline = Instant::now().checked_add(timeout);
        let workers = self.take_workers();
        shutdown::with_deadline(&self.shared, workers, deadline)
    }

    fn take_workers(&self) -> Vec<Thread<()>> {
        sync::lock(&self.workers).take().unwrap_or_default()
    }

    /// The number of worker threads the pool is set to.
    pub fn num_threads(&self) -> usize {
        self.shared.num_threads()
    }

    /// Jobs accepted but not yet started. A snapshot: other threads may change
    /// it at once.
    pub fn queued_count(&self) -> usize {
        self.shared.queued_count()
    }

    /// Jobs running now. A snapshot.
    pub fn active_count(&self) -> usize {
        self.shared.active_count()
    }

    /// Jobs that have returned normally so far.
    pub fn completed_count(&self) -> usize {
        self.shared.completed_count()
    }

    /// Jobs that have panicked so far (spawned ones included). Once the pool
    /// is idle, `completed_count() + panic_count()` is the number of jobs
    /// that ran.
    pub fn panic_count(&self) -> usize {
        self.shared.panic_count()
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        if let Some(workers) = sync::lock(&self.workers).take() {
            shutdown::graceful(&self.shared, workers);
        }
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadPool")
            .field("num_threads", &self.num_threads())
            .field("queued", &self.queued_count())
            .field("active", &self.active_count())
            .finish_non_exhaustive()
    }
}

/// Workers counted live by `set_target` that are not started yet.
struct Reservation<'a> {
    shared: &'a Shared,
    unstarted: usize,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.unstarted > 0 {
            self.shared.spawn_failed(self.unstarted);
        }
    }
}

/// A cloneable submitter for a [`ThreadPool`], usable from any thread.
///
/// A handle does not keep its pool running: after the pool is shut down,
/// every submission returns the job inside a [`SubmitError`] of kind
/// [`ShutDown`](crate::SubmitErrorKind::ShutDown).
pub struct Handle {
    /// The pool, behind the reference count of a worker's hub or of the
    /// handle's own (`hub.rs`).
    hub: HubRef,
}

impl Handle {
    /// The pool whose worker is running the caller, if any.
    ///
    /// Cheap on a worker: one thread-local read and a count that the worker
    /// keeps without atomic instructions. A job that submits children this
    /// way, rather than capturing a cloned handle in each child, also keeps
    /// the children's closures small: one that fits in a pointer (capturing
    /// nothing, a reference, one small value or one `Arc`) is queued
    /// without an allocation.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// assert!(weft::Handle::current().is_none());
    /// pool.execute(|| {
    ///     let handle = weft::Handle::current().expect("on a worker");
    ///     handle.execute(|| println!("a child job")).unwrap();
    /// });
    /// ```
    #[inline]
    pub fn current() -> Option<Handle> {
        hub::owned_ref().map(|hub| Handle { hub })
    }

    /// Submits `job`, waiting for room if the bounded queue is full (never on
    /// a worker of this same pool).
    ///
    /// # Errors
    ///
    /// [`ShutDown`](crate::SubmitErrorKind::ShutDown) once the pool has been
    /// shut down (also while waiting for room); the job is inside the error,
    /// unrun.
    pub fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        HandleRef(self.hub.shared()).execute(job)
    }

    /// Submits every job of `jobs`, in order, as
    /// [`ThreadPool::execute_batch`] does: one lock for as many as fit,
    /// waiting for room in a bounded queue (never on a worker of this same
    /// pool).
    ///
    /// # Errors
    ///
    /// [`ShutDown`](crate::SubmitErrorKind::ShutDown) if the pool was shut
    /// down before every job was accepted. The error holds the jobs that were
    /// not accepted, in order, unrun; the ones before them were accepted and
    /// run as usual.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(2);
    /// let handle = pool.handle();
    /// handle.execute_batch((0..4).map(|i| move || println!("job {i}"))).unwrap();
    /// pool.shutdown();
    /// let refused = handle.execute_batch([|| println!("too late")]).unwrap_err();
    /// assert_eq!(refused.into_inner().len(), 1);
    /// ```
    pub fn execute_batch<I, F>(&self, jobs: I) -> Result<(), SubmitError<Vec<F>>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() + Send + 'static,
    {
        HandleRef(self.hub.shared()).execute_batch(jobs)
    }

    /// Submits `job` if the queue has room now.
    ///
    /// # Errors
    ///
    /// [`Full`](crate::SubmitErrorKind::Full) if the bounded queue is full,
    /// [`ShutDown`](crate::SubmitErrorKind::ShutDown) after shutdown; the job
    /// is inside the error, unrun.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft::SubmitErrorKind;
    ///
    /// let pool = weft::Builder::new().queue_capacity(16).build()?;
    /// let handle = pool.handle();
    /// match handle.try_execute(|| println!("work")) {
    ///     Ok(()) => {}
    ///     Err(e) if e.kind() == SubmitErrorKind::Full => e.into_inner()(), // shed load here
    ///     Err(e) => panic!("{e}"),
    /// }
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn try_execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        HandleRef(self.hub.shared()).try_execute(job)
    }

    /// Submits `job`, waiting at most `timeout` for room in a full bounded
    /// queue.
    ///
    /// # Errors
    ///
    /// [`TimedOut`](crate::SubmitErrorKind::TimedOut) if the queue stayed
    /// full, [`ShutDown`](crate::SubmitErrorKind::ShutDown) after shutdown;
    /// the job is inside the error, unrun.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let pool = weft::Builder::new().queue_capacity(16).build()?;
    /// let handle = pool.handle();
    /// if let Err(e) = handle.execute_timeout(|| println!("work"), Duration::from_millis(50)) {
    ///     eprintln!("gave up: {e}");
    /// }
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn execute_timeout<F>(&self, job: F, timeout: Duration) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        HandleRef(self.hub.shared()).execute_timeout(job, timeout)
    }

    /// Submits `job` and returns a [`JoinHandle`] to its result; waits for
    /// room like [`execute`](Self::execute).
    ///
    /// # Errors
    ///
    /// [`ShutDown`](crate::SubmitErrorKind::ShutDown) once the pool has been
    /// shut down; the closure is inside the error, unrun.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// let handle = pool.handle();
    /// let sum = pool.spawn(move || {
    ///     // A job spawning and joining its own children, even on one thread.
    ///     let kids: Vec<_> = (1..=3).map(|i| handle.spawn(move || i).unwrap()).collect();
    ///     kids.into_iter().map(|k| k.join().unwrap()).sum::<i32>()
    /// });
    /// assert_eq!(sum.join().unwrap(), 6);
    /// ```
    pub fn spawn<F, T>(&self, job: F) -> Result<JoinHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        HandleRef(self.hub.shared()).spawn(job)
    }
}

impl Clone for Handle {
    /// Another handle on the same pool. Made on a worker of that pool, it
    /// shares that worker's reference count rather than the pool's, so
    /// handles made and dropped inside jobs do not contend across workers.
    fn clone(&self) -> Handle {
        Handle {
            hub: self.hub.clone(),
        }
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The submission calls, shared by [`ThreadPool`] and [`Handle`] without
/// cloning the `Arc`.
struct HandleRef<'a>(&'a Arc<Shared>);

impl HandleRef<'_> {
    fn submit<F>(&self, job: F, when_full: WhenFull) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.0
            .submit(TypedJob::new(Execute(job)), when_full)
            .map_err(|(kind, task)| SubmitError::new(kind, task.into_task().0))
    }

    fn execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.submit(job, WhenFull::Wait)
    }

    fn execute_batch<I, F>(&self, jobs: I) -> Result<(), SubmitError<Vec<F>>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() + Send + 'static,
    {
        // Made (and boxed, if they need it) before the lock is taken, and kept
        // typed until accepted so that refused closures can be handed back.
        let tasks = jobs
            .into_iter()
            .map(|job| TypedJob::new(Execute(job)))
            .collect();
        self.0.submit_batch(tasks).map_err(|(kind, rest)| {
            let rest = rest.into_iter().map(|task| task.into_task().0).collect();
            SubmitError::new(kind, rest)
        })
    }

    fn try_execute<F>(&self, job: F) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        self.submit(job, WhenFull::Refuse)
    }

    fn execute_timeout<F>(&self, job: F, timeout: Duration) -> Result<(), SubmitError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        let deadline = Instant::now().checked_add(timeout);
        self.submit(job, WhenFull::WaitUntil(deadline))
    }

    fn spawn<F, T>(&self, job: F) -> Result<JoinHandle<T>, SubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (promise, handle) = Promise::new(self.0);
        let task = TypedJob::new(Spawn { f: job, promise });
        match self.0.submit(task, WhenFull::Wait) {
            Ok(()) => Ok(handle),
            Err((kind, task)) => {
                let Spawn { f, promise } = task.into_task();
                // Nobody will see this handle; don't let the promise resolve it.
                promise.forget();
                Err(SubmitError::new(kind, f))
            }
        }
    }
}
