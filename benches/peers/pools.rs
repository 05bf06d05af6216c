//! The pools under test, behind one small trait.
//!
//! A workload needs three things from a pool: submit a job from outside
//! ([`Pool::execute`]), submit one from inside a running job
//! ([`Pool::inside`]), and learn that everything submitted has run
//! ([`Pool::COMPLETION`]). Where a pool has a native way to do a whole step —
//! a round trip with a result, a fan-in, a tree of jobs — it overrides the
//! provided method, so each pool is measured on its own best path.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::workloads::{Contender, Workload};

/// A job as the channel pools written here carry it.
type Job = Box<dyn FnOnce() + Send + 'static>;

/// How a workload learns that every job it submitted has run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Completion {
    /// The pool's own "wait until idle" call, named for the table.
    Wait(&'static str),
    /// The pool has no such call: each job counts [`DONE`] down and the
    /// caller waits on it.
    Latch,
    /// A scope, which returns when its jobs are done.
    Scope,
    /// The jobs run on the caller, so they are done once submitted.
    Inline,
}

impl Completion {
    /// How the table names it.
    pub fn describe(self) -> &'static str {
        match self {
            Completion::Wait(call) => call,
            Completion::Latch => "latch",
            Completion::Scope => "scope",
            Completion::Inline => "—",
        }
    }
}

/// A pool under test, as the workloads see it.
pub trait Pool: Sync {
    /// The pool's name in the tables.
    const NAME: &'static str;
    /// How its jobs are waited for.
    const COMPLETION: Completion;
    /// What a running job uses to submit more jobs to the same pool.
    type Inside: Submitter;
    /// How [`round_trip`](Self::round_trip) gets the result back.
    const ROUND_TRIP: &'static str = "channel";

    /// Submits `job` from outside the pool.
    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static;

    /// A submitter for jobs to carry into the pool.
    fn inside(&self) -> Self::Inside;

    /// Blocks until every job submitted so far has run. Only called when
    /// [`COMPLETION`](Self::COMPLETION) is [`Completion::Wait`].
    fn wait(&self) {}

    /// Whether this pool takes part in `workload`.
    fn runs(_workload: Workload) -> bool {
        true
    }

    /// Runs `job` on the pool and returns its result to the caller. Pools
    /// without a handle send it back over a channel.
    fn round_trip<T, F>(&self, job: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (result_tx, result_rx) = mpsc::sync_channel(1);
        self.execute(move || {
            let _ = result_tx.send(job());
        });
        result_rx.recv().expect("the job does not panic")
    }

    /// Runs every job of `jobs`, submitted from outside, and returns once all
    /// have run. Returns the moment the last one had been submitted.
    fn fan_in<F, I>(&self, jobs: I) -> Instant
    where
        F: FnOnce() + Send + 'static,
        I: ExactSizeIterator<Item = F> + Send,
    {
        self.expect_jobs(jobs.len());
        for job in jobs {
            self.execute_counted(job);
        }
        let submitted = Instant::now();
        self.wait_all();
        submitted
    }

    /// Runs a binary tree of jobs of the given depth, each inner job
    /// submitting its two children from inside the pool, and returns once all
    /// `2^(depth+1) - 1` have run.
    fn tree(&self, depth: u32) {
        self.expect_jobs(tree_size(depth));
        let inside = self.inside();
        let counted = Self::COMPLETION == Completion::Latch;
        self.execute(move || tree_node(inside, depth, counted));
        self.wait_all();
    }

    /// Prepares [`wait_all`](Self::wait_all) for `jobs` counted jobs.
    fn expect_jobs(&self, jobs: usize) {
        if Self::COMPLETION == Completion::Latch {
            DONE.arm(jobs);
        }
    }

