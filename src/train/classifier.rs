//! The `Classifier` driver.
use super::checkpoint::RunState;
use super::distributed::{self, Collective, CommStats, DataParallel};
use super::observer::{TrainEvent, TrainObserver};
use super::optim::AnyOptimizer;
use super::split::{self, ChunkLoss, ChunkOutcome, ChunkThreads, FirstChunk, Replica, SplitStep};
use super::{Evaluation, Optim, OptimizerConfig, Schedule, TrainError};
use crate::data::{Batch, DataLoader};
use crate::error::{device, TypedErrors};
use crate::nn::NoInputGrad;
use crate::shapes::{ImageInput, ImageShape};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorRef,
};
use dfdx::nn::{Module, ModuleMut, TensorCollection, ZeroGrads};
use dfdx::prelude::*;
use std::time::Instant;

/// Logits for a batch: `(batch, N)`.
pub type Logits<N, D, T = NoneTape> = Tensor<(usize, N), f32, D, T>;

/// A loss of the logits and one-hot targets, as the epochs run it (what
/// [`Classifier::fit_with_loss`] takes, behind a reference).
type LossFn<'a, N, D> = ChunkLoss<'a, N, D>;

/// A batch of the images that model `M` takes: `(batch, C, H, W)`.
pub type ImagesOf<M, D, T = NoneTape> =
    Tensor<<<M as ImageInput>::Image as ImageShape>::Batched, f32, D, T>;

/// A typed model that classifies the images it declares
/// ([`ImageInput`]: `(B, C, H, W)`) into `Classes` classes: any static-nn
/// network that declares its input and ends in `Linear<_, N>`. The model's
/// type alone decides the image shape and the class count; nothing is
/// spelled at the call site.
///
/// It runs in two modes. Training ([`Classifier::fit`]) calls dfdx's
/// `ModuleMut::forward_mut` on a traced batch, passed as [`NoInputGrad`]
/// (the batch's own gradient is not computed): dropout is active and batch
/// norms use and update batch statistics. Tuples, derived struct models and
/// `#[forward]` blocks take `NoInputGrad` on their own; a model whose
/// `ModuleMut` you write by hand also implements
/// `ModuleMut<NoInputGrad<ImagesOf<Self, D, OwnedTape<f32, D>>>>`, at its
/// simplest by running on `x.0`. Inference
/// ([`evaluate`](Classifier::evaluate), [`predict`](Classifier::predict))
/// calls `Module::forward`, which takes the model by `&self`: it cannot
/// apply dropout or change any statistic.
///
/// The model moves between devices as itself (`TensorCollection<f32, D,
/// To<f32, D> = Self>`, as every dfdx and static-nn module and derived
/// struct model does), and on the CPU it is `Send`: a training step may run
/// chunks of its batch on replicas of it, on other threads ([`SplitStep`]).
/// So it is implemented per device (the CPU's needs `Send`; dfdx's CUDA
/// device is not `Send`): code generic over the device that picks a
/// concrete model states it, e.g. `<LeNetClass as BuildOnDevice<D,
/// f32>>::Built: ImageClassifier<D>`, as the `lenet`, `train` and `infer`
/// examples do.
pub trait ImageClassifier<D: Device<f32>>:
    ImageInput + TensorCollection<f32, D, To<f32, D> = Self>
{
    /// The class dimension of the logits, `Const<N>`.
    type Classes: ConstDim;

    /// Logits in inference mode.
    fn logits(&self, x: ImagesOf<Self, D>) -> Result<Logits<Self::Classes, D>, D::Err>;

    /// Logits in training mode, on a traced batch.
    #[allow(clippy::type_complexity)]
    fn logits_mut(
        &mut self,
        x: ImagesOf<Self, D, OwnedTape<f32, D>>,
    ) -> Result<Logits<Self::Classes, D, OwnedTape<f32, D>>, D::Err>;

    /// Logits in training mode, on a traced batch whose own gradient is not
    /// wanted ([`NoInputGrad`]): the backward pass computes the gradients of
    /// the parameters only. [`Classifier::fit`] trains this way.
    #[allow(clippy::type_complexity)]
    fn logits_mut_no_input_grad(
        &mut self,
        x: ImagesOf<Self, D, OwnedTape<f32, D>>,
    ) -> Result<Logits<Self::Classes, D, OwnedTape<f32, D>>, D::Err>;

    /// Runs chunk 0 and each replica's chunk: side by side on the CPU (with
    /// `threads`, each on its own and sharing their batch norms'
    /// statistics), one after the other on CUDA (whose device is not
    /// `Send`).
    #[doc(hidden)]
    fn run_chunks(
        first: FirstChunk<'_, Self, D>,
        replicas: &mut [Replica<Self, D>],
        chunks: Vec<Batch>,
        loss: &ChunkLoss<'_, Self::Classes, D>,
        threads: Option<&ChunkThreads>,
    ) -> ChunkOutcome<D>
    where
        D: TypedErrors,
        Self: Sized;

    /// [`Classifier`]'s epoch, on a worker of the global rayon pool when
    /// called from outside any pool on the CPU.
    #[doc(hidden)]
    fn epoch_on_worker(
        clf: &mut Classifier<Self, D>,
        loader: &DataLoader,
        epoch: usize,
        loss: &LossFn<'_, Self::Classes, D>,
        lr: &(dyn Fn(usize) -> f64 + Sync),
    ) -> Result<EpochStats, TrainError>
    where
        D: TypedErrors,
        Self: Sized;
}

