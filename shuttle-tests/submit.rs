//! Submission at scale: two outside submitters and the owner feed four
//! workers while jobs submit children through `Handle::current()`, and
//! spawned jobs spawn and join whole trees of children from inside the
//! pool. Every job must run exactly once (ledger rule 1) and the counters
//! must be exact once the pool is idle (rule 6).

use shuttle::thread;

use super::{assert_exact_when_idle, check, Ledger, Scheduler};
use crate::sync::Arc;
use crate::{Handle, ThreadPool};

/// Jobs each outside submitter sends; each job also submits one child.
const PER_SUBMITTER: usize = 8;

/// Jobs the owner sends itself (they submit no child).
const FROM_OWNER: usize = 8;

/// Ids: `0..2 * PER_SUBMITTER` from the submitters, then their children,
/// then the owner's.
const JOBS: usize = 4 * PER_SUBMITTER + FROM_OWNER;

/// Job `id`, which, when it runs on a worker, submits its child `child`
/// through `Handle::current()` and records whether that was accepted.
fn parent_job(ledger: &Arc<Ledger>, id: usize, child: usize) -> impl FnOnce() + Send + 'static {
    let ledger = Arc::clone(ledger);
    move || {
        ledger.record_run(id);
        let here = Handle::current().expect("a job runs on a worker");
        let child_ledger = Arc::clone(&ledger);
        match here.execute(move || child_ledger.record_run(child)) {
            Ok(()) => ledger.accept(child),
            Err(_) => ledger.refuse(child),
        }
    }
}

/// Four workers; two submitter threads each send 8 jobs through a
/// `Handle` (half one at a time, half as one batch), each of which submits
/// a child from its worker, while the owner sends 8 more. After joining the
/// submitters and `wait_idle`: all 40 jobs ran exactly once, and the
/// counters are exactly (40 completed, 0 panicked, 0 queued, 0 active).
fn outside_and_nested_submissions_run_exactly_once() {
    let pool = ThreadPool::new(4);
    let ledger = Arc::new(Ledger::new(JOBS));
    let submitters: Vec<_> = (0..2)
        .map(|submitter| {
            let handle = pool.handle();
            let ledger = Arc::clone(&ledger);
            thread::spawn(move || {
                let first = submitter * PER_SUBMITTER;
                let child_of = |id| 2 * PER_SUBMITTER + id;
                let singles = first..first + PER_SUBMITTER / 2;
                let batched = first + PER_SUBMITTER / 2..first + PER_SUBMITTER;
                for id in singles {
                    match handle.execute(parent_job(&ledger, id, child_of(id))) {
                        Ok(()) => ledger.accept(id),
                        Err(_) => panic!("a live pool refused job {id}"),
                    }
                }
                let batch: Vec<_> = batched
                    .clone()
                    .map(|id| parent_job(&ledger, id, child_of(id)))
                    .collect();
                match handle.execute_batch(batch) {
                    Ok(()) => batched.for_each(|id| ledger.accept(id)),
                    Err(_) => panic!("a live pool refused a batch"),
                }
            })
        })
        .collect();
    for id in 4 * PER_SUBMITTER..JOBS {
        let job_ledger = Arc::clone(&ledger);
        pool.execute(move || job_ledger.record_run(id));
        ledger.accept(id);
    }
    for submitter in submitters {
        submitter.join().unwrap();
    }
    pool.wait_idle();
    ledger.assert_all_ran_once_in_pool();
    assert_exact_when_idle(&pool, JOBS, 0);
    pool.shutdown();
}

#[test]
fn outside_and_nested_submissions_run_exactly_once_random() {
    check(
        "outside_and_nested_submissions_run_exactly_once",
        Scheduler::Random,
        30_000,
        outside_and_nested_submissions_run_exactly_once,
    );
}

#[test]
fn outside_and_nested_submissions_run_exactly_once_pct() {
    check(
        "outside_and_nested_submissions_run_exactly_once",
        Scheduler::Pct { depth: 3 },
        30_000,
        outside_and_nested_submissions_run_exactly_once,
    );
}

/// Nodes in a spawn tree of `depth` levels below the root.
const fn tree_nodes(depth: u32) -> usize {
    (1 << (depth + 1)) - 1
}

/// Depth of each spawn tree: 15 jobs per tree.
const TREE_DEPTH: u32 = 3;

/// Runs node `id` of a spawn tree on a worker: spawns its two children
/// through `Handle::current()` and joins them (helping, or sleeping until
/// another worker finishes them). Returns the number of nodes that ran in
/// its subtree. Node `id`'s children are `2 id + 1` and `2 id + 2`, offset
/// by `base`.
fn tree_node(ledger: Arc<Ledger>, base: usize, id: usize, depth: u32) -> usize {
    ledger.record_run(base + id);
    if depth == 0 {
        return 1;
    }
    let here = Handle::current().expect("a tree node runs on a worker");
    let children: Vec<_> = [2 * id + 1, 2 * id + 2]
        .into_iter()
        .map(|child| {
            let ledger_for_child = Arc::clone(&ledger);
            let spawned = here.spawn(move || tree_node(ledger_for_child, base, child, depth - 1));
            match spawned {
                Ok(handle) => {
                    ledger.accept(base + child);
                    handle
                }
                Err(_) => panic!("a live pool refused a worker's spawn"),
            }
        })
        .collect();
    1 + children
        .into_iter()
        .map(|handle| handle.join().expect("a tree node failed"))
        .sum::<usize>()
}

