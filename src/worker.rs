//! The worker loop and the thread-local record of which pool a thread serves.

use std::cell::RefCell;

use crate::job;
use crate::queue::Shared;
use crate::sync::{thread_local, Arc};

thread_local! {
    // loom's `thread_local!` does not accept a `const { }` initialiser.
    #[allow(clippy::missing_const_for_thread_local)]
    /// Set for the whole life of a worker thread: the pool it serves.
    /// Read by `Handle::current` and by the re-entrancy checks.
    static CURRENT: RefCell<Option<Arc<Shared>>> = RefCell::new(None);
}

/// The body of worker thread `index`.
pub(crate) fn run(shared: Arc<Shared>, index: usize) {
    CURRENT.with(|current| *current.borrow_mut() = Some(Arc::clone(&shared)));
    if let Some(hook) = &shared.config.on_thread_start {
        job::call_guarded(|| hook(index));
    }
    while let Some(job) = shared.next_job() {
        shared.run(job);
    }
    if let Some(hook) = &shared.config.on_thread_stop {
        job::call_guarded(|| hook(index));
    }
    // Release the pool before the thread's locals are torn down, so the last
    // reference to it is never dropped from a TLS destructor.
    CURRENT.with(|current| current.borrow_mut().take());
}

/// The pool whose worker is running this code, if any.
pub(crate) fn current_pool() -> Option<Arc<Shared>> {
    CURRENT
        .try_with(|current| current.borrow().clone())
        .ok()
        .flatten()
}

/// Whether this code runs on a worker of the pool that owns `shared`.
pub(crate) fn is_worker_of(shared: &Arc<Shared>) -> bool {
    CURRENT
        .try_with(|current| {
            current
                .borrow()
                .as_ref()
                .is_some_and(|mine| Arc::ptr_eq(mine, shared))
        })
        .unwrap_or(false)
}
