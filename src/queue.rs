//! The job queue, the workers' sleep/wake protocol, backpressure, idleness
//! and the worker count.
//!
//! # Protocol
//!
//! Pool state lives in one [`State`] behind one mutex, with two exceptions:
//! jobs submitted from outside the pool wait in the [`Injector`]
//! (`injector.rs`), which an *unbounded* pool's outside submitters push to
//! without the lock; and jobs submitted by the pool's own jobs wait in
//! their worker's own [`Local`] deque (`local.rs`), behind a lock of its
//! own, which the owner pushes to, and in an unbounded pool also pops from
//! while it is counted running, without the pool lock. Everything else
//! (every other pop, every push into a bounded pool from outside, every
//! counter) happens with the lock held, so each check-then-act below is
//! atomic. The four condvars only ever wait on that mutex.
//!
//! | event                 | under the lock                                         | then                                         |
//! |-----------------------|--------------------------------------------------------|----------------------------------------------|
//! | `submit`, unbounded, from outside | nothing: push to the injector (refused if it is closed) | if `sleepers_for_pushers > 0`: take and drop the lock, `notify_one(work_ready)` (`notify_all` if the pool closed meanwhile) |
//! | `submit`, from an own worker | nothing: push to its own deque under that deque's lock (refused if it is closed) | as the row above |
//! | `submit`, otherwise   | refuse if `closed`; if full, refuse or wait (`space_freed`); push | `notify_one(work_ready)` if a worker sleeps |
//! | worker takes its own job, unbounded pool | nothing: if it is counted running and not told to retire (`shrinking`), pop its own deque's newest job; it stays counted running, and counts the job it finished in a private tally (so does a job of the worker that helps while it joins, `help_once`) | run the job |
//! | worker takes a job    | record its tally; retire if surplus; pop (own deque, outside, steal); `running += 1` (a claimed, not yet written outside job counts as nothing to run, but keeps a closed pool's workers from exiting); an outside job taken by the worker loop of an open unbounded pool brings up to 32 more, the worker's share, into its own deque (`take_batch`) | `notify_one(space_freed)` if one waits; run the job unlocked |
//! | worker finds nothing  | exit if `closed` and empty; else, the first time, unlock and spin (`sleep.rs`); then `sleeping_workers += 1` and re-check with read-modify-writes (`Injector::peek_synced`) and under each own deque's lock | `wait(work_ready)`, re-check after waking    |
//! | job finished          | `running -= 1`; count it completed or panicked (a worker does this in the same critical section as taking its next job, for every job it ran since it last locked) | bump `idle_notices` and `notify_all(became_idle)` if idle and awaited |
//! | `close`               | `closed = true`; close the injector and every own deque | `notify_all` on `work_ready`, `space_freed`  |
//! | `shutdown_now`        | as `close`; take every queued job (own deques under their locks; waiting out a claimed one); mark them handed back | as `close`                |
//! | `wait_idle`           | return if nothing is queued and `running == 0`; else `idle_waiters += 1` | the first times, unlock and yield until `idle_notices` moves (`sleep.rs`); then `wait(became_idle)`; re-check after either |
//! | resize                | set `target_workers`; reserve new workers              | `notify_all(work_ready)` so surplus sleepers retire |
//! | scope owner waits, outside the pool | return if the scope has no job left (`scope.rs`); else `blocked_scope_owners += 1` | the first times, unlock and yield until the scope's count reaches 0 (`sleep.rs`); then `wait(scope_done)`; re-check after either |
//! | a scope's last job    | (after its decrement) unpark the parked joiners if any | `notify_all(work_ready)` if there were; `notify_all(scope_done)` if an owner waits |
//!
//! **No lost wake-up.** A worker decides to sleep only after registering in
//! `sleeping_workers` and then seeing an empty queue, *with the lock held*
//! (spinning first changes nothing here: a spinner is not counted as
//! sleeping, and it re-locks and re-checks before it registers), and
//! `Condvar::wait` releases that lock atomically with going to sleep. A
//! submitter that holds the lock pushes either before the worker looked (the
//! worker sees the job) or after the worker is registered and waiting (the
//! submitter sees the count and notifies). A lock-free submitter pushes,
//! then reads `sleepers_for_pushers` (the same count, kept as an atomic);
//! the worker's re-check and the push meet in read-modify-writes of the
//! same atomics, so one sees the other (`injector.rs`), and a submitter that
//! sees a sleeper takes the lock before notifying, so the sleeper is already
//! waiting. A worker pushing to its own deque does the same, the deque's
//! lock ordering its push against the sleeper's look (`local.rs`,
//! `local_push_wakes_a_worker_going_to_sleep`). A notification that
//! lands on a worker that another notification already woke costs only
//! parallelism, never a job: every worker drains the queue before it sleeps
//! again. Once the pool is closed, a worker sleeps only over an outside job
//! claimed before the close and not yet written (over an empty queue it
//! exits); that job's submitter wakes every sleeper, not one per job, since
//! those that do not get the job must wake to exit. Proven by
//! `loom-tests/wakeup.rs`, `loom-tests/spin.rs` and, for the closed case,
//! `lock_free_push_finishing_after_close_wakes_every_sleeper`
//! (`loom-tests/lock_free.rs`).
//!
//! **Backpressure.** `capacity` bounds the jobs *waiting* in the queue. A
//! full queue makes `execute` wait on `space_freed`; every pop notifies one
//! waiting submitter (so a bounded pool's workers never pop without the
//! lock, which a notification needs;
//! `own_jobs_of_a_bounded_pool_are_taken_with_the_lock_to_free_room`). A
//! woken submitter never leaves a freed slot unclaimed while another sleeps:
//! it checks for room before its deadline, so one that finds room takes it
//! even if its time is up, and one that finds the pool closed was (or is
//! about to be) woken with every other by the close's `notify_all`. So no
//! notification needs passing on (an earlier version passed it on; mutation
//! testing showed that code could never run). A pool's own worker never
//! waits: its submission is accepted past the
//! capacity, since all workers blocking on a full queue that only they can
//! drain would deadlock.
//! Proven by `loom-tests/backpressure.rs`.
//!
//! **No lost job.** A job leaves the queue only by being popped by a worker,
//! which runs it, or by `shutdown_now`, which hands it back; `closed` only
//! stops new pushes (the injector's closed bit is set in the same critical
//! section, and a lock-free push either claimed its slot before it or is
//! refused; so is a push to an own deque that the close already marked),
//! and workers exit only when the queue is closed and empty (or
//! when they are surplus after a shrink, which needs no job of theirs).
//! Proven by `loom-tests/exactly_once.rs`, `loom-tests/shutdown.rs` and
//! `loom-tests/injector.rs`.
//!
//! **Idleness.** `running` and the queue length change under the same lock
//! (a lock-free push only makes the pool busier, and `wait_idle` racing it
//! may return before or after it), and a job is counted completed or
//! panicked in the same critical section that decrements `running`, so a
//! `wait_idle` that returns sees exact counters. A worker that takes its own
//! jobs without the lock stays counted running meanwhile, so the pool is not
//! idle before it locks again, records every job it ran, and finds its
//! deque empty. Proven by `loom-tests/idle.rs` and
//! `jobs_run_from_the_own_deque_are_counted_before_the_pool_is_idle`
//! (`loom-tests/local.rs`).