/// Four workers; the owner spawns the root of one 15-node tree and a
/// submitter thread the root of another, both through `spawn`; every inner
/// node spawns and joins two children from its worker. Both roots must
/// return 15 (every node ran and was joined), every node ran exactly once,
/// and the idle counters are exact.
fn nested_spawn_join_trees_return_every_value() {
    const NODES: usize = tree_nodes(TREE_DEPTH);
    let pool = ThreadPool::new(4);
    let ledger = Arc::new(Ledger::new(2 * NODES));

    let handle = pool.handle();
    let submitter_ledger = Arc::clone(&ledger);
    let submitter = thread::spawn(move || {
        let root_ledger = Arc::clone(&submitter_ledger);
        let root = handle
            .spawn(move || tree_node(root_ledger, NODES, 0, TREE_DEPTH))
            .unwrap_or_else(|_| panic!("a live pool refused a spawn"));
        submitter_ledger.accept(NODES);
        root.join().expect("the submitter's tree failed")
    });

    let root_ledger = Arc::clone(&ledger);
    let root = pool.spawn(move || tree_node(root_ledger, 0, 0, TREE_DEPTH));
    ledger.accept(0);
    assert_eq!(
        root.join().expect("the owner's tree failed"),
        NODES,
        "the owner's tree did not join every node"
    );
    assert_eq!(
        submitter.join().unwrap(),
        NODES,
        "the submitter's tree did not join every node"
    );
    pool.wait_idle();
    ledger.assert_all_ran_once_in_pool();
    assert_exact_when_idle(&pool, 2 * NODES, 0);
    pool.shutdown();
}

#[test]
fn nested_spawn_join_trees_return_every_value_random() {
    check(
        "nested_spawn_join_trees_return_every_value",
        Scheduler::Random,
        30_000,
        nested_spawn_join_trees_return_every_value,
    );
}

#[test]
fn nested_spawn_join_trees_return_every_value_pct() {
    check(
        "nested_spawn_join_trees_return_every_value",
        Scheduler::Pct { depth: 3 },
        30_000,
        nested_spawn_join_trees_return_every_value,
    );
}

/// Jobs each submitter pushes in `outside_pushes_cross_block_boundaries`:
/// together more than one block of the outside queue (127 slots, plus the
/// position a pusher steps over while it installs the next block).
const CROSSING_PER_SUBMITTER: usize = 70;

/// Jobs per batch in that test; batches claim several slots with one CAS,
/// and a claim that would overrun a block is cut at its end.
const CROSSING_BATCH: usize = 7;

/// Four workers; two submitters push 70 jobs each from outside the pool
/// (the lock-free path), alternating single jobs and batches of 7, so the
/// 140 pushes fill the first block of the outside queue, race to install
/// the second and continue in it while workers pop across the boundary.
/// loom models this with blocks of 2 slots; here the blocks have their real
/// size. After joining the submitters and `wait_idle`: every job ran
/// exactly once and the counters are exact.
fn outside_pushes_cross_block_boundaries() {
    const JOBS: usize = 2 * CROSSING_PER_SUBMITTER;
    let pool = ThreadPool::new(4);
    let ledger = Arc::new(Ledger::new(JOBS));
    let submitters: Vec<_> = (0..2)
        .map(|submitter| {
            let handle = pool.handle();
            let ledger = Arc::clone(&ledger);
            thread::spawn(move || {
                let first = submitter * CROSSING_PER_SUBMITTER;
                let ids: Vec<usize> = (first..first + CROSSING_PER_SUBMITTER).collect();
                for (round, chunk) in ids.chunks(CROSSING_BATCH).enumerate() {
                    if round % 2 == 0 {
                        let batch: Vec<_> = chunk
                            .iter()
                            .map(|&id| {
                                let ledger = Arc::clone(&ledger);
                                move || ledger.record_run(id)
                            })
                            .collect();
                        if handle.execute_batch(batch).is_err() {
                            panic!("a live pool refused a batch");
                        }
                        chunk.iter().for_each(|&id| ledger.accept(id));
                    } else {
                        for &id in chunk {
                            let job_ledger = Arc::clone(&ledger);
                            handle
                                .execute(move || job_ledger.record_run(id))
                                .unwrap_or_else(|_| panic!("a live pool refused job {id}"));
                            ledger.accept(id);
                        }
                    }
                }
            })
        })
        .collect();
    for submitter in submitters {
        submitter.join().unwrap();
    }
    pool.wait_idle();
    ledger.assert_all_ran_once_in_pool();
    assert_exact_when_idle(&pool, JOBS, 0);
    pool.shutdown();
}

#[test]
fn outside_pushes_cross_block_boundaries_random() {
    check(
        "outside_pushes_cross_block_boundaries",
        Scheduler::Random,
        10_000,
        outside_pushes_cross_block_boundaries,
    );
}

#[test]
fn outside_pushes_cross_block_boundaries_pct() {
    check(
        "outside_pushes_cross_block_boundaries",
        Scheduler::Pct { depth: 3 },
        10_000,
        outside_pushes_cross_block_boundaries,
    );
}