/// The blanket [`ImageClassifier`] of device `$dev`, whose models have the
/// extra bounds `$extra`, with its way of running replicas and epochs.
macro_rules! image_classifier_on {
    ($dev:ty, [$($extra:tt)*], $replicas:path, $epoch:ident) => {
        impl<N: ConstDim, M> ImageClassifier<$dev> for M
        where
            M: ImageInput
                + TensorCollection<f32, $dev, To<f32, $dev> = M>
                $($extra)*
                + Module<ImagesOf<M, $dev>, Output = Logits<N, $dev>, Error = <$dev as HasErr>::Err>
                + ModuleMut<
                    ImagesOf<M, $dev, OwnedTape<f32, $dev>>,
                    Output = Logits<N, $dev, OwnedTape<f32, $dev>>,
                    Error = <$dev as HasErr>::Err,
                > + ModuleMut<
                    NoInputGrad<ImagesOf<M, $dev, OwnedTape<f32, $dev>>>,
                    Output = Logits<N, $dev, OwnedTape<f32, $dev>>,
                    Error = <$dev as HasErr>::Err,
                >,
        {
            type Classes = N;

            fn logits(
                &self,
                x: ImagesOf<Self, $dev>,
            ) -> Result<Logits<N, $dev>, <$dev as HasErr>::Err> {
                self.try_forward(x)
            }

            fn logits_mut(
                &mut self,
                x: ImagesOf<Self, $dev, OwnedTape<f32, $dev>>,
            ) -> Result<Logits<N, $dev, OwnedTape<f32, $dev>>, <$dev as HasErr>::Err> {
                self.try_forward_mut(x)
            }

            fn logits_mut_no_input_grad(
                &mut self,
                x: ImagesOf<Self, $dev, OwnedTape<f32, $dev>>,
            ) -> Result<Logits<N, $dev, OwnedTape<f32, $dev>>, <$dev as HasErr>::Err> {
                self.try_forward_mut(NoInputGrad(x))
            }

            fn run_chunks(
                first: FirstChunk<'_, Self, $dev>,
                replicas: &mut [Replica<Self, $dev>],
                chunks: Vec<Batch>,
                loss: &ChunkLoss<'_, N, $dev>,
                threads: Option<&ChunkThreads>,
            ) -> ChunkOutcome<$dev> {
                $replicas(first, replicas, chunks, loss, threads)
            }

            fn epoch_on_worker(
                clf: &mut Classifier<Self, $dev>,
                loader: &DataLoader,
                epoch: usize,
                loss: &LossFn<'_, N, $dev>,
                lr: &(dyn Fn(usize) -> f64 + Sync),
            ) -> Result<EpochStats, TrainError> {
                $epoch(clf, loader, epoch, loss, lr)
            }
        }
    };
}

image_classifier_on!(Cpu, [+ Send], split::run_side_by_side, epoch_on_a_worker);
#[cfg(feature = "cuda")]
image_classifier_on!(Cuda, [], split::run_in_turn, epoch_here);

