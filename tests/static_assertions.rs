//! Compile-time pins of the auto traits and derives the contract promises
//! (`DESIGN.md`: "Types are `Send + Sync` where std's would be").
//!
//! Each assertion fails to compile if the promise is broken, so this file
//! needs no test functions; the one below only makes the run visible.

use std::cell::Cell;
use std::error::Error;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::rc::Rc;

use static_assertions::{assert_impl_all, assert_not_impl_any};
use weft::{
    BuildError, Builder, Handle, Job, JoinError, JoinHandle, Scope, ScopedJoinHandle,
    ShutdownTimedOut, SubmitError, SubmitErrorKind, ThreadPool,
};

// The pool is shared by reference across threads, but has one owner: it is
// not `Clone` (`handle()` is the way to share submission).
assert_impl_all!(ThreadPool: Send, Sync, Debug);
assert_not_impl_any!(ThreadPool: Clone);

assert_impl_all!(Handle: Clone, Send, Sync, Debug);

assert_impl_all!(Builder: Send, Debug, Default);

/// A job type that implements nothing but `FnOnce`.
type PlainJob = fn();
type SendSyncJob = Box<dyn FnOnce() + Send + Sync>;
type SendJob = Box<dyn FnOnce() + Send>;

/// Neither `Debug` nor `Clone`: a `SubmitError` around it still prints.
struct Opaque;

// `SubmitError<F>` is `Send + Sync` whenever `F: Send` (the job inside is
// reachable only by value), and is a `std::error::Error` without requiring
// anything of `F`.
assert_impl_all!(SubmitError<PlainJob>: Send, Sync, Debug, Display, Error);
assert_impl_all!(SubmitError<SendSyncJob>: Send, Sync, Error);
assert_impl_all!(SubmitError<SendJob>: Send, Sync, Error);
assert_not_impl_any!(SubmitError<Rc<()>>: Send, Sync);
assert_impl_all!(SubmitError<Opaque>: Debug, Display, Error);

assert_impl_all!(BuildError: Send, Sync, Debug, Display, Error);

assert_impl_all!(SubmitErrorKind: Copy, Clone, Eq, PartialEq, Hash, Debug, Send, Sync);

// `JoinHandle<T>` is `Send` iff `T: Send`, like std's: the value crosses
// threads inside it. It is `Sync` too (nothing is reachable through `&`
// but `is_finished`), a one-shot owner that is not `Clone`, and a `Future`
// that is `Unpin`, so it can be polled in place without pinning.
assert_impl_all!(JoinHandle<u8>: Send, Sync, Debug, Unpin);
assert_impl_all!(JoinHandle<u8>: Future<Output = Result<u8, JoinError>>);
assert_impl_all!(JoinHandle<Vec<String>>: Send, Sync);
assert_not_impl_any!(JoinHandle<u8>: Clone);
assert_not_impl_any!(JoinHandle<Rc<u8>>: Send, Sync);
assert_impl_all!(JoinHandle<Cell<u8>>: Send, Sync);

// Jobs capture `&Scope` to start more jobs from a worker, so `Scope` must be
// `Sync`; like `std::thread::Scope`, it is `Send + Sync` and not `Clone`.
assert_impl_all!(Scope<'static, 'static>: Send, Sync, Debug);
assert_not_impl_any!(Scope<'static, 'static>: Clone);

// `ScopedJoinHandle<'_, T>` follows `JoinHandle<T>`: `Send + Sync` iff
// `T: Send` (a `Cell` result is fine: it sits behind the slot's mutex), and
// a one-shot owner that is not `Clone`.
assert_impl_all!(ScopedJoinHandle<'static, u8>: Send, Sync, Debug);
assert_impl_all!(ScopedJoinHandle<'static, Cell<u8>>: Send, Sync);
assert_not_impl_any!(ScopedJoinHandle<'static, Rc<u8>>: Send, Sync);
assert_not_impl_any!(ScopedJoinHandle<'static, u8>: Clone);

// A `JoinError` carries a `Box<dyn Any + Send>` payload yet is `Sync`, so it
// fits in a `Box<dyn Error + Send + Sync>`.
assert_impl_all!(JoinError: Send, Sync, Debug, Display, Error);

assert_impl_all!(ShutdownTimedOut: Send, Sync, Clone, PartialEq, Eq, Debug, Display, Error);

// A handed-back job may be run on any thread.
assert_impl_all!(Job: Send, Debug);

/// The assertions above are checked when this file compiles; this test makes
/// them show up in the test run, and checks the one value-level fact they
/// cannot: a boxed `SubmitError` of a `Send + Sync` job is a `'static` error.
#[test]
fn auto_traits_are_pinned_at_compile_time() {
    fn boxed<E: Error + Send + Sync + 'static>(err: E) -> Box<dyn Error + Send + Sync> {
        Box::new(err)
    }
    let pool = ThreadPool::new(1);
    let handle = pool.handle();
    pool.shutdown();
    let job: PlainJob = || {};
    let err = handle.execute(job).expect_err("refused after shutdown");
    assert_eq!(err.kind(), SubmitErrorKind::ShutDown);
    let boxed = boxed(err);
    assert!(boxed.downcast_ref::<SubmitError<PlainJob>>().is_some());
}
