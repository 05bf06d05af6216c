//! Jobs: a type-erased task, run at most once, with user panics caught at
//! the job boundary and nowhere else.
//!
//! A job is either an `execute`d closure ([`Execute`]) or a `spawn`ed one
//! whose result goes to a [`JoinHandle`](crate::JoinHandle) ([`Spawn`]), or
//! one of those started in a scope (`scope.rs`). The queue holds them
//! type-erased as [`Job`]; the public [`Job`] handed back by `shutdown_now`
//! is the same value.
//!
//! A `Job` is two words: the task's operations, and the task itself if it
//! fits in one word (a closure that captures nothing, a reference, a small
//! value or one `Arc`), else a pointer to it in a box. A job that fits costs
//! no allocation, which is most of what a small job spawned from a worker
//! would otherwise cost beyond its deque's lock. Boxing happens before any
//! queue lock is taken ([`TypedJob`]), so that a refused task can be moved
//! back out by type.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};
use std::panic::{self, AssertUnwindSafe};

use crate::join::Promise;

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

/// How a job ended when a pool worker ran it.
pub(crate) enum Outcome {
    /// Returned normally.
    Completed,
    /// Panicked; the payload is for the pool's panic handler.
    Panicked(Payload),
    /// Panicked; the payload already went to the job's `JoinHandle` (or its
    /// scope).
    PanickedIntoHandle,
}

/// What the pool needs of a job, whatever its kind.
///
/// Not `'static`: a scoped job borrows from its scope, and `scope.rs` erases
/// that lifetime (through [`Job::new_unchecked`]) before it is queued.
pub(crate) trait Task: Send + Sized {
    /// Runs the job on a pool worker. May unwind; [`Job::run_in_pool`]
    /// catches it.
    fn run_in_pool(task: Moved<Self>) -> Outcome;

    /// Runs the job on the thread that holds it after `shutdown_now`.
    fn run_here(task: Moved<Self>);

    /// Records that `shutdown_now` handed this job back instead of running it
    /// (so a pool worker joining it can stop waiting).
    fn mark_handed_back(&mut self) {}
}

/// An `execute`d closure.
pub(crate) struct Execute<F>(pub(crate) F);

impl<F> Task for Execute<F>
where
    F: FnOnce() + Send + 'static,
{
    fn run_in_pool(task: Moved<Self>) -> Outcome {
        (task.into_inner().0)();
        Outcome::Completed
    }

    fn run_here(task: Moved<Self>) {
        (task.into_inner().0)();
    }
}

/// A task moved out of its [`Job`] to be run.
///
/// Not a plain `T` argument: Stacked Borrows protects every reference inside
/// a function's arguments until the function returns, and a scoped task
/// ends its scope (by dropping its `Member`) before its `run_in_pool`
/// returns, after which the scope's owner may use what the task borrowed
/// again. Inside a `MaybeUninit` nothing is retagged; [`into_inner`]
/// moves the task into a local, which is not protected. (With a plain
/// argument, Miri reports the scope's owner writing what a finished job
/// borrowed as undefined behaviour: `tests/scope.rs`,
/// `several_threads_can_run_scopes_on_one_pool_at_once`.)
///
/// [`into_inner`]: Moved::into_inner
pub(crate) struct Moved<T>(MaybeUninit<T>);

impl<T> Moved<T> {
    /// The task, to run or to destructure.
    pub(crate) fn into_inner(self) -> T {
        let moved = ManuallyDrop::new(self);
        // SAFETY: a `Moved` always holds a live `T` (made by `take`, the
        // only constructor), which is read out once: `moved` is not dropped.
        unsafe { moved.0.assume_init_read() }
    }
}

impl<T> Drop for Moved<T> {
    fn drop(&mut self) {
        // SAFETY: a `Moved` always holds a live `T`, and `into_inner` (the
        // only other way out) does not drop it.
        unsafe { self.0.assume_init_drop() }
    }
}

/// A `spawn`ed closure and the promise its `JoinHandle` waits on.
pub(crate) struct Spawn<F, T> {
    pub(crate) f: F,
    pub(crate) promise: Promise<T>,
}