/// The epoch on a worker of the current rayon pool, or of the global one
/// from outside any pool (`rayon::scope`), this thread waiting: each of a
/// step's hundreds of parallel loops then starts from a worker, instead of
/// waking the pool and parking this thread every time.
fn epoch_on_a_worker<M: ImageClassifier<Cpu> + Send>(
    clf: &mut Classifier<M, Cpu>,
    loader: &DataLoader,
    epoch: usize,
    loss: &LossFn<'_, M::Classes, Cpu>,
    lr: &(dyn Fn(usize) -> f64 + Sync),
) -> Result<EpochStats, TrainError> {
    if rayon::current_thread_index().is_some() {
        epoch_here(clf, loader, epoch, loss, lr)
    } else {
        rayon::scope(|_| epoch_here(clf, loader, epoch, loss, lr))
    }
}

/// The epoch on this thread, with the pool's workers kept awake, unless
/// the steps run on threads of their own
/// ([`SplitStep::runs_on_own_threads`]).
fn epoch_here<M: ImageClassifier<D>, D: Device<f32> + TypedErrors>(
    clf: &mut Classifier<M, D>,
    loader: &DataLoader,
    epoch: usize,
    loss: &LossFn<'_, M::Classes, D>,
    lr: &(dyn Fn(usize) -> f64 + Sync),
) -> Result<EpochStats, TrainError> {
    if clf.split.runs_on_own_threads(&clf.model) {
        clf.epoch_steps(loader, epoch, loss, lr)
    } else {
        crate::parallel::keep_workers_awake(|| clf.epoch_steps(loader, epoch, loss, lr))
    }
}

/// The number of classes of model `M`.
pub fn classes_of<M: ImageClassifier<D>, D: Device<f32>>() -> usize {
    <M::Classes as ConstDim>::SIZE
}

/// Cross-entropy on logits against one-hot targets (PyTorch's
/// `nn.CrossEntropyLoss`), the default loss of [`Classifier::fit`].
pub fn cross_entropy<N: ConstDim, D: Device<f32>>(
    logits: Logits<N, D, OwnedTape<f32, D>>,
    targets: Logits<N, D>,
) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>> {
    cross_entropy_with_logits_loss(logits, targets)
}

/// One epoch's figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean loss over the epoch's batches (in a data-parallel run, of the
    /// global batches: the same on every rank).
    pub loss: f32,
    /// Training samples seen (in a data-parallel run, by all ranks: the
    /// global batches').
    pub samples: usize,
    /// Wall time of the epoch, in seconds.
    pub seconds: f64,
}

impl EpochStats {
    /// Training throughput.
    pub fn samples_per_sec(&self) -> f64 {
        self.samples as f64 / self.seconds.max(1e-9)
    }
}

/// Predicted labels and class probabilities.
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    /// The most probable class of each sample.
    pub labels: Vec<usize>,
    /// Softmax probabilities of each sample, one per class.
    pub probabilities: Vec<Vec<f32>>,
}

/// The notebook's `Classifier`: a typed model, its device and optimizer.
///
/// ```no_run
/// use static_nn::prelude::*;
/// use static_nn::data::{DataLoader, LoaderConfig, IdxDataset, MNIST};
/// use static_nn::train::{Classifier, OptimizerConfig, TrainEvent};
/// use std::sync::Arc;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let data = IdxDataset::load(&MNIST, None)?;
/// let cfg = LoaderConfig { batch_size: 64, shuffle: Some(0), ..Default::default() };
/// let train = DataLoader::new(Arc::new(data.train), cfg);
/// let test = DataLoader::new(Arc::new(data.test), LoaderConfig::default());
/// let dev = Cpu::seed_from_u64(0);
/// let model = dev.build_module::<LeNetClass, f32>();
/// let mut clf = Classifier::new(model, dev, OptimizerConfig::sgd(0.01));
/// // static-nn prints nothing: an observer decides what to show
/// clf.set_observer(|e: TrainEvent| {
///     if let TrainEvent::EpochFinished { stats, epochs, .. } = e {
///         println!("Epoch: {}/{epochs}, Loss: {:.4}", stats.epoch, stats.loss);
///     }
/// });
/// clf.fit(&train, 10)?; // the model's type fixes 1×28×28 images and 10 classes
/// println!("{}", clf.evaluate(&test)?.accuracy_line("test"));
/// # Ok(()) }
/// ```
pub struct Classifier<M, D: Device<f32> + TypedErrors> {
    /// The model being trained.
    pub model: M,
    /// Its device.
    pub device: D,
    pub(super) optimizer: AnyOptimizer<M, D>,
    /// How each training step cuts its batch (see [`set_batch_chunks`](Self::set_batch_chunks)),
    /// and the model's gradients between steps.
    pub(super) split: SplitStep<M, D>,
    observer: Option<Box<dyn TrainObserver>>,
    /// Where a [`train`](Self::train) run stands (epochs, validation scores).
    pub(super) run: RunState,
    /// The run's seed: each epoch of [`train`](Self::train) runs on a device
    /// seeded by it and the epoch.
    pub(super) seed: Option<u64>,
    /// Loss per finished epoch.
    pub history: Vec<EpochStats>,
    /// The learning-rate schedule of [`fit`](Self::fit) (default: constant).
    pub schedule: Schedule,
    pub(super) base_lr: f64,
    /// Data-parallel training over several ranks, if set.
    pub(super) dist: Option<DataParallel>,
}

