//! The worker loop and the thread-local record of which pool a thread serves.

use std::cell::{Cell, OnceCell, RefCell};
use std::ptr;
use std::rc::Rc;

use crate::hub::{self, OwnerStake};
use crate::job;
use crate::local::Local;
use crate::queue::{Finished, Shared};
use crate::sync::{self, thread_local, Arc};

thread_local! {
    // loom's `thread_local!` does not accept a `const { }` initialiser.
    #[allow(clippy::missing_const_for_thread_local)]
    /// Set for the whole life of a worker thread: the pool it serves, its
    /// index there and its own deque. Read by `Handle::current`, the
    /// re-entrancy checks, and submissions (a worker's own jobs go to its
    /// own deque).
    static CURRENT: RefCell<Option<Worker>> = RefCell::new(None);
}

sync::cell_thread_local! {
    /// The worker's own deque, once it has one: a copy of what its record
    /// holds, for [`with_own_local`]'s fast path (one load, where the record
    /// takes a checked borrow). Read only while this thread owns its hub,
    /// that is while its record, which holds the deque, is alive (the
    /// record's stake is dropped before its deque). A thread is a worker
    /// once, so this never names another record's deque.
    static OWN_LOCAL: *const Local = ptr::null();
}

/// What [`CURRENT`] holds on a worker thread.
struct Worker {
    /// The worker's hub, which also holds the pool it serves. Dropped with
    /// the record, when the worker exits: that retires it (`hub.rs`).
    /// Declared first, so dropped first: the thread stops owning its hub,
    /// and so stops reading `OWN_LOCAL`, before the record lets go of its
    /// deque.
    stake: OwnerStake,
    index: usize,
    /// The worker's own deque, got from the pool on its first push
    /// ([`Shared::local`]): until then, a worker about to sleep has no deque
    /// of this worker's to look into. Shared with the worker loop, which
    /// pops from it.
    local: Rc<OnceCell<Arc<Local>>>,
    /// The jobs this worker finished since it last recorded them under the
    /// pool lock, and whether it is counted running. The worker loop keeps
    /// its own copy for `next_job` and lends it here to each job it runs; a
    /// job that helps while it joins adds the jobs it runs from the own
    /// deque (`help_from_own_deque`), and the loop reads it back after.
    finished: Rc<Cell<Finished>>,
}

/// The body of worker thread `index`.
pub(crate) fn run(shared: Arc<Shared>, index: usize) {
    let local = Rc::new(OnceCell::new());
    let finished = Rc::new(Cell::new(Finished::default()));
    CURRENT.with(|current| {
        *current.borrow_mut() = Some(Worker {
            stake: OwnerStake::new(Arc::clone(&shared)),
            index,
            local: Rc::clone(&local),
            finished: Rc::clone(&finished),
        });
    });
    if let Some(hook) = &shared.config.on_thread_start {
        job::call_guarded(|| hook(index));
    }
    let mut tally = Finished::default();
    while let Some(job) = shared.next_job(index, &local, &mut tally) {
        // Lent to the job while it runs: if it joins, it counts the jobs it
        // helps with here (`help_from_own_deque`).
        finished.set(tally);
        let panicked = shared.run_only(job);
        // Read back only after the job has run. Read right after the store,
        // it stalled on every job (a 16-byte load of what two 8-byte stores
        // had just written, which the CPU cannot forward): a profile of W5
        // put an eighth of the samples on that load.
        tally = finished.get();
        tally.add(panicked, local.get().map(|local| &**local));
    }
    if let Some(hook) = &shared.config.on_thread_stop {
        job::call_guarded(|| hook(index));
    }
    // Release the pool before the thread's locals are torn down, so the last
    // reference to it is never dropped from a TLS destructor. The record is
    // cleared first and dropped after, so that whatever the hub's free drops
    // may look the record up again. (The stake's drop stops this thread
    // counting as its hub's owner before it retires: `hub.rs`.)
    let record = CURRENT.with(|current| current.borrow_mut().take());
    drop(record);
}

