//! What a [`Handle`](crate::Handle) holds: its pool, behind a reference count
//! that one worker updates without atomic instructions.
//!
//! # Why
//!
//! A job that submits its children through `Handle::current()` makes and
//! drops one handle per child. Counted on the pool's `Arc`, those handles
//! bounced one cache line between the workers: W5 (internal spawn) on two
//! workers spent over half its time there. So each worker has a *hub* of its
//! own, and `Handle::current()`, `pool.handle()` and a handle's clone, called
//! on a worker of the pool, count on that worker's hub.
//!
//! Even uncontended, an atomic count costs two locked instructions per
//! child (the increment and the decrement), as many as pushing and popping
//! the child. The hub's count is therefore *biased*: its own worker (the
//! *owner*) counts in a plain integer, and only other threads use atomics.
//!
//! # Protocol
//!
//! A hub has two counts:
//!
//! | field   | who writes it                      | how                  |
//! |---------|------------------------------------|----------------------|
//! | `owned` | the owner, until it retires        | plain, signed        |
//! | `count` | every other thread, and the owner's retirement | atomic |
//!
//! `owned` is signed because a reference the owner counted may be dropped
//! on another thread (then `count` goes down) and one counted on `count`
//! may be dropped on the owner (then `owned` goes down).
//!
//! While the owner lives, `count` also holds [`OWNER_STAKE`], a bias far
//! larger than the number of handles that can exist. So the references
//! alive are `owned + count - OWNER_STAKE` while the owner lives, and
//! `count` once it has retired.
//!
//! - **Owner clones or drops:** `owned += 1` or `owned -= 1`.
//! - **Another thread clones:** `count += 1`, `Relaxed` as in `Arc`: the
//!   new reference is made from one the thread already holds, which keeps
//!   the hub alive, and nothing is published through it.
//! - **Another thread drops:** `count -= 1`, `AcqRel`. If that leaves 0,
//!   the dropping thread frees the hub.
//! - **The owner retires** (its worker exits, after clearing its record, so
//!   that no later drop on that thread takes the owner's path):
//!   `count += owned - OWNER_STAKE`, `AcqRel`. If that leaves 0, the owner
//!   frees the hub.
//!
//! A hub made off the pool has no owner: it starts retired, with `count`
//! 1.
//!
//! **Who is the owner.** A thread-local pointer (`OWNED`) names the hub its
//! thread owns: set when the worker makes its stake, cleared by the stake's
//! drop just before it retires. A clone or drop takes the owner's path only
//! if `OWNED` names its hub, so it never does on another thread, nor after
//! retirement. Taking the atomic path on the owner's thread is always
//! sound (a reference the owner counted, dropped through `count`), so a
//! read that fails while the thread's locals are torn down may fall back
//! to it. `OWNED` holds no destructor and is initialised at compile time,
//! so that reading it is a single load: every `Handle::current` and every
//! drop of a handle reads it.
//!
//! **Races it prevents.** The stake keeps `count` from reaching 0 while the
//! owner still holds references that only `owned` knows of: without it, a
//! handle the owner counted and then sent away would, dropped, free the
//! hub under the owner's feet. Retirement folds `owned` into `count` once,
//! so no reference is lost (a leak) or counted twice (an early free).
//!
//! **Orderings.** Each thread's last use of the hub happens before its
//! decrement (or, for the owner, its retirement), whose `Release` half
//! publishes it. The thread that leaves 0 reads, with its `Acquire` half,
//! the end of the release sequence that every earlier read-modify-write of
//! `count` continues, so every other thread's uses happen before the free.
//!
//! Proven by the models of `loom-tests/hub.rs`, which race the owner's
//! counts, another thread's clones and drops and the retirement, and check
//! that the payload is freed exactly once and never while a reference to
//! it lives. The owner's plain `owned` is a `RawCell`, so loom also
//! reports any access to it from a second thread.

use std::ptr::{self, NonNull};

use crate::queue::Shared;
use crate::sync::{self, Arc, AtomicUsize, Ordering, RawCell};

sync::cell_thread_local! {
    /// The hub this thread owns: set by [`OwnerStake::new`] on a worker
    /// thread, cleared by the stake's drop before it retires; null on every
    /// other thread (module docs).
    static OWNED: *mut Hub = ptr::null_mut();
}

/// The hub this thread owns, if it is a worker that has not retired. Its
/// stake keeps it alive, and only this thread may use its owner's count.
#[inline]
fn owned() -> Option<NonNull<Hub>> {
    // A `Cell` read never fails under std; under loom, reading it while the
    // thread's locals are torn down does, and such a thread owns nothing.
    NonNull::new(
        OWNED
            .try_with(|owned| owned.get())
            .unwrap_or(ptr::null_mut()),
    )
}