use std::cell::OnceCell;
use std::collections::VecDeque;

use crate::builder::Config;
use crate::error::SubmitErrorKind;
use crate::injector::{Injector, Peek, Pop};
use crate::job::{self, Job, Outcome, Task, TypedJob};
use crate::local::Local;
use crate::sleep;
use crate::sync::{
    self, Arc, AtomicUsize, CachePadded, Condvar, Duration, Instant, Mutex, MutexGuard, Ordering,
};
use crate::worker;

/// At most this many outside jobs move into a worker's own deque with the
/// one it takes (`Shared::take_batch`): enough that a burst costs one pool
/// lock per batch rather than per job, few enough that a worker does not
/// hoard a long queue while the others wake up to share it.
const BATCH: usize = 32;

/// What a submitter does when the queue is full.
#[derive(Clone, Copy)]
pub(crate) enum WhenFull {
    /// Wait for space (`execute`).
    Wait,
    /// Refuse with `Full` (`try_execute`).
    Refuse,
    /// Wait until the deadline, then refuse with `TimedOut`
    /// (`execute_timeout`). `None`: a deadline too far to represent.
    WaitUntil(Option<Instant>),
}

/// The queue guarded by the pool lock: in a pool whose outside submitters
/// take the lock (a bounded pool), a FIFO for their jobs. (An unbounded
/// pool's outside jobs wait in the [`Injector`] instead, and jobs submitted
/// by the pool's own jobs in their worker's [`Local`] deque.)
struct Locked {
    /// Jobs submitted from outside a pool that pushes with the lock, oldest
    /// first.
    outside: VecDeque<Job>,
}

impl Locked {
    fn len(&self) -> usize {
        self.outside.len()
    }
}

/// Takes the oldest job of another worker's deque, starting after
/// `taker`'s and going round, so thieves spread out. `taker` may be past
/// the end of `locals` (its deque is not made yet): then every deque is
/// another's.
fn steal(locals: &[Option<Arc<Local>>], taker: usize) -> Option<Job> {
    let n = locals.len();
    (1..=n)
        .map(|step| (taker + step) % n)
        .filter(|&victim| victim != taker)
        .find_map(|victim| locals[victim].as_ref()?.pop_oldest())
}

/// The jobs a worker has finished since it last recorded them under the
/// lock, and whether it is counted running (it took a job under the lock
/// and has not recorded it since). See [`Shared::next_job`]. Kept in the
/// worker's thread-local record, so that a job of the worker that helps
/// while it joins counts the jobs it runs there too
/// (`worker::help_from_own_deque`).
#[derive(Clone, Copy, Default)]
pub(crate) struct Finished {
    running: bool,
    completed: usize,
    panicked: usize,
}

impl Finished {
    /// Counts a job run since the last record, and mirrors the tally into
    /// the worker's own deque, if it has one, for the counters' getters
    /// (`Local::unrecorded`).
    #[inline]
    pub(crate) fn add(&mut self, panicked: bool, own: Option<&Local>) {
        if panicked {
            self.panicked += 1;
        } else {
            self.completed += 1;
        }
        if let Some(local) = own {
            local.publish_unrecorded(self.completed, self.panicked);
        }
    }
}

/// What [`Shared::take`] found.
enum Take {
    Job(Job),
    /// An outside job is claimed but not written yet (`injector.rs`): no
    /// job to run now, but the queue is not empty either.
    Pending,
    Empty,
}

/// State shared by the pool, its handles and its workers.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Jobs submitted from outside an unbounded pool, pushed without the
    /// lock and popped with it (`injector.rs`). Unused by other pools.
    injector: Injector,
    /// Whether outside submitters push to the `injector` without the lock:
    /// the pool is unbounded (a bounded one must count its queue exactly
    /// under the lock), and, in a loom model, asked for it
    /// (`Config::pushes_without_lock`).
    lock_free: bool,
    /// A copy of `State::sleeping_workers` for submitters that push without
    /// the pool lock (to the injector, or a worker to its own deque):
    /// changed with read-modify-writes under the lock, read by such a
    /// submitter to decide whether to notify (`injector.rs` and `local.rs`
    /// have the protocol).
    sleepers_for_pushers: CachePadded<AtomicUsize>,
    /// Workers (and helping joiners) wait here for a job, for the queue to
    /// close, for a resize, or for the slot they join to resolve.
    work_ready: Condvar,
    /// Submitters wait here for room in a bounded queue.
    space_freed: Condvar,
    /// `wait_idle` callers wait here for "nothing queued, nothing running";
    /// `shutdown_timeout` waits here for the workers to exit.
    became_idle: Condvar,
    /// Owners of a scope, outside the pool, wait here for its last job
    /// (`scope.rs`).
    scope_done: Condvar,
    /// The most jobs that may wait in the queue (`usize::MAX`: unbounded).
    capacity: usize,
    /// Whether `State::locked` is non-empty (1) or empty (0), stored under
    /// the lock when that changes, for workers spinning without the lock
    /// (`sleep.rs`; for the injector they watch [`Injector::stamp`]). Only a
    /// hint: a worker that sees it non-zero takes the lock and looks. Stored
    /// only when it flips, not on every push and pop, so two busy workers do
    /// not pass its cache line back and forth.
    locked_hint: AtomicUsize,
    /// Whether the pool has more live workers than it is set to (1) or not
    /// (0), stored under the lock when that changes: a worker about to run
    /// its own next job without the lock first checks that it need not
    /// retire. Only a hint: a shrink that lands just after the check is
    /// seen at the worker's next job, as one landing just after its
    /// critical section would be.
    shrinking: AtomicUsize,
    /// How many workers are spinning without the lock (`sleep.rs`). Only a
    /// hint, for a thread outside the pool about to sleep on a join: a
    /// spinning worker is awake on another CPU and will soon run its job.
    spinning: AtomicUsize,
    /// Bumped by every notification of `became_idle` (in a pool that
    /// spins). Only a hint, for a `wait_idle` caller yielding before it
    /// sleeps (`sleep.rs`): it stops yielding when this moves, and re-checks
    /// under the lock.
    idle_notices: AtomicUsize,
    /// The CPUs the process may run on (`available_parallelism`, read once):
    /// a `wait_idle` caller, a scope's owner outside the pool and a joiner
    /// outside the pool yield only while the pool has fewer live workers, so
    /// that they take no CPU the workers need; an idle worker then yields
    /// from the start of its spin (`sleep.rs`). Unlimited under loom and
    /// shuttle, so that the yield is explored whatever machine runs them.
    cpus: usize,
    /// Whether the pool has fewer live workers than `cpus` (1) or not (0),
    /// stored under the lock when that changes, for a joiner outside the
    /// pool, which decides without the pool lock whether to yield or spin
    /// (`sleep.rs`). Only a hint: either way the joiner then checks its
    /// job's slot under the slot's lock.
    cpu_free: AtomicUsize,
    /// The builder's hooks and thread settings, fixed at build time.
    pub(crate) config: Config,
}

