//! A count that model threads can wait on, shared by the models that wait for
//! an event that happens more than once (a stop hook per worker, a run per
//! job), where a one-shot [`Mailbox`](super::Mailbox) would not do.

use crate::sync::{self, Condvar, Mutex};

/// A counter on loom's `Mutex` and `Condvar`, independent of every wake-up
/// inside the pool: a thread waiting for it is woken only by `bump`, so a
/// lost wake-up in the pool cannot be rescued by it, and a count the pool
/// never reaches is a loom deadlock.
pub(super) struct Count {
    value: Mutex<usize>,
    changed: Condvar,
}

impl Count {
    pub(super) fn new() -> Count {
        Count {
            value: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    pub(super) fn bump(&self) {
        *sync::lock(&self.value) += 1;
        self.changed.notify_all();
    }

    /// Blocks until the count is at least `target`.
    pub(super) fn wait_for(&self, target: usize) {
        let mut value = sync::lock(&self.value);
        while *value < target {
            value = sync::wait(&self.changed, value);
        }
    }

    pub(super) fn get(&self) -> usize {
        *sync::lock(&self.value)
    }
}
