//! The outside queue: where jobs submitted from outside an unbounded pool
//! wait, pushed without taking the pool lock.
//!
//! # Protocol
//!
//! An unbounded list of fixed-size blocks, in the style of crossbeam's
//! list channel, with one simplification: there is only ever one consumer
//! at a time, because workers pop while holding the pool lock (`queue.rs`).
//! Producers never take that lock: a push is one compare-and-swap on `tail`
//! plus a write into the claimed slot.
//!
//! `tail` counts *positions*, shifted left by one to make room for the
//! `CLOSED` bit. Each block spans `LAP` positions: `BLOCK_CAP` slots and one
//! more position that means "the next block is being installed".
//!
//! - **Push.** Load `tail`; refuse if `CLOSED`; wait if it points at an
//!   install position; load `tail_block`; claim the position with a CAS on
//!   `tail` (a batch claims as many positions as it has jobs, up to the end
//!   of the block). The slot is then the pusher's alone: write the job, then
//!   set the slot's `written` flag (`Release`). Last, one read-modify-write
//!   of `tail` (below). The pusher that claims a block's last slot first
//!   moves `tail` onto the install position (that is its CAS), stores the new block in `tail_block`, moves `tail` on
//!   to the new block's first slot, and links the old block's `next`; only
//!   then does it write its own slot. Every change to `tail` is a
//!   read-modify-write, so an `Acquire` load of any `tail` value synchronizes
//!   with the install before it and sees the matching `tail_block`. A CAS
//!   that succeeds saw `tail` unchanged since its load, so the block loaded
//!   in between is the one the claimed slot is in.
//! - **Pop** (the pool lock held). If the head slot's `written` flag is set
//!   (`Acquire`, pairing with the pusher's `Release`), the job is there:
//!   take it. The common case thus never reads `tail`, whose cache line the
//!   pushers own. Otherwise read `tail`: if it is at the head's slot, the
//!   queue is empty; if not, the slot is claimed and its pusher is between
//!   its CAS and its write, so the pop spins briefly and then reports
//!   `Pending`; the worker then goes to sleep as on an empty queue, and the
//!   pusher wakes it (see below). After the last slot of a block, the head
//!   moves to `next` and frees the block: every slot in it has been written
//!   and read, and a pusher touches a block only after claiming a slot in it
//!   and until it sets that slot's flag, so nobody can reach it any more.
//! - **Close.** `fetch_or(CLOSED)` on `tail`, under the pool lock. A push
//!   either claimed its slot before (its job is in the queue, and workers
//!   exit only once the queue is empty) or fails its CAS, sees `CLOSED` and
//!   gets its job back: never both, never neither.
//!
//! **No lost wake-up** (with `queue.rs`). A worker going to sleep registers
//! as a sleeper, then peeks ([`Injector::peek_synced`]): a read-modify-write
//! of `tail`, then, if a slot is claimed, a load of the head slot's flag. A
//! pusher claims with its CAS on `tail`, writes its jobs and flags, then
//! does a second read-modify-write of `tail`, then reads the sleeper count.
//! The worker's and the pusher's closing `tail` accesses are both
//! read-modify-writes (`AcqRel`), so one comes first and the later one
//! synchronizes with it. If the worker's comes first, the pusher sees the
//! sleeper (and notifies it through the pool lock). If the pusher's comes
//! first, the worker sees everything the pusher did before it: the claim
//! and the flag, so the job is ready and the worker does not sleep. (If the
//! worker's peek comes before the claim itself, the claim's CAS
//! synchronizes with it the same way.) So a worker sleeps only if every job
//! it could not take will wake it: it never spins on a half-written slot.
//!
//! Proven by `loom-tests/injector.rs` (blocks of two slots under loom) and,
//! through the pool, by `loom-tests/lock_free.rs`; `tests/outside_queue.rs`
//! runs it across real blocks under Miri.

use std::mem::MaybeUninit;
use std::ptr;

use crate::job::Job;
use crate::sync::{self, AtomicPtr, AtomicUsize, CachePadded, Ordering, RawCell};

/// Slots per block. Two under loom, so that a model crosses a block boundary
/// within a few jobs; otherwise a block is about 3 KiB, 24 bytes a job.
const BLOCK_CAP: usize = if sync::MODEL_CHECKED { 2 } else { 127 };

