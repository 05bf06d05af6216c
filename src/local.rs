//! A worker's own deque: the jobs that its jobs submit.
//!
//! # Protocol
//!
//! Each worker owns one [`Local`], behind a lock of its own (a spin lock,
//! `spin_lock.rs`) rather than the pool lock. The pool makes it, under the
//! pool lock, on the worker's first push (`Shared::local`) or first batch
//! of outside jobs (`Shared::take_batch`); a worker that needs neither has
//! none, and the others never look for one. The owner
//! pushes to the back and, while it is counted running, pops from the back
//! (LIFO: usually the child it just spawned) *without the pool lock*; other workers steal from the front, and `shutdown_now` drains
//! it, both with the pool lock held (the lock order is pool, then local; the
//! owner never takes the pool lock while it holds its local one).
//!
//! | event                     | under the deque's lock                       | then |
//! |---------------------------|----------------------------------------------|------|
//! | owner's first push        | (before it, under the pool lock: make the deque, closed if the pool is, and list it) | push as below |
//! | owner pushes              | refuse if `closed`; push back; store `len`   | if `sleepers_for_pushers > 0`: wake a sleeper (`Shared::wake_after_unlocked_push`) |
//! | owner moves a batch of outside jobs in (pool lock) | push back, newest first; store `len` | run them (fast path) |
//! | owner pops (fast path)    | pop back; store `len`                        | run it, still counted running; mirror its tally (`unrecorded`) |
//! | a worker takes (pool lock)| pop back (owner) or front (thief); store `len` | count it running |
//! | sleeper re-checks (pool lock) | look                                     | sleep if every deque was empty |
//! | `close` (pool lock)       | `closed = true`; `shutdown_now` also drains  | |
//!
//! **No lost wake-up.** A worker about to sleep first counts itself in
//! `sleepers_for_pushers`, then locks each deque in turn and looks. An owner
//! pushes under its deque's lock, unlocks, then reads `sleepers_for_pushers`.
//! The two critical sections on that deque are ordered by its lock: if the
//! sleeper's comes second it sees the job; if first, its unlock happens
//! before the owner's lock, so the count it raised before is what the owner
//! reads, and the owner wakes it (taking the pool lock first, which the
//! sleeper holds until it waits). A deque the sleeper did not look into
//! was listed after its look, under the pool lock it held while it counted
//! itself: its owner's first push comes later still, and reads the count.
//! Proven by `local_push_wakes_a_worker_going_to_sleep`
//! (`loom-tests/local.rs`), whose push is the owner's first.
//!
//! **No lost job.** A job leaves a deque only under its lock: popped by the
//! owner (which runs it), taken by a worker (which runs it), or drained by
//! `shutdown_now` (which hands it back). A push after `close` marked the
//! deque is refused; one before is drained or run. Proven by
//! `loom-tests/local.rs`.
//!
//! **Idleness.** The owner pops without the pool lock only while it is
//! counted running, so doing so never changes whether the pool is idle;
//! and every job a deque holds counts as queued (`len`), including those a
//! deque can hold while its owner is not running: a thread hook's, or a
//! batch left behind by an owner that retired as surplus (the others steal
//! it). The jobs the owner ran without the lock count in the pool's
//! counters before it records them: the owner mirrors its tally here
//! (`unrecorded`), and zeroes the mirror under the pool lock in the
//! critical section that records them, where the getters read it.
//! Proven by `loom-tests/outside_batch.rs`.

use std::collections::VecDeque;

use crate::job::Job;
use crate::spin_lock::SpinLock;
use crate::sync::{AtomicUsize, Ordering};

/// One worker's deque (see the module docs).
///
/// Aligned to a cache-line pair, as `sync::CachePadded` is: each worker
/// locks its own deque for every push and pop, and two deques allocated
/// side by side would share lines between the workers.
#[repr(align(128))]
pub(crate) struct Local {
    /// The deque's lock: a spin lock (`spin_lock.rs`), which orders its
    /// critical sections as a mutex would.
    jobs: SpinLock<Jobs>,
    /// The deque's length, stored under its lock after every change, read
    /// without it to count the pool's queued jobs.
    len: AtomicUsize,
    /// The owner's tally of jobs it ran and has not yet recorded under the
    /// pool lock (`queue::Finished`): completed, panicked. The owner runs
    /// jobs from this deque without the lock, one after another, and
    /// records them when it next locks; mirrored here, they count in
    /// `completed_count` and `panic_count` meanwhile. Written by the owner
    /// only; zeroed under the pool lock in the critical section that
    /// records them, and read under the pool lock, so a reader counts each
    /// job once.
    unrecorded: [AtomicUsize; 2],
}