/// A new reference to the hub this thread owns, counted by the owner, if
/// this thread is a worker (of any pool): what `Handle::current` returns.
#[inline]
pub(crate) fn owned_ref() -> Option<HubRef> {
    owned().map(|hub| {
        // SAFETY: this thread owns `hub` and has not retired (`owned`).
        unsafe { hub.as_ref().count.owner_acquire() };
        HubRef(hub)
    })
}

/// [`owned_ref`], if this thread is a worker of the pool that owns `shared`.
#[inline]
fn owned_ref_for(shared: &Shared) -> Option<HubRef> {
    if owner_serves(shared) {
        owned_ref()
    } else {
        None
    }
}

/// Whether this thread is a worker of the pool that owns `shared`: one
/// load of a thread-local and one comparison.
#[inline]
pub(crate) fn owner_serves(shared: &Shared) -> bool {
    // SAFETY: the stake keeps the hub alive while this thread owns it, and
    // this call cannot drop the stake.
    owned().is_some_and(|hub| ptr::eq(&*unsafe { hub.as_ref() }.shared, shared))
}

/// The bias `count` carries while the owner lives: more than the handles
/// that fit in memory, so the other threads' drops of the owner's handles
/// cannot take `count` to 0; and small enough that the sum cannot wrap.
pub(crate) const OWNER_STAKE: usize = 1 << (usize::BITS - 2);

/// `count` above this means handles were leaked (`mem::forget`) by the
/// billion; rather than let the count wrap and free a live hub, the
/// process aborts, as `Arc` does.
const MAX_COUNT: usize = OWNER_STAKE * 2;

/// The biased reference count of one hub (see the module docs).
pub(crate) struct BiasedCount {
    /// The other threads' references, plus [`OWNER_STAKE`] while the owner
    /// lives.
    count: AtomicUsize,
    /// The owner's net count. Touched only by the owner's thread, and only
    /// until it retires.
    owned: RawCell<isize>,
}

impl BiasedCount {
    /// A count for an owner that holds no reference yet.
    pub(crate) fn owned() -> BiasedCount {
        BiasedCount {
            count: AtomicUsize::new(OWNER_STAKE),
            owned: RawCell::new(0),
        }
    }

    /// A count with no owner, holding one reference.
    pub(crate) fn unowned() -> BiasedCount {
        BiasedCount {
            count: AtomicUsize::new(1),
            owned: RawCell::new(0),
        }
    }

    /// The owner counts one more reference.
    ///
    /// # Safety
    ///
    /// Only the owner's thread may call this, and only before
    /// [`retire`](Self::retire).
    #[inline]
    pub(crate) unsafe fn owner_acquire(&self) {
        // SAFETY: only the owner's thread touches `owned`, and only before
        // it retires (the caller's contract), so this access races nothing.
        self.owned.with_mut(|owned| unsafe {
            *owned = (*owned)
                .checked_add(1)
                .unwrap_or_else(|| std::process::abort());
        });
    }

    /// The owner counts one reference fewer.
    ///
    /// # Safety
    ///
    /// As [`owner_acquire`](Self::owner_acquire).
    #[inline]
    pub(crate) unsafe fn owner_release(&self) {
        // SAFETY: as in `owner_acquire`.
        self.owned.with_mut(|owned| unsafe {
            *owned = (*owned)
                .checked_sub(1)
                .unwrap_or_else(|| std::process::abort());
        });
    }

    /// Another thread counts one more reference, made from one it holds.
    pub(crate) fn acquire(&self) {
        // Relaxed, as `Arc::clone`: the caller's own reference keeps the hub
        // alive, and no data is published through the count.
        let before = self.count.fetch_add(1, Ordering::Relaxed);
        if before > MAX_COUNT {
            std::process::abort();
        }
    }