impl<F, T> Spawn<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    /// Runs the closure and fulfils the promise; reports whether it panicked.
    pub(crate) fn run_and_fulfil(self) -> bool {
        let Spawn { f, promise } = self;
        promise.started();
        match panic::catch_unwind(AssertUnwindSafe(f)) {
            Ok(value) => {
                promise.fulfil(Ok(value));
                false
            }
            Err(payload) => {
                promise.fulfil(Err(crate::JoinError::panic(payload)));
                true
            }
        }
    }
}

impl<F, T> Task for Spawn<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn run_in_pool(task: Moved<Self>) -> Outcome {
        if task.into_inner().run_and_fulfil() {
            Outcome::PanickedIntoHandle
        } else {
            Outcome::Completed
        }
    }

    fn run_here(task: Moved<Self>) {
        task.into_inner().run_and_fulfil();
    }

    fn mark_handed_back(&mut self) {
        self.promise.mark_handed_back();
    }
}

/// A job that was accepted but never started, handed back by
/// [`ThreadPool::shutdown_now`](crate::ThreadPool::shutdown_now).
///
/// [`run`](Job::run) runs it on the calling thread. Dropping it instead
/// discards it: a job from `spawn` then resolves its
/// [`JoinHandle`](crate::JoinHandle) to a cancelled
/// [`JoinError`](crate::JoinError).
///
/// # Examples
///
/// ```
/// let pool = weft::ThreadPool::new(1);
/// let answer = pool.spawn(|| 42);
/// for i in 0..10 {
///     pool.execute(move || println!("job {i}"));
/// }
/// for job in pool.shutdown_now() {
///     job.run(); // whatever had not started runs here instead
/// }
/// // `answer` either ran in the pool or just now, above.
/// assert_eq!(answer.join().unwrap(), 42);
/// ```
pub struct Job {
    /// The task: the value itself if it [fits](fits_in_word), else the
    /// pointer from `Box::into_raw`. Which one, and the task's type, only
    /// `vtable` knows.
    word: Word,
    /// The task's operations, for the type it was made from.
    vtable: &'static VTable,
    /// `Job` is `Send` (below) and, like the `Box<dyn FnOnce() + Send>` a
    /// job would otherwise be, neither `Sync` nor `UnwindSafe`.
    _task: PhantomData<Box<dyn FnOnce() + Send>>,
}

// Two words, as a `Box<dyn Task>` would be: a million queued jobs cost no
// more than that (the memory row of the benchmarks).
const _: () = assert!(mem::size_of::<Job>() == 2 * mem::size_of::<usize>());

// SAFETY: a `Job` owns its task, which is `Send` (`Task: Send`), and gives
// no shared access to it: every operation on the task takes the `Job` by
// value or by `&mut`.
unsafe impl Send for Job {}

/// A job's storage: one pointer's worth of bytes, kept as `MaybeUninit` so
/// that a task stored in it keeps its padding and its pointers' provenance
/// when the job is moved.
type Word = MaybeUninit<*mut ()>;

/// Whether a task of type `T` is stored in the job's own word rather than
/// boxed: a closure capturing nothing, or a reference, a small integer or
/// one `Arc`. A job that fits costs no allocation.
const fn fits_in_word<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<Word>() && mem::align_of::<T>() <= mem::align_of::<Word>()
}

/// The operations of one task type `T` on a [`Job`]'s word. Each is
/// `unsafe` with the same contract: the word holds a live `T`, stored by
/// [`store`], and the ones that take it by value consume that `T`.
struct VTable {
    run_in_pool: unsafe fn(Word) -> Outcome,
    run_here: unsafe fn(Word),
    mark_handed_back: unsafe fn(&mut Word),
    drop: unsafe fn(Word),
}

/// The [`VTable`] of task type `T`.
struct VTableOf<T>(PhantomData<T>);