    /// Submits `job` so that [`wait_all`](Self::wait_all) waits for it.
    fn execute_counted<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        if Self::COMPLETION == Completion::Latch {
            self.execute(move || {
                job();
                DONE.count_down();
            });
        } else {
            self.execute(job);
        }
    }

    /// Blocks until every counted job has run.
    fn wait_all(&self) {
        match Self::COMPLETION {
            Completion::Wait(_) => self.wait(),
            Completion::Latch => DONE.wait(),
            Completion::Inline => {}
            Completion::Scope => unreachable!("scope contenders wait through their own scope"),
        }
    }
}

/// Submits jobs from inside a pool's own jobs.
pub trait Submitter: Clone + Send + 'static {
    /// Submits `job` to the pool this submitter belongs to.
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static;
}

/// Jobs in a binary tree of the given depth.
pub fn tree_size(depth: u32) -> usize {
    (1 << (depth + 1)) - 1
}

fn tree_node<S: Submitter>(inside: S, depth: u32, counted: bool) {
    if depth > 0 {
        for _ in 0..2 {
            let child_inside = inside.clone();
            inside.submit(move || tree_node(child_inside, depth - 1, counted));
        }
    }
    // After the children are submitted, so the count never reaches zero early.
    if counted {
        DONE.count_down();
    }
}

/// The fan-in latch of the pools that have no wait of their own. One workload
/// runs at a time, so one latch serves them all, and the jobs reach it without
/// capturing anything.
pub static DONE: Latch = Latch::new();

/// A count-down latch: the last [`count_down`](Latch::count_down) wakes the
/// waiter.
pub struct Latch {
    /// Jobs still to count down.
    remaining: AtomicUsize,
    /// Set by the last count-down.
    open: Mutex<bool>,
    /// Signalled when `open` is set.
    opened: Condvar,
}

impl Latch {
    const fn new() -> Latch {
        Latch {
            remaining: AtomicUsize::new(0),
            open: Mutex::new(true),
            opened: Condvar::new(),
        }
    }

    fn arm(&self, jobs: usize) {
        *self.open.lock().unwrap() = jobs == 0;
        // Relaxed: the jobs that count down are submitted after this, and
        // submitting them publishes the store.
        self.remaining.store(jobs, Ordering::Relaxed);
    }

    fn count_down(&self) {
        // AcqRel: the last count-down sees every other job's effects before
        // it opens the latch (the mutex then publishes them to the waiter).
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }
}

/// Builds one contender with the given number of workers.
pub type Build = fn(usize) -> Box<dyn Contender>;

/// Every contender, in table order: weft's variants first, then the peers,
/// then the floor.
pub const ROSTER: &[(&str, Build)] = &[
    (Weft::NAME, |workers| Box::new(Weft::new(workers))),
    (WeftBatch::NAME, |workers| Box::new(WeftBatch::new(workers))),
    (WeftScope::NAME, |workers| Box::new(WeftScope::new(workers))),
    (Threadpool::NAME, |workers| {
        Box::new(Threadpool::new(workers))
    }),
    (Rayon::NAME, |workers| Box::new(Rayon::new(workers))),
    (RayonScope::NAME, |workers| {
        Box::new(RayonScope::new(workers))
    }),
    (RustyPool::NAME, |workers| Box::new(RustyPool::new(workers))),
    (CrossbeamPool::NAME, |workers| {
        Box::new(CrossbeamPool::new(workers))
    }),
    (BookPool::NAME, |workers| Box::new(BookPool::new(workers))),
    (Inline::NAME, |_| Box::new(Inline)),
];

/// Whether `name` is one of weft's own contenders.
pub fn is_weft(name: &str) -> bool {
    name == "weft" || name.starts_with("weft (")
}

// ---------------------------------------------------------------- weft

/// `weft::ThreadPool`: `execute`, `wait_idle`, `spawn(..).join()`, children
/// through `Handle::current()`.
pub struct Weft(weft::ThreadPool);

impl Weft {
    fn new(workers: usize) -> Weft {
        Weft(weft::ThreadPool::new(workers))
    }
}

