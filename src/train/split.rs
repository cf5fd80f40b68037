//! A training step that cuts its batch into chunks and runs their forward
//! and backward passes side by side, each on its own replica of the model.
//!
//! A small network's step is a chain of short operations. Each of them
//! splits its work over the pool's threads, but between them runs serial
//! work (dfdx's copies and zero fills, the tape's bookkeeping), and the
//! other threads wait. Two halves of the batch, each run end to end by one
//! thread, keep both busy: on a 2-core machine two single-threaded LeNet
//! steps side by side do 40% more samples per second than one step on two
//! threads (`PERFORMANCE.md`).
//!
//! The gradient of a loss that is a mean over the samples (cross-entropy,
//! mean squared error) is the mean of the chunks' gradients, weighted by
//! their sizes: [`SplitStep`] computes exactly that, in a fixed order, so
//! the result depends on the chunk count but not on the thread count.
//!
//! A batch norm in training mode normalizes by the statistics of the whole
//! batch. On the CPU the chunks of a model with batch norms share them:
//! each chunk runs on a thread of its own, and each batch norm gathers
//! every chunk's statistics in its forward pass and every chunk's gradient
//! sums in its backward pass (PyTorch's `SyncBatchNorm`, between threads;
//! see `ops::batch_norm::sync`). The step is then the whole batch's up to
//! rounding, and so are the running statistics. On CUDA, whose chunks run
//! one after the other, each chunk normalizes by its own statistics (as
//! data-parallel training does per device without `SyncBatchNorm`).
use super::classifier::{ImageClassifier, Logits};
use super::TrainError;
use crate::data::Batch;
use crate::error::{device, TypedErrors};
use crate::ops::batch_norm::sync::{as_member, ChunkSync};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorRef,
};
use dfdx::nn::{ToDevice, ZeroGrads};
use dfdx::prelude::*;
use std::sync::Mutex;

/// The loss a [`SplitStep`] runs on each chunk: of the logits and the
/// one-hot targets, a mean over the chunk's samples.
pub type ChunkLoss<'a, N, D> = dyn Fn(Logits<N, D, OwnedTape<f32, D>>, Logits<N, D>) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>
    + Sync
    + 'a;

/// A training step on `chunks` parts of its batch at once (see the module
/// docs): chunk 0 runs on the model itself, chunk `i` on replica `i`, a
/// copy of the model on a device of its own (dfdx 0.13's allocation cache
/// is not safe for concurrent allocations of one size), on a worker of the
/// current rayon pool. Before each step the replicas take the model's
/// tensors; after it, buffers such as BatchNorm's running statistics are
/// averaged back into the model. The batch norms of chunks on the CPU
/// share their batch statistics (see the module docs): each chunk then runs
/// on a thread that the step starts on its first step and keeps (one per
/// chunk, whatever the current rayon pool's size; see
/// [`runs_on_own_threads`](Self::runs_on_own_threads)).
///
/// [`Classifier`](super::Classifier) trains through one; a loop of your own
/// can too:
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::data::Batch;
/// use static_nn::train::{cross_entropy, Optim, OptimizerConfig, SplitStep};
/// let dev = Cpu::seed_from_u64(0);
/// let mut model = dev.build_module::<(Input<1, 2, 2>, Flatten, Linear<4, 3>), f32>();
/// let mut opt = Optim::new(&model, OptimizerConfig::sgd(0.1))?;
/// let mut step = SplitStep::new(2)?;
/// let batch = Batch { images: vec![0.5; 5 * 4], labels: vec![0, 1, 2, 0, 1], channels: 1, rows: 2, cols: 2 };
/// // chunks of 3 and 2 samples, the loss weighted accordingly
/// let loss = step.step(&mut model, &dev, &mut opt, batch, &cross_entropy)?;
/// assert!(loss.is_finite());
/// assert_eq!(opt.steps(), 1);
/// # Ok::<(), static_nn::train::TrainError>(())
/// ```
pub struct SplitStep<M, D: Device<f32> + TypedErrors> {
    chunks: usize,
    /// Chunk 0's gradients, between [`step`](Self::step)s.
    grads: Option<Gradients<f32, D>>,
    replicas: Vec<Replica<M, D>>,
    /// Each used chunk's weight in the last step (its share of the batch).
    weights: Vec<f32>,
    /// The chunks' own threads, where they share batch statistics on the
    /// CPU (started on first use, see
    /// [`runs_on_own_threads`](Self::runs_on_own_threads)).
    threads: Option<ChunkThreads>,
}