/// Everything that changes, guarded by [`Shared::state`].
struct State {
    /// Accepted outside jobs that no worker has taken yet, in a pool whose
    /// outside submitters take the lock.
    locked: Locked,
    /// `locals[i]`: worker `i`'s own deque (`local.rs`), made on the
    /// worker's first push (`None` until then) and kept after it exits (the
    /// others steal what a retired worker leaves, and a worker started
    /// later with the same index takes the deque over).
    locals: Vec<Option<Arc<Local>>>,
    /// Jobs taken from the queue whose run (and panic handler) has not ended.
    running: usize,
    /// Set once by `close` or `shutdown_now`; from then on every submission
    /// is refused.
    closed: bool,
    /// Workers (and helping joiners) blocked in `work_ready.wait`, including
    /// any already notified but not yet re-locked: a submitter notifies only
    /// when this is non-zero. Changed only through `add_sleeper` and
    /// `remove_sleeper`.
    sleeping_workers: usize,
    /// Submitters blocked in `space_freed.wait`.
    blocked_submitters: usize,
    /// Workers asleep in a join (`sleep_while_joining`) with nothing that
    /// could wake them yet: a shutdown called from inside the pool stops
    /// waiting for a worker once it is here, since what it joins may be
    /// suspended beneath the caller on its own stack. Reset to 0 (and
    /// `park_generation` bumped) whenever parked joiners are woken for a
    /// reason that may let them go on: a slot resolved, or jobs were handed
    /// back. A woken joiner that must wait again parks again and is counted
    /// anew.
    parked_joiners: usize,
    /// Bumped by every reset of `parked_joiners`, so a joiner that wakes
    /// after a reset does not uncount itself a second time.
    park_generation: u64,
    /// Callers blocked in `became_idle.wait`: a finishing job or exiting
    /// worker notifies only when this is non-zero.
    idle_waiters: usize,
    /// Scope owners blocked in `scope_done.wait`: a scope's last job
    /// notifies only when this is non-zero.
    blocked_scope_owners: usize,
    /// Worker threads started (or reserved for starting) that have not
    /// decided to exit.
    live_workers: usize,
    /// The size the pool is set to; surplus workers retire.
    target_workers: usize,
    /// The index the next started worker gets.
    next_index: usize,
    /// Jobs that returned normally.
    completed: usize,
    /// Jobs that panicked.
    panicked: usize,
    /// What `Shared::shrinking` was last set to.
    shrinking_published: bool,
    /// What `Shared::cpu_free` was last set to.
    cpu_free_published: bool,
}

/// How the other workers stand when a shutdown stops waiting for them.
pub(crate) enum Settled {
    /// Every other worker has exited (or is about to): join them.
    AllExited,
    /// Some are asleep in a join on a job suspended beneath the caller (only
    /// when the caller is a worker): they cannot be joined, so detach.
    SomeParkedInJoin,
}

/// Counts reported by a `shutdown_timeout` that ran out of time.
pub(crate) struct Leftover {
    pub(crate) queued: usize,
    pub(crate) running: usize,
}

impl Shared {
    pub(crate) fn new(config: Config, capacity: usize) -> Shared {
        let cpus = if sync::SCHEDULE_CHOSEN_BY_CHECKER {
            usize::MAX
        } else {
            sync::available_parallelism().map_or(1, |cpus| cpus.get())
        };
        Shared {
            state: Mutex::new(State {
                locked: Locked {
                    outside: VecDeque::new(),
                },
                locals: Vec::new(),
                running: 0,
                closed: false,
                sleeping_workers: 0,
                blocked_submitters: 0,
                parked_joiners: 0,
                park_generation: 0,
                idle_waiters: 0,
                blocked_scope_owners: 0,
                live_workers: 0,
                target_workers: 0,
                next_index: 0,
                completed: 0,
                panicked: 0,
                shrinking_published: false,
                cpu_free_published: true,
            }),
            injector: Injector::new(),
            lock_free: capacity == usize::MAX && config.pushes_without_lock(),
            sleepers_for_pushers: CachePadded(AtomicUsize::new(0)),
            work_ready: Condvar::new(),
            space_freed: Condvar::new(),
            became_idle: Condvar::new(),
            scope_done: Condvar::new(),
            capacity,
            locked_hint: AtomicUsize::new(0),
            shrinking: AtomicUsize::new(0),
            spinning: AtomicUsize::new(0),
            idle_notices: AtomicUsize::new(0),
            cpus,
            // No worker is live yet, and `cpus` is at least 1.
            cpu_free: AtomicUsize::new(1),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        sync::lock(&self.state)
    }

    /// Accepts `task` into the queue, or hands it back with the reason.
    ///
    /// The job keeps its task's type until it is accepted, so a refused
    /// closure can be moved back out.
    pub(crate) fn submit<T: Task + 'static>(
        &self,
        task: TypedJob<T>,
        when_full: WhenFull,
    ) -> Result<(), (SubmitErrorKind, TypedJob<T>)> {
        self.submit_as(task, when_full, TypedJob::into_job)
    }

    /// [`submit`](Self::submit) for a job that is already type-erased.
    pub(crate) fn submit_job(
        &self,
        job: Job,
        when_full: WhenFull,
    ) -> Result<(), (SubmitErrorKind, Job)> {
        self.submit_as(job, when_full, |job| job)
    }

    fn submit_as<B>(
        &self,
        task: B,
        when_full: WhenFull,
        into_job: impl FnOnce(B) -> Job,
    ) -> Result<(), (SubmitErrorKind, B)> {
        worker::with_own_local(self, move |own| match own {
            // From one of this pool's workers: onto its own deque, without
            // the pool lock and past any capacity (a worker never waits).
            Some(local) => match local.push(task, into_job) {
                Ok(()) => {
                    self.wake_after_unlocked_push(1);
                    Ok(())
                }
                Err(task) => Err((SubmitErrorKind::ShutDown, task)),
            },
            None => self.submit_from_outside(task, when_full, into_job),
        })
    }

