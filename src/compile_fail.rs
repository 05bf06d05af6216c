//! Compile-fail tests of the soundness rules, as doctests.
//!
//! Each rule below is an item whose doc holds a pair of examples: a
//! `compile_fail` block pinned to the error code the compiler gives when the
//! rule holds, and beside it a *twin*, the same code with the one change
//! that makes it sound, which must compile and run. The code pins the reason
//! the first block fails; the twin shows the block is otherwise well-formed.
//! If a bound that keeps the API sound is ever loosened, a `compile_fail`
//! block starts compiling and the doctest run fails.
//!
//! | rule | protects | mirrors |
//! |------|----------|---------|
//! | [`ScopedJobBorrowsOutliveTheScope`] | a scoped job never reads freed memory | `F: 'scope` of `std::thread::Scope::spawn` |
//! | [`ScopedJoinHandleStaysInItsScope`] | a handle (and the result it may own, which may borrow) dies with the scope | `ScopedJoinHandle<'scope, T>` of `std::thread::scope` |
//! | [`ScopeStaysInItsScope`] | no job is submitted to a scope that is no longer waited for | the `for<'scope>` closure of `std::thread::scope` |
//! | [`ScopedJobsDoNotAliasMutableBorrows`] | no data race between jobs, or between a job and the scope's body | the borrow rules, as for `std::thread::scope` |
//! | [`JobsAreSend`] | a job never moves a `!Send` value to a worker | `F: Send` of `std::thread::spawn` |
//! | [`ResultsAreSend`] | a result never moves a `!Send` value back to the joiner | `T: Send` of `std::thread::spawn` |
//! | [`JoinHandleIsSendOnlyIfItsResultIs`] | a handle cannot carry a `!Send` result across threads | `tokio::task::JoinHandle` (std's is `Send` for every `T`, as its `spawn` already demands `T: Send`) |
//! | [`UnscopedJobsAreStatic`] | an unscoped job, which nobody waits for, borrows nothing | `F: 'static` of `std::thread::spawn` |
//! | [`ThreadPoolIsNotClone`] | one owner: `shutdown_now`, which hands queued jobs back, takes the only pool by value, so it never runs while a scope borrows the pool | `std::thread::JoinHandle`, a uniquely owned permission |
//!
//! One block carries no error code: returning a [`ScopedJoinHandle`] from
//! the scope's closure fails with "lifetime may not live long enough",
//! which has none. Its twin differs only in where the handle is joined.
//!
//! The module is compiled only for doctests.
//!
//! [`ScopedJoinHandle`]: crate::ScopedJoinHandle

/// A scoped job may borrow only what outlives the scope.
///
/// A local of the scope's closure is gone when the closure returns, while the
/// job may still be queued:
///
/// ```compile_fail,E0597
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let words = vec!["thread", "pool"];
///     let words = &words;
///     s.spawn(move || words.len());
/// });
/// ```
///
/// Sound twin: the local is declared before the scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// pool.scope(|s| {
///     let words = &words;
///     s.spawn(move || words.len());
/// });
/// ```
///
/// The same for `execute`:
///
/// ```compile_fail,E0597
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let words = vec!["thread", "pool"];
///     let words = &words;
///     s.execute(move || assert_eq!(words.len(), 2));
/// });
/// ```
///
/// Sound twin:
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// pool.scope(|s| {
///     let words = &words;
///     s.execute(move || assert_eq!(words.len(), 2));
/// });
/// ```
///
/// A borrowed value cannot be dropped (here, replaced) before the scope ends,
/// even after the job that borrows it was started:
///
/// ```compile_fail,E0506
/// let pool = weft::ThreadPool::new(2);
/// let mut words = vec!["thread", "pool"];
/// pool.scope(|s| {
///     s.execute(|| assert_eq!(words.len(), 2));
///     words = Vec::new();
/// });
/// ```
///
/// Sound twin: the value is replaced after the scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let mut words = vec!["thread", "pool"];
/// pool.scope(|s| {
///     s.execute(|| assert_eq!(words.len(), 2));
/// });
/// words = Vec::new();
/// assert!(words.is_empty());
/// ```
struct ScopedJobBorrowsOutliveTheScope;