/// One replica: a device of its own, the model on it, its gradients and,
/// after a step, its chunk's gradients end to end and its loss. (Public
/// only for [`ImageClassifier`]'s hidden methods: it cannot be named
/// outside the crate.)
pub struct Replica<M, D: Device<f32> + TypedErrors> {
    device: D,
    /// The model and its gradients (`None` only while dropping).
    parts: Option<(M, Gradients<f32, D>)>,
    flat: Vec<f32>,
    loss: f32,
}

impl<M, D: Device<f32> + TypedErrors> Drop for Replica<M, D> {
    fn drop(&mut self) {
        // the tensors go back to the device's cache when dropped, and dfdx
        // 0.13 frees a cache only when asked: drop them first, then free
        self.parts = None;
        // nothing to report a failure to; the memory is then kept
        let _ = self.device.release_cache();
    }
}

impl<M, D: Device<f32> + TypedErrors> SplitStep<M, D> {
    /// A step that cuts each batch into `chunks` parts of nearly equal size
    /// (the first ones one sample larger); a batch with fewer samples runs
    /// one per chunk. `1` runs the whole batch on the model, as a plain step.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] if `chunks` is 0.
    pub fn new(chunks: usize) -> Result<Self, TrainError> {
        if chunks == 0 {
            return Err(TrainError::InvalidHyperparameter(
                "the batch's chunk count must be at least 1, not 0".into(),
            ));
        }
        Ok(Self::with_chunks(chunks))
    }

    /// A step of `chunks` (at least 1) with nothing built yet.
    fn with_chunks(chunks: usize) -> Self {
        Self {
            chunks,
            grads: None,
            replicas: Vec::new(),
            weights: Vec::new(),
            threads: None,
        }
    }

    /// The step [`Classifier`](super::Classifier) takes by default for
    /// `model`: 2 chunks on the CPU for a convolutional network (one with a
    /// 4-dimensional weight), whose gradients are then those of the whole
    /// batch up to rounding (its batch norms share their statistics); 1
    /// (the whole batch) otherwise.
    ///
    /// - A network of dense layers only has few activations per sample for
    ///   its parameters: its step is nearly all matrix products, which use
    ///   both threads on their own, and copying the parameters to a replica
    ///   and adding up the gradients costs more than the split gains (the
    ///   `Mlp`'s step: 85k against 139k samples/s on two threads).
    /// - On CUDA one device already runs the whole batch at once.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// use static_nn::train::SplitStep;
    /// let dev = Cpu::default();
    /// let lenet = dev.build_module::<LeNetClass, f32>();
    /// assert_eq!(SplitStep::auto(&lenet).chunks(), 2);
    /// let mlp = dev.build_module::<Mlp, f32>();
    /// assert_eq!(SplitStep::auto(&mlp).chunks(), 1);
    /// let resnet = dev.build_module::<MnistResNet, f32>(); // BatchNorm
    /// assert_eq!(SplitStep::auto(&resnet).chunks(), 2);
    /// ```
    pub fn auto(model: &M) -> Self
    where
        M: TensorCollection<f32, D>,
    {
        let (_, conv) = survey(model);
        Self::with_chunks(if D::SPLITS_BATCHES && conv { 2 } else { 1 })
    }

    /// The chunk count.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Whether steps of `model` run each chunk on a thread of this step's
    /// own: on the CPU, when the step splits a model with buffers (batch
    /// norms), whose chunks share their batch statistics. The current
    /// rayon pool's workers then have nothing to do during a step, so do
    /// not keep them looking for work around such steps
    /// ([`keep_workers_awake`](crate::parallel::keep_workers_awake)): they
    /// would take turns on the cores with the chunks' threads.
    /// [`Classifier::fit`](super::Classifier::fit) asks this.
    ///
    /// ```
    /// use static_nn::prelude::*;
    /// use static_nn::train::SplitStep;
    /// let dev = Cpu::default();
    /// let resnet = dev.build_module::<MnistResNet, f32>();
    /// assert!(SplitStep::auto(&resnet).runs_on_own_threads(&resnet));
    /// let lenet = dev.build_module::<LeNetClass, f32>();
    /// assert!(!SplitStep::auto(&lenet).runs_on_own_threads(&lenet));
    /// ```
    pub fn runs_on_own_threads(&self, model: &M) -> bool
    where
        M: TensorCollection<f32, D>,
    {
        self.chunks > 1 && D::SPLITS_BATCHES && survey(model).0
    }