    fn submit_from_outside<B>(
        &self,
        task: B,
        when_full: WhenFull,
        into_job: impl FnOnce(B) -> Job,
    ) -> Result<(), (SubmitErrorKind, B)> {
        if self.lock_free {
            // Unbounded, from outside: no room to check, so no lock.
            return match self.injector.push(task, into_job) {
                Ok(()) => {
                    self.wake_after_unlocked_push(1);
                    Ok(())
                }
                Err(task) => Err((SubmitErrorKind::ShutDown, task)),
            };
        }
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err((SubmitErrorKind::ShutDown, task));
            }
            if self.queued(&state) < self.capacity {
                break;
            }
            let deadline = match when_full {
                WhenFull::Refuse => return Err((SubmitErrorKind::Full, task)),
                WhenFull::Wait | WhenFull::WaitUntil(None) => None,
                WhenFull::WaitUntil(Some(deadline)) => Some(deadline),
            };
            state.blocked_submitters += 1;
            state = match deadline {
                None => sync::wait(&self.space_freed, state),
                Some(deadline) => match remaining(deadline) {
                    Some(left) => sync::wait_timeout(&self.space_freed, state, left),
                    None => {
                        state.blocked_submitters -= 1;
                        return Err((SubmitErrorKind::TimedOut, task));
                    }
                },
            };
            state.blocked_submitters -= 1;
        }
        state.locked.outside.push_back(into_job(task));
        self.publish_locked_len(&state);
        let wake = state.sleeping_workers > 0;
        drop(state);
        if wake {
            self.work_ready.notify_one();
        }
        Ok(())
    }

    /// After `pushed` jobs went into the injector or a worker's own deque
    /// without the pool lock: wakes up to that many sleeping workers, if any
    /// sleep. See `injector.rs` and `local.rs` for why a sleeper cannot be
    /// missed.
    #[inline]
    fn wake_after_unlocked_push(&self, pushed: usize) {
        // Relaxed: a worker that registered first is already ordered before
        // this load, by the pusher's `AcqRel` CAS on the injector's tail
        // (`injector.rs`) or by the local deque's lock (`local.rs`).
        if pushed == 0 || self.sleepers_for_pushers.load(Ordering::Relaxed) == 0 {
            return;
        }
        // The registered worker may still be between its check and its
        // `wait`; the lock is held across both, so taking it here means the
        // worker is waiting (or has not registered yet, and will see the job).
        let state = self.lock();
        let sleepers = state.sleeping_workers;
        let closed = state.closed;
        drop(state);
        if closed {
            // These jobs were claimed before the close. A worker of a closed
            // pool sleeps only over a claimed, unwritten slot (over an empty
            // queue it exits), so several may sleep over these jobs and
            // fewer take them: every one must wake, to take a job or to see
            // the queue closed and empty and exit. Else `shutdown` waits
            // forever for the one left asleep
            // (`lock_free_push_finishing_after_close_wakes_every_sleeper`).
            self.work_ready.notify_all();
        } else {
            self.notify_workers(pushed, sleepers);
        }
    }

    /// Wakes enough of `sleepers` sleeping workers for `pushed` new jobs.
    fn notify_workers(&self, pushed: usize, sleepers: usize) {
        if pushed >= sleepers {
            if sleepers > 0 {
                self.work_ready.notify_all();
            }
        } else {
            for _ in 0..pushed {
                self.work_ready.notify_one();
            }
        }
    }

    /// Accepts every task of `tasks`, in order, waiting for room in a
    /// bounded queue as [`submit`](Self::submit) with [`WhenFull::Wait`] does,
    /// but pushing as many as fit under one lock (none, from outside an
    /// unbounded pool; the worker's own deque's, from one of its workers),
    /// and waking at most as many sleeping workers as it pushed. If the pool
    /// closes part-way, the tasks not yet accepted come back (the earlier
    /// ones are accepted and run).
    pub(crate) fn submit_batch<T: Task + 'static>(
        &self,
        tasks: Vec<TypedJob<T>>,
    ) -> Result<(), (SubmitErrorKind, Vec<TypedJob<T>>)> {
        worker::with_own_local(self, move |own| match own {
            Some(local) => {
                let count = tasks.len();
                let mut tasks = tasks.into_iter();
                let pushed = local.push_many(count, || {
                    tasks
                        .next()
                        .expect("push_many asks for at most `count`")
                        .into_job()
                });
                self.wake_after_unlocked_push(pushed);
                if pushed < count {
                    return Err((SubmitErrorKind::ShutDown, tasks.collect()));
                }
                Ok(())
            }
            None => self.submit_batch_from_outside(tasks),
        })
    }

    fn submit_batch_from_outside<T: Task + 'static>(
        &self,
        tasks: Vec<TypedJob<T>>,
    ) -> Result<(), (SubmitErrorKind, Vec<TypedJob<T>>)> {
        let mut tasks = tasks.into_iter();
        if self.lock_free {
            let count = tasks.len();
            let pushed = self.injector.push_many(count, || {
                tasks
                    .next()
                    .expect("push_many asks for at most `count`")
                    .into_job()
            });
            self.wake_after_unlocked_push(pushed);
            if pushed < count {
                return Err((SubmitErrorKind::ShutDown, tasks.collect()));
            }
            return Ok(());
        }
        let mut tasks = tasks.peekable();
        let mut state = self.lock();
        while tasks.peek().is_some() {
            if state.closed {
                return Err((SubmitErrorKind::ShutDown, tasks.collect()));
            }
            let room = self.capacity.saturating_sub(self.queued(&state));
            if room == 0 {
                state.blocked_submitters += 1;
                state = sync::wait(&self.space_freed, state);
                state.blocked_submitters -= 1;
                continue;
            }
            let mut pushed = 0;
            for task in tasks.by_ref().take(room) {
                state.locked.outside.push_back(task.into_job());
                pushed += 1;
            }
            self.publish_locked_len(&state);
            // Under the lock (the batch may go on waiting for room); a woken
            // worker only waits for the lock briefly.
            self.notify_workers(pushed, state.sleeping_workers);
        }
        Ok(())
    }

    /// Jobs accepted and not yet taken, inside and outside; the guard proves
    /// the lock is held.
    fn queued(&self, state: &State) -> usize {
        let inside: usize = state.locals.iter().flatten().map(|local| local.len()).sum();
        if !self.lock_free {
            return state.locked.len() + inside;
        }
        // SAFETY: `state` is borrowed from the guard of `self.state`, so this
        // thread holds the pool lock, which every injector consumer holds.
        state.locked.len() + inside + unsafe { self.injector.len() }
    }

    /// Whether a job can be taken now, read so that a worker registered as
    /// sleeping and a lock-free submitter cannot miss each other
    /// (`injector.rs`): if this says no, every job claimed but not yet
    /// written, and every later push, will see the registration and notify.
    /// The same holds for the other workers' own deques (`local.rs`). The
    /// caller's own (it is worker `index`) is not looked at: it found it
    /// empty in `take` under this lock, and only it pushes there.
    fn job_ready_synced(&self, state: &State, index: usize) -> bool {
        // SAFETY: as in `queued`.
        state.locked.len() > 0
            || (self.lock_free && matches!(unsafe { self.injector.peek_synced() }, Peek::Ready))
            || state.locals.iter().enumerate().any(|(owner, local)| {
                owner != index && local.as_ref().is_some_and(|local| local.has_job_synced())
            })
    }

    fn is_idle(&self, state: &State) -> bool {
        state.running == 0 && self.queued(state) == 0
    }

    /// Blocks until there is a job to run (returned, already counted as
    /// running) or this worker should exit (`None`): the queue is closed and
    /// drained, or the pool has more workers than it is set to.
    ///
    /// `finished` holds the worker's jobs that ended since it last took the
    /// lock. While it is counted running and its own deque (`local`) has a
    /// job, the worker takes that job without the pool lock and stays
    /// counted running (`local.rs`), in an unbounded pool that is not
    /// shrinking. (A bounded pool's submitters wait for the pops that free
    /// room, which need the lock to notify them.) Otherwise it records
    /// `finished` in the same critical section that takes the next job.
    ///
    /// Finding the queue empty, the worker first spins without the lock
    /// (`sleep.rs`), watching `local_hint` and the injector's stamp, and
    /// only then sleeps.
    pub(crate) fn next_job(
        &self,
        index: usize,
        own: &OnceCell<Arc<Local>>,
        finished: &mut Finished,
    ) -> Option<Job> {
        if let Some(job) = own
            .get()
            .and_then(|local| self.pop_own_unlocked(local, finished))
        {
            return Some(job);
        }
        let mut state = self.lock();
        if finished.running {
            let Finished {
                completed,
                panicked,
                ..
            } = std::mem::take(finished);
            if let Some(local) = own.get() {
                // In the critical section that records them (`Local::unrecorded`).
                local.publish_unrecorded(0, 0);
            }
            if self.record_finish(&mut state, completed, panicked) {
                // Under the lock, which costs the woken waiter only a short
                // wait for it, and keeps this one critical section.
                self.notify_idle_waiters();
            }
        }
        let mut spun = false;
        loop {
            if state.live_workers > state.target_workers {
                return self.exit_worker(state);
            }
            match self.take(&mut state, index, Some(own)) {
                Take::Job(job) => {
                    finished.running = true;
                    return Some(job);
                }
                Take::Empty if state.closed => return self.exit_worker(state),
                // Pending: a submitter is between claiming its slot and
                // writing it. Like an empty queue, except that the pool may
                // not be left: the job is accepted. Its submitter will see
                // this worker registered below and wake it (every sleeper,
                // once the pool is closed: `wake_after_unlocked_push`).
                Take::Empty | Take::Pending => {}
            }
            if !spun && self.config.spins() {
                spun = true;
                let stamp = self.lock_free.then(|| self.injector.stamp());
                // A CPU is free: the thread that submits next may share this
                // one, and must get it at once (`sleep.rs`).
                let yield_at_once = self.leaves_cpu_free(&state);
                drop(state);
                // Relaxed: a hint for joiners (`worker_spinning`), which
                // read nothing it publishes.
                self.spinning.fetch_add(1, Ordering::Relaxed);
                // Pairs with the `Relaxed` stores of `publish_locked_len`:
                // only hints, the lock orders what they point at.
                sleep::spin_until(yield_at_once, || {
                    self.locked_hint.load(Ordering::Relaxed) > 0
                        || stamp.is_some_and(|stamp| self.injector.stamp() != stamp)
                });
                self.spinning.fetch_sub(1, Ordering::Relaxed);
                state = self.lock();
                continue;
            }
            // Registered before the synced check (`injector.rs`).
            self.add_sleeper(&mut state);
            if self.job_ready_synced(&state, index) {
                self.remove_sleeper(&mut state);
                continue;
            }
            state = sync::wait(&self.work_ready, state);
            self.remove_sleeper(&mut state);
        }
    }

    /// Whether some worker is spinning, awake, without the lock: a hint for
    /// a joiner outside the pool deciding whether to spin (`sleep.rs`).
    pub(crate) fn worker_spinning(&self) -> bool {
        // Relaxed: pairs with the `Relaxed` updates in `next_job`; a hint
        // that publishes nothing.
        self.spinning.load(Ordering::Relaxed) > 0
    }

    /// The newest job of the caller's own deque `local`, taken without the
    /// pool lock, if the caller may: it is counted running (`finished`), so
    /// the pool is not idle while it runs the job, and records the job when
    /// it next locks; the pool is unbounded (a bounded pool's submitters
    /// wait for the pops that free room, which need the lock to notify
    /// them); and the pool is not shrinking (a surplus worker should lock,
    /// and retire).
    #[inline]
    pub(crate) fn pop_own_unlocked(&self, local: &Local, finished: &Finished) -> Option<Job> {
        // `local.len()` first: an empty deque (the common case in a loom
        // model) then costs one atomic read, not two. Relaxed: `shrinking`
        // is a hint (see there).
        if finished.running
            && self.capacity == usize::MAX
            && local.len() > 0
            && self.shrinking.load(Ordering::Relaxed) == 0
        {
            local.pop_newest()
        } else {
            None
        }
    }

    /// Takes a job for worker `index` and counts it running: the newest job
    /// of its own deque (LIFO: usually the child it just spawned, so
    /// recursive spawn-and-join nests one stack frame per level and stays
    /// cache-warm), then the oldest outside job, then the oldest job of
    /// another worker's deque (stealing the biggest piece of someone else's
    /// work, as in rayon). Which queue a job is in never affects whether it
    /// runs: every job sits in exactly one queue until a worker takes it or
    /// `shutdown_now` hands it back. Also frees a slot for a blocked
    /// submitter; frees a slot for a blocked submitter. The notification is
    /// issued under the lock, which is harmless (the woken submitter blocks
    /// briefly on the mutex) and keeps this a single critical section.
    ///
    /// With `batch_into` (the worker loop's own deque, made here if need
    /// be), an outside job taken brings a batch of the next ones along
    /// ([`take_batch`](Self::take_batch)).
    fn take(
        &self,
        state: &mut State,
        index: usize,
        batch_into: Option<&OnceCell<Arc<Local>>>,
    ) -> Take {
        let mut pending = false;
        let own = state
            .locals
            .get(index)
            .and_then(|local| local.as_ref()?.pop_newest());
        let job = own.or_else(|| {
            if !self.lock_free {
                return state.locked.outside.pop_front();
            }
            // SAFETY: `state` is borrowed from the guard of `self.state`: this
            // thread holds the pool lock, so it is the only consumer.
            match unsafe { self.injector.pop() } {
                Pop::Job(job) => {
                    if let Some(own) = batch_into {
                        self.take_batch(state, index, own);
                    }
                    Some(job)
                }
                Pop::Pending => {
                    pending = true;
                    None
                }
                Pop::Empty => None,
            }
        });
        let Some(job) = job.or_else(|| steal(&state.locals, index)) else {
            return if pending { Take::Pending } else { Take::Empty };
        };
        self.publish_locked_len(state);
        state.running += 1;
        if state.blocked_submitters > 0 {
            self.space_freed.notify_one();
        }
        Take::Job(job)
    }

    /// For worker `index`, which has just taken an outside job under the
    /// lock: moves up to [`BATCH`] more, its share of those queued, into its
    /// own deque `own` (made and listed now if it has none), so that it
    /// runs them without taking the pool lock for each one, while the other
    /// workers can still steal them.
    ///
    /// Nothing else changes. The jobs move from one queue to another under
    /// the pool lock, which every other taker, every sleeper's re-check and
    /// `shutdown_now` hold: each of those sees every job in exactly one of
    /// the two queues. No wake-up is needed: each job's push already woke a
    /// sleeper if there was one, and a sleeper's re-check looks into every
    /// deque. The worker is counted running (it just took a job), so it may
    /// pop them without the lock (`pop_own_unlocked`). They are pushed
    /// newest first, so that the owner, which pops its newest, runs them
    /// oldest first, as it would have taken them from the outside queue.
    /// A closed pool moves nothing: its deques refuse pushes.
    fn take_batch(&self, state: &mut State, index: usize, own: &OnceCell<Arc<Local>>) {
        if state.closed || !self.config.batches() {
            return;
        }
        // SAFETY: `state` is borrowed from the guard of `self.state`: this
        // thread holds the pool lock, so it is the only consumer.
        let queued = unsafe { self.injector.len() };
        let share = (queued / state.live_workers.max(1)).min(BATCH);
        if share == 0 {
            return;
        }
        let mut batch = Vec::with_capacity(share);
        while batch.len() < share {
            // SAFETY: as above.
            match unsafe { self.injector.pop() } {
                Pop::Job(job) => batch.push(job),
                // The rest are claimed but not written yet: left for later.
                Pop::Pending | Pop::Empty => break,
            }
        }
        let local = own.get_or_init(|| self.local_locked(state, index));
        let count = batch.len();
        let pushed = local.push_many(count, || batch.pop().expect("one job per push"));
        // The deque is closed only by a close, under the pool lock, which
        // this thread has held since it saw the pool open.
        assert_eq!(pushed, count, "an open pool's deque refused a batch");
    }

    fn exit_worker(&self, mut state: MutexGuard<'_, State>) -> Option<Job> {
        debug_assert!(state.live_workers > 0);
        state.live_workers -= 1;
        self.publish_sizes(&mut state);
        // Not only at zero: a `shutdown_timeout` called from inside a job
        // waits for every worker but its own, i.e. for one left.
        let wake = state.idle_waiters > 0;
        drop(state);
        if wake {
            self.notify_idle_waiters();
        }
        None
    }

    /// For a job joining on worker `index`: runs one
    /// queued job, if any, and returns whether it did. The worker's own
    /// newest job, if it may take it without the lock
    /// (`worker::help_from_own_deque`; the locked path takes the pool lock
    /// twice, to take and to finish, and two workers contend for it); else
    /// any job, through [`try_next_job`](Self::try_next_job).
    pub(crate) fn help_once(&self, index: usize) -> bool {
        if worker::help_from_own_deque(self) {
            return true;
        }
        match self.try_next_job(index) {
            Some(job) => {
                self.run(job);
                true
            }
            None => false,
        }
    }

    /// Takes a queued job for worker `index` without blocking: for a worker
    /// that helps while it joins, or while it shuts its own pool down.
    /// (A job claimed but not yet written counts as none: its submitter
    /// wakes the caller if it then sleeps in
    /// [`sleep_while_joining`](Self::sleep_while_joining).)
    pub(crate) fn try_next_job(&self, index: usize) -> Option<Job> {
        let mut state = self.lock();
        match self.take(&mut state, index, None) {
            Take::Job(job) => Some(job),
            Take::Pending | Take::Empty => None,
        }
    }

    /// For a worker shutting down its own pool, after [`close`](Self::close):
    /// takes a queued job, waiting out one whose submitter claimed its slot
    /// before the close and has not written it yet; `None` once the queue is
    /// empty. The caller may be the only worker left awake, and such a
    /// pusher wakes no idle waiter, so it must not leave the job to others
    /// (`drop_from_inside_racing_a_lock_free_push_runs_the_job`). The wait is
    /// short: the pusher needs no lock to finish, and a closed queue admits
    /// no new claims.
    pub(crate) fn next_job_after_close(&self, index: usize) -> Option<Job> {
        loop {
            let mut state = self.lock();
            debug_assert!(state.closed, "draining a queue that is still open");
            match self.take(&mut state, index, None) {
                Take::Job(job) => return Some(job),
                Take::Empty => return None,
                Take::Pending => {
                    drop(state);
                    sync::yield_now();
                }
            }
        }
    }

    /// For a worker joining a slot: sleeps on `work_ready` unless a job is
    /// queued or `ready()` (called with the pool lock held) says the slot has
    /// resolved. See `join.rs` for why this cannot miss the resolution.
    pub(crate) fn sleep_while_joining(&self, index: usize, ready: impl FnOnce() -> bool) {
        let mut state = self.lock();
        if ready() {
            return;
        }
        // Registered before the synced check (`injector.rs`).
        self.add_sleeper(&mut state);
        if self.job_ready_synced(&state, index) {
            self.remove_sleeper(&mut state);
            return;
        }
        state.parked_joiners += 1;
        let generation = state.park_generation;
        if state.idle_waiters > 0 {
            // A shutdown from inside the pool may be waiting for this.
            self.notify_idle_waiters();
        }
        state = sync::wait(&self.work_ready, state);
        if state.park_generation == generation {
            state.parked_joiners -= 1;
        }
        self.remove_sleeper(&mut state);
    }

    /// Counts the caller as sleeping on `work_ready` (the lock is held).
    fn add_sleeper(&self, state: &mut State) {
        state.sleeping_workers += 1;
        // AcqRel: a read-modify-write, sequenced before the caller's
        // `peek_synced` (`injector.rs`) and its look at each local deque
        // under that deque's lock (`local.rs`).
        self.sleepers_for_pushers.fetch_add(1, Ordering::AcqRel);
    }

    /// Undoes [`add_sleeper`](Self::add_sleeper) (the lock is held).
    fn remove_sleeper(&self, state: &mut State) {
        state.sleeping_workers -= 1;
        // Relaxed: only the increment takes part in the handshake; a pusher
        // that reads a stale non-zero count notifies for nothing.
        self.sleepers_for_pushers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Wakes workers sleeping in [`sleep_while_joining`](Self::sleep_while_joining)
    /// after a slot they join resolved. Takes the lock so the notification
    /// cannot fall between a joiner's check and its wait, and in the same
    /// critical section stops counting every joiner as parked: the one whose
    /// slot resolved is about to go on, and a shutdown from inside the pool
    /// must wait for it.
    pub(crate) fn wake_helping_joiners(&self) {
        let mut state = self.lock();
        unpark_joiners(&mut state);
        drop(state);
        self.work_ready.notify_all();
    }

    /// For the owner of a scope, outside the pool: blocks until `done`
    /// (called with the pool lock held) returns `true`. The scope's last job
    /// calls [`wake_scope_owners`](Self::wake_scope_owners) after its
    /// decrement, and takes the pool lock to do so: either this check sees
    /// the decrement, or the owner was waiting before that job could lock,
    /// and is counted in `blocked_scope_owners` (`scope.rs`).
    ///
    /// Like `wait_idle`, the owner first yields, awake, while a CPU is free
    /// for it; it watches `done` itself, which reads the scope's own count.
    pub(crate) fn wait_for_scope(&self, done: impl Fn() -> bool) {
        self.wait_awake_then_asleep(
            &self.scope_done,
            |state| &mut state.blocked_scope_owners,
            |_| done(),
            &done,
        );
    }

    /// Called by the job that takes a scope's count of jobs to 0, after the
    /// decrement: wakes the scope's owner, whether it sleeps while helping
    /// (`sleep_while_joining`, counted in `parked_joiners`) or blocks outside
    /// the pool ([`wait_for_scope`](Self::wait_for_scope)). Both check the
    /// count under the pool lock before they wait, and this takes the lock,
    /// so the wake cannot fall between a check and its wait. Other parked
    /// joiners wake too, re-check their own condition and park again.
    pub(crate) fn wake_scope_owners(&self) {
        let mut state = self.lock();
        let joiners = state.parked_joiners > 0;
        if joiners {
            unpark_joiners(&mut state);
        }
        let owners = state.blocked_scope_owners > 0;
        drop(state);
        if joiners {
            self.work_ready.notify_all();
        }
        if owners {
            self.scope_done.notify_all();
        }
    }

    /// Runs a job taken with [`next_job`](Self::next_job) or
    /// [`try_next_job`](Self::try_next_job), hands a panic to the panic
    /// handler, then records the outcome.
    pub(crate) fn run(&self, job: Job) {
        let panicked = self.run_only(job);
        self.finish(panicked);
    }

    /// Runs a job as [`run`](Self::run) does, but leaves recording its end to
    /// the caller (a worker passes it to its next [`next_job`](Self::next_job)).
    /// Returns whether it panicked.
    #[inline]
    pub(crate) fn run_only(&self, job: Job) -> bool {
        match job.run_in_pool() {
            Outcome::Completed => false,
            Outcome::PanickedIntoHandle => true,
            Outcome::Panicked(payload) => {
                match &self.config.panic_handler {
                    Some(handler) => job::call_guarded(|| handler(payload)),
                    None => job::drop_guarded(payload),
                }
                true
            }
        }
    }

    fn finish(&self, panicked: bool) {
        let mut state = self.lock();
        let wake = self.record_finish(&mut state, usize::from(!panicked), usize::from(panicked));
        drop(state);
        if wake {
            self.notify_idle_waiters();
        }
    }

    /// Counts one running job as no longer running, and `completed` and
    /// `panicked` jobs as ended (more than one in all when a worker ran jobs
    /// of its own deque without the lock); returns whether an idle waiter
    /// must be woken.
    fn record_finish(&self, state: &mut State, completed: usize, panicked: usize) -> bool {
        debug_assert!(state.running > 0, "finishing a job that was not running");
        state.running -= 1;
        state.completed += completed;
        state.panicked += panicked;
        state.idle_waiters > 0 && self.is_idle(state)
    }

    /// Mirrors whether the locked queues hold a job into `locked_hint`;
    /// called under the lock after every change of their length.
    fn publish_locked_len(&self, state: &State) {
        // Nobody reads the hint in a loom model without spinning, and each
        // loom atomic access is one more scheduling point to explore.
        if self.config.spins() {
            let nonempty = usize::from(state.locked.len() > 0);
            // Relaxed: a hint for spinners, who re-read the length under the
            // lock (see `next_job`). Every store is made under the lock, so
            // this load reads the latest one.
            if self.locked_hint.load(Ordering::Relaxed) != nonempty {
                self.locked_hint.store(nonempty, Ordering::Relaxed);
            }
        }
    }

    /// Refuses every later submission and wakes every sleeper: workers drain
    /// the queue and exit, blocked submitters get their job back. Idempotent.
    pub(crate) fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if self.lock_free {
            self.injector.close();
        }
        for local in state.locals.iter().flatten() {
            local.close(false);
        }
        drop(state);
        self.wake_all_after_close();
    }

    /// Closes the queue and takes every job still in it, marking each handed
    /// back (under the lock, so a joining worker sees the mark before it can
    /// sleep again).
    pub(crate) fn close_and_take_queue(&self) -> Vec<Job> {
        let mut state = self.lock();
        state.closed = true;
        let mut jobs: Vec<Job> = state.locked.outside.drain(..).collect();
        self.publish_locked_len(&state);
        for local in state.locals.iter().flatten() {
            jobs.extend(local.close(true));
        }
        if self.lock_free {
            self.injector.close();
            loop {
                // SAFETY: `state` is the guard of `self.state`: this thread
                // holds the pool lock, so it is the only consumer.
                match unsafe { self.injector.pop() } {
                    Pop::Job(job) => jobs.push(job),
                    // Its pusher claimed the slot before the close, needs no
                    // lock to finish, and the job is this call's to hand back.
                    Pop::Pending => sync::yield_now(),
                    Pop::Empty => break,
                }
            }
        }
        for job in &mut jobs {
            job.mark_handed_back();
        }
        // A joiner of a handed-back job is about to return (cancelled).
        unpark_joiners(&mut state);
        let wake = state.idle_waiters > 0 && self.is_idle(&state);
        drop(state);
        self.wake_all_after_close();
        if wake {
            self.notify_idle_waiters();
        }
        jobs
    }

    fn wake_all_after_close(&self) {
        // Every sleeper must observe `closed` itself (each worker to exit,
        // each submitter to take its job back): one `notify_one` per sleeper
        // could not promise that.
        self.work_ready.notify_all();
        self.space_freed.notify_all();
    }

    /// Blocks until nothing is queued and nothing is running, first
    /// yielding until a notification of `became_idle` moves `idle_notices`
    /// ([`wait_awake_then_asleep`](Self::wait_awake_then_asleep)).
    pub(crate) fn wait_idle(&self) {
        self.wait_awake_then_asleep(
            &self.became_idle,
            |state| &mut state.idle_waiters,
            |state| self.is_idle(state),
            // Relaxed: pairs with the `Relaxed` bump in
            // `notify_idle_waiters`; a hint, the lock orders what the pool
            // did.
            || self.idle_notices.load(Ordering::Relaxed),
        );
    }

    /// Blocks, on `condvar` and counted in `waiters`, until `done` (called
    /// with the pool lock held) returns `true`. In a pool that spins and
    /// leaves a CPU free (fewer live workers than `cpus`), the caller first
    /// yields for a bounded time, awake, until `hint` (read without the
    /// lock) changes from what it read under the lock (`sleep.rs`). It is
    /// counted in `waiters` meanwhile too, so whatever ends the wait
    /// notifies, and it decides only under the lock: a hint that changed,
    /// or a budget spent, only brings it back to the check.
    fn wait_awake_then_asleep<H: PartialEq>(
        &self,
        condvar: &Condvar,
        waiters: fn(&mut State) -> &mut usize,
        done: impl Fn(&State) -> bool,
        hint: impl Fn() -> H,
    ) {
        let mut budget = self.config.spins().then(sleep::YieldBudget::new);
        let mut state = self.lock();
        while !done(&state) {
            *waiters(&mut state) += 1;
            match &mut budget {
                Some(budget) if !budget.spent() && self.leaves_cpu_free(&state) => {
                    let seen = hint();
                    drop(state);
                    budget.yield_while(|| hint() == seen);
                    state = self.lock();
                }
                _ => state = sync::wait(condvar, state),
            }
            *waiters(&mut state) -= 1;
        }
    }

    /// Wakes the callers waiting on `became_idle`, including a `wait_idle`
    /// caller yielding before it sleeps (through `idle_notices`). Called
    /// after a change that may end a wait, made under the lock.
    fn notify_idle_waiters(&self) {
        if self.config.spins() {
            // Relaxed: pairs with the `Relaxed` loads in `wait_idle`; a hint
            // that publishes nothing (the waiter re-checks under the lock).
            self.idle_notices.fetch_add(1, Ordering::Relaxed);
        }
        self.became_idle.notify_all();
    }

    /// Like [`wait_idle`](Self::wait_idle) but gives up at `deadline`
    /// (`None`: never); returns whether idleness was reached.
    pub(crate) fn wait_idle_until(&self, deadline: Option<Instant>) -> bool {
        self.wait_until(deadline, |state| self.is_idle(state).then_some(()))
            .is_some()
    }

    /// After `close`: waits until the other workers are done with the pool,
    /// or `deadline` passes (then reports what is left).
    ///
    /// From outside the pool that means every worker has exited (so the
    /// queue is drained and nothing runs). From a worker of the pool
    /// (`caller_is_worker`), the caller's own thread cannot exit, and jobs
    /// suspended beneath it on its stack (a shutdown may run nested in a
    /// helping join) cannot finish before it returns; a worker joining one of
    /// those would wait forever. So it waits until the queue is empty and
    /// every other live worker has exited or is asleep in a join. The answer
    /// is read in the same critical section as the condition.
    pub(crate) fn wait_workers_settled(
        &self,
        deadline: Option<Instant>,
        caller_is_worker: bool,
    ) -> Result<Settled, Leftover> {
        let settled = self.wait_until(deadline, |state| {
            if !caller_is_worker {
                return (state.live_workers == 0).then_some(Settled::AllExited);
            }
            let awake_others = state
                .live_workers
                .saturating_sub(state.parked_joiners)
                .saturating_sub(1);
            if self.queued(state) > 0 || awake_others > 0 {
                None
            } else if state.parked_joiners > 0 {
                Some(Settled::SomeParkedInJoin)
            } else {
                Some(Settled::AllExited)
            }
        });
        settled.ok_or_else(|| {
            let state = self.lock();
            Leftover {
                queued: self.queued(&state),
                running: state.running,
            }
        })
    }

    /// Waits on `became_idle` until `done` gives an answer, or `deadline`
    /// passes (`None`).
    fn wait_until<R>(
        &self,
        deadline: Option<Instant>,
        done: impl Fn(&State) -> Option<R>,
    ) -> Option<R> {
        let mut state = self.lock();
        loop {
            if let Some(answer) = done(&state) {
                return Some(answer);
            }
            state.idle_waiters += 1;
            state = match deadline {
                None => sync::wait(&self.became_idle, state),
                Some(deadline) => match remaining(deadline) {
                    Some(left) => sync::wait_timeout(&self.became_idle, state, left),
                    None => {
                        state.idle_waiters -= 1;
                        return None;
                    }
                },
            };
            state.idle_waiters -= 1;
        }
    }

    /// Sets the pool's size. Returns the indices of the workers the caller
    /// must now start (already counted live); shrinking wakes sleepers so the
    /// surplus retires.
    pub(crate) fn set_target(&self, target: usize) -> std::ops::Range<usize> {
        let mut state = self.lock();
        state.target_workers = target;
        let missing = target.saturating_sub(state.live_workers);
        state.live_workers += missing;
        let first = state.next_index;
        state.next_index += missing;
        self.publish_sizes(&mut state);
        let shrinking = state.live_workers > target;
        drop(state);
        if shrinking {
            self.work_ready.notify_all();
        }
        first..first + missing
    }

    /// Takes back the reservations from [`set_target`](Self::set_target) for
    /// `count` workers that will not be started after a spawn failed; the
    /// pool's size becomes what it really has.
    pub(crate) fn spawn_failed(&self, count: usize) {
        let mut state = self.lock();
        debug_assert!(state.live_workers >= count);
        state.live_workers -= count;
        state.target_workers = state.live_workers;
        self.publish_sizes(&mut state);
        let wake = state.idle_waiters > 0;
        drop(state);
        if wake {
            self.notify_idle_waiters();
        }
    }

    /// Mirrors `live_workers > target_workers` into `shrinking`, and
    /// `live_workers < cpus` into `cpu_free`; called under the lock after
    /// either count changes. (The copies in `State` spare a load of the
    /// atomics: each is one more scheduling point in a loom model. Under
    /// loom `cpus` is unlimited, so `cpu_free` is never stored.)
    fn publish_sizes(&self, state: &mut State) {
        let shrinking = state.live_workers > state.target_workers;
        if state.shrinking_published != shrinking {
            state.shrinking_published = shrinking;
            // Relaxed: a hint (see `shrinking`).
            self.shrinking
                .store(usize::from(shrinking), Ordering::Relaxed);
        }
        let cpu_free = self.leaves_cpu_free(state);
        if state.cpu_free_published != cpu_free {
            state.cpu_free_published = cpu_free;
            // Relaxed: pairs with the `Relaxed` load in `cpu_free`; a hint.
            self.cpu_free
                .store(usize::from(cpu_free), Ordering::Relaxed);
        }
    }

    /// Whether the pool has fewer live workers than the process has CPUs,
    /// read under the lock.
    fn leaves_cpu_free(&self, state: &State) -> bool {
        state.live_workers < self.cpus
    }

    /// Whether the pool has fewer live workers than the process has CPUs,
    /// read without the lock, for a joiner outside the pool (`sleep.rs`):
    /// a hint, a little stale while the pool resizes.
    pub(crate) fn cpu_free(&self) -> bool {
        // Relaxed: pairs with the `Relaxed` store in `publish_sizes`; a hint
        // that publishes nothing.
        self.cpu_free.load(Ordering::Relaxed) == 1
    }

    /// Worker `index`'s own deque, made on the worker's first push (not
    /// when the worker starts: until a worker pushes, the others need not
    /// look into its deque before they sleep; nor when it is reserved: the
    /// requested thread count may be absurd). Made closed if the pool is.
    pub(crate) fn local(&self, index: usize) -> Arc<Local> {
        let mut state = self.lock();
        self.local_locked(&mut state, index)
    }

    /// [`local`](Self::local), for a caller that holds the pool lock.
    fn local_locked(&self, state: &mut State, index: usize) -> Arc<Local> {
        let closed = state.closed;
        if index >= state.locals.len() {
            state.locals.resize_with(index + 1, || None);
        }
        let local = state.locals[index].get_or_insert_with(|| Arc::new(Local::new(closed)));
        Arc::clone(local)
    }

    pub(crate) fn num_threads(&self) -> usize {
        self.lock().target_workers
    }

    pub(crate) fn queued_count(&self) -> usize {
        self.queued(&self.lock())
    }

    pub(crate) fn active_count(&self) -> usize {
        self.lock().running
    }

    /// Recorded completions, and those the workers ran from their own
    /// deques and have yet to record (`Local::unrecorded`).
    pub(crate) fn completed_count(&self) -> usize {
        let state = self.lock();
        state.completed + unrecorded(&state).0
    }

    /// As [`completed_count`](Self::completed_count), for panics.
    pub(crate) fn panic_count(&self) -> usize {
        let state = self.lock();
        state.panicked + unrecorded(&state).1
    }
}

/// Stops counting the joiners asleep now as parked (see
/// `State::parked_joiners`); the caller then wakes them all.
fn unpark_joiners(state: &mut State) {
    state.parked_joiners = 0;
    state.park_generation = state.park_generation.wrapping_add(1);
}

/// Time left until `deadline`, or `None` if it has passed.
/// The jobs the workers ran and have not recorded yet: completed, panicked.
fn unrecorded(state: &State) -> (usize, usize) {
    state
        .locals
        .iter()
        .flatten()
        .map(|local| local.unrecorded())
        .fold((0, 0), |(c, p), (dc, dp)| (c + dc, p + dp))
}

fn remaining(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last reference goes away only after every worker has exited,
        // and workers exit only once the queue is closed and drained.
        debug_assert!(
            sync::panicking() || self.queued(&self.lock()) == 0,
            "a pool's state was dropped with jobs still queued"
        );
    }
}
