//! How a run of many small parallel steps keeps the rayon pool's workers
//! ready for them.
//!
//! A training step of a small network is a chain of short parallel loops
//! (each convolution, pool, rectifier and optimizer pass splits its batch
//! over the workers) with serial work between them. A rayon worker that
//! finds no work for a moment goes to sleep, and the next loop pays for
//! waking it: a system call on the thread that posts the work and the
//! scheduler's latency on the one that takes it, tens of microseconds on a
//! virtual machine, tens of times per step. [`keep_workers_awake`] keeps the
//! pool's other workers looking for work for as long as a closure runs, as
//! an OpenMP runtime's active wait does (and ONNX Runtime's spinning
//! intra-op threads). [`crate::train::Classifier`] runs its epochs in it.

use std::sync::atomic::{AtomicBool, Ordering};

/// Runs `f` while the other workers of the current rayon pool (the global
/// pool outside any) look for work instead of sleeping, and returns what it
/// returns.
///
/// Until `f` returns or unwinds, each of the pool's workers but one runs a
/// job that takes any pending work of the pool (its own queue, stolen,
/// injected) and otherwise yields its core to the OS scheduler
/// ([`std::thread::yield_now`]), so other runnable threads still get it.
/// The call returns once those jobs have seen that `f` is done (a worker
/// that is running a job when `f` returns finishes that job first).
///
/// It changes nothing beyond the call: no thread, setting or state is left
/// behind. Use it around a loop of many short steps (an epoch, a stream of
/// small inference batches); a single large call gains nothing, and a
/// process that shares its cores with other busy processes gains less.
///
/// ```
/// use rayon::prelude::*;
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
/// let total = pool.install(|| {
///     static_nn::parallel::keep_workers_awake(|| {
///         (0..100)
///             .map(|step| (0..1000u64).into_par_iter().map(|i| i * step).sum::<u64>())
///             .sum::<u64>()
///     })
/// });
/// assert_eq!(total, 4950 * 499_500);
/// ```
pub fn keep_workers_awake<R>(f: impl FnOnce() -> R) -> R {
    let stop = AtomicBool::new(false);
    let me = rayon::current_thread_index();
    rayon::in_place_scope(|scope| {
        // set on return and on unwinding, so that the workers' jobs end and
        // the scope can close either way
        let _stop = StopOnDrop(&stop);
        for _ in 1..rayon::current_num_threads() {
            scope.spawn(|_| {
                // this thread runs `f`: it cannot also wait here
                if rayon::current_thread_index() == me {
                    return;
                }
                while !stop.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::thread::yield_now();
                    }
                }
            });
        }
        f()
    })
}

/// Runs `main` on this thread and `side` beside it, on another worker of
/// the current rayon pool if one takes it meanwhile (else on this thread
/// once `main` is done), and returns `main`'s result when both are done.
/// Outside a rayon pool, or in a pool of one thread, both run here in turn:
/// no pool is started.
pub(crate) fn alongside<R>(main: impl FnOnce() -> R, side: impl FnOnce() + Send) -> R {
    if rayon::current_thread_index().is_none() || rayon::current_num_threads() < 2 {
        let r = main();
        side();
        return r;
    }
    rayon::in_place_scope(|scope| {
        scope.spawn(|_| side());
        main()
    })
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    #[test]
    fn parallel_steps_inside_give_their_results_and_the_call_returns() {
        for threads in [1, 2, 3] {
            let sums = pool(threads).install(|| {
                keep_workers_awake(|| {
                    (0..50)
                        .map(|s| (0..10_000u64).into_par_iter().map(|i| i % (s + 1)).sum())
                        .collect::<Vec<u64>>()
                })
            });
            let want: Vec<u64> = (0..50)
                .map(|s| (0..10_000u64).map(|i| i % (s + 1)).sum())
                .collect();
            assert_eq!(sums, want, "{threads} threads");
        }
    }

    #[test]
    fn the_other_workers_take_the_work_while_the_caller_waits() {
        // a job posted from inside runs on the other worker while this one
        // blocks without offering its own queue: the other worker's waiting
        // job must take work, not only wait for the end
        let pool = pool(2);
        let (ran_on, caller) = pool.install(|| {
            keep_workers_awake(|| {
                let (tx, rx) = std::sync::mpsc::channel();
                rayon::spawn(move || {
                    let _ = tx.send(rayon::current_thread_index());
                });
                let got = rx.recv_timeout(std::time::Duration::from_secs(30));
                (
                    got.expect("another worker ran the job"),
                    rayon::current_thread_index(),
                )
            })
        });
        assert_ne!(ran_on, caller);
    }

    #[test]
    fn alongside_runs_both_and_returns_mains_result() {
        for threads in [1, 2, 3] {
            let (r, side) = pool(threads).install(|| {
                let mut side = 0u64;
                let r = alongside(|| (0..1000u64).sum::<u64>(), || side = 7);
                (r, side)
            });
            assert_eq!((r, side), (499_500, 7), "{threads} threads");
        }
        // outside a pool: in turn, on this thread
        let mut ran_on = None;
        let r = alongside(|| 5, || ran_on = Some(std::thread::current().id()));
        assert_eq!((r, ran_on), (5, Some(std::thread::current().id())));
    }

    #[test]
    fn alongside_runs_the_side_work_on_another_worker_meanwhile() {
        // `main` waits for a message that only `side` sends: this returns
        // only if `side` ran while `main` was still running
        let (tx, rx) = std::sync::mpsc::channel();
        let (got, side_on, main_on) = pool(2).install(move || {
            let mut side_on = None;
            let got = alongside(
                || rx.recv_timeout(std::time::Duration::from_secs(30)).is_ok(),
                || {
                    side_on = rayon::current_thread_index();
                    let _ = tx.send(());
                },
            );
            (got, side_on, rayon::current_thread_index())
        });
        assert!(got, "side work ran only after the main work");
        assert_ne!(side_on, main_on);
    }

    #[test]
    fn outside_a_pool_it_uses_the_global_one() {
        let v = keep_workers_awake(|| (0..1000u32).into_par_iter().map(|i| i * 2).sum::<u32>());
        assert_eq!(v, 999_000);
    }

    #[test]
    fn a_panic_inside_unwinds_out_and_leaves_the_pool_usable() {
        let pool = pool(2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| keep_workers_awake(|| panic!("inside")))
        }));
        assert!(caught.is_err());
        let after = pool.install(|| keep_workers_awake(|| (0..10u8).into_par_iter().count()));
        assert_eq!(after, 10);
    }
}
