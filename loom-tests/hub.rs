//! The biased reference count of a worker's hub (`src/hub.rs`): the owner
//! counts in a plain integer, every other thread atomically, and the
//! owner's retirement folds its count into the atomic one.
//!
//! The models drive `BiasedCount` itself, the code `HubRef` and
//! `OwnerStake` call, with a payload standing for the hub. "Freeing" the
//! payload writes its `dead` flag, a `RawCell`, and every holder reads that
//! flag just before it gives up its reference. So a free that comes before
//! some holder's last use is either ordered after it in loom's
//! happens-before (the holder's assertion fails) or not ordered with it
//! (loom reports the two accesses as a race). The free is counted, and the
//! model checks that it happened exactly once: no double free, no leak.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Mutex;
use loom::thread;

use super::model;
use crate::hub::BiasedCount;
use crate::sync::{Arc, RawCell};

/// What the count guards in these models.
struct Counted {
    count: BiasedCount,
    /// Set by the free.
    dead: RawCell<bool>,
    /// Frees so far. `Relaxed`: read on the main thread after joining.
    frees: AtomicUsize,
}

impl Counted {
    fn owned() -> Counted {
        Counted {
            count: BiasedCount::owned(),
            dead: RawCell::new(false),
            frees: AtomicUsize::new(0),
        }
    }

    /// A holder's last use of the payload before it lets go.
    fn last_use(&self) {
        // SAFETY: a read; loom reports it if it races the free's write.
        let dead = self.dead.with(|dead| unsafe { *dead });
        assert!(!dead, "a reference was used after the payload was freed");
    }

    fn free(&self) {
        // SAFETY: a write; loom reports it if it races a holder's read.
        self.dead.with_mut(|dead| unsafe { *dead = true });
        self.frees.fetch_add(1, Ordering::Relaxed);
    }

    /// A reference dropped off the owner's thread, or after it retired.
    fn drop_elsewhere(&self) {
        self.last_use();
        if self.count.release() {
            self.free();
        }
    }

    /// A reference dropped by the owner before it retires.
    fn drop_by_owner(&self) {
        self.last_use();
        // SAFETY: called on the model's main thread, the owner, before it
        // retires.
        unsafe { self.count.owner_release() };
    }
}

/// The owner (the main thread) counts three references and hands two of
/// them to another thread. That thread clones one (an atomic count), puts
/// the clone in a slot for the owner and drops the two it was given, so
/// `count` goes below the owner's stake. The owner drops its third
/// reference, and the clone if it finds it in the slot (`owned` goes
/// negative), then retires; a clone it did not find is dropped after the
/// join, once the owner has retired.
///
/// Every interleaving: the payload is freed once, by whichever drop or
/// retirement comes last, and after every holder's last use.
#[test]
fn owner_and_other_threads_free_the_hub_once_after_every_use() {
    model(4, || {
        let counted = Arc::new(Counted::owned());
        let slot = Arc::new(Mutex::new(false));
        // SAFETY: the main thread is the owner, before it retires.
        unsafe {
            for _ in 0..3 {
                counted.count.owner_acquire();
            }
        }

        let other = {
            let counted = Arc::clone(&counted);
            let slot = Arc::clone(&slot);
            // Moves two of the owner's references to this thread.
            thread::spawn(move || {
                counted.count.acquire();
                *slot.lock().unwrap() = true;
                counted.drop_elsewhere();
                counted.drop_elsewhere();
            })
        };

        if std::mem::take(&mut *slot.lock().unwrap()) {
            counted.drop_by_owner();
        }
        counted.drop_by_owner();
        // SAFETY: the owner's thread, once, and no owner count after.
        if unsafe { counted.count.retire() } {
            counted.free();
        }

        other.join().unwrap();
        if std::mem::take(&mut *slot.lock().unwrap()) {
            counted.drop_elsewhere();
        }
        assert_eq!(
            counted.frees.load(Ordering::Relaxed),
            1,
            "the payload must be freed exactly once"
        );
    });
}

/// The owner holds no reference of its own when it retires, and another
/// thread drops the last one, made by the owner, at the same time: the
/// retirement and that drop race to leave `count` at 0, and exactly one of
/// them must free, after the other's last use.
#[test]
fn the_owner_retiring_races_the_last_drop_elsewhere() {
    model(4, || {
        let counted = Arc::new(Counted::owned());
        // SAFETY: the main thread is the owner, before it retires.
        unsafe { counted.count.owner_acquire() };
        let other = {
            let counted = Arc::clone(&counted);
            thread::spawn(move || counted.drop_elsewhere())
        };
        counted.last_use();
        // SAFETY: the owner's thread, once.
        if unsafe { counted.count.retire() } {
            counted.free();
        }
        other.join().unwrap();
        assert_eq!(
            counted.frees.load(Ordering::Relaxed),
            1,
            "the payload must be freed exactly once"
        );
    });
}