impl<M: TensorCollection<f32, D>, D: Device<f32> + TypedErrors> Classifier<M, D> {
    /// Wraps `model` (already on `device`) with a fresh optimizer, and no
    /// observer: training and evaluation are silent until
    /// [`set_observer`](Self::set_observer).
    pub fn new(model: M, device: D, optimizer: OptimizerConfig) -> Self {
        let optimizer = AnyOptimizer::new(&model, optimizer);
        let base_lr = optimizer.learning_rate();
        let split = SplitStep::auto(&model);
        Self {
            model,
            device,
            optimizer,
            split,
            observer: None,
            history: Vec::new(),
            schedule: Schedule::default(),
            base_lr,
            run: RunState::default(),
            seed: None,
            dist: None,
        }
    }

    /// Trains data-parallel over the ranks of `comm` from now on (see
    /// [`DataParallel`]): broadcasts rank 0's parameters and buffers to every
    /// rank, so that all replicas start identical; then every training batch
    /// is this rank's slice of the global batch, the gradients are averaged
    /// over the ranks before each step, the replicas' parameters are
    /// compared every [`DataParallel::check_every`] steps, and
    /// [`evaluate`](Self::evaluate) is sharded and its counts added up.
    /// Every rank must call it, and then the same methods in the same order.
    ///
    /// # Errors
    /// [`TrainError::Distributed`] if the broadcast fails.
    pub fn distribute(&mut self, comm: Box<dyn Collective>) -> Result<(), TrainError> {
        let mut bcast = Broadcast {
            comm: &*comm,
            host: Vec::new(),
        };
        M::iter_tensors(&mut RecursiveWalker {
            m: &mut self.model,
            f: &mut bcast,
        })?;
        self.dist = Some(DataParallel::new(comm));
        Ok(())
    }

    /// The data-parallel setting, if [`distribute`](Self::distribute)d.
    pub fn data_parallel(&self) -> Option<&DataParallel> {
        self.dist.as_ref()
    }

    /// The data-parallel setting, to change its
    /// [`check_every`](DataParallel::check_every).
    pub fn data_parallel_mut(&mut self) -> Option<&mut DataParallel> {
        self.dist.as_mut()
    }

    /// This process's rank (0 unless distributed).
    pub fn rank(&self) -> usize {
        self.dist.as_ref().map_or(0, DataParallel::rank)
    }

    /// The number of ranks (1 unless distributed).
    pub fn world_size(&self) -> usize {
        self.dist.as_ref().map_or(1, DataParallel::world_size)
    }

    /// Whether this is rank 0, the one that writes checkpoints (always true
    /// unless distributed).
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// The communication figures so far, if distributed.
    pub fn communication(&self) -> Option<CommStats> {
        self.dist.as_ref().map(|d| d.stats)
    }

    /// A hash (FNV-1a of the f32 bits) of every trainable tensor, in the
    /// model's order: equal on all ranks while the replicas agree.
    pub fn parameter_hash(&self) -> u64 {
        let mut h = Hash {
            hash: distributed::FNV_OFFSET,
        };
        let walked = M::iter_tensors(&mut RecursiveWalker {
            m: &self.model,
            f: &mut h,
        });
        if let Err(never) = walked {
            match never {}
        }
        h.hash
    }

