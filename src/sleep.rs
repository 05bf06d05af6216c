//! Spinning briefly before sleeping.
//!
//! # Protocol
//!
//! Putting a thread to sleep on a condvar and waking it costs two system
//! calls and a few microseconds; in a burst, the next job often arrives
//! sooner than that. So a worker that finds the queue empty first *spins*
//! for a bounded time: it releases the lock and watches two hints (an atomic
//! that says whether a bounded pool's locked queue holds a job, and the
//! injector's tail, which moves with every outside job), and goes back
//! through the lock as soon as either changes. A push to a worker's own
//! deque (`local.rs`) moves neither: a spinner finds it when its spin ends,
//! or, once it sleeps, the pusher wakes it.
//!
//! **A thread outside the pool joining a `JoinHandle`** spins too, but only
//! while its job is running or some worker is spinning awake
//! ([`spin_while`]; `Slot::worth_spinning` in `join.rs`,
//! `Shared::worker_spinning` in `queue.rs`): the two cases where the job's
//! worker is on another CPU, about to finish. Spinning on anything else
//! costs more than it saves on two CPUs: a worker woken from sleep is often
//! placed on the waker's CPU, where a spinning joiner keeps it from running.
//! Measured with the W3 round trip of `benches/peers.rs` (µs, p50 / p99):
//! joiners that always spun for 60 hints (about 1.5 µs) took the cold round
//! trip from 5.4 to 10.3 at p50, 60 `yield_now`s took it to 7.7, and
//! 10,000 hints (about 250 µs) made one worker's hot p99 249. Spinning only
//! in the two cases above took two workers' hot round trip from 0.43 / 20
//! to 0.30 / 0.87 and left the cold one and one worker's hot one as they
//! were.
//!
//! **While the pool leaves a CPU free** (fewer live workers than the process
//! has CPUs, `Shared::cpu_free`) the joiner does not spin: it yields, for up
//! to 2 ms, until its job's progress hint says resolved
//! (`JoinHandle::join_blocking`), and an idle worker's spin yields from its
//! first round instead of spinning first. On one worker the joiner and the
//! worker are often on the same CPU (the scheduler tends to place a woken
//! thread on its waker's CPU), and a thread spinning on `spin_loop` hints
//! keeps the other off it for the whole spin. Before, the joiner found its
//! job neither running nor a worker spinning and slept at once, paying a
//! wake per round trip. Both halves are needed: joiners that yielded while
//! the worker still spun first took one worker's cold p50 to 7.7 µs (as the
//! earlier measurement above found); in a trace of a version whose joiner
//! still spun while a worker spun awake, hot round trips took 15 to 22 µs
//! while the two shared CPU 0, a switch coming only when a spin ran out.
//! Yielding on both sides hands the CPU over at once. W3 on one worker, in
//! full runs of `benches/peers.rs` (µs, p50 / p99), went from 3.62 / 5.96
//! hot and 4.89 / 10.2 cold (at `062f30e`) to 2.42 / 2.63 hot and 4.28 /
//! 7.79 cold (at `788f64e`; 2.52 / 2.72 and 4.46 / 8.08 in a run of a first
//! version); the rest of the workloads were unchanged within noise. The hot
//! round trip is then two thread switches on one CPU, about 2.5 µs here (0.6
//! µs when the two threads happen to be on different CPUs). With as many
//! workers as CPUs nothing changes: the joiner spins as above.
//!
//! **A `wait_idle` caller, and a scope's owner outside the pool,** yield
//! before they sleep ([`YieldBudget`]; `Shared::wait_awake_then_asleep` in
//! `queue.rs`), for up to 2 ms. The first stops as soon as `idle_notices`
//! moves (every notification of `became_idle` bumps it first), the second
//! as soon as the scope's own count of jobs reaches 0.
//! On this class of machine a thread asleep on an idle CPU takes 20 µs or
//! more to wake (a standalone loop of W4 batches on one worker measured the
//! caller's return from `wait_idle`, after the last job ended, at 22.6 to
//! 27.9 µs p50; the worker's pickup, when it had gone to sleep too, was as
//! slow). Awake, the caller sees the notice in 0.39 µs p50, and that loop's
//! efficiency went from 0.91 to 0.975 (through `scope`, 0.91 to 0.973). Yields, not `spin_loop` hints, so
//! that a runnable thread sharing the CPU gets it at once. The 2 ms covers a
//! batch of W4 (320 µs on one worker) and of W6 (1.3 ms); 0.2 ms gained
//! nothing, 0.5 and 1 ms gained on W4 only. It costs a caller whose wait
//! lasts longer up to 2 ms of CPU once per call; an idle pool has no waiter
//! and burns nothing (W8).
//!
//! The caller yields only while the pool has fewer live workers than the
//! process has CPUs, i.e. while a CPU is free for it. With two workers on
//! two CPUs a yielding caller made W5 (a tree of jobs lasting about 2 ms)
//! bimodal, 1.9 to 7.7 ms against 2.0 before, as if the scheduler, counting
//! the caller as a full load, had put both workers on one CPU; there it
//! sleeps at once, as before. (Two workers' W4 gained from yielding, 0.91 to
//! 0.94 in the loop above; that gain is given up.)
//!
//! The waiter stays counted (in `idle_waiters`, `blocked_scope_owners`)
//! while it yields, so whatever ends its wait notifies, and it decides only
//! under the lock, registering in the same critical section as its check
//! before it sleeps, as before. Proven by
//! `wait_idle_is_woken_by_a_worker_recording_its_job_as_it_takes_the_next`,
//! `two_yielding_idle_waiters_both_return_once_the_job_ran` and
//! `scope_owner_yielding_outside_the_pool_returns_after_every_write`
//! (`loom-tests/spin.rs`).
//!
//! The hints never decide anything. The first is written only under the
//! lock that guards the real state (`queue.rs`), the second is the queue's
//! own tail; a spinner that sees either change (or gives up) re-takes the
//! lock and re-checks the real state there, exactly as before. The decision
//! to sleep, and the sleeper registration a notifier reads, stay in one
//! critical section with the check, so the no-lost-wake-up argument of each
//! protocol is unchanged; spinning only delays the check. A spinner is not
//! counted as sleeping, which is the point: a submitter or a finishing job
//! that sees no sleeper skips the notification and its system call. The
//! hints are read `Relaxed`: what they point at is read under the lock (the
//! first) or with `Acquire` by the pop (the second).
//!
//! The spin is bounded (127 `spin_loop` hints, then 53 `yield_now`s: about
//! 13 µs on a 2-vCPU virtual machine, where each yield is about 0.2 µs; 60
//! yields while the pool leaves a CPU free), so
//! an idle pool still sleeps and burns no CPU. The yields are what make it
//! long enough: a caller that waits for a batch of jobs and then submits
//! the next one needs the wake-up of its own thread and a few pushes, and a
//! wake-up across CPUs takes tens of µs there. With four yields (about
//! 2.7 µs in all) both workers were often asleep by then in the runs
//! of W4 (fan-out, two workers), and woke late for every batch: efficiency
//! 0.43 against the peers' 0.8. With 53 it measured 0.87 to 0.89 in most
//! runs. A yield hands the CPU to any other thread ready on it, so the
//! longer spin takes no time from the caller. Under loom
//! the budget shrinks to a single round, so the models explore a spinner
//! giving up as well as one that sees the hint, without unrolling a long
//! loop; and only the models of the sleep protocol turn spinning on
//! (`Builder::spin_before_sleep`, called only by the models): `loom-tests/wakeup.rs` and
//! `loom-tests/spin.rs`. Elsewhere it would multiply the interleavings of
//! every idle moment (one model went from 67 s to over ten minutes) while
//! only delaying a check those models already make.

