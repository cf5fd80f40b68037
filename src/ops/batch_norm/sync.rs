//! Batch statistics shared between the chunks of a split training step.
//!
//! A [`SplitStep`](crate::train::SplitStep) runs the chunks of a batch side
//! by side, each on its own copy of the model. A batch norm in training
//! mode normalizes by the statistics of the whole batch, so the chunks
//! must share them: each batch norm's forward pass gathers every chunk's
//! per-channel mean and variance, and its backward pass every chunk's two
//! per-channel gradient sums (PyTorch's `SyncBatchNorm`, between threads).
//! The chunks run the same model, so the `k`-th gathering of one chunk
//! meets the `k`-th of every other.
//!
//! The split step runs each chunk on a thread of its own, which runs
//! nothing else, and for the duration of the chunk makes that thread a
//! [`Member`] of the step's [`ChunkSync`] ([`as_member`]); the CPU batch
//! norm asks [`member`] on the thread that runs its forward pass. Outside a
//! split step there is none, and nothing is shared.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a chunk that waits for the others spins before it sleeps: the
/// chunks of a step arrive within microseconds of each other when their
/// threads have cores, and waking from a sleep costs tens of them.
const SPIN: Duration = Duration::from_micros(50);

/// The meeting point of the chunks of one split training step: every
/// chunk hands in its part, and once all have, each gets all parts in
/// chunk order (an all-gather, see the module docs).
#[derive(Debug)]
pub(crate) struct ChunkSync {
    chunks: usize,
    state: Mutex<State>,
    woken: Condvar,
    /// `State::generation`, readable without the lock (for spinning).
    generation: AtomicU64,
    /// Set when a chunk failed or finished: a chunk still waiting then
    /// waits in vain.
    broken: AtomicBool,
}

#[derive(Debug)]
struct State {
    /// Gatherings completed.
    generation: u64,
    /// Chunks that handed in their part of the current gathering.
    arrived: usize,
    parts: Vec<Vec<f64>>,
    /// The parts of the last completed gathering.
    done: Arc<Vec<Vec<f64>>>,
    /// The first chunk that failed.
    failed: Option<usize>,
    /// Chunks that ended their work.
    finished: usize,
}

/// A gathering that cannot complete: another chunk failed, or ended
/// without reaching it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Broken;