    /// Drops the replicas (and their devices' caches) and chunk 0's
    /// gradients: the next step builds them again, the replicas on devices
    /// seeded from the model's device. [`Classifier`](super::Classifier)
    /// does this at the start of every epoch, so that a seeded run's
    /// dropout masks repeat when it resumes.
    pub fn reset(&mut self) {
        self.drop_replicas();
        self.grads = None;
        self.threads = None;
    }

    /// Drops the replicas (and their devices' caches) but keeps chunk 0's
    /// gradients, which belong to the model's device.
    pub(crate) fn drop_replicas(&mut self) {
        self.replicas.clear();
    }

    /// Chunk 0's gradients, kept from the step before or allocated for
    /// `model`; hand them back with [`keep_grads`](Self::keep_grads).
    pub(crate) fn take_grads(&mut self, model: &M) -> Result<Gradients<f32, D>, TrainError>
    where
        M: TensorCollection<f32, D>,
    {
        match self.grads.take() {
            Some(g) => Ok(g),
            None => Ok(model
                .try_alloc_grads()
                .map_err(device::<D>("allocating gradients"))?),
        }
    }

    /// Keeps chunk 0's (zeroed) gradients for the next step.
    pub(crate) fn keep_grads(&mut self, grads: Gradients<f32, D>) {
        self.grads = Some(grads);
    }

