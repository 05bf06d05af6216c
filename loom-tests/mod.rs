//! Loom models of weft's protocols, compiled into the crate's own test build
//! under `cfg(all(loom, test))`. The catalogue (property, scenario, threads,
//! preemption bound, run time) and the mutations each model catches are in
//! `README.md` beside this file.
//!
//! Conventions shared by every model:
//!
//! - A model builds its own pool inside the closure, shuts it down and joins
//!   every thread it started before the closure returns. The one exception
//!   is by design: the worker that drops its own pool (`reentrancy.rs`) is
//!   detached, and loom still runs it to completion or reports a deadlock.
//! - At most 2 workers plus the main thread and one caller thread (loom
//!   allows 5 threads including main).
//! - Assertions run on the model's main thread or a caller thread, never
//!   inside a job: the pool catches a job's panic, so an assertion there
//!   would only be counted, not reported.
//! - Run counters are loom atomics used with `Relaxed`: the happens-before
//!   edge that makes a count visible must come from the pool's own locks and
//!   joins, and loom would show a stale count if it were missing.

mod backpressure;
mod batch;
mod count;
mod exactly_once;
mod handle;
mod hub;
mod idle;
mod injector;
mod join;
mod local;
mod lock_free;
mod mailbox;
mod nested_shutdown;
mod outside_batch;
mod panics;
mod reentrancy;
mod reentrancy_join;
mod resize;
mod scope;
mod shutdown;
mod shutdown_now;
mod shutdown_timeout;
mod spin;
mod wakeup;

use std::panic;
use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Once;

use mailbox::Mailbox;

/// Held by the model running: see [`model`].
static ONE_MODEL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Explores every interleaving of `f` with at most `preemption_bound`
/// preemptions per execution. `LOOM_MAX_PREEMPTIONS` overrides the bound;
/// `WEFT_LOOM_BOUND_CAP` only lowers it.
///
/// Models run one at a time, whatever `--test-threads` says: two loom
/// models in one process spend most of their time in the kernel. Measured
/// on two cores with three of the largest models: 178 s wall (175 s of it
/// system time) on two test threads, 93 s (35 s system) one at a time.
///
/// Prints the model's name (its test's), how many executions were explored
/// and how long that took (visible with `--nocapture`, and kept by
/// [`record_figure`] for `scripts/verification-table`); the count and the
/// clock live outside the model, so std's atomic and `Instant` are fine here.
fn model<F>(preemption_bound: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    // `Builder::new` has already read `LOOM_MAX_PREEMPTIONS` if it is set.
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    // `WEFT_LOOM_BOUND_CAP` lowers every bound above it (and raises none):
    // `scripts/mutants` runs the models on many mutants this way.
    if let Some(cap) = std::env::var("WEFT_LOOM_BOUND_CAP")
        .ok()
        .and_then(|cap| cap.parse::<usize>().ok())
    {
        builder.preemption_bound = builder.preemption_bound.map(|bound| bound.min(cap));
    }
    let bound = builder.preemption_bound;
    // A model that failed poisons the lock; the next one runs all the same.
    let _one_at_a_time = ONE_MODEL_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let executions = std::sync::Arc::new(StdAtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&executions);
    let started = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, StdOrdering::Relaxed);
        f();
    });
    let line = format!(
        "loom: {}: {} executions explored (preemption bound {bound:?}) in {:.1?}",
        std::thread::current().name().unwrap_or("(unnamed)"),
        executions.load(StdOrdering::Relaxed),
        started.elapsed()
    );
    eprintln!("{line}");
    record_figure(&line);
}

/// Appends `line` to the file named by `WEFT_FIGURES`, if set: `.ci/run`
/// collects every checker's figures there for `scripts/verification-table`.
/// One `write` per line, in append mode, so lines from parallel tests do not
/// interleave.
fn record_figure(line: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("WEFT_FIGURES") else {
        return;
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(format!("{line}\n").as_bytes());
    }
}

/// The payload of every panic a model provokes on purpose.
struct DeliberatePanic;

/// Installs, once per test binary, a panic hook that stays quiet for
/// [`DeliberatePanic`] payloads and forwards every other panic (a failed
/// assertion in any model) to the default hook.
///
/// Set `WEFT_LOOM_SHOW_PANICS` to see the deliberate ones too: when one
/// escapes the pool's catch boundary, the only other trace is loom's
/// secondary "cannot access Loom execution state" panic.
fn silence_deliberate_panics() {
    static INSTALL: Once = Once::new();
    if std::env::var_os("WEFT_LOOM_SHOW_PANICS").is_some() {
        return;
    }
    INSTALL.call_once(|| {
        let default_hook = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<DeliberatePanic>() {
                default_hook(info);
            }
        }));
    });
}

/// A pool of `threads` workers whose outside submitters push without the
/// lock if `lock_free` (`lock_free.rs`), and take it otherwise.
fn pool_pushing(threads: usize, lock_free: bool) -> crate::ThreadPool {
    crate::Builder::new()
        .num_threads(threads)
        .push_without_lock(lock_free)
        .build()
        .unwrap()
}
