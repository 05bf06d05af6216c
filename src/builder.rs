//! Building a pool: settings, hooks, and starting the workers.

use std::any::Any;
use std::fmt;
use std::io;

use crate::error::BuildError;
use crate::pool::ThreadPool;
use crate::queue::Shared;
use crate::sync::{self, Arc, JoinHandle, ThreadBuilder};
use crate::worker;

type NameFn = dyn Fn(usize) -> String + Send + Sync + 'static;
type IndexHook = dyn Fn(usize) + Send + Sync + 'static;
type PanicHandler = dyn Fn(Box<dyn Any + Send + 'static>) + Send + Sync + 'static;

/// Settings fixed when the pool is built and read by every worker.
#[derive(Default)]
pub(crate) struct Config {
    pub(crate) thread_name: Option<Box<NameFn>>,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<Box<IndexHook>>,
    pub(crate) on_thread_stop: Option<Box<IndexHook>>,
    pub(crate) panic_handler: Option<Box<PanicHandler>>,
    /// In a loom model: whether idle workers spin before they sleep
    /// (`sleep.rs`); outside the models they always do. Off unless a model
    /// turns it on: the spin only delays a re-check made under the lock, but
    /// each spin doubles the interleavings of every idle moment, so the
    /// models of the sleep protocol run with it and the other models, which
    /// would only grow, without.
    pub(crate) spin_in_model: bool,
    /// In a loom model: whether an unbounded pool's outside submitters push
    /// without the lock (`injector.rs`); outside the models they always do.
    /// Off unless a model turns it on, for the same reason as
    /// `spin_in_model`: a lock-free push is six atomic steps where a locked
    /// one is two, which multiplied some models' interleavings by 45 and more
    /// while they check protocols that do not depend on how a job got into
    /// the queue. The models of submission, wake-up and shutdown run with it.
    pub(crate) lock_free_in_model: bool,
    /// In a loom model: whether a worker that takes an outside job moves a
    /// batch of the next ones into its own deque (`Shared::take_batch`);
    /// outside the models it always does. Off unless a model turns it on,
    /// for the reason of `spin_in_model`: every move makes and locks a
    /// deque the other models never needed.
    pub(crate) batch_in_model: bool,
}

impl Config {
    /// Whether an idle worker spins before it sleeps: always, except in
    /// loom models that did not ask for it.
    pub(crate) fn spins(&self) -> bool {
        !sync::MODEL_CHECKED || self.spin_in_model
    }

    /// Whether an unbounded pool's outside submitters push without the lock:
    /// always, except in loom models that did not ask for it.
    pub(crate) fn pushes_without_lock(&self) -> bool {
        !sync::MODEL_CHECKED || self.lock_free_in_model
    }

    /// Whether a worker taking an outside job moves a batch of the next
    /// ones into its own deque: always, except in loom models that did not
    /// ask for it.
    pub(crate) fn batches(&self) -> bool {
        !sync::MODEL_CHECKED || self.batch_in_model
    }

    fn thread_name(&self, index: usize) -> String {
        match &self.thread_name {
            Some(name) => name(index),
            None => format!("weft-{index}"),
        }
    }
}

/// Configures and builds a [`ThreadPool`].
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let counter = Arc::clone(&started);
/// let pool = weft::Builder::new()
///     .num_threads(2)
///     .thread_name(|i| format!("worker-{i}"))
///     .on_thread_start(move |_| {
///         counter.fetch_add(1, Ordering::Relaxed);
///     })
///     .panic_handler(|payload| {
///         let msg = payload.downcast_ref::<&str>().copied().unwrap_or("?");
///         eprintln!("a job panicked: {msg}");
///     })
///     .build()?;
/// pool.execute(|| assert!(std::thread::current().name().unwrap().starts_with("worker-")));
/// pool.shutdown();
/// assert_eq!(started.load(Ordering::Relaxed), 2);
/// # Ok::<(), weft::BuildError>(())
/// ```
#[must_use = "a Builder does nothing until `build` is called"]
pub struct Builder {
    num_threads: Option<usize>,
    queue_capacity: Option<usize>,
    config: Config,
}

impl Builder {
    /// A builder with the defaults: one thread per available CPU, threads
    /// named `weft-{i}`, the platform's stack size, no hooks, and no panic
    /// handler (a job's panic is caught and counted).
    pub fn new() -> Builder {
        Builder {
            num_threads: None,
            queue_capacity: None,
            config: Config::default(),
        }
    }

    /// The number of worker threads. Default: [`available_parallelism`],
    /// or 1 if that is unknown. Zero makes [`build`](Self::build) fail.
    ///
    /// [`available_parallelism`]: https://doc.rust-lang.org/std/thread/fn.available_parallelism.html
    pub fn num_threads(mut self, num_threads: usize) -> Builder {
        self.num_threads = Some(num_threads);
        self
    }

    /// Bounds the queue: at most `capacity` jobs wait in it (jobs already
    /// running do not count). When it is full, `execute` and `spawn` wait for
    /// room, [`try_execute`](ThreadPool::try_execute) refuses with
    /// [`Full`](crate::SubmitErrorKind::Full), and
    /// [`execute_timeout`](ThreadPool::execute_timeout) waits at most its
    /// timeout. A job submitted from a worker of the same pool is accepted
    /// past the capacity and never waits (all workers waiting on a queue only
    /// they can drain would deadlock). Default: unbounded. Zero makes
    /// [`build`](Self::build) fail.
    ///
    /// # Examples
    ///
    /// ```
    /// use weft::{Builder, SubmitErrorKind};
    ///
    /// let pool = Builder::new().num_threads(1).queue_capacity(1).build()?;
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// pool.execute(move || { let _ = rx.recv(); }); // occupies the worker
    /// # while pool.active_count() == 0 { std::thread::yield_now(); }
    /// pool.execute(|| ());                          // fills the queue
    /// let err = pool.try_execute(|| ()).unwrap_err();
    /// assert_eq!(err.kind(), SubmitErrorKind::Full);
    /// tx.send(()).unwrap();
    /// # Ok::<(), weft::BuildError>(())
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Builder {
        self.queue_capacity = Some(capacity);
        self
    }

    /// In a loom model: lets this pool's idle workers spin before sleeping,
    /// as they always do outside the models (see
    /// [`Config::spin_in_model`]). Only the models call it.
    #[allow(dead_code)]
    pub(crate) fn spin_before_sleep(mut self, on: bool) -> Builder {
        self.config.spin_in_model = on;
        self
    }

    /// In a loom model: lets this pool's outside submitters push without the
    /// lock, as they always do outside the models (see
    /// [`Config::lock_free_in_model`]). Only the models call it.
    #[allow(dead_code)]
    pub(crate) fn push_without_lock(mut self, on: bool) -> Builder {
        self.config.lock_free_in_model = on;
        self
    }

    /// In a loom model: lets this pool's workers move batches of outside
    /// jobs into their own deques, as they always do outside the models
    /// (see [`Config::batch_in_model`]). Only the models call it.
    #[allow(dead_code)]
    pub(crate) fn batch_outside_jobs(mut self, on: bool) -> Builder {
        self.config.batch_in_model = on;
        self
    }

    /// Names worker `i` with `name(i)`. Default: `weft-{i}`. Workers added
    /// later by [`set_num_threads`](ThreadPool::set_num_threads) continue the
    /// numbering; indices are never reused.
    pub fn thread_name<F>(mut self, name: F) -> Builder
    where
        F: Fn(usize) -> String + Send + Sync + 'static,
    {
        self.config.thread_name = Some(Box::new(name));
        self
    }

    /// The stack size of each worker thread, in bytes. Default: the
    /// platform's (as for `std::thread::spawn`).
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.config.stack_size = Some(bytes);
        self
    }

    /// Runs `hook(i)` on worker `i` when it starts, before it takes a job.
    /// A panic in the hook is caught and ignored; the worker still serves.
    pub fn on_thread_start<F>(mut self, hook: F) -> Builder
    where
        F: Fn(usize) + Send + Sync + 'static,
    {
        self.config.on_thread_start = Some(Box::new(hook));
        self
    }

    /// Runs `hook(i)` on worker `i` as it exits, after its last job.
    /// A panic in the hook is caught and ignored.
    pub fn on_thread_stop<F>(mut self, hook: F) -> Builder
    where
        F: Fn(usize) + Send + Sync + 'static,
    {
        self.config.on_thread_stop = Some(Box::new(hook));
        self
    }

    /// Receives the payload of every `execute`d job that panics, on the
    /// worker that ran it. The panic is counted in
    /// [`ThreadPool::panic_count`] either way. A panic in the handler itself is
    /// caught and ignored; the worker keeps serving.
    pub fn panic_handler<F>(mut self, handler: F) -> Builder
    where
        F: Fn(Box<dyn Any + Send + 'static>) + Send + Sync + 'static,
    {
        self.config.panic_handler = Some(Box::new(handler));
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// [`BuildError::ZeroThreads`] if `num_threads(0)` was set;
    /// [`BuildError::ZeroCapacity`] if `queue_capacity(0)` was set;
    /// [`BuildError::Spawn`] if the operating system refused a thread. In the
    /// latter case every worker already started has been shut down and
    /// joined when this returns.
    pub fn build(self) -> Result<ThreadPool, BuildError> {
        let num_threads = match self.num_threads {
            Some(0) => return Err(BuildError::ZeroThreads),
            Some(n) => n,
            None => sync::available_parallelism().map_or(1, |n| n.get()),
        };
        let capacity = match self.queue_capacity {
            Some(0) => return Err(BuildError::ZeroCapacity),
            Some(n) => n,
            None => usize::MAX,
        };
        let shared = Arc::new(Shared::new(self.config, capacity));
        // The pool exists before its workers do: if a spawn fails (or the
        // name hook panics), dropping it shuts down and joins the workers
        // started so far.
        let pool = ThreadPool::from_shared(shared);
        pool.set_num_threads(num_threads)?;
        Ok(pool)
    }
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("num_threads", &self.num_threads)
            .field("queue_capacity", &self.queue_capacity)
            .field("stack_size", &self.config.stack_size)
            .field("thread_name", &self.config.thread_name.is_some())
            .field("on_thread_start", &self.config.on_thread_start.is_some())
            .field("on_thread_stop", &self.config.on_thread_stop.is_some())
            .field("panic_handler", &self.config.panic_handler.is_some())
            .finish()
    }
}

/// Starts worker `index` of the pool that owns `shared`.
pub(crate) fn spawn_worker(shared: &Arc<Shared>, index: usize) -> io::Result<JoinHandle<()>> {
    let mut builder = ThreadBuilder::new().name(shared.config.thread_name(index));
    if let Some(bytes) = shared.config.stack_size {
        builder = builder.stack_size(bytes);
    }
    let shared = Arc::clone(shared);
    builder.spawn(move || worker::run(shared, index))
}
