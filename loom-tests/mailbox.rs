//! [`Mailbox`], shared by the loom models (`mod.rs` here) and the shuttle
//! tests (`shuttle-tests/mod.rs` includes this file): both are written
//! against the shim, so the same code runs under either checker.

use crate::sync::{self, Condvar, Mutex};

/// A one-slot mailbox built on the shim's `Mutex` and `Condvar` (loom's or
/// shuttle's, whichever checker is compiled in), independent of every
/// wake-up inside the pool: models and schedule tests use it to hand a value
/// between a job and a test thread, so that a lost wake-up in the pool shows
/// up as the checker's deadlock rather than being rescued by some other
/// notification.
pub(super) struct Mailbox<T> {
    slot: Mutex<Option<T>>,
    filled: Condvar,
}

impl<T> Mailbox<T> {
    pub(super) fn new() -> Mailbox<T> {
        Mailbox {
            slot: Mutex::new(None),
            filled: Condvar::new(),
        }
    }

    /// Fills the slot and wakes the taker. Each mailbox is filled once.
    pub(super) fn put(&self, value: T) {
        let mut slot = sync::lock(&self.slot);
        assert!(slot.is_none(), "test bug: mailbox filled twice");
        *slot = Some(value);
        drop(slot);
        self.filled.notify_one();
    }

    /// Blocks until the slot is filled, then empties it.
    pub(super) fn take(&self) -> T {
        let mut slot = sync::lock(&self.slot);
        loop {
            if let Some(value) = slot.take() {
                return value;
            }
            slot = sync::wait(&self.filled, slot);
        }
    }
}