/// `spin_loop` hints a pop waits for a claimed slot to be written before it
/// reports [`Pop::Pending`]. None under a checker (loom or shuttle): the
/// worker then goes to sleep through `peek_synced`, and `shutdown_now` waits
/// out the pusher, at every point the checker chooses; with the spins,
/// shuttle's pusher would nearly always finish first.
const PENDING_SPINS: usize = if sync::SCHEDULE_CHOSEN_BY_CHECKER {
    0
} else {
    64
};

/// Positions per block: its slots, then the install position.
const LAP: usize = BLOCK_CAP + 1;

/// Set in `tail` once the queue is closed.
const CLOSED: usize = 1;

/// Positions are stored shifted past the `CLOSED` bit.
const SHIFT: u32 = 1;

/// A run of slots and the link to the next run.
struct Block {
    /// The next block; set by the pusher of this block's last slot before it
    /// writes that slot.
    next: AtomicPtr<Block>,
    slots: [Slot; BLOCK_CAP],
}

/// One job's place. Its flag sits beside the job, on the cache line the
/// consumer reads anyway (a per-block bit mask, tried first, bounced one
/// line between pusher and consumer on every job).
struct Slot {
    job: RawCell<MaybeUninit<Job>>,
    /// Non-zero once `job` holds the job.
    written: AtomicUsize,
}

impl Block {
    fn new() -> Box<Block> {
        Box::new(Block {
            next: AtomicPtr::new(ptr::null_mut()),
            slots: std::array::from_fn(|_| Slot {
                job: RawCell::new(MaybeUninit::uninit()),
                written: AtomicUsize::new(0),
            }),
        })
    }
}

/// The consumer's position: only touched with the pool lock held.
struct Head {
    block: *mut Block,
    position: usize,
}

/// What [`Injector::peek_synced`] found.
pub(crate) enum Peek {
    Empty,
    /// The oldest job is claimed, not yet written; its pusher will see a
    /// sleeper registered before the peek.
    Pending,
    Ready,
}

/// What a pop found.
pub(crate) enum Pop {
    Job(Job),
    /// A job is claimed but its pusher has not finished writing it: retry
    /// soon, do not sleep.
    Pending,
    Empty,
}

/// See the module documentation.
pub(crate) struct Injector {
    /// Producers' side, on a cache line of its own.
    tail: CachePadded<Tail>,
    /// Consumer's side.
    head: CachePadded<RawCell<Head>>,
}

struct Tail {
    /// Next position to claim, shifted; bit 0 is `CLOSED`.
    position: AtomicUsize,
    /// The block `position` points into.
    block: AtomicPtr<Block>,
}

// SAFETY: the blocks and the jobs in them are owned by the queue and reached
// only through it. Producers touch only slots they claimed with a CAS, and
// the consumer reads a slot only after its `written` flag (set with `Release`,
// read with `Acquire`) says its producer is done; `Head` is touched only by
// the consumer, whose callers hold the pool lock (see `pop`). Jobs are
// `Send`.
unsafe impl Send for Injector {}
// SAFETY: as for `Send`: every shared access goes through the protocol above.
unsafe impl Sync for Injector {}

/// How many slots lie before `position` (install positions do not count).
fn slots_before(position: usize) -> usize {
    position - position / LAP
}

impl Injector {
    pub(crate) fn new() -> Injector {
        let first = Box::into_raw(Block::new());
        Injector {
            tail: CachePadded(Tail {
                position: AtomicUsize::new(0),
                block: AtomicPtr::new(first),
            }),
            head: CachePadded(RawCell::new(Head {
                block: first,
                position: 0,
            })),
        }
    }

    /// Accepts the task unless the queue is closed, in which case it comes
    /// back unconverted. `into_job` runs only once a slot is claimed.
    pub(crate) fn push<B>(&self, task: B, into_job: impl FnOnce(B) -> Job) -> Result<(), B> {
        let mut task = Some(task);
        let mut into_job = Some(into_job);
        self.push_many(1, || {
            let (task, into_job) = (task.take(), into_job.take());
            into_job.expect("called once")(task.expect("called once"))
        });
        match task {
            Some(task) => Err(task),
            None => Ok(()),
        }
    }

