//! Progress reports of the training driver.
//!
//! static-nn never prints. [`Classifier`](super::Classifier) tells an
//! observer what it is doing, and the caller decides what to show: a progress
//! bar, a log line, nothing. The examples wire it to indicatif.
use super::{EpochStats, Evaluation};

/// What the [`Classifier`](super::Classifier) is doing.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum TrainEvent<'a> {
    /// An epoch begins (`epoch` is 1-based).
    EpochStarted {
        /// 1-based epoch.
        epoch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// The learning rate of this epoch.
        lr: f64,
    },
    /// A training batch has been forwarded, back-propagated and applied.
    BatchFinished {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// Batches in the epoch.
        batches: usize,
        /// This batch's loss.
        loss: f32,
        /// The mean loss of the epoch so far.
        mean_loss: f32,
        /// Samples trained on in this epoch so far.
        samples: usize,
        /// Seconds since the epoch began.
        seconds: f64,
    },
    /// An epoch has ended.
    EpochFinished {
        /// Its figures.
        stats: &'a EpochStats,
        /// The last epoch of this `fit` call (1-based), e.g. 10 of
        /// "epoch 3/10".
        epochs: usize,
        /// The learning rate it used.
        lr: f64,
    },
    /// An evaluation begins.
    EvaluationStarted {
        /// Batches to evaluate.
        batches: usize,
    },
    /// An evaluation batch is done.
    EvaluationBatch {
        /// 1-based batch.
        batch: usize,
        /// Batches to evaluate.
        batches: usize,
    },
    /// The evaluation has ended.
    EvaluationFinished {
        /// Its result.
        evaluation: &'a Evaluation,
    },
    /// [`Classifier::train`](super::Classifier::train) evaluated the
    /// validation set after an epoch.
    Validated {
        /// 1-based epoch.
        epoch: usize,
        /// Validation accuracy, in percent.
        accuracy: f64,
        /// The best epoch so far (1-based) and its accuracy.
        best: (usize, f64),
    },
    /// A checkpoint was written after an epoch.
    CheckpointSaved {
        /// 1-based epoch.
        epoch: usize,
        /// The file.
        path: &'a std::path::Path,
    },
    /// Training stopped early: the validation accuracy did not improve for
    /// `patience` epochs.
    EarlyStopped {
        /// The last 1-based epoch trained.
        epoch: usize,
        /// The patience, in epochs.
        patience: usize,
        /// The best epoch (1-based) and its accuracy.
        best: (usize, f64),
    },
}

/// Receives the [`TrainEvent`]s of a [`Classifier`](super::Classifier).
///
/// Any `Fn(TrainEvent)` closure that is `Send + Sync` is an observer:
///
/// ```
/// use static_nn::train::{TrainEvent, TrainObserver};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// let batches = Arc::new(AtomicUsize::new(0));
/// let seen = batches.clone();
/// let count = move |e: TrainEvent| {
///     if let TrainEvent::BatchFinished { .. } = e {
///         seen.fetch_add(1, Ordering::Relaxed);
///     }
/// };
/// count.on_event(TrainEvent::EvaluationStarted { batches: 3 });
/// assert_eq!(batches.load(Ordering::Relaxed), 0);
/// ```
pub trait TrainObserver: Send + Sync {
    /// Called for each event, on the training thread. Keep it cheap: it runs
    /// once per batch.
    fn on_event(&self, event: TrainEvent<'_>);
}

impl<F: Fn(TrainEvent<'_>) + Send + Sync> TrainObserver for F {
    fn on_event(&self, event: TrainEvent<'_>) {
        self(event)
    }
}