fn count_finished(finished: &Cell<Finished>, panicked: bool, own: Option<&Local>) {
    let mut tally = finished.get();
    tally.add(panicked, own);
    finished.set(tally);
}

/// For a job that joins on a worker of the pool that owns `shared` and
/// helps meanwhile: runs the newest job of this worker's own
/// deque without the pool lock, if the worker loop could have taken it so
/// ([`Shared::pop_own_unlocked`]), and counts it in the worker's tally,
/// which the worker records when it next locks. Returns whether it ran one.
///
/// The worker is counted running while it helps (the waiting job holds it),
/// so the pool is not idle before the job it runs here is recorded. A
/// thread-start hook that joins is not counted running, so it finds nothing
/// here and helps through the pool lock.
pub(crate) fn help_from_own_deque(shared: &Shared) -> bool {
    let taken = CURRENT
        .try_with(|current| {
            let current = current.borrow();
            let worker = current
                .as_ref()
                .filter(|worker| std::ptr::eq(&**worker.stake.shared(), shared))?;
            let job = shared.pop_own_unlocked(worker.local.get()?, &worker.finished.get())?;
            Some((job, Rc::clone(&worker.finished), Rc::clone(&worker.local)))
        })
        .ok()
        .flatten();
    let Some((job, finished, local)) = taken else {
        return false;
    };
    // The record is not borrowed while the job runs: it may look it up.
    let panicked = shared.run_only(job);
    count_finished(&finished, panicked, local.get().map(|local| &**local));
    true
}

/// This thread's worker index, if it is a worker of the pool that owns
/// `shared`.
pub(crate) fn index_in(shared: &Shared) -> Option<usize> {
    CURRENT
        .try_with(|current| match current.borrow().as_ref() {
            Some(worker) if std::ptr::eq(&**worker.stake.shared(), shared) => Some(worker.index),
            _ => None,
        })
        .ok()
        .flatten()
}

/// Calls `f` with this thread's own deque if it is a worker of the pool that
/// owns `shared` (getting the deque from the pool on the worker's first
/// push), else with `None`.
#[inline]
pub(crate) fn with_own_local<R>(shared: &Shared, f: impl FnOnce(Option<&Local>) -> R) -> R {
    // A thread owns the hub of the pool it serves from the moment its record
    // is made until the record's drop begins (`Worker::stake`): within that
    // span, the two answer alike, and outside it the record is gone too.
    if !hub::owner_serves(shared) {
        return f(None);
    }
    let local = OWN_LOCAL.try_with(Cell::get).unwrap_or(ptr::null());
    // SAFETY: this thread owns its hub (just checked), so its record is
    // alive and holds the deque `OWN_LOCAL` names, if any (there); the
    // record is dropped only when the worker exits, not during a push.
    match unsafe { local.as_ref() } {
        Some(local) => f(Some(local)),
        None => with_new_own_local(shared, f),
    }
}

/// [`with_own_local`] on a worker of the pool that owns `shared` that has
/// no own deque yet: gets it from the pool, through the worker's record.
#[cold]
fn with_new_own_local<R>(shared: &Shared, f: impl FnOnce(Option<&Local>) -> R) -> R {
    let mut f = Some(f);
    let mut call = |own: Option<&Local>| (f.take().expect("called once"))(own);
    match CURRENT.try_with(|current| match current.borrow().as_ref() {
        Some(worker) if std::ptr::eq(&**worker.stake.shared(), shared) => {
            let local = worker.local.get_or_init(|| shared.local(worker.index));
            let _ = OWN_LOCAL.try_with(|own| own.set(&**local));
            Some(call(Some(local)))
        }
        _ => None,
    }) {
        Ok(Some(result)) => result,
        // Its thread-locals are being torn down (under loom, whose cells
        // may go first): then it serves no pool any more.
        Ok(None) | Err(_) => call(None),
    }
}

/// Whether this code runs on a worker of the pool that owns `shared`.
pub(crate) fn is_worker_of(shared: &Shared) -> bool {
    index_in(shared).is_some()
}