impl Pool for Weft {
    const NAME: &'static str = "weft";
    const COMPLETION: Completion = Completion::Wait("wait_idle");
    type Inside = WeftCurrent;
    const ROUND_TRIP: &'static str = "spawn + join";

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.execute(job);
    }

    fn inside(&self) -> WeftCurrent {
        WeftCurrent
    }

    fn wait(&self) {
        self.0.wait_idle();
    }

    fn round_trip<T, F>(&self, job: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.spawn(job).join().expect("the job does not panic")
    }
}

/// Submits to the weft pool whose worker runs the caller.
#[derive(Clone)]
pub struct WeftCurrent;

impl Submitter for WeftCurrent {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        weft::Handle::current()
            .expect("called on a weft worker")
            .execute(job)
            .expect("the pool is running");
    }
}

/// `weft::ThreadPool::execute_batch`: a fan-in submitted as one batch (one
/// lock for all of it), then `wait_idle`.
pub struct WeftBatch(weft::ThreadPool);

impl WeftBatch {
    fn new(workers: usize) -> WeftBatch {
        WeftBatch(weft::ThreadPool::new(workers))
    }
}

impl Pool for WeftBatch {
    const NAME: &'static str = "weft (batch)";
    const COMPLETION: Completion = Completion::Wait("wait_idle");
    type Inside = WeftCurrent;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.execute(job);
    }

    fn inside(&self) -> WeftCurrent {
        WeftCurrent
    }

    fn wait(&self) {
        self.0.wait_idle();
    }

    fn runs(workload: Workload) -> bool {
        matches!(
            workload,
            Workload::Burst | Workload::FanOut | Workload::Unbalanced
        )
    }

    fn fan_in<F, I>(&self, jobs: I) -> Instant
    where
        F: FnOnce() + Send + 'static,
        I: ExactSizeIterator<Item = F> + Send,
    {
        self.0.execute_batch(jobs);
        let submitted = Instant::now();
        self.0.wait_idle();
        submitted
    }
}

/// `weft::ThreadPool::scope`: fan-ins and trees as scoped jobs.
pub struct WeftScope(weft::ThreadPool);

impl WeftScope {
    fn new(workers: usize) -> WeftScope {
        WeftScope(weft::ThreadPool::new(workers))
    }
}

impl Pool for WeftScope {
    const NAME: &'static str = "weft (scope)";
    const COMPLETION: Completion = Completion::Scope;
    type Inside = WeftCurrent;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.execute(job);
    }

    fn inside(&self) -> WeftCurrent {
        WeftCurrent
    }

    fn runs(workload: Workload) -> bool {
        workload.has_fan_in()
    }

    fn fan_in<F, I>(&self, jobs: I) -> Instant
    where
        F: FnOnce() + Send + 'static,
        I: ExactSizeIterator<Item = F> + Send,
    {
        self.0.scope(|s| {
            for job in jobs {
                s.execute(job);
            }
            Instant::now()
        })
    }

    fn tree(&self, depth: u32) {
        self.0
            .scope(|s| s.execute(move || weft_scope_node(s, depth)));
    }
}

fn weft_scope_node<'scope>(s: &'scope weft::Scope<'scope, '_>, depth: u32) {
    if depth > 0 {
        s.execute(move || weft_scope_node(s, depth - 1));
        s.execute(move || weft_scope_node(s, depth - 1));
    }
}

// ---------------------------------------------------------------- threadpool

/// `threadpool::ThreadPool`: `execute`, `join`, children through a clone.
pub struct Threadpool(threadpool::ThreadPool);

impl Threadpool {
    fn new(workers: usize) -> Threadpool {
        Threadpool(threadpool::ThreadPool::new(workers))
    }
}

impl Pool for Threadpool {
    const NAME: &'static str = "threadpool";
    const COMPLETION: Completion = Completion::Wait("join");
    type Inside = threadpool::ThreadPool;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.execute(job);
    }

    fn inside(&self) -> threadpool::ThreadPool {
        self.0.clone()
    }

    fn wait(&self) {
        self.0.join();
    }
}