    /// Another thread drops a reference. Returns whether it was the last:
    /// then the caller frees the hub.
    #[must_use]
    pub(crate) fn release(&self) -> bool {
        // AcqRel. Release: this thread's uses of the hub happen before the
        // free, wherever it runs. Acquire, for the thread that leaves 0: it
        // reads the end of the release sequence of every earlier decrement
        // and of the owner's retirement (`retire`), so their uses happen
        // before its free.
        self.count.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// The owner retires: its count and its stake move onto `count`.
    /// Returns whether no reference is left: then the caller frees the hub.
    ///
    /// # Safety
    ///
    /// Only the owner's thread may call this, once; it may not call
    /// [`owner_acquire`](Self::owner_acquire) or
    /// [`owner_release`](Self::owner_release) after.
    #[must_use]
    pub(crate) unsafe fn retire(&self) -> bool {
        // SAFETY: the owner's thread, before it retires (the caller's
        // contract): the last access to `owned`.
        let owned = self.owned.with(|owned| unsafe { *owned });
        let delta = (owned as usize).wrapping_sub(OWNER_STAKE);
        // AcqRel, as in `release`: Release publishes the owner's uses (its
        // plain counts included) to whoever frees; Acquire pairs with the
        // other threads' decrements when the owner is the one to free.
        let before = self.count.fetch_add(delta, Ordering::AcqRel);
        before.wrapping_add(delta) == 0
    }
}

/// One worker's hub, or a handle's own: a pool and its biased count.
pub(crate) struct Hub {
    pub(crate) shared: Arc<Shared>,
    count: BiasedCount,
}

impl Hub {
    /// A reference to the pool that owns `shared`: this worker's hub if it
    /// serves that pool, else a new hub with no owner.
    pub(crate) fn for_pool(shared: &Arc<Shared>) -> HubRef {
        owned_ref_for(shared).unwrap_or_else(|| {
            let hub = Box::new(Hub {
                shared: Arc::clone(shared),
                count: BiasedCount::unowned(),
            });
            HubRef(NonNull::from(Box::leak(hub)))
        })
    }
}

/// A counted reference to a hub: what a `Handle` holds.
pub(crate) struct HubRef(NonNull<Hub>);

// SAFETY: a `HubRef` only reads the hub's `shared` (an `Arc`, which is
// `Send` and `Sync`) and updates its count: the atomic `count` from any
// thread, the plain `owned` only on the owner's thread before it retires
// (checked against that thread's `OWNED` in `Clone` and `Drop`). So a
// reference may move to, and be shared with, any thread.
unsafe impl Send for HubRef {}
// SAFETY: as for `Send`; `&HubRef` gives only `shared`.
unsafe impl Sync for HubRef {}

impl HubRef {
    #[inline]
    fn hub(&self) -> &Hub {
        // SAFETY: this reference is counted, so the hub is not freed before
        // it is dropped (the module docs).
        unsafe { self.0.as_ref() }
    }

    /// The pool's state.
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.hub().shared
    }
}

impl Clone for HubRef {
    /// This worker's hub if it serves the same pool, else this hub again.
    fn clone(&self) -> HubRef {
        owned_ref_for(self.shared()).unwrap_or_else(|| {
            self.hub().count.acquire();
            HubRef(self.0)
        })
    }
}

impl Drop for HubRef {
    #[inline]
    fn drop(&mut self) {
        if owned() == Some(self.0) {
            // SAFETY: this thread owns the hub, and has not retired (`owned`).
            unsafe { self.hub().count.owner_release() };
        } else if self.hub().count.release() {
            // SAFETY: the last reference is gone and the owner (if any) has
            // retired, so nobody else can reach the hub; it came from
            // `Box::leak` (`Hub::for_pool` or `OwnerStake::new`).
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }
}

/// A worker's ownership of its hub, kept in the worker's thread-local
/// record. It is neither `Send` nor `Sync`, so it never leaves the thread
/// that made it: whoever reaches it is the owner. Dropping it retires.
pub(crate) struct OwnerStake(NonNull<Hub>);

impl OwnerStake {
    /// A hub owned by the calling thread, for the pool that owns `shared`.
    pub(crate) fn new(shared: Arc<Shared>) -> OwnerStake {
        let hub = Box::new(Hub {
            shared,
            count: BiasedCount::owned(),
        });
        let hub = NonNull::from(Box::leak(hub));
        // A thread serves one pool, once: it owns no other hub.
        OWNED.with(|owned| {
            debug_assert!(owned.get().is_null(), "a thread owns one hub");
            owned.set(hub.as_ptr());
        });
        OwnerStake(hub)
    }

    /// The pool's state.
    #[inline]
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        // SAFETY: the stake keeps `count` above 0 until it is dropped, so
        // the hub outlives `self`.
        &unsafe { self.0.as_ref() }.shared
    }
}

impl Drop for OwnerStake {
    fn drop(&mut self) {
        // SAFETY: the stake keeps the hub alive until this drop.
        let hub = unsafe { self.0.as_ref() };
        // From here on this thread's drops of the hub's references take the
        // atomic path: a drop that the hub's own free causes included. (Under
        // loom the cell may already be torn down; then nothing reads it.)
        let _ = OWNED.try_with(|owned| owned.set(ptr::null_mut()));
        // SAFETY: the owner's thread (see the type docs), once; it no longer
        // counts as the owner (just above).
        if unsafe { hub.count.retire() } {
            // SAFETY: no reference is left and the owner has retired, so
            // nobody else can reach the hub; it came from `Box::leak` in
            // `OwnerStake::new`.
            drop(unsafe { Box::from_raw(self.0.as_ptr()) });
        }
    }
}