    /// One training step of `model` on `batch`: the forward and backward
    /// passes of every chunk, then `optimizer`'s update from the chunks'
    /// gradients weighted by their sizes. Returns the batch's loss, the
    /// chunks' losses weighted the same way.
    ///
    /// # Errors
    /// The batch's images do not fit the model ([`TrainError::Data`]), the
    /// device fails, the loss is not finite
    /// ([`TrainError::NonFiniteLoss`], batch 1 of epoch 1), or the
    /// optimizer's.
    pub fn step(
        &mut self,
        model: &mut M,
        dev: &D,
        optimizer: &mut super::Optim,
        batch: Batch,
        loss: &ChunkLoss<'_, M::Classes, D>,
    ) -> Result<f32, TrainError>
    where
        M: ImageClassifier<D>,
    {
        let grads = self.take_grads(model)?;
        let (mut grads, value) = self.forward_backward(model, dev, grads, batch, loss)?;
        if !value.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                epoch: 1,
                batch: 1,
                loss: value,
            });
        }
        if self.weights.len() > 1 {
            optimizer.update_reduced(model, &grads, &mut |flat| self.combine(flat))?;
        } else {
            optimizer.update(model, &grads)?;
        }
        model
            .try_zero_grads(&mut grads)
            .map_err(device::<D>("zeroing gradients"))?;
        self.keep_grads(grads);
        Ok(value)
    }

    /// The forward and backward passes of `batch`'s chunks: chunk 0 on
    /// `model` into `grads` (returned), the others on the replicas (built
    /// on first use), whose gradients [`combine`](Self::combine) then adds
    /// to chunk 0's. Returns the batch's loss too. The replicas' gradients
    /// are zeroed again; `grads` is the caller's to zero.
    pub(crate) fn forward_backward(
        &mut self,
        model: &mut M,
        dev: &D,
        grads: Gradients<f32, D>,
        mut batch: Batch,
        loss: &ChunkLoss<'_, M::Classes, D>,
    ) -> Result<(Gradients<f32, D>, f32), TrainError>
    where
        M: ImageClassifier<D>,
    {
        let sizes = chunk_sizes(batch.len(), self.chunks);
        let n = batch.len().max(1) as f32;
        self.weights = sizes.iter().map(|&s| s as f32 / n).collect();
        if sizes.len() == 1 {
            let (grads, value) = run_chunk(model, dev, grads, batch, loss)?;
            return Ok((grads, value));
        }
        // asked with the replicas' building (once an epoch in `fit`), not
        // every step
        if self.replicas.is_empty() && self.threads.is_none() && self.runs_on_own_threads(model) {
            self.threads = Some(ChunkThreads::start(self.chunks)?);
        }
        self.build_replicas(model, dev)?;
        self.sync_replicas(model, sizes.len() - 1);
        // the chunks' batches, cut from the end so that chunk 0 keeps the
        // batch's own buffers
        let mut tails = Vec::with_capacity(sizes.len() - 1);
        let mut end = batch.len();
        for &size in sizes[1..].iter().rev() {
            end -= size;
            tails.push(batch.split_off(end));
        }
        tails.reverse();
        let first = FirstChunk {
            model: &mut *model,
            dev,
            grads,
            batch,
        };
        let threads = self.threads.as_ref();
        let (first, failure) = M::run_chunks(first, &mut self.replicas, tails, loss, threads);
        if let Some(e) = failure {
            return Err(e);
        }
        let (grads, loss0) = first?;
        let mut value = self.weights[0] * loss0;
        for (w, r) in self.weights[1..].iter().zip(&self.replicas) {
            value += w * r.loss;
        }
        self.average_buffers(model, sizes.len() - 1);
        Ok((grads, value))
    }

    /// Turns `flat`, chunk 0's gradients end to end (as
    /// [`Optim::update_reduced`](super::Optim::update_reduced) gathers
    /// them), into the batch's: the chunks' gradients weighted by their
    /// sizes, added in chunk order.
    pub(crate) fn combine(&self, flat: &mut [f32]) -> Result<(), TrainError> {
        let Some((w0, rest)) = self.weights.split_first() else {
            return Ok(());
        };
        for (r, _) in self.replicas.iter().zip(rest) {
            if r.flat.len() != flat.len() {
                return Err(TrainError::OptimizerMismatch(format!(
                    "a replica of the model has {} trainable values, the optimizer gathered {}",
                    r.flat.len(),
                    flat.len()
                )));
            }
        }
        for g in flat.iter_mut() {
            *g *= w0;
        }
        for (r, &w) in self.replicas.iter().zip(rest) {
            for (g, x) in flat.iter_mut().zip(&r.flat) {
                *g += w * x;
            }
        }
        Ok(())
    }

    /// Whether the last step ran more than one chunk (its gradients then
    /// need [`combine`](Self::combine)).
    pub(crate) fn split_last(&self) -> bool {
        self.weights.len() > 1
    }

    /// Builds the replicas that are missing, each on a device seeded from
    /// `device`.
    fn build_replicas(&mut self, model: &M, dev: &D) -> Result<(), TrainError>
    where
        M: TensorCollection<f32, D, To<f32, D> = M>,
    {
        while self.replicas.len() + 1 < self.chunks {
            let own = dev.reseeded(dev.random_u64())?;
            let copy = model
                .try_to_device(&own)
                .map_err(device::<D>("copying the model to a replica's device"))?;
            let grads = copy
                .try_alloc_grads()
                .map_err(device::<D>("allocating a replica's gradients"))?;
            self.replicas.push(Replica {
                device: own,
                parts: Some((copy, grads)),
                flat: Vec::new(),
                loss: f32::NAN,
            });
        }
        Ok(())
    }

    /// Copies every tensor of `model` into the first `used` replicas.
    fn sync_replicas(&mut self, model: &M, used: usize)
    where
        M: TensorCollection<f32, D>,
    {
        let copies: Vec<&mut M> = self.replicas[..used]
            .iter_mut()
            .filter_map(|r| r.parts.as_mut().map(|(m, _)| m))
            .collect();
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: (model, copies),
            f: &mut CopyTensors { host: Vec::new() },
        });
        if let Err(never) = walked {
            match never {}
        }
    }

    /// Sets each buffer of `model` (a tensor the optimizer leaves alone) to
    /// the mean of its value there and in the first `used` replicas.
    fn average_buffers(&mut self, model: &mut M, used: usize)
    where
        M: TensorCollection<f32, D>,
    {
        let copies: Vec<&M> = self.replicas[..used]
            .iter()
            .filter_map(|r| r.parts.as_ref().map(|(m, _)| m))
            .collect();
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: (model, copies),
            f: &mut AverageBuffers {
                sum: Vec::new(),
                host: Vec::new(),
            },
        });
        if let Err(never) = walked {
            match never {}
        }
    }
}