impl<T: Task> VTableOf<T> {
    const VTABLE: VTable = VTable {
        run_in_pool: |word| {
            // SAFETY: the contract of `VTable`.
            T::run_in_pool(unsafe { take::<T>(word) })
        },
        run_here: |word| {
            // SAFETY: the contract of `VTable`.
            T::run_here(unsafe { take::<T>(word) })
        },
        mark_handed_back: |word| {
            // SAFETY: the contract of `VTable`.
            unsafe { borrow_mut::<T>(word) }.mark_handed_back()
        },
        drop: |word| {
            // SAFETY: the contract of `VTable`.
            drop(unsafe { take::<T>(word) })
        },
    };
}

/// Stores `task` in a word: in place if it fits, else boxed.
fn store<T>(task: T) -> Word {
    let mut word = Word::uninit();
    if fits_in_word::<T>() {
        // SAFETY: `T` fits in the word's size and alignment (just checked),
        // and the word is ours to write.
        unsafe { word.as_mut_ptr().cast::<T>().write(task) };
    } else {
        word.write(Box::into_raw(Box::new(task)).cast());
    }
    word
}

/// Moves the task back out of a word (and frees its box, if it had one).
///
/// # Safety
///
/// `word` holds a live `T` stored by [`store`], and no copy of it is used
/// afterwards.
unsafe fn take<T>(word: Word) -> Moved<T> {
    let task = if fits_in_word::<T>() {
        // SAFETY: `store` wrote a `T` in place (it fits); the caller gives up
        // the word, so this read is the only owner.
        unsafe { word.as_ptr().cast::<MaybeUninit<T>>().read() }
    } else {
        // SAFETY: `store` wrote the pointer of a `Box<T>` (it did not fit),
        // which nothing has freed, and `MaybeUninit<T>` has `T`'s layout;
        // the caller gives up the word.
        *unsafe { Box::from_raw(word.assume_init().cast::<MaybeUninit<T>>()) }
    };
    Moved(task)
}

/// Borrows the task in a word.
///
/// # Safety
///
/// `word` holds a live `T` stored by [`store`].
unsafe fn borrow_mut<T>(word: &mut Word) -> &mut T {
    if fits_in_word::<T>() {
        // SAFETY: `store` wrote a `T` in place, and `word` is borrowed
        // mutably for as long as the result.
        unsafe { &mut *word.as_mut_ptr().cast::<T>() }
    } else {
        // SAFETY: `store` wrote the pointer of a live `Box<T>`, which the
        // word owns, and the word is borrowed mutably for as long as the
        // result.
        unsafe { &mut *word.assume_init().cast::<T>() }
    }
}

impl Job {
    /// Erases `task`'s type and its lifetime `'a` (a scoped job, see
    /// `scope.rs`).
    ///
    /// # Safety
    ///
    /// The job must be run or dropped before `'a` ends.
    pub(crate) unsafe fn new_unchecked<'a, T: Task + 'a>(task: T) -> Job {
        Job {
            word: store(task),
            vtable: &VTableOf::<T>::VTABLE,
            _task: PhantomData,
        }
    }

    /// Runs the job on the calling thread.
    ///
    /// A job from `execute` runs as a plain call: if it panics, the panic
    /// propagates to the caller. A job from `spawn` delivers its result, or
    /// its panic, to its `JoinHandle`, and this call returns normally.
    ///
    /// # Examples
    ///
    /// ```
    /// let pool = weft::ThreadPool::new(1);
    /// pool.execute(|| println!("may run in the pool or below"));
    /// for job in pool.shutdown_now() {
    ///     job.run();
    /// }
    /// ```
    pub fn run(self) {
        let job = ManuallyDrop::new(self);
        // SAFETY: the word holds the task `vtable` was made for, and it is
        // consumed here: `job` is never dropped.
        unsafe { (job.vtable.run_here)(job.word) }
    }

    /// Runs the job on a pool worker, catching any panic so it cannot unwind
    /// into the worker (including one from dropping what the job captured).
    #[inline]
    pub(crate) fn run_in_pool(self) -> Outcome {
        let job = ManuallyDrop::new(self);
        // SAFETY: as in `run`.
        let run = || unsafe { (job.vtable.run_in_pool)(job.word) };
        match panic::catch_unwind(AssertUnwindSafe(run)) {
            Ok(outcome) => outcome,
            Err(payload) => Outcome::Panicked(payload),
        }
    }