    /// Accepts `count` jobs, produced in order by `next_job` once their slots
    /// are claimed, claiming as many slots per CAS as fit in the current
    /// block. Stops early if the queue is closed; returns how many were
    /// accepted (`next_job` was called that many times).
    pub(crate) fn push_many(&self, count: usize, mut next_job: impl FnMut() -> Job) -> usize {
        let tail = &*self.tail;
        let mut spare: Option<Box<Block>> = None;
        let mut accepted = 0;
        // Acquire pairs with the release sequence of every `tail` write, so
        // `tail.block` below is at least the block this position is in.
        let mut current = tail.position.load(Ordering::Acquire);
        while accepted < count {
            if current & CLOSED != 0 {
                break;
            }
            let position = current >> SHIFT;
            let offset = position % LAP;
            if offset == BLOCK_CAP {
                // Another pusher is installing the next block; it does not
                // block on anything, so this wait is short.
                sync::yield_now();
                current = tail.position.load(Ordering::Acquire);
                continue;
            }
            let claim = (count - accepted).min(BLOCK_CAP - offset);
            let fills_block = offset + claim == BLOCK_CAP;
            if fills_block && spare.is_none() {
                spare = Some(Block::new());
            }
            // Acquire pairs with the `Release` store of an installing pusher:
            // the block's initialisation is visible.
            let block = tail.block.load(Ordering::Acquire);
            let claimed = current + (claim << SHIFT);
            // AcqRel: the release half continues the release sequence
            // installs rely on; the acquire half, as in every `tail` access.
            match tail.position.compare_exchange(
                current,
                claimed,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if fills_block {
                        let new_block = Box::into_raw(spare.take().expect("allocated above"));
                        // Release pairs with the `Acquire` load of
                        // `tail.block` by pushers that read a position in the
                        // new block.
                        tail.block.store(new_block, Ordering::Release);
                        // Step over the install position. A read-modify-write
                        // (not a store) so the release sequence goes on.
                        tail.position.fetch_add(1 << SHIFT, Ordering::Release);
                        // SAFETY: `block` is alive: it is freed only after all
                        // its slots are read, and the slots this pusher
                        // claimed are not written yet.
                        unsafe { (*block).next.store(new_block, Ordering::Release) };
                    }
                    for index in offset..offset + claim {
                        let job = next_job();
                        // SAFETY: as above, `block` is alive; the CAS gave
                        // this pusher these slots alone, and the consumer
                        // reads one only after its flag is set.
                        let slot = unsafe { &(*block).slots[index] };
                        // SAFETY: see above: nobody else touches the slot.
                        slot.job
                            .with_mut(|job_slot| unsafe { (*job_slot).write(job) });
                        // Release pairs with the consumer's `Acquire` load of
                        // `written`: the job (and `next`, for the last slot)
                        // is visible before the consumer reads the slot.
                        slot.written.store(1, Ordering::Release);
                    }
                    accepted += claim;
                    if accepted < count {
                        current = tail.position.load(Ordering::Acquire);
                    }
                }
                Err(seen) => current = seen,
            }
        }
        if accepted > 0 {
            // The handshake with a worker going to sleep (module docs): a
            // read-modify-write of `tail` after every flag this pusher set.
            // AcqRel: if a sleeping worker's `peek_synced` came first, this
            // synchronizes with it and the caller's read of the sleeper
            // count, next, sees the worker; if this came first, the worker's
            // peek synchronizes with it and sees the flags.
            tail.position.fetch_add(0, Ordering::AcqRel);
        }
        accepted
    }

    /// Refuses every later push; a push that already claimed its slot still
    /// completes. Callers hold the pool lock, so workers see `closed` and
    /// this bit together.
    pub(crate) fn close(&self) {
        // AcqRel: a read-modify-write, ordered with every claim in `tail`'s
        // order; a worker that locks after this sees each earlier claim.
        self.tail.position.fetch_or(CLOSED, Ordering::AcqRel);
    }

    /// A value that changes whenever a job is claimed or the queue closes:
    /// for workers spinning without the lock. Only a hint.
    pub(crate) fn stamp(&self) -> usize {
        // Relaxed: a spinner that sees a change re-checks under the lock.
        self.tail.position.load(Ordering::Relaxed)
    }

    /// Takes the oldest job.
    ///
    /// # Safety
    ///
    /// The caller holds the pool lock: at most one thread pops (or calls
    /// [`len`](Self::len) or [`peek_synced`](Self::peek_synced)) at a
    /// time.
    pub(crate) unsafe fn pop(&self) -> Pop {
        self.head.with_mut(|head| {
            // SAFETY: the caller's lock makes this the only access to `head`.
            let head = unsafe { &mut *head };
            let offset = head.position % LAP;
            debug_assert!(
                offset < BLOCK_CAP,
                "the head never rests on an install position"
            );
            let block = head.block;
            // SAFETY: the head block is alive until the head leaves it, below.
            let slot = unsafe { &(*block).slots[offset] };
            // Acquire pairs with the pusher's `Release` store.
            let is_written = || slot.written.load(Ordering::Acquire) != 0;
            // A set flag alone says the slot is claimed and full, so the
            // common case never reads `tail` (and never pulls the pushers'
            // cache line over).
            if !is_written() {
                // Acquire pairs with the release sequence of `tail`.
                let tail = self.tail.position.load(Ordering::Acquire) >> SHIFT;
                if slots_before(head.position) == slots_before(tail) {
                    return Pop::Empty;
                }
                // Claimed, not yet written: the pusher is between its CAS
                // and its write, a few instructions unless it was preempted.
                // Spin a little before reporting it.
                let mut spins = 0;
                while !is_written() {
                    if spins == PENDING_SPINS {
                        return Pop::Pending;
                    }
                    sync::spin_loop();
                    spins += 1;
                }
            }
            // SAFETY: the flag is set (the `Acquire` load pairs with the
            // pusher's `Release`), so the slot holds a job that nobody else
            // will touch; the head moves past it, so it is read once.
            let job = slot
                .job
                .with_mut(|job| unsafe { (*job).assume_init_read() });
            head.position += 1;
            if offset + 1 == BLOCK_CAP {
                // SAFETY: the last slot's flag is set, and its pusher linked
                // `next` before setting it; every slot has been read, so no
                // pusher will reach this block again and it can be freed.
                unsafe {
                    let next = (*block).next.load(Ordering::Acquire);
                    debug_assert!(!next.is_null(), "a full block has its successor linked");
                    drop(Box::from_raw(block));
                    head.block = next;
                }
                head.position += 1;
            }
            Pop::Job(job)
        })
    }

    /// Jobs claimed and not yet popped.
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop).
    pub(crate) unsafe fn len(&self) -> usize {
        // Acquire: as in `pop`.
        let tail = self.tail.position.load(Ordering::Acquire) >> SHIFT;
        // SAFETY: the caller's lock makes this the only access to `head`.
        let head = self.head.with(|head| unsafe { (*head).position });
        slots_before(tail) - slots_before(head)
    }

    /// Whether the oldest job can be popped now, read so that a worker about
    /// to sleep and a pusher cannot miss each other (module docs): a
    /// read-modify-write of `tail` tells `Empty` from claimed, and one of the
    /// head slot's flag tells a written job (`Ready`) from one whose pusher
    /// has yet to write it (`Pending`), and will then see the caller's
    /// registration as a sleeper.
    ///
    /// # Safety
    ///
    /// As for [`pop`](Self::pop).
    pub(crate) unsafe fn peek_synced(&self) -> Peek {
        // AcqRel: see the module docs; pairs with the pusher's CAS.
        let tail = self.tail.position.fetch_add(0, Ordering::AcqRel) >> SHIFT;
        self.head.with(|head| {
            // SAFETY: the caller's lock makes this the only access to `head`.
            let head = unsafe { &*head };
            if slots_before(head.position) == slots_before(tail) {
                return Peek::Empty;
            }
            // SAFETY: the head block is alive until the head leaves it.
            let slot = unsafe { &(*head.block).slots[head.position % LAP] };
            // Acquire pairs with the pusher's `Release` store. If the store is
            // not seen, the pusher's closing read-modify-write of `tail`
            // comes after this peek's, so the pusher will see the sleeper
            // (module docs).
            if slot.written.load(Ordering::Acquire) != 0 {
                Peek::Ready
            } else {
                Peek::Pending
            }
        })
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        loop {
            // SAFETY: `&mut self`: no other thread can push or pop.
            match unsafe { self.pop() } {
                Pop::Job(job) => drop(job),
                Pop::Empty => break,
                Pop::Pending => unreachable!("no pusher can be mid-push during drop"),
            }
        }
        // SAFETY: the queue is empty, so the head block is the only block
        // left (its `next`, if any, was never linked); it was made by
        // `Box::into_raw` and is freed once, here.
        self.head
            .with_mut(|head| unsafe { drop(Box::from_raw((*head).block)) });
    }
}