impl Submitter for threadpool::ThreadPool {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute(job);
    }
}

// ---------------------------------------------------------------- rayon

/// `rayon::ThreadPool`: `spawn`, a latch, `install` for a round trip,
/// children through `rayon::spawn` (which targets the current pool).
pub struct Rayon(rayon::ThreadPool);

impl Rayon {
    fn new(workers: usize) -> Rayon {
        Rayon(rayon_pool(workers))
    }
}

fn rayon_pool(workers: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .expect("rayon builds its pool")
}

impl Pool for Rayon {
    const NAME: &'static str = "rayon";
    const COMPLETION: Completion = Completion::Latch;
    type Inside = RayonCurrent;
    const ROUND_TRIP: &'static str = "install";

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.spawn(job);
    }

    fn inside(&self) -> RayonCurrent {
        RayonCurrent
    }

    fn round_trip<T, F>(&self, job: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.install(job)
    }
}

/// Submits to the rayon pool whose worker runs the caller.
#[derive(Clone)]
pub struct RayonCurrent;

impl Submitter for RayonCurrent {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        rayon::spawn(job);
    }
}

/// `rayon::ThreadPool::scope`: fan-ins and trees as scoped jobs.
pub struct RayonScope(rayon::ThreadPool);

impl RayonScope {
    fn new(workers: usize) -> RayonScope {
        RayonScope(rayon_pool(workers))
    }
}

impl Pool for RayonScope {
    const NAME: &'static str = "rayon (scope)";
    const COMPLETION: Completion = Completion::Scope;
    type Inside = RayonCurrent;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.spawn(job);
    }

    fn inside(&self) -> RayonCurrent {
        RayonCurrent
    }

    fn runs(workload: Workload) -> bool {
        workload.has_fan_in()
    }

    fn fan_in<F, I>(&self, jobs: I) -> Instant
    where
        F: FnOnce() + Send + 'static,
        I: ExactSizeIterator<Item = F> + Send,
    {
        self.0.scope(|s| {
            for job in jobs {
                s.spawn(move |_| job());
            }
            Instant::now()
        })
    }

    fn tree(&self, depth: u32) {
        self.0
            .scope(|s| s.spawn(move |s| rayon_scope_node(s, depth)));
    }
}

fn rayon_scope_node(s: &rayon::Scope<'_>, depth: u32) {
    if depth > 0 {
        s.spawn(move |s| rayon_scope_node(s, depth - 1));
        s.spawn(move |s| rayon_scope_node(s, depth - 1));
    }
}

// ---------------------------------------------------------------- rusty_pool

/// `rusty_pool::ThreadPool` with a fixed size: `execute`, `join`,
/// `evaluate(..).await_complete()`, children through a clone.
pub struct RustyPool(rusty_pool::ThreadPool);

impl RustyPool {
    fn new(workers: usize) -> RustyPool {
        let pool = rusty_pool::ThreadPool::new(workers, workers, Duration::from_secs(60));
        // It starts workers lazily; start them now, like every other pool.
        pool.start_core_threads();
        RustyPool(pool)
    }
}

impl Pool for RustyPool {
    const NAME: &'static str = "rusty_pool";
    const COMPLETION: Completion = Completion::Wait("join");
    type Inside = rusty_pool::ThreadPool;
    const ROUND_TRIP: &'static str = "evaluate";

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.0.execute(job);
    }

    fn inside(&self) -> rusty_pool::ThreadPool {
        self.0.clone()
    }

    fn wait(&self) {
        self.0.join();
    }

    fn round_trip<T, F>(&self, job: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.0.evaluate(job).await_complete()
    }
}

impl Submitter for rusty_pool::ThreadPool {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.execute(job);
    }
}

// ---------------------------------------------------------------- crossbeam pool

