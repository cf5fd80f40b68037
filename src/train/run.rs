//! [`Classifier::train`]: a whole run with a schedule, validation, early
//! stopping and checkpoints that resume exactly.
use super::checkpoint::{self, checkpoint_path, RunState};
use super::classifier::{cross_entropy, Classifier, ImageClassifier};
use super::observer::TrainEvent;
use super::{Schedule, TrainError};
use crate::data::DataLoader;
use crate::error::{device, TypedErrors};
use dfdx::nn::{TensorCollection, ToDevice};
use dfdx::prelude::Device;
use std::path::{Path, PathBuf};

/// How [`Classifier::train`] runs.
///
/// ```
/// use static_nn::train::{LrSchedule, Schedule, TrainOptions};
/// let opts = TrainOptions {
///     epochs: 30,
///     schedule: Schedule::with_warmup(LrSchedule::cosine(0.0), 2),
///     early_stop: Some(5),
///     checkpoint_dir: Some("runs/cifar".into()),
/// };
/// assert_eq!(TrainOptions::default().epochs, 10);
/// # let _ = opts;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Epochs of the whole run; a resumed run carries on up to this many.
    pub epochs: usize,
    /// The learning rate's schedule over the run (warm-up included), from
    /// the optimizer's learning rate.
    pub schedule: Schedule,
    /// Stop when the validation accuracy has not improved for this many
    /// epochs (Keras' `EarlyStopping(patience)`); needs a validation loader.
    pub early_stop: Option<usize>,
    /// After every epoch, write a checkpoint
    /// (`checkpoint.safetensors`) into this directory, atomically.
    pub checkpoint_dir: Option<PathBuf>,
}

impl Default for TrainOptions {
    /// 10 epochs, constant learning rate, no early stopping, no checkpoints.
    fn default() -> Self {
        Self {
            epochs: 10,
            schedule: Schedule::default(),
            early_stop: None,
            checkpoint_dir: None,
        }
    }
}

/// How a [`Classifier::train`] run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Epochs finished in all (resumed ones included).
    pub epochs: usize,
    /// The epoch this call started from (0 unless resumed).
    pub resumed_from: usize,
    /// Whether early stopping ended the run.
    pub stopped_early: bool,
    /// The best validation epoch (1-based) and its accuracy, with a
    /// validation set.
    pub best: Option<(usize, f64)>,
}