impl<M, D: Device<f32> + TypedErrors> std::fmt::Debug for SplitStep<M, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitStep")
            .field("chunks", &self.chunks)
            .field("replicas", &self.replicas.len())
            .finish()
    }
}

impl<M: ImageClassifier<D>, D: Device<f32> + TypedErrors> Replica<M, D> {
    /// Chunk `batch`'s forward and backward passes on this replica; leaves
    /// its gradients in `flat` and its loss in `loss`.
    fn run(&mut self, batch: Batch, loss: &ChunkLoss<'_, M::Classes, D>) -> Result<(), TrainError> {
        let (model, grads) = self.parts.as_mut().expect("a replica's parts outlive it");
        let taken = std::mem::replace(grads, Gradients::leaky());
        let (mut g, value) = run_chunk(model, &self.device, taken, batch, loss)?;
        self.flat.clear();
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: &*model,
            f: &mut Flatten {
                grads: &g,
                out: &mut self.flat,
            },
        });
        if let Err(never) = walked {
            match never {}
        }
        model
            .try_zero_grads(&mut g)
            .map_err(device::<D>("zeroing a replica's gradients"))?;
        *grads = g;
        self.loss = value;
        Ok(())
    }
}

/// Chunk 0 of a step: the model itself, its device, its gradients and its
/// batch. (Public only for [`ImageClassifier`]'s hidden methods: it cannot
/// be named outside the crate.)
pub struct FirstChunk<'a, M, D: Device<f32>> {
    model: &'a mut M,
    dev: &'a D,
    grads: Gradients<f32, D>,
    batch: Batch,
}

impl<M: ImageClassifier<D>, D: Device<f32> + TypedErrors> FirstChunk<'_, M, D> {
    fn run(
        self,
        loss: &ChunkLoss<'_, M::Classes, D>,
    ) -> Result<(Gradients<f32, D>, f32), TrainError> {
        run_chunk(self.model, self.dev, self.grads, self.batch, loss)
    }
}

/// What running a step's chunks gives: chunk 0's gradients and loss, and
/// a replica's failure (the one that failed first where the chunks share
/// batch statistics, else the first replica's), to report before chunk
/// 0's result.
pub type ChunkOutcome<D> = (
    Result<(Gradients<f32, D>, f32), TrainError>,
    Option<TrainError>,
);

/// Runs chunk 0 on this thread and each replica's chunk as a job of the
/// current rayon pool, side by side (`rayon::in_place_scope`); with
/// `threads` (where the chunks share batch statistics), each on a thread of
/// its own ([`run_sharing_stats`]).
pub(crate) fn run_side_by_side<M, D>(
    first: FirstChunk<'_, M, D>,
    replicas: &mut [Replica<M, D>],
    chunks: Vec<Batch>,
    loss: &ChunkLoss<'_, M::Classes, D>,
    threads: Option<&ChunkThreads>,
) -> ChunkOutcome<D>
where
    M: ImageClassifier<D> + Send,
    D: Device<f32> + TypedErrors + Send + Sync,
{
    if let Some(threads) = threads {
        return run_sharing_stats(first, replicas, chunks, loss, threads);
    }
    let mut failures: Vec<Option<TrainError>> = Vec::new();
    failures.resize_with(chunks.len(), || None);
    let first = rayon::in_place_scope(|scope| {
        for ((replica, chunk), failure) in replicas.iter_mut().zip(chunks).zip(&mut failures) {
            scope.spawn(move |_| {
                if let Err(e) = replica.run(chunk, loss) {
                    *failure = Some(e);
                }
            });
        }
        first.run(loss)
    });
    (first, failures.into_iter().flatten().next())
}