/// The pool most crates write by hand: N threads receiving boxed jobs from one
/// `crossbeam_channel::unbounded` channel.
pub struct CrossbeamPool {
    /// `None` only while dropping, which closes the channel.
    sender: Option<crossbeam_channel::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl CrossbeamPool {
    fn new(workers: usize) -> CrossbeamPool {
        let (sender, receiver) = crossbeam_channel::unbounded::<Job>();
        let workers = (0..workers)
            .map(|_| {
                let receiver = receiver.clone();
                thread::spawn(move || {
                    for job in receiver {
                        job();
                    }
                })
            })
            .collect();
        CrossbeamPool {
            sender: Some(sender),
            workers,
        }
    }
}

impl Pool for CrossbeamPool {
    const NAME: &'static str = "crossbeam pool";
    const COMPLETION: Completion = Completion::Latch;
    type Inside = crossbeam_channel::Sender<Job>;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.sender
            .as_ref()
            .expect("the pool is running")
            .submit(job);
    }

    fn inside(&self) -> crossbeam_channel::Sender<Job> {
        self.sender.clone().expect("the pool is running")
    }
}

impl Drop for CrossbeamPool {
    fn drop(&mut self) {
        drop(self.sender.take());
        for worker in self.workers.drain(..) {
            worker.join().unwrap();
        }
    }
}

impl Submitter for crossbeam_channel::Sender<Job> {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.send(Box::new(job)).expect("the pool is running");
    }
}

// ---------------------------------------------------------------- Book pool

/// The Rust Book's pool: N threads sharing an
/// `Arc<Mutex<mpsc::Receiver<Job>>>`.
pub struct BookPool {
    /// `None` only while dropping, which closes the channel.
    sender: Option<mpsc::Sender<Job>>,
    workers: Vec<thread::JoinHandle<()>>,
}

impl BookPool {
    fn new(workers: usize) -> BookPool {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let workers = (0..workers)
            .map(|_| {
                let receiver = Arc::clone(&receiver);
                thread::spawn(move || loop {
                    // The guard is a temporary: the lock is released before the job runs.
                    let message = receiver.lock().unwrap().recv();
                    match message {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })
            })
            .collect();
        BookPool {
            sender: Some(sender),
            workers,
        }
    }
}

impl Pool for BookPool {
    const NAME: &'static str = "Book pool";
    const COMPLETION: Completion = Completion::Latch;
    type Inside = mpsc::Sender<Job>;

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.sender
            .as_ref()
            .expect("the pool is running")
            .submit(job);
    }

    fn inside(&self) -> mpsc::Sender<Job> {
        self.sender.clone().expect("the pool is running")
    }
}

impl Drop for BookPool {
    fn drop(&mut self) {
        drop(self.sender.take());
        for worker in self.workers.drain(..) {
            worker.join().unwrap();
        }
    }
}

impl Submitter for mpsc::Sender<Job> {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        self.send(Box::new(job)).expect("the pool is running");
    }
}

// ---------------------------------------------------------------- inline

/// No pool: every job runs on the caller as it is submitted. The floor: an
/// empty job costs about a nanosecond here.
#[derive(Clone)]
pub struct Inline;

impl Pool for Inline {
    const NAME: &'static str = "inline";
    const COMPLETION: Completion = Completion::Inline;
    type Inside = Inline;
    const ROUND_TRIP: &'static str = "—";

    fn execute<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        // Opaque, so that a loop of empty jobs is not compiled away.
        black_box(job)();
    }

    fn inside(&self) -> Inline {
        Inline
    }

    fn runs(workload: Workload) -> bool {
        workload != Workload::Memory
    }

    fn round_trip<T, F>(&self, job: F) -> T
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        job()
    }
}

impl Submitter for Inline {
    fn submit<F>(&self, job: F)
    where
        F: FnOnce() + Send + 'static,
    {
        black_box(job)();
    }
}
