//! Compile-time pins of the auto traits and derives the contract promises
//! (`DESIGN.md`: "Types are `Send + Sync` where std's would be").
//!
//! Each assertion fails to compile if the promise is broken, so this file
//! needs no test functions; the one below only makes the run visible.

use std::error::Error;
use std::fmt::{Debug, Display};
use std::hash::Hash;
use std::rc::Rc;

use static_assertions::{assert_impl_all, assert_not_impl_any};
use weft::{BuildError, Builder, Handle, SubmitError, SubmitErrorKind, ThreadPool};

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
