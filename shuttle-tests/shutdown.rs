//! Shutdown racing submission: two outside submitters keep sending jobs
//! (some of which submit children from their workers) while the owner
//! shuts the pool down immediately, gracefully, or by dropping it. Every
//! job must be accepted and run exactly once, in the pool or handed back
//! and run by the owner, or refused and never run (ledger rules 1–3).

use std::sync::atomic::{AtomicUsize, Ordering};

use shuttle::thread;

use super::{check, Ledger, Mailbox, Scheduler};
use crate::sync::Arc;
use crate::{Builder, Handle, Job, SubmitErrorKind, ThreadPool};

/// Jobs each outside submitter sends; each also has a child id reserved.
const PER_SUBMITTER: usize = 12;

/// Jobs the owner sends before shutting down.
const FROM_OWNER: usize = 6;

/// Ids: `0..2 * PER_SUBMITTER` from the submitters, then a child for each,
/// then the owner's.
const JOBS: usize = 4 * PER_SUBMITTER + FROM_OWNER;

/// Job `id`, which submits its child `child` through `Handle::current()`
/// when it runs on a worker (a handed-back job run by the owner has no
/// pool to submit to: its child counts as refused).
fn parent_job(ledger: &Arc<Ledger>, id: usize, child: usize) -> impl FnOnce() + Send + 'static {
    let ledger = Arc::clone(ledger);
    move || {
        ledger.record_run(id);
        let Some(here) = Handle::current() else {
            ledger.refuse(child);
            return;
        };
        let child_ledger = Arc::clone(&ledger);
        match here.execute(move || child_ledger.record_run(child)) {
            Ok(()) => ledger.accept(child),
            Err(refused) => {
                assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
                // Handed back unrun: dropping it is the caller's choice.
                drop(refused.into_inner());
                ledger.refuse(child);
            }
        }
    }
}

/// Starts the two submitter threads; each sends its jobs through a
/// `Handle` (every third one as a spawned job whose handle it joins) and
/// stops at the first refusal, which must say `ShutDown`, counting the
/// rest (and their children) as refused.
fn start_submitters(pool: &ThreadPool, ledger: &Arc<Ledger>) -> Vec<thread::JoinHandle<()>> {
    (0..2)
        .map(|submitter| {
            let handle = pool.handle();
            let ledger = Arc::clone(ledger);
            thread::spawn(move || {
                let first = submitter * PER_SUBMITTER;
                let mut joins = Vec::new();
                let mut open = true;
                for id in first..first + PER_SUBMITTER {
                    let child = 2 * PER_SUBMITTER + id;
                    if !open {
                        ledger.refuse(id);
                        ledger.refuse(child);
                        continue;
                    }
                    let job = parent_job(&ledger, id, child);
                    let refused = if id % 3 == 0 {
                        match handle.spawn(move || {
                            job();
                            id
                        }) {
                            Ok(join) => {
                                joins.push((id, join));
                                None
                            }
                            Err(err) => Some(err.kind()),
                        }
                    } else {
                        handle.execute(job).err().map(|err| err.kind())
                    };
                    match refused {
                        None => ledger.accept(id),
                        Some(kind) => {
                            assert_eq!(kind, SubmitErrorKind::ShutDown);
                            ledger.refuse(id);
                            ledger.refuse(child);
                            open = false;
                        }
                    }
                }
                // Each accepted spawned job runs in the pool or is handed
                // back and run by the owner: either way its handle resolves
                // with its value.
                for (id, join) in joins {
                    assert_eq!(
                        join.join().ok(),
                        Some(id),
                        "an accepted spawned job's handle did not resolve with its value"
                    );
                }
            })
        })
        .collect()
}

/// Sends the owner's jobs (a live pool accepts them all).
fn submit_from_owner(pool: &ThreadPool, ledger: &Arc<Ledger>) {
    for id in 4 * PER_SUBMITTER..JOBS {
        let job_ledger = Arc::clone(ledger);
        pool.execute(move || job_ledger.record_run(id));
        ledger.accept(id);
    }
}