    pub(crate) fn mark_handed_back(&mut self) {
        // SAFETY: the word holds the task `vtable` was made for.
        unsafe { (self.vtable.mark_handed_back)(&mut self.word) }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: the word holds the task `vtable` was made for; `run` and
        // `run_in_pool`, which also consume it, never drop their `Job`.
        unsafe { (self.vtable.drop)(self.word) }
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

/// A job known to hold a `T`, not yet given its table: made before a
/// queue's lock is taken (so a task that needs a box is boxed outside it),
/// and turned back into the `T` if the queue refuses it. One word, so that
/// it travels through the submission path as cheaply as a `Box<T>` would.
pub(crate) struct TypedJob<T> {
    /// The task, stored as in a [`Job`].
    word: Word,
    _task: PhantomData<T>,
}

impl<T: Task + 'static> TypedJob<T> {
    pub(crate) fn new(task: T) -> TypedJob<T> {
        TypedJob {
            word: store(task),
            _task: PhantomData,
        }
    }

    /// The job, its type forgotten.
    pub(crate) fn into_job(self) -> Job {
        let typed = ManuallyDrop::new(self);
        // The word moves into the job, which drops it from now on.
        Job {
            word: typed.word,
            vtable: &VTableOf::<T>::VTABLE,
            _task: PhantomData,
        }
    }
}

impl<T> TypedJob<T> {
    /// The task back, unrun.
    pub(crate) fn into_task(self) -> T {
        let typed = ManuallyDrop::new(self);
        // SAFETY: `TypedJob::new` stored a `T` in the word, and the word is
        // consumed here: `typed` is never dropped.
        unsafe { take::<T>(typed.word) }.into_inner()
    }
}

impl<T> Drop for TypedJob<T> {
    fn drop(&mut self) {
        // SAFETY: `TypedJob::new` stored a `T` in the word; `into_job` and
        // `into_task`, which also consume it, never drop their `TypedJob`.
        drop(unsafe { take::<T>(self.word) });
    }
}

/// Runs a user callback (hook or panic handler), ignoring a panic from it.
///
/// The design promises that a panicking hook or panic handler neither kills a
/// worker nor loses a job, so its panic is swallowed here. Even dropping the
/// panic payload can panic; that is contained too.
pub(crate) fn call_guarded(f: impl FnOnce()) {
    if let Err(payload) = panic::catch_unwind(AssertUnwindSafe(f)) {
        drop_guarded(payload);
    }
}

/// Drops a panic payload whose own destructor might panic.
pub(crate) fn drop_guarded(payload: Payload) {
    // A payload whose `Drop` panics would otherwise unwind into the worker
    // loop. If the second payload panics on drop as well, give up on it.
    if let Err(again) = panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(align(16))]
    struct Aligned16;

    #[test]
    fn a_task_fits_in_the_word_by_size_and_alignment() {
        assert!(fits_in_word::<()>());
        assert!(fits_in_word::<usize>());
        assert!(fits_in_word::<(u32, bool)>());
        assert!(fits_in_word::<&[u8; 64]>());
        assert!(!fits_in_word::<[usize; 2]>());
        assert!(!fits_in_word::<Aligned16>(), "zero-sized but over-aligned");
    }

    #[test]
    fn a_task_that_fits_is_stored_in_the_word_itself() {
        let word = store(0x5eed_usize);
        // SAFETY: `usize` fits, so the word holds the value itself.
        assert_eq!(unsafe { word.as_ptr().cast::<usize>().read() }, 0x5eed);
        // SAFETY: the word holds the `usize` stored above, used no more.
        assert_eq!(unsafe { take::<usize>(word) }.into_inner(), 0x5eed);
    }

    #[test]
    fn a_task_that_does_not_fit_is_boxed() {
        let word = store([7_usize, 11]);
        // SAFETY: `[usize; 2]` does not fit, so the word holds a pointer to
        // its live box.
        assert_eq!(unsafe { *word.assume_init().cast::<[usize; 2]>() }, [7, 11]);
        // SAFETY: the word holds the array stored above, used no more (the
        // box is freed here).
        assert_eq!(unsafe { take::<[usize; 2]>(word) }.into_inner(), [7, 11]);
    }
}