    /// Compares the replicas' parameter hashes after optimizer step `step`.
    fn check_replicas(&self, step: u64) -> Result<(), TrainError> {
        let Some(dp) = &self.dist else {
            return Ok(());
        };
        let hashes = dp.comm.all_gather_u64(self.parameter_hash())?;
        if hashes.iter().any(|h| *h != hashes[0]) {
            return Err(TrainError::ReplicasDiverged { step, hashes });
        }
        Ok(())
    }

    /// `loader` cut for this rank, if distributed: `loader` itself when it
    /// is not distributed or already cut so.
    fn shard_of<'a>(
        &self,
        loader: &'a DataLoader,
    ) -> Result<std::borrow::Cow<'a, DataLoader>, TrainError> {
        let Some(dp) = &self.dist else {
            return Ok(std::borrow::Cow::Borrowed(loader));
        };
        let (rank, world) = (dp.rank(), dp.world_size());
        match loader.shard() {
            Some(s) if s == (rank, world) => Ok(std::borrow::Cow::Borrowed(loader)),
            Some((r, w)) => Err(TrainError::Distributed(format!(
                "the loader is sharded for rank {r} of {w}, this is rank {rank} of {world}"
            ))),
            None => Ok(std::borrow::Cow::Owned(
                loader.clone().sharded(rank, world)?,
            )),
        }
    }

    /// [`new`](Self::new) that checks the optimizer's hyper-parameters now
    /// rather than at the first update.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`], naming the parameter.
    pub fn try_new(model: M, device: D, optimizer: OptimizerConfig) -> Result<Self, TrainError> {
        optimizer.validate()?;
        Ok(Self::new(model, device, optimizer))
    }

    /// How many chunks each training step cuts its batch into, run side
    /// by side on replicas of the model (see [`SplitStep`]). The default is
    /// [`SplitStep::auto`]'s: 2 for a convolutional network on the CPU,
    /// else 1.
    pub fn batch_chunks(&self) -> usize {
        self.split.chunks()
    }

    /// Sets [`batch_chunks`](Self::batch_chunks). The count is part of the
    /// run: the gradients' rounding depends on it (not on the thread count),
    /// and so do the dropout masks. On the CPU the chunks' batch norms share
    /// the whole batch's statistics (on CUDA each chunk normalizes by its
    /// own, and the running averages are averaged over the chunks).
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] if `chunks` is 0; the setting
    /// is unchanged then.
    pub fn set_batch_chunks(&mut self, chunks: usize) -> Result<(), TrainError> {
        self.split = SplitStep::new(chunks)?;
        Ok(())
    }

    /// Clips the gradients to a total L2 norm of `max_norm` before each
    /// step (PyTorch's `clip_grad_norm_`); `None` turns it off.
    ///
    /// # Errors
    /// [`TrainError::InvalidHyperparameter`] unless `max_norm` is finite and positive.
    pub fn set_clip_grad_norm(&mut self, max_norm: Option<f64>) -> Result<(), TrainError> {
        self.optimizer.inner_mut().set_clip_grad_norm(max_norm)
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &Optim {
        self.optimizer.inner()
    }

    /// Seeds the run: with `Some(seed)` each epoch of [`train`](Self::train)
    /// runs on a device seeded by `seed` and the epoch, so that dropout
    /// masks repeat and a resumed run is bit-identical. Data order and
    /// augmentation are seeded by the loader's own seed.
    pub fn set_seed(&mut self, seed: Option<u64>) {
        self.seed = seed;
    }

    /// The run's seed (see [`set_seed`](Self::set_seed)).
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Where the last [`train`](Self::train) or [`resume`](Self::resume)
    /// left the run.
    pub fn run_state(&self) -> &RunState {
        &self.run
    }

    /// Sends every [`TrainEvent`] of [`fit`](Self::fit) and
    /// [`evaluate`](Self::evaluate) to `observer` (any `Fn(TrainEvent)`
    /// closure, or a [`TrainObserver`]), replacing the one before.
    pub fn set_observer(&mut self, observer: impl TrainObserver + 'static) {
        self.observer = Some(Box::new(observer));
    }

    /// Removes the observer: training and evaluation are silent again.
    pub fn clear_observer(&mut self) {
        self.observer = None;
    }

    pub(super) fn tell(&self, event: TrainEvent<'_>) {
        if let Some(o) = &self.observer {
            o.on_event(event);
        }
    }

    /// The optimizer's current learning rate.
    pub fn learning_rate(&self) -> f64 {
        self.optimizer.learning_rate()
    }

    /// Trains for `epochs` epochs with cross-entropy on logits.
    pub fn fit(&mut self, loader: &DataLoader, epochs: usize) -> Result<&[EpochStats], TrainError>
    where
        M: ImageClassifier<D>,
    {
        self.fit_with_loss(loader, epochs, cross_entropy::<M::Classes, D>)
    }

    /// Trains for `epochs` epochs with any loss of the logits and one-hot targets.
    pub fn fit_with_loss<L>(
        &mut self,
        loader: &DataLoader,
        epochs: usize,
        loss: L,
    ) -> Result<&[EpochStats], TrainError>
    where
        M: ImageClassifier<D>,
        L: Fn(
                Logits<M::Classes, D, OwnedTape<f32, D>>,
                Logits<M::Classes, D>,
            ) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>
            + Sync,
    {
        let first = self.history.len();
        let total = first + epochs;
        for e in first..total {
            let (schedule, base, batches) = (self.schedule, self.base_lr, loader.len());
            let lr = move |b: usize| schedule.lr_at(base, e - first, b, epochs, batches);
            let stats = self.fit_epoch_with(loader, e, &loss, &lr)?;
            self.tell(TrainEvent::EpochFinished {
                stats: &stats,
                epochs: total,
                lr: self.optimizer.learning_rate(),
            });
        }
        Ok(&self.history[first..])
    }

    /// One epoch (0-based `epoch`, which also picks the shuffle order) at
    /// the optimizer's current learning rate.
    pub fn fit_epoch<L>(
        &mut self,
        loader: &DataLoader,
        epoch: usize,
        loss: &L,
    ) -> Result<EpochStats, TrainError>
    where
        M: ImageClassifier<D>,
        L: Fn(
                Logits<M::Classes, D, OwnedTape<f32, D>>,
                Logits<M::Classes, D>,
            ) -> Tensor<Rank0, f32, D, OwnedTape<f32, D>>
            + Sync,
    {
        let lr = self.optimizer.learning_rate();
        self.fit_epoch_with(loader, epoch, loss, &move |_| lr)
    }

    /// One epoch with the learning rate of each 0-based batch from `lr`,
    /// with the rayon pool's workers kept awake between the steps' parallel
    /// loops ([`crate::parallel::keep_workers_awake`]); not in data-parallel
    /// training, where the ranks often share the cores and each waits for
    /// the others in every all-reduce. Called from outside any rayon pool,
    /// the epoch runs on a worker of the global pool (`rayon::scope`), this
    /// thread waiting: each of a step's hundreds of parallel loops then
    /// starts from a worker, instead of waking the pool and parking this
    /// thread every time. On a worker of a pool of two or more threads, the
    /// loader's next batch is built by another worker while this one updates
    /// the weights (`parallel::alongside`).
    pub(super) fn fit_epoch_with(
        &mut self,
        loader: &DataLoader,
        epoch: usize,
        loss: &LossFn<'_, M::Classes, D>,
        lr: &(dyn Fn(usize) -> f64 + Sync),
    ) -> Result<EpochStats, TrainError>
    where
        M: ImageClassifier<D>,
    {
        if self.dist.is_some() {
            self.epoch_steps(loader, epoch, loss, lr)
        } else {
            M::epoch_on_worker(self, loader, epoch, loss, lr)
        }
    }

    /// The steps of [`Classifier::fit_epoch_with`].
    fn epoch_steps(
        &mut self,
        loader: &DataLoader,
        epoch: usize,
        loss: &LossFn<'_, M::Classes, D>,
        lr: &(dyn Fn(usize) -> f64 + Sync),
    ) -> Result<EpochStats, TrainError>
    where
        M: ImageClassifier<D>,
    {
        if loader.is_empty() {
            return Err(TrainError::EmptyLoader);
        }
        let loader = &*self.shard_of(loader)?;
        let n_batches = loader.len();
        self.optimizer.set_learning_rate(lr(0));
        self.tell(TrainEvent::EpochStarted {
            epoch: epoch + 1,
            batches: n_batches,
            lr: self.optimizer.learning_rate(),
        });
        let start = Instant::now();
        let (mut sum, mut batches, mut samples) = (0.0f64, 0usize, 0usize);
        let mut grads = self.split.take_grads(&self.model)?;
        // replicas seeded anew from this epoch's device
        self.split.drop_replicas();
        let mut epoch_batches = loader.epoch(epoch);
        let mut next = epoch_batches.next();
        let mut b = 0;
        while let Some(batch) = next.take() {
            self.optimizer.set_learning_rate(lr(b));
            let non_finite = |value: f32| TrainError::NonFiniteLoss {
                epoch: epoch + 1,
                batch: b + 1,
                loss: value,
            };
            // a rank's slice of a small last batch may be empty: its zeroed
            // gradients then count for nothing in the weighted mean
            let mut value = 0.0f32;
            let n = batch.len();
            let mut split = false;
            if n > 0 || self.dist.is_none() {
                let (g, v) = self.split.forward_backward(
                    &mut self.model,
                    &self.device,
                    grads,
                    batch,
                    loss,
                )?;
                (grads, value, split) = (g, v, self.split.split_last());
                if !value.is_finite() && self.dist.is_none() {
                    return Err(non_finite(value));
                }
            }
            // the next batch is built on another worker while this one
            // updates the weights (both wait for the step before)
            let (value, global_samples) = crate::parallel::alongside(
                || self.update_weights(&grads, n, value, split, &non_finite),
                || next = epoch_batches.next(),
            )?;
            if let Some(dp) = &self.dist {
                let (steps, every) = (dp.stats.steps, dp.check_every);
                if every > 0 && steps % every == 0 {
                    self.check_replicas(steps)?;
                }
            }
            self.model
                .try_zero_grads(&mut grads)
                .map_err(device::<D>("zeroing gradients"))?;
            sum += value as f64;
            batches += 1;
            samples += global_samples;
            if self.observer.is_some() {
                self.tell(TrainEvent::BatchFinished {
                    epoch: epoch + 1,
                    batch: b + 1,
                    batches: n_batches,
                    loss: value,
                    mean_loss: (sum / batches as f64) as f32,
                    samples,
                    seconds: start.elapsed().as_secs_f64(),
                });
            }
            b += 1;
        }
        self.split.keep_grads(grads);
        if let Some(dp) = &self.dist {
            self.check_replicas(dp.stats.steps)?;
        }
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: (sum / batches.max(1) as f64) as f32,
            samples,
            seconds: start.elapsed().as_secs_f64(),
        };
        self.history.push(stats);
        Ok(stats)
    }

    /// The optimizer's update from `grads`, the gradients of a batch of `n`
    /// samples (of chunks side by side if `split`) whose mean loss was
    /// `value`; in data-parallel training averaged over the ranks first.
    /// Returns the step's loss and sample count: in data-parallel training
    /// those of the global batch, else `value` and `n`.
    fn update_weights(
        &mut self,
        grads: &Gradients<f32, D>,
        n: usize,
        value: f32,
        split: bool,
        non_finite: &impl Fn(f32) -> TrainError,
    ) -> Result<(f32, usize), TrainError> {
        let chunks = &self.split;
        let Some(dp) = self.dist.as_mut() else {
            if split {
                self.optimizer
                    .update_reduced(&mut self.model, grads, &mut |flat: &mut Vec<f32>| {
                        chunks.combine(flat)
                    })?;
            } else {
                self.optimizer.update(&mut self.model, grads)?;
            }
            return Ok((value, n));
        };
        let weight = n as f32;
        let mut global = (0.0f32, 0usize);
        let mut reduce = |flat: &mut Vec<f32>| -> Result<(), TrainError> {
            if split {
                chunks.combine(flat)?;
            }
            for g in flat.iter_mut() {
                *g *= weight;
            }
            flat.push(value * weight);
            flat.push(weight);
            let t = Instant::now();
            dp.comm.all_reduce_sum_f32(flat)?;
            dp.stats.seconds += t.elapsed().as_secs_f64();
            dp.stats.steps += 1;
            dp.stats.bytes_per_step = flat.len() * std::mem::size_of::<f32>();
            let total = flat.pop().unwrap_or(0.0);
            let loss_sum = flat.pop().unwrap_or(f32::NAN);
            // the loader's batches are never empty: the global count is at
            // least 1 on every rank alike
            let total_n = total.max(1.0);
            for g in flat.iter_mut() {
                *g /= total_n;
            }
            global = (loss_sum / total_n, total as usize);
            if !global.0.is_finite() {
                return Err(non_finite(global.0));
            }
            Ok(())
        };
        self.optimizer
            .update_reduced(&mut self.model, grads, &mut reduce)?;
        // the epoch's figures count the global batch
        Ok(global)
    }

    /// Accuracy, per-class accuracy and confusion matrix on `loader`
    /// (inference mode: no tape). An empty loader is
    /// [`TrainError::EmptyLoader`].
    pub fn evaluate(&self, loader: &DataLoader) -> Result<Evaluation, TrainError>
    where
        M: ImageClassifier<D>,
    {
        if loader.is_empty() {
            return Err(TrainError::EmptyLoader);
        }
        let loader = &*self.shard_of(loader)?;
        let batches = loader.len();
        self.tell(TrainEvent::EvaluationStarted { batches });
        let mut eval = Evaluation::new(classes_of::<M, D>());
        for (b, batch) in loader.epoch(0).enumerate() {
            if batch.is_empty() {
                continue;
            }
            let labels = self.predict_labels(&batch)?;
            for (t, p) in batch.labels.iter().zip(labels) {
                eval.record(*t, p);
            }
            self.tell(TrainEvent::EvaluationBatch {
                batch: b + 1,
                batches,
            });
        }
        if let Some(dp) = &self.dist {
            // every rank's counts added up: the evaluation of the whole set
            let mut counts: Vec<u64> = eval.confusion.iter().flatten().map(|&c| c as u64).collect();
            dp.comm.all_reduce_sum_u64(&mut counts)?;
            let n = eval.classes();
            for (i, c) in counts.into_iter().enumerate() {
                eval.confusion[i / n][i % n] = usize::try_from(c).unwrap_or(usize::MAX);
            }
        }
        self.tell(TrainEvent::EvaluationFinished { evaluation: &eval });
        Ok(eval)
    }

    /// Predicted labels and softmax probabilities for one batch (no tape).
    pub fn predict(&self, batch: &Batch) -> Result<Predictions, TrainError>
    where
        M: ImageClassifier<D>,
    {
        let x = batch.images_tensor::<M::Image, D>(&self.device)?;
        let logits = self
            .model
            .logits(x)
            .map_err(device::<D>("the forward pass"))?;
        let probs = logits
            .try_softmax::<Axis<1>>()
            .map_err(device::<D>("the softmax"))?
            .as_vec();
        let n = classes_of::<M, D>();
        let probabilities: Vec<Vec<f32>> = probs.chunks(n.max(1)).map(<[f32]>::to_vec).collect();
        let labels = probabilities.iter().map(|p| argmax(p)).collect();
        Ok(Predictions {
            labels,
            probabilities,
        })
    }

    fn predict_labels(&self, batch: &Batch) -> Result<Vec<usize>, TrainError>
    where
        M: ImageClassifier<D>,
    {
        let x = batch.images_tensor::<M::Image, D>(&self.device)?;
        let logits = self
            .model
            .logits(x)
            .map_err(device::<D>("the forward pass"))?
            .as_vec();
        Ok(logits
            .chunks(classes_of::<M, D>().max(1))
            .map(argmax)
            .collect())
    }
}

/// Index of the largest value (the first one on ties).
fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

/// Replaces every tensor (parameters and buffers) by rank 0's.
struct Broadcast<'a> {
    comm: &'a dyn Collective,
    host: Vec<f32>,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Broadcast<'_> {
    type Viewer = ViewTensorMut;
    type Err = TrainError;
    type E2 = f32;
    type D2 = D;

    fn visit<S: Shape>(
        &mut self,
        _opts: TensorOptions<S, f32, D>,
        t: &mut Tensor<S, f32, D>,
    ) -> Result<Option<Tensor<S, f32, D>>, Self::Err> {
        self.host.resize(t.shape().num_elements(), 0.0);
        t.copy_into(&mut self.host);
        self.comm.broadcast_f32(&mut self.host)?;
        t.copy_from(&self.host);
        Ok(None)
    }
}

/// Hashes the trainable tensors.
struct Hash {
    hash: u64,
}

impl<D: Device<f32>> TensorVisitor<f32, D> for Hash {
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
            self.hash = distributed::fnv1a(self.hash, &t.as_vec());
        }
        Ok(None)
    }
}