/// Four workers, two submitters sending 12 jobs each (with a child each),
/// the owner 6, then `shutdown_now` while the submitters are anywhere. The
/// owner runs every handed-back job. Then: nothing ran in the pool after
/// `shutdown_now` returned; as many jobs were handed back as the owner ran;
/// every job was accepted and ran exactly once or refused and never ran.
fn shutdown_now_racing_submitters_runs_or_hands_back_each_job() {
    let pool = ThreadPool::new(4);
    let ledger = Arc::new(Ledger::new(JOBS));
    let submitters = start_submitters(&pool, &ledger);
    submit_from_owner(&pool, &ledger);

    let handed_back: Vec<Job> = pool.shutdown_now();
    let in_pool_at_return = ledger.runs_in_pool();
    let count = handed_back.len();
    for job in handed_back {
        job.run();
    }
    for submitter in submitters {
        submitter.join().unwrap();
    }
    assert_eq!(
        ledger.runs_in_pool(),
        in_pool_at_return,
        "ledger rule 3 broken: a job ran in the pool after shutdown_now returned"
    );
    assert_eq!(
        ledger.runs_by_caller(),
        count,
        "the jobs shutdown_now handed back are not the ones the owner ran"
    );
    ledger.assert_balanced();
}

#[test]
fn shutdown_now_racing_submitters_runs_or_hands_back_each_job_random() {
    check(
        "shutdown_now_racing_submitters_runs_or_hands_back_each_job",
        Scheduler::Random,
        30_000,
        shutdown_now_racing_submitters_runs_or_hands_back_each_job,
    );
}

#[test]
fn shutdown_now_racing_submitters_runs_or_hands_back_each_job_pct() {
    check(
        "shutdown_now_racing_submitters_runs_or_hands_back_each_job",
        Scheduler::Pct { depth: 3 },
        30_000,
        shutdown_now_racing_submitters_runs_or_hands_back_each_job,
    );
}

/// How the owner ends the pool.
#[derive(Clone, Copy)]
enum End {
    Shutdown,
    Drop,
}

/// Four workers with start and stop hooks; two submitters and the owner
/// send jobs as above, then the owner shuts the pool down gracefully (or
/// drops it) while the submitters are anywhere. When that returns, every
/// job accepted so far has run, every worker has stopped, and nothing runs
/// in the pool any more; after joining the submitters, every job was
/// accepted and ran exactly once in the pool, or refused and never ran.
fn graceful_end_racing_submitters_runs_every_accepted_job(end: End) {
    let starts = Arc::new(AtomicUsize::new(0));
    let stops = Arc::new(AtomicUsize::new(0));
    let (on_start, on_stop) = (Arc::clone(&starts), Arc::clone(&stops));
    let pool = Builder::new()
        .num_threads(4)
        .on_thread_start(move |_| {
            on_start.fetch_add(1, Ordering::Relaxed);
        })
        .on_thread_stop(move |_| {
            on_stop.fetch_add(1, Ordering::Relaxed);
        })
        .build()
        .unwrap();
    let ledger = Arc::new(Ledger::new(JOBS));
    let submitters = start_submitters(&pool, &ledger);
    submit_from_owner(&pool, &ledger);

    let accepted_before = ledger.accepted_count();
    match end {
        End::Shutdown => pool.shutdown(),
        End::Drop => drop(pool),
    }
    let ran_at_return = ledger.runs_in_pool();
    assert!(
        ran_at_return >= accepted_before,
        "ledger rule 3 broken: {accepted_before} jobs were accepted before the pool was shut down, only {ran_at_return} ran before that returned"
    );
    assert_eq!(
        (
            starts.load(Ordering::Relaxed),
            stops.load(Ordering::Relaxed)
        ),
        (4, 4),
        "ledger rule 3 broken: not every worker started and stopped by the time shutdown returned"
    );
    for submitter in submitters {
        submitter.join().unwrap();
    }
    assert_eq!(
        ledger.runs_in_pool(),
        ran_at_return,
        "ledger rule 3 broken: a job ran after shutdown returned"
    );
    assert_eq!(ledger.runs_by_caller(), 0, "nothing is handed back");
    ledger.assert_balanced();
}

#[test]
fn shutdown_racing_submitters_runs_every_accepted_job_random() {
    check(
        "shutdown_racing_submitters_runs_every_accepted_job",
        Scheduler::Random,
        30_000,
        || graceful_end_racing_submitters_runs_every_accepted_job(End::Shutdown),
    );
}