struct Jobs {
    deque: VecDeque<Job>,
    /// Set by `close` (under the pool lock): every later push is refused.
    closed: bool,
}

impl Local {
    pub(crate) fn new(closed: bool) -> Local {
        Local {
            jobs: SpinLock::new(Jobs {
                deque: VecDeque::new(),
                closed,
            }),
            len: AtomicUsize::new(0),
            unrecorded: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }

    /// Pushes the job `into_job` makes of `task`, unless the deque is closed
    /// (then `task` comes back). For the owner only.
    pub(crate) fn push<B>(&self, task: B, into_job: impl FnOnce(B) -> Job) -> Result<(), B> {
        self.jobs.with(|jobs| {
            if jobs.closed {
                return Err(task);
            }
            jobs.deque.push_back(into_job(task));
            self.publish_len(jobs);
            Ok(())
        })
    }

    /// Pushes the jobs `next` gives, up to `count`, unless the deque is
    /// closed; returns how many were pushed (0 or `count`). For the owner
    /// only.
    pub(crate) fn push_many(&self, count: usize, mut next: impl FnMut() -> Job) -> usize {
        self.jobs.with(|jobs| {
            if jobs.closed {
                return 0;
            }
            for _ in 0..count {
                jobs.deque.push_back(next());
            }
            self.publish_len(jobs);
            count
        })
    }

    /// The newest job: for the owner.
    #[inline]
    pub(crate) fn pop_newest(&self) -> Option<Job> {
        // The owner reads its own last store of `len`, or a thief's lower
        // one: 0 means empty, and the lock need not be taken.
        if self.len() == 0 {
            return None;
        }
        self.jobs.with(|jobs| {
            let job = jobs.deque.pop_back()?;
            self.publish_len(jobs);
            Some(job)
        })
    }

    /// The oldest job: for a thief, which holds the pool lock. Skips the
    /// lock when `len` reads 0. That read can be stale only for a push
    /// that does not happen before the thief's critical section, and such a
    /// push either comes from a running owner (which pops it itself), or
    /// wakes a sleeper, whose synced look (`has_job_synced`) finds it; once
    /// the pool is closed, the close marked this deque under its lock and
    /// the pool lock, after every push it did not refuse.
    pub(crate) fn pop_oldest(&self) -> Option<Job> {
        if self.len() == 0 {
            return None;
        }
        self.jobs.with(|jobs| {
            let job = jobs.deque.pop_front()?;
            self.publish_len(jobs);
            Some(job)
        })
    }

    /// Whether a job is queued, read under the lock: for a worker about to
    /// sleep (module docs).
    pub(crate) fn has_job_synced(&self) -> bool {
        self.jobs.with(|jobs| !jobs.deque.is_empty())
    }

    /// Jobs queued here now; may be stale by the time the caller uses it.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Relaxed: a count, not a publication. The owner reads its own
        // stores in order; other threads' jobs are counted running or were
        // pushed by a thread hook, which races any reader anyway.
        self.len.load(Ordering::Relaxed)
    }

    /// Refuses every later push; with `drain`, also takes every job queued.
    pub(crate) fn close(&self, drain: bool) -> Vec<Job> {
        self.jobs.with(|jobs| {
            jobs.closed = true;
            if !drain {
                return Vec::new();
            }
            let taken = jobs.deque.drain(..).collect();
            self.publish_len(jobs);
            taken
        })
    }

    /// For the owner: its tally of unrecorded jobs is now `completed`
    /// completed and `panicked` panicked (0 and 0 once recorded, under the
    /// pool lock).
    #[inline]
    pub(crate) fn publish_unrecorded(&self, completed: usize, panicked: usize) {
        for (count, value) in self.unrecorded.iter().zip([completed, panicked]) {
            // Relaxed: a count for the getters, which read it under the pool
            // lock; the zeroing store is made under that lock, so a reader
            // sees either the tally or its record, never both. A reader that
            // misses a newer tally sees a snapshot taken a little earlier.
            // Stored only when it changed: one store per job.
            if count.load(Ordering::Relaxed) != value {
                count.store(value, Ordering::Relaxed);
            }
        }
    }

    /// The owner's unrecorded jobs: completed, panicked. Read under the pool
    /// lock.
    pub(crate) fn unrecorded(&self) -> (usize, usize) {
        // Relaxed: see `publish_unrecorded`.
        let [completed, panicked] = &self.unrecorded;
        (
            completed.load(Ordering::Relaxed),
            panicked.load(Ordering::Relaxed),
        )
    }

    #[inline]
    fn publish_len(&self, jobs: &Jobs) {
        // Relaxed: see `len`.
        self.len.store(jobs.deque.len(), Ordering::Relaxed);
    }
}
