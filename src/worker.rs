//! The worker loop and the thread-local record of which pool a thread serves.

use std::cell::RefCell;

use crate::job;
use crate::queue::Shared;
use crate::sync::{thread_local, Arc};

thread_local! {
    // loom's `thread_local!` does not accept a `const { }` initialiser.
    #[allow(clippy::missing_const_for_thread_local)]
    /// Set for the whole life of a worker thread: the pool it serves and its
    /// index there. Read by `Handle::current`, the re-entrancy checks, and
    /// submissions (a worker's own jobs go to its local deque).
    static CURRENT: RefCell<Option<(Arc<Shared>, usize)>> = RefCell::new(None);
}

/// The body of worker thread `index`.
pub(crate) fn run(shared: Arc<Shared>, index: usize) {
    CURRENT.with(|current| *current.borrow_mut() = Some((Arc::clone(&shared), index)));
    if let Some(hook) = &shared.config.on_thread_start {
        job::call_guarded(|| hook(index));
    }
    let mut finished = None;
    while let Some(job) = shared.next_job(index, finished) {
        finished = Some(shared.run_only(job));
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
        .try_with(|current| current.borrow().as_ref().map(|(pool, _)| Arc::clone(pool)))
        .ok()
        .flatten()
}

/// This thread's worker index, if it is a worker of the pool that owns
/// `shared`.
pub(crate) fn index_in(shared: &Shared) -> Option<usize> {
    CURRENT
        .try_with(|current| match current.borrow().as_ref() {
            Some((pool, index)) if std::ptr::eq(&**pool, shared) => Some(*index),
            _ => None,
        })
        .ok()
        .flatten()
}

/// Whether this code runs on a worker of the pool that owns `shared`.
pub(crate) fn is_worker_of(shared: &Shared) -> bool {
    index_in(shared).is_some()
}