#[test]
fn drop_racing_submitters_runs_every_accepted_job_pct() {
    check(
        "drop_racing_submitters_runs_every_accepted_job",
        Scheduler::Pct { depth: 3 },
        30_000,
        || graceful_end_racing_submitters_runs_every_accepted_job(End::Drop),
    );
}

/// Jobs each submitter sends in the drop-from-inside scenario: few, so that
/// a submission is often still under way when the drop closes the queue.
const SMALL_PER_SUBMITTER: usize = 3;

/// `workers` workers and two outside submitters, each sending
/// [`SMALL_PER_SUBMITTER`] jobs through a `Handle` and stopping at the first
/// refusal; meanwhile a job of the pool, handed its last owner, drops it
/// from inside. When the drop returns, every job accepted so far has run
/// (none joins the dropping job, so none may be left behind); after joining
/// the submitters, nothing more ran in the pool, and every job was accepted
/// and ran exactly once or refused and never ran.
///
/// With one worker (as both schedulers run it) the dropping job's own worker
/// is the only one left: it must run the queue itself, including a job whose
/// submitter claimed its slot before the close and has not written it yet.
/// Before `Shared::next_job_after_close` it slept there forever (pct: in
/// schedule 19; random: in schedules 3 399 and 9 443 of two runs).
fn drop_from_inside_racing_submitters_runs_every_accepted_job(workers: usize) {
    let pool = ThreadPool::new(workers);
    let ledger = Arc::new(Ledger::new(2 * SMALL_PER_SUBMITTER));
    let handover: Arc<Mailbox<ThreadPool>> = Arc::new(Mailbox::new());
    let report: Arc<Mailbox<(usize, usize)>> = Arc::new(Mailbox::new());
    let (job_ledger, job_handover, job_report) = (
        Arc::clone(&ledger),
        Arc::clone(&handover),
        Arc::clone(&report),
    );
    pool.execute(move || {
        drop(job_handover.take());
        job_report.put((job_ledger.accepted_count(), job_ledger.runs_in_pool()));
    });
    let submitters: Vec<_> = (0..2)
        .map(|submitter| {
            let (handle, ledger) = (pool.handle(), Arc::clone(&ledger));
            thread::spawn(move || {
                let first = submitter * SMALL_PER_SUBMITTER;
                let mut open = true;
                for id in first..first + SMALL_PER_SUBMITTER {
                    let job_ledger = Arc::clone(&ledger);
                    if open {
                        if let Err(refused) = handle.execute(move || job_ledger.record_run(id)) {
                            assert_eq!(refused.kind(), SubmitErrorKind::ShutDown);
                            open = false;
                        }
                    }
                    if open {
                        ledger.accept(id);
                    } else {
                        ledger.refuse(id);
                    }
                }
            })
        })
        .collect();
    handover.put(pool);

    let (accepted_at_return, ran_at_return) = report.take();
    assert!(
        ran_at_return >= accepted_at_return,
        "ledger rule 3 broken: {accepted_at_return} jobs were accepted when the drop from inside returned, only {ran_at_return} had run"
    );
    for submitter in submitters {
        submitter.join().unwrap();
    }
    assert_eq!(
        ledger.runs_in_pool(),
        ran_at_return,
        "ledger rule 3 broken: a job ran after the drop from inside returned"
    );
    assert_eq!(ledger.runs_by_caller(), 0, "nothing is handed back");
    ledger.assert_balanced();
}

#[test]
fn drop_from_inside_racing_submitters_runs_every_accepted_job_random() {
    check(
        "drop_from_inside_racing_submitters_runs_every_accepted_job",
        Scheduler::Random,
        20_000,
        || drop_from_inside_racing_submitters_runs_every_accepted_job(1),
    );
}

#[test]
fn drop_from_inside_racing_submitters_runs_every_accepted_job_pct() {
    check(
        "drop_from_inside_racing_submitters_runs_every_accepted_job",
        Scheduler::Pct { depth: 3 },
        20_000,
        || drop_from_inside_racing_submitters_runs_every_accepted_job(1),
    );
}