/// Runs every chunk on a thread of its own, `threads[i]` (one-thread pools
/// that the [`SplitStep`] keeps), as a member of one [`ChunkSync`], so that
/// their batch norms normalize by the statistics of the whole batch. This
/// thread waits for them.
///
/// A chunk waits in each batch norm until every chunk has reached it, so
/// no thread may run two chunks, and no chunk may start on a thread that
/// holds work another chunk waits for: a thread of the current pool could
/// take a chunk's job up while it waits inside a parallel loop of another
/// chunk (or of another step). Each chunk's thread runs only its chunk,
/// whose parallel loops therefore run on that thread alone, and only there
/// is the thread a member of the step's [`ChunkSync`].
fn run_sharing_stats<M, D>(
    first: FirstChunk<'_, M, D>,
    replicas: &mut [Replica<M, D>],
    chunks: Vec<Batch>,
    loss: &ChunkLoss<'_, M::Classes, D>,
    threads: &ChunkThreads,
) -> ChunkOutcome<D>
where
    M: ImageClassifier<D> + Send,
    D: Device<f32> + TypedErrors + Send + Sync,
{
    let count = chunks.len() + 1;
    assert!(threads.pools.len() >= count, "a thread for every chunk");
    let sync = ChunkSync::new(count);
    let first_result = Mutex::new(None);
    // the replicas' results: chunk i's at i − 1
    let mut results: Vec<Mutex<Option<Result<(), TrainError>>>> = Vec::new();
    results.resize_with(count - 1, || Mutex::new(None));
    let mut tasks: Vec<Box<dyn FnOnce() + Send + '_>> = Vec::with_capacity(count);
    let (sync, first_result, results) = (&sync, &first_result, &results);
    tasks.push(Box::new(move || {
        *lock(first_result) = Some(as_member(sync, 0, || first.run(loss)));
    }));
    for (i, (replica, chunk)) in replicas.iter_mut().zip(chunks).enumerate() {
        tasks.push(Box::new(move || {
            *lock(&results[i]) = Some(as_member(sync, i + 1, || replica.run(chunk, loss)));
        }));
    }
    run_each(&threads.pools, tasks);
    let first = lock(first_result).take().expect("chunk 0's thread ran it");
    // the chunk that failed first has the cause; the others then failed
    // at a batch norm that could not gather their statistics
    let failure = match sync.first_failure() {
        Some(i) if i > 0 => lock(&results[i - 1]).take().and_then(Result::err),
        _ => None,
    };
    (first, failure)
}

/// Runs `tasks[i]` on `pools[i]`, all at once, and returns when all have
/// ended (a task's panic then unwinds from here).
fn run_each<'a>(pools: &[rayon::ThreadPool], mut tasks: Vec<Box<dyn FnOnce() + Send + 'a>>) {
    let Some(task) = tasks.pop() else {
        return;
    };
    pools[tasks.len()].in_place_scope(|scope| {
        scope.spawn(move |_| task());
        run_each(pools, tasks);
    });
}

/// The threads of a [`SplitStep`] whose chunks share batch statistics:
/// one-thread rayon pools, one per chunk, started on the first such step
/// and ended with the step (or [`SplitStep::reset`]). (Public only for
/// [`ImageClassifier`]'s hidden methods: it cannot be named outside the
/// crate.)
pub struct ChunkThreads {
    pools: Vec<rayon::ThreadPool>,
}

impl ChunkThreads {
    /// `count` threads, named after their chunks.
    fn start(count: usize) -> Result<Self, TrainError> {
        let pools = (0..count)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("static-nn chunk {i}"))
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                crate::DeviceError::new("starting a thread for each of the batch's chunks", e)
            })?;
        Ok(Self { pools })
    }
}

/// `m`'s value, also where a thread panicked while holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs chunk 0, then each replica's chunk, on this thread (for devices
/// that cannot move between threads); the first replica's failure. Each
/// chunk normalizes by its own batch statistics.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
pub(crate) fn run_in_turn<M: ImageClassifier<D>, D: Device<f32> + TypedErrors>(
    first: FirstChunk<'_, M, D>,
    replicas: &mut [Replica<M, D>],
    chunks: Vec<Batch>,
    loss: &ChunkLoss<'_, M::Classes, D>,
    _threads: Option<&ChunkThreads>,
) -> ChunkOutcome<D> {
    let first = first.run(loss);
    let mut failure = None;
    for (replica, chunk) in replicas.iter_mut().zip(chunks) {
        if let Err(e) = replica.run(chunk, loss) {
            failure.get_or_insert(e);
        }
    }
    (first, failure)
}