/// A [`ScopedJoinHandle`](crate::ScopedJoinHandle) cannot leave its scope.
///
/// Stored in a collection that outlives the scope:
///
/// ```compile_fail,E0521
/// let pool = weft::ThreadPool::new(2);
/// let mut handles = Vec::new();
/// pool.scope(|s| {
///     handles.push(s.spawn(|| 6 * 7));
/// });
/// ```
///
/// Sound twin: the collection is declared inside the scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let mut handles = Vec::new();
///     handles.push(s.spawn(|| 6 * 7));
/// });
/// ```
///
/// Returned from the scope's closure. The error, "lifetime may not live long
/// enough", has no code, so this block is the one left unpinned:
///
/// ```compile_fail
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.scope(|s| s.spawn(|| 6 * 7));
/// assert_eq!(answer.join().unwrap(), 42);
/// ```
///
/// Sound twin: the handle is joined inside the scope and its result returned.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.scope(|s| s.spawn(|| 6 * 7).join());
/// assert_eq!(answer.unwrap(), 42);
/// ```
///
/// Moved into a job of an enclosing scope, which may outlive the inner one:
///
/// ```compile_fail,E0521
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|outer| {
///     pool.scope(|inner| {
///         let answer = inner.spawn(|| 6 * 7);
///         outer.execute(move || assert_eq!(answer.join().unwrap(), 42));
///     });
/// });
/// ```
///
/// Sound twin: the handle goes to a job of its own scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|outer| {
///     pool.scope(|inner| {
///         let answer = inner.spawn(|| 6 * 7);
///         inner.execute(move || assert_eq!(answer.join().unwrap(), 42));
///     });
/// });
/// ```
struct ScopedJoinHandleStaysInItsScope;

/// A [`Scope`](crate::Scope) cannot leave the closure it was given to: once
/// `scope` has seen its jobs finish, nothing may start another.
///
/// ```compile_fail,E0521
/// let pool = weft::ThreadPool::new(2);
/// let mut saved = None;
/// pool.scope(|s| {
///     saved = Some(s);
/// });
/// ```
///
/// Sound twin: the slot is declared inside the scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let mut saved = None;
///     saved = Some(s);
///     assert!(saved.is_some());
/// });
/// ```
struct ScopeStaysInItsScope;

/// Two jobs cannot both borrow the same data mutably, nor can the scope's
/// body use data that a running job borrows mutably.
///
/// ```compile_fail,E0499
/// let pool = weft::ThreadPool::new(2);
/// let (mut left, mut right) = (0, 0);
/// pool.scope(|s| {
///     s.execute(|| left += 1);
///     s.execute(|| left += 1);
/// });
/// ```
///
/// Sound twin: each job has its own counter.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let (mut left, mut right) = (0, 0);
/// pool.scope(|s| {
///     s.execute(|| left += 1);
///     s.execute(|| right += 1);
/// });
/// assert_eq!((left, right), (1, 1));
/// ```
///
/// The scope's body reading what a job writes:
///
/// ```compile_fail,E0503
/// let pool = weft::ThreadPool::new(2);
/// let mut count = 0;
/// pool.scope(|s| {
///     s.execute(|| count += 1);
///     assert!(count <= 1);
/// });
/// ```
///
/// Sound twin: it reads after the scope.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let mut count = 0;
/// pool.scope(|s| {
///     s.execute(|| count += 1);
/// });
/// assert!(count <= 1);
/// ```
struct ScopedJobsDoNotAliasMutableBorrows;

/// Every way of submitting a job rejects a closure that is not `Send`.
///
/// `Scope::execute`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.scope(|s| s.execute(move || assert_eq!(*shared, 7)));
/// ```
///
/// Sound twin: an `Arc` instead of the `Rc`.
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.scope(|s| s.execute(move || assert_eq!(*shared, 7)));
/// ```
///
/// `Scope::spawn`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.scope(|s| s.spawn(move || *shared).join().unwrap());
/// ```
///
/// Sound twin:
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.scope(|s| s.spawn(move || *shared).join().unwrap());
/// ```
///
/// `ThreadPool::execute`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.execute(move || assert_eq!(*shared, 7));
/// ```
///
/// Sound twin:
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.execute(move || assert_eq!(*shared, 7));
/// ```
///
/// `ThreadPool::spawn`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.spawn(move || *shared).join().unwrap();
/// ```
///
/// Sound twin:
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.spawn(move || *shared).join().unwrap();
/// ```
///
/// `Handle::execute`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.handle().execute(move || assert_eq!(*shared, 7)).unwrap();
/// ```
///
/// Sound twin:
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let shared = Rc::new(7);
/// pool.handle().execute(move || assert_eq!(*shared, 7)).unwrap();
/// ```
///
/// A scoped job that only borrows a `!Sync` value is rejected too: the
/// borrow is shared with the scope's thread.
///
/// ```compile_fail,E0277
/// use std::cell::Cell;
///
/// let pool = weft::ThreadPool::new(2);
/// let count = Cell::new(0);
/// pool.scope(|s| s.execute(|| count.set(1)));
/// ```
///
/// Sound twin: an atomic instead of the `Cell`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// let pool = weft::ThreadPool::new(2);
/// let count = AtomicUsize::new(0);
/// pool.scope(|s| s.execute(|| count.store(1, Ordering::Relaxed)));
/// assert_eq!(count.into_inner(), 1);
/// ```
struct JobsAreSend;

/// A spawned job's result must be `Send`: it is made on a worker and taken
/// on the joiner's thread.
///
/// `ThreadPool::spawn`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.spawn(|| Rc::new(42)).join().unwrap();
/// assert_eq!(*answer, 42);
/// ```
///
/// Sound twin: an `Arc` instead of the `Rc`.
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.spawn(|| Rc::new(42)).join().unwrap();
/// assert_eq!(*answer, 42);
/// ```
///
/// `Scope::spawn`:
///
/// ```compile_fail,E0277
/// use std::rc::Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.scope(|s| s.spawn(|| Rc::new(42)).join().unwrap());
/// assert_eq!(*answer, 42);
/// ```
///
/// Sound twin:
///
/// ```
/// use std::sync::Arc as Rc;
///
/// let pool = weft::ThreadPool::new(2);
/// let answer = pool.scope(|s| s.spawn(|| Rc::new(42)).join().unwrap());
/// assert_eq!(*answer, 42);
/// ```
struct ResultsAreSend;

/// `JoinHandle<T>` is `Send` only if `T` is. No `spawn` makes a handle to a
/// `!Send` result, so the type is named directly.
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<weft::JoinHandle<std::rc::Rc<u8>>>();
/// ```
///
/// Sound twin: a `Send` result.
///
/// ```
/// fn assert_send<T: Send>() {}
/// assert_send::<weft::JoinHandle<u8>>();
/// ```
///
/// The same for `ScopedJoinHandle<'scope, T>`:
///
/// ```compile_fail,E0277
/// fn assert_send<T: Send>() {}
/// assert_send::<weft::ScopedJoinHandle<'static, std::rc::Rc<u8>>>();
/// ```
///
/// Sound twin:
///
/// ```
/// fn assert_send<T: Send>() {}
/// assert_send::<weft::ScopedJoinHandle<'static, u8>>();
/// ```
struct JoinHandleIsSendOnlyIfItsResultIs;

/// An unscoped job borrows nothing: nobody waits for it before the caller's
/// locals are gone.
///
/// `ThreadPool::execute`:
///
/// ```compile_fail,E0373
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// pool.execute(|| assert_eq!(words.len(), 2));
/// ```
///
/// Sound twin: the job owns what it uses.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// pool.execute(move || assert_eq!(words.len(), 2));
/// ```
///
/// `ThreadPool::spawn`:
///
/// ```compile_fail,E0373
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// assert_eq!(pool.spawn(|| words.len()).join().unwrap(), 2);
/// ```
///
/// Sound twin:
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let words = vec!["thread", "pool"];
/// assert_eq!(pool.spawn(move || words.len()).join().unwrap(), 2);
/// ```
///
/// A [`ScopedJoinHandle`](crate::ScopedJoinHandle) cannot be smuggled into
/// an unscoped job:
///
/// ```compile_fail,E0521
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let answer = s.spawn(|| 6 * 7);
///     pool.execute(move || assert_eq!(answer.join().unwrap(), 42));
/// });
/// ```
///
/// Sound twin: a scoped job instead.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// pool.scope(|s| {
///     let answer = s.spawn(|| 6 * 7);
///     s.execute(move || assert_eq!(answer.join().unwrap(), 42));
/// });
/// ```
struct UnscopedJobsAreStatic;

/// `ThreadPool` is not `Clone`; [`Handle`](crate::Handle) is the cloneable
/// way to submit from elsewhere.
///
/// ```compile_fail,E0277
/// let pool = weft::ThreadPool::new(2);
/// let copy = Clone::clone(&pool);
/// ```
///
/// Sound twin: a `Handle` is cloned instead.
///
/// ```
/// let pool = weft::ThreadPool::new(2);
/// let copy = Clone::clone(&pool.handle());
/// ```
struct ThreadPoolIsNotClone;