impl ChunkSync {
    /// A meeting point for `chunks` chunks (at least 1).
    pub(crate) fn new(chunks: usize) -> Arc<Self> {
        let chunks = chunks.max(1);
        Arc::new(Self {
            chunks,
            state: Mutex::new(State {
                generation: 0,
                arrived: 0,
                parts: vec![Vec::new(); chunks],
                done: Arc::new(Vec::new()),
                failed: None,
                finished: 0,
            }),
            woken: Condvar::new(),
            generation: AtomicU64::new(0),
            broken: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every chunk's part, in chunk order, once all chunks have handed in
    /// theirs; `part` is `chunk`'s.
    ///
    /// # Errors
    /// [`Broken`] if a chunk failed, or ended without this gathering.
    pub(crate) fn all_gather(
        &self,
        chunk: usize,
        part: Vec<f64>,
    ) -> Result<Arc<Vec<Vec<f64>>>, Broken> {
        let mut state = self.lock();
        if state.failed.is_some() || state.finished > 0 || chunk >= self.chunks {
            return Err(Broken);
        }
        let generation = state.generation;
        state.parts[chunk] = part;
        state.arrived += 1;
        if state.arrived == self.chunks {
            let parts = std::mem::replace(&mut state.parts, vec![Vec::new(); self.chunks]);
            state.done = Arc::new(parts);
            state.arrived = 0;
            state.generation += 1;
            self.generation.store(state.generation, Ordering::Release);
            self.woken.notify_all();
            return Ok(state.done.clone());
        }
        drop(state);
        let start = Instant::now();
        'spin: while start.elapsed() < SPIN {
            for _ in 0..64 {
                if self.generation.load(Ordering::Acquire) != generation
                    || self.broken.load(Ordering::Acquire)
                {
                    break 'spin;
                }
                std::hint::spin_loop();
            }
        }
        let mut state = self.lock();
        // the generation first: a chunk may finish right after the last
        // gathering that this one waited for
        while state.generation == generation {
            if state.failed.is_some() || state.finished > 0 {
                return Err(Broken);
            }
            state = self
                .woken
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(state.done.clone())
    }

    /// Records that `chunk` failed: the others' gatherings end in
    /// [`Broken`].
    pub(crate) fn fail(&self, chunk: usize) {
        let mut state = self.lock();
        state.failed.get_or_insert(chunk);
        self.broken.store(true, Ordering::Release);
        self.woken.notify_all();
    }

    /// Records that a chunk ended its work: a gathering that waits for it
    /// now ends in [`Broken`].
    fn finish(&self) {
        let mut state = self.lock();
        state.finished += 1;
        self.broken.store(true, Ordering::Release);
        self.woken.notify_all();
    }

    /// The first chunk that [`fail`](Self::fail)ed, if any.
    pub(crate) fn first_failure(&self) -> Option<usize> {
        self.lock().failed
    }
}

/// One chunk of a split step, as its batch norms see it.
#[derive(Clone, Debug)]
pub(crate) struct Member {
    sync: Arc<ChunkSync>,
    chunk: usize,
}

impl Member {
    /// Every chunk's part of this gathering, in chunk order (see
    /// [`ChunkSync::all_gather`]).
    pub(crate) fn all_gather(&self, part: Vec<f64>) -> Result<Arc<Vec<Vec<f64>>>, Broken> {
        self.sync.all_gather(self.chunk, part)
    }

    /// This chunk's index.
    pub(crate) fn chunk(&self) -> usize {
        self.chunk
    }
}

thread_local! {
    /// The chunk that this thread runs, while it runs one.
    static MEMBER: RefCell<Option<Member>> = const { RefCell::new(None) };
}

/// The chunk of a split step that this thread runs, if any (see the
/// module docs).
pub(crate) fn member() -> Option<Member> {
    MEMBER.with(|m| m.borrow().clone())
}

/// Runs `f` (chunk `chunk`'s work) on this thread as a member of `sync`,
/// then restores what the thread was before. Returns `f`'s result;
/// records with `sync` whether `f` failed (an `Err`, or a panic) or
/// finished, so that no other chunk waits for this one in vain.
pub(crate) fn as_member<T, E>(
    sync: &Arc<ChunkSync>,
    chunk: usize,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    /// Restores the thread's member, and records a failure on unwinding.
    struct Leave {
        before: Option<Member>,
        sync: Arc<ChunkSync>,
        chunk: usize,
        ended: bool,
    }
    impl Drop for Leave {
        fn drop(&mut self) {
            if !self.ended {
                self.sync.fail(self.chunk);
            }
            let before = self.before.take();
            MEMBER.with(|m| *m.borrow_mut() = before);
        }
    }
    let me = Member {
        sync: sync.clone(),
        chunk,
    };
    let before = MEMBER.with(|m| m.borrow_mut().replace(me));
    let mut leave = Leave {
        before,
        sync: sync.clone(),
        chunk,
        ended: false,
    };
    let result = f();
    leave.ended = true;
    match &result {
        Ok(_) => sync.finish(),
        Err(_) => sync.fail(chunk),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_chunk_gets_all_parts_in_chunk_order() {
        let sync = ChunkSync::new(3);
        let got: Vec<Vec<Vec<f64>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|chunk| {
                    let sync = &sync;
                    s.spawn(move || {
                        as_member(sync, chunk, || {
                            let m = member().expect("a member inside");
                            let mut seen = Vec::new();
                            for round in 0..5 {
                                let part = vec![(chunk * 10 + round) as f64];
                                let all = m.all_gather(part)?;
                                seen.push(all.iter().map(|p| p[0]).collect());
                            }
                            Ok::<_, Broken>(seen)
                        })
                        .expect("no chunk fails")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for seen in &got {
            for (round, parts) in seen.iter().enumerate() {
                let want: Vec<f64> = (0..3).map(|c| (c * 10 + round) as f64).collect();
                assert_eq!(parts, &want);
            }
        }
        assert!(member().is_none(), "nothing is left on this thread");
    }

    /// Chunk 0 of two ends with `end` while chunk 1 gathers: whether chunk
    /// 0 ended well, chunk 1's gathering, and the chunk that failed first.
    fn beside_a_gathering<E>(
        end: impl FnOnce() -> Result<(), E>,
    ) -> (bool, Result<Arc<Vec<Vec<f64>>>, Broken>, Option<usize>) {
        let sync = ChunkSync::new(2);
        let (ended, gathered) = std::thread::scope(|s| {
            let waiting =
                s.spawn(|| as_member(&sync, 1, || member().unwrap().all_gather(vec![1.0])));
            let ended = as_member(&sync, 0, end).is_ok();
            (ended, waiting.join().unwrap())
        });
        (ended, gathered, sync.first_failure())
    }

    #[test]
    fn a_failed_chunk_breaks_the_others_gatherings() {
        let (ended, gathered, failed) = beside_a_gathering(|| Err("chunk 0 fails"));
        assert!(!ended);
        assert_eq!(gathered, Err(Broken));
        assert_eq!(failed, Some(0));
    }

    #[test]
    fn a_chunk_that_ends_early_breaks_a_gathering_it_skips() {
        let (ended, gathered, failed) = beside_a_gathering(|| Ok::<(), Broken>(()));
        assert!(ended);
        assert_eq!(gathered, Err(Broken));
        assert_eq!(failed, Some(1));
    }

    #[test]
    fn a_panicking_chunk_counts_as_failed() {
        let sync = ChunkSync::new(2);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            as_member(&sync, 1, || -> Result<(), Broken> {
                panic!("inside a chunk")
            })
        }));
        assert!(caught.is_err());
        assert_eq!(sync.first_failure(), Some(1));
        assert!(member().is_none());
        assert_eq!(sync.all_gather(0, vec![0.0]), Err(Broken));
    }
}