/// The forward and backward passes of one chunk on `model`, into `grads`;
/// returns the gradients and the loss.
fn run_chunk<M: ImageClassifier<D>, D: Device<f32> + TypedErrors>(
    model: &mut M,
    dev: &D,
    grads: Gradients<f32, D>,
    batch: Batch,
    loss: &ChunkLoss<'_, M::Classes, D>,
) -> Result<(Gradients<f32, D>, f32), TrainError> {
    let targets = batch.one_hot_dim::<M::Classes, D>(dev)?;
    let x = batch.images_tensor::<M::Image, D>(dev)?;
    let logits = model
        .logits_mut_no_input_grad(x.traced(grads))
        .map_err(device::<D>("the forward pass"))?;
    let l = loss(logits, targets);
    let value = l.as_vec().first().copied().unwrap_or(f32::NAN);
    let grads = l.try_backward().map_err(device::<D>("the backward pass"))?;
    Ok((grads, value))
}

/// The sizes of the chunks of a batch of `n` samples cut into at most
/// `chunks`: nearly equal, the first ones one larger, none empty (one
/// chunk of 0 for an empty batch).
fn chunk_sizes(n: usize, chunks: usize) -> Vec<usize> {
    let k = chunks.min(n).max(1);
    (0..k).map(|i| n / k + usize::from(i < n % k)).collect()
}

/// Whether `model` has a tensor that the optimizer leaves alone (a
/// buffer), and whether it has a trainable 4-dimensional one (a
/// convolution's weight).
fn survey<M: TensorCollection<f32, D>, D: Device<f32>>(model: &M) -> (bool, bool) {
    let mut found = Survey::default();
    let walked = M::iter_tensors(&mut RecursiveWalker {
        m: model,
        f: &mut found,
    });
    if let Err(never) = walked {
        match never {}
    }
    (found.buffers, found.conv)
}

/// What [`survey`] found.
#[derive(Default)]
struct Survey {
    buffers: bool,
    conv: bool,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Survey {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        _t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.buffers |= !opts.do_gradient_update;
        self.conv |= opts.do_gradient_update && S::NUM_DIMS == 4;
        Ok(None)
    }
}

/// Appends each trainable tensor's gradient to `out`, in the model's order
/// (the optimizer's).
struct Flatten<'a, D: Device<f32>> {
    grads: &'a Gradients<f32, D>,
    out: &'a mut Vec<f32>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Flatten<'_, D> {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        t: &Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if opts.do_gradient_update {
            let at = self.out.len();
            self.out.resize(at + t.shape().num_elements(), 0.0);
            self.grads.get(t).copy_into(&mut self.out[at..]);
        }
        Ok(None)
    }
}

/// Copies each tensor of a model into its replicas, through `host`.
struct CopyTensors {
    host: Vec<f32>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for CopyTensors {
    type Viewer = (ViewTensorRef, Vec<ViewTensorMut>);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _opts: TensorOptions<S, f32, D>,
        (src, dsts): (&Tensor<S, f32, D>, Vec<&mut Tensor<S, f32, D>>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.host.resize(src.shape().num_elements(), 0.0);
        src.copy_into(&mut self.host);
        for dst in dsts {
            dst.copy_from(&self.host);
        }
        Ok(None)
    }
}

/// Averages each buffer of a model with its replicas'.
struct AverageBuffers {
    sum: Vec<f32>,
    host: Vec<f32>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for AverageBuffers {
    type Viewer = (ViewTensorMut, Vec<ViewTensorRef>);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, D>,
        (dst, srcs): (&mut Tensor<S, f32, D>, Vec<&Tensor<S, f32, D>>),
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        if opts.do_gradient_update || srcs.is_empty() {
            return Ok(None);
        }
        let len = dst.shape().num_elements();
        self.sum.resize(len, 0.0);
        self.host.resize(len, 0.0);
        dst.copy_into(&mut self.sum);
        for src in &srcs {
            src.copy_into(&mut self.host);
            for (s, h) in self.sum.iter_mut().zip(&self.host) {
                *s += h;
            }
        }
        let k = (srcs.len() + 1) as f32;
        for s in &mut self.sum {
            *s /= k;
        }
        dst.copy_from(&self.sum);
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_nearly_equal_and_never_empty() {
        assert_eq!(chunk_sizes(64, 2), [32, 32]);
        assert_eq!(chunk_sizes(5, 2), [3, 2]);
        assert_eq!(chunk_sizes(7, 3), [3, 2, 2]);
        assert_eq!(chunk_sizes(1, 2), [1]);
        assert_eq!(chunk_sizes(0, 2), [0]);
        assert_eq!(chunk_sizes(10, 1), [10]);
    }
}