/// The seed of epoch `epoch`'s device in a seeded run (SplitMix64 of both).
fn epoch_device_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = (seed ^ 0x6465_7669_6365_2121)
        .wrapping_add((epoch as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl<M, D> Classifier<M, D>
where
    D: Device<f32> + TypedErrors,
    M: ImageClassifier<D> + TensorCollection<f32, D, To<f32, D> = M>,
{
    /// Loads the checkpoint in `dir` (written by [`train`](Self::train)
    /// with `checkpoint_dir`): the model's tensors, the optimizer's state,
    /// the finished epochs, the best validation score and the seed. A
    /// following [`train`](Self::train) with the same options carries on
    /// where the checkpoint's run stopped and ends with weights bit-identical
    /// to those of a run that never stopped.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming the file: missing, corrupt, of
    /// another model (with the tensor that does not fit), of another
    /// optimizer, or written by a run on another number of data-parallel
    /// ranks ([`RunState::world_size`]). Nothing is changed then.
    pub fn resume(&mut self, dir: &Path) -> Result<RunState, TrainError> {
        // a copy, so that a checkpoint that does not fit changes nothing
        let mut model = self
            .model
            .try_to_device(&self.device)
            .map_err(device::<D>("copying the model"))?;
        let (state, run) = checkpoint::load(dir, &mut model)?;
        let world = self.world_size();
        if run.world_size.max(1) != world {
            return Err(TrainError::Checkpoint {
                path: checkpoint_path(dir),
                reason: format!(
                    "it was written by a run on {} rank(s), this run has {world}: resume with the same number of ranks",
                    run.world_size.max(1)
                ),
            });
        }
        self.optimizer
            .inner_mut()
            .load_state(state)
            .map_err(|e| TrainError::Checkpoint {
                path: checkpoint_path(dir),
                reason: format!("its optimizer state does not fit: {e}"),
            })?;
        self.model = model;
        self.split.reset();
        self.history = run.history.clone();
        self.run = run.clone();
        if run.seed.is_some() {
            self.seed = run.seed;
        }
        Ok(run)
    }

    /// Trains from the current epoch (0, or the checkpoint's after
    /// [`resume`](Self::resume)) up to `opts.epochs`: each epoch's learning
    /// rate from `opts.schedule`, then, with `val`, its validation accuracy
    /// (early stopping on it with `opts.early_stop`), then a checkpoint in
    /// `opts.checkpoint_dir`.
    ///
    /// In a seeded run ([`set_seed`](Self::set_seed)) every epoch runs on a
    /// device seeded by the seed and the epoch (the model moves to it), so
    /// its dropout masks, like its data order and augmentation, depend on
    /// nothing but the seed and the epoch: this is what makes a resumed run
    /// bit-identical.
    ///
    /// # Errors
    /// Those of [`fit_epoch`](Self::fit_epoch) and [`evaluate`](Self::evaluate);
    /// [`TrainError::Checkpoint`] if a checkpoint cannot be written;
    /// [`TrainError::InvalidHyperparameter`] for a bad schedule, or early
    /// stopping without a validation set.
    pub fn train(
        &mut self,
        train: &DataLoader,
        val: Option<&DataLoader>,
        opts: &TrainOptions,
    ) -> Result<TrainReport, TrainError> {
        opts.schedule.validate()?;
        if opts.early_stop.is_some() && val.is_none() {
            return Err(TrainError::InvalidHyperparameter(
                "early stopping needs a validation set (a validation split)".into(),
            ));
        }
        let resumed_from = self.run.epoch;
        let base = self.base_lr;
        let batches = train.len();
        let mut stopped_early = false;
        for epoch in resumed_from..opts.epochs {
            if let Some(seed) = self.seed {
                // each rank its own dropout masks; rank 0 those of a run
                // in one process
                let seed = match self.rank() as u64 {
                    0 => seed,
                    r => seed ^ epoch_device_seed(r, usize::MAX),
                };
                let fresh = self.device.reseeded(epoch_device_seed(seed, epoch))?;
                let previous = std::mem::replace(&mut self.device, fresh);
                self.model = self
                    .model
                    .try_to_device(&self.device)
                    .map_err(device::<D>("moving the model to the epoch's device"))?;
                self.split.reset();
                // the previous epoch's tensors are gone: free what its
                // device's cache kept of them (dfdx does not on drop; without
                // this every seeded epoch kept its tensors, ~190 MB an epoch
                // in the `lenet` example)
                previous.release_cache()?;
            }
            let schedule = opts.schedule;
            let lr = move |batch: usize| schedule.lr_at(base, epoch, batch, opts.epochs, batches);
            let stats = self.fit_epoch_with(train, epoch, &cross_entropy::<M::Classes, D>, &lr)?;
            self.run.epoch = epoch + 1;
            self.run.history = self.history.clone();
            self.run.seed = self.seed;
            self.run.world_size = self.world_size();
            self.tell(TrainEvent::EpochFinished {
                stats: &stats,
                epochs: opts.epochs,
                lr: self.optimizer.learning_rate(),
            });
            if let Some(val) = val {
                let eval = self.evaluate(val)?;
                let acc = eval.accuracy();
                self.run.val_accuracy.push(acc);
                if self.run.best.is_none_or(|(_, b)| acc > b) {
                    self.run.best = Some((epoch + 1, acc));
                }
                let best = self.run.best.unwrap_or((epoch + 1, acc));
                self.tell(TrainEvent::Validated {
                    epoch: epoch + 1,
                    accuracy: acc,
                    best,
                });
                if let Some(patience) = opts.early_stop {
                    if epoch + 1 - best.0 >= patience && epoch + 1 < opts.epochs {
                        stopped_early = true;
                    }
                }
            }
            // rank 0 alone writes checkpoints: its replica is everyone's
            if let Some(dir) = opts.checkpoint_dir.as_ref().filter(|_| self.is_root()) {
                checkpoint::save(dir, &self.model, &self.optimizer.inner().state(), &self.run)?;
                self.tell(TrainEvent::CheckpointSaved {
                    epoch: epoch + 1,
                    path: &checkpoint_path(dir),
                });
            }
            if stopped_early {
                let best = self.run.best.unwrap_or_default();
                self.tell(TrainEvent::EarlyStopped {
                    epoch: epoch + 1,
                    patience: opts.early_stop.unwrap_or(0),
                    best,
                });
                break;
            }
        }
        Ok(TrainReport {
            epochs: self.run.epoch,
            resumed_from,
            stopped_early,
            best: self.run.best,
        })
    }
}