use crate::sync::{self, Duration, Instant};

/// Rounds that spin (round `r` spins `2^r` hints) before rounds that yield.
const SPIN_ROUNDS: u32 = if sync::MODEL_CHECKED { 1 } else { 7 };

/// All rounds, spinning and yielding; after them the caller sleeps.
const ROUNDS: u32 = if sync::MODEL_CHECKED { 1 } else { 60 };

/// The most hints a joiner outside the pool spins for (about 13 µs on a
/// 2-vCPU virtual machine); a single one under loom.
const JOIN_SPINS: u32 = if sync::MODEL_CHECKED { 1 } else { 512 };

/// How long a `wait_idle` caller yields before it sleeps (outside the
/// checkers, whose clocks never move: there it is [`CHECKED_WAIT_ROUNDS`]
/// yields).
const WAIT_YIELD: Duration = Duration::from_millis(2);

/// A `wait_idle` caller's yields under loom (one, so the models explore both
/// a notice seen while yielding and the budget running out) or shuttle.
const CHECKED_WAIT_ROUNDS: u32 = if sync::MODEL_CHECKED { 1 } else { 60 };

/// The time a `wait_idle` caller may spend yielding, awake, before it
/// sleeps, over all of its rounds of yielding.
pub(crate) struct YieldBudget {
    start: Instant,
    rounds: u32,
}

impl YieldBudget {
    pub(crate) fn new() -> YieldBudget {
        YieldBudget {
            start: Instant::now(),
            rounds: 0,
        }
    }

    /// Whether the budget is used up.
    pub(crate) fn spent(&self) -> bool {
        if sync::SCHEDULE_CHOSEN_BY_CHECKER {
            self.rounds >= CHECKED_WAIT_ROUNDS
        } else {
            Instant::now()
                .checked_duration_since(self.start)
                .is_some_and(|yielded| yielded >= WAIT_YIELD)
        }
    }

    /// Yields while `busy` returns `true` and the budget lasts. The caller
    /// re-checks what it waits for under its lock afterwards: `busy` only
    /// delays that check.
    pub(crate) fn yield_while(&mut self, mut busy: impl FnMut() -> bool) {
        while busy() && !self.spent() {
            sync::yield_now();
            self.rounds += 1;
        }
    }
}

/// Spins, without yielding, while `busy` returns `true`, for at most
/// [`JOIN_SPINS`] hints. The caller re-checks what it waits for under its
/// lock afterwards: `busy` only delays that check.
pub(crate) fn spin_while(mut busy: impl FnMut() -> bool) {
    for _ in 0..JOIN_SPINS {
        if !busy() {
            return;
        }
        sync::spin_loop();
    }
}

/// Spins (then yields) until `ready` returns `true` or the budget is spent;
/// returns the last answer of `ready`. With `yield_at_once`, every round
/// yields.
pub(crate) fn spin_until(yield_at_once: bool, mut ready: impl FnMut() -> bool) -> bool {
    let spin_rounds = if yield_at_once { 0 } else { SPIN_ROUNDS };
    for round in 0..ROUNDS {
        if ready() {
            return true;
        }
        if round < spin_rounds {
            for _ in 0..1u32 << round {
                sync::spin_loop();
            }
        } else {
            sync::yield_now();
        }
    }
    ready()
}
